//! The read caches stay coherent across API instances: a write made through
//! one instance, or straight in SQL, is seen by another one within the
//! notification's delivery — far inside the caches' TTL (300 s), so nothing
//! here passes by an entry merely expiring.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_testkit::{Peer, api::expect_code, json_of, spawn_app, within};

/// How long a change may take to reach the other instance. Delivery is
/// sub-millisecond on one host; the margin is for a loaded CI machine.
const PROPAGATION: Duration = Duration::from_secs(5);

fn lookup(phone: &str) -> String {
    format!("/v1/customers?phone={}", phone.replace('+', "%2B"))
}

/// The names of the customers a phone lookup on `peer` returns.
async fn names_on(peer: &Peer, token: &str, phone: &str) -> Vec<String> {
    let (status, page) = json_of(peer.get(&lookup(phone), token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Waits until a phone lookup on `peer` names exactly `expected`.
async fn until_names_on(peer: &Peer, token: &str, phone: &str, expected: &[&str], what: &str) {
    within(PROPAGATION, what, || async {
        (names_on(peer, token, phone).await == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn customer_writes_through_one_instance_reach_the_lookups_of_another() {
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    let token = &app.a.token;

    // An unknown number is looked up (and remembered as nobody's) first.
    assert!(names_on(&peer, token, "+12025550177").await.is_empty());
    assert!(names_on(&peer, token, "+12025550177").await.is_empty());
    let created = app
        .customer_with_phone(token, "Grace Hopper", "+12025550177")
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let what = "the new customer on the other instance";
    until_names_on(&peer, token, "+12025550177", &["Grace Hopper"], what).await;

    // Renamed: the other instance stops answering the old name.
    let path = format!("/v1/customers/{id}");
    let response = app
        .patch(&path, token, json!({"name": "Grace B. Hopper"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let what = "the rename on the other instance";
    until_names_on(&peer, token, "+12025550177", &["Grace B. Hopper"], what).await;

    // Renumbered: the old number is nobody's, the new one hers.
    let response = app
        .patch(&path, token, json!({"phone": "+12025550178"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    within(
        PROPAGATION,
        "the new number on the other instance",
        || async {
            (names_on(&peer, token, "+12025550177").await.is_empty()
                && names_on(&peer, token, "+12025550178").await == ["Grace B. Hopper"])
            .then_some(())
        },
    )
    .await;

    // Written in SQL, as an operator or the worker's import would.
    sqlx::query("UPDATE customers SET name = 'Admiral Hopper' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let what = "an SQL update on the other instance";
    until_names_on(&peer, token, "+12025550178", &["Admiral Hopper"], what).await;

    // Deleted.
    let response = app.delete(&path, token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let what = "the deletion on the other instance";
    until_names_on(&peer, token, "+12025550178", &[], what).await;

    // Numbers are per tenant: the other tenant's lookup never sees hers.
    app.customer_with_phone(token, "Only Alpha's", "+12025550179")
        .await;
    until_names_on(
        &peer,
        token,
        "+12025550179",
        &["Only Alpha's"],
        "alpha's customer",
    )
    .await;
    assert!(
        names_on(&peer, &app.b.token, "+12025550179")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn an_agent_removed_in_sql_loses_access_on_every_instance() {
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    for response in [
        app.get("/v1/me", &app.a.token).await,
        peer.get("/v1/me", &app.a.token).await,
    ] {
        let (status, me) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{me}");
    }
    sqlx::query("UPDATE agents SET name = 'Renamed' WHERE id = $1")
        .bind(app.a.agent_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    within(
        PROPAGATION,
        "the agent's new name on the other instance",
        || async {
            let (_, me) = json_of(peer.get("/v1/me", &app.a.token).await).await;
            (me["agent"]["name"] == "Renamed").then_some(())
        },
    )
    .await;
    sqlx::query("DELETE FROM agents WHERE id = $1")
        .bind(app.a.agent_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    within(PROPAGATION, "the removed agent refused by both", || async {
        let refused = |response: reqwest::Response| response.status() == StatusCode::UNAUTHORIZED;
        (refused(app.get("/v1/me", &app.a.token).await)
            && refused(peer.get("/v1/me", &app.a.token).await))
        .then_some(())
    })
    .await;
    let response = peer.get("/v1/me", &app.a.token).await;
    let error = expect_code(response, "unauthorized", "the peer, after the removal").await;
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("agent no longer exists")),
        "{error}"
    );
}

#[tokio::test]
async fn a_token_logged_out_on_one_instance_is_refused_by_the_other() {
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    let token = app
        .login(&app.a.agent_email, switchboard_testkit::PASSWORD)
        .await;
    let (status, me) = json_of(peer.get("/v1/me", &token).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let logout = app.request(Method::POST, "/v1/auth/logout", &token);
    let response = logout.send().await.expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The instance that logged out refuses the token at once.
    let response = app.get("/v1/me", &token).await;
    expect_code(response, "unauthorized", "the instance that logged out").await;
    within(
        PROPAGATION,
        "the revocation on the other instance",
        || async {
            (peer.get("/v1/me", &token).await.status() == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    // A peer started after the logout loads the list before trusting it.
    let late = app.spawn_peer().await;
    let response = late.get("/v1/me", &token).await;
    expect_code(response, "unauthorized", "a peer started after the logout").await;
}

//! The read caches stay coherent across API instances: a write made through
//! one instance, or straight in SQL, is seen by another one within the
//! notification's delivery — far inside the caches' TTL (300 s), so nothing
//! here passes by an entry merely expiring.

mod common;

use std::time::Duration;

use common::{expect_error, json_of, spawn_app, within};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// How long a change may take to reach the other instance. Delivery is
/// sub-millisecond on one host; the margin is for a loaded CI machine.
const PROPAGATION: Duration = Duration::from_secs(5);

fn lookup(phone: &str) -> String {
    format!("/v1/customers?phone={}", phone.replace('+', "%2B"))
}

/// The names of the customers a phone lookup on `peer` returns.
async fn names_on(peer: &common::Peer, token: &str, phone: &str) -> Vec<String> {
    let (status, page) = json_of(peer.get(&lookup(phone), token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
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
        .create_customer(
            token,
            json!({"name": "Grace Hopper", "phone": "+12025550177"}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    within(
        PROPAGATION,
        "the new customer on the other instance",
        || async {
            (names_on(&peer, token, "+12025550177").await == ["Grace Hopper"]).then_some(())
        },
    )
    .await;

    // Renamed: the other instance stops answering the old name.
    let response = app
        .patch(
            &format!("/v1/customers/{id}"),
            token,
            json!({"name": "Grace B. Hopper"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    within(PROPAGATION, "the rename on the other instance", || async {
        (names_on(&peer, token, "+12025550177").await == ["Grace B. Hopper"]).then_some(())
    })
    .await;

    // Renumbered: the old number is nobody's, the new one hers.
    let response = app
        .patch(
            &format!("/v1/customers/{id}"),
            token,
            json!({"phone": "+12025550178"}),
        )
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
    within(
        PROPAGATION,
        "an SQL update on the other instance",
        || async {
            (names_on(&peer, token, "+12025550178").await == ["Admiral Hopper"]).then_some(())
        },
    )
    .await;

    // Deleted.
    let response = app.delete(&format!("/v1/customers/{id}"), token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    within(
        PROPAGATION,
        "the deletion on the other instance",
        || async {
            names_on(&peer, token, "+12025550178")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;

    // Numbers are per tenant: the other tenant's lookup never sees hers.
    app.create_customer(
        token,
        json!({"name": "Only Alpha's", "phone": "+12025550179"}),
    )
    .await;
    within(PROPAGATION, "alpha's customer", || async {
        (names_on(&peer, token, "+12025550179").await == ["Only Alpha's"]).then_some(())
    })
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
    let error = expect_error(
        peer.get("/v1/me", &app.a.token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
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
    let token = app.login(&app.a.agent_email, common::PASSWORD).await;
    let (status, me) = json_of(peer.get("/v1/me", &token).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let response = app
        .request(Method::POST, "/v1/auth/logout", &token)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The instance that logged out refuses the token at once.
    expect_error(
        app.get("/v1/me", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
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
    expect_error(
        late.get("/v1/me", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

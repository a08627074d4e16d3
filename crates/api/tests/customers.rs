//! Customers (CRM) against a real server, PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::HashSet;

use chrono::{Duration, Utc};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_testkit::{
    TestApp,
    api::{expect_field_error, expect_not_found},
    expect_error, json_of, spawn_app,
};
use uuid::Uuid;

/// The ids a phone lookup or search (`key` = `input`) finds, asserting 200.
async fn found(app: &TestApp, key: &str, input: &str) -> Vec<Value> {
    let (status, body) = json_of(
        app.get_query("/v1/customers", &app.a.token, &[(key, input)])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{key}={input}: {body}");
    let data = body["data"].as_array().unwrap();
    data.iter().map(|c| c["id"].clone()).collect()
}

#[tokio::test]
async fn a_customer_can_be_created_read_patched_and_deleted() {
    let app = spawn_app().await;
    let created = app
        .create_customer(
            &app.a.token,
            json!({
                "name": "  Ada Lovelace ",
                "email": "Ada@Example.com",
                "phone": "(202) 555-0123",
                "company": "Analytical Engines",
                "tags": ["VIP", "vip"],
                "metadata": {"plan": "gold"}
            }),
        )
        .await;
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(created["email"], "ada@example.com");
    assert_eq!(created["phone"], "+12025550123");
    assert_eq!(created["tags"], json!(["vip"]));
    assert_eq!(created["metadata"]["plan"], "gold");
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/customers/{id}");

    assert_eq!(app.get_ok(&path, &app.a.token).await, created);

    let (status, patched) = json_of(
        app.patch(
            &path,
            &app.a.token,
            json!({"company": null, "phone": "+1 202 555 0199", "name": "Ada King"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Ada King");
    assert_eq!(patched["company"], Value::Null);
    assert_eq!(patched["phone"], "+12025550199");
    assert_eq!(
        patched["email"], "ada@example.com",
        "absent fields are unchanged"
    );

    let deleted = app.delete(&path, &app.a.token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_not_found(app.get(&path, &app.a.token).await).await;
    expect_not_found(app.delete(&path, &app.a.token).await).await;
}

#[tokio::test]
async fn phone_lookup_finds_the_customer_whatever_the_input_format() {
    let app = spawn_app().await;
    let customer = app
        .customer_with_phone(&app.a.token, "Grace Hopper", "202.555.0142")
        .await;
    app.customer_with_phone(&app.a.token, "Someone Else", "+12025550143")
        .await;
    for input in [
        "+12025550142",
        "(202) 555-0142",
        "202-555-0142",
        "1 202 555 0142",
        "2025550142",
    ] {
        assert_eq!(
            found(&app, "phone", input).await,
            [customer["id"].clone()],
            "{input}"
        );
    }
    assert_eq!(
        found(&app, "phone", "+12025550199").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn an_international_number_with_its_trunk_prefix_in_parentheses_finds_its_customer() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for (name, phone, stored) in [
        ("London Office", "+44 20 7946 0123", "+442079460123"),
        // Stored from the business-card form too, not only looked up by it.
        ("Berlin Office", "+49 (0)30 123456", "+4930123456"),
        ("Paris Office", "+33 1 42 68 53 00", "+33142685300"),
    ] {
        let customer = app
            .create_customer(&app.a.token, json!({"name": name, "phone": phone}))
            .await;
        assert_eq!(customer["phone"], stored, "{name}");
        created.push(customer);
    }
    let [london, berlin, paris] = <[Value; 3]>::try_from(created).expect("three customers");
    for (input, customer) in [
        ("+44 (0)20 7946 0123", &london),
        ("+44 (0) 20 7946 0123", &london),
        ("+44 020 7946 0123", &london),
        ("011 44 (0)20 7946 0123", &london),
        ("+49 (0)30 123456", &berlin),
        ("+49 030 123456", &berlin),
        ("+4930123456", &berlin),
        ("+33 (0)1 42 68 53 00", &paris),
    ] {
        // reqwest percent-encodes the query: `%2B44+%280%2920+7946+0123`.
        assert_eq!(
            found(&app, "phone", input).await,
            [customer["id"].clone()],
            "{input}"
        );
    }
    for input in ["+44 (0)", "+44 (1)20 7946 0123", "+999 (0)20 7946 0123"] {
        let response = app
            .get_query("/v1/customers", &app.a.token, &[("phone", input)])
            .await;
        let what = format!("phone={input}");
        expect_field_error(response, "validation_failed", "phone", &what).await;
    }
}

#[tokio::test]
async fn two_customers_cannot_share_a_phone_number_within_a_tenant() {
    let app = spawn_app().await;
    app.customer_with_phone(&app.a.token, "First", "+12025550150")
        .await;
    let response = app
        .post(
            "/v1/customers",
            &app.a.token,
            json!({"name": "Second", "phone": "202 555 0150"}),
        )
        .await;
    let error = expect_error(response, StatusCode::CONFLICT, "phone_taken").await;
    assert_eq!(error["field"], "phone");
    // Another tenant may have a customer with the same number.
    app.customer_with_phone(&app.b.token, "Other tenant", "+12025550150")
        .await;
}

#[tokio::test]
async fn search_matches_name_email_and_phone_fragments_case_insensitively() {
    let app = spawn_app().await;
    let ada = app
        .create_customer(&app.a.token, json!({"name": "Ada Lovelace", "email": "ada@engines.example", "phone": "+12025550111"}))
        .await;
    let grace = app
        .create_customer(
            &app.a.token,
            json!({"name": "Grace Hopper", "email": "grace@navy.example", "phone": "+13125550177"}),
        )
        .await;
    app.customer_named(&app.b.token, "Ada Other-Tenant").await;

    let search = |q: &'static str| found(&app, "q", q);
    assert_eq!(search("lovelace").await, vec![ada["id"].clone()]);
    assert_eq!(
        search("ADA").await,
        vec![ada["id"].clone()],
        "other tenants' customers never match"
    );
    assert_eq!(search("navy.example").await, vec![grace["id"].clone()]);
    assert_eq!(search("(312) 555-01").await, vec![grace["id"].clone()]);
    assert_eq!(
        search("5550").await,
        vec![grace["id"].clone(), ada["id"].clone()],
        "newest first"
    );
    assert_eq!(
        search("100%").await,
        Vec::<Value>::new(),
        "wildcards are literal"
    );
}

#[tokio::test]
async fn pagination_visits_every_customer_exactly_once() {
    let app = spawn_app().await;
    let mut expected = HashSet::new();
    for i in 0..23 {
        let c = app
            .create_customer(&app.a.token, json!({"name": format!("Customer {i:02}")}))
            .await;
        expected.insert(c["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let body = app
            .page("/v1/customers", &app.a.token, 5, cursor.as_deref())
            .await;
        pages += 1;
        for c in body["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        // A row created mid-walk is newer than the cursor: it must not appear.
        if pages == 2 {
            app.customer_named(&app.a.token, "Created during the walk")
                .await;
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 23, "no duplicates, nothing skipped");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
}

#[tokio::test]
async fn the_timeline_merges_calls_messages_voicemails_and_notes_newest_first() {
    let app = spawn_app().await;
    let customer = app
        .customer_with_phone(&app.a.token, "Timeline", "+12025550160")
        .await;
    let customer_id: Uuid = customer["id"].as_str().unwrap().parse().unwrap();
    let base = Utc::now() - Duration::hours(10);
    let at = |h: i64| base + Duration::hours(h);
    // Inserts a row with `sql`, whose binds are (id, tenant, customer,
    // created at), and returns its id.
    let insert = async |sql: &'static str, hour: i64| {
        let id = Uuid::now_v7();
        let query = sqlx::query(sql).bind(id).bind(app.a.id).bind(customer_id);
        query.bind(at(hour)).execute(&app.db.pool).await.unwrap();
        id
    };
    // Inserted out of order on purpose.
    let call_1 = insert("INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, customer_id, created_at) VALUES ($1, $2, 'outbound', '+12025550100', '+12025550160', 'completed', $3, $4)", 3).await;
    let message = insert("INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status, segments, encoding, customer_id, created_at) VALUES ($1, $2, 'inbound', '+12025550160', '+12025550100', 'hello', 'received', 1, 'GSM-7', $3, $4)", 1).await;
    let voicemail = insert("INSERT INTO voicemails (id, tenant_id, customer_id, from_number, to_number, recording_url, created_at) VALUES ($1, $2, $3, '+12025550160', '+12025550100', 'https://r.example/1.wav', $4)", 4).await;
    let call_2 = insert("INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, customer_id, created_at) VALUES ($1, $2, 'inbound', '+12025550160', '+12025550100', 'no-answer', $3, $4)", 2).await;
    let notes = format!("/v1/customers/{customer_id}/notes");
    let note = app
        .create(&notes, &app.a.token, json!({"body": "Called back"}))
        .await;
    assert_eq!(note["agent_id"], app.a.agent_id.to_string());

    let expected = vec![
        ("note", note["id"].as_str().unwrap().to_string()),
        ("voicemail", voicemail.to_string()),
        ("call", call_1.to_string()),
        ("call", call_2.to_string()),
        ("message", message.to_string()),
    ];
    // Walk in pages of two to check the cursor across sources.
    let timeline = format!("/v1/customers/{customer_id}/timeline");
    let seen: Vec<(String, String)> = app
        .walk_pages(&timeline, &app.a.token, 2)
        .await
        .iter()
        .map(|item| {
            (
                item["kind"].as_str().unwrap().to_string(),
                item["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(k, id)| (k.to_string(), id))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn another_tenants_customer_is_not_found_on_every_endpoint() {
    let app = spawn_app().await;
    let theirs = app
        .customer_with_phone(&app.b.token, "Bravo's", "+12025550170")
        .await;
    let id = theirs["id"].as_str().unwrap();
    let path = format!("/v1/customers/{id}");
    let token = &app.a.token;

    app.expect_hidden_from(&app.a, &path).await;
    expect_not_found(app.patch(&path, token, json!({"name": "Hijacked"})).await).await;
    expect_not_found(app.delete(&path, token).await).await;
    let note = json!({"body": "x"});
    expect_not_found(app.post(&format!("{path}/notes"), token, note).await).await;
    expect_not_found(app.get(&format!("{path}/timeline"), token).await).await;
    // Lists and lookups never show it either.
    assert_eq!(app.get_ok("/v1/customers", token).await["data"], json!([]));
    assert_eq!(
        found(&app, "phone", "+12025550170").await,
        Vec::<Value>::new()
    );
    assert_eq!(found(&app, "q", "bravo").await, Vec::<Value>::new());
    // And it is untouched.
    assert_eq!(app.get_ok(&path, &app.b.token).await["name"], "Bravo's");
    assert_eq!(app.count_rows("customer_notes").await, 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_refuses_another_body() {
    let app = spawn_app().await;
    let send = |body: Value, key: &'static str| {
        app.post_idempotent("/v1/customers", &app.a.token, key, body)
    };
    let first = send(json!({"name": "Once", "phone": "+12025550181"}), "key-1").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let first: Value = first.json().await.unwrap();

    // Same body with keys reordered: a replay.
    let replay = send(json!({"phone": "+12025550181", "name": "Once"}), "key-1").await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);

    let conflict = send(json!({"name": "Different"}), "key-1").await;
    expect_error(
        conflict,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;

    // Concurrent duplicates create exactly one customer.
    let racers = (0..8).map(|_| send(json!({"name": "Raced"}), "key-2"));
    let results = futures::future::join_all(racers).await;
    let ids: HashSet<String> = futures::stream::iter(results)
        .then(|r| async move {
            assert_eq!(r.status(), StatusCode::CREATED);
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
        .await;
    assert_eq!(ids.len(), 1);

    // Keys are per tenant: another tenant may use the same key.
    let other = json!({"name": "Bravo once"});
    let other = app
        .post_idempotent("/v1/customers", &app.b.token, "key-1", other)
        .await;
    assert_eq!(other.status(), StatusCode::CREATED);
    assert_eq!(app.count_rows("customers").await, 3);

    // A failed request does not burn its key.
    let bad = send(json!({"name": ""}), "key-3").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let good = send(json!({"name": "Fixed"}), "key-3").await;
    assert_eq!(good.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn customer_changes_are_published_as_events_on_the_tenant_channel() {
    let app = spawn_app().await;
    let mut events = app.events(&app.a).await;
    let created = app.customer_named(&app.a.token, "Evented").await;
    let envelope = events.next(std::time::Duration::from_secs(5)).await;
    assert_eq!(envelope["type"], "customer.created");
    assert_eq!(envelope["tenant_id"], app.a.id.to_string());
    assert_eq!(envelope["data"]["id"], created["id"]);
    assert!(Uuid::parse_str(envelope["id"].as_str().unwrap()).is_ok());
    assert!(envelope["occurred_at"].as_str().unwrap().ends_with('Z'));
}

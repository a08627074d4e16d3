//! Customers (CRM) against a real server, PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::HashSet;

use chrono::{Duration, Utc};
use common::{expect_error, json_of, spawn_app};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard_core::{events::events_channel, redis::redis};
use uuid::Uuid;

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

    let (status, fetched) = json_of(app.get(&path, &app.a.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

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

    assert_eq!(
        app.delete(&path, &app.a.token).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_error(
        app.get(&path, &app.a.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.delete(&path, &app.a.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn phone_lookup_finds_the_customer_whatever_the_input_format() {
    let app = spawn_app().await;
    let customer = app
        .create_customer(
            &app.a.token,
            json!({"name": "Grace Hopper", "phone": "202.555.0142"}),
        )
        .await;
    app.create_customer(
        &app.a.token,
        json!({"name": "Someone Else", "phone": "+12025550143"}),
    )
    .await;
    for input in [
        "+12025550142",
        "(202) 555-0142",
        "202-555-0142",
        "1 202 555 0142",
        "2025550142",
    ] {
        let response = app
            .request(Method::GET, "/v1/customers", &app.a.token)
            .query(&[("phone", input)])
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{input}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{input}: {body}");
        assert_eq!(data[0]["id"], customer["id"], "{input}");
    }
    let response = app
        .request(Method::GET, "/v1/customers", &app.a.token)
        .query(&[("phone", "+12025550199")])
        .send()
        .await
        .unwrap();
    let (_, body) = json_of(response).await;
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn an_international_number_with_its_trunk_prefix_in_parentheses_finds_its_customer() {
    let app = spawn_app().await;
    let london = app
        .create_customer(
            &app.a.token,
            json!({"name": "London Office", "phone": "+44 20 7946 0123"}),
        )
        .await;
    assert_eq!(london["phone"], "+442079460123");
    let berlin = app
        .create_customer(
            &app.a.token,
            // Stored from the business-card form too, not only looked up by it.
            json!({"name": "Berlin Office", "phone": "+49 (0)30 123456"}),
        )
        .await;
    assert_eq!(berlin["phone"], "+4930123456");
    let paris = app
        .create_customer(
            &app.a.token,
            json!({"name": "Paris Office", "phone": "+33 1 42 68 53 00"}),
        )
        .await;
    assert_eq!(paris["phone"], "+33142685300");
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
        let response = app
            .request(Method::GET, "/v1/customers", &app.a.token)
            .query(&[("phone", input)])
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{input}: {body}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{input}: {body}");
        assert_eq!(data[0]["id"], customer["id"], "{input}");
    }
    for input in ["+44 (0)", "+44 (1)20 7946 0123", "+999 (0)20 7946 0123"] {
        let response = app
            .request(Method::GET, "/v1/customers", &app.a.token)
            .query(&[("phone", input)])
            .send()
            .await
            .unwrap();
        let error = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error["field"], "phone", "{input}");
    }
}

#[tokio::test]
async fn two_customers_cannot_share_a_phone_number_within_a_tenant() {
    let app = spawn_app().await;
    app.create_customer(
        &app.a.token,
        json!({"name": "First", "phone": "+12025550150"}),
    )
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
    app.create_customer(
        &app.b.token,
        json!({"name": "Other tenant", "phone": "+12025550150"}),
    )
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
    app.create_customer(&app.b.token, json!({"name": "Ada Other-Tenant"}))
        .await;

    let search = |q: &'static str| {
        let app = &app;
        async move {
            let response = app
                .request(Method::GET, "/v1/customers", &app.a.token)
                .query(&[("q", q)])
                .send()
                .await
                .unwrap();
            let (status, body) = json_of(response).await;
            assert_eq!(status, StatusCode::OK, "{q}: {body}");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].clone())
                .collect::<Vec<_>>()
        }
    };
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
        let mut query = vec![("limit", "5".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let response = app
            .request(Method::GET, "/v1/customers", &app.a.token)
            .query(&query)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
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
            app.create_customer(&app.a.token, json!({"name": "Created during the walk"}))
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
        .create_customer(
            &app.a.token,
            json!({"name": "Timeline", "phone": "+12025550160"}),
        )
        .await;
    let customer_id: Uuid = customer["id"].as_str().unwrap().parse().unwrap();
    let base = Utc::now() - Duration::hours(10);
    let at = |h: i64| base + Duration::hours(h);
    let pool = &app.db.pool;
    let t = app.a.id;
    // Inserted out of order on purpose.
    let call_1 = Uuid::now_v7();
    sqlx::query("INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, customer_id, created_at) VALUES ($1, $2, 'outbound', '+12025550100', '+12025550160', 'completed', $3, $4)")
        .bind(call_1).bind(t).bind(customer_id).bind(at(3)).execute(pool).await.unwrap();
    let message = Uuid::now_v7();
    sqlx::query("INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status, segments, encoding, customer_id, created_at) VALUES ($1, $2, 'inbound', '+12025550160', '+12025550100', 'hello', 'received', 1, 'GSM-7', $3, $4)")
        .bind(message).bind(t).bind(customer_id).bind(at(1)).execute(pool).await.unwrap();
    let voicemail = Uuid::now_v7();
    sqlx::query("INSERT INTO voicemails (id, tenant_id, customer_id, from_number, to_number, recording_url, created_at) VALUES ($1, $2, $3, '+12025550160', '+12025550100', 'https://r.example/1.wav', $4)")
        .bind(voicemail).bind(t).bind(customer_id).bind(at(4)).execute(pool).await.unwrap();
    let call_2 = Uuid::now_v7();
    sqlx::query("INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, customer_id, created_at) VALUES ($1, $2, 'inbound', '+12025550160', '+12025550100', 'no-answer', $3, $4)")
        .bind(call_2).bind(t).bind(customer_id).bind(at(2)).execute(pool).await.unwrap();
    let (status, note) = json_of(
        app.post(
            &format!("/v1/customers/{customer_id}/notes"),
            &app.a.token,
            json!({"body": "Called back"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["agent_id"], app.a.agent_id.to_string());

    let expected = vec![
        ("note", note["id"].as_str().unwrap().to_string()),
        ("voicemail", voicemail.to_string()),
        ("call", call_1.to_string()),
        ("call", call_2.to_string()),
        ("message", message.to_string()),
    ];
    // Walk in pages of two to check the cursor across sources.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "2".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let response = app
            .request(
                Method::GET,
                &format!("/v1/customers/{customer_id}/timeline"),
                &app.a.token,
            )
            .query(&query)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for item in body["data"].as_array().unwrap() {
            seen.push((
                item["kind"].as_str().unwrap().to_string(),
                item["id"].as_str().unwrap().to_string(),
            ));
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
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
        .create_customer(
            &app.b.token,
            json!({"name": "Bravo's", "phone": "+12025550170"}),
        )
        .await;
    let id = theirs["id"].as_str().unwrap();
    let path = format!("/v1/customers/{id}");
    let token = &app.a.token;

    expect_error(
        app.get(&path, token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.patch(&path, token, json!({"name": "Hijacked"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.delete(&path, token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.post(&format!("{path}/notes"), token, json!({"body": "x"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.get(&format!("{path}/timeline"), token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Lists and lookups never show it either.
    let (_, list) = json_of(app.get("/v1/customers", token).await).await;
    assert_eq!(list["data"], json!([]));
    let response = app
        .request(Method::GET, "/v1/customers", token)
        .query(&[("phone", "+12025550170")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await.1["data"], json!([]));
    let response = app
        .request(Method::GET, "/v1/customers", token)
        .query(&[("q", "bravo")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await.1["data"], json!([]));
    // And it is untouched.
    let (status, still) = json_of(app.get(&path, &app.b.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(still["name"], "Bravo's");
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM customer_notes")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(notes, 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_refuses_another_body() {
    let app = spawn_app().await;
    let send = |body: Value, key: &'static str| {
        app.request(Method::POST, "/v1/customers", &app.a.token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = send(json!({"name": "Once", "phone": "+12025550181"}), "key-1")
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let first: Value = first.json().await.unwrap();

    // Same body with keys reordered: a replay.
    let replay = send(json!({"phone": "+12025550181", "name": "Once"}), "key-1")
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);

    let conflict = send(json!({"name": "Different"}), "key-1").await.unwrap();
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
            let r = r.unwrap();
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
    let other = app
        .request(Method::POST, "/v1/customers", &app.b.token)
        .header("Idempotency-Key", "key-1")
        .json(&json!({"name": "Bravo once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 3);

    // A failed request does not burn its key.
    let bad = send(json!({"name": ""}), "key-3").await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let good = send(json!({"name": "Fixed"}), "key-3").await.unwrap();
    assert_eq!(good.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn customer_changes_are_published_as_events_on_the_tenant_channel() {
    let app = spawn_app().await;
    let client = redis::Client::open(app.settings.redis_url.expose_secret()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(events_channel(&app.settings, app.a.id))
        .await
        .unwrap();
    let mut messages = pubsub.into_on_message();

    let created = app
        .create_customer(&app.a.token, json!({"name": "Evented"}))
        .await;
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next())
        .await
        .expect("an event within 5 s")
        .unwrap();
    let envelope: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(envelope["type"], "customer.created");
    assert_eq!(envelope["tenant_id"], app.a.id.to_string());
    assert_eq!(envelope["data"]["id"], created["id"]);
    assert!(Uuid::parse_str(envelope["id"].as_str().unwrap()).is_ok());
    assert!(envelope["occurred_at"].as_str().unwrap().ends_with('Z'));
}

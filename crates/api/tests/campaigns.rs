//! Campaign creation and progress against a real server, PostgreSQL and
//! Redis. Expansion into messages is the worker's (`campaign.expand`); here
//! its messages are inserted as it would, to check the progress counts.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_testkit::{
    TestApp,
    api::{expect_field_error, expect_not_found},
    expect_error, json_of, spawn_app,
};
use uuid::Uuid;

async fn campaign_count(app: &TestApp) -> i64 {
    app.count_rows("campaigns").await
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    app.create("/v1/campaigns", token, body).await
}

/// A campaign of a "Sale!" template to `recipients`, created with `token`.
async fn sale(app: &TestApp, token: &str, recipients: Value) -> Value {
    let template = app.create_template(token, "promo", "Sale!").await;
    let body = json!({"name": "c", "template_id": template["id"], "recipients": recipients});
    create(app, token, body).await
}

/// Inserts the `i`th message of tenant A's `campaign`, in `status`, as the
/// expansion job would create it.
async fn campaign_message(app: &TestApp, campaign: Uuid, i: usize, status: &str) {
    sqlx::query(
        "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status, segments, encoding, campaign_id)
         VALUES ($1, $2, 'outbound', '+12025550100', $3, 'Sale!', $4, 1, 'GSM-7', $5)",
    )
    .bind(Uuid::now_v7())
    .bind(app.a.id)
    .bind(format!("+1202555{:04}", 2000 + i))
    .bind(status)
    .bind(campaign)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_campaign_is_created_pending_with_its_normalised_audience_and_queued_for_expansion() {
    let app = spawn_app().await;
    let template = app
        .create_template(&app.a.token, "promo", "Hi {{first_name}}, {{offer}}")
        .await;
    let ada = app
        .customer_with_phone(&app.a.token, "Ada", "+12025550123")
        .await;
    let campaign = create(
        &app,
        &app.a.token,
        json!({
            "name": " Spring sale ",
            "template_id": template["id"],
            "variables": {"offer": "20% off"},
            "recipients": {
                "customer_ids": [ada["id"], ada["id"]],
                "phone_numbers": ["(202) 555-0177", "+12025550177", "+1 202 555 0178"],
                "customer_query": "  vip "
            }
        }),
    )
    .await;
    assert_eq!(campaign["name"], "Spring sale");
    assert_eq!(campaign["status"], "pending");
    assert_eq!(campaign["template_id"], template["id"]);
    assert_eq!(campaign["tenant_id"], app.a.id.to_string());
    assert_eq!(campaign["created_by"], app.a.agent_id.to_string());
    assert_eq!(campaign["variables"], json!({"offer": "20% off"}));
    assert_eq!(
        campaign["audience"],
        json!({
            "customer_ids": [ada["id"]],
            "phone_numbers": ["+12025550177", "+12025550178"],
            "customer_query": "vip"
        })
    );
    assert_eq!(
        campaign["total_recipients"], 0,
        "resolved by the expansion job"
    );
    assert_eq!(
        campaign["progress"],
        json!({
            "queued": 0, "sending": 0, "sent": 0, "delivered": 0, "undelivered": 0,
            "failed": 0, "messages": 0, "opted_out": 0, "total_recipients": 0
        })
    );
    app.assert_stored_and_queued("/v1/campaigns", &app.a.token, &campaign, "campaign.expand")
        .await;
}

#[tokio::test]
async fn each_recipient_source_is_enough_on_its_own() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let ada = app.customer_named(&app.a.token, "Ada").await;
    for recipients in [
        json!({"customer_ids": [ada["id"]]}),
        json!({"phone_numbers": ["+12025550123"]}),
        json!({"customer_query": "ada"}),
    ] {
        let campaign = create(
            &app,
            &app.a.api_key,
            json!({"name": "c", "template_id": template["id"], "recipients": recipients}),
        )
        .await;
        assert_eq!(campaign["created_by"], Value::Null, "an API key is nobody");
    }
    assert_eq!(campaign_count(&app).await, 3);
}

#[tokio::test]
async fn invalid_campaigns_are_422s_naming_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let theirs = app.create_template(&app.b.token, "theirs", "Sale!").await;
    let t = template["id"].clone();
    let too_many: Vec<String> = (0..10_001)
        .map(|i| format!("+1202555{:04}", i % 10_000))
        .collect();
    let invalid = [
        (
            json!({"name": "c", "template_id": t, "recipients": {}}),
            "recipients",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"customer_ids": [], "phone_numbers": []}}),
            "recipients",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"customer_query": "  "}}),
            "recipients.customer_query",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"phone_numbers": ["+12025550123", "hello"]}}),
            "recipients.phone_numbers[1]",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"phone_numbers": ["+1 000 000 0000"]}}),
            "recipients.phone_numbers[0]",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"phone_numbers": too_many}}),
            "recipients",
        ),
        (
            json!({"name": "c", "template_id": theirs["id"], "recipients": {"phone_numbers": ["+12025550123"]}}),
            "template_id",
        ),
        (
            json!({"name": "c", "template_id": Uuid::now_v7(), "recipients": {"phone_numbers": ["+12025550123"]}}),
            "template_id",
        ),
        (
            json!({"name": " ", "template_id": t, "recipients": {"phone_numbers": ["+12025550123"]}}),
            "name",
        ),
    ];
    app.expect_refused("/v1/campaigns", &app.a.token, "validation_failed", invalid)
        .await;
    assert_eq!(campaign_count(&app).await, 0);
}

#[tokio::test]
async fn unknown_and_foreign_customer_ids_are_refused_by_name() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let ours = app.customer_named(&app.a.token, "Ours").await;
    let theirs = app.customer_named(&app.b.token, "Theirs").await;
    let unknown = Uuid::now_v7();
    let body = json!({
        "name": "c",
        "template_id": template["id"],
        "recipients": {"customer_ids": [ours["id"], theirs["id"], unknown]}
    });
    let response = app.post("/v1/campaigns", &app.a.token, body).await;
    let field = "recipients.customer_ids";
    let error = expect_field_error(response, "validation_failed", field, "customer_ids").await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(theirs["id"].as_str().unwrap()),
        "{message}"
    );
    assert!(message.contains(&unknown.to_string()), "{message}");
    assert!(!message.contains(ours["id"].as_str().unwrap()), "{message}");
    assert_eq!(campaign_count(&app).await, 0);
}

#[tokio::test]
async fn a_campaign_with_an_idempotency_key_is_created_once() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let post = |name: &str| {
        let body = json!({"name": name, "template_id": template["id"], "recipients": {"phone_numbers": ["+12025550123"]}});
        app.post_idempotent("/v1/campaigns", &app.a.token, "spring-2026", body)
    };
    let (status, first) = json_of(post("Spring").await).await;
    assert_eq!(status, StatusCode::CREATED);
    let replay = post("Spring").await;
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let (status, replay) = json_of(replay).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replay, first);
    let reused = post("Autumn").await;
    let reused_code = "idempotency_key_reused";
    expect_error(reused, StatusCode::UNPROCESSABLE_ENTITY, reused_code).await;
    assert_eq!(campaign_count(&app).await, 1);
}

#[tokio::test]
async fn progress_counts_the_campaigns_messages_by_status() {
    let app = spawn_app().await;
    let campaign = sale(&app, &app.a.token, json!({"customer_query": "x"})).await;
    let id: Uuid = campaign["id"].as_str().unwrap().parse().unwrap();
    // What the expansion job does: resolve recipients, record the totals,
    // create one message per recipient.
    sqlx::query("UPDATE campaigns SET status = 'running', total_recipients = 7, opted_out_count = 1 WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let statuses = [
        "queued",
        "queued",
        "sent",
        "delivered",
        "delivered",
        "failed",
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        campaign_message(&app, id, i, status).await;
    }
    let fetched = app
        .get_ok(&format!("/v1/campaigns/{id}"), &app.a.token)
        .await;
    assert_eq!(fetched["status"], "running");
    assert_eq!(
        fetched["progress"],
        json!({
            "queued": 2, "sending": 0, "sent": 1, "delivered": 2, "undelivered": 0,
            "failed": 1, "messages": 6, "opted_out": 1, "total_recipients": 7
        })
    );
}

#[tokio::test]
async fn another_tenants_campaigns_are_not_found() {
    let app = spawn_app().await;
    let recipients = json!({"phone_numbers": ["+12025550123"]});
    let theirs = sale(&app, &app.b.token, recipients).await;
    let path = format!("/v1/campaigns/{}", theirs["id"].as_str().unwrap());
    app.expect_hidden_from(&app.a, &path).await;
    app.get_ok(&path, &app.b.token).await;
}

#[tokio::test]
async fn malformed_campaign_requests_are_4xx_json() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    app.expect_malformed_json("/v1/campaigns", &app.a.token, &["{\"name\": \"c\","])
        .await;
    let t = template["id"].clone();
    let unreadable = [
        (json!({"name": "c", "template_id": t}), "recipients"),
        (
            json!({"name": "c", "recipients": {"phone_numbers": ["+12025550123"]}}),
            "template_id",
        ),
        (
            json!({"name": "c", "template_id": "nope", "recipients": {}}),
            "template_id",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"customer_ids": ["nope"]}}),
            "recipients.customer_ids[0]",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"phone_numbers": "+12025550123"}}),
            "recipients.phone_numbers",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"phone_numbers": [12025550123_i64]}}),
            "recipients.phone_numbers[0]",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"phone_numbers": ["+12025550123"]}, "variables": {"a": 1}}),
            "variables.a",
        ),
        (
            json!({"name": "c", "template_id": t, "recipients": {"segment": "vip"}}),
            "recipients.segment",
        ),
    ];
    app.expect_refused("/v1/campaigns", &app.a.token, "invalid_body", unreadable)
        .await;
    let response = app.get("/v1/campaigns/not-a-uuid", &app.a.token).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    let unknown = format!("/v1/campaigns/{}", Uuid::now_v7());
    expect_not_found(app.get(&unknown, &app.a.token).await).await;
    assert_eq!(campaign_count(&app).await, 0);
}

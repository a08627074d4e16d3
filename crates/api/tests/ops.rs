//! Health, readiness, metrics and the OpenAPI document.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_core::{
    calls::{CallStatus, RecordingStatus},
    scheduling::ScheduledCallStatus,
    sms::MessageStatus,
};
use switchboard_testkit::{json_of, openapi_json, operations, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_and_ready_answer_when_dependencies_are_up() {
    let app = spawn_app().await;
    let (status, body) = json_of(app.client.get(app.url("/health")).send().await.unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = json_of(app.client.get(app.url("/ready")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"], json!({"postgres": "ok", "redis": "ok"}));
}

#[tokio::test]
async fn ready_is_503_in_the_error_shape_when_redis_is_unreachable() {
    let app = spawn_app_with(|s| s.redis_url = "redis://127.0.0.1:1".to_string().into()).await;
    let (status, body) = json_of(app.client.get(app.url("/ready")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_ne!(body["checks"]["redis"], "ok");
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(body["error"]["message"].as_str().unwrap().contains("redis"));
    // Liveness does not depend on Redis.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_count_requests_by_method_matched_route_and_status() {
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7();
    app.get(&format!("/v1/customers/{id}"), &app.a.token).await;
    app.get("/no/such/route", &app.a.token).await;
    let text = app.metrics().await;
    let find = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains("method=\"GET\"")
            && l.contains("route=\"/v1/customers/{id}\"")
            && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(
        text.contains("route=\"unmatched\""),
        "unknown paths share one label"
    );
    assert!(!text.contains(&id.to_string()), "ids never become labels");
    assert!(find("http_request_duration_seconds_bucket"), "{text}");
    assert!(find("db_pool_connections{state=\"idle\"}"), "{text}");
    assert!(find("db_pool_connections{state=\"in_use\"}"), "{text}");
    assert!(
        find("db_batch_pool_connections{state=\"in_use\"}"),
        "{text}"
    );
    let batch_max: Option<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("db_batch_pool_max_connections "))
        .and_then(|v| v.parse().ok());
    assert_eq!(batch_max, Some(8.0), "the carrier lanes' pool: {text}");
    // The process collector the memory panel and alerts read.
    let resident: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap_or_else(|| panic!("no process_resident_memory_bytes in:\n{text}"))
        .parse()
        .unwrap();
    assert!(resident > 1e6, "{resident}");
    assert!(find("process_cpu_seconds_total "), "{text}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_with_schemas() {
    let app = spawn_app().await;
    let (status, doc) = json_of(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes: BTreeSet<String> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| format!("{} {path}", method.to_uppercase()))
        .collect();
    let expected: BTreeSet<String> = [
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "POST /v1/auth/login",
        "POST /v1/auth/logout",
        "GET /v1/me",
        "GET /v1/customers",
        "POST /v1/customers",
        "GET /v1/customers/{id}",
        "PATCH /v1/customers/{id}",
        "DELETE /v1/customers/{id}",
        "POST /v1/customers/{id}/notes",
        "GET /v1/customers/{id}/timeline",
        "POST /v1/messages",
        "GET /v1/messages",
        "GET /v1/messages/{id}",
        "GET /v1/templates",
        "POST /v1/templates",
        "GET /v1/templates/{id}",
        "PATCH /v1/templates/{id}",
        "DELETE /v1/templates/{id}",
        "POST /v1/campaigns",
        "GET /v1/campaigns/{id}",
        "POST /v1/imports",
        "GET /v1/imports/{id}",
        "GET /v1/imports/{id}/errors",
        "POST /webhooks/carrier/sms/status",
        "GET /v1/agents",
        "PUT /v1/agents/me/presence",
        "GET /v1/calls",
        "POST /v1/calls",
        "GET /v1/calls/{id}",
        "GET /v1/calls/{id}/events",
        "POST /v1/calls/{id}/{action}",
        "GET /v1/voicemails",
        "GET /v1/voicemails/{id}",
        "DELETE /v1/voicemails/{id}",
        "GET /v1/webhooks",
        "POST /v1/webhooks",
        "DELETE /v1/webhooks/{id}",
        "POST /v1/voicemails/{id}/listened",
        "GET /v1/reports/summary",
        "GET /v1/reports/calls",
        "GET /v1/reports/agents",
        "POST /webhooks/carrier/voice/status",
        "POST /webhooks/carrier/voice/incoming",
        "POST /webhooks/carrier/voice/recording",
        "POST /webhooks/carrier/sms/incoming",
        "POST /v1/scheduled-calls",
        "POST /v1/scheduled-calls/batch",
        "GET /v1/scheduled-calls",
        "GET /v1/scheduled-calls/{id}",
        "POST /v1/scheduled-calls/{id}/cancel",
        "GET /v1/scheduling/settings",
        "PUT /v1/scheduling/settings",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(routes, expected);

    // Every route answers: none of them is a 404 from the router.
    for route in &expected {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{action}", "hold");
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap();
            assert_ne!(
                body["error"]["code"], "route_not_found",
                "{route} is documented but not routed"
            );
        }
    }

    // Bodies and successful responses carry schemas.
    for (method, path, op) in operations(&doc) {
        if method == "post" || method == "patch" || method == "put" {
            // JSON for the API, form-encoded for carrier webhooks: any
            // documented media type must carry a schema.
            let documented = op["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| !c.is_empty() && c.values().all(|m| !m["schema"].is_null()));
            let takes_no_body = path == "/v1/auth/logout"
                || path.ends_with("/listened")
                || path.ends_with("/cancel");
            assert!(
                documented || takes_no_body,
                "{method} {path} has no request schema"
            );
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            !responses.is_empty(),
            "{method} {path} documents no responses"
        );
        for (code, response) in responses {
            if code.starts_with('2') && code != "204" {
                assert!(
                    response["content"]
                        .as_object()
                        .is_some_and(|c| c.values().all(|m| !m["schema"].is_null())),
                    "{method} {path} {code} has no schema"
                );
            }
        }
    }

    // The docs page is served too.
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "docs page renders Swagger UI"
    );
}

/// Validates the document with an independent OpenAPI 3 validator
/// (`openapi-spec-validator`, installed by `.ci/run`).
#[tokio::test]
async fn the_openapi_document_validates_as_openapi_3() {
    let doc = switchboard_api::openapi_document()
        .to_pretty_json()
        .unwrap();
    let path =
        std::env::temp_dir().join(format!("switchboard-openapi-{}.json", std::process::id()));
    std::fs::write(&path, doc).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect(
            "python3 runs (install openapi-spec-validator: pip install openapi-spec-validator)",
        );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openapi-spec-validator rejected the document (or is not installed: pip install openapi-spec-validator)\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
}

/// What a client reads of the API is described: every operation, every
/// parameter, every schema and every field of one (on the field, or on the
/// `oneOf` wrapper utoipa puts around an optional reference). A field added
/// without its `///` comment fails here.
#[test]
fn every_operation_parameter_schema_and_field_a_client_sees_is_described() {
    let doc = openapi_json();
    let described = |v: &Value| {
        v["description"]
            .as_str()
            .is_some_and(|d| !d.trim().is_empty())
            || v["oneOf"].as_array().is_some_and(|alternatives| {
                alternatives.iter().any(|a| {
                    a["description"]
                        .as_str()
                        .is_some_and(|d| !d.trim().is_empty())
                })
            })
    };
    let mut undescribed = Vec::new();
    for (method, path, op) in operations(&doc) {
        if !described(op) && op["summary"].as_str().is_none_or(str::is_empty) {
            undescribed.push(format!("{method} {path}"));
        }
        for parameter in op["parameters"].as_array().into_iter().flatten() {
            if !described(parameter) {
                undescribed.push(format!("{method} {path} parameter {}", parameter["name"]));
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if !described(schema) {
            undescribed.push(format!("schema {name}"));
        }
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            if !described(property) {
                undescribed.push(format!("{name}.{field}"));
            }
        }
    }
    assert_eq!(undescribed, Vec::<String>::new(), "described nowhere");
}

/// The documented length limits of free text are the ones validation
/// enforces: the schema attributes repeat numbers the validators own.
#[test]
fn documented_text_limits_are_the_validated_ones() {
    use switchboard_api::{
        customers::MAX_NOTE_CHARS, messages::MAX_BODY_CHARS, text::MAX_NAME_CHARS,
    };
    let doc = openapi_json();
    let limits = [
        ("CreateCustomer", "name", MAX_NAME_CHARS),
        ("UpdateCustomer", "name", MAX_NAME_CHARS),
        ("CreateTemplate", "name", MAX_NAME_CHARS),
        ("UpdateTemplate", "name", MAX_NAME_CHARS),
        ("CreateCampaign", "name", MAX_NAME_CHARS),
        ("CreateTemplate", "body", MAX_BODY_CHARS),
        ("UpdateTemplate", "body", MAX_BODY_CHARS),
        ("SendMessage", "body", MAX_BODY_CHARS),
        ("CreateNote", "body", MAX_NOTE_CHARS),
    ];
    for (schema, field, limit) in limits {
        let property = &doc["components"]["schemas"][schema]["properties"][field];
        assert_eq!(
            property["maxLength"].as_u64(),
            Some(limit as u64),
            "{schema}.{field}: {property}"
        );
        assert_eq!(property["minLength"].as_u64(), Some(1), "{schema}.{field}");
    }
}

/// A status or kind a client reads is documented as the closed set it is,
/// and that set is what the database holds: each enum in the document is
/// the column's CHECK list. So a client is never sent a value it was not
/// told of, and no documented value is one a row cannot have.
#[tokio::test]
async fn documented_statuses_are_the_ones_the_database_holds() {
    let app = spawn_app().await;
    let doc = openapi_json();
    let columns = [
        ("CallStatus", "calls", "status"),
        ("Direction", "calls", "direction"),
        ("Direction", "messages", "direction"),
        ("MessageStatus", "messages", "status"),
        ("Encoding", "messages", "encoding"),
        ("ScheduledCallStatus", "scheduled_calls", "status"),
        ("ImportStatus", "imports", "status"),
        ("ImportMode", "imports", "mode"),
        ("CampaignStatus", "campaigns", "status"),
        ("TranscriptionStatus", "voicemails", "transcription_status"),
        ("Route", "calls", "routed_to"),
        ("EventSource", "call_events", "source"),
        ("CallEventKind", "call_events", "kind"),
        ("Role", "agents", "role"),
        ("Role", "api_keys", "role"),
    ];
    for (schema, table, column) in columns {
        let documented: BTreeSet<String> = doc["components"]["schemas"][schema]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} is not an enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let held = check_list(&app.db.pool, table, column).await;
        assert_eq!(documented, held, "{schema} against {table}.{column}");
    }
    // Not in the document (a recording reaches clients only inside a
    // `call.updated` event), but the worker writes its names all the same.
    let names = RecordingStatus::ALL.map(|s| s.as_str().to_string());
    let held = check_list(&app.db.pool, "recordings", "status").await;
    assert_eq!(BTreeSet::from(names), held, "RecordingStatus");
}

/// The names `table.column`'s CHECK constraint allows.
async fn check_list(db: &sqlx::PgPool, table: &str, column: &str) -> BTreeSet<String> {
    let check: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
         WHERE c.contype = 'c' AND c.conrelid = $1::regclass AND a.attname = $2",
    )
    .bind(table)
    .bind(column)
    .fetch_one(db)
    .await
    .unwrap();
    quoted(&check)
}

/// The quoted words of a definition PostgreSQL prints, such as
/// `CHECK ((status = ANY (ARRAY['queued'::text, ...])))`.
fn quoted(definition: &str) -> BTreeSet<String> {
    definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The statuses the code selects records still under way by are the ones
/// the partial indexes for those statements cover (PostgreSQL uses a
/// partial index only for a statement whose condition implies the index's):
/// the sweeper and the report rollups select live calls, and the sweeper
/// unsettled outbound messages (`queued`, or `sending`/`sent` in simulated
/// mode) and waiting scheduled calls; the scheduled-call cap and gauges
/// count dialing and waiting scheduled calls.
#[tokio::test]
async fn partial_indexes_cover_the_statuses_the_code_selects_by() {
    let app = spawn_app().await;
    let names = |statuses: Vec<&str>| statuses.into_iter().map(String::from).collect();
    let cases: [(&str, BTreeSet<String>); 4] = [
        (
            "calls_live_idx",
            names(CallStatus::live().map(CallStatus::as_str).collect()),
        ),
        (
            "messages_unsettled_idx",
            names(
                MessageStatus::unsettled()
                    .map(MessageStatus::as_str)
                    .collect(),
            ),
        ),
        (
            "scheduled_calls_waiting_idx",
            names(
                ScheduledCallStatus::WAITING
                    .map(ScheduledCallStatus::as_str)
                    .to_vec(),
            ),
        ),
        (
            "scheduled_calls_dialing_idx",
            names(vec![ScheduledCallStatus::Dialing.as_str()]),
        ),
    ];
    for (index, statuses) in cases {
        let predicate: String = sqlx::query_scalar(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = $1::regclass",
        )
        .bind(index)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        assert_eq!(quoted(&predicate), statuses, "{index}: {predicate}");
    }
}

/// Every create that takes `Idempotency-Key` (calls, messages and campaigns
/// by the design, and the rest that create) says in its 422 that a key
/// reused with another request is refused, by its code; none documents a
/// 409 for a key (a duplicate in flight waits for the first and replays it).
#[test]
fn every_create_taking_an_idempotency_key_documents_its_refusal() {
    let doc = openapi_json();
    let mut keyed = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let takes_key = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
        if !takes_key {
            continue;
        }
        keyed.insert(format!("{} {path}", method.to_uppercase()));
        let unprocessable = op["responses"]["422"]["description"].as_str().unwrap();
        assert!(
            unprocessable.contains("`idempotency_key_reused`"),
            "{method} {path}: {unprocessable}"
        );
        let conflict = op["responses"]["409"]["description"].as_str();
        assert!(
            conflict.is_none_or(|c| !c.contains("Idempotency-Key")),
            "{method} {path}: {conflict:?}"
        );
        let malformed = op["responses"]["400"]["description"].as_str().unwrap();
        assert!(
            malformed.contains("not valid JSON"),
            "{method} {path}: {malformed}"
        );
    }
    let expected: BTreeSet<String> = [
        "POST /v1/calls",
        "POST /v1/campaigns",
        "POST /v1/customers",
        "POST /v1/messages",
        "POST /v1/scheduled-calls",
        "POST /v1/scheduled-calls/batch",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keyed, expected);
}

/// Large answers travel compressed when the client accepts it (gzip or
/// brotli) and decode to exactly the uncompressed answer; small ones and
/// clients that accept nothing get plain bodies.
#[tokio::test]
async fn large_answers_are_compressed_as_the_client_accepts() {
    use std::io::Read;

    let app = spawn_app().await;
    let get = |path: &'static str, encoding: Option<&'static str>| {
        let mut request = app.client.get(app.url(path)).bearer_auth(&app.a.token);
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let encoding = response
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_string());
            (encoding, response.bytes().await.unwrap().to_vec())
        }
    };

    let (encoding, plain) = get("/openapi.json", None).await;
    assert_eq!(encoding, None);
    assert!(plain.len() > 50_000, "the document is large");

    let (encoding, gzipped) = get("/openapi.json", Some("gzip")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(gzipped.len() < plain.len() / 4, "{} bytes", gzipped.len());
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain);

    let (encoding, brotli) = get("/openapi.json", Some("br;q=1.0, gzip;q=0.5")).await;
    assert_eq!(encoding.as_deref(), Some("br"));
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&brotli[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain);

    let (encoding, me) = get("/v1/me", Some("gzip, br")).await;
    assert_eq!(encoding, None, "a small answer goes as it is");
    serde_json::from_slice::<Value>(&me).unwrap();
}

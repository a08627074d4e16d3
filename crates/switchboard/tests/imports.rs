//! Bulk customer imports end to end: CSV files posted to the real API, the
//! real worker writing their rows into PostgreSQL, counts and per-row
//! errors read back over HTTP.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_core::jobs;
use switchboard_testkit::Stack;
use uuid::Uuid;

/// The binary under test, for the tests that run it as a child process.
const SWITCHBOARD: &str = env!("CARGO_BIN_EXE_switchboard");

const DONE: Duration = Duration::from_secs(60);

/// POSTs `csv` to `/v1/imports{query}` as `content_type`.
async fn upload(
    stack: &Stack,
    key: &str,
    query: &str,
    csv: impl Into<reqwest::Body>,
    content_type: &str,
) -> (StatusCode, Value) {
    let response = stack
        .client
        .post(stack.url(&format!("/v1/imports{query}")))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(csv)
        .send()
        .await
        .expect("POST /v1/imports");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Uploads `csv` and waits until the import has finished; returns it.
async fn import(stack: &Stack, query: &str, csv: String) -> Value {
    let (status, body) = upload(stack, &stack.api_key, query, csv, "text/csv").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    stack
        .wait_for(&format!("/v1/imports/{id}"), DONE, |i| {
            i["status"] == "completed" || i["status"] == "failed"
        })
        .await
}

fn counts(import: &Value) -> [i64; 5] {
    [
        "rows_total",
        "rows_created",
        "rows_updated",
        "rows_skipped",
        "rows_failed",
    ]
    .map(|k| import[k].as_i64().unwrap_or(-1))
}

async fn customer_by_phone(stack: &Stack, phone: &str) -> Value {
    let body = stack
        .get(&format!(
            "/v1/customers?phone={}",
            phone.replace('+', "%2B")
        ))
        .await;
    body["data"][0].clone()
}

/// Creates a customer from `body` through the API, asserting 201.
async fn create_customer(stack: &Stack, body: Value) {
    let (status, customer) = stack.post("/v1/customers", body).await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
}

/// `n` distinct valid US numbers.
fn phone(i: usize) -> String {
    format!("+1202{:03}{:04}", 200 + i / 10_000, i % 10_000)
}

#[tokio::test]
async fn an_import_of_valid_duplicate_and_invalid_rows_ends_with_exact_counts_and_row_errors() {
    let stack = Stack::start(|_| {}).await;
    let existing =
        json!({"name": "Existing", "phone": "+12025550199", "email": "keep@example.com"});
    create_customer(&stack, existing).await;

    // Line 1 is the header; the quoted plan on line 4 spans two lines, so
    // the rows after it start one line later.
    let csv = "Name,Phone,Email,Company,Tags,Plan\n\
        Ada Lovelace,(202) 555-0101,ADA@example.com,Analytical,VIP;beta,gold\n\
        Grace Hopper,+12025550102,,Navy,,\n\
        \"Babbage, Charles\",+12025550103,,,,\"two\nlines\"\n\
        Ada again,202-555-0101,,,,\n\
        No Number,,,,,\n\
        Bad Number,12345,,,,\n\
        Bad Email,+12025550104,not-an-email,,,\n\
        Too,+12025550105,,,\n\
        Nul\u{0}Name,+12025550106,,,,\n\
        Existing Again,+12025550199,,,,\n\
        ,+12025550107,,,,silver\n";
    let done = import(&stack, "", csv.to_string()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["mode"], "skip");
    // created: 0101, 0102, 0103, 0107; skipped: 0101 again, 0199 existing;
    // failed: no number, 12345, bad email, short row, NUL.
    assert_eq!(counts(&done), [11, 4, 0, 2, 5], "{done}");
    assert_eq!(done["rows_processed"], 11);
    assert!(done["finished_at"].is_string(), "{done}");

    let ada = customer_by_phone(&stack, "+12025550101").await;
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(ada["company"], "Analytical");
    assert_eq!(ada["tags"], json!(["vip", "beta"]));
    assert_eq!(ada["metadata"], json!({"Plan": "gold"}));
    let babbage = customer_by_phone(&stack, "+12025550103").await;
    assert_eq!(babbage["name"], "Babbage, Charles");
    assert_eq!(babbage["metadata"], json!({"Plan": "two\nlines"}));
    // No name: the number stands in for it.
    assert_eq!(
        customer_by_phone(&stack, "+12025550107").await["name"],
        "+12025550107"
    );
    let untouched = customer_by_phone(&stack, "+12025550199").await;
    assert_eq!(untouched["name"], "Existing");

    let id = done["id"].as_str().unwrap();
    let errors = stack.get(&format!("/v1/imports/{id}/errors")).await;
    let got: Vec<(i64, String)> = errors["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(!e["reason"].as_str().unwrap().is_empty(), "{e}");
            (
                e["row"].as_i64().unwrap(),
                e["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(i64, String)> = [
        (7, "phone"),
        (8, "phone"),
        (9, "email"),
        (10, "row"),
        (11, "name"),
    ]
    .map(|(r, f)| (r, f.to_string()))
    .to_vec();
    assert_eq!(got, expected, "{errors}");
    assert!(errors["next_cursor"].is_null());

    // Pagination walks the same rows, two at a time.
    let page = stack.get(&format!("/v1/imports/{id}/errors?limit=2")).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = stack
        .get(&format!("/v1/imports/{id}/errors?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(next["data"][0]["row"], 9, "{next}");

    // The last import.progress event carries the final counts.
    let events = progress_events(&stack).await;
    let last = events.last().expect("an import.progress event");
    assert_eq!(last["data"]["status"], "completed", "{last}");
    assert_eq!(last["data"]["rows_created"], 4);
    assert_eq!(last["data"]["import_id"], id);
}

/// Every `import.progress` envelope on the events stream, oldest first.
async fn progress_events(stack: &Stack) -> Vec<Value> {
    let redis = switchboard_core::redis::pool(&stack.settings).unwrap();
    let mut conn = redis.get().await.unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = deadpool_redis::redis::cmd("XRANGE")
        .arg(switchboard_core::events::events_stream(&stack.settings))
        .arg("-")
        .arg("+")
        .query_async(&mut *conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .flat_map(|(_, fields)| fields)
        .map(|(_, payload)| serde_json::from_str::<Value>(&payload).unwrap())
        .filter(|e| e["type"] == "import.progress")
        .collect()
}

#[tokio::test]
async fn update_mode_overwrites_matching_customers_and_skip_mode_leaves_them() {
    let stack = Stack::start(|_| {}).await;
    let old = json!({"name": "Old Name", "phone": "+12025550111", "email": "old@example.com",
                     "company": "Old Co", "tags": ["keep"], "metadata": {"source": "crm"}});
    create_customer(&stack, old).await;
    let csv = "name,phone,email,company,tags,tier\n\
        New Name,+12025550111,,New Co,,gold\n\
        Fresh,+12025550112,,,,\n";

    let skipped = import(&stack, "?mode=skip", csv.to_string()).await;
    assert_eq!(counts(&skipped), [2, 1, 0, 1, 0], "{skipped}");
    assert_eq!(
        customer_by_phone(&stack, "+12025550111").await["name"],
        "Old Name"
    );

    let updated = import(&stack, "?mode=update", csv.to_string()).await;
    assert_eq!(updated["mode"], "update");
    // Both numbers exist now: both rows update.
    assert_eq!(counts(&updated), [2, 0, 2, 0, 0], "{updated}");
    let customer = customer_by_phone(&stack, "+12025550111").await;
    assert_eq!(customer["name"], "New Name");
    assert_eq!(customer["company"], "New Co");
    // Empty cells keep what the customer had; metadata is merged.
    assert_eq!(customer["email"], "old@example.com");
    assert_eq!(customer["tags"], json!(["keep"]));
    assert_eq!(
        customer["metadata"],
        json!({"source": "crm", "tier": "gold"})
    );
    assert_eq!(stack.db.count_rows("customers").await, 2);

    let (status, body) = upload(
        &stack,
        &stack.api_key,
        "?mode=merge",
        csv.to_string(),
        "text/csv",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "mode", "{body}");
}

#[tokio::test]
async fn oversize_malformed_and_mistyped_files_are_refused_with_nothing_written() {
    let stack = Stack::start(|s| {
        s.import_max_bytes = 2_000;
        s.import_max_rows = 50;
    })
    .await;
    let key = stack.api_key.clone();
    let big = format!("name,phone\n{}", "Ada,+12025550123\n".repeat(200));
    let (status, body) = upload(&stack, &key, "", big, "text/csv").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let many = format!("phone\n{}", "1\n".repeat(51));
    let (status, body) = upload(&stack, &key, "", many, "text/csv").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_many_rows");

    for (csv, needle) in [
        (b"name,phone\n\xff\xfe,1\n".to_vec(), "UTF-8"),
        (b"".to_vec(), "header"),
        (b"name,email\nAda,a@example.com\n".to_vec(), "phone"),
        (b"name,phone\n\"Ada,+12025550123\n".to_vec(), "unbalanced"),
        (b"name,phone,Phone\n".to_vec(), "twice"),
        (b"name,phone\n".to_vec(), "no rows"),
        (b"na\x00me,phone\nAda,+12025550123\n".to_vec(), "control"),
    ] {
        let (status, body) = upload(&stack, &key, "", csv.clone(), "text/csv").await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}: {body}",
            String::from_utf8_lossy(&csv)
        );
        assert_eq!(body["error"]["code"], "malformed_csv", "{body}");
        assert_eq!(body["error"]["field"], "body", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    for content_type in ["application/json", "text/plain", "text/csv; charset=latin1"] {
        let (status, body) = upload(
            &stack,
            &key,
            "",
            "name,phone\nAda,+12025550123\n",
            content_type,
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }
    let (status, _) = upload(&stack, "sbk_nope", "", "phone\n1\n", "text/csv").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    for table in ["imports", "import_errors", "customers", "jobs"] {
        assert_eq!(stack.db.count_rows(table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn another_tenants_import_is_not_found_on_every_route() {
    let stack = Stack::start(|_| {}).await;
    let other = stack.other_tenant("globex").await;
    let done = import(&stack, "", "name,phone\nAda,nope\n".to_string()).await;
    let id = done["id"].as_str().unwrap();
    for path in [
        format!("/v1/imports/{id}"),
        format!("/v1/imports/{id}/errors"),
        format!("/v1/imports/{}", Uuid::now_v7()),
        format!("/v1/imports/{}/errors", Uuid::now_v7()),
    ] {
        let response = stack.request_as(Method::GET, &path, &other).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    let response = stack
        .request_as(Method::GET, "/v1/imports/not-a-uuid", &stack.api_key)
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The other tenant's own import of the same number creates its own customer.
    let (status, body) = upload(
        &stack,
        &other,
        "",
        "name,phone\nAda,+12025550123\n",
        "text/csv",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_ne!(body["tenant_id"], done["tenant_id"]);
}

#[tokio::test]
async fn a_100_000_row_import_completes_and_reports_its_rate() {
    let stack = Stack::start(|_| {}).await;
    let rows: i64 = 100_000;
    let mut csv = String::from("name,phone,email,company,tags,plan\n");
    for i in 0..rows as usize {
        csv.push_str(&format!(
            "Customer {i},{},c{i}@example.com,Company {},lead;import,basic\n",
            phone(i),
            i % 100
        ));
    }
    let bytes = csv.len();
    let started = Instant::now();
    let done = import(&stack, "", csv).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(counts(&done), [rows, rows, 0, 0, 0], "{done}");
    assert_eq!(stack.db.count_rows("customers").await, rows);
    println!(
        "imported {rows} rows ({:.1} MiB) in {elapsed:.2} s: {:.0} rows/s (upload to completed, debug build)",
        bytes as f64 / (1024.0 * 1024.0),
        rows as f64 / elapsed
    );
}

#[tokio::test]
async fn an_import_resumes_after_its_worker_is_killed_and_a_rerun_writes_nothing_twice() {
    let mut stack = Stack::api_only(|_| {}).await;
    let rows = 40_000;
    let mut csv = String::from("name,phone\n");
    for i in 0..rows {
        csv.push_str(&format!("Customer {i},{}\n", phone(i)));
        // Every hundredth row repeats the previous number.
        if i % 100 == 99 {
            csv.push_str(&format!("Repeat {i},{}\n", phone(i)));
        }
    }
    let total = rows + rows / 100;
    let (status, body) = upload(&stack, &stack.api_key, "", csv, "text/csv").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();

    let mut worker = stack.spawn_worker_process(SWITCHBOARD);
    stack
        .wait_until_sql(
            &format!("SELECT rows_processed > 0 FROM imports WHERE id = '{id}'"),
            DONE,
        )
        .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    let at_kill: i32 = sqlx::query_scalar("SELECT rows_processed FROM imports WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert!(
        (at_kill as i64) < total as i64,
        "the import finished before the worker was killed; nothing was tested"
    );

    stack.start_worker().await;
    let done = stack
        .wait_for(&format!("/v1/imports/{id}"), DONE, |i| {
            i["status"] == "completed"
        })
        .await;
    let expected = [total as i64, rows as i64, 0, (rows / 100) as i64, 0];
    assert_eq!(counts(&done), expected, "{done}");
    assert_eq!(stack.db.count_rows("customers").await, rows as i64);

    // Running the finished job again changes nothing.
    let tenant_id: Uuid = done["tenant_id"].as_str().unwrap().parse().unwrap();
    jobs::enqueue(
        &stack.db.pool,
        &jobs::ImportProcess {
            tenant_id,
            import_id: id.parse().unwrap(),
        },
    )
    .await
    .unwrap();
    stack
        .wait_until_sql("SELECT count(*) = 0 FROM jobs", DONE)
        .await;
    let again = stack.get(&format!("/v1/imports/{id}")).await;
    assert_eq!(counts(&again), expected, "{again}");
    assert_eq!(stack.db.count_rows("customers").await, rows as i64);
}

#[tokio::test]
async fn an_import_whose_attempts_run_out_is_failed_and_resumes_when_redriven() {
    let stack = Stack::start(|s| s.job_max_attempts = 2).await;
    // The database refuses to move any import's resume point (the fault a
    // full disk or a broken replica would cause) until the operator fixes it.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_import_progress() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN RAISE EXCEPTION 'injected: no space left on device'; END $$;
         CREATE TRIGGER refuse_import_progress BEFORE UPDATE OF rows_processed ON imports
           FOR EACH ROW EXECUTE FUNCTION refuse_import_progress();",
    )
    .execute(&stack.db.pool)
    .await
    .unwrap();
    let csv = "name,phone\nAda,+12025550101\nGrace,+12025550102\nAda again,+12025550101\n";
    let failed = import(&stack, "", csv.to_string()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["finished_at"].is_string(), "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("dead-letter") && !error.contains("injected"),
        "a reason for the user, not the database's text: {failed}"
    );
    assert_eq!(
        stack.db.count_rows("customers").await,
        0,
        "nothing half-written"
    );
    let dead = switchboard_worker::deadletter::list(&stack.db.pool, None)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].queue.as_str(), dead[0].attempts),
        ("import.process", 2)
    );

    // Fixed: the operator re-drives the job and the import completes.
    sqlx::raw_sql("DROP TRIGGER refuse_import_progress ON imports")
        .execute(&stack.db.pool)
        .await
        .unwrap();
    let out = stack.cli(
        SWITCHBOARD,
        &["jobs", "dead-letter", "retry", "--queue", "import.process"],
    );
    assert!(out.contains("re-queued 1 dead job"), "{out}");
    let id = failed["id"].as_str().unwrap();
    let done = stack
        .wait_for(&format!("/v1/imports/{id}"), DONE, |i| {
            i["status"] == "completed"
        })
        .await;
    assert_eq!(counts(&done), [3, 2, 0, 1, 0], "{done}");
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(stack.db.count_rows("customers").await, 2);
}

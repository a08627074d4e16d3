//! `import.process`: validates and writes the rows of a bulk customer import.
//!
//! The job parses the stored file, validates every row
//! (`switchboard_core::imports`), and writes the valid ones in batches of
//! [`BATCH`] rows, one multi-row upsert each (`INSERT … SELECT FROM unnest(…)
//! ON CONFLICT (tenant_id, phone)`: do nothing with `mode=skip`, overwrite
//! with `mode=update`). A phone repeated earlier in the file is skipped.
//!
//! Each batch is one transaction: its customers, its per-row errors, its
//! counts and the resume point `rows_processed` commit together. Why not
//! one transaction for the whole file: a 100 000-row import would hold its
//! locks and a growing transaction for its whole run, show no progress, and
//! a worker killed at 99 % would start again from nothing. With batch
//! commits a re-run (a retry, or another worker after the lease of a killed
//! one) rebuilds the duplicate check from the rows before `rows_processed`
//! without writing them, and carries on at the first batch that did not
//! commit: nothing is written or counted twice. The batch transaction locks
//! the import row and checks `rows_processed` is where this run left it, so
//! two runs of one job (a lease that ran out under a live worker) cannot
//! both write a batch.

use std::{collections::HashSet, sync::Arc, time::Duration};

use switchboard_core::{
    events::EventType,
    ids::new_id,
    imports::{self, Header, Mode, Row, Status},
    jobs::ImportProcess,
};

use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    runner::Handler,
};

/// Rows per batch transaction. Measured on the 100 000-row test: 1 000-row
/// upserts write as fast as larger ones and keep each commit short.
pub const BATCH: usize = 1_000;

/// Least time between two `import.progress` events of one import (the last
/// one, at completion, is always sent).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Separates tags in the text handed to SQL: a control character, which
/// validation keeps out of every tag.
const TAG_SEPARATOR: char = '\u{1f}';

impl Handler for ImportProcess {
    /// An import of 100 000 rows may take longer than an ordinary job's
    /// timeout on a loaded machine; its batches commit as it goes, so even
    /// a timeout loses nothing, but it should not need one to finish.
    fn timeout(ctx: &Ctx) -> Duration {
        ctx.settings.job_timeout.max(Duration::from_secs(600))
    }

    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let import: Option<(Status, Mode, Vec<u8>, i32)> = sqlx::query_as(
            "SELECT status, mode, source, rows_processed FROM imports WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant_id)
        .bind(self.import_id)
        .fetch_optional(&ctx.db)
        .await?;
        let Some((status, mode, source, processed)) = import else {
            return Ok(());
        };
        if status == Status::Completed {
            return Ok(());
        }
        if status != Status::Running {
            // Queued, or failed and re-driven from the dead-letter list: a
            // re-driven import carries on from its last committed batch (a
            // file that cannot be parsed fails again below).
            sqlx::query(
                "UPDATE imports SET status = $2, error = NULL, finished_at = NULL,
                        started_at = COALESCE(started_at, now())
                 WHERE id = $1 AND status IN ($3, $4)",
            )
            .bind(self.import_id)
            .bind(Status::Running)
            .bind(Status::Queued)
            .bind(Status::Failed)
            .execute(&ctx.db)
            .await?;
        }

        // The API parsed the file before storing it: failing here means the
        // file or this code changed, and retrying cannot help.
        let parsed = String::from_utf8(source)
            .map_err(|_| "the stored file is not UTF-8".to_string())
            .and_then(|text| imports::parse(&text).map_err(|e| e.to_string()))
            .and_then(|records| {
                Header::new(&records[0])
                    .map(|header| (records, header))
                    .map_err(|e| e.to_string())
            });
        let (records, header) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => {
                fail(ctx, self, &reason).await?;
                return Ok(());
            }
        };
        let data = &records[1..];
        let region = ctx.settings.default_region.as_str();
        let processed = (processed.max(0) as usize).min(data.len());

        // Rows committed by an earlier run only rebuild the duplicate check.
        let mut seen: HashSet<String> = HashSet::with_capacity(data.len());
        for record in &data[..processed] {
            if let Ok(row) = header.row(record, region) {
                seen.insert(row.phone);
            }
        }
        let mut last_event: Option<std::time::Instant> = None;
        let mut done = processed;
        for chunk in data[processed..].chunks(BATCH) {
            let mut batch = Batch::default();
            for record in chunk {
                match header.row(record, region) {
                    Err(error) => {
                        batch
                            .errors
                            .push((record.line as i32, error.field, error.reason))
                    }
                    Ok(row) if seen.insert(row.phone.clone()) => batch.rows.push(row),
                    Ok(_) => batch.duplicates += 1,
                }
            }
            write_batch(ctx, self, mode, done, done + chunk.len(), batch).await?;
            done += chunk.len();
            if last_event.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) {
                publish_progress(ctx, self).await?;
                last_event = Some(std::time::Instant::now());
            }
        }

        let finished: Option<(f64, i32)> = sqlx::query_as(
            "UPDATE imports SET status = $2, finished_at = now()
             WHERE id = $1 AND status = $3 AND rows_processed = rows_total
             RETURNING extract(epoch FROM now() - created_at)::float8, rows_total",
        )
        .bind(self.import_id)
        .bind(Status::Completed)
        .bind(Status::Running)
        .fetch_optional(&ctx.db)
        .await?;
        if let Some((seconds, rows)) = finished {
            metrics::histogram!("import_duration_seconds").record(seconds);
            metrics::counter!("imports_finished_total", "status" => "completed").increment(1);
            tracing::info!(tenant_id = %self.tenant_id, import_id = %self.import_id, rows, seconds, "import completed");
        }
        publish_progress(ctx, self).await?;
        Ok(())
    }

    /// Its attempts ran out (the database kept failing, or the job kept
    /// timing out): the import is failed with what it committed so far, and
    /// `switchboard jobs dead-letter retry` resumes it from there.
    async fn on_dead_letter(&self, ctx: &Arc<Ctx>) -> JobResult {
        fail(
            ctx,
            self,
            "processing stopped after repeated failures; the rows counted so far are written, \
             and an operator can resume the import from the dead-letter list",
        )
        .await
    }
}

#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    /// `(row number, field, reason)`.
    errors: Vec<(i32, String, String)>,
    /// Phones seen earlier in the file.
    duplicates: i32,
}

/// Writes one batch (records `from..to` of the file) and moves the resume
/// point, in one transaction.
async fn write_batch(
    ctx: &Ctx,
    job: &ImportProcess,
    mode: Mode,
    from: usize,
    to: usize,
    mut batch: Batch,
) -> JobResult {
    let mut tx = ctx.db.begin().await?;
    let at: i32 = sqlx::query_scalar("SELECT rows_processed FROM imports WHERE id = $1 FOR UPDATE")
        .bind(job.import_id)
        .fetch_one(&mut *tx)
        .await?;
    if at as usize != from {
        // Another run of this job got here first; this one starts again
        // from the committed point later.
        return Err(JobError::transient(anyhow::anyhow!(
            "import {} moved to row {at} under this run (at {from})",
            job.import_id
        )));
    }
    // The same phone order in every batch keeps concurrent imports of one
    // tenant from locking each other's customers in opposite orders.
    batch.rows.sort_by(|a, b| a.phone.cmp(&b.phone));
    let n = batch.rows.len();
    let (mut ids, mut names, mut emails, mut phones, mut companies, mut tags, mut metadata) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for row in batch.rows {
        ids.push(new_id());
        names.push(row.name);
        emails.push(row.email);
        phones.push(row.phone);
        companies.push(row.company);
        tags.push(row.tags.join(&TAG_SEPARATOR.to_string()));
        metadata.push(serde_json::Value::Object(row.metadata));
    }
    let on_conflict = match mode {
        Mode::Skip => "DO NOTHING",
        // Empty cells keep what the customer has; a row without a name (its
        // name fell back to the phone) keeps the customer's name.
        Mode::Update => {
            "DO UPDATE SET
                name = CASE WHEN EXCLUDED.name = EXCLUDED.phone THEN customers.name ELSE EXCLUDED.name END,
                email = COALESCE(EXCLUDED.email, customers.email),
                company = COALESCE(EXCLUDED.company, customers.company),
                tags = CASE WHEN cardinality(EXCLUDED.tags) > 0 THEN EXCLUDED.tags ELSE customers.tags END,
                metadata = customers.metadata || EXCLUDED.metadata,
                updated_at = now()"
        }
    };
    let written: Vec<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO customers (id, tenant_id, name, email, phone, company, tags, metadata)
         SELECT r.id, $1, r.name, r.email, r.phone, r.company,
                CASE WHEN r.tags = '' THEN '{{}}'::text[] ELSE string_to_array(r.tags, chr(31)) END,
                r.metadata
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])
              AS r(id, name, email, phone, company, tags, metadata)
         ON CONFLICT (tenant_id, phone) WHERE phone IS NOT NULL {on_conflict}
         RETURNING xmax = 0"
    )))
    .bind(job.tenant_id)
    .bind(&ids)
    .bind(&names)
    .bind(&emails)
    .bind(&phones)
    .bind(&companies)
    .bind(&tags)
    .bind(&metadata)
    .fetch_all(&mut *tx)
    .await?;
    let created = written.iter().filter(|inserted| **inserted).count() as i32;
    let updated = written.len() as i32 - created;
    let skipped = batch.duplicates + (n - written.len()) as i32;
    let failed = batch.errors.len() as i32;
    let (rows, (fields, reasons)): (Vec<i32>, (Vec<String>, Vec<String>)) = batch
        .errors
        .into_iter()
        .map(|(row, field, reason)| (row, (field, reason)))
        .unzip();
    sqlx::query(
        "INSERT INTO import_errors (import_id, row_number, field, reason)
         SELECT $1, r.row_number, r.field, r.reason
         FROM unnest($2::int4[], $3::text[], $4::text[]) AS r(row_number, field, reason)
         ON CONFLICT DO NOTHING",
    )
    .bind(job.import_id)
    .bind(&rows)
    .bind(&fields)
    .bind(&reasons)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE imports SET rows_processed = $2,
                rows_created = rows_created + $3, rows_updated = rows_updated + $4,
                rows_skipped = rows_skipped + $5, rows_failed = rows_failed + $6
         WHERE id = $1",
    )
    .bind(job.import_id)
    .bind(to as i32)
    .bind(created)
    .bind(updated)
    .bind(skipped)
    .bind(failed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for (outcome, count) in [
        ("created", created),
        ("updated", updated),
        ("skipped", skipped),
        ("failed", failed),
    ] {
        metrics::counter!("import_rows_total", "outcome" => outcome).increment(count as u64);
    }
    Ok(())
}

/// Marks the import failed for a reason the user can read.
async fn fail(ctx: &Ctx, job: &ImportProcess, reason: &str) -> JobResult {
    tracing::error!(tenant_id = %job.tenant_id, import_id = %job.import_id, reason, "import failed");
    sqlx::query(
        "UPDATE imports SET status = $3, error = $2, finished_at = now()
         WHERE id = $1 AND status IN ($4, $5)",
    )
    .bind(job.import_id)
    .bind(reason)
    .bind(Status::Failed)
    .bind(Status::Queued)
    .bind(Status::Running)
    .execute(&ctx.db)
    .await?;
    metrics::counter!("imports_finished_total", "status" => "failed").increment(1);
    publish_progress(ctx, job).await
}

/// Publishes `import.progress` with the import's committed counts.
async fn publish_progress(ctx: &Ctx, job: &ImportProcess) -> JobResult {
    let data: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('import_id', id, 'status', status, 'mode', mode,
                'rows_total', rows_total, 'rows_processed', rows_processed,
                'rows_created', rows_created, 'rows_updated', rows_updated,
                'rows_skipped', rows_skipped, 'rows_failed', rows_failed)
         FROM imports WHERE id = $1",
    )
    .bind(job.import_id)
    .fetch_optional(&ctx.db)
    .await?;
    if let Some(data) = data {
        ctx.events
            .publish_new(job.tenant_id, EventType::ImportProgress, data)
            .await;
    }
    Ok(())
}

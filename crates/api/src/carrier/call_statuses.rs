//! Call status callbacks in groups, the carrier storm's hot path: finding a
//! call by its CallSid and applying a status run once per batch of
//! concurrent callbacks (see `switchboard_core::group_commit`) instead of a
//! transaction each (lock, update + history, commit).
//!
//! A callback reads its call without a lock and decides from that status;
//! applying ([`lifecycle::apply_changes`], the same statement the agents'
//! controls use) is conditional per row, so a callback whose call moved on
//! meanwhile, including one that lost to another callback for the same call
//! in the same batch, gets no row back and is decided again by its handler.

use std::sync::LazyLock;

use sqlx::PgPool;
use switchboard_core::group_commit::{Numbered, by_ordinality};
use switchboard_core::records::CALL_COLUMNS;

use crate::calls::Call;
use crate::calls::lifecycle::{self, Change};

/// A call as a callback finds it, with its tenant's carrier auth token (to
/// verify the callback's signature).
#[derive(Debug, sqlx::FromRow)]
pub struct CallTarget {
    /// The call.
    #[sqlx(flatten)]
    pub call: Call,
    /// Its tenant's carrier auth token.
    pub carrier_auth_token: String,
}

/// Call status callbacks, looked up and applied in groups.
pub(crate) type CallStatuses = super::Reports<CallTarget, Change, Call>;

/// Starts the lanes (inside a Tokio runtime).
pub(crate) fn start(db: &PgPool) -> CallStatuses {
    super::Reports::start(
        db,
        ["call_status_lookup", "call_status_apply"],
        lookup,
        apply,
    )
}

static LOOKUP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT v.ord, c.*
         FROM unnest($1::text[]) WITH ORDINALITY AS v(sid, ord)
         CROSS JOIN LATERAL (
             SELECT {CALL_COLUMNS},
                    (SELECT carrier_auth_token FROM tenants t WHERE t.id = calls.tenant_id)
                        AS carrier_auth_token
             FROM calls WHERE carrier_sid = v.sid) c"
    )
});

async fn lookup(db: PgPool, sids: Vec<String>) -> anyhow::Result<Vec<Option<CallTarget>>> {
    let found: Vec<Numbered<CallTarget>> = sqlx::query_as(sqlx::AssertSqlSafe(LOOKUP_SQL.as_str()))
        .bind(&sids)
        .fetch_all(&db)
        .await?;
    by_ordinality(sids.len(), found.into_iter().map(|f| (f.ord, f.row)))
}

/// A batch in one transaction: [`lifecycle::apply_changes`], then commit.
async fn apply(db: PgPool, batch: Vec<Change>) -> anyhow::Result<Vec<Option<Call>>> {
    let mut tx = db.begin().await?;
    let applied = lifecycle::apply_changes(&mut tx, &batch).await?;
    tx.commit().await?;
    by_ordinality(batch.len(), applied.into_iter().map(|a| (a.ord, a.call)))
}

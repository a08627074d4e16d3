//! The job handlers, one module per queue family.

pub mod campaign;
pub mod import;
pub mod media;
pub mod scheduled;
pub mod sms;
pub mod webhook;

use uuid::Uuid;

/// Reads the record a job acts on with `select` (`$1` the tenant, `$2` the
/// record, ending `FOR UPDATE`) in `tx`: locked until the transaction ends,
/// so runs of jobs for one record take turns. `None` when it is gone.
async fn lock_record<T>(
    tx: &mut sqlx::PgConnection,
    select: &'static str,
    tenant_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(select)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(tx)
        .await
}

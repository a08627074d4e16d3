//! One of a tenant's records, by id: the `WHERE tenant_id = $1 AND id = $2`
//! read and delete every resource has, answering 404 (naming the resource)
//! when the tenant has no such record — another tenant's id included.

use std::fmt::Display;

use sqlx::{PgPool, postgres::PgRow};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// `SELECT {columns} FROM {table}` for the tenant's record `id`, or a 404
/// for `what`.
pub(crate) async fn fetch<T>(
    db: &PgPool,
    columns: impl Display,
    table: &'static str,
    tenant_id: Uuid,
    id: Uuid,
    what: &'static str,
) -> ApiResult<T>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM {table} WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found(what))
}

/// Deletes the tenant's record `id` from `table`, or answers a 404 for
/// `what`. Constraint violations map as everywhere (see `error`).
pub(crate) async fn delete(
    db: &PgPool,
    table: &'static str,
    tenant_id: Uuid,
    id: Uuid,
    what: &'static str,
) -> ApiResult<()> {
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .execute(db)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found(what));
    }
    Ok(())
}

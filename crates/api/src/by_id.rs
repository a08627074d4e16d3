//! One of a tenant's records, by id: the `WHERE tenant_id = $1 AND id = $2`
//! read and delete every resource has, answering 404 (naming the resource)
//! when the tenant has no such record — another tenant's id included.

use std::fmt::Display;
use std::marker::PhantomData;

use sqlx::PgPool;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// A table of tenant-owned `T` records: declared once beside `T`, so every
/// read and delete by id names the same table, columns and noun.
pub(crate) struct Table<T> {
    /// The table.
    name: &'static str,
    /// The columns `T` is read with.
    columns: &'static (dyn Display + Sync),
    /// What a 404 calls one record (`"no such {what}"`).
    what: &'static str,
    record: PhantomData<fn() -> T>,
}

impl<T> Table<T> {
    pub(crate) const fn new(
        name: &'static str,
        columns: &'static (dyn Display + Sync),
        what: &'static str,
    ) -> Self {
        Self {
            name,
            columns,
            what,
            record: PhantomData,
        }
    }
}

/// The tenant's record `id` of `table`, or a 404.
pub(crate) async fn fetch<T>(
    db: &PgPool,
    table: &Table<T>,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<T>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM {} WHERE tenant_id = $1 AND id = $2",
        table.columns, table.name
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found(table.what))
}

/// Answers a 404 unless the tenant has the record `id` of `table`, reading
/// nothing of it (for a handler that lists what hangs off the record).
pub(crate) async fn exists<T>(
    db: &PgPool,
    table: &Table<T>,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {} WHERE tenant_id = $1 AND id = $2",
        table.name
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(db)
    .await?
    .map(|_| ())
    .ok_or_else(|| ApiError::not_found(table.what))
}

/// Deletes the tenant's record `id` of `table`, or answers a 404.
/// Constraint violations map as everywhere (see `error`).
pub(crate) async fn delete<T>(
    db: &PgPool,
    table: &Table<T>,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<()> {
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {} WHERE tenant_id = $1 AND id = $2",
        table.name
    )))
    .bind(tenant_id)
    .bind(id)
    .execute(db)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found(table.what));
    }
    Ok(())
}

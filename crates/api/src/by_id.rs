//! One of a tenant's records, by id: the request naming it
//! ([`RecordRequest`]), and the `WHERE tenant_id = $1 AND id = $2` read and
//! delete every resource has, answering 404 (naming the resource) when the
//! tenant has no such record — another tenant's id included.

use std::fmt::Display;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sqlx::postgres::PgRow;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::state::AppState;

/// A tenant's request about one of its records, on a route with an `{id}`:
/// the caller (a [`TenantRequest`], so a bad credential is a 401 before
/// anything else), then the record's id, a 400 naming `id` unless it is a
/// UUID.
///
/// An operation taking it lists it with `params(RecordRequest)`, so every
/// one documents its `id` alike; [`RecordRequest::fetch`], `exists` and
/// `delete` are the by-id statements, run for the caller's tenant.
pub struct RecordRequest(pub TenantRequest, pub Uuid);

impl FromRequestParts<AppState> for RecordRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let tenant = TenantRequest::from_request_parts(parts, state).await?;
        let Path(id) = Path::<Uuid>::from_request_parts(parts, state).await?;
        Ok(Self(tenant, id))
    }
}

impl utoipa::IntoParams for RecordRequest {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .description(Some("The record's id (a UUID)"))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                ))
                .build(),
        ]
    }
}

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

    /// `{head} FROM` the table, for the tenant's record: the tenant is `$1`,
    /// the id `$2`.
    fn keyed(&self, head: impl Display) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(format!(
            "{head} FROM {} WHERE tenant_id = $1 AND id = $2",
            self.name
        ))
    }
}

impl RecordRequest {
    /// The record, read from `table`, or a 404.
    pub(crate) async fn fetch<T>(&self, table: &Table<T>) -> ApiResult<T>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        let sql = table.keyed(format_args!("SELECT {}", table.columns));
        sqlx::query_as(sql)
            .bind(self.0.principal.tenant_id)
            .bind(self.1)
            .fetch_optional(&self.0.state.db)
            .await?
            .ok_or_else(|| ApiError::not_found(table.what))
    }

    /// A 404 unless `table` has the record, reading nothing of it (for a
    /// handler that lists what hangs off the record).
    pub(crate) async fn exists<T>(&self, table: &Table<T>) -> ApiResult<()> {
        sqlx::query(table.keyed("SELECT 1"))
            .bind(self.0.principal.tenant_id)
            .bind(self.1)
            .fetch_optional(&self.0.state.db)
            .await?
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found(table.what))
    }

    /// Deletes the record from `table`, or answers a 404. Constraint
    /// violations map as everywhere (see `error`).
    pub(crate) async fn delete<T>(&self, table: &Table<T>) -> ApiResult<()> {
        let deleted = sqlx::query(table.keyed("DELETE"))
            .bind(self.0.principal.tenant_id)
            .bind(self.1)
            .execute(&self.0.state.db)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(ApiError::not_found(table.what));
        }
        Ok(())
    }
}

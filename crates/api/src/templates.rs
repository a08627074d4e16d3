//! SMS templates: named bodies with `{{placeholder}}`s, filled from the
//! recipient customer and explicit variables when a message or campaign
//! uses them (see `switchboard_core::templates`).
//!
//! A template's placeholders are checked when it is saved, so a malformed
//! one never reaches a send. Names are unique per tenant (409 `name_taken`),
//! and a template a campaign uses cannot be deleted (409 `template_in_use`);
//! both are enforced by PostgreSQL constraints.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::ids::new_id;
use switchboard_core::templates::placeholders;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::by_id::{RecordRequest, Table};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::messages::MAX_BODY_CHARS;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use crate::text::validate_name;

/// The routes of templates, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
}

/// A message template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Template {
    /// The template's id.
    pub id: Uuid,
    /// The tenant the template belongs to.
    pub tenant_id: Uuid,
    /// The template's name, unique in the tenant.
    #[schema(example = "Appointment reminder")]
    pub name: String,
    /// The text, with `{{placeholders}}`.
    #[schema(example = "Hi {{first_name}}, see you on {{date}}.")]
    pub body: String,
    /// The placeholder names the body uses, sorted.
    #[sqlx(skip)]
    #[schema(example = json!(["date", "first_name"]))]
    pub placeholders: Vec<String>,
    /// When the template was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Template {
    fn with_placeholders(mut self) -> Self {
        // Stored bodies were validated on write; an unparseable one (only
        // possible by editing the database) lists no placeholders.
        self.placeholders = placeholders(&self.body)
            .map(|names| names.into_iter().collect())
            .unwrap_or_default();
        self
    }
}

const TEMPLATE_COLUMNS: &str = "id, tenant_id, name, body, created_at, updated_at";

/// Where templates are kept.
static TEMPLATES: Table<Template> = Table::new("templates", &TEMPLATE_COLUMNS, "template");

/// A template to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// 1 to 200 characters, unique in the tenant.
    #[schema(
        example = "Appointment reminder",
        min_length = 1,
        max_length = 200,
        pattern = "\\S"
    )]
    pub name: String,
    /// 1 to 1600 characters; placeholders are `{{name}}` (letters, digits, `_`).
    #[schema(
        example = "Hi {{first_name}}, see you on {{date}}.",
        min_length = 1,
        max_length = 1600,
        pattern = "\\S"
    )]
    pub body: String,
}

/// A partial update: absent fields are unchanged.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplate {
    /// 1 to 200 characters, unique in the tenant.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// 1 to 1600 characters; placeholders are `{{name}}`.
    #[schema(min_length = 1, max_length = 1600, pattern = "\\S")]
    pub body: Option<String>,
}

fn validate_body(body: &str) -> ApiResult<String> {
    if body.trim().is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::validation(
            "body",
            format!("body must be 1 to {MAX_BODY_CHARS} characters"),
        ));
    }
    placeholders(body).map_err(|e| {
        ApiError::validation("body", format!("body has a malformed placeholder: {e}"))
    })?;
    Ok(body.to_string())
}

/// Lists templates, newest first.
#[utoipa::path(get, path = "/v1/templates", tag = "templates", security(("bearer" = [])),
    params(PageRequest),
    responses(
        (status = 200, body = Page<Template>),
    ))]
pub async fn list_templates(
    TenantRequest { state, principal }: TenantRequest,
    request: PageRequest,
) -> ApiResult<Json<Page<Template>>> {
    let rows: Vec<Template> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(principal.tenant_id)
    .bind(request.after)
    .bind(request.fetch())
    .fetch_all(&state.db)
    .await?;
    let rows = rows.into_iter().map(Template::with_placeholders).collect();
    Ok(Json(request.page(rows, |t| t.id)))
}

/// Creates a template.
#[utoipa::path(post, path = "/v1/templates", tag = "templates", security(("bearer" = [])),
    responses(
        (status = 201, body = Template),
        (status = 409, body = ErrorBody, description = "A template with this name exists (`name_taken`)"),
        (status = 422, body = ErrorBody, description = "Invalid name, or a body too long or with a malformed placeholder"),
    ))]
pub async fn create_template(
    TenantRequest { state, principal }: TenantRequest,
    Json(req): Json<CreateTemplate>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    let name = validate_name(&req.name)?;
    let body = validate_body(&req.body)?;
    let template: Template = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO templates (id, tenant_id, name, body) VALUES ($1, $2, $3, $4)
         RETURNING {TEMPLATE_COLUMNS}"
    )))
    .bind(new_id())
    .bind(principal.tenant_id)
    .bind(name)
    .bind(body)
    .fetch_one(&state.db)
    .await?;
    Ok((StatusCode::CREATED, Json(template.with_placeholders())))
}

/// Gets one template.
#[utoipa::path(get, path = "/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = Template),
    ))]
pub async fn get_template(request: RecordRequest) -> ApiResult<Json<Template>> {
    let template: Template = request.fetch(&TEMPLATES).await?;
    Ok(Json(template.with_placeholders()))
}

/// Renames a template or changes its body.
#[utoipa::path(patch, path = "/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = Template),
        (status = 409, body = ErrorBody, description = "A template with this name exists (`name_taken`)"),
    ))]
pub async fn update_template(
    RecordRequest(TenantRequest { state, principal }, id): RecordRequest,
    Json(patch): Json<UpdateTemplate>,
) -> ApiResult<Json<Template>> {
    let name = patch.name.as_deref().map(validate_name).transpose()?;
    let body = patch.body.as_deref().map(validate_body).transpose()?;
    let template: Template = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE templates
         SET name = COALESCE($3, name), body = COALESCE($4, body), updated_at = now()
         WHERE tenant_id = $1 AND id = $2
         RETURNING {TEMPLATE_COLUMNS}"
    )))
    .bind(principal.tenant_id)
    .bind(id)
    .bind(name)
    .bind(body)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("template"))?;
    Ok(Json(template.with_placeholders()))
}

/// Deletes a template no campaign uses. Messages already sent keep their
/// text and `template_id`.
#[utoipa::path(delete, path = "/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, body = ErrorBody, description = "A campaign uses the template (`template_in_use`)"),
    ))]
pub async fn delete_template(request: RecordRequest) -> ApiResult<StatusCode> {
    // The campaigns' foreign key refuses the delete while one uses it; the
    // violation maps to 409 `template_in_use`.
    request.delete(&TEMPLATES).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_must_have_well_formed_placeholders() {
        assert!(validate_body("Hi {{ first_name }}!").is_ok());
        assert!(validate_body("Hi {{first_name").is_err());
        assert!(validate_body("Hi {{}}").is_err());
        assert!(validate_body(" ").is_err());
        assert!(validate_body(&"x".repeat(1601)).is_err());
    }

    #[test]
    fn names_are_trimmed() {
        assert_eq!(validate_name("  Reminder ").unwrap(), "Reminder");
        assert!(validate_name("   ").is_err());
    }
}

//! Customers (CRM): CRUD, lookup by phone (the screen-pop on an inbound
//! call), search, notes and the timeline of everything that happened with a
//! customer.
//!
//! Every query is scoped by the caller's tenant; another tenant's id is
//! simply not found (404), never forbidden, so ids leak nothing.

mod handlers;
mod timeline;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use switchboard_core::phone::{E164, PhoneError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::by_id::Table;
use crate::error::ApiError;
use crate::state::AppState;
use crate::text::validate_name;

pub use handlers::*;
pub use timeline::*;

/// The routes of customers, their notes and timeline, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_customers, handlers::create_customer))
        .routes(routes!(
            handlers::get_customer,
            handlers::update_customer,
            handlers::delete_customer
        ))
        .routes(routes!(handlers::add_note))
        .routes(routes!(timeline::customer_timeline))
}

/// A customer record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Customer {
    /// The customer's id.
    pub id: Uuid,
    /// The tenant the customer belongs to.
    pub tenant_id: Uuid,
    /// The customer's name.
    pub name: String,
    /// The customer's email address, lowercased.
    pub email: Option<String>,
    /// E.164.
    #[schema(example = "+12025550123")]
    pub phone: Option<String>,
    /// The customer's company.
    pub company: Option<String>,
    /// Labels, trimmed and lowercased.
    pub tags: Vec<String>,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When the customer was created.
    pub created_at: DateTime<Utc>,
    /// When the customer last changed.
    pub updated_at: DateTime<Utc>,
}

/// The longest note `body`.
pub const MAX_NOTE_CHARS: usize = 10_000;

/// The columns of [`Customer`], for `SELECT` and `RETURNING`.
pub(crate) const CUSTOMER_COLUMNS: &str =
    "id, tenant_id, name, email, phone, company, tags, metadata, created_at, updated_at";

/// Where customers are kept.
static CUSTOMERS: Table<Customer> = Table::new("customers", &CUSTOMER_COLUMNS, "customer");

/// The tenant's customer with this E.164 number (numbers are unique per
/// tenant), through the read cache: the screen-pop of every inbound call
/// and the CRM's phone lookup ask this.
pub(crate) async fn customer_by_phone(
    state: &AppState,
    tenant_id: Uuid,
    phone: &str,
) -> Result<Option<Customer>, sqlx::Error> {
    crate::cache::read_through(
        &state.caches.customers_by_phone,
        (tenant_id, phone.to_owned()),
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant_id = $1 AND phone = $2"
        )))
        .bind(tenant_id)
        .bind(phone)
        .fetch_optional(&state.db),
    )
    .await
}

/// A customer to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    /// 1 to 200 characters.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 200,
        pattern = "\\S"
    )]
    pub name: String,
    /// An address (`local@domain.tld`), or empty for none.
    #[schema(max_length = 320, pattern = r"^\s*([^@\s]+@[^.\s]\S*\.\S*[^.\s])?\s*$")]
    pub email: Option<String>,
    /// Any common format; stored as E.164 (numbers without a country code
    /// are read in the configured default region).
    #[schema(example = "(202) 555-0123")]
    pub phone: Option<String>,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    pub company: Option<String>,
    /// At most 20.
    #[schema(value_type = Option<Vec<crate::openapi::items::Tag>>, max_items = 20)]
    pub tags: Option<Vec<String>>,
    /// Free-form JSON object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// A partial update: absent fields are unchanged, `null` clears a field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// An address (`local@domain.tld`); `null` or empty clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 320, pattern = r"^\s*([^@\s]+@[^.\s]\S*\.\S*[^.\s])?\s*$")]
    pub email: Option<Option<String>>,
    /// Any common format, stored as E.164; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// At most 200 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub company: Option<Option<String>>,
    /// At most 20.
    #[schema(value_type = Option<Vec<crate::openapi::items::Tag>>, max_items = 20)]
    pub tags: Option<Vec<String>>,
    /// Free-form JSON object, replacing the current one.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// Tells "field absent" (`None`) from "field null" (`Some(None)`).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// The query string of `GET /v1/customers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCustomersQuery {
    /// Substring search over name, email and phone (case-insensitive).
    pub q: Option<String>,
    /// Exact lookup by phone number, in any common format.
    pub phone: Option<String>,
}

/// Validated customer fields, ready to write.
#[derive(Debug)]
pub(crate) struct CustomerFields {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub tags: Vec<String>,
    pub metadata: serde_json::Value,
}

pub(crate) fn validate_email(email: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(email) = email.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    if !switchboard_core::email::is_valid(email) {
        return Err(ApiError::validation(
            "email",
            "email is not a valid address",
        ));
    }
    Ok(Some(email.to_lowercase()))
}

pub(crate) fn validate_phone(
    phone: Option<&str>,
    region: &str,
) -> Result<Option<String>, ApiError> {
    let Some(phone) = phone.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    parse_phone(phone, region, "phone").map(Some)
}

/// Parses a phone number a client sent in `field`, as a 422 if it is not one.
pub(crate) fn parse_phone(input: &str, region: &str, field: &str) -> Result<String, ApiError> {
    E164::parse(input, region).map(String::from).map_err(|e| {
        ApiError::validation(
            field.to_string(),
            match e {
                PhoneError::Unparseable => "not a phone number",
                PhoneError::Invalid => "not a valid phone number for its country",
            },
        )
    })
}

fn validate_company(company: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(company) = company.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if company.chars().count() > 200 {
        return Err(ApiError::validation(
            "company",
            "company must be at most 200 characters",
        ));
    }
    Ok(Some(company.to_string()))
}

fn validate_tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > 20 {
        return Err(ApiError::validation("tags", "at most 20 tags"));
    }
    let mut clean: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() || tag.chars().count() > 50 {
            return Err(ApiError::validation(
                "tags",
                "each tag must be 1 to 50 characters",
            ));
        }
        if !clean.contains(&tag) {
            clean.push(tag);
        }
    }
    Ok(clean)
}

fn validate_metadata(metadata: serde_json::Value) -> Result<serde_json::Value, ApiError> {
    if !metadata.is_object() {
        return Err(ApiError::validation(
            "metadata",
            "metadata must be a JSON object",
        ));
    }
    if serde_json::to_vec(&metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > 16 * 1024
    {
        return Err(ApiError::validation(
            "metadata",
            "metadata must be at most 16 KiB",
        ));
    }
    Ok(metadata)
}

impl CreateCustomer {
    pub(crate) fn validate(&self, region: &str) -> Result<CustomerFields, ApiError> {
        Ok(CustomerFields {
            name: validate_name(&self.name)?,
            email: validate_email(self.email.as_deref())?,
            phone: validate_phone(self.phone.as_deref(), region)?,
            company: validate_company(self.company.as_deref())?,
            tags: validate_tags(self.tags.clone().unwrap_or_default())?,
            metadata: validate_metadata(
                self.metadata
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({})),
            )?,
        })
    }
}

/// A validated patch: `None` keeps the stored value; for the nullable
/// fields `Some(None)` clears it.
pub(crate) struct CustomerChanges {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<serde_json::Value>,
}

impl UpdateCustomer {
    /// Validates what the patch changes (no rule depends on the stored
    /// values, so the update can merge in one statement).
    pub(crate) fn validate(self, region: &str) -> Result<CustomerChanges, ApiError> {
        Ok(CustomerChanges {
            name: self.name.map(|name| validate_name(&name)).transpose()?,
            email: self
                .email
                .map(|email| validate_email(email.as_deref()))
                .transpose()?,
            phone: self
                .phone
                .map(|phone| validate_phone(phone.as_deref(), region))
                .transpose()?,
            company: self
                .company
                .map(|company| validate_company(company.as_deref()))
                .transpose()?,
            tags: self.tags.map(validate_tags).transpose()?,
            metadata: self.metadata.map(validate_metadata).transpose()?,
        })
    }
}

/// A note on a customer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Note {
    /// The note's id.
    pub id: Uuid,
    /// The customer the note is on.
    pub customer_id: Uuid,
    /// The agent who wrote it, when an agent did.
    pub agent_id: Option<Uuid>,
    /// The text.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// A note to add to a customer's record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNote {
    /// 1 to 10 000 characters.
    #[schema(
        example = "Called back about the invoice; resolved.",
        min_length = 1,
        max_length = 10000,
        pattern = "\\S"
    )]
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(
            validate_email(Some(" Ada@Example.COM "))
                .unwrap()
                .as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(validate_email(Some("")).unwrap(), None);
        for bad in ["nope", "a@b", "@example.com", "a b@example.com", "a@.com"] {
            assert!(validate_email(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_normalised_and_deduplicated() {
        assert_eq!(
            validate_tags(vec!["VIP".into(), " vip ".into(), "churn-risk".into()]).unwrap(),
            vec!["vip".to_string(), "churn-risk".to_string()]
        );
        assert!(validate_tags(vec!["".into()]).is_err());
    }

    #[test]
    fn a_patch_distinguishes_absent_from_null() {
        let patch: UpdateCustomer = serde_json::from_str(r#"{"email": null}"#).unwrap();
        assert_eq!(patch.email, Some(None));
        assert_eq!(patch.phone, None);
    }
}

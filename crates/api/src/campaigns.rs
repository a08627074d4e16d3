//! Bulk SMS campaigns: one template sent to an audience of customers (by id
//! or by search) and phone numbers, with progress counted from its messages.
//!
//! Creating a campaign validates and stores the audience, then pushes a
//! `campaign.expand` job after commit; the worker resolves the audience,
//! removes duplicate numbers and opted-out recipients (counting them), and
//! creates one message per recipient. A failed push leaves the campaign
//! `pending` for the sweeper to re-drive.

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::ids::new_id;
use switchboard_core::jobs::{self, CampaignExpand};
use switchboard_core::sms::{CampaignStatus, MessageStatus};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::by_id::{RecordRequest, Table};
use crate::customers::parse_phone;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::idempotency::IdempotencyKey;
use crate::messages::MessageCounts;
use crate::state::AppState;
use crate::text::validate_name;

/// The routes of campaigns, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign))
        .routes(routes!(get_campaign))
}

/// Most explicit recipients (customer ids plus numbers) one campaign takes.
pub const MAX_EXPLICIT_RECIPIENTS: usize = 10_000;

/// A campaign.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Campaign {
    /// The campaign's id.
    pub id: Uuid,
    /// The tenant the campaign belongs to.
    pub tenant_id: Uuid,
    /// The campaign's name.
    pub name: String,
    /// The template every message is rendered from.
    pub template_id: Uuid,
    /// Where the campaign is.
    pub status: CampaignStatus,
    /// The recipients as chosen, normalised ([`Audience`]).
    #[schema(value_type = Audience)]
    pub audience: serde_json::Value,
    /// Template variables shared by every recipient.
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    /// Distinct recipients once the audience is resolved (0 until then).
    pub total_recipients: i32,
    /// Recipients skipped because they opted out.
    pub opted_out_count: i32,
    /// The agent who created it, when an agent did.
    pub created_by: Option<Uuid>,
    /// When the campaign was created.
    pub created_at: DateTime<Utc>,
    /// When its messages started being created.
    pub started_at: Option<DateTime<Utc>>,
    /// When no message of it was on its way any more.
    pub completed_at: Option<DateTime<Utc>>,
}

const CAMPAIGN_COLUMNS: &str = "id, tenant_id, name, template_id, status, audience, variables, \
    total_recipients, opted_out_count, created_by, created_at, started_at, completed_at";

/// Where campaigns are kept.
static CAMPAIGNS: Table<Campaign> = Table::new("campaigns", &CAMPAIGN_COLUMNS, "campaign");

/// A campaign with its progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CampaignWithProgress {
    /// The campaign.
    #[serde(flatten)]
    pub campaign: Campaign,
    /// How far the campaign got.
    pub progress: Progress,
}

/// How far a campaign got: its messages by status (every status present),
/// and the recipients it has or skipped.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// The campaign's messages by status.
    #[serde(flatten)]
    pub by_status: MessageCounts,
    /// Messages created so far.
    pub messages: i64,
    /// Recipients skipped because they opted out.
    pub opted_out: i64,
    /// Distinct recipients once the audience is resolved (0 until then).
    pub total_recipients: i64,
}

/// Who receives a campaign. At least one source is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Customers of the tenant (each must exist).
    #[serde(default)]
    pub customer_ids: Vec<Uuid>,
    /// Numbers in any common format; stored as E.164.
    #[serde(default)]
    #[schema(example = json!(["+12025550123", "(202) 555-0124"]))]
    pub phone_numbers: Vec<String>,
    /// Every customer matching this search (as `GET /v1/customers?q=`),
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub customer_query: Option<String>,
}

/// A campaign to create: one template sent to an audience.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// 1 to 200 characters.
    #[schema(
        example = "Spring sale",
        min_length = 1,
        max_length = 200,
        pattern = "\\S"
    )]
    pub name: String,
    /// A template of the tenant.
    pub template_id: Uuid,
    /// Values for the template's placeholders, shared by every recipient;
    /// each recipient's customer record fills the rest.
    pub variables: Option<BTreeMap<String, String>>,
    /// Who receives the campaign.
    pub recipients: Audience,
}

impl Audience {
    /// Checks and normalises what can be checked without the database:
    /// numbers become E.164, duplicates go, the search is trimmed.
    fn normalise(self, region: &str) -> ApiResult<Audience> {
        if self.customer_ids.len() + self.phone_numbers.len() > MAX_EXPLICIT_RECIPIENTS {
            return Err(ApiError::validation(
                "recipients",
                format!(
                    "at most {MAX_EXPLICIT_RECIPIENTS} customer ids and phone numbers in one campaign"
                ),
            ));
        }
        let mut seen_ids = HashSet::new();
        let customer_ids: Vec<Uuid> = self
            .customer_ids
            .into_iter()
            .filter(|id| seen_ids.insert(*id))
            .collect();
        let mut seen_numbers = HashSet::new();
        let mut phone_numbers = Vec::with_capacity(self.phone_numbers.len());
        for (i, number) in self.phone_numbers.iter().enumerate() {
            let number = parse_phone(number, region, &format!("recipients.phone_numbers[{i}]"))?;
            if seen_numbers.insert(number.clone()) {
                phone_numbers.push(number);
            }
        }
        let customer_query = match self.customer_query.as_deref().map(str::trim) {
            None => None,
            Some(q) if q.is_empty() || q.chars().count() > 100 => {
                return Err(ApiError::validation(
                    "recipients.customer_query",
                    "customer_query must be 1 to 100 characters",
                ));
            }
            Some(q) => Some(q.to_string()),
        };
        if customer_ids.is_empty() && phone_numbers.is_empty() && customer_query.is_none() {
            return Err(ApiError::validation(
                "recipients",
                "give at least one of customer_ids, phone_numbers or customer_query",
            ));
        }
        Ok(Audience {
            customer_ids,
            phone_numbers,
            customer_query,
        })
    }
}

/// Creates a campaign and queues its expansion. Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 201, body = CampaignWithProgress),
        (status = 422, body = ErrorBody, description = "Invalid field: no recipients, a bad number, unknown customers or template"),
    ))]
pub async fn create_campaign(
    TenantRequest { state, principal }: TenantRequest,
    key: IdempotencyKey,
    Json(req): Json<CreateCampaign>,
) -> ApiResult<Response> {
    let name = validate_name(&req.name)?;
    // The audience is checked inside the transaction: a refusal rolls it
    // back, key and all.
    let (mut tx, claim) = match key.begin(&state.db, principal.tenant_id, &req).await? {
        Ok(begun) => begun,
        Err(replay) => return Ok(replay),
    };
    let audience = req.recipients.normalise(&state.settings.default_region)?;
    let variables =
        serde_json::to_value(req.variables.unwrap_or_default()).map_err(ApiError::internal)?;
    // FOR SHARE: the template cannot be deleted before this commits.
    let template: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM templates WHERE tenant_id = $1 AND id = $2 FOR SHARE")
            .bind(principal.tenant_id)
            .bind(req.template_id)
            .fetch_optional(&mut *tx)
            .await?;
    if template.is_none() {
        return Err(ApiError::validation("template_id", "no such template"));
    }
    if !audience.customer_ids.is_empty() {
        let found: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = $1 AND id = ANY($2)")
                .bind(principal.tenant_id)
                .bind(&audience.customer_ids)
                .fetch_all(&mut *tx)
                .await?;
        let found: HashSet<Uuid> = found.into_iter().collect();
        let unknown: Vec<String> = audience
            .customer_ids
            .iter()
            .filter(|id| !found.contains(id))
            .map(Uuid::to_string)
            .collect();
        if !unknown.is_empty() {
            const SHOWN: usize = 20;
            let more = match unknown.len().saturating_sub(SHOWN) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            return Err(ApiError::validation(
                "recipients.customer_ids",
                format!(
                    "no such customer: {}{more}",
                    unknown[..unknown.len().min(SHOWN)].join(", ")
                ),
            ));
        }
    }
    let audience = serde_json::to_value(&audience).map_err(ApiError::internal)?;
    let campaign: Campaign = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO campaigns (id, tenant_id, name, template_id, audience, variables, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING {CAMPAIGN_COLUMNS}"
    )))
    .bind(new_id())
    .bind(principal.tenant_id)
    .bind(name)
    .bind(req.template_id)
    .bind(audience)
    .bind(variables)
    .bind(principal.agent_id())
    .fetch_one(&mut *tx)
    .await?;
    let created = CampaignWithProgress {
        progress: Progress::default(),
        campaign,
    };
    jobs::enqueue(
        &mut *tx,
        &CampaignExpand {
            tenant_id: created.campaign.tenant_id,
            campaign_id: created.campaign.id,
        },
    )
    .await?;
    claim.commit(tx, &created).await?;

    tracing::info!(tenant_id = %created.campaign.tenant_id, campaign_id = %created.campaign.id, "campaign created");
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Gets a campaign with its progress.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = CampaignWithProgress),
    ))]
pub async fn get_campaign(request: RecordRequest) -> ApiResult<Json<CampaignWithProgress>> {
    let campaign: Campaign = request.fetch(&CAMPAIGNS).await?;
    let RecordRequest(TenantRequest { state, .. }, _) = request;
    // messages_campaign_idx (campaign_id, status) answers this.
    let counts: Vec<(MessageStatus, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM messages WHERE campaign_id = $1 GROUP BY status",
    )
    .bind(campaign.id)
    .fetch_all(&state.db)
    .await?;
    let mut progress = Progress {
        opted_out: i64::from(campaign.opted_out_count),
        total_recipients: i64::from(campaign.total_recipients),
        ..Progress::default()
    };
    for (status, count) in counts {
        progress.messages += count;
        progress.by_status.add(status, count);
    }
    Ok(Json(CampaignWithProgress { campaign, progress }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_normalised_and_deduplicated() {
        let id = Uuid::now_v7();
        let audience = Audience {
            customer_ids: vec![id, id],
            phone_numbers: vec!["(202) 555-0123".into(), "+12025550123".into()],
            customer_query: Some("  vip ".into()),
        }
        .normalise("US")
        .unwrap();
        assert_eq!(audience.customer_ids, vec![id]);
        assert_eq!(audience.phone_numbers, vec!["+12025550123".to_string()]);
        assert_eq!(audience.customer_query.as_deref(), Some("vip"));
    }

    #[test]
    fn an_audience_needs_a_source_and_valid_numbers() {
        assert!(Audience::default().normalise("US").is_err());
        let bad = Audience {
            phone_numbers: vec!["+12025550123".into(), "nope".into()],
            ..Audience::default()
        }
        .normalise("US")
        .unwrap_err();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

//! Agents and their presence, from the Redis presence store the realtime
//! server shares: what the supervisor's wallboard shows and what inbound
//! routing reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::auth::Role;
use switchboard_core::presence::{PresenceError, PresenceStatus};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;

/// The routes of agents and presence, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(set_my_presence))
}

/// An agent and their current presence.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentWithPresence {
    /// The agent's id.
    pub id: Uuid,
    /// The agent's login email.
    pub email: String,
    /// The agent's display name.
    pub name: String,
    /// What the agent may do.
    pub role: Role,
    /// Where the agent is now.
    pub presence: Presence,
}

/// An agent's presence status and since when.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Presence {
    /// What the agent can be reached for.
    pub status: PresenceStatus,
    /// When the agent entered this status (absent if never seen).
    pub since: Option<DateTime<Utc>>,
}

/// The presence an agent sets for themselves.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPresence {
    /// What the agent chooses to be reached for.
    #[schema(value_type = PresenceStatus)]
    pub status: String,
}

fn presence_error(error: PresenceError) -> ApiError {
    metrics::counter!("redis_errors_total", "op" => "presence").increment(1);
    ApiError::internal(error)
}

/// The tenant's agents with their presence, by email.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", security(("bearer" = [])),
    params(PageRequest<String>),
    responses((status = 200, body = Page<AgentWithPresence>)))]
pub async fn list_agents(
    TenantRequest { state, principal }: TenantRequest,
    page: PageRequest<String>,
) -> ApiResult<Json<Page<AgentWithPresence>>> {
    let agents: Vec<(Uuid, String, String, Role)> = sqlx::query_as(
        "SELECT id, email, name, role FROM agents
         WHERE tenant_id = $1 AND ($2::text IS NULL OR email > $2)
         ORDER BY email LIMIT $3",
    )
    .bind(principal.tenant_id)
    .bind(page.after.as_deref())
    .bind(page.fetch())
    .fetch_all(&state.db)
    .await?;
    let ids: Vec<Uuid> = agents.iter().map(|(id, ..)| *id).collect();
    let presence = state
        .presence
        .of_agents(principal.tenant_id, &ids)
        .await
        .map_err(presence_error)?;
    let data = agents
        .into_iter()
        .zip(presence)
        .map(|((id, email, name, role), presence)| AgentWithPresence {
            id,
            email,
            name,
            role,
            presence: presence.map_or(
                Presence {
                    status: PresenceStatus::Offline,
                    since: None,
                },
                |p| Presence {
                    status: p.status,
                    since: Some(p.since),
                },
            ),
        })
        .collect();
    Ok(Json(page.page(data, |agent| agent.email.clone())))
}

/// Sets the calling agent's presence.
#[utoipa::path(put, path = "/v1/agents/me/presence", tag = "agents", security(("bearer" = [])),
    responses(
        (status = 200, body = Presence),
        (status = 400, body = ErrorBody, description = "Called with an API key: only agents have presence"),
        (status = 422, body = ErrorBody, description = "Unknown status"),
    ))]
pub async fn set_my_presence(
    TenantRequest { state, principal }: TenantRequest,
    Json(req): Json<SetPresence>,
) -> ApiResult<Json<Presence>> {
    let agent = principal.agent_id().ok_or_else(|| {
        ApiError::bad_request(
            "not_an_agent",
            "only agents have presence; log in as an agent",
        )
    })?;
    let status: PresenceStatus = req.status.parse().map_err(|_| {
        let names = PresenceStatus::ALL.map(PresenceStatus::as_str);
        ApiError::validation(
            "status",
            format!("status must be one of: {}", names.join(", ")),
        )
    })?;
    let change = state
        .presence
        .set(principal.tenant_id, agent, status)
        .await
        .map_err(presence_error)?;
    Ok(Json(Presence {
        status: change.presence.status,
        since: Some(change.presence.since),
    }))
}

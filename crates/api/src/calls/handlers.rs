//! Call endpoints.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use switchboard_core::calls::{
    CallEventKind, CallFlags, CallStatus, Control, ControlEffect, Direction, EventSource,
    NewOutboundCall, control,
};
use switchboard_core::events::EventType;
use switchboard_core::ids::new_id;
use switchboard_core::lifecycle::Transition;
use switchboard_core::records::CALL_COLUMNS;
use uuid::Uuid;

use super::lifecycle::{self, StatusUpdate, lock_call, record_event};
use super::{CALLS, Call, CallEvent, ControlRequest, ListCallsQuery, OriginateCall};
use crate::auth::TenantRequest;
use crate::by_id::RecordRequest;
use crate::customers::parse_phone;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::idempotency::IdempotencyKey;
use crate::pagination::{Listing, Page, PageRequest};
use crate::state::AppState;

/// Originates an outbound call: created `queued` and handed to the carrier.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 201, body = Call),
        (status = 422, body = ErrorBody, description = "Invalid number, a `from` the tenant does not own, or an unknown customer"),
    ))]
pub async fn originate_call(
    TenantRequest { state, principal }: TenantRequest,
    key: IdempotencyKey,
    Json(req): Json<OriginateCall>,
) -> ApiResult<Response> {
    let region = &state.settings.default_region;
    let to = parse_phone(&req.to, region, "to")?;
    let from_requested = req
        .from
        .as_deref()
        .map(|f| parse_phone(f, region, "from"))
        .transpose()?;
    let (mut tx, claim) = match key.begin(&state.db, principal.tenant_id, &req).await? {
        Ok(begun) => begun,
        Err(replay) => return Ok(replay),
    };
    let from: Option<String> = sqlx::query_scalar(
        "SELECT number FROM phone_numbers WHERE tenant_id = $1 AND ($2::text IS NULL OR number = $2)
         ORDER BY is_default DESC, number LIMIT 1",
    )
    .bind(principal.tenant_id)
    .bind(&from_requested)
    .fetch_optional(&mut *tx)
    .await?;
    let from = from.ok_or_else(|| match from_requested {
        Some(_) => ApiError::validation("from", "not one of this tenant's numbers"),
        None => ApiError::unprocessable(
            "no_caller_id",
            "this tenant has no phone number to call from",
        ),
    })?;
    let customer_id: Option<Uuid> = match req.customer_id {
        Some(id) => Some(
            sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = $1 AND id = $2")
                .bind(principal.tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| ApiError::validation("customer_id", "no such customer"))?,
        ),
        None => {
            sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = $1 AND phone = $2")
                .bind(principal.tenant_id)
                .bind(&to)
                .fetch_optional(&mut *tx)
                .await?
        }
    };
    let placed = NewOutboundCall {
        id: new_id(),
        tenant_id: principal.tenant_id,
        from: &from,
        to: &to,
        customer_id,
        agent_id: principal.agent_id(),
        source: EventSource::Api,
        data: &serde_json::json!({}),
    };
    let call: Call = placed
        .place(&mut tx, state.settings.carrier, &CALL_COLUMNS)
        .await?;
    claim.commit(tx, &call).await?;
    metrics::counter!("calls_created_total", "direction" => "outbound").increment(1);
    state
        .events
        .publish_new(call.tenant_id, EventType::CallCreated, &call)
        .await;
    Ok((StatusCode::CREATED, Json(call)).into_response())
}

/// Lists calls, newest first, with filters.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", security(("bearer" = [])),
    params(Listing<ListCallsQuery>),
    responses(
        (status = 200, body = Page<Call>),
        (status = 422, body = ErrorBody, description = "`from`/`to` is not a phone number"),
    ))]
pub async fn list_calls(
    TenantRequest { state, principal }: TenantRequest,
    Listing(query, request): Listing<ListCallsQuery>,
) -> ApiResult<Json<Page<Call>>> {
    let region = &state.settings.default_region;
    let from = query
        .from
        .as_deref()
        .map(|n| parse_phone(n, region, "from"))
        .transpose()?;
    let to = query
        .to
        .as_deref()
        .map(|n| parse_phone(n, region, "to"))
        .transpose()?;
    let rows: Vec<Call> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CALL_COLUMNS} FROM calls
         WHERE tenant_id = $1
           AND ($2::uuid IS NULL OR id < $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR direction = $4)
           AND ($5::uuid IS NULL OR agent_id = $5)
           AND ($6::uuid IS NULL OR customer_id = $6)
           AND ($7::text IS NULL OR from_number = $7)
           AND ($8::text IS NULL OR to_number = $8)
           AND ($9::timestamptz IS NULL OR created_at >= $9)
           AND ($10::timestamptz IS NULL OR created_at < $10)
         ORDER BY id DESC LIMIT $11"
    )))
    .bind(principal.tenant_id)
    .bind(request.after)
    .bind(query.status.map(CallStatus::as_str))
    .bind(query.direction.map(Direction::as_str))
    .bind(query.agent_id)
    .bind(query.customer_id)
    .bind(from)
    .bind(to)
    .bind(query.created_after)
    .bind(query.created_before)
    .bind(request.fetch())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(request.page(rows, |c| c.id)))
}

/// Gets one call.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", security(("bearer" = [])),
    params(RecordRequest),
    responses((status = 200, body = Call)))]
pub async fn get_call(request: RecordRequest) -> ApiResult<Json<Call>> {
    request.fetch(&CALLS).await.map(Json)
}

/// A call's history, oldest first: every status, control and recording.
#[utoipa::path(get, path = "/v1/calls/{id}/events", tag = "calls", security(("bearer" = [])),
    params(RecordRequest, PageRequest<i64>),
    responses((status = 200, body = Page<CallEvent>)))]
pub async fn call_events(
    request: RecordRequest,
    page: PageRequest<i64>,
) -> ApiResult<Json<Page<CallEvent>>> {
    // Another tenant's call has no history to show: 404, as for an unknown id.
    request.exists(&CALLS).await?;
    let RecordRequest(TenantRequest { state, principal }, id) = request;
    let events: Vec<CallEvent> = sqlx::query_as(
        "SELECT id, call_id, kind, from_status, to_status, data, source, occurred_at
         FROM call_events
         WHERE tenant_id = $1 AND call_id = $2 AND ($3::bigint IS NULL OR id > $3)
         ORDER BY id LIMIT $4",
    )
    .bind(principal.tenant_id)
    .bind(id)
    .bind(page.after)
    .bind(page.fetch())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(page.page(events, |event| event.id)))
}

/// Applies an agent control: `answer`, `hold`, `unhold`, `mute`, `unmute`,
/// `record`, `stop-recording`, `transfer` (body `{agent_id}` or `{to}`) or
/// `hangup`. A control the call's state does not allow is a 409.
#[utoipa::path(post, path = "/v1/calls/{id}/{action}", tag = "calls", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Call id"),
        ("action" = String, Path, description = "answer | hold | unhold | mute | unmute | record | stop-recording | transfer | hangup"),
    ),
    request_body(content = Option<ControlRequest>, description = "Only `transfer` takes a body"),
    responses(
        (status = 200, body = Call),
        (status = 404, body = ErrorBody, description = "Unknown call or action"),
        (status = 409, body = ErrorBody, description = "The call's state does not allow this control"),
        (status = 422, body = ErrorBody, description = "Bad transfer target"),
    ))]
pub async fn control_call(
    TenantRequest { state, principal }: TenantRequest,
    Path((id, action)): Path<(Uuid, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Call>> {
    let action: Control = action.parse().map_err(|()| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("no call control named {action:?}"),
        )
    })?;
    let req: ControlRequest = if body.is_empty() {
        ControlRequest::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let mut tx = state.db.begin().await?;
    let current = lock_call(&mut tx, principal.tenant_id, id).await?;
    let status = current.status;
    let flags = CallFlags {
        on_hold: current.on_hold,
        muted: current.muted,
        recording: current.recording,
    };
    let effect = control(status, flags, action)
        .map_err(|refused| ApiError::conflict(refused.code(), refused.to_string()))?;
    let now = Utc::now();
    match effect {
        ControlEffect::Status(to) => {
            let update = StatusUpdate {
                to,
                at: now,
                duration: None,
                source: EventSource::Api,
                agent_id: (action == Control::Answer)
                    .then(|| principal.agent_id())
                    .flatten(),
                data: serde_json::json!({ "control": action.as_str() }),
            };
            let outcome = lifecycle::apply_locked(&mut tx, current, &update).await?;
            if outcome.transition != Transition::Apply {
                // The state machine and the control table agree by construction.
                return Err(ApiError::internal(anyhow::anyhow!(
                    "control {action:?} not applicable"
                )));
            }
            tx.commit().await?;
            lifecycle::after_status_commit(&state, &outcome, EventSource::Api).await;
            Ok(Json(outcome.call))
        }
        ControlEffect::Flags(flags) => {
            let call: Call = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE calls SET on_hold = $2, muted = $3, recording = $4, version = version + 1, updated_at = now()
                 WHERE id = $1 RETURNING {CALL_COLUMNS}"
            )))
            .bind(id)
            .bind(flags.on_hold)
            .bind(flags.muted)
            .bind(flags.recording)
            .fetch_one(&mut *tx)
            .await?;
            let data = serde_json::json!({ "agent_id": principal.agent_id() });
            record_event(
                &mut tx,
                &call,
                CallEventKind::from(action),
                None,
                &data,
                EventSource::Api,
                now,
            )
            .await?;
            tx.commit().await?;
            publish_update(&state, &call, action).await;
            Ok(Json(call))
        }
        ControlEffect::Transfer => {
            let (target, agent) =
                transfer_target(&state, &mut tx, principal.tenant_id, &req).await?;
            let previous_agent = current.agent_id;
            let call: Call = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE calls SET transferred_to = $2, agent_id = coalesce($3, agent_id), on_hold = false,
                        version = version + 1, updated_at = now()
                 WHERE id = $1 RETURNING {CALL_COLUMNS}"
            )))
            .bind(id)
            .bind(&target)
            .bind(agent)
            .fetch_one(&mut *tx)
            .await?;
            let data = serde_json::json!({ "to": target, "from_agent_id": previous_agent, "to_agent_id": agent });
            record_event(
                &mut tx,
                &call,
                CallEventKind::Transfer,
                None,
                &data,
                EventSource::Api,
                now,
            )
            .await?;
            tx.commit().await?;
            publish_update(&state, &call, action).await;
            if let (Some(old), Some(_)) = (previous_agent, agent) {
                // The previous agent is free again; the new one is on the call.
                lifecycle::release_agent(&state, call.tenant_id, old, call.id).await;
                lifecycle::follow_presence(&state, &call).await;
            }
            Ok(Json(call))
        }
    }
}

async fn publish_update(state: &AppState, call: &Call, action: Control) {
    metrics::counter!("call_controls_total", "control" => action.as_str()).increment(1);
    let mut data = serde_json::to_value(call).unwrap_or_default();
    if let Some(obj) = data.as_object_mut() {
        obj.insert("change".into(), action.as_str().into());
    }
    state
        .events
        .publish_new(call.tenant_id, EventType::CallUpdated, data)
        .await;
}

/// Where a transfer goes: an agent of the tenant, or a valid number.
async fn transfer_target(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    req: &ControlRequest,
) -> ApiResult<(String, Option<Uuid>)> {
    match (req.agent_id, req.to.as_deref()) {
        (Some(agent), None) => {
            let found: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM agents WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(agent)
                    .fetch_optional(&mut *tx)
                    .await?;
            let agent = found.ok_or_else(|| ApiError::validation("agent_id", "no such agent"))?;
            Ok((agent.to_string(), Some(agent)))
        }
        (None, Some(number)) => Ok((
            parse_phone(number, &state.settings.default_region, "to")?,
            None,
        )),
        _ => Err(ApiError::unprocessable(
            "transfer_target_required",
            "a transfer needs exactly one of agent_id or to",
        )),
    }
}

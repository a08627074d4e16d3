//! Voice webhooks: status callbacks, incoming calls (routing), recordings.

use axum::extract::State;
use chrono::{DateTime, Utc};
use switchboard_core::calls::{
    CallEventKind, CallStatus, Direction, EventSource, Route, transition,
};
use switchboard_core::events::EventType;
use switchboard_core::ids::new_id;
use switchboard_core::jobs::{self, RecordingProcess, VoicemailTranscribe};
use switchboard_core::lifecycle::{AckResult, Transition};
use switchboard_core::phone::E164;
use switchboard_core::records::CALL_COLUMNS;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::call_statuses::CallTarget;
use super::{
    AckAction, CarrierForm, Decision, Settled, WebhookAck, tenant_for_number, tenant_token,
    xml_escape,
};
use crate::calls::Call;
use crate::calls::lifecycle::{self, Change, StatusUpdate};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(voice_status))
        .routes(routes!(voice_incoming))
        .routes(routes!(voice_recording))
}

/// The call a CallSid names: `(call id, tenant id, routed_to)`, 404 when unknown.
async fn call_by_sid(state: &AppState, sid: &str) -> ApiResult<(Uuid, Uuid, Option<Route>)> {
    sqlx::query_as("SELECT id, tenant_id, routed_to FROM calls WHERE carrier_sid = $1")
        .bind(sid)
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))
}

/// The carrier's `Timestamp` (RFC 2822, as Twilio sends it), else now.
fn carrier_time(form: &CarrierForm) -> ApiResult<DateTime<Utc>> {
    match form.get("Timestamp") {
        None => Ok(Utc::now()),
        Some(raw) => DateTime::parse_from_rfc2822(raw)
            .or_else(|_| DateTime::parse_from_rfc3339(raw))
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad_request("invalid_parameter", "Timestamp is not an RFC 2822 date")
                    .with_field("Timestamp")
            }),
    }
}

fn seconds_param(form: &CarrierForm, name: &'static str) -> ApiResult<Option<i32>> {
    form.get(name)
        .map(|raw| {
            raw.trim()
                .parse::<i32>()
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("{name} must be a number of seconds"),
                    )
                    .with_field(name)
                })
        })
        .transpose()
}

/// The carrier reports a call's status (`CallSid`, `CallStatus`, optional
/// `CallDuration` and `Timestamp`). Late and duplicate reports are
/// acknowledged and change nothing.
#[utoipa::path(post, path = "/webhooks/carrier/voice/status", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "Twilio status callback parameters: CallSid, CallStatus, CallDuration, Timestamp, ..."),
    params(CarrierForm),
    responses(
        (status = 200, body = WebhookAck, description = "Applied, or acknowledged without change"),
        (status = 400, body = ErrorBody, description = "Missing or malformed parameters"),
        (status = 404, body = ErrorBody, description = "Unknown CallSid"),
        CarrierForm,
    ))]
pub async fn voice_status(
    State(state): State<AppState>,
    form: CarrierForm,
) -> ApiResult<Json<WebhookAck>> {
    let sid = form.require("CallSid")?;
    let raw_status = form.require("CallStatus")?;
    // Verified and parsed once, in the first round.
    let mut update: Option<StatusUpdate> = None;
    // Looked up and applied in groups: the carrier storm's hot path.
    let settled = state.call_statuses.settle(sid, "call", |target| {
        let CallTarget {
            call,
            carrier_auth_token,
        } = target;
        let update = match &update {
            Some(update) => update.clone(),
            None => {
                form.verify(&carrier_auth_token)?;
                let verified = status_update(&form, raw_status)?;
                update = Some(verified.clone());
                verified
            }
        };
        let from = call.status;
        Ok(match transition(from, update.to) {
            Transition::Apply => Decision::Apply(Change {
                call_id: call.id,
                from,
                update,
            }),
            decided => Decision::Answer(lifecycle::Outcome {
                call,
                transition: decided,
            }),
        })
    });
    let outcome = match settled.await? {
        Settled::Applied(call) => lifecycle::Outcome {
            call,
            transition: Transition::Apply,
        },
        Settled::Answered(outcome) => outcome,
    };
    lifecycle::after_status_commit(&state, &outcome, EventSource::Carrier).await;
    let call_id = outcome.call.id;
    if outcome.transition == Transition::Illegal {
        tracing::warn!(%call_id, from = %outcome.call.status, to = %raw_status, "carrier reported an impossible transition; ignored");
    }
    Ok(Json(WebhookAck {
        call_id: Some(call_id),
        ..WebhookAck::result(outcome.transition.result())
    }))
}

/// What a verified status callback reports.
fn status_update(form: &CarrierForm, raw_status: &str) -> ApiResult<StatusUpdate> {
    let to: CallStatus = raw_status.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("unknown CallStatus {raw_status:?}"),
        )
        .with_field("CallStatus")
    })?;
    Ok(StatusUpdate {
        to,
        at: carrier_time(form)?,
        duration: seconds_param(form, "CallDuration")?,
        source: EventSource::Carrier,
        agent_id: None,
        data: serde_json::json!({ "carrier_status": raw_status }),
    })
}

/// A call arrives on one of the tenant's numbers: create it, look the caller
/// up, and route it to the longest-idle available agent, or to voicemail.
#[utoipa::path(post, path = "/webhooks/carrier/voice/incoming", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "Twilio incoming-call parameters: CallSid, From, To, ..."),
    params(CarrierForm),
    responses(
        (status = 200, body = WebhookAck, description = "The routing decision (also as TwiML)"),
        (status = 404, body = ErrorBody, description = "The number called is not a tenant's"),
        CarrierForm,
    ))]
pub async fn voice_incoming(
    State(state): State<AppState>,
    form: CarrierForm,
) -> ApiResult<Json<WebhookAck>> {
    let sid = form.require("CallSid")?.to_string();
    let from_raw = form.require("From")?.to_string();
    if from_raw.chars().count() > 64 {
        return Err(
            ApiError::bad_request("invalid_parameter", "From is too long").with_field("From"),
        );
    }
    let to_raw = form.require("To")?;
    let to = E164::parse_strict(to_raw).map(String::from).map_err(|_| {
        ApiError::bad_request("invalid_parameter", "To must be an E.164 number").with_field("To")
    })?;
    let (tenant_id, token) = tenant_for_number(&state, &to).await?;
    form.verify(&token)?;

    // A retried webhook gets the decision already made.
    if let Some(existing) = call_with_sid(&state, &sid).await? {
        return Ok(Json(routing_ack(&existing, AckResult::Duplicate)));
    }
    // Withheld or odd caller ids are kept as sent; only real numbers are looked up.
    let from = E164::parse(&from_raw, &state.settings.default_region)
        .map(String::from)
        .unwrap_or(from_raw);
    let customer_id = crate::customers::customer_by_phone(&state, tenant_id, &from)
        .await?
        .map(|customer| customer.id);
    let agent = match state.presence.claim_longest_idle(tenant_id).await {
        Ok(agent) => agent,
        Err(error) => {
            // Without presence nobody can be picked: voicemail still takes the call.
            metrics::counter!("redis_errors_total", "op" => "presence").increment(1);
            tracing::warn!(%error, "presence unavailable; routing to voicemail");
            None
        }
    };
    let call_id = new_id();
    let inserted = insert_inbound(
        &state,
        tenant_id,
        call_id,
        &from,
        &to,
        &sid,
        customer_id,
        agent,
    )
    .await;
    let call = match inserted {
        Ok(Some(call)) => call,
        Ok(None) => {
            // The same CallSid raced in concurrently: hand back its decision.
            release(&state, tenant_id, agent, call_id).await;
            let existing = call_with_sid(&state, &sid)
                .await?
                .ok_or_else(|| ApiError::not_found("call"))?;
            return Ok(Json(routing_ack(&existing, AckResult::Duplicate)));
        }
        Err(error) => {
            release(&state, tenant_id, agent, call_id).await;
            return Err(error);
        }
    };
    metrics::counter!("calls_created_total", "direction" => "inbound").increment(1);
    let route = call.routed_to.unwrap_or(Route::Voicemail);
    metrics::counter!("inbound_routing_total", "routed_to" => route.as_str()).increment(1);
    state
        .events
        .publish_new(tenant_id, EventType::CallCreated, &call)
        .await;
    lifecycle::follow_presence(&state, &call).await;
    Ok(Json(routing_ack(&call, AckResult::Created)))
}

/// Frees an agent claimed for a call that was not created after all.
async fn release(state: &AppState, tenant_id: Uuid, agent: Option<Uuid>, call_id: Uuid) {
    if let Some(agent) = agent {
        crate::calls::lifecycle::release_agent(state, tenant_id, agent, call_id).await;
    }
}

/// Creates the inbound call, ringing, with its first history entry; `None`
/// when a call with this CallSid already exists.
#[allow(clippy::too_many_arguments)]
async fn insert_inbound(
    state: &AppState,
    tenant_id: Uuid,
    call_id: Uuid,
    from: &str,
    to: &str,
    sid: &str,
    customer_id: Option<Uuid>,
    agent: Option<Uuid>,
) -> ApiResult<Option<Call>> {
    let now = Utc::now();
    let mut tx = state.db.begin().await?;
    let call: Option<Call> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, carrier_sid,
                            customer_id, agent_id, routed_to, ringing_at)
         VALUES ($1, $2, $10, $3, $4, $11, $5, $6, $7, $8, $9)
         ON CONFLICT (carrier_sid) DO NOTHING
         RETURNING {CALL_COLUMNS}"
    )))
    .bind(call_id)
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .bind(sid)
    .bind(customer_id)
    .bind(agent)
    .bind(match agent {
        Some(_) => Route::Agent,
        None => Route::Voicemail,
    })
    .bind(now)
    .bind(Direction::Inbound)
    .bind(CallStatus::Ringing)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(call) = &call {
        let data = serde_json::json!({ "routed_to": call.routed_to, "agent_id": agent });
        lifecycle::record_event(
            &mut tx,
            call,
            CallEventKind::Status,
            Some(CallStatus::Ringing),
            &data,
            EventSource::Carrier,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(call)
}

async fn call_with_sid(state: &AppState, sid: &str) -> ApiResult<Option<Call>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE carrier_sid = $1"
    )))
    .bind(sid)
    .fetch_optional(&state.db)
    .await?)
}

/// The routing decision for an inbound call, as JSON and as TwiML.
fn routing_ack(call: &Call, result: AckResult) -> WebhookAck {
    let (action, twiml) = match call.agent_id {
        Some(agent) if call.routed_to == Some(Route::Agent) => (
            AckAction::Connect,
            format!("<Response><Dial><Client>{}</Client></Dial></Response>", xml_escape(&agent.to_string())),
        ),
        _ => (
            AckAction::Voicemail,
            "<Response><Say>Nobody can take your call right now. Please leave a message after the tone.</Say>\
             <Record playBeep=\"true\" maxLength=\"120\"/></Response>"
                .to_string(),
        ),
    };
    WebhookAck {
        call_id: Some(call.id),
        action: Some(action),
        agent_id: call.agent_id.filter(|_| action == AckAction::Connect),
        customer_id: call.customer_id,
        twiml: Some(twiml),
        ..WebhookAck::result(result)
    }
}

/// A recording is ready. For a call routed to voicemail it becomes a
/// voicemail (queued for transcription); otherwise a call recording
/// (queued for processing). Idempotent on `RecordingSid`.
#[utoipa::path(post, path = "/webhooks/carrier/voice/recording", tag = "webhooks",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "CallSid, RecordingSid, RecordingUrl, RecordingDuration"),
    params(CarrierForm),
    responses(
        (status = 200, body = WebhookAck),
        (status = 404, body = ErrorBody, description = "Unknown CallSid"),
        CarrierForm,
    ))]
pub async fn voice_recording(
    State(state): State<AppState>,
    form: CarrierForm,
) -> ApiResult<Json<WebhookAck>> {
    let sid = form.require("CallSid")?;
    let recording_sid = form.require("RecordingSid")?;
    let url = form.require("RecordingUrl")?;
    let (call_id, tenant_id, routed_to) = call_by_sid(&state, sid).await?;
    form.verify(&tenant_token(&state, tenant_id).await?)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2000 {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "RecordingUrl must be an http(s) URL",
        )
        .with_field("RecordingUrl"));
    }
    let duration = seconds_param(&form, "RecordingDuration")?.unwrap_or(0);

    if routed_to == Some(Route::Voicemail) {
        let mut tx = state.db.begin().await?;
        let created: Option<(Uuid, serde_json::Value)> = sqlx::query_as(
            "INSERT INTO voicemails (id, tenant_id, call_id, customer_id, from_number, to_number,
                                     recording_sid, recording_url, duration_seconds)
             SELECT $1, c.tenant_id, c.id, c.customer_id, c.from_number, c.to_number, $3, $4, $5
             FROM calls c WHERE c.id = $2
             ON CONFLICT (recording_sid) DO NOTHING
             RETURNING id, jsonb_build_object('id', id, 'call_id', call_id, 'customer_id', customer_id,
                 'from', from_number, 'to', to_number, 'duration_seconds', duration_seconds,
                 'transcription_status', transcription_status, 'created_at', created_at)",
        )
        .bind(new_id())
        .bind(call_id)
        .bind(recording_sid)
        .bind(url)
        .bind(duration)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((voicemail_id, data)) = created else {
            return Ok(Json(WebhookAck {
                call_id: Some(call_id),
                ..WebhookAck::result(AckResult::Duplicate)
            }));
        };
        jobs::enqueue(
            &mut *tx,
            &VoicemailTranscribe {
                tenant_id,
                voicemail_id,
            },
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("voicemails_created_total").increment(1);
        state
            .events
            .publish_new(tenant_id, EventType::VoicemailCreated, data)
            .await;
        return Ok(Json(WebhookAck {
            call_id: Some(call_id),
            action: Some(AckAction::Voicemail),
            ..WebhookAck::result(AckResult::Created)
        }));
    }

    let mut tx = state.db.begin().await?;
    let created: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO recordings (id, tenant_id, call_id, recording_sid, url, duration_seconds)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (recording_sid) DO NOTHING RETURNING id",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(call_id)
    .bind(recording_sid)
    .bind(url)
    .bind(duration)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(recording_id) = created else {
        return Ok(Json(WebhookAck {
            call_id: Some(call_id),
            ..WebhookAck::result(AckResult::Duplicate)
        }));
    };
    let call: Call = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET version = version + 1, updated_at = now() WHERE id = $1 RETURNING {CALL_COLUMNS}"
    )))
    .bind(call_id)
    .fetch_one(&mut *tx)
    .await?;
    let data = serde_json::json!({ "recording_id": recording_id, "duration_seconds": duration });
    lifecycle::record_event(
        &mut tx,
        &call,
        CallEventKind::Recording,
        None,
        &data,
        EventSource::Carrier,
        Utc::now(),
    )
    .await?;
    jobs::enqueue(
        &mut *tx,
        &RecordingProcess {
            tenant_id,
            recording_id,
        },
    )
    .await?;
    tx.commit().await?;
    let mut event = serde_json::to_value(&call).unwrap_or_default();
    if let Some(obj) = event.as_object_mut() {
        obj.insert("change".into(), "recording_available".into());
        obj.insert("recording_id".into(), recording_id.to_string().into());
    }
    state
        .events
        .publish_new(tenant_id, EventType::CallUpdated, event)
        .await;
    Ok(Json(WebhookAck {
        call_id: Some(call_id),
        action: Some(AckAction::Recording),
        ..WebhookAck::result(AckResult::Created)
    }))
}

//! Carrier webhooks (`/webhooks/carrier/...`): form-encoded with Twilio's
//! parameter names and signed with `X-Twilio-Signature`.
//!
//! Every handler finds the tenant the request is about (by the number
//! called, or by the call/message it reports on), verifies the signature
//! with that tenant's carrier auth token, and only then changes anything:
//! a bad signature is a 403, an unknown CallSid/MessageSid or number a 404,
//! a malformed request a 400 — all without side effects.

pub mod call_statuses;
pub mod receipts;
mod sms;
mod voice;

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::future::Future;
use switchboard_core::carrier::{self, SIGNATURE_HEADER};
use switchboard_core::group_commit::GroupCommit;
use switchboard_core::lifecycle::AckResult;
use utoipa::ToSchema;
use utoipa::openapi::{ObjectBuilder, RefOr, Response, Type};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::read_body;
use crate::state::AppState;
use crate::text::{self, TextKind};

/// The routes of carrier callbacks (`/webhooks/carrier/…`), with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(voice::router())
        .merge(sms::router())
}

/// A carrier's form POST with its signature, not yet verified.
///
/// Text is checked once, here: a control character in any parameter but
/// `Body` is a 400 naming it (no carrier sends one in a SID, number or
/// status). In `Body` — the customer's own SMS, which a carrier cannot
/// correct and will not resend after a 4xx — every control character other
/// than a line break or tab is replaced with U+FFFD, so the message is kept,
/// nothing PostgreSQL cannot store reaches it, and the carrier is never
/// answered a 5xx (which it would retry for ever).
#[derive(Debug, Clone)]
pub struct CarrierForm {
    /// As received: the signature is computed over these exact values.
    params: Vec<(String, String)>,
    /// What handlers read: `params` with `Body` sanitised.
    values: Vec<(String, String)>,
    signature: Option<String>,
    /// The URL the carrier signed: the public base URL plus path and query.
    url: String,
}

impl FromRequest<AppState> for CarrierForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "carrier webhooks are application/x-www-form-urlencoded",
            ));
        }
        let signature = req
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| req.uri().path().to_string());
        let url = format!("{}{}", state.settings.public_url, path_and_query);
        let body = read_body(req, state, "the request body is too large").await?;
        if std::str::from_utf8(&body).is_err() {
            return Err(ApiError::bad_request(
                "malformed_form",
                "the form body is not UTF-8",
            ));
        }
        let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let values = params
            .iter()
            .map(|(name, value)| checked_param(name, value))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Self {
            params,
            values,
            signature,
            url,
        })
    }
}

/// The signature header. A webhook lists `params(CarrierForm)`, and
/// `CarrierForm` among its responses, so every one documents the signature
/// and the refusals below alike.
impl utoipa::IntoParams for CarrierForm {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![crate::openapi::header_param(
            "X-Twilio-Signature",
            utoipa::openapi::Required::True,
            "HMAC-SHA1 of the URL and sorted parameters, keyed by the tenant's carrier auth token",
            ObjectBuilder::new().schema_type(Type::String),
        )]
    }
}

/// The refusals every carrier webhook can give before its handler decides
/// anything: another content type (415), and a signature that does not
/// verify (403, from [`CarrierForm::verify`]).
impl utoipa::IntoResponses for CarrierForm {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "403".to_string(),
                crate::openapi::error_response("The signature does not verify"),
            ),
            (
                "415".to_string(),
                crate::openapi::error_response("Not form-encoded"),
            ),
        ])
    }
}

impl CarrierForm {
    /// A parameter, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A required parameter (400 naming it when absent).
    pub fn require(&self, name: &'static str) -> ApiResult<&str> {
        self.get(name).ok_or_else(|| {
            ApiError::bad_request("missing_parameter", format!("{name} is required"))
                .with_field(name)
        })
    }

    /// Checks the signature against the tenant's carrier auth token.
    pub fn verify(&self, auth_token: &str) -> ApiResult<()> {
        let valid = self
            .signature
            .as_deref()
            .is_some_and(|sig| carrier::verify(auth_token, &self.url, &self.params, sig));
        if valid {
            Ok(())
        } else {
            metrics::counter!("carrier_webhooks_rejected_total", "reason" => "signature")
                .increment(1);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "the X-Twilio-Signature header does not match this request",
            ))
        }
    }
}

/// The free-text parameter a customer writes.
const FREE_TEXT_PARAM: &str = "Body";

/// One form parameter as handlers may read it (see [`CarrierForm`]).
fn checked_param(name: &str, value: &str) -> ApiResult<(String, String)> {
    if let Some(c) = text::refused_char(name, TextKind::Line) {
        return Err(text::refused_parameter(
            "invalid_parameter",
            "a parameter name",
            c,
        ));
    }
    if name == FREE_TEXT_PARAM {
        let clean = value
            .chars()
            .map(|c| {
                if text::allows(TextKind::Free, c) {
                    c
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })
            .collect();
        return Ok((name.to_string(), clean));
    }
    if let Some(c) = text::refused_char(value, TextKind::Line) {
        return Err(
            text::refused_parameter("invalid_parameter", name, c).with_field(name.to_string())
        );
    }
    Ok((name.to_string(), value.to_string()))
}

/// The tenant owning `number`, with its carrier auth token.
pub(crate) async fn tenant_for_number(state: &AppState, number: &str) -> ApiResult<(Uuid, String)> {
    sqlx::query_as(
        "SELECT t.id, t.carrier_auth_token FROM phone_numbers n JOIN tenants t ON t.id = n.tenant_id
         WHERE n.number = $1",
    )
    .bind(number)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("phone number"))
}

/// A tenant's carrier auth token.
pub(crate) async fn tenant_token(state: &AppState, tenant_id: Uuid) -> ApiResult<String> {
    sqlx::query_scalar("SELECT carrier_auth_token FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

switchboard_core::text_enum! {
    /// What the carrier is to do, or what was made, for inbound traffic.
    pub enum AckAction {
        /// An inbound call: ring the agent (`agent_id`).
        Connect = "connect",
        /// An inbound call nobody can take: record a message; a recording of
        /// such a call: it became a voicemail.
        Voicemail = "voicemail",
        /// A recording of a call an agent took: kept as the call's recording.
        Recording = "recording",
        /// An inbound SMS with a stop keyword: the sender is opted out.
        OptedOut = "opted_out",
        /// An inbound SMS with a start keyword: the sender is opted in again.
        OptedIn = "opted_in",
        /// An inbound SMS asking for help: `reply` holds the tenant's help text.
        Help = "help",
        /// An inbound SMS with no keyword.
        None = "none",
    }
}

/// What a webhook answers: an acknowledgement, and for inbound traffic a
/// routing decision or reply, also rendered as TwiML for carriers that want it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct WebhookAck {
    /// What the webhook did.
    pub result: AckResult,
    /// The call the webhook was about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<Uuid>,
    /// The message the webhook was about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    /// Inbound traffic: what the carrier is to do, or what was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<AckAction>,
    /// Inbound calls routed to an agent: that agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// The customer the sender is, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// Text the carrier should send back to the sender (inbound SMS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The same decision as TwiML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twiml: Option<String>,
}

impl WebhookAck {
    /// An answer saying only `result`.
    pub fn result(result: AckResult) -> Self {
        Self {
            result,
            call_id: None,
            message_id: None,
            action: None,
            agent_id: None,
            customer_id: None,
            reply: None,
            twiml: None,
        }
    }
}

/// Escapes text for TwiML.
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Connections of the pool the reports' lanes share (call statuses and SMS
/// receipts, lookups and applies: 16 lanes, rarely all busy at once; a lane
/// that finds none waits its turn, and its batch grows meanwhile).
pub const BATCH_CONNECTIONS: u32 = 8;

/// A carrier's reports on records it knows by SID (call status callbacks,
/// SMS receipts), in groups (see `switchboard_core::group_commit`): find
/// the record by its SID, then apply the change its handler decided, only
/// if the record is still where the decision was made.
pub struct Reports<Target, Change, Record> {
    /// SID → the record and its tenant's carrier token (`None`: unknown SID).
    pub lookup: GroupCommit<String, Option<Target>>,
    /// The updated record, or `None` when it had moved on meanwhile.
    pub apply: GroupCommit<Change, Option<Record>>,
}

impl<T, C, R> Clone for Reports<T, C, R> {
    fn clone(&self) -> Self {
        Self {
            lookup: self.lookup.clone(),
            apply: self.apply.clone(),
        }
    }
}

/// What a report's handler decided about the record as it found it.
pub enum Decision<C, A> {
    /// Apply this change (if the record is still where it was decided).
    Apply(C),
    /// Change nothing: answer the carrier with this.
    Answer(A),
}

/// How a report ended.
pub enum Settled<R, A> {
    /// The change was applied: the updated record.
    Applied(R),
    /// The handler decided to change nothing.
    Answered(A),
}

impl<T, C, R> Reports<T, C, R>
where
    T: Send + 'static,
    C: Send + 'static,
    R: Send + 'static,
{
    /// How many batches of each kind may be in the database at once.
    const LANES: usize = 4;
    /// The largest batch (bounds one statement's size and lock set).
    const MAX_BATCH: usize = 256;
    /// Rounds one report may lose to concurrent changes of its record: each
    /// lost round sees a later status, and there are fewer statuses.
    const MAX_ROUNDS: usize = 8;

    /// Settles a report on the record `sid` names (`what` it is, for the
    /// 404): finds the record, lets `decide` judge the report against it,
    /// and applies the change decided only if the record is still where the
    /// decision was made. A concurrent change to the same record makes the
    /// apply match nothing: the record is read and judged again. Statuses
    /// only move forward, so this ends within a few rounds.
    pub async fn settle<A>(
        &self,
        sid: &str,
        what: &'static str,
        mut decide: impl FnMut(T) -> ApiResult<Decision<C, A>>,
    ) -> ApiResult<Settled<R, A>> {
        for _ in 0..Self::MAX_ROUNDS {
            let target = self
                .lookup
                .call(sid.to_string())
                .await?
                .ok_or_else(|| ApiError::not_found(what))?;
            let change = match decide(target)? {
                Decision::Apply(change) => change,
                Decision::Answer(answer) => return Ok(Settled::Answered(answer)),
            };
            if let Some(record) = self.apply.call(change).await? {
                return Ok(Settled::Applied(record));
            }
        }
        Err(ApiError::internal(anyhow::anyhow!(
            "the {what} {sid} kept changing under a carrier report"
        )))
    }

    /// Starts the lanes (inside a Tokio runtime); `names` are the batch
    /// metrics' `op` for the lookups and for the applies.
    pub fn start<L, LF, A, AF>(db: &PgPool, names: [&'static str; 2], lookup: L, apply: A) -> Self
    where
        L: Fn(PgPool, Vec<String>) -> LF + Send + Sync + 'static,
        LF: Future<Output = anyhow::Result<Vec<Option<T>>>> + Send + 'static,
        A: Fn(PgPool, Vec<C>) -> AF + Send + Sync + 'static,
        AF: Future<Output = anyhow::Result<Vec<Option<R>>>> + Send + 'static,
    {
        let [lookup_name, apply_name] = names;
        Self {
            lookup: GroupCommit::spawn_with(
                lookup_name,
                Self::LANES,
                Self::MAX_BATCH,
                db.clone(),
                lookup,
            ),
            apply: GroupCommit::spawn_with(
                apply_name,
                Self::LANES,
                Self::MAX_BATCH,
                db.clone(),
                apply,
            ),
        }
    }
}

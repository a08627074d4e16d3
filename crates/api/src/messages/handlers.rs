//! Sending, listing and reading messages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sqlx::PgConnection;
use switchboard_core::calls::Direction;
use switchboard_core::events::EventType;
use switchboard_core::ids::new_id;
use switchboard_core::jobs::{self, SmsSend};
use switchboard_core::records::MESSAGE_COLUMNS;
use switchboard_core::sms::{MessageStatus, segment};
use switchboard_core::templates::{TemplateError, Variables, customer_variables, render};
use uuid::Uuid;

use super::{ListMessagesQuery, MESSAGES, Message, SendMessage, validate_body};
use crate::auth::TenantRequest;
use crate::by_id::RecordRequest;
use crate::customers::parse_phone;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::idempotency::IdempotencyKey;
use crate::pagination::{Listing, Page};

/// Sends an SMS: validated, stored `queued`, then handed to the `sms.send`
/// queue. Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 201, body = Message),
        (status = 422, body = ErrorBody, description = "Invalid field; `recipient_opted_out` when the recipient replied STOP; \
            `template_variables_missing` naming the placeholders without a value"),
    ))]
pub async fn send_message(
    TenantRequest { state, principal }: TenantRequest,
    key: IdempotencyKey,
    Json(req): Json<SendMessage>,
) -> ApiResult<Response> {
    let to = parse_phone(&req.to, &state.settings.default_region, "to")?;
    match (&req.body, &req.template_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "template_id",
                "give either body or template_id, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::validation(
                "body",
                "give either body or template_id",
            ));
        }
        (Some(body), None) => {
            validate_body(body, "body")?;
            if req.variables.is_some() {
                return Err(ApiError::validation(
                    "variables",
                    "variables only apply with template_id",
                ));
            }
        }
        (None, Some(_)) => {}
    }

    // Every check below runs inside the transaction: a refusal rolls it
    // back, so a refused send leaves nothing behind (not even its key).
    let (mut tx, claim) = match key.begin(&state.db, principal.tenant_id, &req).await? {
        Ok(begun) => begun,
        Err(replay) => return Ok(replay),
    };

    ensure_not_opted_out(&mut tx, principal.tenant_id, &to).await?;
    let customer = resolve_customer(&mut tx, principal.tenant_id, req.customer_id, &to).await?;
    let body = match req.template_id {
        // Validated above: without a template, the body is present and fits.
        None => req.body.unwrap_or_default(),
        Some(template_id) => {
            let template: String =
                sqlx::query_scalar("SELECT body FROM templates WHERE tenant_id = $1 AND id = $2")
                    .bind(principal.tenant_id)
                    .bind(template_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| ApiError::validation("template_id", "no such template"))?;
            let mut variables = customer
                .as_ref()
                .map(CustomerFields::variables)
                .unwrap_or_default();
            variables.extend(req.variables.unwrap_or_default());
            let body = render_template(&template, &variables)?;
            validate_body(&body, "template_id")?;
            body
        }
    };
    let from = sender_number(&mut tx, principal.tenant_id).await?;

    let segmentation = segment(&body);
    let message: Message = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status,
             segments, encoding, carrier_sid, customer_id, template_id, agent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(new_id())
    .bind(principal.tenant_id)
    .bind(Direction::Outbound)
    .bind(from)
    .bind(&to)
    .bind(&body)
    .bind(MessageStatus::Queued)
    .bind(i16::try_from(segmentation.segments).unwrap_or(i16::MAX))
    .bind(segmentation.encoding)
    .bind(switchboard_core::carrier::new_sid("SM"))
    .bind(customer.as_ref().map(|c| c.id))
    .bind(req.template_id)
    .bind(principal.agent_id())
    .fetch_one(&mut *tx)
    .await?;
    // The worker sends it in both carrier modes.
    jobs::enqueue(
        &mut *tx,
        &SmsSend {
            tenant_id: message.tenant_id,
            message_id: message.id,
        },
    )
    .await?;
    claim.commit(tx, &message).await?;

    metrics::counter!("messages_created_total", "direction" => "outbound").increment(1);
    tracing::info!(tenant_id = %message.tenant_id, message_id = %message.id, "message queued");
    state
        .events
        .publish_new(principal.tenant_id, EventType::MessageCreated, &message)
        .await;
    Ok((StatusCode::CREATED, Json(message)).into_response())
}

/// Refuses a recipient who opted out (replied STOP) of this tenant's messages.
pub(crate) async fn ensure_not_opted_out(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    to: &str,
) -> ApiResult<()> {
    let keyword: Option<String> =
        sqlx::query_scalar("SELECT keyword FROM opt_outs WHERE tenant_id = $1 AND phone = $2")
            .bind(tenant_id)
            .bind(to)
            .fetch_optional(&mut *conn)
            .await?;
    match keyword {
        None => Ok(()),
        Some(keyword) => Err(ApiError::unprocessable(
            "recipient_opted_out",
            format!(
                "the recipient opted out of messages (replied {keyword}); \
                 nothing was sent, and nothing can be until they reply START"
            ),
        )
        .with_field("to")),
    }
}

/// The customer fields a template can use.
#[derive(Debug, sqlx::FromRow)]
struct CustomerFields {
    id: Uuid,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    company: Option<String>,
}

impl CustomerFields {
    fn variables(&self) -> Variables {
        customer_variables(
            &self.name,
            self.email.as_deref(),
            self.phone.as_deref(),
            self.company.as_deref(),
        )
    }
}

/// The customer a message is about: the one named (which must be the
/// tenant's), else the one whose phone is the recipient's, if any.
async fn resolve_customer(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    customer_id: Option<Uuid>,
    to: &str,
) -> ApiResult<Option<CustomerFields>> {
    const COLUMNS: &str = "id, name, email, phone, company";
    match customer_id {
        Some(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM customers WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(Some)
        .ok_or_else(|| ApiError::validation("customer_id", "no such customer")),
        None => Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM customers WHERE tenant_id = $1 AND phone = $2"
        )))
        .bind(tenant_id)
        .bind(to)
        .fetch_optional(&mut *conn)
        .await?),
    }
}

/// Renders a stored template; a placeholder without a value is the caller's
/// to fix, and the error names every one.
fn render_template(template: &str, variables: &Variables) -> ApiResult<String> {
    render(template, variables).map_err(|error| match error {
        TemplateError::Missing(names) => ApiError::unprocessable(
            "template_variables_missing",
            format!(
                "the template needs values for: {} (pass them in variables, or set them on the customer)",
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
        .with_field("variables"),
        // Templates are validated when saved; this only guards old rows.
        TemplateError::Unterminated(_) | TemplateError::BadName(_) => {
            ApiError::validation("template_id", format!("the template is malformed: {error}"))
        }
    })
}

/// The number the tenant sends from: its default number, else its lowest.
pub(crate) async fn sender_number(conn: &mut PgConnection, tenant_id: Uuid) -> ApiResult<String> {
    sqlx::query_scalar(
        "SELECT number FROM phone_numbers WHERE tenant_id = $1
         ORDER BY is_default DESC, number LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        ApiError::unprocessable(
            "no_sender_number",
            "this tenant has no phone number to send from",
        )
    })
}

/// Lists messages, newest first, with full-text search and filters.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", security(("bearer" = [])),
    params(Listing<ListMessagesQuery>),
    responses(
        (status = 200, body = Page<Message>),
    ))]
pub async fn list_messages(
    TenantRequest { state, principal }: TenantRequest,
    Listing(query, request): Listing<ListMessagesQuery>,
) -> ApiResult<Json<Page<Message>>> {
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 200) {
        return Err(
            ApiError::bad_request("invalid_query", "q must be at most 200 characters")
                .with_field("q"),
        );
    }

    // Only the filters given appear in the SQL, so each query can use the
    // index that fits it (the GIN index on body_tsv for `q`).
    let mut sql = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = "
    ));
    sql.push_bind(principal.tenant_id);
    if let Some(q) = q {
        sql.push(" AND body_tsv @@ plainto_tsquery('simple', ")
            .push_bind(q.to_string())
            .push(")");
    }
    if let Some(status) = query.status {
        sql.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(direction) = query.direction {
        sql.push(" AND direction = ").push_bind(direction.as_str());
    }
    if let Some(customer_id) = query.customer_id {
        sql.push(" AND customer_id = ").push_bind(customer_id);
    }
    if let Some(after) = request.after {
        sql.push(" AND id < ").push_bind(after);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(request.fetch());
    let rows: Vec<Message> = sql.build_query_as().fetch_all(&state.db).await?;
    Ok(Json(request.page(rows, |m| m.id)))
}

/// Gets one message.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = Message),
    ))]
pub async fn get_message(request: RecordRequest) -> ApiResult<Json<Message>> {
    request.fetch(&MESSAGES).await.map(Json)
}

//! Customer CRUD, phone lookup, search and notes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchboard_core::events::EventType;
use switchboard_core::ids::new_id;
use switchboard_core::search::search_pattern;

use super::{
    CUSTOMER_COLUMNS, CUSTOMERS, CreateCustomer, CreateNote, Customer, ListCustomersQuery,
    MAX_NOTE_CHARS, Note, UpdateCustomer, customer_by_phone, parse_phone,
};
use crate::auth::TenantRequest;
use crate::by_id::RecordRequest;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::idempotency::IdempotencyKey;
use crate::pagination::{Listing, Page};

/// Lists customers, newest first; `phone` looks one up, `q` searches.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", security(("bearer" = [])),
    params(Listing<ListCustomersQuery>),
    responses(
        (status = 200, body = Page<Customer>),
        (status = 422, body = ErrorBody, description = "`phone` is not a phone number"),
    ))]
pub async fn list_customers(
    TenantRequest { state, principal }: TenantRequest,
    Listing(query, request): Listing<ListCustomersQuery>,
) -> ApiResult<Json<Page<Customer>>> {
    let rows: Vec<Customer> = if let Some(phone) = query.phone.as_deref() {
        let phone = parse_phone(phone, &state.settings.default_region, "phone")?;
        // Numbers are unique per tenant: the first page is that customer or
        // nobody, which the cache answers.
        if request.after.is_none() {
            let found = customer_by_phone(&state, principal.tenant_id, &phone).await?;
            return Ok(Json(request.page(found.into_iter().collect(), |c| c.id)));
        }
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers
             WHERE tenant_id = $1 AND phone = $2 AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(principal.tenant_id)
        .bind(phone)
        .bind(request.after)
        .bind(request.fetch())
        .fetch_all(&state.db)
        .await?
    } else if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 100 {
            return Err(
                ApiError::bad_request("invalid_query", "q must be at most 100 characters")
                    .with_field("q"),
            );
        }
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers
             WHERE tenant_id = $1 AND search_text LIKE $2 AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        )))
        .bind(principal.tenant_id)
        .bind(search_pattern(q))
        .bind(request.after)
        .bind(request.fetch())
        .fetch_all(&state.db)
        .await?
    } else {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers
             WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(principal.tenant_id)
        .bind(request.after)
        .bind(request.fetch())
        .fetch_all(&state.db)
        .await?
    };
    Ok(Json(request.page(rows, |c| c.id)))
}

/// Creates a customer. Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/customers", tag = "customers", security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 201, body = Customer),
        (status = 409, body = ErrorBody, description = "Another customer has this phone number"),
    ))]
pub async fn create_customer(
    TenantRequest { state, principal }: TenantRequest,
    key: IdempotencyKey,
    Json(req): Json<CreateCustomer>,
) -> ApiResult<Response> {
    let fields = req.validate(&state.settings.default_region)?;
    let (mut tx, claim) = match key.begin(&state.db, principal.tenant_id, &req).await? {
        Ok(begun) => begun,
        Err(replay) => return Ok(replay),
    };
    let customer: Customer = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO customers (id, tenant_id, name, email, phone, company, tags, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {CUSTOMER_COLUMNS}"
    )))
    .bind(new_id())
    .bind(principal.tenant_id)
    .bind(&fields.name)
    .bind(&fields.email)
    .bind(&fields.phone)
    .bind(&fields.company)
    .bind(&fields.tags)
    .bind(&fields.metadata)
    .fetch_one(&mut *tx)
    .await?;
    claim.commit(tx, &customer).await?;
    state
        .events
        .publish_new(principal.tenant_id, EventType::CustomerCreated, &customer)
        .await;
    Ok((StatusCode::CREATED, Json(customer)).into_response())
}

/// Gets one customer.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = Customer),
    ))]
pub async fn get_customer(request: RecordRequest) -> ApiResult<Json<Customer>> {
    request.fetch(&CUSTOMERS).await.map(Json)
}

/// Updates some fields of a customer (`null` clears an optional field).
#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = Customer),
        (status = 409, body = ErrorBody, description = "Another customer has this phone number"),
    ))]
pub async fn update_customer(
    RecordRequest(TenantRequest { state, principal }, id): RecordRequest,
    Json(patch): Json<UpdateCustomer>,
) -> ApiResult<Json<Customer>> {
    let changes = patch.validate(&state.settings.default_region)?;
    // One statement, merged in SQL: one round trip and its own commit,
    // where reading the row first took four (an update is what the cache
    // scenario times as "set").
    let customer: Customer = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE customers
         SET name = coalesce($3, name),
             email = CASE WHEN $4 THEN $5 ELSE email END,
             phone = CASE WHEN $6 THEN $7 ELSE phone END,
             company = CASE WHEN $8 THEN $9 ELSE company END,
             tags = coalesce($10, tags),
             metadata = coalesce($11, metadata),
             updated_at = now()
         WHERE tenant_id = $1 AND id = $2
         RETURNING {CUSTOMER_COLUMNS}"
    )))
    .bind(principal.tenant_id)
    .bind(id)
    .bind(changes.name)
    .bind(changes.email.is_some())
    .bind(changes.email.flatten())
    .bind(changes.phone.is_some())
    .bind(changes.phone.flatten())
    .bind(changes.company.is_some())
    .bind(changes.company.flatten())
    .bind(changes.tags)
    .bind(changes.metadata)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("customer"))?;
    state
        .events
        .publish_new(principal.tenant_id, EventType::CustomerUpdated, &customer)
        .await;
    Ok(Json(customer))
}

/// Deletes a customer and their notes; calls, messages and voicemails stay
/// (history is kept) but no longer point at the customer.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 204, description = "Deleted"),
    ))]
pub async fn delete_customer(request: RecordRequest) -> ApiResult<StatusCode> {
    request.delete(&CUSTOMERS).await?;
    let RecordRequest(TenantRequest { state, principal }, id) = request;
    state
        .events
        .publish_new(
            principal.tenant_id,
            EventType::CustomerDeleted,
            serde_json::json!({ "id": id }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a note to a customer's record.
#[utoipa::path(post, path = "/v1/customers/{id}/notes", tag = "customers", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 201, body = Note),
    ))]
pub async fn add_note(
    RecordRequest(TenantRequest { state, principal }, id): RecordRequest,
    Json(req): Json<CreateNote>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    let body = req.body.trim();
    if body.is_empty() || body.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::validation(
            "body",
            format!("body must be 1 to {MAX_NOTE_CHARS} characters"),
        ));
    }
    // The composite foreign key (tenant_id, customer_id) refuses another
    // tenant's customer; the error maps to 404.
    let note: Note = sqlx::query_as(
        "INSERT INTO customer_notes (id, tenant_id, customer_id, agent_id, body)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, customer_id, agent_id, body, created_at",
    )
    .bind(new_id())
    .bind(principal.tenant_id)
    .bind(id)
    .bind(principal.agent_id())
    .bind(body)
    .fetch_one(&state.db)
    .await?;
    state
        .events
        .publish_new(principal.tenant_id, EventType::CustomerNoteAdded, &note)
        .await;
    Ok((StatusCode::CREATED, Json(note)))
}

//! The OpenAPI document: generated from the handlers' `#[utoipa::path]`
//! annotations as the routers are assembled, so it describes exactly the
//! routes that exist. Served at `/openapi.json`, rendered at `/docs`.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard API",
        description = "Telephony/CRM backend: calls, SMS, voicemail, customers, reporting.\n\n\
            Errors are always `{\"error\": {\"code\", \"message\", \"field\"?, \"request_id\"}}`.\n\
            Lists use cursor pagination: `limit` and `cursor` in, `next_cursor` out.",
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody)),
    tags(
        (name = "auth", description = "Login, logout and the current principal"),
        (name = "customers", description = "Customers (CRM)"),
        (name = "agents", description = "Agents and their presence"),
        (name = "calls", description = "Calls: originate, history, agent controls"),
        (name = "voicemails", description = "Voicemail"),
        (name = "reports", description = "Summaries, call detail records, agent statistics"),
        (name = "ops", description = "Health, readiness and metrics"),
        (name = "messages", description = "SMS: send, list, search"),
        (name = "templates", description = "SMS templates with placeholders"),
        (name = "campaigns", description = "Bulk SMS campaigns and their progress"),
        (name = "imports", description = "Bulk customer imports from CSV files"),
        (name = "webhook endpoints", description = "Where the tenant's events are delivered (HMAC-SHA256 signed)"),
        (name = "webhooks", description = "Carrier callbacks (form-encoded, signed with X-Twilio-Signature)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(
                        "JWT access token from /v1/auth/login, or a tenant API key (sbk_...)",
                    )
                    .build(),
            ),
        );
    }
}

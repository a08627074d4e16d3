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
        (name = "ops", description = "Health, readiness and metrics"),
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

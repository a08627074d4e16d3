//! The OpenAPI document: generated from the handlers' `#[utoipa::path]`
//! annotations as the routers are assembled, so it describes exactly the
//! routes that exist. Served at `/openapi.json`, rendered at `/docs`.

use std::collections::BTreeMap;

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Schema, Type,
};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard API",
        description = "Telephony/CRM backend: calls, SMS, voicemail, customers, reporting.\n\n\
            Errors are always `{\"error\": {\"code\", \"message\", \"field\"?, \"request_id\"}}`.\n\
            Lists use cursor pagination: `limit` and `cursor` in, `next_cursor` out.\n\n\
            Text: no string anywhere in a request (JSON values and keys, query and path \
            parameters, carrier form parameters) may hold a control character (U+0000–U+001F, \
            U+007F–U+009F), except line breaks and tabs in free text: message, note and template \
            `body`, and `metadata` values. A JSON body breaking this is a 422, a query or path \
            parameter a 400, naming the field. An empty query parameter (`?status=`) is absent. \
            An inbound SMS `Body` keeps its text with each such character replaced by U+FFFD.",
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
/// The document's fixed parts; the paths come from the routers.
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

/// Adds the error responses an operation can give by its shape alone, so the
/// handlers' annotations list only what is particular to them (and what they
/// list, with its description, is kept):
///
/// - every operation: 503 (the request timeout, or no database connection
///   within the acquire timeout);
/// - one with bearer security: 401;
/// - one with path, query or header parameters: 400 (the extractors refuse a
///   malformed, unknown or control-character value; a list, its `limit` out
///   of range or a cursor it did not issue), and 404 when it has a path
///   parameter (an unknown id, or another tenant's);
/// - one with a JSON body: 400 (not JSON), 413 (over the body limit), 415
///   (another content type), 422 (a field's value, named in `field`);
/// - one with a form body (the carrier webhooks): 400 (not UTF-8), 413, 415;
///   another body (the CSV of an import): 413, 415;
/// - one taking `Idempotency-Key`: its 422 also says a reused key is refused.
///
/// Where two of these give one status (a 400 for a parameter and for the
/// body), its description says both.
///
/// Run on the assembled document ([`crate::openapi_document`], [`crate::app`]),
/// after every route's own annotations are in.
pub fn add_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if matches!(parameter.parameter_in, ParameterIn::Query) {
                    not_nullable(parameter.schema.as_mut());
                }
            }
            // A status two rules give (a 400 for a parameter and for the
            // body) gets both descriptions, in order.
            let mut errors: BTreeMap<u16, String> = BTreeMap::new();
            for (status, description) in common_errors(operation) {
                match errors.get_mut(&status) {
                    Some(known) => {
                        *known = format!(
                            "{known}; {}",
                            with_first_letter(description, str::make_ascii_lowercase)
                        )
                    }
                    None => _ = errors.insert(status, description.to_string()),
                }
            }
            for (status, description) in errors {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(&description));
            }
            if takes_idempotency_key(operation) {
                add_to_description(operation, 422, IDEMPOTENCY_KEY_REUSED);
            }
        }
    }
}

/// How a create that takes `Idempotency-Key` refuses a key it has seen with
/// another request ([`crate::idempotency`]): added to its own 422, so no
/// handler words it again.
const IDEMPOTENCY_KEY_REUSED: &str =
    "the `Idempotency-Key` was used before with another request (`idempotency_key_reused`)";

fn takes_idempotency_key(operation: &Operation) -> bool {
    operation.parameters.iter().flatten().any(|p| {
        matches!(p.parameter_in, ParameterIn::Header)
            && p.name
                .eq_ignore_ascii_case(crate::idempotency::IDEMPOTENCY_KEY.as_str())
    })
}

/// Adds `clause` to the description of the error `status` ("…; `clause`"),
/// creating the response when the operation has none.
fn add_to_description(operation: &mut Operation, status: u16, clause: &str) {
    let responses = &mut operation.responses.responses;
    match responses.get_mut(&status.to_string()) {
        Some(RefOr::T(response)) => {
            response.description = format!("{}; {clause}", response.description);
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let sentence = with_first_letter(clause, str::make_ascii_uppercase);
            responses.insert(status.to_string(), error_response(&sentence));
        }
    }
}

/// `text` with its first letter (ASCII) changed by `case`: a sentence
/// continued after another, or a clause made a sentence.
fn with_first_letter(text: &str, case: fn(&mut str)) -> String {
    let mut text = text.to_string();
    if let Some(first) = text.get_mut(..1) {
        case(first);
    }
    text
}

fn common_errors(operation: &Operation) -> Vec<(u16, &'static str)> {
    let mut errors = vec![(
        503,
        "The request timed out, or the service is overloaded; retry shortly",
    )];
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        errors.push((401, "Missing, invalid, expired or revoked credentials"));
    }
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let in_path = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    // A list ([`crate::pagination::Listing`]) also refuses its page parameters.
    let listed = parameters
        .iter()
        .any(|p| p.name == "cursor" && matches!(p.parameter_in, ParameterIn::Query));
    let refused = match (in_path, listed) {
        (true, true) => Some(
            "The id is not a UUID, `limit` is out of range, `cursor` is not one this API \
             issued, or a parameter is malformed, unknown or holds a control character (named \
             in `field`)",
        ),
        (true, false) => Some(
            "The id is not a UUID, or a parameter is malformed, unknown or holds a control \
             character (named in `field`)",
        ),
        (false, true) => Some(
            "`limit` is out of range, `cursor` is not one this API issued, or a parameter is \
             malformed, unknown or holds a control character (named in `field`)",
        ),
        (false, false) if !parameters.is_empty() => Some(
            "A malformed or unknown parameter, or one holding a control character (named in \
             `field`)",
        ),
        (false, false) => None,
    };
    errors.extend(refused.map(|description| (400, description)));
    if in_path {
        errors.push((
            404,
            "No such resource (another tenant's ids are not found either)",
        ));
    }
    if let Some(body) = &operation.request_body {
        let json = body.content.keys().any(|media| media.ends_with("json"));
        let form = body
            .content
            .keys()
            .any(|media| media == "application/x-www-form-urlencoded");
        if json {
            errors.push((400, "The body is not valid JSON"));
        } else if form {
            errors.push((400, "The form is not UTF-8"));
        }
        errors.push((413, "The body is larger than the configured limit"));
        errors.push((415, "The body is not of the documented content type"));
        if json {
            errors.push((
                422,
                "A field holds an unacceptable value (named in `field`): wrong type, missing, \
                 unknown, out of range, or a control character where none is allowed",
            ));
        }
    }
    errors
}

/// An error answer in the API's shape ([`crate::error::ErrorBody`]).
pub(crate) fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// A header an extractor reads, documented by the extractor's `IntoParams`
/// so every operation taking it describes it alike.
pub(crate) fn header_param(
    name: &str,
    required: Required,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(required)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// What `Idempotency-Key` accepts (see [`crate::idempotency`]): 1 to 255
/// visible ASCII characters.
pub(crate) fn idempotency_key_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some("^[!-~]{1,255}$"))
        .into()
}

/// An optional query parameter is absent or has a value: there is no query
/// `null` (an empty `?status=` is a value, refused where it is not one).
fn not_nullable(schema: Option<&mut RefOr<Schema>>) {
    if let Some(RefOr::T(Schema::Object(object))) = schema
        && let SchemaType::Array(types) = &object.schema_type
        && let Some(kind) = types.iter().find(|t| !matches!(t, Type::Null))
    {
        object.schema_type = SchemaType::Type(kind.clone());
    }
}

/// Schema-only types for the items of request arrays, which field
/// attributes cannot constrain.
pub mod items {
    use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
    use utoipa::{PartialSchema, ToSchema};

    /// A customer tag: 1 to 50 characters (stored trimmed and lowercased).
    pub struct Tag;

    impl PartialSchema for Tag {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("1 to 50 characters; stored trimmed and lowercased"))
                .min_length(Some(1))
                .max_length(Some(50))
                .pattern(Some("\\S"))
                .into()
        }
    }

    impl ToSchema for Tag {}

    /// An event type a webhook endpoint subscribes to.
    pub struct EventTypeName;

    impl PartialSchema for EventTypeName {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "An event type: what a webhook endpoint subscribes to, and what each \
                     delivery's `type` names",
                ))
                .enum_values(Some(
                    switchboard_core::events::EventType::ALL
                        .iter()
                        .map(|t| t.as_str()),
                ))
                .into()
        }
    }

    impl ToSchema for EventTypeName {}
}

/// Asserts that `T`'s schema (what clients see of it) has exactly the fields
/// of the shared `record`, which SQL reads it with and events carry.
#[cfg(test)]
pub(crate) fn assert_same_fields<T: utoipa::PartialSchema>(
    record: &[switchboard_core::records::Field],
) {
    let RefOr::T(Schema::Object(object)) = T::schema() else {
        panic!("not an object schema");
    };
    let in_schema: Vec<String> = object.properties.into_keys().collect();
    let mut in_record: Vec<&str> = switchboard_core::records::names(record).collect();
    in_record.sort_unstable();
    assert_eq!(in_schema, in_record);
}

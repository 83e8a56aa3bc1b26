//! The OpenAPI document: collected from the registered routes (see `app::with_routes`), then given
//! what every operation shares: the optional bearer scheme and the 422 answer.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};

/// Name of the bearer scheme, as v1.1.0 declares it.
const BEARER: &str = "HTTPBearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Honcho API",
        version = "1.1.0",
        description = "User memory for AI agents: apps, users, sessions, messages, metamessages and collections. API keys (`Authorization: Bearer ...`) are needed only when the server runs with `USE_AUTH=true`; with authentication off the lock icons can be ignored."
    ),
    components(schemas(HttpValidationError, ValidationError))
)]
struct ApiDoc;

/// One validation problem, as FastAPI reports it.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ValidationError {
    /// Where the problem is: `body`, `query` or `path`, then field names and list indexes.
    loc: Vec<LocItem>,
    msg: String,
    #[schema(rename = "type")]
    r#type: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = LocItem)]
#[serde(untagged)]
enum LocItem {
    Field(String),
    Index(i64),
}

/// A 422 answer.
#[derive(ToSchema)]
#[schema(as = HTTPValidationError)]
#[allow(dead_code)]
struct HttpValidationError {
    detail: Vec<ValidationError>,
}

/// The document every route is added to.
pub(crate) fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// An error answer other than a validation list: `{"detail": "..."}`.
#[derive(ToSchema)]
#[schema(as = HTTPError)]
#[allow(dead_code)]
struct HttpError {
    detail: String,
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("HTTPError")))
                .build(),
        )
        .build()
}

/// Adds the bearer scheme and every error answer the server really gives to each operation: 401
/// (authentication), 404, 405, 408/413 (bodies), 409, 422 (a validation list, or a rule's detail),
/// 502 (embedding provider) and 503 (database outage, with `Retry-After`).
pub(crate) fn finish(mut api: OpenApi) -> OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components
        .schemas
        .insert("HTTPError".into(), HttpError::schema());
    let unprocessable = ResponseBuilder::new()
        .description("Validation Error")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(
                    OneOfBuilder::new()
                        .item(Ref::from_schema_name("HTTPValidationError"))
                        .item(Ref::from_schema_name("HTTPError")),
                ))
                .build(),
        )
        .build();
    let unavailable = {
        let mut r = error_response(
            "The database is unavailable (unreachable, connection lost, disk full, read-only); \
             nothing was stored",
        );
        r.headers.insert(
            "Retry-After".into(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
        r
    };
    for (path, item) in api.paths.paths.iter_mut() {
        let ops: [&mut Option<Operation>; 4] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            op.security = Some(vec![
                SecurityRequirement::new(BEARER, Vec::<String>::new()),
                SecurityRequirement::default(),
            ]);
            let id = op.operation_id.clone().unwrap_or_default();
            let keys = path.starts_with("/v1/keys");
            if !path.starts_with("/v1/") {
                continue;
            }
            // Error responses a route declares (a 409 where a name can be taken) carry the error
            // body, as the ones added below do.
            for (status, response) in op.responses.responses.iter_mut() {
                if let utoipa::openapi::RefOr::T(declared) = response {
                    if !status.starts_with('2') && declared.content.is_empty() {
                        *response = error_response(&declared.description).into();
                    }
                }
            }
            let mut add = |status: &str, response: utoipa::openapi::Response| {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| response.into());
            };
            add(
                "401",
                error_response(
                    "No key, an invalid or expired key, or a key without this resource's scope \
                     (when USE_AUTH is on)",
                ),
            );
            let lists = path.ends_with("/list") && !path.ends_with("/documents/list");
            if !(keys || lists || id == "create_app_v1_apps_post") || path == "/v1/keys/{key_id}" {
                add("404", error_response("Not found"));
            }
            if keys {
                add(
                    "405",
                    error_response("Authentication is off: keys are disabled"),
                );
            }
            if op.request_body.is_some() {
                add(
                    "408",
                    error_response("The request body did not arrive in time"),
                );
                add("413", error_response("The request body is too large"));
            }
            add("422", unprocessable.clone());
            if id.starts_with("chat_") {
                add("405", error_response("No language model is configured"));
                add(
                    "502",
                    error_response("The language model or the embedding provider failed"),
                );
            }
            if path.contains("/documents") && op.request_body.is_some() {
                add("502", error_response("The embedding provider failed"));
            }
            add("503", unavailable.clone());
        }
    }
    api
}

/// `api` as pretty JSON.
pub(crate) fn to_json(api: &OpenApi) -> String {
    api.to_pretty_json()
        .expect("the OpenAPI document serialises")
}

/// `api` as YAML. It goes through JSON text: serde_json keeps numbers exactly
/// (`arbitrary_precision`), which only its own serialiser understands, and JSON is YAML, so the
/// YAML library reads the numbers (and the order of every map) back as written.
pub(crate) fn to_yaml(api: &OpenApi) -> String {
    let json: serde_norway::Value =
        serde_norway::from_str(&to_json(api)).expect("JSON text is YAML");
    serde_norway::to_string(&json).expect("the OpenAPI document serialises")
}

//! The OpenAPI document: collected from the registered routes (see `app::with_routes`), then given
//! what every operation shares: the optional bearer scheme and the 422 answer.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};

/// Name of the bearer scheme, as v1.1.0 declares it.
const BEARER: &str = "HTTPBearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Honcho API",
        version = "1.1.0",
        description = "User memory for AI agents: apps, users, sessions, messages, metamessages and collections."
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

/// Adds the bearer scheme and the 422 answer to every operation.
pub(crate) fn finish(mut api: OpenApi) -> OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let unprocessable = ResponseBuilder::new()
        .description("Validation Error")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("HTTPValidationError")))
                .build(),
        )
        .build();
    for item in api.paths.paths.values_mut() {
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
            op.responses
                .responses
                .entry("422".to_string())
                .or_insert_with(|| unprocessable.clone().into());
        }
    }
    api
}

/// The complete OpenAPI document of the server.
pub fn api_doc() -> OpenApi {
    crate::app::document()
}

/// The document as pretty JSON (what `GET /openapi.json` serves).
pub fn api_json() -> String {
    api_doc()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

/// The document as YAML (the committed `openapi.yaml`). It goes through JSON text: serde_json keeps
/// numbers exactly (`arbitrary_precision`), which only its own serialiser understands, and JSON is
/// YAML, so the YAML library reads the numbers (and the order of every map) back as written.
pub fn api_yaml() -> String {
    let json: serde_norway::Value = serde_norway::from_str(&api_json()).expect("JSON text is YAML");
    serde_norway::to_string(&json).expect("the OpenAPI document serialises")
}

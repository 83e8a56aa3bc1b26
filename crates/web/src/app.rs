//! The actix `App`: routes, shared state, body limit, request logging, docs.

use crate::dto::Health;
use crate::error::ApiError;
use crate::path::Spelling;
use crate::routes::{self, Features};
use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceFactory, ServiceRequest, ServiceResponse, Url};
use actix_web::http::uri::{PathAndQuery, Uri};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::web::{self, Data, Json};
use actix_web::{get, App, HttpRequest, HttpResponse};
use honcho_db::Db;
use utoipa::openapi::OpenApi;
use utoipa_actix_web::{scope, AppExt, UtoipaApp};
use utoipa_swagger_ui::SwaggerUi;

/// What the server shares with every request.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    /// API key checking; keys `None` when `USE_AUTH` is off.
    pub auth: crate::auth::AuthConfig,
    /// Whether new messages are queued for the deriver (only when insights are configured).
    pub enqueue_for_deriver: bool,
    /// The language models of the insights (`None`: insights off, `chat` answers 405).
    pub models: Option<honcho_domain::llm::Models>,
    /// Wakes this process's deriver workers when messages were queued (`None`: no workers here).
    pub deriver_signal: Option<std::sync::Arc<honcho_insights::Signal>>,
    /// The model that embeds documents and queries.
    pub embedder: std::sync::Arc<dyn honcho_domain::embed::Embedder>,
    /// How `documents/query` ranks (`RETRIEVAL_MODE`, `RETRIEVAL_LEXICAL_WEIGHT`).
    pub retrieval: honcho_domain::retrieval::Retrieval,
    /// Counts tokens for the session context.
    pub tokens: std::sync::Arc<dyn honcho_domain::context::TokenCounter>,
    /// How long a client has to send a request's body.
    pub body_timeout: std::time::Duration,
    /// Origins browsers may call the API from (`CORS_ORIGINS`); `None` is v1.1.0's list.
    pub cors_origins: Option<Vec<String>>,
}

/// v1.1.0's allowed origins.
pub const DEFAULT_CORS_ORIGINS: [&str; 2] = ["http://localhost", "http://127.0.0.1:8000"];

/// CORS as v1.1.0 sets it up (any method and header, credentials) for `origins`; `*` allows any
/// origin, without credentials.
fn cors(origins: Option<Vec<String>>) -> actix_cors::Cors {
    let origins =
        origins.unwrap_or_else(|| DEFAULT_CORS_ORIGINS.iter().map(|o| o.to_string()).collect());
    let base = actix_cors::Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_headers(["x-request-id"])
        .max_age(600)
        // As v1.1.0: a request from another origin is served, only without CORS headers (the
        // browser then withholds the answer); servers that send an Origin are not refused.
        .block_on_origin_mismatch(false);
    if origins.iter().any(|o| o == "*") {
        return base.allow_any_origin();
    }
    origins
        .iter()
        .fold(base.supports_credentials(), |cors, origin| {
            cors.allowed_origin(origin)
        })
}

/// Every documented route. Both the served app and the OpenAPI document are built from this.
fn with_routes<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.service(scope("/v1").configure(routes::configure))
        .service(health)
        .service(crate::observe::serve_metrics)
}

/// The complete OpenAPI document of the server, built from the route list without serving
/// anything.
pub fn api_doc() -> OpenApi {
    let (_, api) =
        with_routes(App::new().into_utoipa_app().openapi(crate::openapi::base())).split_for_parts();
    crate::openapi::finish(api)
}

/// The document as pretty JSON (what `GET /openapi.json` serves).
pub fn api_json() -> String {
    crate::openapi::to_json(&api_doc())
}

/// The document as YAML (the committed `openapi.yaml`).
pub fn api_yaml() -> String {
    crate::openapi::to_yaml(&api_doc())
}

/// Builds the application for one worker.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // Installed once per process, before the first request is counted.
    crate::observe::metrics();
    let state_cors = state.cors_origins.clone();
    let features = Features {
        enqueue_for_deriver: state.enqueue_for_deriver,
        models: state.models.clone(),
        deriver_signal: state.deriver_signal.clone(),
    };
    let (app, api) = with_routes(
        App::new()
            .into_utoipa_app()
            .openapi(crate::openapi::base())
            .app_data(Data::new(crate::auth::Gate::new(
                state.db.clone(),
                state.auth,
            )))
            .app_data(Data::new(crate::observe::Probe(state.db)))
            .app_data(Data::new(features))
            .app_data(Data::new(crate::extract::BodyTimeout(state.body_timeout)))
            .app_data(Data::from(state.embedder))
            .app_data(Data::new(state.retrieval))
            .app_data(Data::from(state.tokens))
            .app_data(web::PayloadConfig::new(crate::BODY_LIMIT)),
    )
    .split_for_parts();
    let api = crate::openapi::finish(api);
    app.app_data(Data::new(KnownPaths::of(&api)))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
        .route("/docs", web::get().to(docs_redirect))
        .default_service(web::to(unrouted))
        .wrap(from_fn(canonical_path))
        .wrap(cors(state_cors))
        .wrap(from_fn(crate::observe::observe_request))
}

/// Whether the server and its database answer.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer")
    )
)]
#[get("/health")]
async fn health(probe: Data<crate::observe::Probe>) -> Result<Json<Health>, ApiError> {
    let probe = probe.clone();
    match web::block(move || probe.0.ping()).await {
        Ok(Ok(())) => Ok(Json(Health {
            status: "ok".into(),
        })),
        _ => Err(ApiError::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            "Database unavailable".into(),
        )),
    }
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header(("location", "/docs/"))
        .finish()
}

/// The documented paths and their methods, to tell an unknown path (404) from a known path asked
/// with a method it does not serve (405). Only that choice is made here: routing and authorisation
/// belong to the router and `auth::Access`.
struct KnownPaths(Vec<(ResourceDef, Vec<&'static str>)>);

impl KnownPaths {
    fn of(api: &OpenApi) -> KnownPaths {
        let paths = api.paths.paths.iter().map(|(path, item)| {
            let methods = [
                ("DELETE", item.delete.is_some()),
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
            ];
            let served = methods.iter().filter(|(_, on)| *on).map(|(m, _)| *m);
            (ResourceDef::new(path.as_str()), served.collect())
        });
        KnownPaths(paths.collect())
    }

    /// Every method some documented path matching `path` serves, sorted.
    fn allowed(&self, path: &str) -> Vec<&'static str> {
        let mut methods: Vec<&'static str> = (self.0.iter())
            .filter(|(def, _)| def.is_match(path))
            .flat_map(|(_, methods)| methods.iter().copied())
            .collect();
        methods.sort_unstable();
        methods.dedup();
        methods
    }
}

/// A request no route took: 405 with `Allow` when its path is known, else 404, as FastAPI answers.
async fn unrouted(req: HttpRequest, known: Data<KnownPaths>) -> HttpResponse {
    let allowed = known.allowed(req.match_info().as_str());
    if allowed.is_empty() {
        return actix_web::ResponseError::error_response(&ApiError::not_found("Not Found"));
    }
    let mut res = actix_web::ResponseError::error_response(&ApiError::Status(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed".into(),
    ));
    res.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_str(&allowed.join(", "))
            .expect("method names are header-safe"),
    );
    res
}

/// Routes every request by its one spelling (see `crate::path`): equivalent spellings of a path reach
/// the same handler, whose `Access` then authorises the ids the router captured.
async fn canonical_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    match crate::path::normalize(req.path()) {
        Spelling::Canonical => {}
        Spelling::NotFound => return Ok(not_found_response(req)),
        Spelling::Rewrite(path) => {
            let mut parts = req.head().uri.clone().into_parts();
            let path_and_query = match parts.path_and_query.as_ref().and_then(|pq| pq.query()) {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let uri = PathAndQuery::try_from(path_and_query).ok().and_then(|pq| {
                parts.path_and_query = Some(pq);
                Uri::from_parts(parts).ok()
            });
            let Some(uri) = uri else {
                return Ok(not_found_response(req));
            };
            req.match_info_mut().set(Url::new(uri.clone()));
            req.head_mut().uri = uri;
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn not_found_response(req: ServiceRequest) -> ServiceResponse<actix_web::body::BoxBody> {
    req.into_response(actix_web::ResponseError::error_response(
        &ApiError::not_found("Not Found"),
    ))
}

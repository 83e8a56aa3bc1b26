//! What an operator sees: a request id on every response and log line, one log line per request,
//! and Prometheus metrics at `/metrics`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{get, HttpResponse};
use honcho_db::Db;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;
use tracing::Instrument;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Latency buckets (seconds) of every `*_seconds` histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metrics recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder can only be there if the embedding program installed one.
        let _ = metrics::set_global_recorder(recorder);
        // Histogram samples are kept until they are folded into their buckets, which happens only
        // at a scrape or an upkeep: without upkeep, a server nobody scrapes would hold every
        // request's latency for ever.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(METRICS_UPKEEP);
                upkeep.run_upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "the metrics' upkeep thread could not start");
        }
        handle
    })
}

/// Gauges the program running the server reads on each scrape (its allocator's figures, say): a
/// name and a value each. Set once, before serving; later calls change nothing.
pub fn set_process_gauges(read: ProcessGauges) {
    let _ = PROCESS_GAUGES.set(read);
}

/// Reads gauges of the process: a name and a value each.
pub type ProcessGauges = fn() -> Vec<(&'static str, f64)>;

static PROCESS_GAUGES: OnceLock<ProcessGauges> = OnceLock::new();

/// How often histogram samples are folded into their buckets.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// A request method as a metric label: the standard methods by name, any other as `OTHER`, so that
/// requests cannot create labels (and the memory they hold) without bound.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// The store for `/health` and `/metrics`, which only read: a ping, the pool's state and the
/// deriver queue's counts. (`/v1` handlers reach the store only through `auth::Access`.)
pub(crate) struct Probe(pub(crate) Db);

/// A client's request id is kept when it is sane: 1 to 128 visible ASCII characters.
fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Gives every request an id (the client's `X-Request-Id` when sane, else a new UUID), echoed on
/// the response and carried by every log line written while the request is served; records the
/// request's metrics by route template; writes one log line per request. No bodies are logged.
pub(crate) async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| sane(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let elapsed = start.elapsed();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    metrics::counter!(
        "honcho_http_requests_total",
        "method" => method_label(&method),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "honcho_http_request_duration_seconds",
        "method" => method_label(&method),
        "route" => route.clone()
    )
    .record(elapsed.as_secs_f64());
    tracing::info!(
        target: "honcho::http",
        %method,
        route = %route,
        status,
        latency_ms = format!("{:.2}", elapsed.as_secs_f64() * 1000.0),
        request_id = %request_id,
        "request"
    );
    Ok(res)
}

/// Prometheus metrics of this process: requests by route template, method and status with latency
/// histograms; the database pool (size, idle, checkout wait); the vector cache (bytes, hits, misses);
/// the deriver's queue (items by status, age of the oldest open one) and this process's items; and
/// what the process's allocator holds (allocated, active, metadata, resident and retained bytes).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Metrics in Prometheus' text format", content_type = "text/plain"),
        (status = 401, description = "With USE_AUTH on: neither the admin key nor METRICS_TOKEN was given")
    )
)]
#[get("/metrics")]
pub(crate) async fn serve_metrics(
    probe: Data<Probe>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, crate::error::ApiError> {
    // With authentication on, only the admin key or `METRICS_TOKEN` reads the metrics.
    crate::auth::check_metrics_access(&req)?;
    let pool = probe.0.pool_state();
    metrics::gauge!("honcho_db_pool_connections").set(f64::from(pool.connections));
    metrics::gauge!("honcho_db_pool_idle_connections").set(f64::from(pool.idle));
    metrics::gauge!("honcho_db_pool_max_connections").set(f64::from(pool.max_size));
    if let Some(read) = PROCESS_GAUGES.get() {
        for (name, value) in read() {
            metrics::gauge!(name).set(value);
        }
    }
    let db = probe.0.clone();
    let queue = actix_web::web::block(move || db.queue_depth()).await;
    if let Ok(Ok(counts)) = queue {
        use honcho_domain::queue::QueueStatus;
        for (status, n) in [
            (QueueStatus::Pending.as_str(), counts.pending),
            ("in_progress", counts.in_progress),
            (QueueStatus::Failed.as_str(), counts.failed),
        ] {
            metrics::gauge!("honcho_deriver_queue_items", "status" => status).set(n as f64);
        }
        let age = counts.oldest_open.map_or(0.0, |t| {
            (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!("honcho_deriver_oldest_pending_seconds").set(age);
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics().render()))
}

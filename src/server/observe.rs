//! Observability: Prometheus metrics (requests by route and status, latency histograms), and
//! where each answered request is logged and counted.

use super::access_log;
use crate::request_id;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustc_hash::FxHashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// The process's Prometheus registry.
pub type Metrics = PrometheusHandle;

/// Latency buckets, in seconds: from half a millisecond to ten seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the recorder on first use; every server in the process shares it.
pub fn metrics() -> &'static Metrics {
    static HANDLE: OnceLock<Metrics> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        let upkeep = handle.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

/// `GET /metrics` in Prometheus' text format.
pub fn metrics_router() -> Router {
    let handle = metrics();
    Router::new().route(
        "/metrics",
        get(move || async move {
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
                .into_response()
        }),
    )
}

/// Notes the route a request matched, for [`request_served`]: applied to every route of the
/// router, which alone knows which one matched.
#[derive(Clone, Copy, Default)]
pub struct RouteLayer;

impl<S> Layer<S> for RouteLayer {
    type Service = RecordRoute<S>;
    fn layer(&self, inner: S) -> RecordRoute<S> {
        RecordRoute { inner }
    }
}

#[derive(Clone)]
pub struct RecordRoute<S> {
    inner: S,
}

impl<S> Service<Request> for RecordRoute<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> S::Future {
        if let Some(route) = req.extensions().get::<MatchedPath>() {
            request_id::set_route(route);
        }
        self.inner.call(req)
    }
}

/// A request answered, as the access log and the metrics see it.
pub struct Served<'a> {
    pub request_id: &'a [u8],
    pub method: &'a str,
    pub path: &'a str,
    /// The route it matched; `None` for unknown paths.
    pub route: Option<&'a str>,
    pub status: u16,
    pub elapsed: Duration,
}

/// Logs one line for a request and counts it. The query string is left out: it may carry
/// secrets.
pub fn request_served(served: Served<'_>) {
    access_log::write(&served);
    record(
        served.route.unwrap_or("unmatched"),
        served.status,
        served.elapsed,
    );
}

/// Metric handles by route, then by status: looked up without allocating once they exist, by
/// a hash cheaper than the default one (the keys are our own routes, not attacker-chosen).
type RouteMetrics = (Histogram, Vec<(u16, Counter)>);
static BY_ROUTE: LazyLock<RwLock<FxHashMap<String, RouteMetrics>>> =
    LazyLock::new(Default::default);

fn record(route: &str, status: u16, elapsed: Duration) {
    {
        let known = BY_ROUTE.read().unwrap_or_else(|e| e.into_inner());
        if let Some((latency, counts)) = known.get(route)
            && let Some((_, count)) = counts.iter().find(|(s, _)| *s == status)
        {
            count.increment(1);
            latency.record(elapsed.as_secs_f64());
            return;
        }
    }
    metrics();
    let mut known = BY_ROUTE.write().unwrap_or_else(|e| e.into_inner());
    let (latency, counts) = known.entry(route.to_owned()).or_insert_with(|| {
        let latency = metrics::histogram!("handstamp_http_request_duration_seconds", "route" => route.to_owned());
        (latency, Vec::new())
    });
    if !counts.iter().any(|(s, _)| *s == status) {
        let labels = [("route", route.to_owned()), ("status", status.to_string())];
        counts.push((
            status,
            metrics::counter!("handstamp_http_requests_total", &labels),
        ));
    }
    let (_, count) = counts
        .iter()
        .find(|(s, _)| *s == status)
        .expect("just added");
    count.increment(1);
    latency.record(elapsed.as_secs_f64());
}

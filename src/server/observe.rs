//! Observability: `/metrics` (requests by route and status and latency histograms from
//! `request_metrics`, the rest from the Prometheus exporter), and where each answered request is
//! logged and counted.

use super::{access_log, request_metrics};
use crate::request_id;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// The process's Prometheus registry.
pub type Metrics = PrometheusHandle;

/// Installs the recorder on first use; every server in the process shares it.
pub fn metrics() -> &'static Metrics {
    static HANDLE: OnceLock<Metrics> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Counters and gauges only (HTTP requests are counted in `request_metrics`): nothing
        // gathers samples between scrapes, so no upkeep is needed.
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
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
                request_metrics::render() + &handle.render(),
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
    request_metrics::record(
        served.route.unwrap_or("unmatched"),
        served.status,
        served.elapsed,
    );
}

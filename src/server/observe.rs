//! Observability: `/metrics` (requests by route and status and latency histograms from
//! `request_metrics`, the rest from the Prometheus exporter), and where each answered request is
//! logged and counted.

use super::access_log::{self, Arrival};
use super::{ServeError, ServeOptions, request_metrics};
use crate::config::ServerSettings;
use crate::http::error::{ApiError, not_allowed};
use crate::request_id::{self, User};
use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::{Layer, Service};

/// Connections the metrics listener serves at once: a few scrapers, never a crowd.
const METRICS_CONNECTIONS: usize = 64;

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

/// The metrics in Prometheus' text format.
fn render() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        request_metrics::render() + &metrics().render(),
    )
        .into_response()
}

/// `GET /metrics` and nothing else, for the listener of `metrics_bind`.
fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(|| async { render() }).fallback(not_allowed))
        .fallback(|| async { ApiError::NotFound })
}

/// `/metrics` on the public listeners. The counts (logins, failed logins, routes) are for the
/// operator, so only loopback peers get them, others the 404 of an unknown path whatever the
/// method; with `metrics_bind` set, no one does.
pub fn public_metrics_router(settings: &ServerSettings) -> Router {
    if settings.metrics_bind.is_some() {
        return Router::new();
    }
    Router::new().route(
        "/metrics",
        any(|req: Request| async move {
            // No address (an app served without `Front::call_from`) counts as not local.
            let local = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback());
            match req.method() {
                _ if !local => Err(ApiError::NotFound),
                &Method::GET | &Method::HEAD => Ok(render()),
                other => Err(ApiError::MethodNotAllowed(other.clone())),
            }
        }),
    )
}

/// Serves `/metrics` alone on `listener`, over plain HTTP, until `shutdown` completes: the
/// management port of `metrics_bind`. `options` are the main listeners', with a connection
/// limit of its own so that neither side can starve the other.
pub async fn serve_metrics(
    listener: TcpListener,
    settings: &ServerSettings,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let options = ServeOptions {
        tls: None,
        max_connections: METRICS_CONNECTIONS,
        ..options.clone()
    };
    let app = super::layered(metrics_router(), settings);
    super::serve_with(vec![listener], app, options, shutdown).await
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

/// A request answered, as the metrics and the access log see it.
pub struct Served<'a> {
    pub request_id: &'a HeaderValue,
    /// The route it matched; `None` for unknown paths.
    pub route: Option<&'a str>,
    /// The user of a token verified for it.
    pub user: Option<User>,
    pub started: Instant,
    pub elapsed: Duration,
    /// What the access log noted as it arrived; `None` when the access log is off.
    pub arrival: &'a mut Option<Arrival>,
}

/// Counts a request answered with `response` (its head ready) and logs its line (see
/// [`access_log::answered`]).
pub fn request_served(served: Served<'_>, response: &mut Response) {
    request_metrics::record(
        served.route.unwrap_or("unmatched"),
        response.status().as_u16(),
        served.elapsed,
    );
    access_log::answered(
        served.arrival,
        served.request_id,
        served.user,
        served.started,
        served.elapsed,
        response,
    );
}

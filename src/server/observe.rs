//! Observability: one access-log line per request (with its request id), and Prometheus metrics.
//! Both are plain tower services rather than `from_fn` middleware: they sit on every request, and
//! boxing a future per layer per request shows in the profile.

use super::REQUEST_ID;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

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

/// The route a response came from, for the metrics label; put there by [`RouteLayer`] inside
/// the router, which alone knows which route matched.
#[derive(Clone)]
struct RouteLabel(MatchedPath);

/// Copies the matched route onto the response.
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
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        let response = self.inner.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(route) = route {
                response.extensions_mut().insert(RouteLabel(route));
            }
            Ok(response)
        })
    }
}

/// Logs one line per request and counts it. The query string is left out: it may carry secrets.
#[derive(Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S> Service<Request> for AccessLog<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
        let span = tracing::info_span!("request", id = id.unwrap_or("-"));
        Logged {
            start: Instant::now(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            inner: self.inner.call(req).instrument(span),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Logged<F> {
        start: Instant,
        method: Method,
        uri: axum::http::Uri,
        #[pin]
        inner: Instrumented<F>,
    }
}

impl<F, E> Future for Logged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = std::task::ready!(this.inner.as_mut().poll(cx));
        if let Ok(response) = &result {
            let elapsed = this.start.elapsed();
            let status = response.status().as_u16();
            let route = response
                .extensions()
                .get::<RouteLabel>()
                .map_or("unmatched", |r| r.0.as_str());
            this.inner.span().in_scope(|| {
                tracing::info!(
                    target: "handstamp::access",
                    method = %this.method,
                    path = this.uri.path(),
                    status,
                    micros = elapsed.as_micros() as u64,
                )
            });
            record(route, status, elapsed);
        }
        Poll::Ready(result)
    }
}

fn record(route: &str, status: u16, elapsed: Duration) {
    let route = route.to_owned();
    metrics::counter!("handstamp_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("handstamp_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
}

//! Observability: one access-log line per request (with its request id), and Prometheus metrics.
//! Both are plain tower services rather than `from_fn` middleware: they sit on every request, and
//! boxing a future per layer per request shows in the profile.

use super::LogBuffer;
use super::REQUEST_ID;
use crate::config::LogFormat;
use crate::request_id;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::futures::TaskLocalFuture;
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
{
    type Response = Response;
    type Error = S::Error;
    type Future = Labelled<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Labelled {
            route: req.extensions().get::<MatchedPath>().cloned(),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Labelled<F> {
        route: Option<MatchedPath>,
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for Labelled<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(route)) = (&mut result, this.route.take()) {
            response.extensions_mut().insert(RouteLabel(route));
        }
        Poll::Ready(result)
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
        let id: Arc<str> = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .into();
        Logged {
            start: Instant::now(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            id: id.clone(),
            inner: request_id::scope(id, self.inner.call(req)),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Logged<F> {
        start: Instant,
        method: Method,
        uri: axum::http::Uri,
        id: Arc<str>,
        #[pin]
        inner: TaskLocalFuture<Arc<str>, F>,
    }
}

impl<F, E> Future for Logged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let elapsed = this.start.elapsed();
            let status = response.status().as_u16();
            let line = AccessLine {
                request_id: this.id,
                method: this.method.as_str(),
                path: this.uri.path(),
                status,
                micros: elapsed.as_micros() as u64,
            };
            line.write();
            let route = response.extensions().get::<RouteLabel>();
            record(route.map_or("unmatched", |r| r.0.as_str()), status, elapsed);
        }
        Poll::Ready(result)
    }
}

/// Where access lines go: the server's log buffer, written directly (formatting through
/// `tracing` cost more than the rest of a token check), or, when none was installed (a library
/// user's app), ordinary `tracing` events.
static ACCESS_LOG: OnceLock<(LogBuffer, LogFormat)> = OnceLock::new();

/// Sends access lines straight to `buffer`, in `format`.
pub fn write_access_log_to(buffer: LogBuffer, format: LogFormat) {
    let _ = ACCESS_LOG.set((buffer, format));
}

#[derive(serde::Serialize)]
struct AccessLine<'a> {
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    micros: u64,
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    timestamp: String,
    level: &'static str,
    fields: &'a AccessLine<'a>,
    target: &'static str,
}

impl AccessLine<'_> {
    fn write(&self) {
        if !tracing::enabled!(target: "handstamp::access", tracing::Level::INFO) {
            return;
        }
        let Some((buffer, format)) = ACCESS_LOG.get() else {
            let l = self;
            tracing::info!(
                target: "handstamp::access",
                request_id = l.request_id,
                method = l.method,
                path = l.path,
                status = l.status,
                micros = l.micros,
            );
            return;
        };
        let timestamp = humantime::format_rfc3339_micros(SystemTime::now());
        buffer.append(|out| match format {
            LogFormat::Text => {
                let _ = writeln!(
                    out,
                    "{timestamp}  INFO handstamp::access: request_id={} method={} path={:?} status={} micros={}",
                    self.request_id, self.method, self.path, self.status, self.micros
                );
            }
            LogFormat::Json => {
                let line = JsonLine {
                    timestamp: timestamp.to_string(),
                    level: "INFO",
                    fields: self,
                    target: "handstamp::access",
                };
                if serde_json::to_writer(&mut *out, &line).is_ok() {
                    out.push(b'\n');
                }
            }
        });
    }
}

/// Metric handles by route, then by status: looked up without allocating once they exist.
type RouteMetrics = (Histogram, Vec<(u16, Counter)>);
static BY_ROUTE: LazyLock<RwLock<HashMap<String, RouteMetrics>>> = LazyLock::new(Default::default);

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

//! Serving: listeners, the layers every response passes through (panic catching, body limit,
//! access log, security headers) and graceful shutdown.

use crate::api;
use crate::config::ServerSettings;
use crate::service::AuthService;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Instant};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("server failed: {0}")]
    Io(#[from] io::Error),
}

/// Headers on every response, as Django's security middleware sends them.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// The whole application: the API and the layers around it.
pub fn app(service: Arc<AuthService>, settings: &ServerSettings) -> Router {
    layered(api::router(service), settings)
}

/// Wraps any router (the API, or an app that embeds it) in the production layers.
pub fn layered(router: Router, settings: &ServerSettings) -> Router {
    let mut app = router
        .layer(DefaultBodyLimit::max(settings.max_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(access_log));
    for (name, value) in SECURITY_HEADERS {
        app = app.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    app
}

/// A panic costs its request a 500, never the process.
fn panic_response(_: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("handler panicked");
    let body = r#"{"detail":"A server error occurred."}"#;
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// One line per request. The query string is left out: it may carry secrets.
async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    tracing::info!(
        target: "handstamp::access",
        %method,
        path,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
    );
    response
}

/// Binds every address before serving any, so a bad one stops start-up.
pub async fn bind(addrs: &[String]) -> Result<Vec<TcpListener>, ServeError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.clone(),
                source,
            })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves `app` on every listener until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn serve(
    listeners: Vec<TcpListener>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, stopped) = tokio::sync::watch::channel(());
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let addr: SocketAddr = listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        let mut stopped = stopped.clone();
        let service = app.clone().into_make_service();
        servers.spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await
        });
    }
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop.send(());
    });
    while let Some(done) = servers.join_next().await {
        done.map_err(io::Error::other)??;
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

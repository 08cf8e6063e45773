//! Serving: listeners (plain or TLS), connection limits and timeouts, the layers every response
//! passes through, and graceful shutdown.

mod access_log;
mod front;
mod hot;
mod log_buffer;
mod observe;
mod request_metrics;
mod tls;

pub use access_log::write_to as write_access_log_to;
pub use front::{Front, Peer, json_response};
pub use hot::HotRoutes;
pub use log_buffer::{LogBuffer, LogFlusher};
pub use observe::{Metrics, metrics, serve_metrics};
pub use tls::{CertStore, TlsError};

use crate::api;
use crate::config::{ServerSettings, Settings};
use crate::gateway::Gateway;
use crate::service::AuthService;
use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("server failed: {0}")]
    Io(#[from] io::Error),
}

/// Whether a request came over TLS, for `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls(pub bool);

/// A router with everything the server does around each request (see [`Front`]).
pub type App = Front<Router>;

/// The whole application: the API, `/metrics` (to loopback peers, unless `metrics_bind`), the
/// gateway (static files, upstreams, forward-auth), and the layers around them. Starts the
/// upstreams' health checks.
pub fn app(service: Arc<AuthService>, settings: &Settings) -> App {
    let gateway = Gateway::new(settings);
    gateway.start_health_checks();
    let readiness: Arc<dyn api::Readiness> = Arc::new(gateway.clone());
    let router = api::router_reporting(service.clone(), readiness)
        .merge(observe::public_metrics_router(&settings.server))
        .merge(gateway.router(settings, service.clone()));
    layered(router, &settings.server).with_hot_routes(HotRoutes::new(service))
}

/// Wraps any router (the API, or an app that embeds it) in what the server does around each
/// request: request ids, the body limit, panic catching, the request timeout, security headers,
/// the access log and metrics.
pub fn layered(router: Router, settings: &ServerSettings) -> App {
    Front::new(
        router.layer(observe::RouteLayer),
        settings.request_timeout,
        settings.max_body,
    )
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

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub tls: Option<Arc<CertStore>>,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_connections: usize,
}

impl ServeOptions {
    /// Reads the TLS files, if any: a bad certificate stops start-up here.
    pub fn from_settings(settings: &ServerSettings) -> Result<Self, ServeError> {
        Ok(ServeOptions {
            tls: settings.tls.as_ref().map(CertStore::load).transpose()?,
            header_read_timeout: settings.header_read_timeout,
            shutdown_grace: settings.shutdown_grace,
            max_connections: settings.max_connections,
        })
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions::from_settings(&Settings::default().server).expect("no TLS by default")
    }
}

/// Serves `app` on every listener with default options until `shutdown` completes.
pub async fn serve(
    listeners: Vec<TcpListener>,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(listeners, app, ServeOptions::default(), shutdown).await
}

/// Serves `app` until `shutdown` completes, then stops accepting and lets requests in flight
/// finish for up to the shutdown grace period.
pub async fn serve_with(
    listeners: Vec<TcpListener>,
    app: App,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls = match &options.tls {
        Some(store) => Some(tokio_rustls::TlsAcceptor::from(store.server_config()?)),
        None => None,
    };
    if let Some(store) = options.tls.clone() {
        reload_on_hangup(store);
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let connection = Arc::new(Connection {
        builder,
        app,
        tls,
        handshake_timeout: options.header_read_timeout,
    });
    let limit = Arc::new(Semaphore::new(options.max_connections));
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop, stopped) = watch::channel(false);
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        let scheme = if connection.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
        let accept = accept_loop(
            listener,
            connection.clone(),
            limit.clone(),
            graceful.clone(),
            stopped.clone(),
        );
        loops.spawn(accept);
    }
    shutdown.await;
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop.send(true);
    while loops.join_next().await.is_some() {}
    let graceful = Arc::into_inner(graceful).expect("accept loops have ended");
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over: closing the remaining connections");
    }
    Ok(())
}

/// What every connection needs.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handshake_timeout: Duration,
}

async fn accept_loop(
    listener: TcpListener,
    connection: Arc<Connection>,
    limit: Arc<Semaphore>,
    graceful: Arc<GracefulShutdown>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        // Past the limit, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.expect("never closed"),
            _ = stopped.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let connection = connection.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            connection.serve(stream, peer, watcher).await;
            drop(permit);
        });
    }
}

impl Connection {
    async fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => self.http(stream, peer, false, watcher).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(stream)) => self.http(stream, peer, true, watcher).await,
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn http<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        tls: bool,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let app = self.app.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                // The router is always ready: no `poll_ready` needed before calling it.
                let peer = Peer { addr: peer, tls };
                app.clone().call_from(req.map(Body::new), peer)
            });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        if let Err(error) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Re-reads the certificate on every SIGHUP. The handler is installed before this returns.
fn reload_on_hangup(store: Arc<CertStore>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the certificate will not be reloaded");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match store.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "TLS certificate not reloaded; keeping the old one")
                    }
                }
            }
        });
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed at once, before anything is
/// served, so an early signal is never lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
        async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

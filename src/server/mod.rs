//! Serving: listeners (plain or TLS), connection limits and timeouts, the layers every response
//! passes through, and graceful shutdown.

mod access_log;
mod cors;
mod counted_body;
mod front;
mod hot;
mod log_buffer;
mod observe;
mod request_metrics;
mod tls;
mod watchdog;

pub use access_log::write_to as write_access_log_to;
pub use front::{Front, Peer};
pub use hot::HotRoutes;
pub use log_buffer::{LogBuffer, LogFlusher};
pub use observe::{Metrics, metrics, serve_metrics};
pub use tls::{CertStore, TlsError};

use crate::api;
use crate::config::{ServerSettings, Settings};
use crate::gateway::{Gateway, Prefixed};
use crate::http::client::TrustedProxies;
use crate::service::AuthService;
use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use watchdog::{Activity, Ended, Guarded, Limits, Tracked, Watched};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("server failed: {0}")]
    Io(#[from] io::Error),
}

/// A router with everything the server does around each request (see [`Front`]).
pub type App = Front<Router>;

/// The whole application: the API, `/metrics` (to loopback peers, unless `metrics_bind`), the
/// gateway (static files, upstreams, forward-auth), and the layers around them. Starts the
/// upstreams' health checks.
pub fn app(service: Arc<AuthService>, settings: &Settings) -> App {
    // A verify-only instance (jwk_url) has no users to load: the token alone decides.
    let mut settings = settings.clone();
    if service.is_verify_only() {
        settings.server.check_user = false;
    }
    let settings = &settings;
    let gateway = Gateway::new(settings);
    gateway.start_health_checks();
    let readiness: Arc<dyn crate::http::Readiness> = Arc::new(gateway.clone());
    let router = api::router_reporting(service.clone(), readiness)
        .merge(observe::public_metrics_router(&settings.server))
        .merge(gateway.router(settings, service.clone()));
    // Our own endpoints, not the gateway's static files and upstreams: those are the app's.
    let own = api::ROUTES
        .iter()
        .filter(|route| route.served_by(&service))
        .flat_map(|route| [route.path, route.bare()])
        .chain([crate::gateway::FORWARD_AUTH]);
    let cors = cors::Cors::new(&settings.cors, own.clone());
    let prefixed = alone(&gateway, own.chain(["/metrics"]));
    let hot = HotRoutes::new(service, settings.server.check_user).with_prefixed(prefixed);
    layered(router, &settings.server)
        .with_hot_routes(hot)
        .with_cors(cors)
}

/// The static directories and upstreams under whose prefix the router has no other route
/// (another directory's or upstream's, one of ours): `Front` may answer them without asking it.
fn alone<'a>(gateway: &Gateway, own: impl Iterator<Item = &'a str>) -> Vec<Prefixed> {
    let own: Vec<&str> = own.collect();
    let prefixed = gateway.prefixed();
    let alone = |candidate: &Prefixed| {
        let prefix = candidate.prefix();
        let inside = |path: &&str| path.starts_with(prefix);
        // Its own prefix is the one that may be there.
        let others = prefixed.iter().map(Prefixed::prefix).filter(inside).count() > 1;
        !others && !own.iter().any(inside)
    };
    prefixed.iter().filter(|p| alone(p)).cloned().collect()
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
    .with_token_body_limit(settings.token_max_body)
    .with_trusted_proxies(TrustedProxies::new(settings.trusted_proxies.clone()))
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
    pub keepalive_timeout: Duration,
    pub send_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_connections: usize,
}

impl ServeOptions {
    /// Reads the TLS files, if any: a bad certificate stops start-up here.
    pub fn from_settings(settings: &ServerSettings) -> Result<Self, ServeError> {
        Ok(ServeOptions {
            tls: settings.tls().as_ref().map(CertStore::load).transpose()?,
            header_read_timeout: settings.header_read_timeout,
            keepalive_timeout: settings.keepalive_timeout,
            send_timeout: settings.send_timeout,
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
    // hyper's header timer starts when a connection goes idle, which would make it the
    // keep-alive timeout: the watchdog times request heads instead.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Finds dead peers, also while a request is in flight.
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        // hyper allows 200 streams, each holding a request and up to 400 KiB of response
        // waiting for the client's window: bound what one connection can hold.
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        // h2's default (20), written down: streams opened and reset before being served.
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    let connection = Arc::new(Connection {
        builder,
        app,
        tls,
        limits: Limits {
            header_read: options.header_read_timeout,
            keepalive: options.keepalive_timeout,
            send: options.send_timeout,
        },
    });
    let limit = Arc::new(Semaphore::new(options.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        let scheme = if connection.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
        let accept = accept_loop(listener, connection.clone(), limit.clone(), stopped.clone());
        loops.spawn(accept);
    }
    shutdown.await;
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop.send(true);
    while loops.join_next().await.is_some() {}
    // Every open connection (a WebSocket tunnel too) holds a permit: all of them back means all
    // connections are done.
    let all = u32::try_from(options.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(options.shutdown_grace, limit.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over: closing the remaining connections");
    }
    Ok(())
}

/// HTTP/2 keep-alive pings: a peer that has not answered within the timeout is gone.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// nginx's `http2_max_concurrent_streams` is 128.
const H2_MAX_STREAMS: u32 = 100;
const H2_MAX_SEND_BUF: usize = 64 * 1024;
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// What every connection needs.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
}

async fn accept_loop(
    listener: TcpListener,
    connection: Arc<Connection>,
    limit: Arc<Semaphore>,
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
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            connection.serve(stream, peer, permit, stop).await;
        });
    }
}

impl Connection {
    /// Serves one connection, within the watchdog's bounds from accept on; `stop` completes on
    /// shutdown, when the connection is asked to close gracefully. `slot` is given back when the
    /// socket closes (see `Watched`).
    async fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let _ = stream.set_nodelay(true);
        // The first request head is due at one instant from accept, the TLS handshake included.
        let first_head = tokio::time::Instant::now() + self.limits.header_read;
        let activity = Arc::new(Activity::default());
        let stream = Watched::new(stream, activity.clone(), slot);
        match &self.tls {
            None => {
                self.http(stream, peer, false, activity, first_head, stop)
                    .await
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout_at(first_head, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(stream)) => {
                        self.http(stream, peer, true, activity, first_head, stop)
                            .await
                    }
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
        activity: Arc<Activity>,
        first_head: tokio::time::Instant,
        stop: impl Future<Output = ()> + Send + 'static,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let app = self.app.clone();
        let requests = activity.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let in_flight = requests.request(req.version());
                // The router is always ready: no `poll_ready` needed before calling it.
                let peer = Peer { addr: peer, tls };
                let served = app.clone().call_from(req.map(Body::new), peer);
                async move {
                    let response = served.await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Tracked::new(body, in_flight)),
                    )
                }
            });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let guarded = Guarded::new(
            conn,
            |conn| conn.graceful_shutdown(),
            stop,
            activity,
            self.limits,
            first_head,
        );
        match guarded.await {
            Ended::Done(Ok(())) => {}
            Ended::Done(Err(error)) => {
                tracing::debug!(%peer, %error, "connection ended with an error")
            }
            Ended::Cut(reason) => tracing::debug!(%peer, reason, "connection cut"),
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

//! What nginx did in front of the app: static files, a reverse proxy with load balancing to the
//! app servers, and forward-auth for other proxies.

mod balance;
mod connections;
mod proxy;
mod static_files;

pub use proxy::{USER_ID, Upstream};
pub use static_files::{Mount, serve as serve_static};

/// Forward-auth's path (`GET`), as the router names it.
pub const FORWARD_AUTH: &str = "/api/auth/check";

use crate::config::Settings;
use crate::http::auth::{Authenticated, authenticate};
use crate::http::error::{ApiError, not_allowed};
use crate::http::{Readiness, json_response};
use crate::service::AuthService;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{any, get};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The gateway's routes and the state of its upstreams.
#[derive(Debug, Clone)]
pub struct Gateway {
    upstreams: Vec<Arc<Upstream>>,
    /// The `[[static]]` directories, in the settings' order.
    mounts: Vec<Arc<Mount>>,
}

impl Gateway {
    pub fn new(settings: &Settings) -> Self {
        let upstreams = settings
            .upstreams
            .iter()
            .map(|u| {
                let server = &settings.server;
                Arc::new(Upstream::new(u.clone(), server.max_body, server.check_user))
            })
            .collect();
        // Small files of every mount share one bounded cache.
        let files = Arc::new(static_files::FileCache::default());
        let mounts = settings
            .statics
            .iter()
            .map(|m| Arc::new(Mount::new(&m.prefix, &m.dir, files.clone())))
            .collect();
        Gateway { upstreams, mounts }
    }

    /// The static directories and the upstreams, each with what it serves under its prefix.
    pub fn prefixed(&self) -> Vec<Prefixed> {
        let files = self.mounts.iter().cloned().map(Prefixed::Files);
        files
            .chain(self.upstreams.iter().cloned().map(Prefixed::Proxy))
            .collect()
    }

    /// Starts the active health checks; call once, inside the runtime.
    pub fn start_health_checks(&self) {
        for upstream in &self.upstreams {
            tokio::spawn(proxy::health_checks(Arc::downgrade(upstream)));
        }
    }
}

impl Readiness for Gateway {
    /// Backends currently marked down, as `prefix backend`.
    fn unhealthy(&self) -> Vec<String> {
        self.upstreams
            .iter()
            .flat_map(|u| {
                u.pool
                    .backends
                    .iter()
                    .filter(|b| !b.is_alive())
                    .map(move |b| format!("{} {}", u.settings.prefix, b.base))
            })
            .collect()
    }
}

impl Gateway {
    /// Forward-auth, static files and upstream prefixes.
    pub fn router(&self, settings: &Settings, service: Arc<AuthService>) -> Router {
        let check = if settings.server.check_user {
            get(forward_auth_user)
        } else {
            get(forward_auth)
        };
        let mut router = Router::new().route(FORWARD_AUTH, check.fallback(not_allowed));
        for mount in &self.mounts {
            let at = mount.prefix().trim_end_matches('/');
            let handler = any(static_files::serve).with_state(mount.clone());
            router = router
                .route(mount.pattern(), handler.clone())
                .route(&format!("{at}/"), handler.clone());
            if !at.is_empty() {
                router = router.route(at, handler);
            }
        }
        for upstream in &self.upstreams {
            let at = upstream.prefix().trim_end_matches('/');
            let handler = any(proxy_to).with_state((upstream.clone(), service.clone()));
            router = router
                .route(upstream.pattern(), handler.clone())
                .route(&format!("{at}/"), handler.clone());
            if !at.is_empty() {
                router = router.route(at, handler);
            }
        }
        router.with_state(service)
    }
}

/// Everything under a prefix, answered by one handler: a static directory or an upstream.
/// Answered before the router (`server::HotRoutes`) when the router has no other route there.
#[derive(Debug, Clone)]
pub enum Prefixed {
    Files(Arc<Mount>),
    Proxy(Arc<Upstream>),
}

impl Prefixed {
    /// The prefix, ending in `/`.
    pub fn prefix(&self) -> &str {
        match self {
            Prefixed::Files(mount) => mount.prefix(),
            Prefixed::Proxy(upstream) => upstream.prefix(),
        }
    }

    /// Whether `path` is this one's: a path under the prefix, or for an upstream the prefix
    /// itself too (a directory has no listing: the router answers its 404).
    pub fn serves(&self, path: &str) -> bool {
        let prefix = self.prefix();
        let under = match self {
            Prefixed::Files(_) => path.len() > prefix.len(),
            Prefixed::Proxy(_) => true,
        };
        under && path.starts_with(prefix)
    }

    /// How the router names the route of `path`, one this serves: the metrics' label.
    pub fn route(&self, path: &str) -> Arc<str> {
        match self {
            Prefixed::Files(mount) => mount.route(),
            Prefixed::Proxy(upstream) if path.len() == upstream.prefix().len() => {
                upstream.prefix().clone()
            }
            Prefixed::Proxy(upstream) => upstream.pattern().clone(),
        }
    }

    /// Whether the answer reads the connection's extensions (the peer's address, TLS): the
    /// proxy's forwarded headers and CSRF check do.
    pub fn reads_peer(&self) -> bool {
        matches!(self, Prefixed::Proxy(_))
    }

    /// The answer to `req`, a request under the prefix, as the router's route gives it.
    pub fn answer(
        &self,
        service: Arc<AuthService>,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        match self {
            Prefixed::Files(mount) => Box::pin(static_files::serve(State(mount.clone()), req)),
            Prefixed::Proxy(upstream) => {
                let upstream = upstream.clone();
                Box::pin(async move { upstream.forward(&service, req).await })
            }
        }
    }
}

async fn proxy_to(
    State((upstream, service)): State<(Arc<Upstream>, Arc<AuthService>)>,
    req: Request,
) -> Response {
    upstream.forward(&service, req).await
}

#[derive(Serialize)]
struct Identity<'a> {
    user_id: &'a str,
}

/// `GET /api/auth/check` with `check_user` (the default): [`forward_auth`], and the token's user
/// loaded by primary key, once, as for `/api/users/me/`, so that a deleted or inactive user gets
/// its 401s from the next request on, as with simplejwt's `JWTAuthentication`.
pub(crate) async fn forward_auth_user(
    State(service): State<Arc<AuthService>>,
    Asked(auth): Asked,
) -> Result<Response, ApiError> {
    service.load_user(&auth).await?;
    Ok(forward_auth(Asked(auth)).await)
}

/// The identity a proxy asks forward-auth about: the request's token, its Bearer header or its
/// access cookie, with the CSRF check of the request the proxy forwards (`http::csrf`).
pub(crate) struct Asked(Authenticated);

impl FromRequestParts<Arc<AuthService>> for Asked {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<AuthService>,
    ) -> Result<Self, ApiError> {
        authenticate(service, parts, true).map(Asked)
    }
}

/// `GET /api/auth/check`: 200 with `X-Handstamp-User-Id` for a valid access token, the
/// protected-endpoint 401s otherwise. For nginx `auth_request`, Traefik ForwardAuth and Caddy
/// `forward_auth`. This one never touches the database (`check_user = false`).
pub(crate) async fn forward_auth(Asked(auth): Asked) -> Response {
    let identity = Identity {
        user_id: &auth.user_id,
    };
    let body = serde_json::to_vec(&identity).expect("a string always serializes");
    let mut response = json_response(StatusCode::OK, body);
    if let Ok(value) = HeaderValue::from_str(&auth.user_id) {
        response.headers_mut().insert(USER_ID, value);
    }
    response
}

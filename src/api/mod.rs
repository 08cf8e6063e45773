//! HTTP routes. Thin: parse the request, call the service, shape the reply.

mod body;
mod health;
pub(crate) mod token;
pub(crate) mod users;

pub use body::Payload;

use crate::http::Readiness;
use crate::http::auth::CurrentUser;
use crate::http::error::{ApiError, not_allowed};
use crate::service::AuthService;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// Every route of the token API, health checks included, with JSON 404s.
pub fn router(service: Arc<AuthService>) -> Router {
    routes(service, None)
}

/// [`router`], with `/readyz` also listing what `others` reports down (the gateway's backends).
pub fn router_reporting(service: Arc<AuthService>, others: Arc<dyn Readiness>) -> Router {
    routes(service, Some(others))
}

fn routes(service: Arc<AuthService>, others: Option<Arc<dyn Readiness>>) -> Router {
    let mut readyz = get(health::readyz).fallback(not_allowed);
    if let Some(others) = others {
        // On this route alone: an extension layer on the router would cost every request.
        readyz = readyz.layer(Extension(others));
    }
    let token_route = |handler: MethodRouter<_>, name| {
        handler
            .options(move || metadata(name))
            .fallback(not_allowed)
    };
    let routes = [
        (
            "/api/token/",
            token_route(post(token::obtain), "Token Obtain Pair"),
        ),
        (
            "/api/token/refresh/",
            token_route(post(token::refresh), "Token Refresh"),
        ),
        (
            "/api/token/verify/",
            token_route(post(token::verify), "Token Verify"),
        ),
        (
            "/api/token/blacklist/",
            token_route(post(token::blacklist), "Token Blacklist"),
        ),
        (
            "/api/users/me/",
            get(users::me)
                .options(|_: CurrentUser| metadata("Me"))
                .fallback(not_allowed_once_authenticated),
        ),
        ("/healthz", get(health::healthz).fallback(not_allowed)),
        ("/readyz", readyz),
    ];
    let mut router = Router::new();
    for (path, route) in routes {
        // Served with and without the trailing slash, without redirecting.
        let bare = path.trim_end_matches('/');
        router = router
            .route(bare, route.clone())
            .route(&format!("{bare}/"), route);
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .with_state(service)
}

/// The token endpoints' paths as [`router`] serves them (with and without the slash), which
/// take small bodies of their own limit (`token_max_body`).
const TOKEN_PATHS: [&str; 8] = [
    "/api/token/",
    "/api/token",
    "/api/token/verify/",
    "/api/token/verify",
    "/api/token/refresh/",
    "/api/token/refresh",
    "/api/token/blacklist/",
    "/api/token/blacklist",
];

/// The token route `path` is for, named as the router names it, if any.
pub fn token_route(path: &str) -> Option<&'static str> {
    if !path.starts_with("/api/token") {
        return None;
    }
    TOKEN_PATHS.iter().copied().find(|route| *route == path)
}

/// On a protected route, authentication comes before the method check, as in DRF.
async fn not_allowed_once_authenticated(_: CurrentUser, method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method)
}

/// DRF's answer to OPTIONS.
#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    description: &'static str,
    renders: [&'static str; 1],
    parses: [&'static str; 3],
}

async fn metadata(name: &'static str) -> Json<Metadata> {
    Json(Metadata {
        name,
        description: "",
        renders: ["application/json"],
        parses: [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ],
    })
}

//! HTTP routes. Thin: parse the request, call the service, shape the reply.

mod body;
mod health;
mod keys;
pub(crate) mod sessions;
pub(crate) mod token;
pub(crate) mod users;

pub use body::Payload;

use crate::http::Readiness;
use crate::http::auth::CurrentUser;
use crate::http::error::{ApiError, not_allowed};
use crate::service::AuthService;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Every route of the token API, health checks included, with JSON 404s.
pub fn router(service: Arc<AuthService>) -> Router {
    routes(service, None)
}

/// [`router`], with `/readyz` also listing what `others` reports down (the gateway's backends).
pub fn router_reporting(service: Arc<AuthService>, others: Arc<dyn Readiness>) -> Router {
    routes(service, Some(others))
}

/// What a route of the API does; [`methods`] gives its handlers.
#[derive(Clone, Copy)]
enum Endpoint {
    Obtain,
    Refresh,
    Verify,
    Blacklist,
    Me,
    Sessions,
    Session,
    Healthz,
    Readyz,
    Jwks,
}

/// A handler called directly, without the router (see [`Hot`]).
pub type Answer = fn(Request, Arc<AuthService>) -> Pin<Box<dyn Future<Output = Response> + Send>>;

/// A route `server::hot` answers before the router, by exact method and path: the routes every
/// token check comes through.
pub struct Hot {
    pub method: Method,
    /// The handler the router has for `method` on this route.
    pub answer: Answer,
}

/// A route of the API, served with and without its trailing slash, without redirecting.
pub struct ApiRoute {
    /// With the trailing slash (see [`ApiRoute::bare`]).
    pub path: &'static str,
    endpoint: Endpoint,
    /// Takes small bodies of their own limit (`token_max_body`), the token endpoints.
    pub token_body: bool,
    pub hot: Option<Hot>,
}

impl ApiRoute {
    /// The path without its trailing slash.
    pub fn bare(&self) -> &'static str {
        &self.path[..self.path.len() - 1]
    }

    /// `path` as the router names it, if this route serves it.
    fn serves(&self, path: &str) -> Option<&'static str> {
        if path == self.path {
            Some(self.path)
        } else if path == self.bare() {
            Some(self.bare())
        } else {
            None
        }
    }
}

/// The API's routes, each path written once: the router, the token body limit ([`token_route`])
/// and the hot routes (`server::hot`) are all read off this table. A static, not a const: a const
/// would be built anew at each use, on every request.
pub static ROUTES: [ApiRoute; 10] = [
    ApiRoute {
        path: "/api/token/",
        endpoint: Endpoint::Obtain,
        token_body: true,
        hot: None,
    },
    ApiRoute {
        path: "/api/token/verify/",
        endpoint: Endpoint::Verify,
        token_body: true,
        hot: Some(Hot {
            method: Method::POST,
            answer: |req, service| Handler::call(token::verify, req, service),
        }),
    },
    ApiRoute {
        path: "/api/token/refresh/",
        endpoint: Endpoint::Refresh,
        token_body: true,
        hot: None,
    },
    ApiRoute {
        path: "/api/token/blacklist/",
        endpoint: Endpoint::Blacklist,
        token_body: true,
        hot: None,
    },
    ApiRoute {
        path: "/api/users/me/",
        endpoint: Endpoint::Me,
        token_body: false,
        hot: Some(Hot {
            method: Method::GET,
            answer: |req, service| Handler::call(users::me, req, service),
        }),
    },
    ApiRoute {
        path: "/api/sessions/",
        endpoint: Endpoint::Sessions,
        token_body: false,
        hot: None,
    },
    ApiRoute {
        path: "/api/sessions/{id}/",
        endpoint: Endpoint::Session,
        token_body: false,
        hot: None,
    },
    ApiRoute {
        path: "/healthz/",
        endpoint: Endpoint::Healthz,
        token_body: false,
        hot: None,
    },
    ApiRoute {
        path: "/readyz/",
        endpoint: Endpoint::Readyz,
        token_body: false,
        hot: None,
    },
    // Served as `/.well-known/jwks.json` (RFC 8615), like every route also with a slash.
    ApiRoute {
        path: "/.well-known/jwks.json/",
        endpoint: Endpoint::Jwks,
        token_body: false,
        hot: None,
    },
];

fn routes(service: Arc<AuthService>, others: Option<Arc<dyn Readiness>>) -> Router {
    let mut router = Router::new();
    for route in &ROUTES {
        let handlers = methods(route.endpoint, &others);
        router = router
            .route(route.bare(), handlers.clone())
            .route(route.path, handlers);
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .with_state(service)
}

/// The handlers of `endpoint`, 405 for other methods.
fn methods(
    endpoint: Endpoint,
    others: &Option<Arc<dyn Readiness>>,
) -> MethodRouter<Arc<AuthService>> {
    let token = |handler: MethodRouter<_>, name| {
        handler
            .options(move || metadata(name))
            .fallback(not_allowed)
    };
    match endpoint {
        Endpoint::Obtain => token(post(token::obtain), "Token Obtain Pair"),
        Endpoint::Refresh => token(post(token::refresh), "Token Refresh"),
        Endpoint::Verify => token(post(token::verify), "Token Verify"),
        Endpoint::Blacklist => token(post(token::blacklist), "Token Blacklist"),
        Endpoint::Me => get(users::me)
            .options(|_: CurrentUser| metadata("Me"))
            .fallback(not_allowed_once_authenticated),
        Endpoint::Sessions => get(sessions::list)
            .delete(sessions::end_all)
            .options(|_: CurrentUser| metadata("Sessions"))
            .fallback(not_allowed_once_authenticated),
        Endpoint::Session => delete(sessions::end)
            .options(|_: CurrentUser| metadata("Session"))
            .fallback(not_allowed_once_authenticated),
        Endpoint::Healthz => get(health::healthz).fallback(not_allowed),
        Endpoint::Jwks => get(keys::jwks).fallback(not_allowed),
        Endpoint::Readyz => {
            let readyz = get(health::readyz).fallback(not_allowed);
            match others {
                // On this route alone: an extension layer on the router would cost every request.
                Some(others) => readyz.layer(Extension(others.clone())),
                None => readyz,
            }
        }
    }
}

/// The token route `path` is for, named as the router names it, if any: those take small bodies
/// of their own limit (`token_max_body`).
pub fn token_route(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .filter(|route| route.token_body)
        .find_map(|route| route.serves(path))
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

#[cfg(test)]
mod tests {
    use super::ROUTES;

    #[test]
    fn every_path_has_its_trailing_slash() {
        for route in &ROUTES {
            assert!(route.path.ends_with('/'), "{}", route.path);
            assert!(!route.bare().ends_with('/'), "{}", route.path);
        }
    }
}

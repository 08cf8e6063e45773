//! The routes every token check comes through, answered before the router by exact method and
//! path, like nginx's `location =`. The same handlers and extractors serve them as in the
//! router; what is skipped is the router's own machinery (matching, the route's boxed service and
//! its layers, the matched-path extension), which cost more than the token check itself
//! (callgrind, `GET /api/auth/check`: 51.7k -> 45.7k instructions a request). Any other method
//! or path, `HEAD` and `OPTIONS` included, goes through the router as before.

use crate::api::{token, users};
use crate::gateway::forward_auth;
use crate::service::AuthService;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type HotFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

#[derive(Clone)]
pub struct HotRoutes {
    service: Arc<AuthService>,
}

impl HotRoutes {
    pub fn new(service: Arc<AuthService>) -> Self {
        HotRoutes { service }
    }

    /// The hot route `req` is for, if any.
    pub fn route(&self, req: &Request) -> Option<&'static str> {
        Some(match (req.method(), req.uri().path()) {
            (&Method::GET, "/api/auth/check") => "/api/auth/check",
            (&Method::GET, "/api/users/me/") => "/api/users/me/",
            (&Method::GET, "/api/users/me") => "/api/users/me",
            (&Method::POST, "/api/token/verify/") => "/api/token/verify/",
            (&Method::POST, "/api/token/verify") => "/api/token/verify",
            _ => return None,
        })
    }

    /// The answer to `req`, a request for `route`.
    pub fn answer(&self, route: &'static str, req: Request) -> HotFuture {
        let state = self.service.clone();
        match route {
            "/api/auth/check" => Handler::call(forward_auth, req, state),
            "/api/users/me/" | "/api/users/me" => Handler::call(users::me, req, state),
            _ => Handler::call(token::verify, req, state),
        }
    }
}

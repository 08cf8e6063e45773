//! What every web room (`api`, `gateway`, `server`) shares, and which imports none of them:
//! errors as responses (every error body, in `error.rs`), the Bearer extractors (`auth.rs`),
//! JSON responses, the TLS marker a connection puts on its requests, and what `/readyz` lists.

pub mod auth;
pub mod error;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

/// How many headers the server's `Front` adds to every response (four security headers and the
/// request id); `server::front` checks it against its own list when it compiles.
pub const FRONT_HEADERS: usize = 5;

/// A JSON response from an already serialized `body`, its header map sized for `extra` headers
/// of the caller's and the ones `Front` adds: growing the map afterwards would cost a
/// reallocation and a rehash on every such response.
pub fn json_response(status: StatusCode, body: impl Into<Body>, extra: usize) -> Response {
    let mut headers = HeaderMap::with_capacity(1 + extra + FRONT_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// simplejwt's `{}`, as static bytes: verify answers it on every valid token.
pub fn empty_object() -> Response {
    json_response(StatusCode::OK, "{}", 0)
}

/// Whether a request came over TLS, for `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls(pub bool);

/// Something else worth reporting in `/readyz`, such as the gateway's backends.
pub trait Readiness: Send + Sync + 'static {
    fn unhealthy(&self) -> Vec<String>;
}

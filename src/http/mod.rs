//! What every web room (`api`, `gateway`, `server`) shares, and which imports none of them:
//! errors as responses (every error body, in `error.rs`), the Bearer extractors (`auth.rs`),
//! cookie mode's cookies (`cookies.rs`) and CSRF check (`csrf.rs`), the
//! client's address and user agent (`client.rs`), JSON responses, the TLS marker a connection
//! puts on its requests, what `/readyz` lists, and the end of a proxied WebSocket's tunnel
//! (`tunnel.rs`), which its access line waits for.

pub mod auth;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod error;
mod tunnel;

pub use tunnel::{Closing, Tunnel};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

/// The headers a JSON response has room for before its map grows (a reallocation and a rehash on
/// every such response): its content type, one or two of the handler's, and the ones the server
/// adds to every response and CORS's (`server::front` checks that its own fit). 12 costs what 8
/// did: `HeaderMap` rounds both up to 16 slots for 12 entries.
pub const RESPONSE_HEADERS: usize = 12;

/// A JSON response from an already serialized `body`.
pub fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut headers = HeaderMap::with_capacity(RESPONSE_HEADERS);
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
    json_response(StatusCode::OK, "{}")
}

/// Whether a request came over TLS, for `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls(pub bool);

/// Something else worth reporting in `/readyz`, such as the gateway's backends.
pub trait Readiness: Send + Sync + 'static {
    fn unhealthy(&self) -> Vec<String>;
}

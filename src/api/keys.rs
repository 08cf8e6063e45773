//! The public keys, for other services to verify our tokens without a secret.

use crate::http::json_response;
use crate::service::AuthService;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::Arc;

/// `GET /.well-known/jwks.json`: RFC 7517's key set, never an HMAC secret (with HMAC keys
/// alone it is empty), with an entity tag and `max-age`; 304 when the client has it.
pub async fn jwks(State(service): State<Arc<AuthService>>, headers: HeaderMap) -> Response {
    let published = service.published_keys();
    let etag = HeaderValue::from_str(&published.etag).expect("a quoted hash is a header value");
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == published.etag
        });
    let mut response = if unchanged {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        json_response(StatusCode::OK, published.json.clone())
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={}", published.max_age.as_secs()))
            .expect("digits are a header value"),
    );
    response
}

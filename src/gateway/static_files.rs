//! Static files, as nginx or whitenoise served them: tower-http's `ServeDir` (Range,
//! Last-Modified, precompressed `.br`/`.gz` siblings, no listings, no traversal) plus ETags with
//! 304s, and cache lifetimes by file name.

use crate::http::error::ApiError;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tower_http::services::ServeDir;

/// Files whose names carry a content hash never change: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Anything else is revalidated on every use (a cheap 304 thanks to the ETag).
const REVALIDATE: &str = "no-cache";

/// Serves `dir` (mounted under a prefix by the caller).
pub fn service(dir: &Path) -> Router {
    let files = ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(false);
    let root = dir.to_path_buf();
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(move |req, next| {
            caching(root.clone(), req, next)
        }))
}

async fn caching(root: PathBuf, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return ApiError::MethodNotAllowed(req.method().clone()).into_response();
    }
    let path = req.uri().path().to_owned();
    let etag = entity_tag(&root, &path).await;
    let cache_control = HeaderValue::from_static(if looks_hashed(&path) {
        IMMUTABLE
    } else {
        REVALIDATE
    });
    if let Some(etag) = &etag {
        let matches = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|given| {
                given
                    .split(',')
                    .any(|t| t.trim() == etag || t.trim() == "*")
            });
        if matches {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            let headers = response.headers_mut();
            headers.insert(header::ETAG, HeaderValue::from_str(etag).expect("ascii"));
            headers.insert(header::CACHE_CONTROL, cache_control);
            return response;
        }
    }
    let mut response = next.run(req).await;
    match response.status() {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED => {
            let headers = response.headers_mut();
            if let Some(etag) = &etag {
                headers.insert(header::ETAG, HeaderValue::from_str(etag).expect("ascii"));
            }
            headers.insert(header::CACHE_CONTROL, cache_control);
            response
        }
        StatusCode::NOT_FOUND => ApiError::NotFound.into_response(),
        _ => response,
    }
}

/// A weak validator from the file's size and modification time, or None if `path` is no file.
async fn entity_tag(root: &Path, path: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let mut file = root.to_path_buf();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == ".." || segment == "." || segment.contains(['\\', '\0']) {
            return None;
        }
        file.push(segment);
    }
    let meta = tokio::fs::metadata(&file).await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(format!("W/\"{:x}-{:x}\"", meta.len(), modified.as_nanos()))
}

/// `app.3f9a1c2b.js`, `logo-5d41402abc.png`: a name part of 8 or more hex digits.
fn looks_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    name.split(['.', '-', '_'])
        .any(|part| part.len() >= 8 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::looks_hashed;

    #[test]
    fn hashed_names_are_recognised() {
        assert!(looks_hashed("/js/app.3f9a1c2b.js"));
        assert!(looks_hashed("/logo-5d41402abc.png"));
        assert!(!looks_hashed("/js/app.js"));
        assert!(!looks_hashed("/deadbeef/app.js"));
        assert!(!looks_hashed("/js/vendor.bundle.js"));
    }
}

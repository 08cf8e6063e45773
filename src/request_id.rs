//! The request being served, for what runs while serving it: its id, which every log line
//! written meanwhile names, the route it matched, which labels its metrics, and the user of a
//! token verified for it, which its access line names. The server sets it around each request;
//! anything may read it.

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent `X-Request-Id` kept; a longer one is replaced.
const MAX_CLIENT_ID: usize = 200;

tokio::task_local! {
    static CURRENT: Scope;
}

/// What is known of the request being served.
pub struct Scope {
    id: HeaderValue,
    route: RefCell<Option<Route>>,
    // Set and taken, never borrowed: no borrow flag to carry.
    user: Cell<Option<User>>,
}

/// The user id of a token verified for the request, as the token carries it: up to 24 bytes
/// (our ids: any `i64`) kept in place, without an allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(SmallVec<[u8; 24]>);

impl User {
    /// The id's text (UTF-8: it was a `str`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The route a request matched, as the metrics name it: the router's pattern.
pub enum Route {
    Matched(MatchedPath),
    /// A route the server answers before the router, by exact path.
    Exact(&'static str),
    /// A static directory or an upstream the server answers before the router, by prefix: the
    /// router's pattern for it.
    Prefix(Arc<str>),
}

impl Route {
    pub fn as_str(&self) -> &str {
        match self {
            Route::Matched(path) => path.as_str(),
            Route::Exact(path) => path,
            Route::Prefix(pattern) => pattern,
        }
    }
}

impl Scope {
    pub fn new(id: HeaderValue, route: Option<Route>) -> Self {
        Scope {
            id,
            route: RefCell::new(route),
            user: Cell::new(None),
        }
    }

    pub fn into_parts(self) -> (HeaderValue, Option<Route>, Option<User>) {
        (self.id, self.route.into_inner(), self.user.into_inner())
    }
}

/// The client's `X-Request-Id` when it is a plain token (letters, digits and `+/=._:-`, up to
/// 200 characters: safe to log as is), else a new random UUID.
pub fn from_headers(headers: &HeaderMap) -> HeaderValue {
    match headers.get(REQUEST_ID) {
        Some(id) if is_plain_token(id.as_bytes()) => id.clone(),
        _ => generate(),
    }
}

/// Letters, digits and `+/=._:-`, up to 200 characters: safe to log unquoted.
pub fn is_plain_token(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=._:-".contains(b))
}

fn generate() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_bytes(&text).expect("hex digits and hyphens")
}

/// Runs `f` as the handling of the request `scope` describes.
pub fn scope<F: Future>(scope: Scope, f: F) -> tokio::task::futures::TaskLocalFuture<Scope, F> {
    CURRENT.scope(scope, f)
}

/// Notes the route the current request matched (the router calls this).
pub fn set_route(route: &MatchedPath) {
    let _ =
        CURRENT.try_with(|scope| *scope.route.borrow_mut() = Some(Route::Matched(route.clone())));
}

/// Notes the user id of a token verified for the current request (`http::auth` calls this).
pub fn set_user(id: &str) {
    let user = User(SmallVec::from_slice(id.as_bytes()));
    let _ = CURRENT.try_with(|scope| scope.user.set(Some(user)));
}

/// The current request's id, `-` outside a request; for log fields: `request_id = %current()`.
pub fn current() -> Current {
    Current(CURRENT.try_with(|scope| scope.id.clone()).ok())
}

pub struct Current(Option<HeaderValue>);

impl fmt::Display for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.0.as_ref().and_then(|id| id.to_str().ok());
        f.write_str(id.unwrap_or("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_for(sent: Option<&str>) -> String {
        let mut headers = HeaderMap::new();
        if let Some(sent) = sent {
            headers.insert(REQUEST_ID, HeaderValue::from_str(sent).unwrap());
        }
        from_headers(&headers).to_str().unwrap().to_owned()
    }

    #[test]
    fn plain_client_ids_are_kept_and_others_replaced() {
        for kept in ["abc-123", "req_4242", "Zm9v+YmFy/=", "trace.77:1"] {
            assert_eq!(id_for(Some(kept)), kept);
        }
        let long = "a".repeat(MAX_CLIENT_ID + 1);
        for replaced in [
            None,
            Some(""),
            Some("a b"),
            Some("x\"y"),
            Some(long.as_str()),
        ] {
            let id = id_for(replaced);
            assert_eq!(id.len(), 36, "{replaced:?} -> {id}");
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        assert_ne!(id_for(None), id_for(None));
    }
}

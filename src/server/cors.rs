//! CORS for handstamp's own endpoints, as django-cors-headers' middleware does it: a preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered 200 with no body
//! before any authentication or routing; every answer gets `Access-Control-Allow-Origin` (and
//! the rest) when its `Origin` is allowed, and `Vary: Origin` when its headers depend on it.
//!
//! Only our own endpoints: what is proxied or served from disk belongs to the app behind, which
//! answers for its own origins. [`Front`](super::Front) asks [`Cors::check`] once a request's
//! path is normalized, and adds the [`CorsReply`] to the answer, whoever gave it (the router, a
//! hot route, or `Front` itself: a 413, a timeout).

use crate::config::CorsSettings;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use std::sync::Arc;

/// The most headers [`CorsReply::apply`] adds to an answer.
pub const CORS_HEADERS: usize = 4;

/// The settings, with the header values they give, built once.
pub struct Cors {
    settings: CorsSettings,
    /// Our routes, as the router names them (`{id}` stands for one segment).
    routes: Vec<&'static str>,
    /// `*`: any origin, and no credentials (which `*` would not carry).
    wildcard: bool,
    /// The answer depends on `Origin`: anything but `*` for all.
    vary: bool,
    methods: Option<HeaderValue>,
    headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    expose: Option<HeaderValue>,
}

/// A request to one of our routes: the preflight's answer (given here), or none; and what any
/// answer to it gets.
pub struct Checked {
    pub route: &'static str,
    pub preflight: Option<Response>,
    pub reply: Box<CorsReply>,
}

/// The headers an answer gets: the allowed origin (none: not allowed, or not sent).
pub struct CorsReply {
    cors: Arc<Cors>,
    origin: Option<HeaderValue>,
}

impl Cors {
    /// `None` when CORS is off (no origin set): no answer changes at all.
    pub fn new(
        settings: &CorsSettings,
        routes: impl IntoIterator<Item = &'static str>,
    ) -> Option<Arc<Self>> {
        if !settings.is_on() {
            return None;
        }
        // An empty list sends no header. The settings' check made each item a header name or
        // a method, which always make a valid value.
        let joined = |items: &[String]| match items {
            [] => None,
            items => HeaderValue::try_from(items.join(", ")).ok(),
        };
        let wildcard = settings.cors_allow_all_origins && !settings.cors_allow_credentials;
        Some(Arc::new(Cors {
            routes: routes.into_iter().collect(),
            wildcard,
            vary: !wildcard,
            methods: joined(&settings.cors_allow_methods),
            headers: joined(&settings.cors_allow_headers),
            max_age: match settings.cors_preflight_max_age.as_secs() {
                0 => None,
                secs => Some(HeaderValue::from(secs)),
            },
            expose: joined(&settings.cors_expose_headers),
            settings: settings.clone(),
        }))
    }

    /// For a request to one of our routes (its path normalized): what CORS does with it.
    pub fn check(self: &Arc<Self>, req: &Request) -> Option<Checked> {
        let path = req.uri().path();
        let route = *self.routes.iter().find(|route| matches(route, path))?;
        let sent = req.headers().get(header::ORIGIN);
        let origin = sent
            .filter(|origin| {
                let origin = origin.to_str().unwrap_or_default();
                self.settings.is_allowed_origin(origin)
            })
            .cloned();
        // As django-cors-headers: every preflight is answered here, with the CORS headers only
        // for an allowed origin; a browser then refuses the actual request itself.
        let preflight = (req.method() == Method::OPTIONS
            && sent.is_some()
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD))
        .then(|| self.preflight(origin.is_some()));
        Some(Checked {
            route,
            preflight,
            reply: Box::new(CorsReply {
                cors: self.clone(),
                origin,
            }),
        })
    }

    /// 200, no body; what may be sent, when the origin is allowed.
    fn preflight(&self, allowed: bool) -> Response {
        let mut response = Response::new(Body::empty());
        if allowed {
            let headers = response.headers_mut();
            for (name, value) in [
                (header::ACCESS_CONTROL_ALLOW_METHODS, &self.methods),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, &self.headers),
                (header::ACCESS_CONTROL_MAX_AGE, &self.max_age),
            ] {
                if let Some(value) = value {
                    headers.insert(name, value.clone());
                }
            }
        }
        response
    }
}

impl CorsReply {
    /// Adds the origin's headers and `Vary: Origin` to an answer.
    pub fn apply(self, headers: &mut HeaderMap) {
        let cors = &self.cors;
        if let Some(origin) = self.origin {
            // Never `*` with credentials: the origin itself then.
            let allowed = match cors.wildcard {
                true => HeaderValue::from_static("*"),
                false => origin,
            };
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            if cors.settings.cors_allow_credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if let Some(expose) = &cors.expose {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
            }
        }
        if cors.vary {
            vary_on_origin(headers);
        }
    }
}

/// Adds `Origin` to `Vary`, once, into the existing value if there is one (as Django's
/// `patch_vary_headers`).
fn vary_on_origin(headers: &mut HeaderMap) {
    const VARY: HeaderName = header::VARY;
    let listed: Vec<&str> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if listed
        .iter()
        .any(|name| *name == "*" || name.eq_ignore_ascii_case("origin"))
    {
        return;
    }
    let value = match listed.as_slice() {
        [] => HeaderValue::from_static("Origin"),
        names => match HeaderValue::try_from(format!("{}, Origin", names.join(", "))) {
            Ok(value) => value,
            Err(_) => return,
        },
    };
    headers.insert(VARY, value);
}

/// Whether `path` is `route`'s, a `{…}` segment of the route standing for any one segment.
fn matches(route: &str, path: &str) -> bool {
    if !route.contains('{') {
        return route == path;
    }
    let mut segments = path.split('/');
    route.split('/').all(|part| match segments.next() {
        Some(segment) if part.starts_with('{') => !segment.is_empty(),
        Some(segment) => segment == part,
        None => false,
    }) && segments.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_exactly_or_by_segment() {
        assert!(matches("/api/token/", "/api/token/"));
        assert!(!matches("/api/token/", "/api/token"));
        assert!(!matches("/api/token/", "/api/token/x"));
        assert!(matches("/api/sessions/{id}/", "/api/sessions/42/"));
        assert!(matches("/api/sessions/{id}", "/api/sessions/42"));
        assert!(!matches("/api/sessions/{id}/", "/api/sessions//"));
        assert!(!matches("/api/sessions/{id}/", "/api/sessions/42/x/"));
        assert!(!matches("/api/sessions/{id}/", "/api/sessions/42"));
        assert!(!matches("/api/sessions/{id}", "/api/sessions/42/"));
    }

    #[test]
    fn vary_gets_origin_once() {
        let mut headers = HeaderMap::new();
        vary_on_origin(&mut headers);
        vary_on_origin(&mut headers);
        assert_eq!(headers.get_all(header::VARY).iter().count(), 1);
        assert_eq!(headers[header::VARY], "Origin");

        let mut headers = HeaderMap::new();
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        vary_on_origin(&mut headers);
        assert_eq!(headers[header::VARY], "Accept-Encoding, Origin");

        for kept in ["*", "origin", "Accept, ORIGIN"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::VARY, HeaderValue::from_static(kept));
            vary_on_origin(&mut headers);
            assert_eq!(headers[header::VARY], kept);
        }
    }
}

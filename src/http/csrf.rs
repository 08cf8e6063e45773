//! Cookie mode's CSRF check: a browser sends cookies with requests that other sites' pages
//! start, so a state-changing request (POST, PUT, PATCH, DELETE) authenticated by a cookie alone
//! must come from the server's own origin or one the service trusts (`cors_allowed_origins`).
//! Django's origin and referer checks (`CsrfViewMiddleware`), without its token: `Origin` when
//! sent, else `Referer`, else refused. A Bearer header needs none of it: no page of another site
//! can set one without a CORS preflight.

use crate::http::Tls;
use crate::http::client::Proxied;
use crate::http::error::CsrfFailure;
use crate::service::AuthService;
use axum::http::header::{HOST, ORIGIN, REFERER};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method};
use url::Url;

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

/// Whether a request with `method` may change state, as Django counts them (not GET, HEAD,
/// OPTIONS or TRACE).
pub fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Checks a request authenticated by a cookie alone. Whose request it is depends on where it
/// came: sent to us, or asked about by a proxy's forward-auth.
pub fn check(service: &AuthService, parts: &Parts, forward_auth: bool) -> Result<(), CsrfFailure> {
    let (changes, own) = if forward_auth {
        forwarded(parts)
    } else {
        (changes_state(&parts.method), own_origin(parts))
    };
    if !changes {
        return Ok(());
    }
    let trusted =
        |origin: &str| Some(origin) == own.as_deref() || service.is_trusted_origin(origin);
    let headers = &parts.headers;
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        return match trusted(&origin) {
            true => Ok(()),
            false => Err(CsrfFailure::BadOrigin(origin.into_owned())),
        };
    }
    let referer = headers.get(REFERER).ok_or(CsrfFailure::NoReferer)?;
    let referer = referer
        .to_str()
        .ok()
        .and_then(|text| Url::parse(text).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or(CsrfFailure::MalformedReferer)?;
    if referer.scheme() == "http" && own.as_deref().is_some_and(|o| o.starts_with("https:")) {
        return Err(CsrfFailure::InsecureReferer);
    }
    match trusted(&referer.origin().ascii_serialization()) {
        true => Ok(()),
        false => Err(CsrfFailure::BadReferer(referer.into())),
    }
}

/// `scheme://host[:port]` of the request as the client addressed it: `https` over TLS, or when
/// a trusted proxy says so in `X-Forwarded-Proto`; the host from `Host` (or HTTP/2's
/// `:authority`). Normalized as browsers write `Origin` (default port left out, lower case).
fn own_origin(parts: &Parts) -> Option<String> {
    let tls = parts.extensions.get::<Tls>().is_some_and(|t| t.0);
    let https = tls
        || parts.extensions.get::<Proxied>().is_some()
            && first(&parts.headers, &X_FORWARDED_PROTO)
                .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let host = match parts.headers.get(HOST) {
        Some(host) => host.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    origin(if https { "https" } else { "http" }, host)
}

/// For forward-auth: the method and origin of the request the proxy asks about, as it passes
/// them (`X-Forwarded-Method` from Traefik and Caddy, `X-Original-Method` as nginx is usually
/// told to; `X-Forwarded-Proto` and `X-Forwarded-Host`). Without a method named, the check is
/// the request's own, a GET.
fn forwarded(parts: &Parts) -> (bool, Option<String>) {
    let headers = &parts.headers;
    let method = first(headers, &X_FORWARDED_METHOD).or_else(|| first(headers, &X_ORIGINAL_METHOD));
    let Some(method) = method else {
        return (changes_state(&parts.method), own_origin(parts));
    };
    let changes = Method::from_bytes(method.as_bytes()).map_or(true, |m| changes_state(&m));
    let own = match first(headers, &X_FORWARDED_HOST) {
        Some(host) => {
            let proto = first(headers, &X_FORWARDED_PROTO).unwrap_or("http");
            origin(&proto.to_ascii_lowercase(), host)
        }
        None => own_origin(parts),
    };
    (changes, own)
}

/// The first value of a header that proxies may write as a list.
fn first<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.split(',').next()?.trim()).filter(|v| !v.is_empty())
}

fn origin(scheme: &str, host: &str) -> Option<String> {
    let url = Url::parse(&format!("{scheme}://{host}")).ok()?;
    Some(url.origin().ascii_serialization()).filter(|o| o != "null")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().method(method).uri("/x");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_own_origin_is_scheme_and_host_as_browsers_write_it() {
        let p = parts(Method::POST, &[("host", "API.example.com:80")]);
        assert_eq!(own_origin(&p).as_deref(), Some("http://api.example.com"));
        let mut p = parts(Method::POST, &[("host", "a.test:8443")]);
        p.extensions.insert(Tls(true));
        assert_eq!(own_origin(&p).as_deref(), Some("https://a.test:8443"));
        // X-Forwarded-Proto counts from a trusted proxy only.
        let mut p = parts(
            Method::POST,
            &[("host", "a.test"), ("x-forwarded-proto", "https")],
        );
        assert_eq!(own_origin(&p).as_deref(), Some("http://a.test"));
        p.extensions.insert(Proxied);
        assert_eq!(own_origin(&p).as_deref(), Some("https://a.test"));
    }

    #[test]
    fn forward_auth_asks_about_the_forwarded_request() {
        let p = parts(
            Method::GET,
            &[
                ("host", "auth:8000"),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
            ],
        );
        assert_eq!(
            forwarded(&p),
            (true, Some("https://app.example.com".to_string()))
        );
        let p = parts(Method::GET, &[("host", "auth:8000")]);
        assert_eq!(forwarded(&p), (false, Some("http://auth:8000".to_string())));
        let p = parts(Method::GET, &[("host", "a"), ("x-original-method", "GET")]);
        assert!(!forwarded(&p).0);
    }

    #[test]
    fn only_state_changing_methods_are_checked() {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(changes_state(&method));
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!changes_state(&method));
        }
    }
}

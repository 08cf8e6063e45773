//! Cookie mode's cookies (dj-rest-auth's `set_jwt_cookies` and `unset_jwt_cookies`): reading a
//! token out of `Cookie` headers, and writing or clearing the access and refresh cookies with
//! the `[cookies]` settings' attributes.

use crate::config::{CookieSettings, SameSite};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::Cookie;
use std::time::Duration;

/// The most `name=value` pairs read from a request's `Cookie` headers: a browser sends at most
/// about 180 per domain; past this the rest is not looked at.
const MAX_COOKIES: usize = 256;

/// The value of the cookie `name` in `headers`: the first one sent (a browser sends the one with
/// the longest path first), or none; empty values count as none.
pub fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let pairs = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(Cookie::split_parse)
        .take(MAX_COOKIES);
    for pair in pairs.flatten() {
        if pair.name() == name {
            let value = pair.value_raw()?;
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

/// Which of the two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Access,
    Refresh,
}

/// The cookie's name, when that cookie is on.
pub fn name(settings: &CookieSettings, kind: Kind) -> Option<&str> {
    match kind {
        Kind::Access => settings.jwt_auth_cookie.as_deref(),
        Kind::Refresh => settings.jwt_auth_refresh_cookie.as_deref(),
    }
}

/// `Set-Cookie` for `kind` holding `token` for `lifetime`, if that cookie is on. The access
/// cookie's path is `/`, the refresh cookie's `jwt_auth_refresh_cookie_path`, as dj-rest-auth
/// has them; both take `Secure`, `HttpOnly`, `SameSite` and `Domain` from the settings.
pub fn set(
    headers: &mut HeaderMap,
    settings: &CookieSettings,
    kind: Kind,
    token: &str,
    lifetime: Duration,
) {
    let Some(name) = name(settings, kind) else {
        return;
    };
    let seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let mut cookie = attributes(settings, kind, Cookie::new(name, token));
    cookie.set_max_age(cookie::time::Duration::seconds(seconds));
    append(headers, &cookie);
}

/// `Set-Cookie` lines that remove both cookies (those that are on): empty, `Max-Age=0`, with
/// the path and domain they were set with, or the browser keeps them.
pub fn clear(headers: &mut HeaderMap, settings: &CookieSettings) {
    for kind in [Kind::Access, Kind::Refresh] {
        if let Some(name) = name(settings, kind) {
            let mut cookie = attributes(settings, kind, Cookie::new(name, ""));
            cookie.make_removal();
            append(headers, &cookie);
        }
    }
}

fn attributes<'c>(settings: &'c CookieSettings, kind: Kind, mut cookie: Cookie<'c>) -> Cookie<'c> {
    cookie.set_path(match kind {
        Kind::Access => "/",
        Kind::Refresh => settings.jwt_auth_refresh_cookie_path.as_str(),
    });
    cookie.set_secure(settings.jwt_auth_secure);
    cookie.set_http_only(settings.jwt_auth_httponly);
    cookie.set_same_site(match settings.jwt_auth_samesite {
        SameSite::Lax => cookie::SameSite::Lax,
        SameSite::Strict => cookie::SameSite::Strict,
        SameSite::None => cookie::SameSite::None,
    });
    if let Some(domain) = &settings.jwt_auth_cookie_domain {
        cookie.set_domain(domain.as_str());
    }
    cookie
}

fn append(headers: &mut HeaderMap, cookie: &Cookie) {
    // Names, paths and domains are checked at start-up, tokens are base64url and dots: always
    // a valid header value.
    if let Ok(value) = HeaderValue::try_from(cookie.to_string()) {
        headers.append(SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(COOKIE, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    #[test]
    fn a_cookie_is_found_among_many_lines_and_pairs() {
        let h = headers(&["a=1; b=2", "theme=dark;  access=tok.en ; access=second"]);
        assert_eq!(read(&h, "access"), Some("tok.en"));
        assert_eq!(read(&h, "b"), Some("2"));
        assert_eq!(read(&h, "missing"), None);
        assert_eq!(read(&headers(&["access="]), "access"), None);
        // Garbage around it is skipped, not fatal.
        assert_eq!(
            read(&headers(&["=x; ;;junk; access=t"]), "access"),
            Some("t")
        );
    }

    #[test]
    fn the_work_is_bounded() {
        let many: Vec<String> = (0..MAX_COOKIES).map(|i| format!("c{i}=v")).collect();
        let line = format!("{}; access=late", many.join("; "));
        assert_eq!(read(&headers(&[&line]), "access"), None);
    }

    #[test]
    fn set_and_clear_carry_every_attribute() {
        let settings = CookieSettings {
            jwt_auth_cookie: Some("a".into()),
            jwt_auth_refresh_cookie: Some("r".into()),
            jwt_auth_refresh_cookie_path: "/api/token/".into(),
            jwt_auth_secure: true,
            jwt_auth_samesite: SameSite::Strict,
            jwt_auth_cookie_domain: Some("example.com".into()),
            ..CookieSettings::default()
        };
        let mut h = HeaderMap::new();
        set(
            &mut h,
            &settings,
            Kind::Refresh,
            "x.y.z",
            Duration::from_secs(86_400),
        );
        assert_eq!(
            h[SET_COOKIE],
            "r=x.y.z; HttpOnly; SameSite=Strict; Secure; Path=/api/token/; Domain=example.com; Max-Age=86400"
        );
        let mut h = HeaderMap::new();
        clear(&mut h, &settings);
        let lines: Vec<_> = h.get_all(SET_COOKIE).iter().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].to_str().unwrap().starts_with(
            "a=; HttpOnly; SameSite=Strict; Secure; Path=/; Domain=example.com; Max-Age=0; Expires="
        ));
        assert!(lines[1].to_str().unwrap().starts_with(
            "r=; HttpOnly; SameSite=Strict; Secure; Path=/api/token/; Domain=example.com; Max-Age=0"
        ));
        // Off: nothing written.
        let mut h = HeaderMap::new();
        clear(&mut h, &CookieSettings::default());
        set(
            &mut h,
            &CookieSettings::default(),
            Kind::Access,
            "t",
            Duration::from_secs(1),
        );
        assert!(h.is_empty());
    }
}

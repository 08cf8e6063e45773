//! The `[cors]` table: which other origins' pages may call handstamp's own endpoints, with
//! django-cors-headers' names and defaults (`CORS_ALLOWED_ORIGINS` is `cors_allowed_origins`).

use super::{duration, list, unsplit_list};
use regex::Regex;
use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// The table: every key once, with its parser; the defaults in `Default`. Nothing set (no
/// origin, no regex, not all origins): CORS is off and no answer changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins in normal form (`scheme://host[:port]`, lowercase, default port dropped), or
    /// `null`; compared exactly with a request's `Origin`, which browsers send in that form.
    #[serde(deserialize_with = "origins")]
    pub cors_allowed_origins: Vec<String>,
    /// Matched from the origin's start, as Python's `re.match` does. From the environment one
    /// regex, not split at commas (`\d{1,4}`); join several with `|`.
    #[serde(deserialize_with = "regexes")]
    pub cors_allowed_origin_regexes: Vec<Regex>,
    pub cors_allow_all_origins: bool,
    pub cors_allow_credentials: bool,
    #[serde(deserialize_with = "header_names")]
    pub cors_allow_headers: Vec<String>,
    #[serde(deserialize_with = "methods")]
    pub cors_allow_methods: Vec<String>,
    #[serde(deserialize_with = "header_names")]
    pub cors_expose_headers: Vec<String>,
    /// `0`: no `Access-Control-Max-Age` at all.
    #[serde(deserialize_with = "duration")]
    pub cors_preflight_max_age: Duration,
}

impl Default for CorsSettings {
    fn default() -> Self {
        let words = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
        CorsSettings {
            cors_allowed_origins: Vec::new(),
            cors_allowed_origin_regexes: Vec::new(),
            cors_allow_all_origins: false,
            cors_allow_credentials: false,
            // django-cors-headers' `default_headers` and `default_methods`.
            cors_allow_headers: words(&[
                "accept",
                "authorization",
                "content-type",
                "user-agent",
                "x-csrftoken",
                "x-requested-with",
            ]),
            cors_allow_methods: words(&["DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"]),
            cors_expose_headers: Vec::new(),
            cors_preflight_max_age: Duration::from_secs(86_400),
        }
    }
}

impl CorsSettings {
    /// Whether any origin may call at all: off, no answer carries a CORS header or `Vary`.
    pub fn is_on(&self) -> bool {
        self.cors_allow_all_origins
            || !self.cors_allowed_origins.is_empty()
            || !self.cors_allowed_origin_regexes.is_empty()
    }

    /// Whether `origin` (a request's `Origin` header, as sent) is trusted: listed, matched by
    /// a regex, or any origin when all are allowed.
    pub fn is_allowed_origin(&self, origin: &str) -> bool {
        self.cors_allow_all_origins
            || self.cors_allowed_origins.iter().any(|o| o == origin)
            || self
                .cors_allowed_origin_regexes
                .iter()
                .any(|r| r.is_match(origin))
    }
}

fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    list(d)?
        .iter()
        .map(|o| origin(o).map_err(de::Error::custom))
        .collect()
}

/// An origin in the form browsers send it; as django-cors-headers' check, one with a path, a
/// query or a fragment (a trailing `/` included) is refused, as is one without scheme or host.
fn origin(text: &str) -> Result<String, String> {
    if text == "null" {
        return Ok(text.to_owned());
    }
    let refuse = |why: &str| {
        Err(format!(
            "{text:?} {why}; write an origin such as \"https://app.example.com\""
        ))
    };
    let Some((_, rest)) = text.split_once("://") else {
        return refuse("is missing a scheme or a host");
    };
    if rest.contains(['/', '?', '#']) {
        return refuse("should not have a path, a query or a fragment");
    }
    if rest.contains('@') {
        return refuse("should not have a user name or password");
    }
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not an origin ({e})"))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return refuse("is missing a scheme or a host");
    };
    // `url` lowercases the scheme, and the host of http(s), and drops their default port.
    let host = host.to_ascii_lowercase();
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// Regexes compiled once; one that does not compile is named.
fn regexes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Regex>, D::Error> {
    unsplit_list(d)?
        .iter()
        .map(|pattern| {
            // Anchored at the start only, as django-cors-headers' `re.match`.
            Regex::new(&format!(r"\A(?:{pattern})"))
                .map_err(|e| de::Error::custom(format!("{pattern:?} is not a regex: {e}")))
        })
        .collect()
}

/// Header names, lowercase (a header's name is case-insensitive).
fn header_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    list(d)?
        .iter()
        .map(|name| {
            axum::http::HeaderName::from_bytes(name.trim().as_bytes())
                .map(|h| h.as_str().to_owned())
                .map_err(|_| de::Error::custom(format!("{name:?} is not a header name")))
        })
        .collect()
}

/// Methods as written (a method's name is case-sensitive).
fn methods<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    list(d)?
        .iter()
        .map(|name| {
            axum::http::Method::from_bytes(name.trim().as_bytes())
                .map(|m| m.as_str().to_owned())
                .map_err(|_| de::Error::custom(format!("{name:?} is not a method")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{from_env, from_toml};
    use super::*;

    #[test]
    fn defaults_are_django_cors_headers_and_off() {
        let s = from_toml("").unwrap();
        assert!(!s.cors.is_on());
        assert!(!s.cors.is_allowed_origin("https://app.example.com"));
        assert!(!s.cors.cors_allow_credentials);
        assert_eq!(
            s.cors.cors_allow_headers,
            [
                "accept",
                "authorization",
                "content-type",
                "user-agent",
                "x-csrftoken",
                "x-requested-with"
            ]
        );
        assert_eq!(
            s.cors.cors_allow_methods,
            ["DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"]
        );
        assert!(s.cors.cors_expose_headers.is_empty());
        assert_eq!(s.cors.cors_preflight_max_age, Duration::from_secs(86_400));
    }

    #[test]
    fn origins_are_kept_in_normal_form() {
        let s = from_toml(
            "[cors]\ncors_allowed_origins = [\"HTTPS://App.Example.COM:443\", \"http://localhost:3000\", \
             \"http://a.example:80\", \"https://b.example:8443\", \"null\", \"chrome-extension://abcdef\"]\n",
        )
        .unwrap();
        assert_eq!(
            s.cors.cors_allowed_origins,
            [
                "https://app.example.com",
                "http://localhost:3000",
                "http://a.example",
                "https://b.example:8443",
                "null",
                "chrome-extension://abcdef",
            ]
        );
        assert!(s.cors.is_on());
        assert!(s.cors.is_allowed_origin("https://app.example.com"));
        assert!(s.cors.is_allowed_origin("null"));
        assert!(!s.cors.is_allowed_origin("https://app.example.com:8443"));
        assert!(!s.cors.is_allowed_origin("http://app.example.com"));
        assert!(!s.cors.is_allowed_origin("https://evil.example"));
    }

    #[test]
    fn origins_with_a_path_or_without_a_host_are_refused_by_name() {
        for (origin, says) in [
            ("https://app.example.com/", "should not have a path"),
            ("https://app.example.com/app", "should not have a path"),
            ("https://app.example.com?x=1", "should not have a path"),
            ("https://app.example.com#top", "should not have a path"),
            ("app.example.com", "missing a scheme or a host"),
            ("https://", "https://"),
            ("https://user@app.example.com", "user name"),
            ("https://app example.com", "not an origin"),
            ("https://app.example.com:99999", "not an origin"),
        ] {
            let err = from_toml(&format!("[cors]\ncors_allowed_origins = [{origin:?}]\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("`cors_allowed_origins`"), "{origin}: {err}");
            assert!(err.contains(says), "{origin}: {err}");
            assert!(err.contains(&format!("{origin:?}")), "{origin}: {err}");
        }
    }

    #[test]
    fn regexes_match_from_the_start_and_a_bad_one_is_named() {
        let s = from_toml(
            "[cors]\ncors_allowed_origin_regexes = ['^https://\\w+\\.example\\.com$', 'http://localhost:\\d{4}']\n",
        )
        .unwrap();
        assert!(s.cors.is_on());
        assert!(s.cors.is_allowed_origin("https://app.example.com"));
        assert!(!s.cors.is_allowed_origin("https://app.example.com.evil.net"));
        assert!(s.cors.is_allowed_origin("http://localhost:3000"));
        // `re.match`: anchored at the start, not at the end.
        assert!(s.cors.is_allowed_origin("http://localhost:30001"));
        assert!(
            !s.cors
                .is_allowed_origin("https://evil.net/http://localhost:3000")
        );
        let err = from_toml("[cors]\ncors_allowed_origin_regexes = ['^https://(unclosed']\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`cors_allowed_origin_regexes`"), "{err}");
        assert!(err.contains("(unclosed"), "{err}");
    }

    #[test]
    fn allow_all_trusts_every_origin() {
        let s = from_toml("[cors]\ncors_allow_all_origins = true\ncors_allow_credentials = true\n")
            .unwrap();
        assert!(s.cors.is_on());
        assert!(s.cors.is_allowed_origin("https://anyone.example"));
        assert!(s.cors.cors_allow_credentials);
    }

    #[test]
    fn environment_lists_are_comma_separated() {
        let s = from_env(&[
            (
                "HANDSTAMP_CORS_ALLOWED_ORIGINS",
                "https://a.example, http://localhost:3000",
            ),
            (
                "HANDSTAMP_CORS_ALLOWED_ORIGIN_REGEXES",
                "^https://\\w{1,9}\\.b\\.example$",
            ),
            ("HANDSTAMP_CORS_ALLOW_CREDENTIALS", "yes"),
            ("HANDSTAMP_CORS_ALLOW_HEADERS", "Content-Type,X-Custom"),
            ("HANDSTAMP_CORS_ALLOW_METHODS", "GET,POST"),
            ("HANDSTAMP_CORS_EXPOSE_HEADERS", "X-Request-Id"),
            ("HANDSTAMP_CORS_PREFLIGHT_MAX_AGE", "0"),
        ])
        .unwrap();
        assert_eq!(
            s.cors.cors_allowed_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        assert!(s.cors.is_allowed_origin("https://x.b.example"));
        assert!(s.cors.cors_allow_credentials);
        assert_eq!(s.cors.cors_allow_headers, ["content-type", "x-custom"]);
        assert_eq!(s.cors.cors_allow_methods, ["GET", "POST"]);
        assert_eq!(s.cors.cors_expose_headers, ["x-request-id"]);
        assert_eq!(s.cors.cors_preflight_max_age, Duration::ZERO);
        // An empty variable is an empty list.
        let s = from_env(&[("HANDSTAMP_CORS_EXPOSE_HEADERS", "")]).unwrap();
        assert!(s.cors.cors_expose_headers.is_empty());
    }

    #[test]
    fn bad_headers_and_methods_are_named() {
        for (line, setting) in [
            ("cors_allow_headers = [\"x bad\"]", "`cors_allow_headers`"),
            ("cors_expose_headers = [\"x:y\"]", "`cors_expose_headers`"),
            ("cors_allow_methods = [\"GE T\"]", "`cors_allow_methods`"),
            (
                "cors_preflight_max_age = \"soon\"",
                "`cors_preflight_max_age`",
            ),
            (
                "cors_allow_all_origins = \"maybe\"",
                "`cors_allow_all_origins`",
            ),
        ] {
            let err = from_toml(&format!("[cors]\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{line}: {err}");
        }
    }
}

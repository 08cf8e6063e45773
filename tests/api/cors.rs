//! CORS on handstamp's own endpoints, with django-cors-headers' settings, over HTTP: preflights
//! answered before authentication, the origin's headers on every answer, `Vary: Origin`, and
//! nothing at all while it is off.

use crate::common::process::text;
use crate::common::{TestServer, command};
use handstamp::config::{Settings, StaticMount};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response};

const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";

/// A server that allows `APP` (and whatever `tweak` adds).
async fn allowing_app(tweak: impl FnOnce(&mut Settings)) -> TestServer {
    TestServer::start_with(|s| {
        s.cors.cors_allowed_origins = vec![APP.into()];
        tweak(s);
    })
    .await
}

/// A browser's preflight for a `method` request from `origin` to `path`.
async fn preflight(server: &TestServer, path: &str, origin: &str, method: &str) -> Response {
    server
        .client
        .request(Method::OPTIONS, server.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

/// The `Access-Control-*` headers of an answer, by name.
fn cors_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    found.sort();
    found
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn varies(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_before_authentication() {
    let server = allowing_app(|s| s.cors.cors_allow_credentials = true).await;
    // `/me` and the sessions need a token even for OPTIONS; the preflight carries none.
    for path in [
        "/api/users/me/",
        "/api/sessions/7/",
        "/api/token/",
        "/api/auth/check",
    ] {
        let r = preflight(&server, path, APP, "POST").await;
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        assert_eq!(
            cors_headers(&headers),
            [
                ("access-control-allow-credentials", "true"),
                (
                    "access-control-allow-headers",
                    "accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with"
                ),
                (
                    "access-control-allow-methods",
                    "DELETE, GET, OPTIONS, PATCH, POST, PUT"
                ),
                ("access-control-allow-origin", APP),
                ("access-control-max-age", "86400"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
            "{path}"
        );
        assert_eq!(varies(&headers), ["Origin"], "{path}");
        assert_eq!(header(&headers, "content-length"), Some("0"), "{path}");
        assert!(header(&headers, "x-request-id").is_some(), "{path}");
        assert_eq!(r.bytes().await.unwrap().len(), 0, "{path}");
    }
}

#[tokio::test]
async fn a_preflight_from_a_refused_origin_gets_no_cors_header() {
    let server = allowing_app(|s| s.cors.cors_allow_credentials = true).await;
    for origin in [
        EVIL,
        "null",
        "https://app.example:8443",
        "http://app.example",
    ] {
        let r = preflight(&server, "/api/token/", origin, "POST").await;
        // As django-cors-headers: answered, empty, without a header that would allow it.
        assert_eq!(r.status(), 200, "{origin}");
        assert_eq!(cors_headers(r.headers()), [], "{origin}");
        assert_eq!(varies(r.headers()), ["Origin"], "{origin}");
        assert_eq!(r.bytes().await.unwrap().len(), 0, "{origin}");
    }
    // Without `Access-Control-Request-Method` it is no preflight: DRF's metadata answer.
    let r = server
        .client
        .request(Method::OPTIONS, server.url("/api/token/"))
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(r.headers(), "access-control-allow-origin"),
        Some(APP)
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["name"], "Token Obtain Pair");
}

#[tokio::test]
async fn a_regex_allows_the_origins_it_matches_from_their_start() {
    let server = TestServer::start_with(|s| {
        s.cors.cors_allowed_origin_regexes =
            vec![regex::Regex::new(r"\A(?:^https://\w+\.example\.com$)").unwrap()];
    })
    .await;
    let r = preflight(&server, "/api/token/", "https://app.example.com", "POST").await;
    assert_eq!(
        header(r.headers(), "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    for refused in ["https://app.example.com.evil.net", "http://app.example.com"] {
        let r = preflight(&server, "/api/token/", refused, "POST").await;
        assert_eq!(cors_headers(r.headers()), [], "{refused}");
    }
}

#[tokio::test]
async fn all_origins_without_credentials_get_a_star_and_no_vary() {
    let server = TestServer::start_with(|s| s.cors.cors_allow_all_origins = true).await;
    let r = preflight(&server, "/api/token/", EVIL, "POST").await;
    assert_eq!(
        header(r.headers(), "access-control-allow-origin"),
        Some("*")
    );
    assert_eq!(
        header(r.headers(), "access-control-allow-credentials"),
        None
    );
    assert_eq!(varies(r.headers()), Vec::<&str>::new());
    let r = server
        .client
        .post(server.url("/api/token/"))
        .header("Origin", EVIL)
        .json(&serde_json::json!({"username": "nobody", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(r.headers(), "access-control-allow-origin"),
        Some("*")
    );
    assert_eq!(varies(r.headers()), Vec::<&str>::new());
}

#[tokio::test]
async fn all_origins_with_credentials_echo_the_origin_never_a_star() {
    let server = TestServer::start_with(|s| {
        s.cors.cors_allow_all_origins = true;
        s.cors.cors_allow_credentials = true;
    })
    .await;
    let r = preflight(&server, "/api/token/refresh/", EVIL, "POST").await;
    assert_eq!(
        header(r.headers(), "access-control-allow-origin"),
        Some(EVIL)
    );
    assert_eq!(
        header(r.headers(), "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(varies(r.headers()), ["Origin"]);
}

#[tokio::test]
async fn actual_requests_from_an_allowed_origin_get_its_headers_and_vary() {
    let server = allowing_app(|s| {
        s.cors.cors_allow_credentials = true;
        s.cors.cors_expose_headers = vec!["x-request-id".into(), "retry-after".into()];
    })
    .await;
    server.create_user("alice", "correct horse").await;
    let login = server
        .client
        .post(server.url("/api/token/"))
        .header("Origin", APP)
        .json(&serde_json::json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let expected = [
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-origin", APP),
        ("access-control-expose-headers", "x-request-id, retry-after"),
    ]
    .map(|(n, v)| (n.to_owned(), v.to_owned()));
    assert_eq!(cors_headers(login.headers()), expected);
    assert_eq!(varies(login.headers()), ["Origin"]);
    let access = login.json::<serde_json::Value>().await.unwrap()["access"]
        .as_str()
        .unwrap()
        .to_owned();
    // The hot routes (`/me`, forward-auth, verify) and the router's alike, errors included.
    for (method, path, status) in [
        (Method::GET, "/api/users/me/", 200),
        (Method::GET, "/api/auth/check", 200),
        (Method::GET, "/api/sessions/", 200),
        (Method::DELETE, "/api/users/me/", 405),
    ] {
        let r = server
            .client
            .request(method.clone(), server.url(path))
            .header("Origin", APP)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        assert_eq!(cors_headers(r.headers()), expected, "{method} {path}");
        assert_eq!(varies(r.headers()), ["Origin"], "{method} {path}");
    }
    let verify = server
        .client
        .post(server.url("/api/token/verify/"))
        .header("Origin", APP)
        .json(&serde_json::json!({"token": "not a token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 401);
    assert_eq!(cors_headers(verify.headers()), expected);
    // Another origin, or none: the same answer without the origin's headers, still varying.
    for origin in [Some(EVIL), None] {
        let mut request = server
            .client
            .get(server.url("/api/users/me/"))
            .bearer_auth(&access);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(cors_headers(r.headers()), [], "{origin:?}");
        assert_eq!(varies(r.headers()), ["Origin"], "{origin:?}");
    }
}

#[tokio::test]
async fn a_zero_max_age_and_empty_lists_send_no_header() {
    let server = allowing_app(|s| {
        s.cors.cors_preflight_max_age = std::time::Duration::ZERO;
        s.cors.cors_allow_headers = Vec::new();
        s.cors.cors_allow_methods = vec!["POST".into()];
    })
    .await;
    let r = preflight(&server, "/api/token/", APP, "POST").await;
    assert_eq!(
        cors_headers(r.headers()),
        [
            ("access-control-allow-methods", "POST"),
            ("access-control-allow-origin", APP),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
}

/// Static files and upstreams are the app's: it answers for its own origins.
#[tokio::test]
async fn files_served_from_disk_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>hello</p>").unwrap();
    let public = dir.path().to_owned();
    let server = allowing_app(|s| {
        s.statics.push(StaticMount {
            prefix: "/site/".into(),
            dir: public,
        })
    })
    .await;
    let r = server
        .client
        .get(server.url("/site/index.html"))
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cors_headers(r.headers()), []);
    // The file's own Vary (its precompressed siblings), no Origin.
    assert_eq!(varies(r.headers()), ["accept-encoding"]);
    let r = preflight(&server, "/site/index.html", APP, "GET").await;
    assert_eq!(cors_headers(r.headers()), []);
}

/// The default: no origin set, and every answer is what it was, preflights included.
#[tokio::test]
async fn off_by_default_nothing_changes() {
    let server = TestServer::start().await;
    let (_, access) = {
        server.create_user("bob", "correct horse").await;
        server.login("bob", "correct horse").await
    };
    let r = preflight(&server, "/api/token/", APP, "POST").await;
    assert_eq!(r.status(), 200);
    assert_eq!(cors_headers(r.headers()), []);
    assert_eq!(varies(r.headers()), Vec::<&str>::new());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["name"], "Token Obtain Pair");
    // A protected route's OPTIONS still wants a token.
    let r = preflight(&server, "/api/users/me/", APP, "GET").await;
    assert_eq!(r.status(), 401);
    assert_eq!(cors_headers(r.headers()), []);
    let r = server
        .client
        .get(server.url("/api/users/me/"))
        .header("Origin", APP)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cors_headers(r.headers()), []);
    assert_eq!(varies(r.headers()), Vec::<&str>::new());
}

/// A bad origin or regex stops `handstamp serve`, naming the setting and the value.
#[test]
fn an_invalid_origin_or_regex_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, value, words) in [
        (
            "HANDSTAMP_CORS_ALLOWED_ORIGINS",
            "https://app.example, https://b.example/app",
            &[
                "`cors_allowed_origins`",
                "\"https://b.example/app\"",
                "path",
            ][..],
        ),
        (
            "HANDSTAMP_CORS_ALLOWED_ORIGINS",
            "app.example",
            &["`cors_allowed_origins`", "\"app.example\"", "scheme"],
        ),
        (
            "HANDSTAMP_CORS_ALLOWED_ORIGIN_REGEXES",
            "^https://(app",
            &["`cors_allowed_origin_regexes`", "^https://(app"],
        ),
    ] {
        let out = command(d, &["serve", "--bind", "127.0.0.1:0"])
            .env(name, value)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}={value}: {err}");
        for word in words {
            assert!(
                err.contains(word),
                "{name}={value}: {word} missing from {err}"
            );
        }
    }
    // In the file too.
    std::fs::write(
        d.join("handstamp.toml"),
        "[cors]\ncors_allowed_origins = [\"https://app.example/\"]\n",
    )
    .unwrap();
    let out = command(d, &["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`cors_allowed_origins`") && err.contains("\"https://app.example/\""),
        "{err}"
    );
}

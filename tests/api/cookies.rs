//! Cookie mode (`[cookies]`, dj-rest-auth's names) over HTTP: the cookies login and refresh set,
//! refresh and logout from the refresh cookie, the access cookie on protected routes, the
//! gateway and forward-auth, and the CSRF check; and that without the settings nothing changes.

use crate::common::{TestServer, reply};
use axum::Router;
use axum::http::HeaderMap;
use handstamp::config::{AuthMode, Balance, SameSite, Settings, UpstreamSettings};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::time::Duration;

const ACCESS: &str = "app-auth";
const REFRESH: &str = "app-refresh";

/// Both cookies on, everything else at dj-rest-auth's defaults.
fn cookie_mode(s: &mut Settings) {
    s.cookies.jwt_auth_cookie = Some(ACCESS.into());
    s.cookies.jwt_auth_refresh_cookie = Some(REFRESH.into());
}

async fn server(tweak: impl FnOnce(&mut Settings)) -> TestServer {
    let s = TestServer::start_with(|s| {
        cookie_mode(s);
        tweak(s);
    })
    .await;
    s.create_user("alice", "pw").await;
    s
}

/// The `Set-Cookie` lines of a response.
fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The line setting `name`, and its value.
fn cookie<'a>(lines: &'a [String], name: &str) -> (&'a str, &'a str) {
    let line = lines
        .iter()
        .find(|l| l.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"));
    let value = line[name.len() + 1..].split(';').next().unwrap();
    (line.as_str(), value)
}

/// Logs alice in; the answer's cookies and body.
async fn login(s: &TestServer) -> (Vec<String>, Value) {
    let r = s
        .post(
            "/api/token/",
            json!({"username": "alice", "password": "pw"}),
        )
        .await;
    let lines = set_cookies(r.headers());
    let (status, body) = reply(r).await;
    assert_eq!(status, 200, "{body}");
    (lines, body)
}

fn own_origin(s: &TestServer) -> String {
    format!("http://{}", s.addr)
}

/// A request with `cookies` as the `Cookie` header and `headers` besides.
async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    cookies: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Response {
    let mut req = s.client.request(method, s.url(path));
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

fn csrf_origin(origin: &str) -> Value {
    json!({"detail": format!("CSRF Failed: Origin checking failed - {origin} does not match any trusted origins.")})
}

#[tokio::test]
async fn login_and_refresh_set_both_cookies_with_every_attribute() {
    let s = server(|s| {
        s.jwt.access_token_lifetime = Duration::from_secs(120);
        s.jwt.refresh_token_lifetime = Duration::from_secs(3600);
        s.cookies.jwt_auth_refresh_cookie_path = "/api/token/".into();
        s.cookies.jwt_auth_secure = true;
        s.cookies.jwt_auth_samesite = SameSite::Strict;
        s.cookies.jwt_auth_cookie_domain = Some("example.com".into());
    })
    .await;
    let (lines, body) = login(&s).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (line, access) = cookie(&lines, ACCESS);
    assert_eq!(access, body["access"].as_str().unwrap());
    assert_eq!(
        line,
        format!(
            "{ACCESS}={access}; HttpOnly; SameSite=Strict; Secure; Path=/; Domain=example.com; Max-Age=120"
        )
    );
    let (line, refresh) = cookie(&lines, REFRESH);
    assert_eq!(
        line,
        format!(
            "{REFRESH}={refresh}; HttpOnly; SameSite=Strict; Secure; Path=/api/token/; Domain=example.com; Max-Age=3600"
        )
    );
    // jwt_auth_httponly (the default): the refresh token is in its cookie alone; dj-rest-auth's
    // login keeps the key, empty.
    assert_eq!(body["refresh"], "");
    assert_eq!(body.as_object().unwrap().len(), 2);
    let r = send(
        &s,
        Method::POST,
        "/api/token/refresh/",
        &format!("{REFRESH}={refresh}"),
        &[("origin", &own_origin(&s))],
        None,
    )
    .await;
    let lines = set_cookies(r.headers());
    let (status, body) = reply(r).await;
    assert_eq!(status, 200, "{body}");
    // The refresh answer leaves the key out (dj-rest-auth deletes it).
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["access"]
    );
    let (line, access) = cookie(&lines, ACCESS);
    assert_eq!(access, body["access"].as_str().unwrap());
    assert!(
        line.ends_with("; Path=/; Domain=example.com; Max-Age=120"),
        "{line}"
    );
    let (line, rotated) = cookie(&lines, REFRESH);
    assert_ne!(rotated, refresh);
    assert!(
        line.ends_with("; Path=/api/token/; Domain=example.com; Max-Age=3600"),
        "{line}"
    );
}

#[tokio::test]
async fn without_httponly_the_bodies_keep_the_refresh_token_and_the_cookies_lose_the_flag() {
    let s = server(|s| s.cookies.jwt_auth_httponly = false).await;
    let (lines, body) = login(&s).await;
    let (line, refresh) = cookie(&lines, REFRESH);
    assert_eq!(body["refresh"], refresh);
    assert_eq!(
        line,
        format!("{REFRESH}={refresh}; SameSite=Lax; Path=/; Max-Age=86400")
    );
    let (line, _) = cookie(&lines, ACCESS);
    assert!(
        line.ends_with("; SameSite=Lax; Path=/; Max-Age=300"),
        "{line}"
    );
    let (status, body) = reply(
        s.post("/api/token/refresh/", json!({"refresh": refresh}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body["refresh"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn refresh_from_the_cookie_rotates_and_blacklists_the_old_token() {
    let s = server(|_| {}).await;
    let (lines, _) = login(&s).await;
    let (_, refresh) = cookie(&lines, REFRESH);
    let jar = format!("theme=dark; {REFRESH}={refresh}; other=1");
    let origin = own_origin(&s);
    let r = send(
        &s,
        Method::POST,
        "/api/token/refresh/",
        &jar,
        &[("origin", &origin)],
        None,
    )
    .await;
    let (status, body) = reply(r).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access"].is_string());
    // The cookie's token was rotated, so blacklisted; a blank field counts as none, and the
    // cookie stands in, as in dj-rest-auth.
    let blank = Some(json!({"refresh": " "}));
    let r = send(
        &s,
        Method::POST,
        "/api/token/refresh/",
        &jar,
        &[("origin", &origin)],
        blank,
    )
    .await;
    assert_eq!(
        reply(r).await,
        (
            401,
            json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
        )
    );
    // A token in the body wins over the cookie.
    let (lines, _) = login(&s).await;
    let (_, fresh) = cookie(&lines, REFRESH);
    let r = send(
        &s,
        Method::POST,
        "/api/token/refresh/",
        &jar,
        &[],
        Some(json!({"refresh": fresh})),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn logout_from_the_cookie_blacklists_and_clears_both_cookies() {
    let s = server(|s| s.cookies.jwt_auth_refresh_cookie_path = "/api/token/".into()).await;
    let (lines, _) = login(&s).await;
    let (_, refresh) = cookie(&lines, REFRESH);
    let jar = format!("{REFRESH}={refresh}");
    let origin = own_origin(&s);
    let r = send(
        &s,
        Method::POST,
        "/api/token/blacklist/",
        &jar,
        &[("origin", &origin)],
        None,
    )
    .await;
    let cleared = set_cookies(r.headers());
    assert_eq!(reply(r).await, (200, json!({})));
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    let (line, value) = cookie(&cleared, ACCESS);
    assert_eq!(value, "");
    assert!(line.contains("; Path=/; Max-Age=0; Expires="), "{line}");
    let (line, value) = cookie(&cleared, REFRESH);
    assert_eq!(value, "");
    assert!(
        line.contains("; Path=/api/token/; Max-Age=0; Expires="),
        "{line}"
    );
    // Blacklisted: refresh refuses it.
    let (status, body) = reply(
        s.post("/api/token/refresh/", json!({"refresh": refresh}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (401, Some("Token is blacklisted"))
    );
    // Logging out again with the stale cookie: refused, and the cookies cleared all the same.
    let r = send(
        &s,
        Method::POST,
        "/api/token/blacklist/",
        &jar,
        &[("origin", &origin)],
        None,
    )
    .await;
    assert_eq!(set_cookies(r.headers()).len(), 2);
    assert_eq!(r.status(), 401);
    // Refused by the CSRF check: nothing cleared (another site cannot log the user out).
    let r = send(
        &s,
        Method::POST,
        "/api/token/blacklist/",
        &jar,
        &[("origin", "https://evil.example")],
        None,
    )
    .await;
    assert!(set_cookies(r.headers()).is_empty());
    assert_eq!(reply(r).await, (403, csrf_origin("https://evil.example")));
}

#[tokio::test]
async fn the_access_cookie_authenticates_protected_routes_and_bearer_comes_first() {
    let s = server(|_| {}).await;
    let (lines, _) = login(&s).await;
    let (_, access) = cookie(&lines, ACCESS);
    let jar = format!("{ACCESS}={access}");
    let me = json!({"id": 1, "username": "alice"});
    // GET needs no Origin.
    let r = send(&s, Method::GET, "/api/users/me/", &jar, &[], None).await;
    assert_eq!(reply(r).await, (200, me.clone()));
    let r = send(&s, Method::GET, "/api/sessions/", &jar, &[], None).await;
    assert_eq!(r.status(), 200);
    // A bad cookie and a good Bearer header: the header is what counts.
    let bearer = format!("Bearer {access}");
    let r = send(
        &s,
        Method::GET,
        "/api/users/me/",
        &format!("{ACCESS}=garbage"),
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(reply(r).await, (200, me));
    // A good cookie and a bad header: refused, the cookie is not looked at.
    for header in ["Bearer garbage", "Basic YTpi"] {
        let r = send(
            &s,
            Method::GET,
            "/api/users/me/",
            &jar,
            &[("authorization", header)],
            None,
        )
        .await;
        assert_eq!(r.status(), 401, "{header}");
    }
    // A bad cookie alone: the protected-endpoint 401.
    let r = send(
        &s,
        Method::GET,
        "/api/users/me/",
        &format!("{ACCESS}=garbage"),
        &[],
        None,
    )
    .await;
    let (status, body) = reply(r).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_not_valid"))
    );
}

#[tokio::test]
async fn state_changing_requests_by_cookie_must_come_from_a_trusted_origin() {
    let s = server(|_| {}).await;
    let (lines, _) = login(&s).await;
    let (_, access) = cookie(&lines, ACCESS);
    let jar = format!("{ACCESS}={access}");
    let foreign = "https://evil.example";
    let r = send(
        &s,
        Method::DELETE,
        "/api/sessions/",
        &jar,
        &[("origin", foreign)],
        None,
    )
    .await;
    assert_eq!(reply(r).await, (403, csrf_origin(foreign)));
    let r = send(&s, Method::DELETE, "/api/sessions/", &jar, &[], None).await;
    assert_eq!(
        reply(r).await,
        (
            403,
            json!({"detail": "CSRF Failed: Referer checking failed - no Referer."})
        )
    );
    let referer = "https://evil.example/page?x=1";
    let r = send(
        &s,
        Method::DELETE,
        "/api/sessions/",
        &jar,
        &[("referer", referer)],
        None,
    )
    .await;
    assert_eq!(
        reply(r).await,
        (
            403,
            json!({"detail": format!("CSRF Failed: Referer checking failed - {referer} does not match any trusted origins.")})
        )
    );
    let r = send(
        &s,
        Method::DELETE,
        "/api/sessions/",
        &jar,
        &[("referer", "not a url")],
        None,
    )
    .await;
    assert_eq!(
        reply(r).await,
        (
            403,
            json!({"detail": "CSRF Failed: Referer checking failed - Referer is malformed."})
        )
    );
    // A refresh token from the cookie is checked alike.
    let (lines, _) = login(&s).await;
    let (_, refresh) = cookie(&lines, REFRESH);
    let r = send(
        &s,
        Method::POST,
        "/api/token/refresh/",
        &format!("{REFRESH}={refresh}"),
        &[("origin", foreign)],
        None,
    )
    .await;
    assert_eq!(reply(r).await, (403, csrf_origin(foreign)));
    // With the Authorization header, no check at all.
    let bearer = format!("Bearer {access}");
    let r = send(
        &s,
        Method::DELETE,
        "/api/sessions/",
        &jar,
        &[("authorization", &bearer), ("origin", foreign)],
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    // From the server's own origin (Origin, or a Referer on it): allowed.
    let (lines, _) = login(&s).await;
    let (_, access) = cookie(&lines, ACCESS);
    let jar = format!("{ACCESS}={access}");
    let own = own_origin(&s);
    let r = send(
        &s,
        Method::DELETE,
        "/api/sessions/",
        &jar,
        &[("referer", &format!("{own}/app/page"))],
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    // That logged out everywhere: a new login for a token issued after it.
    let (lines, _) = login(&s).await;
    let (_, access) = cookie(&lines, ACCESS);
    let jar = format!("{ACCESS}={access}");
    let r = send(
        &s,
        Method::DELETE,
        "/api/sessions/",
        &jar,
        &[("origin", &own)],
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn token_endpoints_never_take_the_access_cookie() {
    let s = server(|_| {}).await;
    let (lines, _) = login(&s).await;
    let (_, access) = cookie(&lines, ACCESS);
    let jar = format!("{ACCESS}={access}");
    let origin = own_origin(&s);
    let required = |field: &str| json!({field: ["This field is required."]});
    for (path, field) in [
        ("/api/token/refresh/", "refresh"),
        ("/api/token/blacklist/", "refresh"),
        ("/api/token/verify/", "token"),
    ] {
        let r = send(&s, Method::POST, path, &jar, &[("origin", &origin)], None).await;
        assert_eq!(reply(r).await, (400, required(field)), "{path}");
    }
    let r = send(
        &s,
        Method::POST,
        "/api/token/",
        &jar,
        &[("origin", &origin)],
        None,
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn forward_auth_and_upstreams_take_the_cookie() {
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let app = Router::new().fallback(|headers: HeaderMap| async move {
        let id = headers.get("x-handstamp-user-id");
        id.map_or("anonymous".to_string(), |v| v.to_str().unwrap().to_owned())
    });
    tokio::spawn(async move { axum::serve(backend, app).await.unwrap() });
    let s = server(|s| {
        s.upstreams.push(UpstreamSettings {
            prefix: "/app/".into(),
            backends: vec![format!("http://{backend_addr}")],
            auth: AuthMode::Required,
            balance: Balance::RoundRobin,
            health_path: "/".into(),
            health_interval: Duration::from_secs(60),
            ..Default::default()
        })
    })
    .await;
    let (lines, _) = login(&s).await;
    let (_, access) = cookie(&lines, ACCESS);
    let jar = format!("{ACCESS}={access}");

    let r = send(&s, Method::GET, "/api/auth/check", &jar, &[], None).await;
    assert_eq!(r.headers()["x-handstamp-user-id"], "1");
    assert_eq!(reply(r).await, (200, json!({"user_id": "1"})));
    // A proxy asking about a POST from another site (Traefik's and Caddy's headers).
    let asked = [
        ("x-forwarded-method", "POST"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.com"),
    ];
    let foreign = [asked.as_slice(), &[("origin", "https://evil.example")]].concat();
    let r = send(&s, Method::GET, "/api/auth/check", &jar, &foreign, None).await;
    assert_eq!(reply(r).await, (403, csrf_origin("https://evil.example")));
    let own = [asked.as_slice(), &[("origin", "https://app.example.com")]].concat();
    let r = send(&s, Method::GET, "/api/auth/check", &jar, &own, None).await;
    assert_eq!(r.status(), 200);

    let r = send(&s, Method::GET, "/app/x", &jar, &[], None).await;
    assert_eq!(r.text().await.unwrap(), "1");
    let r = send(
        &s,
        Method::POST,
        "/app/x",
        &jar,
        &[("origin", &own_origin(&s))],
        None,
    )
    .await;
    assert_eq!(r.text().await.unwrap(), "1");
    let r = send(
        &s,
        Method::POST,
        "/app/x",
        &jar,
        &[("origin", "https://evil.example")],
        None,
    )
    .await;
    assert_eq!(reply(r).await, (403, csrf_origin("https://evil.example")));
}

#[tokio::test]
async fn default_settings_change_nothing() {
    let s = TestServer::start().await;
    s.create_user("alice", "pw").await;
    let r = s
        .post(
            "/api/token/",
            json!({"username": "alice", "password": "pw"}),
        )
        .await;
    assert!(set_cookies(r.headers()).is_empty());
    let (_, body) = reply(r).await;
    let (refresh, access) = (
        body["refresh"].as_str().unwrap(),
        body["access"].as_str().unwrap(),
    );
    assert!(!refresh.is_empty());
    // Cookies of any name are no credentials.
    let jar = format!("{ACCESS}={access}; access={access}; jwt-auth={access}");
    let r = send(&s, Method::GET, "/api/users/me/", &jar, &[], None).await;
    assert_eq!(
        reply(r).await,
        (
            401,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
    let jar = format!("{REFRESH}={refresh}; refresh={refresh}");
    let r = send(&s, Method::POST, "/api/token/refresh/", &jar, &[], None).await;
    assert_eq!(
        reply(r).await,
        (400, json!({"refresh": ["This field is required."]}))
    );
    let r = s
        .post("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    assert!(set_cookies(r.headers()).is_empty());
    let (status, body) = reply(r).await;
    assert_eq!(status, 200);
    let refresh = body["refresh"].as_str().unwrap();
    let r = s
        .post("/api/token/blacklist/", json!({"refresh": refresh}))
        .await;
    assert!(set_cookies(r.headers()).is_empty());
    assert_eq!(reply(r).await, (200, json!({})));
}

#[tokio::test]
async fn origins_allowed_by_cors_are_trusted_but_not_all_origins() {
    let s = server(|s| {
        s.cors.cors_allowed_origins = vec!["https://spa.example.com".into()];
        s.cors.cors_allowed_origin_regexes =
            vec![regex::Regex::new(r"^https://\w+\.preview\.example\.com$").unwrap()];
        s.cors.cors_allow_credentials = true;
    })
    .await;
    for origin in ["https://spa.example.com", "https://pr7.preview.example.com"] {
        let (lines, _) = login(&s).await;
        let (_, refresh) = cookie(&lines, REFRESH);
        let jar = format!("{REFRESH}={refresh}");
        let r = send(
            &s,
            Method::POST,
            "/api/token/refresh/",
            &jar,
            &[("origin", origin)],
            None,
        )
        .await;
        assert_eq!(r.status(), 200, "{origin}");
    }
    let (lines, _) = login(&s).await;
    let (_, access) = cookie(&lines, ACCESS);
    let jar = format!("{ACCESS}={access}");
    let r = send(
        &s,
        Method::DELETE,
        "/api/sessions/",
        &jar,
        &[("referer", "https://spa.example.com/settings")],
        None,
    )
    .await;
    assert_eq!(r.status(), 204);

    // All origins allowed for CORS still leaves the CSRF check to the listed ones.
    let s = server(|s| s.cors.cors_allow_all_origins = true).await;
    let (lines, _) = login(&s).await;
    let (_, refresh) = cookie(&lines, REFRESH);
    let jar = format!("{REFRESH}={refresh}");
    let r = send(
        &s,
        Method::POST,
        "/api/token/refresh/",
        &jar,
        &[("origin", "https://evil.example")],
        None,
    )
    .await;
    assert_eq!(reply(r).await, (403, csrf_origin("https://evil.example")));
}

#[tokio::test]
async fn a_cross_origin_spa_gets_cors_credentials_with_its_cookies() {
    let spa = "https://spa.example.com";
    let s = server(|s| {
        s.cors.cors_allowed_origins = vec![spa.into()];
        s.cors.cors_allow_credentials = true;
    })
    .await;
    let r = send(
        &s,
        Method::OPTIONS,
        "/api/token/refresh/",
        "",
        &[
            ("origin", spa),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], spa);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let (lines, _) = login(&s).await;
    let (_, refresh) = cookie(&lines, REFRESH);
    let jar = format!("{REFRESH}={refresh}");
    let r = send(
        &s,
        Method::POST,
        "/api/token/refresh/",
        &jar,
        &[("origin", spa)],
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], spa);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(set_cookies(r.headers()).len(), 2);
}

//! No way around the gateway's auth through the path: everything routes on, and forwards, the
//! normalized path; ambiguous paths are refused. Also the Host rules and the headers named in
//! `Connection`. Requests are written as raw bytes: an HTTP client would normalize the paths
//! itself.

use crate::common::*;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use handstamp::config::{AuthMode, Balance, Settings, StaticMount, UpstreamSettings};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A backend that resolves the path itself, as loosely as any server behind a gateway might:
/// percent-decoding everything (nginx), `\` as a separator (Windows), `;params` dropped from
/// segments (Tomcat, Spring), runs of `/` merged and dot-segments removed. It answers with the
/// path it received, the path it serves, and the headers the tests look for.
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

fn resolve(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let mut served: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                served.pop();
            }
            name => served.push(name),
        }
    }
    format!("/{}", served.join("/"))
}

async fn serve(State(hits): State<Arc<AtomicUsize>>, req: Request) -> Response {
    // The gateway's health probes are not counted.
    if req.uri().path() != "/health" {
        hits.fetch_add(1, Ordering::SeqCst);
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| json!(v.to_str().unwrap()))
            .unwrap_or(Value::Null)
    };
    axum::Json(json!({
        "received": req.uri().path_and_query().unwrap().as_str(),
        "served": resolve(req.uri().path()),
        "user_id": header("x-handstamp-user-id"),
        "secret": header("x-secret"),
        "connection": header("connection"),
        "upgrade": header("upgrade"),
        "proxy_authorization": header("proxy-authorization"),
    }))
    .into_response()
}

async fn backend() -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new().fallback(serve).with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Backend { addr, hits }
}

impl Backend {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn upstream(prefix: &str, backend: &Backend, auth: AuthMode) -> UpstreamSettings {
    UpstreamSettings {
        prefix: prefix.into(),
        backends: vec![format!("http://{}", backend.addr)],
        auth,
        balance: Balance::RoundRobin,
        health_path: "/health".into(),
        health_interval: Duration::from_secs(60),
        ..Default::default()
    }
}

/// `/app/` needs a token; `/public/` and the `/` catch-all do not; all on `backend`.
async fn gateway(backend: &Backend, tweak: impl FnOnce(&mut Settings)) -> TestServer {
    let s = TestServer::start_with(|c| {
        c.upstreams
            .push(upstream("/app/", backend, AuthMode::Required));
        c.upstreams
            .push(upstream("/public/", backend, AuthMode::None));
        c.upstreams.push(upstream("/", backend, AuthMode::None));
        tweak(c);
    })
    .await;
    s.create_user("user", "pw").await;
    s
}

/// A response read off the wire.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON: {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `head` (request line and headers, without the blank line) as is, and reads the
/// response to the end of the connection.
async fn send(addr: SocketAddr, head: &str) -> Raw {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers and closes the connection")
        .unwrap();
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut body = bytes[split + 4..].to_vec();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let raw = Raw {
        status,
        head,
        body: Vec::new(),
    };
    if raw
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    Raw { body, ..raw }
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = chunked.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&chunked[..line]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunked[line + 2..line + 2 + size]);
        chunked = &chunked[line + 2 + size + 2..];
    }
}

/// `GET path` over HTTP/1.1, with a bearer token if given.
async fn get(s: &TestServer, path: &str, token: Option<&str>) -> Raw {
    let auth = token.map_or(String::new(), |t| format!("\r\nAuthorization: Bearer {t}"));
    send(
        s.addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close{auth}"),
    )
    .await
}

/// Paths that a backend resolving them itself serves as `/app/admin`.
const TO_APP_ADMIN: [&str; 10] = [
    "/public/../app/admin",
    "http://localhost/public/../app/admin",
    "/public/%2e%2e/app/admin",
    "/public/%2E%2e/app/admin",
    "/public/./../app/admin",
    "/public/.%2e/app/admin",
    "/public/x/../../app/admin",
    "//app/admin",
    "/%61pp/admin",
    "/ap%70//./admin",
];

#[tokio::test]
async fn a_protected_path_behind_dots_slashes_or_escapes_still_needs_a_token() {
    let backend = backend().await;
    let s = gateway(&backend, |_| {}).await;
    let (_, access) = s.login("user", "pw").await;
    for path in TO_APP_ADMIN {
        let r = get(&s, path, None).await;
        assert_eq!(r.status, 401, "{path}: {:?}", r.json());
        assert_eq!(
            r.json(),
            json!({"detail": "Authentication credentials were not provided."}),
            "{path}"
        );
    }
    assert_eq!(
        backend.hits(),
        0,
        "no request without a token reached the backend"
    );

    for path in TO_APP_ADMIN {
        let r = get(&s, path, Some(&access)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.json(),
            json!({
                "received": "/app/admin",
                "served": "/app/admin",
                "user_id": "1",
                "secret": null,
                "connection": null,
                "upgrade": null,
                "proxy_authorization": null,
            }),
            "{path}"
        );
    }
    assert_eq!(backend.hits(), TO_APP_ADMIN.len());
}

#[tokio::test]
async fn the_query_string_is_forwarded_untouched() {
    let backend = backend().await;
    let s = gateway(&backend, |_| {}).await;
    let r = get(&s, "/public/%2e/x?a=%2e%2e/../%2f&b=%61", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["received"], "/public/x?a=%2e%2e/../%2f&b=%61");
}

#[tokio::test]
async fn ambiguous_paths_are_refused_with_a_json_400() {
    let backend = backend().await;
    let s = gateway(&backend, |_| {}).await;
    let (_, access) = s.login("user", "pw").await;
    for (path, detail) in [
        (
            "/public/..%2fapp/admin",
            "The request path has an encoded '/' or '\\'.",
        ),
        (
            "/public/..%2Fapp/admin",
            "The request path has an encoded '/' or '\\'.",
        ),
        (
            "/public/..%5capp/admin",
            "The request path has an encoded '/' or '\\'.",
        ),
        (
            "/public/..%5Capp/admin",
            "The request path has an encoded '/' or '\\'.",
        ),
        ("/public/..\\app/admin", "The request path has a '\\'."),
        ("/public/..;/app/admin", "The request path has a ';'."),
        ("/app;x/admin", "The request path has a ';'."),
        ("/public/%00", "The request path has a NUL byte."),
        (
            "/public/%zz",
            "The request path has a malformed percent-encoding.",
        ),
        (
            "/public/%2",
            "The request path has a malformed percent-encoding.",
        ),
        ("*", "The request target is not a path."),
    ] {
        for token in [None, Some(access.as_str())] {
            let r = get(&s, path, token).await;
            assert_eq!(
                (r.status, r.json()),
                (400, json!({ "detail": detail })),
                "{path}"
            );
            assert!(r.header("x-request-id").is_some(), "{path}");
        }
    }
    // Within the URI length limit as sent, past it once the non-ASCII bytes are escaped.
    let long = format!("/public/{}", "\u{e9}".repeat(20_000));
    let r = get(&s, &long, None).await;
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"detail": "The request path is too long."}))
    );

    // `OPTIONS *` is about the server: not refused as a path, and no resource of any backend.
    let r = send(
        s.addr,
        "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close",
    )
    .await;
    assert_eq!((r.status, r.json()), (404, json!({"detail": "Not found."})));
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn static_files_are_served_for_the_normalized_path() {
    let root = tempfile::tempdir().unwrap();
    let files = root.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("page.txt"), "page").unwrap();
    std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
    let s = TestServer::start_with(|c| {
        c.statics.push(StaticMount {
            prefix: "/static/".into(),
            dir: files.clone(),
        })
    })
    .await;
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static//../secret.txt",
    ] {
        let r = get(&s, path, None).await;
        assert_eq!(
            (r.status, r.json()),
            (404, json!({"detail": "Not found."})),
            "{path}"
        );
    }
    for path in [
        "/static/x/../page.txt",
        "/static/./page.txt",
        "//static/%70age.txt",
    ] {
        let r = get(&s, path, None).await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"page"[..]), "{path}");
    }
}

#[tokio::test]
async fn hot_routes_answer_the_normalized_path() {
    let backend = backend().await;
    let s = gateway(&backend, |_| {}).await;
    let (_, access) = s.login("user", "pw").await;
    let r = get(&s, "/api/./users/me/", Some(&access)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["username"], "user");
    for path in ["//api/auth/check", "/api/x/../auth/%63heck"] {
        let r = get(&s, path, Some(&access)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("x-handstamp-user-id"), Some("1"), "{path}");
        let r = get(&s, path, None).await;
        assert_eq!(r.status, 401, "{path}");
    }
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn host_is_required_once_in_http_1_1() {
    let backend = backend().await;
    let s = gateway(&backend, |_| {}).await;
    let r = send(s.addr, "GET /public/x HTTP/1.1\r\nConnection: close").await;
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"detail": "The request has no Host header."}))
    );
    let two = "GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close";
    let r = send(s.addr, two).await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"detail": "The request has more than one Host header."})
        )
    );
    let r = send(s.addr, "GET /public/x HTTP/1.0\r\nHost: a\r\nHost: b").await;
    assert_eq!(r.status, 400);
    assert_eq!(backend.hits(), 0);

    // HTTP/1.0 may leave Host out.
    let r = send(s.addr, "GET /public/x HTTP/1.0").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["served"], "/public/x");
    let r = send(s.addr, "GET /healthz HTTP/1.0").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn headers_named_in_connection_do_not_reach_the_backend() {
    let backend = backend().await;
    let s = gateway(&backend, |_| {}).await;
    let (_, access) = s.login("user", "pw").await;
    let r = send(
        s.addr,
        "GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close, X-Secret\r\nX-Secret: 1",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["secret"], Value::Null);
    let r = send(
        s.addr,
        "GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: x-secret\r\nConnection: close\r\nX-Secret: 1",
    )
    .await;
    assert_eq!(r.json()["secret"], Value::Null);
    assert_eq!(r.json()["connection"], Value::Null);

    // Naming the identity header does not take the verified identity away.
    let r = send(
        s.addr,
        &format!(
            "GET /app/x HTTP/1.1\r\nHost: localhost\r\nConnection: close, X-Handstamp-User-Id\r\nAuthorization: Bearer {access}"
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user_id"], "1");
}

#[tokio::test]
async fn an_upgrade_keeps_connection_upgrade_alone() {
    let backend = backend().await;
    let s = gateway(&backend, |_| {}).await;
    // The backend answers 200, not 101: what matters is what it was sent.
    let r = send(
        s.addr,
        "GET /public/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close, X-Secret\r\n\
         Upgrade: websocket\r\nX-Secret: 1\r\nProxy-Authorization: Basic eA==",
    )
    .await;
    assert_eq!(r.status, 200);
    let sent = r.json();
    assert_eq!(
        (
            &sent["connection"],
            &sent["upgrade"],
            &sent["secret"],
            &sent["proxy_authorization"]
        ),
        (
            &json!("upgrade"),
            &json!("websocket"),
            &Value::Null,
            &Value::Null
        )
    );
}

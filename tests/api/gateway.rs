//! The gateway against real backends started in the test: balancing, failover, streaming,
//! WebSockets, identity headers, static files, forward-auth and request ids.

use crate::common::*;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get as on_get};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use handstamp::config::{AuthMode, Balance, Settings, StaticMount, UpstreamSettings};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// A backend app server: names itself, echoes what it was sent, can hold requests.
struct Backend {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    arrived: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct BackendState {
    name: String,
    hits: Arc<AtomicUsize>,
    arrived: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
}

fn header(headers: &HeaderMap, name: &str) -> Value {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| json!(v))
}

async fn whoami(
    axum::extract::State(s): axum::extract::State<BackendState>,
    req: Request,
) -> Json<Value> {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let h = req.headers();
    Json(json!({
        "name": s.name,
        "path": req.uri().path_and_query().map(|p| p.as_str()),
        "user_id": header(h, "x-handstamp-user-id"),
        "forged": header(h, "x-handstamp-role"),
        "authorization": header(h, "authorization"),
        "xff": header(h, "x-forwarded-for"),
        "proto": header(h, "x-forwarded-proto"),
        "forwarded_host": header(h, "x-forwarded-host"),
        "names": h.keys().map(|name| name.as_str()).collect::<Vec<_>>(),
    }))
}

async fn hold(axum::extract::State(s): axum::extract::State<BackendState>) -> Json<Value> {
    s.hits.fetch_add(1, Ordering::SeqCst);
    s.arrived.send(()).unwrap();
    s.release.acquire().await.unwrap().forget();
    Json(json!({"name": s.name}))
}

/// Sends "one", waits to be released, then sends "two".
async fn stream(axum::extract::State(s): axum::extract::State<BackendState>) -> Response {
    let chunks = futures_util::stream::unfold(0, move |step| {
        let release = s.release.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>("one;"), 1)),
                1 => {
                    release.acquire().await.unwrap().forget();
                    Some((Ok("two"), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(chunks).into_response()
}

/// A response naming a header of its own in `Connection`: for this hop only.
async fn hop_header() -> Response {
    let mut response = Response::new(axum::body::Body::from("ok"));
    let headers = response.headers_mut();
    headers.insert("connection", "x-internal".parse().unwrap());
    headers.insert("x-internal", "backend secret".parse().unwrap());
    headers.insert("x-kept", "1".parse().unwrap());
    // The app's own framing choice, which the gateway must not overrule.
    headers.insert("x-frame-options", "SAMEORIGIN".parse().unwrap());
    response
}

async fn echo_len(body: axum::body::Bytes) -> String {
    body.len().to_string()
}

/// Upgrades to a WebSocket and echoes every message, prefixed with who answered.
async fn websocket(mut req: Request) -> Response {
    let key = req.headers()["sec-websocket-key"].as_bytes().to_vec();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            io,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() {
                let text = format!("echo:{}", msg.into_text().unwrap());
                ws.send(text.into()).await.unwrap();
            }
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(Body::empty())
        .unwrap()
}

async fn backend(name: &str) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    backend_on(name, listener).await
}

async fn backend_on(name: &str, listener: tokio::net::TcpListener) -> Backend {
    let addr = listener.local_addr().unwrap();
    let (arrived_tx, arrived) = mpsc::unbounded_channel();
    let state = BackendState {
        name: name.into(),
        hits: Arc::new(AtomicUsize::new(0)),
        arrived: arrived_tx,
        release: Arc::new(Semaphore::new(0)),
    };
    let app = Router::new()
        .route("/health", on_get(|| async { "ok" }))
        .route("/app/hold", on_get(hold))
        .route("/app/stream", on_get(stream))
        .route("/app/echo", any(echo_len))
        .route("/app/hop", on_get(hop_header))
        .route("/app/slow", on_get(std::future::pending::<String>))
        .route("/app/ws", on_get(websocket))
        .route(
            "/app/port",
            on_get(
                |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.port().to_string() },
            ),
        )
        .fallback(whoami)
        .with_state(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Backend {
        addr,
        hits: state.hits,
        arrived,
        release: state.release,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Backend {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and closes every connection.
    async fn kill(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
    }
}

fn upstream(
    prefix: &str,
    backends: &[&Backend],
    auth: AuthMode,
    balance: Balance,
) -> UpstreamSettings {
    UpstreamSettings {
        prefix: prefix.into(),
        backends: backends.iter().map(|b| b.url()).collect(),
        auth,
        balance,
        health_path: "/health".into(),
        health_interval: Duration::from_secs(1),
        ..Default::default()
    }
}

/// Upstreams at `prefixes`, each with its own auth mode, all on backend `b`, round robin.
fn mount(c: &mut Settings, b: &Backend, prefixes: &[(&str, AuthMode)]) {
    for &(prefix, auth) in prefixes {
        c.upstreams
            .push(upstream(prefix, &[b], auth, Balance::RoundRobin));
    }
}

async fn gateway(tweak: impl FnOnce(&mut Settings)) -> TestServer {
    let s = TestServer::start_with(tweak).await;
    s.create_user("user", "pw").await;
    s
}

/// A server proxying `/app/` to `backends`.
async fn app_gateway(backends: &[&Backend], auth: AuthMode, balance: Balance) -> TestServer {
    gateway(|cfg| {
        cfg.upstreams
            .push(upstream("/app/", backends, auth, balance))
    })
    .await
}

/// A server proxying `/app/` to `b` without auth, its settings then changed by `tweak`.
async fn open_gateway(b: &Backend, tweak: impl FnOnce(&mut Settings)) -> TestServer {
    gateway(|cfg| {
        let app = upstream("/app/", &[b], AuthMode::None, Balance::RoundRobin);
        cfg.upstreams.push(app);
        tweak(cfg);
    })
    .await
}

async fn get(s: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = s.client.get(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    reply(req.send().await.unwrap()).await
}

#[tokio::test]
async fn required_auth_answers_401_or_passes_the_identity() {
    let b = backend("a").await;
    let s = app_gateway(&[&b], AuthMode::Required, Balance::RoundRobin).await;
    let (_, access) = s.login("user", "pw").await;

    let (status, body) = get(&s, "/app/whoami", None).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
    let (status, body) = get(&s, "/app/whoami", Some("junk")).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "token_not_valid");
    assert_eq!(
        b.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the backend"
    );

    let r = s
        .client
        .get(s.url("/app/whoami?x=1"))
        .bearer_auth(&access)
        .header("x-handstamp-user-id", "999")
        .header("x-handstamp-role", "admin")
        .header("x-forwarded-for", "10.9.8.7")
        .send()
        .await
        .unwrap();
    let (status, body) = reply(r).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "a");
    assert_eq!(body["path"], "/app/whoami?x=1");
    assert_eq!(body["user_id"], "1", "the verified id, not the client's");
    assert_eq!(
        body["forged"],
        Value::Null,
        "client X-Handstamp-* headers are stripped"
    );
    assert_eq!(body["authorization"], format!("Bearer {access}"));
    assert_eq!(body["xff"], "10.9.8.7, 127.0.0.1");
    assert_eq!(body["proto"], "http");
    assert_eq!(body["forwarded_host"], s.addr.to_string());
}

#[tokio::test]
async fn optional_and_no_auth_modes() {
    let b = backend("a").await;
    let s = gateway(|c| {
        mount(
            c,
            &b,
            &[("/opt/", AuthMode::Optional), ("/open/", AuthMode::None)],
        );
    })
    .await;
    let (_, access) = s.login("user", "pw").await;
    let (status, body) = get(&s, "/opt/x", None).await;
    assert_eq!((status, &body["user_id"]), (200, &Value::Null));
    let (_, body) = get(&s, "/opt/x", Some("junk")).await;
    assert_eq!(body["user_id"], Value::Null);
    let (_, body) = get(&s, "/opt/x", Some(&access)).await;
    assert_eq!(body["user_id"], "1");
    let r = s
        .client
        .get(s.url("/open/x"))
        .bearer_auth(&access)
        .header("x-handstamp-user-id", "999")
        .send()
        .await
        .unwrap();
    let (status, body) = reply(r).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["user_id"],
        Value::Null,
        "none: no identity, and no forged one either"
    );
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let s = app_gateway(&[&a, &b, &c], AuthMode::None, Balance::RoundRobin).await;
    let mut names = Vec::new();
    for _ in 0..9 {
        let (status, body) = get(&s, "/app/x", None).await;
        assert_eq!(status, 200);
        names.push(body["name"].as_str().unwrap().to_owned());
    }
    for name in ["a", "b", "c"] {
        assert_eq!(names.iter().filter(|n| *n == name).count(), 3, "{names:?}");
    }
}

#[tokio::test]
async fn least_connections_avoids_the_busy_backend() {
    let (mut a, mut b) = (backend("a").await, backend("b").await);
    let s = Arc::new(app_gateway(&[&a, &b], AuthMode::None, Balance::LeastConnections).await);
    // Hold one request on whichever backend takes it.
    let held = {
        let s = s.clone();
        tokio::spawn(async move { get(&s, "/app/hold", None).await })
    };
    let (busy, idle) = tokio::select! {
        _ = a.arrived.recv() => (&a, "b"),
        _ = b.arrived.recv() => (&b, "a"),
    };
    // The busy one gets nothing more while it holds its request.
    for _ in 0..5 {
        let (_, body) = get(&s, "/app/x", None).await;
        assert_eq!(body["name"], idle);
    }
    busy.release.add_permits(1);
    let (status, body) = held.await.unwrap();
    assert_eq!(status, 200);
    assert_ne!(body["name"], idle);
}

#[tokio::test]
async fn a_dead_backend_is_skipped_and_idempotent_requests_retried() {
    let (mut a, b) = (backend("a").await, backend("b").await);
    let s = app_gateway(&[&a, &b], AuthMode::None, Balance::RoundRobin).await;
    a.kill().await;
    for _ in 0..6 {
        let (status, body) = get(&s, "/app/x", None).await;
        assert_eq!((status, body["name"].as_str()), (200, Some("b")));
    }
    let (status, body) = get(&s, "/readyz", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["unhealthy"], json!([format!("/app/ {}", a.url())]));
}

/// A request no backend took (its connection was refused) goes to the next, a POST with its body
/// too: nothing of it was sent (nginx's `proxy_next_upstream error`).
#[tokio::test]
async fn a_refused_connection_sends_even_a_post_to_the_next_backend() {
    let (mut a, b) = (backend("a").await, backend("b").await);
    let s = app_gateway(&[&a, &b], AuthMode::None, Balance::RoundRobin).await;
    a.kill().await;
    for _ in 0..4 {
        let r = s.client.post(s.url("/app/echo")).body("data").send().await;
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "4");
    }
    drop(b);
}

/// Requests one after another reuse one connection to the backend; one the backend closed is
/// replaced without the client seeing it.
#[tokio::test]
async fn backend_connections_are_kept_alive_and_replaced_when_closed() {
    let mut a = backend("a").await;
    let addr = a.addr;
    let s = app_gateway(&[&a], AuthMode::None, Balance::RoundRobin).await;
    let port = async || {
        let r = s.client.get(s.url("/app/port")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let first = port().await;
    for _ in 0..10 {
        assert_eq!(port().await, first);
    }
    a.kill().await;
    let _a = backend_on("a2", tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    assert_ne!(port().await, first);
}

/// `keepalive = 0` (nginx without `keepalive`): every request goes on a connection of its own.
#[tokio::test]
async fn with_keepalive_0_no_backend_connection_is_kept() {
    let a = backend("a").await;
    let s = gateway(|cfg| {
        let mut upstream = upstream("/app/", &[&a], AuthMode::None, Balance::RoundRobin);
        upstream.keepalive = 0;
        cfg.upstreams.push(upstream);
    })
    .await;
    let mut ports = std::collections::HashSet::new();
    for _ in 0..5 {
        let r = s.client.get(s.url("/app/port")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        ports.insert(r.text().await.unwrap());
    }
    assert_eq!(ports.len(), 5, "{ports:?}");
}

#[tokio::test]
async fn no_live_backend_is_a_json_502() {
    let mut a = backend("a").await;
    let s = app_gateway(&[&a], AuthMode::None, Balance::RoundRobin).await;
    a.kill().await;
    let (status, body) = get(&s, "/app/x", None).await;
    assert_eq!(status, 502);
    assert!(body["detail"].is_string(), "{body}");
    let r = s
        .client
        .post(s.url("/app/echo"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
}

#[tokio::test]
async fn a_backend_that_comes_back_is_used_again() {
    let mut a = backend("a").await;
    let addr = a.addr;
    let s = app_gateway(&[&a], AuthMode::None, Balance::RoundRobin).await;
    a.kill().await;
    assert_eq!(get(&s, "/app/x", None).await.0, 502);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _a = backend_on("a2", listener).await;
    // The active health check (every second) brings it back; wait for that, boundedly.
    let mut revived = false;
    for _ in 0..100 {
        if get(&s, "/readyz", None).await.1.get("unhealthy").is_none() {
            revived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(revived, "the probe never marked the backend up");
    assert_eq!(get(&s, "/app/x", None).await.1["name"], "a2");
}

/// A port for a backend that is not up yet: bound, so nothing else takes it, but not listening,
/// so connections to it are refused until `listen`.
fn reserve_port() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    (socket, url)
}

/// Starts a backend on a reserved port.
async fn start_on(name: &str, socket: tokio::net::TcpSocket) -> Backend {
    backend_on(name, socket.listen(64).unwrap()).await
}

/// A gateway proxying `/app/` to `urls`, probing them at start-up and then only once a minute.
async fn gateway_to(urls: &[&str]) -> TestServer {
    gateway(|c| {
        let mut settings = upstream("/app/", &[], AuthMode::None, Balance::RoundRobin);
        settings.backends = urls.iter().map(|u| u.to_string()).collect();
        settings.health_interval = Duration::from_secs(60);
        c.upstreams.push(settings);
    })
    .await
}

/// The backends `/readyz` lists as down, once it lists `count` of them (bounded wait).
async fn marked_down(s: &TestServer, count: usize) -> Vec<String> {
    for _ in 0..500 {
        let (_, body) = get(s, "/readyz", None).await;
        let down: Vec<String> = body["unhealthy"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        if down.len() == count {
            return down;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("/readyz never listed {count} backends down");
}

/// handstamp started first: its first probe marks the backends down. The first request after
/// they listen is served, without waiting for the next probe, and marks its backend up.
#[tokio::test]
async fn backends_that_start_after_handstamp_serve_the_next_request() {
    let ((a, a_url), (b, b_url)) = (reserve_port(), reserve_port());
    let s = gateway_to(&[&a_url, &b_url]).await;
    marked_down(&s, 2).await;
    let _a = start_on("a", a).await;
    let _b = start_on("b", b).await;
    let (status, body) = get(&s, "/app/x", None).await;
    assert_eq!(status, 200, "{body}");
    let served = format!(
        "/app/ http://{}",
        [&a_url, &b_url][(body["name"] == "b") as usize]
    );
    let down = marked_down(&s, 1).await;
    assert!(!down.contains(&served), "{served} is marked up: {down:?}");
}

/// With every backend marked down, each is tried once, in turn, before a 502.
#[tokio::test]
async fn with_every_backend_down_each_is_tried() {
    let ((a, a_url), (b, b_url), (c, c_url)) = (reserve_port(), reserve_port(), reserve_port());
    let s = gateway_to(&[&a_url, &b_url, &c_url]).await;
    marked_down(&s, 3).await;
    // Only the last one comes up: whichever one round robin starts with, the request gets there.
    let mut c = start_on("c", c).await;
    let (status, body) = get(&s, "/app/x", None).await;
    assert_eq!((status, &body["name"]), (200, &json!("c")), "{body}");
    assert_eq!(
        marked_down(&s, 2).await,
        [format!("/app/ {a_url}"), format!("/app/ {b_url}")]
    );
    c.kill().await;
    for _ in 0..3 {
        let (status, body) = get(&s, "/app/x", None).await;
        assert_eq!(status, 502, "{body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    marked_down(&s, 3).await;
    drop((a, b));
}

/// RFC 9110 §7.6.1: headers a backend names in `Connection` are for its hop alone.
#[tokio::test]
async fn headers_the_backend_names_in_connection_do_not_reach_the_client() {
    let b = backend("a").await;
    let s = app_gateway(&[&b], AuthMode::None, Balance::RoundRobin).await;
    let r = s.client.get(s.url("/app/hop")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-kept").unwrap(), "1");
    assert!(r.headers().get("x-internal").is_none(), "{:?}", r.headers());
}

/// RFC 9110 §7.6.1, the request's way: the fixed hop-by-hop headers (`Upgrade` too, without
/// `Connection: upgrade`) and those the client names in `Connection` stay with the gateway; the
/// rest pass. Raw bytes: HTTP clients set these headers themselves.
#[tokio::test]
async fn hop_by_hop_request_headers_do_not_reach_the_backend() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = backend("a").await;
    let s = app_gateway(&[&b], AuthMode::None, Balance::RoundRobin).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = "GET /app/whoami HTTP/1.1\r\nHost: gateway.test\r\n\
        Connection: close, X-Secret\r\nX-Secret: for the gateway\r\nKeep-Alive: timeout=5\r\n\
        Proxy-Authorization: Basic dTpw\r\nTE: trailers\r\nUpgrade: websocket\r\n\
        X-Kept: 1\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let names: Vec<&str> = body["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    for hop in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(
            !names.contains(&hop),
            "{hop} reached the backend: {names:?}"
        );
    }
    assert!(names.contains(&"x-kept"), "{names:?}");
    assert_eq!(body["forwarded_host"], "gateway.test");
}

/// The security headers are set where the answer has none of its own, as Django's middleware
/// sets them (`setdefault`): an app's own choice passes unchanged, the others are added.
#[tokio::test]
async fn security_headers_keep_the_backends_own_values() {
    let b = backend("a").await;
    let s = app_gateway(&[&b], AuthMode::None, Balance::RoundRobin).await;
    let r = s.client.get(s.url("/app/hop")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let values = |name: &str| -> Vec<_> { r.headers().get_all(name).iter().cloned().collect() };
    assert_eq!(
        values("x-frame-options"),
        ["SAMEORIGIN"],
        "{:?}",
        r.headers()
    );
    assert_eq!(values("x-content-type-options"), ["nosniff"]);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let b = backend("a").await;
    let s = app_gateway(&[&b], AuthMode::None, Balance::RoundRobin).await;
    let r = s.client.get(s.url("/app/stream")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut chunks = r.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert_eq!(
        &first[..],
        b"one;",
        "the first chunk arrives before the backend finishes"
    );
    b.release.add_permits(1);
    let mut rest = Vec::new();
    while let Some(chunk) = chunks.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"two");

    let upload = vec![b'x'; 600 * 1024];
    let r = s
        .client
        .post(s.url("/app/echo"))
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), (600 * 1024).to_string());
    let too_big = vec![b'x'; 2 * 1024 * 1024];
    let r = s
        .client
        .post(s.url("/app/echo"))
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply(r).await,
        (413, json!({"detail": "Request body is too large."}))
    );
}

#[tokio::test]
async fn websockets_pass_through_with_auth() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let b = backend("a").await;
    let s = app_gateway(&[&b], AuthMode::Required, Balance::RoundRobin).await;
    let (_, access) = s.login("user", "pw").await;
    let url = format!("ws://{}/app/ws", s.addr);
    let unauthenticated = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(unauthenticated.is_err(), "refused without a token");
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {access}").parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    for word in ["hello", "again"] {
        ws.send(word.into()).await.unwrap();
        let answer = ws.next().await.unwrap().unwrap();
        assert_eq!(answer.into_text().unwrap(), format!("echo:{word}"));
    }
}

/// A WebSocket tunnel holds its connection's slot (`max_connections`) until it closes, as its
/// socket stays open: tunnels cannot pile up past the limit.
#[tokio::test]
async fn a_websocket_tunnel_holds_its_connection_slot_until_it_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = backend("a").await;
    let s = open_gateway(&b, |cfg| cfg.server.max_connections = 1).await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/app/ws", s.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws.send("hello".into()).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "echo:hello"
    );

    // Connected by the kernel, but not served while the tunnel holds the only slot.
    let mut next = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    next.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let waited = tokio::time::timeout(Duration::from_millis(500), next.read_to_end(&mut answer));
    let waited = waited.await;
    let beside = String::from_utf8_lossy(&answer);
    assert!(waited.is_err(), "served beside the tunnel: {beside}");

    ws.close(None).await.unwrap();
    drop(ws);
    let served = tokio::time::timeout(Duration::from_secs(10), next.read_to_end(&mut answer));
    served
        .await
        .expect("served once the tunnel closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A server proxying `/app/` to `b`, without auth, with a `read_timeout` of one second.
async fn impatient_gateway(b: &Backend) -> TestServer {
    open_gateway(b, |cfg| {
        cfg.upstreams[0].read_timeout = Duration::from_secs(1)
    })
    .await
}

/// nginx's `proxy_read_timeout`: an answer whose body stops coming is cut after `read_timeout`,
/// the client seeing it end short, not held open for as long as the backend likes.
#[tokio::test]
async fn a_stalled_answer_is_cut_after_the_read_timeout() {
    let b = backend("a").await;
    let s = impatient_gateway(&b).await;
    let r = s.client.get(s.url("/app/stream")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut chunks = r.bytes_stream();
    assert_eq!(&chunks.next().await.unwrap().unwrap()[..], b"one;");
    // The backend waits for a release that never comes.
    let rest = tokio::time::timeout(Duration::from_secs(10), chunks.next()).await;
    let rest = rest.expect("the stalled answer was not cut");
    assert!(matches!(rest, Some(Err(_))), "{rest:?}");
}

/// The same for a WebSocket tunnel with nothing through it either way: it is closed within two
/// read timeouts of its last byte.
#[tokio::test]
async fn an_idle_websocket_tunnel_is_closed_after_the_read_timeout() {
    let b = backend("a").await;
    let s = impatient_gateway(&b).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/app/ws", s.addr))
        .await
        .unwrap();
    ws.send("hello".into()).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "echo:hello"
    );
    let start = std::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    let end = end.expect("the idle tunnel was not closed");
    assert!(!matches!(end, Some(Ok(ref m)) if !m.is_close()), "{end:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_slow_backend_gets_a_json_504() {
    let b = backend("a").await;
    let s = open_gateway(&b, |cfg| {
        cfg.server.request_timeout = Duration::from_secs(1)
    })
    .await;
    let (status, body) = get(&s, "/app/slow", None).await;
    assert_eq!(
        (status, body),
        (504, json!({"detail": "The request took too long."}))
    );
}

#[tokio::test]
async fn forward_auth_checks_the_token_and_the_user() {
    let s = gateway(|_| {}).await;
    let (refresh, access) = s.login("user", "pw").await;
    let r = s
        .client
        .get(s.url("/api/auth/check"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-handstamp-user-id"], "1");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(reply(r).await, (200, json!({"user_id": "1"})));
    let (status, body) = get(&s, "/api/auth/check", Some(&refresh)).await;
    assert_eq!(status, 401);
    assert_eq!(body["messages"][0]["message"], "Token has wrong type");
    let (status, body) = get(&s, "/api/auth/check", None).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
}

/// What forward-auth, a required upstream and an optional one answer for `access`: the check's
/// status and body, and the user id each upstream's backend saw (`None`: it was not reached).
async fn identities(s: &TestServer, access: &str) -> ((u16, Value), Option<Value>, Option<Value>) {
    let seen = |(status, body): (u16, Value)| (status == 200).then(|| body["user_id"].clone());
    let check = get(s, "/api/auth/check", Some(access)).await;
    let required = get(s, "/app/x", Some(access)).await;
    let required = match required.0 {
        200 => Some(required.1["user_id"].clone()),
        _ => {
            assert_eq!(required.1, check.1, "the same 401 as the check");
            None
        }
    };
    let optional = seen(get(s, "/opt/x", Some(access)).await);
    (check, required, optional)
}

/// As simplejwt's `JWTAuthentication` does on every request: an inactive or deleted user is
/// refused from the very next request on, though their access token is still valid.
#[tokio::test]
async fn forward_auth_and_upstreams_refuse_inactive_and_deleted_users() {
    let b = backend("a").await;
    let s = gateway(|c| {
        mount(
            c,
            &b,
            &[("/app/", AuthMode::Required), ("/opt/", AuthMode::Optional)],
        );
    })
    .await;
    let (_, access) = s.login("user", "pw").await;
    let admitted = (
        (200, json!({"user_id": "1"})),
        Some(json!("1")),
        Some(json!("1")),
    );
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    let not_found = json!({"detail": "User not found", "code": "user_not_found"});
    assert_eq!(identities(&s, &access).await, admitted);

    let store = s.service.store();
    for round in 0..2 {
        store.set_active("user", false).await.unwrap();
        let hits = b.hits.load(Ordering::SeqCst);
        assert_eq!(
            identities(&s, &access).await,
            ((401, inactive.clone()), None, Some(Value::Null)),
            "round {round}: refused; the optional upstream gets no identity"
        );
        assert_eq!(
            b.hits.load(Ordering::SeqCst),
            hits + 1,
            "only the optional upstream's request reached the backend"
        );
        store.set_active("user", true).await.unwrap();
        assert_eq!(identities(&s, &access).await, admitted, "round {round}");
    }
    store.delete_user("user").await.unwrap();
    assert_eq!(
        identities(&s, &access).await,
        ((401, not_found), None, Some(Value::Null))
    );
}

/// `check_user = false`: the token alone is checked, without the database, as before.
#[tokio::test]
async fn with_check_user_off_the_token_alone_is_checked() {
    let b = backend("a").await;
    let s = gateway(|c| {
        c.server.check_user = false;
        mount(
            c,
            &b,
            &[("/app/", AuthMode::Required), ("/opt/", AuthMode::Optional)],
        );
    })
    .await;
    let (_, access) = s.login("user", "pw").await;
    let admitted = (
        (200, json!({"user_id": "1"})),
        Some(json!("1")),
        Some(json!("1")),
    );
    s.service.store().set_active("user", false).await.unwrap();
    assert_eq!(identities(&s, &access).await, admitted);
    s.service.store().delete_user("user").await.unwrap();
    assert_eq!(identities(&s, &access).await, admitted);
}

fn static_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("app.3f9a1c2b.js"), "console.log('hashed');").unwrap();
    std::fs::write(p.join("style.css"), "body { color: black; }").unwrap();
    std::fs::write(p.join("style.css.br"), "BROTLI-BYTES").unwrap();
    std::fs::write(p.join("style.css.gz"), "GZIP-BYTES").unwrap();
    std::fs::create_dir(p.join("sub")).unwrap();
    std::fs::write(p.join("sub/page.txt"), "0123456789").unwrap();
    dir
}

#[tokio::test]
async fn static_files_with_validators_ranges_and_precompression() {
    let files = static_dir();
    let dir = files.path().to_path_buf();
    let s = gateway(|c| {
        c.statics.push(StaticMount {
            prefix: "/static/".into(),
            dir,
        })
    })
    .await;
    let url = s.url("/static/sub/page.txt");

    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let modified = r.headers()["last-modified"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.text().await.unwrap(), "0123456789");

    let r = s
        .get_with("/static/sub/page.txt", &[("if-none-match", &etag)])
        .await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    let r = s
        .get_with("/static/sub/page.txt", &[("if-modified-since", &modified)])
        .await;
    assert_eq!(r.status(), 304);
    let r = s
        .get_with("/static/sub/page.txt", &[("if-none-match", "W/\"other\"")])
        .await;
    assert_eq!(r.status(), 200);

    let r = s
        .get_with("/static/sub/page.txt", &[("range", "bytes=2-5")])
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-5/10");
    assert_eq!(r.text().await.unwrap(), "2345");

    let r = s
        .client
        .get(s.url("/static/app.3f9a1c2b.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );

    let css = s.url("/static/style.css");
    let r = s
        .client
        .get(&css)
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(r.bytes().await.unwrap(), "BROTLI-BYTES");
    let r = s
        .client
        .get(&css)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let r = s.client.get(&css).send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().await.unwrap(), "body { color: black; }");
}

#[tokio::test]
async fn static_files_refuse_traversal_listings_and_writes() {
    let files = static_dir();
    std::fs::write(files.path().parent().unwrap().join("secret.txt"), "secret").ok();
    let dir = files.path().to_path_buf();
    let s = gateway(|c| {
        c.statics.push(StaticMount {
            prefix: "/static/".into(),
            dir,
        })
    })
    .await;
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/sub/",
        "/static/sub",
        "/static/",
        "/static/missing.js",
    ] {
        let (status, body) = get(&s, path, None).await;
        assert_eq!(
            (status, body),
            (404, json!({"detail": "Not found."})),
            "{path}"
        );
    }
    // An encoded `/` is refused before routing (tests/api/paths.rs).
    let (status, body) = get(&s, "/static/sub/..%2f..%2fsecret.txt", None).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"detail": "The request path has an encoded '/' or '\\'."})
        )
    );
    let r = s
        .client
        .post(s.url("/static/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply(r).await,
        (405, json!({"detail": "Method \"POST\" not allowed."}))
    );
}

#[tokio::test]
async fn every_response_has_a_request_id_and_keeps_the_clients() {
    let s = gateway(|_| {}).await;
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let r = s
        .client
        .get(s.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

/// Files are answered before the router only where it has no other route: an upstream inside a
/// static prefix still gets its paths, and a directory inside another serves its own files.
#[tokio::test]
async fn routes_inside_a_static_prefix_keep_their_paths() {
    let b = backend("a").await;
    let outer = static_dir();
    let inner = tempfile::tempdir().unwrap();
    std::fs::write(inner.path().join("page.txt"), "inner").unwrap();
    let (outer_dir, inner_dir) = (outer.path().to_path_buf(), inner.path().to_path_buf());
    let s = gateway(|c| {
        mount(c, &b, &[("/static/app/", AuthMode::None)]);
        c.statics.push(StaticMount {
            prefix: "/static/".into(),
            dir: outer_dir,
        });
        c.statics.push(StaticMount {
            prefix: "/static/sub/".into(),
            dir: inner_dir,
        });
    })
    .await;
    let (status, body) = get(&s, "/static/app/x", None).await;
    assert_eq!((status, &body["name"]), (200, &json!("a")));
    assert_eq!(body["path"], "/static/app/x");
    let r = s
        .client
        .get(s.url("/static/sub/page.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "inner");
    let r = s
        .client
        .get(s.url("/static/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "body { color: black; }");
}

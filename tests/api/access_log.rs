//! The access log of the real binary, as an operator reads it: one line per request with
//! nginx's `combined` fields (client, user, request, status, bytes, referer, user agent), the
//! duration and the request id, in text and JSON.

use crate::common::process::{Served, create_user, serve};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The keys of a text line, in their order.
const KEYS: [&str; 11] = [
    "request_id",
    "client",
    "user",
    "method",
    "path",
    "protocol",
    "status",
    "bytes",
    "micros",
    "referer",
    "user_agent",
];

/// The `key=value` pairs of a text access line, values as written (quoted ones with their quotes
/// and escapes).
fn fields(line: &str) -> Vec<(String, String)> {
    let (_, mut rest) = line
        .split_once("  INFO handstamp::access: ")
        .unwrap_or_else(|| panic!("not an access line: {line}"));
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').expect("key=value");
        let end = if let Some(inside) = after.strip_prefix('"') {
            let mut escaped = false;
            let close = inside.char_indices().find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            });
            1 + close.expect("a closing quote").0 + 1
        } else {
            after.find(' ').unwrap_or(after.len())
        };
        fields.push((key.to_owned(), after[..end].to_owned()));
        rest = after[end..].strip_prefix(' ').unwrap_or(&after[end..]);
    }
    fields
}

/// The value of `key` in a text line's fields.
fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    let found = fields.iter().find(|(k, _)| k == key);
    &found.unwrap_or_else(|| panic!("no {key} in {fields:?}")).1
}

/// The next log line that contains `needle`, within a generous deadline (a line never written
/// fails the test instead of hanging it).
fn line_with(server: &Served, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    tokio::task::block_in_place(|| {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = server.lines.recv_timeout(left);
            let line = line.unwrap_or_else(|e| panic!("no line with {needle}: {e}"));
            if line.contains(needle) {
                return line;
            }
        }
    })
}

/// The text access line of the request with id `id`, checked for its shape, as fields.
fn text_line(server: &Served, id: &str) -> Vec<(String, String)> {
    let line = line_with(server, &format!("request_id={id} "));
    let (timestamp, _) = line.split_once("  ").unwrap();
    assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{line}");
    let fields = fields(&line);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, KEYS, "{line}");
    assert!(field(&fields, "micros").parse::<u64>().is_ok(), "{line}");
    fields
}

/// A client that sends `id` as the request id, and the rest of `headers`.
fn request(
    server: &Served,
    method: Method,
    path: &str,
    id: &str,
    headers: &[(&str, &[u8])],
) -> reqwest::RequestBuilder {
    let mut map = HeaderMap::new();
    map.insert("x-request-id", HeaderValue::from_str(id).unwrap());
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.insert(name, HeaderValue::from_bytes(value).unwrap());
    }
    let url = format!("http://{}{path}", server.addr);
    reqwest::Client::new().request(method, url).headers(map)
}

/// Sends the request; its status and the body bytes received.
async fn send(builder: reqwest::RequestBuilder) -> (u16, Vec<u8>) {
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// A user `name` and an access token of theirs, from a server in `dir`: (user id, token).
async fn logged_in(server: &Served, name: &str) -> (String, String) {
    let login = request(server, Method::POST, "/api/token/", "login", &[])
        .json(&json!({"username": name, "password": "pw"}));
    let (status, body) = send(login).await;
    assert_eq!(status, 200);
    let pair: Value = serde_json::from_slice(&body).unwrap();
    let access = pair["access"].as_str().unwrap().to_owned();
    let user = match &crate::common::claims(&access)["user_id"] {
        Value::String(id) => id.clone(),
        id => id.to_string(),
    };
    (user, access)
}

/// A server in `dir` with a user `ann` (password `pw`) and `envs`.
fn serve_with_user(dir: &Path, envs: &[(&str, &str)]) -> Served {
    create_user(dir, "ann", "pw");
    tokio::task::block_in_place(|| serve(dir, envs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_carry_nginx_combined_fields_and_leave_out_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| serve(dir.path(), &[]));
    let get = request(
        &server,
        Method::GET,
        "/api/users/me/?token=secret",
        "txt-1",
        &[],
    );
    let (status, body) = send(get).await;
    assert_eq!(status, 401);
    let line = text_line(&server, "txt-1");
    let expected = [
        ("client", "127.0.0.1"),
        ("user", "-"),
        ("method", "GET"),
        ("path", "\"/api/users/me/\""),
        ("protocol", "HTTP/1.1"),
        ("status", "401"),
        ("bytes", &body.len().to_string()),
        ("referer", "-"),
        ("user_agent", "-"),
    ];
    for (key, value) in expected {
        assert_eq!(field(&line, key), value, "{key} in {line:?}");
    }
    assert!(!format!("{line:?}").contains("secret"), "{line:?}");

    // HEAD answers send no body.
    let head = request(&server, Method::HEAD, "/healthz", "head-1", &[]);
    assert_eq!(send(head).await.0, 200);
    let line = text_line(&server, "head-1");
    assert_eq!(field(&line, "bytes"), "0");

    // HTTP/2 is named as nginx names it.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{}/healthz", server.addr);
    let (status, body) = send(h2.get(url).header("x-request-id", "h2-1")).await;
    assert_eq!(status, 200);
    let line = text_line(&server, "h2-1");
    assert_eq!(field(&line, "protocol"), "HTTP/2.0");
    assert_eq!(field(&line, "bytes"), body.len().to_string());
    assert_ne!(body.len(), 0);

    // A request refused before any route is logged alike.
    let mut raw = TcpStream::connect(&server.addr).unwrap();
    write!(raw, "GET /a%2Fb HTTP/1.1\r\nHost: x\r\nX-Request-Id: refused-1\r\nUser-Agent: probe\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let body = &answer[split + 4..];
    let line = text_line(&server, "refused-1");
    assert_eq!(field(&line, "status"), "400", "{line:?}");
    assert_eq!(field(&line, "client"), "127.0.0.1");
    assert_eq!(field(&line, "user_agent"), "\"probe\"");
    assert_eq!(field(&line, "bytes"), body.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_token_names_its_user_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_user(dir.path(), &[]);
    let (user, access) = logged_in(&server, "ann").await;
    // A login verifies a password, not a token.
    assert_eq!(field(&text_line(&server, "login"), "user"), "-");
    let bearer = format!("Bearer {access}");
    // Forward-auth and /me (hot routes), and the sessions (through the router).
    for (n, path) in ["/api/auth/check", "/api/users/me/", "/api/sessions/"]
        .into_iter()
        .enumerate()
    {
        let id = format!("auth-{n}");
        let get = request(
            &server,
            Method::GET,
            path,
            &id,
            &[("authorization", bearer.as_bytes())],
        );
        let (status, body) = send(get).await;
        assert_eq!(status, 200, "{path}");
        let line = text_line(&server, &id);
        assert_eq!(field(&line, "user"), user, "{path}: {line:?}");
        assert_eq!(field(&line, "bytes"), body.len().to_string(), "{path}");
    }
    // A token that does not verify names no one.
    let forged = format!("Bearer {access}x");
    let get = request(
        &server,
        Method::GET,
        "/api/auth/check",
        "forged-1",
        &[("authorization", forged.as_bytes())],
    );
    assert_eq!(send(get).await.0, 401);
    assert_eq!(field(&text_line(&server, "forged-1"), "user"), "-");
}

/// A `User-Agent` and a `Referer` that try to end the field early and carry a byte that is not
/// UTF-8, and a referer with a query that must not be logged.
const HOSTILE_AGENT: &[u8] = b"evil\" user=root \xc3\xa9\xff";
const HOSTILE_REFERER: &[u8] = b"https://app.example/pa\"ge?token=secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_agent_and_referer_are_quoted_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| serve(dir.path(), &[]));
    let headers = [("user-agent", HOSTILE_AGENT), ("referer", HOSTILE_REFERER)];
    let get = request(&server, Method::GET, "/healthz", "evil-1", &headers);
    assert_eq!(send(get).await.0, 200);
    let line = text_line(&server, "evil-1");
    assert_eq!(field(&line, "user_agent"), r#""evil\" user=root é\xff""#);
    assert_eq!(field(&line, "referer"), r#""https://app.example/pa\"ge""#);
    assert_eq!(
        field(&line, "user"),
        "-",
        "the agent's `user=` is not a field"
    );
    assert!(!format!("{line:?}").contains("secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_the_same_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_user(dir.path(), &[("HANDSTAMP_LOG_FORMAT", "json")]);
    let (user, access) = logged_in(&server, "ann").await;
    let bearer = format!("Bearer {access}");
    let headers = [
        ("authorization", bearer.as_bytes()),
        ("user-agent", HOSTILE_AGENT),
        ("referer", HOSTILE_REFERER),
    ];
    let get = request(
        &server,
        Method::GET,
        "/api/users/me/?x=1",
        "req-4242",
        &headers,
    );
    let (status, body) = send(get).await;
    assert_eq!(status, 200);
    let line = line_with(&server, "req-4242");
    let entry: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert_eq!(entry["target"], "handstamp::access");
    assert_eq!(entry["level"], "INFO");
    assert!(humantime::parse_rfc3339(entry["timestamp"].as_str().unwrap()).is_ok());
    let fields = entry["fields"].as_object().unwrap();
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut expected_keys = KEYS.to_vec();
    keys.sort();
    expected_keys.sort();
    assert_eq!(keys, expected_keys, "{line}");
    let expected = json!({
        "request_id": "req-4242",
        "client": "127.0.0.1",
        "user": user,
        "method": "GET",
        "path": "/api/users/me/",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": body.len(),
        // Bytes that are not UTF-8 become U+FFFD in JSON strings.
        "user_agent": "evil\" user=root é\u{fffd}",
        "referer": "https://app.example/pa\"ge",
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&fields[key], value, "{key} in {line}");
    }
    assert!(fields["micros"].is_u64(), "{line}");

    let anonymous = request(&server, Method::GET, "/healthz", "anon-1", &[]);
    assert_eq!(send(anonymous).await.0, 200);
    let line = line_with(&server, "anon-1");
    let entry: Value = serde_json::from_str(&line).unwrap();
    for key in ["user", "referer", "user_agent"] {
        assert_eq!(entry["fields"][key], "-", "{key} in {line}");
    }
}

/// A backend that answers `/chunked/...` with `CHUNKS` chunks of `CHUNK` bytes (chunked
/// encoding), waiting before the last one until `release` sends, `/tunnel...` with a switch of
/// protocols and `TUNNELED` bytes, and anything else with a `Content-Length` body of `FIXED`
/// bytes.
const CHUNK: usize = 3000;
const CHUNKS: usize = 3;
const FIXED: usize = 1234;
const TUNNELED: usize = 4321;

fn backend() -> (String, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let released = released.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                if head.starts_with(b"GET /app/tunnel") {
                    // Switches protocols, sends TUNNELED bytes, and closes once the client has.
                    let _ = stream.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
                    );
                    let _ = stream.write_all(&[b't'; TUNNELED]);
                    let _ = stream.read_to_end(&mut Vec::new());
                    return;
                }
                if !head.starts_with(b"GET /app/chunked") {
                    let body = vec![b'f'; FIXED];
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {FIXED}\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(&body);
                    return;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                );
                for n in 0..CHUNKS {
                    if n == CHUNKS - 1 {
                        let _ = released.lock().unwrap().recv();
                    }
                    let _ = write!(stream, "{CHUNK:x}\r\n{}\r\n", "c".repeat(CHUNK));
                }
                let _ = stream.write_all(b"0\r\n\r\n");
            });
        }
    });
    (format!("http://{addr}"), release)
}

fn serve_gateway(dir: &Path, backend: &str, server: &str) -> Served {
    std::fs::write(
        dir.join("handstamp.toml"),
        format!(
            "[server]\n{server}\n\n[[upstream]]\nprefix = \"/app/\"\nbackends = [\"{backend}\"]\nauth = \"optional\"\nhealth_interval = \"1h\"\n"
        ),
    )
    .unwrap();
    serve_with_user(dir, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_answers_log_the_bytes_sent_and_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let (url, release) = backend();
    let server = serve_gateway(dir.path(), &url, "");
    let (user, access) = logged_in(&server, "ann").await;
    let bearer = format!("Bearer {access}");
    let auth = [("authorization", bearer.as_bytes())];

    let get = request(&server, Method::GET, "/app/fixed", "fixed-1", &auth);
    let (status, body) = send(get).await;
    assert_eq!((status, body.len()), (200, FIXED));
    let line = text_line(&server, "fixed-1");
    assert_eq!(field(&line, "bytes"), FIXED.to_string());
    assert_eq!(field(&line, "user"), user, "an `auth` upstream's user");

    // A streamed answer is logged when its body has been sent, with what was sent.
    release.send(()).unwrap();
    let get = request(&server, Method::GET, "/app/chunked", "chunked-1", &[]);
    let (status, body) = send(get).await;
    assert_eq!((status, body.len()), (200, CHUNK * CHUNKS));
    let line = text_line(&server, "chunked-1");
    assert_eq!(field(&line, "bytes"), (CHUNK * CHUNKS).to_string());
    assert_eq!(field(&line, "user"), "-");
    assert_eq!(field(&line, "status"), "200");
}

/// A proxied WebSocket (any upgrade) is logged when its tunnel closes, with the bytes sent to
/// the client through it, as nginx does; not at its `101`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_is_logged_when_it_closes_with_the_bytes_it_carried() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _release) = backend();
    let server = serve_gateway(dir.path(), &url, "");
    let mut tunnel = TcpStream::connect(&server.addr).unwrap();
    tunnel
        .write_all(
            b"GET /app/tunnel HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echo\r\n\
              X-Request-Id: tunnel-1\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tunnel.read(&mut byte).unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut tunneled = vec![0; TUNNELED];
    tunnel.read_exact(&mut tunneled).unwrap();

    // Lines are written in order: none for the tunnel before one for a request sent after it.
    let (status, _) = send(request(
        &server,
        Method::GET,
        "/healthz",
        "after-tunnel",
        &[],
    ))
    .await;
    assert_eq!(status, 200);
    let before = line_with(&server, "request_id=");
    let before = std::iter::successors(Some(before), |line| {
        (!line.contains("request_id=after-tunnel ")).then(|| line_with(&server, "request_id="))
    });
    for line in before {
        assert!(!line.contains("tunnel-1"), "logged while open: {line}");
    }

    drop(tunnel);
    let line = text_line(&server, "tunnel-1");
    assert_eq!(field(&line, "status"), "101");
    assert_eq!(field(&line, "bytes"), TUNNELED.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_answer_is_logged_with_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (url, release) = backend();
    let server = serve_gateway(dir.path(), &url, "");
    let get = request(&server, Method::GET, "/app/chunked", "gone-1", &[]);
    let mut response = get.send().await.unwrap();
    let mut received = 0;
    while received < CHUNK * (CHUNKS - 1) {
        received += response.chunk().await.unwrap().unwrap().len();
    }
    // Gone while the backend holds its last chunk.
    drop(response);
    let line = text_line(&server, "gone-1");
    assert_eq!(field(&line, "bytes"), received.to_string());
    drop(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_trusted_proxies_the_forwarded_client_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _release) = backend();
    let server = serve_gateway(dir.path(), &url, "trusted_proxies = [\"127.0.0.1\"]");
    let (_, access) = logged_in(&server, "ann").await;
    let bearer = format!("Bearer {access}");
    let forwarded = ("x-forwarded-for", b"198.51.100.1, 203.0.113.9".as_slice());
    // A hot route, the router, the proxy.
    for (n, path) in ["/api/auth/check", "/healthz", "/app/fixed"]
        .into_iter()
        .enumerate()
    {
        let id = format!("xff-{n}");
        let headers = [forwarded, ("authorization", bearer.as_bytes())];
        let get = request(&server, Method::GET, path, &id, &headers);
        assert_eq!(send(get).await.0, 200, "{path}");
        let line = text_line(&server, &id);
        assert_eq!(field(&line, "client"), "203.0.113.9", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_log_their_size_and_a_304_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("public")).unwrap();
    // One answered from memory, one read from disk as it is sent.
    std::fs::write(d.join("public/small.txt"), "x".repeat(1000)).unwrap();
    std::fs::write(d.join("public/large.bin"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(
        d.join("handstamp.toml"),
        "[[static]]\nprefix = \"/s/\"\ndir = \"public\"\n",
    )
    .unwrap();
    let server = tokio::task::block_in_place(|| serve(d, &[]));
    for (n, file) in ["small.txt", "large.bin"].into_iter().enumerate() {
        let id = format!("file-{n}");
        let path = format!("/s/{file}");
        let response = request(&server, Method::GET, &path, &id, &[])
            .send()
            .await
            .unwrap();
        let etag = response.headers()["etag"].clone();
        let body = response.bytes().await.unwrap();
        assert_eq!(
            field(&text_line(&server, &id), "bytes"),
            body.len().to_string()
        );

        let id = format!("unchanged-{n}");
        let headers = [("if-none-match", etag.as_bytes())];
        let again = request(&server, Method::GET, &path, &id, &headers);
        assert_eq!(send(again).await.0, 304);
        assert_eq!(field(&text_line(&server, &id), "bytes"), "0");
    }
}

#[test]
fn a_log_filter_without_the_access_target_writes_no_access_line() {
    for (filter, logged) in [("info", true), ("info,handstamp::access=off", false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = serve(dir.path(), &[("RUST_LOG", filter)]);
        assert_eq!(server.get_with_request_id("/healthz", "filtered-1"), 200);
        // Stopping writes out what the log buffer holds; then the log ends.
        server.signal("-TERM");
        assert!(server.child.wait().unwrap().success());
        let written = server.lines.iter().any(|line| line.contains("filtered-1"));
        assert_eq!(written, logged, "RUST_LOG={filter}");
    }
}

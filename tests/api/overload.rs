//! Floods of logins against the real binary, run as its own process so that its memory can be
//! read: the password queue is bounded, work whose client has gone is dropped, passwords and
//! token bodies are small, and a valid login is still served at once afterwards.

use crate::common::command;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// One test at a time: they time logins and count memory, and each floods the machine's cores.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A runtime for the tests' own clients and backends.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

/// `handstamp user ...` with `password` on standard input: whether it succeeded, and its errors.
fn user_command(dir: &Path, args: &[&str], password: &str) -> (bool, String) {
    let mut child = command(dir, args)
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr)
}

fn create_user(dir: &Path, name: &str, password: &str) {
    let (ok, stderr) = user_command(dir, &["user", "create", name], password);
    assert!(ok, "{stderr}");
}

/// A `handstamp serve` process over a fresh database with the user alice in it.
struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(envs: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), envs)
    }

    /// Serves from `dir` (its handstamp.toml, if any, and its database).
    fn start_in(dir: tempfile::TempDir, envs: &[(&str, &str)]) -> Self {
        create_user(dir.path(), USER, PASSWORD);
        let mut child = command(dir.path(), &["serve", "--bind", "127.0.0.1:0"])
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(url) = line.split("listening on ").nth(1) {
                let url = url.split(['"', ' ']).next().unwrap();
                break url.split("://").nth(1).unwrap().to_owned();
            }
        };
        // Keeps reading the log, so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The most memory the process has held so far (VmHWM), in bytes.
    fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// Sends `request` (raw bytes) and reads the whole answer, within 10 s.
    fn exchange(&self, request: &[u8]) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The server may answer and close before the whole body is written.
        let _ = stream.write_all(request);
        Answer::read(&mut stream)
    }

    fn login(&self, username: &str, password: &str) -> Answer {
        let body = json!({"username": username, "password": password}).to_string();
        self.exchange(&post("/api/token/", &body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST path` with a JSON body and `Connection: close`.
fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A response read to the end of the connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn read(stream: &mut impl Read) -> Answer {
        let mut raw = Vec::new();
        if let Err(error) = stream.read_to_end(&mut raw)
            && raw.is_empty()
        {
            panic!("no answer: {error}");
        }
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").expect("a whole response head");
        Answer {
            status: head[9..12].parse().unwrap(),
            head: head.to_ascii_lowercase(),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    fn has_header(&self, line: &str) -> bool {
        self.head.lines().any(|l| l == line)
    }
}

/// The answer to every failed login.
fn bad_credentials() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

/// Sends `request` on `count` connections, at most 200 at a time, each closed as soon as the
/// request is written, without reading the answer: clients that gave up.
async fn abandon(addr: &str, request: Vec<u8>, count: usize) {
    let request = Arc::new(request);
    let slots = Arc::new(tokio::sync::Semaphore::new(200));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..count {
        let slot = slots.clone().acquire_owned().await.unwrap();
        let (addr, request) = (addr.to_owned(), request.clone());
        clients.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            // Refused before the whole body is written: that is as good as abandoned.
            let sent = stream.write_all(&request);
            let _ = tokio::time::timeout(Duration::from_secs(10), sent).await;
            drop(slot);
        });
    }
    while let Some(client) = clients.join_next().await {
        client.unwrap();
    }
}

/// A valid login, timed.
fn timed_login(server: &Server) -> Duration {
    let started = Instant::now();
    let answer = server.login(USER, PASSWORD);
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    took
}

#[test]
fn abandoned_logins_with_huge_passwords_leave_memory_and_logins_alone() {
    let _serial = serial();
    let server = Server::start(&[]);
    // A megabyte password: under the general 1 MiB body limit.
    let huge = "p".repeat(1_000_000);
    let body = json!({"username": USER, "password": huge}).to_string();
    for _ in 0..2 {
        runtime().block_on(abandon(&server.addr, post("/api/token/", &body), 600));
    }
    let flood_peak = server.peak_memory();
    let took = timed_login(&server);
    let peak = server.peak_memory();
    eprintln!(
        "valid login after the floods: {took:?}; peak memory {} KiB ({} KiB before the login)",
        peak >> 10,
        flood_peak >> 10
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(peak < 64 << 20, "peak memory {} MiB", peak >> 20);
}

#[test]
fn abandoned_logins_are_not_hashed() {
    let _serial = serial();
    // The few wrong passwords hashed before their clients were gone would lock the user: this
    // measures the password queue, not throttling (tests/api/throttle.rs).
    let server = Server::start(&[
        ("HANDSTAMP_LOGIN_MAX_FAILURES", "0"),
        ("HANDSTAMP_LOGIN_MAX_FAILURES_PER_IP", "0"),
    ]);
    let body = json!({"username": USER, "password": "wrong"}).to_string();
    runtime().block_on(abandon(&server.addr, post("/api/token/", &body), 2000));
    let took = timed_login(&server);
    eprintln!("valid login after 2000 abandoned ones: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn past_the_password_queue_logins_get_503_with_retry_after() {
    let _serial = serial();
    let server = Arc::new(Server::start(&[("HANDSTAMP_PASSWORD_QUEUE", "2")]));
    let clients: Vec<_> = (0..60)
        .map(|n| {
            let server = server.clone();
            // Wrong and right passwords alike wait for a password thread.
            let password = if n % 2 == 0 { PASSWORD } else { "wrong" };
            std::thread::spawn(move || server.login(USER, password))
        })
        .collect();
    let answers: Vec<Answer> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!busy.is_empty(), "{statuses:?}");
    for answer in &busy {
        assert!(answer.has_header("retry-after: 1"), "{}", answer.head);
        assert!(answer.body["detail"].is_string(), "{answer:?}");
        assert_eq!(answer.body.as_object().unwrap().len(), 1, "{answer:?}");
    }
    assert!(
        statuses.iter().all(|s| [200, 401, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    // Once the queue has drained, logins are served again.
    assert!(timed_login(&server) < Duration::from_secs(1));
}

/// The Argon2id hash our server would have written for `password` (this test's own, so that a
/// password we now refuse can be put in the database as an older version might have stored it).
fn argon2id(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[test]
fn passwords_over_4096_bytes_are_refused_unhashed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let longest = "p".repeat(4096);
    let over = "p".repeat(4097);
    create_user(d, "longest", &longest);
    for args in [
        &["user", "create", "over"][..],
        &["user", "set-password", "longest"],
    ] {
        let (ok, stderr) = user_command(d, args, &over);
        assert!(!ok && stderr.contains("4096 bytes"), "{args:?}: {stderr}");
    }
    // A user whose stored password is longer, as an import or an older version could have left.
    create_user(d, "over", "short");
    let db = rusqlite::Connection::open(d.join("handstamp.sqlite3")).unwrap();
    let changed = db
        .execute(
            "UPDATE users SET password = ?1 WHERE username = 'over'",
            [argon2id(&over)],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let server = Server::start_in(dir, &[]);
    assert_eq!(server.login("longest", &longest).status, 200);
    let refused = server.login("over", &over);
    assert_eq!((refused.status, &refused.body), (401, &bad_credentials()));
    assert!(refused.has_header(r#"www-authenticate: bearer realm="api""#));
    assert_eq!(server.login("longest", &over).body, bad_credentials());
}

/// A backend answering any request with the length of the body it got.
async fn body_length_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(|body: axum::body::Bytes| async move { body.len().to_string() });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[test]
fn token_endpoints_refuse_large_bodies_while_proxied_ones_pass() {
    let _serial = serial();
    let runtime = runtime();
    let backend = runtime.block_on(body_length_backend());
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[upstream]]\nprefix = \"/app/\"\nbackends = [\"http://{backend}\"]\nauth = \"none\"\n"
    );
    std::fs::write(dir.path().join("handstamp.toml"), config).unwrap();
    let server = Server::start_in(dir, &[]);
    let padding = "x".repeat(20 * 1024);
    let body = json!({"username": USER, "password": PASSWORD, "padding": padding}).to_string();
    let too_large = json!({"detail": "Request body is too large."});
    // The limit follows the normalized path: dots and slashes do not get around it.
    for path in [
        "/api/token/",
        "/api/token/verify/",
        "/api/token/refresh",
        "/api/./token/",
        "//api/x/../token/%76erify/",
    ] {
        let answer = server.exchange(&post(path, &body));
        assert_eq!(answer.status, 413, "{path}: {:?}", answer.body);
        assert_eq!(answer.body, too_large);
    }
    // A chunked body is refused as soon as it passes the limit, without its end.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 1024, "x".repeat(1024));
    for _ in 0..20 {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let answer = Answer::read(&mut stream);
    assert_eq!((answer.status, &answer.body), (413, &too_large));
    // The general limit still applies to proxied requests.
    let answer = server.exchange(&post("/app/echo", &body));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, json!(body.len()));
    // Small token bodies are served as ever.
    assert_eq!(server.login(USER, PASSWORD).status, 200);
}

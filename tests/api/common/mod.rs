//! A real handstamp server on 127.0.0.1:0 over a temporary SQLite file (or a fresh
//! PostgreSQL database), and a client for it.
#![allow(dead_code)]

pub mod browser;
pub mod postgres;
pub mod process;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use handstamp::config::{Secret, Settings};
use handstamp::password::Hasher;
use handstamp::{AuthService, server, store};
use hmac::{Hmac, Mac};
use reqwest::{Client, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

pub const KEY: &str = "test-signing-key-of-at-least-sixty-four-bytes-for-every-hs-algorithm";

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub service: Arc<AuthService>,
    pub dir: tempfile::TempDir,
    /// The URL of the database it serves from.
    pub database_url: String,
    /// The PostgreSQL database it made for itself, if any; dropped after the server.
    pub database: Option<postgres::TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test key and whatever `tweak` changes in the settings; on a fresh
    /// PostgreSQL database instead of SQLite when `TEST_STORE=postgres` (`.ci/run` runs the
    /// API's suites that way too).
    pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        if std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres") {
            let started = Self::start_postgres(tweak).await;
            return started.expect("TEST_STORE=postgres needs TEST_POSTGRES_URL");
        }
        Self::start_in(tempfile::tempdir().unwrap(), tweak).await
    }

    /// Starts with the database in `dir` (a filesystem the test set up, say).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Settings)) -> Self {
        let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
        Self::start_on(&url, dir, tweak).await
    }

    /// Starts on a fresh PostgreSQL database of its own; `None` (after a notice) when no test
    /// server is set.
    pub async fn start_postgres(tweak: impl FnOnce(&mut Settings)) -> Option<Self> {
        let database = postgres::TestDatabase::create().await?;
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_on(&database.url, dir, tweak).await;
        server.database = Some(database);
        Some(server)
    }

    /// A second instance on this one's database, as instances behind a load balancer run
    /// (drop it before this one: a PostgreSQL database goes with its first server).
    pub async fn start_beside(&self, tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::start_on(&self.database_url, tempfile::tempdir().unwrap(), tweak).await
    }

    /// Starts on the database at `url`, with `dir` for any files.
    pub async fn start_on(
        url: &str,
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = Settings::default();
        settings.jwt.signing_key = Some(Secret(KEY.into()));
        tweak(&mut settings);
        let store = match settings.jwt.jwk_url {
            Some(_) => Arc::new(store::NoStore),
            None => store::open_with(url, &settings.database.pool())
                .await
                .unwrap(),
        };
        let hasher = Hasher::with_queue(settings.server.password_queue);
        let service = AuthService::with_hasher(settings.jwt.clone(), store, hasher);
        let service = service.await.unwrap().with_login_limits(&settings.login);
        let service = Arc::new(service.with_cookies(settings.cookies.clone(), &settings.cors));
        tokio::spawn(service.clone().keep_keys_fresh());
        let listeners = server::bind(&["127.0.0.1:0".to_string()]).await.unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let app = server::app(service.clone(), &settings);
        let options = server::ServeOptions::from_settings(&settings.server).unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server::serve_with(listeners, app, options, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            addr,
            client: Client::new(),
            service,
            dir,
            database_url: url.to_owned(),
            database: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn create_user(&self, name: &str, password: &str) -> i64 {
        let user = self
            .service
            .create_user(name, password.into(), false, false)
            .await
            .unwrap();
        user.id
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with `headers`.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_bearer(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns (refresh, access).
    pub async fn login(&self, name: &str, password: &str) -> (String, String) {
        let r = self
            .post(
                "/api/token/",
                json!({"username": name, "password": password}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        (
            body["refresh"].as_str().unwrap().to_owned(),
            body["access"].as_str().unwrap().to_owned(),
        )
    }

    /// Stops the server, letting requests in flight finish.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
    }
}

/// Status and JSON body of a response.
pub async fn reply(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

/// A token signed by hand: `header` and `payload` as raw JSON text, HMAC with `alg`.
pub fn craft(header: &str, payload: &str, key: &[u8], alg: &str) -> String {
    craft_bytes(header.as_bytes(), payload.as_bytes(), key, alg)
}

/// [`craft`] from header and payload bytes, which need not be UTF-8.
pub fn craft_bytes(header: &[u8], payload: &[u8], key: &[u8], alg: &str) -> String {
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &str) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(key).unwrap();
        m.update(input.as_bytes());
        m.finalize().into_bytes().to_vec()
    }
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = match alg {
        "HS256" => mac::<Hmac<sha2::Sha256>>(key, &input),
        "HS384" => mac::<Hmac<sha2::Sha384>>(key, &input),
        "HS512" => mac::<Hmac<sha2::Sha512>>(key, &input),
        other => panic!("no such algorithm {other}"),
    };
    format!("{input}.{}", B64.encode(sig))
}

/// An HS256 token over `payload` with the test key.
pub fn hs256(payload: Value) -> String {
    craft(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &payload.to_string(),
        KEY.as_bytes(),
        "HS256",
    )
}

pub fn now() -> i64 {
    handstamp::token::now()
}

/// The decoded header and payload of a token, as raw JSON text.
pub fn parts(token: &str) -> (String, String) {
    let mut it = token.split('.');
    let header = B64.decode(it.next().unwrap()).unwrap();
    let payload = B64.decode(it.next().unwrap()).unwrap();
    (
        String::from_utf8(header).unwrap(),
        String::from_utf8(payload).unwrap(),
    )
}

pub fn claims(token: &str) -> Value {
    serde_json::from_str(&parts(token).1).unwrap()
}

/// A self-signed certificate for localhost, written as PEM files into `dir`; returns the files
/// and the certificate's PEM text.
pub fn certificate(dir: &std::path::Path, name: &str) -> (handstamp::config::TlsFiles, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (handstamp::config::TlsFiles { cert, key }, made.cert.pem())
}

/// The body simplejwt answers a bad token with on a token endpoint.
pub fn token_not_valid(reason: &str) -> Value {
    json!({"detail": reason, "code": "token_not_valid"})
}

/// The `handstamp` binary with `args`, run in `dir`, without any `HANDSTAMP_*` variable of the
/// test's own environment (each test sets the ones it means).
pub fn command(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_handstamp"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("HANDSTAMP_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

//! HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with a certificate made in the test, and the connection
//! limits and timeouts that protect the server from slow clients.

use crate::common::*;
use handstamp::config::TlsFiles;
use std::io::{Read, Write};
use std::time::Duration;

fn client_trusting(pem: &str, addr: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_serves_http2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let (files, pem) = certificate(dir.path(), "cert");
    let s = TestServer::start_with(|c| c.server.set_tls(files)).await;
    s.create_user("tess", "pw").await;
    let url = format!("https://localhost:{}/api/token/", s.addr.port());
    let body = serde_json::json!({"username": "tess", "password": "pw"});

    let h2 = client_trusting(&pem, s.addr);
    let r = h2.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);

    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve("localhost", s.addr)
        .http1_only()
        .build()
        .unwrap();
    let r = h1.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);

    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::get(format!("http://{}/healthz", s.addr)).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[test]
fn a_bad_or_missing_certificate_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = certificate(dir.path(), "good");
    let (other, _) = certificate(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let cases = [
        (
            TlsFiles {
                cert: dir.path().join("missing.pem"),
                key: good.key.clone(),
            },
            "certificate",
        ),
        (
            TlsFiles {
                cert: garbage,
                key: good.key.clone(),
            },
            "certificate",
        ),
        (
            TlsFiles {
                cert: good.cert.clone(),
                key: dir.path().join("missing.key"),
            },
            "key",
        ),
        (
            TlsFiles {
                cert: good.cert.clone(),
                key: other.key.clone(),
            },
            "does not match",
        ),
    ];
    for (files, words) in cases {
        let err = handstamp::server::CertStore::load(&files)
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "{err}");
    }
    assert!(handstamp::server::CertStore::load(&good).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_by_the_header_timeout() {
    let s = TestServer::start_with(|c| c.server.header_read_timeout = Duration::from_secs(1)).await;
    let addr = s.addr;
    let slow = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        // Half a request head, then nothing.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut answer = Vec::new();
        let outcome = stream.read_to_end(&mut answer);
        (
            outcome.map_err(|e| e.kind()),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });
    // Others are served meanwhile.
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (outcome, answer) = slow.await.unwrap();
    assert!(
        outcome.is_ok(),
        "the server should close the connection, not leave it open: {outcome:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

/// Sends a keep-alive GET /healthz and reads its response head and body.
fn healthz(stream: &mut std::net::TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).ends_with(r#"{"status":"ok"}"#) {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// How many connections wait in the kernel's accept queue of the listener on `port`.
#[cfg(target_os = "linux")]
fn accept_queue(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[3] == "0A" && f[1].ends_with(&format!(":{port:04X}")))
        .map(|f| usize::from_str_radix(f[4].split(':').nth(1).unwrap(), 16).unwrap())
        .expect("the listener is in /proc/net/tcp")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let s = TestServer::start_with(|c| c.server.max_connections = 1).await;
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        let mut first = std::net::TcpStream::connect(addr).unwrap();
        assert!(healthz(&mut first).starts_with("HTTP/1.1 200"));
        // The kernel completes the second connection, but the server does not take it...
        let mut second = std::net::TcpStream::connect(addr).unwrap();
        second
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        // ...even once it has served the first connection again: it stays in the queue.
        assert!(healthz(&mut first).starts_with("HTTP/1.1 200"));
        assert_eq!(
            accept_queue(addr.port()),
            1,
            "the second connection was taken"
        );
        // Closing the first frees the slot: the second is served.
        drop(first);
        let mut answer = String::new();
        second.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(accept_queue(addr.port()), 0);
    })
    .await
    .unwrap();
}

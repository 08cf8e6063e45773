//! Every state a connection can be in has a bounded life: a client that connects and sends
//! nothing, stops half-way through a preface, a TLS handshake or a request head, idles between
//! requests or never reads its responses is cut off, so that it cannot hold a connection slot.
//! Raw sockets throughout: the clients here misbehave on purpose.

use crate::common::*;
use bytes::Bytes;
use handstamp::config::Settings;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slack for a loaded machine (two cores shared by many test processes).
const MARGIN: Duration = Duration::from_secs(3);
const SECOND: Duration = Duration::from_secs(1);

/// Timeouts short enough for tests; the ones a test is not about stay long.
fn short(settings: &mut Settings) {
    settings.server.header_read_timeout = SECOND;
    settings.server.keepalive_timeout = Duration::from_secs(60);
    settings.server.send_timeout = Duration::from_secs(60);
}

/// A client's HTTP/2 connection (prior knowledge) from `builder`: its sender, the connection's
/// task, and the answer to `GET path` on it. The sender is kept by the caller: dropping it
/// would let the client end the connection itself.
async fn h2_get(
    addr: std::net::SocketAddr,
    builder: &hyper::client::conn::http2::Builder<TokioExecutor>,
    path: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
    hyper::Response<hyper::body::Incoming>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = builder.handshake(TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(format!("http://{addr}{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    (sender, conn, response)
}

/// Reads (and discards) until the server closes the connection or resets it, and returns how
/// long that took; panics if it is still open after `bound`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    bound: Duration,
) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "the connection was still open after {bound:?}"
    );
    start.elapsed()
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_after_the_header_read_timeout() {
    let s = TestServer::start_with(short).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let took = closed_within(&mut silent, SECOND + MARGIN).await;
    assert!(took >= SECOND - Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn part_of_the_http2_preface_is_cut_after_the_header_read_timeout() {
    let s = TestServer::start_with(short).await;
    let mut partial = TcpStream::connect(s.addr).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    closed_within(&mut partial, SECOND + MARGIN).await;
}

#[tokio::test]
async fn http2_without_a_request_is_cut_after_the_header_read_timeout() {
    let s = TestServer::start_with(short).await;
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let (_sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    // The preface and SETTINGS went out, but never a request.
    let outcome = tokio::time::timeout(SECOND + MARGIN, conn).await;
    assert!(outcome.is_ok(), "the HTTP/2 connection was not closed");
}

/// A TLS client for the test certificate, offering `alpn`.
fn tls_connector(pem: &str, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

use rustls_pki_types::pem::PemObject;

#[tokio::test]
async fn a_tls_handshake_never_finished_is_cut_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = certificate(dir.path(), "cert");
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.set_tls(files);
    })
    .await;
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    // The header of a handshake record, and nothing of the ClientHello it announces.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    closed_within(&mut stalled, SECOND + MARGIN).await;
}

#[tokio::test]
async fn an_idle_client_after_the_tls_handshake_is_cut_for_http2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let (files, pem) = certificate(dir.path(), "cert");
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.set_tls(files);
    })
    .await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let tcp = TcpStream::connect(s.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tls_connector(&pem, alpn).connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        closed_within(&mut tls, SECOND + MARGIN).await;
    }
}

#[tokio::test]
async fn the_tls_handshake_counts_against_the_header_read_timeout() {
    let header_read = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let (files, pem) = certificate(dir.path(), "cert");
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.header_read_timeout = header_read;
        c.server.set_tls(files);
    })
    .await;
    // The clock: a silent connection to a server with a 2 s header timeout ends after 2 s.
    let clock = TestServer::start_with(|c| {
        short(c);
        c.server.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let start = Instant::now();
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut tick = TcpStream::connect(clock.addr).await.unwrap();
    closed_within(&mut tick, Duration::from_secs(2) + MARGIN).await;
    // Two seconds into the three: the handshake, then nothing.
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    if let Ok(mut tls) = tls_connector(&pem, b"http/1.1").connect(name, tcp).await {
        closed_within(&mut tls, header_read + MARGIN).await;
    }
    let took = start.elapsed();
    assert!(
        took < header_read + Duration::from_millis(1500),
        "closed {took:?} after connecting: the handshake had a timeout of its own"
    );
}

/// Sends a keep-alive GET /healthz and reads its whole response.
async fn healthz(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.ends_with(br#"{"status":"ok"}"#) {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        answer.extend_from_slice(&chunk[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_after_the_keepalive_timeout() {
    let keepalive = Duration::from_secs(3);
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.keepalive_timeout = keepalive;
    })
    .await;
    let mut client = TcpStream::connect(s.addr).await.unwrap();
    healthz(&mut client).await;
    healthz(&mut client).await;
    // Idle: kept for the keep-alive timeout, not merely the (shorter) header read timeout.
    let took = closed_within(&mut client, keepalive + MARGIN).await;
    assert!(
        took >= keepalive - Duration::from_millis(200),
        "closed after {took:?}, before the keep-alive timeout"
    );
}

#[tokio::test]
async fn a_later_request_head_must_arrive_within_the_header_read_timeout() {
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.keepalive_timeout = Duration::from_secs(30);
    })
    .await;
    let mut client = TcpStream::connect(s.addr).await.unwrap();
    healthz(&mut client).await;
    // The next head starts, then stalls: the keep-alive timeout no longer applies.
    client.write_all(b"GET /hea").await.unwrap();
    closed_within(&mut client, SECOND + MARGIN).await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_keepalive_timeout() {
    let keepalive = Duration::from_secs(3);
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.keepalive_timeout = keepalive;
    })
    .await;
    let h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    let (_sender, conn, response) = h2_get(s.addr, &h2, "/healthz").await;
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    let idle = Instant::now();
    let closed = tokio::time::timeout(keepalive + MARGIN, conn).await;
    let took = idle.elapsed();
    let closed = closed.expect("the idle HTTP/2 connection was not closed");
    // Closed gracefully (GOAWAY), not reset.
    assert!(closed.unwrap().is_ok(), "not a graceful close");
    assert!(took >= keepalive - Duration::from_millis(200), "{took:?}");
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_after_the_send_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (s, size) = serving_a_big_file(dir.path()).await;
    let mut reader_on_strike = TcpStream::connect(s.addr).await.unwrap();
    reader_on_strike
        .write_all(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The only connection slot is taken until the stalled one is cut.
    let start = Instant::now();
    let mut next = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::timeout(SECOND + MARGIN, healthz(&mut next))
        .await
        .expect("the stalled client kept its connection");
    assert!(start.elapsed() >= SECOND - Duration::from_millis(100));
    // It got part of the file, then the connection ended.
    let mut received = Vec::new();
    let _ = tokio::time::timeout(MARGIN, reader_on_strike.read_to_end(&mut received))
        .await
        .expect("the stalled connection was not closed");
    assert!(received.len() < size, "{} bytes", received.len());
}

/// A server with one connection slot, a short send timeout, and a file far larger than the
/// socket buffers and HTTP/2 windows of both ends at `/files/big.bin`; and the file's size.
async fn serving_a_big_file(dir: &std::path::Path) -> (TestServer, usize) {
    let size = 32 * 1024 * 1024;
    std::fs::write(dir.join("big.bin"), vec![7u8; size]).unwrap();
    let dir = dir.to_owned();
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.send_timeout = SECOND;
        c.server.max_connections = 1;
        c.statics = vec![handstamp::config::StaticMount {
            prefix: "/files/".into(),
            dir,
        }];
    })
    .await;
    (s, size)
}

#[tokio::test]
async fn an_http2_client_that_stops_opening_its_window_is_cut_after_the_send_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = serving_a_big_file(dir.path()).await;
    // The client reads every frame off the socket, but never takes the body, so it never
    // gives the server more window: the stream waits on the client, the socket does not.
    let mut h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    h2.initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535);
    let (_sender, conn, response) = h2_get(s.addr, &h2, "/files/big.bin").await;
    assert_eq!(response.status(), 200);
    let start = Instant::now();
    let mut next = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::timeout(SECOND + MARGIN, healthz(&mut next))
        .await
        .expect("the stalled HTTP/2 client kept its connection");
    assert!(start.elapsed() >= SECOND - Duration::from_millis(100));
    tokio::time::timeout(MARGIN, conn)
        .await
        .expect("the stalled HTTP/2 connection was not closed")
        .unwrap()
        .ok();
    drop(response);
}

#[tokio::test]
async fn idle_connections_hold_their_slots_only_until_the_timeout() {
    let n = 3;
    let s = TestServer::start_with(|c| {
        short(c);
        c.server.max_connections = n;
    })
    .await;
    let start = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..n {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut client = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::timeout(SECOND + MARGIN, healthz(&mut client))
        .await
        .expect("the new client was never served");
    // Not before the idle ones were cut: they held every slot until then.
    let took = start.elapsed();
    assert!(took >= SECOND - Duration::from_millis(100), "{took:?}");
    for mut stream in idle {
        closed_within(&mut stream, MARGIN).await;
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_lets_requests_in_flight_finish() {
    // A backend that answers `/app/slow` only when released.
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let (arrived, arrival) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut arrived, mut released) = (Some(arrived), Some(released));
        loop {
            let (mut stream, _) = backend.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let n = stream.read(&mut head).await.unwrap();
            if head[..n].starts_with(b"GET /app/slow") {
                arrived.take().unwrap().send(()).unwrap();
                let _ = released.take().unwrap().await;
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            // Held open: the server's side decides when connections end.
            std::mem::forget(stream);
        }
    });
    let s = TestServer::start_with(|c| {
        short(c);
        c.upstreams = vec![upstream_at(backend_addr)];
    })
    .await;
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    healthz(&mut idle).await;
    let mut busy = TcpStream::connect(s.addr).await.unwrap();
    busy.write_all(b"GET /app/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    arrival.await.unwrap();

    let stopping = tokio::spawn(s.stop());
    // The idle connection goes at once, long before any timeout; the busy one stays.
    closed_within(&mut idle, MARGIN).await;
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the request"
    );
    release.send(()).unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(MARGIN, busy.read_to_end(&mut answer))
        .await
        .expect("the connection was not closed after its last response")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    tokio::time::timeout(MARGIN, stopping)
        .await
        .expect("shutdown did not finish")
        .unwrap();
}

/// `/app/` proxied to `backend`, without health probes.
fn upstream_at(backend: std::net::SocketAddr) -> handstamp::config::UpstreamSettings {
    handstamp::config::UpstreamSettings {
        prefix: "/app/".into(),
        backends: vec![format!("http://{backend}")],
        auth: handstamp::config::AuthMode::None,
        balance: handstamp::config::Balance::RoundRobin,
        health_path: "/".into(),
        health_interval: Duration::from_secs(3600),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_response_waiting_on_a_slow_backend_is_not_cut_by_the_send_timeout() {
    // A backend that sends the head and a first chunk, and the rest only when released (and
    // answers the health probe).
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut released = Some(released);
        loop {
            let (mut stream, _) = backend.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let n = stream.read(&mut head).await.unwrap();
            if !head[..n].starts_with(b"GET /app/stream") {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
                continue;
            }
            let start = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
            stream.write_all(start.as_bytes()).await.unwrap();
            let _ = released.take().unwrap().await;
            stream.write_all(b"4\r\nlast\r\n0\r\n\r\n").await.unwrap();
            std::mem::forget(stream);
        }
    });
    let s = TestServer::start_with(|c| {
        short(c);
        // Longer than the send timeout: its expiry on another connection is the clock here.
        c.server.header_read_timeout = Duration::from_secs(2);
        c.server.send_timeout = SECOND;
        c.upstreams = vec![upstream_at(backend_addr)];
    })
    .await;
    let h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    let (_sender, conn, response) = h2_get(s.addr, &h2, "/app/stream").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");
    // Once a silent connection has been cut by the (longer) header timeout, more than the
    // send timeout has passed with the response waiting on the backend, not on the client.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(2) + MARGIN).await;
    assert!(
        !conn.is_finished(),
        "the connection waiting on the backend was cut"
    );
    release.send(()).unwrap();
    let rest = tokio::time::timeout(MARGIN, body.collect())
        .await
        .expect("the rest of the response never came")
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"last");
}

#[tokio::test]
async fn http2_settings_bound_what_one_connection_can_hold() {
    let s = TestServer::start_with(short).await;
    let mut client = TcpStream::connect(s.addr).await.unwrap();
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    // The server's first frame is its SETTINGS: a 9-byte header, then 6-byte entries.
    let mut header = [0u8; 9];
    client.read_exact(&mut header).await.unwrap();
    assert_eq!(header[3], 4, "not a SETTINGS frame");
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; len];
    client.read_exact(&mut payload).await.unwrap();
    let settings: std::collections::HashMap<u16, u32> = payload
        .chunks(6)
        .map(|e| {
            let id = u16::from_be_bytes([e[0], e[1]]);
            (id, u32::from_be_bytes([e[2], e[3], e[4], e[5]]))
        })
        .collect();
    // SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE.
    assert_eq!(settings.get(&3), Some(&100), "{settings:?}");
    assert_eq!(settings.get(&6), Some(&16_384), "{settings:?}");
}

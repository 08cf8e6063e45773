//! New TLS connections per second, for bench/gateway.sh's `handshake` row: what wrk cannot measure
//! (it keeps its connections open).
//!
//! ```text
//! handshakes HOST PORT PATH SECONDS [CONNECTIONS]
//! ```
//!
//! CONNECTIONS (default 32) loops on one tokio current-thread runtime (the bench pins the client to
//! one CPU), each for SECONDS: a new TCP connection, a full TLS 1.3 handshake, one
//! `GET PATH HTTP/1.1` with `Connection: close` (sent with the client's Finished, as browsers send it),
//! the whole answer read until the server closes, the status checked. Prints the line
//! bench/report.py parses, as bench/scenario.lua does (non200: answers that were not 200; latency:
//! from connect to the server's close):
//!
//! ```text
//! BENCH requests=N duration_s=S rps=R p50_ms=A p99_ms=B non200=C socket_errors=E timeouts=T
//!       exhausted=0 statuses=... first_bad=...
//! ```
//!
//! The row measures the server's cost of a new connection, so the client is built to cost less:
//! rustls with aws-lc-rs, TLS 1.3 only, one X25519 key share (the one key exchange a client cannot
//! skip), the cipher suites in browsers' order (AES-128-GCM with SHA-256 first: SHA-384's key
//! schedule took a fifth of this client's CPU time in a profile), no session resumption (no ticket kept, no
//! session cache: every connection is a full handshake).
//!
//! **It checks nothing of the server's identity**: any certificate is accepted and the
//! CertificateVerify signature is not verified. The server still signs every handshake, which is
//! what the row measures; verifying its P-256 signature would cost this client more than signing
//! costs the server. A bench client, never a model for real code.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const USAGE: &str = "usage: handshakes HOST PORT PATH SECONDS [CONNECTIONS]";
/// A connection taking longer than this counts as a timeout (wrk's `--timeout` in the bench).
const TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONNECTIONS: usize = 32;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = match Target::from_args(&args) {
        Ok(target) => Arc::new(target),
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let began = Instant::now();
    let tally = runtime.block_on(run(target.clone()));
    println!("{}", tally.bench_line(began.elapsed()));
    ExitCode::SUCCESS
}

/// Where to connect and what to send, shared by every loop.
struct Target {
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    request: Vec<u8>,
    seconds: f64,
    connections: usize,
}

impl Target {
    fn from_args(args: &[String]) -> Result<Self, String> {
        let [host, port, path, seconds, rest @ ..] = args else {
            return Err("expected 4 or 5 arguments".into());
        };
        let connections = match rest {
            [] => DEFAULT_CONNECTIONS,
            [n] => n
                .parse()
                .map_err(|_| format!("CONNECTIONS: not a number: {n}"))?,
            _ => return Err("expected 4 or 5 arguments".into()),
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("PORT: not a port: {port}"))?;
        let seconds: f64 = seconds
            .parse()
            .map_err(|_| format!("SECONDS: not a number: {seconds}"))?;
        // Resolved once: the loops measure handshakes, not name lookups.
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        Ok(Target {
            addr,
            name,
            connector: TlsConnector::from(Arc::new(client_config()?)),
            request: format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            seconds,
            connections: connections.max(1),
        })
    }
}

/// TLS 1.3, an X25519 key share alone, browsers' cipher order, no resumption, no check of the
/// server (see the top comment).
fn client_config() -> Result<ClientConfig, String> {
    let provider = Arc::new(CryptoProvider {
        kx_groups: vec![aws_lc_rs::kx_group::X25519],
        cipher_suites: vec![
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        ..aws_lc_rs::default_provider()
    });
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Accepts every certificate and every handshake signature: a bench client's shortcut only.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is never offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        // Offered as a verifying client would: the server picks and signs with its own key.
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs the loops until SECONDS have passed and their last connections are done.
async fn run(target: Arc<Target>) -> Tally {
    let deadline = Instant::now() + Duration::from_secs_f64(target.seconds);
    let loops: Vec<_> = (0..target.connections)
        .map(|_| tokio::spawn(connection_loop(target.clone(), deadline)))
        .collect();
    let mut total = Tally::default();
    for handle in loops {
        total.merge(handle.await.expect("a connection loop panicked"));
    }
    total
}

async fn connection_loop(target: Arc<Target>, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut answer = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let start = Instant::now();
        answer.clear();
        match tokio::time::timeout(TIMEOUT, exchange(&target, &mut answer)).await {
            Ok(Ok(())) => match status_of(&answer) {
                Ok(status) => tally.answered(start.elapsed(), status, &answer),
                Err(message) => tally.failed(message),
            },
            Ok(Err(e)) => tally.failed(format!("error {e}")),
            Err(_) => tally.timed_out(),
        }
    }
    tally
}

/// One connection: connect, handshake, request, and the answer read into `answer` until the server
/// closes.
async fn exchange(target: &Target, answer: &mut Vec<u8>) -> io::Result<()> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    // Buffered by rustls until the handshake is done, then sent in one segment with the client's
    // Finished, as browsers send their first request.
    let request = |tls: &mut rustls::ClientConnection| {
        tls.writer()
            .write_all(&target.request)
            .expect("a request far under rustls' 64 KiB buffer limit")
    };
    let mut tls = target
        .connector
        .connect_with(target.name.clone(), tcp, request)
        .await?;
    match tls.read_to_end(answer).await {
        Ok(_) => Ok(()),
        // Closed without close_notify: status_of still finds a short body by its Content-Length.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) => Err(e),
    }
}

/// The status of a complete HTTP/1.1 answer; an error when the head or the body is cut short.
fn status_of(answer: &[u8]) -> Result<u16, String> {
    let cut = |what: &str| format!("error {what} after {} bytes", answer.len());
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| cut("answer head cut short"))?;
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("error no status line: {}", lines_for_report(&head)))?;
    let length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    match length {
        Some(length) if answer.len() - head_end - 4 < length => Err(cut("body cut short")),
        _ => Ok(status),
    }
}

/// What the loops saw: every answer's latency and status, the failures.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    socket_errors: u64,
    timeouts: u64,
    first_bad: Option<String>,
}

impl Tally {
    fn answered(&mut self, latency: Duration, status: u16, answer: &[u8]) {
        self.latencies.push(latency);
        *self.statuses.entry(status).or_default() += 1;
        if status != 200 && self.first_bad.is_none() {
            self.first_bad =
                Some(String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned());
        }
    }

    fn failed(&mut self, message: String) {
        self.socket_errors += 1;
        self.first_bad.get_or_insert(message);
    }

    fn timed_out(&mut self) {
        self.socket_errors += 1;
        self.timeouts += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.socket_errors += other.socket_errors;
        self.timeouts += other.timeouts;
        if self.first_bad.is_none() {
            self.first_bad = other.first_bad;
        }
    }

    /// The `BENCH` line, its keys and formats those of bench/tls_handshakes.py before it.
    fn bench_line(mut self, duration: Duration) -> String {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        let pct = |p: f64| match n {
            0 => 0.0,
            _ => self.latencies[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1000.0,
        };
        let bad: Vec<String> = self
            .statuses
            .iter()
            .filter(|&(&s, _)| s != 200)
            .map(|(s, n)| format!("{s}:{n}"))
            .collect();
        let non200: u64 = self
            .statuses
            .iter()
            .filter(|&(&s, _)| s != 200)
            .map(|(_, n)| n)
            .sum();
        let seconds = duration.as_secs_f64();
        format!(
            "BENCH requests={n} duration_s={seconds:.3} rps={:.1} p50_ms={:.3} p99_ms={:.3} non200={non200} \
             socket_errors={} timeouts={} exhausted=0 statuses={} first_bad={}",
            n as f64 / seconds,
            pct(0.5),
            pct(0.99),
            self.socket_errors,
            self.timeouts,
            if bad.is_empty() {
                "-".into()
            } else {
                bad.join(",")
            },
            lines_for_report(self.first_bad.as_deref().unwrap_or("")),
        )
    }
}

/// One line of at most 200 characters, for the BENCH line's last field.
fn lines_for_report(text: &str) -> String {
    text.replace(['\r', '\n'], " ").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::status_of;

    #[test]
    fn a_complete_answer_gives_its_status() {
        let answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nConnection: close\r\n\r\nnot";
        assert_eq!(status_of(answer), Ok(404));
    }

    #[test]
    fn an_answer_without_a_length_is_complete_at_the_close() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n\r\nanything"), Ok(200));
    }

    #[test]
    fn a_body_shorter_than_its_length_is_an_error() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\nshort";
        assert_eq!(
            status_of(answer),
            Err("error body cut short after 46 bytes".into())
        );
    }

    #[test]
    fn a_head_cut_short_is_an_error() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Le";
        assert_eq!(
            status_of(answer),
            Err("error answer head cut short after 27 bytes".into())
        );
    }

    #[test]
    fn a_status_line_without_a_code_is_an_error() {
        assert!(status_of(b"HTTP/1.1\r\n\r\n").is_err());
    }
}

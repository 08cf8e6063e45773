//! The access log: one line per request with nginx `combined`'s fields (client address, user,
//! request, status, body bytes sent, referer, user agent), its duration and its request id, in
//! the same text or JSON shape as the other log lines, written straight into the log buffer.
//! Formatting through `tracing` cost more than the rest of a token check, and `fmt` machinery
//! with a fresh RFC 3339 timestamp per line still cost a fifth of it; so the text line is
//! assembled from byte slices (numbers by itoa, an IPv4 address by hand, on the stack) and the
//! date part of the timestamp is formatted once a second.
//!
//! A line is written when the answer's head is ready if its body's length is known (JSON
//! answers, files from memory, most proxied answers), else when its body has been sent or the
//! client has gone (a streamed answer), with what was sent and the time taken to then, as nginx
//! and Envoy log at the end of a stream; a proxied WebSocket's when its tunnel closes, with the
//! bytes sent through it. Query strings, the path's and the referer's, are left
//! out: they may carry secrets.

use super::LogBuffer;
use super::counted_body::Counted;
use crate::config::LogFormat;
use crate::http::Tunnel;
use crate::http::client::{MAX_ADDRESS, address_text};
use crate::request_id::{User, is_plain_token};
use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use serde::Serializer;
use std::cell::RefCell;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where access lines go: the server's log buffer, in its format, or nowhere (`None`) when its
/// log filter leaves them out; unset in a library user's app, where they are `tracing` events.
static ACCESS_LOG: OnceLock<Option<(LogBuffer, LogFormat)>> = OnceLock::new();

/// Sends access lines straight to `buffer`, in `format`, if the log filter, installed by now,
/// lets them through: asked once, as it does not change while the server runs (asking
/// `tracing` cost 85 instructions a request).
pub fn write_to(buffer: LogBuffer, format: LogFormat) {
    let enabled = tracing::enabled!(target: TARGET, tracing::Level::INFO);
    let _ = ACCESS_LOG.set(enabled.then_some((buffer, format)));
}

fn enabled() -> bool {
    match ACCESS_LOG.get() {
        Some(installed) => installed.is_some(),
        None => tracing::enabled!(target: TARGET, tracing::Level::INFO),
    }
}

const TARGET: &str = "handstamp::access";

/// What the access line says of a request, noted as it arrives: the target as the client sent
/// it, before the path is normalized. Kept small: it travels in the request's future.
pub struct Arrival {
    method: Method,
    /// `None` for a target of no path (`CONNECT`'s authority).
    target: Option<PathAndQuery>,
    version: Version,
    client: Option<IpAddr>,
    // The request's own header bytes, shared (a reference count), not copied.
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
}

impl Arrival {
    /// What the line will need of `req`, from the address `client` works out; `None`, with
    /// nothing computed, when access lines are not written.
    pub fn note(req: &Request, client: impl FnOnce() -> Option<IpAddr>) -> Option<Self> {
        if !enabled() {
            return None;
        }
        // One pass over the few headers a request has costs less than two hashed lookups.
        let (mut user_agent, mut referer) = (None, None);
        for (name, value) in req.headers() {
            if name == header::USER_AGENT {
                user_agent = user_agent.or(Some(value));
            } else if name == header::REFERER {
                referer = referer.or(Some(value));
            }
        }
        Some(Arrival {
            method: req.method().clone(),
            target: req.uri().path_and_query().cloned(),
            version: req.version(),
            client: client(),
            user_agent: user_agent.cloned(),
            referer: referer.cloned(),
        })
    }

    /// The client's address, when the connection's is known.
    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }
}

/// How a request was answered.
struct Answer<'a> {
    request_id: &'a [u8],
    user: Option<&'a User>,
    status: u16,
    bytes: u64,
    elapsed: Duration,
}

/// Writes the line of the request `arrival` noted (nothing if it noted nothing), with id
/// `request_id`, whose token named `user`, started at `started` and answered with `response`
/// after `elapsed`: now when the body's length is known (nothing of it for `HEAD` and 304), else
/// once the body has been sent, `response`'s body wrapped to count it, or for a tunnel once it
/// has closed (`arrival` then taken).
pub fn answered(
    arrival: &mut Option<Arrival>,
    request_id: &HeaderValue,
    user: Option<User>,
    started: Instant,
    elapsed: Duration,
    response: &mut Response,
) {
    let Some(noted) = arrival else {
        return;
    };
    let status = response.status();
    let bodiless = noted.method == Method::HEAD || status == StatusCode::NOT_MODIFIED;
    let known = match bodiless {
        true => Some(0),
        false => response.body().size_hint().exact(),
    };
    let status = status.as_u16();
    // A tunnel (a proxied WebSocket) is logged when it closes, with what went through it; only
    // a 101 is looked at for one.
    if status == StatusCode::SWITCHING_PROTOCOLS.as_u16()
        && let Some(tunnel) = response.extensions_mut().remove::<Tunnel>()
    {
        let arrival = arrival.take().expect("noted");
        tunnel.on_close(write_later(arrival, request_id, user, status, started));
        return;
    }
    if let Some(bytes) = known {
        let answer = Answer {
            request_id: request_id.as_bytes(),
            user: user.as_ref(),
            status,
            bytes,
            elapsed,
        };
        return write(noted, &answer);
    }
    let arrival = arrival.take().expect("noted");
    let body = std::mem::take(response.body_mut());
    let then = write_later(arrival, request_id, user, status, started);
    *response.body_mut() = Body::new(Counted::new(body, then));
}

/// Writes the line when the bytes sent are known, the time taken counted to then.
fn write_later(
    arrival: Arrival,
    request_id: &HeaderValue,
    user: Option<User>,
    status: u16,
    started: Instant,
) -> impl FnOnce(u64) + Send + 'static {
    let request_id = request_id.clone();
    move |bytes| {
        let answer = Answer {
            request_id: request_id.as_bytes(),
            user: user.as_ref(),
            status,
            bytes,
            elapsed: started.elapsed(),
        };
        write(&arrival, &answer);
    }
}

/// The line's fields; text as bytes, which the text line writes as they are (escaped where they
/// may be a client's) and JSON as strings.
#[derive(serde::Serialize)]
struct Fields<'a> {
    #[serde(serialize_with = "text")]
    request_id: &'a [u8],
    #[serde(serialize_with = "text_or_dash")]
    client: Option<&'a [u8]>,
    #[serde(serialize_with = "text_or_dash")]
    user: Option<&'a [u8]>,
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    status: u16,
    bytes: u64,
    micros: u64,
    #[serde(serialize_with = "text_or_dash")]
    referer: Option<&'a [u8]>,
    #[serde(serialize_with = "text_or_dash")]
    user_agent: Option<&'a [u8]>,
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    timestamp: &'a str,
    level: &'static str,
    fields: &'a Fields<'a>,
    target: &'static str,
}

fn write(arrival: &Arrival, answer: &Answer<'_>) {
    let mut address = [0; MAX_ADDRESS];
    let fields = Fields {
        request_id: answer.request_id,
        client: arrival.client.map(|ip| address_text(ip, &mut address)),
        user: answer.user.map(User::as_bytes),
        method: arrival.method.as_str(),
        path: arrival.target.as_ref().map_or("", PathAndQuery::path),
        protocol: protocol(arrival.version),
        status: answer.status,
        bytes: answer.bytes,
        micros: answer.elapsed.as_micros() as u64,
        referer: arrival
            .referer
            .as_ref()
            .map(|referer| without_query(referer.as_bytes())),
        user_agent: arrival.user_agent.as_ref().map(HeaderValue::as_bytes),
    };
    let Some(Some((buffer, format))) = ACCESS_LOG.get() else {
        let f = &fields;
        tracing::info!(
            target: TARGET,
            request_id = &*String::from_utf8_lossy(f.request_id),
            client = &*lossy_or_dash(f.client),
            user = &*lossy_or_dash(f.user),
            method = f.method,
            path = f.path,
            protocol = f.protocol,
            status = f.status,
            bytes = f.bytes,
            micros = f.micros,
            referer = &*lossy_or_dash(f.referer),
            user_agent = &*lossy_or_dash(f.user_agent),
        );
        return;
    };
    let timestamp = Timestamp::now();
    buffer.append(|out| match format {
        LogFormat::Text => text_line(out, timestamp.as_bytes(), &fields),
        LogFormat::Json => {
            let line = JsonLine {
                timestamp: timestamp.as_str(),
                level: "INFO",
                fields: &fields,
                target: TARGET,
            };
            if serde_json::to_writer(&mut *out, &line).is_ok() {
                out.push(b'\n');
            }
        }
    });
}

/// `<timestamp>  INFO handstamp::access: request_id=.. client=.. user=.. method=.. path=".."
/// protocol=.. status=.. bytes=.. micros=.. referer=".." user_agent=".."`, as
/// `tracing_subscriber`'s text format writes events; `-` for what is unknown or absent.
fn text_line(out: &mut Vec<u8>, timestamp: &[u8], f: &Fields<'_>) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(timestamp);
    out.extend_from_slice(b"  INFO handstamp::access: request_id=");
    // Generated, or a client's id of plain ASCII (see `request_id`).
    out.extend_from_slice(f.request_id);
    out.extend_from_slice(b" client=");
    out.extend_from_slice(f.client.unwrap_or(b"-"));
    out.extend_from_slice(b" user=");
    match f.user {
        // A user id of letters and digits (the usual) as is; anything else quoted, so that no
        // id can pass for `-` or another field.
        Some(user) if user != b"-" && is_plain_token(user) => out.extend_from_slice(user),
        user => quoted_or_dash(out, user),
    }
    out.extend_from_slice(b" method=");
    out.extend_from_slice(f.method.as_bytes());
    out.extend_from_slice(b" path=");
    quoted(out, f.path.as_bytes());
    out.extend_from_slice(b" protocol=");
    out.extend_from_slice(f.protocol.as_bytes());
    out.extend_from_slice(b" status=");
    // Three digits (100 to 999, as `StatusCode` holds it).
    let status = f.status;
    let digit = |n: u16| b'0' + (n % 10) as u8;
    out.extend_from_slice(&[digit(status / 100), digit(status / 10), digit(status)]);
    out.extend_from_slice(b" bytes=");
    out.extend_from_slice(number.format(f.bytes).as_bytes());
    out.extend_from_slice(b" micros=");
    out.extend_from_slice(number.format(f.micros).as_bytes());
    out.extend_from_slice(b" referer=");
    quoted_or_dash(out, f.referer);
    out.extend_from_slice(b" user_agent=");
    quoted_or_dash(out, f.user_agent);
    out.push(b'\n');
}

fn quoted_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => quoted(out, value),
        None => out.push(b'-'),
    }
}

/// `value` as Rust's `{:?}` quotes a string (no quote or line break of a client's can end the
/// field or the line), bytes that are not UTF-8 as `\xNN`; without the per-character escaping
/// when nothing needs it (the usual case: paths arrive percent-encoded, agents are ASCII).
fn quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    // Every byte looked at, without an early exit: the compiler checks 16 at a time (a user
    // agent has a hundred bytes, and needs no escaping).
    let needs_escaping = value.iter().fold(false, |needs, &b| {
        needs | !(b' '..=b'~').contains(&b) | (b == b'"') | (b == b'\\')
    });
    if !needs_escaping {
        out.extend_from_slice(value);
    } else {
        for chunk in value.utf8_chunks() {
            // `{:?}` quotes: keep what is between them.
            let start = out.len();
            let _ = write!(out, "{:?}", chunk.valid());
            out.pop();
            out.remove(start);
            for byte in chunk.invalid() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(b'"');
}

/// A header's text for JSON and `tracing`: bytes that are not UTF-8 replaced (U+FFFD); `-` when
/// absent.
fn lossy_or_dash(value: Option<&[u8]>) -> std::borrow::Cow<'_, str> {
    value.map_or("-".into(), String::from_utf8_lossy)
}

fn text<S: Serializer>(value: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(value))
}

fn text_or_dash<S: Serializer>(value: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&lossy_or_dash(*value))
}

/// A referer without its query string or fragment.
fn without_query(referer: &[u8]) -> &[u8] {
    let end = memchr::memchr2(b'?', b'#', referer);
    &referer[..end.unwrap_or(referer.len())]
}

/// The protocol as nginx's `$server_protocol` names it.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "-",
    }
}

/// An RFC 3339 UTC timestamp with microseconds: `2026-11-25T10:46:00.123456Z`.
struct Timestamp([u8; 27]);

impl Timestamp {
    fn now() -> Self {
        thread_local! {
            /// The last second formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS.`.
            static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
        }
        let now = SystemTime::now();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
        let mut text = [0u8; 27];
        SECOND.with_borrow_mut(|(second, prefix)| {
            if *second != secs {
                let formatted = humantime::format_rfc3339_seconds(now).to_string();
                prefix[..19].copy_from_slice(&formatted.as_bytes()[..19]);
                prefix[19] = b'.';
                *second = secs;
            }
            text[..20].copy_from_slice(prefix);
        });
        let mut digits = micros;
        for slot in text[20..26].iter_mut().rev() {
            *slot = b'0' + (digits % 10) as u8;
            digits /= 10;
        }
        text[26] = b'Z';
        Timestamp(text)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_humantime() {
        let before = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let stamp = Timestamp::now();
        let after = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let text = stamp.as_str();
        assert!(humantime::parse_rfc3339(text).is_ok(), "{text}");
        assert_eq!(text.len(), 27);
        assert!(
            text[..19] == before[..19] || text[..19] == after[..19],
            "{text} vs {before}"
        );
    }

    fn fields(path: &str) -> Fields<'_> {
        Fields {
            request_id: b"abc",
            client: Some(b"192.0.2.7"),
            user: Some(b"42"),
            method: "GET",
            path,
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 1234,
            micros: 42,
            referer: Some(b"https://app.example/"),
            user_agent: None,
        }
    }

    fn text(fields: &Fields<'_>) -> String {
        let mut out = Vec::new();
        text_line(&mut out, b"T", fields);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_lines_quote_paths_as_debug_formatting_does() {
        for path in [
            "/api/token/",
            "/a b",
            "/x\"y",
            "/é",
            "/tab\there",
            "/\u{301}",
        ] {
            let expected = format!(
                "T  INFO handstamp::access: request_id=abc client=192.0.2.7 user=42 method=GET \
                 path={path:?} protocol=HTTP/1.1 status=200 bytes=1234 micros=42 \
                 referer=\"https://app.example/\" user_agent=-\n"
            );
            assert_eq!(text(&fields(path)), expected);
        }
    }

    #[test]
    fn header_bytes_are_quoted_and_escaped() {
        let quote = |value: &[u8]| {
            let mut out = Vec::new();
            quoted(&mut out, value);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(quote(b"curl/8.5.0 (x; y)"), r#""curl/8.5.0 (x; y)""#);
        assert_eq!(quote(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote(b"line\r\nuser=root"), r#""line\r\nuser=root""#);
        // UTF-8 as Debug shows it; other bytes, even amid UTF-8, as \xNN.
        assert_eq!(quote("é".as_bytes()), "\"é\"");
        assert_eq!(quote(b"\xff\xc3\xa9\xc3x\x7f"), r#""\xffé\xc3x\u{7f}""#);
    }

    #[test]
    fn users_that_are_no_plain_token_are_quoted() {
        let line = |user: Option<&str>| {
            let mut f = fields("/");
            f.user = user.map(str::as_bytes);
            let line = text(&f);
            let start = line.find(" user=").unwrap() + 6;
            line[start..line.find(" method=").unwrap()].to_owned()
        };
        assert_eq!(line(None), "-");
        assert_eq!(
            line(Some("8d0c4a52-1f7e-4b43-9f3e-2c1d7ab0e5f1")),
            "8d0c4a52-1f7e-4b43-9f3e-2c1d7ab0e5f1"
        );
        assert_eq!(line(Some("-")), r#""-""#);
        assert_eq!(line(Some("a b")), r#""a b""#);
        assert_eq!(line(Some("")), r#""""#);
    }

    #[test]
    fn json_lines_have_the_same_fields() {
        let mut f = fields("/x");
        f.user_agent = Some(b"a\"\xff");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "request_id": "abc", "client": "192.0.2.7", "user": "42", "method": "GET",
                "path": "/x", "protocol": "HTTP/1.1", "status": 200, "bytes": 1234, "micros": 42,
                "referer": "https://app.example/", "user_agent": "a\"\u{fffd}",
            })
        );
        f.user = None;
        f.client = None;
        f.referer = None;
        let json = serde_json::to_value(&f).unwrap();
        for key in ["user", "client", "referer"] {
            assert_eq!(json[key], "-", "{key}");
        }
    }

    #[test]
    fn referers_lose_their_query_and_fragment() {
        assert_eq!(
            without_query(b"https://a.example/p?token=x"),
            b"https://a.example/p"
        );
        assert_eq!(
            without_query(b"https://a.example/p#top"),
            b"https://a.example/p"
        );
        assert_eq!(without_query(b"https://a.example/"), b"https://a.example/");
    }
}

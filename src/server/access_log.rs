//! The access log: one line per request, in the same text or JSON shape as the other log lines,
//! written straight into the log buffer. Formatting through `tracing` cost more than the rest of
//! a token check, and `fmt` machinery with a fresh RFC 3339 timestamp per line still cost a
//! fifth of it; so the text line is assembled from byte slices and the date part of the
//! timestamp is formatted once a second.

use super::LogBuffer;
use super::observe::Served;
use crate::config::LogFormat;
use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where access lines go: the server's log buffer, or, when none was installed (a library
/// user's app), ordinary `tracing` events.
static ACCESS_LOG: OnceLock<(LogBuffer, LogFormat)> = OnceLock::new();

/// Sends access lines straight to `buffer`, in `format`.
pub fn write_to(buffer: LogBuffer, format: LogFormat) {
    let _ = ACCESS_LOG.set((buffer, format));
}

const TARGET: &str = "handstamp::access";

#[derive(serde::Serialize)]
struct Fields<'a> {
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    micros: u64,
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    timestamp: &'a str,
    level: &'static str,
    fields: Fields<'a>,
    target: &'static str,
}

pub fn write(served: &Served<'_>) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let fields = Fields {
        // Generated, or a client's id of plain ASCII (see `request_id`).
        request_id: std::str::from_utf8(served.request_id).unwrap_or("-"),
        method: served.method,
        path: served.path,
        status: served.status,
        micros: served.elapsed.as_micros() as u64,
    };
    let Some((buffer, format)) = ACCESS_LOG.get() else {
        let f = &fields;
        tracing::info!(
            target: TARGET,
            request_id = f.request_id,
            method = f.method,
            path = f.path,
            status = f.status,
            micros = f.micros,
        );
        return;
    };
    let timestamp = Timestamp::now();
    buffer.append(|out| match format {
        LogFormat::Text => text_line(out, timestamp.as_str(), &fields),
        LogFormat::Json => {
            let line = JsonLine {
                timestamp: timestamp.as_str(),
                level: "INFO",
                fields,
                target: TARGET,
            };
            if serde_json::to_writer(&mut *out, &line).is_ok() {
                out.push(b'\n');
            }
        }
    });
}

/// `<timestamp>  INFO handstamp::access: request_id=.. method=.. path=".." status=.. micros=..`,
/// as `tracing_subscriber`'s text format writes events.
fn text_line(out: &mut Vec<u8>, timestamp: &str, f: &Fields<'_>) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(timestamp.as_bytes());
    out.extend_from_slice(b"  INFO handstamp::access: request_id=");
    out.extend_from_slice(f.request_id.as_bytes());
    out.extend_from_slice(b" method=");
    out.extend_from_slice(f.method.as_bytes());
    out.extend_from_slice(b" path=");
    quoted(out, f.path);
    out.extend_from_slice(b" status=");
    out.extend_from_slice(number.format(f.status).as_bytes());
    out.extend_from_slice(b" micros=");
    out.extend_from_slice(number.format(f.micros).as_bytes());
    out.push(b'\n');
}

/// The path as Rust's `{:?}` quotes it, without the per-character escaping when nothing
/// needs escaping (the usual case: paths arrive percent-encoded).
fn quoted(out: &mut Vec<u8>, path: &str) {
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(path.as_bytes());
        out.push(b'"');
    } else {
        use std::io::Write;
        let _ = write!(out, "{path:?}");
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

    #[test]
    fn text_lines_quote_paths_as_debug_formatting_does() {
        let fields = |path| Fields {
            request_id: "abc",
            method: "GET",
            path,
            status: 200,
            micros: 42,
        };
        for path in ["/api/token/", "/a b", "/x\"y", "/é", "/tab\there"] {
            let mut out = Vec::new();
            text_line(&mut out, "T", &fields(path));
            let expected = format!(
                "T  INFO handstamp::access: request_id=abc method=GET path={path:?} status=200 micros=42\n"
            );
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}

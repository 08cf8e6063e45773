//! The request target as everything after `Front` sees it: the `Host` rule and the path in one
//! canonical form. A leaf: settings (prefix checks), errors and the server use it, it uses none
//! of them.
//!
//! The path in one canonical form, so that what the gateway routes on (and checks
//! identity for) is what a backend will serve: dot-segments removed (RFC 3986 §5.2.4, `%2e`
//! counted as a dot), runs of `/` merged (as nginx's `merge_slashes`), percent-encoded
//! unreserved characters decoded (§6.2.2.2), the other escapes in upper case (§6.2.2.1) and
//! raw non-ASCII bytes percent-encoded. What backends read in different ways is refused: an
//! encoded `/` or `\`, a raw `\` (a separator on Windows and to some frameworks), a `;`
//! (Tomcat and Spring drop `;params` from a segment, so `/public/..;/app` is `/app` to them),
//! NUL, malformed escapes, and a target that is not a path.
//!
//! The common, already-canonical path costs one scan and no allocation.

use std::borrow::Cow;

/// Why a request's Host header is refused (RFC 9112 §3.2).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("The request has no Host header.")]
    Missing,
    #[error("The request has more than one Host header.")]
    Repeated,
}

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("The request target is not a path.")]
    NotOriginForm,
    #[error("The request path has a malformed percent-encoding.")]
    BadEscape,
    #[error("The request path has an encoded '/' or '\\'.")]
    EncodedSeparator,
    #[error("The request path has a '\\'.")]
    Backslash,
    #[error("The request path has a ';'.")]
    Semicolon,
    #[error("The request path has a NUL byte.")]
    Nul,
    /// Longer than a URI may be, once its non-ASCII bytes are percent-encoded.
    #[error("The request path is too long.")]
    TooLong,
}

/// `path` (without the query) in canonical form: borrowed when it already is, which is the
/// common case.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if is_canonical(path.as_bytes())? {
        Ok(Cow::Borrowed(path))
    } else {
        rewrite(path).map(Cow::Owned)
    }
}

/// One scan: whether `path` is canonical already. What it refuses, `rewrite` finds.
fn is_canonical(path: &[u8]) -> Result<bool, PathError> {
    // `path[0]` is `/`; each segment is checked at the `/` (or end) closing it.
    let mut segment = 1;
    let mut i = 1;
    while i < path.len() {
        let byte = path[i];
        // Most bytes need no closer look.
        if PLAIN[usize::from(byte)] {
            i += 1;
            continue;
        }
        match byte {
            b'/' => {
                if !is_canonical_segment(&path[segment..i], false) {
                    return Ok(false);
                }
                segment = i + 1;
            }
            b'%' => {
                let escape = path.get(i + 1..i + 3).and_then(upper_hex);
                match escape {
                    Some(byte) if !is_unreserved(byte) && !matches!(byte, b'/' | b'\\' | 0) => {
                        i += 2
                    }
                    _ => return Ok(false),
                }
            }
            0x80.. => return Ok(false),
            _ => check_raw(byte)?,
        }
        i += 1;
    }
    Ok(is_canonical_segment(&path[segment..], true))
}

/// Not empty (a run of slashes) unless `last`, and not a dot-segment.
fn is_canonical_segment(segment: &[u8], last: bool) -> bool {
    !matches!(segment, b"." | b"..") && (last || !segment.is_empty())
}

/// Bytes that are canonical wherever they stand in a segment.
const PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut byte = 0;
    while byte < 0x80 {
        plain[byte] = !matches!(byte as u8, b'/' | b'%' | b'\\' | b';' | 0);
        byte += 1;
    }
    plain
};

/// The byte a canonical escape's two digits (upper-case hex) stand for.
fn upper_hex(digits: &[u8]) -> Option<u8> {
    let digit = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    };
    Some((digit(digits[0])? << 4) | digit(digits[1])?)
}

/// A byte that may not appear as is.
fn check_raw(byte: u8) -> Result<(), PathError> {
    match byte {
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::Semicolon),
        0 => Err(PathError::Nul),
        _ => Ok(()),
    }
}

/// Decodes, re-encodes and resolves segment by segment.
fn rewrite(path: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    // Whether the path ends in a directory: after `/`, `/.` or `/..`.
    let mut directory = false;
    for segment in path[1..].split('/') {
        let start = out.len();
        out.push('/');
        canonical_segment(segment.as_bytes(), &mut out)?;
        directory = true;
        match &out[start + 1..] {
            "" | "." => out.truncate(start),
            ".." => {
                out.truncate(start);
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
            }
            _ => directory = false,
        }
    }
    if directory || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Appends `segment` with unreserved characters decoded, other escapes in upper case and
/// non-ASCII bytes encoded.
fn canonical_segment(segment: &[u8], out: &mut String) -> Result<(), PathError> {
    let mut bytes = segment.iter();
    while let Some(&byte) = bytes.next() {
        if byte == b'%' {
            let high = bytes.next().and_then(|&b| hex(b));
            let low = bytes.next().and_then(|&b| hex(b));
            let (Some(high), Some(low)) = (high, low) else {
                return Err(PathError::BadEscape);
            };
            match (high << 4) | low {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                0 => return Err(PathError::Nul),
                decoded if is_unreserved(decoded) => out.push(char::from(decoded)),
                decoded => push_escaped(decoded, out),
            }
        } else if byte.is_ascii() {
            check_raw(byte)?;
            out.push(char::from(byte));
        } else {
            push_escaped(byte, out);
        }
    }
    Ok(())
}

/// RFC 3986 §2.3.
pub fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|d| d as u8)
}

fn push_escaped(byte: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
}

#[cfg(test)]
mod tests {
    use super::{PathError, normalize_path};
    use std::borrow::Cow;

    fn normal(path: &str) -> String {
        normalize_path(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_owned()
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for path in [
            "/",
            "/api/auth/check",
            "/api/users/me/",
            "/a/.b/..c/c../d.",
            "/x-y_z~0/@:!$&'()*+,=",
            "/a%3Fb/caf%C3%A9/%25/%20",
        ] {
            assert!(
                matches!(normalize_path(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    /// RFC 3986 §5.4's examples that are paths, after merging with the base `/b/c/d`
    /// (its `;p` left out: a `;` is refused).
    #[test]
    fn rfc_3986_examples() {
        for (merged, expected) in [
            ("/b/c/g", "/b/c/g"),
            ("/b/c/./g", "/b/c/g"),
            ("/b/c/g/", "/b/c/g/"),
            ("/g", "/g"),
            ("/b/c/.", "/b/c/"),
            ("/b/c/./", "/b/c/"),
            ("/b/c/..", "/b/"),
            ("/b/c/../", "/b/"),
            ("/b/c/../g", "/b/g"),
            ("/b/c/../..", "/"),
            ("/b/c/../../", "/"),
            ("/b/c/../../g", "/g"),
            // Abnormal examples (§5.4.2).
            ("/b/c/../../../g", "/g"),
            ("/b/c/../../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("/b/c/g.", "/b/c/g."),
            ("/b/c/.g", "/b/c/.g"),
            ("/b/c/g..", "/b/c/g.."),
            ("/b/c/..g", "/b/c/..g"),
            ("/b/c/./../g", "/b/g"),
            ("/b/c/./g/.", "/b/c/g/"),
            ("/b/c/g/./h", "/b/c/g/h"),
            ("/b/c/g/../h", "/b/c/h"),
            // §5.2.4's own.
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
        ] {
            assert_eq!(normal(merged), expected, "{merged}");
        }
    }

    #[test]
    fn encoded_dots_slashes_runs_and_unreserved_are_resolved() {
        for (path, expected) in [
            ("/public/../app/admin", "/app/admin"),
            ("/public/%2e%2e/app/admin", "/app/admin"),
            ("/public/%2E%2e/app/admin", "/app/admin"),
            ("/public/.%2E/app/admin", "/app/admin"),
            ("/public/./../app/admin", "/app/admin"),
            ("/public/%2e/../app/admin", "/app/admin"),
            ("//app/admin", "/app/admin"),
            ("/app//admin//", "/app/admin/"),
            ("///", "/"),
            ("/a//../b", "/b"),
            ("/%61pp/admin", "/app/admin"),
            ("/%41%7A%30-%2D%5f%7e", "/Az0--_~"),
            ("/a%3fb%2c", "/a%3Fb%2C"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/%25/x", "/%25/x"),
            ("/api/./users/me/", "/api/users/me/"),
        ] {
            assert_eq!(normal(path), expected, "{path}");
            // What comes out is canonical: normalizing it again changes nothing.
            assert!(
                matches!(normalize_path(expected), Ok(Cow::Borrowed(_))),
                "{expected}"
            );
        }
    }

    /// What a backend that decodes first and then resolves (as nginx does) serves.
    fn served(path: &str) -> String {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let mut served: Vec<&str> = Vec::new();
        for segment in decoded.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    served.pop();
                }
                name => served.push(name),
            }
        }
        format!("/{}", served.join("/"))
    }

    /// Every path of up to six characters from an alphabet of troublemakers: what comes out
    /// is canonical, and a backend serves it as it would have served what came in.
    #[test]
    fn output_is_canonical_and_served_alike() {
        const ALPHABET: &[u8] = b"/.%2eEfa";
        let mut paths = vec![b"/".to_vec()];
        let mut start = 0;
        for _ in 0..6 {
            let end = paths.len();
            for i in start..end {
                for &c in ALPHABET {
                    let mut longer = paths[i].clone();
                    longer.push(c);
                    paths.push(longer);
                }
            }
            start = end;
        }
        let mut accepted = 0;
        for path in &paths {
            let path = std::str::from_utf8(path).unwrap();
            let Ok(out) = normalize_path(path) else {
                continue;
            };
            accepted += 1;
            assert!(
                matches!(normalize_path(&out), Ok(Cow::Borrowed(_))),
                "{path} -> {out}"
            );
            let segments: Vec<&str> = out[1..].split('/').collect();
            for (i, segment) in segments.iter().enumerate() {
                let last = i + 1 == segments.len();
                assert!(
                    !matches!(*segment, "." | "..") && (last || !segment.is_empty()),
                    "{path} -> {out}"
                );
            }
            assert_eq!(served(&out), served(path), "{path} -> {out}");
        }
        assert!(accepted > 50_000, "{accepted}");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (path, error) in [
            ("", PathError::NotOriginForm),
            ("*", PathError::NotOriginForm),
            ("app/admin", PathError::NotOriginForm),
            ("/public/..%2fapp/admin", PathError::EncodedSeparator),
            ("/public/..%2Fapp/admin", PathError::EncodedSeparator),
            ("/public/..%5capp/admin", PathError::EncodedSeparator),
            ("/public/..\\app/admin", PathError::Backslash),
            ("/public/..;/app/admin", PathError::Semicolon),
            ("/app;x=1/admin", PathError::Semicolon),
            ("/a%00b", PathError::Nul),
            ("/a\0b", PathError::Nul),
            ("/a%", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/a%2/b", PathError::BadEscape),
            ("/a%%32e", PathError::BadEscape),
        ] {
            assert_eq!(normalize_path(path), Err(error), "{path:?}");
        }
    }
}

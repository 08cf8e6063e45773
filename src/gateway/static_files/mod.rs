//! Static files, as nginx or whitenoise served them: ETags and `Last-Modified` with 304s, Range
//! requests, precompressed `.br`/`.gz` siblings (with `Vary: Accept-Encoding`), cache lifetimes
//! by file name, no listings, no traversal.
//!
//! A whole-file `GET` or `HEAD` of a file up to [`cache::MAX_FILE`] is answered from memory
//! (`cache.rs`) after one `stat` of the file, made inline: a `stat` of a file whose inode is
//! cached costs about a microsecond, less than a hop to the blocking pool, and the cached copy is
//! used only while the `stat` matches it. Everything else (Range, `If-Range`,
//! `If-Unmodified-Since`, larger files) goes to tower-http's `ServeDir`, which streams from disk.

mod cache;

pub use cache::FileCache;

use crate::http::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cache::{Cached, Stamp, Variant};
use std::ffi::OsString;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

/// Files whose names carry a content hash never change: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Anything else is revalidated on every use (a cheap 304 thanks to the ETag).
const REVALIDATE: &str = "no-cache";

/// One `[[static]]` directory, mounted under a prefix.
#[derive(Debug)]
pub struct Mount {
    /// The prefix without its final `/`.
    prefix: String,
    /// The router's pattern for the files under it, the metrics' name for them.
    pattern: Arc<str>,
    root: PathBuf,
    files: ServeDir,
    cache: Arc<FileCache>,
}

impl Mount {
    pub fn new(prefix: &str, dir: &Path, cache: Arc<FileCache>) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Mount {
            prefix: prefix.to_owned(),
            pattern: format!("{prefix}/{{*file}}").into(),
            root: dir.to_path_buf(),
            files: ServeDir::new(dir)
                .precompressed_br()
                .precompressed_gzip()
                .append_index_html_on_directories(false),
            cache,
        }
    }

    /// The prefix, ending in `/`: paths longer than it starting with it are this mount's files.
    pub fn prefix(&self) -> &str {
        // The pattern is the prefix and `{*file}`.
        &self.pattern[..self.prefix.len() + 1]
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn route(&self) -> Arc<str> {
        self.pattern.clone()
    }

    /// The file `path` (normalized, under the prefix) names, or None for a path no file has.
    fn file(&self, path: &str) -> Option<PathBuf> {
        let rest = path.strip_prefix(&self.prefix)?;
        let decoded = percent_encoding::percent_decode_str(rest)
            .decode_utf8()
            .ok()?;
        let mut file = self.root.clone();
        for segment in decoded.split('/').filter(|s| !s.is_empty()) {
            if segment == ".." || segment == "." || segment.contains(['\\', '\0']) {
                return None;
            }
            file.push(segment);
        }
        Some(file)
    }
}

/// The handler of a mount's paths.
pub async fn serve(State(mount): State<Arc<Mount>>, req: Request) -> Response {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return ApiError::MethodNotAllowed(req.method().clone()).into_response(),
    };
    let Some(file) = mount.file(req.uri().path()) else {
        return ApiError::NotFound.into_response();
    };
    let headers = req.headers();
    if [header::RANGE, header::IF_RANGE, header::IF_UNMODIFIED_SINCE]
        .iter()
        .any(|name| headers.contains_key(name))
    {
        return from_disk(&mount, file, req).await;
    }
    let (path, meta, encoding) = match find(&file, headers) {
        Ok(Some(found)) => found,
        Ok(None) => return ApiError::NotFound.into_response(),
        // Not ours to judge (a permission, a name too long): ServeDir answers as it did.
        Err(_) => return from_disk(&mount, file, req).await,
    };
    if meta.len() > cache::MAX_FILE {
        return from_disk(&mount, file, req).await;
    }
    let cached = match mount.cache.get(&path, Stamp::of(&meta)) {
        Some(cached) => cached,
        None => {
            let variant = Variant {
                content_type: content_type(&file),
                encoding: encoding.map(HeaderValue::from_static),
                cache_control: cache_control(&file),
            };
            match load(path, variant, &mount.cache).await {
                Some(cached) => cached,
                // Gone or grown since the `stat`: ServeDir answers for what is there now.
                None => return from_disk(&mount, file, req).await,
            }
        }
    };
    answer(&cached, headers, head)
}

/// The file to send, its metadata and its encoding: the precompressed sibling the client
/// prefers among those that exist, else the file itself; None if there is no such file.
fn find(
    file: &Path,
    headers: &HeaderMap,
) -> io::Result<Option<(PathBuf, std::fs::Metadata, Option<&'static str>)>> {
    for (encoding, suffix) in accepted(headers).into_iter().flatten() {
        let mut name = OsString::from(file.as_os_str());
        name.push(suffix);
        let sibling = PathBuf::from(name);
        match std::fs::metadata(&sibling) {
            Ok(meta) if meta.is_file() => return Ok(Some((sibling, meta, Some(encoding)))),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_file() => Ok(Some((file.to_path_buf(), meta, None))),
        // No listings.
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The precompressed encodings the client accepts, most wanted first (`br` before `gzip` at
/// equal q-values, as `ServeDir` chose), as (name, file suffix).
fn accepted(headers: &HeaderMap) -> [Option<(&'static str, &'static str)>; 2] {
    let (mut br, mut gzip) = (0u16, 0u16);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, qvalue);
            if name.eq_ignore_ascii_case("br") {
                br = q;
            } else if name.eq_ignore_ascii_case("gzip") {
                gzip = q;
            }
        }
    }
    let first_gzip = gzip > br;
    let br = (br > 0).then_some(("br", ".br"));
    let gzip = (gzip > 0).then_some(("gzip", ".gz"));
    if first_gzip { [gzip, br] } else { [br, gzip] }
}

/// A q-value in thousandths; anything unreadable counts as 0 (not acceptable).
fn qvalue(text: &str) -> u16 {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = fraction.len() <= 3 && fraction.bytes().all(|b| b.is_ascii_digit());
    match whole {
        "1" if digits && fraction.bytes().all(|b| b == b'0') => 1000,
        "0" if digits => format!("{fraction:0<3}").parse().unwrap_or(0),
        _ => 0,
    }
}

/// Reads `path` (on the blocking pool) into the cache; None if it is no longer a file that fits.
async fn load(path: PathBuf, variant: Variant, cache: &FileCache) -> Option<Arc<Cached>> {
    let (path, meta, body) = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).ok()?;
        // The version read is the one stamped: a later change gets a new stamp.
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > cache::MAX_FILE {
            return None;
        }
        let mut body = Vec::with_capacity(meta.len() as usize);
        file.take(cache::MAX_FILE + 1).read_to_end(&mut body).ok()?;
        (body.len() as u64 == meta.len()).then_some((path, meta, Bytes::from(body)))
    })
    .await
    .ok()??;
    let cached = Arc::new(Cached::new(&meta, body, variant));
    cache.insert(path, cached.clone());
    Some(cached)
}

/// The answer from the cached file: a 304 if the client's copy is this one, else the file.
fn answer(cached: &Cached, request: &HeaderMap, head: bool) -> Response {
    let unchanged = match request.get(header::IF_NONE_MATCH) {
        // With `If-None-Match`, `If-Modified-Since` is ignored (RFC 9110, 13.2.2).
        Some(given) => given.to_str().is_ok_and(|given| {
            given.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || weak_eq(tag, &cached.etag)
            })
        }),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|since| httpdate::parse_http_date(since.to_str().ok()?).ok())
            .is_some_and(|since| cached.modified <= since),
    };
    let variant = &cached.variant;
    let mut headers = HeaderMap::with_capacity(16);
    let mut put = |name: HeaderName, value: &HeaderValue| headers.insert(name, value.clone());
    put(header::ETAG, &cached.etag);
    put(header::LAST_MODIFIED, &cached.last_modified);
    put(header::CACHE_CONTROL, &variant.cache_control);
    put(header::VARY, &HeaderValue::from_static("accept-encoding"));
    let (status, body) = if unchanged {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        put(header::CONTENT_TYPE, &variant.content_type);
        put(header::ACCEPT_RANGES, &HeaderValue::from_static("bytes"));
        if let Some(encoding) = &variant.encoding {
            put(header::CONTENT_ENCODING, encoding);
        }
        if head {
            put(header::CONTENT_LENGTH, &cached.content_length);
            (StatusCode::OK, Body::empty())
        } else {
            (StatusCode::OK, Body::from(cached.body.clone()))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Weak comparison (RFC 9110, 8.8.3.2): the tags without their `W/` are the same.
fn weak_eq(given: &str, ours: &HeaderValue) -> bool {
    let strip = |tag: &[u8]| tag.strip_prefix(b"W/").unwrap_or(tag).to_vec();
    strip(given.as_bytes()) == strip(ours.as_bytes())
}

/// The answer of `ServeDir` for `file`, with our validators and cache lifetime.
async fn from_disk(mount: &Mount, file: PathBuf, req: Request) -> Response {
    let etag = entity_tag(&file);
    let cache_control = cache_control(&file);
    if let Some(etag) = &etag {
        let matches = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|given| {
                given
                    .split(',')
                    .any(|t| t.trim() == "*" || weak_eq(t.trim(), etag))
            });
        if matches {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            let headers = response.headers_mut();
            headers.insert(header::ETAG, etag.clone());
            headers.insert(header::CACHE_CONTROL, cache_control);
            return response;
        }
    }
    // ServeDir reads the path under the mount from the URI.
    let (mut parts, body) = req.into_parts();
    let rest = &parts.uri.path()[mount.prefix.len()..];
    parts.uri = match Uri::try_from(rest) {
        Ok(uri) => uri,
        Err(_) => return ApiError::NotFound.into_response(),
    };
    let req = Request::from_parts(parts, body);
    let mut response = match mount.files.clone().oneshot(req).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    match response.status() {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED => {
            let headers = response.headers_mut();
            if let Some(etag) = etag {
                headers.insert(header::ETAG, etag);
            }
            headers.insert(header::CACHE_CONTROL, cache_control);
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            response
        }
        StatusCode::NOT_FOUND => ApiError::NotFound.into_response(),
        _ => response,
    }
}

/// A weak validator from the file's size and modification time, or None if `file` is no file.
fn entity_tag(file: &Path) -> Option<HeaderValue> {
    let meta = std::fs::metadata(file).ok().filter(|m| m.is_file())?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    let tag = format!("W/\"{:x}-{:x}\"", meta.len(), modified.as_nanos());
    HeaderValue::try_from(tag).ok()
}

fn content_type(file: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(file)
        .first_raw()
        .unwrap_or("application/octet-stream");
    HeaderValue::from_static(mime)
}

fn cache_control(file: &Path) -> HeaderValue {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    HeaderValue::from_static(if looks_hashed(name) {
        IMMUTABLE
    } else {
        REVALIDATE
    })
}

/// `app.3f9a1c2b.js`, `logo-5d41402abc.png`: a name part of 8 or more hex digits.
fn looks_hashed(name: &str) -> bool {
    name.split(['.', '-', '_'])
        .any(|part| part.len() >= 8 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::{accepted, looks_hashed, qvalue};
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn hashed_names_are_recognised() {
        assert!(looks_hashed("app.3f9a1c2b.js"));
        assert!(looks_hashed("logo-5d41402abc.png"));
        assert!(!looks_hashed("app.js"));
        assert!(!looks_hashed("vendor.bundle.js"));
    }

    #[test]
    fn encodings_in_the_clients_order() {
        let order = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(accept).unwrap(),
            );
            accepted(&headers).map(|e| e.map(|(name, _)| name))
        };
        assert_eq!(order("gzip, deflate, br"), [Some("br"), Some("gzip")]);
        assert_eq!(order("br;q=0.5, gzip"), [Some("gzip"), Some("br")]);
        assert_eq!(order("gzip;q=0.8, br;q=0"), [Some("gzip"), None]);
        assert_eq!(order("identity"), [None, None]);
        assert_eq!(qvalue("0.25"), 250);
        assert_eq!(qvalue("1.000"), 1000);
        assert_eq!(qvalue("2"), 0);
        assert_eq!(qvalue("0.1234"), 0);
    }
}

//! A verify-only instance's keys: the JWKS of another instance (`jwk_url`), fetched at start,
//! again when its `max-age` runs out, and early when a token names a `kid` the set lacks (at most
//! once per [`NUDGE_INTERVAL`]); while the URL is down the last good set goes on verifying.

use crate::token::{Algorithm, Jwk, KeySet, SigningKey, VerifyingKey};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::RngCore;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// The longest a JWKS document may be.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The bounds on how long a fetched set is kept before the next fetch.
const MIN_REFRESH: Duration = Duration::from_secs(30);
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// Without a `max-age`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// After a failed fetch, the next try.
const RETRY: Duration = Duration::from_secs(10);
/// The most often an unknown `kid` makes the set be fetched early.
pub const NUDGE_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch {url}: {reason}")]
    Failed { url: String, reason: String },
}

/// The remote key set's source and state.
pub(super) struct Remote {
    pub url: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// A set has been fetched at least once (ready to verify).
    pub fetched: AtomicBool,
    /// When the last early fetch for an unknown kid happened (Unix seconds).
    last_nudge: AtomicI64,
    pub nudged: tokio::sync::Notify,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

/// What a verify-only instance signs with: nothing anyone can verify (a random secret that
/// never leaves the process); every token it accepts is verified by a fetched key.
pub(super) fn verify_only_set() -> KeySet {
    let mut secret = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    KeySet::new(SigningKey::hmac(Algorithm::HS512, &secret), None)
}

impl Remote {
    pub fn new(url: String) -> Result<Remote, FetchError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| FetchError::Failed {
                url: url.clone(),
                reason: e.to_string(),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Remote {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
            fetched: AtomicBool::new(false),
            last_nudge: AtomicI64::new(0),
            nudged: tokio::sync::Notify::new(),
        })
    }

    /// Asks for an early fetch, at most once per [`NUDGE_INTERVAL`].
    pub fn nudge(&self, now: i64) {
        let last = self.last_nudge.load(Ordering::Relaxed);
        if now - last >= NUDGE_INTERVAL.as_secs() as i64
            && self
                .last_nudge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.nudged.notify_one();
        }
    }

    /// Fetches the set, and how long to keep it. Keys the set cannot use (an HMAC `oct` key,
    /// an unknown algorithm) are skipped with a warning.
    pub async fn fetch(&self) -> Result<(KeySet, Duration), FetchError> {
        let failed = |reason: String| FetchError::Failed {
            url: self.url.clone(),
            reason,
        };
        let uri: hyper::Uri = self.url.parse().map_err(|e| failed(format!("{e}")))?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::new())
            .expect("a GET with a parsed URI is a request");
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let keep = max_age(response.headers()).unwrap_or(DEFAULT_REFRESH);
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| failed("timed out".into()))?
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(&body).map_err(|e| failed(format!("not a JWKS: {e}")))?;
        let mut set = verify_only_set();
        for value in document.keys {
            let key = serde_json::from_value::<Jwk>(value)
                .map_err(|e| e.to_string())
                .and_then(|jwk| {
                    let key = VerifyingKey::from_jwk(&jwk, None).map_err(|e| e.to_string())?;
                    Ok((jwk.kid, key))
                });
            match key {
                Ok((kid, key)) => set = set.verifying(kid, key),
                Err(reason) => tracing::warn!(url = %self.url, %reason, "JWKS key skipped"),
            }
        }
        Ok((set, keep.clamp(MIN_REFRESH, MAX_REFRESH)))
    }

    /// After a failed fetch, how long until the next.
    pub fn retry() -> Duration {
        RETRY
    }
}

/// `max-age` of a `Cache-Control` header.
fn max_age(headers: &hyper::HeaderMap) -> Option<Duration> {
    headers
        .get_all(hyper::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.eq_ignore_ascii_case("max-age")
                .then(|| value.trim().parse().ok().map(Duration::from_secs))?
        })
}

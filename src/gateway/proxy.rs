//! The reverse proxy: requests under an upstream's prefix go to one of its backends, bodies
//! streamed both ways, WebSocket upgrades passed through, identity headers added.

use super::balance::{Backend, InFlight, Pool};
use super::connections::{Returning, SendError};
use crate::config::{AuthMode, UpstreamSettings};
use crate::http::auth::{AuthError, Authenticated, authenticate};
use crate::http::client::{MAX_ADDRESS, X_FORWARDED_FOR, address_text};
use crate::http::error::ApiError;
use crate::http::{Closing, Tls, Tunnel};
use crate::request_id;
use crate::service::AuthService;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Sleep;

/// The header carrying the authenticated user's id to the backend.
pub const USER_ID: HeaderName = HeaderName::from_static("x-handstamp-user-id");

const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1), found by
/// [`hop_by_hop`]. A static: a const array of `HeaderName`s would be built and dropped at every
/// use.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

#[derive(Debug)]
pub struct Upstream {
    pub settings: UpstreamSettings,
    pub pool: Pool,
    /// The router's patterns, the metrics' names: the prefix itself (ending in `/`), and the
    /// paths under it.
    prefix: Arc<str>,
    pattern: Arc<str>,
    max_body: usize,
    /// The `check_user` setting: the token's user is loaded and must be active.
    check_user: bool,
}

impl Upstream {
    pub fn new(settings: UpstreamSettings, max_body: usize, check_user: bool) -> Self {
        let at = settings.prefix.trim_end_matches('/');
        Upstream {
            pool: Pool::new(&settings.backends, settings.balance, (&settings).into()),
            prefix: format!("{at}/").into(),
            pattern: format!("{at}/{{*rest}}").into(),
            settings,
            max_body,
            check_user,
        }
    }

    /// The prefix, ending in `/`.
    pub fn prefix(&self) -> &Arc<str> {
        &self.prefix
    }

    pub fn pattern(&self) -> &Arc<str> {
        &self.pattern
    }

    /// The request's identity: a valid access token (Bearer, or the access cookie with the CSRF
    /// check) and, with `check_user`, its user, active.
    async fn identify(
        &self,
        service: &AuthService,
        parts: &Parts,
    ) -> Result<Authenticated, ApiError> {
        let auth = authenticate(service, parts, false)?;
        if self.check_user {
            service.load_user(&auth).await?;
        }
        Ok(auth)
    }

    /// Checks identity, then forwards `req` to a live backend (any backend when none is live),
    /// trying another on a failed connect when the request can safely be sent again; each
    /// backend at most once.
    pub async fn forward(&self, service: &AuthService, mut req: Request) -> Response {
        strip_identity(req.headers_mut());
        match self.settings.auth {
            AuthMode::None => {}
            AuthMode::Required | AuthMode::Optional => {
                let (parts, body) = req.into_parts();
                let identity = self.identify(service, &parts).await;
                req = Request::from_parts(parts, body);
                match identity {
                    Ok(auth) => {
                        let id = HeaderValue::from_str(&auth.user_id);
                        let Ok(id) = id else {
                            return ApiError::Auth(AuthError::NoUserId).into_response();
                        };
                        req.headers_mut().insert(USER_ID, id);
                    }
                    // Our failure, not the client's, or a forged request: never passed on as an
                    // anonymous request.
                    Err(e @ (ApiError::Auth(AuthError::Store(_)) | ApiError::Csrf(_))) => {
                        return e.into_response();
                    }
                    Err(e) if self.settings.auth == AuthMode::Required => {
                        return e.into_response();
                    }
                    Err(_) => {}
                }
            }
        }
        let too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|len| len > self.max_body);
        if too_large {
            return ApiError::PayloadTooLarge.into_response();
        }
        let upgrade = is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let body = if hyper::body::Body::is_end_stream(&body) {
            Body::empty()
        } else {
            Body::new(http_body_util::Limited::new(body, self.max_body))
        };
        let mut request = hyper::Request::new(body);
        *request.headers_mut() = forwarded_headers(&mut parts, upgrade);
        *request.uri_mut() = match parts.uri.path_and_query() {
            Some(target) => Uri::from(target.clone()),
            None => Uri::from_static("/"),
        };
        *request.method_mut() = parts.method;
        // Each backend at most once. A request no backend took (no connection could be made)
        // comes back whole, and goes to the next.
        let mut tried = Vec::new();
        while let Some(backend) = self.pool.pick(&tried) {
            request
                .headers_mut()
                .insert(header::HOST, backend.host.clone());
            let in_flight = InFlight::new(backend.clone());
            match backend.connections.send(request).await {
                Ok(response) => {
                    // What a probe counts as alive: a backend back up serves at once, not
                    // after the next probe.
                    if response.status().as_u16() < 500 && backend.set_alive(true) {
                        tracing::warn!(request_id = %request_id::current(), backend = backend.base, "backend answered: marked up");
                        self.report_health(&backend, true);
                    }
                    let read_timeout = self.settings.read_timeout;
                    return respond(response, in_flight, client_upgrade, read_timeout);
                }
                Err(SendError::Connect {
                    error,
                    request: unsent,
                }) => {
                    if backend.set_alive(false) {
                        tracing::warn!(request_id = %request_id::current(), backend = backend.base, %error, "backend unreachable: marked down");
                        self.report_health(&backend, false);
                    }
                    request = *unsent;
                    tried.push(backend);
                }
                Err(SendError::Request(error)) => {
                    tracing::warn!(request_id = %request_id::current(), backend = backend.base, %error, "backend request failed");
                    return ApiError::BadGateway.into_response();
                }
            }
        }
        ApiError::NoBackend.into_response()
    }

    /// Sets the `handstamp_upstream_up` gauge of `backend`.
    fn report_health(&self, backend: &Backend, alive: bool) {
        metrics::gauge!(
            "handstamp_upstream_up",
            "upstream" => self.settings.prefix.clone(),
            "backend" => backend.base.clone()
        )
        .set(if alive { 1.0 } else { 0.0 });
    }
}

/// The backend's response for the client, with hop-by-hop headers removed, its body cut when
/// nothing comes for `read_timeout`; a 101 joins the two upgraded connections, until the tunnel
/// has been idle as long.
fn respond(
    response: hyper::Response<Returning>,
    in_flight: InFlight,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    read_timeout: Duration,
) -> Response {
    let (mut parts, body) = response.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return ApiError::BadGateway.into_response();
        };
        let backend = hyper::Response::from_parts(parts.clone(), body.into_inner());
        let backend_upgrade = hyper::upgrade::on(backend);
        // The access line waits for the tunnel's end (see `Tunnel`).
        let tunnel = Tunnel::default();
        let closing = tunnel.closing();
        parts.extensions.insert(tunnel);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            match tokio::try_join!(client_upgrade, backend_upgrade) {
                Ok((client, backend)) => {
                    let mut client = closing.count(TokioIo::new(client));
                    let mut backend = TokioIo::new(backend);
                    let copying = tokio::io::copy_bidirectional(&mut client, &mut backend);
                    until_idle(copying, &closing, read_timeout).await;
                }
                Err(error) => tracing::debug!(%error, "upgrade failed"),
            }
        });
        return Response::from_parts(parts, Body::empty());
    }
    remove_hop_by_hop(&mut parts.headers, false);
    let body = Paced {
        body,
        _in_flight: in_flight,
        // Its body is read after the request's scope has ended: the warning names it.
        request_id: request_id::current(),
        timeout: read_timeout,
        timer: None,
        fresh: false,
    };
    Response::from_parts(parts, Body::new(body))
}

/// Runs a tunnel's `copying` until it ends, or until a whole `timeout` has passed with nothing
/// through the tunnel either way: an idle tunnel closes between one and two timeouts after its
/// last byte.
async fn until_idle(copying: impl Future, closing: &Closing, timeout: Duration) {
    let mut copying = std::pin::pin!(copying);
    loop {
        let seen = closing.traffic();
        if tokio::time::timeout(timeout, copying.as_mut())
            .await
            .is_ok()
        {
            return;
        }
        if closing.traffic() == seen {
            tracing::debug!(?timeout, "tunnel idle for read_timeout: closed");
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the backend's answer brought nothing for {0:?} (read_timeout)")]
struct ReadTimedOut(Duration);

pin_project_lite::pin_project! {
    /// A backend's answer body, cut when it brings nothing for `timeout` (nginx's
    /// `proxy_read_timeout`); it holds the backend's in-flight count until it is done. Its exact
    /// length passes on, so that the access line need not count it.
    struct Paced {
        #[pin]
        body: Returning,
        _in_flight: InFlight,
        request_id: request_id::Current,
        timeout: Duration,
        // Started only when the body first has to wait: most come whole with the head.
        timer: Option<Pin<Box<Sleep>>>,
        // A frame came since the timer was last set.
        fresh: bool,
    }
}

impl hyper::body::Body for Paced {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            *this.fresh = true;
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = tokio::time::Instant::now() + *this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if std::mem::take(this.fresh) {
            timer.as_mut().reset(deadline);
        }
        ready!(timer.as_mut().poll(cx));
        tracing::warn!(request_id = %this.request_id, timeout = ?this.timeout, "backend answer stalled: cut");
        Poll::Ready(Some(Err(ReadTimedOut(*this.timeout).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Client-sent `X-Handstamp-*` headers are never trusted.
fn strip_identity(headers: &mut HeaderMap) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-handstamp-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// The request's headers for the backend, taken from `parts`: hop-by-hop ones dropped (but
/// `Connection: upgrade` and `Upgrade` for an upgrade), and `X-Forwarded-For`, `-Proto` and
/// `-Host` set. Taken, not copied: the map is the client's, grown once for the three.
fn forwarded_headers(parts: &mut Parts, upgrade: bool) -> HeaderMap {
    let mut headers = std::mem::take(&mut parts.headers);
    remove_hop_by_hop(&mut headers, upgrade);
    headers.reserve(3);
    let host = headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        let mut chain = Vec::with_capacity(64);
        if let Some(earlier) = headers.get(&X_FORWARDED_FOR) {
            chain.extend_from_slice(earlier.as_bytes());
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(address_text(peer.ip(), &mut [0; MAX_ADDRESS]));
        if let Ok(chain) = HeaderValue::from_maybe_shared(Bytes::from(chain)) {
            headers.insert(X_FORWARDED_FOR, chain);
        }
    }
    let https = parts.extensions.get::<Tls>().is_some_and(|t| t.0);
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    headers
}

/// Removes the fixed hop-by-hop headers and the ones the `Connection` header names (RFC 9110
/// §7.6.1), in requests and responses alike: a header meant for one hop goes no further. Our
/// own `X-Handstamp-*` headers stay: only we set them (client-sent ones are gone by now).
fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the names there are, then a removal only for those present (a lookup
    // each); most messages have none, or only `Connection: keep-alive`.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(i) = hop_by_hop(name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    let upgrade_to = upgrade.then(|| headers.get(header::UPGRADE).cloned());
    // Only `Connection` names other headers; the usual `keep-alive` or `close` names none, and
    // then nothing is collected.
    let names_header = |token: &[u8]| {
        !CONNECTION_OPTIONS
            .iter()
            .any(|o| token.eq_ignore_ascii_case(o))
    };
    let names_headers = headers.get_all(header::CONNECTION).iter().any(|value| {
        let value = value.as_bytes();
        // The usual value, whole, is not split.
        names_header(value)
            && value
                .split(|&b| b == b',')
                .any(|t| names_header(t.trim_ascii()))
    });
    if names_headers {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|token| names_header(token.as_bytes()))
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .filter(|name| !name.as_str().starts_with("x-handstamp-"))
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP
        .iter()
        .zip(present)
        .filter(|(_, present)| *present)
    {
        headers.remove(name);
    }
    if let Some(upgrade_to) = upgrade_to.flatten() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade_to);
    }
}

/// The `Connection` options that name no header.
const CONNECTION_OPTIONS: [&[u8]; 2] = [b"keep-alive", b"close"];

/// The index in [`HOP_BY_HOP`] of `name`, if there. A `match` on the text (its length first)
/// costs a fraction of comparing `HeaderName`s one by one (callgrind).
fn hop_by_hop(name: &HeaderName) -> Option<usize> {
    let index = match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-authenticate" => 2,
        "proxy-authorization" => 3,
        "te" => 4,
        "trailer" => 5,
        "transfer-encoding" => 6,
        "upgrade" => 7,
        _ => return None,
    };
    debug_assert_eq!(HOP_BY_HOP[index], name);
    Some(index)
}

/// The comma-separated tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade =
        connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// Probes every backend every `health_interval`; a backend answering below 500 is alive.
/// Ends when the upstream is dropped.
pub async fn health_checks(upstream: std::sync::Weak<Upstream>) {
    let Some(interval) = upstream.upgrade().map(|u| u.settings.health_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let Some(upstream) = upstream.upgrade() else {
            return;
        };
        for backend in &upstream.pool.backends {
            backend.connections.close_stale();
            let alive = probe(&upstream, backend, interval).await;
            if backend.set_alive(alive) {
                let state = if alive { "up" } else { "down" };
                tracing::warn!(backend = backend.base, state, "backend health changed");
            }
            upstream.report_health(backend, alive);
        }
    }
}

async fn probe(upstream: &Upstream, backend: &Backend, timeout: Duration) -> bool {
    let Ok(target) = Uri::try_from(upstream.settings.health_path.as_str()) else {
        return false;
    };
    let mut request = hyper::Request::new(Body::empty());
    *request.uri_mut() = target;
    request
        .headers_mut()
        .insert(header::HOST, backend.host.clone());
    let answered = async {
        let response = backend.connections.send(request).await.ok()?;
        let alive = response.status().as_u16() < 500;
        // Read to its end, the answer gives its connection back.
        response.into_body().collect().await.ok()?;
        Some(alive)
    };
    matches!(
        tokio::time::timeout(timeout, answered).await,
        Ok(Some(true))
    )
}

//! What the server does around every request, in one service: the request id, the Host and
//! path checks (the path normalized before anything routes on it), the body limits (the token
//! endpoints' own, smaller one included), panic catching, the request timeout, the security
//! headers, CORS for our own endpoints (`cors.rs`), the access log and the metrics.
//!
//! One hand-written service with one future, not a stack of tower layers: each layer moved the
//! request and its future once more and added a poll of its own, and together they cost more
//! than the token check they wrapped (measured with callgrind on `GET /api/auth/check`:
//! 18 000 instructions a request for the stack of layers).

use super::access_log::Arrival;
use super::cors::{CORS_HEADERS, Checked, Cors, CorsReply};
use super::hot::{HotFuture, HotRoutes};
use super::observe;
use crate::api;
use crate::http::client::{ClientAddr, Proxied, TrustedProxies};
use crate::http::error::ApiError;
use crate::http::{RESPONSE_HEADERS, Tls};
use crate::request_id::{self, REQUEST_ID, Route, Scope};
use crate::target::{HostError, PathError, normalize_path};
use axum::body::HttpBody as _;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderName, HeaderValue, Method, Uri, Version, header};
use axum::response::{IntoResponse as _, Response};
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Sleep;
use tower::Service;

/// Headers on every response that has none of its own, as Django's security middleware sends them.
const SECURITY_HEADER_COUNT: usize = 4;
const SECURITY_HEADERS: [(HeaderName, HeaderValue); SECURITY_HEADER_COUNT] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
];

/// What is added to every response: the security headers and the request id.
const FRONT_HEADERS: usize = SECURITY_HEADER_COUNT + 1;

// `http::json_response` leaves room for them (and CORS's) beside its content type and a
// handler's two.
const _: () = assert!(FRONT_HEADERS + CORS_HEADERS + 3 <= RESPONSE_HEADERS);

/// `inner` (a router) with everything the server does around each request.
#[derive(Clone)]
pub struct Front<S> {
    inner: S,
    hot: Option<HotRoutes>,
    timeout: Duration,
    body_limit: DefaultBodyLimit,
    max_body: usize,
    token_body_limit: DefaultBodyLimit,
    token_max_body: usize,
    trusted_proxies: TrustedProxies,
    /// None: CORS is off, and no answer changes.
    cors: Option<Arc<Cors>>,
}

impl<S> Front<S> {
    pub fn new(inner: S, timeout: Duration, max_body: usize) -> Self {
        Front {
            inner,
            hot: None,
            timeout,
            body_limit: DefaultBodyLimit::max(max_body),
            max_body,
            token_body_limit: DefaultBodyLimit::max(max_body),
            token_max_body: max_body,
            trusted_proxies: TrustedProxies::default(),
            cors: None,
        }
    }

    /// Adds CORS to the answers of the routes `cors` names (see [`Cors`]).
    pub fn with_cors(mut self, cors: Option<Arc<Cors>>) -> Self {
        self.cors = cors;
        self
    }

    /// Believes these proxies' `X-Forwarded-For` for the client's address ([`ClientAddr`]).
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Limits the token endpoints' bodies to `limit` bytes (never more than the general limit),
    /// like nginx's `client_max_body_size` in a `location`: their bodies are a few hundred
    /// bytes, and a flood of large ones must not be buffered.
    pub fn with_token_body_limit(mut self, limit: usize) -> Self {
        self.token_max_body = limit.min(self.max_body);
        self.token_body_limit = DefaultBodyLimit::max(self.token_max_body);
        self
    }

    /// Answers the token-checking routes before `inner` (see [`HotRoutes`]); `inner` must
    /// serve them alike.
    pub fn with_hot_routes(mut self, hot: HotRoutes) -> Self {
        self.hot = Some(hot);
        self
    }
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Served<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.serve(req, None)
    }
}

/// The connection a request arrived on. Only routes behind the router read it, as axum's
/// `ConnectInfo` and our [`Tls`] extensions; hot routes never do and skip inserting them.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl<S> Front<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    /// Serves a request that arrived from `peer`.
    pub fn call_from(&mut self, req: Request, peer: Peer) -> Served<S::Future> {
        self.serve(req, Some(peer))
    }

    fn serve(&mut self, mut req: Request, peer: Option<Peer>) -> Served<S::Future> {
        let started = Instant::now();
        let id = request_id::from_headers(req.headers());
        // Before the path is normalized: the access log shows the target as the client sent it.
        let arrival = Arrival::note(&req, || {
            let proxies = &self.trusted_proxies;
            peer.map(|peer| proxies.client_addr(peer.addr.ip(), req.headers()))
        });
        let known_client = arrival.as_ref().and_then(Arrival::client);
        let (route, handler, cors) = match check_target(&mut req) {
            Err(refused) => {
                let response = Some(refused.into_response());
                (None, Handler::Refused { response }, None)
            }
            Ok(()) => match self.cors.as_ref().and_then(|cors| cors.check(&req)) {
                None => {
                    let (route, handler) = self.route(req, peer, known_client);
                    (route, handler, None)
                }
                // Before any authentication or routing.
                Some(Checked {
                    route,
                    preflight: Some(response),
                    reply,
                }) => {
                    let response = Some(response);
                    let handler = Handler::Refused { response };
                    (Some(Route::Exact(route)), handler, Some(reply))
                }
                Some(Checked { reply, .. }) => {
                    let (route, handler) = self.route(req, peer, known_client);
                    (route, handler, Some(reply))
                }
            },
        };
        Served {
            handling: request_id::scope(Scope::new(id, route), CatchPanic { handler }),
            deadline: None,
            timeout: self.timeout,
            started,
            arrival,
            cors,
        }
    }

    /// The hot route or the router for `req`, whose target has been checked; `client` is the
    /// client's address if already worked out.
    fn route(
        &mut self,
        mut req: Request,
        peer: Option<Peer>,
        client: Option<IpAddr>,
    ) -> (Option<Route>, Handler<S::Future>) {
        // Axum's extractors read the limit from the request; a request without a body needs none.
        if !req.body().is_end_stream() {
            match api::token_route(req.uri().path()) {
                // A declared length over the limit is refused before any of the body is read; a
                // chunked one is refused by the extractor as soon as it passes the limit.
                Some(route) if req.body().size_hint().lower() > self.token_max_body as u64 => {
                    let response = Some(ApiError::PayloadTooLarge.into_response());
                    return (Some(Route::Exact(route)), Handler::Refused { response });
                }
                Some(_) => self.token_body_limit.apply(&mut req),
                None => self.body_limit.apply(&mut req),
            }
        }
        let hot = self
            .hot
            .as_ref()
            .and_then(|hot| Some((hot, hot.route(&req)?)));
        match hot {
            Some((hot, route)) => {
                if hot.reads_peer(route) {
                    self.note_peer(&mut req, peer, client);
                }
                let label = hot.label(route, req.uri().path());
                let answer = hot.answer(route, req);
                (Some(label), Handler::Hot { answer })
            }
            None => {
                self.note_peer(&mut req, peer, client);
                let inner = &mut self.inner;
                let routed = catch_unwind(AssertUnwindSafe(|| inner.call(req))).ok();
                (None, Handler::Routed { routed })
            }
        }
    }
}

impl<S> Front<S> {
    /// Puts what is known of the connection in `req`'s extensions, for the handlers that read
    /// it; `client` is the client's address if already worked out.
    fn note_peer(&self, req: &mut Request, peer: Option<Peer>, client: Option<IpAddr>) {
        let Some(peer) = peer else { return };
        let client = client.unwrap_or_else(|| {
            self.trusted_proxies
                .client_addr(peer.addr.ip(), req.headers())
        });
        let extensions = req.extensions_mut();
        // Readers fall back to the peer's address: only a client named by a trusted proxy needs
        // an extension of its own (one insertion fewer a request).
        if client != peer.addr.ip() {
            extensions.insert(ClientAddr(client));
        }
        extensions.insert(ConnectInfo(peer.addr));
        if self.trusted_proxies.trusts(peer.addr.ip()) {
            extensions.insert(Proxied);
        }
        if peer.tls {
            extensions.insert(Tls(true));
        }
    }
}

/// Checks the Host header and normalizes the path, before anything routes on it: what a
/// backend serves must be what identity was checked for (see `target::normalize_path`). The
/// URI is rebuilt only when the path changed; the query is kept as it came. For a canonical
/// path, no allocation (callgrind, `GET /api/auth/check`: 343 instructions a request, of them
/// 161 normalizing and 110 finding Host).
fn check_target(req: &mut Request) -> Result<(), ApiError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), None) => {}
        (Some(_), Some(_)) => return Err(HostError::Repeated.into()),
        // HTTP/1.0 may leave Host out; HTTP/2 has `:authority` instead.
        (None, _) if req.version() == Version::HTTP_11 => return Err(HostError::Missing.into()),
        (None, _) => {}
    }
    // `OPTIONS *` asks about the server, not a resource.
    if req.method() == Method::OPTIONS && req.uri().path() == "*" {
        return Ok(());
    }
    let path = match normalize_path(req.uri().path())? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(path) => path,
    };
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    let target = match parts.path_and_query.as_ref().and_then(|pq| pq.query()) {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    // Only fails past the URI length limit: raw non-ASCII bytes grow threefold when escaped.
    let rebuilt = PathAndQuery::try_from(target)
        .ok()
        .and_then(|target| {
            parts.path_and_query = Some(target);
            Uri::from_parts(parts).ok()
        })
        .ok_or(PathError::TooLong)?;
    *req.uri_mut() = rebuilt;
    Ok(())
}

pin_project_lite::pin_project! {
    /// A request being served by [`Front`].
    pub struct Served<F> {
        #[pin]
        handling: TaskLocalFuture<Scope, CatchPanic<F>>,
        // Started only when the handler first has to wait: most answer at once, and a future
        // without a timer in it is smaller to move around.
        deadline: Option<Pin<Box<Sleep>>>,
        timeout: Duration,
        started: Instant,
        // What the access log noted of the request; `None` when it is off.
        arrival: Option<Arrival>,
        // What CORS adds to the answer, if anything.
        cors: Option<Box<CorsReply>>,
    }
}

impl<F> Future for Served<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let outcome = match this.handling.as_mut().poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => {
                let deadline = this.deadline.get_or_insert_with(|| {
                    let at = tokio::time::Instant::from_std(*this.started + *this.timeout);
                    Box::pin(tokio::time::sleep_until(at))
                });
                ready!(deadline.as_mut().poll(cx));
                Outcome::TimedOut
            }
        };
        let scope = this.handling.take_value().expect("taken once, at the end");
        let (id, route, user) = scope.into_parts();
        let mut response = match outcome {
            Outcome::Answered(response) => response,
            Outcome::Panicked => {
                let id = id.to_str().unwrap_or("-");
                tracing::error!(request_id = id, "handler panicked");
                ApiError::Panicked.into_response()
            }
            Outcome::TimedOut => ApiError::TimedOut.into_response(),
        };
        let served = observe::Served {
            request_id: &id,
            route: route.as_ref().map(|r| r.as_str()),
            user,
            started: *this.started,
            elapsed: this.started.elapsed(),
            arrival: this.arrival,
        };
        observe::request_served(served, &mut response);
        let headers = response.headers_mut();
        // Grown once, not header by header.
        let cors = this.cors.take();
        headers.reserve(FRONT_HEADERS + cors.as_ref().map_or(0, |_| CORS_HEADERS));
        // Where the answer has none of its own, as Django's middleware sets them: a proxied
        // app's own choice (`X-Frame-Options: SAMEORIGIN`, say) passes unchanged.
        for (name, value) in &SECURITY_HEADERS {
            if let header::Entry::Vacant(vacant) = headers.entry(name) {
                vacant.insert(value.clone());
            }
        }
        headers.insert(REQUEST_ID, id);
        if let Some(cors) = cors {
            cors.apply(headers);
        }
        Poll::Ready(Ok(response))
    }
}

pub enum Outcome {
    Answered(Response),
    Panicked,
    TimedOut,
}

pin_project_lite::pin_project! {
    /// Who answers: the router, or a hot route.
    #[project = HandlerProjection]
    pub enum Handler<F> {
        // None: the router panicked before returning a future.
        Routed { #[pin] routed: Option<F> },
        Hot { answer: HotFuture },
        // Answered by `Front` itself, without a handler (a refusal, a CORS preflight); taken
        // when polled.
        Refused { response: Option<Response> },
    }
}

pin_project_lite::pin_project! {
    /// The handler's future, a panic in it becoming [`Outcome::Panicked`].
    pub struct CatchPanic<F> {
        #[pin]
        handler: Handler<F>,
    }
}

impl<F> Future for CatchPanic<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let polled = match self.project().handler.project() {
            HandlerProjection::Routed { routed } => match routed.as_pin_mut() {
                Some(routed) => catch_unwind(AssertUnwindSafe(|| routed.poll(cx)))
                    .map(|poll| poll.map(|Ok(response)| response)),
                None => return Poll::Ready(Outcome::Panicked),
            },
            HandlerProjection::Hot { answer } => {
                catch_unwind(AssertUnwindSafe(|| answer.as_mut().poll(cx)))
            }
            HandlerProjection::Refused { response } => match response.take() {
                Some(response) => Ok(Poll::Ready(response)),
                None => Err(Box::new("polled after completion") as _),
            },
        };
        match polled {
            Ok(Poll::Ready(response)) => Poll::Ready(Outcome::Answered(response)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Outcome::Panicked),
        }
    }
}

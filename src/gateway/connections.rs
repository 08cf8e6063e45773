//! Keep-alive connections to one backend: HTTP/1.1 over TCP, one request at a time each, taken
//! back when the answer's body has been read to its end.
//!
//! hyper-util's pooled client kept every backend's connections in one map keyed by scheme and
//! authority (three SipHash lookups a request), behind a checkout future; here each backend keeps
//! its own stack of idle connections, the most recently used on top (see ARCHITECTURE.md for
//! what it saves).

use crate::config::UpstreamSettings;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How a backend's connections are made and kept (an `[[upstream]]`'s `keepalive`,
/// `keepalive_timeout` and `connect_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    /// Idle connections kept; past that, a connection whose answer ends is closed.
    pub max_idle: usize,
    /// An idle connection is closed after this long unused.
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

impl From<&UpstreamSettings> for KeepAlive {
    fn from(settings: &UpstreamSettings) -> Self {
        KeepAlive {
            max_idle: settings.keepalive,
            idle_timeout: settings.keepalive_timeout,
            connect_timeout: settings.connect_timeout,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: nothing was sent, and the request comes back.
    #[error("connect failed: {error}")]
    Connect {
        error: io::Error,
        request: Box<hyper::Request<Body>>,
    },
    /// The request was sent, or partly sent, and failed.
    #[error(transparent)]
    Request(#[from] hyper::Error),
}

/// One backend's connections.
#[derive(Debug)]
pub struct Connections {
    /// `host:port`, as connected to.
    address: String,
    keep_alive: KeepAlive,
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Connections {
    pub fn new(address: String, keep_alive: KeepAlive) -> Arc<Self> {
        Arc::new(Connections {
            address,
            keep_alive,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `request` (an origin-form URI, `Host` set) on an idle connection, or on a new one.
    /// A request an idle connection could not take (the backend closed it meanwhile) goes on a
    /// new connection: nothing of it was sent.
    pub async fn send(
        self: &Arc<Self>,
        mut request: hyper::Request<Body>,
    ) -> Result<hyper::Response<Returning>, SendError> {
        if let Some(mut sender) = self.take_idle().await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.returning(response, sender)),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(failed.into_error().into()),
                },
            }
        }
        let mut sender = match self.connect().await {
            Ok(sender) => sender,
            Err(error) => {
                let request = Box::new(request);
                return Err(SendError::Connect { error, request });
            }
        };
        let response = sender.send_request(request).await?;
        Ok(self.returning(response, sender))
    }

    /// Closes idle connections the backend closed or that were unused too long.
    pub fn close_stale(&self) {
        let timeout = self.keep_alive.idle_timeout;
        self.lock()
            .retain(|idle| !idle.sender.is_closed() && idle.since.elapsed() < timeout);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection that can take a request now.
    async fn take_idle(&self) -> Option<SendRequest<Body>> {
        loop {
            let Idle { mut sender, since } = self.lock().pop()?;
            if sender.is_closed() || since.elapsed() >= self.keep_alive.idle_timeout {
                continue;
            }
            // An answer read to its end leaves its connection ready at once, or as soon as the
            // connection's task has seen that end; a closed one says so.
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> io::Result<SendRequest<Body>> {
        let connecting = TcpStream::connect(&self.address);
        let stream = tokio::time::timeout(self.keep_alive.connect_timeout, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "backend connection failed");
            }
        });
        Ok(sender)
    }

    fn put(&self, sender: SendRequest<Body>) {
        let mut idle = self.lock();
        if idle.len() < self.keep_alive.max_idle {
            let since = Instant::now();
            idle.push(Idle { sender, since });
        }
    }

    /// `response` with a body that gives its connection back at its end. A 101 keeps it: the
    /// connection now belongs to the upgrade.
    fn returning(
        self: &Arc<Self>,
        response: hyper::Response<Incoming>,
        sender: SendRequest<Body>,
    ) -> hyper::Response<Returning> {
        let upgraded = response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS;
        response.map(|body| {
            let home = (!upgraded).then(|| (sender, self.clone()));
            let mut body = Returning { body, home };
            if body.body.is_end_stream() {
                body.give_back();
            }
            body
        })
    }
}

/// A backend's answer body. Read to its end, it gives the connection back; dropped before (the
/// client went away), the connection closes with it.
pub struct Returning {
    body: Incoming,
    home: Option<(SendRequest<Body>, Arc<Connections>)>,
}

impl Returning {
    fn give_back(&mut self) {
        if let Some((sender, home)) = self.home.take() {
            home.put(sender);
        }
    }

    /// The body, for an upgrade (whose answer has none).
    pub fn into_inner(self) -> Incoming {
        self.body
    }
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Ok(_)) if !this.body.is_end_stream() => {}
            Some(Err(_)) => this.home = None,
            // The end: hyper may not ask again once `is_end_stream` says so.
            _ => this.give_back(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

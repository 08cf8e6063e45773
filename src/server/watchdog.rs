//! A bounded life for every state of a connection, as nginx gives it:
//!
//! - from accept to the first complete request head (TLS handshake and HTTP/2 preface
//!   included): `header_read_timeout`;
//! - idle, no request in flight: `keepalive_timeout`, then a graceful close (HTTP/2 GOAWAY);
//! - on HTTP/1, from the first byte of a later request head to its end: `header_read_timeout`;
//! - writes making no progress (a client that stopped reading, or an HTTP/2 client that stopped
//!   opening its flow-control window): `send_timeout`.
//!
//! hyper's own HTTP/1 `header_read_timeout` starts when a connection goes idle, so it would cut
//! idle keep-alive connections at the header timeout; HTTP/2 has none. So the states are
//! tracked here instead: [`Watched`] notes reads and write stalls on the socket, [`InFlight`]
//! counts requests from their head to the end of their response, and [`Guarded`] polls the
//! connection in the same task with one timer, moved only when a deadline comes earlier (a
//! keep-alive connection reads the clock once a request and resets no timer for it; hyper's
//! header timer allocated and registered a new one for every request).

use atomic_waker::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

/// How long an idle connection closed gracefully may take to go before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The timeouts of [`Guarded`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub header_read: Duration,
    pub keepalive: Duration,
    pub send: Duration,
}

/// What a connection's socket, requests and watchdog share.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Requests whose head has arrived.
    started: AtomicU64,
    /// Requests whose response has been sent or abandoned.
    finished: AtomicU64,
    /// Bytes arrived since the watchdog last looked.
    read: AtomicBool,
    /// A write made progress since the watchdog last looked.
    wrote: AtomicBool,
    /// The last write could not proceed: the client is not reading.
    stalled: AtomicBool,
    /// HTTP/2 response bodies that have handed out a frame and not been asked for the next:
    /// waiting for the client's flow-control window, not for the app.
    waiting: AtomicUsize,
    /// Requests end on other tasks (one per stream), which must wake the watchdog.
    h2: AtomicBool,
    watchdog: AtomicWaker,
}

impl Activity {
    /// A request head has arrived; the request counts as in flight until the token is dropped
    /// (with its response body, or with the request if it is abandoned).
    pub fn request(self: &Arc<Self>, version: hyper::Version) -> InFlight {
        let h2 = version == hyper::Version::HTTP_2;
        if h2 && !self.h2.load(Relaxed) {
            self.h2.store(true, Relaxed);
        }
        self.started.fetch_add(1, Relaxed);
        InFlight {
            activity: self.clone(),
            h2,
            waiting: false,
        }
    }

    fn note_write(&self, outcome: &Poll<io::Result<usize>>) {
        match outcome {
            Poll::Pending => self.stalled.store(true, Relaxed),
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.stalled.store(false, Relaxed);
                self.wrote.store(true, Relaxed);
            }
            Poll::Ready(_) => {}
        }
    }
}

/// A request in flight.
#[derive(Debug)]
pub(super) struct InFlight {
    activity: Arc<Activity>,
    h2: bool,
    /// Counted in [`Activity::waiting`].
    waiting: bool,
}

impl InFlight {
    /// HTTP/2 only: on HTTP/1 a response waiting on the client is a stalled write.
    fn wait(&mut self, waiting: bool) {
        if self.h2 && self.waiting != waiting {
            self.waiting = waiting;
            match waiting {
                true => self.activity.waiting.fetch_add(1, Relaxed),
                false => self.activity.waiting.fetch_sub(1, Relaxed),
            };
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.wait(false);
        self.activity.finished.fetch_add(1, Relaxed);
        // HTTP/1 responses end inside the connection's own poll, which looks afterwards.
        if self.h2 {
            self.activity.watchdog.wake();
        }
    }
}

pin_project! {
    /// A response body that keeps its request in flight until it is sent or dropped.
    pub(super) struct Tracked<B> {
        #[pin]
        body: B,
        in_flight: InFlight,
    }
}

impl<B> Tracked<B> {
    pub fn new(body: B, in_flight: InFlight) -> Self {
        Tracked { body, in_flight }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        this.in_flight.wait(false);
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = frame {
            // Until hyper asks for the next one, it is the client that has to make room.
            this.in_flight.wait(true);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project! {
    /// The socket, noting reads and write stalls for the watchdog, and holding the connection's
    /// slot (`max_connections`) for as long as the socket is open: past the HTTP connection,
    /// through a WebSocket tunnel it was upgraded to.
    pub(super) struct Watched<S> {
        #[pin]
        io: S,
        activity: Arc<Activity>,
        slot: OwnedSemaphorePermit,
    }
}

impl<S> Watched<S> {
    pub fn new(io: S, activity: Arc<Activity>, slot: OwnedSemaphorePermit) -> Self {
        Watched { io, activity, slot }
    }
}

impl<S: AsyncRead> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let outcome = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read.store(true, Relaxed);
        }
        outcome
    }
}

impl<S: AsyncWrite> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.io.poll_write(cx, buf);
        this.activity.note_write(&outcome);
        outcome
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.io.poll_write_vectored(cx, bufs);
        this.activity.note_write(&outcome);
        outcome
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// How a guarded connection ended.
#[derive(Debug)]
pub(super) enum Ended<T> {
    /// The connection finished by itself (or after a graceful close).
    Done(T),
    /// Dropped by the watchdog.
    Cut(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for the first request head since accept.
    FirstHead(Instant),
    /// A request in flight.
    Busy,
    /// Nothing in flight since the instant given; `closing` once the keep-alive timeout has
    /// asked the connection to close gracefully.
    Idle { until: Instant, closing: bool },
    /// HTTP/1: the next request head has started arriving.
    NextHead(Instant),
}

pin_project! {
    /// A connection future whose every state is bounded (see the module's documentation).
    pub(super) struct Guarded<C, F> {
        #[pin]
        conn: C,
        #[pin]
        stop: F,
        #[pin]
        timer: Sleep,
        close: fn(Pin<&mut C>),
        activity: Arc<Activity>,
        limits: Limits,
        phase: Phase,
        seen_finished: u64,
        stall_until: Option<Instant>,
        armed: Option<Instant>,
        stopping: bool,
    }
}

impl<C, F> Guarded<C, F> {
    /// `first_head` is when the first request head is due (accept plus the header timeout);
    /// `stop` completes on server shutdown; `close` starts a graceful close of `conn`.
    pub fn new(
        conn: C,
        close: fn(Pin<&mut C>),
        stop: F,
        activity: Arc<Activity>,
        limits: Limits,
        first_head: Instant,
    ) -> Self {
        Guarded {
            conn,
            stop,
            timer: tokio::time::sleep_until(first_head),
            close,
            activity,
            limits,
            phase: Phase::FirstHead(first_head),
            seen_finished: 0,
            stall_until: None,
            armed: Some(first_head),
            stopping: false,
        }
    }
}

impl<C: Future, F: Future<Output = ()>> Future for Guarded<C, F> {
    type Output = Ended<C::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.stopping && this.stop.as_mut().poll(cx).is_ready() {
            *this.stopping = true;
            (this.close)(this.conn.as_mut());
        }
        loop {
            if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(Ended::Done(done));
            }
            let a = &**this.activity;
            if a.h2.load(Relaxed) {
                // Before the counts are read, so that a stream ending after that wakes us.
                a.watchdog.register(cx.waker());
            }
            // Waiting on the client (a stalled write, or an HTTP/2 stream without window): the
            // clock runs from the last write that made progress.
            let wrote = a.wrote.load(Relaxed);
            if wrote {
                a.wrote.store(false, Relaxed);
            }
            if !a.stalled.load(Relaxed) && a.waiting.load(Relaxed) == 0 {
                *this.stall_until = None;
            } else if wrote || this.stall_until.is_none() {
                *this.stall_until = Some(Instant::now() + this.limits.send);
            }
            let read = a.read.load(Relaxed);
            if read {
                a.read.store(false, Relaxed);
            }
            // Finished first: a request can only finish after it started.
            let finished = a.finished.load(Relaxed);
            let started = a.started.load(Relaxed);
            if started > finished {
                *this.phase = Phase::Busy;
            } else if started > 0 {
                let idle_again = matches!(this.phase, Phase::Busy | Phase::FirstHead(_))
                    || finished != *this.seen_finished;
                if idle_again {
                    // Bytes read in the poll that finished a request are taken as its own.
                    *this.seen_finished = finished;
                    *this.phase = Phase::Idle {
                        until: Instant::now() + this.limits.keepalive,
                        closing: false,
                    };
                } else if read
                    && matches!(this.phase, Phase::Idle { closing: false, .. })
                    && !a.h2.load(Relaxed)
                {
                    // HTTP/2 frames between requests (pings, window updates) are no request
                    // head: only an HTTP/1 head has to be read in time once started.
                    *this.phase = Phase::NextHead(Instant::now() + this.limits.header_read);
                }
            }
            let phase_until = match *this.phase {
                Phase::FirstHead(until) | Phase::NextHead(until) | Phase::Idle { until, .. } => {
                    Some(until)
                }
                Phase::Busy => None,
            };
            let Some(until) = min(phase_until, *this.stall_until) else {
                // Busy and writing: nothing to time (the request timeout bounds the handler).
                return Poll::Pending;
            };
            // The timer is moved earlier at once, later only once it fires: a busy keep-alive
            // connection pushes its idle deadline forward on every request.
            if this.armed.is_none_or(|armed| until < armed) {
                this.timer.as_mut().reset(until);
                *this.armed = Some(until);
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            *this.armed = None;
            let now = Instant::now();
            if this.stall_until.is_some_and(|t| t <= now) {
                return Poll::Ready(Ended::Cut("send timeout: the client is not reading"));
            }
            match *this.phase {
                Phase::FirstHead(t) if t <= now => {
                    return Poll::Ready(Ended::Cut(
                        "no request head within the header read timeout",
                    ));
                }
                Phase::NextHead(t) if t <= now => {
                    return Poll::Ready(Ended::Cut(
                        "request head not complete within the header read timeout",
                    ));
                }
                Phase::Idle { until, closing } if until <= now => {
                    if closing {
                        return Poll::Ready(Ended::Cut("idle connection did not close gracefully"));
                    }
                    (this.close)(this.conn.as_mut());
                    *this.phase = Phase::Idle {
                        until: now + CLOSE_GRACE,
                        closing: true,
                    };
                }
                // The timer fired for an earlier deadline: re-arm it for the current one.
                _ => {}
            }
        }
    }
}

fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

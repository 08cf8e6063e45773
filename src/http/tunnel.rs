//! An upgraded connection (a WebSocket through the proxy) as the access log sees it: its line is
//! written when the tunnel closes, with the bytes sent to the client through it and the time it
//! was open, as nginx logs such a request. The proxy puts a [`Tunnel`] in the `101` answer's
//! extensions and reports its end; the access log says what to do then.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What runs when the tunnel closes, given the bytes sent to the client.
type OnClose = Box<dyn FnOnce(u64) + Send>;

/// One upgraded connection's end, shared by the proxy, which reports it ([`Tunnel::closing`]),
/// and whoever waits for it ([`Tunnel::on_close`]); either may come first.
#[derive(Clone, Default)]
pub struct Tunnel(Arc<Mutex<State>>);

#[derive(Default)]
enum State {
    #[default]
    Open,
    Waited(OnClose),
    Closed(u64),
}

impl Tunnel {
    /// Runs `then` with the bytes sent to the client once the tunnel has closed (at once if it has).
    pub fn on_close(&self, then: impl FnOnce(u64) + Send + 'static) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*state {
            State::Closed(bytes) => {
                let bytes = *bytes;
                drop(state);
                then(bytes);
            }
            _ => *state = State::Waited(Box::new(then)),
        }
    }

    /// The end of the tunnel, reported when this is dropped, however the tunnel ended (or if it
    /// never opened), with the bytes [`Closing::count`] saw sent to the client.
    pub fn closing(&self) -> Closing {
        Closing {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            tunnel: self.clone(),
        }
    }

    fn closed(&self, bytes: u64) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Waited(then) = std::mem::replace(&mut *state, State::Closed(bytes)) {
            drop(state);
            then(bytes);
        }
    }
}

/// A tunnel's end, to come (see [`Tunnel::closing`]), and what has gone through it so far.
pub struct Closing {
    sent: AtomicU64,
    received: AtomicU64,
    tunnel: Tunnel,
}

impl Closing {
    /// `client`, the client's side of the tunnel, counting what is written to and read from it.
    pub fn count<T>(&self, client: T) -> ToClient<'_, T> {
        ToClient {
            client,
            closing: self,
        }
    }

    /// The bytes through the tunnel so far, either way: unchanged over a while, it is idle.
    pub fn traffic(&self) -> u64 {
        self.sent.load(Relaxed) + self.received.load(Relaxed)
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.tunnel.closed(self.sent.load(Relaxed));
    }
}

/// The client's side of a tunnel, counted (see [`Closing::count`]).
pub struct ToClient<'a, T> {
    client: T,
    closing: &'a Closing,
}

impl<T: AsyncRead + Unpin> AsyncRead for ToClient<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.client).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.closing.received.fetch_add(n, Relaxed);
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ToClient<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.client).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.closing.sent.fetch_add(n as u64, Relaxed);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.client).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.client).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::Tunnel;
    use std::sync::mpsc;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_end_reaches_the_waiter_whichever_comes_first() {
        for wait_first in [true, false] {
            let tunnel = Tunnel::default();
            let (told, heard) = mpsc::channel();
            let wait = |tunnel: &Tunnel| {
                let told = told.clone();
                tunnel.on_close(move |bytes| told.send(bytes).unwrap());
            };
            if wait_first {
                wait(&tunnel);
            }
            let closing = tunnel.closing();
            closing.count(Vec::new()).write_all(b"hello").await.unwrap();
            assert_eq!(closing.traffic(), 5);
            drop(closing);
            if !wait_first {
                wait(&tunnel);
            }
            assert_eq!(heard.try_recv(), Ok(5), "waiting first: {wait_first}");
        }
    }
}

//! A response body of unknown length that counts the bytes handed to the connection and reports
//! them once, when the body ends or, the client gone, when it is dropped: what the access log
//! needs for a streamed answer (a proxied one without `Content-Length`, a large file).

use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pub struct Counted<F: FnOnce(u64)> {
    body: Body,
    sent: u64,
    /// Taken when called, at the end.
    on_end: Option<F>,
}

impl<F: FnOnce(u64)> Counted<F> {
    /// `body`, calling `on_end` with the number of bytes sent when it ends or is dropped.
    pub fn new(body: Body, on_end: F) -> Self {
        Counted {
            body,
            sent: 0,
            on_end: Some(on_end),
        }
    }

    fn end(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}

// Nothing in it is pinned: `Body` is a pinned box.
impl<F: FnOnce(u64)> Unpin for Counted<F> {}

impl<F: FnOnce(u64)> HttpBody for Counted<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
            this.sent += data.len() as u64;
        }
        // hyper stops polling a body that says it has ended.
        if frame.is_none() || this.body.is_end_stream() {
            this.end();
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

impl<F: FnOnce(u64)> Drop for Counted<F> {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};

    type Reports = Arc<Mutex<Vec<u64>>>;

    fn counted(body: Body) -> (Counted<impl FnOnce(u64)>, Reports) {
        let reports = Reports::default();
        let sink = reports.clone();
        let body = Counted::new(body, move |sent| sink.lock().unwrap().push(sent));
        (body, reports)
    }

    fn chunks(sizes: &[usize]) -> Body {
        let frames = sizes
            .iter()
            .map(|&n| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; n])))
            .collect::<Vec<_>>();
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn reports_every_byte_once_at_the_end() {
        let (body, reports) = counted(chunks(&[3, 0, 1000, 7]));
        let received = body.collect().await.unwrap().to_bytes();
        assert_eq!(received.len(), 1010);
        assert_eq!(*reports.lock().unwrap(), [1010]);
    }

    #[tokio::test]
    async fn reports_what_was_sent_when_dropped_early() {
        let (mut body, reports) = counted(chunks(&[5, 6, 7]));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().unwrap().len(), 5);
        assert!(reports.lock().unwrap().is_empty());
        drop(body);
        assert_eq!(*reports.lock().unwrap(), [5]);
    }
}

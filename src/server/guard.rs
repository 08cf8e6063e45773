//! Panic catching and the request timeout in one service: a panicking handler costs its request
//! a 500 and a slow one a 504, without boxing the response body or the future on every request.

use axum::extract::Request;
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower::{Layer, Service};

#[derive(Clone, Copy)]
pub struct GuardLayer {
    pub timeout: Duration,
    pub on_panic: fn() -> Response,
    pub on_timeout: fn() -> Response,
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: *self,
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let inner = &mut self.inner;
        Guarded {
            future: catch_unwind(AssertUnwindSafe(|| inner.call(req))).ok(),
            deadline: tokio::time::sleep(self.layer.timeout),
            layer: self.layer,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Guarded<F> {
        // None: the service panicked before returning a future.
        #[pin]
        future: Option<F>,
        #[pin]
        deadline: Sleep,
        layer: GuardLayer,
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Ready(Ok((this.layer.on_panic)()));
        };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(response),
            Err(_) => Poll::Ready(Ok((this.layer.on_panic)())),
            Ok(Poll::Pending) => match this.deadline.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Ok((this.layer.on_timeout)())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

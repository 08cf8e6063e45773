//! The id of the request being served, for log lines written while serving it. The server sets
//! it around each request (from `X-Request-Id`); anything may read it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// Runs `f` as the handling of the request `id`.
pub fn scope<F: Future>(id: Arc<str>, f: F) -> tokio::task::futures::TaskLocalFuture<Arc<str>, F> {
    CURRENT.scope(id, f)
}

/// The current request's id, `-` outside a request; for log fields: `request_id = %current()`.
pub fn current() -> Current {
    Current(CURRENT.try_with(Arc::clone).ok())
}

pub struct Current(Option<Arc<str>>);

impl fmt::Display for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or("-"))
    }
}

//! A buffered log sink: formatted lines gather in memory and reach standard error in large
//! writes, so logging a request costs a copy instead of a system call.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// Bytes gathered before a write is forced.
const CAPACITY: usize = 64 * 1024;

#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Vec<u8>>>,
}

impl LogBuffer {
    pub fn stderr() -> Self {
        LogBuffer {
            inner: Arc::new(Mutex::new(Vec::with_capacity(CAPACITY))),
        }
    }

    /// Appends what `write` produces, as one piece.
    pub fn append(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut buffer = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        write(&mut buffer);
        if buffer.len() >= CAPACITY {
            let _ = io::stderr().write_all(&buffer);
            buffer.clear();
        }
    }

    fn flush_now(&self) {
        let mut buffer = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !buffer.is_empty() {
            let _ = io::stderr().write_all(&buffer);
            buffer.clear();
        }
    }

    /// Writes what has gathered every `period`, until the returned guard is dropped (which
    /// writes the rest).
    pub fn flush_periodically(&self, period: Duration) -> LogFlusher {
        let buffer = self.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                buffer.flush_now();
            }
        });
        LogFlusher {
            buffer: self.clone(),
            task,
        }
    }
}

/// Stops the periodic flushing and writes what is left.
pub struct LogFlusher {
    buffer: LogBuffer,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        self.task.abort();
        self.buffer.flush_now();
    }
}

/// One formatted event, appended to the buffer as a whole when dropped.
pub struct Line<'a> {
    buffer: &'a LogBuffer,
    line: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        self.buffer
            .append(|buffer| buffer.extend_from_slice(&self.line));
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = Line<'a>;
    fn make_writer(&'a self) -> Line<'a> {
        Line {
            buffer: self,
            line: Vec::with_capacity(256),
        }
    }
}

//! Reads by key on a few shared connections, and users read by id in batches.
//!
//! A shared connection carries the queries of many requests at once (tokio-postgres pipelines
//! them), where a connection each would cost PostgreSQL a wakeup and a round trip per query.
//! Reads of users by id go further: those that arrive while their lane's previous batch is in
//! flight are sent together as one statement (`id = ANY($1)`), so PostgreSQL parses, plans and
//! commits once for them all. A lone read goes at once; nothing waits for a batch to fill.

use super::{Fault, pg_error, sql, user_from};
use crate::store::{PoolOptions, Result, StoreError, User};
use arc_swap::ArcSwapOption;
use deadpool_postgres::{Object, Pool};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_postgres::{Row, types::ToSql};

/// The most ids one statement reads; more waiting go in the next.
const BATCH: usize = 64;

/// The most reads of users a lane holds unsent (64 batches): past that the database is not
/// keeping up, and a read is refused as unavailable (a 503 with `Retry-After`) instead of
/// waiting behind all of them.
pub(super) const MAX_WAITING: usize = 64 * BATCH;

/// Pooled connections that single-statement reads share, handed out in turn. On this machine
/// `pgbench` read 2.4x (Unix socket) to 3.7x (TCP) more rows a second pipelined 8 deep than one
/// query per round trip. A connection found closed is given back and replaced.
#[derive(Debug)]
pub(super) struct SharedReads {
    pub(super) lanes: Box<[Lane]>,
    next: AtomicUsize,
    pool: Pool,
    acquire_timeout: Duration,
    statement_timeout: Duration,
}

/// One shared connection, the lock its replacement is taken under (the callers that find it
/// missing at once open one connection between them, not one each), and the reads of users
/// waiting for its next batch.
#[derive(Debug, Default)]
pub(super) struct Lane {
    client: ArcSwapOption<Object>,
    filling: tokio::sync::Mutex<()>,
    users: Mutex<Queue>,
}

/// Reads of users by id not yet sent, and whether a task is sending them.
#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Waiter>,
    flushing: bool,
}

#[derive(Debug)]
struct Waiter {
    id: i64,
    answer: oneshot::Sender<Result<Option<User>>>,
}

impl Lane {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Clears a lane's queue if its flushing task ends without emptying it (a panic, or its runtime
/// shutting down): the waiters hear that no answer comes, and the next read starts a new task.
struct Unstrand<'a> {
    lane: &'a Lane,
    armed: bool,
}

impl Drop for Unstrand<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut queue = self.lane.queue();
            queue.flushing = false;
            queue.waiting.clear();
        }
    }
}

impl SharedReads {
    /// One lane per core (PostgreSQL runs a process per connection), leaving at least half
    /// of the pool to transactions.
    pub(super) fn new(pool: Pool, options: &PoolOptions) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lanes = cores.min(options.max_connections / 2).max(1);
        SharedReads {
            lanes: (0..lanes).map(|_| Lane::default()).collect(),
            next: AtomicUsize::new(0),
            pool,
            acquire_timeout: options.acquire_timeout,
            statement_timeout: options.statement_timeout,
        }
    }

    fn turn(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()
    }

    /// A read of at most one row, read by `read`.
    pub(super) async fn read_opt<T>(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        read: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Option<T>> {
        let rows = self.query(&self.lanes[self.turn()], sql, params).await?;
        rows.first()
            .map(read)
            .transpose()
            .map_err(|e| StoreError::Database(Arc::new(e)))
    }

    /// The user of `id`, read in the lane's next batch; unavailable when the lane already holds
    /// `MAX_WAITING` reads. The batch is sent by a task of its own, so a caller that gives up
    /// leaves the others their answers.
    pub(super) async fn user_by_id(self: &Arc<Self>, id: i64) -> Result<Option<User>> {
        let turn = self.turn();
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.lanes[turn].queue();
            if queue.waiting.len() >= MAX_WAITING {
                return Err(Fault::Backlog(MAX_WAITING).into());
            }
            queue.waiting.push(Waiter { id, answer });
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).flush_users(turn));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(Fault::Unanswered.into()))
    }

    /// Sends the lane's waiting reads of users, a batch at a time, until none is left. A failed
    /// batch answers each of its reads with its error; one that found the database unavailable
    /// answers those queued meanwhile too, so that none waits past its own timeouts.
    async fn flush_users(self: Arc<Self>, turn: usize) {
        let lane = &self.lanes[turn];
        let mut unstrand = Unstrand { lane, armed: true };
        loop {
            let batch: Vec<Waiter> = {
                let mut queue = lane.queue();
                if queue.waiting.is_empty() {
                    queue.flushing = false;
                    unstrand.armed = false;
                    return;
                }
                let n = queue.waiting.len().min(BATCH);
                // Reads given up meanwhile (a request timed out, a client gone) are not sent.
                let asked = queue.waiting.drain(..n);
                asked.filter(|w| !w.answer.is_closed()).collect()
            };
            if batch.is_empty() {
                continue;
            }
            // Each id once: duplicates are answered from one row.
            let mut ids: Vec<i64> = batch.iter().map(|w| w.id).collect();
            ids.sort_unstable();
            ids.dedup();
            match self.users(lane, &ids).await {
                Ok(found) => {
                    for w in batch {
                        let _ = w.answer.send(Ok(found.get(&w.id).cloned()));
                    }
                }
                Err(e) => {
                    let mut failed = batch;
                    if matches!(e, StoreError::Unavailable(_)) {
                        failed.append(&mut lane.queue().waiting);
                    }
                    for w in failed {
                        let _ = w.answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// The users of `ids` that exist, by id, in one statement.
    async fn users(&self, lane: &Lane, ids: &[i64]) -> Result<HashMap<i64, User>> {
        let rows = self.query(lane, sql::USERS_BY_ID, &[&ids]).await?;
        rows.iter()
            .map(|row| user_from(row).map(|user| (user.id, user)))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Database(Arc::new(e)))
    }

    /// One statement on `lane`'s connection (prepared once per connection), within the
    /// statement timeout. A connection the server closed (a restart) is replaced and the
    /// statement runs once more on the new one.
    async fn query(
        &self,
        lane: &Lane,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let mut attempt = 1;
        loop {
            let client = match lane.client.load_full() {
                Some(client) if !client.is_closed() => client,
                _ => self.fill(lane).await?,
            };
            let answer = tokio::time::timeout(self.statement_timeout, async {
                let statement = client.prepare_cached(sql).await?;
                client.query(&statement, params).await
            });
            let Ok(answer) = answer.await else {
                return Err(Fault::StatementTimeout(self.statement_timeout).into());
            };
            match answer {
                Ok(rows) => return Ok(rows),
                Err(e) if client.is_closed() && attempt == 1 => {
                    tracing::debug!(error = %e, "replacing a closed shared connection");
                    lane.client.compare_and_swap(&Some(client), None);
                    attempt += 1;
                }
                Err(e) => return Err(pg_error(e)),
            }
        }
    }

    /// The lane's connection, opened if it has none that is open.
    async fn fill(&self, lane: &Lane) -> Result<Arc<Object>> {
        // One acquire timeout for the turn and the connection together.
        let deadline = Instant::now() + self.acquire_timeout;
        let Ok(_filling) = tokio::time::timeout_at(deadline, lane.filling.lock()).await else {
            return Err(Fault::AcquireTimeout(self.acquire_timeout).into());
        };
        if let Some(client) = lane.client.load_full().filter(|c| !c.is_closed()) {
            return Ok(client);
        }
        let client = Arc::new(super::acquire(&self.pool, deadline, self.acquire_timeout).await?);
        lane.client.store(Some(client.clone()));
        Ok(client)
    }
}

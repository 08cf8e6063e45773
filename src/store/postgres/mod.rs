//! PostgreSQL through tokio-postgres, on a deadpool connection pool: many handstamp instances
//! on one database.
//!
//! Each store method is one statement, or one READ COMMITTED transaction of a few, on a pooled
//! connection (`sql.rs` has them all), prepared once per connection. Writers that touch several
//! rows take their locks in one order: a user's row, then a session's, then blacklist rows (see
//! [`refresh_in`]); so refreshes and revocations of one session take turns, and rotation is
//! exactly once across instances (a token of no session by the blacklist's `INSERT ... ON
//! CONFLICT DO NOTHING`). Nothing takes a table lock. A serialization failure or deadlock (which
//! a stricter default isolation brings), or a user deleted under a token being recorded, rolls
//! the attempt back and it runs again whole, a bounded number of times ([`retryable`]); past
//! that, and on any error of the connection or the server's state, the store is `Unavailable`
//! (a 503), never a failure of ours.
//!
//! Single-row reads by key (a user by id or name, a token's blacklist entry: what every checked
//! request and every verify needs) share a few connections instead of taking one each
//! ([`SharedReads`]): tokio-postgres pipelines the queries of concurrent callers on one
//! connection, so PostgreSQL reads many per wakeup and the pool's other connections stay for
//! transactions. Concurrent reads of users by id go further, in one statement a batch.
//!
//! Waiting is bounded: taking a connection from the pool (opening one if needed) gives up after
//! the acquire timeout, opening one after the connect timeout, waiting for a statement's answer
//! after the statement timeout. A connection the server closed (a restart) is dropped when it
//! comes back to the pool, so the store recovers by itself.

mod migrate;
mod shared;
mod sql;
mod ssl;
/// The integration tests' fresh-database helper, shared rather than copied.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../tests/api/common/postgres.rs"]
mod test_database;
mod tls;

use super::import::plan;
use super::{
    FailureCount, Flushed, Import, ImportCounts, ImportMode, ImportOutcome, Limit, Login, NewUser,
    Outstanding, PasswordHash, PoolOptions, Refresh, RefreshOutcome, Result, Session, Store,
    StoreError, StoredKey, User, issued_before,
};
use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction,
};
use shared::SharedReads;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_postgres::{Row, config::Host, types::ToSql};

/// Attempts of a statement that met a [`retryable`] failure.
const ATTEMPTS: u32 = 4;

#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    shared: Arc<SharedReads>,
    acquire_timeout: Duration,
    statement_timeout: Duration,
}

/// A connection from `pool` by `deadline` (`timeout` after the wait began).
async fn acquire(pool: &Pool, deadline: Instant, timeout: Duration) -> Result<Object> {
    match tokio::time::timeout_at(deadline, pool.get()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(Fault::Pool(e).into()),
        Err(_) => Err(Fault::AcquireTimeout(timeout).into()),
    }
}

/// Why the store is unavailable when PostgreSQL itself did not say.
#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error("no database connection within {0:?}")]
    AcquireTimeout(Duration),
    #[error("no answer from the database within {0:?}")]
    StatementTimeout(Duration),
    #[error(transparent)]
    Pool(deadpool_postgres::PoolError),
    #[error("the server is a read-only standby")]
    Standby,
    #[error("the statement answered {0:?}, not a row of ours")]
    Unexpected(Option<String>),
    #[error("the batch of this read ended without an answer")]
    Unanswered,
    #[error("{0} reads of users already waiting for the database")]
    Backlog(usize),
}

impl From<Fault> for StoreError {
    fn from(fault: Fault) -> Self {
        match fault {
            // No connection to be had, whatever the reason (refused, no such database, bad
            // password): unavailable. The pool's own other errors are defects.
            Fault::Pool(deadpool_postgres::PoolError::Backend(e)) => {
                StoreError::Unavailable(Arc::new(PgFailure(e)))
            }
            Fault::Pool(deadpool_postgres::PoolError::Timeout(_))
            | Fault::AcquireTimeout(_)
            | Fault::StatementTimeout(_)
            | Fault::Backlog(_) => StoreError::Unavailable(Arc::new(fault)),
            Fault::Pool(_) | Fault::Unexpected(_) | Fault::Unanswered => {
                StoreError::Database(Arc::new(fault))
            }
            Fault::Standby => StoreError::Unavailable(Arc::new(fault)),
        }
    }
}

/// Sorts PostgreSQL's errors: the connection, the server's state or resources, and contention
/// that outlasted its retries make the store unavailable; the rest are failures of the query.
/// The error is kept as the cause either way.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let unavailable = match e.code() {
        Some(code) => {
            let code = code.code();
            matches!(
                &code[..2],
                // connection exception, insufficient resources, operator intervention
                // (shutdown, cancel), system error, transaction rollback (contention)
                "08" | "53" | "57" | "58" | "40"
            ) || code == "25006" // read_only_sql_transaction: a standby
        }
        // No SQLSTATE: the server never answered (closed connection, I/O, connect failure),
        // unless it is a conversion of ours.
        None => {
            use std::error::Error as _;
            e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>())
        }
    };
    let cause = Arc::new(PgFailure(e));
    if unavailable {
        StoreError::Unavailable(cause)
    } else {
        StoreError::Database(cause)
    }
}

/// PostgreSQL's error, shown with its causes ("error connecting to server" alone does not say
/// that the connection was refused).
#[derive(Debug)]
struct PgFailure(tokio_postgres::Error);

impl std::fmt::Display for PgFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for PgFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// A failure that rolled the statement back and that running it again resolves: a
/// serialization failure or deadlock, or a user deleted while a token of theirs was being
/// recorded (the foreign key's check waited for that delete; run again, the token is recorded
/// without a user, as when the user was gone before).
fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::FOREIGN_KEY_VIOLATION
    )
}

/// Whether a failed statement broke a unique constraint.
fn is_unique_violation(cause: &super::Cause) -> bool {
    let error: &(dyn std::error::Error + 'static) = &**cause;
    error
        .downcast_ref::<PgFailure>()
        .and_then(|e| e.0.code())
        .is_some_and(|c| *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

fn user_from(row: &Row) -> Result<User, tokio_postgres::Error> {
    Ok(User {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        password: PasswordHash::from(row.try_get::<_, String>(2)?),
        is_active: row.try_get(3)?,
        is_staff: row.try_get(4)?,
        is_superuser: row.try_get(5)?,
        date_joined: row.try_get(6)?,
        last_login: row.try_get(7)?,
        tokens_valid_after: row.try_get(8)?,
    })
}

fn session_from(row: &Row) -> Result<Session, tokio_postgres::Error> {
    Ok(Session {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        created_at: row.try_get(2)?,
        last_refreshed_at: row.try_get(3)?,
        expires_at: row.try_get(4)?,
        ip: row.try_get(5)?,
        user_agent: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
    })
}

fn key_from(row: &Row) -> Result<StoredKey, tokio_postgres::Error> {
    Ok(StoredKey {
        kid: row.try_get(0)?,
        algorithm: row.try_get(1)?,
        private_key: row.try_get(2)?,
        created_at: row.try_get(3)?,
        activated_at: row.try_get(4)?,
        deactivated_at: row.try_get(5)?,
        retired_at: row.try_get(6)?,
    })
}

/// A failure count from its five columns, starting at `at`.
fn failure_count_from(row: &Row, at: usize) -> Result<FailureCount, tokio_postgres::Error> {
    Ok(FailureCount {
        failures: u32::try_from(row.try_get::<_, i32>(at)?).unwrap_or(0),
        window_start: row.try_get(at + 1)?,
        locked_until: row.try_get(at + 2)?,
        lockouts: u32::try_from(row.try_get::<_, i32>(at + 3)?).unwrap_or(0),
        last_failure: row.try_get(at + 4)?,
    })
}

/// A counter as an INTEGER column holds it.
fn as_integer(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The advisory lock that activations of signing keys take turns on: "hs-keys" in ASCII.
const KEYS_LOCK: i64 = 0x0068_732d_6b65_7973;

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// One statement in `tx` (prepared once per connection), returning its rows.
async fn rows(
    tx: &Transaction<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query(&statement, params).await
}

/// One statement in `tx` returning at most one row.
async fn row(
    tx: &Transaction<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query_opt(&statement, params).await
}

/// One statement in `tx`, returning how many rows it changed.
async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await
}

/// Records `token` in `session` (which exists and is locked) rotated from `parent`.
async fn record(
    tx: &Transaction<'_>,
    token: &Outstanding,
    session: Option<&str>,
    parent: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let params: [&(dyn ToSql + Sync); 6] = [
        &token.jti,
        &token.user_id,
        &token.created_at,
        &token.expires_at,
        &session,
        &parent,
    ];
    execute(tx, sql::RECORD, &params).await?;
    Ok(())
}

/// The session `jti` belongs to (its id, and when it was revoked), locked until `tx` ends.
async fn lock_session_of(
    tx: &Transaction<'_>,
    jti: &str,
) -> Result<Option<(String, Option<i64>)>, tokio_postgres::Error> {
    match row(tx, sql::LOCK_SESSION_OF, &[&jti]).await? {
        Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
        None => Ok(None),
    }
}

/// Revokes session `id` (only `user`'s live one, when given) and blacklists its tokens that
/// have not expired; false if there was nothing to revoke.
async fn revoke(
    tx: &Transaction<'_>,
    id: &str,
    user: Option<i64>,
    now: i64,
) -> Result<bool, tokio_postgres::Error> {
    if execute(tx, sql::REVOKE_SESSION, &[&now, &id, &user]).await? == 0 {
        return Ok(false);
    }
    let ids: &[&str] = &[id];
    execute(tx, sql::BLACKLIST_SESSIONS, &[&now, &ids]).await?;
    Ok(true)
}

/// [`Store::refresh`] inside `tx`, in the contract's order. The user's row is held first, then
/// the token's session: every writer that touches both takes them in that order.
async fn refresh_in(
    tx: &Transaction<'_>,
    r: &Refresh,
    now: i64,
) -> Result<RefreshOutcome, tokio_postgres::Error> {
    let old = r.old.jti.as_str();
    let mut valid_after = None;
    if let Some(user_id) = r.user_id {
        match row(tx, sql::REFRESH_USER, &[&user_id]).await? {
            Some(user) if user.try_get::<_, bool>(0)? => valid_after = user.try_get(1)?,
            // A blacklisted token is reported as such first, as simplejwt does.
            _ => {
                let listed = row(tx, sql::BLACKLISTED_AT, &[&old]).await?.is_some();
                return Ok(if listed {
                    RefreshOutcome::Blacklisted
                } else {
                    RefreshOutcome::NoActiveUser
                });
            }
        }
    }
    let session = lock_session_of(tx, old).await?;
    let session_revoked = session.as_ref().is_some_and(|(_, at)| at.is_some());
    if session_revoked || issued_before(valid_after, r.old.created_at) {
        return Ok(RefreshOutcome::Blacklisted);
    }
    let session = session.map(|(id, _)| id);
    if let Some(listed) = row(tx, sql::BLACKLISTED_AT, &[&old]).await? {
        let at: i64 = listed.try_get(0)?;
        if let Some(id) = &session
            && now - at >= r.reuse_interval
        {
            revoke(tx, id, None, now).await?;
            return Ok(RefreshOutcome::Revoked);
        }
        return Ok(RefreshOutcome::Blacklisted);
    }
    if r.blacklist_old {
        let params: [&(dyn ToSql + Sync); 3] = [&old, &r.old.expires_at, &now];
        // Empty when a racer blacklisted it first: only a token of no session (whose racers
        // take no lock) gets here so.
        if rows(tx, sql::BLACKLIST, &params).await?.is_empty() {
            return Ok(RefreshOutcome::Blacklisted);
        }
    }
    if let Some(new) = &r.new {
        record(tx, new, session.as_deref(), Some(old)).await?;
    }
    if let Some(id) = &session {
        let expires_at = r.new.as_ref().map(|new| new.expires_at);
        execute(tx, sql::TOUCH_SESSION, &[&now, &expires_at, id]).await?;
    }
    Ok(RefreshOutcome::Done)
}

/// [`Store::login_failed`] inside `tx`. Each key's row is made if missing and locked, so
/// concurrent failures on any instance are counted one after the other.
async fn login_failed_in(
    tx: &Transaction<'_>,
    keys: &[(String, Limit)],
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    for (key, limit) in keys {
        // Twice at most: the row can only vanish (an expired one deleted) between these two
        // statements, and then the insert makes one that is ours until we commit.
        let locked = loop {
            execute(tx, sql::ADD_LOGIN_FAILURE_ROW, &[key]).await?;
            if let Some(locked) = row(tx, sql::LOCK_LOGIN_FAILURES, &[key]).await? {
                break locked;
            }
        };
        let expires_at: i64 = locked.try_get(5)?;
        let count = if expires_at > now {
            failure_count_from(&locked, 0)?
        } else {
            FailureCount::default()
        }
        .after_failure(limit, now);
        let params: [&(dyn ToSql + Sync); 7] = [
            key,
            &as_integer(count.failures),
            &count.window_start,
            &count.locked_until,
            &as_integer(count.lockouts),
            &count.last_failure,
            &count.expires_at(limit),
        ];
        execute(tx, sql::SET_LOGIN_FAILURES, &params).await?;
    }
    execute(tx, sql::DELETE_EXPIRED_LOGIN_FAILURES, &[&now]).await?;
    Ok(())
}

/// [`Store::import`] inside `tx`; the caller commits it, or rolls it back for a dry run.
async fn import_in(
    tx: &Transaction<'_>,
    import: &Import,
    mode: ImportMode,
) -> Result<ImportOutcome, tokio_postgres::Error> {
    let ids: Vec<i64> = import.users.iter().map(|u| u.id).collect();
    let names: Vec<&str> = import.users.iter().map(|u| u.username.as_str()).collect();
    let ours = rows(tx, sql::IMPORT_OURS, &[&ids, &names]).await?;
    let ours = ours.iter().map(user_from).collect::<Result<Vec<_>, _>>()?;
    let plan = plan(import, &ours, mode);
    if !plan.conflicts.is_empty() {
        return Ok(ImportOutcome::Conflicts(plan.conflicts));
    }
    let mut counts = ImportCounts {
        users_unchanged: plan.unchanged,
        users_skipped: plan.skipped,
        ..ImportCounts::default()
    };
    if !plan.users.is_empty() {
        let users = &plan.users;
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
        let hashes: Vec<&str> = users.iter().map(|u| u.password.as_str()).collect();
        let active: Vec<bool> = users.iter().map(|u| u.is_active).collect();
        let staff: Vec<bool> = users.iter().map(|u| u.is_staff).collect();
        let superuser: Vec<bool> = users.iter().map(|u| u.is_superuser).collect();
        let joined: Vec<i64> = users.iter().map(|u| u.date_joined).collect();
        let last_login: Vec<Option<i64>> = users.iter().map(|u| u.last_login).collect();
        let params: [&(dyn ToSql + Sync); 8] = [
            &ids,
            &names,
            &hashes,
            &active,
            &staff,
            &superuser,
            &joined,
            &last_login,
        ];
        counts.users_imported = execute(tx, sql::IMPORT_USERS, &params).await?;
        // Not on a dry run: a sequence's move is not undone by a rollback.
        if !mode.dry_run {
            execute(tx, sql::IMPORT_ADVANCE_USER_IDS, &[]).await?;
        }
    }
    let tokens = &plan.tokens;
    let jtis: Vec<&str> = tokens.iter().map(|t| t.jti.as_str()).collect();
    let users: Vec<Option<i64>> = tokens.iter().map(|t| t.user_id).collect();
    let created: Vec<Option<i64>> = tokens.iter().map(|t| t.created_at).collect();
    let expires: Vec<i64> = tokens.iter().map(|t| t.expires_at).collect();
    let params: [&(dyn ToSql + Sync); 4] = [&jtis, &users, &created, &expires];
    counts.tokens = execute(tx, sql::IMPORT_TOKENS, &params).await?;
    let listed = &plan.blacklisted;
    let jtis: Vec<&str> = listed.iter().map(|b| b.jti.as_str()).collect();
    let expires: Vec<i64> = listed.iter().map(|b| b.expires_at).collect();
    let at: Vec<i64> = listed.iter().map(|b| b.blacklisted_at).collect();
    counts.blacklisted = execute(tx, sql::IMPORT_BLACKLISTED, &[&jtis, &expires, &at]).await?;
    Ok(ImportOutcome::Done(counts))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST:PORT/NAME`, with libpq's parameters,
    /// its TLS ones included) and brings the schema up to date.
    pub async fn open(url: &str, options: &PoolOptions) -> Result<Self> {
        let invalid = |e: ssl::SslSettingError| StoreError::InvalidUrl(Arc::new(e));
        let (url, ssl) = ssl::split(url).map_err(invalid)?;
        let tls = tls::MakeRustls::new(&ssl).map_err(invalid)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::InvalidUrl(Arc::new(e)))?;
        // libpq never asks for TLS on a Unix socket, whatever the mode; the server refuses it.
        let hosts = config.get_hosts();
        let sockets_only = !hosts.is_empty() && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)));
        config.ssl_mode(if sockets_only {
            tokio_postgres::config::SslMode::Disable
        } else {
            ssl.mode.negotiation()
        });
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("handstamp");
        }
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                // A closed connection is dropped on its way back; no query per checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(Arc::new(e)))?;
        let store = PostgresStore {
            shared: Arc::new(SharedReads::new(pool.clone(), options)),
            pool,
            acquire_timeout: options.acquire_timeout,
            statement_timeout: options.statement_timeout,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this database lacks, under the migration lock.
    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        // A database gone away is unavailable; a statement of ours that failed, a migration.
        let migrate_error = |e: migrate::MigrateError| match e {
            migrate::MigrateError::Postgres(e) => match pg_error(e) {
                StoreError::Database(cause) => StoreError::Migrate(cause),
                other => other,
            },
            e => StoreError::Migrate(Arc::new(e)),
        };
        let tx = client.transaction().await.map_err(pg_error)?;
        let applied = migrate::migrate(&tx).await.map_err(migrate_error)?;
        tx.commit().await.map_err(pg_error)?;
        for version in applied {
            tracing::info!(version, "applied database migration");
        }
        Ok(())
    }

    /// A pooled connection, within the acquire timeout however the pool is doing.
    async fn client(&self) -> Result<Object> {
        let deadline = Instant::now() + self.acquire_timeout;
        acquire(&self.pool, deadline, self.acquire_timeout).await
    }

    /// Runs `work` on a pooled connection; again after a [`retryable`] failure, up to
    /// [`ATTEMPTS`] times. Each attempt waits at most the statement timeout for its answer:
    /// past it the statement's outcome is unknown (a write may still commit), and the caller
    /// hears that the database is unavailable.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: Fn(Object) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let mut attempt = 1;
        loop {
            let answered = tokio::time::timeout(self.statement_timeout, work(self.client().await?));
            let Ok(answer) = answered.await else {
                return Err(Fault::StatementTimeout(self.statement_timeout).into());
            };
            match answer {
                Ok(value) => return Ok(value),
                Err(e) if retryable(&e) && attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "retrying a statement");
                    attempt += 1;
                }
                Err(e) => return Err(pg_error(e)),
            }
        }
    }

    /// One statement (prepared once per connection), returning its rows.
    async fn query(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.run(|c| async move {
            let statement = c.prepare_cached(sql).await?;
            c.query(&statement, params).await
        })
        .await
    }

    /// One statement, returning how many rows it changed.
    async fn execute(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.run(|c| async move {
            let statement = c.prepare_cached(sql).await?;
            c.execute(&statement, params).await
        })
        .await
    }

    /// One statement returning at most one row, read by `read`.
    async fn query_opt<T>(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        read: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Option<T>> {
        let rows = self.query(sql, params).await?;
        rows.first()
            .map(read)
            .transpose()
            .map_err(|e| StoreError::Database(Arc::new(e)))
    }

    /// An UPDATE or DELETE of one user by name (`$1`), with `more` parameters after it; an
    /// unknown name is an error.
    async fn change_user(
        &self,
        sql: &'static str,
        username: &str,
        more: &[&(dyn ToSql + Sync)],
    ) -> Result<()> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&username];
        params.extend_from_slice(more);
        match self.execute(sql, &params).await? {
            0 => Err(StoreError::UnknownUser(username.to_owned())),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<()> {
        let standby = self
            .query_opt(sql::PING, &[], |r| r.try_get::<_, bool>(0))
            .await?;
        if standby == Some(true) {
            return Err(Fault::Standby.into());
        }
        Ok(())
    }

    async fn check_writable(&self) -> Result<()> {
        let name = format!("handstamp:write-check:{}", uuid::Uuid::new_v4());
        self.run(|mut c| {
            let name = &name;
            async move {
                let tx = c.transaction().await?;
                tx.execute(sql::WRITE_CHECK_ADD, &[name]).await?;
                tx.execute(sql::WRITE_CHECK_REMOVE, &[name]).await?;
                tx.commit().await
            }
        })
        .await
    }

    async fn create_user(&self, user: NewUser, now: i64) -> Result<User> {
        let hash = user.password_hash.as_str();
        let params: [&(dyn ToSql + Sync); 5] = [
            &user.username,
            &hash,
            &user.is_staff,
            &user.is_superuser,
            &now,
        ];
        match self.query_opt(sql::CREATE_USER, &params, user_from).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(Fault::Unexpected(None).into()),
            Err(StoreError::Database(cause)) if is_unique_violation(&cause) => {
                Err(StoreError::DuplicateUser(user.username))
            }
            Err(e) => Err(e),
        }
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.shared
            .read_opt(sql::USER_BY_NAME, &[&username], user_from)
            .await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.shared.user_by_id(id).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = self.query(sql::LIST_USERS, &[]).await?;
        rows.iter()
            .map(user_from)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Database(Arc::new(e)))
    }

    async fn set_password(&self, username: &str, password_hash: &PasswordHash) -> Result<()> {
        let hash = password_hash.as_str();
        self.change_user(sql::SET_PASSWORD, username, &[&hash])
            .await
    }

    async fn set_active(&self, username: &str, active: bool) -> Result<()> {
        self.change_user(sql::SET_ACTIVE, username, &[&active])
            .await
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        self.change_user(sql::DELETE_USER, username, &[]).await
    }

    async fn record_login(&self, user_id: i64, now: i64) -> Result<()> {
        self.execute(sql::RECORD_LOGIN, &[&user_id, &now]).await?;
        Ok(())
    }

    async fn outstand(&self, token: &Outstanding) -> Result<()> {
        let none: Option<&str> = None;
        let params: [&(dyn ToSql + Sync); 6] = [
            &token.jti,
            &token.user_id,
            &token.created_at,
            &token.expires_at,
            &none,
            &none,
        ];
        self.execute(sql::RECORD, &params).await?;
        Ok(())
    }

    async fn start_session(&self, login: Login) -> Result<bool> {
        let s = &login.session;
        let params: [&(dyn ToSql + Sync); 7] = [
            &s.id,
            &s.created_at,
            &s.last_refreshed_at,
            &s.expires_at,
            &s.ip,
            &s.user_agent,
            &s.user_id,
        ];
        let params = &params;
        let login = &login;
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            // Nothing for a user deleted since the password check (one deleted meanwhile fails
            // the foreign key check, and the run again finds no user).
            if execute(&tx, sql::START_SESSION, params).await? == 0 {
                return Ok(false);
            }
            record(&tx, &login.token, Some(&login.session.id), None).await?;
            if login.record_login {
                let (user, at) = (&login.session.user_id, &login.session.created_at);
                execute(&tx, sql::RECORD_LOGIN, &[user, at]).await?;
            }
            if let Some(hash) = &login.new_password {
                let (user, hash) = (&login.session.user_id, &hash.as_str());
                execute(&tx, sql::UPGRADE_PASSWORD, &[hash, user]).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool> {
        let listed = self
            .shared
            .read_opt(sql::IS_BLACKLISTED, &[&jti], |r| r.try_get(0))
            .await?;
        Ok(listed.unwrap_or(false))
    }

    async fn blacklist(&self, token: &Outstanding, now: i64) -> Result<bool> {
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            // The session first, as a refresh takes it before the blacklist.
            let session = lock_session_of(&tx, &token.jti).await?;
            let params: [&(dyn ToSql + Sync); 3] = [&token.jti, &token.expires_at, &now];
            let added = !rows(&tx, sql::BLACKLIST, &params).await?.is_empty();
            if let Some((id, _)) = session {
                revoke(&tx, &id, None, now).await?;
            }
            tx.commit().await?;
            Ok(added)
        })
        .await
    }

    async fn refresh(&self, r: Refresh, now: i64) -> Result<RefreshOutcome> {
        let r = &r;
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            let outcome = refresh_in(&tx, r, now).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn flush_expired(&self, now: i64) -> Result<Flushed> {
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            let tokens = row(&tx, sql::FLUSH_TOKENS, &[&now]).await?;
            let tokens = match tokens {
                Some(count) => count.try_get::<_, i64>(0)?,
                None => 0,
            };
            let sessions = execute(&tx, sql::FLUSH_SESSIONS, &[&now]).await?;
            execute(&tx, sql::FLUSH_LOGIN_FAILURES, &[&now]).await?;
            tx.commit().await?;
            Ok(Flushed {
                tokens: u64::try_from(tokens).unwrap_or(0),
                sessions,
            })
        })
        .await
    }

    async fn sessions(&self, user_id: i64, now: i64) -> Result<Vec<Session>> {
        let rows = self.query(sql::SESSIONS, &[&user_id, &now]).await?;
        rows.iter()
            .map(session_from)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Database(Arc::new(e)))
    }

    async fn revoke_session(&self, user_id: i64, id: &str, now: i64) -> Result<bool> {
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            let revoked = revoke(&tx, id, Some(user_id), now).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn revoke_all_sessions(&self, user_id: i64, now: i64) -> Result<u64> {
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            execute(&tx, sql::LOG_OUT_EVERYWHERE, &[&now, &user_id]).await?;
            let revoked = rows(&tx, sql::REVOKE_USER_SESSIONS, &[&now, &user_id]).await?;
            let ids = revoked
                .iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()?;
            if !ids.is_empty() {
                execute(&tx, sql::BLACKLIST_SESSIONS, &[&now, &ids]).await?;
            }
            tx.commit().await?;
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        self.execute(sql::ADD_SECRET, &[&name, &candidate]).await?;
        let value = self
            .query_opt(sql::SECRET, &[&name], |r| r.try_get::<_, Vec<u8>>(0))
            .await?;
        value.ok_or_else(|| Fault::Unexpected(None).into())
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        let rows = self.query(sql::SIGNING_KEYS, &[]).await?;
        rows.iter()
            .map(key_from)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Database(Arc::new(e)))
    }

    async fn add_signing_key(&self, key: StoredKey, activate_if_none: bool) -> Result<bool> {
        let activated_at = activate_if_none.then_some(key.created_at);
        let params: [&(dyn ToSql + Sync); 6] = [
            &key.kid,
            &key.algorithm,
            &key.private_key,
            &key.created_at,
            &activated_at,
            &activate_if_none,
        ];
        let params = &params;
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            if activate_if_none {
                // After an activation under way, whose key then holds the index.
                execute(&tx, sql::LOCK_SIGNING_KEYS, &[&KEYS_LOCK]).await?;
            }
            let added = !rows(&tx, sql::ADD_SIGNING_KEY, params).await?.is_empty();
            tx.commit().await?;
            Ok(added)
        })
        .await
    }

    async fn activate_signing_key(&self, kid: &str, now: i64) -> Result<bool> {
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            // Two activations at once would each deactivate the key before and then meet on
            // the one-active index: they take turns instead.
            execute(&tx, sql::LOCK_SIGNING_KEYS, &[&KEYS_LOCK]).await?;
            if row(&tx, sql::LOCK_UNRETIRED_KEY, &[&kid]).await?.is_none() {
                return Ok(false);
            }
            execute(&tx, sql::DEACTIVATE_OTHER_KEYS, &[&kid, &now]).await?;
            execute(&tx, sql::ACTIVATE_KEY, &[&kid, &now]).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool> {
        Ok(self.execute(sql::RETIRE_KEY, &[&kid, &now]).await? == 1)
    }

    async fn login_failures(&self, keys: &[String], now: i64) -> Result<Vec<Option<FailureCount>>> {
        let rows = self.query(sql::LOGIN_FAILURES, &[&keys, &now]).await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let key: String = row
                .try_get(0)
                .map_err(|e| StoreError::Database(Arc::new(e)))?;
            let count =
                failure_count_from(row, 1).map_err(|e| StoreError::Database(Arc::new(e)))?;
            found.insert(key, count);
        }
        Ok(keys.iter().map(|key| found.get(key).copied()).collect())
    }

    async fn login_failed(&self, mut keys: Vec<(String, Limit)>, now: i64) -> Result<()> {
        // Rows locked in one order by every instance: two failures never wait on each other.
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let keys = &keys;
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            login_failed_in(&tx, keys, now).await?;
            tx.commit().await
        })
        .await
    }

    async fn forget_login_failures(&self, key: &str) -> Result<()> {
        self.execute(sql::FORGET_LOGIN_FAILURES, &[&key]).await?;
        Ok(())
    }

    async fn import(&self, import: Import, mode: ImportMode) -> Result<ImportOutcome> {
        let import = &import;
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            let outcome = import_in(&tx, import, mode).await?;
            match outcome {
                ImportOutcome::Done(_) if !mode.dry_run => tx.commit().await?,
                _ => tx.rollback().await?,
            }
            Ok(outcome)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_database::TestDatabase;

    /// A store on a fresh database of its own, and that database (dropped after the test);
    /// `None` (with a notice) when `TEST_POSTGRES_URL` is not set.
    async fn fresh() -> Option<(PostgresStore, TestDatabase)> {
        let database = TestDatabase::create().await?;
        // A small pool: tests run side by side on one server with a connection limit.
        let pool = PoolOptions {
            max_connections: 4,
            ..PoolOptions::default()
        };
        let store = PostgresStore::open(&database.url, &pool).await.unwrap();
        Some((store, database))
    }

    /// A user named `username`; their id.
    async fn create(store: &PostgresStore, username: &str) -> i64 {
        let user = NewUser {
            username: username.into(),
            password_hash: PasswordHash::from("x"),
            is_staff: false,
            is_superuser: false,
        };
        store.create_user(user, 0).await.unwrap().id
    }

    #[tokio::test]
    async fn concurrent_reads_by_key_share_connections() {
        let Some((store, _database)) = fresh().await else {
            return;
        };
        let id = create(&store, "ada").await;
        let reads = (0..64).map(|_| store.user_by_id(id));
        for user in futures_util::future::join_all(reads).await {
            assert_eq!(user.unwrap().unwrap().username, "ada");
        }
        // A connection each would have filled the pool of 4.
        let lanes = store.shared.lanes.len();
        assert!(lanes < 4);
        assert!(
            store.pool.status().size <= lanes.max(1),
            "{:?}",
            store.pool.status()
        );
    }

    /// The transactions committed on `database` so far, every connection to it ended first: a
    /// backend reports its counts as it ends, and terminating one waits for that.
    async fn commits(database: &TestDatabase) -> i64 {
        let server = test_database::server_url().unwrap();
        let config: tokio_postgres::Config = database.url.parse().unwrap();
        let name = config.get_dbname().unwrap();
        let ended = format!(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '{name}'"
        );
        test_database::rows(&server, &ended).await;
        let left = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
        assert_eq!(
            test_database::rows(&server, &left).await[0][0].as_deref(),
            Some("0")
        );
        let commits = format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'");
        let rows = test_database::rows(&server, &commits).await;
        rows[0][0].as_deref().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn concurrent_reads_of_users_by_id_go_in_a_few_statements() {
        let Some((store, database)) = fresh().await else {
            return;
        };
        let mut ids = Vec::new();
        for n in 0..64 {
            ids.push(create(&store, &format!("user{n}")).await);
        }
        drop(store);
        let before = commits(&database).await;

        // Each statement outside a transaction commits one: a statement a read would commit 64.
        let pool = PoolOptions {
            max_connections: 4,
            ..PoolOptions::default()
        };
        let store = PostgresStore::open(&database.url, &pool).await.unwrap();
        let reads = ids.iter().map(|&id| store.user_by_id(id));
        let users = futures_util::future::join_all(reads).await;
        for (n, user) in users.into_iter().enumerate() {
            assert_eq!(user.unwrap().unwrap().username, format!("user{n}"));
        }
        drop(store);
        let committed = commits(&database).await - before;
        // Besides the reads: the migration check, and each connection's start and prepares.
        assert!(committed < 32, "{committed} transactions for 64 reads");
    }

    #[tokio::test]
    async fn a_read_given_up_strands_none_of_its_batch() {
        let Some((store, _database)) = fresh().await else {
            return;
        };
        let id = create(&store, "ada").await;
        // All queued before any is sent (this runtime runs one task at a time); the first of
        // each lane started its batch's sending.
        let mut reads: Vec<_> = (0..8).map(|_| Box::pin(store.user_by_id(id))).collect();
        for read in &mut reads {
            assert!(futures_util::poll!(read.as_mut()).is_pending());
        }
        drop(reads.drain(..4));
        let rest = futures_util::future::join_all(reads);
        let answers = tokio::time::timeout(Duration::from_secs(10), rest).await;
        for user in answers.expect("the other reads are answered") {
            assert_eq!(user.unwrap().unwrap().username, "ada");
        }
    }

    /// A lane holds at most `MAX_WAITING` unsent reads of users: past that a read is refused at
    /// once as unavailable, and those queued are all answered.
    #[tokio::test]
    async fn reads_of_users_past_the_backlog_are_refused_as_unavailable() {
        let Some((store, _database)) = fresh().await else {
            return;
        };
        let id = create(&store, "ada").await;
        let lanes = store.shared.lanes.len();
        // All queued before any is sent, as above; lanes taken in turn, one over per lane.
        let count = lanes * (shared::MAX_WAITING + 1);
        let (mut queued, mut refused) = (Vec::new(), 0);
        for _ in 0..count {
            let mut read = Box::pin(store.user_by_id(id));
            match futures_util::poll!(read.as_mut()) {
                std::task::Poll::Pending => queued.push(read),
                std::task::Poll::Ready(Err(StoreError::Unavailable(_))) => refused += 1,
                std::task::Poll::Ready(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(refused, lanes);
        let answers = futures_util::future::join_all(queued);
        let answers = tokio::time::timeout(Duration::from_secs(30), answers).await;
        for user in answers.expect("the queued reads are answered") {
            assert_eq!(user.unwrap().unwrap().username, "ada");
        }
    }

    crate::store::contract::store_contract!(match fresh().await {
        Some(engine) => engine,
        None => return,
    });
}

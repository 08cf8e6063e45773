//! PostgreSQL through tokio-postgres, on a deadpool connection pool: many handstamp instances
//! on one database.
//!
//! Each store method is one statement on a pooled connection (`sql.rs` has them all), prepared
//! once per connection. Rotation is exactly once across instances because the old token is
//! blacklisted by `INSERT ... ON CONFLICT DO NOTHING` inside the refresh statement (see
//! [`sql::REFRESH`]): READ COMMITTED suffices, nothing takes a table lock. A serialization
//! failure or deadlock (which no statement here meets under READ COMMITTED, but a stricter
//! default isolation brings), or a user deleted under a token being recorded, rolls the
//! statement back and it runs again, a bounded number of times ([`retryable`]); past that, and
//! on any error of the connection or the server's state, the store is `Unavailable` (a 503),
//! never a failure of ours.
//!
//! Waiting is bounded: taking a connection from the pool (opening one if needed) gives up after
//! the acquire timeout, opening one after the connect timeout, waiting for a statement's answer
//! after the statement timeout. A connection the server closed (a restart) is dropped when it
//! comes back to the pool, so the store recovers by itself.

mod migrate;
mod sql;

use super::{
    NewUser, Outstanding, PasswordHash, PoolOptions, Refresh, RefreshOutcome, Result, Store,
    StoreError, User,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{NoTls, Row, types::ToSql};

/// Attempts of a statement that met a [`retryable`] failure.
const ATTEMPTS: u32 = 4;

#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    acquire_timeout: Duration,
    statement_timeout: Duration,
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
            | Fault::StatementTimeout(_) => StoreError::Unavailable(Arc::new(fault)),
            Fault::Pool(_) | Fault::Unexpected(_) => StoreError::Database(Arc::new(fault)),
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
    })
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER:PASSWORD@HOST:PORT/NAME`, with libpq's parameters)
    /// and brings the schema up to date.
    pub async fn open(url: &str, options: &PoolOptions) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::InvalidUrl(Arc::new(e)))?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("handstamp");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
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
        match tokio::time::timeout(self.acquire_timeout, self.pool.get()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(Fault::Pool(e).into()),
            Err(_) => Err(Fault::AcquireTimeout(self.acquire_timeout).into()),
        }
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
        self.query_opt(sql::USER_BY_NAME, &[&username], user_from)
            .await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.query_opt(sql::USER_BY_ID, &[&id], user_from).await
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
        let params: [&(dyn ToSql + Sync); 4] = [
            &token.jti,
            &token.user_id,
            &token.created_at,
            &token.expires_at,
        ];
        self.execute(sql::OUTSTAND, &params).await?;
        Ok(())
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool> {
        let listed = self
            .query_opt(sql::IS_BLACKLISTED, &[&jti], |r| r.try_get(0))
            .await?;
        Ok(listed.unwrap_or(false))
    }

    async fn blacklist(&self, token: &Outstanding, now: i64) -> Result<bool> {
        let params: [&(dyn ToSql + Sync); 3] = [&token.jti, &token.expires_at, &now];
        Ok(!self.query(sql::BLACKLIST, &params).await?.is_empty())
    }

    async fn refresh(&self, r: Refresh, now: i64) -> Result<RefreshOutcome> {
        let new = r.new.as_ref();
        let (new_jti, new_user, new_created, new_expires) = (
            new.map(|t| t.jti.as_str()),
            new.and_then(|t| t.user_id),
            new.and_then(|t| t.created_at),
            new.map(|t| t.expires_at),
        );
        let params: [&(dyn ToSql + Sync); 9] = [
            &r.old.jti,
            &r.old.expires_at,
            &now,
            &r.user_id,
            &r.blacklist_old,
            &new_jti,
            &new_user,
            &new_created,
            &new_expires,
        ];
        let outcome = self
            .query_opt(sql::REFRESH, &params, |row| row.try_get::<_, String>(0))
            .await?;
        match outcome.as_deref() {
            Some("done") => Ok(RefreshOutcome::Done),
            Some("blacklisted") => Ok(RefreshOutcome::Blacklisted),
            Some("no_active_user") => Ok(RefreshOutcome::NoActiveUser),
            other => Err(Fault::Unexpected(other.map(str::to_owned)).into()),
        }
    }

    async fn flush_expired(&self, now: i64) -> Result<u64> {
        let count = self
            .query_opt(sql::FLUSH_EXPIRED, &[&now], |r| r.try_get::<_, i64>(0))
            .await?;
        Ok(count.unwrap_or(0) as u64)
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        self.execute(sql::ADD_SECRET, &[&name, &candidate]).await?;
        let value = self
            .query_opt(sql::SECRET, &[&name], |r| r.try_get::<_, Vec<u8>>(0))
            .await?;
        value.ok_or_else(|| Fault::Unexpected(None).into())
    }
}

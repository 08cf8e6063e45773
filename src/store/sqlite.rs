//! SQLite: one writer connection (SQLite admits one writer at a time, so queueing here beats
//! retrying on SQLITE_BUSY) and a pool of readers, in WAL mode with fsync on every commit.

use super::{NewUser, Outstanding, Refresh, RefreshOutcome, Result, Store, StoreError, User};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite, Transaction};
use std::{str::FromStr, time::Duration};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The user columns, in [`UserRow`]'s order, as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "id, username, password, is_active, is_staff, is_superuser, date_joined, last_login"
    };
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    password: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    date_joined: i64,
    last_login: Option<i64>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            password: r.password,
            is_active: r.is_active,
            is_staff: r.is_staff,
            is_superuser: r.is_superuser,
            date_joined: r.date_joined,
            last_login: r.last_login,
        }
    }
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before we answer, so a 200 survives a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { writer, readers })
    }

    /// Runs an UPDATE or DELETE on one user by name; an unknown name is an error.
    async fn change_user(&self, sql: &str, username: &str, value: Option<&str>) -> Result<()> {
        let mut query = sqlx::query(sql);
        if let Some(v) = value {
            query = query.bind(v);
        }
        let done = query.bind(username).execute(&self.writer).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownUser(username.to_owned()));
        }
        Ok(())
    }
}

/// Inserts `token` unless its jti is already recorded (simplejwt's get_or_create).
async fn record(tx: &mut Transaction<'_, Sqlite>, token: &Outstanding) -> Result<()> {
    sqlx::query(
        "INSERT INTO outstanding_tokens (jti, user_id, token, created_at, expires_at)
         VALUES (?, (SELECT id FROM users WHERE id = ?), ?, ?, ?)
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&token.jti)
    .bind(token.user_id)
    .bind(&token.token)
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Blacklists a recorded token; false if it already was.
async fn add_to_blacklist(tx: &mut Transaction<'_, Sqlite>, jti: &str, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO blacklisted_tokens (token_id, blacklisted_at)
         SELECT id, ? FROM outstanding_tokens WHERE jti = ?
         ON CONFLICT (token_id) DO NOTHING",
    )
    .bind(now)
    .bind(jti)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

const IS_BLACKLISTED: &str = "SELECT EXISTS (SELECT 1 FROM blacklisted_tokens b
     JOIN outstanding_tokens o ON o.id = b.token_id WHERE o.jti = ?)";

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.readers.execute("SELECT 1").await?;
        Ok(())
    }

    async fn create_user(&self, user: NewUser, now: i64) -> Result<User> {
        let sql = concat!(
            "INSERT INTO users (username, password, is_staff, is_superuser, date_joined)
             VALUES (?, ?, ?, ?, ?) RETURNING ",
            user_columns!()
        );
        let row = sqlx::query_as::<_, UserRow>(sql)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(user.is_staff)
            .bind(user.is_superuser)
            .bind(now)
            .fetch_one(&self.writer)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) if db.is_unique_violation() => StoreError::DuplicateUser(user.username),
                _ => StoreError::Database(e),
            })?;
        Ok(row.into())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?");
        let row = sqlx::query_as::<_, UserRow>(sql)
            .bind(username)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(User::from))
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
        let row = sqlx::query_as::<_, UserRow>(sql)
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(User::from))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users ORDER BY id");
        let rows = sqlx::query_as::<_, UserRow>(sql)
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<()> {
        let sql = "UPDATE users SET password = ? WHERE username = ?";
        self.change_user(sql, username, Some(password_hash)).await
    }

    async fn set_active(&self, username: &str, active: bool) -> Result<()> {
        let sql = if active {
            "UPDATE users SET is_active = 1 WHERE username = ?"
        } else {
            "UPDATE users SET is_active = 0 WHERE username = ?"
        };
        self.change_user(sql, username, None).await
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        let sql = "DELETE FROM users WHERE username = ?";
        self.change_user(sql, username, None).await
    }

    async fn record_login(&self, user_id: i64, now: i64) -> Result<()> {
        sqlx::query("UPDATE users SET last_login = ? WHERE id = ?")
            .bind(now)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn outstand(&self, token: &Outstanding) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        record(&mut tx, token).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool> {
        let found: bool = sqlx::query_scalar(IS_BLACKLISTED)
            .bind(jti)
            .fetch_one(&self.readers)
            .await?;
        Ok(found)
    }

    async fn blacklist(&self, token: &Outstanding, now: i64) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        record(&mut tx, token).await?;
        let added = add_to_blacklist(&mut tx, &token.jti, now).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn refresh(&self, r: Refresh<'_>, now: i64) -> Result<RefreshOutcome> {
        let mut tx = self.writer.begin().await?;
        let blacklisted = if r.blacklist_old {
            record(&mut tx, r.old).await?;
            !add_to_blacklist(&mut tx, &r.old.jti, now).await?
        } else {
            sqlx::query_scalar(IS_BLACKLISTED)
                .bind(&r.old.jti)
                .fetch_one(&mut *tx)
                .await?
        };
        if blacklisted {
            return Ok(RefreshOutcome::Blacklisted);
        }
        if let Some(user_id) = r.user_id {
            let active: Option<bool> =
                sqlx::query_scalar("SELECT is_active FROM users WHERE id = ?")
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if active != Some(true) {
                return Ok(RefreshOutcome::NoActiveUser);
            }
        }
        if let Some(new) = r.new {
            record(&mut tx, new).await?;
        }
        tx.commit().await?;
        Ok(RefreshOutcome::Done)
    }

    async fn flush_expired(&self, now: i64) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "DELETE FROM blacklisted_tokens WHERE token_id IN
             (SELECT id FROM outstanding_tokens WHERE expires_at < ?)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM outstanding_tokens WHERE expires_at < ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.writer)
        .await?;
        let value = sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.writer)
            .await?;
        Ok(value)
    }
}

//! Persistence behind one trait: users, outstanding and blacklisted refresh tokens, and the
//! generated signing secret. Knows nothing of HTTP. Two engines: SQLite (embedded, the default)
//! and PostgreSQL (many instances on one database); `tests/api/store_contract.rs` holds both to
//! the same behaviour.

mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password: PasswordHash,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: i64,
    pub last_login: Option<i64>,
}

/// A password hash (PHC string), never the password. Never printed: `Debug` shows `<hash>`,
/// so a logged `User` does not hand out what an offline attack needs.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for PasswordHash {
    fn from(hash: String) -> Self {
        PasswordHash(hash)
    }
}

impl From<&str> for PasswordHash {
    fn from(hash: &str) -> Self {
        PasswordHash(hash.to_owned())
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hash>")
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: PasswordHash,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// A refresh token as the blacklist app records it.
#[derive(Debug, Clone)]
pub struct Outstanding {
    pub jti: String,
    /// The user it was issued to.
    pub user_id: Option<i64>,
    pub created_at: Option<i64>,
    pub expires_at: i64,
}

/// What a refresh asks of the store, all in one transaction.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub old: Outstanding,
    /// Blacklist `old` (rotation with blacklisting); otherwise it is only checked.
    pub blacklist_old: bool,
    /// The user named by the token, who must still exist and be active.
    pub user_id: Option<i64>,
    /// The rotated refresh token to record.
    pub new: Option<Outstanding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Done,
    Blacklisted,
    NoActiveUser,
}

/// The cause of a store failure, kept for the logs. Shared, because the writer answers every
/// job of a failed batch with the same error.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Store-neutral: each engine sorts its own errors into these, keeping them as the source.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("a user named {0:?} already exists")]
    DuplicateUser(String),
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://USER@HOST/NAME")]
    UnsupportedUrl(String),
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] Cause),
    #[error("database error: {0}")]
    Database(#[source] Cause),
    #[error("database migration failed: {0}")]
    Migrate(#[source] Cause),
    #[error("the database writer has stopped")]
    WriterGone,
    /// The file or the disk failing, not the query: full, unwritable, moved or replaced, locked
    /// past the timeout. Passes once its cause (kept here) is gone; nothing was written.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Whether the database answers, is still the file opened, and takes writes (when the
    /// last write failed, a probe write tells whether it does again).
    async fn ping(&self) -> Result<()>;
    /// Commits a real write, so that a read-only file or a full disk shows.
    async fn check_writable(&self) -> Result<()>;

    async fn create_user(&self, user: NewUser, now: i64) -> Result<User>;
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn set_password(&self, username: &str, password_hash: &PasswordHash) -> Result<()>;
    async fn set_active(&self, username: &str, active: bool) -> Result<()>;
    async fn delete_user(&self, username: &str) -> Result<()>;
    async fn record_login(&self, user_id: i64, now: i64) -> Result<()>;

    /// Records a newly issued refresh token.
    async fn outstand(&self, token: &Outstanding) -> Result<()>;
    async fn is_blacklisted(&self, jti: &str) -> Result<bool>;
    /// Blacklists `token`; false if it already was.
    async fn blacklist(&self, token: &Outstanding, now: i64) -> Result<bool>;
    /// Checks and rotates a refresh token atomically: when this returns `Done`, the change is
    /// durable and no concurrent refresh of the same token can also succeed.
    async fn refresh(&self, refresh: Refresh, now: i64) -> Result<RefreshOutcome>;
    /// Deletes tokens that expired before `now`, with their blacklist rows; returns how many.
    async fn flush_expired(&self, now: i64) -> Result<u64>;

    /// The secret stored under `name`, storing `candidate` first if there is none yet. Every
    /// instance sharing the database ends up with the same value.
    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>>;
}

/// A connection pool's bounds (PostgreSQL; SQLite has one writer and a reader per thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections held open.
    pub max_connections: usize,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long a caller waits for a connection before the store is `Unavailable`.
    pub acquire_timeout: Duration,
    /// How long one statement may wait for its answer (a database that stopped answering
    /// without closing its connections) before the store is `Unavailable`.
    pub statement_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// A database URL, which may hold a password: shown (`Debug`, `Display`) with the password
/// as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        DatabaseUrl(url.to_owned())
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url)
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redacted(&self.0))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redacted(&self.0))
    }
}

/// `url` with the password of its user part, and any `password=` parameter, as `***`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Opens (creating and migrating when needed) the database at `url`, with the default pool.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, &PoolOptions::default()).await
}

/// Opens (creating and migrating when needed) the database at `url`: `sqlite://PATH`, or
/// `postgres://` (also `postgresql://`) with a pool bounded by `pool`.
pub async fn open_with(url: &str, pool: &PoolOptions) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        Ok(Arc::new(SqliteStore::open(path).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, pool).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redacted(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_password_is_never_shown() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/auth",
                "postgres://app:***@db:5432/auth",
            ),
            ("postgres://app@db/auth", "postgres://app@db/auth"),
            (
                "postgres://a:p@ss@db/x?sslmode=disable",
                "postgres://a:***@db/x?sslmode=disable",
            ),
            (
                "postgresql://db/x?user=a&password=p",
                "postgresql://db/x?user=a&password=***",
            ),
            ("sqlite://var/db.sqlite3", "sqlite://var/db.sqlite3"),
        ] {
            let url = DatabaseUrl::from(url);
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), format!("{shown:?}"));
        }
    }

    #[test]
    fn a_users_debug_never_shows_the_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let user = User {
            id: 1,
            username: "alice".into(),
            password: hash.into(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: 0,
            last_login: None,
        };
        let shown = format!("{user:?} {user:#?}");
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(!shown.contains("aGFzaGhhc2hoYXNo"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}

//! Persistence behind one trait: users, sessions (refresh-token families), outstanding and
//! blacklisted refresh tokens, failed logins, signing keys and the generated signing secret.
//! Knows nothing of HTTP. Two engines: SQLite (embedded, the default) and PostgreSQL (many
//! instances on one database).
//!
//! The rules of sessions live in the trait's contract (the methods' documentation), not in an
//! engine: every engine keeps them inside its own transactions. `contract.rs` holds the rule
//! tests at fixed times and `tests/api/store_contract.rs` the behaviour suite; both run on
//! every engine.

#[cfg(test)]
pub(crate) mod contract;
mod import;
mod none;
mod postgres;
mod sqlite;
mod throttle;

pub use import::{
    Import, ImportCounts, ImportMode, ImportOutcome, ImportedBlacklisting, ImportedUser,
    UserConflict,
};
pub use none::NoStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use throttle::{FailureCount, Limit};

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
    /// Set by "log out everywhere": tokens issued (`iat`) before it are refused.
    pub tokens_valid_after: Option<i64>,
}

impl User {
    /// Whether a token issued at `iat` was issued before "log out everywhere" (a token
    /// without `iat` counts as issued before it).
    pub fn revoked_token(&self, iat: Option<i64>) -> bool {
        issued_before(self.tokens_valid_after, iat)
    }
}

/// Whether a token issued at `iat` (none: unknown) was issued before `valid_after`, a user's
/// `tokens_valid_after`. The one reading of that column, for every engine.
pub fn issued_before(valid_after: Option<i64>, iat: Option<i64>) -> bool {
    valid_after.is_some_and(|after| iat.is_none_or(|iat| iat < after))
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

/// A signing key kept in the database. Its state follows from its times: pending (published,
/// not yet signing), active (signing), previous (verifying what it signed), retired (gone).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Empty for an HMAC key whose tokens carry no kid.
    pub kid: String,
    pub algorithm: String,
    /// PKCS#8 DER, or the HMAC secret.
    pub private_key: Vec<u8>,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub deactivated_at: Option<i64>,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<secret>")
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("deactivated_at", &self.deactivated_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl StoredKey {
    pub fn is_active(&self) -> bool {
        self.activated_at.is_some() && self.deactivated_at.is_none() && self.retired_at.is_none()
    }
}

/// A session: one login and every refresh token rotated from its token (a token family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Opaque, made by the service (128 random bits).
    pub id: String,
    pub user_id: i64,
    pub created_at: i64,
    pub last_refreshed_at: i64,
    /// When the session's newest refresh token expires.
    pub expires_at: i64,
    /// The client's address and User-Agent at login.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub revoked_at: Option<i64>,
}

/// What a login asks of the store, all in one transaction.
#[derive(Debug, Clone)]
pub struct Login {
    /// The new session (`revoked_at` is `None`).
    pub session: Session,
    /// The refresh token the login issues, which belongs to `session`.
    pub token: Outstanding,
    /// Set the user's `last_login` to the session's `created_at`.
    pub record_login: bool,
    /// Replace the user's password hash (an older format upgraded at this login).
    pub new_password: Option<PasswordHash>,
}

/// What a refresh asks of the store, all in one transaction.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// The token presented; `created_at` is its `iat`.
    pub old: Outstanding,
    /// Blacklist `old` (rotation with blacklisting); otherwise it is only checked.
    pub blacklist_old: bool,
    /// The user named by the token, who must still exist and be active.
    pub user_id: Option<i64>,
    /// The rotated refresh token to record, in `old`'s session.
    pub new: Option<Outstanding>,
    /// Seconds: a blacklisted token presented again this long or longer after it was
    /// blacklisted is a reuse that revokes its session; sooner, it is refused alone.
    pub reuse_interval: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Done,
    /// Refused: the token is blacklisted, its session revoked, or it was issued before the
    /// user's `tokens_valid_after`. Nothing was revoked by this refresh.
    Blacklisted,
    /// Refused as `Blacklisted`, and the token's session has been revoked for the reuse.
    Revoked,
    NoActiveUser,
}

/// What [`Store::flush_expired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Outstanding and blacklisted tokens (a token in both counts once).
    pub tokens: u64,
    pub sessions: u64,
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

    /// Records a newly issued refresh token, outside any session.
    async fn outstand(&self, token: &Outstanding) -> Result<()>;
    /// A login, in one transaction: creates `login.session`, records `login.token` in it, and
    /// with `record_login` sets the user's `last_login`. False, with nothing written, when the
    /// user no longer exists.
    async fn start_session(&self, login: Login) -> Result<bool>;
    async fn is_blacklisted(&self, jti: &str) -> Result<bool>;
    /// Blacklists `token` and, in the same transaction, revokes the session it belongs to (as
    /// [`Store::revoke_session`] does; also when the token was blacklisted already, so that a
    /// stale token of a session still ends it). False if the token was blacklisted already.
    async fn blacklist(&self, token: &Outstanding, now: i64) -> Result<bool>;
    /// Checks and rotates a refresh token atomically, in one transaction, in this order:
    /// 1. With `user_id`, the user must exist and be active, else `Blacklisted` when `old` is
    ///    blacklisted and `NoActiveUser` when not.
    /// 2. `Blacklisted` when `old`'s session is revoked, or `old` was issued (`created_at`)
    ///    before the user's `tokens_valid_after`.
    /// 3. When `old` is blacklisted: `Blacklisted`; but when it was blacklisted
    ///    `reuse_interval` seconds or more before `now` and belongs to a session, that session
    ///    is revoked (as [`Store::revoke_session`]) and the answer is `Revoked`. Either way the
    ///    transaction commits: a revocation is durable although the refresh is refused.
    /// 4. Otherwise `Done`: `old` is blacklisted when `blacklist_old`; `new` is recorded in
    ///    `old`'s session with `old` as its parent; the session's `last_refreshed_at` becomes
    ///    `now` and its `expires_at` the later of its own and `new`'s.
    ///
    /// When this returns, the change is durable; of concurrent refreshes of one token with
    /// `blacklist_old`, exactly one is `Done` (the others, being within the interval or not,
    /// see it blacklisted).
    async fn refresh(&self, refresh: Refresh, now: i64) -> Result<RefreshOutcome>;
    /// Deletes tokens that expired before `now`, with their blacklist rows, and sessions whose
    /// `expires_at` passed (revoked or not: their tokens have all expired).
    async fn flush_expired(&self, now: i64) -> Result<Flushed>;

    /// The user's live sessions (not revoked, `expires_at` after `now`), newest first.
    async fn sessions(&self, user_id: i64, now: i64) -> Result<Vec<Session>>;
    /// Revokes the user's live session `id`: sets its `revoked_at` and blacklists every one of
    /// its tokens that has not expired, so none refreshes again. False, with nothing changed,
    /// when the user has no such live session (unknown id, another user's, revoked or expired).
    async fn revoke_session(&self, user_id: i64, id: &str, now: i64) -> Result<bool>;
    /// "Log out everywhere", in one transaction: sets the user's `tokens_valid_after` to `now`
    /// and revokes every live session of theirs as [`Store::revoke_session`]; returns how many.
    async fn revoke_all_sessions(&self, user_id: i64, now: i64) -> Result<u64>;

    /// The secret stored under `name`, storing `candidate` first if there is none yet. Every
    /// instance sharing the database ends up with the same value.
    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>>;

    /// Every signing key kept, retired ones included, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>>;
    /// Adds `key` (pending). With `activate_if_none` it is also made the active key, but only
    /// when no key is active yet: of instances starting at once on an empty database, exactly
    /// one key ends up active and the others' candidates are not kept. False when nothing was
    /// added (the kid is taken, or a key is already active).
    async fn add_signing_key(&self, key: StoredKey, activate_if_none: bool) -> Result<bool>;
    /// Makes the unretired key `kid` the one that signs; the one that signed before stops at
    /// `now` and keeps verifying. False when there is no such key.
    async fn activate_signing_key(&self, kid: &str, now: i64) -> Result<bool>;
    /// Retires the key `kid` (never the active one): it is no longer published or trusted.
    /// False when there is no such unretired, inactive key.
    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool>;

    /// The failed logins on record for each of `keys`, in their order; a key with none, or
    /// whose record has expired, is `None`.
    async fn login_failures(&self, keys: &[String], now: i64) -> Result<Vec<Option<FailureCount>>>;
    /// Counts one failed login against each key under its limit, with
    /// [`FailureCount::after_failure`], atomically: concurrent failures on any instance all
    /// count. Records that have expired are deleted on the way.
    async fn login_failed(&self, keys: Vec<(String, Limit)>, now: i64) -> Result<()>;
    /// Forgets the failed logins counted against `key` (a successful login).
    async fn forget_login_failures(&self, key: &str) -> Result<()>;

    /// Brings in users with their ids, outstanding refresh tokens (in no session) and
    /// blacklist entries (a Django project's), all in one transaction: all or nothing. Which
    /// users are new, unchanged or clashing is [`import::plan`]'s rule. With clashes and no
    /// `keep_ours`, nothing is written and they are all answered. Tokens and blacklist entries
    /// already recorded are left as they are, so importing the same rows twice changes
    /// nothing the second time. The next user created gets an id above every imported one.
    /// With `dry_run`, everything is checked and counted and nothing is written.
    async fn import(&self, import: Import, mode: ImportMode) -> Result<ImportOutcome>;
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
            tokens_valid_after: None,
        };
        let shown = format!("{user:?} {user:#?}");
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(!shown.contains("aGFzaGhhc2hoYXNo"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}

//! `handstamp import-django`: reads a Django project's users and simplejwt's token blacklist
//! tables from its database (SQLite or PostgreSQL, opened read-only: nothing is ever written
//! there) and hands them to [`Store::import`], which writes them in one transaction.
//!
//! This is a source reader, not storage: it knows Django's schema (`auth_user` or a custom user
//! table, `token_blacklist_outstandingtoken`, `token_blacklist_blacklistedtoken`) and its ways
//! of storing times, and nothing of ours but the store's import types.

mod postgres;
mod sqlite;
mod time;

use crate::store::{
    DatabaseUrl, Import, ImportMode, ImportOutcome, ImportedBlacklisting, ImportedUser,
    Outstanding, Store, StoreError,
};

/// Django's default user table.
pub const USER_TABLE: &str = "auth_user";
/// simplejwt's token_blacklist app's tables.
const OUTSTANDING: &str = "token_blacklist_outstandingtoken";
const BLACKLISTED: &str = "token_blacklist_blacklistedtoken";

#[derive(Debug, thiserror::Error)]
pub enum DjangoImportError {
    #[error(
        "unsupported Django database URL {0}: expected sqlite://PATH or postgres://USER@HOST/NAME"
    )]
    UnsupportedUrl(DatabaseUrl),
    #[error("invalid user table name {0:?}: expected a plain SQL identifier (letters, digits, _)")]
    TableName(String),
    #[error("the Django database {url} has no table {table:?}")]
    NoUserTable { url: DatabaseUrl, table: String },
    /// The source could not be read; the reason is the driver's message with its causes.
    #[error("cannot read the Django database {url}: {reason}")]
    Read { url: DatabaseUrl, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was read from a Django database.
#[derive(Debug, Default)]
pub struct Read {
    pub import: Import,
    /// Refresh tokens already expired there, left out: none of them can be used again.
    pub expired: u64,
}

/// An import's outcome, with what was left out on the way.
#[derive(Debug)]
pub struct Report {
    pub outcome: ImportOutcome,
    pub expired: u64,
}

/// Reads the Django database at `source` and imports it into `store` (see [`Store::import`]).
pub async fn import_django(
    source: &str,
    user_table: &str,
    store: &dyn Store,
    mode: ImportMode,
) -> Result<Report, DjangoImportError> {
    let read = read(source, user_table, mode.now).await?;
    let outcome = store.import(read.import, mode).await?;
    Ok(Report {
        outcome,
        expired: read.expired,
    })
}

/// Reads users (from `user_table`) and the unexpired refresh tokens at `now` from the Django
/// database at `source`, `sqlite://PATH` or `postgres://...`, in one read-only snapshot.
pub async fn read(source: &str, user_table: &str, now: i64) -> Result<Read, DjangoImportError> {
    check_table_name(user_table)?;
    let url = DatabaseUrl::from(source);
    let rows = if let Some(path) = source.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path).to_owned();
        let table = user_table.to_owned();
        let read = tokio::task::spawn_blocking(move || sqlite::read(&path, &table)).await;
        read.map_err(|e| failed(&url, &e))?
    } else if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        postgres::read(source, user_table).await
    } else {
        return Err(DjangoImportError::UnsupportedUrl(url));
    };
    let rows = rows.map_err(|e| match e {
        SourceError::NoTable(table) => DjangoImportError::NoUserTable {
            url: url.clone(),
            table,
        },
        SourceError::Failed(error) => failed(&url, &*error),
    })?;
    Ok(rows.into_read(now))
}

/// Django's user table name goes into SQL text (quoted), so it must be a plain identifier.
fn check_table_name(table: &str) -> Result<(), DjangoImportError> {
    let mut chars = table.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && table.len() <= 63;
    match plain {
        true => Ok(()),
        false => Err(DjangoImportError::TableName(table.to_owned())),
    }
}

fn failed(url: &DatabaseUrl, error: &(dyn std::error::Error + 'static)) -> DjangoImportError {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    DjangoImportError::Read {
        url: url.clone(),
        reason,
    }
}

/// Why a source could not be read.
#[derive(Debug)]
enum SourceError {
    /// The user table is missing.
    NoTable(String),
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for SourceError {
    fn from(error: E) -> Self {
        SourceError::Failed(Box::new(error))
    }
}

/// The rows as a source reader finds them, times already in Unix seconds.
#[derive(Debug, Default)]
struct Rows {
    users: Vec<ImportedUser>,
    tokens: Vec<Outstanding>,
    blacklisted: Vec<ImportedBlacklisting>,
}

impl Rows {
    /// Leaves out the tokens expired at `now`.
    fn into_read(self, now: i64) -> Read {
        let live = |expires_at: i64| expires_at > now;
        let before = self.tokens.len();
        let tokens: Vec<_> = self
            .tokens
            .into_iter()
            .filter(|t| live(t.expires_at))
            .collect();
        let blacklisted = self
            .blacklisted
            .into_iter()
            .filter(|b| live(b.expires_at))
            .collect();
        Read {
            expired: (before - tokens.len()) as u64,
            import: Import {
                users: self.users,
                tokens,
                blacklisted,
            },
        }
    }
}

/// The user columns read, in this order, from the user table.
const USER_COLUMNS: &str =
    "id, username, password, is_active, is_staff, is_superuser, date_joined, last_login";

fn users_query(table: &str) -> String {
    format!("SELECT {USER_COLUMNS} FROM \"{table}\" ORDER BY id")
}

const TOKENS_QUERY: &str = "SELECT jti, user_id, created_at, expires_at
     FROM token_blacklist_outstandingtoken ORDER BY id";
const BLACKLISTED_QUERY: &str = "SELECT o.jti, o.expires_at, b.blacklisted_at
     FROM token_blacklist_blacklistedtoken b
     JOIN token_blacklist_outstandingtoken o ON o.id = b.token_id ORDER BY b.id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_name_the_user_table() {
        for good in ["auth_user", "accounts_user", "_users2", "U"] {
            assert!(check_table_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "2users",
            "auth_user;",
            "a\"b",
            "public.users",
            "a b",
            &long,
        ] {
            assert!(check_table_name(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_unknown_scheme_or_table_name_is_refused_before_anything_is_read() {
        let error = read("mysql://db/app", USER_TABLE, 0).await.unwrap_err();
        assert!(
            matches!(error, DjangoImportError::UnsupportedUrl(_)),
            "{error}"
        );
        let error = read("sqlite://x", "users; DROP", 0).await.unwrap_err();
        assert!(matches!(error, DjangoImportError::TableName(_)), "{error}");
    }
}

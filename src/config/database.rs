//! The `[database]` table: where the store is and, for PostgreSQL, its connection pool.

use super::{ConfigError, count, invalid, positive_duration, text};
use crate::store::{DatabaseUrl, PoolOptions};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The table: every key once, with its parser; the defaults in `Default`; `check` for what
/// takes more than one key. In the environment each key is `HANDSTAMP_DATABASE_<KEY>`
/// (`HANDSTAMP_DATABASE_URL`, `HANDSTAMP_DATABASE_MAX_CONNECTIONS`, ...); `--database`
/// overrides `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/NAME`.
    #[serde(deserialize_with = "url")]
    pub url: DatabaseUrl,
    /// PostgreSQL: the most connections this instance holds open.
    #[serde(deserialize_with = "count")]
    pub max_connections: usize,
    /// PostgreSQL: how long opening one connection may take.
    #[serde(deserialize_with = "positive_duration")]
    pub connect_timeout: Duration,
    /// PostgreSQL: how long a request waits for a connection (all in use, or the database
    /// down) before it is answered 503.
    #[serde(deserialize_with = "positive_duration")]
    pub acquire_timeout: Duration,
    /// PostgreSQL: how long a statement may wait for its answer (a database that hangs without
    /// closing its connections) before the request is answered 503.
    #[serde(deserialize_with = "positive_duration")]
    pub statement_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        let pool = PoolOptions::default();
        DatabaseSettings {
            url: DatabaseUrl::from("sqlite://handstamp.sqlite3"),
            max_connections: pool.max_connections,
            connect_timeout: pool.connect_timeout,
            acquire_timeout: pool.acquire_timeout,
            statement_timeout: pool.statement_timeout,
        }
    }
}

fn url<'de, D: Deserializer<'de>>(d: D) -> Result<DatabaseUrl, D::Error> {
    text(d).map(DatabaseUrl::from)
}

impl DatabaseSettings {
    /// The pool as the store takes it.
    pub fn pool(&self) -> PoolOptions {
        PoolOptions {
            max_connections: self.max_connections,
            connect_timeout: self.connect_timeout,
            acquire_timeout: self.acquire_timeout,
            statement_timeout: self.statement_timeout,
        }
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.url.as_str().trim().is_empty() {
            return Err(invalid("url", "must name a database"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::from_toml;
    use crate::config::Settings;
    use std::time::Duration;

    #[test]
    fn the_pool_is_read_and_checked() {
        let s = Settings::default();
        assert_eq!(s.database.url.as_str(), "sqlite://handstamp.sqlite3");
        assert_eq!(s.database.max_connections, 16);
        assert_eq!(s.database.acquire_timeout, Duration::from_secs(5));
        let s = from_toml(
            "[database]\nurl = \"postgres://h@db/x\"\nmax_connections = 4\n\
             connect_timeout = \"2s\"\nacquire_timeout = 1\nstatement_timeout = \"3s\"\n",
        )
        .unwrap();
        assert_eq!(s.database.url.as_str(), "postgres://h@db/x");
        let pool = s.database.pool();
        assert_eq!(pool.max_connections, 4);
        assert_eq!(pool.connect_timeout, Duration::from_secs(2));
        assert_eq!(pool.acquire_timeout, Duration::from_secs(1));
        assert_eq!(pool.statement_timeout, Duration::from_secs(3));
        for line in [
            "max_connections = 0",
            "connect_timeout = \"0s\"",
            "acquire_timeout = \"soon\"",
            "statement_timeout = 0",
            "url = \"\"",
        ] {
            let err = from_toml(&format!("[database]\n{line}\n"))
                .unwrap_err()
                .to_string();
            let key = line.split(' ').next().unwrap();
            assert!(err.contains(&format!("`{key}`")), "{line}: {err}");
        }
    }

    #[test]
    fn a_password_in_the_url_never_shows() {
        let s = from_toml("[database]\nurl = \"postgres://app:hunter2@db:5432/auth\"\n").unwrap();
        let shown = format!("{s:?} {}", s.database.url);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/auth"), "{shown}");
    }
}

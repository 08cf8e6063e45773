//! A fresh PostgreSQL database per test, on the server `TEST_POSTGRES_URL` names; without that
//! variable the PostgreSQL tests say once that they are skipped (and fail under CI, which must
//! run them).

use std::io::Write;
use std::sync::Once;
use tokio_postgres::NoTls;

/// The variable naming the server the tests may create databases on, such as
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const URL_VAR: &str = "TEST_POSTGRES_URL";

/// The test server's URL, or `None` after a notice that PostgreSQL tests are skipped.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL tests: set {URL_VAR}"
            );
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Straight to stderr: the test harness captures eprintln!'s output.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL tests skipped: set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
                );
            });
            None
        }
    }
}

/// `url` naming the database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

/// Runs `sql` on the database at `url`, on a connection of its own.
pub async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = connection.await;
}

/// The rows of `sql` on the database at `url`, each column as text.
pub async fn rows(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let messages = client.simple_query(sql).await.unwrap();
    drop(client);
    let _ = connection.await;
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// A database of its own for one test, dropped (connections and all) when this is.
pub struct TestDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database on the server `TEST_POSTGRES_URL` names; `None` (with a notice)
    /// when it is not set.
    pub async fn create() -> Option<TestDatabase> {
        let server = server_url()?;
        Some(Self::create_on(&server).await)
    }

    /// A new, empty database on the server at `server`.
    pub async fn create_on(server: &str) -> TestDatabase {
        let name = format!("handstamp_test_{}", uuid::Uuid::new_v4().simple());
        execute(server, &format!("CREATE DATABASE {name}")).await;
        TestDatabase {
            url: with_database(server, &name),
            server: server.to_owned(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // A runtime of its own: this may run inside a test's runtime, or after it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok((client, connection)) = tokio_postgres::connect(&server, NoTls).await else {
                    return;
                };
                let connection = tokio::spawn(connection);
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = client.batch_execute(&sql).await;
                drop(client);
                let _ = connection.await;
            });
        });
        let _ = dropped.join();
    }
}

//! SQLite through rusqlite.
//!
//! Reads run in place, on one connection per thread: a lookup by key takes microseconds, less
//! than handing it to another thread would. Writes go to a single writer thread, which commits
//! whatever has queued up meanwhile in one transaction and one fsync (group commit), and answers
//! each caller only after that commit. WAL mode lets the reads go on during a commit. Between
//! commits the writer holds a read transaction open, which spares the readers' system calls (see
//! [`hold_newest_snapshot`]).

use super::{NewUser, Outstanding, Refresh, RefreshOutcome, Result, Store, StoreError, User};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};
use rusqlite_migration::{M, Migrations};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, mpsc};
use std::time::Duration;
use tokio::sync::oneshot;

/// The most writes committed together.
const MAX_BATCH: usize = 512;

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![M::up(include_str!(
        "../../migrations/sqlite/0001_initial.sql"
    ))])
});

/// The user columns, in [`user_from`]'s order; a macro so that queries are string constants
/// (the lookups on the hot path should not format SQL).
macro_rules! user_columns {
    () => {
        "id, username, password, is_active, is_staff, is_superuser, date_joined, last_login"
    };
}

fn user_from(row: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        password: row.get(2)?,
        is_active: row.get(3)?,
        is_staff: row.get(4)?,
        is_superuser: row.get(5)?,
        date_joined: row.get(6)?,
        last_login: row.get(7)?,
    })
}

#[derive(Debug)]
pub struct SqliteStore {
    /// Tells this store's reader connections apart from other stores' on the same thread.
    id: u64,
    path: PathBuf,
    writer: mpsc::Sender<Box<dyn Job>>,
}

impl SqliteStore {
    /// Opens (creating and migrating when needed) the database file at `path`.
    pub async fn open(path: &str) -> Result<Self> {
        let path = PathBuf::from(path.split('?').next().unwrap_or(path));
        let writer_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_writer(&writer_path))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        let (writer, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, jobs))
            .map_err(|e| StoreError::Database(e.to_string()))?;
        static IDS: AtomicU64 = AtomicU64::new(0);
        Ok(SqliteStore {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            path,
            writer,
        })
    }

    /// Runs `f` on this thread's reader connection, opening it on first use.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        thread_local! {
            static READERS: RefCell<Vec<(u64, Connection)>> = const { RefCell::new(Vec::new()) };
        }
        READERS.with_borrow_mut(|readers| {
            let index = match readers.iter().position(|(id, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    readers.push((self.id, open_reader(&self.path)?));
                    readers.len() - 1
                }
            };
            Ok(f(&readers[index].1)?)
        })
    }

    /// Queues `work` for the writer and waits until it is committed.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job = Write {
            work: Some(work),
            outcome: None,
            reply,
        };
        self.writer
            .send(Box::new(job))
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// An UPDATE or DELETE of one user by name; an unknown name is an error.
    async fn change_user(
        &self,
        sql: &'static str,
        username: &str,
        value: Option<String>,
    ) -> Result<()> {
        let name = username.to_owned();
        let changed = self
            .write(move |tx| match value {
                Some(v) => tx.execute(sql, (v, name)),
                None => tx.execute(sql, [name]),
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::UnknownUser(username.to_owned()));
        }
        Ok(())
    }
}

fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit is on disk before anyone hears of it, so a 200 survives a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    MIGRATIONS
        .to_latest(&mut conn)
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(conn)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// A write waiting for the writer thread.
trait Job: Send {
    /// Does the work inside the batch's transaction.
    fn apply(&mut self, tx: &Transaction) -> rusqlite::Result<()>;
    /// Answers the caller once the batch is committed, or has failed.
    fn finish(self: Box<Self>, committed: Result<()>);
}

struct Write<T, F> {
    work: Option<F>,
    outcome: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnOnce(&Transaction) -> rusqlite::Result<T> + Send,
{
    fn apply(&mut self, tx: &Transaction) -> rusqlite::Result<()> {
        let work = self.work.take().expect("a job is applied once");
        self.outcome = Some(work(tx)?);
        Ok(())
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let Write { outcome, reply, .. } = *self;
        let result = committed.and_then(|()| outcome.ok_or(StoreError::WriterGone));
        let _ = reply.send(result);
    }
}

/// Commits whatever has queued up, one transaction at a time, until every sender is gone.
fn write_loop(mut conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>) {
    hold_newest_snapshot(&conn);
    while let Ok(first) = jobs.recv() {
        release_snapshot(&conn);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = commit(&mut conn, &mut batch);
        hold_newest_snapshot(&conn);
        if let Err(error) = &committed {
            tracing::error!(%error, jobs = batch.len(), "write batch failed");
        }
        for job in batch {
            job.finish(committed.clone());
        }
    }
    release_snapshot(&conn);
}

/// Opens a read transaction on the newest snapshot and keeps it open until [`release_snapshot`].
///
/// Why: SQLite's unix VFS counts the WAL's shared read locks per process, and takes a system lock
/// only for the first holder. While the writer holds this one, the readers' transactions, which
/// start on the same (newest) snapshot, take and drop their read locks without the two `fcntl`
/// calls each would otherwise cost. Every read is still its own transaction: nothing gets staler.
/// It is released before each batch, so it never keeps the writer from restarting the WAL, and
/// being on the newest snapshot it never holds a checkpoint back.
fn hold_newest_snapshot(conn: &Connection) {
    let opened = conn.execute_batch("BEGIN; SELECT 1 FROM sqlite_schema LIMIT 1;");
    if let Err(error) = opened {
        tracing::debug!(%error, "cannot hold a read snapshot");
        release_snapshot(conn);
    }
}

fn release_snapshot(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("COMMIT");
    }
}

fn commit(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        job.apply(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn is_blacklisted(conn: &Connection, jti: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM blacklisted_tokens WHERE jti = ?)")?
        .query_row([jti], |row| row.get(0))
}

/// Blacklists `jti`; false if it already was.
fn add_to_blacklist(tx: &Transaction, token: &Outstanding, now: i64) -> rusqlite::Result<bool> {
    let added = tx
        .prepare_cached(
            "INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at) VALUES (?, ?, ?)
             ON CONFLICT (jti) DO NOTHING",
        )?
        .execute((&token.jti, token.expires_at, now))?;
    Ok(added == 1)
}

fn record(tx: &Transaction, token: &Outstanding) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO outstanding_tokens (jti, user_id, created_at, expires_at)
         VALUES (?, (SELECT id FROM users WHERE id = ?), ?, ?)
         ON CONFLICT (jti) DO NOTHING",
    )?
    .execute((
        &token.jti,
        token.user_id,
        token.created_at,
        token.expires_at,
    ))?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
    }

    async fn create_user(&self, user: NewUser, now: i64) -> Result<User> {
        let name = user.username.clone();
        let created = self
            .write(move |tx| {
                let sql = concat!(
                    "INSERT INTO users (username, password, is_staff, is_superuser, date_joined)
                     VALUES (?, ?, ?, ?, ?) RETURNING ",
                    user_columns!()
                );
                let params = (
                    &user.username,
                    &user.password_hash,
                    user.is_staff,
                    user.is_superuser,
                    now,
                );
                match tx.query_row(sql, params, user_from) {
                    Ok(user) => Ok(Some(user)),
                    Err(e) if is_unique_violation(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        created.ok_or(StoreError::DuplicateUser(name))
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.read(|c| {
            let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?");
            c.prepare_cached(sql)?
                .query_row([username], user_from)
                .optional()
        })
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.read(|c| {
            let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
            c.prepare_cached(sql)?.query_row([id], user_from).optional()
        })
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            let sql = concat!("SELECT ", user_columns!(), " FROM users ORDER BY id");
            let mut statement = c.prepare(sql)?;
            let users = statement.query_map([], user_from)?;
            users.collect()
        })
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<()> {
        let sql = "UPDATE users SET password = ? WHERE username = ?";
        self.change_user(sql, username, Some(password_hash.to_owned()))
            .await
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
        self.change_user("DELETE FROM users WHERE username = ?", username, None)
            .await
    }

    async fn record_login(&self, user_id: i64, now: i64) -> Result<()> {
        self.write(move |tx| {
            tx.prepare_cached("UPDATE users SET last_login = ? WHERE id = ?")?
                .execute((now, user_id))
        })
        .await?;
        Ok(())
    }

    async fn outstand(&self, token: &Outstanding) -> Result<()> {
        let token = token.clone();
        self.write(move |tx| record(tx, &token)).await
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool> {
        self.read(|c| is_blacklisted(c, jti))
    }

    async fn blacklist(&self, token: &Outstanding, now: i64) -> Result<bool> {
        let token = token.clone();
        self.write(move |tx| add_to_blacklist(tx, &token, now))
            .await
    }

    async fn refresh(&self, r: Refresh, now: i64) -> Result<RefreshOutcome> {
        self.write(move |tx| {
            if let Some(user_id) = r.user_id {
                let active: Option<bool> = tx
                    .prepare_cached("SELECT is_active FROM users WHERE id = ?")?
                    .query_row([user_id], |row| row.get(0))
                    .optional()?;
                if active != Some(true) {
                    // A blacklisted token is reported as such first, as simplejwt does.
                    return Ok(if is_blacklisted(tx, &r.old.jti)? {
                        RefreshOutcome::Blacklisted
                    } else {
                        RefreshOutcome::NoActiveUser
                    });
                }
            }
            let blacklisted = if r.blacklist_old {
                !add_to_blacklist(tx, &r.old, now)?
            } else {
                is_blacklisted(tx, &r.old.jti)?
            };
            if blacklisted {
                return Ok(RefreshOutcome::Blacklisted);
            }
            if let Some(new) = &r.new {
                record(tx, new)?;
            }
            Ok(RefreshOutcome::Done)
        })
        .await
    }

    async fn flush_expired(&self, now: i64) -> Result<u64> {
        self.write(move |tx| {
            let expired: i64 = tx.query_row(
                "SELECT COUNT(*) FROM (SELECT jti FROM outstanding_tokens WHERE expires_at < ?1
                 UNION SELECT jti FROM blacklisted_tokens WHERE expires_at < ?1)",
                [now],
                |row| row.get(0),
            )?;
            tx.execute("DELETE FROM outstanding_tokens WHERE expires_at < ?", [now])?;
            tx.execute("DELETE FROM blacklisted_tokens WHERE expires_at < ?", [now])?;
            Ok(expired as u64)
        })
        .await
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        let (name, candidate) = (name.to_owned(), candidate.to_vec());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (&name, &candidate),
            )?;
            tx.query_row("SELECT value FROM secrets WHERE name = ?", [&name], |row| {
                row.get(0)
            })
        })
        .await
    }
}

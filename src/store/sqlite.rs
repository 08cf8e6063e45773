//! SQLite through rusqlite.
//!
//! Reads run in place, on one connection per thread: a lookup by key takes microseconds, less
//! than handing it to another thread would. Writes go to a single writer thread, which commits
//! whatever has queued up meanwhile in one transaction and one fsync (group commit), and answers
//! each caller only after that commit. WAL mode lets the reads go on during a commit. Between
//! commits the writer holds a read transaction open, which spares the readers' system calls (see
//! [`hold_newest_snapshot`]).
//!
//! Faults: SQLite's errors of the file or the disk (full, read-only, I/O, cannot open, busy past
//! the timeout) make the store unavailable rather than failed (`StoreError::Unavailable`). Before
//! each commit the writer checks that the database and its WAL are still the files it opened
//! (device and inode), so nothing is committed into a file that was deleted or replaced. The
//! last batch's outcome is kept for [`Store::ping`], which probes with a write while it failed.

use super::{
    FailureCount, Limit, NewUser, Outstanding, PasswordHash, Refresh, RefreshOutcome, Result,
    Store, StoreError, User,
};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};
use rusqlite_migration::{M, Migrations};
use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, mpsc};
use std::time::Duration;
use tokio::sync::oneshot;

/// The most writes committed together.
const MAX_BATCH: usize = 512;

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/sqlite/0001_initial.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/0003_login_failures.sql"
        )),
    ])
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
        password: PasswordHash::from(row.get::<_, String>(2)?),
        is_active: row.get(3)?,
        is_staff: row.get(4)?,
        is_superuser: row.get(5)?,
        date_joined: row.get(6)?,
        last_login: row.get(7)?,
    })
}

/// Sorts SQLite's errors: those of the file or the disk make the store unavailable, the rest
/// are failures of the query. The error is kept as the cause either way.
fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(
            DiskFull
            | SystemIoFailure
            | ReadOnly
            | CannotOpen
            | PermissionDenied
            | DatabaseBusy
            | DatabaseLocked
            | FileLockingProtocolFailed
            | NoLargeFileSupport
            | DatabaseCorrupt
            | NotADatabase,
        ) => StoreError::Unavailable(Arc::new(e)),
        _ => StoreError::Database(Arc::new(e)),
    }
}

/// Why the store is unavailable when SQLite itself did not say.
#[derive(Debug, thiserror::Error)]
enum FileFault {
    #[error("{} is no longer the file opened", .0.display())]
    Replaced(PathBuf),
    #[error("{}: {error}", .path.display())]
    Gone {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("the last write failed")]
    LastWriteFailed,
}

impl From<FileFault> for StoreError {
    fn from(fault: FileFault) -> Self {
        StoreError::Unavailable(Arc::new(fault))
    }
}

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    fn of(path: &Path) -> std::io::Result<FileId> {
        let meta = std::fs::metadata(path)?;
        Ok(FileId(meta.dev(), meta.ino()))
    }
}

/// The database and WAL files the writer opened, and how its last batch went.
#[derive(Debug)]
struct Files {
    opened: [(PathBuf, FileId); 2],
    /// The last batch failed for want of the database.
    failing: AtomicBool,
}

impl Files {
    /// Notes the files `conn` has open, under the names SQLite resolved.
    fn opened_by(conn: &Connection, path: &Path) -> Result<Files> {
        let db = conn.path().map_or_else(|| path.to_owned(), PathBuf::from);
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        Ok(Files {
            opened: [identified(db)?, identified(wal.into())?],
            failing: AtomicBool::new(false),
        })
    }

    /// Unavailable unless the paths still name the files opened: a commit into a file that was
    /// deleted is lost at exit, and one into a replaced file is seen by nobody else.
    fn check(&self) -> Result<()> {
        for (path, opened) in &self.opened {
            match FileId::of(path) {
                Ok(id) if id == *opened => {}
                Ok(_) => return Err(FileFault::Replaced(path.clone()).into()),
                Err(e) => return Err(gone(path, e)),
            }
        }
        Ok(())
    }
}

fn identified(path: PathBuf) -> Result<(PathBuf, FileId)> {
    let id = FileId::of(&path).map_err(|e| gone(&path, e))?;
    Ok((path, id))
}

fn gone(path: &Path, error: std::io::Error) -> StoreError {
    let path = path.to_owned();
    FileFault::Gone { path, error }.into()
}

#[derive(Debug)]
pub struct SqliteStore {
    /// Tells this store's reader connections apart from other stores' on the same thread.
    id: u64,
    path: PathBuf,
    files: Arc<Files>,
    writer: mpsc::Sender<Box<dyn Job>>,
    /// Held by the one readiness probe under way.
    probe: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating and migrating when needed) the database file at `path`.
    pub async fn open(path: &str) -> Result<Self> {
        let path = PathBuf::from(path.split('?').next().unwrap_or(path));
        let writer_path = path.clone();
        let (conn, files) = tokio::task::spawn_blocking(move || {
            let conn = open_writer(&writer_path)?;
            let files = Arc::new(Files::opened_by(&conn, &writer_path)?);
            Ok::<_, StoreError>((conn, files))
        })
        .await
        .map_err(|e| StoreError::Database(Arc::new(e)))??;
        let (writer, jobs) = mpsc::channel();
        let writer_files = files.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, jobs, &writer_files))
            .map_err(|e| StoreError::Database(Arc::new(e)))?;
        static IDS: AtomicU64 = AtomicU64::new(0);
        Ok(SqliteStore {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            path,
            files,
            writer,
            probe: tokio::sync::Mutex::new(()),
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
                    let conn = open_reader(&self.path).map_err(store_error)?;
                    // The path may name another file by now.
                    self.files.check()?;
                    readers.push((self.id, conn));
                    readers.len() - 1
                }
            };
            f(&readers[index].1).map_err(store_error)
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
    let mut conn = configured_writer(path).map_err(store_error)?;
    MIGRATIONS
        .to_latest(&mut conn)
        .map_err(|e| StoreError::Migrate(Arc::new(e)))?;
    Ok(conn)
}

fn configured_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit is on disk before anyone hears of it, so a 200 survives a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
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
fn write_loop(mut conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>, files: &Files) {
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
        let committed = commit(&mut conn, &mut batch, files);
        hold_newest_snapshot(&conn);
        // Said once when writes start failing and once when they work again, not every batch.
        match &committed {
            Err(error @ StoreError::Unavailable(_)) => {
                if !files.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "database writes fail until the cause is gone");
                }
            }
            Err(error) => tracing::error!(%error, jobs = batch.len(), "write batch failed"),
            Ok(()) => {
                if files.failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!("database writes work again");
                }
            }
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

fn commit(conn: &mut Connection, batch: &mut [Box<dyn Job>], files: &Files) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    for job in batch.iter_mut() {
        job.apply(&tx).map_err(store_error)?;
    }
    files.check()?;
    tx.commit().map_err(store_error)
}

fn failure_count_from(row: &Row) -> rusqlite::Result<FailureCount> {
    Ok(FailureCount {
        failures: row.get(0)?,
        window_start: row.get(1)?,
        locked_until: row.get(2)?,
        lockouts: row.get(3)?,
        last_failure: row.get(4)?,
    })
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
        self.files.check()?;
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())))?;
        if self.files.failing.load(Ordering::Relaxed) {
            // One probe at a time, however often readiness is asked.
            let Ok(_probe) = self.probe.try_lock() else {
                return Err(FileFault::LastWriteFailed.into());
            };
            self.check_writable().await?;
        }
        Ok(())
    }

    async fn check_writable(&self) -> Result<()> {
        // A row added and removed in one transaction: nothing stays, but pages are written.
        self.write(|tx| {
            let name = "handstamp:write-check";
            tx.execute("INSERT INTO secrets (name, value) VALUES (?, x'')", [name])?;
            tx.execute("DELETE FROM secrets WHERE name = ?", [name])?;
            Ok(())
        })
        .await
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
                    user.password_hash.as_str(),
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

    async fn set_password(&self, username: &str, password_hash: &PasswordHash) -> Result<()> {
        let sql = "UPDATE users SET password = ? WHERE username = ?";
        self.change_user(sql, username, Some(password_hash.as_str().to_owned()))
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
            tx.execute("DELETE FROM login_failures WHERE expires_at <= ?", [now])?;
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

    async fn login_failures(&self, keys: &[String], now: i64) -> Result<Vec<Option<FailureCount>>> {
        self.read(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT failures, window_start, locked_until, lockouts, last_failure
                 FROM login_failures WHERE key = ? AND expires_at > ?",
            )?;
            keys.iter()
                .map(|key| query.query_row((key, now), failure_count_from).optional())
                .collect()
        })
    }

    async fn login_failed(&self, keys: Vec<(String, Limit)>, now: i64) -> Result<()> {
        self.write(move |tx| {
            for (key, limit) in &keys {
                let count = tx
                    .prepare_cached(
                        "SELECT failures, window_start, locked_until, lockouts, last_failure
                         FROM login_failures WHERE key = ? AND expires_at > ?",
                    )?
                    .query_row((key, now), failure_count_from)
                    .optional()?
                    .unwrap_or_default()
                    .after_failure(limit, now);
                tx.prepare_cached(
                    "INSERT INTO login_failures
                       (key, failures, window_start, locked_until, lockouts, last_failure, expires_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
                       window_start = excluded.window_start, locked_until = excluded.locked_until,
                       lockouts = excluded.lockouts, last_failure = excluded.last_failure,
                       expires_at = excluded.expires_at",
                )?
                .execute((
                    key,
                    count.failures,
                    count.window_start,
                    count.locked_until,
                    count.lockouts,
                    count.last_failure,
                    count.expires_at(limit),
                ))?;
            }
            tx.prepare_cached("DELETE FROM login_failures WHERE expires_at <= ?")?
                .execute([now])?;
            Ok(())
        })
        .await
    }

    async fn forget_login_failures(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM login_failures WHERE key = ?")?
                .execute([key])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// SQLite's own error stays reachable as the source, the message as it was.
    #[tokio::test]
    async fn a_file_that_cannot_be_opened_is_unavailable_with_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("db.sqlite3");
        let error = SqliteStore::open(path.to_str().unwrap()).await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        let source = error.source().expect("the cause is kept");
        assert!(
            source
                .to_string()
                .starts_with("unable to open database file")
        );
        let shown = error.to_string();
        assert_eq!(shown, format!("the database is unavailable: {source}"));
    }

    /// Every job of a failed batch gets the error with its cause.
    #[tokio::test]
    async fn a_failed_batch_answers_each_write_with_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        std::fs::rename(&path, dir.path().join("moved.sqlite3")).unwrap();
        let (a, b) = tokio::join!(store.check_writable(), store.check_writable());
        for error in [a.unwrap_err(), b.unwrap_err()] {
            assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
            let source = error.source().expect("the cause is kept");
            assert!(source.to_string().contains("db.sqlite3"), "{source}");
        }
    }
}

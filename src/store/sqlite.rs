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

use super::import::plan;
use super::{
    FailureCount, Flushed, Import, ImportCounts, ImportMode, ImportOutcome, Limit, Login, NewUser,
    Outstanding, PasswordHash, Refresh, RefreshOutcome, Result, Session, Store, StoreError,
    StoredKey, User, issued_before,
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
        M::up(include_str!("../../migrations/sqlite/0002_sessions.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/0003_login_failures.sql"
        )),
        M::up(include_str!(
            "../../migrations/sqlite/0004_signing_keys.sql"
        )),
    ])
});

/// The user columns, in [`user_from`]'s order; a macro so that queries are string constants
/// (the lookups on the hot path should not format SQL).
macro_rules! user_columns {
    () => {
        "id, username, password, is_active, is_staff, is_superuser, date_joined, last_login, \
         tokens_valid_after"
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
        tokens_valid_after: row.get(8)?,
    })
}

/// The session columns, in [`session_from`]'s order.
macro_rules! session_columns {
    () => {
        "id, user_id, created_at, last_refreshed_at, expires_at, ip, user_agent, revoked_at"
    };
}

fn session_from(row: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        user_id: row.get(1)?,
        created_at: row.get(2)?,
        last_refreshed_at: row.get(3)?,
        expires_at: row.get(4)?,
        ip: row.get(5)?,
        user_agent: row.get(6)?,
        revoked_at: row.get(7)?,
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

/// When `jti` was blacklisted, if it was.
fn blacklisted_at(conn: &Connection, jti: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT blacklisted_at FROM blacklisted_tokens WHERE jti = ?")?
        .query_row([jti], |row| row.get(0))
        .optional()
}

/// The session a token belongs to, while the session exists: its id and when it was revoked.
fn session_of(conn: &Connection, jti: &str) -> rusqlite::Result<Option<(String, Option<i64>)>> {
    conn.prepare_cached(
        "SELECT s.id, s.revoked_at FROM outstanding_tokens o
         JOIN sessions s ON s.id = o.session_id WHERE o.jti = ?",
    )?
    .query_row([jti], |row| Ok((row.get(0)?, row.get(1)?)))
    .optional()
}

/// Revokes session `id` and blacklists its tokens that have not expired; false if it was
/// revoked already (its tokens were blacklisted then, and none has joined it since).
fn revoke(tx: &Transaction, id: &str, now: i64) -> rusqlite::Result<bool> {
    let revoked = tx
        .prepare_cached("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")?
        .execute((now, id))?;
    if revoked == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at)
         SELECT jti, expires_at, ?1 FROM outstanding_tokens
         WHERE session_id = ?2 AND expires_at > ?1
         ON CONFLICT (jti) DO NOTHING",
    )?
    .execute((now, id))?;
    Ok(true)
}

/// The ids of the user's live sessions.
fn live_sessions(tx: &Transaction, user_id: i64, now: i64) -> rusqlite::Result<Vec<String>> {
    tx.prepare_cached(
        "SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?",
    )?
    .query_map((user_id, now), |row| row.get(0))?
    .collect()
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

/// Records `token`, in `session` (which exists) when it has one, rotated from `parent`; true
/// unless it was recorded already.
fn record(
    tx: &Transaction,
    token: &Outstanding,
    session: Option<&str>,
    parent: Option<&str>,
) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "INSERT INTO outstanding_tokens
           (jti, user_id, created_at, expires_at, session_id, parent_jti)
         VALUES (?, (SELECT id FROM users WHERE id = ?), ?, ?, ?, ?)
         ON CONFLICT (jti) DO NOTHING",
    )?
    .execute((
        &token.jti,
        token.user_id,
        token.created_at,
        token.expires_at,
        session,
        parent,
    ))
    .map(|added| added == 1)
}

/// [`Store::import`] inside the writer's transaction, under a savepoint of its own, which a dry
/// run rolls back.
fn import_in(
    tx: &Transaction,
    import: &Import,
    mode: ImportMode,
) -> rusqlite::Result<ImportOutcome> {
    let mut ours = std::collections::BTreeMap::new();
    {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = ? OR username = ?"
        );
        let mut query = tx.prepare_cached(sql)?;
        for user in &import.users {
            for found in query.query_map((user.id, &user.username), user_from)? {
                let found = found?;
                ours.insert(found.id, found);
            }
        }
    }
    let ours: Vec<_> = ours.into_values().collect();
    let plan = plan(import, &ours, mode);
    if !plan.conflicts.is_empty() {
        return Ok(ImportOutcome::Conflicts(plan.conflicts));
    }
    tx.execute_batch("SAVEPOINT import")?;
    let mut counts = ImportCounts {
        users_unchanged: plan.unchanged,
        users_skipped: plan.skipped,
        ..ImportCounts::default()
    };
    let mut add_user = tx.prepare_cached(
        "INSERT INTO users (id, username, password, is_active, is_staff, is_superuser,
           date_joined, last_login)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for u in &plan.users {
        counts.users_imported += add_user.execute((
            u.id,
            &u.username,
            u.password.as_str(),
            u.is_active,
            u.is_staff,
            u.is_superuser,
            u.date_joined,
            u.last_login,
        ))? as u64;
    }
    for token in &plan.tokens {
        counts.tokens += u64::from(record(tx, token, None, None)?);
    }
    let mut blacklist = tx.prepare_cached(
        "INSERT INTO blacklisted_tokens (jti, expires_at, blacklisted_at) VALUES (?, ?, ?)
         ON CONFLICT (jti) DO NOTHING",
    )?;
    for b in &plan.blacklisted {
        counts.blacklisted += blacklist.execute((&b.jti, b.expires_at, b.blacklisted_at))? as u64;
    }
    if mode.dry_run {
        tx.execute_batch("ROLLBACK TO import; RELEASE import")?;
    } else {
        tx.execute_batch("RELEASE import")?;
    }
    Ok(ImportOutcome::Done(counts))
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
        self.write(move |tx| record(tx, &token, None, None).map(drop))
            .await
    }

    async fn start_session(&self, login: Login) -> Result<bool> {
        self.write(move |tx| {
            let Login {
                session: s,
                token,
                record_login,
                new_password,
            } = login;
            // Nothing, rather than a foreign key error, for a user deleted since the password
            // check: a failed job would fail its whole batch.
            let created = tx
                .prepare_cached(
                    "INSERT INTO sessions
                       (id, user_id, created_at, last_refreshed_at, expires_at, ip, user_agent)
                     SELECT ?, id, ?, ?, ?, ?, ? FROM users WHERE id = ?",
                )?
                .execute((
                    &s.id,
                    s.created_at,
                    s.last_refreshed_at,
                    s.expires_at,
                    &s.ip,
                    &s.user_agent,
                    s.user_id,
                ))?;
            if created == 0 {
                return Ok(false);
            }
            record(tx, &token, Some(&s.id), None)?;
            if record_login {
                tx.prepare_cached("UPDATE users SET last_login = ? WHERE id = ?")?
                    .execute((s.created_at, s.user_id))?;
            }
            if let Some(hash) = new_password {
                tx.prepare_cached("UPDATE users SET password = ? WHERE id = ?")?
                    .execute((hash.as_str(), s.user_id))?;
            }
            Ok(true)
        })
        .await
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool> {
        self.read(|c| is_blacklisted(c, jti))
    }

    async fn blacklist(&self, token: &Outstanding, now: i64) -> Result<bool> {
        let token = token.clone();
        self.write(move |tx| {
            let added = add_to_blacklist(tx, &token, now)?;
            if let Some((session, _)) = session_of(tx, &token.jti)? {
                revoke(tx, &session, now)?;
            }
            Ok(added)
        })
        .await
    }

    async fn refresh(&self, r: Refresh, now: i64) -> Result<RefreshOutcome> {
        self.write(move |tx| {
            let mut valid_after = None;
            if let Some(user_id) = r.user_id {
                let user: Option<(bool, Option<i64>)> = tx
                    .prepare_cached("SELECT is_active, tokens_valid_after FROM users WHERE id = ?")?
                    .query_row([user_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                match user {
                    Some((true, after)) => valid_after = after,
                    // A blacklisted token is reported as such first, as simplejwt does.
                    _ => {
                        return Ok(if is_blacklisted(tx, &r.old.jti)? {
                            RefreshOutcome::Blacklisted
                        } else {
                            RefreshOutcome::NoActiveUser
                        });
                    }
                }
            }
            let session = session_of(tx, &r.old.jti)?;
            let session_revoked = session.as_ref().is_some_and(|(_, at)| at.is_some());
            if session_revoked || issued_before(valid_after, r.old.created_at) {
                return Ok(RefreshOutcome::Blacklisted);
            }
            let session = session.map(|(id, _)| id);
            if let Some(at) = blacklisted_at(tx, &r.old.jti)? {
                if let Some(id) = &session
                    && now - at >= r.reuse_interval
                {
                    revoke(tx, id, now)?;
                    return Ok(RefreshOutcome::Revoked);
                }
                return Ok(RefreshOutcome::Blacklisted);
            }
            if r.blacklist_old {
                add_to_blacklist(tx, &r.old, now)?;
            }
            if let Some(new) = &r.new {
                record(tx, new, session.as_deref(), Some(&r.old.jti))?;
            }
            if let Some(id) = &session {
                let expires_at = r.new.as_ref().map(|new| new.expires_at);
                tx.prepare_cached(
                    "UPDATE sessions SET last_refreshed_at = ?1,
                       expires_at = MAX(expires_at, COALESCE(?2, expires_at))
                     WHERE id = ?3",
                )?
                .execute((now, expires_at, id))?;
            }
            Ok(RefreshOutcome::Done)
        })
        .await
    }

    async fn flush_expired(&self, now: i64) -> Result<Flushed> {
        self.write(move |tx| {
            let tokens: i64 = tx.query_row(
                "SELECT COUNT(*) FROM (SELECT jti FROM outstanding_tokens WHERE expires_at < ?1
                 UNION SELECT jti FROM blacklisted_tokens WHERE expires_at < ?1)",
                [now],
                |row| row.get(0),
            )?;
            tx.execute("DELETE FROM outstanding_tokens WHERE expires_at < ?", [now])?;
            tx.execute("DELETE FROM blacklisted_tokens WHERE expires_at < ?", [now])?;
            let sessions = tx.execute("DELETE FROM sessions WHERE expires_at < ?", [now])?;
            tx.execute("DELETE FROM login_failures WHERE expires_at <= ?", [now])?;
            Ok(Flushed {
                tokens: tokens as u64,
                sessions: sessions as u64,
            })
        })
        .await
    }

    async fn sessions(&self, user_id: i64, now: i64) -> Result<Vec<Session>> {
        self.read(|c| {
            let sql = concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
                 ORDER BY created_at DESC, rowid DESC"
            );
            c.prepare_cached(sql)?
                .query_map((user_id, now), session_from)?
                .collect()
        })
    }

    async fn revoke_session(&self, user_id: i64, id: &str, now: i64) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            let live: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ? AND user_id = ?
                       AND revoked_at IS NULL AND expires_at > ?)",
                )?
                .query_row((&id, user_id, now), |row| row.get(0))?;
            Ok(live && revoke(tx, &id, now)?)
        })
        .await
    }

    async fn revoke_all_sessions(&self, user_id: i64, now: i64) -> Result<u64> {
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE users SET tokens_valid_after = MAX(COALESCE(tokens_valid_after, ?1), ?1)
                 WHERE id = ?2",
            )?
            .execute((now, user_id))?;
            let mut revoked = 0;
            for id in live_sessions(tx, user_id, now)? {
                revoked += u64::from(revoke(tx, &id, now)?);
            }
            Ok(revoked)
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

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT kid, algorithm, private_key, created_at, activated_at, deactivated_at,
                        retired_at
                 FROM signing_keys ORDER BY created_at, kid",
            )?
            .query_map([], |row| {
                Ok(StoredKey {
                    kid: row.get(0)?,
                    algorithm: row.get(1)?,
                    private_key: row.get(2)?,
                    created_at: row.get(3)?,
                    activated_at: row.get(4)?,
                    deactivated_at: row.get(5)?,
                    retired_at: row.get(6)?,
                })
            })?
            .collect()
        })
    }

    async fn add_signing_key(&self, key: StoredKey, activate_if_none: bool) -> Result<bool> {
        self.write(move |tx| {
            let active: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE active = 1)",
                [],
                |row| row.get(0),
            )?;
            if activate_if_none && active {
                return Ok(false);
            }
            let activate = activate_if_none;
            let added = tx.execute(
                "INSERT INTO signing_keys
                   (kid, algorithm, private_key, created_at, activated_at, active)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kid) DO NOTHING",
                (
                    &key.kid,
                    &key.algorithm,
                    &key.private_key,
                    key.created_at,
                    activate.then_some(key.created_at),
                    activate,
                ),
            )?;
            Ok(added == 1)
        })
        .await
    }

    async fn activate_signing_key(&self, kid: &str, now: i64) -> Result<bool> {
        let kid = kid.to_owned();
        self.write(move |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE kid = ? AND retired_at IS NULL)",
                [&kid],
                |row| row.get(0),
            )?;
            if !exists {
                return Ok(false);
            }
            tx.execute(
                "UPDATE signing_keys SET active = 0, deactivated_at = ?
                 WHERE active = 1 AND kid <> ?",
                (now, &kid),
            )?;
            tx.execute(
                "UPDATE signing_keys SET active = 1, deactivated_at = NULL,
                   activated_at = COALESCE(activated_at, ?)
                 WHERE kid = ?",
                (now, &kid),
            )?;
            Ok(true)
        })
        .await
    }

    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool> {
        let kid = kid.to_owned();
        self.write(move |tx| {
            let retired = tx.execute(
                "UPDATE signing_keys SET retired_at = ?
                 WHERE kid = ? AND active = 0 AND retired_at IS NULL",
                (now, &kid),
            )?;
            Ok(retired == 1)
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

    async fn import(&self, import: Import, mode: ImportMode) -> Result<ImportOutcome> {
        // One job: the writer's transaction holds it whole, so it is all or nothing.
        self.write(move |tx| import_in(tx, &import, mode)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A store on a new file, and the directory that holds it.
    async fn temporary() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        (
            SqliteStore::open(path.to_str().unwrap()).await.unwrap(),
            dir,
        )
    }

    crate::store::contract::store_contract!(temporary().await);

    fn token(jti: &str, user_id: i64, iat: i64) -> Outstanding {
        Outstanding {
            jti: jti.into(),
            user_id: Some(user_id),
            created_at: Some(iat),
            expires_at: iat + 3600,
        }
    }

    /// A database of the first schema, with a user and a refresh token in it, upgraded: the
    /// token belongs to no session and refreshes as before; its successor records its parent.
    #[tokio::test]
    async fn tokens_from_before_sessions_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut conn = Connection::open(&path).unwrap();
        let first = Migrations::new(vec![M::up(include_str!(
            "../../migrations/sqlite/0001_initial.sql"
        ))]);
        first.to_latest(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, username, password, date_joined) VALUES (7, 'old', '-', 0);
             INSERT INTO outstanding_tokens (jti, user_id, created_at, expires_at)
             VALUES ('before', 7, 100, 3700);",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let refresh = Refresh {
            old: token("before", 7, 100),
            blacklist_old: true,
            user_id: Some(7),
            new: Some(token("after", 7, 200)),
            reuse_interval: 0,
        };
        let outcome = store.refresh(refresh.clone(), 200).await.unwrap();
        assert_eq!(outcome, RefreshOutcome::Done);
        // A reuse without a session revokes nothing, whatever the interval.
        let reuse = store.refresh(refresh, 300).await.unwrap();
        assert_eq!(reuse, RefreshOutcome::Blacklisted);
        let row: (Option<String>, Option<String>) = store
            .read(|c| {
                c.query_row(
                    "SELECT session_id, parent_jti FROM outstanding_tokens WHERE jti = 'after'",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
            .unwrap();
        assert_eq!(row, (None, Some("before".into())));
    }

    /// A rotated token records its session and its parent.
    #[tokio::test]
    async fn a_rotated_token_records_its_session_and_parent() {
        let (store, _dir) = temporary().await;
        let new = NewUser {
            username: "alice".into(),
            password_hash: "-".into(),
            is_staff: false,
            is_superuser: false,
        };
        let alice = store.create_user(new, 0).await.unwrap().id;
        let session = Session {
            id: "s1".into(),
            user_id: alice,
            created_at: 100,
            last_refreshed_at: 100,
            expires_at: 3700,
            ip: None,
            user_agent: None,
            revoked_at: None,
        };
        let login = Login {
            session,
            token: token("r1", alice, 100),
            record_login: false,
            new_password: None,
        };
        assert!(store.start_session(login).await.unwrap());
        let refresh = Refresh {
            old: token("r1", alice, 100),
            blacklist_old: true,
            user_id: Some(alice),
            new: Some(token("r2", alice, 200)),
            reuse_interval: 10,
        };
        assert_eq!(
            store.refresh(refresh, 200).await.unwrap(),
            RefreshOutcome::Done
        );
        let rows: Vec<(String, Option<String>, Option<String>)> = store
            .read(|c| {
                c.prepare(
                    "SELECT jti, session_id, parent_jti FROM outstanding_tokens ORDER BY jti",
                )?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
            })
            .unwrap();
        let s1 = Some("s1".to_string());
        assert_eq!(
            rows,
            [
                ("r1".into(), s1.clone(), None),
                ("r2".into(), s1, Some("r1".into()))
            ]
        );
    }

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

//! The database failing under a running server: moved away, made unwritable, out of space.
//! Writes that cannot be made durable answer 503 with `Retry-After` (never 500, never a 200
//! that is not on disk), `/readyz` answers 503 meanwhile, and both recover once the cause is gone.

use crate::common::{TestServer, reply};
use handstamp::store::StoreError;
use reqwest::Response;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A server that rotates and blacklists refresh tokens, so that a refresh writes.
async fn rotating_server(dir: tempfile::TempDir) -> TestServer {
    TestServer::start_in(dir, |s| {
        s.jwt.rotate_refresh_tokens = true;
        s.jwt.blacklist_after_rotation = true;
    })
    .await
}

async fn refresh(server: &TestServer, token: &str) -> Response {
    server
        .post("/api/token/refresh/", json!({ "refresh": token }))
        .await
}

async fn readyz(server: &TestServer) -> u16 {
    let r = server.client.get(server.url("/readyz")).send().await;
    r.unwrap().status().as_u16()
}

async fn assert_unavailable(r: Response) {
    let retry_after = r.headers().get("retry-after").cloned();
    assert_eq!(
        reply(r).await,
        (503, json!({"detail": "The database is unavailable."}))
    );
    assert_eq!(retry_after.unwrap(), "1");
}

/// A refresh that works, returning the rotated token.
async fn refreshed(server: &TestServer, token: &str) -> String {
    let (status, body) = reply(refresh(server, token).await).await;
    assert_eq!(status, 200, "{body}");
    body["refresh"].as_str().unwrap().to_owned()
}

fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_moved_away_answers_503_until_it_is_back() {
    let server = rotating_server(tempfile::tempdir().unwrap()).await;
    let id = server.create_user("alice", "pw").await;
    let (token, access) = server.login("alice", "pw").await;
    let db = server.dir.path().join("test.sqlite3");
    let away = server.dir.path().join("away.sqlite3");

    std::fs::rename(&db, &away).unwrap();
    let read = read_on_a_new_thread(&server, id);
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    assert_unavailable(refresh(&server, &token).await).await;
    assert_unavailable(refresh(&server, &token).await).await;
    assert_eq!(readyz(&server).await, 503);
    // Reads on connections already open still work; a new one cannot open the file.
    for _ in 0..20 {
        let r = server.get_bearer("/api/users/me/", &access).await;
        match r.status().as_u16() {
            200 => {}
            503 => assert_unavailable(r).await,
            other => panic!("/me answered {other}: {}", r.text().await.unwrap()),
        }
    }

    std::fs::rename(&away, &db).unwrap();
    assert_eq!(readyz(&server).await, 200);
    // The refused refreshes left nothing behind: the token is still good, once.
    let rotated = refreshed(&server, &token).await;
    refreshed(&server, &rotated).await;
    assert_eq!(refresh(&server, &token).await.status(), 401);
}

/// Looks a user up on a thread of its own, which has no reader connection open yet.
fn read_on_a_new_thread(server: &TestServer, id: i64) -> Result<(), StoreError> {
    let store = server.service.store().clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let read = std::thread::spawn(move || runtime.block_on(store.user_by_id(id)));
    read.join().unwrap().map(|user| assert!(user.is_some()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_replaced_by_another_file_answers_503() {
    let server = rotating_server(tempfile::tempdir().unwrap()).await;
    let id = server.create_user("alice", "pw").await;
    let (token, _) = server.login("alice", "pw").await;
    let db = server.dir.path().join("test.sqlite3");
    let copy = server.dir.path().join("copy.sqlite3");
    read_on_a_new_thread(&server, id).unwrap();

    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();
    assert_unavailable(refresh(&server, &token).await).await;
    assert_eq!(readyz(&server).await, 503);
    // A new reader connection would read the copy, which nobody writes to.
    let read = read_on_a_new_thread(&server, id);
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_ahead_log_deleted_answers_503() {
    let server = rotating_server(tempfile::tempdir().unwrap()).await;
    server.create_user("alice", "pw").await;
    let (token, _) = server.login("alice", "pw").await;

    // Commits would go into the deleted file, and be lost at exit.
    std::fs::remove_file(server.dir.path().join("test.sqlite3-wal")).unwrap();
    assert_unavailable(refresh(&server, &token).await).await;
    assert_eq!(readyz(&server).await, 503);
}

/// Files made immutable (`chattr +i`), which binds root too; made mutable again on drop.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// None when the filesystem or the user cannot set the attribute.
    fn set(files: &[PathBuf]) -> Option<Immutable> {
        let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
        let set = run("chattr", &[&["+i"], names.as_slice()].concat());
        let guard = Immutable(files.to_vec());
        set.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let names: Vec<&str> = self.0.iter().map(|f| f.to_str().unwrap()).collect();
        assert!(run("chattr", &[&["-i"], names.as_slice()].concat()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_database_answers_503_until_it_is_writable_again() {
    let server = rotating_server(tempfile::tempdir().unwrap()).await;
    server.create_user("alice", "pw").await;
    let (token, access) = server.login("alice", "pw").await;
    let db = server.dir.path().join("test.sqlite3");
    let wal = server.dir.path().join("test.sqlite3-wal");

    let Some(immutable) = Immutable::set(&[db, wal]) else {
        eprintln!("SKIPPED: cannot chattr +i here (needs root and a filesystem that has it)");
        return;
    };
    assert_unavailable(refresh(&server, &token).await).await;
    assert_eq!(readyz(&server).await, 503);
    assert_eq!(readyz(&server).await, 503);
    let me = server.get_bearer("/api/users/me/", &access).await;
    assert_eq!(me.status(), 200);

    drop(immutable);
    assert_eq!(readyz(&server).await, 200);
    refreshed(&server, &token).await;
}

/// A small tmpfs mounted on a directory; lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None when mounting is not allowed here (not root, say).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let at_str = at.to_str().unwrap();
        let options = format!("size={size}");
        let mounted = run("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", at_str]);
        mounted.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        run("umount", &["-l", self.0.to_str().unwrap()]);
    }
}

/// Writes into `path` until the filesystem says it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let error = loop {
        if let Err(e) = file.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_until_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(dir.path(), "4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let filler = dir.path().join("filler");
    let server = rotating_server(dir).await;
    server.create_user("alice", "pw").await;
    let (token, access) = server.login("alice", "pw").await;

    fill(&filler);
    assert_unavailable(refresh(&server, &token).await).await;
    let login = json!({"username": "alice", "password": "pw"});
    assert_unavailable(server.post("/api/token/", login).await).await;
    assert_eq!(readyz(&server).await, 503);
    // Reads need no space.
    let me = server.get_bearer("/api/users/me/", &access).await;
    assert_eq!(me.status(), 200);

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(readyz(&server).await, 200);
    refreshed(&server, &token).await;
    server.stop().await;
}

/// Runs the binary in `dir`; None if it is still running after 20 s (then it is killed).
fn handstamp_exits(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    let child = Command::new(env!("CARGO_BIN_EXE_handstamp"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HANDSTAMP_SIGNING_KEY", crate::common::KEY)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    let output = rx.recv_timeout(std::time::Duration::from_secs(20)).ok();
    if output.is_none() {
        run("kill", &["-9", &pid]);
    }
    output
}

#[test]
fn serve_refuses_to_start_on_a_database_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let migrated = handstamp_exits(d, &["migrate"]).unwrap();
    assert!(migrated.status.success());
    let Some(_immutable) = Immutable::set(&[d.join("handstamp.sqlite3")]) else {
        eprintln!("SKIPPED: cannot chattr +i here (needs root and a filesystem that has it)");
        return;
    };
    for args in [
        &["serve", "--bind", "127.0.0.1:0"][..],
        &["serve", "--check"],
    ] {
        let out = handstamp_exits(d, args).expect("serve started on a database it cannot write");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("handstamp.sqlite3"), "{stderr}");
        assert!(stderr.contains("readonly"), "{stderr}");
    }
}

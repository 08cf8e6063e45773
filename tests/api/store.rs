//! The SQLite store on a real file, written and read at once.

use handstamp::store::{self, NewUser, Outstanding};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// SQLite checkpoints the write-ahead log into the database every 1 000 pages of 4 KiB.
const CHECKPOINT_BYTES: u64 = 1000 * 4096;

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Reads going on beside the writes must not keep SQLite from starting its write-ahead log over:
/// the log stays near its checkpoint size however much is written through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_is_reused_while_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.sqlite3");
    let store = store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let new_user = NewUser {
        username: "reader".into(),
        password_hash: "-".into(),
        is_staff: false,
        is_superuser: false,
    };
    let user = store.create_user(new_user, 0).await.unwrap();
    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut reads = 0u64;
            while writing.load(Ordering::Relaxed) {
                assert!(store.user_by_id(user.id).await.unwrap().is_some());
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    // Each token's row spills over two pages of its own: far more than the checkpoint size in all.
    for i in 0..3000 {
        let token = Outstanding {
            jti: format!("{i:05}{}", "x".repeat(6000)),
            user_id: Some(user.id),
            created_at: Some(0),
            expires_at: 1,
        };
        store.outstand(&token).await.unwrap();
        assert!(store.user_by_id(user.id).await.unwrap().is_some());
    }
    writing.store(false, Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);

    let written = size(&path);
    let wal = size(&dir.path().join("wal.sqlite3-wal"));
    eprintln!("database {written} bytes, write-ahead log {wal} bytes");
    assert!(written > 4 * CHECKPOINT_BYTES, "database: {written} bytes");
    assert!(wal < 2 * CHECKPOINT_BYTES, "write-ahead log: {wal} bytes");
}

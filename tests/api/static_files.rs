//! Static files served from memory: what changes on disk is served changed on the next request,
//! HEAD, `If-Modified-Since`, `Vary`, files too large to keep, and a cache bounded in bytes.

use crate::common::*;
use handstamp::config::StaticMount;
use reqwest::StatusCode;
use std::path::Path;
use std::time::{Duration, SystemTime};

async fn serving(dir: &Path) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start_with(|c| {
        c.statics.push(StaticMount {
            prefix: "/static/".into(),
            dir,
        })
    })
    .await
}

async fn fetch(s: &TestServer, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = s.client.get(s.url(path)).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// Rewrites `path` in place with `content` and moves its modification time by `ahead`.
fn rewrite(path: &Path, content: &[u8], ahead: Duration) {
    std::fs::write(path, content).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() + ahead).unwrap();
}

#[tokio::test]
async fn a_file_changed_on_disk_is_served_changed_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.js");
    std::fs::write(&file, "version 1").unwrap();
    let s = serving(dir.path()).await;

    let (status, headers, body) = fetch(&s, "/static/app.js").await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"version 1"[..])
    );
    let first_etag = headers["etag"].clone();
    // Served from memory now; the same size and a new modification time.
    assert_eq!(fetch(&s, "/static/app.js").await.2, b"version 1");
    rewrite(&file, b"version 2", Duration::from_secs(10));
    let (status, headers, body) = fetch(&s, "/static/app.js").await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"version 2"[..])
    );
    assert_ne!(headers["etag"], first_etag);

    // Replaced by a rename (how deployments swap files), with the same size and time.
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let next = dir.path().join("app.js.new");
    std::fs::write(&next, "version 3").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&next)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    std::fs::rename(&next, &file).unwrap();
    assert_eq!(fetch(&s, "/static/app.js").await.2, b"version 3");

    std::fs::remove_file(&file).unwrap();
    let (status, _, body) = fetch(&s, "/static/app.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, br#"{"detail":"Not found."}"#);
}

/// A large kept file rewritten in place: the same inode, the same size, new bytes.
#[tokio::test]
async fn a_large_file_rewritten_in_place_is_served_changed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.js");
    let version = |v: u8| vec![b'a' + v; 256 * 1024];
    std::fs::write(&file, version(1)).unwrap();
    let s = serving(dir.path()).await;
    for _ in 0..2 {
        let (status, _, body) = fetch(&s, "/static/bundle.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body == version(1));
    }
    rewrite(&file, &version(2), Duration::from_secs(10));
    let (_, _, body) = fetch(&s, "/static/bundle.js").await;
    assert!(body == version(2), "the new bytes, not the old copy's");

    // HTTP/2 frames the file in pieces of its own.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(s.url("/static/bundle.js")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(r.bytes().await.unwrap() == version(2));
}

#[tokio::test]
async fn head_conditional_requests_and_vary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), "<p>hello</p>").unwrap();
    std::fs::write(dir.path().join("page.html.gz"), "GZ").unwrap();
    let s = serving(dir.path()).await;
    let url = s.url("/static/page.html");

    let r = s.client.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "12");
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.headers()["vary"], "accept-encoding");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert!(r.headers().get("x-request-id").is_some());
    assert_eq!(r.bytes().await.unwrap().len(), 0);

    let r = s.client.get(&url).send().await.unwrap();
    let modified = r.headers()["last-modified"].clone();
    let etag = r.headers()["etag"].clone();
    assert_eq!(r.headers()["content-length"], "12");
    let r = s
        .get_with(
            "/static/page.html",
            &[("if-modified-since", modified.to_str().unwrap())],
        )
        .await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag);
    // With If-None-Match, If-Modified-Since is not looked at.
    let r = s
        .get_with(
            "/static/page.html",
            &[
                ("if-modified-since", modified.to_str().unwrap()),
                ("if-none-match", "W/\"other\""),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .get_with(
            "/static/page.html",
            &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        )
        .await;
    assert_eq!(r.status(), 200);

    // The precompressed sibling, with its own validator and the original's type.
    let r = s
        .get_with("/static/page.html", &[("accept-encoding", "gzip, br")])
        .await;
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.headers()["vary"], "accept-encoding");
    assert_ne!(r.headers()["etag"], etag);
    assert_eq!(r.bytes().await.unwrap(), "GZ");
    // A sibling that appears is served on the next request.
    std::fs::write(dir.path().join("page.html.br"), "BR").unwrap();
    let r = s
        .get_with("/static/page.html", &[("accept-encoding", "gzip, br")])
        .await;
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(r.bytes().await.unwrap(), "BR");
}

#[tokio::test]
async fn large_files_and_more_files_than_the_cache_holds() {
    let dir = tempfile::tempdir().unwrap();
    // Past what is kept in memory: streamed from disk, whole and in ranges.
    let large: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("large.bin"), &large).unwrap();
    // 48 files of 1 MiB: more than the 32 MiB the cache holds.
    let file = |i: usize| vec![b'a' + (i % 26) as u8; 1024 * 1024];
    for i in 0..48 {
        std::fs::write(dir.path().join(format!("f{i}.bin")), file(i)).unwrap();
    }
    let s = serving(dir.path()).await;

    let (status, headers, body) = fetch(&s, "/static/large.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("etag").is_some());
    assert!(body == large, "the large file comes whole");
    let r = s
        .get_with("/static/large.bin", &[("range", "bytes=2000000-2000009")])
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &large[2000000..2000010]);

    for round in 0..2 {
        for i in 0..48 {
            let (status, _, body) = fetch(&s, &format!("/static/f{i}.bin")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body == file(i), "round {round}, file {i}");
        }
    }
}

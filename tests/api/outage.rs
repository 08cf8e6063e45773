//! PostgreSQL stopped, or hung, under a running server (a private cluster of the test's own):
//! what needs the database answers 503 within the acquire (or statement) timeout, what does not
//! keeps working, and the server recovers by itself when the database is back.

use crate::common::postgres::PrivateCluster;
use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovery_needs_no_restart() {
    let Some(cluster) = tokio::task::block_in_place(PrivateCluster::start) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_on(&cluster.url(), dir, |settings| {
        settings.database.acquire_timeout = ACQUIRE_TIMEOUT;
        settings.database.connect_timeout = ACQUIRE_TIMEOUT;
        // Forward-auth on the token alone, without the database.
        settings.server.check_user = false;
    })
    .await;
    s.create_user("olga", "pw").await;
    let (refresh, access) = s.login("olga", "pw").await;

    tokio::task::block_in_place(|| cluster.stop());

    let unavailable = json!({"detail": "The database is unavailable."});
    let login = json!({"username": "olga", "password": "pw"});
    let refreshing = json!({"refresh": refresh});
    for (path, body) in [
        ("/api/token/", &login),
        ("/api/token/refresh/", &refreshing),
        ("/api/token/blacklist/", &refreshing),
        // A refresh token is looked up in the blacklist.
        ("/api/token/verify/", &json!({"token": refresh})),
    ] {
        let started = Instant::now();
        let r = s.post(path, body.clone()).await;
        let retry_after = r.headers().get("retry-after").cloned();
        assert_eq!(reply(r).await, (503, unavailable.clone()), "{path}");
        assert_eq!(retry_after.unwrap(), "1", "{path}");
        assert!(
            started.elapsed() < ACQUIRE_TIMEOUT + Duration::from_secs(1),
            "{path}"
        );
    }
    let me = s.get_bearer("/api/users/me/", &access).await;
    assert_eq!(reply(me).await, (503, unavailable.clone()));
    let ready = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    // What needs no database goes on: an access token verifies, forward-auth passes it.
    let verified = s.post("/api/token/verify/", json!({"token": access})).await;
    assert_eq!(reply(verified).await, (200, json!({})));
    let checked = s.get_bearer("/api/auth/check", &access).await;
    assert_eq!(checked.status(), 200);

    // Back again: the very next requests succeed, with the same server.
    tokio::task::block_in_place(|| cluster.restart());
    let ready = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (status, body) = reply(s.post("/api/token/", login).await).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = reply(s.post("/api/token/refresh/", refreshing).await).await;
    assert_eq!(status, 200, "{body}");
    let me = s.get_bearer("/api/users/me/", &access).await;
    assert_eq!(me.status(), 200);
}

/// A server that stops answering without closing its connections (frozen with SIGSTOP): each
/// request waits at most the statement timeout (or, for a new connection, the connect timeout),
/// then 503; once it answers again, so does handstamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_answers_503_within_the_statement_timeout() {
    let Some(cluster) = tokio::task::block_in_place(PrivateCluster::start) else {
        return;
    };
    let timeout = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_on(&cluster.url(), dir, |settings| {
        settings.database.acquire_timeout = timeout;
        settings.database.connect_timeout = timeout;
        settings.database.statement_timeout = timeout;
    })
    .await;
    s.create_user("hugo", "pw").await;
    let (refresh, access) = s.login("hugo", "pw").await;
    assert_eq!(s.get_bearer("/api/users/me/", &access).await.status(), 200);

    cluster.freeze();
    let unavailable = json!({"detail": "The database is unavailable."});
    for _ in 0..2 {
        let started = Instant::now();
        let me = s.get_bearer("/api/users/me/", &access).await;
        assert_eq!(reply(me).await, (503, unavailable.clone()));
        let refreshing = json!({"refresh": refresh});
        let refreshed = s.post("/api/token/refresh/", refreshing).await;
        assert_eq!(reply(refreshed).await, (503, unavailable.clone()));
        // Two requests, each bounded by one timeout (and the pool's wait for a connection).
        assert!(
            started.elapsed() < 4 * timeout + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let verified = s.post("/api/token/verify/", json!({"token": access})).await;
    assert_eq!(verified.status(), 200);

    cluster.thaw();
    let me = s.get_bearer("/api/users/me/", &access).await;
    assert_eq!(me.status(), 200);
    let (status, body) = reply(
        s.post("/api/token/", json!({"username": "hugo", "password": "pw"}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

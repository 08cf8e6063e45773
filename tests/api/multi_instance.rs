//! Three `handstamp serve` processes on one PostgreSQL database, as behind a load balancer:
//! they migrate once, sign with one secret, and share every token's state.

use crate::common::postgres::{TestDatabase, rows};
use crate::common::process::{Served, post, run, serve_with, text};
use crate::common::token_not_valid;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Barrier};

/// A fresh database, or `None` (with a notice) when no PostgreSQL server is set.
fn database() -> Option<TestDatabase> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(TestDatabase::create())
}

/// Three instances on `url`, started at the same moment, with no signing key configured, and
/// any reuse of a rotated refresh token revoking its session (a reuse interval of 0).
fn three_instances(dir: &Path, url: &str) -> Vec<Served> {
    let start = Arc::new(Barrier::new(3));
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let (dir, url, start) = (dir.to_owned(), url.to_owned(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let reuse = [("HANDSTAMP_REFRESH_REUSE_INTERVAL", "0s")];
                serve_with(&dir, &["--database", &url], &reuse)
            })
        })
        .collect();
    starting.into_iter().map(|s| s.join().unwrap()).collect()
}

/// `handstamp --database url ARGS...`, which must succeed.
fn cli(dir: &Path, url: &str, args: &[&str], stdin: &str) {
    let out = run(dir, &[&["--database", url], args].concat(), stdin);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
}

fn login(server: &Served, name: &str) -> (Value, Value) {
    let (status, body) = server.post("/api/token/", json!({"username": name, "password": "pw"}));
    assert_eq!(status, 200, "{body}");
    (body["refresh"].clone(), body["access"].clone())
}

#[test]
fn instances_started_together_migrate_once_and_share_one_secret() {
    let Some(database) = database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let servers = three_instances(dir.path(), &database.url);

    let migrated = servers
        .iter()
        .filter(|s| {
            let log = s.log.lock().unwrap();
            log.contains("applied database migration")
        })
        .count();
    assert_eq!(migrated, 1, "exactly one instance migrates");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let applied = runtime.block_on(rows(
        &database.url,
        "SELECT version FROM handstamp_migrations",
    ));
    let versions: Vec<_> = (1..=4).map(|v| vec![Some(v.to_string())]).collect();
    assert_eq!(applied, versions);
    let secrets = runtime.block_on(rows(&database.url, "SELECT count(*) FROM secrets"));
    assert_eq!(secrets, vec![vec![Some("1".to_owned())]]);
    // One signing key kept, and active: the others' candidates were not added.
    let keys = runtime.block_on(rows(&database.url, "SELECT kid, active FROM signing_keys"));
    assert_eq!(keys, vec![vec![Some(String::new()), Some("t".to_owned())]]);

    // A token signed by any one of them is good on every one.
    cli(
        dir.path(),
        &database.url,
        &["user", "create", "ann", "--password-stdin"],
        "pw\n",
    );
    for issuer in &servers {
        let (_, access) = login(issuer, "ann");
        for server in &servers {
            let (status, body) = server.get_bearer("/api/users/me/", &access);
            assert_eq!((status, &body["username"]), (200, &json!("ann")), "{body}");
        }
    }
}

#[test]
fn instances_share_rotation_blacklist_and_users() {
    let Some(database) = database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = &database.url;
    let servers = three_instances(dir.path(), url);
    let [a, b, c] = &servers[..] else {
        unreachable!()
    };
    cli(
        dir.path(),
        url,
        &["user", "create", "bea", "--password-stdin"],
        "pw\n",
    );
    let blacklisted = token_not_valid("Token is blacklisted");

    // A token from A refreshes on B, and then nowhere else: reused on C, it revokes its
    // session at once, so the token it was rotated into is refused on A and B too, and the
    // session is gone from the list on every instance.
    let (refresh, access) = login(a, "bea");
    let listed = |server: &Served| {
        let (status, sessions) = server.get_bearer("/api/sessions/", &access);
        assert_eq!(status, 200, "{sessions}");
        sessions.as_array().unwrap().len()
    };
    let before: Vec<usize> = servers.iter().map(listed).collect();
    assert!(
        before.iter().all(|n| *n >= 1 && *n == before[0]),
        "{before:?}"
    );
    let (status, rotated) = b.post("/api/token/refresh/", json!({"refresh": refresh}));
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(
        c.post("/api/token/refresh/", json!({"refresh": refresh})),
        (401, blacklisted.clone())
    );
    for server in [a, b] {
        let answer = server.post(
            "/api/token/refresh/",
            json!({"refresh": rotated["refresh"]}),
        );
        assert_eq!(answer, (401, blacklisted.clone()));
    }
    let after: Vec<usize> = servers.iter().map(listed).collect();
    assert_eq!(after, before.iter().map(|n| n - 1).collect::<Vec<_>>());

    // Blacklisted on B, refused on C.
    let (refresh, _) = login(a, "bea");
    assert_eq!(
        b.post("/api/token/blacklist/", json!({"refresh": refresh}))
            .0,
        200
    );
    assert_eq!(
        c.post("/api/token/refresh/", json!({"refresh": refresh})),
        (401, blacklisted.clone())
    );

    // The same refresh token sent 48 times at once, spread over the three: one winner.
    for round in 0..3 {
        let (refresh, _) = login(&servers[round], "bea");
        let start = Arc::new(Barrier::new(48));
        let outcomes: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..48)
                .map(|i| {
                    let addr = servers[i % 3].addr.as_str();
                    let (refresh, start) = (refresh.clone(), start.clone());
                    scope.spawn(move || {
                        start.wait();
                        post(addr, "/api/token/refresh/", json!({"refresh": refresh}))
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let winners = outcomes.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
        for (status, body) in outcomes.iter().filter(|(status, _)| *status != 200) {
            assert_eq!((*status, body), (401, &blacklisted), "round {round}");
        }
    }

    // A user deactivated by the CLI is refused by all three from the next request on.
    let (_, access) = login(c, "bea");
    cli(dir.path(), url, &["user", "deactivate", "bea"], "");
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    for server in &servers {
        assert_eq!(
            server.get_bearer("/api/users/me/", &access),
            (401, inactive.clone())
        );
    }
}

//! The store contract: one suite of behaviour, written against `Arc<dyn Store>`, that every
//! engine passes. Each test runs once on SQLite (a temporary file) and once on PostgreSQL (a
//! fresh database of its own, when `TEST_POSTGRES_URL` is set; see `common/postgres.rs`).

use crate::common::postgres::TestDatabase;
use handstamp::store::{
    self, NewUser, Outstanding, Refresh, RefreshOutcome, Store, StoreError, User,
};
use std::sync::Arc;

/// A store and what keeps its database alive.
struct Engine {
    store: Arc<dyn Store>,
    _file: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

impl Engine {
    async fn sqlite() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("contract.sqlite3").display());
        Engine {
            store: store::open(&url).await.unwrap(),
            _file: Some(dir),
            _database: None,
        }
    }

    async fn postgres() -> Option<Engine> {
        let database = TestDatabase::create().await?;
        // A small pool: tests run side by side on one server with a connection limit.
        let pool = store::PoolOptions {
            max_connections: 8,
            ..store::PoolOptions::default()
        };
        Some(Engine {
            store: store::open_with(&database.url, &pool).await.unwrap(),
            _file: None,
            _database: Some(database),
        })
    }
}

/// Each named contract function, as a test on each engine.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let engine = super::Engine::sqlite().await;
                    super::$name(engine.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(engine) = super::Engine::postgres().await else { return };
                    super::$name(engine.store.clone()).await;
                }
            )*
        }
    };
}

contract!(
    users_are_created_and_found,
    a_duplicate_name_is_refused,
    users_are_changed_and_deleted_by_name,
    unknown_names_are_errors,
    refresh_tokens_are_blacklisted_once,
    refresh_rotates_and_blacklists,
    refresh_reports_blacklisted_before_inactive,
    refresh_refuses_inactive_and_deleted_users,
    refresh_without_blacklisting_only_checks,
    concurrent_refreshes_have_exactly_one_winner,
    refresh_and_blacklist_race_has_one_winner,
    expired_tokens_are_flushed,
    the_first_secret_written_wins,
    the_store_answers_and_takes_writes,
    tokens_recorded_while_their_user_is_deleted_are_kept,
);

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        password_hash: HASH.into(),
        is_staff: false,
        is_superuser: false,
    }
}

async fn user(store: &Arc<dyn Store>, name: &str) -> User {
    store.create_user(new_user(name), 1_000).await.unwrap()
}

/// A refresh token of `user_id`'s, expiring at `expires_at`.
fn token(user_id: Option<i64>, expires_at: i64) -> Outstanding {
    Outstanding {
        jti: uuid::Uuid::now_v7().simple().to_string(),
        user_id,
        created_at: Some(1_000),
        expires_at,
    }
}

/// Far in the future, as Unix seconds.
const LATER: i64 = 4_000_000_000;

/// The refresh the service asks for with rotation and blacklisting on.
fn rotation(old: &Outstanding) -> Refresh {
    Refresh {
        old: old.clone(),
        blacklist_old: true,
        user_id: old.user_id,
        new: Some(token(old.user_id, LATER)),
        // The strictest: any reuse of a rotated token of a session revokes the session.
        reuse_interval: 0,
    }
}

async fn users_are_created_and_found(store: Arc<dyn Store>) {
    let staff = NewUser {
        is_staff: true,
        is_superuser: true,
        ..new_user("admin")
    };
    let admin = store.create_user(staff, 1_234).await.unwrap();
    assert_eq!(admin.username, "admin");
    assert_eq!(admin.password.as_str(), HASH);
    assert!(admin.is_active && admin.is_staff && admin.is_superuser);
    assert_eq!((admin.date_joined, admin.last_login), (1_234, None));
    let alice = user(&store, "alice").await;
    assert!(alice.id > admin.id);
    assert!(!alice.is_staff && !alice.is_superuser && alice.is_active);

    assert_eq!(
        store.user_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_name("admin").await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store.user_by_name("Alice").await.unwrap(),
        None,
        "names are exact"
    );
    assert_eq!(store.user_by_name("nobody").await.unwrap(), None);
    assert_eq!(store.user_by_id(alice.id + 100).await.unwrap(), None);
    assert_eq!(store.list_users().await.unwrap(), vec![admin, alice]);
}

async fn a_duplicate_name_is_refused(store: Arc<dyn Store>) {
    user(&store, "bob").await;
    let err = store.create_user(new_user("bob"), 1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateUser(name) if name == "bob"),
        "{err:?}"
    );
    // Concurrently too: one of them, and only one, is created.
    let creations = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.create_user(new_user("carol"), 1).await })
    });
    let mut created = 0;
    for creation in creations.collect::<Vec<_>>() {
        match creation.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::DuplicateUser(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.list_users().await.unwrap().len(), 2);
}

async fn users_are_changed_and_deleted_by_name(store: Arc<dyn Store>) {
    let dave = user(&store, "dave").await;
    let other = user(&store, "erin").await;
    store
        .set_password("dave", &"new-hash".into())
        .await
        .unwrap();
    store.set_active("dave", false).await.unwrap();
    store.record_login(dave.id, 5_000).await.unwrap();
    let changed = store.user_by_id(dave.id).await.unwrap().unwrap();
    assert_eq!(changed.password.as_str(), "new-hash");
    assert!(!changed.is_active);
    assert_eq!(changed.last_login, Some(5_000));
    store.set_active("dave", true).await.unwrap();
    assert!(store.user_by_name("dave").await.unwrap().unwrap().is_active);
    // Nobody else was touched.
    assert_eq!(
        store.user_by_id(other.id).await.unwrap(),
        Some(other.clone())
    );

    // A deleted user's tokens stay (without their user) and can still be blacklisted.
    let issued = token(Some(dave.id), LATER);
    store.outstand(&issued).await.unwrap();
    store.delete_user("dave").await.unwrap();
    assert_eq!(store.user_by_id(dave.id).await.unwrap(), None);
    assert_eq!(store.list_users().await.unwrap(), vec![other]);
    assert!(store.blacklist(&issued, 2_000).await.unwrap());
    // A token recorded for a user that is gone is kept without one.
    store.outstand(&token(Some(dave.id), LATER)).await.unwrap();
}

async fn unknown_names_are_errors(store: Arc<dyn Store>) {
    let unknown = |e: StoreError| matches!(&e, StoreError::UnknownUser(n) if n == "ghost");
    assert!(unknown(
        store.set_password("ghost", &"h".into()).await.unwrap_err()
    ));
    assert!(unknown(store.set_active("ghost", true).await.unwrap_err()));
    assert!(unknown(store.delete_user("ghost").await.unwrap_err()));
    // Recording a login for an id that is gone changes nothing and is no error.
    store.record_login(12_345, 1).await.unwrap();
}

async fn refresh_tokens_are_blacklisted_once(store: Arc<dyn Store>) {
    let frank = user(&store, "frank").await;
    let issued = token(Some(frank.id), LATER);
    store.outstand(&issued).await.unwrap();
    // Recording the same token twice is harmless.
    store.outstand(&issued).await.unwrap();
    assert!(!store.is_blacklisted(&issued.jti).await.unwrap());
    assert!(store.blacklist(&issued, 2_000).await.unwrap());
    assert!(store.is_blacklisted(&issued.jti).await.unwrap());
    assert!(
        !store.blacklist(&issued, 2_001).await.unwrap(),
        "already blacklisted"
    );
    // A token never recorded (issued elsewhere, or with no user) can be blacklisted too.
    let stray = token(None, LATER);
    assert!(store.blacklist(&stray, 2_000).await.unwrap());
    assert!(store.is_blacklisted(&stray.jti).await.unwrap());
    assert!(!store.is_blacklisted("no-such-jti").await.unwrap());
}

async fn refresh_rotates_and_blacklists(store: Arc<dyn Store>) {
    let grace = user(&store, "grace").await;
    let first = token(Some(grace.id), LATER);
    store.outstand(&first).await.unwrap();
    let refresh = rotation(&first);
    let second = refresh.new.clone().unwrap();
    assert_eq!(
        store.refresh(refresh, 2_000).await.unwrap(),
        RefreshOutcome::Done
    );
    assert!(store.is_blacklisted(&first.jti).await.unwrap());
    assert!(!store.is_blacklisted(&second.jti).await.unwrap());
    // The old token again: blacklisted. The new one rotates in turn.
    let again = store.refresh(rotation(&first), 2_001).await.unwrap();
    assert_eq!(again, RefreshOutcome::Blacklisted);
    let next = store.refresh(rotation(&second), 2_002).await.unwrap();
    assert_eq!(next, RefreshOutcome::Done);
    // A token without a user id names nobody to check.
    let anonymous = token(None, LATER);
    let done = store.refresh(rotation(&anonymous), 2_003).await.unwrap();
    assert_eq!(done, RefreshOutcome::Done);
}

async fn refresh_reports_blacklisted_before_inactive(store: Arc<dyn Store>) {
    let heidi = user(&store, "heidi").await;
    let issued = token(Some(heidi.id), LATER);
    assert!(store.blacklist(&issued, 2_000).await.unwrap());
    store.set_active("heidi", false).await.unwrap();
    let outcome = store.refresh(rotation(&issued), 2_001).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Blacklisted);
}

async fn refresh_refuses_inactive_and_deleted_users(store: Arc<dyn Store>) {
    let ivan = user(&store, "ivan").await;
    let judy = user(&store, "judy").await;
    let (ivans, judys) = (token(Some(ivan.id), LATER), token(Some(judy.id), LATER));
    store.set_active("ivan", false).await.unwrap();
    store.delete_user("judy").await.unwrap();
    for issued in [&ivans, &judys] {
        let refresh = rotation(issued);
        let new = refresh.new.clone().unwrap();
        let outcome = store.refresh(refresh, 2_000).await.unwrap();
        assert_eq!(outcome, RefreshOutcome::NoActiveUser);
        // Nothing was written: the old token is not blacklisted.
        assert!(!store.is_blacklisted(&issued.jti).await.unwrap());
        assert!(store.blacklist(&new, 2_000).await.unwrap());
    }
    // Active again, the same token refreshes.
    store.set_active("ivan", true).await.unwrap();
    let outcome = store.refresh(rotation(&ivans), 2_001).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Done);
}

async fn refresh_without_blacklisting_only_checks(store: Arc<dyn Store>) {
    let karl = user(&store, "karl").await;
    let issued = token(Some(karl.id), LATER);
    let check = |new| Refresh {
        old: issued.clone(),
        blacklist_old: false,
        user_id: Some(karl.id),
        new,
        reuse_interval: 0,
    };
    // Rotation without blacklisting, then no rotation at all: the token stays usable.
    let rotated = check(Some(token(Some(karl.id), LATER)));
    assert_eq!(
        store.refresh(rotated, 2_000).await.unwrap(),
        RefreshOutcome::Done
    );
    assert_eq!(
        store.refresh(check(None), 2_000).await.unwrap(),
        RefreshOutcome::Done
    );
    assert!(!store.is_blacklisted(&issued.jti).await.unwrap());
    assert!(store.blacklist(&issued, 2_001).await.unwrap());
    let outcome = store.refresh(check(None), 2_002).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Blacklisted);
}

async fn concurrent_refreshes_have_exactly_one_winner(store: Arc<dyn Store>) {
    let leo = user(&store, "leo").await;
    for round in 0..5 {
        let issued = token(Some(leo.id), LATER);
        store.outstand(&issued).await.unwrap();
        let racers = (0..32).map(|_| {
            let (store, refresh) = (store.clone(), rotation(&issued));
            tokio::spawn(async move { store.refresh(refresh, 2_000).await.unwrap() })
        });
        let mut outcomes = Vec::new();
        for racer in racers.collect::<Vec<_>>() {
            outcomes.push(racer.await.unwrap());
        }
        let won = outcomes
            .iter()
            .filter(|o| **o == RefreshOutcome::Done)
            .count();
        let lost = outcomes
            .iter()
            .filter(|o| **o == RefreshOutcome::Blacklisted)
            .count();
        assert_eq!((won, lost), (1, 31), "round {round}: {outcomes:?}");
    }
}

async fn refresh_and_blacklist_race_has_one_winner(store: Arc<dyn Store>) {
    let mia = user(&store, "mia").await;
    for round in 0..20 {
        let issued = token(Some(mia.id), LATER);
        let refreshing = {
            let (store, refresh) = (store.clone(), rotation(&issued));
            tokio::spawn(async move { store.refresh(refresh, 2_000).await.unwrap() })
        };
        let blacklisting = {
            let (store, issued) = (store.clone(), issued.clone());
            tokio::spawn(async move { store.blacklist(&issued, 2_000).await.unwrap() })
        };
        let refreshed = refreshing.await.unwrap() == RefreshOutcome::Done;
        let blacklisted = blacklisting.await.unwrap();
        assert!(
            refreshed != blacklisted,
            "round {round}: both or neither won"
        );
        assert!(store.is_blacklisted(&issued.jti).await.unwrap());
    }
}

async fn expired_tokens_are_flushed(store: Arc<dyn Store>) {
    let nina = user(&store, "nina").await;
    let (old, older, fresh) = (
        token(Some(nina.id), 100),
        token(Some(nina.id), 50),
        token(Some(nina.id), LATER),
    );
    for t in [&old, &older, &fresh] {
        store.outstand(t).await.unwrap();
    }
    // Blacklisted and outstanding, blacklisted only, outstanding only: three tokens.
    store.blacklist(&old, 10).await.unwrap();
    store.blacklist(&token(None, 70), 10).await.unwrap();
    store.blacklist(&fresh, 10).await.unwrap();
    assert_eq!(store.flush_expired(101).await.unwrap().tokens, 3);
    assert!(!store.is_blacklisted(&old.jti).await.unwrap());
    assert!(store.is_blacklisted(&fresh.jti).await.unwrap());
    assert_eq!(store.flush_expired(101).await.unwrap().tokens, 0);
    // Flushed tokens can be recorded and blacklisted anew.
    store.outstand(&old).await.unwrap();
    assert!(store.blacklist(&old, 200).await.unwrap());
}

async fn the_first_secret_written_wins(store: Arc<dyn Store>) {
    let writers = (0..8u8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.secret("signing_key", &[i; 64]).await.unwrap() })
    });
    let mut seen = Vec::new();
    for writer in writers.collect::<Vec<_>>() {
        seen.push(writer.await.unwrap());
    }
    let first = seen[0].clone();
    assert_eq!(first.len(), 64);
    assert!(
        (0..8).any(|i| first == vec![i; 64]),
        "one candidate won: {first:?}"
    );
    assert!(
        seen.iter().all(|s| *s == first),
        "everyone sees the same secret"
    );
    assert_eq!(store.secret("signing_key", &[9; 64]).await.unwrap(), first);
    // Other names are other secrets.
    assert_eq!(store.secret("other", b"x").await.unwrap(), b"x");
}

async fn tokens_recorded_while_their_user_is_deleted_are_kept(store: Arc<dyn Store>) {
    for round in 0..10 {
        let name = format!("gone{round}");
        let doomed = user(&store, &name).await;
        let recording = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let issued = token(Some(doomed.id), LATER);
                store.outstand(&issued).await?;
                store.refresh(rotation(&issued), 2_000).await
            })
        });
        let recording: Vec<_> = recording.collect();
        store.delete_user(&name).await.unwrap();
        for outcome in recording {
            let outcome = outcome.await.unwrap();
            let expected = [RefreshOutcome::Done, RefreshOutcome::NoActiveUser];
            assert!(
                matches!(&outcome, Ok(o) if expected.contains(o)),
                "round {round}: {outcome:?}"
            );
        }
    }
}

async fn the_store_answers_and_takes_writes(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    store.check_writable().await.unwrap();
    store.check_writable().await.unwrap();
    // The write check leaves nothing behind.
    assert_eq!(
        store.secret("handstamp:write-check", b"x").await.unwrap(),
        b"x"
    );
}

/// A database whose default isolation is SERIALIZABLE (a DBA's choice) makes racing refreshes
/// meet serialization failures: they are retried inside the store, and the race still has one
/// winner and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_serializable_races_are_retried_not_failed() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let sql = "ALTER DATABASE {name} SET default_transaction_isolation TO 'serializable'";
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    crate::common::postgres::execute(&database.url, &sql.replace("{name}", &name)).await;
    let store = store::open(&database.url).await.unwrap();
    let isolation = crate::common::postgres::rows(&database.url, "SHOW transaction_isolation");
    assert_eq!(isolation.await, vec![vec![Some("serializable".to_owned())]]);
    concurrent_refreshes_have_exactly_one_winner(store.clone()).await;
    refresh_and_blacklist_race_has_one_winner(store).await;
}

//! The sessions, login throttling and signing keys part of the [`Store`] contract, as tests any
//! engine runs against itself:
//! `store_contract!(open_engine().await)` in the engine's test module makes one test per rule.
//! Times are given explicitly, so every boundary is tested exactly.

use super::{
    Import, ImportCounts, ImportMode, ImportOutcome, ImportedBlacklisting, ImportedUser, Limit,
    Login, NewUser, Outstanding, Refresh, RefreshOutcome, Session, Store, StoreError, StoredKey,
};

const T: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
/// The reuse interval the rules are tested with.
const INTERVAL: i64 = 10;

async fn user(store: &dyn Store, name: &str) -> i64 {
    let new = NewUser {
        username: name.into(),
        password_hash: "-".into(),
        is_staff: false,
        is_superuser: false,
    };
    store.create_user(new, T).await.unwrap().id
}

fn token(jti: &str, user_id: i64, iat: i64) -> Outstanding {
    Outstanding {
        jti: jti.into(),
        user_id: Some(user_id),
        created_at: Some(iat),
        expires_at: iat + DAY,
    }
}

/// Logs `user_id` in at `now` with session `id` and refresh token `jti`.
async fn login(store: &dyn Store, user_id: i64, id: &str, jti: &str, now: i64) -> bool {
    let token = token(jti, user_id, now);
    let session = Session {
        id: id.into(),
        user_id,
        created_at: now,
        last_refreshed_at: now,
        expires_at: token.expires_at,
        ip: Some("192.0.2.7".into()),
        user_agent: Some("test".into()),
        revoked_at: None,
    };
    let login = Login {
        session,
        token,
        record_login: true,
        new_password: None,
    };
    store.start_session(login).await.unwrap()
}

/// Rotates `old` (issued at `iat`) into `new` at `now`, blacklisting `old`.
async fn rotate(
    store: &dyn Store,
    user_id: i64,
    (old, iat): (&str, i64),
    new: &str,
    now: i64,
) -> RefreshOutcome {
    let refresh = Refresh {
        old: token(old, user_id, iat),
        blacklist_old: true,
        user_id: Some(user_id),
        new: Some(token(new, user_id, now)),
        reuse_interval: INTERVAL,
    };
    store.refresh(refresh, now).await.unwrap()
}

async fn ids(store: &dyn Store, user_id: i64, now: i64) -> Vec<String> {
    let sessions = store.sessions(user_id, now).await.unwrap();
    sessions.into_iter().map(|s| s.id).collect()
}

pub(crate) async fn a_login_starts_a_session_holding_its_token(store: &dyn Store) {
    let alice = user(store, "alice").await;
    assert!(login(store, alice, "s1", "r1", T).await);
    let sessions = store.sessions(alice, T).await.unwrap();
    let expected = Session {
        id: "s1".into(),
        user_id: alice,
        created_at: T,
        last_refreshed_at: T,
        expires_at: T + DAY,
        ip: Some("192.0.2.7".into()),
        user_agent: Some("test".into()),
        revoked_at: None,
    };
    assert_eq!(sessions, [expected]);
    let user = store.user_by_id(alice).await.unwrap().unwrap();
    assert_eq!(user.last_login, Some(T));
    // The token is the session's: revoking the session blacklists it.
    assert!(store.revoke_session(alice, "s1", T).await.unwrap());
    assert!(store.is_blacklisted("r1").await.unwrap());
    // A user deleted since the password check: nothing is written.
    store.delete_user("alice").await.unwrap();
    assert!(!login(store, alice, "s2", "r2", T).await);
    assert!(!store.is_blacklisted("r2").await.unwrap());
    assert_eq!(ids(store, alice, T).await, Vec::<String>::new());
}

pub(crate) async fn sessions_are_listed_newest_first_and_only_live_ones(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    login(store, alice, "old", "r1", T).await;
    login(store, alice, "new", "r2", T + 5).await;
    login(store, alice, "ended", "r3", T + 6).await;
    login(store, bob, "bobs", "r4", T + 7).await;
    store.revoke_session(alice, "ended", T + 8).await.unwrap();
    assert_eq!(ids(store, alice, T + 8).await, ["new", "old"]);
    assert_eq!(ids(store, bob, T + 8).await, ["bobs"]);
    // Past the expiry of its newest token a session is over.
    assert_eq!(ids(store, alice, T + DAY + 1).await, ["new"]);
    assert_eq!(ids(store, alice, T + DAY + 5).await, Vec::<String>::new());
}

pub(crate) async fn a_refresh_carries_the_session_on(store: &dyn Store) {
    let alice = user(store, "alice").await;
    login(store, alice, "s1", "r1", T).await;
    let outcome = rotate(store, alice, ("r1", T), "r2", T + 60).await;
    assert_eq!(outcome, RefreshOutcome::Done);
    let session = &store.sessions(alice, T + 60).await.unwrap()[0];
    assert_eq!(session.last_refreshed_at, T + 60);
    assert_eq!(session.expires_at, T + 60 + DAY);
    assert!(store.is_blacklisted("r1").await.unwrap());
    // r2 is the session's: it is blacklisted with it.
    store.revoke_session(alice, "s1", T + 61).await.unwrap();
    assert!(store.is_blacklisted("r2").await.unwrap());
}

pub(crate) async fn a_reuse_within_the_interval_is_refused_alone(store: &dyn Store) {
    let alice = user(store, "alice").await;
    login(store, alice, "s1", "r1", T).await;
    rotate(store, alice, ("r1", T), "r2", T + 100).await;
    let reuse = rotate(store, alice, ("r1", T), "x", T + 100 + INTERVAL - 1).await;
    assert_eq!(reuse, RefreshOutcome::Blacklisted);
    assert_eq!(ids(store, alice, T + 100).await, ["s1"]);
    let outcome = rotate(store, alice, ("r2", T + 100), "r3", T + 120).await;
    assert_eq!(outcome, RefreshOutcome::Done);
}

pub(crate) async fn a_reuse_past_the_interval_revokes_the_session(store: &dyn Store) {
    let alice = user(store, "alice").await;
    login(store, alice, "s1", "r1", T).await;
    login(store, alice, "other", "o1", T).await;
    rotate(store, alice, ("r1", T), "r2", T + 100).await;
    let reuse = rotate(store, alice, ("r1", T), "x", T + 100 + INTERVAL).await;
    assert_eq!(reuse, RefreshOutcome::Revoked);
    // The current token of the session is refused too, and stays so.
    let outcome = rotate(store, alice, ("r2", T + 100), "r3", T + 111).await;
    assert_eq!(outcome, RefreshOutcome::Blacklisted);
    assert!(store.is_blacklisted("r2").await.unwrap());
    // A reuse of a token of a revoked session revokes nothing more.
    let again = rotate(store, alice, ("r1", T), "y", T + 200).await;
    assert_eq!(again, RefreshOutcome::Blacklisted);
    // Other sessions live on.
    assert_eq!(ids(store, alice, T + 200).await, ["other"]);
    let outcome = rotate(store, alice, ("o1", T), "o2", T + 200).await;
    assert_eq!(outcome, RefreshOutcome::Done);
}

pub(crate) async fn a_zero_interval_revokes_on_any_reuse(store: &dyn Store) {
    let alice = user(store, "alice").await;
    login(store, alice, "s1", "r1", T).await;
    rotate(store, alice, ("r1", T), "r2", T).await;
    let refresh = Refresh {
        old: token("r1", alice, T),
        blacklist_old: true,
        user_id: Some(alice),
        new: Some(token("x", alice, T)),
        reuse_interval: 0,
    };
    assert_eq!(
        store.refresh(refresh, T).await.unwrap(),
        RefreshOutcome::Revoked
    );
}

pub(crate) async fn a_token_outside_any_session_works_as_before(store: &dyn Store) {
    let alice = user(store, "alice").await;
    store.outstand(&token("r1", alice, T)).await.unwrap();
    let outcome = rotate(store, alice, ("r1", T), "r2", T + 1).await;
    assert_eq!(outcome, RefreshOutcome::Done);
    let reuse = rotate(store, alice, ("r1", T), "x", T + 1000).await;
    assert_eq!(reuse, RefreshOutcome::Blacklisted);
    let outcome = rotate(store, alice, ("r2", T + 1), "r3", T + 1000).await;
    assert_eq!(outcome, RefreshOutcome::Done);
}

pub(crate) async fn blacklisting_a_token_ends_its_session(store: &dyn Store) {
    let alice = user(store, "alice").await;
    login(store, alice, "s1", "r1", T).await;
    login(store, alice, "s2", "q1", T).await;
    rotate(store, alice, ("r1", T), "r2", T + 1).await;
    assert!(
        store
            .blacklist(&token("r2", alice, T + 1), T + 2)
            .await
            .unwrap()
    );
    assert_eq!(ids(store, alice, T + 2).await, ["s2"]);
    // A stale token of a session, blacklisted already, still ends the session.
    rotate(store, alice, ("q1", T), "q2", T + 1).await;
    assert!(
        !store
            .blacklist(&token("q1", alice, T), T + 2)
            .await
            .unwrap()
    );
    assert_eq!(ids(store, alice, T + 2).await, Vec::<String>::new());
    let outcome = rotate(store, alice, ("q2", T + 1), "q3", T + 3).await;
    assert_eq!(outcome, RefreshOutcome::Blacklisted);
}

pub(crate) async fn only_the_owner_ends_a_live_session(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    login(store, alice, "s1", "r1", T).await;
    assert!(!store.revoke_session(bob, "s1", T).await.unwrap());
    assert!(!store.revoke_session(alice, "nope", T).await.unwrap());
    assert!(!store.is_blacklisted("r1").await.unwrap());
    // Expired: nothing to end.
    assert!(!store.revoke_session(alice, "s1", T + DAY).await.unwrap());
    assert!(store.revoke_session(alice, "s1", T).await.unwrap());
    assert!(!store.revoke_session(alice, "s1", T).await.unwrap());
    let outcome = rotate(store, alice, ("r1", T), "r2", T + 1).await;
    assert_eq!(outcome, RefreshOutcome::Blacklisted);
}

pub(crate) async fn logging_out_everywhere_refuses_every_earlier_token(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    login(store, alice, "s1", "r1", T).await;
    login(store, alice, "s2", "q1", T + 1).await;
    login(store, bob, "b1", "b1", T).await;
    store
        .outstand(&token("sessionless", alice, T))
        .await
        .unwrap();
    assert_eq!(store.revoke_all_sessions(alice, T + 10).await.unwrap(), 2);
    let user = store.user_by_id(alice).await.unwrap().unwrap();
    assert_eq!(user.tokens_valid_after, Some(T + 10));
    assert!(user.revoked_token(Some(T + 9)) && user.revoked_token(None));
    assert!(!user.revoked_token(Some(T + 10)));
    assert_eq!(ids(store, alice, T + 10).await, Vec::<String>::new());
    for (jti, iat) in [("r1", T), ("q1", T + 1), ("sessionless", T)] {
        let outcome = rotate(store, alice, (jti, iat), "x", T + 11).await;
        assert_eq!(outcome, RefreshOutcome::Blacklisted, "{jti}");
    }
    // Bob is untouched; Alice logs in again.
    assert_eq!(ids(store, bob, T + 10).await, ["b1"]);
    login(store, alice, "s3", "r9", T + 10).await;
    let outcome = rotate(store, alice, ("r9", T + 10), "r10", T + 11).await;
    assert_eq!(outcome, RefreshOutcome::Done);
    assert_eq!(store.revoke_all_sessions(alice, T + 5).await.unwrap(), 1);
    let user = store.user_by_id(alice).await.unwrap().unwrap();
    assert_eq!(user.tokens_valid_after, Some(T + 10), "never moved back");
}

pub(crate) async fn flushing_drops_sessions_whose_tokens_all_expired(store: &dyn Store) {
    let alice = user(store, "alice").await;
    login(store, alice, "expired", "r1", T).await;
    login(store, alice, "revoked", "q1", T).await;
    store.revoke_session(alice, "revoked", T).await.unwrap();
    login(store, alice, "live", "l1", T + 100).await;
    let flushed = store.flush_expired(T + DAY + 1).await.unwrap();
    assert_eq!((flushed.tokens, flushed.sessions), (2, 2));
    assert_eq!(ids(store, alice, T + DAY + 1).await, ["live"]);
    // The live session and its token are whole.
    let outcome = rotate(store, alice, ("l1", T + 100), "l2", T + DAY + 2).await;
    assert_eq!(outcome, RefreshOutcome::Done);
    let flushed = store.flush_expired(T + DAY + 1).await.unwrap();
    assert_eq!((flushed.tokens, flushed.sessions), (0, 0));
}

pub(crate) async fn a_deleted_user_takes_their_sessions(store: &dyn Store) {
    let alice = user(store, "alice").await;
    login(store, alice, "s1", "r1", T).await;
    store.delete_user("alice").await.unwrap();
    assert_eq!(ids(store, alice, T).await, Vec::<String>::new());
    let outcome = rotate(store, alice, ("r1", T), "r2", T + 1).await;
    assert_eq!(outcome, RefreshOutcome::NoActiveUser);
    let unknown = store.delete_user("alice").await.unwrap_err();
    assert!(matches!(unknown, StoreError::UnknownUser(_)), "{unknown:?}");
}

/// A limit that never locks within the test, so every failure shows in the count.
const NO_LOCK: Limit = Limit {
    max_failures: 1_000,
    window: 120,
    lockout: 300,
    lockout_max: 3_600,
};

/// How many failed logins race in the throttle rules.
const RACERS: usize = 24;

pub(crate) async fn concurrent_login_failures_all_count(store: &dyn Store) {
    let keys = || {
        vec![
            ("user:x".to_string(), NO_LOCK),
            ("addr:y".to_string(), NO_LOCK),
        ]
    };
    // The keys in both orders, as two instances might give them.
    let racing = (0..RACERS).map(|i| {
        let mut keys = keys();
        if i % 2 == 1 {
            keys.reverse();
        }
        store.login_failed(keys, T)
    });
    for failed in futures_util::future::join_all(racing).await {
        failed.unwrap();
    }
    let names = [
        "user:x".to_string(),
        "addr:y".to_string(),
        "other".to_string(),
    ];
    let counts = store.login_failures(&names, T).await.unwrap();
    let failures: Vec<Option<u32>> = counts.iter().map(|c| c.map(|c| c.failures)).collect();
    assert_eq!(failures, [Some(RACERS as u32), Some(RACERS as u32), None]);
    assert_eq!(counts[0].unwrap().locked(T), None);
}

pub(crate) async fn concurrent_login_failures_reach_the_lock(store: &dyn Store) {
    let limit = Limit {
        max_failures: 5,
        ..NO_LOCK
    };
    let racing = (0..5).map(|_| store.login_failed(vec![("k".into(), limit)], T));
    for failed in futures_util::future::join_all(racing).await {
        failed.unwrap();
    }
    let count = store.login_failures(&["k".into()], T).await.unwrap()[0].unwrap();
    assert_eq!(count.locked(T), Some(T + limit.lockout));
    // A success forgets the key; a record past its expiry says nothing.
    store.forget_login_failures("k").await.unwrap();
    assert_eq!(
        store.login_failures(&["k".into()], T).await.unwrap(),
        [None]
    );
    store
        .login_failed(vec![("k".into(), limit)], T)
        .await
        .unwrap();
    let expires = store.login_failures(&["k".into()], T).await.unwrap()[0]
        .unwrap()
        .expires_at(&limit);
    assert_eq!(
        store.login_failures(&["k".into()], expires).await.unwrap(),
        [None]
    );
    // Failing again after expiry starts from nothing.
    store
        .login_failed(vec![("k".into(), limit)], expires)
        .await
        .unwrap();
    let count = store.login_failures(&["k".into()], expires).await.unwrap()[0];
    assert_eq!(count.map(|c| c.failures), Some(1));
}

fn key(kid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        algorithm: "HS512".into(),
        private_key: kid.as_bytes().to_vec(),
        created_at,
        activated_at: None,
        deactivated_at: None,
        retired_at: None,
    }
}

pub(crate) async fn racing_first_keys_leave_one_active(store: &dyn Store) {
    let racing = (0..8).map(|i| store.add_signing_key(key(&format!("k{i}"), T), true));
    let added: Vec<bool> = futures_util::future::join_all(racing)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(added.iter().filter(|a| **a).count(), 1, "{added:?}");
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(
        keys.len(),
        1,
        "the others' candidates are not kept: {keys:?}"
    );
    assert!(keys[0].is_active());
    assert_eq!(keys[0].activated_at, Some(T));
    // With one active, another first key is not added; a pending one is, once per kid.
    assert!(!store.add_signing_key(key("late", T), true).await.unwrap());
    assert!(
        store
            .add_signing_key(key("next", T + 1), false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_signing_key(key("next", T + 2), false)
            .await
            .unwrap()
    );
}

pub(crate) async fn activating_a_key_swaps_and_the_active_one_is_never_retired(store: &dyn Store) {
    assert!(store.add_signing_key(key("a", T), true).await.unwrap());
    assert!(store.add_signing_key(key("b", T + 1), false).await.unwrap());
    assert!(
        !store.retire_signing_key("a", T + 2).await.unwrap(),
        "a is active"
    );
    assert!(!store.activate_signing_key("unknown", T + 2).await.unwrap());
    assert!(store.activate_signing_key("b", T + 3).await.unwrap());
    let keys = store.signing_keys().await.unwrap();
    let state: Vec<_> = keys
        .iter()
        .map(|k| {
            (
                k.kid.as_str(),
                k.is_active(),
                k.activated_at,
                k.deactivated_at,
            )
        })
        .collect();
    assert_eq!(
        state,
        [
            ("a", false, Some(T), Some(T + 3)),
            ("b", true, Some(T + 3), None)
        ]
    );
    // Two activations at once: one key signs after them, whichever it is.
    assert!(store.add_signing_key(key("c", T + 4), false).await.unwrap());
    let (a, c) = tokio::join!(
        store.activate_signing_key("a", T + 5),
        store.activate_signing_key("c", T + 5)
    );
    assert!(a.unwrap() && c.unwrap());
    let active = store.signing_keys().await.unwrap();
    assert_eq!(
        active.iter().filter(|k| k.is_active()).count(),
        1,
        "{active:?}"
    );
    // A retired key is gone for good: neither activated nor retired again.
    assert!(store.retire_signing_key("b", T + 6).await.unwrap());
    assert!(!store.retire_signing_key("b", T + 7).await.unwrap());
    assert!(!store.activate_signing_key("b", T + 7).await.unwrap());
    let b = store.signing_keys().await.unwrap();
    let b = b.iter().find(|k| k.kid == "b").unwrap();
    assert_eq!(b.retired_at, Some(T + 6));
}

/// A login that upgrades the user's password hash writes it with the session, and one that
/// does not leaves it.
pub(crate) async fn a_login_upgrades_the_password_hash_with_its_session(store: &dyn Store) {
    let alice = user(store, "alice").await;
    assert!(login(store, alice, "s1", "r1", T).await);
    let before = store.user_by_id(alice).await.unwrap().unwrap().password;
    assert_eq!(before.as_str(), "-");
    let upgrade = Login {
        session: Session {
            id: "s2".into(),
            user_id: alice,
            created_at: T + 1,
            last_refreshed_at: T + 1,
            expires_at: T + DAY,
            ip: None,
            user_agent: None,
            revoked_at: None,
        },
        token: token("r2", alice, T + 1),
        record_login: false,
        new_password: Some("$argon2id$v=19$new".into()),
    };
    assert!(store.start_session(upgrade).await.unwrap());
    let after = store.user_by_id(alice).await.unwrap().unwrap().password;
    assert_eq!(after.as_str(), "$argon2id$v=19$new");
    assert_eq!(ids(store, alice, T + 1).await, ["s2", "s1"]);
}

fn imported(id: i64, username: &str) -> ImportedUser {
    ImportedUser {
        id,
        username: username.into(),
        password: "pbkdf2_sha256$1000$salt$hash".into(),
        is_active: true,
        is_staff: false,
        is_superuser: false,
        date_joined: T - 1000,
        last_login: None,
    }
}

const IMPORT: ImportMode = ImportMode {
    keep_ours: false,
    dry_run: false,
    now: T,
};

async fn import(store: &dyn Store, batch: &Import, mode: ImportMode) -> ImportOutcome {
    store.import(batch.clone(), mode).await.unwrap()
}

/// An import keeps ids, hashes, flags and times; its tokens refresh (in no session) unless
/// blacklisted; twice changes nothing; a clash writes nothing unless ours are kept; a dry run
/// writes nothing; and the next user made gets the id after the imported ones.
pub(crate) async fn an_import_keeps_ids_and_is_all_or_nothing(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = ImportedUser {
        is_staff: true,
        is_superuser: true,
        last_login: Some(T - 50),
        ..imported(alice + 10, "bob")
    };
    let carol = ImportedUser {
        is_active: false,
        ..imported(alice + 11, "carol")
    };
    let batch = Import {
        users: vec![bob.clone(), carol],
        tokens: vec![
            token("live", bob.id, T - 60),
            token("listed", bob.id, T - 60),
        ],
        blacklisted: vec![ImportedBlacklisting {
            jti: "listed".into(),
            expires_at: T - 60 + DAY,
            blacklisted_at: T - 10,
        }],
    };
    let counts = ImportCounts {
        users_imported: 2,
        tokens: 2,
        blacklisted: 1,
        ..ImportCounts::default()
    };
    assert_eq!(
        import(store, &batch, IMPORT).await,
        ImportOutcome::Done(counts)
    );
    let kept = store.user_by_id(bob.id).await.unwrap().unwrap();
    let as_imported = (
        kept.username.as_str(),
        kept.password.as_str(),
        kept.is_active,
        kept.is_staff,
        kept.is_superuser,
        kept.date_joined,
        kept.last_login,
    );
    let hash = bob.password.as_str();
    assert_eq!(
        as_imported,
        ("bob", hash, true, true, true, T - 1000, Some(T - 50))
    );
    assert!(
        !store
            .user_by_name("carol")
            .await
            .unwrap()
            .unwrap()
            .is_active
    );
    assert!(store.is_blacklisted("listed").await.unwrap());
    let refused = rotate(store, bob.id, ("listed", T - 60), "x", T).await;
    assert_eq!(refused, RefreshOutcome::Blacklisted);
    let rotated = rotate(store, bob.id, ("live", T - 60), "next", T).await;
    assert_eq!(rotated, RefreshOutcome::Done);

    // The same rows again: nothing to write.
    let unchanged = ImportCounts {
        users_unchanged: 2,
        ..ImportCounts::default()
    };
    assert_eq!(
        import(store, &batch, IMPORT).await,
        ImportOutcome::Done(unchanged)
    );

    // Clashes: all reported, nothing written, not even the user that was fine.
    let clashing = Import {
        users: vec![
            imported(alice, "not-alice"),
            imported(alice + 20, "alice"),
            imported(alice + 21, "dan"),
        ],
        tokens: vec![token("alices", alice, T), token("dans", alice + 21, T)],
        ..Import::default()
    };
    let ImportOutcome::Conflicts(conflicts) = import(store, &clashing, IMPORT).await else {
        panic!("a clash must be refused");
    };
    let names: Vec<&str> = conflicts.iter().map(|c| c.username.as_str()).collect();
    assert_eq!(names, ["not-alice", "alice"]);
    assert!(store.user_by_name("dan").await.unwrap().is_none());
    assert!(!store.is_blacklisted("alices").await.unwrap());

    // A dry run keeping ours: counted, not written.
    let keep = ImportMode {
        keep_ours: true,
        ..IMPORT
    };
    let dry = ImportMode {
        dry_run: true,
        ..keep
    };
    let counts = ImportCounts {
        users_imported: 1,
        users_skipped: vec!["not-alice".into(), "alice".into()],
        tokens: 1,
        blacklisted: 1,
        ..ImportCounts::default()
    };
    assert_eq!(
        import(store, &clashing, dry).await,
        ImportOutcome::Done(counts.clone())
    );
    assert!(store.user_by_name("dan").await.unwrap().is_none());
    assert!(!store.is_blacklisted("alices").await.unwrap());

    // Keeping ours for real: dan comes in; the token naming alice's id, issued there to
    // someone else, is refused here.
    assert_eq!(
        import(store, &clashing, keep).await,
        ImportOutcome::Done(counts)
    );
    assert_eq!(
        store.user_by_name("dan").await.unwrap().unwrap().id,
        alice + 21
    );
    assert_eq!(
        store.user_by_name("alice").await.unwrap().unwrap().id,
        alice
    );
    assert!(store.is_blacklisted("alices").await.unwrap());
    let next = user(store, "erin").await;
    assert_eq!(next, alice + 22);
}

/// One test per rule, for the engine opened by `$open`: an expression giving a pair of the
/// engine's store (its own type, not an `Arc`) and whatever must outlive the test (its files).
macro_rules! store_contract {
    ($open:expr) => {
        $crate::store::contract::store_contract!(@rules $open;
            a_login_starts_a_session_holding_its_token,
            sessions_are_listed_newest_first_and_only_live_ones,
            a_refresh_carries_the_session_on,
            a_reuse_within_the_interval_is_refused_alone,
            a_reuse_past_the_interval_revokes_the_session,
            a_zero_interval_revokes_on_any_reuse,
            a_token_outside_any_session_works_as_before,
            blacklisting_a_token_ends_its_session,
            only_the_owner_ends_a_live_session,
            logging_out_everywhere_refuses_every_earlier_token,
            flushing_drops_sessions_whose_tokens_all_expired,
            a_deleted_user_takes_their_sessions,
            concurrent_login_failures_all_count,
            concurrent_login_failures_reach_the_lock,
            racing_first_keys_leave_one_active,
            a_login_upgrades_the_password_hash_with_its_session,
            activating_a_key_swaps_and_the_active_one_is_never_retired,
            an_import_keeps_ids_and_is_all_or_nothing
        );
    };
    (@rules $open:expr; $($rule:ident),*) => {
        $(
            #[tokio::test]
            async fn $rule() {
                let (store, _keep) = $open;
                $crate::store::contract::$rule(&store).await;
            }
        )*
    };
}
pub(crate) use store_contract;

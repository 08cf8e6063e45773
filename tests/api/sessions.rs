//! Sessions: every login starts one; a rotated refresh token reused past the reuse interval
//! revokes it; blacklisting ends it; users list and end theirs ("log out everywhere" too);
//! the CLI does the same; flushing drops the expired ones.

use crate::common::*;
use handstamp::service::rfc3339;
use handstamp::store::{Login, Outstanding, Session};
use serde_json::{Value, json};
use std::sync::Arc;

/// Refreshes `refresh`: status and body.
async fn refresh(s: &TestServer, refresh: &str) -> (u16, Value) {
    reply(
        s.post("/api/token/refresh/", json!({"refresh": refresh}))
            .await,
    )
    .await
}

/// Refreshes `token`, which must work; returns the new refresh token.
async fn rotated(s: &TestServer, token: &str) -> String {
    let (status, body) = refresh(s, token).await;
    assert_eq!(status, 200, "{body}");
    body["refresh"].as_str().unwrap().to_owned()
}

/// The caller's sessions, as `GET /api/sessions/` lists them.
async fn sessions(s: &TestServer, access: &str) -> Vec<Value> {
    let (status, body) = reply(s.get_bearer("/api/sessions/", access).await).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

async fn session_ids(s: &TestServer, access: &str) -> Vec<String> {
    let listed = sessions(s, access).await;
    listed
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Logs in with a `User-Agent` of its own: (refresh, access).
async fn login_as(s: &TestServer, name: &str, user_agent: &str) -> (String, String) {
    let r = s
        .client
        .post(s.url("/api/token/"))
        .header("User-Agent", user_agent)
        .json(&json!({"username": name, "password": "pw"}))
        .send()
        .await
        .unwrap();
    let (status, body) = reply(r).await;
    assert_eq!(status, 200, "{body}");
    let token = |key: &str| body[key].as_str().unwrap().to_owned();
    (token("refresh"), token("access"))
}

fn blacklisted() -> (u16, Value) {
    (401, token_not_valid("Token is blacklisted"))
}

/// simplejwt's answer to an access token refused on a protected endpoint.
fn access_not_valid() -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{
            "token_class": "AccessToken",
            "token_type": "access",
            "message": "Token is invalid"
        }]
    })
}

/// A token of `kind` for `user_id` issued (`iat`) `age` seconds ago, signed with the test key,
/// recorded nowhere (as one from before sessions existed).
fn issued_ago(kind: &str, user_id: i64, age: i64) -> String {
    let t = now();
    let (jti, user_id) = (handstamp::token::new_jti(), user_id.to_string());
    let (exp, iat) = (t + 300, t - age);
    hs256(json!({"token_type": kind, "exp": exp, "iat": iat, "jti": jti, "user_id": user_id}))
}

#[tokio::test]
async fn a_reuse_past_the_interval_revokes_the_session() {
    let s =
        TestServer::start_with(|c| c.jwt.refresh_reuse_interval = std::time::Duration::ZERO).await;
    s.create_user("ann", "pw").await;
    let (r1, access) = s.login("ann", "pw").await;
    assert_eq!(session_ids(&s, &access).await.len(), 1);
    let r2 = rotated(&s, &r1).await;
    assert_eq!(refresh(&s, &r1).await, blacklisted());
    // The session's current token is refused as well, and the session is gone.
    assert_eq!(refresh(&s, &r2).await, blacklisted());
    assert_eq!(session_ids(&s, &access).await, Vec::<String>::new());
    let (status, body) = reply(s.post("/api/token/verify/", json!({"token": r2})).await).await;
    assert_eq!(
        (status, body),
        (400, json!({"non_field_errors": ["Token is blacklisted"]}))
    );
    // Access tokens name no session: the revoked session's live out their lifetime.
    assert_eq!(s.get_bearer("/api/users/me/", &access).await.status(), 200);
    // A new login is a new session.
    let (r3, access) = s.login("ann", "pw").await;
    rotated(&s, &r3).await;
    assert_eq!(session_ids(&s, &access).await.len(), 1);
}

/// The compatibility flow: a client that reuses a rotated token at once, then refreshes the new
/// one, keeps working, as with simplejwt.
#[tokio::test]
async fn a_reuse_within_the_interval_keeps_the_session() {
    let s = TestServer::start_with(|c| {
        c.jwt.refresh_reuse_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    s.create_user("bea", "pw").await;
    let (r1, access) = s.login("bea", "pw").await;
    let r2 = rotated(&s, &r1).await;
    assert_eq!(refresh(&s, &r1).await, blacklisted());
    assert_eq!(refresh(&s, &r1).await, blacklisted());
    let r3 = rotated(&s, &r2).await;
    rotated(&s, &r3).await;
    assert_eq!(session_ids(&s, &access).await.len(), 1);
}

#[tokio::test]
async fn blacklisting_a_refresh_token_ends_its_session() {
    let s = TestServer::start().await;
    s.create_user("cid", "pw").await;
    let (first, access) = s.login("cid", "pw").await;
    let (other, _) = s.login("cid", "pw").await;
    let before = session_ids(&s, &access).await;
    assert_eq!(before.len(), 2);
    let current = rotated(&s, &first).await;
    let (status, body) = reply(
        s.post("/api/token/blacklist/", json!({"refresh": current}))
            .await,
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(refresh(&s, &current).await, blacklisted());
    // The other session lives on: it is the newer of the two.
    assert_eq!(session_ids(&s, &access).await, before[..1]);
    rotated(&s, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_leave_one_winner_and_a_live_session() {
    let s = Arc::new(
        TestServer::start_with(|c| {
            c.jwt.refresh_reuse_interval = std::time::Duration::from_secs(3600);
        })
        .await,
    );
    s.create_user("dot", "pw").await;
    let (token, access) = s.login("dot", "pw").await;
    let attempts: Vec<_> = (0..64)
        .map(|_| {
            let (s, token) = (s.clone(), token.clone());
            tokio::spawn(async move { refresh(&s, &token).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let losers = outcomes.iter().filter(|(status, _)| *status != 200);
    for outcome in losers {
        assert_eq!(outcome, &blacklisted());
    }
    // The session survives with the winner's token.
    let winner = winners[0]["refresh"].as_str().unwrap();
    rotated(&s, winner).await;
    assert_eq!(session_ids(&s, &access).await.len(), 1);
}

#[tokio::test]
async fn users_list_and_end_their_own_sessions() {
    let s = TestServer::start().await;
    s.create_user("eve", "pw").await;
    s.create_user("fred", "pw").await;
    let started = now();
    let (eve_first, _) = login_as(&s, "eve", "first-browser/1.0").await;
    let long_agent = "é".repeat(400); // 800 bytes
    let (eve_second, eve) = login_as(&s, "eve", &long_agent).await;
    let (fred_refresh, fred) = login_as(&s, "fred", "fred-browser").await;
    let ended = now();

    let listed = sessions(&s, &eve).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let times: Vec<String> = (started..=ended + 86_400).map(rfc3339).collect();
    for session in &listed {
        let keys: Vec<&String> = session.as_object().unwrap().keys().collect();
        let mut expected = [
            "created_at",
            "expires_at",
            "id",
            "ip",
            "last_refreshed_at",
            "user_agent",
        ];
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(session["id"].as_str().unwrap().len(), 22);
        assert_eq!(session["ip"], "127.0.0.1");
        for key in ["created_at", "last_refreshed_at", "expires_at"] {
            let time = session[key].as_str().unwrap().to_owned();
            assert!(times.contains(&time), "{key}: {time}");
        }
        assert_eq!(session["created_at"], session["last_refreshed_at"]);
    }
    // Newest first; the user agent kept to 512 bytes, cut between characters.
    assert_eq!(listed[0]["user_agent"], "é".repeat(256));
    assert_eq!(listed[1]["user_agent"], "first-browser/1.0");
    let (eve_newest, eve_oldest) = (
        listed[0]["id"].as_str().unwrap(),
        listed[1]["id"].as_str().unwrap(),
    );
    let freds = session_ids(&s, &fred).await;
    assert_eq!(freds.len(), 1);

    // Another user's session and an unknown one get the same 404.
    let not_found = (404, json!({"detail": "Not found."}));
    let path = |id: &str| format!("/api/sessions/{id}/");
    let other = s.delete_bearer(&path(&freds[0]), &eve).await;
    assert_eq!(reply(other).await, not_found);
    let unknown = s.delete_bearer(&path("AAAAAAAAAAAAAAAAAAAAAA"), &eve).await;
    assert_eq!(reply(unknown).await, not_found);

    // Ending one: 204, its token stops working, the other session stays.
    let r = s.delete_bearer(&path(eve_oldest), &eve).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(refresh(&s, &eve_first).await, blacklisted());
    assert_eq!(session_ids(&s, &eve).await, [eve_newest]);
    let again = s.delete_bearer(&path(eve_oldest), &eve).await;
    assert_eq!(reply(again).await, not_found);

    // Ending all of them ("log out everywhere").
    let bare = s.delete_bearer("/api/sessions", &eve).await;
    assert_eq!(bare.status(), 204);
    assert_eq!(refresh(&s, &eve_second).await, blacklisted());
    let (_, eve) = s.login("eve", "pw").await;
    assert_eq!(session_ids(&s, &eve).await.len(), 1);
    // Fred's session was never touched.
    assert_eq!(session_ids(&s, &fred).await, freds);
    rotated(&s, &fred_refresh).await;
}

#[tokio::test]
async fn the_sessions_api_is_protected() {
    let s = TestServer::start().await;
    s.create_user("gil", "pw").await;
    let (refresh, access) = s.login("gil", "pw").await;
    let r = s.client.get(s.url("/api/sessions/")).send().await.unwrap();
    assert_eq!(
        reply(r).await,
        (
            401,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
    // A refresh token is no access token, on either route.
    for path in ["/api/sessions/", "/api/sessions/x/"] {
        let r = s.delete_bearer(path, &refresh).await;
        let (status, body) = reply(r).await;
        assert_eq!(status, 401);
        assert_eq!(body["code"], "token_not_valid");
        assert_eq!(body["messages"][0]["message"], "Token has wrong type");
    }
    // Authentication before the method check.
    let r = s.client.post(s.url("/api/sessions/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .client
        .post(s.url("/api/sessions/"))
        .header("Authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply(r).await,
        (405, json!({"detail": "Method \"POST\" not allowed."}))
    );
    assert_eq!(session_ids(&s, &access).await.len(), 1);
}

#[tokio::test]
async fn logging_out_everywhere_refuses_earlier_access_tokens_where_the_user_is_loaded() {
    let s = TestServer::start().await;
    let id = s.create_user("hal", "pw").await;
    let (_, access) = s.login("hal", "pw").await;
    let earlier = issued_ago("access", id, 10);
    // A refresh token from before sessions existed (recorded in none) is refused too.
    let old_refresh = issued_ago("refresh", id, 10);
    for token in [&access, &earlier] {
        assert_eq!(s.get_bearer("/api/users/me/", token).await.status(), 200);
    }
    let r = s.delete_bearer("/api/sessions/", &access).await;
    assert_eq!(r.status(), 204);
    let refused = (401, access_not_valid());
    assert_eq!(
        reply(s.get_bearer("/api/users/me/", &earlier).await).await,
        refused
    );
    let check = s.get_bearer("/api/auth/check", &earlier).await;
    assert_eq!(reply(check).await, refused);
    assert_eq!(refresh(&s, &old_refresh).await, blacklisted());
    // A token issued from now on works at once.
    let (_, access) = s.login("hal", "pw").await;
    let r = s.get_bearer("/api/users/me/", &access).await;
    assert_eq!(reply(r).await, (200, json!({"id": id, "username": "hal"})));
}

/// A session recorded straight into the store, `age` seconds old, expiring `expires_in` from
/// now; returns that now.
async fn stored_session(
    s: &handstamp::AuthService,
    user_id: i64,
    id: &str,
    age: i64,
    expires_in: i64,
) -> i64 {
    let t = now();
    let token = Outstanding {
        jti: handstamp::token::new_jti(),
        user_id: Some(user_id),
        created_at: Some(t - age),
        expires_at: t + expires_in,
    };
    let session = Session {
        id: id.into(),
        user_id,
        created_at: t - age,
        last_refreshed_at: t - age,
        expires_at: t + expires_in,
        ip: Some("192.0.2.1".into()),
        user_agent: Some("tab\there".into()),
        revoked_at: None,
    };
    let login = Login {
        session,
        token,
        record_login: false,
        new_password: None,
    };
    assert!(s.store().start_session(login).await.unwrap());
    t
}

fn output(out: &std::process::Output) -> (bool, String, String) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn flushing_drops_expired_sessions() {
    let s = TestServer::start().await;
    let id = s.create_user("ida", "pw").await;
    stored_session(&s.service, id, "expired", 2 * 86_400, -86_400).await;
    stored_session(&s.service, id, "just-expired", 2 * 86_400, -10).await;
    // Revoked, but its token has not expired: kept (not listed) until it has.
    stored_session(&s.service, id, "revoked", 60, 3600).await;
    assert!(s.service.end_session(id, "revoked").await.unwrap());
    stored_session(&s.service, id, "live", 60, 86_400).await;
    let (_, access) = s.login("ida", "pw").await;
    let url = s.database_url.clone();
    let out = command(s.dir.path(), &["--database", &url, "flush-expired-tokens"])
        .output()
        .unwrap();
    assert_eq!(
        output(&out),
        (
            true,
            "deleted 2 expired tokens\ndeleted 2 expired sessions\n".into(),
            String::new()
        )
    );
    let listed = session_ids(&s, &access).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], "live");
}

#[tokio::test]
async fn the_cli_lists_and_revokes_a_users_sessions() {
    let s = TestServer::start().await;
    let id = s.create_user("jo", "pw").await;
    s.create_user("kim", "pw").await;
    let (phone, _) = login_as(&s, "jo", "phone").await;
    let t = stored_session(&s.service, id, "older", 60, 3600).await;
    let (kim, _) = s.login("kim", "pw").await;
    let url = s.database_url.clone();
    let cli = |args: &[&str]| {
        let mut all = vec!["--database", url.as_str()];
        all.extend(args);
        output(&command(s.dir.path(), &all).output().unwrap())
    };

    let (ok, listed, _) = cli(&["session", "list", "jo"]);
    assert!(ok);
    let lines: Vec<Vec<&str>> = listed.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        lines[0],
        [
            "id",
            "created_at",
            "last_refreshed_at",
            "expires_at",
            "ip",
            "user_agent"
        ]
    );
    assert_eq!(lines.len(), 3, "{listed}");
    let phone_id = lines[1][0].to_owned();
    assert_eq!(&lines[1][4..], ["127.0.0.1", "phone"]);
    // A tab the client sent does not split the line.
    let (created, expires) = (rfc3339(t - 60), rfc3339(t + 3600));
    assert_eq!(
        lines[2],
        [
            "older",
            &created,
            &created,
            &expires,
            "192.0.2.1",
            "tab here"
        ]
    );

    let (ok, said, _) = cli(&["session", "revoke", "jo", &phone_id]);
    assert!(ok);
    assert_eq!(said, format!("revoked session {phone_id} of jo\n"));
    assert_eq!(refresh(&s, &phone).await, blacklisted());
    let (ok, _, error) = cli(&["session", "revoke", "jo", &phone_id]);
    assert!(!ok);
    assert_eq!(
        error,
        format!("error: jo has no live session {phone_id:?}\n")
    );

    let (ok, said, _) = cli(&["session", "revoke", "jo", "--all"]);
    assert!(ok);
    assert_eq!(
        said,
        "revoked 1 session of jo; tokens issued before now are refused\n"
    );
    let (ok, listed, _) = cli(&["session", "list", "jo"]);
    assert!(ok);
    assert_eq!(listed.lines().count(), 1);
    let earlier = issued_ago("access", id, 10);
    assert_eq!(s.get_bearer("/api/users/me/", &earlier).await.status(), 401);
    // Kim is untouched.
    rotated(&s, &kim).await;

    let (ok, _, error) = cli(&["session", "list", "nobody"]);
    assert!(!ok);
    assert_eq!(error, "error: no user named \"nobody\"\n");
    let (ok, _, error) = cli(&["session", "revoke", "jo"]);
    assert!(!ok);
    assert!(
        error.contains("required arguments were not provided"),
        "{error}"
    );
}

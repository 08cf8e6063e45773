//! Login throttling: failed logins per username and per client address lock them for a while,
//! the answer the same whether or not the user exists.

use crate::common::*;
use handstamp::config::Settings;
use reqwest::Response;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

fn limits(per_username: u32, per_address: u32, lockout: &str) -> impl FnOnce(&mut Settings) {
    let lockout = handstamp::config::parse_duration("login_lockout", lockout).unwrap();
    move |s: &mut Settings| {
        s.login.login_max_failures = per_username;
        s.login.login_max_failures_per_ip = per_address;
        s.login.login_lockout = lockout;
    }
}

async fn login_from(
    s: &TestServer,
    name: &str,
    password: &str,
    forwarded: Option<&str>,
) -> Response {
    let mut request = s
        .client
        .post(s.url("/api/token/"))
        .json(&json!({"username": name, "password": password}));
    if let Some(addr) = forwarded {
        request = request.header("X-Forwarded-For", addr);
    }
    request.send().await.unwrap()
}

async fn login(s: &TestServer, name: &str, password: &str) -> Response {
    login_from(s, name, password, None).await
}

/// Status, Retry-After and body of an answer.
async fn answer(r: Response) -> (u16, Option<u64>, Value) {
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let status = r.status().as_u16();
    (status, retry_after, r.json().await.unwrap())
}

fn throttled_body() -> Value {
    json!({"detail": "Too many failed login attempts. Try again later."})
}

#[tokio::test]
async fn failures_lock_the_username_even_for_the_right_password_until_the_lockout_ends() {
    // Whole seconds: a lockout of 3 s leaves at least 2 s after the failure that locks.
    let s = TestServer::start_with(limits(3, 0, "3s")).await;
    s.create_user("alice", PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(login(&s, "alice", "wrong").await.status(), 401);
    }
    let (status, retry_after, body) = answer(login(&s, "alice", PASSWORD).await).await;
    assert_eq!((status, body), (429, throttled_body()));
    assert!(matches!(retry_after, Some(1..=3)), "{retry_after:?}");
    // Another username is not locked.
    s.create_user("bob", PASSWORD).await;
    assert_eq!(login(&s, "bob", PASSWORD).await.status(), 200);
    // The lock ends by itself: poll with the right password until it lets through.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = login(&s, "alice", PASSWORD).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(Instant::now() < deadline, "still locked after the lockout");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn unknown_and_existing_usernames_are_throttled_alike() {
    let s = TestServer::start_with(limits(2, 0, "5m")).await;
    s.create_user("alice", PASSWORD).await;
    let mut answers = Vec::new();
    for name in ["alice", "nobody"] {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (status, retry_after, body) = answer(login(&s, name, "wrong").await).await;
            seen.push((status, retry_after.is_some(), body));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0][2], (429, true, throttled_body()));
    assert_eq!(answers[0][1].0, 401);
}

#[tokio::test]
async fn a_successful_login_clears_the_usernames_count() {
    let s = TestServer::start_with(limits(3, 0, "5m")).await;
    s.create_user("alice", PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(login(&s, "alice", "wrong").await.status(), 401);
    }
    assert_eq!(login(&s, "alice", PASSWORD).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(login(&s, "alice", "wrong").await.status(), 401);
    }
    assert_eq!(login(&s, "alice", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn zero_turns_a_limit_off() {
    let s = TestServer::start_with(limits(0, 0, "5m")).await;
    s.create_user("alice", PASSWORD).await;
    for _ in 0..8 {
        assert_eq!(login(&s, "alice", "wrong").await.status(), 401);
    }
    assert_eq!(login(&s, "alice", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn failures_from_one_address_lock_it_for_every_username() {
    let s = TestServer::start_with(limits(0, 3, "5m")).await;
    s.create_user("alice", PASSWORD).await;
    for name in ["a", "b", "c"] {
        assert_eq!(login(&s, name, "wrong").await.status(), 401);
    }
    let (status, retry_after, body) = answer(login(&s, "alice", PASSWORD).await).await;
    assert_eq!((status, body), (429, throttled_body()));
    assert!(retry_after.is_some());
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    // Untrusted: X-Forwarded-For is the client's word, and the peer (127.0.0.1) is counted.
    let s = TestServer::start_with(limits(0, 2, "5m")).await;
    for addr in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(login_from(&s, "x", "wrong", Some(addr)).await.status(), 401);
    }
    let r = login_from(&s, "x", "wrong", Some("203.0.113.3")).await;
    assert_eq!(r.status(), 429);

    // Trusted: the address the proxy saw is counted, each on its own.
    let s = TestServer::start_with(|c| {
        limits(0, 2, "5m")(c);
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    for _ in 0..2 {
        let r = login_from(&s, "x", "wrong", Some("9.9.9.9, 203.0.113.1")).await;
        assert_eq!(r.status(), 401);
    }
    // The client cannot dodge by writing another address left of the proxy's.
    let r = login_from(&s, "x", "wrong", Some("198.51.100.7, 203.0.113.1")).await;
    assert_eq!(r.status(), 429);
    let r = login_from(&s, "x", "wrong", Some("203.0.113.2")).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn instances_on_one_database_share_the_counts() {
    let first = TestServer::start_with(limits(2, 0, "5m")).await;
    let second = first.start_beside(limits(2, 0, "5m")).await;
    first.create_user("alice", PASSWORD).await;
    assert_eq!(login(&first, "alice", "wrong").await.status(), 401);
    assert_eq!(login(&second, "alice", "wrong").await.status(), 401);
    assert_eq!(login(&first, "alice", PASSWORD).await.status(), 429);
    assert_eq!(login(&second, "alice", PASSWORD).await.status(), 429);
}

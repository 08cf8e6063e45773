//! The HTTP contract of ../shared/API.md, row by row, against a real server.

use crate::common::*;
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

fn is_jti(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 32
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The keys of a JSON object as they stand in the text.
fn key_order(json_text: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(json_text).unwrap();
    let mut keys: Vec<(usize, String)> = value
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (json_text.find(&format!("\"{k}\":")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[tokio::test]
async fn login_issues_a_pair_shaped_like_simplejwts() {
    let s = TestServer::start().await;
    let id = s.create_user("alice", "correct horse").await;
    let r = s
        .post(
            "/api/token/",
            json!({"username": "alice", "password": "correct horse"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    let text = r.text().await.unwrap();
    assert_eq!(key_order(&text), ["refresh", "access"]);
    let body: Value = serde_json::from_str(&text).unwrap();
    let (refresh, access) = (
        body["refresh"].as_str().unwrap(),
        body["access"].as_str().unwrap(),
    );

    for (token, kind, lifetime) in [(refresh, "refresh", 86_400), (access, "access", 300)] {
        let (header, payload) = parts(token);
        assert_eq!(header, r#"{"alg":"HS256","typ":"JWT"}"#);
        assert!(!token.contains('='), "base64url without padding");
        assert_eq!(
            key_order(&payload),
            ["token_type", "exp", "iat", "jti", "user_id"]
        );
        let c = claims(token);
        assert_eq!(c["token_type"], kind);
        assert_eq!(
            c["user_id"],
            json!(id.to_string()),
            "user_id is a JSON string"
        );
        assert!(is_jti(&c["jti"]), "{}", c["jti"]);
        let (exp, iat) = (c["exp"].as_i64().unwrap(), c["iat"].as_i64().unwrap());
        assert_eq!(exp - iat, lifetime);
        assert!((iat - now()).abs() <= 2);
    }
    assert_ne!(claims(refresh)["jti"], claims(access)["jti"]);
}

#[tokio::test]
async fn paths_answer_with_and_without_trailing_slash() {
    let s = TestServer::start().await;
    s.create_user("bob", "pw").await;
    for path in ["/api/token/", "/api/token"] {
        let r = s
            .post(path, json!({"username": "bob", "password": "pw"}))
            .await;
        assert_eq!(r.status(), 200, "{path}");
    }
    for path in ["/healthz", "/healthz/", "/readyz", "/readyz/"] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(reply(r).await, (200, json!({"status": "ok"})), "{path}");
    }
}

#[tokio::test]
async fn failed_logins_are_indistinguishable() {
    let s = TestServer::start().await;
    s.create_user("carol", "right").await;
    s.create_user("dave", "right").await;
    s.service.store().set_active("dave", false).await.unwrap();
    let attempts = [
        json!({"username": "carol", "password": "wrong"}),
        json!({"username": "nobody", "password": "right"}),
        json!({"username": "dave", "password": "right"}),
    ];
    let mut bodies = Vec::new();
    for body in attempts {
        let r = s.post("/api/token/", body).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
        bodies.push(r.bytes().await.unwrap());
    }
    assert_eq!(
        bodies[0],
        r#"{"detail":"No active account found with the given credentials"}"#
    );
    assert!(bodies.iter().all(|b| *b == bodies[0]));
}

#[tokio::test]
async fn field_errors_follow_drf() {
    let s = TestServer::start().await;
    let cases = [
        (
            json!({}),
            json!({"username": ["This field is required."], "password": ["This field is required."]}),
        ),
        (
            json!({"username": "x"}),
            json!({"password": ["This field is required."]}),
        ),
        (
            json!({"username": "", "password": null}),
            json!({"username": ["This field may not be blank."], "password": ["This field may not be null."]}),
        ),
        (
            json!({"username": "   ", "password": "x"}),
            json!({"username": ["This field may not be blank."]}),
        ),
        (
            json!({"username": true, "password": ["x"]}),
            json!({"username": ["Not a valid string."], "password": ["Not a valid string."]}),
        ),
        (
            json!([1, 2]),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        ),
        (
            json!("text"),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}),
        ),
        (
            json!(7),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]}),
        ),
        (
            json!(1.5),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got float."]}),
        ),
        (
            json!(false),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got bool."]}),
        ),
        (
            json!(null),
            json!({"non_field_errors": ["No data provided"]}),
        ),
    ];
    for (body, expected) in cases {
        let r = s.post("/api/token/", body.clone()).await;
        assert_eq!(reply(r).await, (400, expected), "{body}");
    }
    let r = s.post("/api/token/refresh/", json!({})).await;
    assert_eq!(
        reply(r).await,
        (400, json!({"refresh": ["This field is required."]}))
    );
    let r = s.post("/api/token/verify/", json!({"token": ""})).await;
    assert_eq!(
        reply(r).await,
        (400, json!({"token": ["This field may not be blank."]}))
    );
    let r = s
        .post("/api/token/blacklist/", json!({"refresh": null}))
        .await;
    assert_eq!(
        reply(r).await,
        (400, json!({"refresh": ["This field may not be null."]}))
    );
}

#[tokio::test]
async fn field_error_keys_keep_declaration_order() {
    let s = TestServer::start().await;
    let r = s.post("/api/token/", json!({})).await;
    let text = r.text().await.unwrap();
    assert_eq!(key_order(&text), ["username", "password"]);
}

#[tokio::test]
async fn numbers_are_taken_as_text_and_whitespace_trimmed() {
    let s = TestServer::start().await;
    s.create_user("123", "456").await;
    let r = s
        .post("/api/token/", json!({"username": 123, "password": 456}))
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .post(
            "/api/token/",
            json!({"username": " 123 ", "password": "456\n"}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let s = TestServer::start().await;
    for body in [r#"{"username": "#, "{'a': 1}", "\u{0}"] {
        let r = s
            .client
            .post(s.url("/api/token/"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, value) = reply(r).await;
        assert_eq!(status, 400, "{body:?}");
        let detail = value["detail"].as_str().unwrap();
        assert!(detail.starts_with("JSON parse error - "), "{detail}");
        assert!(detail.contains("line 1"), "says where: {detail}");
    }
}

#[tokio::test]
async fn form_and_multipart_bodies_are_accepted() {
    let s = TestServer::start().await;
    s.create_user("erin", "p&ss word").await;
    let r = s
        .client
        .post(s.url("/api/token/"))
        .form(&[("username", "erin"), ("password", "p&ss word")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let form = reqwest::multipart::Form::new()
        .text("username", "erin")
        .text("password", "p&ss word");
    let r = s
        .client
        .post(s.url("/api/token/"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let form = reqwest::multipart::Form::new().text("username", "erin");
    let r = s
        .client
        .post(s.url("/api/token/"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply(r).await,
        (400, json!({"password": ["This field is required."]}))
    );
}

#[tokio::test]
async fn empty_bodies_count_as_empty_objects() {
    let s = TestServer::start().await;
    let required =
        json!({"username": ["This field is required."], "password": ["This field is required."]});
    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let mut req = s.client.post(s.url("/api/token/"));
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(reply(r).await, (400, required.clone()), "{content_type:?}");
    }
}

#[tokio::test]
async fn other_content_types_are_unsupported() {
    let s = TestServer::start().await;
    for ct in ["text/plain", "text/plain; charset=utf-8", "application/xml"] {
        let r = s
            .client
            .post(s.url("/api/token/"))
            .header(CONTENT_TYPE, ct)
            .body("username=a")
            .send()
            .await
            .unwrap();
        let expected = json!({"detail": format!("Unsupported media type \"{ct}\" in request.")});
        assert_eq!(reply(r).await, (415, expected));
    }
}

#[tokio::test]
async fn oversized_bodies_get_a_json_413() {
    let s = TestServer::start_with(|cfg| cfg.server.max_body = 4096).await;
    let login = |name_length: usize| {
        let body = format!(
            r#"{{"username": "{}", "password": "x"}}"#,
            "a".repeat(name_length)
        );
        s.client
            .post(s.url("/api/token/"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    let r = login(3000).await.unwrap();
    assert_eq!(r.status(), 401, "under the limit: an ordinary failed login");
    let r = login(5000).await.unwrap();
    assert_eq!(
        reply(r).await,
        (413, json!({"detail": "Request body is too large."}))
    );
    // The server keeps serving.
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths() {
    let s = TestServer::start().await;
    let r = s
        .client
        .get(s.url("/api/token/refresh/"))
        .send()
        .await
        .unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST") && !allow.contains("GET"), "{allow}");
    assert_eq!(
        reply(r).await,
        (405, json!({"detail": "Method \"GET\" not allowed."}))
    );
    let r = s.client.delete(s.url("/api/token/")).send().await.unwrap();
    assert_eq!(
        reply(r).await,
        (405, json!({"detail": "Method \"DELETE\" not allowed."}))
    );
    let r = s.client.post(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    for path in ["/", "/api/", "/api/token/nope/", "/static/x.js"] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(
            reply(r).await,
            (404, json!({"detail": "Not found."})),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let s = TestServer::start().await;
    let requests = [
        s.client.get(s.url("/healthz")),
        s.client.get(s.url("/nowhere")),
        s.client.get(s.url("/api/token/")),
        s.client.get(s.url("/api/users/me/")),
        s.client.post(s.url("/api/token/")).json(&json!({})),
    ];
    for req in requests {
        let r = req.send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    }
}

#[tokio::test]
async fn refresh_rotates_and_blacklists_the_old_token() {
    let s = TestServer::start().await;
    let id = s.create_user("frank", "pw").await;
    let (refresh, _) = s.login("frank", "pw").await;
    let r = s
        .post("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(key_order(&text), ["access", "refresh"]);
    let body: Value = serde_json::from_str(&text).unwrap();
    let (access, rotated) = (
        body["access"].as_str().unwrap(),
        body["refresh"].as_str().unwrap(),
    );

    let (old, new) = (claims(&refresh), claims(rotated));
    assert_eq!(
        key_order(&parts(rotated).1),
        ["token_type", "exp", "iat", "jti", "user_id"]
    );
    assert_ne!(old["jti"], new["jti"]);
    assert_eq!(new["user_id"], json!(id.to_string()));
    assert_eq!(
        new["exp"].as_i64().unwrap() - new["iat"].as_i64().unwrap(),
        86_400
    );
    let a = claims(access);
    assert_eq!(a["token_type"], "access");
    assert_eq!(
        a["iat"], old["iat"],
        "the access token keeps the refresh token's iat"
    );

    let again = s
        .post("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    let blacklisted = token_not_valid("Token is blacklisted");
    assert_eq!(reply(again).await, (401, blacklisted));
    let r = s
        .post("/api/token/refresh/", json!({"refresh": rotated}))
        .await;
    assert_eq!(r.status(), 200, "the rotated token works once");
    let r = s.get_bearer("/api/users/me/", access).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_simplejwts_reasons() {
    let s = TestServer::start().await;
    let id = s.create_user("gina", "pw").await;
    let (refresh, access) = s.login("gina", "pw").await;
    let t = now();
    let uid = id.to_string();
    let expired = hs256(
        json!({"token_type": "refresh", "exp": t - 1, "iat": t - 100, "jti": "a".repeat(32), "user_id": uid}),
    );
    let no_jti = hs256(json!({"token_type": "refresh", "exp": t + 100, "iat": t, "user_id": uid}));
    let no_exp =
        hs256(json!({"token_type": "refresh", "iat": t, "jti": "b".repeat(32), "user_id": uid}));
    let payload = json!({"token_type": "refresh", "exp": t + 100, "iat": t, "jti": "c".repeat(32), "user_id": uid}).to_string();
    let wrong_key = craft(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &payload,
        &[7u8; 64],
        "HS256",
    );
    let other_alg = craft(
        r#"{"alg":"HS512","typ":"JWT"}"#,
        &payload,
        KEY.as_bytes(),
        "HS512",
    );
    let none_alg = format!(
        "{}.",
        craft(
            r#"{"alg":"none","typ":"JWT"}"#,
            &payload,
            KEY.as_bytes(),
            "HS256"
        )
        .rsplit_once('.')
        .unwrap()
        .0
    );
    // The right signature but a header claiming another algorithm.
    let confused = craft(r#"{"alg":"none"}"#, &payload, KEY.as_bytes(), "HS256");
    let mut tampered = refresh.clone();
    tampered.insert(tampered.len() - 3, 'A');
    let cases = [
        (access.as_str(), "Token has wrong type"),
        ("garbage", "Token is invalid"),
        ("a.b.c", "Token is invalid"),
        (expired.as_str(), "Token is expired"),
        (no_jti.as_str(), "Token has no id"),
        (no_exp.as_str(), "Token has no 'exp' claim"),
        (wrong_key.as_str(), "Token is invalid"),
        (other_alg.as_str(), "Token is invalid"),
        (none_alg.as_str(), "Token is invalid"),
        (confused.as_str(), "Token is invalid"),
        (tampered.as_str(), "Token is invalid"),
    ];
    for (token, reason) in cases {
        for path in ["/api/token/refresh/", "/api/token/blacklist/"] {
            let r = s.post(path, json!({"refresh": token})).await;
            assert_eq!(r.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
            let expected = token_not_valid(reason);
            assert_eq!(reply(r).await, (401, expected), "{path} {reason}");
        }
    }
    // A well-formed token we signed ourselves is fine.
    let good = hs256(
        json!({"token_type": "refresh", "exp": t + 100, "iat": t, "jti": "d".repeat(32), "user_id": uid}),
    );
    let r = s
        .post("/api/token/refresh/", json!({"refresh": good}))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn crit_headers_trailing_bytes_and_invalid_utf8_are_invalid_tokens() {
    let s = TestServer::start().await;
    let id = s.create_user("hal", "pw").await;
    let (_, access) = s.login("hal", "pw").await;
    let t = now();
    let payload = json!({"token_type": "access", "exp": t + 100, "iat": t, "jti": "e".repeat(32), "user_id": id.to_string()}).to_string();
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let sign =
        |header: &[u8], payload: &[u8]| craft_bytes(header, payload, KEY.as_bytes(), "HS256");
    // The same claims in an exact copy of a token we signed are fine.
    let (_, own) = parts(&access);
    let good = sign(header.as_bytes(), own.as_bytes());
    assert_eq!(s.get_bearer("/api/users/me/", &good).await.status(), 200);

    // A claim nobody reads, holding a byte that is not UTF-8: `{"x":"\xff",...}`.
    let mut invalid_utf8 = payload.clone().into_bytes();
    invalid_utf8.splice(1..1, *b"\"x\":\"\xff\",");
    let cases = [
        (
            "crit",
            sign(
                br#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
                payload.as_bytes(),
            ),
        ),
        (
            "bytes after the header",
            sign(br#"{"alg":"HS256","typ":"JWT"}{}"#, payload.as_bytes()),
        ),
        (
            "bytes after the payload",
            sign(header.as_bytes(), format!("{payload}x").as_bytes()),
        ),
        (
            "invalid UTF-8 in the header",
            sign(b"{\"alg\":\"HS256\",\"kid\":\"\xff\"}", payload.as_bytes()),
        ),
        (
            "invalid UTF-8 in the payload",
            sign(header.as_bytes(), &invalid_utf8),
        ),
    ];
    // Every case is tried before failing, so that a failure lists all the cases let through.
    let mut let_through = Vec::new();
    for (case, token) in &cases {
        let me = s.get_bearer("/api/users/me/", token).await.status();
        let r = s.post("/api/token/verify/", json!({"token": token})).await;
        let verify = reply(r).await;
        if me != 401 || verify != (401, token_not_valid("Token is invalid")) {
            let_through.push(format!("{case}: /me {me}, verify {verify:?}"));
        }
    }
    assert!(let_through.is_empty(), "{let_through:#?}");
}

#[tokio::test]
async fn refresh_for_an_inactive_or_deleted_user_is_refused() {
    let s = TestServer::start().await;
    s.create_user("hank", "pw").await;
    s.create_user("ivy", "pw").await;
    let (hank_refresh, _) = s.login("hank", "pw").await;
    let (ivy_refresh, _) = s.login("ivy", "pw").await;
    s.service.store().set_active("hank", false).await.unwrap();
    s.service.store().delete_user("ivy").await.unwrap();
    let expected = json!({"detail": "No active account found for the given token."});
    for token in [&hank_refresh, &ivy_refresh] {
        let r = s
            .post("/api/token/refresh/", json!({"refresh": token}))
            .await;
        assert_eq!(r.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
        assert_eq!(reply(r).await, (401, expected.clone()));
    }
    // The refused refresh did not blacklist the token: once reactivated, it works.
    s.service.store().set_active("hank", true).await.unwrap();
    let r = s
        .post("/api/token/refresh/", json!({"refresh": hank_refresh}))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn verify_accepts_any_valid_token_and_reports_blacklisting() {
    let s = TestServer::start().await;
    s.create_user("jack", "pw").await;
    let (refresh, access) = s.login("jack", "pw").await;
    let t = now();
    let untyped = hs256(json!({"exp": t + 60, "jti": "e".repeat(32)}));
    for token in [&access, &refresh, &untyped] {
        let r = s.post("/api/token/verify/", json!({"token": token})).await;
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(reply(r).await, (200, json!({})));
    }
    let no_id = hs256(json!({"token_type": "access", "exp": t + 60}));
    let r = s.post("/api/token/verify/", json!({"token": no_id})).await;
    assert_eq!(reply(r).await, (401, token_not_valid("Token has no id")));
    let expired = hs256(json!({"token_type": "access", "exp": t, "jti": "f".repeat(32)}));
    let r = s
        .post("/api/token/verify/", json!({"token": expired}))
        .await;
    assert_eq!(reply(r).await, (401, token_not_valid("Token is expired")));

    let r = s
        .post("/api/token/blacklist/", json!({"refresh": refresh}))
        .await;
    assert_eq!(reply(r).await, (200, json!({})));
    let r = s
        .post("/api/token/verify/", json!({"token": refresh}))
        .await;
    assert_eq!(
        reply(r).await,
        (400, json!({"non_field_errors": ["Token is blacklisted"]}))
    );
}

#[tokio::test]
async fn blacklisting_ends_the_refresh_token_but_not_its_access_tokens() {
    let s = TestServer::start().await;
    s.create_user("kate", "pw").await;
    let (refresh, access) = s.login("kate", "pw").await;
    let r = s
        .post("/api/token/blacklist/", json!({"refresh": access}))
        .await;
    assert_eq!(
        reply(r).await,
        (401, token_not_valid("Token has wrong type"))
    );
    let r = s
        .post("/api/token/blacklist/", json!({"refresh": refresh}))
        .await;
    assert_eq!(reply(r).await, (200, json!({})));
    let blacklisted = token_not_valid("Token is blacklisted");
    let r = s
        .post("/api/token/blacklist/", json!({"refresh": refresh}))
        .await;
    assert_eq!(reply(r).await, (401, blacklisted.clone()));
    let r = s
        .post("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    assert_eq!(reply(r).await, (401, blacklisted));
    let r = s.get_bearer("/api/users/me/", &access).await;
    assert_eq!(r.status(), 200, "access tokens are stateless");
    // A refresh token we signed but never recorded can be blacklisted too.
    let t = now();
    let unrecorded = hs256(
        json!({"token_type": "refresh", "exp": t + 60, "iat": t, "jti": "9".repeat(32), "user_id": "1"}),
    );
    let r = s
        .post("/api/token/blacklist/", json!({"refresh": unrecorded}))
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .post("/api/token/refresh/", json!({"refresh": unrecorded}))
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn me_returns_exactly_id_and_username() {
    let s = TestServer::start().await;
    let id = s.create_user("liam", "pw").await;
    let (_, access) = s.login("liam", "pw").await;
    let r = s.get_bearer("/api/users/me/", &access).await;
    assert_eq!(reply(r).await, (200, json!({"id": id, "username": "liam"})));
    let r = s.get_bearer("/api/users/me", &access).await;
    assert_eq!(r.status(), 200);
    // An integer user_id is accepted too.
    let t = now();
    let int_id = hs256(
        json!({"token_type": "access", "exp": t + 60, "iat": t, "jti": "1".repeat(32), "user_id": id}),
    );
    let r = s.get_bearer("/api/users/me/", &int_id).await;
    assert_eq!(reply(r).await, (200, json!({"id": id, "username": "liam"})));
}

#[tokio::test]
async fn bearer_header_rules() {
    let s = TestServer::start().await;
    s.create_user("mia", "pw").await;
    let (refresh, access) = s.login("mia", "pw").await;
    let not_provided = json!({"detail": "Authentication credentials were not provided."});
    let bad_header = json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"});
    let cases: Vec<(Option<String>, u16, Value)> = vec![
        (None, 401, not_provided.clone()),
        (Some(String::new()), 401, not_provided.clone()),
        (Some(format!("Token {access}")), 401, not_provided.clone()),
        (Some(format!("bearer {access}")), 401, not_provided.clone()),
        (Some("Basic dXNlcjpwdw==".into()), 401, not_provided.clone()),
        (Some("Bearer".into()), 401, bad_header.clone()),
        (
            Some(format!("Bearer {access} extra")),
            401,
            bad_header.clone(),
        ),
        (
            Some(format!("Bearer    {access}")),
            200,
            json!({"id": 1, "username": "mia"}),
        ),
    ];
    for (header, status, body) in cases {
        let mut req = s.client.get(s.url("/api/users/me/"));
        if let Some(h) = &header {
            req = req.header("Authorization", h);
        }
        let r = req.send().await.unwrap();
        if status == 401 {
            assert_eq!(r.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
        }
        assert_eq!(reply(r).await, (status, body), "{header:?}");
    }

    let t = now();
    let expired = hs256(
        json!({"token_type": "access", "exp": t - 5, "iat": t - 60, "jti": "2".repeat(32), "user_id": "1"}),
    );
    let forged = craft(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &parts(&access).1,
        b"not the key",
        "HS256",
    );
    for (token, reason) in [
        (refresh.as_str(), "Token has wrong type"),
        (expired.as_str(), "Token is expired"),
        (forged.as_str(), "Token is invalid"),
        ("junk", "Token is invalid"),
    ] {
        let r = s.get_bearer("/api/users/me/", token).await;
        let expected = json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": reason}],
        });
        assert_eq!(reply(r).await, (401, expected), "{reason}");
    }
    let r = s.get_bearer("/api/users/me/", &forged).await;
    let text = r.text().await.unwrap();
    assert_eq!(key_order(&text), ["detail", "code", "messages"]);
}

#[tokio::test]
async fn tokens_for_missing_inactive_or_unnamed_users() {
    let s = TestServer::start().await;
    s.create_user("nora", "pw").await;
    s.create_user("otto", "pw").await;
    let (_, nora) = s.login("nora", "pw").await;
    let (_, otto) = s.login("otto", "pw").await;
    s.service.store().delete_user("nora").await.unwrap();
    s.service.store().set_active("otto", false).await.unwrap();
    let r = s.get_bearer("/api/users/me/", &nora).await;
    assert_eq!(
        reply(r).await,
        (
            401,
            json!({"detail": "User not found", "code": "user_not_found"})
        )
    );
    let r = s.get_bearer("/api/users/me/", &otto).await;
    assert_eq!(
        reply(r).await,
        (
            401,
            json!({"detail": "User is inactive", "code": "user_inactive"})
        )
    );
    let t = now();
    let anonymous =
        hs256(json!({"token_type": "access", "exp": t + 60, "iat": t, "jti": "3".repeat(32)}));
    let r = s.get_bearer("/api/users/me/", &anonymous).await;
    let expected = token_not_valid("Token contained no recognizable user identification");
    assert_eq!(reply(r).await, (401, expected));
}

#[tokio::test]
async fn authentication_comes_before_the_method_check() {
    let s = TestServer::start().await;
    s.create_user("pia", "pw").await;
    let (_, access) = s.login("pia", "pw").await;
    let r = s.client.post(s.url("/api/users/me/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .client
        .post(s.url("/api/users/me/"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply(r).await,
        (405, json!({"detail": "Method \"POST\" not allowed."}))
    );
}

#[tokio::test]
async fn hs384_and_hs512_sign_with_their_own_header() {
    for alg in ["HS384", "HS512"] {
        let s = TestServer::start_with(|c| c.jwt.algorithm = alg.parse().unwrap()).await;
        s.create_user("quinn", "pw").await;
        let (refresh, access) = s.login("quinn", "pw").await;
        assert_eq!(
            parts(&access).0,
            format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)
        );
        let r = s.get_bearer("/api/users/me/", &access).await;
        assert_eq!(r.status(), 200, "{alg}");
        let r = s
            .post("/api/token/refresh/", json!({"refresh": refresh}))
            .await;
        assert_eq!(r.status(), 200, "{alg}");
        // An HS256 token with the same key is another algorithm: refused.
        let t = now();
        let hs256_token = hs256(
            json!({"token_type": "access", "exp": t + 60, "jti": "4".repeat(32), "user_id": "1"}),
        );
        let r = s.get_bearer("/api/users/me/", &hs256_token).await;
        assert_eq!(r.status(), 401, "{alg}");
        let own = craft(
            &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            &json!({"token_type": "access", "exp": t + 60, "jti": "5".repeat(32), "user_id": "1"})
                .to_string(),
            KEY.as_bytes(),
            alg,
        );
        let r = s.get_bearer("/api/users/me/", &own).await;
        assert_eq!(r.status(), 200, "{alg}");
    }
}

#[tokio::test]
async fn settings_change_rotation_lifetimes_and_claim_names() {
    let s = TestServer::start_with(|c| {
        c.jwt.rotate_refresh_tokens = false;
        c.jwt.access_token_lifetime = std::time::Duration::from_secs(60);
        c.jwt.update_last_login = true;
        c.jwt.user_id_claim = "sub".into();
        c.jwt.audience = Some("my-api".into());
        c.jwt.issuer = Some("https://auth.example".into());
    })
    .await;
    let id = s.create_user("rita", "pw").await;
    let (refresh, access) = s.login("rita", "pw").await;
    let c = claims(&access);
    assert_eq!(c["sub"], json!(id.to_string()));
    assert!(c.get("user_id").is_none());
    assert_eq!(c["aud"], "my-api");
    assert_eq!(c["iss"], "https://auth.example");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
    let user = s
        .service
        .store()
        .user_by_name("rita")
        .await
        .unwrap()
        .unwrap();
    assert!(user.last_login.is_some());

    // Without rotation: only an access token, and the refresh token stays usable.
    for _ in 0..2 {
        let r = s
            .post("/api/token/refresh/", json!({"refresh": refresh}))
            .await;
        let (status, body) = reply(r).await;
        assert_eq!(status, 200);
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["access"]
        );
    }
    let r = s.get_bearer("/api/users/me/", &access).await;
    assert_eq!(r.status(), 200);
    // A token without the audience is refused.
    let t = now();
    let no_aud = hs256(
        json!({"token_type": "access", "exp": t + 60, "jti": "6".repeat(32), "sub": id.to_string(), "iss": "https://auth.example"}),
    );
    let r = s.get_bearer("/api/users/me/", &no_aud).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn leeway_forgives_a_recently_expired_token() {
    let s = TestServer::start_with(|c| c.jwt.leeway = std::time::Duration::from_secs(30)).await;
    s.create_user("sam", "pw").await;
    let t = now();
    let token = hs256(
        json!({"token_type": "access", "exp": t - 10, "jti": "7".repeat(32), "user_id": "1"}),
    );
    let r = s.get_bearer("/api/users/me/", &token).await;
    assert_eq!(r.status(), 200);
    let token = hs256(
        json!({"token_type": "access", "exp": t - 60, "jti": "8".repeat(32), "user_id": "1"}),
    );
    let r = s.get_bearer("/api/users/me/", &token).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let s = TestServer::start().await;
    let r = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(reply(r).await, (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn a_panicking_handler_costs_one_500_and_the_server_goes_on() {
    use axum::routing::get;
    let s = TestServer::start().await;
    let router = handstamp::api::router(s.service.clone()).route(
        "/boom",
        get(|| async { panic!("handler bug") as &'static str }),
    );
    let app = handstamp::server::layered(router, &handstamp::Settings::default().server);
    let listeners = handstamp::server::bind(&["127.0.0.1:0".into()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    tokio::spawn(handstamp::server::serve(
        listeners,
        app,
        std::future::pending(),
    ));
    let r = s
        .client
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(
        reply(r).await,
        (500, json!({"detail": "A server error occurred."}))
    );
    let r = s
        .client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The hot routes (answered before the router by the full server) answer exactly as the router
/// alone does, which is what an app embedding `layered` gets.
#[tokio::test]
async fn hot_routes_answer_as_the_router_does() {
    for check_user in [true, false] {
        hot_and_routed_answers_match(check_user).await;
    }
}

async fn hot_and_routed_answers_match(check_user: bool) {
    let s = TestServer::start_with(|c| c.server.check_user = check_user).await;
    s.create_user("hu", "pw").await;
    let (refresh, access) = s.login("hu", "pw").await;
    // Tokens of a user since deactivated and of one since deleted.
    s.create_user("inactive", "pw").await;
    let (_, inactive) = s.login("inactive", "pw").await;
    s.service
        .store()
        .set_active("inactive", false)
        .await
        .unwrap();
    s.create_user("gone", "pw").await;
    let (_, gone) = s.login("gone", "pw").await;
    s.service.store().delete_user("gone").await.unwrap();
    let mut settings = handstamp::Settings::default();
    settings.server.check_user = check_user;
    let router = handstamp::api::router(s.service.clone())
        .merge(handstamp::gateway::Gateway::new(&settings).router(&settings, s.service.clone()));
    let listeners = handstamp::server::bind(&["127.0.0.1:0".into()])
        .await
        .unwrap();
    let routed_addr = listeners[0].local_addr().unwrap();
    let app = handstamp::server::layered(router, &settings.server);
    tokio::spawn(handstamp::server::serve(
        listeners,
        app,
        std::future::pending(),
    ));

    let bearer = |token: &str| format!("Bearer {token}");
    let json_body = |token: &str| json!({ "token": token }).to_string();
    // Method, path, Authorization header, (content type, body).
    type Body = Option<(&'static str, String)>;
    let cases: Vec<(&str, &str, Option<String>, Body)> = vec![
        ("GET", "/api/auth/check", Some(bearer(&access)), None),
        ("GET", "/api/auth/check", None, None),
        ("GET", "/api/auth/check", Some(bearer(&refresh)), None),
        ("GET", "/api/auth/check", Some(bearer(&inactive)), None),
        ("GET", "/api/auth/check", Some(bearer(&gone)), None),
        ("GET", "/api/users/me/", Some(bearer(&inactive)), None),
        ("GET", "/api/users/me/", Some(bearer(&gone)), None),
        ("GET", "/api/users/me/", Some(bearer(&access)), None),
        ("GET", "/api/users/me", Some(bearer(&access)), None),
        ("GET", "/api/users/me/", Some("Bearer a b".into()), None),
        (
            "POST",
            "/api/token/verify/",
            None,
            Some(("application/json", json_body(&access))),
        ),
        (
            "POST",
            "/api/token/verify",
            None,
            Some(("application/json", json_body("x.y.z"))),
        ),
        (
            "POST",
            "/api/token/verify/",
            None,
            Some(("application/json", "{".into())),
        ),
        (
            "POST",
            "/api/token/verify/",
            None,
            Some(("text/plain", "token".into())),
        ),
        ("POST", "/api/token/verify/", None, None),
    ];
    for (method, path, authorization, body) in cases {
        let mut answers = Vec::new();
        for base in [s.url(""), format!("http://{routed_addr}")] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = s.client.request(method, format!("{base}{path}"));
            if let Some(authorization) = &authorization {
                request = request.header("Authorization", authorization);
            }
            if let Some((content_type, body)) = &body {
                request = request
                    .header(CONTENT_TYPE, *content_type)
                    .body(body.clone());
            }
            let r = request.send().await.unwrap();
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let headers = [
                header(CONTENT_TYPE.as_str()),
                header(WWW_AUTHENTICATE.as_str()),
                header("x-handstamp-user-id"),
                header("x-frame-options"),
            ];
            answers.push((r.status(), headers, r.text().await.unwrap()));
        }
        assert_eq!(
            answers[0], answers[1],
            "check_user {check_user}: {method} {path} {authorization:?} {body:?}"
        );
    }
}

/// A user id claim that names no primary key (signed by us, so only its reading is tested): the
/// user checks find no user, a refresh no active account, a blacklisting goes through, and the
/// stateless forward-auth passes the claim on as it is.
#[tokio::test]
async fn user_id_claims_that_are_not_primary_keys() {
    let s = TestServer::start().await;
    let stateless = TestServer::start_with(|c| c.server.check_user = false).await;
    let t = now();
    let token = |kind: &str, id: &str, jti: char| {
        hs256(
            json!({"token_type": kind, "exp": t + 60, "iat": t, "jti": jti.to_string().repeat(32), "user_id": id}),
        )
    };
    let not_found = json!({"detail": "User not found", "code": "user_not_found"});
    for (id, jti) in [("abc", 'a'), ("", 'b')] {
        let access = token("access", id, jti);
        let r = s.get_bearer("/api/users/me/", &access).await;
        assert_eq!(reply(r).await, (401, not_found.clone()), "{id:?}");
        let r = s.get_bearer("/api/auth/check", &access).await;
        assert_eq!(reply(r).await, (401, not_found.clone()), "{id:?}");
        let r = stateless.get_bearer("/api/auth/check", &access).await;
        assert_eq!(reply(r).await, (200, json!({"user_id": id})), "{id:?}");
    }
    // Unreadable: no active account. Empty: no user to check, as simplejwt's blacklist app
    // records a token without one.
    let r = s
        .post(
            "/api/token/refresh/",
            json!({"refresh": token("refresh", "abc", 'c')}),
        )
        .await;
    let no_account = json!({"detail": "No active account found for the given token."});
    assert_eq!(reply(r).await, (401, no_account));
    let r = s
        .post(
            "/api/token/refresh/",
            json!({"refresh": token("refresh", "", 'd')}),
        )
        .await;
    assert_eq!(r.status(), 200);
    for (id, jti) in [("abc", 'e'), ("", 'f')] {
        let refresh = token("refresh", id, jti);
        let r = s
            .post("/api/token/blacklist/", json!({"refresh": refresh}))
            .await;
        assert_eq!(r.status(), 200, "{id:?}");
        let r = s
            .post("/api/token/verify/", json!({"token": refresh}))
            .await;
        let blacklisted = json!({"non_field_errors": ["Token is blacklisted"]});
        assert_eq!(reply(r).await, (400, blacklisted), "{id:?}");
    }
}

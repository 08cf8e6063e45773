//! Users moved from Django log in with their Django password hashes, which are then upgraded to
//! Argon2id in the login's own transaction.

use crate::common::*;
use handstamp::store::NewUser;
use serde_json::json;

/// Made by Django 5.2.19's hashers for "correct horse" (small costs, for speed).
const DJANGO: &[&str] = &[
    "pbkdf2_sha256$1000$xI0AcCOAkPe1RgZJBdjSQ4$Qsc52lpyEn1MZW/0RvlxSESF3/W7G3Eq6xRu0QR8HsY=",
    "argon2$argon2id$v=19$m=256,t=1,p=1$alFzYmJCdDZSalBuSzNxMEpFdGg3NQ$ypgvjXZVXdcyFpYfIIsX6uAgrJPYNOX5xH3ZWmoGFI0",
    "bcrypt_sha256$$2b$04$7l7PFwNAuBxXoBVjLpZ8de5kq1ih0EoSZ76iOReNYKCzNwkvh7S7W",
    "scrypt$1024$kw9NPG8EVULLREeLvML5Oo$8$5$0ptFp7B6VfnEmnp22blPaOfJghapl0HpyA+ee1XUyITuQM3uBwFfF5S2a6Shdmp1EaBAJT2WTkOPYlhECpKDVQ==",
];

#[tokio::test]
async fn django_hashes_log_in_and_are_upgraded_to_argon2id() {
    let s = TestServer::start().await;
    let store = s.service.store();
    for (n, stored) in DJANGO.iter().enumerate() {
        let name = format!("django{n}");
        let new = NewUser {
            username: name.clone(),
            password_hash: (*stored).into(),
            is_staff: false,
            is_superuser: false,
        };
        store.create_user(new, 1).await.unwrap();
        // A wrong password: simplejwt's answer, the hash untouched.
        let r = s
            .post(
                "/api/token/",
                json!({"username": name, "password": "wrong"}),
            )
            .await;
        let (status, body) = reply(r).await;
        assert_eq!(status, 401, "{stored}");
        assert_eq!(
            body,
            json!({"detail": "No active account found with the given credentials"})
        );
        let kept = store.user_by_name(&name).await.unwrap().unwrap().password;
        assert_eq!(kept.as_str(), *stored);
        // The right one: a token pair, and the hash is Argon2id from now on.
        s.login(&name, "correct horse").await;
        let upgraded = store.user_by_name(&name).await.unwrap().unwrap().password;
        assert!(
            upgraded
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored} became {}",
            upgraded.as_str()
        );
        s.login(&name, "correct horse").await;
        let again = store.user_by_name(&name).await.unwrap().unwrap().password;
        assert_eq!(again.as_str(), upgraded.as_str(), "upgraded once");
    }
}

#[tokio::test]
async fn unusable_and_malformed_hashes_never_log_in() {
    let s = TestServer::start().await;
    for (n, stored) in [
        "!sabMC7buAPZPottKlDtBB1YkTx4VoD2CQn7cWt58",
        "pbkdf2_sha256$x$y$z",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("locked{n}");
        let new = NewUser {
            username: name.clone(),
            password_hash: (*stored).into(),
            is_staff: false,
            is_superuser: false,
        };
        s.service.store().create_user(new, 1).await.unwrap();
        for password in ["correct horse", stored] {
            let r = s
                .post(
                    "/api/token/",
                    json!({"username": name, "password": password}),
                )
                .await;
            assert_eq!(r.status(), 401, "{stored}");
        }
    }
}

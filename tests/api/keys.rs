//! Public-key tokens: every algorithm signs and verifies, the JWKS publishes the public key
//! (never a secret) so a standard verifier accepts our tokens, and nothing but the key a token's
//! `kid` names, for its own algorithm, ever verifies it.

use crate::common::*;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use handstamp::config::Settings;
use handstamp::token::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSWORD: &str = "correct horse battery staple";

/// A new private key for `alg` as a PKCS#8 PEM file made by OpenSSL, and its public key's PEM.
fn openssl_key(dir: &Path, alg: Algorithm) -> (PathBuf, PathBuf) {
    let name = alg.name();
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let args: &[&str] = match alg {
        Algorithm::ES256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        Algorithm::ES384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        Algorithm::EdDSA => &["-algorithm", "ED25519"],
        _ => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    };
    let made = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&private)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let made = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(made.success());
    (private, public)
}

fn public_algorithms() -> impl Iterator<Item = Algorithm> {
    Algorithm::ALL.into_iter().filter(|a| !a.is_hmac())
}

async fn server_signing_with(alg: Algorithm, key: &Path) -> TestServer {
    let key = key.to_owned();
    TestServer::start_with(move |s: &mut Settings| {
        s.jwt.algorithm = alg;
        s.jwt.signing_key = None;
        s.jwt.signing_key_file = Some(key);
    })
    .await
}

async fn jwks(s: &TestServer) -> Value {
    let r = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn header(token: &str) -> Value {
    serde_json::from_str(&parts(token).0).unwrap()
}

/// `token` with its header replaced by `header` and signed again by `sign`.
fn resigned(token: &str, header: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let input = format!("{}.{payload}", B64.encode(header.to_string()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature))
}

async fn check_status(s: &TestServer, token: &str) -> u16 {
    s.get_bearer("/api/auth/check", token)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn every_algorithm_signs_verifies_and_publishes_its_key() {
    let dir = tempfile::tempdir().unwrap();
    for alg in public_algorithms() {
        let (key, _) = openssl_key(dir.path(), alg);
        let s = server_signing_with(alg, &key).await;
        s.create_user("alice", PASSWORD).await;
        let (refresh, access) = s.login("alice", PASSWORD).await;
        let head = header(&access);
        let kid = head["kid"].as_str().expect("a kid").to_owned();
        assert_eq!(head, json!({"alg": alg.name(), "kid": kid, "typ": "JWT"}));

        // Our own checks.
        assert_eq!(check_status(&s, &access).await, 200, "{alg}");
        let r = s.post("/api/token/verify/", json!({"token": access})).await;
        assert_eq!(reply(r).await, (200, json!({})), "{alg}");
        let r = s
            .post("/api/token/refresh/", json!({"refresh": refresh}))
            .await;
        assert_eq!(r.status(), 200, "{alg}");

        // The JWKS: the public key alone, under the token's kid.
        let set = jwks(&s).await;
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{set}");
        let jwk = &keys[0];
        assert_eq!(jwk["kid"], kid.as_str());
        assert_eq!(jwk["alg"], alg.name());
        assert_eq!(jwk["use"], "sig");
        let kty = match alg {
            Algorithm::ES256 | Algorithm::ES384 => "EC",
            Algorithm::EdDSA => "OKP",
            _ => "RSA",
        };
        assert_eq!(jwk["kty"], kty);
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(jwk.get(private).is_none(), "{alg}: {jwk}");
        }

        // A standard verifier with nothing but the JWKS: jsonwebtoken.
        let set: JwkSet = serde_json::from_value(set).unwrap();
        let found = set.find(&kid).expect("the kid is published");
        let key = jsonwebtoken::DecodingKey::from_jwk(found).unwrap();
        let jwt_alg: jsonwebtoken::Algorithm = alg.name().parse().unwrap();
        let mut validation = jsonwebtoken::Validation::new(jwt_alg);
        validation.validate_aud = false;
        let read = jsonwebtoken::decode::<Value>(&access, &key, &validation);
        assert!(read.is_ok(), "{alg}: {read:?}");
        s.stop().await;
    }
}

#[tokio::test]
async fn only_the_named_key_for_its_own_algorithm_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key(dir.path(), Algorithm::RS256);
    let s = server_signing_with(Algorithm::RS256, &key).await;
    s.create_user("alice", PASSWORD).await;
    let (_, access) = s.login("alice", PASSWORD).await;
    let kid = header(&access)["kid"].as_str().unwrap().to_owned();
    let own = |input: &[u8]| {
        let pem = std::fs::read(&key).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let signed = jsonwebtoken::crypto::sign(input, &key, jsonwebtoken::Algorithm::RS256);
        B64.decode(signed.unwrap()).unwrap()
    };
    // Signed again by our key, with our kid: accepted (the resigning is sound).
    let same = resigned(
        &access,
        &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
        own,
    );
    assert_eq!(check_status(&s, &same).await, 200);
    // No kid at all (as simplejwt writes them): the signer's key, for its algorithm.
    let bare = resigned(&access, &json!({"alg": "RS256", "typ": "JWT"}), own);
    assert_eq!(check_status(&s, &bare).await, 200);

    // A tampered signature.
    let mut tampered = access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(check_status(&s, &tampered).await, 401);

    // Another key of the same algorithm, claiming our kid.
    let elsewhere = tempfile::tempdir().unwrap();
    let (other, _) = openssl_key(elsewhere.path(), Algorithm::RS256);
    let theirs = |input: &[u8]| {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&other).unwrap()).unwrap();
        B64.decode(jsonwebtoken::crypto::sign(input, &key, jsonwebtoken::Algorithm::RS256).unwrap())
            .unwrap()
    };
    let forged = resigned(
        &access,
        &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
        theirs,
    );
    assert_eq!(check_status(&s, &forged).await, 401);

    // Our kid with another algorithm: PS256 signatures by our own key are still refused.
    let pss = |input: &[u8]| {
        let pem = std::fs::read(&key).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        B64.decode(jsonwebtoken::crypto::sign(input, &key, jsonwebtoken::Algorithm::PS256).unwrap())
            .unwrap()
    };
    let mismatch = resigned(
        &access,
        &json!({"alg": "PS256", "kid": kid, "typ": "JWT"}),
        pss,
    );
    assert_eq!(check_status(&s, &mismatch).await, 401);

    // The classic confusion: HS256 with the public key's PEM (or its DER) as the secret.
    let public_pem = std::fs::read(&public).unwrap();
    for secret in [public_pem.clone(), public_pem.trim_ascii_end().to_vec()] {
        for head in [
            json!({"alg": "HS256", "typ": "JWT"}),
            json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
        ] {
            let payload = access.split('.').nth(1).unwrap();
            let p = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
            let token = craft(&head.to_string(), &p, &secret, "HS256");
            assert_eq!(check_status(&s, &token).await, 401, "{head}");
        }
    }

    // An unknown kid, and a crit header, even with our own signature.
    let unknown = resigned(
        &access,
        &json!({"alg": "RS256", "kid": "nobody", "typ": "JWT"}),
        own,
    );
    let r = s.get_bearer("/api/users/me/", &unknown).await;
    let (status, body) = reply(r).await;
    assert_eq!((status, &body["code"]), (401, &json!("token_not_valid")));
    let crit = resigned(
        &access,
        &json!({"alg": "RS256", "kid": kid, "crit": ["exp"], "typ": "JWT"}),
        own,
    );
    assert_eq!(check_status(&s, &crit).await, 401);
    // `jku`/`jwk` are never followed: a key in the header does not verify anything.
    let embedded = resigned(
        &access,
        &json!({"alg": "RS256", "kid": "x", "jku": "http://127.0.0.1:1/jwks.json", "typ": "JWT"}),
        theirs,
    );
    assert_eq!(check_status(&s, &embedded).await, 401);
}

#[tokio::test]
async fn the_key_set_is_cached_by_its_entity_tag_and_hmac_publishes_nothing() {
    let s = TestServer::start().await;
    let r = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let cache = r.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.starts_with("public, max-age="), "{cache}");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"keys": []}));
    let r = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    let r = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_generated_key_is_kept_and_shared_by_instances() {
    for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
        let settings = move |s: &mut Settings| {
            s.jwt.algorithm = alg;
            s.jwt.signing_key = None;
        };
        let first = TestServer::start_with(settings).await;
        let second = first.start_beside(settings).await;
        first.create_user("alice", PASSWORD).await;
        let (_, access) = first.login("alice", PASSWORD).await;
        assert_eq!(header(&access)["alg"], alg.name());
        assert_eq!(check_status(&second, &access).await, 200, "{alg}");
        assert_eq!(jwks(&first).await, jwks(&second).await);
    }
}

#[test]
fn bad_keys_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, _) = openssl_key(dir.path(), Algorithm::RS256);
    let elsewhere = tempfile::tempdir().unwrap();
    let (_, other_public) = openssl_key(elsewhere.path(), Algorithm::PS256);
    let sec1 = dir.path().join("sec1.key");
    let made = Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&sec1)
        .status()
        .unwrap();
    assert!(made.success());
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![
                ("HANDSTAMP_ALGORITHM", "ES256".into()),
                ("HANDSTAMP_SIGNING_KEY_FILE", rsa.display().to_string()),
            ],
            "`signing_key_file`",
        ),
        (
            vec![
                ("HANDSTAMP_ALGORITHM", "ES256".into()),
                ("HANDSTAMP_SIGNING_KEY_FILE", sec1.display().to_string()),
            ],
            "openssl pkcs8 -topk8",
        ),
        (
            vec![
                ("HANDSTAMP_ALGORITHM", "RS256".into()),
                ("HANDSTAMP_SIGNING_KEY_FILE", rsa.display().to_string()),
                (
                    "HANDSTAMP_VERIFYING_KEY_FILE",
                    other_public.display().to_string(),
                ),
            ],
            "`verifying_key_file`",
        ),
        (
            vec![
                ("HANDSTAMP_ALGORITHM", "RS256".into()),
                ("HANDSTAMP_SIGNING_KEY_FILE", "/nonexistent.pem".into()),
            ],
            "/nonexistent.pem",
        ),
    ];
    for (vars, says) in cases {
        let mut cmd = command(dir.path(), &["serve", "--check"]);
        cmd.env(
            "HANDSTAMP_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("db.sqlite3").display()),
        );
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{vars:?}");
        assert!(stderr.contains(says), "{vars:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_generated_hmac_key_keeps_simplejwts_header_and_an_earlier_secret_keeps_working() {
    // A database whose secret an earlier version generated (before keys had their own table).
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
    let store = handstamp::store::open(&url).await.unwrap();
    let earlier = b"an earlier version's generated secret, 64 bytes long.............";
    store.secret("signing_key", earlier).await.unwrap();
    drop(store);

    let s = TestServer::start_in(dir, |s| s.jwt.signing_key = None).await;
    s.create_user("alice", PASSWORD).await;
    let (_, access) = s.login("alice", PASSWORD).await;
    assert_eq!(parts(&access).0, r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = parts(&access).1;
    let minted = craft(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, earlier, "HS256");
    assert_eq!(minted, access, "signed with the earlier secret");
    assert_eq!(check_status(&s, &minted).await, 200);
}

#[tokio::test]
async fn keys_rotate_on_their_schedule() {
    // The shortest schedule allowed: a key is published for the max-age plus one refresh (6 s)
    // before it signs, so a period of 12 s.
    let s = TestServer::start_with(|s| {
        s.jwt.algorithm = Algorithm::EdDSA;
        s.jwt.signing_key = None;
        s.jwt.jwks_max_age = std::time::Duration::from_secs(1);
        s.jwt.key_rotation = std::time::Duration::from_secs(12);
    })
    .await;
    s.create_user("alice", PASSWORD).await;
    let (_, first) = s.login("alice", PASSWORD).await;
    let old = header(&first)["kid"].clone();
    let started = std::time::Instant::now();
    let mut published_first = false;
    loop {
        let kids: Vec<Value> = jwks(&s).await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect();
        let (_, access) = s.login("alice", PASSWORD).await;
        let signing = header(&access)["kid"].clone();
        if signing != old {
            assert!(
                published_first,
                "the new key signed before it was published"
            );
            break;
        }
        published_first |= kids.len() == 2;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no rotation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // What the old key signed keeps verifying.
    assert_eq!(check_status(&s, &first).await, 200);
}

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
fn resigned(token: &str, header: &Value, sign: &impl Fn(&[u8]) -> Vec<u8>) -> String {
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

/// A jsonwebtoken signer with the PEM private key at `path`, for `alg`.
fn pem_signer(path: &Path, alg: Algorithm) -> impl Fn(&[u8]) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    let key = match alg.family() {
        handstamp::token::Family::Ecdsa => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
        handstamp::token::Family::Ed25519 => jsonwebtoken::EncodingKey::from_ed_pem(&pem),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
    }
    .unwrap();
    let alg: jsonwebtoken::Algorithm = alg.name().parse().unwrap();
    move |input: &[u8]| {
        B64.decode(jsonwebtoken::crypto::sign(input, &key, alg).unwrap())
            .unwrap()
    }
}

#[tokio::test]
async fn only_the_named_key_for_its_own_algorithm_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for alg in public_algorithms() {
        let (key, public) = openssl_key(dir.path(), alg);
        let s = server_signing_with(alg, &key).await;
        s.create_user("alice", PASSWORD).await;
        let (_, access) = s.login("alice", PASSWORD).await;
        let kid = header(&access)["kid"].as_str().unwrap().to_owned();
        let name = alg.name();
        let own = pem_signer(&key, alg);
        // Signed again by our key, with our kid: accepted (the resigning is sound).
        let same = resigned(
            &access,
            &json!({"alg": name, "kid": kid, "typ": "JWT"}),
            &own,
        );
        assert_eq!(check_status(&s, &same).await, 200, "{alg}");
        // No kid at all (as simplejwt writes them): the signer's key, for its algorithm.
        let bare = resigned(&access, &json!({"alg": name, "typ": "JWT"}), &own);
        assert_eq!(check_status(&s, &bare).await, 200, "{alg}");

        // A tampered signature.
        let mut tampered = access.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(check_status(&s, &tampered).await, 401, "{alg}");

        // Another key of the same algorithm, claiming our kid.
        let (other, _) = openssl_key(elsewhere.path(), alg);
        let theirs = pem_signer(&other, alg);
        let forged = resigned(
            &access,
            &json!({"alg": name, "kid": kid, "typ": "JWT"}),
            &theirs,
        );
        assert_eq!(check_status(&s, &forged).await, 401, "{alg}");

        // Our kid with every other algorithm's name over our own key's signature.
        for other_alg in Algorithm::ALL.into_iter().filter(|a| *a != alg) {
            let head = json!({"alg": other_alg.name(), "kid": kid, "typ": "JWT"});
            let mismatch = resigned(&access, &head, &own);
            assert_eq!(
                check_status(&s, &mismatch).await,
                401,
                "{alg} as {other_alg}"
            );
        }

        // The classic confusion: HS256 with the public key's PEM as the secret.
        let public_pem = std::fs::read(&public).unwrap();
        let payload = access.split('.').nth(1).unwrap();
        let payload = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
        for secret in [&public_pem[..], public_pem.trim_ascii_end()] {
            for head in [
                json!({"alg": "HS256", "typ": "JWT"}),
                json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
            ] {
                let token = craft(&head.to_string(), &payload, secret, "HS256");
                assert_eq!(check_status(&s, &token).await, 401, "{alg}: {head}");
            }
        }

        // An unknown kid, and a crit header, even with our own signature.
        let head = json!({"alg": name, "kid": "nobody", "typ": "JWT"});
        let unknown = resigned(&access, &head, &own);
        let (status, body) = reply(s.get_bearer("/api/users/me/", &unknown).await).await;
        assert_eq!(
            (status, &body["code"]),
            (401, &json!("token_not_valid")),
            "{alg}"
        );
        let head = json!({"alg": name, "kid": kid, "crit": ["exp"], "typ": "JWT"});
        let crit = resigned(&access, &head, &own);
        assert_eq!(check_status(&s, &crit).await, 401, "{alg}");
        // `jku` is never followed: a key it points to verifies nothing.
        let head =
            json!({"alg": name, "kid": "x", "jku": "http://127.0.0.1:1/jwks.json", "typ": "JWT"});
        let embedded = resigned(&access, &head, &theirs);
        assert_eq!(check_status(&s, &embedded).await, 401, "{alg}");
        s.stop().await;
    }
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

#[tokio::test]
async fn a_verify_only_instance_follows_another_instances_keys() {
    let issuer = TestServer::start_with(|s| {
        s.jwt.algorithm = Algorithm::ES256;
        s.jwt.signing_key = None;
    })
    .await;
    issuer.create_user("alice", PASSWORD).await;
    let (_, before) = issuer.login("alice", PASSWORD).await;
    let url = issuer.url("/.well-known/jwks.json");
    let verifier = TestServer::start_with(move |s| {
        s.jwt.signing_key = None;
        s.jwt.jwk_url = Some(url);
    })
    .await;

    // Ready once it has the set; then the issuer's tokens pass, forged ones do not.
    let ready = std::time::Instant::now();
    while verifier
        .client
        .get(verifier.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            ready.elapsed() < std::time::Duration::from_secs(10),
            "never ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(check_status(&verifier, &before).await, 200);
    let mut forged = before.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(check_status(&verifier, &forged).await, 401);
    // It signs nothing and has no database: the token endpoints, /me and the JWKS are not there.
    for path in ["/api/token/", "/api/token/refresh/", "/api/token/verify/"] {
        let r = verifier.post(path, json!({})).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    assert_eq!(
        verifier
            .get_bearer("/api/users/me/", &before)
            .await
            .status(),
        404
    );
    let r = verifier
        .client
        .get(verifier.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The issuer rotates: a token of the new key makes the verifier fetch the set early.
    let kid = issuer.service.generate_key(None).await.unwrap();
    issuer.service.activate_key(&kid, true).await.unwrap();
    assert!(issuer.service.refresh_keys().await.unwrap());
    let (_, after) = issuer.login("alice", PASSWORD).await;
    assert_eq!(header(&after)["kid"], kid.as_str());
    let picked = std::time::Instant::now();
    while check_status(&verifier, &after).await != 200 {
        assert!(
            picked.elapsed() < std::time::Duration::from_secs(5),
            "rotated key not fetched"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The issuer goes away: the last good set goes on verifying.
    issuer.stop().await;
    assert_eq!(check_status(&verifier, &before).await, 200);
    assert_eq!(check_status(&verifier, &after).await, 200);
}

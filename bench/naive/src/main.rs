//! The naive Rust reference: what a Rust team writes in an afternoon to check access tokens.
//! axum 0.8 on tokio's multi-thread runtime with default settings, jsonwebtoken 9, no middleware,
//! no logging, no extra layers. It is the baseline the benchmark compares handstamp against.
//!
//! Usage: `NAIVE_SIGNING_KEY=... naive 127.0.0.1:9000` (HS256), or for a public-key algorithm
//! `NAIVE_ALG=ES256|EdDSA|RS256 NAIVE_PUBLIC_KEY_PEM=public.pem naive 127.0.0.1:9000`, the PEM file
//! holding the signing key's public key (SPKI, as `openssl pkey -pubout` writes it).
//!
//! - `GET /check` with `Authorization: Bearer <token>` → 200 `{"user_id": "<id>"}` or 401 `{"detail": "..."}`
//! - `POST /verify` with `{"token": "..."}` → 200 `{}` or 401 `{"detail": "..."}`
//! - `GET /healthz` → 200 `{"status":"ok"}`

use std::sync::Arc;

use axum::Router;
use axum::extract::{Json, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
struct Claims {
    user_id: String,
    #[allow(dead_code)]
    exp: u64,
}

#[derive(Deserialize)]
struct VerifyBody {
    token: String,
}

/// What verifies tokens, shared by every handler.
enum Verifier {
    /// HS256: the raw secret bytes.
    Secret(Vec<u8>),
    /// A public-key algorithm: its key, read from the PEM file once at start-up.
    Public(Algorithm, DecodingKey),
}

type Key = Arc<Verifier>;

/// Decodes and validates a token.
///
/// Choice (HS256): the `DecodingKey` is built per call with `DecodingKey::from_secret`, exactly as the
/// jsonwebtoken README's example does (`decode::<Claims>(&token, &DecodingKey::from_secret(...), ...)`).
/// That is the common afternoon code; caching it would be an optimisation this baseline does not make.
/// For a public key the PEM is parsed once at start-up: parsing it per request would measure PEM and
/// ASN.1 decoding rather than verification, and nobody reads a key file per request.
/// `Validation::new(alg)` is built per call and checks `exp` with its default 60 s leeway.
fn check_token(key: &Verifier, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
    match key {
        Verifier::Secret(secret) => decode::<Claims>(
            token,
            &DecodingKey::from_secret(secret),
            &Validation::new(Algorithm::HS256),
        ),
        Verifier::Public(alg, key) => decode::<Claims>(token, key, &Validation::new(*alg)),
    }
    .map(|data| data.claims)
}

/// The verifier the environment asks for: `NAIVE_SIGNING_KEY` (HS256, the default), or `NAIVE_ALG`
/// (ES256, EdDSA or RS256) with `NAIVE_PUBLIC_KEY_PEM`.
fn verifier_from_env() -> Verifier {
    let alg = std::env::var("NAIVE_ALG").unwrap_or_else(|_| "HS256".into());
    if alg == "HS256" {
        let key = std::env::var("NAIVE_SIGNING_KEY").expect("NAIVE_SIGNING_KEY must be set");
        return Verifier::Secret(key.into_bytes());
    }
    let path = std::env::var("NAIVE_PUBLIC_KEY_PEM")
        .expect("NAIVE_PUBLIC_KEY_PEM must be set with NAIVE_ALG");
    let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (alg, key) = match alg.as_str() {
        "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
        "EdDSA" => (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem)),
        "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
        other => panic!("NAIVE_ALG: {other} is not HS256, ES256, EdDSA or RS256"),
    };
    Verifier::Public(alg, key.unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn unauthorized(detail: impl std::fmt::Display) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "detail": detail.to_string() })),
    )
        .into_response()
}

async fn check(State(key): State<Key>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized("Authentication credentials were not provided.");
    };
    match check_token(&key, token) {
        Ok(claims) => Json(json!({ "user_id": claims.user_id })).into_response(),
        Err(e) => unauthorized(e),
    }
}

async fn verify(State(key): State<Key>, Json(body): Json<VerifyBody>) -> Response {
    match check_token(&key, &body.token) {
        Ok(_) => Json(json!({})).into_response(),
        Err(e) => unauthorized(e),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[tokio::main]
async fn main() {
    let key = verifier_from_env();
    let addr = std::env::args()
        .nth(1)
        .expect("usage: naive ADDR (e.g. 127.0.0.1:9000)");

    let app = Router::new()
        .route("/check", get(check))
        .route("/verify", post(verify))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(key));

    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!(
        "naive listening on {}",
        listener.local_addr().expect("local addr")
    );
    axum::serve(listener, app).await.expect("server");
}

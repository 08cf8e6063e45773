//! The naive Rust reference: what a Rust team writes in an afternoon to check HS256 access tokens.
//! axum 0.8 on tokio's multi-thread runtime with default settings, jsonwebtoken 9, no middleware,
//! no logging, no extra layers. It is the baseline the benchmark compares handstamp against.
//!
//! Usage: `NAIVE_SIGNING_KEY=... naive 127.0.0.1:9000`
//!
//! - `GET /check` with `Authorization: Bearer <token>` → 200 `{"user_id": "<id>"}` or 401 `{"detail": "..."}`
//! - `POST /verify` with `{"token": "..."}` → 200 `{}` or 401 `{"detail": "..."}`
//! - `GET /healthz` → 200 `{"status":"ok"}`

use std::sync::Arc;

use axum::extract::{Json, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
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

/// The raw signing key bytes, shared by every handler.
type Key = Arc<Vec<u8>>;

/// Decodes and validates an HS256 token.
///
/// Choice: the `DecodingKey` is built per call with `DecodingKey::from_secret`, exactly as the
/// jsonwebtoken README's example does (`decode::<Claims>(&token, &DecodingKey::from_secret(...), ...)`).
/// That is the common afternoon code; caching it would be an optimisation this baseline does not make.
/// `Validation::new(HS256)` is also built per call and checks `exp` with its default 60 s leeway.
fn check_token(key: &[u8], token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
    decode::<Claims>(token, &DecodingKey::from_secret(key), &Validation::new(Algorithm::HS256))
        .map(|data| data.claims)
}

fn unauthorized(detail: impl std::fmt::Display) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "detail": detail.to_string() }))).into_response()
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
    let key = std::env::var("NAIVE_SIGNING_KEY").expect("NAIVE_SIGNING_KEY must be set");
    let addr = std::env::args().nth(1).expect("usage: naive ADDR (e.g. 127.0.0.1:9000)");

    let app = Router::new()
        .route("/check", get(check))
        .route("/verify", post(verify))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(key.into_bytes()));

    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("naive listening on {}", listener.local_addr().expect("local addr"));
    axum::serve(listener, app).await.expect("server");
}

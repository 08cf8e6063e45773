//! Liveness and readiness.

use crate::http::{Readiness, json_response};
use crate::service::AuthService;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize)]
pub struct Status {
    status: &'static str,
    /// Parts that are down without making us unready, such as one backend of an upstream.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unhealthy: Vec<String>,
}

/// Answers while the process serves: always the same bytes, made once.
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// Answers 200 only while the database does, listing anything else that is down.
pub async fn readyz(
    State(service): State<Arc<AuthService>>,
    others: Option<Extension<Arc<dyn Readiness>>>,
) -> (StatusCode, Json<Status>) {
    let unhealthy = others.map(|Extension(o)| o.unhealthy()).unwrap_or_default();
    match service.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Status {
                status: "ok",
                unhealthy,
            }),
        ),
        Err(error) => {
            tracing::warn!(request_id = %crate::request_id::current(), %error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status {
                    status: "unavailable",
                    unhealthy,
                }),
            )
        }
    }
}

//! Liveness and readiness.

use crate::service::AuthService;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize)]
pub struct Status {
    status: &'static str,
}

/// Answers while the process serves.
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Answers 200 only while the database does.
pub async fn readyz(State(service): State<Arc<AuthService>>) -> (StatusCode, Json<Status>) {
    match service.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(Status { status: "ok" })),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status {
                    status: "unavailable",
                }),
            )
        }
    }
}

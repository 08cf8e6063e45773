//! The signed-in user's sessions: list the live ones, end one, end all ("log out everywhere").

use crate::http::auth::CurrentUser;
use crate::http::error::ApiError;
use crate::service::{AuthService, rfc3339};
use crate::store::Session;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;

type Service = State<Arc<AuthService>>;

/// A session as the API shows it: times in RFC 3339 (UTC), the client as it was at login.
#[derive(Serialize)]
pub struct SessionReply {
    id: String,
    created_at: String,
    last_refreshed_at: String,
    expires_at: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<Session> for SessionReply {
    fn from(s: Session) -> Self {
        SessionReply {
            id: s.id,
            created_at: rfc3339(s.created_at),
            last_refreshed_at: rfc3339(s.last_refreshed_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

/// `GET /api/sessions/`: the caller's live sessions, newest first.
pub async fn list(
    CurrentUser(user): CurrentUser,
    State(service): Service,
) -> Result<Json<Vec<SessionReply>>, ApiError> {
    let sessions = service.sessions(user.id).await?;
    Ok(Json(sessions.into_iter().map(SessionReply::from).collect()))
}

/// `DELETE /api/sessions/<id>/`: ends one of the caller's live sessions. Another user's
/// session, an unknown id and an ended session are all the same 404.
pub async fn end(
    CurrentUser(user): CurrentUser,
    State(service): Service,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound);
    };
    if service.end_session(user.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `DELETE /api/sessions/`: ends every session of the caller's, and refuses the access tokens
/// issued so far wherever the user is loaded.
pub async fn end_all(
    CurrentUser(user): CurrentUser,
    State(service): Service,
) -> Result<StatusCode, ApiError> {
    service.end_all_sessions(user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

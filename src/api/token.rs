//! The token endpoints: obtain a pair, refresh, verify, blacklist.

use super::Payload;
use crate::http::empty_object;
use crate::http::error::ApiError;
use crate::service::{AuthService, ClientInfo, Refreshed, ServiceError, TokenPair};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

type Service = State<Arc<AuthService>>;

pub async fn obtain(
    State(service): Service,
    client: ClientInfo,
    mut body: Payload,
) -> Result<Json<TokenPair>, ApiError> {
    let username = body.string("username");
    let password = body.string("password");
    body.finish()?;
    Ok(Json(service.obtain(&username, &password, &client).await?))
}

pub async fn refresh(
    State(service): Service,
    mut body: Payload,
) -> Result<Json<Refreshed>, ApiError> {
    let refresh = body.string("refresh");
    body.finish()?;
    Ok(Json(service.refresh(&refresh).await?))
}

pub async fn verify(State(service): Service, mut body: Payload) -> Result<Response, ApiError> {
    let token = body.string("token");
    body.finish()?;
    match service.verify(&token).await {
        Ok(()) => Ok(empty_object()),
        // simplejwt raises a validation error here, not an authentication failure.
        Err(ServiceError::Blacklisted) => {
            Err(ApiError::NonField(ServiceError::Blacklisted.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn blacklist(State(service): Service, mut body: Payload) -> Result<Response, ApiError> {
    let refresh = body.string("refresh");
    body.finish()?;
    service.blacklist(&refresh).await?;
    Ok(empty_object())
}

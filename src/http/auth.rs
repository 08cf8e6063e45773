//! The Bearer scheme as simplejwt's `JWTAuthentication` reads it, as axum extractors: what a
//! handler takes to be protected. [`Authenticated`] never touches the database;
//! [`CurrentUser`] adds one indexed read. The rules themselves are the token service's
//! ([`AuthService::authenticate_header`], [`AuthService::load_user`]).

use crate::http::error::ApiError;
use crate::service::AuthService;
pub use crate::service::{AuthError, Authenticated, bearer_token};
use crate::store::User;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header::AUTHORIZATION, request::Parts};
use std::sync::Arc;

/// A request with a valid access token whose user exists and is active.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<AuthService>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let service = Arc::<AuthService>::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        Ok(service.authenticate_header(header)?)
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    Arc<AuthService>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = Authenticated::from_request_parts(parts, state).await?;
        let service = Arc::<AuthService>::from_ref(state);
        Ok(CurrentUser(service.load_user(&auth).await?))
    }
}

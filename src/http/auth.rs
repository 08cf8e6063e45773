//! The Bearer scheme as simplejwt's `JWTAuthentication` reads it, as axum extractors: what a
//! handler takes to be protected. [`Authenticated`] never touches the database;
//! [`CurrentUser`] adds one indexed read.

use crate::http::error::ApiError;
use crate::service::AuthService;
use crate::store::{StoreError, User};
use crate::token::{Claims, TokenError};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header::AUTHORIZATION, request::Parts};
use std::sync::Arc;

/// Why a request was not authenticated; each has simplejwt's body (see `error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication credentials were not provided.")]
    NotProvided,
    #[error("Authorization header must contain two space-delimited values")]
    BadHeader,
    #[error("Given token not valid for any token type")]
    InvalidToken(TokenError),
    #[error("Token contained no recognizable user identification")]
    NoUserId,
    #[error("User not found")]
    UserNotFound,
    #[error("User is inactive")]
    UserInactive,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request with a valid access token naming a user. The user is not loaded.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user_id: String,
    pub claims: Claims,
}

/// A request with a valid access token whose user exists and is active.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

/// Finds the token in an `Authorization` header: `<type> <token>`, where type is one of
/// `types` (case-sensitive) and runs of whitespace count as one.
pub fn bearer_token<'h>(header: Option<&'h [u8]>, types: &[String]) -> Result<&'h [u8], AuthError> {
    let header = header.unwrap_or_default();
    // The usual shape, `<type> <token>` with one space, in one branch-free pass over the token.
    for kind in types {
        if let Some(token) = header
            .strip_prefix(kind.as_bytes())
            .and_then(|rest| rest.strip_prefix(b" "))
            && !token.is_empty()
            && !token
                .iter()
                .fold(false, |space, b| space | b.is_ascii_whitespace())
        {
            return Ok(token);
        }
    }
    let mut parts = header
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    match parts.next() {
        Some(kind) if types.iter().any(|t| t.as_bytes() == kind) => {}
        _ => return Err(AuthError::NotProvided),
    }
    match (parts.next(), parts.next()) {
        (Some(token), None) => Ok(token),
        _ => Err(AuthError::BadHeader),
    }
}

impl AuthService {
    /// Authenticates an `Authorization` header value without touching the database.
    pub fn authenticate_header(&self, header: Option<&[u8]>) -> Result<Authenticated, AuthError> {
        let token = bearer_token(header, &self.settings().auth_header_types)?;
        let token =
            std::str::from_utf8(token).map_err(|_| AuthError::InvalidToken(TokenError::Invalid))?;
        let claims = self.authenticate(token).map_err(AuthError::InvalidToken)?;
        let user_id = claims.user_id.clone().ok_or(AuthError::NoUserId)?;
        Ok(Authenticated { user_id, claims })
    }

    /// Loads the user an authenticated token names.
    pub async fn load_user(&self, auth: &Authenticated) -> Result<User, AuthError> {
        let id: i64 = auth.user_id.parse().map_err(|_| AuthError::UserNotFound)?;
        let user = self
            .store()
            .user_by_id(id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        if !user.is_active {
            return Err(AuthError::UserInactive);
        }
        Ok(user)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &str) -> Result<&[u8], AuthError> {
        bearer_token(Some(header.as_bytes()), &["Bearer".to_string()])
    }

    #[test]
    fn header_rules_follow_simplejwt() {
        assert_eq!(parse("Bearer abc").unwrap(), b"abc");
        assert_eq!(parse("Bearer   abc").unwrap(), b"abc");
        assert_eq!(parse(" Bearer\tabc \r\n").unwrap(), b"abc");
        assert_eq!(parse("Bearer abc ").unwrap(), b"abc");
        for other in [
            "",
            "   ",
            "Token abc",
            "bearer abc",
            "Basic abc",
            "Bearerabc",
        ] {
            assert!(
                matches!(parse(other), Err(AuthError::NotProvided)),
                "{other:?}"
            );
        }
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a\tb",
            "Bearer  a  b  c",
        ] {
            assert!(matches!(parse(bad), Err(AuthError::BadHeader)), "{bad:?}");
        }
        assert!(matches!(
            bearer_token(None, &["Bearer".to_string()]),
            Err(AuthError::NotProvided)
        ));
    }
}

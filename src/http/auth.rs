//! The Bearer scheme as simplejwt's `JWTAuthentication` reads it, and in cookie mode the access
//! cookie as dj-rest-auth's `JWTCookieAuthentication` does (the header first; the cookie only
//! when no `Authorization` header is sent, and then with the CSRF check), as axum extractors:
//! what a handler takes to be protected. [`Authenticated`] never touches the database;
//! [`CurrentUser`] adds one indexed read. The token rules themselves are the token service's
//! ([`AuthService::authenticate_header`], [`AuthService::load_user`]). A verified token's user
//! is noted in the request's scope for its access line.

use crate::http::error::ApiError;
use crate::http::{cookies, csrf};
use crate::request_id;
use crate::service::AuthService;
pub use crate::service::{AuthError, Authenticated, bearer_token};
use crate::store::User;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header::AUTHORIZATION, request::Parts};
use std::sync::Arc;

/// A request with a valid access token whose user exists and is active.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

/// The request's access token, checked in memory: from the `Authorization` header when there is
/// one (whatever it holds), else from the access cookie when cookie mode has one. A cookie
/// authenticates a state-changing request only from a trusted origin ([`csrf::check`]).
/// `forward_auth`: the request is a proxy's question about another (see [`csrf::check`]).
/// The token's user is the request's from then on (its access line names it), whether or not
/// the route goes on to load the user.
#[inline]
pub fn authenticate(
    service: &AuthService,
    parts: &Parts,
    forward_auth: bool,
) -> Result<Authenticated, ApiError> {
    let header = parts.headers.get(AUTHORIZATION);
    // The one branch cookie mode adds to a Bearer request: none when a header is sent.
    let auth = if header.is_none()
        && let Some(name) = service.cookies().jwt_auth_cookie.as_deref()
        && let Some(token) = cookies::read(&parts.headers, name)
    {
        csrf::check(service, parts, forward_auth)?;
        service.authenticate_token(token.as_bytes())?
    } else {
        service.authenticate_header(header.map(|v| v.as_bytes()))?
    };
    request_id::set_user(&auth.user_id);
    Ok(auth)
}

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<AuthService>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let service = Arc::<AuthService>::from_ref(state);
        authenticate(&service, parts, false)
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

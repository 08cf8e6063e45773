//! The token endpoints: obtain a pair, refresh, verify, blacklist. In cookie mode (`[cookies]`)
//! obtain and refresh also set the cookies, refresh and blacklist take the refresh token from
//! its cookie when the body has none, and blacklist clears them, as dj-rest-auth's views do.
//! None of them ever reads the access cookie.

use super::Payload;
use crate::http::cookies::{self, Kind};
use crate::http::csrf;
use crate::http::empty_object;
use crate::http::error::{ApiError, CsrfFailure};
use crate::service::{AuthService, ClientInfo, Refreshed, ServiceError};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

type Service = State<Arc<AuthService>>;

/// The refresh cookie, when cookie mode has one and the request sends it, with the CSRF
/// check's verdict: a token taken from it is a cookie-authenticated, state-changing request.
pub struct RefreshCookie(Option<Result<String, CsrfFailure>>);

impl FromRequestParts<Arc<AuthService>> for RefreshCookie {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<AuthService>,
    ) -> Result<Self, ApiError> {
        let Some(name) = service.cookies().jwt_auth_refresh_cookie.as_deref() else {
            return Ok(RefreshCookie(None));
        };
        let found = cookies::read(&parts.headers, name).map(|token| {
            csrf::check(service, parts, false)?;
            Ok(token.to_owned())
        });
        Ok(RefreshCookie(found))
    }
}

/// The `refresh` field, or the refresh cookie when the field is missing or blank.
fn refresh_token(body: &mut Payload, cookie: RefreshCookie) -> Result<String, ApiError> {
    let token = match cookie.0 {
        Some(from_cookie) if body.lacks("refresh") => from_cookie?,
        _ => body.string("refresh"),
    };
    Ok(token)
}

pub async fn obtain(
    State(service): Service,
    client: ClientInfo,
    mut body: Payload,
) -> Result<Response, ApiError> {
    let username = body.string("username");
    let password = body.string("password");
    body.finish()?;
    let mut pair = service.obtain(&username, &password, &client).await?;
    if !service.cookies().enabled() {
        return Ok(Json(pair).into_response());
    }
    let headers = token_cookies(&service, &pair.access, Some(&pair.refresh));
    // dj-rest-auth's login answers `"refresh": ""` when the cookie is the only copy.
    if hides_refresh(&service) {
        pair.refresh.clear();
    }
    Ok((headers, Json(pair)).into_response())
}

/// The `Set-Cookie` headers of a new access token and, if one was issued, a new refresh token,
/// each cookie living as long as its token.
fn token_cookies(service: &AuthService, access: &str, refresh: Option<&str>) -> HeaderMap {
    let (settings, jwt) = (service.cookies(), service.settings());
    let mut headers = HeaderMap::new();
    cookies::set(
        &mut headers,
        settings,
        Kind::Access,
        access,
        jwt.access_token_lifetime,
    );
    if let Some(refresh) = refresh {
        let lifetime = jwt.refresh_token_lifetime;
        cookies::set(&mut headers, settings, Kind::Refresh, refresh, lifetime);
    }
    headers
}

/// Whether the refresh token goes in its httpOnly cookie alone, out of the JSON answers.
fn hides_refresh(service: &AuthService) -> bool {
    let settings = service.cookies();
    settings.jwt_auth_httponly && settings.jwt_auth_refresh_cookie.is_some()
}

pub async fn refresh(
    State(service): Service,
    cookie: RefreshCookie,
    mut body: Payload,
) -> Result<Response, ApiError> {
    let refresh = refresh_token(&mut body, cookie)?;
    body.finish()?;
    let mut refreshed: Refreshed = service.refresh(&refresh).await?;
    if !service.cookies().enabled() {
        return Ok(Json(refreshed).into_response());
    }
    let headers = token_cookies(&service, &refreshed.access, refreshed.refresh.as_deref());
    // dj-rest-auth's refresh view deletes the key under JWT_AUTH_HTTPONLY.
    if hides_refresh(&service) {
        refreshed.refresh = None;
    }
    Ok((headers, Json(refreshed)).into_response())
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

/// Logging out. In cookie mode the cookies are cleared when the token is blacklisted, and also
/// when it was refused as a token (invalid, expired, blacklisted already: the cookie is worth
/// nothing either way, and dj-rest-auth's logout clears them whatever happens); not when the
/// request itself was refused (CSRF, a bad body) or the database could not be written (the
/// client may try again with the same cookie).
pub async fn blacklist(
    State(service): Service,
    cookie: RefreshCookie,
    mut body: Payload,
) -> Result<Response, ApiError> {
    let refresh = refresh_token(&mut body, cookie)?;
    body.finish()?;
    let outcome = service.blacklist(&refresh).await;
    let settings = service.cookies();
    let clears = match &outcome {
        Ok(()) => true,
        Err(e) => matches!(e, ServiceError::Token(_) | ServiceError::Blacklisted),
    };
    let mut response = match outcome {
        Ok(()) => empty_object(),
        Err(e) => ApiError::from(e).into_response(),
    };
    if clears && settings.enabled() {
        cookies::clear(response.headers_mut(), settings);
    }
    Ok(response)
}

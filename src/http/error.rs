//! The one place where errors become HTTP responses, in simplejwt's and DRF's shapes.

use crate::http::auth::AuthError;
use crate::password::PasswordError;
use crate::service::ServiceError;
use crate::store::StoreError;
use crate::target::{HostError, PathError};
use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// `WWW-Authenticate` on every 401, as simplejwt sends it.
pub const WWW_AUTHENTICATE: &str = r#"Bearer realm="api""#;

/// The detail of every 500, whatever failed: the client learns nothing of our defects.
const SERVER_ERROR: &str = "A server error occurred.";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Fields that failed validation, in the order the fields are declared.
    #[error("invalid fields")]
    Fields(FieldErrors),
    #[error("{0}")]
    NonField(String),
    /// A body that does not parse, with the parser's own words.
    #[error("{0}")]
    Parse(String),
    #[error("Unsupported media type \"{0}\" in request.")]
    UnsupportedMediaType(String),
    #[error("Request body is too large.")]
    PayloadTooLarge,
    #[error("Method \"{0}\" not allowed.")]
    MethodNotAllowed(Method),
    #[error("Not found.")]
    NotFound,
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A request path that cannot be routed unambiguously.
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// A handler that panicked; the server logs it where it catches it.
    #[error("{}", SERVER_ERROR)]
    Panicked,
    /// A handler that did not answer within the request timeout, answered as a proxy in front
    /// of a slow app would.
    #[error("The request took too long.")]
    TimedOut,
    /// A backend that failed the gateway's request or answered it wrongly.
    #[error("Bad gateway.")]
    BadGateway,
    /// Every backend of an upstream down or unreachable.
    #[error("No backend is available.")]
    NoBackend,
    /// A state-changing request authenticated by a cookie alone, from a page of another site.
    #[error("CSRF Failed: {0}")]
    Csrf(#[from] CsrfFailure),
}

/// Why a cookie-authenticated request was refused, in the words of Django's `CsrfViewMiddleware`
/// (dj-rest-auth prefixes them with `CSRF Failed: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfFailure {
    #[error("Origin checking failed - {0} does not match any trusted origins.")]
    BadOrigin(String),
    #[error("Referer checking failed - no Referer.")]
    NoReferer,
    #[error("Referer checking failed - {0} does not match any trusted origins.")]
    BadReferer(String),
    #[error("Referer checking failed - Referer is malformed.")]
    MalformedReferer,
    #[error("Referer checking failed - Referer is insecure while host is secure.")]
    InsecureReferer,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Service(ServiceError::Store(e))
    }
}

/// DRF's field errors: `{"field": ["message"], ...}` in declaration order.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<(&'static str, &'static str)>);

impl Serialize for FieldErrors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (field, message) in &self.0 {
            map.serialize_entry(field, &[message])?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Detail<'a> {
    detail: &'a str,
}

#[derive(Serialize)]
struct DetailCode<'a> {
    detail: &'a str,
    code: &'a str,
}

#[derive(Serialize)]
struct NonFieldErrors<'a> {
    non_field_errors: [&'a str; 1],
}

#[derive(Serialize)]
struct NotValidForAnyType<'a> {
    detail: &'a str,
    code: &'a str,
    messages: [TokenMessage<'a>; 1],
}

#[derive(Serialize)]
struct TokenMessage<'a> {
    token_class: &'a str,
    token_type: &'a str,
    message: &'a str,
}

fn json(status: StatusCode, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(WWW_AUTHENTICATE),
        );
    }
    response
}

/// A failure of ours, not the client's: logged in full, answered without details.
fn server_error(error: &dyn std::error::Error) -> Response {
    tracing::error!(request_id = %crate::request_id::current(), %error, "request failed");
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        Detail {
            detail: SERVER_ERROR,
        },
    )
}

/// A database that cannot be used for now answers 503; any other store failure is a defect.
fn store_error(error: &StoreError) -> Response {
    match error {
        StoreError::Unavailable(_) => {
            tracing::debug!(request_id = %crate::request_id::current(), %error, "request refused");
            unavailable("The database is unavailable.")
        }
        _ => server_error(error),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let text = self.to_string();
        let detail = |status| json(status, Detail { detail: &text });
        let token_not_valid = |reason: &str| {
            json(
                StatusCode::UNAUTHORIZED,
                DetailCode {
                    detail: reason,
                    code: "token_not_valid",
                },
            )
        };
        match &self {
            ApiError::Fields(errors) => json(StatusCode::BAD_REQUEST, errors),
            ApiError::NonField(message) => json(
                StatusCode::BAD_REQUEST,
                NonFieldErrors {
                    non_field_errors: [message],
                },
            ),
            ApiError::Parse(_) => detail(StatusCode::BAD_REQUEST),
            ApiError::UnsupportedMediaType(_) => detail(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ApiError::PayloadTooLarge => detail(StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::MethodNotAllowed(_) => detail(StatusCode::METHOD_NOT_ALLOWED),
            ApiError::NotFound => detail(StatusCode::NOT_FOUND),
            ApiError::Path(_) | ApiError::Host(_) => detail(StatusCode::BAD_REQUEST),
            ApiError::Panicked => detail(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::TimedOut => detail(StatusCode::GATEWAY_TIMEOUT),
            ApiError::BadGateway | ApiError::NoBackend => detail(StatusCode::BAD_GATEWAY),
            ApiError::Csrf(_) => detail(StatusCode::FORBIDDEN),
            ApiError::Service(e) => match e {
                ServiceError::Token(_) | ServiceError::Blacklisted => token_not_valid(&text),
                ServiceError::BadCredentials | ServiceError::NoActiveAccountForToken => {
                    detail(StatusCode::UNAUTHORIZED)
                }
                ServiceError::Store(e) => store_error(e),
                ServiceError::Password(PasswordError::Busy) => unavailable(&text),
                ServiceError::Password(PasswordError::TooLong) => detail(StatusCode::BAD_REQUEST),
                ServiceError::Password(e) => server_error(e),
                ServiceError::Throttled { retry_after } => {
                    let mut response = detail(StatusCode::TOO_MANY_REQUESTS);
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                    response
                }
            },
            ApiError::Auth(e) => match e {
                AuthError::NotProvided => detail(StatusCode::UNAUTHORIZED),
                AuthError::InvalidToken(reason) => json(
                    StatusCode::UNAUTHORIZED,
                    NotValidForAnyType {
                        detail: &text,
                        code: "token_not_valid",
                        messages: [TokenMessage {
                            token_class: "AccessToken",
                            token_type: "access",
                            message: &reason.to_string(),
                        }],
                    },
                ),
                AuthError::BadHeader => auth_failed(&text, "bad_authorization_header"),
                AuthError::NoUserId => token_not_valid(&text),
                AuthError::UserNotFound => auth_failed(&text, "user_not_found"),
                AuthError::UserInactive => auth_failed(&text, "user_inactive"),
                AuthError::Store(e) => store_error(e),
            },
        }
    }
}

/// 503 with `Retry-After: 1`: we cannot serve this now (overloaded, or something we depend on
/// is down), but may in a moment; any 503 is answered through here.
pub fn unavailable(detail: &str) -> Response {
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, Detail { detail });
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A method the route does not serve: 405 with the method named.
pub async fn not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method)
}

fn auth_failed(detail: &str, code: &str) -> Response {
    json(StatusCode::UNAUTHORIZED, DetailCode { detail, code })
}

//! JSON Web Tokens as simplejwt writes and reads them: compact JWS, claims in a fixed order,
//! HMAC and public keys, found by `kid`. Nothing here knows of HTTP or SQL.

mod claims;
mod codec;
mod keys;
mod keyset;

pub use claims::{ClaimNames, Claims, TokenType};
pub use codec::{TokenCodec, Validation};
pub use keys::{Algorithm, Family, Jwk, KeyError, SigningKey, VerifyingKey};
pub use keyset::KeySet;

/// Why a token was refused; the texts are simplejwt's reasons, sent to clients as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token is invalid")]
    Invalid,
    #[error("Token is expired")]
    Expired,
    #[error("Token has wrong type")]
    WrongType,
    #[error("Token has no id")]
    NoId,
    #[error("Token has no '{0}' claim")]
    MissingClaim(&'static str),
}

/// Seconds since the Unix epoch, the unit of every time claim.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh token id: 32 lowercase hex digits, the shape of Python's `uuid4().hex`. It is a
/// UUIDv7 (a millisecond timestamp, then 74 random bits): unique and unguessable all the same,
/// and time-ordered, so the token tables grow at one end instead of rewriting pages all over on
/// every insert.
pub fn new_jti() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

//! Compact JWS: signing and reading tokens, and simplejwt's checks of what they claim.

use super::claims::{ClaimsSeed, Written};
use super::{ClaimNames, Claims, SigningKey, TokenError, TokenType};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::de::DeserializeSeed;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    /// Seconds of slack allowed on `exp`, `nbf` and `iat`.
    pub leeway: i64,
}

/// Signs and reads tokens with one key and one set of claim names.
#[derive(Debug)]
pub struct TokenCodec {
    key: SigningKey,
    /// The encoded header every token we sign carries; a token with these exact bytes needs
    /// no header parsing.
    header: String,
    names: ClaimNames,
    validation: Validation,
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
}

impl TokenCodec {
    pub fn new(key: SigningKey, names: ClaimNames, validation: Validation) -> Self {
        // PyJWT's header, byte for byte: alg first, then typ.
        let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, key.algorithm().name());
        TokenCodec {
            header: B64.encode(header),
            key,
            names,
            validation,
        }
    }

    pub fn names(&self) -> &ClaimNames {
        &self.names
    }

    /// Signs `claims`, adding the configured audience and issuer.
    pub fn encode(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(&Written {
            names: &self.names,
            claims,
            audience: self.validation.audience.as_deref(),
            issuer: self.validation.issuer.as_deref(),
        })
        .expect("claims always serialize");
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 96);
        token.push_str(&self.header);
        token.push('.');
        B64.encode_string(payload, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature, &mut token);
        token
    }

    /// Checks the algorithm, the signature and the time, audience and issuer claims (PyJWT's
    /// part of reading a token).
    pub fn decode(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
        if header != self.header {
            self.check_header(header)?;
        }
        let signature = B64.decode(signature).map_err(|_| TokenError::Invalid)?;
        if !self.key.verify(signing_input.as_bytes(), &signature) {
            return Err(TokenError::Invalid);
        }
        let payload = B64.decode(payload).map_err(|_| TokenError::Invalid)?;
        let claims = ClaimsSeed(&self.names)
            .deserialize(&mut serde_json::Deserializer::from_slice(&payload))
            .map_err(|_| TokenError::Invalid)?;
        self.check_registered_claims(&claims, now)?;
        Ok(claims)
    }

    /// [`decode`](Self::decode) plus simplejwt's own checks: an expiry and an id must be
    /// present, and the type must be `expected` when one is given.
    pub fn validate(
        &self,
        token: &str,
        expected: Option<TokenType>,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let claims = self.decode(token, now)?;
        if claims.exp.is_none() {
            return Err(TokenError::MissingClaim("exp"));
        }
        if claims.jti.is_none() {
            return Err(TokenError::NoId);
        }
        if let Some(kind) = expected {
            if !claims.is_type(kind) {
                return Err(TokenError::WrongType);
            }
        }
        Ok(claims)
    }

    /// A header other than our own is accepted only when it names our algorithm: this is what
    /// rejects `alg: none` and algorithm confusion.
    fn check_header(&self, header: &str) -> Result<(), TokenError> {
        let json = B64.decode(header).map_err(|_| TokenError::Invalid)?;
        let header: Header = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        if header.alg == self.key.algorithm().name() {
            Ok(())
        } else {
            Err(TokenError::Invalid)
        }
    }

    fn check_registered_claims(&self, c: &Claims, now: i64) -> Result<(), TokenError> {
        let leeway = self.validation.leeway;
        if c.exp.is_some_and(|exp| exp <= now - leeway) {
            return Err(TokenError::Expired);
        }
        if c.iat.is_some_and(|iat| iat > now + leeway)
            || c.nbf.is_some_and(|nbf| nbf > now + leeway)
        {
            return Err(TokenError::Invalid);
        }
        if let Some(issuer) = &self.validation.issuer {
            if c.iss.as_ref() != Some(issuer) {
                return Err(TokenError::Invalid);
            }
        }
        let aud = c.aud.as_deref().filter(|a| !a.is_empty());
        let audience_ok = match (&self.validation.audience, aud) {
            (None, None) => true,
            (None, Some(_)) | (Some(_), None) => false,
            (Some(want), Some(given)) => given.iter().any(|a| a == want),
        };
        if audience_ok {
            Ok(())
        } else {
            Err(TokenError::Invalid)
        }
    }
}

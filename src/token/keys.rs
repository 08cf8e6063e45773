//! Signing keys. HMAC keys are set up once and cloned per token, so a signature costs two
//! compression passes instead of re-deriving the padded key each time.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};
use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    /// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
    pub fn min_key_len(self) -> usize {
        match self {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "HS256" => Ok(Algorithm::HS256),
            "HS384" => Ok(Algorithm::HS384),
            "HS512" => Ok(Algorithm::HS512),
            other => Err(format!(
                "unsupported algorithm {other:?}; expected one of HS256, HS384, HS512"
            )),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A keyed HMAC state, ready to be cloned for each message.
#[derive(Clone)]
pub enum SigningKey {
    HS256(Hmac<Sha256>),
    HS384(Hmac<Sha384>),
    HS512(Hmac<Sha512>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <secret>)", self.algorithm())
    }
}

impl SigningKey {
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> Self {
        // Hmac accepts keys of any length, so new_from_slice cannot fail.
        match algorithm {
            Algorithm::HS256 => SigningKey::HS256(Mac::new_from_slice(secret).expect("any length")),
            Algorithm::HS384 => SigningKey::HS384(Mac::new_from_slice(secret).expect("any length")),
            Algorithm::HS512 => SigningKey::HS512(Mac::new_from_slice(secret).expect("any length")),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::HS256(_) => Algorithm::HS256,
            SigningKey::HS384(_) => Algorithm::HS384,
            SigningKey::HS512(_) => Algorithm::HS512,
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + Clone>(mac: &M, message: &[u8]) -> Vec<u8> {
            let mut mac = mac.clone();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            SigningKey::HS256(m) => run(m, message),
            SigningKey::HS384(m) => run(m, message),
            SigningKey::HS512(m) => run(m, message),
        }
    }

    /// Constant-time check of `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        fn run<M: Mac + Clone>(mac: &M, message: &[u8], signature: &[u8]) -> bool {
            let mut mac = mac.clone();
            mac.update(message);
            mac.verify_slice(signature).is_ok()
        }
        match self {
            SigningKey::HS256(m) => run(m, message, signature),
            SigningKey::HS384(m) => run(m, message, signature),
            SigningKey::HS512(m) => run(m, message, signature),
        }
    }
}

//! The keys a codec works with: the one that signs, and the ones that verify, found by the
//! token's `kid` (or, for a token without one, by its algorithm), so the codec does not care
//! what kind of key it holds.

use super::keys::{Algorithm, Jwk, SigningKey, VerifyingKey};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};

#[derive(Debug, Clone)]
pub struct KeySet {
    signer: SigningKey,
    signer_kid: Option<String>,
    /// The signer's own verifying key.
    verifier: VerifyingKey,
    /// The encoded header every token the signer signs carries.
    header: String,
    /// Keys that verify but no longer (or not yet) sign, by kid; `None`: the key whose tokens
    /// carry no kid (an HMAC key from before rotation).
    others: Vec<(Option<String>, VerifyingKey)>,
}

impl KeySet {
    /// `signer` signs (and verifies); `kid` goes into every token's header. Without a kid the
    /// header is PyJWT's, byte for byte: `{"alg":"HS256","typ":"JWT"}`.
    pub fn new(signer: SigningKey, kid: Option<String>) -> Self {
        let alg = signer.algorithm().name();
        // PyJWT sorts the header's keys: alg, kid, typ.
        let header = match &kid {
            Some(kid) => serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string(),
            None => format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
        };
        KeySet {
            verifier: signer.verifying_key(),
            signer,
            signer_kid: kid,
            header: B64.encode(header),
            others: Vec::new(),
        }
    }

    /// A public key signer, with its RFC 7638 thumbprint as the kid; an HMAC key without one.
    pub fn with_thumbprint(signer: SigningKey) -> Self {
        let kid = signer.verifying_key().thumbprint();
        KeySet::new(signer, kid)
    }

    /// Also verifies tokens whose header names `kid` (or, for `None`, names none) with `key`.
    pub fn verifying(mut self, kid: Option<String>, key: VerifyingKey) -> Self {
        self.others.retain(|(k, _)| *k != kid);
        self.others.push((kid, key));
        self
    }

    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// The encoded header of the tokens this set signs.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The key for a token of the signer's exact header.
    pub fn own_verifier(&self) -> &VerifyingKey {
        &self.verifier
    }

    /// The key that verifies a token whose header names `alg` and `kid`: the kid's key, which
    /// must be of that algorithm (no key is ever used for another algorithm: this is what stops
    /// an RS256 public key being taken as an HS256 secret). Without a kid (simplejwt's tokens):
    /// the key whose tokens carry none, else the signer's.
    pub fn verifier(&self, alg: Algorithm, kid: Option<&str>) -> Option<&VerifyingKey> {
        let key = if kid == self.signer_kid.as_deref() {
            &self.verifier
        } else {
            match self.others.iter().find(|(k, _)| k.as_deref() == kid) {
                Some((_, key)) => key,
                None if kid.is_none() => &self.verifier,
                None => return None,
            }
        };
        (key.algorithm() == alg).then_some(key)
    }

    /// The public keys to publish (RFC 7517): the signer's and the others', never an HMAC secret.
    pub fn jwks(&self) -> Vec<Jwk> {
        let signer = self.verifier.jwk(self.signer_kid.as_deref());
        let others = self
            .others
            .iter()
            .filter_map(|(kid, key)| key.jwk(kid.as_deref()));
        signer.into_iter().chain(others).collect()
    }
}

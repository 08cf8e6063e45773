//! Keys. HMAC secrets are set up once and cloned per token, so a signature costs two
//! compression passes instead of re-deriving the padded key each time. RSA, ECDSA and Ed25519
//! keys are aws-lc-rs's (measured fastest, bench/crypto/RESULTS.md): a well-kept crate does the
//! math, never our code. Public keys are parsed once, not per signature.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use serde::Serialize;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::sync::Arc;
use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// What kind of key an algorithm takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Hmac,
    Rsa,
    Ecdsa,
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn family(self) -> Family {
        use Algorithm::*;
        match self {
            HS256 | HS384 | HS512 => Family::Hmac,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
            ES256 | ES384 => Family::Ecdsa,
            EdDSA => Family::Ed25519,
        }
    }

    pub fn is_hmac(self) -> bool {
        self.family() == Family::Hmac
    }

    /// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output (0 for others).
    pub fn min_key_len(self) -> usize {
        match self {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 0,
        }
    }

    /// ring's verification for a public-key algorithm (ECDSA in JWS's fixed `r || s` form).
    fn verification(self) -> &'static dyn sig::VerificationAlgorithm {
        use Algorithm::*;
        match self {
            RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            EdDSA => &sig::ED25519,
            HS256 | HS384 | HS512 => unreachable!("HMAC is verified by its own key"),
        }
    }

    fn rsa_padding(self) -> &'static dyn sig::RsaEncoding {
        use Algorithm::*;
        match self {
            RS256 => &sig::RSA_PKCS1_SHA256,
            RS384 => &sig::RSA_PKCS1_SHA384,
            RS512 => &sig::RSA_PKCS1_SHA512,
            PS256 => &sig::RSA_PSS_SHA256,
            PS384 => &sig::RSA_PSS_SHA384,
            _ => &sig::RSA_PSS_SHA512,
        }
    }

    fn ecdsa_signing(self) -> &'static sig::EcdsaSigningAlgorithm {
        match self {
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            _ => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        }
    }

    fn curve(self) -> &'static str {
        match self {
            Algorithm::ES384 => "P-384",
            Algorithm::EdDSA => "Ed25519",
            _ => "P-256",
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unsupported algorithm {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key could not be used; says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM private key found (expected a BEGIN PRIVATE KEY block)")]
    NoPrivateKey,
    #[error("no PEM public key found (expected a BEGIN PUBLIC KEY block)")]
    NoPublicKey,
    #[error("not a {algorithm} key: {reason}")]
    Rejected {
        algorithm: Algorithm,
        reason: String,
    },
    #[error("{0} keys are secrets, not PEM key files")]
    Hmac(Algorithm),
    /// An algorithm name we do not know, or none where one is needed.
    #[error("{0}")]
    Algorithm(String),
}

fn rejected(algorithm: Algorithm, reason: impl fmt::Display) -> KeyError {
    KeyError::Rejected {
        algorithm,
        reason: reason.to_string(),
    }
}

/// A keyed HMAC state, ready to be cloned for each message.
#[derive(Clone)]
enum HmacKey {
    HS256(Hmac<Sha256>),
    HS384(Hmac<Sha384>),
    HS512(Hmac<Sha512>),
}

impl HmacKey {
    fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        // Hmac accepts keys of any length, so new_from_slice cannot fail.
        match algorithm {
            Algorithm::HS384 => HmacKey::HS384(Mac::new_from_slice(secret).expect("any length")),
            Algorithm::HS512 => HmacKey::HS512(Mac::new_from_slice(secret).expect("any length")),
            _ => HmacKey::HS256(Mac::new_from_slice(secret).expect("any length")),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + Clone>(mac: &M, message: &[u8]) -> Vec<u8> {
            let mut mac = mac.clone();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            HmacKey::HS256(m) => run(m, message),
            HmacKey::HS384(m) => run(m, message),
            HmacKey::HS512(m) => run(m, message),
        }
    }

    /// Constant-time check of `signature` over `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        fn run<M: Mac + Clone>(mac: &M, message: &[u8], signature: &[u8]) -> bool {
            let mut mac = mac.clone();
            mac.update(message);
            mac.verify_slice(signature).is_ok()
        }
        match self {
            HmacKey::HS256(m) => run(m, message, signature),
            HmacKey::HS384(m) => run(m, message, signature),
            HmacKey::HS512(m) => run(m, message, signature),
        }
    }
}

// The HMAC state inline, not boxed: it is what the hot path clones per token.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Private {
    Hmac(HmacKey),
    Rsa(Arc<sig::RsaKeyPair>),
    Ecdsa(Arc<sig::EcdsaKeyPair>),
    Ed25519(Arc<sig::Ed25519KeyPair>),
}

/// A key that signs: an HMAC secret or a private key, with its algorithm.
#[derive(Clone)]
pub struct SigningKey {
    algorithm: Algorithm,
    key: Private,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <secret>)", self.algorithm)
    }
}

impl SigningKey {
    /// An HMAC key; `algorithm` must be one of the HS algorithms.
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> Self {
        debug_assert!(algorithm.is_hmac());
        SigningKey {
            algorithm,
            key: Private::Hmac(HmacKey::new(algorithm, secret)),
        }
    }

    /// A private key in PEM (PKCS#8; RSA keys also PKCS#1) for a public-key `algorithm`.
    pub fn from_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoPrivateKey)?;
        Self::from_der(algorithm, &der)
    }

    /// A private key in PKCS#8 DER, as [`generate`](Self::generate) makes them.
    pub fn from_pkcs8(algorithm: Algorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        Self::from_der(algorithm, &PrivateKeyDer::Pkcs8(pkcs8.to_vec().into()))
    }

    fn from_der(algorithm: Algorithm, der: &PrivateKeyDer) -> Result<Self, KeyError> {
        let key = match (algorithm.family(), der) {
            (Family::Hmac, _) => return Err(KeyError::Hmac(algorithm)),
            (Family::Rsa, PrivateKeyDer::Pkcs1(der)) => {
                sig::RsaKeyPair::from_der(der.secret_pkcs1_der()).map(|k| Private::Rsa(k.into()))
            }
            (Family::Rsa, PrivateKeyDer::Pkcs8(der)) => {
                sig::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map(|k| Private::Rsa(k.into()))
            }
            (Family::Ecdsa, PrivateKeyDer::Pkcs8(der)) => {
                sig::EcdsaKeyPair::from_pkcs8(algorithm.ecdsa_signing(), der.secret_pkcs8_der())
                    .map(|k| Private::Ecdsa(k.into()))
            }
            // OpenSSL writes Ed25519 keys as PKCS#8 v1, without the public key.
            (Family::Ed25519, PrivateKeyDer::Pkcs8(der)) => {
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
                    .map(|k| Private::Ed25519(k.into()))
            }
            (Family::Ecdsa, _) => {
                return Err(rejected(
                    algorithm,
                    "EC keys must be PKCS#8: convert with `openssl pkcs8 -topk8 -nocrypt`",
                ));
            }
            _ => return Err(rejected(algorithm, "expected a PKCS#8 private key")),
        };
        key.map(|key| SigningKey { algorithm, key })
            .map_err(|e| rejected(algorithm, e))
    }

    /// A new private key for a public-key `algorithm` (RSA: 2048 bits), with its PKCS#8
    /// encoding to keep.
    pub fn generate(algorithm: Algorithm) -> Result<(Self, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm.family() {
            Family::Ecdsa => sig::EcdsaKeyPair::generate_pkcs8(algorithm.ecdsa_signing(), &rng)
                .map(|d| d.as_ref().to_vec()),
            Family::Ed25519 => {
                sig::Ed25519KeyPair::generate_pkcs8(&rng).map(|d| d.as_ref().to_vec())
            }
            Family::Rsa => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .and_then(|k| k.as_der())
                .map(|d| d.as_ref().to_vec()),
            Family::Hmac => return Err(KeyError::Hmac(algorithm)),
        }
        .map_err(|e| rejected(algorithm, e))?;
        Ok((Self::from_pkcs8(algorithm, &pkcs8)?, pkcs8))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Private::Hmac(k) => k.sign(message),
            Private::Rsa(k) => {
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(self.algorithm.rsa_padding(), &rng, message, &mut signature)
                    .expect("the buffer fits the modulus");
                signature
            }
            Private::Ecdsa(k) => k
                .sign(&rng, message)
                .expect("ECDSA signing fails only without randomness")
                .as_ref()
                .to_vec(),
            Private::Ed25519(k) => k.sign(message).as_ref().to_vec(),
        }
    }

    /// The key that checks this key's signatures: the same secret for HMAC, the public half
    /// otherwise.
    pub fn verifying_key(&self) -> VerifyingKey {
        let params = match &self.key {
            Private::Hmac(k) => {
                return VerifyingKey {
                    algorithm: self.algorithm,
                    key: Public::Hmac(k.clone()),
                };
            }
            Private::Rsa(k) => {
                let public = k.public_key();
                Params::Rsa {
                    n: public.modulus().big_endian_without_leading_zero().to_vec(),
                    e: public.exponent().big_endian_without_leading_zero().to_vec(),
                }
            }
            Private::Ecdsa(k) => Params::Raw(k.public_key().as_ref().to_vec()),
            Private::Ed25519(k) => Params::Raw(k.public_key().as_ref().to_vec()),
        };
        VerifyingKey::from_params(self.algorithm, params)
            .expect("a key pair's own public key parses")
    }
}

/// A public key's numbers, as a JWK carries them.
#[derive(Clone, PartialEq, Eq)]
enum Params {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An EC point (uncompressed) or an Ed25519 key.
    Raw(Vec<u8>),
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Public {
    Hmac(HmacKey),
    Key {
        parsed: Arc<sig::ParsedPublicKey>,
        params: Params,
    },
}

/// A key that checks signatures of one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    algorithm: Algorithm,
    key: Public,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.algorithm)
    }
}

/// A public key as RFC 7517 publishes it (RFC 7518 §6 parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kid: Option<String>,
    #[serde(rename = "use", skip_serializing_if = "Option::is_none", default)]
    pub use_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
}

impl VerifyingKey {
    /// A public key in PEM (`BEGIN PUBLIC KEY`, SubjectPublicKeyInfo) for `algorithm`.
    pub fn from_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        if algorithm.is_hmac() {
            return Err(KeyError::Hmac(algorithm));
        }
        let der =
            SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| KeyError::NoPublicKey)?;
        let info = spki::SubjectPublicKeyInfoRef::try_from(der.as_ref())
            .map_err(|e| rejected(algorithm, e))?;
        let bits = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| rejected(algorithm, "the key's bit string is not whole bytes"))?;
        let oid = info.algorithm.oid.to_string();
        let expected = match algorithm.family() {
            Family::Rsa => "1.2.840.113549.1.1.1",
            Family::Ecdsa => "1.2.840.10045.2.1",
            _ => "1.3.101.112",
        };
        if oid != expected {
            return Err(rejected(
                algorithm,
                format!("the file holds a key of type {oid}"),
            ));
        }
        let params = match algorithm.family() {
            Family::Rsa => {
                let rsa = aws_lc_rs::rsa::PublicKey::from_der(bits)
                    .map_err(|e| rejected(algorithm, e))?;
                Params::Rsa {
                    n: rsa.modulus().big_endian_without_leading_zero().to_vec(),
                    e: rsa.exponent().big_endian_without_leading_zero().to_vec(),
                }
            }
            _ => Params::Raw(bits.to_vec()),
        };
        Self::from_params(algorithm, params)
    }

    /// The key of `params`, parsed once; refused when it is not a key of `algorithm`'s size.
    fn from_params(algorithm: Algorithm, params: Params) -> Result<Self, KeyError> {
        check_shape(algorithm, &params)?;
        let parsed = match &params {
            Params::Rsa { n, e } => {
                let der = sig::RsaPublicKeyComponents { n, e }
                    .as_der()
                    .map_err(|e| rejected(algorithm, e))?;
                sig::ParsedPublicKey::new(algorithm.verification(), der.as_ref())
            }
            Params::Raw(bytes) => sig::ParsedPublicKey::new(algorithm.verification(), bytes),
        }
        .map_err(|e| rejected(algorithm, e))?;
        Ok(VerifyingKey {
            algorithm,
            key: Public::Key {
                parsed: Arc::new(parsed),
                params,
            },
        })
    }

    /// A public key from a JWK, for the algorithm it names or `algorithm` when it names none.
    pub fn from_jwk(jwk: &Jwk, algorithm: Option<Algorithm>) -> Result<Self, KeyError> {
        let algorithm = match (jwk.alg.as_deref(), algorithm) {
            (Some(name), _) => name.parse().map_err(KeyError::Algorithm)?,
            (None, Some(algorithm)) => algorithm,
            (None, None) => return Err(KeyError::Algorithm("the JWK names no alg".into())),
        };
        let bytes = |field: &Option<String>, name: &str| {
            let text = field
                .as_deref()
                .ok_or_else(|| rejected(algorithm, format!("the JWK has no {name}")))?;
            B64.decode(text)
                .map_err(|_| rejected(algorithm, format!("the JWK's {name} is not base64url")))
        };
        let (kty, params) = match algorithm.family() {
            Family::Hmac => return Err(KeyError::Hmac(algorithm)),
            Family::Rsa => (
                "RSA",
                Params::Rsa {
                    n: bytes(&jwk.n, "n")?,
                    e: bytes(&jwk.e, "e")?,
                },
            ),
            Family::Ecdsa => {
                let mut point = vec![4];
                point.extend(bytes(&jwk.x, "x")?);
                point.extend(bytes(&jwk.y, "y")?);
                ("EC", Params::Raw(point))
            }
            Family::Ed25519 => ("OKP", Params::Raw(bytes(&jwk.x, "x")?)),
        };
        if jwk.kty != kty
            || (algorithm.family() != Family::Rsa && jwk.crv.as_deref() != Some(algorithm.curve()))
        {
            return Err(rejected(
                algorithm,
                "the JWK's kty or crv does not fit its alg",
            ));
        }
        Self::from_params(algorithm, params)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks `signature` over `message` (HMAC in constant time).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Public::Hmac(k) => k.verify(message, signature),
            Public::Key { parsed, .. } => parsed.verify_sig(message, signature).is_ok(),
        }
    }

    /// The public key as a JWK with `kid`; `None` for an HMAC secret, which is never published.
    pub fn jwk(&self, kid: Option<&str>) -> Option<Jwk> {
        let mut jwk = Jwk {
            kty: String::new(),
            kid: kid.map(str::to_owned),
            use_: Some("sig".into()),
            alg: Some(self.algorithm.name().into()),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        let Public::Key { params, .. } = &self.key else {
            return None;
        };
        match params {
            Params::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                jwk.n = Some(B64.encode(strip_zeros(n)));
                jwk.e = Some(B64.encode(strip_zeros(e)));
            }
            Params::Raw(bytes) if self.algorithm.family() == Family::Ecdsa => {
                let coordinates = &bytes[1..];
                let (x, y) = coordinates.split_at(coordinates.len() / 2);
                jwk.kty = "EC".into();
                jwk.crv = Some(self.algorithm.curve().into());
                jwk.x = Some(B64.encode(x));
                jwk.y = Some(B64.encode(y));
            }
            Params::Raw(bytes) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(B64.encode(bytes));
            }
        }
        Some(jwk)
    }

    /// RFC 7638's thumbprint of the public key: a `kid` every instance derives alike. `None` for
    /// HMAC.
    pub fn thumbprint(&self) -> Option<String> {
        let jwk = self.jwk(None)?;
        // The required members in lexicographic order, no whitespace.
        let canonical = match jwk.kty.as_str() {
            "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, jwk.e?, jwk.n?),
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk.crv?, jwk.x?, jwk.y?
            ),
            _ => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, jwk.crv?, jwk.x?),
        };
        Some(B64.encode(Sha256::digest(canonical.as_bytes())))
    }
}

/// Refuses a public key of the wrong size for its algorithm (every signature would fail later,
/// with no word of why).
fn check_shape(algorithm: Algorithm, params: &Params) -> Result<(), KeyError> {
    let ok = match (params, algorithm.family()) {
        (Params::Rsa { n, .. }, _) => {
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            (2048..=8192).contains(&bits)
        }
        (Params::Raw(point), Family::Ecdsa) => {
            let coordinate = if algorithm == Algorithm::ES384 {
                48
            } else {
                32
            };
            point.len() == 1 + 2 * coordinate && point[0] == 4
        }
        (Params::Raw(key), _) => key.len() == 32,
    };
    if ok {
        Ok(())
    } else {
        Err(rejected(
            algorithm,
            "the key has the wrong size (RSA: 2048 to 8192 bits)",
        ))
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

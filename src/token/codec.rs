//! Compact JWS: signing and reading tokens, and simplejwt's checks of what they claim.

use super::claims::{ClaimsSeed, Written};
use super::{Algorithm, ClaimNames, Claims, KeySet, TokenError, TokenType, VerifyingKey};
use arc_swap::ArcSwap;
use base64::{DecodeSliceError, Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::de::DeserializeSeed;
use std::sync::Arc;

/// The longest signature of any algorithm we verify: RS512 with a 4096-bit key is 512 bytes
/// (longer RSA keys fall back to the heap).
const MAX_SIGNATURE: usize = 512;
/// Payloads up to this size are decoded without allocating; ours are about 160 bytes.
const STACK_PAYLOAD: usize = 512;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    /// Seconds of slack allowed on `exp`, `nbf` and `iat`.
    pub leeway: i64,
}

/// Signs and reads tokens with one set of keys and one set of claim names.
#[derive(Debug)]
pub struct TokenCodec {
    /// A token with the exact header the signer writes needs no header parsing. Swapped whole
    /// when the keys rotate; a token check holds the set it started with.
    keys: ArcSwap<KeySet>,
    names: ClaimNames,
    validation: Validation,
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    /// Extensions the token requires us to understand (RFC 7515 §4.1.11). We implement none,
    /// so a `crit` of any value, even `null` or `[]`, is refused, as PyJWT does.
    #[serde(default)]
    crit: Present,
}

/// Whether a header field was there at all, whatever its value.
#[derive(Default)]
struct Present(bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// The decoded JSON of a header or payload as text. Checked here, in one pass, because serde's
/// `IgnoredAny` skips unknown fields' strings without checking their UTF-8; PyJWT refuses
/// invalid UTF-8 anywhere.
fn utf8(json: &[u8]) -> Result<&str, TokenError> {
    std::str::from_utf8(json).map_err(|_| TokenError::Invalid)
}

impl TokenCodec {
    pub fn new(keys: KeySet, names: ClaimNames, validation: Validation) -> Self {
        TokenCodec {
            keys: ArcSwap::from_pointee(keys),
            names,
            validation,
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Whether `token`'s header names a kid none of the keys has.
    pub fn names_unknown_kid(&self, token: &str) -> bool {
        let Some(header) = token.split('.').next() else {
            return false;
        };
        let Ok(json) = B64.decode(header) else {
            return false;
        };
        match serde_json::from_slice::<Header>(&json) {
            Ok(Header { kid: Some(kid), .. }) => !self.keys.load().knows(&kid),
            _ => false,
        }
    }

    /// Signs and verifies with `keys` from now on (a rotation).
    pub fn replace_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
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
        let keys = self.keys.load();
        let header = keys.header();
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 96);
        token.push_str(header);
        token.push('.');
        B64.encode_string(payload, &mut token);
        let signature = keys.signer().sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature, &mut token);
        token
    }

    /// Checks the algorithm, the signature and the time, audience and issuer claims (PyJWT's
    /// part of reading a token).
    pub fn decode(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
        let keys = self.keys.load();
        let key = if header == keys.header() {
            keys.own_verifier()
        } else {
            verifier_for(&keys, header)?
        };
        // Decoded on the stack: a token check allocates only the claims it keeps.
        let (mut signature_bytes, mut spilled_signature) = ([0u8; MAX_SIGNATURE], Vec::new());
        let signature = decode_b64(signature, &mut signature_bytes, &mut spilled_signature)?;
        if !key.verify(signing_input.as_bytes(), signature) {
            return Err(TokenError::Invalid);
        }
        let (mut payload_bytes, mut spilled_payload) = ([0u8; STACK_PAYLOAD], Vec::new());
        let payload = decode_b64(payload, &mut payload_bytes, &mut spilled_payload)?;
        // From text already checked: serde_json then need not check each string again.
        let mut json = serde_json::Deserializer::from_str(utf8(payload)?);
        let claims = ClaimsSeed(&self.names)
            .deserialize(&mut json)
            // Nothing but whitespace may follow the object.
            .and_then(|claims| json.end().map(|()| claims))
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
        if let Some(kind) = expected
            && !claims.is_type(kind)
        {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
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
        if let Some(issuer) = &self.validation.issuer
            && c.iss.as_ref() != Some(issuer)
        {
            return Err(TokenError::Invalid);
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

/// Base64url `text` decoded into `stack` when it fits, else into `heap` (an empty `Vec` costs
/// nothing until then).
fn decode_b64<'a>(
    text: &str,
    stack: &'a mut [u8],
    heap: &'a mut Vec<u8>,
) -> Result<&'a [u8], TokenError> {
    match B64.decode_slice(text, stack) {
        Ok(length) => Ok(&stack[..length]),
        Err(DecodeSliceError::OutputSliceTooSmall) => {
            *heap = B64.decode(text).map_err(|_| TokenError::Invalid)?;
            Ok(heap)
        }
        Err(DecodeSliceError::DecodeError(_)) => Err(TokenError::Invalid),
    }
}

/// The key for a header other than the signer's own: the one its `kid` names (or without a kid,
/// see [`KeySet::verifier`]), and only if that key is of the algorithm the header names (this is
/// what rejects `alg: none` and algorithm confusion); a header that asks for any extension is
/// refused. `jwk`, `jku`, `x5u` and `x5c` are never read.
fn verifier_for<'k>(keys: &'k KeySet, header: &str) -> Result<&'k VerifyingKey, TokenError> {
    let json = B64.decode(header).map_err(|_| TokenError::Invalid)?;
    // `from_str` also refuses anything but whitespace after the object.
    let header: Header = serde_json::from_str(utf8(&json)?).map_err(|_| TokenError::Invalid)?;
    if header.crit.0 {
        return Err(TokenError::Invalid);
    }
    let alg: Algorithm = header.alg.parse().map_err(|_| TokenError::Invalid)?;
    keys.verifier(alg, header.kid.as_deref())
        .ok_or(TokenError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SigningKey;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn codec(validation: Validation) -> TokenCodec {
        TokenCodec::new(
            KeySet::new(SigningKey::hmac(Algorithm::HS256, KEY), None),
            ClaimNames::default(),
            validation,
        )
    }

    fn claims(kind: TokenType, exp: i64) -> Claims {
        Claims {
            token_type: Some(kind.as_str().into()),
            exp: Some(exp),
            iat: Some(exp - 300),
            jti: Some("0123456789abcdef0123456789abcdef".into()),
            user_id: Some("42".into()),
            ..Claims::default()
        }
    }

    /// Signs raw header and payload JSON with the test key.
    fn raw(header: &str, payload: &str) -> String {
        raw_bytes(header.as_bytes(), payload.as_bytes())
    }

    /// [`raw`] for header and payload bytes that need not be UTF-8.
    fn raw_bytes(header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let sig = SigningKey::hmac(Algorithm::HS256, KEY).sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig))
    }

    #[test]
    fn encodes_pyjwts_header_and_simplejwts_claim_order() {
        let token = codec(Validation::default()).encode(&claims(TokenType::Access, 1000));
        let mut segments = token.split('.');
        let header = B64.decode(segments.next().unwrap()).unwrap();
        let payload = B64.decode(segments.next().unwrap()).unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            r#"{"token_type":"access","exp":1000,"iat":700,"jti":"0123456789abcdef0123456789abcdef","user_id":"42"}"#
        );
    }

    #[test]
    fn round_trips_and_checks_type_and_time() {
        let c = codec(Validation::default());
        let token = c.encode(&claims(TokenType::Refresh, 1000));
        let read = c.validate(&token, Some(TokenType::Refresh), 999).unwrap();
        assert_eq!(read.user_id.as_deref(), Some("42"));
        assert_eq!(
            c.validate(&token, Some(TokenType::Access), 999),
            Err(TokenError::WrongType)
        );
        assert_eq!(c.validate(&token, None, 1000), Err(TokenError::Expired));
        let lenient = codec(Validation {
            leeway: 5,
            ..Validation::default()
        });
        assert!(lenient.validate(&token, None, 1004).is_ok());
        assert_eq!(
            lenient.validate(&token, None, 1005),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn reads_payloads_larger_than_the_stack_buffer() {
        let c = codec(Validation::default());
        let padding = "p".repeat(STACK_PAYLOAD * 2);
        let payload = format!(
            r#"{{"token_type":"access","exp":2000,"jti":"x","user_id":"7","extra":"{padding}"}}"#
        );
        let token = raw(r#"{"alg":"HS256","typ":"JWT"}"#, &payload);
        let read = c.validate(&token, Some(TokenType::Access), 1).unwrap();
        assert_eq!(read.user_id.as_deref(), Some("7"));
        let mut forged = token.clone();
        forged.insert_str(40, "AAAA");
        assert_eq!(c.validate(&forged, None, 1), Err(TokenError::Invalid));
    }

    #[test]
    fn refuses_other_algorithms_and_tampering() {
        let c = codec(Validation::default());
        let payload = r#"{"token_type":"access","exp":2000,"jti":"x","user_id":"1"}"#;
        assert!(
            c.validate(&raw(r#"{"typ":"JWT","alg":"HS256"}"#, payload), None, 1)
                .is_ok()
        );
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            "{}",
            "[]",
        ] {
            assert_eq!(
                c.decode(&raw(header, payload), 1),
                Err(TokenError::Invalid),
                "{header}"
            );
        }
        let unsigned = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(payload)
        );
        assert_eq!(c.decode(&unsigned, 1), Err(TokenError::Invalid));
        let good = raw(r#"{"alg":"HS256","typ":"JWT"}"#, payload);
        let forged = good.replace(&good[good.len() - 4..], "AAAA");
        assert_eq!(c.decode(&forged, 1), Err(TokenError::Invalid));
        for junk in ["", ".", "..", "a.b", "a.b.c.d", "x.y.z"] {
            assert_eq!(c.decode(junk, 1), Err(TokenError::Invalid), "{junk:?}");
        }
    }

    #[test]
    fn refuses_any_crit_header() {
        // RFC 7515 4.1.11: we implement no extension, so whatever `crit` names is unknown to us.
        let c = codec(Validation::default());
        let payload = r#"{"token_type":"access","exp":2000,"jti":"x","user_id":"1"}"#;
        for header in [
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false}"#,
            r#"{"crit":[],"alg":"HS256"}"#,
            r#"{"alg":"HS256","crit":null}"#,
        ] {
            assert_eq!(
                c.validate(&raw(header, payload), None, 1),
                Err(TokenError::Invalid),
                "{header}"
            );
        }
    }

    #[test]
    fn refuses_bytes_after_the_json() {
        let c = codec(Validation::default());
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let payload = r#"{"token_type":"access","exp":2000,"jti":"x","user_id":"1"}"#;
        assert!(c.validate(&raw(header, payload), None, 1).is_ok());
        // Whitespace after the JSON is still JSON, to PyJWT's json.loads too.
        assert!(
            c.validate(&raw(header, &format!("{payload} \n")), None, 1)
                .is_ok()
        );
        for trailer in ["x", "{}", ",", "\0", "]"] {
            let after_payload = raw(header, &format!("{payload}{trailer}"));
            assert_eq!(
                c.validate(&after_payload, None, 1),
                Err(TokenError::Invalid),
                "payload + {trailer:?}"
            );
            let after_header = raw(&format!("{header}{trailer}"), payload);
            assert_eq!(
                c.validate(&after_header, None, 1),
                Err(TokenError::Invalid),
                "header + {trailer:?}"
            );
        }
    }

    #[test]
    fn refuses_invalid_utf8_in_header_or_payload() {
        let c = codec(Validation::default());
        let header: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;
        let payload: &[u8] = br#"{"token_type":"access","exp":2000,"jti":"x","user_id":"1"}"#;
        assert!(c.validate(&raw_bytes(header, payload), None, 1).is_ok());
        let bad_payloads: [&[u8]; 4] = [
            b"{\"token_type\":\"access\",\"exp\":2000,\"jti\":\"x\",\"extra\":\"\xff\"}",
            b"{\"token_type\":\"access\",\"exp\":2000,\"jti\":\"x\",\"extra\":[\"\xc3\"]}",
            b"{\"token_type\":\"access\",\"exp\":2000,\"jti\":\"x\",\"\xed\xa0\x80\":1}",
            b"{\"token_type\":\"access\",\"exp\":2000,\"jti\":\"\xf8x\"}",
        ];
        for bad in bad_payloads {
            assert_eq!(
                c.validate(&raw_bytes(header, bad), None, 1),
                Err(TokenError::Invalid),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let bad_headers: [&[u8]; 2] = [
            b"{\"alg\":\"HS256\",\"kid\":\"\xff\"}",
            b"{\"alg\":\"HS256\",\"x\":{\"y\":\"\xc0\xaf\"}}",
        ];
        for bad in bad_headers {
            assert_eq!(
                c.validate(&raw_bytes(bad, payload), None, 1),
                Err(TokenError::Invalid),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn reads_integer_user_ids_and_fractional_times() {
        let c = codec(Validation::default());
        let token = raw(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"exp":1500.9,"jti":"j","user_id":7,"extra":{"nested":[1,2]}}"#,
        );
        let read = c.validate(&token, None, 1).unwrap();
        assert_eq!(read.user_id.as_deref(), Some("7"));
        assert_eq!(read.exp, Some(1500));
        let bad_exp = raw(r#"{"alg":"HS256"}"#, r#"{"exp":"soon","jti":"j"}"#);
        assert_eq!(c.decode(&bad_exp, 1), Err(TokenError::Invalid));
        let future_iat = raw(r#"{"alg":"HS256"}"#, r#"{"exp":5000,"iat":3000,"jti":"j"}"#);
        assert_eq!(c.decode(&future_iat, 1000), Err(TokenError::Invalid));
        let no_id = raw(r#"{"alg":"HS256"}"#, r#"{"exp":5000}"#);
        assert_eq!(c.validate(&no_id, None, 1), Err(TokenError::NoId));
        let no_exp = raw(r#"{"alg":"HS256"}"#, r#"{"jti":"j"}"#);
        assert_eq!(
            c.validate(&no_exp, None, 1),
            Err(TokenError::MissingClaim("exp"))
        );
    }

    #[test]
    fn audience_and_issuer_are_written_and_required() {
        let c = codec(Validation {
            audience: Some("api".into()),
            issuer: Some("me".into()),
            leeway: 0,
        });
        let token = c.encode(&claims(TokenType::Access, 1000));
        assert!(c.validate(&token, None, 800).is_ok());
        let plain = codec(Validation::default());
        assert_eq!(
            plain.decode(&token, 800),
            Err(TokenError::Invalid),
            "unexpected aud"
        );
        let unaudienced = plain.encode(&claims(TokenType::Access, 1000));
        assert_eq!(c.decode(&unaudienced, 800), Err(TokenError::Invalid));
        let many = raw(
            r#"{"alg":"HS256"}"#,
            r#"{"exp":1000,"jti":"j","aud":["x","api"],"iss":"me"}"#,
        );
        assert!(c.validate(&many, None, 1).is_ok());
        let wrong_iss = raw(
            r#"{"alg":"HS256"}"#,
            r#"{"exp":1000,"jti":"j","aud":"api","iss":"you"}"#,
        );
        assert_eq!(c.decode(&wrong_iss, 1), Err(TokenError::Invalid));
    }

    #[test]
    fn renamed_claims_are_written_and_read_under_their_names() {
        let names = ClaimNames {
            token_type: "typ".into(),
            user_id: "sub".into(),
            jti: "id".into(),
        };
        let c = TokenCodec::new(
            KeySet::new(SigningKey::hmac(Algorithm::HS256, KEY), None),
            names,
            Validation::default(),
        );
        let token = c.encode(&claims(TokenType::Access, 1000));
        let payload = B64.decode(token.split('.').nth(1).unwrap()).unwrap();
        let payload = String::from_utf8(payload).unwrap();
        assert!(
            payload.starts_with(r#"{"typ":"access","exp":1000"#),
            "{payload}"
        );
        assert!(
            payload.contains(r#""id":"#) && payload.contains(r#""sub":"42""#),
            "{payload}"
        );
        let read = c.validate(&token, Some(TokenType::Access), 800).unwrap();
        assert_eq!(read.user_id.as_deref(), Some("42"));
    }
}

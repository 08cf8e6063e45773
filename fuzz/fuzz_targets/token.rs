//! The token decoder on arbitrary input: either the input is the token, or it is the header and
//! the payload JSON (split at the first newline), signed with the codec's key, so that what
//! follows the signature check (header and claims parsing, the claim checks) is reached too.

#![no_main]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use handstamp::token::{
    Algorithm, ClaimNames, SigningKey, TokenCodec, TokenError, TokenType, Validation,
};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use std::collections::HashMap;
use std::sync::LazyLock;

const KEY: &[u8] = b"fuzz-signing-key-of-at-least-thirty-two-bytes";
const NOW: i64 = 1_700_000_000;

static CODECS: LazyLock<[TokenCodec; 2]> = LazyLock::new(|| {
    let key = || SigningKey::hmac(Algorithm::HS256, KEY);
    let renamed = ClaimNames {
        token_type: "typ".into(),
        user_id: "sub".into(),
        jti: "id".into(),
    };
    let strict = Validation {
        audience: Some("api".into()),
        issuer: Some("me".into()),
        leeway: 30,
    };
    [
        TokenCodec::new(key(), ClaimNames::default(), Validation::default()),
        TokenCodec::new(key(), renamed, strict),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let codec = &CODECS[usize::from(mode & 2 != 0)];
    let (token, signed_json) = if mode & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        (token.to_owned(), None)
    } else {
        let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature = SigningKey::hmac(Algorithm::HS256, KEY).sign(input.as_bytes());
        (
            format!("{input}.{}", B64.encode(signature)),
            Some((header, payload)),
        )
    };
    let decoded = codec.decode(&token, NOW);
    let validated = codec.validate(&token, Some(TokenType::Access), NOW);
    // Validation is decoding plus more checks: it never accepts what decoding refused.
    if let Err(error) = &decoded {
        assert_eq!(validated.as_ref().err(), Some(error));
    }
    if decoded.is_ok()
        && let Some((header, payload)) = signed_json
    {
        // What PyJWT refuses, we refuse: invalid UTF-8, bytes after the JSON, any `crit`.
        let header = std::str::from_utf8(header).expect("accepted a header that is not UTF-8");
        let payload = std::str::from_utf8(payload).expect("accepted a payload that is not UTF-8");
        let fields: HashMap<String, IgnoredAny> = serde_json::from_str(header)
            .unwrap_or_else(|e| panic!("accepted a header that is not one object ({e})"));
        assert!(
            !fields.contains_key("crit"),
            "accepted a crit header: {header}"
        );
        serde_json::from_str::<IgnoredAny>(payload)
            .unwrap_or_else(|e| panic!("accepted a payload that is not one JSON value ({e})"));
    }
    if let Err(error) = decoded {
        assert!(matches!(error, TokenError::Invalid | TokenError::Expired));
    }
});

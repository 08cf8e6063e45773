//! Token verification alone, handstamp's codec against jsonwebtoken's per-call path (what the
//! naive reference server does), in one run: `cargo bench --bench token`.

use handstamp::token::{
    Algorithm, ClaimNames, Claims, KeySet, SigningKey, TokenCodec, TokenType, Validation,
};
use std::hint::black_box;
use std::time::Instant;

const KEY: &[u8] = b"bench-signing-key-0123456789abcdef0123456789abcdef0123456789abcd";
const ROUNDS: u32 = 500_000;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct JwtClaims {
    user_id: String,
    exp: i64,
}

/// Nanoseconds per call of `f`, best of three runs.
fn time(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let codec = TokenCodec::new(
        KeySet::new(SigningKey::hmac(Algorithm::HS256, KEY), None),
        ClaimNames::default(),
        Validation::default(),
    );
    let now = handstamp::token::now();
    let token = codec.encode(&Claims {
        token_type: Some("access".into()),
        exp: Some(now + 3600),
        iat: Some(now),
        jti: Some(handstamp::token::new_jti()),
        user_id: Some("42".into()),
        ..Claims::default()
    });

    let ours = time(|| {
        let claims = codec.validate(black_box(&token), Some(TokenType::Access), now);
        black_box(claims.unwrap());
    });
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let per_call = time(|| {
        let key = jsonwebtoken::DecodingKey::from_secret(KEY);
        let data = jsonwebtoken::decode::<JwtClaims>(black_box(&token), &key, &validation);
        black_box(data.unwrap());
    });
    let key = jsonwebtoken::DecodingKey::from_secret(KEY);
    let kept_key = time(|| {
        let data = jsonwebtoken::decode::<JwtClaims>(black_box(&token), &key, &validation);
        black_box(data.unwrap());
    });
    println!("| verify an HS256 access token | ns per call | jsonwebtoken / handstamp |");
    println!("|---|---:|---:|");
    println!("| handstamp TokenCodec::validate | {ours:.0} | 1.00 |");
    println!(
        "| jsonwebtoken::decode, key per call | {per_call:.0} | {:.2} |",
        per_call / ours
    );
    println!(
        "| jsonwebtoken::decode, key kept | {kept_key:.0} | {:.2} |",
        kept_key / ours
    );
}

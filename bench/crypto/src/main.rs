//! Throughput of the JWS signature algorithms (RFC 7518) across three Rust crypto stacks:
//! `ring`, `aws-lc-rs` and the RustCrypto crates (`rsa`, `p256`, `p384`, `ed25519-dalek`).
//!
//! For every algorithm and crate it measures verify and sign of one realistic JWS signing
//! input (`base64url(header) "." base64url(payload)`, about 180 bytes), and key generation
//! for each key type. Each figure is the median of `--runs` runs (default 5), each run
//! repeating the operation for at least `--secs` seconds (default 1) timed with `Instant`.
//!
//! Before timing, every crate's signature is checked against every other crate's verifier
//! (and a tampered input must be rejected), so all rows measure the same, interoperable
//! operation on the same key.
//!
//! Usage: `crypto-bench [--secs S] [--runs N] [--only SUBSTRING]`
//! Run pinned to one CPU: `taskset -c 0 target/release/crypto-bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Pkcs1,
    Pss,
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Rsa2048,
    P256,
    P384,
    Ed25519,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "RSA-2048",
            KeyType::P256 => "P-256",
            KeyType::P384 => "P-384",
            KeyType::Ed25519 => "Ed25519",
        }
    }
}

#[derive(Clone, Copy)]
struct Alg {
    name: &'static str,
    family: Family,
    hash: Hash,
}

impl Alg {
    fn key_type(self) -> KeyType {
        match self.family {
            Family::Pkcs1 | Family::Pss => KeyType::Rsa2048,
            Family::EcdsaP256 => KeyType::P256,
            Family::EcdsaP384 => KeyType::P384,
            Family::Ed25519 => KeyType::Ed25519,
        }
    }
}

const ALGS: [Alg; 9] = [
    Alg {
        name: "RS256",
        family: Family::Pkcs1,
        hash: Hash::Sha256,
    },
    Alg {
        name: "RS384",
        family: Family::Pkcs1,
        hash: Hash::Sha384,
    },
    Alg {
        name: "RS512",
        family: Family::Pkcs1,
        hash: Hash::Sha512,
    },
    Alg {
        name: "PS256",
        family: Family::Pss,
        hash: Hash::Sha256,
    },
    Alg {
        name: "PS384",
        family: Family::Pss,
        hash: Hash::Sha384,
    },
    Alg {
        name: "PS512",
        family: Family::Pss,
        hash: Hash::Sha512,
    },
    Alg {
        name: "ES256",
        family: Family::EcdsaP256,
        hash: Hash::Sha256,
    },
    Alg {
        name: "ES384",
        family: Family::EcdsaP384,
        hash: Hash::Sha384,
    },
    Alg {
        name: "EdDSA",
        family: Family::Ed25519,
        hash: Hash::Sha512,
    },
];

const KEY_TYPES: [KeyType; 4] = [
    KeyType::Rsa2048,
    KeyType::P256,
    KeyType::P384,
    KeyType::Ed25519,
];

type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;
type VerifyFn = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// One crate's implementation of one algorithm, bound to one key.
struct Impl {
    krate: &'static str,
    /// None for rows that only show another way to verify (e.g. re-parsing the key each time).
    sign: Option<SignFn>,
    verify: VerifyFn,
}

/// Key material shared by all crates: PKCS#8 DER of one key per key type.
struct Keys {
    rsa: Vec<u8>,
    p256: Vec<u8>,
    p384: Vec<u8>,
    ed25519: Vec<u8>,
}

impl Keys {
    fn generate() -> Self {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature as s;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("RSA keygen");
        let rsa: aws_lc_rs::encoding::Pkcs8V1Der = rsa.as_der().expect("RSA PKCS#8");
        Keys {
            rsa: rsa.as_ref().to_vec(),
            p256: s::EcdsaKeyPair::generate_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("P-256")
                .as_ref()
                .to_vec(),
            p384: s::EcdsaKeyPair::generate_pkcs8(&s::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                .expect("P-384")
                .as_ref()
                .to_vec(),
            ed25519: s::Ed25519KeyPair::generate_pkcs8(&rng)
                .expect("Ed25519")
                .as_ref()
                .to_vec(),
        }
    }

    fn for_alg(&self, alg: Alg) -> &[u8] {
        match alg.key_type() {
            KeyType::Rsa2048 => &self.rsa,
            KeyType::P256 => &self.p256,
            KeyType::P384 => &self.p384,
            KeyType::Ed25519 => &self.ed25519,
        }
    }
}

mod with_ring {
    use super::{Alg, Family, Hash, Impl, KeyType};
    use ring::rand::SystemRandom;
    use ring::signature::{self as s, KeyPair as _, UnparsedPublicKey};

    pub const NAME: &str = "ring 0.17";

    pub fn build(alg: Alg, pkcs8: &[u8]) -> Vec<Impl> {
        let rng = SystemRandom::new();
        match alg.family {
            Family::Pkcs1 | Family::Pss => {
                let (enc, params): (&'static dyn s::RsaEncoding, &'static s::RsaParameters) =
                    match (alg.family, alg.hash) {
                        (Family::Pkcs1, Hash::Sha256) => {
                            (&s::RSA_PKCS1_SHA256, &s::RSA_PKCS1_2048_8192_SHA256)
                        }
                        (Family::Pkcs1, Hash::Sha384) => {
                            (&s::RSA_PKCS1_SHA384, &s::RSA_PKCS1_2048_8192_SHA384)
                        }
                        (Family::Pkcs1, Hash::Sha512) => {
                            (&s::RSA_PKCS1_SHA512, &s::RSA_PKCS1_2048_8192_SHA512)
                        }
                        (_, Hash::Sha256) => (&s::RSA_PSS_SHA256, &s::RSA_PSS_2048_8192_SHA256),
                        (_, Hash::Sha384) => (&s::RSA_PSS_SHA384, &s::RSA_PSS_2048_8192_SHA384),
                        (_, Hash::Sha512) => (&s::RSA_PSS_SHA512, &s::RSA_PSS_2048_8192_SHA512),
                    };
                let kp = s::RsaKeyPair::from_pkcs8(pkcs8).expect("ring RSA key");
                let public = kp.public().as_ref().to_vec();
                vec![Impl {
                    krate: NAME,
                    sign: Some(Box::new(move |m| {
                        let mut sig = vec![0; kp.public().modulus_len()];
                        kp.sign(enc, &rng, m, &mut sig).expect("ring RSA sign");
                        sig
                    })),
                    verify: Box::new(move |m, sig| {
                        UnparsedPublicKey::new(params, &public)
                            .verify(m, sig)
                            .is_ok()
                    }),
                }]
            }
            Family::EcdsaP256 | Family::EcdsaP384 => {
                let (signing, verifying) = if alg.family == Family::EcdsaP256 {
                    (
                        &s::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &s::ECDSA_P256_SHA256_FIXED,
                    )
                } else {
                    (
                        &s::ECDSA_P384_SHA384_FIXED_SIGNING,
                        &s::ECDSA_P384_SHA384_FIXED,
                    )
                };
                let kp = s::EcdsaKeyPair::from_pkcs8(signing, pkcs8, &rng).expect("ring EC key");
                let public = kp.public_key().as_ref().to_vec();
                vec![Impl {
                    krate: NAME,
                    sign: Some(Box::new(move |m| {
                        kp.sign(&rng, m).expect("ring ECDSA sign").as_ref().to_vec()
                    })),
                    verify: Box::new(move |m, sig| {
                        UnparsedPublicKey::new(verifying, &public)
                            .verify(m, sig)
                            .is_ok()
                    }),
                }]
            }
            Family::Ed25519 => {
                let kp = s::Ed25519KeyPair::from_pkcs8(pkcs8).expect("ring Ed25519 key");
                let public = kp.public_key().as_ref().to_vec();
                vec![Impl {
                    krate: NAME,
                    sign: Some(Box::new(move |m| kp.sign(m).as_ref().to_vec())),
                    verify: Box::new(move |m, sig| {
                        UnparsedPublicKey::new(&s::ED25519, &public)
                            .verify(m, sig)
                            .is_ok()
                    }),
                }]
            }
        }
    }

    /// ring cannot generate RSA keys; EC and Ed25519 keys come out as PKCS#8 documents.
    pub fn keygen(kt: KeyType) -> Option<Box<dyn Fn()>> {
        let rng = SystemRandom::new();
        match kt {
            KeyType::Rsa2048 => None,
            KeyType::P256 => Some(Box::new(move || {
                std::hint::black_box(
                    s::EcdsaKeyPair::generate_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                        .unwrap(),
                );
            })),
            KeyType::P384 => Some(Box::new(move || {
                std::hint::black_box(
                    s::EcdsaKeyPair::generate_pkcs8(&s::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                        .unwrap(),
                );
            })),
            KeyType::Ed25519 => Some(Box::new(move || {
                std::hint::black_box(s::Ed25519KeyPair::generate_pkcs8(&rng).unwrap());
            })),
        }
    }
}

mod with_aws_lc {
    use super::{Alg, Family, Hash, Impl, KeyType};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        self as s, KeyPair as _, ParsedPublicKey, UnparsedPublicKey, VerificationAlgorithm,
    };

    pub const NAME: &str = "aws-lc-rs 1";
    const NAME_UNPARSED: &str = "aws-lc-rs 1 (key re-parsed per verify)";

    /// Two rows: the signer with a `ParsedPublicKey` verifier (key parsed once, as a server
    /// would hold it), and a verify-only row with `UnparsedPublicKey` (parsed on every call,
    /// the only way ring offers).
    fn verifiers(
        alg: &'static dyn VerificationAlgorithm,
        public: Vec<u8>,
        sign: super::SignFn,
    ) -> Vec<Impl> {
        let parsed = ParsedPublicKey::new(alg, &public).expect("aws-lc-rs public key");
        vec![
            Impl {
                krate: NAME,
                sign: Some(sign),
                verify: Box::new(move |m, sig| parsed.verify_sig(m, sig).is_ok()),
            },
            Impl {
                krate: NAME_UNPARSED,
                sign: None,
                verify: Box::new(move |m, sig| {
                    UnparsedPublicKey::new(alg, &public).verify(m, sig).is_ok()
                }),
            },
        ]
    }

    pub fn build(alg: Alg, pkcs8: &[u8]) -> Vec<Impl> {
        let rng = SystemRandom::new();
        match alg.family {
            Family::Pkcs1 | Family::Pss => {
                let (enc, params): (&'static dyn s::RsaEncoding, &'static s::RsaParameters) =
                    match (alg.family, alg.hash) {
                        (Family::Pkcs1, Hash::Sha256) => {
                            (&s::RSA_PKCS1_SHA256, &s::RSA_PKCS1_2048_8192_SHA256)
                        }
                        (Family::Pkcs1, Hash::Sha384) => {
                            (&s::RSA_PKCS1_SHA384, &s::RSA_PKCS1_2048_8192_SHA384)
                        }
                        (Family::Pkcs1, Hash::Sha512) => {
                            (&s::RSA_PKCS1_SHA512, &s::RSA_PKCS1_2048_8192_SHA512)
                        }
                        (_, Hash::Sha256) => (&s::RSA_PSS_SHA256, &s::RSA_PSS_2048_8192_SHA256),
                        (_, Hash::Sha384) => (&s::RSA_PSS_SHA384, &s::RSA_PSS_2048_8192_SHA384),
                        (_, Hash::Sha512) => (&s::RSA_PSS_SHA512, &s::RSA_PSS_2048_8192_SHA512),
                    };
                let kp = s::RsaKeyPair::from_pkcs8(pkcs8).expect("aws-lc-rs RSA key");
                let public = kp.public_key().as_ref().to_vec();
                let sign: super::SignFn = Box::new(move |m| {
                    let mut sig = vec![0; kp.public_modulus_len()];
                    kp.sign(enc, &rng, m, &mut sig).expect("aws-lc-rs RSA sign");
                    sig
                });
                verifiers(params, public, sign)
            }
            Family::EcdsaP256 | Family::EcdsaP384 => {
                let (signing, verifying) = if alg.family == Family::EcdsaP256 {
                    (
                        &s::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &s::ECDSA_P256_SHA256_FIXED,
                    )
                } else {
                    (
                        &s::ECDSA_P384_SHA384_FIXED_SIGNING,
                        &s::ECDSA_P384_SHA384_FIXED,
                    )
                };
                let kp = s::EcdsaKeyPair::from_pkcs8(signing, pkcs8).expect("aws-lc-rs EC key");
                let public = kp.public_key().as_ref().to_vec();
                let sign: super::SignFn = Box::new(move |m| {
                    kp.sign(&rng, m)
                        .expect("aws-lc-rs ECDSA sign")
                        .as_ref()
                        .to_vec()
                });
                verifiers(verifying, public, sign)
            }
            Family::Ed25519 => {
                let kp = s::Ed25519KeyPair::from_pkcs8(pkcs8).expect("aws-lc-rs Ed25519 key");
                let public = kp.public_key().as_ref().to_vec();
                let sign: super::SignFn = Box::new(move |m| kp.sign(m).as_ref().to_vec());
                verifiers(&s::ED25519, public, sign)
            }
        }
    }

    /// Key pair objects, as `KeyPair::generate` returns them (serializing is a separate step).
    pub fn keygen(kt: KeyType) -> Option<Box<dyn Fn()>> {
        Some(match kt {
            KeyType::Rsa2048 => Box::new(|| {
                std::hint::black_box(
                    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
                );
            }),
            KeyType::P256 => Box::new(|| {
                std::hint::black_box(
                    s::EcdsaKeyPair::generate(&s::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
                );
            }),
            KeyType::P384 => Box::new(|| {
                std::hint::black_box(
                    s::EcdsaKeyPair::generate(&s::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
                );
            }),
            KeyType::Ed25519 => Box::new(|| {
                std::hint::black_box(s::Ed25519KeyPair::generate().unwrap());
            }),
        })
    }
}

mod with_rustcrypto {
    use super::{Alg, Family, Hash, Impl, KeyType};
    use getrandom::SysRng;
    use p256::pkcs8::DecodePrivateKey as _;
    use rsa::signature::Keypair as _;
    use rsa::signature::rand_core::UnwrapErr;

    pub const NAME: &str = "RustCrypto (rsa 0.10, p256/p384 0.14, ed25519-dalek 3)";

    /// Signer and verifier from any RustCrypto key pair type (all share the `signature` traits).
    fn from_keys<S, V, Sig>(signing: S, verifying: V) -> Vec<Impl>
    where
        S: rsa::signature::Signer<Sig> + 'static,
        V: rsa::signature::Verifier<Sig> + 'static,
        Sig: rsa::signature::SignatureEncoding + for<'a> TryFrom<&'a [u8]>,
    {
        vec![Impl {
            krate: NAME,
            sign: Some(Box::new(move |m| signing.sign(m).to_vec())),
            verify: Box::new(move |m, sig| match Sig::try_from(sig) {
                Ok(sig) => verifying.verify(m, &sig).is_ok(),
                Err(_) => false,
            }),
        }]
    }

    fn rsa_impl<D>(pss: bool, key: rsa::PrivateKey) -> Vec<Impl>
    where
        D: rsa::sha2::Digest
            + rsa::sha2::digest::FixedOutputReset
            + rsa::sha2::digest::const_oid::AssociatedOid
            + 'static,
    {
        if pss {
            let signing = rsa::pss::SigningKey::<D>::new(key);
            let verifying = signing.verifying_key();
            from_keys::<_, _, rsa::pss::Signature>(signing, verifying)
        } else {
            let signing = rsa::pkcs1v15::SigningKey::<D>::new(key);
            let verifying = signing.verifying_key();
            from_keys::<_, _, rsa::pkcs1v15::Signature>(signing, verifying)
        }
    }

    pub fn build(alg: Alg, pkcs8: &[u8]) -> Vec<Impl> {
        match alg.family {
            Family::Pkcs1 | Family::Pss => {
                let key = rsa::PrivateKey::from_pkcs8_der(pkcs8).expect("rsa key");
                let pss = alg.family == Family::Pss;
                match alg.hash {
                    Hash::Sha256 => rsa_impl::<sha2::Sha256>(pss, key),
                    Hash::Sha384 => rsa_impl::<sha2::Sha384>(pss, key),
                    Hash::Sha512 => rsa_impl::<sha2::Sha512>(pss, key),
                }
            }
            Family::EcdsaP256 => {
                let signing = p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8).expect("p256 key");
                let verifying = *signing.verifying_key();
                from_keys::<_, _, p256::ecdsa::Signature>(signing, verifying)
            }
            Family::EcdsaP384 => {
                let signing = p384::ecdsa::SigningKey::from_pkcs8_der(pkcs8).expect("p384 key");
                let verifying = *signing.verifying_key();
                from_keys::<_, _, p384::ecdsa::Signature>(signing, verifying)
            }
            Family::Ed25519 => {
                let signing =
                    ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8).expect("ed25519 key");
                let verifying = signing.verifying_key();
                from_keys::<_, _, ed25519_dalek::Signature>(signing, verifying)
            }
        }
    }

    pub fn keygen(kt: KeyType) -> Option<Box<dyn Fn()>> {
        use rsa::Generate as _;
        Some(match kt {
            KeyType::Rsa2048 => Box::new(|| {
                std::hint::black_box(rsa::PrivateKey::new(&mut SysRng, 2048).unwrap());
            }),
            KeyType::P256 => Box::new(|| {
                std::hint::black_box(
                    p256::ecdsa::SigningKey::try_generate_from_rng(&mut SysRng).unwrap(),
                );
            }),
            KeyType::P384 => Box::new(|| {
                std::hint::black_box(
                    p384::ecdsa::SigningKey::try_generate_from_rng(&mut SysRng).unwrap(),
                );
            }),
            KeyType::Ed25519 => Box::new(|| {
                std::hint::black_box(ed25519_dalek::SigningKey::generate(&mut UnwrapErr(SysRng)));
            }),
        })
    }
}

struct Config {
    min: Duration,
    runs: usize,
    only: Option<String>,
}

impl Config {
    fn from_args() -> Self {
        let mut cfg = Config {
            min: Duration::from_secs(1),
            runs: 5,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            match arg.as_str() {
                "--secs" => {
                    cfg.min = Duration::from_secs_f64(value().parse().expect("--secs: a number"))
                }
                "--runs" => cfg.runs = value().parse().expect("--runs: an integer"),
                "--only" => cfg.only = Some(value()),
                other => panic!(
                    "unknown argument {other}; usage: [--secs S] [--runs N] [--only SUBSTRING]"
                ),
            }
        }
        assert!(cfg.runs > 0, "--runs must be at least 1");
        cfg
    }

    fn wants(&self, label: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| label.contains(o.as_str()))
    }
}

/// Median operations per second over `cfg.runs` runs of at least `cfg.min` each.
fn rate(cfg: &Config, f: &dyn Fn()) -> f64 {
    f(); // warm caches and lazy initialisation
    let mut rates: Vec<f64> = (0..cfg.runs)
        .map(|_| {
            let start = Instant::now();
            let mut n: u64 = 0;
            loop {
                f();
                n += 1;
                let elapsed = start.elapsed();
                if elapsed >= cfg.min {
                    return n as f64 / elapsed.as_secs_f64();
                }
            }
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        // Thousands separators make the table readable.
        let s = format!("{:.0}", r);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{r:.1}")
    }
}

/// A realistic JWS signing input: a simplejwt-style access token's header and claims.
fn signing_input(alg: &str) -> Vec<u8> {
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
    let claims = r#"{"token_type":"access","exp":1767229200,"iat":1767225600,"jti":"0b7e3f5c2a9d4e61b8f07c3d5a1e9b24","user_id":1042}"#;
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
    .into_bytes()
}

/// Every signer's output must verify under every verifier, and a changed input must not.
fn cross_check(alg: Alg, msg: &[u8], impls: &[Impl]) {
    let mut tampered = msg.to_vec();
    tampered[msg.len() / 2] ^= 1;
    for signer in impls {
        let Some(sign) = &signer.sign else { continue };
        let sig = sign(msg);
        for verifier in impls {
            assert!(
                (verifier.verify)(msg, &sig),
                "{}: {} rejected a signature made by {}",
                alg.name,
                verifier.krate,
                signer.krate
            );
            assert!(
                !(verifier.verify)(&tampered, &sig),
                "{}: {} accepted a tampered input signed by {}",
                alg.name,
                verifier.krate,
                signer.krate
            );
        }
    }
}

type KeygenFn = fn(KeyType) -> Option<Box<dyn Fn()>>;

fn main() {
    let cfg = Config::from_args();
    let keys = Keys::generate();
    let crates: [(&str, KeygenFn); 3] = [
        (with_ring::NAME, with_ring::keygen),
        (with_aws_lc::NAME, with_aws_lc::keygen),
        (with_rustcrypto::NAME, with_rustcrypto::keygen),
    ];

    // Key generation, once per key type and crate (shared by the algorithms that use the key type).
    let mut keygen: Vec<(KeyType, &str, Option<f64>)> = Vec::new();
    for kt in KEY_TYPES {
        for (krate, gen_fn) in crates {
            if !cfg.wants(kt.name())
                && !ALGS.iter().any(|a| a.key_type() == kt && cfg.wants(a.name))
            {
                continue;
            }
            let r = gen_fn(kt).map(|f| rate(&cfg, &*f));
            eprintln!(
                "keygen {:8} {:60} {}",
                kt.name(),
                krate,
                r.map_or("n/a".into(), fmt_rate)
            );
            keygen.push((kt, krate, r));
        }
    }

    let mut rows = Vec::new();
    for alg in ALGS {
        if !cfg.wants(alg.name) {
            continue;
        }
        let msg = signing_input(alg.name);
        let pkcs8 = keys.for_alg(alg);
        let impls: Vec<Impl> = [
            with_ring::build(alg, pkcs8),
            with_aws_lc::build(alg, pkcs8),
            with_rustcrypto::build(alg, pkcs8),
        ]
        .into_iter()
        .flatten()
        .collect();
        cross_check(alg, &msg, &impls);
        for imp in &impls {
            let sig = imp
                .sign
                .as_ref()
                .map_or_else(|| impls[1].sign.as_ref().unwrap()(&msg), |s| s(&msg));
            let verify = rate(&cfg, &|| {
                assert!((imp.verify)(black_box(&msg), black_box(&sig)))
            });
            let sign = imp
                .sign
                .as_ref()
                .map(|s| rate(&cfg, &|| drop(black_box(s(black_box(&msg))))));
            let kg = keygen
                .iter()
                .find(|(kt, k, _)| *kt == alg.key_type() && *k == imp.krate);
            let kg_cell = match (imp.sign.is_some(), kg) {
                (false, _) | (_, None) => "—".to_string(),
                (true, Some((kt, _, Some(r)))) => format!("{}/s ({})", fmt_rate(*r), kt.name()),
                (true, Some((kt, _, None))) => format!("cannot generate {}", kt.name()),
            };
            let row = format!(
                "| {} | {} | {} | {} | {} |",
                alg.name,
                imp.krate,
                fmt_rate(verify),
                sign.map_or("—".into(), fmt_rate),
                kg_cell
            );
            eprintln!("{row}");
            rows.push(row);
        }
    }

    println!(
        "Signing input: {} bytes (JWS `header.payload`). RSA keys are 2048-bit. \
         Median of {} runs of >= {:?} each; figures are operations per second.\n",
        signing_input("RS256").len(),
        cfg.runs,
        cfg.min
    );
    println!("| algorithm | crate | verify/s | sign/s | keygen |");
    println!("|---|---|---:|---:|---|");
    for row in rows {
        println!("{row}");
    }
    // Under `taskset` available_parallelism() is the pinned set; /proc/cpuinfo has the machine.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown", |m| m.trim_start_matches([' ', '\t', ':']));
    println!(
        "\nMachine: {model}, {} logical CPU(s) in total, shared with other work; this process could use {}.",
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

//! Django's stored password formats (`algorithm$...`), as `django.contrib.auth.hashers` writes
//! them, verified with the RustCrypto and bcrypt crates: a team moving from Django keeps its
//! users' passwords. Every comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A stored hash in one of Django's formats, parsed; `None` from [`parse`] for anything else.
#[derive(Debug, PartialEq, Eq)]
pub enum DjangoHash<'a> {
    Pbkdf2Sha256 {
        iterations: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    Pbkdf2Sha1 {
        iterations: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    /// `argon2` followed by the PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`).
    Argon2 {
        phc: &'a str,
    },
    /// bcrypt over the hex SHA-256 of the password.
    BcryptSha256 {
        bcrypt: &'a str,
    },
    Bcrypt {
        bcrypt: &'a str,
    },
    Scrypt {
        log_n: u8,
        salt: &'a str,
        r: u32,
        p: u32,
        hash: Vec<u8>,
    },
}

/// The most PBKDF2 iterations a stored hash may ask for (Django 5.2 uses 1,000,000): past it a
/// row could make every login against it cost minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// The most scrypt memory a stored hash may ask for (n * r * 128 bytes); Django's default needs
/// 16 MiB.
const MAX_SCRYPT_BYTES: u64 = 256 << 20;

/// Reads `stored` as a Django hash; `None` for an unusable password (`!...`), a malformed hash or
/// any other format (those never match).
pub fn parse(stored: &str) -> Option<DjangoHash<'_>> {
    let (algorithm, rest) = stored.split_once('$')?;
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" => {
            let mut parts = rest.split('$');
            let (iterations, salt, hash) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let iterations: u32 = iterations.parse().ok()?;
            if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                return None;
            }
            let hash = STANDARD.decode(hash).ok()?;
            Some(if algorithm == "pbkdf2_sha256" {
                DjangoHash::Pbkdf2Sha256 {
                    iterations,
                    salt,
                    hash,
                }
            } else {
                DjangoHash::Pbkdf2Sha1 {
                    iterations,
                    salt,
                    hash,
                }
            })
        }
        "argon2" => Some(DjangoHash::Argon2 {
            phc: &stored["argon2".len()..],
        }),
        "bcrypt_sha256" => Some(DjangoHash::BcryptSha256 {
            bcrypt: rest.strip_prefix('$')?,
        }),
        "bcrypt" => Some(DjangoHash::Bcrypt {
            bcrypt: rest.strip_prefix('$')?,
        }),
        "scrypt" => {
            let mut parts = rest.split('$');
            let n: u64 = parts.next()?.parse().ok()?;
            let salt = parts.next()?;
            let r: u32 = parts.next()?.parse().ok()?;
            let p: u32 = parts.next()?.parse().ok()?;
            let hash = STANDARD.decode(parts.next()?).ok()?;
            if parts.next().is_some() || !n.is_power_of_two() || n < 2 || hash.is_empty() {
                return None;
            }
            if n.saturating_mul(u64::from(r)).saturating_mul(128) > MAX_SCRYPT_BYTES {
                return None;
            }
            let log_n = n.trailing_zeros() as u8;
            Some(DjangoHash::Scrypt {
                log_n,
                salt,
                r,
                p,
                hash,
            })
        }
        _ => None,
    }
}

impl DjangoHash<'_> {
    /// Whether `password` matches. `argon2` is handed to `argon2_verify` (the caller's, with its
    /// reusable memory).
    pub fn verify(&self, password: &str, argon2_verify: impl FnOnce(&str) -> bool) -> bool {
        match self {
            DjangoHash::Pbkdf2Sha256 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha256>(
                    password.as_bytes(),
                    salt.as_bytes(),
                    *iterations,
                    &mut out,
                );
                out.ct_eq(hash).into()
            }
            DjangoHash::Pbkdf2Sha1 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                    password.as_bytes(),
                    salt.as_bytes(),
                    *iterations,
                    &mut out,
                );
                out.ct_eq(hash).into()
            }
            DjangoHash::Argon2 { phc } => argon2_verify(phc),
            DjangoHash::BcryptSha256 { bcrypt } => {
                let digest = hex(&Sha256::digest(password.as_bytes()));
                ::bcrypt::verify(digest, bcrypt).unwrap_or(false)
            }
            DjangoHash::Bcrypt { bcrypt } => ::bcrypt::verify(password, bcrypt).unwrap_or(false),
            DjangoHash::Scrypt {
                log_n,
                salt,
                r,
                p,
                hash,
            } => {
                let Ok(params) = scrypt::Params::new(*log_n, *r, *p, hash.len()) else {
                    return false;
                };
                let mut out = vec![0u8; hash.len()];
                scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).is_ok()
                    && bool::from(out.ct_eq(hash))
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by Django 5.2.19's own hashers (`hasher.encode("correct horse", hasher.salt())`, with
    /// small costs so that the tests run fast), argon2-cffi (a 16-byte hash, as before 21.2) and
    /// Python's hashlib (scrypt with p = 1, as Django wrote it up to 5.0).
    const DJANGO: &[(&str, &str)] = &[
        (
            "pbkdf2_sha256",
            "pbkdf2_sha256$1000$xI0AcCOAkPe1RgZJBdjSQ4$Qsc52lpyEn1MZW/0RvlxSESF3/W7G3Eq6xRu0QR8HsY=",
        ),
        (
            "pbkdf2_sha1",
            "pbkdf2_sha1$1000$T4cQZFi63maKvmIHX3Xzl8$LkMhysiCHoEShZJaLk9W//eiars=",
        ),
        (
            "argon2",
            "argon2$argon2id$v=19$m=256,t=1,p=1$alFzYmJCdDZSalBuSzNxMEpFdGg3NQ$ypgvjXZVXdcyFpYfIIsX6uAgrJPYNOX5xH3ZWmoGFI0",
        ),
        (
            "argon2, 16 bytes",
            "argon2$argon2id$v=19$m=256,t=1,p=1$wwccUFepkgNCJVBgiaTStA$SQ3AC3PRHXJ9L4DszLUQPg",
        ),
        (
            "bcrypt_sha256",
            "bcrypt_sha256$$2b$04$7l7PFwNAuBxXoBVjLpZ8de5kq1ih0EoSZ76iOReNYKCzNwkvh7S7W",
        ),
        (
            "bcrypt",
            "bcrypt$$2b$04$rbpTbAAXfvOhub6DO9qsTumzNcxbxgkLeZD/9GM1VIfUtb7yGjksu",
        ),
        (
            "scrypt, p = 5",
            "scrypt$1024$kw9NPG8EVULLREeLvML5Oo$8$5$0ptFp7B6VfnEmnp22blPaOfJghapl0HpyA+ee1XUyITuQM3uBwFfF5S2a6Shdmp1EaBAJT2WTkOPYlhECpKDVQ==",
        ),
        (
            "scrypt, p = 1",
            "scrypt$1024$pM6yDcuuPQhAH6KnVNQN3P$8$1$T97kp2qPe8izJ67ItkJCRcab+1mxPHXyPYyW3LWgMfc/t5pgzmugh2hhaCgdkdXpC0utZdKzbCtQRuu27MDrJQ==",
        ),
    ];

    #[test]
    fn every_django_format_verifies_the_right_password_only() {
        for (name, stored) in DJANGO {
            let parsed = parse(stored).unwrap_or_else(|| panic!("{name} parses"));
            let argon2 = |phc: &str, pw: &str| crate::password::verify(pw, phc);
            assert!(
                parsed.verify("correct horse", |phc| argon2(phc, "correct horse")),
                "{name}"
            );
            assert!(
                !parsed.verify("correct horse!", |phc| argon2(phc, "correct horse!")),
                "{name}"
            );
            assert!(!parsed.verify("", |phc| argon2(phc, "")), "{name}");
        }
    }

    #[test]
    fn unusable_malformed_and_unknown_hashes_are_not_read() {
        for stored in [
            "!sabMC7buAPZPottKlDtBB1YkTx4VoD2CQn7cWt58",
            "pbkdf2_sha256$abc$salt$hash",
            "pbkdf2_sha256$0$salt$Qsc52lpyEn1MZW/0RvlxSESF3/W7G3Eq6xRu0QR8HsY=",
            "pbkdf2_sha256$99999999999$salt$Qsc52lpyEn1MZW/0RvlxSESF3/W7G3Eq6xRu0QR8HsY=",
            "pbkdf2_sha256$1000$salt",
            "scrypt$1000$salt$8$1$AAAA",
            "scrypt$1073741824$salt$8$1$AAAA",
            "md5$salt$0123",
            "",
            "no dollar",
        ] {
            assert_eq!(parse(stored), None, "{stored}");
        }
    }
}

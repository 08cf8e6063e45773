//! How many Argon2id password verifications one thread can do per second, with exactly handstamp's
//! parameters (argon2 0.5, Argon2id, v0x13, 19 MiB, 2 passes, 1 lane): the CPU cost of one login.
//!
//! Usage: `hashrate SECONDS` (the benchmark runs it under `taskset -c N`). Prints one line:
//! `HASHRATE verifications=N seconds=S per_second=R`

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .unwrap_or_else(|| {
            eprintln!("usage: hashrate SECONDS");
            std::process::exit(2);
        });

    // A PHC hash made with those parameters, as stored for a user (fixed salt: the cost does not depend on it).
    let password = b"pw";
    let salt = SaltString::from_b64("YmVuY2hoYXNocmF0ZXNhbHQ").expect("valid salt");
    let stored = argon2().hash_password(password, &salt).expect("hash").to_string();

    // What a login does: parse the stored hash and verify the password against it.
    let verify_once = || {
        let parsed = PasswordHash::new(&stored).expect("valid PHC string");
        argon2().verify_password(password, &parsed).expect("password matches");
    };

    verify_once(); // warm-up, not counted
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        verify_once();
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "HASHRATE verifications={n} seconds={elapsed:.3} per_second={:.2}",
        n as f64 / elapsed
    );
}

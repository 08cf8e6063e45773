//! Password hashing: Argon2id in PHC format for every new hash, run on a bounded set of
//! blocking threads so a burst of logins cannot starve the async workers.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password worker stopped: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// OWASP's Argon2id setting: 19 MiB of memory, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `stored`. A hash in a format we cannot read never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .and_then(|parsed| argon2().verify_password(password.as_bytes(), &parsed))
        .is_ok()
}

/// A hash that matches no password, verified in place of a missing user's so that an unknown
/// name costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash(&crate::token::new_jti()).expect("hashing a random password"))
}

/// Runs hashing on tokio's blocking pool, at most `permits` at a time.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Hasher {
    pub fn new(threads: usize) -> Self {
        Hasher {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        Ok(tokio::task::spawn_blocking(job).await?)
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash(&password)).await?
    }

    /// Verifies against `stored`, or against a dummy hash when there is none, so that both
    /// cases take the same time. Returns false for the dummy.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        self.run(move || match stored {
            Some(stored) => verify(&password, &stored),
            None => {
                verify(&password, dummy_hash());
                false
            }
        })
        .await
    }

    /// Computes the dummy hash ahead of the first login, off the request path.
    pub fn warm_up(&self) {
        std::thread::spawn(dummy_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_are_argon2id_with_the_chosen_cost() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret ", &h));
    }

    #[test]
    fn salts_differ_and_garbage_never_matches() {
        assert_ne!(hash("x").unwrap(), hash("x").unwrap());
        assert!(!verify("x", "not a hash"));
        assert!(!verify("x", ""));
    }

    #[tokio::test]
    async fn missing_user_is_verified_against_the_dummy_and_fails() {
        let hasher = Hasher::new(1);
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
        let h = hasher.hash("pw".into()).await.unwrap();
        assert!(hasher.verify("pw".into(), Some(h)).await.unwrap());
    }
}

//! Password hashing: Argon2id in PHC format for every new hash, run on a bounded set of
//! blocking threads so a burst of logins cannot starve the async workers.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password threads have stopped")]
    Stopped,
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

/// A hash that matches no known password (it was made from 32 random bytes, then thrown away),
/// verified in place of a missing user's so that an unknown name costs the same time as a
/// wrong password. A constant, so that no hashing (and its 19 MiB) happens at start-up.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$x0HgkgZiv0Bh4Q/0NR/cfw$dr/y6PY0uCZPax/MTloTqSFiqjNtQMBnwsU8U+tndY8";

type Job = Box<dyn FnOnce() + Send>;

/// Runs hashing on its own threads, one per core, at a lower scheduling priority (nice 10) than
/// the request handlers: under a flood of logins, token checks keep most of the CPU and logins
/// take what is left; with nothing else to do, logins get it all.
#[derive(Clone, Debug)]
pub struct Hasher {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Hasher {
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("starting a password thread");
        }
        Hasher { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(job());
        });
        self.jobs.send(job).map_err(|_| PasswordError::Stopped)?;
        answer.await.map_err(|_| PasswordError::Stopped)
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
                verify(&password, DUMMY_HASH);
                false
            }
        })
        .await
    }
}

/// Lowers the calling thread's priority (on Linux, `setpriority` with 0 names the thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_runs_below_the_request_handlers_priority() {
        let hasher = Hasher::new(1);
        // SAFETY: getpriority only reads its integer arguments.
        let nice = hasher
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
            .await
            .unwrap();
        assert_eq!(nice, 10);
    }

    #[test]
    fn the_dummy_hash_has_the_same_cost_as_real_ones() {
        let real = hash("x").unwrap();
        let params = |h: &str| h.split('$').nth(3).unwrap().to_owned();
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[tokio::test]
    async fn missing_user_is_verified_against_the_dummy_and_fails() {
        let hasher = Hasher::new(1);
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
        let h = hasher.hash("pw".into()).await.unwrap();
        assert!(hasher.verify("pw".into(), Some(h)).await.unwrap());
    }
}

//! Password hashing: Argon2id in PHC format for every new hash, run on a bounded set of
//! low-priority threads so a burst of logins cannot starve token checks.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

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
    verify_in(password, stored, &mut Vec::new())
}

/// [`verify`], computing in `memory` (grown as the hash's cost asks): a thread that verifies
/// many passwords reuses one buffer instead of mapping and faulting in 19 MiB each time.
fn verify_in(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let blocks = &mut memory[..params.block_count()];
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        .is_ok()
        // Output's equality is constant-time.
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A hash that matches no known password (it was made from 32 random bytes, then thrown away),
/// verified in place of a missing user's so that an unknown name costs the same time as a
/// wrong password. A constant, so that no hashing (and its 19 MiB) happens at start-up.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$x0HgkgZiv0Bh4Q/0NR/cfw$dr/y6PY0uCZPax/MTloTqSFiqjNtQMBnwsU8U+tndY8";

/// Work for a password thread, given that thread's reusable Argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A password thread keeps its Argon2 memory while logins keep coming, and gives it back to the
/// system after this long without one.
const KEEP_MEMORY: Duration = Duration::from_secs(10);

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
                    let mut memory = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner());
                        let job = next.recv_timeout(KEEP_MEMORY);
                        drop(next);
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(RecvTimeoutError::Timeout) => memory = Vec::new(),
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })
                .expect("starting a password thread");
        }
        Hasher { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(job(memory));
        });
        self.jobs.send(job).map_err(|_| PasswordError::Stopped)?;
        answer.await.map_err(|_| PasswordError::Stopped)
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move |_| hash(&password)).await?
    }

    /// Verifies against `stored`, or against a dummy hash when there is none, so that both
    /// cases take the same time. Returns false for the dummy.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        self.run(move |memory| match stored {
            Some(stored) => verify_in(&password, &stored, memory),
            None => {
                verify_in(&password, DUMMY_HASH, memory);
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
        // Other Argon2 costs and variants are read from the hash itself.
        let light = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let light = light.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify("pw", &light) && !verify("px", &light), "{light}");
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
            .run(|_| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
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

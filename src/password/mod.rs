//! Password hashing: Argon2id in PHC format for every new hash, run on a bounded set of
//! low-priority threads behind a bounded queue, so a burst of logins can neither starve token
//! checks nor pile up work and memory without end. Django's stored formats are verified too
//! (`django.rs`), and a login upgrades them to Argon2id.

mod django;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password threads have stopped")]
    Stopped,
    #[error("Passwords are limited to {MAX_PASSWORD_BYTES} bytes.")]
    TooLong,
    /// The queue in front of the password threads is full.
    #[error("Too many logins are waiting; try again shortly.")]
    Busy,
}

/// The longest password we hash, in bytes (as UTF-8). Argon2 reads the whole password, so a
/// megabyte-long one costs time and memory for nothing; no sane password comes near this.
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Whether `password` is longer than we ever hash.
pub fn too_long(password: &str) -> bool {
    password.len() > MAX_PASSWORD_BYTES
}

/// OWASP's Argon2id setting: 19 MiB of memory, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if too_long(password) {
        return Err(PasswordError::TooLong);
    }
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
/// many passwords reuses one buffer instead of mapping and faulting in 19 MiB each time. A
/// stored hash in none of the formats we read (an unusable `!...` password, a malformed row)
/// costs the dummy verification and never matches, so it takes the time a wrong password does.
fn verify_in(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    if let Some(django) = django::parse(stored) {
        return django.verify(password, |phc| verify_phc(password, phc, memory));
    }
    if PasswordHash::new(stored).is_err() {
        verify_phc(password, DUMMY_HASH, memory);
        return false;
    }
    verify_phc(password, stored, memory)
}

/// Whether `stored` is a hash as new ones are made (Argon2id at today's cost); any other
/// format is replaced at the next successful login.
pub fn is_current(stored: &str) -> bool {
    stored.starts_with(CURRENT_PREFIX)
}

/// What every new hash begins with.
const CURRENT_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

/// An Argon2 hash in PHC format.
fn verify_phc(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
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

/// How many jobs may wait for a password thread by default: one verify takes ~18 ms of a core
/// (measured here; argon2 is optimised in test builds too), so about 2.5 s of work on two cores,
/// 5 s on one.
pub const DEFAULT_QUEUE: usize = 256;

/// Runs hashing on its own threads, one per core, at a lower scheduling priority (nice 10) than
/// the request handlers: under a flood of logins, token checks keep most of the CPU and logins
/// take what is left; with nothing else to do, logins get it all.
///
/// At most `queue` jobs wait for a thread; past that a job is refused at once
/// ([`PasswordError::Busy`]) instead of waiting behind work that would outlast its client. A
/// job whose caller has gone (the client disconnected and its handler was dropped) is skipped
/// unhashed when its turn comes.
#[derive(Clone, Debug)]
pub struct Hasher {
    jobs: SyncSender<Job>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::with_queue(DEFAULT_QUEUE)
    }
}

impl Hasher {
    /// One thread per core, with at most `queue` jobs waiting.
    pub fn with_queue(queue: usize) -> Self {
        Hasher::new(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue,
        )
    }

    pub fn new(threads: usize, queue: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(queue);
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
            // Nobody is waiting for the answer any more: don't spend a hash on it.
            if !reply.is_closed() {
                let _ = reply.send(job(memory));
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => PasswordError::Busy,
            TrySendError::Disconnected(_) => PasswordError::Stopped,
        })?;
        answer.await.map_err(|_| PasswordError::Stopped)
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        if too_long(&password) {
            return Err(PasswordError::TooLong);
        }
        self.run(move |_| hash(&password)).await?
    }

    /// [`verify`](Self::verify), and for a match against a hash in an older format (Django's,
    /// or Argon2 at another cost), a new Argon2id hash of the password to store in its place.
    pub async fn verify_and_upgrade(
        &self,
        password: String,
        stored: Option<&str>,
    ) -> Result<(bool, Option<String>), PasswordError> {
        let stored = stored.map(str::to_owned);
        self.run(move |memory| match stored {
            Some(stored) => {
                let matches = verify_in(&password, &stored, memory);
                let upgrade = (matches && !is_current(&stored)).then(|| hash(&password).ok());
                (matches, upgrade.flatten())
            }
            None => {
                verify_in(&password, DUMMY_HASH, memory);
                (false, None)
            }
        })
        .await
    }

    /// Verifies against `stored`, or against a dummy hash when there is none, so that both
    /// cases take the same time. Returns false for the dummy.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<&str>,
    ) -> Result<bool, PasswordError> {
        let stored = stored.map(str::to_owned);
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
        assert!(is_current(&h));
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
    fn a_hash_we_cannot_read_costs_the_dummy_verification() {
        // The dummy's Argon2 memory (19 MiB, 19,456 blocks) is the trace that it ran.
        for stored in [
            "not a hash",
            "",
            "!unusable",
            "pbkdf2_sha256$x$y$z",
            "md5$a$b",
        ] {
            let mut memory = Vec::new();
            assert!(!verify_in("x", stored, &mut memory), "{stored:?}");
            assert_eq!(memory.len(), 19 * 1024, "{stored:?}");
        }
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
        let hasher = Hasher::new(1, 1);
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
        let hasher = Hasher::new(1, 1);
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
        let h = hasher.hash("pw".into()).await.unwrap();
        assert!(hasher.verify("pw".into(), Some(&h)).await.unwrap());
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;
    use futures_util::FutureExt as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// A hasher whose one thread is busy until the returned sender is dropped.
    async fn busy_hasher(queue: usize) -> (Hasher, mpsc::Sender<()>) {
        let hasher = Hasher::new(1, queue);
        let (started, has_started) = tokio::sync::oneshot::channel();
        let (release, released) = mpsc::channel::<()>();
        let blocking = hasher.clone();
        tokio::spawn(async move {
            blocking
                .run(move |_| {
                    let _ = started.send(());
                    let _ = released.recv();
                })
                .await
        });
        has_started.await.unwrap();
        (hasher, release)
    }

    #[tokio::test]
    async fn past_the_queue_a_job_is_refused_at_once() {
        let (hasher, release) = busy_hasher(2).await;
        // Queued on their first poll; they wait for the busy thread.
        let mut waiting: Vec<_> = (0..2).map(|_| Box::pin(hasher.run(|_| ()))).collect();
        for job in &mut waiting {
            assert!(job.as_mut().now_or_never().is_none());
        }
        let refused = hasher.run(|_| ()).now_or_never();
        assert!(
            matches!(refused, Some(Err(PasswordError::Busy))),
            "{refused:?}"
        );
        drop(release);
        for job in waiting {
            job.await.unwrap();
        }
        // Room again once the queue has drained.
        hasher.run(|_| ()).await.unwrap();
    }

    #[tokio::test]
    async fn a_job_whose_caller_has_gone_is_skipped() {
        let (hasher, release) = busy_hasher(4).await;
        let ran = Arc::new(AtomicBool::new(false));
        let noted = ran.clone();
        let mut abandoned = Box::pin(hasher.run(move |_| noted.store(true, Ordering::SeqCst)));
        assert!(abandoned.as_mut().now_or_never().is_none(), "queued");
        drop(abandoned);
        drop(release);
        // One thread takes jobs in order: once this one is done, the abandoned one was seen.
        hasher.run(|_| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn passwords_over_the_limit_are_never_hashed() {
        let hasher = Hasher::new(1, 1);
        let longest = "p".repeat(MAX_PASSWORD_BYTES);
        let stored = hasher.hash(longest.clone()).await.unwrap();
        assert!(verify(&longest, &stored));
        let over = "p".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hasher.hash(over.clone()).await,
            Err(PasswordError::TooLong)
        ));
        assert!(matches!(hash(&over), Err(PasswordError::TooLong)));
    }
}

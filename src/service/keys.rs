//! Where the signing keys come from and how they rotate. Keys given in the settings are used as
//! they are. Otherwise they are kept in the database: the first instance to start stores one,
//! `handstamp keys` generates, activates and retires others, and every instance reads the set
//! again every [`KEY_REFRESH`], so a change reaches all of them within that bound without a
//! restart. A key is published (JWKS) from the moment it is generated, signs only once
//! activated, and keeps verifying after it stops signing until it is retired.

use super::remote::{self, Remote};
use super::{AuthService, SetupError, rfc3339};
use crate::config::{JwtSettings, Keys as GivenKeys};
use crate::store::{Store, StoreError, StoredKey};
use crate::token::{self, Algorithm, KeyError, KeySet, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::Digest;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::config::KEY_REFRESH;

/// Name of the generated HMAC secret of a deployment from before keys were kept in their own
/// table: it becomes that table's first key.
const LEGACY_SECRET: &str = "signing_key";

/// The JWKS document (RFC 7517) of the public keys, serialized once, with its entity tag.
#[derive(Debug, Clone)]
pub struct PublishedKeys {
    pub json: bytes::Bytes,
    /// A strong entity tag: a hash of `json`, quoted.
    pub etag: String,
    pub max_age: Duration,
}

impl PublishedKeys {
    fn of(keys: &KeySet, max_age: Duration) -> Self {
        let json = serde_json::to_vec(&serde_json::json!({ "keys": keys.jwks() }))
            .expect("keys always serialize");
        let digest = sha2::Sha256::digest(&json);
        PublishedKeys {
            json: json.into(),
            etag: format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16])),
            max_age,
        }
    }
}

/// What `handstamp keys` refuses, and why.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(
        "the signing key is given in the settings (signing_key or signing_key_file); \
         the keys kept in the database are not used"
    )]
    FromSettings,
    #[error("no key {0:?}")]
    Unknown(String),
    #[error("the database holds no active signing key")]
    NoActiveKey,
    #[error("key {0:?} is retired")]
    Retired(String),
    #[error("key {0:?} signs now: activate another first")]
    Active(String),
    #[error(
        "key {kid:?} was published {published_secs} s ago; verifiers may cache the old key set \
         for {wait_secs} s more (JWKS max-age); wait, or --force"
    )]
    TooSoon {
        kid: String,
        published_secs: i64,
        wait_secs: i64,
    },
    #[error(
        "tokens signed by key {kid:?} may be valid until {until} (the refresh lifetime after it \
         last signed); retiring it now logs their holders out; wait, or --force"
    )]
    StillTrusted { kid: String, until: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    Active,
    /// Verifies what it signed, signs no more.
    Previous,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Previous => "previous",
            KeyState::Retired => "retired",
        }
    }

    fn of(key: &StoredKey) -> KeyState {
        if key.retired_at.is_some() {
            KeyState::Retired
        } else if key.is_active() {
            KeyState::Active
        } else if key.activated_at.is_some() {
            KeyState::Previous
        } else {
            KeyState::Pending
        }
    }
}

/// A key as `handstamp keys list` shows it.
#[derive(Debug, Clone)]
pub struct ListedKey {
    /// Empty for the key whose tokens carry no kid.
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// When the last token it signed expires at the latest (none while pending or active).
    pub last_expiry: Option<i64>,
}

/// The keys of one service: given, kept in the database (and what of them it last read), or
/// fetched from another instance's JWKS (a verify-only instance).
#[derive(Debug)]
pub(super) struct Keys {
    from_settings: bool,
    pub(super) remote: Option<Remote>,
    /// What the last read of the database found, to tell whether anything changed.
    seen: Mutex<Vec<StoredKey>>,
    published: arc_swap::ArcSwap<PublishedKeys>,
}

impl Keys {
    /// The key set to start with, from the settings or the database. A database without a
    /// key gets its first one when `first` says so (a service that signs); otherwise (the CLI's
    /// user and key commands, which sign nothing) the set is a throwaway key of this process.
    pub(super) async fn load(
        settings: &JwtSettings,
        store: &dyn Store,
        first: bool,
    ) -> Result<(KeySet, Keys), SetupError> {
        if let Some(url) = &settings.jwk_url {
            let set = remote::verify_only_set();
            let mut keys = Keys::new(true, Vec::new(), &set, settings.jwks_max_age);
            keys.remote = Some(Remote::new(url.clone())?);
            return Ok((set, keys));
        }
        if let GivenKeys::Given(set) = settings.keys()? {
            let keys = Keys::new(true, Vec::new(), &set, settings.jwks_max_age);
            return Ok((*set, keys));
        }
        let mut stored = store.signing_keys().await?;
        if !stored.iter().any(StoredKey::is_active) {
            if !first {
                let mut secret = [0u8; 64];
                rand::rngs::OsRng.fill_bytes(&mut secret);
                let set = KeySet::new(SigningKey::hmac(Algorithm::HS512, &secret), None);
                let keys = Keys::new(false, stored, &set, settings.jwks_max_age);
                return Ok((set, keys));
            }
            let first = first_key(settings.algorithm, store).await?;
            store.add_signing_key(first, true).await?;
            stored = store.signing_keys().await?;
        }
        let set = key_set(&stored)?;
        let signs = set.signer().algorithm();
        if first && signs != settings.algorithm {
            tracing::warn!(
                setting = %settings.algorithm,
                key = %signs,
                "the algorithm setting differs from the database's signing key, which goes on \
                 signing; to change, `handstamp keys generate --algorithm ...` then `keys activate`"
            );
        }
        let keys = Keys::new(false, stored, &set, settings.jwks_max_age);
        Ok((set, keys))
    }

    fn new(from_settings: bool, seen: Vec<StoredKey>, set: &KeySet, max_age: Duration) -> Keys {
        Keys {
            from_settings,
            remote: None,
            seen: Mutex::new(seen),
            published: arc_swap::ArcSwap::from_pointee(PublishedKeys::of(set, max_age)),
        }
    }
}

/// The first key of a database: the HMAC secret an earlier version generated, if there is one
/// (its tokens keep verifying, and keep simplejwt's header: no kid), else a new key.
async fn first_key(algorithm: Algorithm, store: &dyn Store) -> Result<StoredKey, SetupError> {
    let now = token::now();
    if algorithm.is_hmac() {
        let mut candidate = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut candidate);
        let secret = store.secret(LEGACY_SECRET, &candidate).await?;
        return Ok(stored_key(String::new(), algorithm, secret, now));
    }
    Ok(new_key(algorithm, now)?)
}

/// A new key of `algorithm`: a public key's kid is its RFC 7638 thumbprint, an HMAC key's 128
/// random bits.
fn new_key(algorithm: Algorithm, now: i64) -> Result<StoredKey, KeyError> {
    if algorithm.is_hmac() {
        let mut secret = vec![0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let mut kid = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut kid);
        return Ok(stored_key(
            URL_SAFE_NO_PAD.encode(kid),
            algorithm,
            secret,
            now,
        ));
    }
    let (key, pkcs8) = SigningKey::generate(algorithm)?;
    let kid = key
        .verifying_key()
        .thumbprint()
        .expect("a public key has one");
    Ok(stored_key(kid, algorithm, pkcs8, now))
}

fn stored_key(kid: String, algorithm: Algorithm, private_key: Vec<u8>, now: i64) -> StoredKey {
    StoredKey {
        kid,
        algorithm: algorithm.name().to_owned(),
        private_key,
        created_at: now,
        activated_at: None,
        deactivated_at: None,
        retired_at: None,
    }
}

fn signing_key(key: &StoredKey) -> Result<SigningKey, KeyError> {
    let algorithm: Algorithm = key.algorithm.parse().map_err(KeyError::Algorithm)?;
    if algorithm.is_hmac() {
        Ok(SigningKey::hmac(algorithm, &key.private_key))
    } else {
        SigningKey::from_pkcs8(algorithm, &key.private_key)
    }
}

fn kid(key: &StoredKey) -> Option<String> {
    (!key.kid.is_empty()).then(|| key.kid.clone())
}

/// The set the stored keys make: the active one signs; pending and previous ones verify.
fn key_set(stored: &[StoredKey]) -> Result<KeySet, KeysError> {
    let active = stored
        .iter()
        .find(|k| k.is_active())
        .ok_or(KeysError::NoActiveKey)?;
    let mut set = KeySet::new(signing_key(active)?, kid(active));
    for key in stored
        .iter()
        .filter(|k| !k.is_active() && k.retired_at.is_none())
    {
        set = set.verifying(kid(key), signing_key(key)?.verifying_key());
    }
    Ok(set)
}

impl AuthService {
    /// The public keys as `GET /.well-known/jwks.json` serves them.
    pub fn published_keys(&self) -> Arc<PublishedKeys> {
        self.keys.published.load_full()
    }

    /// Reads the stored keys again and, when they changed, signs and verifies with the new set
    /// from now on. True when it changed.
    pub async fn refresh_keys(&self) -> Result<bool, KeysError> {
        if self.keys.from_settings {
            return Ok(false);
        }
        let stored = self.store.signing_keys().await?;
        if *self.keys.seen.lock().expect("never poisoned") == stored {
            return Ok(false);
        }
        let set = key_set(&stored)?;
        let max_age = self.settings.jwks_max_age;
        self.keys
            .published
            .store(Arc::new(PublishedKeys::of(&set, max_age)));
        self.codec.replace_keys(set);
        *self.keys.seen.lock().expect("never poisoned") = stored;
        Ok(true)
    }

    /// Runs [`refresh_keys`](Self::refresh_keys) every [`KEY_REFRESH`], for as long as the
    /// service lives; a failed read is logged and tried again next time.
    pub async fn keep_keys_fresh(self: Arc<Self>) {
        if let Some(remote) = &self.keys.remote {
            return self.keep_remote_keys_fresh(remote).await;
        }
        let mut ticks = tokio::time::interval(KEY_REFRESH);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.rotate_on_schedule().await {
                tracing::warn!(%error, "key rotation failed; trying again");
            }
            match self.refresh_keys().await {
                Ok(true) => tracing::info!("signing keys changed; using the new set"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot read the signing keys"),
            }
        }
    }

    /// A verify-only instance's loop: fetch, keep the set for its max-age (or until a token
    /// names an unknown kid), fetch again; on failure go on with the last good set.
    async fn keep_remote_keys_fresh(&self, remote: &Remote) {
        loop {
            let wait = match remote.fetch().await {
                Ok((set, keep)) => {
                    if !remote
                        .fetched
                        .swap(true, std::sync::atomic::Ordering::Relaxed)
                    {
                        tracing::info!(url = %remote.url, "verifying with the fetched key set");
                    }
                    self.codec.replace_keys(set);
                    keep
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the last key set");
                    Remote::retry()
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = remote.nudged.notified() => {}
            }
        }
    }

    /// Whether this instance only verifies, with keys fetched from `jwk_url`.
    pub fn is_verify_only(&self) -> bool {
        self.keys.remote.is_some()
    }

    /// On a verify-only instance, a token naming a kid the set lacks asks for an early fetch.
    pub(super) fn note_unknown_kid(&self, token: &str) {
        if let Some(remote) = &self.keys.remote
            && self.codec.names_unknown_kid(token)
        {
            remote.nudge(token::now());
        }
    }

    /// A verify-only instance is ready once it has a key set.
    pub(super) fn remote_ready(&self) -> Option<Result<(), StoreError>> {
        let remote = self.keys.remote.as_ref()?;
        Some(
            if remote.fetched.load(std::sync::atomic::Ordering::Relaxed) {
                Ok(())
            } else {
                let cause = std::io::Error::other(format!("no key set from {} yet", remote.url));
                Err(StoreError::Unavailable(Arc::new(cause)))
            },
        )
    }

    fn stored_keys_in_use(&self) -> Result<(), KeysError> {
        if self.keys.from_settings {
            Err(KeysError::FromSettings)
        } else {
            Ok(())
        }
    }

    /// Every key kept in the database, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<ListedKey>, KeysError> {
        let lifetime = self.longest_lifetime();
        let stored = self.store.signing_keys().await?;
        Ok(stored
            .iter()
            .map(|key| ListedKey {
                kid: key.kid.clone(),
                algorithm: key.algorithm.clone(),
                state: KeyState::of(key),
                created_at: key.created_at,
                activated_at: key.activated_at,
                // Pending: signed nothing yet; active: still signing.
                last_expiry: key.deactivated_at.map(|at| at + lifetime),
            })
            .collect())
    }

    /// A new key of `algorithm` (the configured one by default), published but not signing.
    pub async fn generate_key(&self, algorithm: Option<Algorithm>) -> Result<String, KeysError> {
        self.stored_keys_in_use()?;
        let key = new_key(algorithm.unwrap_or(self.settings.algorithm), token::now())?;
        let kid = key.kid.clone();
        self.store.add_signing_key(key, false).await?;
        Ok(kid)
    }

    /// Makes `kid` the signing key; the one before keeps verifying. Refused while verifiers
    /// may not have it yet (published less than the JWKS max-age ago), unless `force`.
    pub async fn activate_key(&self, kid: &str, force: bool) -> Result<(), KeysError> {
        self.stored_keys_in_use()?;
        let key = self.stored_key(kid).await?;
        let now = token::now();
        let needed = self.publication_lead();
        let published = now - key.created_at;
        if !force && key.activated_at.is_none() && published < needed {
            return Err(KeysError::TooSoon {
                kid: kid.to_owned(),
                published_secs: published,
                wait_secs: needed - published,
            });
        }
        self.store.activate_signing_key(kid, now).await?;
        Ok(())
    }

    /// Stops publishing and trusting `kid`. Refused while a token it signed may still be valid
    /// (its last signature plus the longest token lifetime), unless `force`.
    pub async fn retire_key(&self, kid: &str, force: bool) -> Result<(), KeysError> {
        self.stored_keys_in_use()?;
        let key = self.stored_key(kid).await?;
        if key.is_active() {
            return Err(KeysError::Active(kid.to_owned()));
        }
        let now = token::now();
        if let Some(stopped) = key.deactivated_at {
            let until = stopped + self.longest_lifetime();
            if !force && until > now {
                return Err(KeysError::StillTrusted {
                    kid: kid.to_owned(),
                    until: rfc3339(until),
                });
            }
        }
        self.store.retire_signing_key(kid, now).await?;
        Ok(())
    }

    /// The private key of `kid` as PEM (PKCS#8), or an HMAC secret in base64: the one way a
    /// private key leaves the database.
    pub async fn export_key(&self, kid: &str) -> Result<String, KeysError> {
        let key = self.stored_key(kid).await?;
        if signing_key(&key)?.algorithm().is_hmac() {
            return Ok(format!("{}\n", STANDARD.encode(&key.private_key)));
        }
        let body = STANDARD.encode(&key.private_key);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(pem)
    }

    async fn stored_key(&self, kid: &str) -> Result<StoredKey, KeysError> {
        let key = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| KeysError::Unknown(kid.to_owned()))?;
        if key.retired_at.is_some() {
            return Err(KeysError::Retired(kid.to_owned()));
        }
        Ok(key)
    }

    /// How long a key is published before it may sign: the JWKS max-age and one key refresh.
    pub fn publication_lead(&self) -> i64 {
        (self.settings.jwks_max_age + KEY_REFRESH).as_secs() as i64
    }

    /// With `key_rotation`: generates a key once the active one is due within the publication
    /// lead, activates it once it has been published that long and the active one is due, and
    /// retires keys no token can carry any more. Every instance runs it; the store's rules keep
    /// one key active whoever acts.
    async fn rotate_on_schedule(&self) -> Result<(), KeysError> {
        let period = self.settings.key_rotation.as_secs() as i64;
        if self.keys.from_settings || period == 0 {
            return Ok(());
        }
        let now = token::now();
        let lead = self.publication_lead();
        let stored = self.store.signing_keys().await?;
        let Some(active) = stored.iter().find(|k| k.is_active()) else {
            return Ok(());
        };
        let due = active.activated_at.unwrap_or(active.created_at) + period;
        let pending = stored
            .iter()
            .filter(|k| KeyState::of(k) == KeyState::Pending)
            .min_by_key(|k| k.created_at);
        match pending {
            None if now >= due - lead => {
                let algorithm = signing_key(active)?.algorithm();
                let key = new_key(algorithm, now)?;
                tracing::info!(kid = %key.kid, "key rotation: generated the next signing key");
                self.store.add_signing_key(key, false).await?;
            }
            Some(next) if now >= due && now >= next.created_at + lead => {
                tracing::info!(kid = %next.kid, "key rotation: the next key signs from now on");
                self.store.activate_signing_key(&next.kid, now).await?;
            }
            _ => {}
        }
        let lifetime = self.longest_lifetime();
        for key in stored
            .iter()
            .filter(|k| KeyState::of(k) == KeyState::Previous)
        {
            if key.deactivated_at.is_some_and(|at| at + lifetime <= now) {
                tracing::info!(kid = %key.kid, "key rotation: retired a key no token can carry");
                self.store.retire_signing_key(&key.kid, now).await?;
            }
        }
        Ok(())
    }

    /// The longest a token a key signed stays valid.
    fn longest_lifetime(&self) -> i64 {
        let s = &self.settings;
        s.access_token_lifetime
            .max(s.refresh_token_lifetime)
            .as_secs() as i64
    }
}

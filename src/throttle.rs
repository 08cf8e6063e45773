//! Login throttling: failed logins counted per username (whether it exists or not) and per
//! client address, in the store so that every instance on the database sees them; a locked
//! username or address is refused before any password is hashed. The counting rule is
//! `store::FailureCount`'s.

use crate::store::{Limit, Store, StoreError};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::net::IpAddr;

/// The limits in force; `None` turns one off.
#[derive(Debug, Clone, Default)]
pub struct LoginThrottle {
    pub per_username: Option<Limit>,
    pub per_address: Option<Limit>,
}

/// The store keys one login attempt counts against. Hashes: the store never keeps the text
/// typed as a username (it may be a password typed in the wrong field) or the address.
#[derive(Debug)]
pub struct Keys {
    username: Option<String>,
    address: Option<String>,
}

impl Keys {
    fn each(&self) -> impl Iterator<Item = &String> {
        self.username.iter().chain(&self.address)
    }
}

/// What the record says of an attempt about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Refused for `retry_after` more seconds.
    Locked { retry_after: u64 },
    /// May try; `recorded`: the username has failures to forget if this one succeeds.
    Open { recorded: bool },
}

fn key(kind: &str, value: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(kind.as_bytes());
    hash.update([0]);
    hash.update(value);
    let digest = hash.finalize();
    let mut key = String::with_capacity(kind.len() + 1 + 64);
    key.push_str(kind);
    key.push(':');
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(key, "{byte:02x}");
    }
    key
}

impl LoginThrottle {
    pub fn keys(&self, username: &str, client: Option<IpAddr>) -> Keys {
        Keys {
            username: self
                .per_username
                .map(|_| key("username", username.as_bytes())),
            address: self
                .per_address
                .zip(client)
                .map(|(_, ip)| key("address", ip.to_canonical().to_string().as_bytes())),
        }
    }

    /// Whether an attempt with `keys` may go ahead at `now`: one read, by primary key.
    pub async fn check(
        &self,
        store: &dyn Store,
        keys: &Keys,
        now: i64,
    ) -> Result<Verdict, StoreError> {
        let wanted: Vec<String> = keys.each().cloned().collect();
        if wanted.is_empty() {
            return Ok(Verdict::Open { recorded: false });
        }
        let counts = store.login_failures(&wanted, now).await?;
        let locked_until = counts.iter().flatten().filter_map(|c| c.locked(now)).max();
        if let Some(until) = locked_until {
            return Ok(Verdict::Locked {
                retry_after: (until - now).max(1) as u64,
            });
        }
        // Only the username's record (first) is forgotten on success; a record exists only
        // once a failure was counted.
        let recorded = keys.username.is_some() && matches!(counts.first(), Some(Some(_)));
        Ok(Verdict::Open { recorded })
    }

    /// Counts a failed attempt against each of its keys.
    pub async fn failed(&self, store: &dyn Store, keys: Keys, now: i64) -> Result<(), StoreError> {
        let limits = [self.per_username, self.per_address];
        let counted: Vec<(String, Limit)> = [keys.username, keys.address]
            .into_iter()
            .zip(limits)
            .filter_map(|(key, limit)| Some((key?, limit?)))
            .collect();
        if counted.is_empty() {
            return Ok(());
        }
        store.login_failed(counted, now).await
    }

    /// Forgets the username's failures after a successful login (the address's stay).
    pub async fn succeeded(&self, store: &dyn Store, keys: &Keys) -> Result<(), StoreError> {
        match &keys.username {
            Some(key) => store.forget_login_failures(key).await,
            None => Ok(()),
        }
    }
}

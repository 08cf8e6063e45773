//! The store of a verify-only instance (`jwk_url`): there is no database, and every use of one
//! is a clear 503, never a half-served request. Nothing routes to it (the token endpoints are not
//! served there); it is what makes "no database" a state the type system knows.

use super::{
    FailureCount, Flushed, Import, ImportMode, ImportOutcome, Limit, Login, NewUser, Outstanding,
    PasswordHash, Refresh, RefreshOutcome, Result, Session, Store, StoreError, StoredKey, User,
};
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct NoStore;

fn none<T>() -> Result<T> {
    let cause =
        std::io::Error::other("this instance only verifies tokens (jwk_url): it has no database");
    Err(StoreError::Unavailable(Arc::new(cause)))
}

#[async_trait]
impl Store for NoStore {
    async fn ping(&self) -> Result<()> {
        none()
    }

    async fn check_writable(&self) -> Result<()> {
        none()
    }

    async fn create_user(&self, _user: NewUser, _now: i64) -> Result<User> {
        none()
    }

    async fn user_by_name(&self, _username: &str) -> Result<Option<User>> {
        none()
    }

    async fn user_by_id(&self, _id: i64) -> Result<Option<User>> {
        none()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        none()
    }

    async fn set_password(&self, _username: &str, _password_hash: &PasswordHash) -> Result<()> {
        none()
    }

    async fn set_active(&self, _username: &str, _active: bool) -> Result<()> {
        none()
    }

    async fn delete_user(&self, _username: &str) -> Result<()> {
        none()
    }

    async fn record_login(&self, _user_id: i64, _now: i64) -> Result<()> {
        none()
    }

    async fn outstand(&self, _token: &Outstanding) -> Result<()> {
        none()
    }

    async fn start_session(&self, _login: Login) -> Result<bool> {
        none()
    }

    async fn is_blacklisted(&self, _jti: &str) -> Result<bool> {
        none()
    }

    async fn blacklist(&self, _token: &Outstanding, _now: i64) -> Result<bool> {
        none()
    }

    async fn refresh(&self, _refresh: Refresh, _now: i64) -> Result<RefreshOutcome> {
        none()
    }

    async fn flush_expired(&self, _now: i64) -> Result<Flushed> {
        none()
    }

    async fn sessions(&self, _user_id: i64, _now: i64) -> Result<Vec<Session>> {
        none()
    }

    async fn revoke_session(&self, _user_id: i64, _id: &str, _now: i64) -> Result<bool> {
        none()
    }

    async fn revoke_all_sessions(&self, _user_id: i64, _now: i64) -> Result<u64> {
        none()
    }

    async fn secret(&self, _name: &str, _candidate: &[u8]) -> Result<Vec<u8>> {
        none()
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        none()
    }

    async fn add_signing_key(&self, _key: StoredKey, _activate_if_none: bool) -> Result<bool> {
        none()
    }

    async fn activate_signing_key(&self, _kid: &str, _now: i64) -> Result<bool> {
        none()
    }

    async fn retire_signing_key(&self, _kid: &str, _now: i64) -> Result<bool> {
        none()
    }

    async fn login_failures(
        &self,
        _keys: &[String],
        _now: i64,
    ) -> Result<Vec<Option<FailureCount>>> {
        none()
    }

    async fn login_failed(&self, _keys: Vec<(String, Limit)>, _now: i64) -> Result<()> {
        none()
    }

    async fn forget_login_failures(&self, _key: &str) -> Result<()> {
        none()
    }

    async fn import(&self, _import: Import, _mode: ImportMode) -> Result<ImportOutcome> {
        none()
    }
}

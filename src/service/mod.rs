//! The token service: logging in, refreshing with rotation, verifying and blacklisting, as
//! simplejwt's serializers do, and authenticating a Bearer header as its `JWTAuthentication`
//! does, over a [`Store`] and a [`TokenCodec`]; sessions (every login starts one; a reused
//! rotated token revokes it) and "log out everywhere". The one door to both: the server, the
//! gateway and the CLI reach the database only through it. No HTTP here (the extractors are in
//! `http::auth`, the client's address in `http::client`).

use crate::config::{ConfigError, CookieSettings, CorsSettings, JwtSettings, LoginSettings};
use crate::password::{self, Hasher, PasswordError};
use crate::store::{
    Flushed, Limit, Login, NewUser, Outstanding, PasswordHash, Refresh, RefreshOutcome, Session,
    Store, StoreError, User,
};
use crate::throttle::{LoginThrottle, Verdict};
use crate::token::{self, Claims, KeyError, TokenCodec, TokenError, TokenType, Validation};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

mod keys;
mod remote;

pub use keys::{KEY_REFRESH, KeyState, KeysError, ListedKey, PublishedKeys};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("Token is blacklisted")]
    Blacklisted,
    /// Unknown user, wrong password and inactive user alike.
    #[error("No active account found with the given credentials")]
    BadCredentials,
    #[error("No active account found for the given token.")]
    NoActiveAccountForToken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Too many failed logins for the username or the client's address; the lock ends in
    /// `retry_after` seconds.
    #[error("Too many failed login attempts. Try again later.")]
    Throttled { retry_after: u64 },
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Why a request was not authenticated; each has simplejwt's body (see `http/error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Authentication credentials were not provided.")]
    NotProvided,
    #[error("Authorization header must contain two space-delimited values")]
    BadHeader,
    #[error("Given token not valid for any token type")]
    InvalidToken(TokenError),
    #[error("Token contained no recognizable user identification")]
    NoUserId,
    #[error("User not found")]
    UserNotFound,
    #[error("User is inactive")]
    UserInactive,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A valid access token naming a user, as [`AuthService::authenticate_header`] finds it; the
/// user is not loaded. An extractor too (`http::auth`).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user id claim as the token carries it (forward-auth passes it on as is).
    pub user_id: String,
    pub claims: Claims,
}

/// A user's primary key, as a token names it in its user id claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);

impl UserId {
    /// The one reading of a token's user id claim: `None` when the claim is absent or empty, an
    /// error when it is not a primary key (each caller decides what that means).
    pub fn from_claim(claim: Option<&str>) -> Result<Option<UserId>, std::num::ParseIntError> {
        match claim.filter(|id| !id.is_empty()) {
            None => Ok(None),
            Some(id) => id.parse().map(|id| Some(UserId(id))),
        }
    }
}

/// Finds the token in an `Authorization` header: `<type> <token>`, where type is one of
/// `types` (case-sensitive) and runs of whitespace count as one.
pub fn bearer_token<'h>(header: Option<&'h [u8]>, types: &[String]) -> Result<&'h [u8], AuthError> {
    let header = header.unwrap_or_default();
    // The usual shape, `<type> <token>` with one space, in one branch-free pass over the token.
    for kind in types {
        if let Some(token) = header
            .strip_prefix(kind.as_bytes())
            .and_then(|rest| rest.strip_prefix(b" "))
            && !token.is_empty()
            && !token
                .iter()
                .fold(false, |space, b| space | b.is_ascii_whitespace())
        {
            return Ok(token);
        }
    }
    let mut parts = header
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    match parts.next() {
        Some(kind) if types.iter().any(|t| t.as_bytes() == kind) => {}
        _ => return Err(AuthError::NotProvided),
    }
    match (parts.next(), parts.next()) {
        (Some(token), None) => Ok(token),
        _ => Err(AuthError::BadHeader),
    }
}

/// Who logged in from where, as the session keeps it: the client's address and `User-Agent`
/// (`http::client` reads them off the request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// The most of a `User-Agent` a session keeps, in bytes.
pub const MAX_USER_AGENT: usize = 512;

/// `seconds` since the Unix epoch as RFC 3339 in UTC, to the second: `2025-01-31T12:00:00Z`.
pub fn rfc3339(seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A new session id: 128 random bits, base64url without padding (22 characters).
fn new_session_id() -> String {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    URL_SAFE_NO_PAD.encode(id)
}

/// At most [`MAX_USER_AGENT`] bytes of `user_agent`, cut at a character boundary.
fn bounded_user_agent(mut user_agent: String) -> String {
    user_agent.truncate(user_agent.floor_char_boundary(MAX_USER_AGENT));
    user_agent
}

/// The reply to a login: refresh first, as simplejwt writes it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub refresh: String,
    pub access: String,
}

/// The reply to a refresh; `refresh` only when rotation is on.
#[derive(Debug, Clone, Serialize)]
pub struct Refreshed {
    pub access: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Remote(#[from] remote::FetchError),
}

#[derive(Debug)]
pub struct AuthService {
    settings: JwtSettings,
    codec: TokenCodec,
    /// Where the keys come from, and what `/.well-known/jwks.json` serves of them.
    keys: keys::Keys,
    store: Arc<dyn Store>,
    hasher: Hasher,
    throttle: LoginThrottle,
    /// Cookie mode (`[cookies]`); all off by default.
    cookies: CookieSettings,
    /// The origins besides our own whose pages may make cookie-authenticated state-changing
    /// requests: `[cors]`'s listed origins and regexes (never "all origins").
    trusted_origins: CorsSettings,
}

impl AuthService {
    /// Sets up signing with the configured key, or with the secret kept in the database
    /// (generated by whichever instance starts first), with the default password threads.
    pub async fn new(settings: JwtSettings, store: Arc<dyn Store>) -> Result<Self, SetupError> {
        Self::with_hasher(settings, store, Hasher::default()).await
    }

    /// [`new`](Self::new), hashing passwords on `hasher`'s threads (see [`Hasher::with_queue`]).
    pub async fn with_hasher(
        settings: JwtSettings,
        store: Arc<dyn Store>,
        hasher: Hasher,
    ) -> Result<Self, SetupError> {
        Self::build(settings, store, hasher, true).await
    }

    /// A service for the CLI's user, session and key commands, which sign nothing: it never
    /// stores a first signing key (only a serving instance does).
    pub async fn admin(settings: JwtSettings, store: Arc<dyn Store>) -> Result<Self, SetupError> {
        Self::build(settings, store, Hasher::default(), false).await
    }

    async fn build(
        settings: JwtSettings,
        store: Arc<dyn Store>,
        hasher: Hasher,
        first_key: bool,
    ) -> Result<Self, SetupError> {
        let (set, keys) = keys::Keys::load(&settings, &*store, first_key).await?;
        let codec = TokenCodec::new(
            set,
            settings.claims(),
            Validation {
                audience: settings.audience.clone(),
                issuer: settings.issuer.clone(),
                leeway: settings.leeway.as_secs() as i64,
            },
        );
        Ok(AuthService {
            settings,
            keys,
            codec,
            store,
            hasher,
            throttle: login_throttle(&LoginSettings::default()),
            cookies: CookieSettings::default(),
            trusted_origins: CorsSettings::default(),
        })
    }

    /// Throttles failed logins as `settings` say (the defaults otherwise).
    pub fn with_login_limits(mut self, settings: &LoginSettings) -> Self {
        self.throttle = login_throttle(settings);
        self
    }

    /// Sets and reads the tokens in cookies as `settings` say (`http::cookies`, `http::auth`),
    /// trusting the pages of `cors`'s allowed origins (listed or matched by a regex) as our own
    /// for the CSRF check. `cors_allow_all_origins` is not taken as trusting every origin: that
    /// would be no check at all.
    pub fn with_cookies(mut self, settings: CookieSettings, cors: &CorsSettings) -> Self {
        self.cookies = settings;
        self.trusted_origins = CorsSettings {
            cors_allow_all_origins: false,
            ..cors.clone()
        };
        self
    }

    /// The `[cookies]` settings: which cookies are on, and their attributes.
    pub fn cookies(&self) -> &CookieSettings {
        &self.cookies
    }

    /// Whether a request from `origin` (`scheme://host[:port]`) may use the cookies for a
    /// state-changing request, besides the server's own origin (the CSRF check, `http::csrf`).
    pub fn is_trusted_origin(&self, origin: &str) -> bool {
        self.trusted_origins.is_allowed_origin(origin)
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    pub fn codec(&self) -> &TokenCodec {
        &self.codec
    }

    /// The store itself, for tests that set up or inspect the database directly; the server,
    /// the gateway and the CLI use the methods below.
    #[doc(hidden)]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// Checks the credentials and issues a token pair, starting a session for `client`. Every
    /// failure looks alike, and takes alike whoever the user is (a password over
    /// [`password::MAX_PASSWORD_BYTES`] is refused at once, for any user). A username or client
    /// address locked by failed logins is refused before anything else, with no password hashed,
    /// whether or not the user exists.
    pub async fn obtain(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        let now = token::now();
        let keys = self.throttle.keys(username, client.ip);
        let recorded = match self.throttle.check(&*self.store, &keys, now).await? {
            Verdict::Open { recorded } => recorded,
            Verdict::Locked { retry_after } => {
                metrics::counter!("handstamp_logins_throttled_total").increment(1);
                return Err(ServiceError::Throttled { retry_after });
            }
        };
        // Refused unhashed (no password that long can be stored), whoever the user is.
        let mut new_password = None;
        let user = if password::too_long(password) {
            None
        } else {
            let user = self.store.user_by_name(username).await?;
            let stored = user.as_ref().map(|u| u.password.as_str());
            let (matches, upgraded) = self
                .hasher
                .verify_and_upgrade(password.to_owned(), stored)
                .await?;
            new_password = upgraded.map(PasswordHash::from);
            user.filter(|user| matches && user.is_active)
        };
        let Some(user) = user else {
            metrics::counter!("handstamp_logins_total", "outcome" => "failed").increment(1);
            self.throttle.failed(&*self.store, keys, now).await?;
            return Err(ServiceError::BadCredentials);
        };
        if recorded {
            self.throttle.succeeded(&*self.store, &keys).await?;
        }
        let refresh = Claims {
            token_type: Some(TokenType::Refresh.as_str().into()),
            exp: Some(now + self.lifetime(TokenType::Refresh)),
            iat: Some(now),
            jti: Some(token::new_jti()),
            user_id: Some(user.id.to_string()),
            ..Claims::default()
        };
        let refresh_token = self.codec.encode(&refresh);
        let token = outstanding(&refresh, Some(UserId(user.id)));
        let session = Session {
            id: new_session_id(),
            user_id: user.id,
            created_at: now,
            last_refreshed_at: now,
            expires_at: token.expires_at,
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone().map(bounded_user_agent),
            revoked_at: None,
        };
        let login = Login {
            session,
            token,
            record_login: self.settings.update_last_login,
            new_password,
        };
        if !self.store.start_session(login).await? {
            // Deleted since its password was checked.
            metrics::counter!("handstamp_logins_total", "outcome" => "failed").increment(1);
            return Err(ServiceError::BadCredentials);
        }
        metrics::counter!("handstamp_logins_total", "outcome" => "ok").increment(1);
        metrics::counter!("handstamp_tokens_issued_total").increment(1);
        Ok(TokenPair {
            access: self.codec.encode(&self.access_for(&refresh, now)),
            refresh: refresh_token,
        })
    }

    /// Issues a new access token for a refresh token and, with rotation on, a new refresh
    /// token in the same session, blacklisting the old one. A success is committed before it is
    /// returned. A rotated token presented again `refresh_reuse_interval` or longer after its
    /// rotation revokes its session (see [`Store::refresh`]); either way it is refused as
    /// blacklisted.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Refreshed> {
        let now = token::now();
        let claims = self
            .codec
            .validate(refresh_token, Some(TokenType::Refresh), now)?;
        let user_id = UserId::from_claim(claims.user_id.as_deref())
            .map_err(|_| ServiceError::NoActiveAccountForToken)?;
        let access = self.codec.encode(&self.access_for(&claims, now));
        let rotate = self.settings.rotate_refresh_tokens;
        let rotated = rotate.then(|| Claims {
            exp: Some(now + self.lifetime(TokenType::Refresh)),
            iat: Some(now),
            jti: Some(token::new_jti()),
            ..claims.clone()
        });
        let rotated_token = rotated.as_ref().map(|c| self.codec.encode(c));
        let old = outstanding(&claims, user_id);
        let new = rotated.as_ref().map(|c| outstanding(c, user_id));
        let blacklist_old = rotate && self.settings.blacklist_after_rotation;
        let outcome = self
            .store
            .refresh(
                Refresh {
                    old,
                    blacklist_old,
                    user_id: user_id.map(|id| id.0),
                    new,
                    reuse_interval: self.settings.refresh_reuse_interval.as_secs() as i64,
                },
                now,
            )
            .await?;
        match outcome {
            RefreshOutcome::Done => {
                metrics::counter!("handstamp_tokens_refreshed_total").increment(1);
                if blacklist_old {
                    metrics::counter!("handstamp_tokens_blacklisted_total").increment(1);
                }
                Ok(Refreshed {
                    access,
                    refresh: rotated_token,
                })
            }
            RefreshOutcome::Blacklisted => Err(ServiceError::Blacklisted),
            RefreshOutcome::Revoked => {
                let user = claims.user_id.as_deref().unwrap_or_default();
                tracing::warn!(
                    user,
                    "a rotated refresh token was reused: its session is revoked"
                );
                metrics::counter!("handstamp_sessions_revoked_total", "reason" => "reuse")
                    .increment(1);
                Err(ServiceError::Blacklisted)
            }
            RefreshOutcome::NoActiveUser => Err(ServiceError::NoActiveAccountForToken),
        }
    }

    /// Checks any token we signed. Only refresh tokens can be blacklisted, so only they cost
    /// a database read.
    pub async fn verify(&self, token: &str) -> Result<()> {
        let claims = self.codec.validate(token, None, token::now())?;
        if claims.is_type(TokenType::Refresh) {
            let jti = claims.jti.as_deref().unwrap_or_default();
            if self.store.is_blacklisted(jti).await? {
                return Err(ServiceError::Blacklisted);
            }
        }
        Ok(())
    }

    /// Blacklists a refresh token, so it can never be refreshed again, and ends its session
    /// (also when the token was blacklisted already: a stale token of the session still ends it).
    pub async fn blacklist(&self, refresh_token: &str) -> Result<()> {
        let now = token::now();
        let claims = self
            .codec
            .validate(refresh_token, Some(TokenType::Refresh), now)?;
        // An unreadable user id does not stop a blacklisting: the token is recorded without one.
        let user_id = UserId::from_claim(claims.user_id.as_deref()).ok().flatten();
        let token = outstanding(&claims, user_id);
        if self.store.blacklist(&token, now).await? {
            metrics::counter!("handstamp_tokens_blacklisted_total").increment(1);
            Ok(())
        } else {
            Err(ServiceError::Blacklisted)
        }
    }

    /// Validates an access token in memory: the hot path of every protected request.
    pub fn authenticate(&self, access_token: &str) -> Result<Claims, TokenError> {
        let claims = self
            .codec
            .validate(access_token, Some(TokenType::Access), token::now());
        if claims == Err(TokenError::Invalid) {
            self.note_unknown_kid(access_token);
        }
        claims
    }

    /// Authenticates an `Authorization` header value without touching the database.
    pub fn authenticate_header(&self, header: Option<&[u8]>) -> Result<Authenticated, AuthError> {
        let token = bearer_token(header, &self.settings.auth_header_types)?;
        self.authenticate_token(token)
    }

    /// Authenticates an access token as found (in a header or a cookie), without the database.
    #[inline]
    pub fn authenticate_token(&self, token: &[u8]) -> Result<Authenticated, AuthError> {
        let token =
            std::str::from_utf8(token).map_err(|_| AuthError::InvalidToken(TokenError::Invalid))?;
        let claims = self.authenticate(token).map_err(AuthError::InvalidToken)?;
        let user_id = claims.user_id.clone().ok_or(AuthError::NoUserId)?;
        Ok(Authenticated { user_id, claims })
    }

    /// Loads the user an authenticated token names, by primary key, who must be active and must
    /// not have logged out everywhere since the token was issued (the same read).
    pub async fn load_user(&self, auth: &Authenticated) -> Result<User, AuthError> {
        let id = UserId::from_claim(Some(&auth.user_id)).ok().flatten();
        let id = id.ok_or(AuthError::UserNotFound)?;
        let user = self
            .store
            .user_by_id(id.0)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        if !user.is_active {
            return Err(AuthError::UserInactive);
        }
        if user.revoked_token(auth.claims.iat) {
            return Err(AuthError::InvalidToken(TokenError::Invalid));
        }
        Ok(user)
    }

    /// Whether the database answers and takes writes (`/readyz`; see [`Store::ping`]).
    pub async fn ping(&self) -> Result<()> {
        if let Some(ready) = self.remote_ready() {
            return Ok(ready?);
        }
        Ok(self.store.ping().await?)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(self.store.user_by_name(username).await?)
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self.store.list_users().await?)
    }

    /// Lets a user log in and refresh again, or stops them.
    pub async fn set_active(&self, username: &str, active: bool) -> Result<()> {
        Ok(self.store.set_active(username, active).await?)
    }

    pub async fn delete_user(&self, username: &str) -> Result<()> {
        Ok(self.store.delete_user(username).await?)
    }

    /// Deletes refresh tokens past their expiry, with their blacklist entries, and sessions
    /// whose last token expired; returns how many of each.
    pub async fn flush_expired(&self) -> Result<Flushed> {
        Ok(self.store.flush_expired(token::now()).await?)
    }

    /// The user's live sessions, newest first.
    pub async fn sessions(&self, user_id: i64) -> Result<Vec<Session>> {
        Ok(self.store.sessions(user_id, token::now()).await?)
    }

    /// Ends the user's live session `id`: none of its refresh tokens works again (its access
    /// tokens live out their lifetime). False when the user has no such live session.
    pub async fn end_session(&self, user_id: i64, id: &str) -> Result<bool> {
        let ended = self.store.revoke_session(user_id, id, token::now()).await?;
        if ended {
            metrics::counter!("handstamp_sessions_revoked_total", "reason" => "user").increment(1);
        }
        Ok(ended)
    }

    /// "Log out everywhere": ends all the user's sessions, and refuses every token issued so
    /// far, access tokens included wherever the user is loaded. Returns how many sessions ended.
    pub async fn end_all_sessions(&self, user_id: i64) -> Result<u64> {
        let ended = self
            .store
            .revoke_all_sessions(user_id, token::now())
            .await?;
        metrics::counter!("handstamp_sessions_revoked_total", "reason" => "all").increment(ended);
        Ok(ended)
    }

    /// Creates a user with an Argon2id hash of `password`.
    pub async fn create_user(
        &self,
        username: &str,
        password: String,
        is_staff: bool,
        is_superuser: bool,
    ) -> Result<User> {
        let password_hash = self.hasher.hash(password).await?;
        let user = NewUser {
            username: username.to_owned(),
            password_hash: password_hash.into(),
            is_staff,
            is_superuser,
        };
        Ok(self.store.create_user(user, token::now()).await?)
    }

    pub async fn set_password(&self, username: &str, password: String) -> Result<()> {
        let password_hash = PasswordHash::from(self.hasher.hash(password).await?);
        Ok(self.store.set_password(username, &password_hash).await?)
    }

    fn lifetime(&self, kind: TokenType) -> i64 {
        let lifetime = match kind {
            TokenType::Access => self.settings.access_token_lifetime,
            TokenType::Refresh => self.settings.refresh_token_lifetime,
        };
        lifetime.as_secs() as i64
    }

    /// simplejwt's `RefreshToken.access_token`: a new type, expiry and id; everything else
    /// (the user and the refresh token's `iat`) copied over.
    fn access_for(&self, refresh: &Claims, now: i64) -> Claims {
        Claims {
            token_type: Some(TokenType::Access.as_str().into()),
            exp: Some(now + self.lifetime(TokenType::Access)),
            jti: Some(token::new_jti()),
            ..refresh.clone()
        }
    }
}

fn outstanding(claims: &Claims, user_id: Option<UserId>) -> Outstanding {
    Outstanding {
        jti: claims.jti.clone().unwrap_or_default(),
        user_id: user_id.map(|id| id.0),
        created_at: claims.iat,
        expires_at: claims.exp.unwrap_or_default(),
    }
}

/// The `[login]` settings as the throttle's limits; a limit of 0 is none.
fn login_throttle(settings: &LoginSettings) -> LoginThrottle {
    let limit = |max_failures: u32| {
        (max_failures > 0).then_some(Limit {
            max_failures,
            window: settings.login_failure_window.as_secs() as i64,
            lockout: settings.login_lockout.as_secs() as i64,
            lockout_max: settings.login_lockout_max.as_secs() as i64,
        })
    };
    LoginThrottle {
        per_username: limit(settings.login_max_failures),
        per_address: limit(settings.login_max_failures_per_ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &str) -> Result<&[u8], AuthError> {
        bearer_token(Some(header.as_bytes()), &["Bearer".to_string()])
    }

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        let short = "curl/8.5.0".to_string();
        assert_eq!(bounded_user_agent(short.clone()), short);
        let long = "é".repeat(MAX_USER_AGENT); // two bytes each
        let cut = bounded_user_agent(long);
        assert_eq!(cut.len(), MAX_USER_AGENT);
        let odd = format!("x{}", "é".repeat(MAX_USER_AGENT));
        let cut = bounded_user_agent(odd);
        assert_eq!(cut.len(), MAX_USER_AGENT - 1);
        assert!(cut.ends_with('é'));
    }

    #[test]
    fn session_ids_are_128_random_bits_in_base64url() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_ne!(a, b);
        let bytes = URL_SAFE_NO_PAD.decode(&a).unwrap();
        assert_eq!((a.len(), bytes.len()), (22, 16));
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_user_id_claim_is_read_one_way() {
        assert_eq!(UserId::from_claim(None), Ok(None));
        assert_eq!(UserId::from_claim(Some("")), Ok(None));
        assert_eq!(UserId::from_claim(Some("42")), Ok(Some(UserId(42))));
        for bad in ["abc", " 42", "4.2", "99999999999999999999"] {
            assert!(UserId::from_claim(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_rules_follow_simplejwt() {
        assert_eq!(parse("Bearer abc").unwrap(), b"abc");
        assert_eq!(parse("Bearer   abc").unwrap(), b"abc");
        assert_eq!(parse(" Bearer\tabc \r\n").unwrap(), b"abc");
        assert_eq!(parse("Bearer abc ").unwrap(), b"abc");
        for other in [
            "",
            "   ",
            "Token abc",
            "bearer abc",
            "Basic abc",
            "Bearerabc",
        ] {
            assert!(
                matches!(parse(other), Err(AuthError::NotProvided)),
                "{other:?}"
            );
        }
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a\tb",
            "Bearer  a  b  c",
        ] {
            assert!(matches!(parse(bad), Err(AuthError::BadHeader)), "{bad:?}");
        }
        assert!(matches!(
            bearer_token(None, &["Bearer".to_string()]),
            Err(AuthError::NotProvided)
        ));
    }
}

//! Settings: simplejwt's names and defaults, read from the `[jwt]` and `[server]` tables (and the
//! `[[static]]` and `[[upstream]]` arrays) of a TOML file and from `HANDSTAMP_*` environment variables (the environment wins), and checked
//! once at start-up.

use crate::target;
use crate::token::{Algorithm, ClaimNames};
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::{fmt, time::Duration};

/// A setting that failed its check, named as the user wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting `{setting}`: {message}")]
    Invalid { setting: String, message: String },
    #[error("cannot read settings: {0}")]
    Read(String),
    #[error("unknown environment variable `{0}`: no setting has that name")]
    UnknownVariable(String),
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

/// Names the setting a file or variable got wrong, as the user would write it.
fn read_error(error: figment::Error) -> ConfigError {
    let source = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(source) => format!(" (from {} {source})", m.name),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    match error.path.last() {
        Some(key) => invalid(
            &key.to_ascii_lowercase(),
            format!("{}{source}", error.kind).trim(),
        ),
        None => ConfigError::Read(format!("{}{source}", error.kind.to_string().trim())),
    }
}

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub jwt: JwtSettings,
    pub server: ServerSettings,
    /// Directories served as static files, under URL prefixes.
    pub statics: Vec<StaticMount>,
    /// Prefixes proxied to pools of backends.
    pub upstreams: Vec<UpstreamSettings>,
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub rotate_refresh_tokens: bool,
    pub blacklist_after_rotation: bool,
    pub update_last_login: bool,
    pub algorithm: Algorithm,
    /// None: a secret generated once and kept in the database.
    pub signing_key: Option<Secret>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub leeway: Duration,
    pub auth_header_types: Vec<String>,
    pub claims: ClaimNames,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: Vec<String>,
    /// Certificate chain and key (PEM); with them every listener speaks HTTPS.
    pub tls: Option<TlsFiles>,
    pub shutdown_grace: Duration,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    /// An idle connection (no request in flight) is closed after this.
    pub keepalive_timeout: Duration,
    /// A client whose reading makes no progress for this long is cut off.
    pub send_timeout: Duration,
    pub max_body: usize,
    /// The body limit of the token endpoints (`/api/token/...`), at most `max_body`.
    pub token_max_body: usize,
    pub max_connections: usize,
    pub log_format: LogFormat,
    /// Logins (and other password checks) that may wait for a password thread; past it, 503.
    pub password_queue: usize,
    /// Forward-auth and upstreams also load the token's user and refuse a deleted or inactive
    /// one, as `/api/users/me/` does; false: the token alone, without the database.
    pub check_user: bool,
    /// A listener of its own for `GET /metrics` (a management port); unset, the public
    /// listeners serve it to loopback peers only.
    pub metrics_bind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMount {
    /// Starts and ends with `/`.
    pub prefix: String,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid access token is required; without one the request is answered 401 here.
    Required,
    /// A valid token adds the user's identity; no token or a bad one passes without it.
    Optional,
    /// Passed through untouched (client-sent identity headers are still stripped).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConnections,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Starts and ends with `/`; passed on to the backend unchanged.
    pub prefix: String,
    /// Base URLs, `http://host:port`.
    pub backends: Vec<String>,
    pub auth: AuthMode,
    pub balance: Balance,
    /// Path the active health check GETs; any answer below 500 counts as alive.
    pub health_path: String,
    pub health_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        RawSettings::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl Settings {
    /// Reads `file` (if given and present) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, std::env::vars_os())
    }

    /// [`load`](Self::load), with `vars` standing for the environment.
    fn load_with(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let raw: RawSettings = figment
            .merge(EnvSettings::read(vars)?)
            // Booleans as true/false, yes/no, on/off or 1/0 in any case, from either source.
            .extract_lossy()
            .map_err(read_error)?;
        raw.validate()
    }
}

const ENV_PREFIX: &str = "HANDSTAMP_";

/// Our variables that are not settings: the command line reads them (`cli.rs`).
const CLI_VARS: &[&str] = &["config", "database_url"];

/// The `HANDSTAMP_<KEY>` settings, each value kept as the exact text given: figment's `Env`
/// would parse `1234…890.5` as a float (and print it back as another key) and strip quotes.
struct EnvSettings(Dict);

impl EnvSettings {
    /// Settings from `vars`; any other variable with our prefix is an error, as an unknown key
    /// in the file is.
    fn read(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Self, ConfigError> {
        let mut sections: BTreeMap<&str, Dict> = BTreeMap::new();
        for (name, value) in vars {
            let bytes = name.as_encoded_bytes();
            // The prefix in any case, as figment's `Env::prefixed` matched it.
            if !bytes
                .get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX.as_bytes()))
            {
                continue;
            }
            let name = name.to_string_lossy();
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            let section = if JWT_KEYS.contains(&key.as_str()) {
                "jwt"
            } else if SERVER_KEYS.contains(&key.as_str()) {
                "server"
            } else if CLI_VARS.contains(&key.as_str()) {
                continue;
            } else {
                return Err(ConfigError::UnknownVariable(name.into_owned()));
            };
            let value = value
                .into_string()
                .map_err(|_| invalid(&key, format!("{name} is not valid UTF-8")))?;
            sections
                .entry(section)
                .or_default()
                .insert(key, Value::from(value));
        }
        let dict = sections
            .into_iter()
            .map(|(section, keys)| (section.to_owned(), Value::from(keys)))
            .collect();
        Ok(EnvSettings(dict))
    }
}

impl Provider for EnvSettings {
    fn metadata(&self) -> Metadata {
        Metadata::named("`HANDSTAMP_` environment variable(s)")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// The settings the environment may override, without the `HANDSTAMP_` prefix: the one list
/// the environment is read by (a key missing here is refused as an unknown variable).
const JWT_KEYS: &[&str] = &[
    "access_token_lifetime",
    "refresh_token_lifetime",
    "rotate_refresh_tokens",
    "blacklist_after_rotation",
    "update_last_login",
    "algorithm",
    "signing_key",
    "verifying_key",
    "audience",
    "issuer",
    "leeway",
    "auth_header_types",
    "user_id_claim",
    "token_type_claim",
    "jti_claim",
];
const SERVER_KEYS: &[&str] = &[
    "bind",
    "tls_cert",
    "tls_key",
    "shutdown_grace",
    "request_timeout",
    "header_read_timeout",
    "keepalive_timeout",
    "send_timeout",
    "max_body",
    "max_connections",
    "log_format",
    "token_max_body",
    "password_queue",
    "check_user",
    "metrics_bind",
];

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    jwt: RawJwt,
    #[serde(default)]
    server: RawServer,
    #[serde(default, rename = "static")]
    statics: Vec<RawStatic>,
    #[serde(default)]
    upstream: Vec<RawUpstream>,
}

/// Settings as written; numbers and text are both accepted where the environment could give
/// either.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawJwt {
    #[serde(deserialize_with = "text")]
    access_token_lifetime: String,
    #[serde(deserialize_with = "text")]
    refresh_token_lifetime: String,
    rotate_refresh_tokens: bool,
    blacklist_after_rotation: bool,
    update_last_login: bool,
    #[serde(deserialize_with = "text")]
    algorithm: String,
    #[serde(deserialize_with = "opt_text")]
    signing_key: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    verifying_key: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    audience: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    issuer: Option<String>,
    #[serde(deserialize_with = "text")]
    leeway: String,
    #[serde(deserialize_with = "list")]
    auth_header_types: Vec<String>,
    #[serde(deserialize_with = "text")]
    user_id_claim: String,
    #[serde(deserialize_with = "text")]
    token_type_claim: String,
    #[serde(deserialize_with = "text")]
    jti_claim: String,
}

impl Default for RawJwt {
    fn default() -> Self {
        RawJwt {
            access_token_lifetime: "5m".into(),
            refresh_token_lifetime: "1d".into(),
            rotate_refresh_tokens: true,
            blacklist_after_rotation: true,
            update_last_login: false,
            algorithm: "HS256".into(),
            signing_key: None,
            verifying_key: None,
            audience: None,
            issuer: None,
            leeway: "0s".into(),
            auth_header_types: vec!["Bearer".into()],
            user_id_claim: "user_id".into(),
            token_type_claim: "token_type".into(),
            jti_claim: "jti".into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    #[serde(deserialize_with = "list")]
    bind: Vec<String>,
    #[serde(deserialize_with = "opt_text")]
    tls_cert: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    tls_key: Option<String>,
    #[serde(deserialize_with = "text")]
    shutdown_grace: String,
    #[serde(deserialize_with = "text")]
    request_timeout: String,
    #[serde(deserialize_with = "text")]
    header_read_timeout: String,
    #[serde(deserialize_with = "text")]
    keepalive_timeout: String,
    #[serde(deserialize_with = "text")]
    send_timeout: String,
    #[serde(deserialize_with = "text")]
    max_body: String,
    #[serde(deserialize_with = "text")]
    max_connections: String,
    #[serde(deserialize_with = "text")]
    log_format: String,
    #[serde(deserialize_with = "text")]
    token_max_body: String,
    #[serde(deserialize_with = "text")]
    password_queue: String,
    check_user: bool,
    #[serde(deserialize_with = "opt_text")]
    metrics_bind: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            bind: vec!["127.0.0.1:8000".into()],
            tls_cert: None,
            tls_key: None,
            shutdown_grace: "30s".into(),
            request_timeout: "30s".into(),
            header_read_timeout: "10s".into(),
            keepalive_timeout: "75s".into(),
            send_timeout: "60s".into(),
            max_body: "1MiB".into(),
            max_connections: "10000".into(),
            log_format: "text".into(),
            token_max_body: "16KiB".into(),
            // About 2.5 s of work on 2 cores (one Argon2id verify takes ~18 ms of one core).
            password_queue: "256".into(),
            check_user: true,
            metrics_bind: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatic {
    prefix: String,
    dir: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    prefix: String,
    backends: Vec<String>,
    #[serde(default = "default_auth")]
    auth: String,
    #[serde(default = "default_balance")]
    balance: String,
    #[serde(default = "default_health_path")]
    health_path: String,
    #[serde(default = "default_health_interval", deserialize_with = "text")]
    health_interval: String,
}

fn default_auth() -> String {
    "required".into()
}
fn default_balance() -> String {
    "round_robin".into()
}
fn default_health_path() -> String {
    "/".into()
}
fn default_health_interval() -> String {
    "5s".into()
}

/// A string, or a number or boolean taken as its text (the environment gives `300` as a number).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> String {
        match s {
            Scalar::Text(t) => t,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(String::from)
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(String::from))
}

/// A list, or one value standing for a list of one.
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Scalar),
        Many(Vec<Scalar>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s.into()],
        OneOrMany::Many(v) => v.into_iter().map(String::from).collect(),
    })
}

/// `"300s"`, `"5m"`, `"1d"`, or a bare number of seconds.
pub fn parse_duration(setting: &str, value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(value).map_err(|e| {
        invalid(
            setting,
            format!("{value:?} is not a duration ({e}); write e.g. \"300s\", \"5m\" or \"1d\""),
        )
    })
}

fn positive(setting: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.as_secs() == 0 {
        return Err(invalid(setting, "must be at least one second"));
    }
    Ok(d)
}

fn claim_name(setting: &'static str, name: String) -> Result<String, ConfigError> {
    if name.trim().is_empty() {
        return Err(invalid(setting, "must not be empty"));
    }
    Ok(name)
}

impl RawSettings {
    fn validate(self) -> Result<Settings, ConfigError> {
        let j = self.jwt;
        let algorithm: Algorithm = j.algorithm.parse().map_err(|e| invalid("algorithm", e))?;
        let signing_key = match j.signing_key {
            Some(key) if key.len() < algorithm.min_key_len() => {
                return Err(invalid(
                    "signing_key",
                    format!(
                        "{algorithm} needs a key of at least {} bytes; this one has {}",
                        algorithm.min_key_len(),
                        key.len()
                    ),
                ));
            }
            key => key.map(Secret),
        };
        if j.verifying_key.is_some() {
            return Err(invalid(
                "verifying_key",
                format!(
                    "{algorithm} signs and verifies with signing_key; leave verifying_key unset"
                ),
            ));
        }
        if j.auth_header_types.is_empty()
            || j.auth_header_types
                .iter()
                .any(|t| t.is_empty() || t.contains(char::is_whitespace))
        {
            return Err(invalid(
                "auth_header_types",
                "must list one or more words, such as [\"Bearer\"]",
            ));
        }
        let jwt = JwtSettings {
            access_token_lifetime: positive(
                "access_token_lifetime",
                parse_duration("access_token_lifetime", &j.access_token_lifetime)?,
            )?,
            refresh_token_lifetime: positive(
                "refresh_token_lifetime",
                parse_duration("refresh_token_lifetime", &j.refresh_token_lifetime)?,
            )?,
            rotate_refresh_tokens: j.rotate_refresh_tokens,
            blacklist_after_rotation: j.blacklist_after_rotation,
            update_last_login: j.update_last_login,
            algorithm,
            signing_key,
            audience: j.audience,
            issuer: j.issuer,
            leeway: parse_duration("leeway", &j.leeway)?,
            auth_header_types: j.auth_header_types,
            claims: ClaimNames {
                token_type: claim_name("token_type_claim", j.token_type_claim)?,
                user_id: claim_name("user_id_claim", j.user_id_claim)?,
                jti: claim_name("jti_claim", j.jti_claim)?,
            },
        };
        let server = self.server.validate()?;
        let statics = self
            .statics
            .into_iter()
            .map(|raw| {
                Ok(StaticMount {
                    prefix: url_prefix("static.prefix", raw.prefix)?,
                    dir: PathBuf::from(raw.dir),
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        let upstreams = self
            .upstream
            .into_iter()
            .map(RawUpstream::validate)
            .collect::<Result<_, _>>()?;
        Ok(Settings {
            jwt,
            server,
            statics,
            upstreams,
        })
    }
}

impl RawServer {
    fn validate(self) -> Result<ServerSettings, ConfigError> {
        if self.bind.is_empty() {
            return Err(invalid("bind", "must name at least one address"));
        }
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "tls_key",
                    "tls_cert is set, so tls_key must be too",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_cert",
                    "tls_key is set, so tls_cert must be too",
                ));
            }
        };
        let max_body = size("max_body", &self.max_body)?;
        let token_max_body = size("token_max_body", &self.token_max_body)?;
        let password_queue: usize = match self.password_queue.parse() {
            Ok(n) if n > 0 => n,
            _ => return Err(invalid("password_queue", "must be a whole number above 0")),
        };
        let max_connections: usize = match self.max_connections.parse() {
            Ok(n) if n > 0 => n,
            _ => return Err(invalid("max_connections", "must be a whole number above 0")),
        };
        let log_format = match self.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("{other:?}: expected \"text\" or \"json\""),
                ));
            }
        };
        Ok(ServerSettings {
            bind: self.bind,
            tls,
            shutdown_grace: parse_duration("shutdown_grace", &self.shutdown_grace)?,
            request_timeout: positive(
                "request_timeout",
                parse_duration("request_timeout", &self.request_timeout)?,
            )?,
            header_read_timeout: positive(
                "header_read_timeout",
                parse_duration("header_read_timeout", &self.header_read_timeout)?,
            )?,
            keepalive_timeout: positive(
                "keepalive_timeout",
                parse_duration("keepalive_timeout", &self.keepalive_timeout)?,
            )?,
            send_timeout: positive(
                "send_timeout",
                parse_duration("send_timeout", &self.send_timeout)?,
            )?,
            max_body,
            token_max_body,
            max_connections,
            log_format,
            password_queue,
            check_user: self.check_user,
            metrics_bind: match self.metrics_bind {
                Some(addr) if addr.trim().is_empty() => {
                    return Err(invalid(
                        "metrics_bind",
                        "must be an address such as \"127.0.0.1:9000\"",
                    ));
                }
                addr => addr,
            },
        })
    }
}

impl RawUpstream {
    fn validate(self) -> Result<UpstreamSettings, ConfigError> {
        let prefix = url_prefix("upstream.prefix", self.prefix)?;
        if self.backends.is_empty() {
            return Err(invalid(
                "upstream.backends",
                format!("{prefix}: list at least one backend"),
            ));
        }
        for backend in &self.backends {
            let uri: axum::http::Uri = backend
                .parse()
                .map_err(|e| invalid("upstream.backends", format!("{backend:?}: {e}")))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(invalid(
                    "upstream.backends",
                    format!("{backend:?}: expected http://host:port"),
                ));
            }
        }
        let auth = match self.auth.as_str() {
            "required" => AuthMode::Required,
            "optional" => AuthMode::Optional,
            "none" => AuthMode::None,
            other => {
                let message = format!("{other:?}: expected \"required\", \"optional\" or \"none\"");
                return Err(invalid("upstream.auth", message));
            }
        };
        let balance = match self.balance.as_str() {
            "round_robin" => Balance::RoundRobin,
            "least_connections" => Balance::LeastConnections,
            other => {
                let message =
                    format!("{other:?}: expected \"round_robin\" or \"least_connections\"");
                return Err(invalid("upstream.balance", message));
            }
        };
        if !self.health_path.starts_with('/') {
            return Err(invalid("upstream.health_path", "must start with /"));
        }
        Ok(UpstreamSettings {
            prefix,
            backends: self
                .backends
                .into_iter()
                .map(|b| b.trim_end_matches('/').to_owned())
                .collect(),
            auth,
            balance,
            health_path: self.health_path,
            health_interval: positive(
                "upstream.health_interval",
                parse_duration("upstream.health_interval", &self.health_interval)?,
            )?,
        })
    }
}

/// A size such as `"16KiB"` or `"1MiB"`, in bytes.
fn size(setting: &str, value: &str) -> Result<usize, ConfigError> {
    let size: bytesize::ByteSize = value
        .parse()
        .map_err(|e| invalid(setting, format!("{value:?} is not a size ({e})")))?;
    Ok(usize::try_from(size.as_u64()).unwrap_or(usize::MAX))
}

/// A URL prefix: starts and ends with `/` (a missing final slash is added).
fn url_prefix(setting: &str, prefix: String) -> Result<String, ConfigError> {
    if !prefix.starts_with('/') || prefix.contains(['?', '#', ' ']) {
        return Err(invalid(
            setting,
            format!("{prefix:?}: expected a path such as \"/app/\""),
        ));
    }
    let prefix = if prefix.ends_with('/') {
        prefix
    } else {
        format!("{prefix}/")
    };
    // Requests are matched in normalized form, so a prefix in any other form never matches,
    // and one with characters a backend decodes could be reached under another spelling.
    let plain = |path: &str| path.bytes().all(|b| b == b'/' || target::is_unreserved(b));
    match target::normalize_path(&prefix) {
        Ok(normal) if !plain(&normal) => Err(invalid(
            setting,
            format!("{prefix:?}: use only letters, digits, '-', '.', '_', '~' and '/'"),
        )),
        Ok(normal) if normal != prefix => Err(invalid(
            setting,
            format!("{prefix:?}: requests are matched normalized; write it as {normal:?}"),
        )),
        Ok(_) => Ok(prefix),
        Err(e) => Err(invalid(setting, format!("{prefix:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handstamp.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path))
    }

    #[test]
    fn defaults_are_simplejwts() {
        let s = Settings::default();
        assert_eq!(s.jwt.access_token_lifetime, Duration::from_secs(300));
        assert_eq!(s.jwt.refresh_token_lifetime, Duration::from_secs(86_400));
        assert!(s.jwt.rotate_refresh_tokens && s.jwt.blacklist_after_rotation);
        assert!(!s.jwt.update_last_login);
        assert_eq!(s.jwt.algorithm, Algorithm::HS256);
        assert_eq!(s.jwt.auth_header_types, ["Bearer"]);
        assert_eq!(s.jwt.claims, ClaimNames::default());
        assert_eq!(s.server.max_body, 1024 * 1024);
        assert_eq!(s.server.token_max_body, 16 * 1024);
        assert_eq!(s.server.password_queue, 256);
        assert!(s.server.check_user);
    }

    #[test]
    fn durations_take_seconds_minutes_days() {
        for (text, secs) in [("300s", 300), ("5m", 300), ("1d", 86_400), ("42", 42)] {
            assert_eq!(parse_duration("leeway", text).unwrap().as_secs(), secs);
        }
        assert!(parse_duration("leeway", "soon").is_err());
    }

    #[test]
    fn file_settings_are_read_and_bad_ones_named() {
        let s =
            from_toml("[jwt]\naccess_token_lifetime = \"10m\"\nalgorithm = \"HS512\"\n").unwrap();
        assert_eq!(s.jwt.access_token_lifetime.as_secs(), 600);
        assert_eq!(s.jwt.algorithm, Algorithm::HS512);

        let err = from_toml("[jwt]\nalgorithm = \"none\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`algorithm`"), "{err}");
        let err = from_toml("[jwt]\nsigning_key = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`signing_key`") && err.contains("32 bytes"),
            "{err}"
        );
        let err = from_toml("[jwt]\nrefresh_token_lifetime = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`refresh_token_lifetime`"), "{err}");
        let err = from_toml("[jwt]\nacess_token_lifetime = \"5m\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("acess_token_lifetime"), "{err}");
    }

    /// Settings from the environment `vars` alone.
    fn from_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.into(), v.into()));
        Settings::load_with(None, vars.collect::<Vec<_>>())
    }

    #[test]
    fn environment_text_is_kept_exactly() {
        let s = from_env(&[
            (
                "HANDSTAMP_SIGNING_KEY",
                "1234567890123456789012345678901234567890.5",
            ),
            ("HANDSTAMP_AUDIENCE", "\"quoted\""),
            ("HANDSTAMP_ISSUER", "007"),
            ("HANDSTAMP_AUTH_HEADER_TYPES", "true"),
            ("HANDSTAMP_ACCESS_TOKEN_LIFETIME", "600"),
            ("HANDSTAMP_BIND", "[::1]:8000"),
        ])
        .unwrap();
        let key = "1234567890123456789012345678901234567890.5";
        assert_eq!(s.jwt.signing_key, Some(Secret(key.into())));
        assert_eq!(s.jwt.audience.as_deref(), Some("\"quoted\""));
        assert_eq!(s.jwt.issuer.as_deref(), Some("007"));
        assert_eq!(s.jwt.auth_header_types, ["true"]);
        assert_eq!(s.jwt.access_token_lifetime, Duration::from_secs(600));
        assert_eq!(s.server.bind, ["[::1]:8000"]);
    }

    #[test]
    fn booleans_take_words_from_environment_and_file() {
        for (text, value) in [
            ("true", true),
            ("FALSE", false),
            ("1", true),
            ("0", false),
            ("yes", true),
            ("No", false),
        ] {
            let s = from_env(&[("HANDSTAMP_ROTATE_REFRESH_TOKENS", text)]).unwrap();
            assert_eq!(s.jwt.rotate_refresh_tokens, value, "env {text}");
            let s = from_toml(&format!("[jwt]\nrotate_refresh_tokens = \"{text}\"\n")).unwrap();
            assert_eq!(s.jwt.rotate_refresh_tokens, value, "file {text:?}");
        }
        for (toml, value) in [("true", true), ("false", false), ("1", true), ("0", false)] {
            let s = from_toml(&format!("[jwt]\nupdate_last_login = {toml}\n")).unwrap();
            assert_eq!(s.jwt.update_last_login, value, "file {toml}");
        }
        let err = from_env(&[("HANDSTAMP_BLACKLIST_AFTER_ROTATION", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`blacklist_after_rotation`"), "{err}");
        let err = from_toml("[jwt]\nupdate_last_login = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`update_last_login`"), "{err}");
    }

    #[test]
    fn unknown_variables_of_ours_are_named() {
        let err = from_env(&[("HANDSTAMP_NO_SUCH_THING", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`HANDSTAMP_NO_SUCH_THING`"), "{err}");
        // The command line's own variables, other programs' and case aside.
        let s = from_env(&[
            ("HANDSTAMP_CONFIG", "elsewhere.toml"),
            ("HANDSTAMP_DATABASE_URL", "sqlite://x.sqlite3"),
            ("HANDSTAMPX", "1"),
            ("PATH", "/bin"),
            ("handstamp_leeway", "7"),
        ])
        .unwrap();
        assert_eq!(s.jwt.leeway, Duration::from_secs(7));
        // Every key the environment maps is a setting: none is refused by the file's rules.
        for key in JWT_KEYS.iter().chain(SERVER_KEYS) {
            let name = format!("HANDSTAMP_{}", key.to_ascii_uppercase());
            if let Err(e) = from_env(&[(&name, "1")]) {
                let e = e.to_string();
                assert!(!e.contains("unknown"), "{name}: {e}");
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_values_are_refused_by_name() {
        use std::os::unix::ffi::OsStringExt;
        let vars = [(
            OsString::from("HANDSTAMP_ISSUER"),
            OsString::from_vec(b"\xffme".to_vec()),
        )];
        let err = Settings::load_with(None, vars).unwrap_err().to_string();
        assert!(err.contains("`issuer`") && err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn token_body_limit_and_password_queue_are_read_and_checked() {
        let s = from_toml("[server]\ntoken_max_body = \"4KiB\"\npassword_queue = 8\n").unwrap();
        assert_eq!(
            (s.server.token_max_body, s.server.password_queue),
            (4096, 8)
        );
        for (line, setting) in [
            ("token_max_body = \"lots\"", "`token_max_body`"),
            ("password_queue = 0", "`password_queue`"),
            ("password_queue = \"many\"", "`password_queue`"),
        ] {
            let err = from_toml(&format!("[server]\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{line}: {err}");
        }
    }

    #[test]
    fn prefixes_must_be_normalized() {
        let prefixes = |table: &str, prefix: &str| {
            let extra = if table == "upstream" {
                "backends = [\"http://127.0.0.1:1\"]\n"
            } else {
                "dir = \".\"\n"
            };
            from_toml(&format!("[[{table}]]\nprefix = {prefix:?}\n{extra}"))
        };
        for table in ["static", "upstream"] {
            let s = prefixes(table, "/a-b_c.d~1/e").unwrap();
            let prefix = match table {
                "static" => &s.statics[0].prefix,
                _ => &s.upstreams[0].prefix,
            };
            assert_eq!(prefix, "/a-b_c.d~1/e/");
            for (prefix, says) in [
                ("/app/../admin/", "write it as \"/admin/\""),
                ("//app/", "write it as \"/app/\""),
                ("/./app", "write it as \"/app/\""),
                ("/%61pp/", "write it as \"/app/\""),
                ("/a%2fb/", "encoded '/'"),
                ("/a;b/", "';'"),
                ("/a@b/", "use only letters"),
                ("/caf\u{e9}/", "use only letters"),
                ("/a%3Fb/", "use only letters"),
            ] {
                let err = prefixes(table, prefix).unwrap_err().to_string();
                assert!(err.contains(&format!("`{table}.prefix`")), "{err}");
                assert!(err.contains(says), "{prefix}: {err}");
            }
        }
    }

    #[test]
    fn connection_timeouts_default_as_nginx_and_are_checked() {
        let s = Settings::default();
        assert_eq!(s.server.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(s.server.send_timeout, Duration::from_secs(60));
        let s = from_toml("[server]\nkeepalive_timeout = \"5s\"\nsend_timeout = 7\n").unwrap();
        assert_eq!(s.server.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(s.server.send_timeout, Duration::from_secs(7));
        for setting in ["keepalive_timeout", "send_timeout"] {
            let err = from_toml(&format!("[server]\n{setting} = \"0s\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{setting}`")), "{err}");
        }
    }

    #[test]
    fn check_user_is_a_server_setting() {
        assert!(
            !from_toml("[server]\ncheck_user = false\n")
                .unwrap()
                .server
                .check_user
        );
        let err = from_toml("[jwt]\ncheck_user = false\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("check_user"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let key = "k".repeat(40);
        let s = from_toml(&format!("[jwt]\nsigning_key = \"{key}\"\n")).unwrap();
        assert_eq!(s.jwt.signing_key, Some(Secret(key.clone())));
        assert!(!format!("{s:?}").contains(&key));
    }
}

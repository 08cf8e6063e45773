//! Settings: simplejwt's names and defaults, read from the `[jwt]`, `[server]`, `[login]`,
//! `[cookies]`, `[database]` and `[cors]` tables (and the `[[static]]` and `[[upstream]]` arrays)
//! of a TOML file and from `HANDSTAMP_*` environment variables (the environment wins), and checked
//! once at start-up. Each table is one struct in its own file (`jwt.rs`, `server.rs`, `login.rs`,
//! `cookies.rs`, `database.rs`, `cors.rs`, `gateway.rs`), the very struct the program reads, that
//! declares each setting once: its key and type, its parser (which names what is wrong), its
//! default in the struct's `Default`; the environment's names are read from those structs.

mod cookies;
mod cors;
mod database;
mod gateway;
mod jwt;
mod login;
mod server;

pub use cookies::{CookieSettings, SameSite};
pub use cors::CorsSettings;
pub use database::DatabaseSettings;
pub use gateway::{AuthMode, Balance, StaticMount, UpstreamSettings};
pub use jwt::{JwtSettings, Keys};
pub use login::LoginSettings;
pub use server::{LogFormat, ServerSettings, TlsFiles};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::{self, Deserializer, Visitor};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::{fmt, time::Duration};

/// How often an instance reads the database's signing keys again: a change made anywhere is in
/// use everywhere within this.
pub const KEY_REFRESH: Duration = Duration::from_secs(5);

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

/// Names the setting a file or variable got wrong, as the user would write it: `leeway` for
/// `[jwt] leeway`, `upstream.auth` for the `auth` of any `[[upstream]]`.
fn read_error(error: figment::Error) -> ConfigError {
    let source = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(source) => format!(" (from {} {source})", m.name),
            None => format!(" (from {})", m.name),
        })
        .unwrap_or_default();
    // An array's index (`upstream.0.auth`) is no part of the name.
    let mut path = error
        .path
        .iter()
        .filter(|key| !key.bytes().all(|b| b.is_ascii_digit()))
        .map(|key| key.to_ascii_lowercase());
    let setting = match (path.next(), path.next_back()) {
        (Some(table), Some(key)) if table == "static" || table == "upstream" => {
            Some(format!("{table}.{key}"))
        }
        (Some(_), Some(key)) => Some(key),
        (Some(key), None) => Some(key),
        (None, _) => None,
    };
    match setting {
        Some(setting) => invalid(&setting, format!("{}{source}", error.kind).trim()),
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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Secret)
    }
}

/// Every table as the file has it, each with its defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub jwt: JwtSettings,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub login: LoginSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    /// Cookie mode (dj-rest-auth's `JWT_AUTH_*` names); off unless a cookie is named.
    #[serde(default)]
    pub cookies: CookieSettings,
    /// Which other origins' pages may call our own endpoints (django-cors-headers' settings).
    #[serde(default)]
    pub cors: CorsSettings,
    /// Directories served as static files, under URL prefixes.
    #[serde(default, rename = "static")]
    pub statics: Vec<StaticMount>,
    /// Prefixes proxied to pools of backends.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamSettings>,
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
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let settings: Settings = figment
            .merge(EnvSettings::read(vars)?)
            // Booleans as true/false, yes/no, on/off or 1/0 in any case, from either source.
            .extract_lossy()
            .map_err(read_error)?;
        settings.check()
    }

    /// The checks that take more than one setting, or a place in an array; prefixes and
    /// backends come back in normal form.
    fn check(self) -> Result<Self, ConfigError> {
        self.jwt.check()?;
        self.server.check()?;
        self.login.check()?;
        self.database.check()?;
        self.cookies.check()?;
        Ok(Settings {
            statics: self
                .statics
                .into_iter()
                .map(StaticMount::check)
                .collect::<Result<_, _>>()?,
            upstreams: self
                .upstreams
                .into_iter()
                .map(UpstreamSettings::check)
                .collect::<Result<_, _>>()?,
            ..self
        })
    }
}

const ENV_PREFIX: &str = "HANDSTAMP_";

/// Our variable that is no setting: the command line reads it (`cli.rs`).
const CLI_VARS: &[&str] = &["config"];

/// The `HANDSTAMP_<KEY>` settings, each value kept as the exact text given: figment's `Env`
/// would parse `1234…890.5` as a float (and print it back as another key) and strip quotes.
struct EnvSettings(Dict);

impl EnvSettings {
    /// Settings from `vars`; any other variable with our prefix is an error, as an unknown key
    /// in the file is.
    fn read(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Self, ConfigError> {
        // The keys of the `[jwt]`, `[server]`, `[login]`, `[cookies]` and `[cors]` tables (whose
        // keys all start with `cors_`), as their structs declare them, and those of `[database]`
        // after `DATABASE_` (its `max_connections` is not the server's).
        let tables = [
            ("jwt", "", names::<JwtSettings>()),
            ("server", "", names::<ServerSettings>()),
            ("login", "", names::<LoginSettings>()),
            ("cookies", "", names::<CookieSettings>()),
            ("database", "database_", names::<DatabaseSettings>()),
            ("cors", "", names::<CorsSettings>()),
        ];
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
            let table = tables.iter().find_map(|(section, prefix, keys)| {
                let key = key.strip_prefix(prefix)?;
                keys.contains(&key).then(|| (*section, key.to_owned()))
            });
            let (section, key) = match table {
                Some(found) => found,
                None if CLI_VARS.contains(&key.as_str()) => continue,
                None => return Err(ConfigError::UnknownVariable(name.into_owned())),
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

/// The keys of a table struct or the variants of an enum, as its serde derive names them: a
/// deserializer that only records the list serde hands it, then stops.
fn names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Names<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Names<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a table"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("names read"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = variants;
            Err(de::Error::custom("names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map identifier
            ignored_any
        }
    }

    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut names));
    names
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

// The field parsers: each takes the value as the file or the environment gives it; the key's
// name is added from where it failed (`read_error`).

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(String::from)
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(String::from))
}

fn opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(opt_text(d)?.map(PathBuf::from))
}

/// A list, or one text standing for a comma-separated list (as the environment gives every
/// list: `HANDSTAMP_BIND=127.0.0.1:8000,[::1]:8000`), its items trimmed and empty ones dropped.
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    items(d, true)
}

/// A list, or one text standing for a list of one (a regex may hold a comma: `\d{1,4}`).
fn unsplit_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    items(d, false)
}

/// A list, or one text, split at commas when `split`.
fn items<'de, D: Deserializer<'de>>(d: D, split: bool) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Scalar),
        Many(Vec<Scalar>),
    }
    let text = match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => return Ok(v.into_iter().map(String::from).collect()),
        OneOrMany::One(s) => String::from(s),
    };
    Ok(match split {
        true => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
        false if text.trim().is_empty() => Vec::new(),
        false => vec![text],
    })
}

/// Text read by `T`'s `FromStr`, such as an algorithm's name.
fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err: fmt::Display>,
{
    text(d)?.parse().map_err(de::Error::custom)
}

/// One of the names `T` (an enum) derives for its variants, such as `"json"`.
fn choice<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let value = text(d)?;
    let as_text = de::value::StrDeserializer::<de::value::Error>::new(&value);
    T::deserialize(as_text).map_err(|_| {
        let quoted: Vec<String> = names::<T>().iter().map(|n| format!("{n:?}")).collect();
        let expected = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        de::Error::custom(format!("{value:?}: expected {expected}"))
    })
}

/// `"300s"`, `"5m"`, `"1d"`, or a bare number of seconds.
pub fn parse_duration(setting: &str, value: &str) -> Result<Duration, ConfigError> {
    duration_text(value).map_err(|message| invalid(setting, message))
}

fn duration_text(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(value).map_err(|e| {
        format!("{value:?} is not a duration ({e}); write e.g. \"300s\", \"5m\" or \"1d\"")
    })
}

/// A duration, zero allowed.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration_text(&text(d)?).map_err(de::Error::custom)
}

/// A duration of at least one second.
fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match duration(d)? {
        d if d.as_secs() == 0 => Err(de::Error::custom("must be at least one second")),
        d => Ok(d),
    }
}

/// A size such as `"16KiB"` or `"1MiB"`, in bytes.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let value = text(d)?;
    let size: bytesize::ByteSize = value
        .parse()
        .map_err(|e| de::Error::custom(format!("{value:?} is not a size ({e})")))?;
    Ok(usize::try_from(size.as_u64()).unwrap_or(usize::MAX))
}

/// A whole number above 0, such as a limit.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match text(d)?.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(de::Error::custom("must be a whole number above 0")),
    }
}

/// A whole number, 0 or more.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    text(d)?
        .parse()
        .map_err(|_| de::Error::custom("must be a whole number, 0 or more"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Algorithm, ClaimNames};

    pub(super) fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handstamp.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path))
    }

    #[test]
    fn defaults_are_simplejwts() {
        let s = Settings::default().check().unwrap();
        assert_eq!(s.jwt.access_token_lifetime, Duration::from_secs(300));
        assert_eq!(s.jwt.refresh_token_lifetime, Duration::from_secs(86_400));
        assert!(s.jwt.rotate_refresh_tokens && s.jwt.blacklist_after_rotation);
        assert_eq!(s.jwt.refresh_reuse_interval, Duration::from_secs(10));
        assert!(!s.jwt.update_last_login);
        assert_eq!(s.jwt.algorithm, Algorithm::HS256);
        assert_eq!(s.jwt.auth_header_types, ["Bearer"]);
        assert_eq!(s.jwt.claims(), ClaimNames::default());
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

    /// Settings from the environment `vars` alone.
    pub(super) fn from_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
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
            ("HANDSTAMP_REFRESH_REUSE_INTERVAL", "0"),
            ("HANDSTAMP_BIND", "[::1]:8000"),
        ])
        .unwrap();
        let key = "1234567890123456789012345678901234567890.5";
        assert_eq!(s.jwt.signing_key, Some(Secret(key.into())));
        assert_eq!(s.jwt.audience.as_deref(), Some("\"quoted\""));
        assert_eq!(s.jwt.issuer.as_deref(), Some("007"));
        assert_eq!(s.jwt.auth_header_types, ["true"]);
        assert_eq!(s.jwt.access_token_lifetime, Duration::from_secs(600));
        assert_eq!(s.jwt.refresh_reuse_interval, Duration::ZERO);
        assert_eq!(s.server.bind, ["[::1]:8000"]);
    }

    /// One parser for every list: from the environment, items are comma-separated.
    #[test]
    fn environment_lists_are_comma_separated() {
        let s = from_env(&[
            ("HANDSTAMP_BIND", "127.0.0.1:8000, [::1]:8000"),
            ("HANDSTAMP_AUTH_HEADER_TYPES", "Bearer,JWT"),
            ("HANDSTAMP_TRUSTED_PROXIES", "10.0.0.0/8,::1"),
        ])
        .unwrap();
        assert_eq!(s.server.bind, ["127.0.0.1:8000", "[::1]:8000"]);
        assert_eq!(s.jwt.auth_header_types, ["Bearer", "JWT"]);
        assert_eq!(s.server.trusted_proxies.len(), 2);
    }

    /// `[database]` keys take `DATABASE_` after our prefix: `max_connections` is the server's.
    #[test]
    fn database_keys_are_prefixed_in_the_environment() {
        let s = from_env(&[
            ("HANDSTAMP_DATABASE_URL", "postgres://db/auth"),
            ("HANDSTAMP_DATABASE_MAX_CONNECTIONS", "3"),
            ("HANDSTAMP_DATABASE_ACQUIRE_TIMEOUT", "2s"),
            ("HANDSTAMP_MAX_CONNECTIONS", "50"),
        ])
        .unwrap();
        assert_eq!(s.database.url.as_str(), "postgres://db/auth");
        assert_eq!(s.database.max_connections, 3);
        assert_eq!(s.database.acquire_timeout, Duration::from_secs(2));
        assert_eq!(s.server.max_connections, 50);
        let err = from_env(&[("HANDSTAMP_DATABASE_CONNECT_TIMEOUT", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`connect_timeout`"), "{err}");
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
        assert_eq!(s.database.url.as_str(), "sqlite://x.sqlite3");
        // Every key the environment maps is a setting: none is refused by the file's rules.
        let database_keys = names::<DatabaseSettings>()
            .iter()
            .map(|key| format!("database_{key}"));
        for key in names::<JwtSettings>()
            .iter()
            .chain(names::<ServerSettings>())
            .chain(names::<LoginSettings>())
            .chain(names::<CookieSettings>())
            .chain(names::<CorsSettings>())
            .map(|key| key.to_string())
            .chain(database_keys)
        {
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
    fn secrets_do_not_show_in_debug_output() {
        let key = "k".repeat(40);
        let s = from_toml(&format!("[jwt]\nsigning_key = \"{key}\"\n")).unwrap();
        assert_eq!(s.jwt.signing_key, Some(Secret(key.clone())));
        assert!(!format!("{s:?}").contains(&key));
    }
}

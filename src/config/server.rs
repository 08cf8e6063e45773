//! The `[server]` table: listeners, limits and timeouts.

use super::{
    ConfigError, choice, count, duration, invalid, list, opt_path, opt_text, positive_duration,
    size,
};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The table: every key once, with its parser; the defaults in `Default`; `check` for what
/// takes more than one key.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(deserialize_with = "list")]
    pub bind: Vec<String>,
    /// Certificate chain (PEM); with `tls_key`, every listener speaks HTTPS.
    #[serde(deserialize_with = "opt_path")]
    pub tls_cert: Option<PathBuf>,
    #[serde(deserialize_with = "opt_path")]
    pub tls_key: Option<PathBuf>,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(deserialize_with = "positive_duration")]
    pub request_timeout: Duration,
    #[serde(deserialize_with = "positive_duration")]
    pub header_read_timeout: Duration,
    /// An idle connection (no request in flight) is closed after this.
    #[serde(deserialize_with = "positive_duration")]
    pub keepalive_timeout: Duration,
    /// A client whose reading makes no progress for this long is cut off.
    #[serde(deserialize_with = "positive_duration")]
    pub send_timeout: Duration,
    #[serde(deserialize_with = "size")]
    pub max_body: usize,
    #[serde(deserialize_with = "count")]
    pub max_connections: usize,
    #[serde(deserialize_with = "choice")]
    pub log_format: LogFormat,
    /// The body limit of the token endpoints (`/api/token/...`), at most `max_body`.
    #[serde(deserialize_with = "size")]
    pub token_max_body: usize,
    /// Logins (and other password checks) that may wait for a password thread; past it, 503.
    #[serde(deserialize_with = "count")]
    pub password_queue: usize,
    /// Forward-auth and upstreams also load the token's user and refuse a deleted or inactive
    /// one, as `/api/users/me/` does; false: the token alone, without the database.
    pub check_user: bool,
    /// A listener of its own for `GET /metrics` (a management port); unset, the public
    /// listeners serve it to loopback peers only.
    #[serde(deserialize_with = "opt_text")]
    pub metrics_bind: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or networks, `10.0.0.0/8`): the
    /// client's address is then the first one of that header, from the right, not in this list.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
}

/// The certificate chain and key a TLS listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: vec!["127.0.0.1:8000".into()],
            tls_cert: None,
            tls_key: None,
            shutdown_grace: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            // As nginx's keepalive_timeout and send_timeout.
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            max_body: 1024 * 1024,
            max_connections: 10_000,
            log_format: LogFormat::Text,
            token_max_body: 16 * 1024,
            // About 2.5 s of work on 2 cores (one Argon2id verify takes ~18 ms of one core).
            password_queue: 256,
            check_user: true,
            metrics_bind: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Addresses or networks: `127.0.0.1`, `::1`, `10.0.0.0/8`.
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    list(d)?
        .iter()
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let item = item.trim();
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    de::Error::custom(format!(
                        "{item:?} is not an address or a network such as \"10.0.0.0/8\""
                    ))
                })
        })
        .collect()
}

impl ServerSettings {
    /// The certificate and key when both are set (`check` refuses one without the other).
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// Sets both TLS files at once.
    pub fn set_tls(&mut self, files: TlsFiles) {
        self.tls_cert = Some(files.cert);
        self.tls_key = Some(files.key);
    }

    /// The checks across keys: the TLS pair, and addresses that must be there.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.bind.is_empty() {
            return Err(invalid("bind", "must name at least one address"));
        }
        match (&self.tls_cert, &self.tls_key) {
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
            _ => {}
        }
        if self
            .metrics_bind
            .as_ref()
            .is_some_and(|addr| addr.trim().is_empty())
        {
            return Err(invalid(
                "metrics_bind",
                "must be an address such as \"127.0.0.1:9000\"",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::from_toml;
    use super::*;
    use crate::config::Settings;

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
    fn trusted_proxies_take_addresses_and_networks() {
        let s = from_toml("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.0.2.7\"]\n")
            .unwrap();
        let shown: Vec<String> = s
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]);
        assert!(Settings::default().server.trusted_proxies.is_empty());
        let err = from_toml("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`trusted_proxies`"), "{err}");
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
}

//! The `[[static]]` and `[[upstream]]` arrays: what the gateway serves under which prefix.

use super::{ConfigError, choice, invalid, positive_duration, whole_number};
use crate::target;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMount {
    /// Starts and ends with `/`.
    pub prefix: String,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A valid access token is required; without one the request is answered 401 here.
    #[default]
    Required,
    /// A valid token adds the user's identity; no token or a bad one passes without it.
    Optional,
    /// Passed through untouched (client-sent identity headers are still stripped).
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Starts and ends with `/`; passed on to the backend unchanged.
    pub prefix: String,
    /// Base URLs, `http://host:port`.
    pub backends: Vec<String>,
    #[serde(default, deserialize_with = "choice")]
    pub auth: AuthMode,
    #[serde(default, deserialize_with = "choice")]
    pub balance: Balance,
    /// Path the active health check GETs; any answer below 500 counts as alive.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(
        default = "default_health_interval",
        deserialize_with = "positive_duration"
    )]
    pub health_interval: Duration,
    /// Idle connections kept to each backend (nginx's `keepalive`); 0 keeps none.
    #[serde(default = "default_keepalive", deserialize_with = "whole_number")]
    pub keepalive: usize,
    /// An idle backend connection is closed after this long unused (nginx's `keepalive_timeout`).
    #[serde(
        default = "default_keepalive_timeout",
        deserialize_with = "positive_duration"
    )]
    pub keepalive_timeout: Duration,
    /// A backend that has not accepted a connection by then counts as unreachable, and the
    /// request goes to the next (nginx's `proxy_connect_timeout`).
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "positive_duration"
    )]
    pub connect_timeout: Duration,
    /// A backend's answer whose body brings nothing for this long, or a WebSocket tunnel with
    /// nothing through it either way, is cut (nginx's `proxy_read_timeout`).
    #[serde(
        default = "default_read_timeout",
        deserialize_with = "positive_duration"
    )]
    pub read_timeout: Duration,
}

/// Every setting but the prefix and the backends as by default: for code that builds one.
impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            prefix: "/".into(),
            backends: Vec::new(),
            auth: AuthMode::default(),
            balance: Balance::default(),
            health_path: default_health_path(),
            health_interval: default_health_interval(),
            keepalive: default_keepalive(),
            keepalive_timeout: default_keepalive_timeout(),
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
        }
    }
}

fn default_keepalive() -> usize {
    256
}

fn default_keepalive_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_health_path() -> String {
    "/".into()
}

fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}

impl StaticMount {
    pub(super) fn check(self) -> Result<Self, ConfigError> {
        Ok(StaticMount {
            prefix: url_prefix("static.prefix", self.prefix)?,
            dir: self.dir,
        })
    }
}

impl UpstreamSettings {
    /// The prefix in normal form, backends that are `http://host:port`, a health path.
    pub(super) fn check(self) -> Result<Self, ConfigError> {
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
            ..self
        })
    }
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
    use super::super::tests::from_toml;
    use std::time::Duration;

    #[test]
    fn backend_connections_as_nginx_keeps_them() {
        let upstream = |keys: &str| {
            let text = format!(
                "[[upstream]]\nprefix = \"/app/\"\nbackends = [\"http://127.0.0.1:1\"]\n{keys}"
            );
            from_toml(&text).map(|s| s.upstreams[0].clone())
        };
        let defaults = upstream("").unwrap();
        assert_eq!(defaults.keepalive, 256);
        assert_eq!(defaults.keepalive_timeout, Duration::from_secs(60));
        assert_eq!(defaults.connect_timeout, Duration::from_secs(5));
        assert_eq!(defaults.read_timeout, Duration::from_secs(60));
        let set = upstream(
            "keepalive = 0\nkeepalive_timeout = \"2m\"\nconnect_timeout = \"1s\"\nread_timeout = \"5m\"\n",
        );
        let set = set.unwrap();
        assert_eq!(set.keepalive, 0);
        assert_eq!(set.keepalive_timeout, Duration::from_secs(120));
        assert_eq!(set.connect_timeout, Duration::from_secs(1));
        assert_eq!(set.read_timeout, Duration::from_secs(300));
        for (keys, setting) in [
            ("keepalive = -1", "`upstream.keepalive`"),
            ("keepalive_timeout = \"0s\"", "`upstream.keepalive_timeout`"),
            ("connect_timeout = \"soon\"", "`upstream.connect_timeout`"),
            ("read_timeout = \"0s\"", "`upstream.read_timeout`"),
        ] {
            let err = upstream(keys).unwrap_err().to_string();
            assert!(err.contains(setting), "{keys}: {err}");
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
}

//! The `[[static]]` and `[[upstream]]` arrays: what the gateway serves under which prefix.

use super::{ConfigError, choice, invalid, positive_duration};
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

//! The `[login]` table: how failed logins are throttled, per username and per client address.

use super::{ConfigError, duration, invalid};
use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// The table: every key once, with its parser; the defaults in `Default` (Authelia's spirit: 5
/// failures in 2 minutes lock for 5 minutes, doubling up to an hour). `0` turns a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Failed logins of one username within `login_failure_window` that lock it.
    #[serde(deserialize_with = "whole")]
    pub login_max_failures: u32,
    /// Failed logins from one client address within the window that lock it: higher, so that
    /// one office behind a NAT is not locked out by one user.
    #[serde(deserialize_with = "whole")]
    pub login_max_failures_per_ip: u32,
    #[serde(deserialize_with = "duration")]
    pub login_failure_window: Duration,
    /// The first lockout; each one after it doubles, up to `login_lockout_max`.
    #[serde(deserialize_with = "duration")]
    pub login_lockout: Duration,
    #[serde(deserialize_with = "duration")]
    pub login_lockout_max: Duration,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            login_max_failures: 5,
            login_max_failures_per_ip: 50,
            login_failure_window: Duration::from_secs(2 * 60),
            login_lockout: Duration::from_secs(5 * 60),
            login_lockout_max: Duration::from_secs(60 * 60),
        }
    }
}

/// A whole number, 0 included.
fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    super::text(d)?
        .trim()
        .parse()
        .map_err(|_| de::Error::custom("must be a whole number (0 turns the limit off)"))
}

impl LoginSettings {
    /// The checks across keys: a limit needs a window and a lockout to mean anything.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let limited = self.login_max_failures > 0 || self.login_max_failures_per_ip > 0;
        if limited {
            for (setting, value) in [
                ("login_failure_window", self.login_failure_window),
                ("login_lockout", self.login_lockout),
            ] {
                if value.as_secs() == 0 {
                    return Err(invalid(
                        setting,
                        "must be at least one second while a login limit is on",
                    ));
                }
            }
        }
        if self.login_lockout_max < self.login_lockout {
            return Err(invalid(
                "login_lockout_max",
                "must be at least login_lockout",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::from_toml;

    #[test]
    fn login_limits_are_read_and_checked() {
        let s = from_toml(
            "[login]\nlogin_max_failures = 3\nlogin_lockout = \"1m\"\nlogin_max_failures_per_ip = 0\n",
        )
        .unwrap();
        assert_eq!(s.login.login_max_failures, 3);
        assert_eq!(s.login.login_max_failures_per_ip, 0);
        assert_eq!(s.login.login_lockout.as_secs(), 60);
        assert_eq!(s.login.login_lockout_max.as_secs(), 3600);
        for (line, setting) in [
            ("login_max_failures = -1", "`login_max_failures`"),
            ("login_lockout = \"0s\"", "`login_lockout`"),
            ("login_lockout_max = \"1s\"", "`login_lockout_max`"),
            ("login_failure_window = \"soon\"", "`login_failure_window`"),
        ] {
            let err = from_toml(&format!("[login]\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{line}: {err}");
        }
        // Every limit off: no window needed.
        from_toml("[login]\nlogin_max_failures = 0\nlogin_max_failures_per_ip = 0\nlogin_failure_window = 0\n")
            .unwrap();
    }
}

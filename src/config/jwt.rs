//! The `[jwt]` table: simplejwt's settings, names and defaults.

use super::{ConfigError, Secret, invalid, list, opt_text, parsed, positive_duration, text};
use crate::token::{Algorithm, ClaimNames};
use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// The table: every key once, with its parser; the defaults in `Default`; `check` for what
/// takes more than one key.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    #[serde(deserialize_with = "positive_duration")]
    pub access_token_lifetime: Duration,
    #[serde(deserialize_with = "positive_duration")]
    pub refresh_token_lifetime: Duration,
    pub rotate_refresh_tokens: bool,
    pub blacklist_after_rotation: bool,
    /// A rotated refresh token presented again this long or longer after its rotation revokes
    /// its session; sooner (two tabs refreshing at once), it is refused alone. Zero: any reuse.
    #[serde(deserialize_with = "super::duration")]
    pub refresh_reuse_interval: Duration,
    pub update_last_login: bool,
    #[serde(deserialize_with = "parsed")]
    pub algorithm: Algorithm,
    /// None: a secret generated once and kept in the database.
    pub signing_key: Option<Secret>,
    /// simplejwt's key for asymmetric algorithms: refused, HMAC signs and verifies with one key.
    #[serde(deserialize_with = "opt_text")]
    pub verifying_key: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub audience: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub issuer: Option<String>,
    #[serde(deserialize_with = "super::duration")]
    pub leeway: Duration,
    #[serde(deserialize_with = "list")]
    pub auth_header_types: Vec<String>,
    #[serde(deserialize_with = "claim_name")]
    pub user_id_claim: String,
    #[serde(deserialize_with = "claim_name")]
    pub token_type_claim: String,
    #[serde(deserialize_with = "claim_name")]
    pub jti_claim: String,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            access_token_lifetime: Duration::from_secs(5 * 60),
            refresh_token_lifetime: Duration::from_secs(24 * 60 * 60),
            rotate_refresh_tokens: true,
            blacklist_after_rotation: true,
            refresh_reuse_interval: Duration::from_secs(10),
            update_last_login: false,
            algorithm: Algorithm::HS256,
            signing_key: None,
            verifying_key: None,
            audience: None,
            issuer: None,
            leeway: Duration::ZERO,
            auth_header_types: vec!["Bearer".into()],
            user_id_claim: "user_id".into(),
            token_type_claim: "token_type".into(),
            jti_claim: "jti".into(),
        }
    }
}

fn claim_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = text(d)?;
    if name.trim().is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(name)
}

impl JwtSettings {
    /// The names of the three claims the tokens carry.
    pub fn claims(&self) -> ClaimNames {
        ClaimNames {
            token_type: self.token_type_claim.clone(),
            user_id: self.user_id_claim.clone(),
            jti: self.jti_claim.clone(),
        }
    }

    /// The checks across keys: the key's length for the algorithm, the header words.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let algorithm = self.algorithm;
        if let Some(Secret(key)) = &self.signing_key
            && key.len() < algorithm.min_key_len()
        {
            return Err(invalid(
                "signing_key",
                format!(
                    "{algorithm} needs a key of at least {} bytes; this one has {}",
                    algorithm.min_key_len(),
                    key.len()
                ),
            ));
        }
        if self.verifying_key.is_some() {
            return Err(invalid(
                "verifying_key",
                format!(
                    "{algorithm} signs and verifies with signing_key; leave verifying_key unset"
                ),
            ));
        }
        if self.auth_header_types.is_empty()
            || self
                .auth_header_types
                .iter()
                .any(|t| t.is_empty() || t.contains(char::is_whitespace))
        {
            return Err(invalid(
                "auth_header_types",
                "must list one or more words, such as [\"Bearer\"]",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::from_toml;
    use super::*;

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
        let s = from_toml("[jwt]\nrefresh_reuse_interval = \"0s\"\n").unwrap();
        assert_eq!(s.jwt.refresh_reuse_interval, Duration::ZERO);
        let err = from_toml("[jwt]\nrefresh_reuse_interval = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`refresh_reuse_interval`"), "{err}");
        let err = from_toml("[jwt]\nacess_token_lifetime = \"5m\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("acess_token_lifetime"), "{err}");
    }
}

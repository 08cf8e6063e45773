//! The `[jwt]` table: simplejwt's settings, names and defaults.

use super::{
    ConfigError, Secret, invalid, list, opt_path, opt_text, parsed, positive_duration, text,
};
use crate::token::{Algorithm, ClaimNames, KeySet, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, de};
use std::path::{Path, PathBuf};
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
    /// The HMAC secret, or for a public-key algorithm the private key's PEM text (simplejwt's
    /// `SIGNING_KEY`). None (and no `signing_key_file`): a key generated once and kept in the
    /// database.
    pub signing_key: Option<Secret>,
    /// A PEM file holding the private key, instead of `signing_key`.
    #[serde(deserialize_with = "opt_path")]
    pub signing_key_file: Option<PathBuf>,
    /// For a public-key algorithm, the public key's PEM text (simplejwt's `VERIFYING_KEY`): it
    /// must be the signing key's own.
    #[serde(deserialize_with = "opt_text")]
    pub verifying_key: Option<String>,
    /// A PEM file holding the public key, instead of `verifying_key`.
    #[serde(deserialize_with = "opt_path")]
    pub verifying_key_file: Option<PathBuf>,
    /// How long verifiers may cache `/.well-known/jwks.json`; a generated key is published at
    /// least this long (plus one key refresh) before it signs.
    #[serde(deserialize_with = "positive_duration")]
    pub jwks_max_age: Duration,
    /// Rotate the database's keys on this schedule (generate, publish, activate, retire); zero:
    /// only by hand, with `handstamp keys`.
    #[serde(deserialize_with = "super::duration")]
    pub key_rotation: Duration,
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
            signing_key_file: None,
            verifying_key: None,
            verifying_key_file: None,
            jwks_max_age: Duration::from_secs(5 * 60),
            key_rotation: Duration::ZERO,
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

fn read_file(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(setting, format!("{}: {e}", path.display())))
}

fn claim_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = text(d)?;
    if name.trim().is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(name)
}

/// Where the signing key comes from.
#[derive(Debug)]
pub enum Keys {
    /// Given in the settings: the set to sign and verify with.
    Given(Box<KeySet>),
    /// None given: one generated once and kept in the database.
    Generated,
}

impl JwtSettings {
    /// The signing key and its verifying key as the settings give them, read and checked: an
    /// HMAC secret long enough for its algorithm, or a PEM private key (text or file) whose
    /// public key is the verifying key, when one is given too.
    pub fn keys(&self) -> Result<Keys, ConfigError> {
        let algorithm = self.algorithm;
        let private = match (&self.signing_key, &self.signing_key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "signing_key_file",
                    "signing_key is set too; give the key one way",
                ));
            }
            (Some(Secret(text)), None) => Some(("signing_key", text.as_bytes().to_vec())),
            (None, Some(path)) => Some(("signing_key_file", read_file("signing_key_file", path)?)),
            (None, None) => None,
        };
        let public = match (&self.verifying_key, &self.verifying_key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "verifying_key_file",
                    "verifying_key is set too; give the key one way",
                ));
            }
            (Some(text), None) => Some(("verifying_key", text.as_bytes().to_vec())),
            (None, Some(path)) => {
                Some(("verifying_key_file", read_file("verifying_key_file", path)?))
            }
            (None, None) => None,
        };
        if algorithm.is_hmac() {
            if let Some((setting, _)) = public {
                return Err(invalid(
                    setting,
                    format!(
                        "{algorithm} signs and verifies with signing_key; leave {setting} unset"
                    ),
                ));
            }
            return match private {
                Some(("signing_key_file", _)) => Err(invalid(
                    "signing_key_file",
                    format!("{algorithm} takes its secret in signing_key"),
                )),
                Some((_, key)) if key.len() < algorithm.min_key_len() => Err(invalid(
                    "signing_key",
                    format!(
                        "{algorithm} needs a key of at least {} bytes; this one has {}",
                        algorithm.min_key_len(),
                        key.len()
                    ),
                )),
                Some((_, key)) => Ok(Keys::Given(Box::new(KeySet::new(
                    SigningKey::hmac(algorithm, &key),
                    None,
                )))),
                None => Ok(Keys::Generated),
            };
        }
        let Some((setting, pem)) = private else {
            return match public {
                Some((setting, _)) => Err(invalid(
                    setting,
                    "a verifying key needs its signing key (signing_key or signing_key_file)",
                )),
                None => Ok(Keys::Generated),
            };
        };
        let signer =
            SigningKey::from_pem(algorithm, &pem).map_err(|e| invalid(setting, e.to_string()))?;
        if let Some((setting, pem)) = public {
            let given = VerifyingKey::from_pem(algorithm, &pem)
                .map_err(|e| invalid(setting, e.to_string()))?;
            if given.jwk(None) != signer.verifying_key().jwk(None) {
                return Err(invalid(setting, "is not the public key of the signing key"));
            }
        }
        Ok(Keys::Given(Box::new(KeySet::with_thumbprint(signer))))
    }

    /// The names of the three claims the tokens carry.
    pub fn claims(&self) -> ClaimNames {
        ClaimNames {
            token_type: self.token_type_claim.clone(),
            user_id: self.user_id_claim.clone(),
            jti: self.jti_claim.clone(),
        }
    }

    /// The checks across keys: the keys for the algorithm, the header words.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Keys::Given(_) = self.keys()?
            && !self.key_rotation.is_zero()
        {
            return Err(invalid(
                "key_rotation",
                "rotates the keys kept in the database; unset signing_key and signing_key_file",
            ));
        }
        // Room for a key to be published, then sign, within one period.
        let lead = self.jwks_max_age + crate::config::KEY_REFRESH;
        if !self.key_rotation.is_zero() && self.key_rotation < lead * 2 {
            return Err(invalid(
                "key_rotation",
                format!(
                    "must be at least twice jwks_max_age plus {} s ({} s)",
                    crate::config::KEY_REFRESH.as_secs(),
                    (lead * 2).as_secs()
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

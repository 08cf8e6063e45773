//! The `[cookies]` table: cookie mode, with dj-rest-auth's names (its `REST_AUTH` keys that
//! begin `JWT_AUTH_`), beside `[jwt]`, which keeps simplejwt's. Unset names: no cookie at all.

use super::{ConfigError, invalid, opt_text, text};
use serde::{Deserialize, Deserializer, de};

/// The table: every key once, with its parser; the defaults in `Default` (dj-rest-auth's).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieSettings {
    /// The access token's cookie (`JWT_AUTH_COOKIE`); unset: none is set or read.
    #[serde(deserialize_with = "opt_text")]
    pub jwt_auth_cookie: Option<String>,
    /// The refresh token's cookie (`JWT_AUTH_REFRESH_COOKIE`); unset: none is set or read.
    #[serde(deserialize_with = "opt_text")]
    pub jwt_auth_refresh_cookie: Option<String>,
    /// The refresh cookie's `Path` (the access cookie's is `/`).
    #[serde(deserialize_with = "text")]
    pub jwt_auth_refresh_cookie_path: String,
    /// `Secure` on both cookies.
    pub jwt_auth_secure: bool,
    /// `HttpOnly` on both cookies; also leaves the refresh token out of the JSON answers.
    pub jwt_auth_httponly: bool,
    #[serde(deserialize_with = "same_site")]
    pub jwt_auth_samesite: SameSite,
    /// The cookies' `Domain`; unset: the host that answered, alone.
    #[serde(deserialize_with = "opt_text")]
    pub jwt_auth_cookie_domain: Option<String>,
}

/// The `SameSite` attribute, as browsers take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

impl Default for CookieSettings {
    fn default() -> Self {
        CookieSettings {
            jwt_auth_cookie: None,
            jwt_auth_refresh_cookie: None,
            jwt_auth_refresh_cookie_path: "/".into(),
            jwt_auth_secure: false,
            jwt_auth_httponly: true,
            jwt_auth_samesite: SameSite::Lax,
            jwt_auth_cookie_domain: None,
        }
    }
}

/// RFC 6265's cookie-name: an RFC 2616 token, no separators, no controls, no spaces.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// `"Lax"`, `"Strict"` or `"None"`, in any case, as Django takes it (`samesite.lower()`).
fn same_site<'de, D: Deserializer<'de>>(d: D) -> Result<SameSite, D::Error> {
    let value = text(d)?;
    match value.to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSite::Lax),
        "strict" => Ok(SameSite::Strict),
        "none" => Ok(SameSite::None),
        _ => Err(de::Error::custom(format!(
            "{value:?}: expected \"Lax\", \"Strict\" or \"None\""
        ))),
    }
}

impl CookieSettings {
    /// Whether any cookie is on: everything cookie mode does hangs on this one flag.
    pub fn enabled(&self) -> bool {
        self.jwt_auth_cookie.is_some() || self.jwt_auth_refresh_cookie.is_some()
    }

    /// Names as RFC 6265 tokens, the two names apart, a path and a domain that fit in a
    /// `Set-Cookie` line, and `SameSite=None` only with `Secure`: browsers drop such a cookie,
    /// so it is refused here rather than failing in every browser later.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (setting, name) in [
            ("jwt_auth_cookie", &self.jwt_auth_cookie),
            ("jwt_auth_refresh_cookie", &self.jwt_auth_refresh_cookie),
        ] {
            if let Some(name) = name
                && !is_token(name)
            {
                return Err(invalid(
                    setting,
                    format!(
                        "{name:?} is not a cookie name (RFC 6265: letters, digits and !#$%&'*+-.^_`|~)"
                    ),
                ));
            }
        }
        if self.jwt_auth_cookie.is_some() && self.jwt_auth_cookie == self.jwt_auth_refresh_cookie {
            return Err(invalid(
                "jwt_auth_refresh_cookie",
                "must differ from jwt_auth_cookie",
            ));
        }
        let path = &self.jwt_auth_refresh_cookie_path;
        if !path.starts_with('/') || path.bytes().any(|b| b == b';' || !b.is_ascii_graphic()) {
            return Err(invalid(
                "jwt_auth_refresh_cookie_path",
                format!("{path:?} is not a cookie path (starts with /, no spaces or ;)"),
            ));
        }
        if let Some(domain) = &self.jwt_auth_cookie_domain {
            let bare = domain.strip_prefix('.').unwrap_or(domain);
            let ok = !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                return Err(invalid(
                    "jwt_auth_cookie_domain",
                    format!("{domain:?} is not a domain name"),
                ));
            }
        }
        if self.enabled() && self.jwt_auth_samesite == SameSite::None && !self.jwt_auth_secure {
            return Err(invalid(
                "jwt_auth_samesite",
                "\"None\" needs jwt_auth_secure = true: browsers refuse SameSite=None cookies without Secure",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{from_env, from_toml};
    use super::SameSite;

    #[test]
    fn the_environment_names_them_without_a_table() {
        let s = from_env(&[
            ("HANDSTAMP_JWT_AUTH_COOKIE", "app-auth"),
            ("HANDSTAMP_JWT_AUTH_REFRESH_COOKIE", "app-refresh"),
            ("HANDSTAMP_JWT_AUTH_SECURE", "yes"),
            ("HANDSTAMP_JWT_AUTH_SAMESITE", "Strict"),
            ("HANDSTAMP_JWT_AUTH_COOKIE_DOMAIN", "example.com"),
        ])
        .unwrap();
        assert_eq!(s.cookies.jwt_auth_cookie.as_deref(), Some("app-auth"));
        assert_eq!(
            s.cookies.jwt_auth_refresh_cookie.as_deref(),
            Some("app-refresh")
        );
        assert!(s.cookies.jwt_auth_secure);
        assert_eq!(s.cookies.jwt_auth_samesite, SameSite::Strict);
    }

    #[test]
    fn cookie_mode_is_off_by_default_and_read_with_dj_rest_auths_names() {
        let s = from_toml("").unwrap();
        assert!(!s.cookies.enabled());
        assert_eq!(s.cookies.jwt_auth_refresh_cookie_path, "/");
        assert!(s.cookies.jwt_auth_httponly && !s.cookies.jwt_auth_secure);
        assert_eq!(s.cookies.jwt_auth_samesite, SameSite::Lax);
        let s = from_toml(
            "[cookies]\njwt_auth_cookie = \"app-auth\"\njwt_auth_refresh_cookie = \"app-refresh\"\n\
             jwt_auth_refresh_cookie_path = \"/api/token/\"\njwt_auth_secure = true\n\
             jwt_auth_samesite = \"none\"\njwt_auth_cookie_domain = \".example.com\"\n",
        )
        .unwrap();
        assert!(s.cookies.enabled());
        assert_eq!(s.cookies.jwt_auth_cookie.as_deref(), Some("app-auth"));
        assert_eq!(s.cookies.jwt_auth_samesite, SameSite::None);
        assert_eq!(
            s.cookies.jwt_auth_cookie_domain.as_deref(),
            Some(".example.com")
        );
    }

    #[test]
    fn bad_cookie_settings_stop_start_up_by_name() {
        for (lines, setting) in [
            ("jwt_auth_cookie = \"a b\"", "`jwt_auth_cookie`"),
            (
                "jwt_auth_refresh_cookie = \"x;y\"",
                "`jwt_auth_refresh_cookie`",
            ),
            ("jwt_auth_cookie = \"\"", "`jwt_auth_cookie`"),
            (
                "jwt_auth_cookie = \"same\"\njwt_auth_refresh_cookie = \"same\"",
                "`jwt_auth_refresh_cookie`",
            ),
            (
                "jwt_auth_refresh_cookie_path = \"api\"",
                "`jwt_auth_refresh_cookie_path`",
            ),
            (
                "jwt_auth_cookie_domain = \"a;b\"",
                "`jwt_auth_cookie_domain`",
            ),
            ("jwt_auth_samesite = \"sometimes\"", "`jwt_auth_samesite`"),
            (
                "jwt_auth_cookie = \"a\"\njwt_auth_samesite = \"None\"",
                "`jwt_auth_samesite`",
            ),
        ] {
            let err = from_toml(&format!("[cookies]\n{lines}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{lines}: {err}");
        }
    }
}

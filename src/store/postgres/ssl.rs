//! libpq's TLS parameters in a `postgres://` URL, as operators already write them: `sslmode`
//! (disable, prefer, require, verify-ca, verify-full), `sslrootcert` (a PEM file, or `system`)
//! and `sslcert`/`sslkey` (a client certificate).
//!
//! tokio-postgres knows only `sslmode` disable, prefer and require, and refuses the other
//! values and the other parameters as unknown options: they are taken out of the URL here, and
//! the rest goes to tokio-postgres as it was.

use percent_encoding::percent_decode_str;
use std::fmt;
use std::path::PathBuf;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, else plain: libpq's default.
    #[default]
    Prefer,
    /// TLS, its certificate unchecked (unless a root certificate is there: then as verify-ca).
    Require,
    /// TLS with a certificate that chains to the root, whatever host it names.
    VerifyCa,
    /// TLS with a certificate that chains to the root and names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, SslSettingError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries plain first: not offered, so as not to seem to encrypt.
            other => return Err(SslSettingError::UnknownMode(other.to_owned())),
        })
    }

    /// Whether the certificate must chain to a root certificate, which must then be given.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// The mode tokio-postgres runs the negotiation in (it checks no certificate itself).
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            SslMode::Disable => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// Where the root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert` unset: libpq's `~/.postgresql/root.crt`, used when it exists.
    Default,
    /// `sslrootcert=PATH`: a PEM file of one or more certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trusted roots.
    System,
}

/// The TLS parameters of one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    pub mode: SslMode,
    pub root: RootCert,
    /// `sslcert` and `sslkey`: a client certificate and its private key, PEM files.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A TLS parameter that cannot be used, named as the URL names it.
#[derive(Debug, thiserror::Error)]
pub enum SslSettingError {
    #[error("sslmode={0:?}: expected disable, prefer, require, verify-ca or verify-full")]
    UnknownMode(String),
    #[error("{0}: the value is not valid UTF-8 once percent-decoded")]
    Encoding(&'static str),
    #[error("sslrootcert=system needs sslmode=verify-full (as libpq), not sslmode={0}")]
    SystemNeedsVerifyFull(SslMode),
    #[error("sslcert and sslkey go together: {0} is missing")]
    HalfClientCert(&'static str),
    #[error(
        "sslmode={mode} needs a root certificate: set sslrootcert=PATH (or sslrootcert=system); {default} does not exist"
    )]
    NoRootCert { mode: SslMode, default: String },
    #[error("{setting}={path}: {reason}")]
    File {
        setting: &'static str,
        path: String,
        reason: String,
    },
}

/// Takes libpq's TLS parameters out of `url`: the URL left for tokio-postgres, and them (the
/// caller sets tokio-postgres's own `sslmode` from [`SslMode::negotiation`]).
pub fn split(url: &str) -> Result<(String, SslSettings), SslSettingError> {
    let mut settings = SslSettings {
        mode: SslMode::default(),
        root: RootCert::Default,
        client: None,
    };
    // Where tokio-postgres finds the query: after the credentials (up to the first `@`).
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let credentials_end = url[scheme_end..]
        .find('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    let Some(query_start) = url[credentials_end..]
        .find('?')
        .map(|i| credentials_end + i)
    else {
        return Ok((url.to_owned(), settings));
    };
    let (mut mode, mut cert, mut key) = (None, None, None);
    let mut kept = Vec::new();
    for pair in url[query_start + 1..].split('&') {
        let (key_text, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = |name: &'static str| {
            percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| SslSettingError::Encoding(name))
        };
        match key_text {
            "sslmode" => mode = Some(SslMode::parse(&decoded("sslmode")?)?),
            "sslrootcert" => {
                let value = decoded("sslrootcert")?;
                settings.root = match value.as_str() {
                    "system" => RootCert::System,
                    _ => RootCert::File(value.into()),
                };
            }
            "sslcert" => cert = Some(PathBuf::from(decoded("sslcert")?)),
            "sslkey" => key = Some(PathBuf::from(decoded("sslkey")?)),
            _ => kept.push(pair),
        }
    }
    settings.mode = match (mode, &settings.root) {
        (Some(mode), RootCert::System) if mode != SslMode::VerifyFull => {
            return Err(SslSettingError::SystemNeedsVerifyFull(mode));
        }
        // libpq 16: the platform's roots make verify-full the default.
        (None, RootCert::System) => SslMode::VerifyFull,
        (mode, _) => mode.unwrap_or_default(),
    };
    settings.client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(_), None) => return Err(SslSettingError::HalfClientCert("sslkey")),
        (None, Some(_)) => return Err(SslSettingError::HalfClientCert("sslcert")),
        (None, None) => None,
    };
    let mut rest = url[..query_start].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> (String, SslSettings) {
        split(url).unwrap()
    }

    #[test]
    fn libpq_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, s) = settings(
            "postgres://a:p%3Fw@db:5432/x?application_name=hs&sslmode=verify-full&sslrootcert=/etc/ca%20file.pem&connect_timeout=3",
        );
        assert_eq!(
            rest,
            "postgres://a:p%3Fw@db:5432/x?application_name=hs&connect_timeout=3"
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root, RootCert::File("/etc/ca file.pem".into()));
        assert_eq!(s.client, None);

        let (rest, s) = settings("postgresql://db/x");
        assert_eq!(rest, "postgresql://db/x");
        assert_eq!((s.mode, s.root), (SslMode::Prefer, RootCert::Default));

        let (rest, s) = settings("postgres://u@db/x?sslcert=c.pem&sslkey=k.pem&sslmode=require");
        assert_eq!(rest, "postgres://u@db/x");
        assert_eq!(s.mode, SslMode::Require);
        assert_eq!(s.client, Some(("c.pem".into(), "k.pem".into())));
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let (rest, s) = settings("postgres://a:p?w@db/x?sslmode=disable");
        assert_eq!(rest, "postgres://a:p?w@db/x");
        assert_eq!(s.mode, SslMode::Disable);
    }

    #[test]
    fn system_roots_mean_verify_full_as_in_libpq() {
        let (_, s) = settings("postgres://db/x?sslrootcert=system");
        assert_eq!((s.mode, s.root), (SslMode::VerifyFull, RootCert::System));
        let err = split("postgres://db/x?sslrootcert=system&sslmode=require").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sslrootcert=system needs sslmode=verify-full (as libpq), not sslmode=require"
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (url, message) in [
            (
                "postgres://db/x?sslmode=verify_full",
                "sslmode=\"verify_full\": expected disable, prefer, require, verify-ca or verify-full",
            ),
            (
                "postgres://db/x?sslmode=allow",
                "sslmode=\"allow\": expected disable, prefer, require, verify-ca or verify-full",
            ),
            (
                "postgres://db/x?sslcert=c.pem",
                "sslcert and sslkey go together: sslkey is missing",
            ),
            (
                "postgres://db/x?sslrootcert=%FF",
                "sslrootcert: the value is not valid UTF-8 once percent-decoded",
            ),
        ] {
            assert_eq!(split(url).unwrap_err().to_string(), message, "{url}");
        }
    }
}

//! TLS to PostgreSQL with rustls on aws-lc-rs (the provider of handstamp's own TLS): the
//! connector tokio-postgres takes, built from libpq's parameters ([`super::ssl`]) with libpq's
//! meaning.
//!
//! - A root certificate (`sslrootcert`, or `~/.postgresql/root.crt` when it exists) makes every
//!   mode check that the server's certificate chains to it; verify-full also checks that it
//!   names the host connected to. verify-ca and verify-full refuse to start without one.
//! - Without one, prefer and require encrypt and check nothing about the certificate but the
//!   handshake's signature by its key.
//!
//! A small adaptor over tokio-rustls rather than the `tokio-postgres-rustls` crate, which
//! brings ring and an X.509 parser for channel binding (here `none`: SCRAM without binding,
//! as libpq's `channel_binding=prefer` falls back to).

use super::ssl::{RootCert, SslMode, SslSettingError, SslSettings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// What tokio-postgres connects with: the rustls configuration the URL asks for (none under
/// `sslmode=disable`, where nothing is negotiated).
#[derive(Clone)]
pub struct MakeRustls {
    config: Option<Arc<ClientConfig>>,
    /// The checks asked for, as a refusal names them: "sslmode=verify-ca, sslrootcert=PATH".
    checks: Arc<str>,
}

impl MakeRustls {
    /// Reads the files `settings` name: a file missing or not PEM, or verify-ca/verify-full
    /// with no root certificate, is an error naming the parameter.
    pub fn new(settings: &SslSettings) -> Result<Self, SslSettingError> {
        let mode = settings.mode;
        let mut checks = format!("sslmode={mode}");
        if mode == SslMode::Disable {
            let checks = checks.into();
            return Ok(MakeRustls {
                config: None,
                checks,
            });
        }
        let provider = Arc::new(aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match roots(settings)? {
            Some(roots) => {
                checks = format!("{checks}, sslrootcert={}", root_name(settings));
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| file_error("sslrootcert", &root_name(settings), e))?;
                if mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
            None => Arc::new(AnyCertificate(provider.clone())),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &settings.client {
            Some((cert, key)) => {
                let chain = certificates("sslcert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| file_error("sslkey", &key.display().to_string(), e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| file_error("sslkey", &"(with sslcert)", e))?
            }
            None => builder.with_no_client_auth(),
        };
        // As libpq 17 offers it; PostgreSQL 17 requires it for sslnegotiation=direct.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustls {
            config: Some(Arc::new(config)),
            checks: checks.into(),
        })
    }
}

/// The root certificates the settings name, if any: `None` when there are none to check
/// against (and the mode does not need them).
fn roots(settings: &SslSettings) -> Result<Option<Arc<RootCertStore>>, SslSettingError> {
    let path = match &settings.root {
        RootCert::System => return system_roots().map(Some),
        RootCert::File(path) => path.clone(),
        RootCert::Default => match default_root() {
            Some(path) if path.exists() => path,
            other if settings.mode.verifies() => {
                let default = other
                    .map_or("~/.postgresql/root.crt (no home directory)".into(), |p| {
                        p.display().to_string()
                    });
                let mode = settings.mode;
                return Err(SslSettingError::NoRootCert { mode, default });
            }
            _ => return Ok(None),
        },
    };
    let mut store = RootCertStore::empty();
    for cert in certificates("sslrootcert", &path)? {
        store
            .add(cert)
            .map_err(|e| file_error("sslrootcert", &path.display().to_string(), e))?;
    }
    Ok(Some(Arc::new(store)))
}

/// libpq's default root certificate file.
fn default_root() -> Option<PathBuf> {
    Some(std::env::home_dir()?.join(".postgresql/root.crt"))
}

/// The platform's trusted roots, as libpq 16's `sslrootcert=system` reads OpenSSL's: the
/// system store (`/etc/ssl/certs` here; `SSL_CERT_FILE`/`SSL_CERT_DIR` override it), so a
/// private CA added with `update-ca-certificates` is trusted as libpq would.
fn system_roots() -> Result<Arc<RootCertStore>, SslSettingError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let reason = match found.errors.first() {
            Some(e) => format!("no usable certificate in the system's store: {e}"),
            None => "no certificate in the system's store".to_owned(),
        };
        return Err(SslSettingError::File {
            setting: "sslrootcert",
            path: "system".into(),
            reason,
        });
    }
    Ok(Arc::new(store))
}

/// The certificates of the PEM file at `path`, at least one.
fn certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SslSettingError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(setting, &shown, e))?;
    if certs.is_empty() {
        return Err(file_error(setting, &shown, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_error(
    setting: &'static str,
    path: &dyn std::fmt::Display,
    reason: impl std::fmt::Display,
) -> SslSettingError {
    SslSettingError::File {
        setting,
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn root_name(settings: &SslSettings) -> String {
    match &settings.root {
        RootCert::File(path) => path.display().to_string(),
        RootCert::System => "system".into(),
        RootCert::Default => default_root().map_or_else(String::new, |p| p.display().to_string()),
    }
}

/// verify-ca (and prefer or require with a root certificate): the chain is checked, the name
/// in the certificate is not. webpki checks the name last, so a name error means the chain
/// was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// prefer and require without a root certificate (libpq's meaning): any certificate is
/// taken, but the handshake must still be signed by its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    /// `domain` is the URL's host, empty for a Unix socket (where the server declines TLS).
    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            checks: self.checks.clone(),
            name: ServerName::try_from(domain).ok().map(|n| n.to_owned()),
        })
    }
}

pub struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    checks: Arc<str>,
    name: Option<ServerName<'static>>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let (Some(config), Some(name)) = (self.config, self.name) else {
                let why = "no host name to check the server's certificate against";
                return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
            };
            let connector = tokio_rustls::TlsConnector::from(config);
            match connector.connect(name, stream).await {
                Ok(stream) => Ok(RustlsStream(stream)),
                // Which checks the certificate failed, against which roots.
                Err(e) => Err(io::Error::new(e.kind(), format!("{e} ({})", self.checks))),
            }
        })
    }
}

/// A TLS connection to PostgreSQL.
pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ssl::split;
    use super::*;

    fn error(url: &str) -> String {
        let (_, settings) = split(url).unwrap();
        match MakeRustls::new(&settings) {
            Ok(_) => panic!("{url} was taken"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn root_certificate_files_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let url = format!(
            "postgres://db/x?sslmode=verify-full&sslrootcert={}",
            missing.display()
        );
        let message = error(&url);
        assert!(
            message.starts_with(&format!("sslrootcert={}: ", missing.display())),
            "{message}"
        );

        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let url = format!(
            "postgres://db/x?sslmode=require&sslrootcert={}",
            not_pem.display()
        );
        assert_eq!(
            error(&url),
            format!(
                "sslrootcert={}: no PEM certificate in it",
                not_pem.display()
            )
        );
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        if default_root().is_some_and(|root| root.exists()) {
            return; // this machine's user has libpq's default root certificate
        }
        let message = error("postgres://db/x?sslmode=verify-ca");
        assert!(
            message.starts_with("sslmode=verify-ca needs a root certificate: set sslrootcert="),
            "{message}"
        );
        // Without verification none is needed.
        for url in ["postgres://db/x?sslmode=require", "postgres://db/x"] {
            let (_, settings) = split(url).unwrap();
            assert!(MakeRustls::new(&settings).is_ok(), "{url}");
        }
    }
}

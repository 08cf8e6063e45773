//! TLS to PostgreSQL, against private clusters of the tests' own: one with `ssl = on` serving a
//! certificate for `localhost` signed by a test CA, one without TLS. libpq's `sslmode`,
//! `sslrootcert` and `sslcert`/`sslkey` mean what they mean to libpq.

use crate::common::postgres::{PrivateCluster, rows};
use crate::common::process::text;
use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A certificate authority of the test's own.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }

    /// A server certificate for `names` that this authority signed, and its key, as PEM.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.sign(CertificateParams::new(names).unwrap())
    }

    /// A client certificate for the database user `user` (its common name).
    fn issue_to_user(&self, user: &str) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, user);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Its certificate written to `dir/NAME.pem`.
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }
}

/// A cluster with `ssl = on`, its certificate for localhost only, signed by the CA in `ca`,
/// which also vouches for client certificates: the role `clerk` logs in over TLS with one
/// only.
struct TlsCluster {
    cluster: PrivateCluster,
    authority: Authority,
    dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    port: u16,
}

impl TlsCluster {
    fn start() -> Option<Self> {
        let authority = Authority::new("handstamp test CA");
        let (cert, key) = authority.issue(&["localhost"]);
        let ca_pem = authority.cert.pem();
        let cluster = PrivateCluster::start_with(|data| {
            std::fs::write(data.join("server.crt"), &cert).unwrap();
            std::fs::write(data.join("root.crt"), &ca_pem).unwrap();
            let key_file = data.join("server.key");
            std::fs::write(&key_file, &key).unwrap();
            // PostgreSQL refuses a key that others may read.
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(&key_file, private).unwrap();
            append(
                &data.join("postgresql.conf"),
                "ssl = on\nssl_ca_file = 'root.crt'\n",
            );
            let hba = data.join("pg_hba.conf");
            let rules = std::fs::read_to_string(&hba).unwrap();
            let cert_only = "hostssl all clerk 127.0.0.1/32 cert\n";
            std::fs::write(&hba, format!("{cert_only}{rules}")).unwrap();
        })?;
        let dir = tempfile::tempdir().unwrap();
        let ca = authority.write(dir.path(), "ca");
        let other_ca = Authority::new("another CA").write(dir.path(), "other-ca");
        let port = port_of(&cluster.url());
        Some(TlsCluster {
            cluster,
            authority,
            dir,
            ca,
            other_ca,
            port,
        })
    }

    /// A URL to `host` with `params`, and a password (the cluster trusts everyone) that must
    /// never show.
    fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://postgres:hunter2@{host}:{}/postgres?{params}",
            self.port
        )
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn port_of(url: &str) -> u16 {
    let authority = url.split('@').nth(1).unwrap().split('/').next().unwrap();
    authority.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// `handstamp --database URL migrate` in `dir`, with `dir` as the home directory (so that no
/// `~/.postgresql/root.crt` of the machine's is read).
fn migrate(dir: &Path, url: &str) -> Output {
    command(dir, &["--database", url, "migrate"])
        .env("HOME", dir)
        .output()
        .unwrap()
}

fn assert_migrates(dir: &Path, url: &str) {
    let out = migrate(dir, url);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{url}: {stderr}");
    assert!(
        text(&out.stdout).starts_with("database is up to date: "),
        "{url}"
    );
}

/// Asserts that migrating with `url` fails with exit status 1 and a message holding each of
/// `expected`, the password hidden; returns the message.
fn assert_refused(dir: &Path, url: &str, expected: &[&str]) -> String {
    let out = migrate(dir, url);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{url}: no {part:?} in {stderr}");
    }
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.contains(":***@"), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_servers_ca_migrates_and_serves_over_tls() {
    let Some(tls) = tokio::task::block_in_place(TlsCluster::start) else {
        return;
    };
    let params = format!("sslmode=verify-full&sslrootcert={}", tls.ca.display());
    let url = tls.url("localhost", &params);
    tokio::task::block_in_place(|| assert_migrates(tls.dir.path(), &url));

    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_on(&url, dir, |_| {}).await;
    s.create_user("tess", "pw").await;
    let (refresh, access) = s.login("tess", "pw").await;
    assert_eq!(s.get_bearer("/api/users/me/", &access).await.status(), 200);
    let refreshed = s
        .post(
            "/api/token/refresh/",
            serde_json::json!({"refresh": refresh}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);

    // Every connection handstamp holds is encrypted (asked over a plain one of the test's).
    let ssl = rows(
        &tls.cluster.url(),
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'handstamp'",
    )
    .await;
    assert!(!ssl.is_empty());
    assert!(
        ssl.iter().all(|row| row[0].as_deref() == Some("t")),
        "{ssl:?}"
    );
}

#[test]
fn certificates_are_checked_as_libpq_checks_them() {
    let Some(tls) = TlsCluster::start() else {
        return;
    };
    let d = tls.dir.path();
    let (ca, other_ca) = (tls.ca.display(), tls.other_ca.display());

    // Another CA's root: the chain does not verify.
    let params = format!("sslmode=verify-full&sslrootcert={other_ca}");
    assert_refused(
        d,
        &tls.url("localhost", &params),
        &[
            "the database is unavailable",
            "invalid peer certificate",
            &format!("UnknownIssuer (sslmode=verify-full, sslrootcert={other_ca})"),
        ],
    );
    let params = format!("sslmode=verify-ca&sslrootcert={other_ca}");
    assert_refused(d, &tls.url("localhost", &params), &["UnknownIssuer"]);

    // The certificate names localhost only: verify-full to 127.0.0.1 is refused, verify-ca
    // (the chain alone) is not.
    let params = format!("sslmode=verify-full&sslrootcert={ca}");
    assert_refused(
        d,
        &tls.url("127.0.0.1", &params),
        &[
            "invalid peer certificate",
            "not valid for name",
            "127.0.0.1",
        ],
    );
    let params = format!("sslmode=verify-ca&sslrootcert={ca}");
    assert_migrates(d, &tls.url("127.0.0.1", &params));

    // require (and the default, prefer) without a root certificate encrypt, checking nothing;
    // with one, require checks the chain, as libpq does.
    assert_migrates(d, &tls.url("127.0.0.1", "sslmode=require"));
    assert_migrates(d, &tls.url("127.0.0.1", "application_name=x"));
    let params = format!("sslmode=require&sslrootcert={other_ca}");
    assert_refused(d, &tls.url("localhost", &params), &["UnknownIssuer"]);

    // A client certificate: the role that must present one gets in with it, not without.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let create = "CREATE ROLE clerk LOGIN SUPERUSER";
    runtime.block_on(crate::common::postgres::execute(&tls.cluster.url(), create));
    let (cert, key) = tls.authority.issue_to_user("clerk");
    let (cert_file, key_file) = (d.join("clerk.crt"), d.join("clerk.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let clerk = |params: &str| {
        format!(
            "postgres://clerk:hunter2@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}{params}",
            tls.port
        )
    };
    let with_cert = format!(
        "&sslcert={}&sslkey={}",
        cert_file.display(),
        key_file.display()
    );
    assert_migrates(d, &clerk(&with_cert));
    assert_refused(
        d,
        &clerk(""),
        &[
            "the database is unavailable",
            "connection requires a valid client certificate",
        ],
    );

    // Settings that cannot work stop start-up with the setting named.
    assert_refused(
        d,
        &tls.url("localhost", "sslmode=verify-full"),
        &["sslmode=verify-full needs a root certificate: set sslrootcert="],
    );
    let missing = d.join("missing.pem");
    let params = format!("sslmode=verify-full&sslrootcert={}", missing.display());
    assert_refused(
        d,
        &tls.url("localhost", &params),
        &[&format!(
            "invalid database URL: sslrootcert={}: ",
            missing.display()
        )],
    );
    assert_refused(
        d,
        &tls.url("localhost", "sslmode=verify_full"),
        &["sslmode=\"verify_full\": expected disable, prefer, require, verify-ca or verify-full"],
    );
}

#[test]
fn without_tls_on_the_server_require_is_refused_and_prefer_goes_plain() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = |params: &str| {
        let port = port_of(&cluster.url());
        format!("postgres://postgres:hunter2@localhost:{port}/postgres?{params}")
    };
    assert_refused(
        d,
        &url("sslmode=require"),
        &["the database is unavailable", "server does not support TLS"],
    );
    assert_migrates(d, &url("sslmode=prefer"));
    assert_migrates(d, &url("sslmode=disable"));
}

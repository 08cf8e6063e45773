//! A fresh PostgreSQL database per test, on the server `TEST_POSTGRES_URL` names; without that
//! variable the PostgreSQL tests say once that they are skipped (and fail under CI, which must
//! run them).

use std::io::Write;
use std::sync::Once;
use tokio_postgres::NoTls;

/// The variable naming the server the tests may create databases on, such as
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const URL_VAR: &str = "TEST_POSTGRES_URL";

/// The test server's URL, or `None` after a notice that PostgreSQL tests are skipped.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL tests: set {URL_VAR}"
            );
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Straight to stderr: the test harness captures eprintln!'s output.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL tests skipped: set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
                );
            });
            None
        }
    }
}

/// `url` naming the database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

/// Runs `sql` on the database at `url`, on a connection of its own.
pub async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = connection.await;
}

/// The rows of `sql` on the database at `url`, each column as text.
pub async fn rows(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let messages = client.simple_query(sql).await.unwrap();
    drop(client);
    let _ = connection.await;
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// A database of its own for one test, dropped (connections and all) when this is.
pub struct TestDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database on the server `TEST_POSTGRES_URL` names; `None` (with a notice)
    /// when it is not set.
    pub async fn create() -> Option<TestDatabase> {
        let server = server_url()?;
        Some(Self::create_on(&server).await)
    }

    /// A new, empty database on the server at `server`.
    pub async fn create_on(server: &str) -> TestDatabase {
        let name = format!("handstamp_test_{}", uuid::Uuid::new_v4().simple());
        execute(server, &format!("CREATE DATABASE {name}")).await;
        TestDatabase {
            url: with_database(server, &name),
            server: server.to_owned(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // A runtime of its own: this may run inside a test's runtime, or after it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok((client, connection)) = tokio_postgres::connect(&server, NoTls).await else {
                    return;
                };
                let connection = tokio::spawn(connection);
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = client.batch_execute(&sql).await;
                drop(client);
                let _ = connection.await;
            });
        });
        let _ = dropped.join();
    }
}

/// A PostgreSQL server of the test's own (initdb on a temporary directory, a free port), so
/// that it can be stopped and started without touching the machine's. Stopped when dropped.
pub struct PrivateCluster {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Creates and starts one; `None` (with a notice) when PostgreSQL's programs are not here.
    pub fn start() -> Option<PrivateCluster> {
        Self::start_with(|_| {})
    }

    /// Creates one, lets `prepare` write into its data directory (settings, certificates),
    /// and starts it; `None` as for [`PrivateCluster::start`].
    pub fn start_with(prepare: impl FnOnce(&std::path::Path)) -> Option<PrivateCluster> {
        let bin = Self::bindir()?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // initdb refuses to run as root: the cluster then belongs to the postgres user.
        if is_root() {
            let owned = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivateCluster {
            bin,
            data,
            port,
            _dir: dir,
        };
        cluster.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"],
        );
        prepare(&cluster.data);
        if is_root() {
            // What `prepare` wrote belongs to the server's user too.
            let owned = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.data)
                .status()
                .unwrap();
            assert!(owned.success());
        }
        cluster.pg_ctl("start");
        Some(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server, disconnecting every client (`pg_ctl stop -m fast`).
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts it again on the same port and data, waiting until it takes connections.
    pub fn restart(&self) {
        self.pg_ctl("start");
    }

    /// Freezes every process of the server (SIGSTOP): connections stay open, nothing answers,
    /// as with a hung server or a network that drops everything.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Sends `signal` to the server's postmaster and each of its children, by process id.
    fn signal(&self, signal: libc::c_int) {
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        let postmaster: i32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let children = std::fs::read_dir("/proc").unwrap().filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The parent's id is the second field after the command's closing parenthesis.
            let parent: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (parent == postmaster).then_some(pid)
        });
        for pid in std::iter::once(postmaster).chain(children.collect::<Vec<_>>()) {
            // SAFETY: kill has no memory-safety preconditions; the ids are this cluster's.
            unsafe { libc::kill(pid, signal) };
        }
    }

    fn pg_ctl(&self, action: &str) {
        if action == "stop" {
            return self.run("pg_ctl", &["-w", "-m", "fast", "stop", "-D"]);
        }
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off",
            self.port
        );
        let log = self.data.with_file_name("server.log");
        let log = log.to_str().unwrap();
        self.run("pg_ctl", &["-w", "-l", log, "-o", &options, action, "-D"]);
    }

    /// Runs PostgreSQL's program `name` with `args` and the data directory last, as the
    /// postgres user when we are root.
    fn run(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut command = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        };
        let out = command.args(args).arg(&self.data).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Where `initdb` and `pg_ctl` are: Debian keeps them out of `PATH` (`pg_config --bindir`
    /// names the folder; failing that, the newest under /usr/lib/postgresql).
    fn bindir() -> Option<std::path::PathBuf> {
        let configured = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().into());
        let mut installed: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dirs| {
                dirs.filter_map(|d| Some(d.ok()?.path().join("bin")))
                    .collect()
            })
            .unwrap_or_default();
        installed.sort_by_key(|dir| {
            let version = dir.parent().and_then(|v| v.file_name());
            version.and_then(|v| v.to_str()?.parse::<u32>().ok())
        });
        let found = configured
            .into_iter()
            .chain(installed.into_iter().rev())
            .find(|dir: &std::path::PathBuf| {
                dir.join("initdb").exists() && dir.join("pg_ctl").exists()
            });
        if found.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL outage tests: initdb and pg_ctl are missing"
            );
            let _ = writeln!(
                std::io::stderr(),
                "note: PostgreSQL outage test skipped: no initdb/pg_ctl (pg_config --bindir)"
            );
        }
        found
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            // A test that failed while the server was frozen must not leave it so.
            self.thaw();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.stop()));
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

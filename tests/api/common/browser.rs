//! Real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`):
//! one chromedriver shared by the tests that run at the same time, a browser session per test,
//! and the test SPA (`tests/api/browser/spa.html`) served by handstamp's own `[[static]]`
//! mount. Without chromedriver the browser tests say once that they are skipped (and fail under
//! CI, which must run them).

use super::TestServer;
use fantoccini::{Client, ClientBuilder, Locator};
use handstamp::config::{Settings, StaticMount};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The variable naming the chromedriver binary, when not `/usr/bin/chromedriver`.
pub const DRIVER_VAR: &str = "CHROMEDRIVER";
/// The variable naming the browser binary, when not `/usr/bin/chromium`.
pub const BROWSER_VAR: &str = "CHROMIUM";
/// How long chromedriver may take to answer its `/status`, and a page to show its result.
const START: Duration = Duration::from_secs(20);
pub const WAIT: Duration = Duration::from_secs(20);

/// Where the SPA is mounted.
pub const SPA_PREFIX: &str = "/spa/";
const SPA: &str = include_str!("../browser/spa.html");

/// The chromedriver binary, or `None` after a notice that browser tests are skipped.
fn driver_binary() -> Option<PathBuf> {
    let path = std::env::var_os(DRIVER_VAR).map_or("/usr/bin/chromedriver".into(), PathBuf::from);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the browser tests: install Debian's chromium and chromium-driver \
         (no chromedriver at {})",
        path.display()
    );
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to stderr: the test harness captures eprintln!'s output.
        let _ = writeln!(
            std::io::stderr(),
            "note: browser tests skipped: no chromedriver at {} (apt-get install chromium \
             chromium-driver, or set {DRIVER_VAR})",
            path.display()
        );
    });
    None
}

/// A chromedriver process in a process group of its own, which the browsers it starts join:
/// dropping it kills the whole group, so that no Chromium outlives the tests.
pub struct Driver {
    child: Child,
    pub url: String,
    /// The directory of its log (`--log-path`), which a failed start shows.
    _dir: TempDir,
}

impl Driver {
    /// The running chromedriver, started if no test holds one; `None` when skipped.
    pub async fn shared() -> Option<Arc<Driver>> {
        // A tokio mutex: it needs no runtime of its own, and each test has its own runtime.
        static SHARED: tokio::sync::Mutex<Weak<Driver>> =
            tokio::sync::Mutex::const_new(Weak::new());
        let binary = driver_binary()?;
        let mut shared = SHARED.lock().await;
        if let Some(driver) = shared.upgrade() {
            return Some(driver);
        }
        let driver = Arc::new(Driver::start(&binary).await);
        *shared = Arc::downgrade(&driver);
        Some(driver)
    }

    /// Starts chromedriver on a free port and waits until its `/status` says it is ready;
    /// another port if the one picked was taken in between (chromedriver cannot take port 0).
    async fn start(binary: &Path) -> Driver {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("chromedriver.log");
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(binary)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let url = format!("http://127.0.0.1:{port}");
            if ready(&mut child, &url).await {
                return Driver {
                    child,
                    url,
                    _dir: dir,
                };
            }
        }
        panic!(
            "chromedriver did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// Polls chromedriver's `/status` until it answers ready (true) or it exits (false); killed
/// and a panic after [`START`].
async fn ready(child: &mut Child, url: &str) -> bool {
    let client = reqwest::Client::new();
    let status = format!("{url}/status");
    let deadline = Instant::now() + START;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let answer = client
            .get(&status)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(r) = answer
            && let Ok(body) = r.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chromedriver at {url} not ready after {START:?}");
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`), not reused by anything
        // else: the child is not waited for yet.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals the group this test started, nothing else.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A headless Chromium session with a profile of its own.
pub struct Browser {
    pub client: Client,
    /// Kept until the session ends: chromedriver's group goes with the last session.
    _driver: Arc<Driver>,
    _profile: TempDir,
}

impl Browser {
    /// A new session, or `None` (after a notice) when browser tests are skipped.
    pub async fn open() -> Option<Browser> {
        let driver = Driver::shared().await?;
        let profile = tempfile::tempdir().unwrap();
        let mut options = json!({
            "args": [
                "--headless=new",
                // CI runs as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        let browser = std::env::var_os(BROWSER_VAR).map(PathBuf::from);
        let browser =
            browser.or_else(|| Some("/usr/bin/chromium".into()).filter(|p: &PathBuf| p.is_file()));
        if let Some(binary) = browser {
            options["binary"] = json!(binary);
        }
        let capabilities = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("no browser session from chromedriver: {e}"));
        Some(Browser {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// Opens `url` and returns what the page wrote into `#result`, as JSON, once it is there.
    pub async fn result_of(&self, url: &str) -> Value {
        self.client.goto(url).await.unwrap();
        let element = self
            .client
            .wait()
            .at_most(WAIT)
            .every(Duration::from_millis(20))
            .for_element(Locator::Css("#result"))
            .await
            .unwrap_or_else(|e| panic!("no #result on {url} within {WAIT:?}: {e}"));
        let text = element.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("#result is not JSON: {text:?}"))
    }

    /// Ends the session, which closes its Chromium.
    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// The test SPA in a directory of its own, for a `[[static]]` mount at [`SPA_PREFIX`].
pub struct Spa {
    dir: TempDir,
}

impl Spa {
    pub fn new() -> Spa {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), SPA).unwrap();
        Spa { dir }
    }

    /// Mounts the SPA on `settings`'s server.
    pub fn mount(&self, settings: &mut Settings) {
        settings.statics.push(StaticMount {
            prefix: SPA_PREFIX.into(),
            dir: self.dir.path().to_path_buf(),
        });
    }

    /// The SPA's page on `server`, with `query` (`api`, `flow`, `username`, ...; see spa.html).
    pub fn url(server: &TestServer, query: &[(&str, &str)]) -> String {
        let query = serde_urlencoded::to_string(query).unwrap();
        server.url(&format!("{SPA_PREFIX}index.html?{query}"))
    }
}

/// A handstamp serving the SPA on an origin of its own (127.0.0.1 and a port of its own: the
/// same site as an API server of the tests, another origin).
pub async fn page_server() -> (TestServer, Spa) {
    let spa = Spa::new();
    let server = TestServer::start_with(|s| spa.mount(s)).await;
    (server, spa)
}

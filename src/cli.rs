//! The command line: serve, migrate, manage users and their sessions, flush expired tokens,
//! import a Django project's users.

use crate::config::{ConfigError, LogFormat, Settings};
use crate::django_import::{self, DjangoImportError};
use crate::password::Hasher;
use crate::server::{self, ServeError};
use crate::service::{AuthService, KEY_REFRESH, KeysError, ServiceError, SetupError, rfc3339};
use crate::store::{
    self, DatabaseUrl, ImportMode, ImportOutcome, PoolOptions, StoreError, UserConflict,
};
use crate::token::Algorithm;
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "handstamp",
    version,
    about = "JWT authentication server, wire-compatible with djangorestframework-simplejwt"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/NAME [default: the
    /// settings' [database] url, else sqlite://handstamp.sqlite3].
    #[arg(long, global = true, env = "HANDSTAMP_DATABASE_URL")]
    database: Option<String>,
    /// Settings file (TOML). Default: handstamp.toml, when present.
    #[arg(long, global = true, env = "HANDSTAMP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on, repeatable [env: HANDSTAMP_BIND; default: 127.0.0.1:8000].
        #[arg(long)]
        bind: Vec<String>,
        /// Check what serving needs and exit, like `nginx -t`: settings, addresses, TLS
        /// files, static directories, and a database that opens and takes a write.
        #[arg(long)]
        check: bool,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// List and end a user's sessions (a login and the refresh tokens rotated from it).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Delete refresh tokens past their expiry, with their blacklist entries, and sessions
    /// whose last refresh token expired.
    FlushExpiredTokens,
    /// Rotate the signing keys kept in the database: generate, activate, retire, export.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copy a Django project's users (ids, password hashes, flags, times) and simplejwt's
    /// outstanding and blacklisted refresh tokens into this database, in one transaction. The
    /// Django database is only read.
    ImportDjango {
        /// The Django project's database: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/NAME.
        #[arg(value_name = "DJANGO_DATABASE_URL")]
        source: String,
        /// Where a user clashes with ours (another id for the name, another name for the id,
        /// another hash or flags), keep ours and go on, instead of importing nothing.
        #[arg(long)]
        skip_existing: bool,
        /// Check everything and print what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The user table, for a custom user model (AUTH_USER_MODEL) with Django's columns.
        #[arg(long, default_value = django_import::USER_TABLE)]
        user_table: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List the keys, oldest first, tab-separated, with a header: kid, algorithm, state
    /// (pending, active, previous, retired), created, activated, and the last possible expiry
    /// of a token it signed.
    List,
    /// Generate a key: published in the JWKS at once, signing only once activated.
    Generate {
        /// Default: the `algorithm` setting.
        #[arg(long)]
        algorithm: Option<Algorithm>,
    },
    /// Make a key the signing key (every instance within 5 s); the one before keeps verifying.
    Activate {
        /// A kid may begin with `-` (base64url), so it is never read as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Activate even though verifiers may not have fetched the key yet.
        #[arg(long)]
        force: bool,
    },
    /// Stop publishing and trusting a key once no token it signed can still be valid.
    Retire {
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Retire now, though tokens it signed are still valid (their holders are logged out).
        #[arg(long)]
        force: bool,
    },
    /// Print a key's private key (PEM; an HMAC secret in base64): keep it safe.
    Export {
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// List a user's live sessions, newest first, tab-separated, with a header.
    List { name: String },
    /// End one of a user's sessions, or with --all every one of them ("log out everywhere":
    /// access tokens issued so far are refused too, wherever the user is loaded).
    Revoke {
        name: String,
        /// The session's id, as `session list` shows it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; asks for the password twice unless --password-stdin is given.
    Create {
        name: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        staff: bool,
        #[arg(long)]
        superuser: bool,
    },
    /// Set a user's password.
    SetPassword {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Let a user log in again.
    Activate { name: String },
    /// Stop a user from logging in or refreshing tokens.
    Deactivate { name: String },
    /// Delete a user.
    Delete { name: String },
    /// List users, one per line, tab-separated, with a header.
    List,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database could not be opened (or written, for `serve`): names it.
    #[error("cannot use the database {url}: {source}")]
    Database {
        url: DatabaseUrl,
        source: StoreError,
    },
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    DjangoImport(#[from] DjangoImportError),
    #[error("{}", clashes(.0))]
    ImportConflicts(Vec<UserConflict>),
    #[error("{0}")]
    Input(String),
    #[error("cannot read the password: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses the command line and runs it; the binary's whole `main`.
pub fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, buffered like nginx's `access_log ... buffer=`: lines collect in
/// memory and are written when 64 KiB have gathered, every 100 ms, and at exit (`LogBuffer`'s
/// guard). One write(2) per batch instead of one per request.
/// Password hashing allocates 19 MiB per login. glibc would, after the first one, keep such
/// blocks on its heap for reuse, and the process would hold them for good; a fixed mmap
/// threshold makes every large block go back to the system when freed.
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Raises the soft limit on open files to the hard one, as Go's runtime does at start: systemd
/// gives services 1,024 (soft) of 524,288 (hard), and every connection holds a file, a proxied one
/// two. Returns the limit in force, None where it cannot be read.
#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            ..limit
        };
        if limit.rlim_cur < limit.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            limit = raised;
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

/// Files kept for other things than client connections: listeners, the database, log output,
/// static files being read.
const FILES_BESIDES_CONNECTIONS: u64 = 64;

/// Warns when `max_connections` cannot all be open at once: past the file limit, accepting fails
/// (and is retried) before the connection limit is reached. With upstreams, each connection may
/// hold a backend connection too.
fn check_open_file_limit(limit: Option<u64>, max_connections: usize, proxies: bool) {
    let Some(limit) = limit else { return };
    let per_connection = if proxies { 2 } else { 1 };
    let wanted = max_connections as u64 * per_connection + FILES_BESIDES_CONNECTIONS;
    if wanted > limit {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            "max_connections cannot all be open: raise the limit on open files \
             (systemd: LimitNOFILE=) to at least {wanted}, or lower max_connections"
        );
    }
}

fn init_logging(format: LogFormat) -> server::LogFlusher {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let buffer = server::LogBuffer::stderr();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(buffer.clone());
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(ansi).init(),
    }
    // Once the filter is in place: it decides whether access lines are written.
    server::write_access_log_to(buffer.clone(), format);
    buffer.flush_periodically(std::time::Duration::from_millis(100))
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let config = match &cli.config {
        Some(path) if !path.exists() => {
            let shown = path.display();
            return Err(CliError::Input(format!(
                "settings file {shown} does not exist"
            )));
        }
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from("handstamp.toml")).filter(|p| p.exists()),
    };
    let mut settings = Settings::load(config.as_deref())?;
    if let Some(url) = cli.database {
        settings.database.url = url.into();
    }
    let database = Database {
        url: settings.database.url.clone(),
        pool: settings.database.pool(),
    };
    match cli.command {
        Command::Serve { bind, check } => {
            if !bind.is_empty() {
                settings.server.bind = bind;
            }
            let options = server::ServeOptions::from_settings(&settings.server)?;
            if check {
                check_serve(&settings, &database).await?;
                println!("configuration OK");
                return Ok(());
            }
            serve(&settings, &database, options).await?;
        }
        Command::Migrate => {
            database.open().await?;
            println!("database is up to date: {}", database.url);
        }
        Command::User(command) => {
            let store = database.open().await?;
            let service = AuthService::admin(settings.jwt, store).await?;
            user_command(&service, command).await?;
        }
        Command::Session(command) => {
            let store = database.open().await?;
            let service = AuthService::admin(settings.jwt, store).await?;
            session_command(&service, command).await?;
        }
        Command::Keys(command) => {
            let store = database.open().await?;
            let service = AuthService::admin(settings.jwt, store).await?;
            keys_command(&service, command).await?;
        }
        Command::ImportDjango {
            source,
            skip_existing,
            dry_run,
            user_table,
        } => {
            let store = database.open().await?;
            let mode = ImportMode {
                keep_ours: skip_existing,
                dry_run,
                now: crate::token::now(),
            };
            let report =
                django_import::import_django(&source, &user_table, store.as_ref(), mode).await?;
            let counts = match report.outcome {
                ImportOutcome::Done(counts) => counts,
                ImportOutcome::Conflicts(conflicts) => {
                    return Err(CliError::ImportConflicts(conflicts));
                }
            };
            if dry_run {
                println!("dry run: nothing was written; the import would write:");
            }
            println!("users imported: {}", counts.users_imported);
            println!("users unchanged: {}", counts.users_unchanged);
            println!("users skipped: {}", counts.users_skipped.len());
            if !counts.users_skipped.is_empty() {
                println!("skipped (ours kept): {}", counts.users_skipped.join(", "));
            }
            println!("outstanding tokens: {}", counts.tokens);
            println!("blacklisted tokens: {}", counts.blacklisted);
            println!("expired tokens left out: {}", report.expired);
        }
        Command::FlushExpiredTokens => {
            let store = database.open().await?;
            let service = AuthService::admin(settings.jwt, store).await?;
            let deleted = service.flush_expired().await?;
            println!("deleted {} expired tokens", deleted.tokens);
            if deleted.sessions > 0 {
                println!("deleted {} expired sessions", deleted.sessions);
            }
        }
    }
    Ok(())
}

/// `serve`: the public listeners and, with `metrics_bind`, the metrics one, until SIGTERM/SIGINT.
async fn serve(
    settings: &Settings,
    database: &Database,
    options: server::ServeOptions,
) -> Result<(), CliError> {
    let _logs = init_logging(settings.server.log_format);
    let proxies = !settings.upstreams.is_empty();
    check_open_file_limit(
        raise_open_file_limit(),
        settings.server.max_connections,
        proxies,
    );
    let shutdown = server::shutdown_signal();
    let listeners = server::bind(&settings.server.bind).await?;
    let metrics_listener = match &settings.server.metrics_bind {
        Some(addr) => server::bind(std::slice::from_ref(addr)).await?.pop(),
        None => None,
    };
    // A verify-only instance (jwk_url) has no database.
    let store: Arc<dyn store::Store> = match settings.jwt.jwk_url {
        Some(_) => Arc::new(store::NoStore),
        None => database.open_writable().await?,
    };
    let hasher = Hasher::with_queue(settings.server.password_queue);
    let service = AuthService::with_hasher(settings.jwt.clone(), store, hasher)
        .await?
        .with_login_limits(&settings.login)
        .with_cookies(settings.cookies.clone(), &settings.cors);
    let service = Arc::new(service);
    tokio::spawn(service.clone().keep_keys_fresh());
    let app = server::app(service, settings);
    // One signal stops both the public listeners and the metrics one.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    };
    let metrics = async {
        match metrics_listener {
            Some(listener) => {
                let shutdown = until_stopped(stopped.clone());
                server::serve_metrics(listener, &settings.server, &options, shutdown).await
            }
            None => Ok(()),
        }
    };
    let public = server::serve_with(
        listeners,
        app,
        options.clone(),
        until_stopped(stopped.clone()),
    );
    tokio::try_join!(public, metrics)?;
    Ok(())
}

/// The database the command uses: `--database`, else the settings' `[database]` table.
struct Database {
    url: DatabaseUrl,
    pool: PoolOptions,
}

impl Database {
    /// Opens (creating and migrating when needed) the store; an error names the database
    /// (its password hidden).
    async fn open(&self) -> Result<Arc<dyn store::Store>, CliError> {
        let opened = store::open_with(self.url.as_str(), &self.pool).await;
        opened.map_err(|source| self.failed(source))
    }

    /// The store, once a real write has gone through: a read-only file or a full disk stops
    /// start-up here rather than failing every login afterwards.
    async fn open_writable(&self) -> Result<Arc<dyn store::Store>, CliError> {
        let store = self.open().await?;
        let written = store.check_writable().await;
        written.map_err(|source| self.failed(source))?;
        Ok(store)
    }

    fn failed(&self, source: StoreError) -> CliError {
        let url = self.url.clone();
        CliError::Database { url, source }
    }
}

/// `serve --check`: what `serve` needs besides the settings and TLS files (read already),
/// short of listening, which would fail beside a running server.
async fn check_serve(settings: &Settings, database: &Database) -> Result<(), CliError> {
    for addr in &settings.server.bind {
        if let Err(source) = tokio::net::lookup_host(addr).await {
            let addr = addr.clone();
            return Err(ServeError::Bind { addr, source }.into());
        }
    }
    for mount in &settings.statics {
        let problem = match std::fs::metadata(&mount.dir) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => "not a directory".to_owned(),
            Err(e) => e.to_string(),
        };
        let (dir, prefix) = (mount.dir.display(), &mount.prefix);
        let message = format!("static directory {dir} (for {prefix}): {problem}");
        return Err(CliError::Input(message));
    }
    if settings.jwt.jwk_url.is_none() {
        database.open_writable().await?;
    }
    Ok(())
}

async fn user_command(service: &AuthService, command: UserCommand) -> Result<(), CliError> {
    match command {
        UserCommand::Create {
            name,
            password_stdin,
            staff,
            superuser,
        } => {
            check_username(&name)?;
            let password = read_password(password_stdin)?;
            let user = service
                .create_user(&name, password, staff, superuser)
                .await?;
            println!("created user {} (id {})", user.username, user.id);
        }
        UserCommand::SetPassword {
            name,
            password_stdin,
        } => {
            if service.user_by_name(&name).await?.is_none() {
                return Err(StoreError::UnknownUser(name).into());
            }
            let password = read_password(password_stdin)?;
            service.set_password(&name, password).await?;
            println!("password set for {name}");
        }
        UserCommand::Activate { name } => {
            service.set_active(&name, true).await?;
            println!("activated {name}");
        }
        UserCommand::Deactivate { name } => {
            service.set_active(&name, false).await?;
            println!("deactivated {name}");
        }
        UserCommand::Delete { name } => {
            service.delete_user(&name).await?;
            println!("deleted {name}");
        }
        UserCommand::List => {
            println!("id\tusername\tactive\tstaff\tsuperuser\tdate_joined\tlast_login");
            for u in service.list_users().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    u.id,
                    u.username,
                    u.is_active,
                    u.is_staff,
                    u.is_superuser,
                    rfc3339(u.date_joined),
                    u.last_login.map(rfc3339).unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(())
}

async fn keys_command(service: &AuthService, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::List => {
            println!("kid\talgorithm\tstate\tcreated\tactivated\tlast_token_expiry");
            let time = |t: Option<i64>| t.map_or("-".into(), rfc3339);
            for key in service.list_keys().await? {
                let kid = if key.kid.is_empty() { "-" } else { &key.kid };
                println!(
                    "{kid}\t{}\t{}\t{}\t{}\t{}",
                    key.algorithm,
                    key.state.as_str(),
                    rfc3339(key.created_at),
                    time(key.activated_at),
                    time(key.last_expiry),
                );
            }
        }
        KeysCommand::Generate { algorithm } => {
            let kid = service.generate_key(algorithm).await?;
            println!(
                "generated key {kid}: published now; activate it in {} s or later",
                service.publication_lead()
            );
        }
        KeysCommand::Activate { kid, force } => {
            service.activate_key(&kid, force).await?;
            println!(
                "key {kid} signs from now on (every instance within {} s)",
                KEY_REFRESH.as_secs()
            );
        }
        KeysCommand::Retire { kid, force } => {
            service.retire_key(&kid, force).await?;
            println!("key {kid} is retired: no longer published or trusted");
        }
        KeysCommand::Export { kid } => print!("{}", service.export_key(&kid).await?),
    }
    Ok(())
}

async fn session_command(service: &AuthService, command: SessionCommand) -> Result<(), CliError> {
    let name = match &command {
        SessionCommand::List { name } | SessionCommand::Revoke { name, .. } => name,
    };
    let Some(user) = service.user_by_name(name).await? else {
        return Err(StoreError::UnknownUser(name.clone()).into());
    };
    match command {
        SessionCommand::List { .. } => {
            println!("id\tcreated_at\tlast_refreshed_at\texpires_at\tip\tuser_agent");
            for s in service.sessions(user.id).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s.id,
                    rfc3339(s.created_at),
                    rfc3339(s.last_refreshed_at),
                    rfc3339(s.expires_at),
                    s.ip.as_deref().unwrap_or("-"),
                    s.user_agent.as_deref().map_or("-".into(), printable),
                );
            }
        }
        SessionCommand::Revoke { id: Some(id), .. } => {
            if !service.end_session(user.id, &id).await? {
                let message = format!("{} has no live session {id:?}", user.username);
                return Err(CliError::Input(message));
            }
            println!("revoked session {id} of {}", user.username);
        }
        SessionCommand::Revoke { id: None, .. } => {
            let ended = service.end_all_sessions(user.id).await?;
            let plural = if ended == 1 { "" } else { "s" };
            println!(
                "revoked {ended} session{plural} of {}; tokens issued before now are refused",
                user.username
            );
        }
    }
    Ok(())
}

/// The import's clashes, one a line.
fn clashes(conflicts: &[UserConflict]) -> String {
    let count = conflicts.len();
    let plural = if count == 1 { "" } else { "s" };
    let mut text = format!(
        "{count} user{plural} clash with users of this database; nothing was imported \
         (--skip-existing keeps ours and imports the rest):"
    );
    for conflict in conflicts {
        text.push_str(&format!("\n  {}", printable(&conflict.to_string())));
    }
    text
}

/// `text` fit for one field of a tab-separated line on a terminal: what a client sent (a user
/// agent) may hold tabs, and bytes that decode to control characters such as U+009B (CSI).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Django's username rule: 1 to 150 letters, digits and @ . + - _.
fn check_username(name: &str) -> Result<(), CliError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
    if name.is_empty() || name.chars().count() > 150 || !valid_chars {
        return Err(CliError::Input(format!(
            "invalid username {name:?}: use 1 to 150 letters, digits and @ . + - _"
        )));
    }
    Ok(())
}

/// The most read from standard input for a password; more is refused, not read without end. The
/// password itself is held to `password::MAX_PASSWORD_BYTES` by the service, with its own message.
const MAX_PASSWORD_INPUT: usize = 64 * 1024;

/// One line from standard input, or two matching answers at a terminal prompt.
fn read_password(from_stdin: bool) -> Result<String, CliError> {
    let password = if from_stdin {
        one_line(std::io::stdin())?
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Input(
                "standard input is not a terminal: pass --password-stdin and pipe the password in"
                    .into(),
            ));
        }
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password (again): ")?;
        if first != second {
            return Err(CliError::Input("the passwords do not match".into()));
        }
        first
    };
    if password.is_empty() {
        return Err(CliError::Input("the password must not be empty".into()));
    }
    Ok(password)
}

/// The first line of `input`, without its `\n` or `\r\n`. Unlike `docker login --password-stdin`,
/// which takes all its input but one final line break, a second line that is not empty is
/// refused: it is a mistake (two lines piped in), not part of the password.
fn one_line(input: impl Read) -> Result<String, CliError> {
    let mut text = String::new();
    input
        .take(MAX_PASSWORD_INPUT as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > MAX_PASSWORD_INPUT {
        let message = format!("the password input is longer than {MAX_PASSWORD_INPUT} bytes");
        return Err(CliError::Input(message));
    }
    let (line, rest) = text.split_once('\n').unwrap_or((&text, ""));
    if rest.lines().any(|l| !l.is_empty()) {
        return Err(CliError::Input(
            "standard input has more than one line: give the password alone on one line".into(),
        ));
    }
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

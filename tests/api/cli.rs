//! The `handstamp` binary, run as a real process.

use crate::common::command;
use crate::common::process::*;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::sync::mpsc;

#[test]
fn help_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"], "");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "serve",
        "migrate",
        "user",
        "flush-expired-tokens",
        "--database",
        "--config",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let out = run(dir.path(), &["user", "--help"], "");
    let help = text(&out.stdout);
    for word in [
        "create",
        "set-password",
        "activate",
        "deactivate",
        "delete",
        "list",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

#[test]
fn migrate_creates_the_default_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["migrate"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("handstamp.sqlite3").exists());
    let again = run(dir.path(), &["migrate"], "");
    assert!(again.status.success());
}

/// The database comes from `--database`, else `HANDSTAMP_DATABASE_URL`, else `[database] url`;
/// a password in it is never printed.
#[test]
fn the_database_is_chosen_by_flag_variable_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("handstamp.toml"),
        "[database]\nurl = \"sqlite://file.sqlite3\"\n",
    )
    .unwrap();
    let migrate = |args: &[&str], envs: &[(&str, &str)]| {
        let out = command(d, &[args, &["migrate"]].concat())
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(
        migrate(&[], &[]),
        "database is up to date: sqlite://file.sqlite3\n"
    );
    let env = [("HANDSTAMP_DATABASE_URL", "sqlite://env.sqlite3")];
    migrate(&[], &env);
    migrate(&["--database", "sqlite://flag.sqlite3"], &env);
    for name in ["file", "env", "flag"] {
        assert!(d.join(format!("{name}.sqlite3")).exists(), "{name}");
    }
    assert!(!d.join("handstamp.sqlite3").exists());

    let url = "postgres://app:hunter2@127.0.0.1:1/none";
    let out = run(d, &["--database", url, "migrate"], "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("postgres://app:***@127.0.0.1:1/none"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unavailable") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

/// `serve --check` and what it checks, one thing broken at a time.
#[test]
fn serve_check_checks_what_serve_needs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("public")).unwrap();
    let check = |args: &[&str]| run(d, &[&["serve", "--check"], args].concat(), "");
    let fails_naming = |args: &[&str], words: &[&str]| {
        let out = check(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for word in words {
            assert!(
                stderr.contains(word),
                "{args:?}: {word} missing from {stderr}"
            );
        }
    };
    let ok = check(&["--bind", "127.0.0.1:0", "--bind", "localhost:8000"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "configuration OK\n");

    fails_naming(&["--bind", "nonsense"], &["nonsense"]);
    fails_naming(&["--bind", "127.0.0.1:99999"], &["127.0.0.1:99999"]);
    let missing = "sqlite://no/such/dir/db.sqlite3";
    fails_naming(&["--database", missing], &[missing, "unable to open"]);
    let static_dir = |dir: &str| format!("[[static]]\nprefix = \"/s/\"\ndir = {dir:?}\n");
    std::fs::write(d.join("handstamp.toml"), static_dir("public")).unwrap();
    assert!(check(&[]).status.success());
    std::fs::write(d.join("handstamp.toml"), static_dir("nowhere")).unwrap();
    fails_naming(&[], &["nowhere"]);
}

/// Exactly one line, as the help says: more is refused rather than made part of the password.
#[test]
fn password_stdin_takes_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for input in [
        "first\nsecond\n",
        "first\nsecond",
        "first\r\n\r\nsecond\n",
        "a\n \n",
    ] {
        let out = run(d, &["user", "create", "bob", "--password-stdin"], input);
        assert_eq!(out.status.code(), Some(1), "{input:?}");
        assert!(
            text(&out.stderr).contains("one line"),
            "{}",
            text(&out.stderr)
        );
    }
    let long = "x".repeat(10_000);
    let out = run(d, &["user", "create", "bob", "--password-stdin"], &long);
    assert_eq!(out.status.code(), Some(1));
    let list = run(d, &["user", "list"], "");
    assert!(
        !text(&list.stdout).contains("bob"),
        "{}",
        text(&list.stdout)
    );

    // The line without its CRLF; empty lines after it are no second line.
    create_user(d, "alice", "the password\r\n\n");
    let server = serve(d, &[]);
    let login = json!({"username": "alice", "password": "the password"});
    assert_eq!(server.post("/api/token/", login).0, 200);
}

#[test]
fn user_commands_manage_users() {
    let dir = tempfile::tempdir().unwrap();
    manage_users(dir.path(), &[]);
}

/// The same commands on PostgreSQL, on a fresh database.
#[test]
fn user_commands_manage_users_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(database) = runtime.block_on(crate::common::postgres::TestDatabase::create()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    manage_users(dir.path(), &["--database", &database.url]);
}

/// Creates, lists, changes and deletes users through the CLI, on the database `db` names
/// (`--database URL`, or nothing for the default).
fn manage_users(d: &Path, db: &[&str]) {
    let run = |d: &Path, args: &[&str], stdin: &str| run(d, &[db, args].concat(), stdin);
    let out = run(
        d,
        &["user", "create", "alice", "--password-stdin", "--staff"],
        "s3cret\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "created user alice (id 1)\n");

    let dup = run(d, &["user", "create", "alice", "--password-stdin"], "x\n");
    assert_eq!(dup.status.code(), Some(1));
    assert!(text(&dup.stderr).contains("a user named \"alice\" already exists"));

    let bad = run(
        d,
        &["user", "create", "no spaces", "--password-stdin"],
        "x\n",
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("invalid username"));
    let empty = run(d, &["user", "create", "bob", "--password-stdin"], "\n");
    assert_eq!(empty.status.code(), Some(1));
    assert!(text(&empty.stderr).contains("must not be empty"));
    let no_tty = run(d, &["user", "create", "bob"], "");
    assert_eq!(no_tty.status.code(), Some(1));
    assert!(text(&no_tty.stderr).contains("--password-stdin"));

    let list = text(&run(d, &["user", "list"], "").stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("id\tusername\tactive\tstaff\tsuperuser"));
    assert!(
        lines[1].starts_with("1\talice\ttrue\ttrue\tfalse\t"),
        "{}",
        lines[1]
    );

    for (args, expected) in [
        (vec!["user", "deactivate", "alice"], "1\talice\tfalse"),
        (vec!["user", "activate", "alice"], "1\talice\ttrue"),
    ] {
        assert!(run(d, &args, "").status.success());
        let list = text(&run(d, &["user", "list"], "").stdout);
        assert!(list.contains(expected), "{list}");
    }
    for args in [
        vec!["user", "deactivate", "ghost"],
        vec!["user", "activate", "ghost"],
        vec!["user", "delete", "ghost"],
        vec!["user", "set-password", "ghost", "--password-stdin"],
    ] {
        let out = run(d, &args, "pw\n");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("no user named \"ghost\""),
            "{args:?}"
        );
    }
    let out = run(
        d,
        &["user", "set-password", "alice", "--password-stdin"],
        "n3w\n",
    );
    assert!(out.status.success());
    assert!(run(d, &["user", "delete", "alice"], "").status.success());
    let list = text(&run(d, &["user", "list"], "").stdout);
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[test]
fn serve_logs_in_users_created_by_the_cli_and_keeps_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_user(d, "carl", "pw");
    let server = serve(d, &[]);
    let (status, pair) = server.post("/api/token/", json!({"username": "carl", "password": "pw"}));
    assert_eq!(status, 200, "{pair}");
    drop(server);
    // A restarted server on the same database signs and verifies with the same secret.
    let server = serve(d, &[]);
    let (status, _) = server.post("/api/token/verify/", json!({"token": pair["access"]}));
    assert_eq!(status, 200);
    server.wait_for_line("status=200");
}

#[test]
fn a_running_server_sees_user_changes_made_by_the_cli_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_user(d, "gus", "old");
    let server = serve(d, &[]);
    let login = |password: &str| {
        server.post(
            "/api/token/",
            json!({"username": "gus", "password": password}),
        )
    };
    let (status, pair) = login("old");
    assert_eq!(status, 200, "{pair}");
    let me = || server.get_bearer("/api/users/me/", &pair["access"]);
    let check = || server.get_bearer("/api/auth/check", &pair["access"]);
    assert_eq!(me().0, 200);
    assert_eq!(check().0, 200);
    for round in 0..3 {
        assert!(run(d, &["user", "deactivate", "gus"], "").status.success());
        let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
        assert_eq!(me(), (401, inactive.clone()), "round {round}");
        assert_eq!(check(), (401, inactive), "round {round}: forward-auth too");
        assert!(run(d, &["user", "activate", "gus"], "").status.success());
        assert_eq!(me().0, 200, "round {round}");
        assert_eq!(check().0, 200, "round {round}");
    }
    let set = run(
        d,
        &["user", "set-password", "gus", "--password-stdin"],
        "new\n",
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert_eq!(login("old").0, 401);
    assert_eq!(login("new").0, 200);
}

#[test]
fn settings_come_from_file_and_environment_and_bad_ones_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_user(d, "dana", "pw");
    std::fs::write(
        d.join("handstamp.toml"),
        "[jwt]\naccess_token_lifetime = \"2m\"\nrefresh_token_lifetime = \"2d\"\n",
    )
    .unwrap();
    let key = "k".repeat(40);
    let server = serve(
        d,
        &[
            ("HANDSTAMP_ACCESS_TOKEN_LIFETIME", "600"),
            ("HANDSTAMP_SIGNING_KEY", &key),
        ],
    );
    let (_, pair) = server.post("/api/token/", json!({"username": "dana", "password": "pw"}));
    let access = crate::common::claims(pair["access"].as_str().unwrap());
    let refresh = crate::common::claims(pair["refresh"].as_str().unwrap());
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        600,
        "env wins"
    );
    assert_eq!(
        refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(),
        172_800,
        "file"
    );
    server.wait_for_line("path=\"/api/token/\"");
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains(&key), "the signing key must never be logged");
    drop(server);

    for (env, setting) in [
        (("HANDSTAMP_ALGORITHM", "none"), "`algorithm`"),
        (
            ("HANDSTAMP_ACCESS_TOKEN_LIFETIME", "soon"),
            "`access_token_lifetime`",
        ),
        (("HANDSTAMP_SIGNING_KEY", "short"), "`signing_key`"),
        (
            ("HANDSTAMP_ROTATE_REFRESH_TOKENS", "maybe"),
            "rotate_refresh_tokens",
        ),
        (("HANDSTAMP_KEEPALIVE_TIMEOUT", "0s"), "`keepalive_timeout`"),
        (("HANDSTAMP_SEND_TIMEOUT", "soon"), "`send_timeout`"),
        (("HANDSTAMP_CHECK_USER", "maybe"), "check_user"),
    ] {
        let out = command(d, &["serve", "--bind", "127.0.0.1:0"])
            .env(env.0, env.1)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        let err = text(&out.stderr);
        assert!(err.contains(setting), "{env:?}: {err}");
        assert!(
            !err.contains("short") || env.0 != "HANDSTAMP_SIGNING_KEY",
            "secret echoed: {err}"
        );
    }
    let out = run(d, &["--config", "missing.toml", "migrate"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn environment_values_are_taken_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_user(d, "erin", "pw");
    // Read as a number, this key would have signed with "1234…000" instead.
    let key = "1234567890123456789012345678901234567890.5";
    let server = serve(
        d,
        &[
            ("HANDSTAMP_SIGNING_KEY", key),
            ("HANDSTAMP_AUDIENCE", "\"quoted\""),
            ("HANDSTAMP_ROTATE_REFRESH_TOKENS", "no"),
        ],
    );
    let (status, pair) = server.post("/api/token/", json!({"username": "erin", "password": "pw"}));
    assert_eq!(status, 200, "{pair}");
    let access = pair["access"].as_str().unwrap();
    let (header, payload) = crate::common::parts(access);
    assert_eq!(
        crate::common::craft(&header, &payload, key.as_bytes(), "HS256"),
        access,
        "signed with exactly the key given"
    );
    assert_eq!(crate::common::claims(access)["aud"], "\"quoted\"");
    let (status, refreshed) =
        server.post("/api/token/refresh/", json!({"refresh": pair["refresh"]}));
    assert_eq!(status, 200, "{refreshed}");
    assert!(
        refreshed.get("refresh").is_none(),
        "no rotation: {refreshed}"
    );
    drop(server);

    let out = command(d, &["serve", "--check"])
        .env("HANDSTAMP_NO_SUCH_THING", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("HANDSTAMP_NO_SUCH_THING"), "{err}");
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_user(d, "erin", "pw");
    let server = serve(d, &[]);
    let body = json!({"username": "erin", "password": "pw"}).to_string();
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    // Headers only, asking to continue: the 100 shows the handler is reading the body, so
    // the request is in flight when the signal comes.
    write!(
        stream,
        "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len(),
    )
    .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    server.signal("-TERM");
    server.wait_for_line("shutting down");
    stream.write_all(body.as_bytes()).unwrap();
    let (status, pair) = read_response(&mut stream);
    assert_eq!(status, 200, "{pair}");
    assert!(pair["access"].is_string());
    let mut server = server;
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_rotation_answered_200_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_user(d, "fay", "pw");
    let server = serve(d, &[]);
    let (_, pair) = server.post("/api/token/", json!({"username": "fay", "password": "pw"}));
    let (status, rotated) = server.post("/api/token/refresh/", json!({"refresh": pair["refresh"]}));
    assert_eq!(status, 200);
    server.signal("-KILL");
    drop(server);
    let server = serve(d, &[]);
    let (status, body) = server.post("/api/token/refresh/", json!({"refresh": pair["refresh"]}));
    assert_eq!(
        (status, body),
        (401, crate::common::token_not_valid("Token is blacklisted"))
    );
    let (status, _) = server.post(
        "/api/token/refresh/",
        json!({"refresh": rotated["refresh"]}),
    );
    assert_eq!(status, 200);
}

#[tokio::test]
async fn flush_expired_tokens_deletes_only_expired_ones() {
    use handstamp::store::Outstanding;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = format!("sqlite://{}", d.join("handstamp.sqlite3").display());
    let store = handstamp::store::open(&url).await.unwrap();
    let now = crate::common::now();
    let token = |jti: &str, expires_at| Outstanding {
        jti: jti.into(),
        user_id: None,
        created_at: Some(now - 100),
        expires_at,
    };
    store.outstand(&token("old", now - 10)).await.unwrap();
    store
        .blacklist(&token("old-blacklisted", now - 10), now)
        .await
        .unwrap();
    store.outstand(&token("live", now + 1000)).await.unwrap();
    store
        .blacklist(&token("live-blacklisted", now + 1000), now)
        .await
        .unwrap();
    drop(store);
    let out = run(d, &["flush-expired-tokens"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "deleted 2 expired tokens\n");
    let store = handstamp::store::open(&url).await.unwrap();
    assert!(store.is_blacklisted("live-blacklisted").await.unwrap());
    assert!(!store.is_blacklisted("old-blacklisted").await.unwrap());
    let out = run(d, &["flush-expired-tokens"], "");
    assert_eq!(text(&out.stdout), "deleted 0 expired tokens\n");
}

fn https_client(pem: &str, addr: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr.parse().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (files, first) = crate::common::certificate(d, "first");
    std::fs::write(
        d.join("handstamp.toml"),
        format!(
            "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
            files.cert.display().to_string(),
            files.key.display().to_string()
        ),
    )
    .unwrap();
    let check = run(d, &["serve", "--check"], "");
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert_eq!(text(&check.stdout), "configuration OK\n");

    let server = tokio::task::block_in_place(|| serve(d, &[]));
    let url = format!(
        "https://localhost:{}/healthz",
        server.addr.rsplit(':').next().unwrap()
    );
    let old_client = https_client(&first, &server.addr);
    assert_eq!(old_client.get(&url).send().await.unwrap().status(), 200);

    // New files in place of the old, then SIGHUP.
    let (second_files, second) = crate::common::certificate(d, "second");
    std::fs::copy(&second_files.cert, &files.cert).unwrap();
    std::fs::copy(&second_files.key, &files.key).unwrap();
    server.signal("-HUP");
    tokio::task::block_in_place(|| server.wait_for_line("TLS certificate reloaded"));

    let new_client = https_client(&second, &server.addr);
    assert_eq!(new_client.get(&url).send().await.unwrap().status(), 200);
    let stale = https_client(&first, &server.addr);
    assert!(
        stale.get(&url).send().await.is_err(),
        "new handshakes present the new certificate"
    );
    assert_eq!(
        old_client.get(&url).send().await.unwrap().status(),
        200,
        "the connection opened before the reload still works"
    );

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&files.cert, "garbage").unwrap();
    server.signal("-HUP");
    tokio::task::block_in_place(|| server.wait_for_line("not reloaded"));
    let again = https_client(&second, &server.addr);
    assert_eq!(again.get(&url).send().await.unwrap().status(), 200);

    let check = run(d, &["serve", "--check"], "");
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stderr).contains("cannot read the TLS certificate"),
        "{}",
        text(&check.stderr)
    );
}

#[test]
fn shutdown_gives_up_on_stuck_requests_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A backend that accepts and never answers, and says when the proxied request arrives.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let (arrived, arrival) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in backend.incoming() {
            let mut stream = stream.unwrap();
            let mut head = [0u8; 64];
            let n = stream.read(&mut head).unwrap_or(0);
            if head[..n].starts_with(b"GET /app/stuck") {
                let _ = arrived.send(());
            }
            held.push(stream);
        }
    });
    std::fs::write(
        d.join("handstamp.toml"),
        format!(
            "[server]\nshutdown_grace = \"1s\"\nrequest_timeout = \"1h\"\n\n[[upstream]]\nprefix = \"/app/\"\nbackends = [\"http://{backend_addr}\"]\nauth = \"none\"\nhealth_interval = \"1h\"\n"
        ),
    )
    .unwrap();
    let mut server = serve(d, &[]);
    let mut client = TcpStream::connect(&server.addr).unwrap();
    write!(client, "GET /app/stuck HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    arrival.recv().unwrap();
    server.signal("-TERM");
    server.wait_for_line("grace period over");
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[test]
fn log_lines_written_during_a_request_carry_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A backend that passes its health check but hangs up on every other request.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in backend.incoming() {
            let mut stream = stream.unwrap();
            let mut head = [0u8; 256];
            let n = stream.read(&mut head).unwrap_or(0);
            if head[..n].starts_with(b"GET /health") {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        }
    });
    std::fs::write(
        d.join("handstamp.toml"),
        format!(
            "[[upstream]]\nprefix = \"/app/\"\nbackends = [\"http://{backend_addr}\"]\nauth = \"none\"\nhealth_path = \"/health\"\nhealth_interval = \"1h\"\n"
        ),
    )
    .unwrap();
    let server = serve(d, &[]);
    assert_eq!(server.get_with_request_id("/app/x", "trace-77"), 502);
    let line = server.wait_for_line("backend request failed");
    assert!(line.contains("request_id=trace-77"), "{line}");
}

/// The `kid` in an access token's header.
fn token_kid(token: &Value) -> Option<String> {
    use base64::Engine;
    let header = token.as_str().unwrap().split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().map(str::to_owned)
}

/// The kids an instance publishes.
fn published_kids(server: &Served) -> Vec<String> {
    let (status, set) = server.get_bearer("/.well-known/jwks.json", &json!("-"));
    assert_eq!(status, 200);
    let keys = set["keys"].as_array().unwrap();
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `done` on every server until it holds for all, within `limit`; how long it took.
fn within(
    limit: std::time::Duration,
    servers: &[Served],
    done: impl Fn(&Served) -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !servers.iter().all(&done) {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    started.elapsed()
}

#[test]
fn keys_rotate_across_instances_without_logging_anyone_out() {
    let dir = tempfile::tempdir().unwrap();
    rotate_keys_across_instances(dir.path(), &[]);
}

/// The same rotation with the three instances on one fresh PostgreSQL database.
#[test]
fn keys_rotate_across_instances_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(database) = runtime.block_on(crate::common::postgres::TestDatabase::create()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    rotate_keys_across_instances(dir.path(), &["--database", &database.url]);
}

/// Three instances on the database `db` names (`--database URL`, or nothing for the default)
/// rotate their signing key through the CLI without logging anyone out.
fn rotate_keys_across_instances(d: &Path, db: &[&str]) {
    // A kid may begin with '-': `--` before it keeps it from reading as an option.
    let run = |d: &Path, args: &[&str], stdin: &str| run(d, &[db, args].concat(), stdin);
    let out = run(d, &["user", "create", "dana", "--password-stdin"], "pw\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let es256 = [("HANDSTAMP_ALGORITHM", "ES256")];
    let servers: Vec<Served> = (0..3).map(|_| serve_with(d, db, &es256)).collect();
    let login = |server: &Served| {
        let (status, pair) =
            server.post("/api/token/", json!({"username": "dana", "password": "pw"}));
        assert_eq!(status, 200, "{pair}");
        pair["access"].clone()
    };
    // Three instances started at once on an empty database sign with one key.
    let before = login(&servers[0]);
    let old = token_kid(&before).expect("a kid");
    for server in &servers {
        assert_eq!(token_kid(&login(server)).as_deref(), Some(old.as_str()));
    }

    // A new key is published by every instance, and does not sign yet.
    let out = run(d, &["keys", "generate", "--algorithm", "ES256"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let new = said
        .strip_prefix("generated key ")
        .and_then(|rest| rest.split(':').next())
        .unwrap()
        .to_owned();
    let bound = std::time::Duration::from_secs(10);
    within(bound, &servers, |s| published_kids(s).contains(&new));
    assert_eq!(
        token_kid(&login(&servers[1])).as_deref(),
        Some(old.as_str())
    );

    // Activating it before caches could know it is refused; forced, every instance signs with
    // it within the bound, and what the old key signed keeps verifying everywhere.
    let out = run(d, &["keys", "activate", "--", &new], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    let out = run(d, &["keys", "activate", "--force", "--", &new], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let took = within(bound, &servers, |s| {
        token_kid(&login(s)).as_deref() == Some(&new)
    });
    eprintln!("every instance signed with the new key after {took:?}");
    for server in &servers {
        assert_eq!(server.get_bearer("/api/auth/check", &before).0, 200);
    }

    // The old key cannot be retired while its tokens may live; forced, it is gone everywhere.
    let out = run(d, &["keys", "retire", "--", &old], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    let out = run(d, &["keys", "retire", "--force", "--", &old], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    within(bound, &servers, |s| !published_kids(s).contains(&old));
    for server in &servers {
        assert_eq!(server.get_bearer("/api/auth/check", &before).0, 401);
    }
    let out = run(d, &["keys", "list"], "");
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&format!("{old}\tES256\tretired")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("{new}\tES256\tactive")),
        "{listed}"
    );
}

/// systemd starts a service with 1,024 open files (soft) of 524,288 (hard): the server raises its
/// soft limit to the hard one, and warns when `max_connections` still cannot all be open (two
/// files each when they may be proxied).
#[test]
fn serve_raises_its_open_file_limit_and_warns_when_connections_cannot_fit() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = dir.path().join("gateway.toml");
    let upstream = "[[upstream]]\nprefix = \"/app/\"\nbackends = [\"http://127.0.0.1:9\"]\n";
    std::fs::write(&gateway, upstream).unwrap();
    let gateway = gateway.to_str().unwrap().to_owned();
    let start = |max_connections: &str, config: &[&str]| {
        let envs = [("HANDSTAMP_MAX_CONNECTIONS", max_connections)];
        let mut cmd = serve_command(dir.path(), config, &envs);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 4096,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        served(cmd.spawn().unwrap())
    };
    let open_files = |server: &Served| {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id()));
        let limits = limits.unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files"));
        let fields: Vec<String> = line.unwrap().split_whitespace().map(String::from).collect();
        (fields[3].clone(), fields[4].clone())
    };

    let warned = |max_connections: &str, config: &[&str]| {
        let server = start(max_connections, config);
        assert_eq!(open_files(&server), ("4096".into(), "4096".into()));
        let log = server.log.lock().unwrap().clone();
        let warned = log.contains("max_connections cannot all be open");
        assert!(!warned || log.contains("LimitNOFILE"), "{log}");
        warned
    };
    assert!(warned("10000", &[]));
    assert!(!warned("3000", &[]));
    // 3,000 connections with a backend connection each: 6,064 files wanted.
    assert!(warned("3000", &["--config", &gateway]));
}

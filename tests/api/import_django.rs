//! `handstamp import-django` against a real Django project's database, made by Django itself
//! (`tests/django/make_project.py`: `migrate`, users made with several hashers, refresh tokens
//! issued by simplejwt, one blacklisted), on SQLite and on PostgreSQL. The imported users then
//! log in over HTTP with their original passwords, and simplejwt's tokens refresh or are
//! refused as they were there.
//!
//! Django comes from the virtualenv `.ci/run` makes (`tests/interop/requirements.txt`), named by
//! `TEST_DJANGO_PYTHON` (else `target/interop-venv/bin/python` when it exists). Without one the
//! tests say that they are skipped; under CI (`CI` set) that is a failure.

use crate::common::postgres::TestDatabase;
use crate::common::process::text;
use crate::common::*;
use handstamp::config::Secret;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Once;

const PYTHON_VAR: &str = "TEST_DJANGO_PYTHON";

/// The Python that has Django, or `None` after a notice.
fn django_python() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = match std::env::var_os(PYTHON_VAR) {
        Some(python) => Some(manifest.join(python)),
        None => Some(manifest.join("target/interop-venv/bin/python")).filter(|p| p.exists()),
    };
    if python.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Django import tests: set {PYTHON_VAR} to a Python with \
             tests/interop/requirements.txt installed"
        );
        static NOTICE: Once = Once::new();
        NOTICE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "note: Django import tests skipped: set {PYTHON_VAR} (e.g. target/interop-venv/bin/python, made by .ci/run)"
            );
        });
    }
    python
}

/// A Django project's database, made by Django, and what the script says is in it.
fn django_project(python: &Path, target: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django/make_project.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn handstamp(database: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let args = [&["--database", database][..], args].concat();
    command(dir.path(), &args).output().unwrap()
}

/// `import-django` with `args`, which must succeed; its output.
fn import(database: &str, args: &[&str]) -> String {
    let out = handstamp(database, &[&["import-django"][..], args].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn counts(imported: u64, unchanged: u64, tokens: u64, blacklisted: u64) -> String {
    format!(
        "users imported: {imported}\nusers unchanged: {unchanged}\nusers skipped: 0\n\
         outstanding tokens: {tokens}\nblacklisted tokens: {blacklisted}\n\
         expired tokens left out: 0\n"
    )
}

fn users(project: &Value) -> &Vec<Value> {
    project["users"].as_array().unwrap()
}

/// A server on the imported database, signing with Django's key.
async fn serve(database: &str, project: &Value) -> TestServer {
    let key = project["signing_key"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    TestServer::start_on(database, dir, |s| s.jwt.signing_key = Some(Secret(key))).await
}

/// Every user as Django left them: ids, flags and times; each logs in over HTTP with the
/// original password (an inactive one and an unusable password do not); the blacklisted
/// Django token is refused and the other one refreshes, rotating.
async fn check_imported(s: &TestServer, project: &Value) {
    let store = s.service.store();
    for u in users(project) {
        let name = u["username"].as_str().unwrap();
        let ours = store.user_by_name(name).await.unwrap().unwrap();
        let ours = json!({
            "id": ours.id,
            "hash": ours.password.as_str(),
            "is_active": ours.is_active,
            "is_staff": ours.is_staff,
            "is_superuser": ours.is_superuser,
            "date_joined": ours.date_joined,
            "last_login": ours.last_login,
        });
        let fields = ["id", "hash", "is_active", "is_staff", "is_superuser"];
        let theirs: serde_json::Map<String, Value> = fields
            .iter()
            .chain(&["date_joined", "last_login"])
            .map(|k| (k.to_string(), u[k].clone()))
            .collect();
        assert_eq!(ours, Value::Object(theirs), "{name}");
        let password = u["password"].as_str().unwrap_or("!");
        let r = s
            .post(
                "/api/token/",
                json!({"username": name, "password": password}),
            )
            .await;
        let usable = !u["password"].is_null();
        let expected = if usable && u["is_active"] == true {
            200
        } else {
            401
        };
        assert_eq!(r.status(), expected, "{name}");
    }
    let refresh = |token: &str| {
        let body = json!({"refresh": token});
        async move { reply(s.post("/api/token/refresh/", body).await).await }
    };
    let blacklisted = project["blacklisted_refresh"].as_str().unwrap();
    let refused = (401, token_not_valid("Token is blacklisted"));
    assert_eq!(refresh(blacklisted).await, refused);
    let live = project["live_refresh"].as_str().unwrap();
    let (status, body) = refresh(live).await;
    assert_eq!(status, 200, "{body}");
    let next = body["refresh"].as_str().unwrap();
    assert_eq!(claims(next)["user_id"], "1");
    assert_eq!(refresh(live).await, refused, "rotated");
    assert_eq!(refresh(next).await.0, 200);
}

#[tokio::test]
async fn a_django_sqlite_project_moves_in() {
    let Some(python) = django_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let django = dir.path().join("django.sqlite3");
    let project = django_project(&python, &["--sqlite", django.to_str().unwrap()]);
    let source = format!("sqlite://{}", django.display());
    let before = std::fs::read(&django).unwrap();
    let ours = format!(
        "sqlite://{}",
        dir.path().join("handstamp.sqlite3").display()
    );

    // A dry run counts and writes nothing.
    let dry = import(&ours, &[&source, "--dry-run"]);
    let expected = format!(
        "dry run: nothing was written; the import would write:\n{}",
        counts(7, 0, 2, 1)
    );
    assert_eq!(dry, expected);
    let listed = handstamp(&ours, &["user", "list"]);
    assert_eq!(text(&listed.stdout).lines().count(), 1, "the header alone");

    assert_eq!(import(&ours, &[&source]), counts(7, 0, 2, 1));
    // Twice: nothing changes.
    assert_eq!(import(&ours, &[&source]), counts(0, 7, 0, 0));
    // The Django database was only read.
    assert_eq!(std::fs::read(&django).unwrap(), before);

    let s = serve(&ours, &project).await;
    check_imported(&s, &project).await;
    s.stop().await;

    // The next user made here gets the id after Django's.
    let out = crate::common::process::run(
        dir.path(),
        &[
            "--database",
            &ours,
            "user",
            "create",
            "zoe",
            "--password-stdin",
        ],
        "pw\n",
    );
    assert_eq!(text(&out.stdout), "created user zoe (id 8)\n");
}

#[tokio::test]
async fn clashing_users_stop_the_import_unless_ours_are_kept() {
    let Some(python) = django_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let django = dir.path().join("django.sqlite3");
    let project = django_project(&python, &["--sqlite", django.to_str().unwrap()]);
    let source = format!("sqlite://{}", django.display());
    let ours = format!(
        "sqlite://{}",
        dir.path().join("handstamp.sqlite3").display()
    );
    // Our id 1 is zed (Django's alice), our bob (id 2, as there) has another password.
    for name in ["zed", "bob"] {
        let args = [
            "--database",
            &ours,
            "user",
            "create",
            name,
            "--password-stdin",
        ];
        let out = crate::common::process::run(dir.path(), &args, "ours\n");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = handstamp(&ours, &["import-django", &source]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "error: 2 users clash with users of this database; nothing was imported \
             (--skip-existing keeps ours and imports the rest):",
            "  alice (id 1): id 1 is our user \"zed\"",
        ]
    );
    // Its date joined differs too when it was made in another second than Django's bob.
    assert!(
        lines[2].starts_with("  bob (id 2): our user differs in password hash"),
        "{stderr}"
    );
    assert_eq!(lines.len(), 3, "{stderr}");
    let listed = handstamp(&ours, &["user", "list"]);
    assert_eq!(text(&listed.stdout).lines().count(), 3, "zed and bob alone");

    let dry = import(&ours, &[&source, "--skip-existing", "--dry-run"]);
    assert!(dry.starts_with("dry run: nothing was written"), "{dry}");
    let listed = handstamp(&ours, &["user", "list"]);
    assert_eq!(text(&listed.stdout).lines().count(), 3, "still zed and bob");

    // Alice's Django token names id 1, zed's here: it is blacklisted, not honoured.
    let kept = import(&ours, &[&source, "--skip-existing"]);
    assert_eq!(
        kept,
        "users imported: 5\nusers unchanged: 0\nusers skipped: 2\n\
         skipped (ours kept): alice, bob\noutstanding tokens: 1\nblacklisted tokens: 2\n\
         expired tokens left out: 0\n"
    );
    let s = serve(&ours, &project).await;
    s.login("zed", "ours").await;
    s.login("bob", "ours").await;
    s.login("carol", "carol's bcrypt_sha256 password").await;
    let live = project["live_refresh"].as_str().unwrap();
    let r = s
        .post("/api/token/refresh/", json!({"refresh": live}))
        .await;
    assert_eq!(
        reply(r).await,
        (401, token_not_valid("Token is blacklisted"))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_django_postgresql_project_moves_in_to_either_engine() {
    let Some(python) = django_python() else {
        return;
    };
    let Some(django) = TestDatabase::create().await else {
        return;
    };
    let project = django_project(&python, &["--postgres", &django.url]);
    // Into SQLite.
    let dir = tempfile::tempdir().unwrap();
    let ours = format!(
        "sqlite://{}",
        dir.path().join("handstamp.sqlite3").display()
    );
    assert_eq!(import(&ours, &[&django.url]), counts(7, 0, 2, 1));
    let s = serve(&ours, &project).await;
    check_imported(&s, &project).await;
    s.stop().await;
    // Into PostgreSQL, twice.
    let Some(target) = TestDatabase::create().await else {
        return;
    };
    assert_eq!(import(&target.url, &[&django.url]), counts(7, 0, 2, 1));
    assert_eq!(import(&target.url, &[&django.url]), counts(0, 7, 0, 0));
    let s = serve(&target.url, &project).await;
    check_imported(&s, &project).await;
    s.stop().await;
    let out = crate::common::process::run(
        dir.path(),
        &[
            "--database",
            &target.url,
            "user",
            "create",
            "zoe",
            "--password-stdin",
        ],
        "pw\n",
    );
    assert_eq!(text(&out.stdout), "created user zoe (id 8)\n");
}

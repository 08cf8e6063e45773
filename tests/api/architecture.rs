//! The house's arrows, read off the `crate::` paths in `src/` (as rust-analyzer checks its own
//! invariants): a module uses only modules below it, and the token, password and storage rooms
//! use nothing of HTTP. ARCHITECTURE.md draws the same picture.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules, top to bottom: each may use only modules of a lower rank, so two of
/// one rank (`api` and `gateway`) never use each other.
const RANKS: &[(&str, u8)] = &[
    ("cli", 7),
    ("server", 6),
    ("api", 5),
    ("gateway", 5),
    ("http", 4),
    ("service", 3),
    ("config", 2),
    ("django_import", 2),
    ("throttle", 2),
    ("password", 1),
    ("request_id", 1),
    ("store", 1),
    ("target", 1),
    ("token", 1),
];

fn rank(module: &str) -> Option<u8> {
    RANKS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|&(_, r)| r)
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file belongs to: `src/server/front.rs` is `server`.
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// The top-level modules named by `crate::` paths in `text`.
fn used_modules(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &text[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn modules_use_only_modules_below_them() {
    let mut wrong = Vec::new();
    for file in rust_files(&src()) {
        let module = module_of(&file);
        if module == "lib" || module == "main" {
            continue;
        }
        let own = rank(&module).unwrap_or_else(|| panic!("{module} has no place in RANKS"));
        let text = std::fs::read_to_string(&file).unwrap();
        for used in used_modules(&text) {
            if used == module {
                continue;
            }
            match rank(&used) {
                Some(r) if r < own => {}
                _ => wrong.push(format!("{} uses {used}", file.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows against the house:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn token_password_and_store_use_nothing_of_http() {
    let mut rooms = rust_files(&src().join("token"));
    rooms.extend(rust_files(&src().join("store")));
    rooms.extend(rust_files(&src().join("password")));
    for file in rooms {
        let text = std::fs::read_to_string(&file).unwrap();
        for web in ["axum", "hyper", "tower", "crate::http"] {
            assert!(!text.contains(web), "{} uses {web}", file.display());
        }
        let is_token = file.starts_with(src().join("token"));
        assert!(
            !(is_token && text.contains("rusqlite")),
            "{} uses rusqlite",
            file.display()
        );
    }
}

#[test]
fn the_reader_finds_the_arrows() {
    let text = "use crate::http::error::ApiError;\nlet x = crate::service::AuthService::new;";
    let found: Vec<String> = used_modules(text).into_iter().collect();
    assert_eq!(found, ["http", "service"]);
    assert_eq!(module_of(&src().join("server").join("front.rs")), "server");
    assert_eq!(module_of(&src().join("cli.rs")), "cli");
}

/// Error statuses a file outside `src/http/` may still name, and why none of them writes an
/// error body there.
const STATUS_ALLOWED: &[(&str, &str, &str)] = &[
    // Readiness answers `{"status": "unavailable", ...}`, a status report, not an error body.
    (
        "api/health.rs",
        "SERVICE_UNAVAILABLE",
        "readyz's status body",
    ),
    // Matches axum's rejection to choose the `ApiError` that answers it.
    ("api/body.rs", "PAYLOAD_TOO_LARGE", "reads a rejection"),
    // Matches `ServeDir`'s answer to choose the `ApiError` that answers it.
    (
        "gateway/static_files/mod.rs",
        "NOT_FOUND",
        "reads ServeDir's answer",
    ),
];

/// The `StatusCode` constant of `status`, spelled as the http crate spells it from its reason
/// phrase: "Bad Request" is `BAD_REQUEST`, "I'm a teapot" is `IM_A_TEAPOT`.
fn constant_name(status: axum::http::StatusCode) -> Option<String> {
    let reason = status.canonical_reason()?;
    Some(
        reason
            .chars()
            .filter(|&c| c != '\'')
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect(),
    )
}

#[test]
fn error_bodies_are_written_only_in_http() {
    let errors: Vec<String> = (400..600)
        .filter_map(|code| axum::http::StatusCode::from_u16(code).ok())
        .filter_map(constant_name)
        .collect();
    assert!(
        errors.contains(&"BAD_GATEWAY".to_owned()) && errors.contains(&"IM_A_TEAPOT".to_owned())
    );
    let http = src().join("http");
    let mut wrong = Vec::new();
    let mut used = BTreeSet::new();
    for file in rust_files(&src()) {
        if file.starts_with(&http) {
            continue;
        }
        let relative = file
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap();
        // A JSON body with a `detail` key, in a raw string, an escaped string or `json!`.
        for body in [r#""detail""#, r#"\"detail\""#, r#"{"detail"#] {
            if text.contains(body) {
                wrong.push(format!("{relative} writes {body}"));
            }
        }
        for (at, _) in text.match_indices("StatusCode::") {
            let rest = &text[at + "StatusCode::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            let allowed = STATUS_ALLOWED
                .iter()
                .position(|&(f, n, _)| f == relative && n == name);
            used.extend(allowed);
            if (errors.iter().any(|e| e == name) || name == "from_u16") && allowed.is_none() {
                wrong.push(format!("{relative} answers StatusCode::{name}"));
            }
        }
    }
    // An entry nothing needs any more is one to remove, not to keep as a hole.
    for (i, (file, name, why)) in STATUS_ALLOWED.iter().enumerate() {
        if !used.contains(&i) {
            wrong.push(format!("{file} no longer names StatusCode::{name} ({why})"));
        }
    }
    assert!(
        wrong.is_empty(),
        "error responses outside src/http/ (build them through http::error):\n{}",
        wrong.join("\n")
    );
}

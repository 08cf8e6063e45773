//! README.md's quick start, run as a new user pastes it: the walk-through block in bash against a
//! real `handstamp serve`, its output held to the `# ...` lines the README shows under each command.

use crate::common::process::{serve, text};
use std::process::Command;

const README: &str = include_str!("../../README.md");

/// The `n`th ```sh block of the section headed `heading`.
fn sh_block(heading: &str, n: usize) -> &'static str {
    let section = README
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("README has no section `{heading}`"));
    section
        .split("```sh\n")
        .nth(n + 1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap_or_else(|| panic!("`{heading}` has no sh block {n}"))
}

/// The output the README promises: its comment lines, without the remarks in parentheses after
/// a wide gap.
fn promised(block: &str) -> Vec<&str> {
    block
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .map(|line| line.split("   ").next().unwrap().trim_end())
        .collect()
}

/// Whether `line` is `pattern` with each `...` standing for a run of token characters.
fn matches(pattern: &str, line: &str) -> bool {
    let token = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    match pattern.split_once("...") {
        None => pattern == line,
        Some((head, tail)) => line.strip_prefix(head).is_some_and(|rest| {
            let run = rest.find(|c| !token(c)).unwrap_or(rest.len());
            // The run may end early where the pattern goes on with token characters.
            (0..=run).any(|taken| matches(tail, &rest[taken..]))
        }),
    }
}

#[test]
fn the_quick_start_walk_through_runs_as_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let block = sh_block("Quick start", 1);
    assert!(block.contains("./target/release/handstamp") && block.contains("localhost:8000"));
    let script = block
        .replace(
            "./target/release/handstamp",
            env!("CARGO_BIN_EXE_handstamp"),
        )
        .replace("localhost:8000", &server.addr);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // curl prints no newline of its own: the answers may share a line.
    let got: Vec<&str> = stdout
        .split_inclusive(['\n', '}'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let want = promised(block);
    assert_eq!(got.len(), want.len(), "got:\n{stdout}\nwant:\n{want:#?}");
    for (got, want) in got.iter().zip(&want) {
        assert!(
            matches(want, got),
            "README shows `{want}`, the server said `{got}`"
        );
    }
}

#[test]
fn the_placeholder_matcher_is_strict() {
    assert!(matches(
        r#"{"access":"eyJ..."}"#,
        r#"{"access":"eyJhb.c-d_e"}"#
    ));
    assert!(matches(
        r#"{"a":"...","b":"..."}"#,
        r#"{"a":"x.y","b":"z"}"#
    ));
    assert!(!matches(r#"{"access":"eyJ..."}"#, r#"{"access":"abc"}"#));
    assert!(!matches(r#"{"a":"..."}"#, r#"{"a":"x","b":"y"}"#));
    assert!(!matches(r#"{"id":1}"#, r#"{"id":2}"#));
}

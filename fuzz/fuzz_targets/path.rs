//! Path normalization on arbitrary paths: it never panics, and whatever it lets through is
//! canonical (normalizing it again changes nothing), starts with `/`, and holds no empty, `.` or
//! `..` segment and nothing a backend could read as one (`%2e`, `%2f`, `%5c`, `\`, `;`, NUL).

#![no_main]

use handstamp::target::normalize_path;
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normal) = normalize_path(path) else {
        return;
    };
    assert!(
        matches!(normalize_path(&normal), Ok(Cow::Borrowed(again)) if again == normal),
        "not canonical: {path:?} -> {normal:?}"
    );
    assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
    let body = normal.strip_prefix('/').unwrap_or(&normal);
    let segments: Vec<&str> = body.split('/').collect();
    // Only the last segment may be empty (a trailing slash, or the root itself).
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            !segment.is_empty() || i + 1 == segments.len(),
            "empty segment: {path:?} -> {normal:?}"
        );
        assert!(
            *segment != "." && *segment != "..",
            "dot segment: {path:?} -> {normal:?}"
        );
    }
    let lower = normal.to_ascii_lowercase();
    for ambiguous in ["%2e", "%2f", "%5c", "%00", "\\", ";", "\0"] {
        assert!(!lower.contains(ambiguous), "{ambiguous}: {path:?} -> {normal:?}");
    }
});

//! Django's stored times as Unix seconds.
//!
//! On SQLite, Django keeps a `DateTimeField` as text: `2026-01-02 03:04:05.123456` (no
//! fraction when it is zero), in UTC when `USE_TZ` is on, as it is by default since Django 5.0;
//! a row written by other means may carry an offset (`+00:00`, `Z`). On PostgreSQL it is a
//! `timestamptz`, read by the driver as a point in time.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a date and time as Django stores them")]
pub struct BadTime(pub String);

/// Whole seconds since the epoch (fractions dropped, as every time of ours is whole seconds).
pub fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => {
            let before = before.duration();
            -(before.as_secs() as i64) - i64::from(before.subsec_nanos() > 0)
        }
    }
}

/// A time as Django's SQLite backend writes it, with an optional UTC offset.
pub fn parse(text: &str) -> Result<i64, BadTime> {
    let bad = || BadTime(text.to_owned());
    let trimmed = text.trim();
    let (local, offset) = split_offset(trimmed).ok_or_else(bad)?;
    let time = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
    Ok(unix_seconds(time) - offset)
}

/// The time without its offset, and the offset in seconds east of UTC (0 when there is none).
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix('Z') {
        return Some((local, 0));
    }
    // An offset is `+HH:MM` or `-HH:MM` after the time part (the date has `-`s of its own).
    let at = text.len().checked_sub(6)?;
    let (local, offset) = text.split_at(at);
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' if local.contains([' ', 'T']) => -1,
        _ => return Some((text, 0)),
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    let hours: i64 = hours.parse().ok()?;
    let minutes: i64 = minutes.parse().ok()?;
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn djangos_sqlite_times_are_read_as_utc() {
        // date -u -d '2026-01-02 03:04:05' +%s
        let t = 1_767_323_045;
        for (text, expected) in [
            ("2026-01-02 03:04:05.123456", t),
            ("2026-01-02 03:04:05", t),
            ("2026-01-02T03:04:05Z", t),
            ("2026-01-02 03:04:05.999999+00:00", t),
            ("2026-01-02 05:04:05+02:00", t),
            ("2026-01-01 22:04:05.5-05:00", t),
        ] {
            assert_eq!(parse(text).unwrap(), expected, "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "2026-01-02",
            "2026-13-02 03:04:05",
            "2026-01-02 03:04:05+2",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}

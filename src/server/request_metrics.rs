//! Requests by route and status, and their latency by route, kept in atomics and rendered in
//! Prometheus' text format.
//!
//! Hand-written because it runs on every request: once a route and status have been seen,
//! counting a request is a read lock, a hash lookup and three relaxed atomic additions, with no
//! allocation and no clock read. The Prometheus exporter's histograms instead store every
//! sample with a timestamp of its own until they are folded into buckets.

use rustc_hash::FxHashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

const REQUESTS: &str = "handstamp_http_requests_total";
const LATENCY: &str = "handstamp_http_request_duration_seconds";

/// Latency buckets' upper bounds, in nanoseconds: from half a millisecond to ten seconds.
const BUCKETS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// One route's figures.
#[derive(Default)]
struct RouteFigures {
    /// Requests by status, in the order the statuses were first seen.
    by_status: Vec<(u16, AtomicU64)>,
    /// Requests by latency bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of the latencies.
    nanos: AtomicU64,
}

impl RouteFigures {
    /// Counts a request whose status this route has already seen; `false` when it has not.
    fn count(&self, status: u16, elapsed: Duration) -> bool {
        let Some((_, count)) = self.by_status.iter().find(|(s, _)| *s == status) else {
            return false;
        };
        count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.nanos.fetch_add(nanos, Relaxed);
        true
    }
}

/// Figures by route. Routes are ours (the router's patterns), never the raw paths clients send,
/// so the map stays small and its hash need not resist chosen keys.
static ROUTES: LazyLock<RwLock<FxHashMap<Box<str>, RouteFigures>>> =
    LazyLock::new(Default::default);

/// Counts one answered request.
pub fn record(route: &str, status: u16, elapsed: Duration) {
    {
        let routes = ROUTES.read().unwrap_or_else(|e| e.into_inner());
        if routes
            .get(route)
            .is_some_and(|figures| figures.count(status, elapsed))
        {
            return;
        }
    }
    let mut routes = ROUTES.write().unwrap_or_else(|e| e.into_inner());
    let figures = routes.entry(route.into()).or_default();
    if !figures.by_status.iter().any(|(s, _)| *s == status) {
        figures.by_status.push((status, AtomicU64::new(0)));
    }
    figures.count(status, elapsed);
}

/// Both families in Prometheus' text exposition format, routes and statuses in order.
pub fn render() -> String {
    let routes = ROUTES.read().unwrap_or_else(|e| e.into_inner());
    // Each route with its label value, in order.
    let mut names: Vec<(&str, String)> = routes.keys().map(|name| (&**name, label(name))).collect();
    names.sort_unstable();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP {REQUESTS} HTTP requests answered, by route and status."
    );
    let _ = writeln!(out, "# TYPE {REQUESTS} counter");
    for (name, route) in &names {
        let mut statuses: Vec<(u16, u64)> = routes[*name]
            .by_status
            .iter()
            .map(|(status, count)| (*status, count.load(Relaxed)))
            .collect();
        statuses.sort_unstable();
        for (status, count) in statuses {
            let _ = writeln!(
                out,
                "{REQUESTS}{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
    }
    let _ = writeln!(
        out,
        "\n# HELP {LATENCY} Time to answer HTTP requests, by route."
    );
    let _ = writeln!(out, "# TYPE {LATENCY} histogram");
    for (name, route) in &names {
        let figures = &routes[*name];
        let mut cumulative = 0;
        for (i, bucket) in figures.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            let bound = BUCKETS
                .get(i)
                .map_or("+Inf".to_owned(), |&nanos| seconds(nanos).to_string());
            let _ = writeln!(
                out,
                "{LATENCY}_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let sum = seconds(figures.nanos.load(Relaxed));
        let _ = writeln!(out, "{LATENCY}_sum{{route=\"{route}\"}} {sum}");
        let _ = writeln!(out, "{LATENCY}_count{{route=\"{route}\"}} {cumulative}");
    }
    out.push('\n');
    out
}

/// Nanoseconds as seconds; a bucket's bound prints as written above in seconds (`0.0005`, `1`).
fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// A label value as the text format escapes it.
fn label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// The cumulative count of `route`'s latency bucket `le`.
    fn bucket(text: &str, route: &str, le: &str) -> Option<u64> {
        let series = format!(r#"{LATENCY}_bucket{{route="{route}",le="{le}"}}"#);
        sample(text, &series)
    }

    #[test]
    fn counts_by_status_and_buckets_latency_cumulatively() {
        let route = "/test/counts";
        record(route, 200, Duration::from_micros(400));
        record(route, 200, Duration::from_millis(3));
        record(route, 401, Duration::from_secs(20));
        let text = render();
        let requests = |status| {
            sample(
                &text,
                &format!(r#"{REQUESTS}{{route="{route}",status="{status}"}}"#),
            )
        };
        assert_eq!(requests(200), Some(2));
        assert_eq!(requests(401), Some(1));
        assert_eq!(requests(500), None);
        let bucket = |le| bucket(&text, route, le);
        assert_eq!(bucket("0.0005"), Some(1));
        assert_eq!(bucket("0.0025"), Some(1));
        assert_eq!(bucket("0.005"), Some(2));
        assert_eq!(bucket("10"), Some(2));
        assert_eq!(bucket("+Inf"), Some(3));
        assert_eq!(
            sample(&text, &format!(r#"{LATENCY}_count{{route="{route}"}}"#)),
            Some(3)
        );
        let sum = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!(r#"{LATENCY}_sum{{route="{route}"}} "#)))
            .unwrap();
        assert_eq!(sum, "20.0034");
    }

    #[test]
    fn a_bound_belongs_to_its_own_bucket() {
        let route = "/test/bounds";
        record(route, 200, Duration::from_millis(1));
        let text = render();
        let bucket = |le| bucket(&text, route, le);
        assert_eq!(bucket("0.0005"), Some(0));
        assert_eq!(bucket("0.001"), Some(1));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"/a"b\c"#), r#"/a\"b\\c"#);
    }
}

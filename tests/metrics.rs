//! `/metrics` counts what this test did (alone in its process, so the counts are exact).

mod common;

use common::*;
use serde_json::json;

async fn scrape(s: &TestServer) -> String {
    s.client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample whose line starts with `series`, or 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_logins_tokens_and_requests() {
    let s = TestServer::start().await;
    s.create_user("mo", "pw").await;
    let (refresh, _) = s.login("mo", "pw").await;
    let (other, _) = s.login("mo", "pw").await;
    for password in ["bad", "worse"] {
        let r = s
            .post(
                "/api/token/",
                json!({"username": "mo", "password": password}),
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = s
        .post("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .post("/api/token/blacklist/", json!({"refresh": other}))
        .await;
    assert_eq!(r.status(), 200);

    let text = scrape(&s).await;
    assert_eq!(
        sample(&text, r#"handstamp_logins_total{outcome="ok"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"handstamp_logins_total{outcome="failed"}"#),
        2.0
    );
    assert_eq!(sample(&text, "handstamp_tokens_issued_total"), 2.0);
    assert_eq!(sample(&text, "handstamp_tokens_refreshed_total"), 1.0);
    assert_eq!(
        sample(&text, "handstamp_tokens_blacklisted_total"),
        2.0,
        "rotation and blacklist"
    );
    assert_eq!(
        sample(
            &text,
            r#"handstamp_http_requests_total{route="/api/token/",status="401"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"handstamp_http_request_duration_seconds_count{route="/api/token/"}"#
        ),
        4.0
    );
}

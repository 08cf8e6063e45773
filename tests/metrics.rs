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

    // Routes answered before the router are counted under the same names.
    let r = s.client.get(s.url("/api/users/me/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, access) = s.login("mo", "pw").await;
    let r = s.get_bearer("/api/auth/check", &access).await;
    assert_eq!(r.status(), 200);

    let text = scrape(&s).await;
    assert_eq!(
        sample(&text, r#"handstamp_logins_total{outcome="ok"}"#),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"handstamp_logins_total{outcome="failed"}"#),
        2.0
    );
    assert_eq!(sample(&text, "handstamp_tokens_issued_total"), 3.0);
    assert_eq!(sample(&text, "handstamp_tokens_refreshed_total"), 1.0);
    assert_eq!(
        sample(&text, "handstamp_tokens_blacklisted_total"),
        2.0,
        "rotation and blacklist"
    );
    for (route, status) in [("/api/users/me/", 401), ("/api/auth/check", 200)] {
        let series =
            format!(r#"handstamp_http_requests_total{{route="{route}",status="{status}"}}"#);
        assert_eq!(sample(&text, &series), 1.0, "{series}\n{text}");
    }
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
        5.0
    );
}

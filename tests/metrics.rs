//! `/metrics`: it counts what the tests did (the counts are exact: no other test here makes
//! the requests the first one counts), and who may read it.

// A binary of its own: the counters are process-wide, and the tests in `tests/api/` would move them.
#[path = "api/common/mod.rs"]
mod common;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use common::*;
use handstamp::config::Settings;
use handstamp::server::{self, Peer};
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

    // The last login cleared the two failures; five more lock the username (the default), and
    // the refusals after that are counted.
    assert_eq!(sample(&text, "handstamp_logins_throttled_total"), 0.0);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let body = json!({"username": "mo", "password": "bad"});
        statuses.push(s.post("/api/token/", body).await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    let text = scrape(&s).await;
    assert_eq!(sample(&text, "handstamp_logins_throttled_total"), 2.0);
}

/// `GET path` through the whole app as if from `peer`, without a socket: status and body.
async fn from_peer(app: &server::App, method: Method, path: &str, peer: &str) -> (u16, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "x")
        .body(Body::empty())
        .unwrap();
    let peer = Peer {
        addr: peer.parse().unwrap(),
        tls: false,
    };
    let response = app.clone().call_from(request, peer).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn metrics_are_served_to_loopback_peers_only() {
    let s = TestServer::start().await;
    let r = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("handstamp_"));

    let app = server::app(s.service.clone(), &Settings::default());
    for peer in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
        let (status, body) = from_peer(&app, Method::GET, "/metrics", peer).await;
        assert_eq!(status, 200, "{peer}");
        assert!(
            body.contains("handstamp_http_requests_total"),
            "{peer}: {body}"
        );
    }
    // Elsewhere, /metrics is a path like any unknown one, whatever the method.
    let unknown = from_peer(&app, Method::GET, "/no-such-path", "192.0.2.1:5000").await;
    assert_eq!(unknown, (404, r#"{"detail":"Not found."}"#.to_owned()));
    for peer in [
        "192.0.2.1:5000",
        "[2001:db8::1]:5000",
        "[::ffff:192.0.2.1]:5000",
    ] {
        for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
            let answer = from_peer(&app, method.clone(), "/metrics", peer).await;
            let unknown = from_peer(&app, method.clone(), "/no-such-path", peer).await;
            assert_eq!(answer, unknown, "{method} from {peer}");
            assert_eq!(answer.0, 404, "{method} from {peer}");
        }
    }
    // Loopback peers get the usual method check.
    let (status, _) = from_peer(&app, Method::POST, "/metrics", "127.0.0.1:5000").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn metrics_bind_moves_metrics_to_a_listener_of_their_own() {
    let s = TestServer::start_with(|settings| {
        settings.server.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    let r = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(
        reply(r).await,
        (404, json!({"detail": "Not found."})),
        "the public listener never serves metrics, even to loopback"
    );

    let mut settings = Settings::default();
    settings.server.metrics_bind = Some("127.0.0.1:0".into());
    let listener = server::bind(&["127.0.0.1:0".to_string()])
        .await
        .unwrap()
        .remove(0);
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = server::ServeOptions::default();
    let task = tokio::spawn(async move {
        server::serve_metrics(listener, &settings.server, &options, async {
            let _ = stopped.await;
        })
        .await
    });
    let r = s
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("handstamp_"));
    // The management port serves nothing else.
    for path in ["/api/token/", "/healthz", "/"] {
        let r = s
            .client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            reply(r).await,
            (404, json!({"detail": "Not found."})),
            "{path}"
        );
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Static files and proxied paths, answered before the router when nothing else is under their
/// prefix, are counted under the router's names for them, the upstream's bare prefix included.
#[tokio::test]
async fn gateway_routes_are_counted_under_the_routers_names() {
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_url = format!("http://{}", backend.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { "from the backend" });
    tokio::spawn(async move { axum::serve(backend, app).await });
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("a.txt"), "a file").unwrap();
    let dir = files.path().to_path_buf();
    let s = TestServer::start_with(|c: &mut Settings| {
        c.statics = vec![handstamp::config::StaticMount {
            prefix: "/files/".into(),
            dir,
        }];
        c.upstreams = vec![handstamp::config::UpstreamSettings {
            prefix: "/app/".into(),
            backends: vec![backend_url],
            auth: handstamp::config::AuthMode::None,
            balance: handstamp::config::Balance::RoundRobin,
            health_path: "/".into(),
            health_interval: std::time::Duration::from_secs(60),
            ..Default::default()
        }];
    })
    .await;
    for (path, status) in [
        ("/app/", 200),
        ("/app/deep/path", 200),
        ("/app/other", 200),
        ("/files/a.txt", 200),
        ("/files/missing.txt", 404),
    ] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
    }
    let text = scrape(&s).await;
    for (route, status, count) in [
        ("/app/", 200, 1.0),
        ("/app/{*rest}", 200, 2.0),
        ("/files/{*file}", 200, 1.0),
        ("/files/{*file}", 404, 1.0),
    ] {
        let series =
            format!(r#"handstamp_http_requests_total{{route="{route}",status="{status}"}}"#);
        assert_eq!(sample(&text, &series), count, "{series}\n{text}");
    }
}

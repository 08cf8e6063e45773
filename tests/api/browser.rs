//! handstamp's API as a single-page app in real headless Chromium calls it (`common/browser.rs`;
//! skipped without chromedriver, except under CI).

use crate::common::TestServer;
use crate::common::browser::{Browser, Spa, page_server};
use serde_json::{Value, json};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

/// The SPA served by the API's own server: login, then `/me` with the Bearer token.
#[tokio::test]
async fn same_origin_page_logs_in_and_reads_me() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    let spa = Spa::new();
    let server = TestServer::start_with(|s| spa.mount(s)).await;
    let id = server.create_user(USER, PASSWORD).await;

    let url = Spa::url(
        &server,
        &[
            ("flow", "bearer"),
            ("username", USER),
            ("password", PASSWORD),
        ],
    );
    let result = browser.result_of(&url).await;
    browser.close().await;

    assert_eq!(result["failed"], Value::Null, "{result}");
    assert_eq!(result["origin"], format!("http://{}", server.addr));
    let login = &result["steps"]["login"];
    assert_eq!(login["status"], 200, "{result}");
    assert!(login["body"]["access"].is_string(), "{result}");
    let me = &result["steps"]["me"];
    assert_eq!(me["status"], 200, "{result}");
    assert_eq!(me["body"]["username"], USER, "{result}");
    assert_eq!(me["body"]["id"], id, "{result}");
}

/// A page on another origin (same host, another port) cannot read the API's answers: there
/// are no CORS headers, so the browser refuses the login's preflight and `fetch` throws a
/// TypeError, while the same login from outside a browser succeeds.
#[tokio::test]
async fn cross_origin_page_is_refused_without_cors() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    let (pages, _spa) = page_server().await;
    let api = TestServer::start().await;
    api.create_user(USER, PASSWORD).await;
    let api_origin = format!("http://{}", api.addr);

    let url = Spa::url(
        &pages,
        &[
            ("api", &api_origin),
            ("flow", "bearer"),
            ("username", USER),
            ("password", PASSWORD),
        ],
    );
    let result = browser.result_of(&url).await;
    browser.close().await;

    assert_eq!(result["origin"], format!("http://{}", pages.addr));
    assert_ne!(result["origin"], api_origin);
    assert_eq!(result["steps"]["login"]["error"], "TypeError", "{result}");
    assert_eq!(result["steps"]["me"], Value::Null, "{result}");
    assert!(
        result["failed"].as_str().unwrap().starts_with("TypeError"),
        "{result}"
    );
    // The server was up and the credentials right: only the browser stopped the page.
    let r = api
        .post(
            "/api/token/",
            json!({"username": USER, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

/// The cookie flow with no cookie setting: the compatibility contract, in a browser. The login
/// sets no cookie and answers both tokens in the body, and a refresh without `refresh` in the
/// body is refused as simplejwt refuses it, so the flow stops there.
#[tokio::test]
async fn cookie_flow_without_cookie_settings_needs_the_body() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    let spa = Spa::new();
    let server = TestServer::start_with(|s| spa.mount(s)).await;
    server.create_user(USER, PASSWORD).await;

    let url = Spa::url(
        &server,
        &[
            ("flow", "cookie"),
            ("credentials", "include"),
            ("username", USER),
            ("password", PASSWORD),
        ],
    );
    let result = browser.result_of(&url).await;
    browser.close().await;

    let login = &result["steps"]["login"];
    assert_eq!(login["status"], 200, "{result}");
    assert!(login["body"]["refresh"].is_string(), "{result}");
    assert_eq!(result["cookieAfterLogin"], "", "{result}");
    let refresh = &result["steps"]["refresh"];
    assert_eq!(refresh["status"], 400, "{result}");
    assert_eq!(
        refresh["body"],
        json!({"refresh": ["This field is required."]}),
        "{result}"
    );
    assert_eq!(result["failed"], "Error: refresh answered 400", "{result}");
    assert_eq!(result["steps"]["me"], Value::Null, "{result}");
}

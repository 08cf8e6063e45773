//! The example app in examples/protected_api.rs, served and called over HTTP.

#[path = "../../examples/protected_api.rs"]
mod protected_api;

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn the_example_protects_its_own_routes() {
    let s = TestServer::start().await;
    s.create_user("ada", "pw").await;
    let listeners = handstamp::server::bind(&["127.0.0.1:0".into()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let app = handstamp::server::layered(
        protected_api::app(s.service.clone()),
        &handstamp::Settings::default().server,
    );
    tokio::spawn(handstamp::server::serve(
        listeners,
        app,
        std::future::pending(),
    ));
    let url = |path: &str| format!("http://{addr}{path}");

    let r = s.client.get(url("/hello")).send().await.unwrap();
    let expected = json!({"detail": "Authentication credentials were not provided."});
    assert_eq!(reply(r).await, (401, expected));

    let r = s
        .client
        .post(url("/api/token/"))
        .json(&json!({"username": "ada", "password": "pw"}))
        .send()
        .await
        .unwrap();
    let (status, pair) = reply(r).await;
    assert_eq!(status, 200);
    let access = pair["access"].as_str().unwrap();
    let r = s
        .client
        .get(url("/hello"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply(r).await,
        (200, json!({"message": "hello", "user_id": "1"}))
    );
    let r = s
        .client
        .get(url("/profile"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply(r).await,
        (200, json!({"username": "ada", "staff": false}))
    );

    s.service.store().set_active("ada", false).await.unwrap();
    let r = s
        .client
        .get(url("/profile"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the user is loaded and checked");
    let r = s
        .client
        .get(url("/hello"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the stateless route only checks the token");
}

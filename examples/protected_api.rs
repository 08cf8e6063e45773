//! A small API of one's own, protected by handstamp: the counterpart of a DRF view with
//! `JWTAuthentication` and `IsAuthenticated`.
//!
//! ```sh
//! echo pw | cargo run -- user create alice --password-stdin
//! cargo run --example protected_api
//! curl -s -X POST localhost:3000/api/token/ -H 'content-type: application/json' \
//!      -d '{"username": "alice", "password": "pw"}'
//! curl -s localhost:3000/hello -H "Authorization: Bearer $ACCESS"
//! ```

use axum::extract::{FromRef, State};
use axum::{Json, Router, routing::get};
use handstamp::{AuthService, Authenticated, CurrentUser, Settings, server, store};
use serde_json::{Value, json};
use std::sync::Arc;

/// The app's own state; handstamp's extractors find the auth service in it through `FromRef`.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<AuthService>,
    pub greeting: &'static str,
}

impl FromRef<AppState> for Arc<AuthService> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// Stateless: the token alone is checked, in memory.
async fn hello(auth: Authenticated, State(state): State<AppState>) -> Json<Value> {
    Json(json!({"message": state.greeting, "user_id": auth.user_id}))
}

/// Loads the user, who must still exist and be active.
async fn profile(CurrentUser(user): CurrentUser) -> Json<Value> {
    Json(json!({"username": user.username, "staff": user.is_staff}))
}

/// handstamp's token routes next to the app's own.
pub fn app(auth: Arc<AuthService>) -> Router {
    let own = Router::new()
        .route("/hello", get(hello))
        .route("/profile", get(profile))
        .with_state(AppState {
            auth: auth.clone(),
            greeting: "hello",
        });
    handstamp::api::router(auth).merge(own)
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::load(None)?;
    let store = store::open("sqlite://handstamp.sqlite3").await?;
    let auth = Arc::new(AuthService::new(settings.jwt, store).await?);
    let app = server::layered(app(auth), &settings.server);
    let listeners = server::bind(&["127.0.0.1:3000".to_string()]).await?;
    server::serve(listeners, app, server::shutdown_signal()).await?;
    Ok(())
}

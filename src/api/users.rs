//! The signed-in user.

use crate::http::auth::CurrentUser;
use axum::Json;
use serde::Serialize;

#[derive(Serialize)]
pub struct Me {
    id: i64,
    username: String,
}

pub async fn me(CurrentUser(user): CurrentUser) -> Json<Me> {
    Json(Me {
        id: user.id,
        username: user.username,
    })
}

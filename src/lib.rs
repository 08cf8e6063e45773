//! handstamp: a JWT authentication server and library, wire-compatible with
//! djangorestframework-simplejwt.
//!
//! A Rust app mounts [`api::router`] and protects its own handlers with the
//! [`Authenticated`] or [`CurrentUser`] extractors; see `examples/`.

pub mod api;
pub mod cli;
pub mod config;
pub mod django_import;
pub mod gateway;
pub mod http;
pub mod password;
pub mod request_id;
pub mod server;
pub mod service;
pub mod store;
pub mod target;
pub mod throttle;
pub mod token;

pub use config::Settings;
pub use http::auth::{Authenticated, CurrentUser};
pub use http::error::ApiError;
pub use service::AuthService;

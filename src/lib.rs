//! handstamp: a JWT authentication server and library, wire-compatible with
//! djangorestframework-simplejwt.
//!
//! A Rust app mounts [`api::router`] and protects its own handlers with the
//! [`auth::Authenticated`] or [`auth::CurrentUser`] extractors; see `examples/`.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod gateway;
pub mod password;
pub mod request_id;
pub mod server;
pub mod service;
pub mod store;
pub mod target;
pub mod token;

pub use auth::{Authenticated, CurrentUser};
pub use config::Settings;
pub use service::AuthService;

//! termroom's UI and API contract, compiled for both the server (`ssr`) and the
//! browser (`hydrate`).
//!
//! - [`protocol`]: every WebSocket message (chat JSON, terminal binary frames).
//! - [`api`]: server functions, the HTTP API; thin wrappers over [`backend`].
//! - [`backend`] (server only): traits the server implements and provides as context.
//! - [`model`], [`error`]: data and the error type shared by both sides.
//! - [`pages`], [`components`]: Leptos views; `components::xterm` and
//!   `components::player` wrap the JS libraries (browser only).
#![forbid(unsafe_code)]
// Leptos view types nest deeply (the admin page especially).
#![recursion_limit = "256"]

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod components;
pub mod error;
pub mod model;
pub mod pages;
pub mod protocol;
mod shell;

pub use shell::{shell, App};

//! Reusable views and browser-only bindings.
//!
//! - [`auth`], [`nav`]: who is logged in, the guard for protected pages, the top bar.
//! - [`browser`]: tiny helpers around `window` (storage, dialogs, URLs); call them
//!   only in effects and event handlers.
//! - [`socket`]: the reconnecting WebSocket shared by the chat and terminal
//!   clients (policy in plain Rust, thin browser glue).
//! - [`chat_log`], [`chat_socket`]: the chat client (per-room logs, `/ws`).
//! - [`term`]: terminal tabs (state, pane, flow control, persistence); its
//!   `live` module and [`xterm`] are the browser-only island (`hydrate`).
//! - `player`: the asciinema-player binding for the recording player (`hydrate`).
//! - `watch_view`: a watcher's read-only terminal on `/ws/watch/{id}` (`hydrate`).
pub mod auth;
pub mod browser;
pub mod chat_log;
pub mod chat_socket;
pub mod nav;
#[cfg(feature = "hydrate")]
pub mod player;
pub mod socket;
pub mod term;
#[cfg(feature = "hydrate")]
pub mod watch_view;
#[cfg(feature = "hydrate")]
pub mod xterm;

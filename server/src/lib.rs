//! termroom's server: everything that does I/O.
//!
//! A tour, outside in:
//! - [`cli`] parses the command line; `main.rs` dispatches to [`web::run`] or an
//!   admin subcommand ([`admin`]).
//! - [`config`] holds the settings every part reads.
//! - [`web`] builds the axum router (Leptos pages, server functions, WebSockets)
//!   and serves it on an injected listener until a shutdown signal; [`drain`]
//!   decides when that is (live terminals may finish first).
//! - [`ws`] adapts WebSockets to the core: origin checks, tickets, frame decoding.
//! - [`chat`] is the chat hub: rooms, presence, fan-out (transport-independent).
//! - [`term`] owns terminal sessions: SSH (russh) and local PTY targets, the
//!   output ring buffer, the screen model, flow control.
//! - [`auth`] hashes passwords, issues and redeems tickets, rate-limits logins.
//! - [`services`] implements the `app::backend` traits that server functions call.
//! - [`db`] holds the pool, migrations and per-table queries; [`secrets`]
//!   encrypts host secrets at rest.
//! - [`revocation`] notices database changes made by the command line (or
//!   another node) and closes what they forbid; purges expired rows.
//! - [`memory`] tunes the allocator so bursts give their memory back.
// The one exception is `memory` (two libc calls to the allocator).
#![deny(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod drain;
pub mod guard;
pub mod http;
pub mod memory;
pub mod recordings;
pub mod revocation;
pub mod secrets;
pub mod services;
pub mod state;
pub mod sync;
pub mod term;
pub mod web;
pub mod ws;

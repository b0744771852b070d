//! Shared server state: what every handler and service can reach.
use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::{
    auth::ratelimit::LoginLimiter, chat::ChatHub, config::Config, db::Db, secrets::SecretBox,
    term::TermManager, ws::registry::SocketRegistry,
};

/// The core services, shared behind one `Arc`.
pub struct Core {
    /// Database pool.
    pub db: Db,
    /// Resolved settings.
    pub config: Config,
    /// Chat hub handle.
    pub hub: ChatHub,
    /// Terminal sessions.
    pub terms: Arc<TermManager>,
    /// Host-secret encryption.
    pub secrets: SecretBox,
    /// Failed-login slow-down.
    pub login_limiter: LoginLimiter,
    /// Password hashing workers (bounded; shared by login and user creation).
    pub hasher: crate::auth::password::HashPool,
    /// Open terminal sockets by login session (closed on logout).
    pub sockets: SocketRegistry,
}

/// Axum state: Leptos settings plus the core.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Leptos settings (site root, output name).
    pub leptos_options: LeptosOptions,
    /// The core services.
    pub core: Arc<Core>,
}

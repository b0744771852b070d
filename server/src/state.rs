//! Shared server state: what every handler and service can reach.
use std::sync::Arc;

use tokio::sync::Notify;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::{
    auth::ratelimit::LoginLimiter, chat::ChatHub, cluster::broker::Broker, config::Config, db::Db,
    secrets::SecretBox, term::TermManager, ws::registry::SocketRegistry,
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
    /// With several nodes: the broker, to hint changes to the others.
    pub broker: Option<Broker>,
    /// Woken when another node hints that access changed: the revocation
    /// watcher then checks at once.
    pub access_changed: Arc<Notify>,
}

impl Core {
    /// After this node changed access (and acted on it for its own
    /// sockets): the other nodes check at once instead of at their next
    /// poll. A hint only: the change is in the database already.
    pub fn hint_access_changed(&self) {
        if let Some(b) = &self.broker {
            b.access_changed();
        }
    }
}

/// Axum state: Leptos settings plus the core.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Leptos settings (site root, output name).
    pub leptos_options: LeptosOptions,
    /// The core services.
    pub core: Arc<Core>,
}

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
    /// Woken when another node hints that it wrote a change (access, a
    /// termination or freeze request): the revocation watcher checks at once.
    pub changed_elsewhere: Arc<Notify>,
}

impl Core {
    /// After this node wrote a change the others act on (access, or a
    /// request to end or freeze a session another node holds): they check
    /// at once instead of at their next poll. A hint only: the change is in
    /// the database already.
    pub fn hint_changed(&self) {
        if let Some(b) = &self.broker {
            b.hint_changed();
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

//! Implementations of the `app::backend` traits that server functions call.
pub mod accounts;
pub mod directory;
pub mod recordings;
pub mod terminals;

use std::sync::Arc;

use app::{backend::Services, error::ApiError};
use tracing::{error, warn};

use crate::{
    db::{self, Db},
    state::Core,
};

/// Builds the services provided to server functions as Leptos context.
pub fn services(core: Arc<Core>) -> Services {
    Services {
        accounts: Arc::new(accounts::AccountService(core.clone())),
        directory: Arc::new(directory::DirectoryService(core.clone())),
        terminals: Arc::new(terminals::TerminalService(core.clone())),
        recordings: Arc::new(recordings::RecordingService(core)),
    }
}

/// Logs an internal failure and hides its detail from the caller.
pub(crate) fn internal(err: impl std::fmt::Display) -> ApiError {
    error!("internal error: {err}");
    ApiError::Internal("see server log".into())
}

/// Appends an audit event; a failure is logged and never fails the action
/// (which has already happened). `actor` is the user, None for the system.
pub(crate) async fn audit(
    db: &Db,
    actor: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) {
    if let Err(e) = db::audit::record(db, actor, action, target, detail).await {
        warn!(action, "recording an audit event failed: {e}");
    }
}

/// Checks a name used for users, namespaces and hosts: 1..=64 of `[A-Za-z0-9_.-]`.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    if app::protocol::chat::valid_room_name(name) {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "{kind} name must be 1-64 characters of letters, digits, '_', '-', '.'"
        )))
    }
}

//! Implementations of the `app::backend` traits that server functions call.
pub mod accounts;
pub mod directory;
pub mod monitoring;
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
        recordings: Arc::new(recordings::RecordingService(core.clone())),
        monitoring: Arc::new(monitoring::MonitoringService(core)),
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

/// Posts `text` into the chat room `room` as the caller (an existing room,
/// the caller's message rate, stored before it is broadcast) and audits
/// `action` on `target`.
pub(crate) async fn post_to_room(
    core: &Core,
    caller: &app::backend::Caller,
    room: &str,
    text: String,
    action: &str,
    target: &str,
) -> Result<(), ApiError> {
    use app::protocol::chat::ErrorCode;
    let room = room.trim();
    if room.is_empty() {
        return Err(ApiError::Invalid("choose a room".into()));
    }
    match core
        .hub
        .announce(caller.user.id, &caller.user.name, room, text)
        .await
    {
        Ok(Ok(())) => {
            let detail = format!("to room {room}");
            audit(
                &core.db,
                Some(&caller.user.name),
                action,
                Some(target),
                Some(&detail),
            )
            .await;
            Ok(())
        }
        Ok(Err(ErrorCode::BadRoom)) => Err(ApiError::NotFound(format!("no room {room}"))),
        Ok(Err(ErrorCode::RateLimited)) => Err(ApiError::RateLimited(1)),
        Ok(Err(code)) => Err(ApiError::Invalid(format!("not posted: {code:?}"))),
        Err(e) => Err(internal(e)),
    }
}

/// `YYYY-MM-DD` (a page's date filter) as the RFC 3339 start of that day
/// (UTC), `plus_days` later; `None` for an empty field.
pub(crate) fn day(text: &str, plus_days: i64) -> Result<Option<String>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::Invalid(format!("{text:?} is not a date like 2026-12-01")))?;
    let date = date + chrono::Duration::days(plus_days);
    Ok(Some(format!("{}T00:00:00.000Z", date.format("%Y-%m-%d"))))
}

/// A page's text filter: `None` when empty.
pub(crate) fn some(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
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

/// With several nodes: the running sessions that other live nodes hold
/// (none with a single node).
pub(crate) async fn sessions_elsewhere(
    core: &Core,
) -> Result<Vec<db::terminal_sessions::TermSessionRow>, db::DbError> {
    let Some(me) = core.config.node_id.as_deref() else {
        return Ok(Vec::new());
    };
    let alive: std::collections::HashSet<String> =
        db::nodes::alive(&core.db, crate::cluster::dead_before())
            .await?
            .into_iter()
            .map(|n| n.id)
            .collect();
    Ok(db::terminal_sessions::live(&core.db)
        .await?
        .into_iter()
        .filter(|r| {
            r.node_id
                .as_deref()
                .is_some_and(|n| n != me && alive.contains(n))
        })
        .collect())
}

/// With several nodes: running session `id` when another live node holds it.
pub(crate) async fn session_elsewhere(
    core: &Core,
    id: &str,
) -> Result<Option<db::terminal_sessions::TermSessionRow>, db::DbError> {
    Ok(sessions_elsewhere(core)
        .await?
        .into_iter()
        .find(|r| r.id == id))
}

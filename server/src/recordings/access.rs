//! Who may read a recording: admins all; members their own sessions', and
//! those of a namespace that shares recordings with its members. Everyone
//! else is told it does not exist.
use crate::db::{self, terminal_sessions::TermSessionRow, Db, DbError};

/// Whether `user_id` (an admin if `admin`) may read `row`'s recording.
pub async fn may_read(
    db: &Db,
    user_id: i64,
    admin: bool,
    row: &TermSessionRow,
) -> Result<bool, DbError> {
    if admin || row.user_id == user_id {
        return Ok(true);
    }
    if row.namespace.is_empty() {
        return Ok(false);
    }
    let settings = db::namespaces::recording_settings(db, &row.namespace).await?;
    if !settings.shared {
        return Ok(false);
    }
    match db::namespaces::id_by_name(db, &row.namespace).await? {
        Some(ns) => db::namespaces::is_member(db, ns, user_id).await,
        None => Ok(false),
    }
}

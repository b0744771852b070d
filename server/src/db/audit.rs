//! The append-only audit log.
use super::{now_rfc3339, Db, DbError};

/// Appends one audit event. `actor` is a user name (None for the system and
/// the command line).
pub async fn record(
    db: &Db,
    actor: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(now_rfc3339())
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}

/// One audit event, newest first in [`recent`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// The most recent events, newest first.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<AuditEvent>, DbError> {
    Ok(sqlx::query_as::<_, AuditEvent>(
        "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

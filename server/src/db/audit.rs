//! The append-only audit trail (`audit_events`; triggers refuse updates and deletes).
use super::{now_rfc3339, stored_time, Db, DbError};

/// Appends one audit event. `actor` is a user name (None for the system and
/// the command line).
pub async fn record(
    db: &Db,
    actor: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query(
        "INSERT INTO audit_events (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now_rfc3339())
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(p)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// One audit event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    /// Position in the trail (grows with every event).
    pub id: i64,
    /// RFC 3339 time it was recorded.
    pub at: String,
    /// User name; `None` for the system and the command line.
    pub actor: Option<String>,
    /// What happened, e.g. `login.failed`, `guard.rule_added`.
    pub action: String,
    /// What it happened to (a user, host, namespace, session...).
    pub target: Option<String>,
    /// Free text.
    pub detail: Option<String>,
}

/// The most recent events, newest first.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<AuditEvent>, DbError> {
    Ok(crate::on_db!(db, p => sqlx::query_as::<_, AuditEvent>(
        "SELECT id, at, actor, action, target, detail FROM audit_events ORDER BY id DESC LIMIT $1",
    )
    .bind(limit.max(0))
    .fetch_all(p)
    .await)?)
}

/// Events in the order they happened (oldest first), as a log reads.
/// With `since` (RFC 3339, any offset): the first `limit` events at or after
/// it; without: the last `limit` events. A `since` that is not RFC 3339 is
/// [`DbError::BadTime`].
pub async fn list(db: &Db, since: Option<&str>, limit: i64) -> Result<Vec<AuditEvent>, DbError> {
    let limit = limit.max(0);
    let rows = match since {
        Some(since) => crate::on_db!(db, p => sqlx::query_as::<_, AuditEvent>(
                "SELECT id, at, actor, action, target, detail FROM audit_events \
                 WHERE at >= $1 ORDER BY id LIMIT $2",
            )
            .bind(stored_time(since)?)
            .bind(limit)
            .fetch_all(p)
            .await)?,
        None => crate::on_db!(db, p => sqlx::query_as::<_, AuditEvent>(
                "SELECT id, at, actor, action, target, detail FROM \
                 (SELECT id, at, actor, action, target, detail FROM audit_events ORDER BY id DESC LIMIT $1) AS last \
                 ORDER BY id",
            )
            .bind(limit)
            .fetch_all(p)
            .await)?,
    };
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_db;

    /// Appends an event with a chosen time (inserts are what the trail allows).
    async fn record_at(db: &Db, at: &str, action: &str) {
        crate::on_db!(db, p => sqlx::query("INSERT INTO audit_events (at, action) VALUES ($1, $2)")
            .bind(at)
            .bind(action)
            .execute(p)
            .await.map(|r| r.rows_affected()))
        .unwrap();
    }

    #[tokio::test]
    async fn audit_events_are_append_only() {
        let (_dir, db) = test_db().await;
        record(&db, Some("alice"), "login.ok", Some("alice"), None)
            .await
            .unwrap();
        let update =
            crate::on_db!(&db, p => sqlx::query("UPDATE audit_events SET action = 'nothing'")
            .execute(p)
            .await.map(|r| r.rows_affected()))
            .expect_err("update refused");
        assert!(update.to_string().contains("append-only"), "{update}");
        let delete = crate::on_db!(&db, p => sqlx::query("DELETE FROM audit_events")
            .execute(p)
            .await.map(|r| r.rows_affected()))
        .expect_err("delete refused");
        assert!(delete.to_string().contains("append-only"), "{delete}");
        let events = recent(&db, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "login.ok", "unchanged");
    }

    #[tokio::test]
    async fn list_reads_oldest_first_from_since_or_the_last_events() {
        let (_dir, db) = test_db().await;
        record_at(&db, "2020-01-01T00:00:00.000Z", "a").await;
        record_at(&db, "2021-01-01T00:00:00.000Z", "b").await;
        record(&db, None, "c", None, None).await.unwrap();
        record(&db, None, "d", None, None).await.unwrap();
        let actions = |events: Vec<AuditEvent>| -> Vec<String> {
            events.into_iter().map(|e| e.action).collect()
        };
        assert_eq!(
            actions(list(&db, None, 2).await.unwrap()),
            ["c", "d"],
            "the last two, oldest first"
        );
        // 2021-01-01T00:00:00Z given with an offset.
        assert_eq!(
            actions(
                list(&db, Some("2021-01-01T01:00:00+01:00"), 2)
                    .await
                    .unwrap()
            ),
            ["b", "c"],
            "the first two from `since`"
        );
        assert_eq!(
            actions(
                list(&db, Some("2021-01-01T00:00:00.001Z"), 10)
                    .await
                    .unwrap()
            ),
            ["c", "d"]
        );
        assert!(matches!(
            list(&db, Some("last tuesday"), 10).await,
            Err(DbError::BadTime(_))
        ));
    }
}

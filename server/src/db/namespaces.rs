//! Rows of `namespaces` and `memberships`.
use app::model::NamespaceInfo;

use super::{now_rfc3339, Db, DbError};

/// Creates a namespace.
pub async fn create(db: &Db, name: &str) -> Result<i64, DbError> {
    let (id,): (i64,) = crate::on_db!(db, p => sqlx::query_as("INSERT INTO namespaces (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now_rfc3339())
            .fetch_one(p)
            .await)?;
    Ok(id)
}

/// A namespace id by name.
pub async fn id_by_name(db: &Db, name: &str) -> Result<Option<i64>, DbError> {
    let row: Option<(i64,)> = crate::on_db!(db, p => sqlx::query_as("SELECT id FROM namespaces WHERE name = $1")
        .bind(name)
        .fetch_optional(p)
        .await)?;
    Ok(row.map(|r| r.0))
}

/// Adds a member (idempotent).
pub async fn grant(db: &Db, namespace_id: i64, user_id: i64) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query(
        "INSERT INTO memberships (namespace_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(namespace_id)
    .bind(user_id)
    .execute(p)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes a member.
pub async fn revoke(db: &Db, namespace_id: i64, user_id: i64) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("DELETE FROM memberships WHERE namespace_id = $1 AND user_id = $2")
        .bind(namespace_id)
        .bind(user_id)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every namespace with its members.
pub async fn list(db: &Db) -> Result<Vec<NamespaceInfo>, DbError> {
    let rows: Vec<(String, Option<String>)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT n.name, (SELECT string_agg(u.name, ',') FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.namespace_id = n.id) \
         FROM namespaces n ORDER BY n.name",
    )
    .fetch_all(p)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(name, members)| NamespaceInfo {
            name,
            members: members
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        })
        .collect())
}

/// Whether a user belongs to a namespace.
pub async fn is_member(db: &Db, namespace_id: i64, user_id: i64) -> Result<bool, DbError> {
    let row: Option<(i64,)> = crate::on_db!(db, p => sqlx::query_as("SELECT CAST(1 AS BIGINT) FROM memberships WHERE namespace_id = $1 AND user_id = $2")
            .bind(namespace_id)
            .bind(user_id)
            .fetch_optional(p)
            .await)?;
    Ok(row.is_some())
}

/// A namespace's recording settings (the defaults for the local target and
/// for a name that does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSettings {
    /// What happens when a recording cannot be written.
    pub policy: crate::term::RecordingPolicy,
    /// Seconds a finished recording is kept; `None`: for ever.
    pub retention_secs: Option<i64>,
    /// Members may replay each other's sessions of this namespace.
    pub shared: bool,
    /// Typed input is recorded too (never while echo is off).
    pub input: bool,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        Self {
            policy: crate::term::RecordingPolicy::Strict,
            retention_secs: None,
            shared: false,
            input: false,
        }
    }
}

/// The recording settings of namespace `name`.
pub async fn recording_settings(db: &Db, name: &str) -> Result<RecordingSettings, DbError> {
    let row: Option<(String, Option<i64>, i64, i64)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT recording_policy, recording_retention_secs, recordings_shared, recording_input FROM namespaces WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(p)
    .await)?;
    Ok(match row {
        Some((policy, retention_secs, shared, input)) => RecordingSettings {
            // An unknown value (edited by hand) is read as the safe default.
            policy: crate::term::RecordingPolicy::parse(&policy)
                .unwrap_or(crate::term::RecordingPolicy::Strict),
            retention_secs,
            shared: shared != 0,
            input: input != 0,
        },
        None => RecordingSettings::default(),
    })
}

/// Stores namespace `id`'s recording settings.
pub async fn set_recording_settings(
    db: &Db,
    id: i64,
    s: &RecordingSettings,
) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query(
        "UPDATE namespaces SET recording_policy = $1, recording_retention_secs = $2, recordings_shared = $3, recording_input = $4 WHERE id = $5",
    )
    .bind(s.policy.as_str())
    .bind(s.retention_secs)
    .bind(i64::from(s.shared))
    .bind(i64::from(s.input))
    .bind(id)
    .execute(p)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

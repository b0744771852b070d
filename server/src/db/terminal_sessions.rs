//! Rows of `terminal_sessions`: one per terminal opened, updated when it ends.
use super::{now_rfc3339, Backend, Db, DbError};

/// How a session stands or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connecting or running.
    Running,
    /// The shell exited.
    Exited,
    /// Connecting failed (unreachable, authentication, host key, spawn).
    Failed,
    /// Ended by the user, an admin, the grace period, or shutdown.
    Closed,
    /// Still running when the server stopped without ending it (a crash):
    /// found at the next start.
    Interrupted,
    /// Ended on request ([`request_termination`]: an admin or the command line).
    Terminated,
}

impl Status {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Failed => "failed",
            Status::Closed => "closed",
            Status::Interrupted => "interrupted",
            Status::Terminated => "terminated",
        }
    }
}

/// Fields of a new session row.
#[derive(Debug, Clone)]
pub struct NewTermSession<'a> {
    /// Session id.
    pub id: &'a str,
    /// Owner.
    pub user_id: i64,
    /// Host, `None` for the local target.
    pub host_id: Option<i64>,
    /// Host name or `local`.
    pub target: &'a str,
    /// Host namespace (empty for the local target).
    pub namespace: &'a str,
    /// Browser's address.
    pub remote_addr: Option<&'a str>,
    /// Browser's user agent.
    pub user_agent: Option<&'a str>,
    /// Initial columns.
    pub cols: u16,
    /// Initial rows.
    pub rows: u16,
    /// Recording id, if the session is being recorded.
    pub recording_id: Option<&'a str>,
    /// The node that holds the session (`None`: a single node).
    pub node_id: Option<&'a str>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TermSessionRow {
    /// Session id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Host, if any (and not deleted since).
    pub host_id: Option<i64>,
    /// Host name or `local`.
    pub target: String,
    /// Host namespace.
    pub namespace: String,
    /// Browser's address.
    pub remote_addr: Option<String>,
    /// Browser's user agent.
    pub user_agent: Option<String>,
    /// Initial columns.
    pub cols: i64,
    /// Initial rows.
    pub rows: i64,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end, once ended.
    pub ended_at: Option<String>,
    /// `running`, `exited`, `failed`, `closed`, `interrupted` or `terminated`.
    pub status: String,
    /// Exit status of the shell, if it reported one.
    pub exit_code: Option<i64>,
    /// Length in milliseconds, once ended.
    pub duration_ms: Option<i64>,
    /// Recording id, if recorded.
    pub recording_id: Option<String>,
    /// Bytes in the recording, once finished.
    pub recording_size: Option<i64>,
    /// SHA-256 of the finished recording, hex.
    pub recording_digest: Option<String>,
    /// `recording`, `complete`, `incomplete`, `recovered` or `deleted`.
    pub recording_state: Option<String>,
    /// The node that holds (or held) it; `None` with a single node.
    pub node_id: Option<String>,
}

/// The columns of [`TermSessionRow`], for `SELECT`s.
pub const COLUMNS: &str = "id, user_id, host_id, target, namespace, remote_addr, user_agent, cols, rows, started_at, ended_at, status, exit_code, duration_ms, recording_id, recording_size, recording_digest, recording_state, node_id";

/// Records a session as `running`.
pub async fn insert(db: &Db, s: &NewTermSession<'_>) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query(
        "INSERT INTO terminal_sessions (id, user_id, host_id, target, namespace, remote_addr, user_agent, cols, rows, started_at, status, recording_id, recording_state, node_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(s.id)
    .bind(s.user_id)
    .bind(s.host_id)
    .bind(s.target)
    .bind(s.namespace)
    .bind(s.remote_addr)
    .bind(s.user_agent)
    .bind(i64::from(s.cols))
    .bind(i64::from(s.rows))
    .bind(now_rfc3339())
    .bind(Status::Running.as_str())
    .bind(s.recording_id)
    .bind(s.recording_id.map(|_| "recording"))
    .bind(s.node_id)
    .execute(p)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records how a session ended (first end wins: a row already ended is left alone).
pub async fn finish(
    db: &Db,
    id: &str,
    status: Status,
    exit_code: Option<u32>,
    duration: std::time::Duration,
) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("UPDATE terminal_sessions SET status = $1, ended_at = $2, exit_code = $3, duration_ms = $4 WHERE id = $5 AND ended_at IS NULL")
        .bind(status.as_str())
        .bind(now_rfc3339())
        .bind(exit_code.map(i64::from))
        .bind(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
        .bind(id)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// How a recording ended: size, digest and whether it is whole.
pub async fn finish_recording(
    db: &Db,
    id: &str,
    summary: &crate::term::RecordingSummary,
) -> Result<(), DbError> {
    set_recording(
        db,
        id,
        summary.size,
        &summary.sha256,
        if summary.complete {
            "complete"
        } else {
            "incomplete"
        },
    )
    .await
}

/// Sets a recording's size, digest and state.
pub async fn set_recording(
    db: &Db,
    id: &str,
    size: u64,
    sha256: &str,
    state: &str,
) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("UPDATE terminal_sessions SET recording_size = $1, recording_digest = $2, recording_state = $3 WHERE id = $4")
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(sha256)
        .bind(state)
        .bind(id)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Sets a session's length (for one recovered after a crash).
pub async fn set_duration(db: &Db, id: &str, duration_ms: i64) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("UPDATE terminal_sessions SET duration_ms = $1 WHERE id = $2")
        .bind(duration_ms)
        .bind(id)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Sessions a previous run of this node (`node`: `None` for a single node)
/// left `running` (call at start-up, before any session opens): they cannot
/// be running any more. Other nodes' sessions are theirs.
pub async fn stale(db: &Db, node: Option<&str>) -> Result<Vec<TermSessionRow>, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_as::<_, TermSessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM terminal_sessions WHERE status = $1 AND ended_at IS NULL \
             AND node_id IS NOT DISTINCT FROM $2"
        )))
        .bind(Status::Running.as_str())
        .bind(node)
        .fetch_all(p)
        .await)?,
    )
}

/// Marks the running sessions of nodes whose heartbeat is older than
/// `stale_before` (unix seconds) `interrupted`, their recordings
/// `incomplete` (the files are on that node); returns their ids.
pub async fn interrupt_dead_nodes(db: &Db, stale_before: i64) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = crate::on_db!(db, p => sqlx::query_as(
        "UPDATE terminal_sessions SET status = 'interrupted', ended_at = $1, \
         recording_state = CASE WHEN recording_state = 'recording' THEN 'incomplete' ELSE recording_state END \
         WHERE status = 'running' AND ended_at IS NULL AND node_id IN \
         (SELECT id FROM nodes WHERE heartbeat_at < $2) RETURNING id",
    )
    .bind(now_rfc3339())
    .bind(stale_before)
    .fetch_all(p)
    .await)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Marks a stale session `interrupted`.
pub async fn mark_interrupted(db: &Db, id: &str) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query(
        "UPDATE terminal_sessions SET status = $1, ended_at = $2 WHERE id = $3 AND ended_at IS NULL",
    )
    .bind(Status::Interrupted.as_str())
    .bind(now_rfc3339())
    .bind(id)
    .execute(p)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Filters of a recording list; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    /// Owner.
    pub user_id: Option<i64>,
    /// Target name.
    pub target: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Session status.
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    pub since: Option<String>,
    /// Started before (RFC 3339).
    pub until: Option<String>,
    /// Only what this user may see: theirs, and in namespaces that share
    /// recordings and have them as a member (admins: `None`).
    pub visible_to: Option<i64>,
}

/// Recorded sessions (recording not deleted), newest first.
pub async fn recordings(
    db: &Db,
    f: &RecordingFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<TermSessionRow>, DbError> {
    Ok(crate::on_db!(db, p => {
    let mut q = sqlx::QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM terminal_sessions t WHERE recording_id IS NOT NULL AND recording_state IS DISTINCT FROM 'deleted'"
    ));
    if let Some(u) = f.user_id {
        q.push(" AND t.user_id = ").push_bind(u);
    }
    if let Some(v) = &f.target {
        q.push(" AND t.target = ").push_bind(v.clone());
    }
    if let Some(v) = &f.namespace {
        q.push(" AND t.namespace = ").push_bind(v.clone());
    }
    if let Some(v) = &f.status {
        q.push(" AND t.status = ").push_bind(v.clone());
    }
    if let Some(v) = &f.since {
        q.push(" AND t.started_at >= ").push_bind(v.clone());
    }
    if let Some(v) = &f.until {
        q.push(" AND t.started_at < ").push_bind(v.clone());
    }
    if let Some(viewer) = f.visible_to {
        q.push(" AND (t.user_id = ")
            .push_bind(viewer)
            .push(
                " OR EXISTS (SELECT 1 FROM namespaces n JOIN memberships m ON m.namespace_id = n.id \
                 WHERE n.name = t.namespace AND n.recordings_shared = 1 AND m.user_id = ",
            )
            .push_bind(viewer)
            .push("))");
    }
    q.push(" ORDER BY t.started_at DESC, t.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    q.build_query_as::<TermSessionRow>().fetch_all(p).await
    })?)
}

/// Finished recordings older than their namespace's retention period.
pub async fn expired_recordings(db: &Db, now_unix: i64) -> Result<Vec<TermSessionRow>, DbError> {
    let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("t.{c}")).collect();
    let ended_unix = match db.backend() {
        Backend::Sqlite => "CAST(strftime('%s', t.ended_at) AS INTEGER)",
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM CAST(t.ended_at AS TIMESTAMPTZ)) AS BIGINT)",
    };
    Ok(
        crate::on_db!(db, p => sqlx::query_as::<_, TermSessionRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM terminal_sessions t JOIN namespaces n ON n.name = t.namespace \
         WHERE t.recording_id IS NOT NULL AND t.recording_state IS DISTINCT FROM 'deleted' AND t.ended_at IS NOT NULL \
         AND n.recording_retention_secs IS NOT NULL \
         AND {ended_unix} + n.recording_retention_secs <= $1",
        cols.join(", ")
    )))
    .bind(now_unix)
    .fetch_all(p)
    .await)?,
    )
}

/// One session by id.
pub async fn by_id(db: &Db, id: &str) -> Result<Option<TermSessionRow>, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_as::<_, TermSessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM terminal_sessions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(p)
        .await)?,
    )
}

/// Sessions still running (not ended), oldest first.
pub async fn live(db: &Db) -> Result<Vec<TermSessionRow>, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_as::<_, TermSessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM terminal_sessions WHERE status = $1 AND ended_at IS NULL \
             ORDER BY started_at, id"
        )))
        .bind(Status::Running.as_str())
        .fetch_all(p)
        .await)?,
    )
}

/// Asks the running server to end session `id`: stores who asked (`by`: a
/// user name, or `cli`) and why, and the change counter moves (a trigger).
/// Only a session not ended yet, and only once: the first request wins.
/// Returns whether this request was stored.
pub async fn request_termination(
    db: &Db,
    id: &str,
    by: &str,
    reason: &str,
) -> Result<bool, DbError> {
    let done = crate::on_db!(db, p => sqlx::query(
        "UPDATE terminal_sessions SET terminate_reason = $1, terminated_by = $2 \
         WHERE id = $3 AND ended_at IS NULL AND terminate_reason IS NULL",
    )
    .bind(reason)
    .bind(by)
    .bind(id)
    .execute(p)
    .await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// A termination asked for and not carried out yet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TerminationRequest {
    /// Session id.
    pub id: String,
    /// Who asked: a user name, or `cli`.
    pub by: String,
    /// Why, as they said it.
    pub reason: String,
}

/// Records that session `id`'s owner input should be frozen (or not); the
/// node running it brings the session to that state (several nodes);
/// `false` if the session is not running.
pub async fn request_freeze(db: &Db, id: &str, by: &str, frozen: bool) -> Result<bool, DbError> {
    let done = crate::on_db!(db, p => sqlx::query(
        "UPDATE terminal_sessions SET freeze_request = $1, freeze_by = $2 \
         WHERE id = $3 AND ended_at IS NULL",
    )
    .bind(i64::from(frozen))
    .bind(by)
    .bind(id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// The freezing asked for live sessions: session id, frozen or not, who asked.
pub async fn freeze_requests(db: &Db) -> Result<Vec<(String, bool, String)>, DbError> {
    let rows: Vec<(String, i64, Option<String>)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT id, freeze_request, freeze_by FROM terminal_sessions \
         WHERE freeze_request IS NOT NULL AND ended_at IS NULL ORDER BY id",
    )
    .fetch_all(p)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, f, by)| (id, f != 0, by.unwrap_or_default()))
        .collect())
}

/// Terminations requested for sessions that have not ended yet.
pub async fn termination_requests(db: &Db) -> Result<Vec<TerminationRequest>, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_as::<_, TerminationRequest>(
        "SELECT id, COALESCE(terminated_by, '') AS by, terminate_reason AS reason \
         FROM terminal_sessions WHERE terminate_reason IS NOT NULL AND ended_at IS NULL ORDER BY id",
    )
    .fetch_all(p)
    .await)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{test_db, users};

    async fn session(db: &Db, id: &str, user_id: i64) {
        insert(
            db,
            &NewTermSession {
                id,
                user_id,
                host_id: None,
                target: "local",
                namespace: "",
                remote_addr: None,
                user_agent: None,
                cols: 80,
                rows: 24,
                recording_id: None,
                node_id: None,
            },
        )
        .await
        .unwrap();
    }

    async fn counter(db: &Db) -> i64 {
        crate::on_db!(db, p => sqlx::query_scalar("SELECT counter FROM changes WHERE id = 1")
            .fetch_one(p)
            .await)
        .unwrap()
    }

    #[tokio::test]
    async fn live_sessions_are_the_ones_not_ended() {
        let (_dir, db) = test_db().await;
        let u = users::create(&db, "alice", "x", app::model::Role::Member)
            .await
            .unwrap();
        session(&db, "a", u).await;
        session(&db, "b", u).await;
        finish(&db, "a", Status::Exited, Some(0), std::time::Duration::ZERO)
            .await
            .unwrap();
        let live: Vec<String> = live(&db).await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(live, ["b"]);
    }

    #[tokio::test]
    async fn the_first_termination_request_wins_and_moves_the_counter() {
        let (_dir, db) = test_db().await;
        let u = users::create(&db, "alice", "x", app::model::Role::Member)
            .await
            .unwrap();
        session(&db, "live", u).await;
        session(&db, "over", u).await;
        finish(&db, "over", Status::Closed, None, std::time::Duration::ZERO)
            .await
            .unwrap();
        assert!(termination_requests(&db).await.unwrap().is_empty());

        let before = counter(&db).await;
        assert!(request_termination(&db, "live", "cli", "policy")
            .await
            .unwrap());
        assert!(counter(&db).await > before, "the server is told");
        let after = counter(&db).await;
        assert!(
            !request_termination(&db, "live", "bob", "other")
                .await
                .unwrap(),
            "a second request does not overwrite the first"
        );
        assert_eq!(counter(&db).await, after, "nothing changed");
        assert!(
            !request_termination(&db, "over", "cli", "x").await.unwrap(),
            "ended"
        );
        assert!(
            !request_termination(&db, "nope", "cli", "x").await.unwrap(),
            "unknown"
        );
        assert_eq!(
            termination_requests(&db).await.unwrap(),
            [TerminationRequest {
                id: "live".into(),
                by: "cli".into(),
                reason: "policy".into(),
            }]
        );
        // Carried out: no longer pending.
        finish(
            &db,
            "live",
            Status::Terminated,
            None,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
        assert!(termination_requests(&db).await.unwrap().is_empty());
        assert_eq!(
            by_id(&db, "live").await.unwrap().unwrap().status,
            "terminated"
        );
    }
}

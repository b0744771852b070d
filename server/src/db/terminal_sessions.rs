//! Rows of `terminal_sessions`: one per terminal opened, updated when it ends.
use super::{now_rfc3339, Db, DbError};

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
}

impl Status {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Failed => "failed",
            Status::Closed => "closed",
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
    /// `running`, `exited`, `failed` or `closed`.
    pub status: String,
    /// Exit status of the shell, if it reported one.
    pub exit_code: Option<i64>,
}

/// Records a session as `running`.
pub async fn insert(db: &Db, s: &NewTermSession<'_>) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO terminal_sessions (id, user_id, host_id, target, namespace, remote_addr, user_agent, cols, rows, started_at, status) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(db)
    .await?;
    Ok(())
}

/// Records how a session ended (first end wins: a row already ended is left alone).
pub async fn finish(
    db: &Db,
    id: &str,
    status: Status,
    exit_code: Option<u32>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE terminal_sessions SET status = ?, ended_at = ?, exit_code = ? WHERE id = ? AND ended_at IS NULL")
        .bind(status.as_str())
        .bind(now_rfc3339())
        .bind(exit_code.map(i64::from))
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks sessions a previous run left `running` as `closed` (call at start-up,
/// before any session opens); returns how many.
pub async fn close_stale(db: &Db) -> Result<u64, DbError> {
    let done = sqlx::query("UPDATE terminal_sessions SET status = ?, ended_at = ? WHERE status = ? AND ended_at IS NULL")
        .bind(Status::Closed.as_str())
        .bind(now_rfc3339())
        .bind(Status::Running.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// One session by id.
pub async fn by_id(db: &Db, id: &str) -> Result<Option<TermSessionRow>, DbError> {
    Ok(sqlx::query_as::<_, TermSessionRow>(
        "SELECT id, user_id, host_id, target, namespace, remote_addr, user_agent, cols, rows, started_at, ended_at, status, exit_code \
         FROM terminal_sessions WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

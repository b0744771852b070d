//! Rows of `users` and `login_sessions`.
use app::model::{Role, UserInfo, UserSummary};

use super::{now_rfc3339, now_unix, Db, DbError};

/// How long a login session lasts.
pub const LOGIN_SESSION_SECS: i64 = 7 * 24 * 3600;

/// A user row with its password hash.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
}

impl UserRow {
    /// The public view.
    pub fn info(&self) -> UserInfo {
        UserInfo {
            id: self.id,
            name: self.name.clone(),
            role: self.role,
        }
    }
}

type RawUser = (i64, String, String, String, i64);

fn from_raw((id, name, password_hash, role, disabled): RawUser) -> UserRow {
    UserRow {
        id,
        name,
        password_hash,
        role: Role::parse(&role).unwrap_or(Role::Member),
        disabled: disabled != 0,
    }
}

/// Creates a user; fails with a unique-constraint error if the name exists.
pub async fn create(db: &Db, name: &str, password_hash: &str, role: Role) -> Result<i64, DbError> {
    let id: (i64,) = crate::on_db!(db, p => sqlx::query_as(
        "INSERT INTO users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(now_rfc3339())
    .fetch_one(p)
    .await)?;
    Ok(id.0)
}

/// Whether `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &DbError) -> bool {
    matches!(err, DbError::Sql(sqlx::Error::Database(e)) if e.is_unique_violation())
}

/// A user by name.
pub async fn by_name(db: &Db, name: &str) -> Result<Option<UserRow>, DbError> {
    let row: Option<RawUser> = crate::on_db!(db, p => sqlx::query_as("SELECT id, name, password_hash, role, disabled FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(p)
            .await)?;
    Ok(row.map(from_raw))
}

/// A user by id.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<UserRow>, DbError> {
    let row: Option<RawUser> = crate::on_db!(db, p => sqlx::query_as("SELECT id, name, password_hash, role, disabled FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await)?;
    Ok(row.map(from_raw))
}

/// Number of users.
pub async fn count(db: &Db) -> Result<i64, DbError> {
    let n: (i64,) = crate::on_db!(db, p => sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(p)
        .await)?;
    Ok(n.0)
}

/// Every user with their namespaces, by name.
pub async fn list(db: &Db) -> Result<Vec<UserSummary>, DbError> {
    let rows: Vec<(i64, String, String, i64, Option<String>)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT u.id, u.name, u.role, u.disabled, \
                (SELECT string_agg(n.name, ',') FROM memberships m JOIN namespaces n ON n.id = m.namespace_id WHERE m.user_id = u.id) \
         FROM users u ORDER BY u.name",
    )
    .fetch_all(p)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, name, role, disabled, ns)| UserSummary {
            id,
            name,
            role: Role::parse(&role).unwrap_or(Role::Member),
            disabled: disabled != 0,
            namespaces: ns
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        })
        .collect())
}

/// Deletes the tickets and login sessions of user `$user_id` on
/// connection `$conn` (in the caller's transaction); evaluates to the number
/// of login sessions deleted. A macro: its body runs on either backend.
macro_rules! delete_sessions_in {
    ($conn:expr, $user_id:expr) => {{
        sqlx::query("DELETE FROM tickets WHERE user_id = $1")
            .bind($user_id)
            .execute($conn)
            .await?;
        sqlx::query("DELETE FROM login_sessions WHERE user_id = $1")
            .bind($user_id)
            .execute($conn)
            .await?
            .rows_affected()
    }};
}

/// Replaces a user's password hash and ends every login session of that user
/// (and the tickets they asked for), in one transaction; false if no such user.
pub async fn set_password(db: &Db, name: &str, password_hash: &str) -> Result<bool, DbError> {
    crate::on_db!(db, p => {
    let mut tx = p.begin().await?;
    let id: Option<(i64,)> =
        sqlx::query_as("UPDATE users SET password_hash = $1 WHERE name = $2 RETURNING id")
            .bind(password_hash)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((id,)) = id {
        delete_sessions_in!(&mut *tx, id);
    }
    tx.commit().await?;
    Ok(id.is_some())
    })
}

/// Disables a user and deletes their login sessions and tickets, in one
/// transaction; returns the id if found.
pub async fn disable(db: &Db, name: &str) -> Result<Option<i64>, DbError> {
    crate::on_db!(db, p => {
    let mut tx = p.begin().await?;
    let id: Option<(i64,)> =
        sqlx::query_as("UPDATE users SET disabled = 1 WHERE name = $1 RETURNING id")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((id,)) = id {
        delete_sessions_in!(&mut *tx, id);
    }
    tx.commit().await?;
    Ok(id.map(|r| r.0))
    })
}

/// Ends every login session of `user_id` and deletes the tickets issued to
/// them (a ticket must not outlive the session that asked for it); returns
/// the number of login sessions deleted.
pub async fn delete_login_sessions_for_user(db: &Db, user_id: i64) -> Result<u64, DbError> {
    crate::on_db!(db, p => {
    let mut tx = p.begin().await?;
    let n = delete_sessions_in!(&mut *tx, user_id);
    tx.commit().await?;
    Ok(n)
    })
}

/// Number of login sessions of `user_id` (expired ones included).
pub async fn count_login_sessions(db: &Db, user_id: i64) -> Result<i64, DbError> {
    let n: (i64,) = crate::on_db!(db, p => sqlx::query_as("SELECT COUNT(*) FROM login_sessions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(p)
        .await)?;
    Ok(n.0)
}

/// Stores a new login session (by token hash).
pub async fn create_login_session(db: &Db, token_hash: &str, user_id: i64) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("INSERT INTO login_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(user_id)
        .bind(now_rfc3339())
        .bind(now_unix() + LOGIN_SESSION_SECS)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The enabled user behind an unexpired login session.
pub async fn login_session_user(db: &Db, token_hash: &str) -> Result<Option<UserRow>, DbError> {
    let row: Option<RawUser> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT u.id, u.name, u.password_hash, u.role, u.disabled FROM login_sessions s \
         JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
    )
    .bind(token_hash)
    .bind(now_unix())
    .fetch_optional(p)
    .await)?;
    Ok(row.map(from_raw))
}

/// Ends a login session.
pub async fn delete_login_session(db: &Db, token_hash: &str) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("DELETE FROM login_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    crate::on_db!(db, p => sqlx::query("DELETE FROM tickets WHERE login_session = $1")
        .bind(token_hash)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

//! Rows of `rooms` and `messages`: chat history.
use app::protocol::chat::ChatLine;
use sqlx::{Connection, SqliteConnection};

use super::{now_rfc3339, Db, DbError};

/// Every room name, alphabetically.
pub async fn rooms(db: &Db) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM rooms ORDER BY name")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The id of room `name`, creating it if needed; `true` if it was created.
pub async fn ensure_room(db: &Db, name: &str) -> Result<(i64, bool), DbError> {
    let inserted: Option<(i64,)> =
        sqlx::query_as("INSERT INTO rooms (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING RETURNING id")
            .bind(name)
            .bind(now_rfc3339())
            .fetch_optional(db)
            .await?;
    if let Some((id,)) = inserted {
        return Ok((id, true));
    }
    let (id,): (i64,) = sqlx::query_as("SELECT id FROM rooms WHERE name = ?")
        .bind(name)
        .fetch_one(db)
        .await?;
    Ok((id, false))
}

/// Highest message id in a room (0 if empty).
pub async fn last_id(db: &Db, room_id: i64) -> Result<i64, DbError> {
    let (id,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM messages WHERE room_id = ?")
        .bind(room_id)
        .fetch_one(db)
        .await?;
    Ok(id.unwrap_or(0))
}

/// A chat message to store (see [`insert_all`]).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room_id: i64,
    pub room: String,
    pub user_id: i64,
    pub user: String,
    pub body: String,
}

/// A connection of its own for storing chat messages (see [`insert_all`]):
/// taken out of the pool, and it never checkpoints the write-ahead log
/// itself, so a commit never waits for a checkpoint's writes and syncs
/// ([`checkpoint`] does that work beside it).
pub async fn store_connection(db: &Db) -> Result<SqliteConnection, DbError> {
    let mut conn = db.acquire().await?.detach();
    sqlx::query("PRAGMA wal_autocheckpoint = 0")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Copies the write-ahead log into the database as far as readers allow
/// (SQLite's passive checkpoint: writers go on meanwhile).
pub async fn checkpoint(db: &Db) -> Result<(), DbError> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(db)
        .await?;
    Ok(())
}

/// Stores `messages` in one transaction (one commit for all: group commit),
/// in order, so their ids ascend in that order; returns them as sent to
/// clients. Nothing is stored if any insert fails.
pub async fn insert_all(
    conn: &mut SqliteConnection,
    messages: &[NewMessage],
) -> Result<Vec<ChatLine>, DbError> {
    if let [m] = messages {
        // One statement commits by itself: no BEGIN and COMMIT round trips.
        return Ok(vec![insert_one(conn, m).await?]);
    }
    let mut tx = conn.begin().await?;
    let mut lines = Vec::with_capacity(messages.len());
    for m in messages {
        lines.push(insert_one(&mut tx, m).await?);
    }
    tx.commit().await?;
    Ok(lines)
}

/// Inserts one message (in the caller's transaction, if any).
async fn insert_one(conn: &mut SqliteConnection, m: &NewMessage) -> Result<ChatLine, DbError> {
    let sent = now_rfc3339();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO messages (room_id, user_id, body, sent_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(m.room_id)
    .bind(m.user_id)
    .bind(&m.body)
    .bind(&sent)
    .fetch_one(&mut *conn)
    .await?;
    Ok(ChatLine {
        id,
        room: m.room.clone(),
        from: m.user.clone(),
        message: m.body.clone(),
        sent,
    })
}

/// Messages of a room with `after < id <= upto`, oldest first, at most `limit`
/// (the newest ones when more exist); `true` when none were left out.
pub async fn range(
    db: &Db,
    room_id: i64,
    room: &str,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<(Vec<ChatLine>, bool), DbError> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT m.id, u.name, m.body, m.sent_at FROM messages m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ? AND m.id > ? AND m.id <= ? ORDER BY m.id DESC LIMIT ?",
    )
    .bind(room_id)
    .bind(after)
    .bind(upto)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    let complete = rows.len() as i64 <= limit;
    let mut lines: Vec<ChatLine> = rows
        .into_iter()
        .take(limit as usize)
        .map(|(id, from, message, sent)| ChatLine {
            id,
            room: room.to_string(),
            from,
            message,
            sent,
        })
        .collect();
    lines.reverse();
    Ok((lines, complete))
}

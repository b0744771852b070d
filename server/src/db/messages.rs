//! Rows of `rooms` and `messages`: chat history.
use app::protocol::chat::ChatLine;
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::{now_rfc3339, Db, DbError};

/// Every room name, alphabetically.
pub async fn rooms(db: &Db) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = crate::on_db!(db, p => sqlx::query_as("SELECT name FROM rooms ORDER BY name")
        .fetch_all(p)
        .await)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The id of room `name`, creating it if needed; `true` if it was created.
pub async fn ensure_room(db: &Db, name: &str) -> Result<(i64, bool), DbError> {
    let inserted: Option<(i64,)> = crate::on_db!(db, p => sqlx::query_as("INSERT INTO rooms (name, created_at) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING RETURNING id")
            .bind(name)
            .bind(now_rfc3339())
            .fetch_optional(p)
            .await)?;
    if let Some((id,)) = inserted {
        return Ok((id, true));
    }
    let (id,): (i64,) = crate::on_db!(db, p => sqlx::query_as("SELECT id FROM rooms WHERE name = $1")
        .bind(name)
        .fetch_one(p)
        .await)?;
    Ok((id, false))
}

/// Highest message id in a room (0 if empty).
pub async fn last_id(db: &Db, room_id: i64) -> Result<i64, DbError> {
    let (id,): (Option<i64>,) = crate::on_db!(db, p => sqlx::query_as("SELECT MAX(id) FROM messages WHERE room_id = $1")
        .bind(room_id)
        .fetch_one(p)
        .await)?;
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

/// Inserts one message `$m` on connection `$conn` (in the caller's
/// transaction, if any); evaluates to its [`ChatLine`]. A macro: its body
/// runs on either backend.
macro_rules! insert_one {
    ($conn:expr, $m:expr) => {{
        let m: &NewMessage = $m;
        let sent = now_rfc3339();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO messages (room_id, user_id, body, sent_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(m.room_id)
        .bind(m.user_id)
        .bind(&m.body)
        .bind(&sent)
        .fetch_one($conn)
        .await?;
        ChatLine {
            id,
            room: m.room.clone(),
            from: m.user.clone(),
            message: m.body.clone(),
            sent,
        }
    }};
}

/// A connection of its own for storing chat messages (see [`insert_all`]),
/// taken out of the pool. On SQLite it never checkpoints the write-ahead log
/// itself, so a commit never waits for a checkpoint's writes and syncs
/// ([`checkpoint`] does that work beside it).
pub enum StoreConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Opens the chat store's connection.
pub async fn store_connection(db: &Db) -> Result<StoreConnection, DbError> {
    Ok(match db {
        Db::Sqlite(p) => {
            let mut conn = p.acquire().await?.detach();
            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                .execute(&mut conn)
                .await?;
            StoreConnection::Sqlite(conn)
        }
        Db::Postgres(p) => StoreConnection::Postgres(p.acquire().await?.detach()),
    })
}

/// Copies the write-ahead log into the database as far as readers allow
/// (SQLite's passive checkpoint: writers go on meanwhile). Nothing to do on
/// Postgres.
pub async fn checkpoint(db: &Db) -> Result<(), DbError> {
    if let Db::Sqlite(p) = db {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(p)
            .await?;
    }
    Ok(())
}

/// A batch as stored: its lines (ids ascending) and, on Postgres, the
/// highest message id committed before it. Every node's store takes one
/// advisory lock around its insert and commit, so ids commit in order
/// across the cluster and `after` links each batch to the one before: a node
/// that delivered up to `after` may deliver this batch next, any other must
/// read the gap from the database first.
#[derive(Debug, Default)]
pub struct StoredBatch {
    /// The highest id committed before this batch (`None` on SQLite, where
    /// one process stores everything).
    pub after: Option<i64>,
    pub lines: Vec<ChatLine>,
}

/// The advisory lock key that orders chat inserts across nodes.
const CHAT_ORDER_LOCK: i64 = 0x7465_726d_6368_6174; // "termchat"

/// Stores `messages` in one transaction (one commit for all: group commit),
/// in order, so their ids ascend in that order; returns them as sent to
/// clients. Nothing is stored if any insert fails.
pub async fn insert_all(
    conn: &mut StoreConnection,
    messages: &[NewMessage],
) -> Result<StoredBatch, DbError> {
    match conn {
        StoreConnection::Sqlite(conn) => {
            if let [m] = messages {
                // One statement commits by itself: no BEGIN and COMMIT round trips.
                let lines = vec![insert_one!(&mut *conn, m)];
                return Ok(StoredBatch { after: None, lines });
            }
            let mut tx = conn.begin().await?;
            let mut lines = Vec::with_capacity(messages.len());
            for m in messages {
                lines.push(insert_one!(&mut *tx, m));
            }
            tx.commit().await?;
            Ok(StoredBatch { after: None, lines })
        }
        StoreConnection::Postgres(conn) => {
            let mut tx = conn.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHAT_ORDER_LOCK)
                .execute(&mut *tx)
                .await?;
            let (after,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM messages")
                .fetch_one(&mut *tx)
                .await?;
            let mut lines = Vec::with_capacity(messages.len());
            for m in messages {
                lines.push(insert_one!(&mut *tx, m));
            }
            tx.commit().await?;
            Ok(StoredBatch {
                after: Some(after),
                lines,
            })
        }
    }
}

/// A chat line with the id of its room (rooms have the same ids on every node).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoomLine {
    pub room_id: i64,
    pub line: ChatLine,
}

/// Messages of every room with `after < id <= upto` (no upper end when
/// `upto` is `None`), oldest first, at most `limit`: what a node missed
/// (its broker connection was down, or another node's batch came first);
/// `true` when none were left out.
pub async fn between(
    db: &Db,
    after: i64,
    upto: Option<i64>,
    limit: i64,
) -> Result<(Vec<RoomLine>, bool), DbError> {
    let rows: Vec<(i64, i64, String, String, String, String)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT m.id, m.room_id, r.name, u.name, m.body, m.sent_at FROM messages m \
         JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id \
         WHERE m.id > $1 AND ($2 IS NULL OR m.id <= $2) ORDER BY m.id LIMIT $3",
    )
    .bind(after)
    .bind(upto)
    .bind(limit + 1)
    .fetch_all(p)
    .await)?;
    let (rows, complete) = at_most(rows, limit);
    Ok((
        rows.into_iter()
            .map(|(id, room_id, room, from, message, sent)| RoomLine {
                room_id,
                line: ChatLine {
                    id,
                    room,
                    from,
                    message,
                    sent,
                },
            })
            .collect(),
        complete,
    ))
}

/// The first `limit` of `rows` (read with `LIMIT limit + 1`) and whether
/// none were left out.
fn at_most<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let complete = rows.len() <= limit;
    rows.truncate(limit);
    (rows, complete)
}

/// The highest message id stored (0 if none).
pub async fn max_id(db: &Db) -> Result<i64, DbError> {
    let (id,): (i64,) = crate::on_db!(db, p => sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM messages")
        .fetch_one(p)
        .await)?;
    Ok(id)
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
    let rows: Vec<(i64, String, String, String)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT m.id, u.name, m.body, m.sent_at FROM messages m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = $1 AND m.id > $2 AND m.id <= $3 ORDER BY m.id DESC LIMIT $4",
    )
    .bind(room_id)
    .bind(after)
    .bind(upto)
    .bind(limit + 1)
    .fetch_all(p)
    .await)?;
    let (rows, complete) = at_most(rows, limit);
    let mut lines: Vec<ChatLine> = rows
        .into_iter()
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

//! Rows of `nodes`: the servers sharing one database, each with its address for forwarded sockets and a heartbeat.
use super::{now_rfc3339, now_unix, Db, DbError};

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    pub id: String,
    /// Base URL other nodes reach it at (`http://10.0.0.5:3000`).
    pub url: String,
    /// A value sealed with the node's secret key (see `cluster::registry`).
    pub key_check: String,
    pub started_at: String,
    /// Unix seconds of its last heartbeat.
    pub heartbeat_at: i64,
}

/// Every node whose heartbeat is at or after `alive_since` (unix seconds).
pub async fn alive(db: &Db, alive_since: i64) -> Result<Vec<NodeRow>, DbError> {
    Ok(crate::on_db!(db, p => sqlx::query_as::<_, NodeRow>(
        "SELECT id, url, key_check, started_at, heartbeat_at FROM nodes WHERE heartbeat_at >= $1 ORDER BY id",
    )
    .bind(alive_since)
    .fetch_all(p)
    .await)?)
}

/// A node by id.
pub async fn by_id(db: &Db, id: &str) -> Result<Option<NodeRow>, DbError> {
    Ok(crate::on_db!(db, p => sqlx::query_as::<_, NodeRow>(
        "SELECT id, url, key_check, started_at, heartbeat_at FROM nodes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(p)
    .await)?)
}

/// Claims node id `id`: inserts its row, or takes over a row whose heartbeat
/// is older than `alive_since` (the node stopped). `false` when a live node
/// holds the id.
pub async fn claim(
    db: &Db,
    id: &str,
    url: &str,
    key_check: &str,
    alive_since: i64,
) -> Result<bool, DbError> {
    let row: Option<(String,)> = crate::on_db!(db, p => sqlx::query_as(
        "INSERT INTO nodes (id, url, key_check, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, key_check = excluded.key_check, \
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at \
         WHERE nodes.heartbeat_at < $6 RETURNING id",
    )
    .bind(id)
    .bind(url)
    .bind(key_check)
    .bind(now_rfc3339())
    .bind(now_unix())
    .bind(alive_since)
    .fetch_optional(p)
    .await)?;
    Ok(row.is_some())
}

/// Records that node `id` is alive now.
pub async fn heartbeat(db: &Db, id: &str) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("UPDATE nodes SET heartbeat_at = $1 WHERE id = $2")
        .bind(now_unix())
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes node `id` (it stops cleanly).
pub async fn remove(db: &Db, id: &str) -> Result<(), DbError> {
    crate::on_db!(db, p => sqlx::query("DELETE FROM nodes WHERE id = $1")
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::test_db;

    #[tokio::test]
    async fn an_id_held_by_a_live_node_cannot_be_claimed_a_stopped_ones_can() {
        let (_dir, db) = test_db().await;
        let now = now_unix();
        assert!(claim(&db, "a", "http://a", "k", now - 15).await.unwrap());
        assert!(!claim(&db, "a", "http://a2", "k", now - 15).await.unwrap());
        assert_eq!(by_id(&db, "a").await.unwrap().unwrap().url, "http://a");
        // Its heartbeat is older than the limit: it stopped; the id is free.
        assert!(claim(&db, "a", "http://a3", "k", now + 1).await.unwrap());
        assert_eq!(by_id(&db, "a").await.unwrap().unwrap().url, "http://a3");
        assert!(claim(&db, "b", "http://b", "k", now - 15).await.unwrap());
        let ids: Vec<String> = alive(&db, now - 15)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        heartbeat(&db, "b").await.unwrap();
        remove(&db, "a").await.unwrap();
        assert!(by_id(&db, "a").await.unwrap().is_none());
    }
}

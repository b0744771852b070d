//! Rows of `hosts`. Secrets stay encrypted here; [`crate::secrets`] opens them.
use app::model::HostInfo;

use super::{now_rfc3339, Db, DbError};

/// A host row, secret still encrypted.
#[derive(Debug, Clone)]
pub struct HostRow {
    pub id: i64,
    pub name: String,
    pub namespace_id: i64,
    pub namespace: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `password` or `key`.
    pub auth_kind: String,
    pub secret_nonce: Vec<u8>,
    pub secret_ciphertext: Vec<u8>,
    pub fingerprint: Option<String>,
}

impl HostRow {
    /// The admin view (no secret).
    pub fn info(&self) -> HostInfo {
        HostInfo {
            id: self.id,
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            address: self.address.clone(),
            port: self.port,
            user: self.user.clone(),
            auth: self.auth_kind.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Fields of a new host row.
#[derive(Debug, Clone)]
pub struct NewHostRow<'a> {
    pub name: &'a str,
    pub namespace_id: i64,
    pub address: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub auth_kind: &'a str,
    pub secret_nonce: &'a [u8],
    pub secret_ciphertext: &'a [u8],
    pub fingerprint: Option<&'a str>,
}

type Raw = (
    i64,
    String,
    i64,
    String,
    String,
    i64,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    Option<String>,
);

const SELECT: &str = "SELECT h.id, h.name, h.namespace_id, n.name, h.address, h.port, h.ssh_user, h.auth_kind, \
     h.secret_nonce, h.secret_ciphertext, h.host_key_fingerprint FROM hosts h JOIN namespaces n ON n.id = h.namespace_id";

fn from_raw(r: Raw) -> HostRow {
    HostRow {
        id: r.0,
        name: r.1,
        namespace_id: r.2,
        namespace: r.3,
        address: r.4,
        port: u16::try_from(r.5).unwrap_or(22),
        user: r.6,
        auth_kind: r.7,
        secret_nonce: r.8,
        secret_ciphertext: r.9,
        fingerprint: r.10,
    }
}

/// Adds a host.
pub async fn create(db: &Db, h: NewHostRow<'_>) -> Result<i64, DbError> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO hosts (name, namespace_id, address, port, ssh_user, auth_kind, secret_nonce, secret_ciphertext, host_key_fingerprint, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(h.name)
    .bind(h.namespace_id)
    .bind(h.address)
    .bind(i64::from(h.port))
    .bind(h.user)
    .bind(h.auth_kind)
    .bind(h.secret_nonce)
    .bind(h.secret_ciphertext)
    .bind(h.fingerprint)
    .bind(now_rfc3339())
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// A host by name.
pub async fn by_name(db: &Db, name: &str) -> Result<Option<HostRow>, DbError> {
    let q = sqlx::AssertSqlSafe(format!("{SELECT} WHERE h.name = ?"));
    let row: Option<Raw> = sqlx::query_as(q).bind(name).fetch_optional(db).await?;
    Ok(row.map(from_raw))
}

/// Every host, by name.
pub async fn list(db: &Db) -> Result<Vec<HostRow>, DbError> {
    let q = sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY h.name"));
    let rows: Vec<Raw> = sqlx::query_as(q).fetch_all(db).await?;
    Ok(rows.into_iter().map(from_raw).collect())
}

/// Hosts in the namespaces `user_id` belongs to, by name.
pub async fn visible_to(db: &Db, user_id: i64) -> Result<Vec<HostRow>, DbError> {
    let q = sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE h.namespace_id IN (SELECT namespace_id FROM memberships WHERE user_id = ?) ORDER BY h.name"
    ));
    let rows: Vec<Raw> = sqlx::query_as(q).bind(user_id).fetch_all(db).await?;
    Ok(rows.into_iter().map(from_raw).collect())
}

/// Pins a host key fingerprint; false if no such host.
pub async fn set_fingerprint(db: &Db, name: &str, fingerprint: &str) -> Result<bool, DbError> {
    let r = sqlx::query("UPDATE hosts SET host_key_fingerprint = ? WHERE name = ?")
        .bind(fingerprint)
        .bind(name)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Deletes a host; false if no such host.
pub async fn delete(db: &Db, name: &str) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM hosts WHERE name = ?")
        .bind(name)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

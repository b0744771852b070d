//! Rows of `hosts`. Secrets stay encrypted here; [`crate::secrets`] opens them.
//!
//! A host's secret is sealed with the row's id, address, port and SSH user as
//! associated data, so a row edited to send the secret somewhere else no
//! longer opens. Such a secret's `secret_nonce` column is the version byte
//! [`BOUND_V1`] followed by the 24-byte nonce; a bare 24-byte nonce is a
//! secret stored by an older termroom without associated data, which
//! [`reseal_legacy`] (run at server start) binds to its row.
use app::model::HostInfo;

use super::{now_rfc3339, Db, DbError};
use crate::secrets::{SecretBox, NONCE_BYTES};

/// First byte of `secret_nonce` for a secret bound to its row (format version 1).
pub const BOUND_V1: u8 = 1;

/// Why a stored host secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HostSecretError {
    /// Decryption failed: the row changed since the secret was stored, or the key is another.
    #[error(
        "the stored secret of host {host} does not open for this host's id, address, port and \
         user: its row was changed after the secret was stored (or the secret key is not the \
         one it was sealed with); an admin must delete and re-add the host"
    )]
    Mismatch {
        /// Host name.
        host: String,
    },
    /// Stored by an older termroom without associated data and not upgraded yet.
    #[error(
        "the secret of host {host} was stored by an older termroom and is not bound to its row; \
         restart `termroom serve` to upgrade it (or re-add the host)"
    )]
    Legacy {
        /// Host name.
        host: String,
    },
    /// The nonce column has an unknown format.
    #[error("the stored secret of host {host} is malformed; an admin must re-add the host")]
    Malformed {
        /// Host name.
        host: String,
    },
}

/// The associated data that binds a secret to its row: id, port, address and
/// user, length-prefixed so that no two rows encode alike.
fn associated_data(id: i64, address: &str, port: u16, user: &str) -> Vec<u8> {
    let mut aad = b"termroom host secret v1\0".to_vec();
    aad.extend_from_slice(&id.to_be_bytes());
    aad.extend_from_slice(&port.to_be_bytes());
    for field in [address, user] {
        aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
    aad
}

/// Seals `secret` for the row `id` with these address, port and user;
/// returns the `secret_nonce` and `secret_ciphertext` column values.
fn seal_for_row(
    secrets: &SecretBox,
    id: i64,
    address: &str,
    port: u16,
    user: &str,
    secret: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), DbError> {
    let (nonce, ct) = secrets.seal_with(secret, &associated_data(id, address, port, user))?;
    let mut column = Vec::with_capacity(1 + nonce.len());
    column.push(BOUND_V1);
    column.extend_from_slice(&nonce);
    Ok((column, ct))
}

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

    /// Decrypts the host's secret; fails if the row's id, address, port or
    /// user differ from those it was sealed with.
    pub fn open_secret(&self, secrets: &SecretBox) -> Result<Vec<u8>, HostSecretError> {
        let host = || self.name.clone();
        match self.secret_nonce.split_first() {
            Some((&BOUND_V1, nonce)) if nonce.len() == NONCE_BYTES => secrets
                .open_with(
                    nonce,
                    &self.secret_ciphertext,
                    &associated_data(self.id, &self.address, self.port, &self.user),
                )
                .map_err(|_| HostSecretError::Mismatch { host: host() }),
            _ if self.secret_nonce.len() == NONCE_BYTES => {
                Err(HostSecretError::Legacy { host: host() })
            }
            _ => Err(HostSecretError::Malformed { host: host() }),
        }
    }
}

/// A new host whose secret [`create_sealed`] encrypts for the new row.
#[derive(Clone)]
pub struct NewSealedHost<'a> {
    /// Unique host name.
    pub name: &'a str,
    /// Namespace the host belongs to.
    pub namespace_id: i64,
    /// Address to connect to.
    pub address: &'a str,
    /// SSH port.
    pub port: u16,
    /// SSH user.
    pub user: &'a str,
    /// `password` or `key`.
    pub auth_kind: &'a str,
    /// The password or private key, in clear.
    pub secret: &'a [u8],
    /// Pinned host key fingerprint, if confirmed.
    pub fingerprint: Option<&'a str>,
}

impl std::fmt::Debug for NewSealedHost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSealedHost")
            .field("name", &self.name)
            .field("namespace_id", &self.namespace_id)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("auth_kind", &self.auth_kind)
            .field("secret", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Adds a host and seals its secret bound to the new row (id, address, port,
/// user): the row is inserted, then its secret is written, in one transaction.
pub async fn create_sealed(
    db: &Db,
    secrets: &SecretBox,
    h: NewSealedHost<'_>,
) -> Result<i64, DbError> {
    crate::on_db!(db, p => {
    let mut tx = p.begin().await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO hosts (name, namespace_id, address, port, ssh_user, auth_kind, secret_nonce, secret_ciphertext, host_key_fingerprint, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(h.name)
    .bind(h.namespace_id)
    .bind(h.address)
    .bind(i64::from(h.port))
    .bind(h.user)
    .bind(h.auth_kind)
    // Sealed below, once the row's id is known.
    .bind(Vec::<u8>::new())
    .bind(Vec::<u8>::new())
    .bind(h.fingerprint)
    .bind(now_rfc3339())
    .fetch_one(&mut *tx)
    .await?;
    let (nonce, ct) = seal_for_row(secrets, id, h.address, h.port, h.user, h.secret)?;
    sqlx::query("UPDATE hosts SET secret_nonce = $1, secret_ciphertext = $2 WHERE id = $3")
        .bind(nonce)
        .bind(ct)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
    })
}

/// Binds secrets stored by an older termroom (no associated data) to their
/// rows as they are now; returns how many were upgraded. A legacy secret that
/// does not open with `secrets` is left as it is (with a warning): opening it
/// later fails with [`HostSecretError::Legacy`].
pub async fn reseal_legacy(db: &Db, secrets: &SecretBox) -> Result<usize, DbError> {
    let mut upgraded = 0;
    for h in list(db).await? {
        if h.secret_nonce.len() != NONCE_BYTES {
            continue;
        }
        let Ok(secret) = secrets.open(&h.secret_nonce, &h.secret_ciphertext) else {
            tracing::warn!(
                host = %h.name,
                "the legacy secret of this host does not open with the current key; left as it is"
            );
            continue;
        };
        let (nonce, ct) = seal_for_row(secrets, h.id, &h.address, h.port, &h.user, &secret)?;
        // Only if the row is still the one just read.
        let r = crate::on_db!(db, p => sqlx::query(
            "UPDATE hosts SET secret_nonce = $1, secret_ciphertext = $2 \
             WHERE id = $3 AND secret_nonce = $4 AND address = $5 AND port = $6 AND ssh_user = $7",
        )
        .bind(nonce)
        .bind(ct)
        .bind(h.id)
        .bind(&h.secret_nonce)
        .bind(&h.address)
        .bind(i64::from(h.port))
        .bind(&h.user)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
        upgraded += usize::try_from(r).unwrap_or(0);
    }
    Ok(upgraded)
}

/// Fields of a new host row, secret already sealed by the caller (tests and
/// low-level tools; [`create_sealed`] is what binds a secret to its row).
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
    let (id,): (i64,) = crate::on_db!(db, p => sqlx::query_as(
        "INSERT INTO hosts (name, namespace_id, address, port, ssh_user, auth_kind, secret_nonce, secret_ciphertext, host_key_fingerprint, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
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
    .fetch_one(p)
    .await)?;
    Ok(id)
}

/// A host by name.
pub async fn by_name(db: &Db, name: &str) -> Result<Option<HostRow>, DbError> {
    let q = sqlx::AssertSqlSafe(format!("{SELECT} WHERE h.name = $1"));
    let row: Option<Raw> =
        crate::on_db!(db, p => sqlx::query_as(q).bind(name).fetch_optional(p).await)?;
    Ok(row.map(from_raw))
}

/// Every host, by name.
pub async fn list(db: &Db) -> Result<Vec<HostRow>, DbError> {
    let q = sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY h.name"));
    let rows: Vec<Raw> = crate::on_db!(db, p => sqlx::query_as(q).fetch_all(p).await)?;
    Ok(rows.into_iter().map(from_raw).collect())
}

/// Hosts in the namespaces `user_id` belongs to, by name.
pub async fn visible_to(db: &Db, user_id: i64) -> Result<Vec<HostRow>, DbError> {
    let q = sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE h.namespace_id IN (SELECT namespace_id FROM memberships WHERE user_id = $1) ORDER BY h.name"
    ));
    let rows: Vec<Raw> =
        crate::on_db!(db, p => sqlx::query_as(q).bind(user_id).fetch_all(p).await)?;
    Ok(rows.into_iter().map(from_raw).collect())
}

/// Pins a host key fingerprint; false if no such host.
pub async fn set_fingerprint(db: &Db, name: &str, fingerprint: &str) -> Result<bool, DbError> {
    let r = crate::on_db!(db, p => sqlx::query("UPDATE hosts SET host_key_fingerprint = $1 WHERE name = $2")
        .bind(fingerprint)
        .bind(name)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(r > 0)
}

/// Deletes a host; false if no such host.
pub async fn delete(db: &Db, name: &str) -> Result<bool, DbError> {
    let r = crate::on_db!(db, p => sqlx::query("DELETE FROM hosts WHERE name = $1")
        .bind(name)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(r > 0)
}

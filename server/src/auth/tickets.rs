//! Single-use WebSocket tickets: 128-bit random, stored hashed, valid 30 s,
//! bound to a user and a purpose. Redemption is one atomic DELETE, so of two
//! concurrent redemptions exactly one succeeds.
use super::tokens::{random_token, token_hash};
use crate::db::{now_unix, Db, DbError};

/// What a ticket opens; a ticket redeemed for another purpose is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// The chat socket (`/ws`).
    Chat,
    /// The owner's socket of one terminal session (`/ws/term/{id}`).
    Term(String),
    /// A read-only watcher's socket of one terminal session (`/ws/watch/{id}`).
    Watch(String),
}

impl Purpose {
    /// How the purpose is stored in the `tickets` table.
    fn stored(&self) -> String {
        match self {
            Self::Chat => "chat".to_string(),
            Self::Term(id) => format!("term:{id}"),
            Self::Watch(id) => format!("watch:{id}"),
        }
    }
}

/// How long a ticket is valid.
pub const TICKET_TTL_SECS: i64 = 30;

/// Why a ticket was refused (all map to 401 before the upgrade).
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("missing, unknown, expired, already used or wrong-purpose ticket")]
    Invalid,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Who a redeemed ticket was for.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// The user it was issued to.
    pub user_id: i64,
    /// Hash of the login session that asked for it (sockets close with it on logout).
    pub login_session: Option<String>,
}

/// Issues a ticket for `user_id` and `purpose`; returns the ticket (never stored).
pub async fn issue(
    db: &Db,
    user_id: i64,
    purpose: &Purpose,
    login_session: Option<&str>,
) -> Result<String, DbError> {
    let ticket = random_token();
    let now = now_unix();
    // Expired tickets are garbage; drop them while we are here.
    crate::on_db!(db, p => sqlx::query("DELETE FROM tickets WHERE expires_at < $1")
        .bind(now)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    crate::on_db!(db, p => sqlx::query("INSERT INTO tickets (hash, user_id, purpose, login_session, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(token_hash(&ticket))
        .bind(user_id)
        .bind(purpose.stored())
        .bind(login_session)
        .bind(now + TICKET_TTL_SECS)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok(ticket)
}

/// Redeems a ticket for `purpose`: succeeds once, then never again.
/// A ticket presented for the wrong purpose is consumed and refused.
pub async fn redeem(db: &Db, ticket: &str, purpose: &Purpose) -> Result<Redeemed, TicketError> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(TicketError::Invalid);
    }
    let row: Option<(i64, String, Option<String>, i64)> = crate::on_db!(db, p => sqlx::query_as(
        "DELETE FROM tickets WHERE hash = $1 RETURNING user_id, purpose, login_session, expires_at",
    )
    .bind(token_hash(ticket))
    .fetch_optional(p)
    .await)
    .map_err(DbError::from)?;
    match row {
        Some((user_id, p, login_session, expires))
            if p == purpose.stored() && expires >= now_unix() =>
        {
            Ok(Redeemed {
                user_id,
                login_session,
            })
        }
        _ => Err(TicketError::Invalid),
    }
}

//! Failed-login counts shared by every node (several nodes on Postgres): the same slow-down as the in-memory limiter, whichever node a guess lands on.
//!
//! Each attempt is counted before the password is hashed, in one
//! transaction per key that locks the key's row, so parallel guesses spread
//! over nodes cannot all pass the check.
use std::net::IpAddr;

use super::ratelimit::{
    addr_key, lockout, FAILURE_MEMORY, FREE_FAILURES_PER_ADDR, FREE_FAILURES_PER_NAME,
};
use crate::db::{now_unix, Db, DbError};

/// One counted attempt (the keys it was counted against).
#[derive(Debug)]
#[must_use]
pub struct SharedAttempt {
    keys: Vec<String>,
    name_key: Option<String>,
}

/// Why an attempt may not go on.
#[derive(Debug, thiserror::Error)]
pub enum SharedLimitError {
    #[error("wait {0} s")]
    Wait(u64),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn name_key(name: &str) -> String {
    format!("name:{name}")
}

fn addr_key_text(addr: IpAddr) -> String {
    format!("addr:{}", addr_key(addr))
}

/// Checks the address and name (`None`: a name that failed validation) and
/// counts the attempt against both, or says how long to wait (nothing is
/// counted then). Only on Postgres; callers use it with several nodes.
pub async fn begin(
    db: &Db,
    addr: IpAddr,
    name: Option<&str>,
) -> Result<SharedAttempt, SharedLimitError> {
    let crate::db::Db::Postgres(pool) = db else {
        return Ok(SharedAttempt {
            keys: Vec::new(),
            name_key: None,
        });
    };
    let mut keys = vec![(addr_key_text(addr), FREE_FAILURES_PER_ADDR)];
    if let Some(n) = name {
        keys.push((name_key(n), FREE_FAILURES_PER_NAME));
    }
    // One order for the row locks everywhere: no deadlock between nodes.
    keys.sort();
    let now = now_unix();
    let forget_before = now - i64::try_from(FAILURE_MEMORY.as_secs()).unwrap_or(900);
    let mut tx = pool.begin().await.map_err(DbError::from)?;
    let mut wait = 0u64;
    for (key, _) in &keys {
        sqlx::query(
            "INSERT INTO login_failures (key, count, last_at) VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
    }
    for (key, free) in &keys {
        let (count, last_at): (i64, i64) =
            sqlx::query_as("SELECT count, last_at FROM login_failures WHERE key = $1 FOR UPDATE")
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .map_err(DbError::from)?;
        if last_at < forget_before {
            continue;
        }
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        if count >= *free {
            // Whole seconds on both sides: `now - last_at` may read 1 when
            // a few milliseconds passed, so only a difference above the
            // wait proves it has passed.
            let must_wait = lockout(count, *free).as_secs();
            let elapsed = u64::try_from(now - last_at).unwrap_or(0);
            if elapsed <= must_wait {
                wait = wait.max(must_wait + 1 - elapsed);
            }
        }
    }
    // Either key locked: refused, as by the in-memory limiter.
    if wait > 0 {
        tx.rollback().await.map_err(DbError::from)?;
        return Err(SharedLimitError::Wait(wait));
    }
    for (key, _) in &keys {
        sqlx::query(
            "UPDATE login_failures SET count = CASE WHEN last_at < $2 THEN 1 ELSE count + 1 END, \
             last_at = $3 WHERE key = $1",
        )
        .bind(key)
        .bind(forget_before)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
    }
    tx.commit().await.map_err(DbError::from)?;
    Ok(SharedAttempt {
        keys: keys.into_iter().map(|(k, _)| k).collect(),
        name_key: name.map(name_key),
    })
}

/// The password was right: the name's failures are forgotten and this
/// attempt no longer counts against the address.
pub async fn succeeded(db: &Db, attempt: SharedAttempt) -> Result<(), DbError> {
    let crate::db::Db::Postgres(pool) = db else {
        return Ok(());
    };
    for key in &attempt.keys {
        if Some(key) == attempt.name_key.as_ref() {
            sqlx::query("DELETE FROM login_failures WHERE key = $1")
                .bind(key)
                .execute(pool)
                .await?;
        } else {
            undo(pool, key).await?;
        }
    }
    Ok(())
}

/// The password was wrong: the attempt stays counted and the wait runs from
/// now, when the failure is known, not from when hashing began.
pub async fn failed(db: &Db, attempt: SharedAttempt) -> Result<(), DbError> {
    let crate::db::Db::Postgres(pool) = db else {
        return Ok(());
    };
    for key in &attempt.keys {
        sqlx::query("UPDATE login_failures SET last_at = GREATEST(last_at, $2) WHERE key = $1")
            .bind(key)
            .bind(now_unix())
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The password was never checked (the server was busy): the attempt is
/// taken back.
pub async fn not_tried(db: &Db, attempt: SharedAttempt) -> Result<(), DbError> {
    let crate::db::Db::Postgres(pool) = db else {
        return Ok(());
    };
    for key in &attempt.keys {
        undo(pool, key).await?;
    }
    Ok(())
}

async fn undo(pool: &sqlx::PgPool, key: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE login_failures SET count = GREATEST(count - 1, 0) WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

//! The revocation watcher: notices database changes (also those of the command line or another node) and closes what they forbid; purges expired rows.
//!
//! Triggers (migration `0002_changes.sql`) bump a one-row change counter on
//! every change to users, memberships, namespaces, hosts and login sessions.
//! The watcher polls it every `Config::revocation_poll`, and at once when
//! another node hints through the broker that it wrote a change
//! (`Core::hint_changed`); when the counter moved it
//! re-checks every live terminal session (closing those whose owner lost
//! access, with the reason), closes terminal sockets of disabled users and
//! ended login sessions, and kicks the chat sockets of users disabled and
//! login sessions ended since the previous check. Every
//! `Config::purge_interval` it deletes expired login sessions and tickets.
use std::{collections::HashSet, sync::Arc};

use tokio::{task::JoinHandle, time::MissedTickBehavior};
use tracing::{debug, info, warn, Instrument};

use crate::{
    db::{now_unix, Db, DbError},
    services::terminals::session_access_denied,
    state::Core,
    term::Phase,
    ws::registry::{ACCOUNT_DISABLED, SIGNED_OUT},
};

/// Starts the watcher; it runs until aborted.
pub fn spawn(core: Arc<Core>) -> JoinHandle<()> {
    tokio::spawn(run(core).instrument(tracing::info_span!("revocation")))
}

/// The current value of the change counter.
pub async fn change_counter(db: &Db) -> Result<i64, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT counter FROM changes WHERE id = 1")
            .fetch_one(p)
            .await)?,
    )
}

/// Deletes expired tickets and login sessions; returns how many of each.
pub async fn purge_expired(db: &Db) -> Result<(u64, u64), DbError> {
    let now = now_unix();
    let tickets = crate::on_db!(db, p => sqlx::query("DELETE FROM tickets WHERE expires_at < $1")
        .bind(now)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    let sessions = crate::on_db!(db, p => sqlx::query("DELETE FROM login_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(p)
        .await.map(|r| r.rows_affected()))?;
    Ok((tickets, sessions))
}

/// What the previous check saw.
#[derive(Debug, Default)]
struct Seen {
    /// Change counter at the previous check; `None` before the first.
    counter: Option<i64>,
    /// Users that exist and are not disabled.
    active_users: HashSet<i64>,
}

async fn run(core: Arc<Core>) {
    let mut seen = Seen::default();
    let mut poll = tokio::time::interval(core.config.revocation_poll);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut purge = tokio::time::interval(core.config.purge_interval);
    purge.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                if let Err(e) = check(&core, &mut seen).await {
                    warn!("checking for revoked access: {e}");
                }
            }
            () = core.changed_elsewhere.notified() => {
                debug!("another node hints at a change: checking now");
                if let Err(e) = check(&core, &mut seen).await {
                    warn!("checking for revoked access: {e}");
                }
            }
            _ = purge.tick() => match purge_expired(&core.db).await {
                Ok((0, 0)) => {}
                Ok((tickets, sessions)) => debug!(tickets, sessions, "purged expired rows"),
                Err(e) => warn!("purging expired rows: {e}"),
            },
        }
    }
}

/// Re-checks everything if the change counter moved since the previous check.
async fn check(core: &Core, seen: &mut Seen) -> Result<(), DbError> {
    // Read before the rows: a change after this read is seen again next time.
    let counter = change_counter(&core.db).await?;
    if seen.counter == Some(counter) {
        return Ok(());
    }
    let active_users: HashSet<i64> =
        crate::on_db!(&core.db, p => sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE disabled = 0")
            .fetch_all(p)
            .await)?
            .into_iter()
            .collect();
    let login_sessions: HashSet<String> =
        crate::on_db!(&core.db, p => sqlx::query_scalar::<_, String>("SELECT token_hash FROM login_sessions")
            .fetch_all(p)
            .await)?
            .into_iter()
            .collect();

    // Chat sockets: the hub checks each against the current rows (a user
    // created and disabled between two checks is caught too).
    for user in seen.active_users.difference(&active_users) {
        info!(user, "user disabled or deleted: closing their sockets");
    }
    core.hub
        .keep_only(active_users.clone(), login_sessions.clone())
        .await;
    // Terminal sockets: check each one against the current rows.
    core.sockets.close_if(|user, session| {
        if !active_users.contains(&user) {
            Some(ACCOUNT_DISABLED.to_string())
        } else if session.is_some_and(|s| !login_sessions.contains(s)) {
            Some(SIGNED_OUT.to_string())
        } else {
            None
        }
    });
    close_revoked_sessions(core).await?;
    terminate_requested(core).await?;
    freeze_requested(core).await?;
    core.terms.reload_rules().await;
    *seen = Seen {
        counter: Some(counter),
        active_users,
    };
    Ok(())
}

/// Closes every live terminal session whose owner lost access to it (see
/// `services::terminals::access_denied`), telling the owner why; returns how
/// many. Called by the watcher and right after a revocation made here.
pub async fn close_revoked_sessions(core: &Core) -> Result<usize, DbError> {
    let mut closed = 0;
    for session in core.terms.sessions() {
        if session.phase() == Phase::Ended {
            continue;
        }
        if let Some(reason) = session_access_denied(core, &session).await? {
            info!(session = session.id(), %reason, "closing a terminal session: access revoked");
            core.terms.close_because(session.id(), &reason);
            closed += 1;
            crate::services::audit(
                &core.db,
                None,
                "term.revoked",
                Some(session.target_name()),
                Some(&format!("{}: {reason}", session.id())),
            )
            .await;
        }
    }
    Ok(closed)
}

/// Brings this node's sessions to the freezing asked for in their rows
/// (with several nodes every freeze is written there, wherever it was asked).
pub async fn freeze_requested(core: &Core) -> Result<(), DbError> {
    for (id, frozen, by) in crate::db::terminal_sessions::freeze_requests(&core.db).await? {
        let Some(session) = core.terms.session(&id) else {
            continue;
        };
        if session.frozen() == frozen {
            continue;
        }
        match core.terms.set_frozen(&id, &by, frozen).await {
            Ok(_) => info!(session = %id, by = %by, frozen, "freezing as requested"),
            Err(e) => warn!(session = %id, "applying a freeze request: {e}"),
        }
    }
    Ok(())
}

/// Ends the live sessions of this server whose termination was asked for
/// in the database (`termroom session terminate`, or another node); returns
/// how many.
pub async fn terminate_requested(core: &Core) -> Result<usize, DbError> {
    let mut ended = 0;
    for req in crate::db::terminal_sessions::termination_requests(&core.db).await? {
        let Some(session) = core.terms.session(&req.id) else {
            continue;
        };
        if session.terminate(&req.by, &req.reason) {
            info!(session = %req.id, by = %req.by, "terminating a session as requested");
            ended += 1;
            crate::services::audit(
                &core.db,
                None,
                "session.terminate",
                Some(&req.id),
                Some(&format!(
                    "{}@{} by {}: {}",
                    session.meta().owner_name,
                    session.target_name(),
                    req.by,
                    req.reason
                )),
            )
            .await;
        }
    }
    Ok(ended)
}

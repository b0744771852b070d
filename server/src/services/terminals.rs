//! Terminals: authorizing and opening sessions, tickets to attach.
use std::sync::Arc;

use app::{
    backend::{Caller, ClientInfo, Terminals},
    error::ApiError,
    model::{TermSessionInfo, TermTicket},
};
use async_trait::async_trait;

use super::{
    audit,
    directory::{local_allowed, LOCAL_TARGET},
    internal,
};
use crate::{
    auth::{tickets, tokens},
    db::{self, hosts, namespaces, users, Db, DbError},
    state::Core,
    term::{OpenRequest, Session, SshAuth, SshTarget, Target, TermError},
};

/// [`Terminals`] backed by the session manager.
pub struct TerminalService(pub Arc<Core>);

/// Why `user_id` may no longer use a session on `host_id` (`None`: the local
/// target) named `target`, as a sentence for the owner; `None` if access
/// stands: the user exists and is not disabled, and the host still exists
/// and the user is an admin or a member of its namespace (or, for the local
/// target, the local-target policy still admits the user).
pub async fn access_denied(
    core: &Core,
    user_id: i64,
    host_id: Option<i64>,
    target: &str,
) -> Result<Option<String>, DbError> {
    let user = match users::by_id(&core.db, user_id).await? {
        Some(u) if !u.disabled => u,
        Some(_) => return Ok(Some(crate::ws::registry::ACCOUNT_DISABLED.into())),
        None => return Ok(Some("your account was deleted".into())),
    };
    let info = user.info();
    let Some(host_id) = host_id else {
        return Ok((!local_allowed(core.config.local_target, &info))
            .then(|| "the local shell is no longer allowed for your account".into()));
    };
    let Some(namespace_id) = host_namespace(&core.db, host_id).await? else {
        return Ok(Some(format!("host {target} was deleted")));
    };
    if info.is_admin() || namespaces::is_member(&core.db, namespace_id, user_id).await? {
        return Ok(None);
    }
    Ok(Some(format!("your access to host {target} was revoked")))
}

/// [`access_denied`] for a live session.
pub async fn session_access_denied(
    core: &Core,
    session: &Session,
) -> Result<Option<String>, DbError> {
    access_denied(
        core,
        session.owner(),
        session.host_id(),
        session.target_name(),
    )
    .await
}

/// The namespace of host `host_id`, `None` if the host is gone.
async fn host_namespace(db: &Db, host_id: i64) -> Result<Option<i64>, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT namespace_id FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_optional(p)
            .await)?,
    )
}

/// Resolves a target name into what to connect to, checking that `caller` may open it.
pub async fn resolve_target(
    core: &Core,
    caller: &Caller,
    target: &str,
) -> Result<Target, ApiError> {
    if target == LOCAL_TARGET {
        return if local_allowed(core.config.local_target, &caller.user) {
            Ok(Target::Local)
        } else {
            Err(ApiError::Forbidden)
        };
    }
    let host = hosts::by_name(&core.db, target).await.map_err(internal)?;
    // A host outside the caller's namespaces is reported exactly like a missing one.
    let not_found = || ApiError::NotFound(format!("host {target}"));
    let host = host.ok_or_else(not_found)?;
    if !caller.user.is_admin()
        && !namespaces::is_member(&core.db, host.namespace_id, caller.user.id)
            .await
            .map_err(internal)?
    {
        audit(
            &core.db,
            Some(&caller.user.name),
            "term.denied",
            Some(target),
            None,
        )
        .await;
        return Err(not_found());
    }
    let fingerprint = host
        .fingerprint
        .clone()
        .ok_or_else(|| ApiError::Invalid(format!("the host key of {target} is not trusted yet: an admin must confirm it (termroom host trust {target})")))?;
    let secret = host.open_secret(&core.secrets).map_err(|e| {
        tracing::error!("{e}");
        ApiError::Internal(e.to_string())
    })?;
    let secret = String::from_utf8(secret).map_err(internal)?;
    let auth = if host.auth_kind == "key" {
        SshAuth::Key(secret)
    } else {
        SshAuth::Password(secret)
    };
    Ok(Target::Ssh(SshTarget {
        host_id: host.id,
        name: host.name,
        namespace: host.namespace,
        address: host.address,
        port: host.port,
        user: host.user,
        auth,
        fingerprint,
    }))
}

#[async_trait]
impl Terminals for TerminalService {
    async fn open(
        &self,
        caller: &Caller,
        target: &str,
        cols: u16,
        rows: u16,
        client: ClientInfo,
    ) -> Result<TermTicket, ApiError> {
        if !app::protocol::term::size_ok(cols, rows) {
            return Err(ApiError::Invalid(format!(
                "terminal size must be 1-{} columns and 1-{} rows",
                app::protocol::term::MAX_COLS,
                app::protocol::term::MAX_ROWS
            )));
        }
        let core = &self.0;
        let resolved = resolve_target(core, caller, target).await?;
        let held_elsewhere = super::sessions_elsewhere(core)
            .await
            .map_err(internal)?
            .iter()
            .filter(|r| r.user_id == caller.user.id)
            .count();
        let req = OpenRequest {
            user_id: caller.user.id,
            user_name: caller.user.name.clone(),
            target: resolved,
            cols,
            rows,
            remote_addr: client.remote.map(|a| a.to_string()),
            user_agent: client.user_agent,
            held_elsewhere,
        };
        let session_id = core.terms.open(req).await.map_err(|e| match e {
            TermError::TooManySessions(_) => ApiError::Invalid(e.to_string()),
            TermError::Draining | TermError::ShuttingDown => ApiError::Unavailable(e.to_string()),
            e => internal(e),
        })?;
        audit(
            &core.db,
            Some(&caller.user.name),
            "term.open",
            Some(target),
            Some(&session_id),
        )
        .await;
        let otp = self.ticket_for(caller, &session_id).await?;
        Ok(TermTicket {
            session_id,
            otp,
            target: target.to_string(),
        })
    }

    async fn attach_ticket(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<TermTicket, ApiError> {
        let session = match self.owned(caller, session_id) {
            Ok(s) => s,
            Err(e) => {
                // With several nodes: a session another node holds is
                // reached through this one (the socket is forwarded; the
                // owner node checks access when it arrives).
                let Some(row) = self.held_elsewhere(caller, session_id).await? else {
                    return Err(e);
                };
                let otp = self.ticket_for(caller, session_id).await?;
                return Ok(TermTicket {
                    session_id: session_id.to_string(),
                    otp,
                    target: row.target,
                });
            }
        };
        if let Some(reason) = session_access_denied(&self.0, &session)
            .await
            .map_err(internal)?
        {
            self.0.terms.close_because(session_id, &reason);
            return Err(ApiError::Invalid(reason));
        }
        let otp = self.ticket_for(caller, session_id).await?;
        Ok(TermTicket {
            session_id: session_id.to_string(),
            otp,
            target: session.target_name().to_string(),
        })
    }

    async fn list(&self, caller: &Caller) -> Result<Vec<TermSessionInfo>, ApiError> {
        let mut list = self.0.terms.list_for_user(caller.user.id);
        if let Some(me) = self.0.config.node_id.as_deref() {
            // The user's sessions on the other nodes, from their rows.
            let rows = db::terminal_sessions::live(&self.0.db)
                .await
                .map_err(internal)?;
            list.extend(
                rows.into_iter()
                    .filter(|r| r.user_id == caller.user.id)
                    .filter(|r| r.node_id.as_deref().is_some_and(|n| n != me))
                    .map(|r| TermSessionInfo {
                        session_id: r.id,
                        target: r.target,
                        state: "running".into(),
                        started: r.started_at,
                    }),
            );
            list.sort_by(|a, b| {
                a.started
                    .cmp(&b.started)
                    .then_with(|| a.session_id.cmp(&b.session_id))
            });
        }
        Ok(list)
    }

    async fn close(&self, caller: &Caller, session_id: &str) -> Result<(), ApiError> {
        if let Err(e) = self.owned(caller, session_id) {
            if self.held_elsewhere(caller, session_id).await?.is_none() {
                return Err(e);
            }
            // The holding node ends it when it sees the request (durable
            // first: the request is a row, seen within its poll interval).
            db::terminal_sessions::request_termination(
                &self.0.db,
                session_id,
                &caller.user.name,
                "closed by its owner",
            )
            .await
            .map_err(internal)?;
            self.0.hint_changed();
            return Ok(());
        }
        self.0.terms.close(session_id).await.map_err(internal)
    }
}

impl TerminalService {
    fn owned(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<Arc<crate::term::Session>, ApiError> {
        match self.0.terms.session(session_id) {
            Some(s) if s.owner() == caller.user.id => Ok(s),
            _ => Err(ApiError::NotFound(format!("terminal session {session_id}"))),
        }
    }

    /// With several nodes: the row of `caller`'s session `session_id` when
    /// another node holds it. A session whose node stopped is
    /// [`ApiError::Gone`] saying so.
    async fn held_elsewhere(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<Option<db::terminal_sessions::TermSessionRow>, ApiError> {
        let Some(me) = self.0.config.node_id.as_deref() else {
            return Ok(None);
        };
        let Some(row) = db::terminal_sessions::by_id(&self.0.db, session_id)
            .await
            .map_err(internal)?
            .filter(|r| r.user_id == caller.user.id)
        else {
            return Ok(None);
        };
        if row.node_id.as_deref().is_none_or(|n| n == me) {
            return Ok(None);
        }
        let interrupted = || {
            Err(ApiError::Gone(format!(
                "terminal session {session_id} was interrupted: the node holding it stopped"
            )))
        };
        match row.status.as_str() {
            // Its node stopped, and no node has marked it yet.
            "running" if !self.node_alive(row.node_id.as_deref()).await? => interrupted(),

            "running" => Ok(Some(row)),
            "interrupted" => interrupted(),
            _ => Ok(None),
        }
    }

    /// Whether node `id` is alive (its heartbeat is recent).
    async fn node_alive(&self, id: Option<&str>) -> Result<bool, ApiError> {
        let Some(id) = id else {
            return Ok(false);
        };
        Ok(crate::cluster::live_node_url(&self.0.db, id)
            .await
            .map_err(internal)?
            .is_some())
    }

    async fn ticket_for(&self, caller: &Caller, session_id: &str) -> Result<String, ApiError> {
        let hash = tokens::token_hash(&caller.session_token);
        tickets::issue(
            &self.0.db,
            caller.user.id,
            &tickets::Purpose::Term(session_id.to_string()),
            Some(&hash),
        )
        .await
        .map_err(internal)
    }
}

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
    db::{hosts, namespaces},
    state::Core,
    term::{OpenRequest, SshAuth, SshTarget, Target},
};

/// Largest terminal dimension accepted.
const MAX_DIMENSION: u16 = 1000;

/// [`Terminals`] backed by the session manager.
pub struct TerminalService(pub Arc<Core>);

/// Ticket purpose for attaching to session `id`.
pub fn term_purpose(id: &str) -> String {
    format!("term:{id}")
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
        if !(1..=MAX_DIMENSION).contains(&cols) || !(1..=MAX_DIMENSION).contains(&rows) {
            return Err(ApiError::Invalid(format!(
                "terminal size must be 1-{MAX_DIMENSION} columns and rows"
            )));
        }
        let core = &self.0;
        let resolved = resolve_target(core, caller, target).await?;
        let req = OpenRequest {
            user_id: caller.user.id,
            user_name: caller.user.name.clone(),
            target: resolved,
            cols,
            rows,
            remote_addr: client.remote.map(|a| a.to_string()),
            user_agent: client.user_agent,
        };
        let session_id = core.terms.open(req).await.map_err(internal)?;
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
        let session = self.owned(caller, session_id)?;
        let otp = self.ticket_for(caller, session_id).await?;
        Ok(TermTicket {
            session_id: session_id.to_string(),
            otp,
            target: session.target_name().to_string(),
        })
    }

    async fn list(&self, caller: &Caller) -> Result<Vec<TermSessionInfo>, ApiError> {
        Ok(self.0.terms.list_for_user(caller.user.id))
    }

    async fn close(&self, caller: &Caller, session_id: &str) -> Result<(), ApiError> {
        self.owned(caller, session_id)?;
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

    async fn ticket_for(&self, caller: &Caller, session_id: &str) -> Result<String, ApiError> {
        let hash = tokens::token_hash(&caller.session_token);
        tickets::issue(
            &self.0.db,
            caller.user.id,
            &term_purpose(session_id),
            Some(&hash),
        )
        .await
        .map_err(internal)
    }
}

//! Live monitoring: the admins' list of live sessions, watch tickets,
//! terminate and freeze, and the owner's "watch" links posted into chat.
use std::sync::Arc;

use app::{
    backend::{Caller, Monitoring},
    error::ApiError,
    model::{
        AuditEntry, CommandEntry, CommandQuery, LiveSession, UserInfo, WatchLink, WatchTicket,
        AUDIT_PER_PAGE,
    },
};
use async_trait::async_trait;

use super::{audit, day, internal, some};
use crate::{
    auth::{tickets, tokens},
    db::{self, commands, namespaces, DbError},
    state::Core,
    term::{Phase, Session, TermError},
};

/// Longest termination reason kept (shown to the owner, stored in the audit log).
pub const MAX_REASON_CHARS: usize = 200;

/// Whether `user` may watch `session`: admins always; members of the
/// session's namespace once the owner shared it (never the local target's).
pub async fn may_watch(core: &Core, user: &UserInfo, session: &Session) -> Result<bool, DbError> {
    if user.is_admin() {
        return Ok(true);
    }
    if !session.watch_shared() || session.meta().namespace.is_empty() {
        return Ok(false);
    }
    let Some(ns) = namespaces::id_by_name(&core.db, &session.meta().namespace).await? else {
        return Ok(false);
    };
    namespaces::is_member(&core.db, ns, user.id).await
}

/// [`Monitoring`] backed by the session manager.
pub struct MonitoringService(pub Arc<Core>);

impl MonitoringService {
    /// A single-use ticket for `caller` to watch `session_id`.
    async fn watch_otp(&self, caller: &Caller, session_id: &str) -> Result<String, ApiError> {
        tickets::issue(
            &self.0.db,
            caller.user.id,
            &tickets::Purpose::Watch(session_id.to_string()),
            Some(&tokens::token_hash(&caller.session_token)),
        )
        .await
        .map_err(internal)
    }

    /// A live session by id, `NotFound` if there is none (or it ended).
    fn live_session(&self, id: &str) -> Result<Arc<Session>, ApiError> {
        self.0
            .terms
            .session(id)
            .filter(|s| s.phase() != Phase::Ended)
            .ok_or_else(|| ApiError::NotFound(format!("terminal session {id}")))
    }
}

/// What the Live page shows of `s`.
fn live_info(s: &Session) -> LiveSession {
    let (bytes, idle) = s.activity();
    let meta = s.meta();
    LiveSession {
        session_id: s.id().to_string(),
        user: meta.owner_name.clone(),
        target: meta.target_name.clone(),
        namespace: meta.namespace.clone(),
        started: s.started().to_string(),
        idle_secs: idle.as_secs(),
        bytes,
        watchers: s.watchers(),
        frozen: s.frozen(),
        attached: s.attached(),
        node: String::new(),
    }
}

#[async_trait]
impl Monitoring for MonitoringService {
    async fn live(&self, caller: &Caller) -> Result<Vec<LiveSession>, ApiError> {
        if !caller.user.is_admin() {
            return Err(ApiError::Forbidden);
        }
        let mut list: Vec<LiveSession> = self
            .0
            .terms
            .sessions()
            .iter()
            .filter(|s| s.phase() != Phase::Ended)
            .map(|s| live_info(s))
            .collect();
        // With several nodes: the other nodes' sessions, from their rows
        // (activity and watchers are known to their node only).
        let elsewhere = super::sessions_elsewhere(&self.0).await.map_err(internal)?;
        let frozen: std::collections::HashMap<String, bool> = if elsewhere.is_empty() {
            Default::default()
        } else {
            db::terminal_sessions::freeze_requests(&self.0.db)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|(id, f, _)| (id, f))
                .collect()
        };
        for row in elsewhere {
            let user = db::users::by_id(&self.0.db, row.user_id)
                .await
                .map_err(internal)?
                .map(|u| u.name)
                .unwrap_or_default();
            list.push(LiveSession {
                frozen: frozen.get(&row.id).copied().unwrap_or(false),
                session_id: row.id,
                user,
                target: row.target,
                namespace: row.namespace,
                started: row.started_at,
                idle_secs: 0,
                bytes: 0,
                watchers: Vec::new(),
                attached: false,
                node: row.node_id.unwrap_or_default(),
            });
        }
        list.sort_by(|a, b| {
            b.started
                .cmp(&a.started)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        Ok(list)
    }

    async fn watch_ticket(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<WatchTicket, ApiError> {
        let session = match self.live_session(session_id) {
            Ok(s) => s,
            Err(e) => {
                // Held by another node: the socket is forwarded there, and
                // that node decides whether the caller may watch.
                let Some(row) = super::session_elsewhere(&self.0, session_id)
                    .await
                    .map_err(internal)?
                else {
                    return Err(e);
                };
                let otp = self.watch_otp(caller, session_id).await?;
                let user = db::users::by_id(&self.0.db, row.user_id)
                    .await
                    .map_err(internal)?
                    .map(|u| u.name)
                    .unwrap_or_default();
                return Ok(WatchTicket {
                    session_id: session_id.to_string(),
                    otp,
                    user,
                    target: row.target,
                });
            }
        };
        if !may_watch(&self.0, &caller.user, &session)
            .await
            .map_err(internal)?
        {
            return Err(ApiError::NotFound(format!("terminal session {session_id}")));
        }
        let otp = self.watch_otp(caller, session_id).await?;
        Ok(WatchTicket {
            session_id: session_id.to_string(),
            otp,
            user: session.meta().owner_name.clone(),
            target: session.target_name().to_string(),
        })
    }

    async fn terminate(
        &self,
        caller: &Caller,
        session_id: &str,
        reason: &str,
    ) -> Result<(), ApiError> {
        if !caller.user.is_admin() {
            return Err(ApiError::Forbidden);
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApiError::Invalid(
                "give a reason: the owner of the session sees it".into(),
            ));
        }
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        let session = match self.live_session(session_id) {
            Ok(s) => s,
            Err(e) => {
                // Held by another node: durable first, the request is a row
                // that node acts on within its poll interval.
                if super::session_elsewhere(&self.0, session_id)
                    .await
                    .map_err(internal)?
                    .is_none()
                {
                    return Err(e);
                }
                db::terminal_sessions::request_termination(
                    &self.0.db,
                    session_id,
                    &caller.user.name,
                    &reason,
                )
                .await
                .map_err(internal)?;
                self.0.hint_changed();
                // The node running it audits the termination when it ends it.
                return Ok(());
            }
        };
        let detail = format!(
            "{}@{}: {reason}",
            session.meta().owner_name,
            session.target_name()
        );
        match self
            .0
            .terms
            .terminate(session_id, &caller.user.name, &reason)
            .await
        {
            Ok(()) | Err(TermError::Timeout) => {}
            Err(TermError::NotFound) => {
                return Err(ApiError::NotFound(format!("terminal session {session_id}")))
            }
            Err(e) => return Err(internal(e)),
        }
        audit(
            &self.0.db,
            Some(&caller.user.name),
            "session.terminate",
            Some(session_id),
            Some(&detail),
        )
        .await;
        Ok(())
    }

    async fn freeze(
        &self,
        caller: &Caller,
        session_id: &str,
        frozen: bool,
    ) -> Result<(), ApiError> {
        if !caller.user.is_admin() {
            return Err(ApiError::Forbidden);
        }
        let changed = match self
            .0
            .terms
            .set_frozen(session_id, &caller.user.name, frozen)
            .await
        {
            Ok(c) => c,
            Err(TermError::NotFound) => {
                // Held by another node: durable first, that node applies the
                // request within its poll interval.
                if super::session_elsewhere(&self.0, session_id)
                    .await
                    .map_err(internal)?
                    .is_none()
                    || !db::terminal_sessions::request_freeze(
                        &self.0.db,
                        session_id,
                        &caller.user.name,
                        frozen,
                    )
                    .await
                    .map_err(internal)?
                {
                    return Err(ApiError::NotFound(format!("terminal session {session_id}")));
                }
                self.0.hint_changed();
                true
            }
            Err(e) => return Err(internal(e)),
        };
        // With several nodes the state is kept in the row too: the other
        // nodes show it, and the row never asks for the opposite later.
        if self.0.config.node_id.is_some() {
            db::terminal_sessions::request_freeze(
                &self.0.db,
                session_id,
                &caller.user.name,
                frozen,
            )
            .await
            .map_err(internal)?;
        }
        if changed {
            let action = if frozen {
                "session.freeze"
            } else {
                "session.unfreeze"
            };
            audit(
                &self.0.db,
                Some(&caller.user.name),
                action,
                Some(session_id),
                None,
            )
            .await;
        }
        Ok(())
    }

    async fn commands(
        &self,
        caller: &Caller,
        q: &CommandQuery,
    ) -> Result<Vec<CommandEntry>, ApiError> {
        if !caller.user.is_admin() {
            return Err(ApiError::Forbidden);
        }
        let verdict = match q.verdict.trim() {
            "" => None,
            v => Some(commands::Verdict::parse(v).ok_or_else(|| {
                ApiError::Invalid(format!(
                    "verdict must be one of {}",
                    commands::Verdict::NAMES.join(", ")
                ))
            })?),
        };
        let filter = commands::CommandFilter {
            user: some(&q.user),
            host: some(&q.host),
            namespace: some(&q.namespace),
            verdict,
            text: some(&q.text),
            since: day(&q.since, 0)?,
            until: day(&q.until, 1)?,
            session_id: None,
            limit: i64::from(AUDIT_PER_PAGE),
            before_id: q.before_id,
        };
        let rows = commands::search(&self.0.db, &filter)
            .await
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|r| CommandEntry {
                id: r.id,
                at: r.at,
                user: r.user.unwrap_or_else(|| format!("#{}", r.user_id)),
                target: r.target,
                namespace: r.namespace,
                line: r.line,
                verdict: r.verdict.as_str().to_string(),
                rule: r.rule,
                session_id: r.session_id,
                offset_ms: r.offset_ms,
            })
            .collect())
    }

    async fn events(&self, caller: &Caller, since: &str) -> Result<Vec<AuditEntry>, ApiError> {
        if !caller.user.is_admin() {
            return Err(ApiError::Forbidden);
        }
        let limit = i64::from(AUDIT_PER_PAGE);
        let mut rows = match day(since, 0)? {
            Some(since) => db::audit::list(&self.0.db, Some(&since), limit).await,
            None => db::audit::list(&self.0.db, None, limit).await,
        }
        .map_err(internal)?;
        // Newest first on the page.
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|e| AuditEntry {
                id: e.id,
                at: e.at,
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect())
    }

    async fn share_watch(
        &self,
        caller: &Caller,
        session_id: &str,
        room: &str,
    ) -> Result<(), ApiError> {
        let session = self
            .live_session(session_id)
            .ok()
            .filter(|s| s.owner() == caller.user.id)
            .ok_or_else(|| ApiError::NotFound(format!("terminal session {session_id}")))?;
        if room.trim().is_empty() {
            return Err(ApiError::Invalid("choose a room".into()));
        }
        // Before the link is out, so whoever follows it may watch.
        session.share_watch();
        let link = WatchLink {
            id: session_id.to_string(),
        };
        let text = format!(
            "👁 watch {}@{} live: {}",
            caller.user.name,
            session.target_name(),
            link.path()
        );
        super::post_to_room(
            &self.0,
            caller,
            room,
            text,
            "session.watch_shared",
            session_id,
        )
        .await
    }
}

//! The tab's side of the shared reconnecting socket: which ticket to get
//! (open a session, or reattach to it), resuming after an open, what a close
//! or a failed ticket means for the tab (retry, failed, ended), and ending.
use web_sys::{CloseEvent, MessageEvent};

use super::{input, output, socket, Shared, WeakShared};
use crate::api::{attach_terminal, open_terminal};
use crate::components::socket::{Connector, Failure, SocketTarget, TicketFuture};
use crate::components::{browser, term::TabState};
use crate::error::ApiError;
use crate::model::TermTicket;
use crate::protocol::term::{ClientFrame, NoticeLevel};

use leptos::prelude::*;

/// A failed ticket request and what was asked.
pub(super) struct TicketError {
    /// Reattaching to an existing session (not opening a new one).
    reattach: bool,
    error: ApiError,
}

/// Connects a tab to its [`ReconnectingSocket`](crate::components::socket::ReconnectingSocket).
pub(super) struct TabLink {
    live: WeakShared,
}

impl TabLink {
    pub fn new(live: WeakShared) -> Self {
        Self { live }
    }
}

impl Connector for TabLink {
    type Ticket = TermTicket;
    type Error = TicketError;

    fn attempting(&self, first: bool) {
        let Some(live) = self.live.upgrade() else {
            return;
        };
        let tab = live.borrow().tab;
        tab.state.set(if first {
            TabState::Connecting
        } else {
            TabState::Reconnecting { in_secs: 0 }
        });
    }

    /// Opens the session the first time, attaches to it afterwards.
    fn fetch_ticket(&self) -> TicketFuture<TermTicket, TicketError> {
        let Some(live) = self.live.upgrade() else {
            // The tab is gone; the socket drops this answer unread.
            return Box::pin(std::future::ready(Err(TicketError {
                reattach: true,
                error: ApiError::NotFound("tab closed".into()),
            })));
        };
        let (tab, cols, rows) = {
            let l = live.borrow();
            (l.tab, l.term.cols(), l.term.rows())
        };
        let session = tab.session_id.get_untracked();
        let target = tab.target.get_value();
        Box::pin(async move {
            let reattach = session.is_some();
            let ticket = match session {
                Some(id) => attach_terminal(id).await,
                None => open_terminal(target, clamp_u16(cols), clamp_u16(rows)).await,
            };
            ticket.map_err(|error| TicketError { reattach, error })
        })
    }

    fn ticket_failed(&self, err: TicketError) -> Failure {
        let Some(live) = self.live.upgrade() else {
            return Failure::Permanent;
        };
        let TicketError { reattach, error } = err;
        match error {
            ApiError::NotFound(_) if reattach => {
                output::notice(&live, NoticeLevel::Warning, "this session has ended");
                session_over(
                    &live,
                    TabState::Exited {
                        status: "ended".into(),
                    },
                );
                Failure::Permanent
            }
            // Its node stopped: the server says so, and it cannot come back.
            ApiError::Gone(reason) if reattach => {
                output::notice(&live, NoticeLevel::Error, &reason);
                session_over(&live, TabState::SessionFailed { reason });
                Failure::Permanent
            }
            ApiError::Unauthorized => {
                output::notice(
                    &live,
                    NoticeLevel::Error,
                    "you are signed out; log in again to reattach",
                );
                stopped(
                    &live,
                    TabState::Failed {
                        reason: "signed out".into(),
                    },
                );
                Failure::Permanent
            }
            // A draining node refused before starting anything: trying again
            // reaches another node (the load balancer moves away from it) or
            // this one once it is back.
            ApiError::Unavailable(reason) if !reattach => {
                output::notice(&live, NoticeLevel::Warning, &reason);
                Failure::Transient
            }
            // Opening again could start a second shell: let the user decide.
            e if !reattach
                || matches!(
                    e,
                    ApiError::Forbidden | ApiError::Invalid(_) | ApiError::NotFound(_)
                ) =>
            {
                output::notice(&live, NoticeLevel::Error, &e.to_string());
                stopped(
                    &live,
                    TabState::Failed {
                        reason: e.to_string(),
                    },
                );
                Failure::Permanent
            }
            _ => Failure::Transient,
        }
    }

    fn target(&self, ticket: TermTicket) -> SocketTarget {
        if let Some(live) = self.live.upgrade() {
            let tab = live.borrow().tab;
            if tab.session_id.get_untracked().as_deref() != Some(ticket.session_id.as_str()) {
                tab.session_id.set(Some(ticket.session_id.clone()));
            }
        }
        SocketTarget {
            path: format!(
                "/ws/term/{}?otp={}",
                browser::encode_query_value(&ticket.session_id),
                browser::encode_query_value(&ticket.otp)
            ),
            protocol: None,
            binary: true,
        }
    }

    /// Resumes the stream where the screen stopped, then sends what was typed meanwhile.
    fn opened(&self) {
        let Some(live) = self.live.upgrade() else {
            return;
        };
        let (tab, next, paused) = {
            let mut l = live.borrow_mut();
            l.last_notice = None;
            (l.tab, l.cursor.next(), l.flow.paused())
        };
        input::send_frame(&live, &ClientFrame::ResumeFrom { seq: next });
        if paused {
            input::send_frame(&live, &ClientFrame::Pause);
        }
        input::send_size(&live);
        input::flush_pending(&live);
        tab.state.set(TabState::Live);
    }

    fn message(&self, ev: &MessageEvent) {
        if let Some(live) = self.live.upgrade() {
            output::on_message(&live, ev);
        }
    }

    fn closed(&self, ev: &CloseEvent) -> Failure {
        let Some(live) = self.live.upgrade() else {
            return Failure::Permanent;
        };
        let (exited, last_notice) = {
            let mut l = live.borrow_mut();
            (l.exited, l.last_notice.take())
        };
        if exited {
            return Failure::Permanent;
        }
        if refused(ev.code()) {
            let reason = output::printable(&ev.reason());
            let reason = if reason.is_empty() {
                "disconnected by the server".to_string()
            } else {
                reason
            };
            output::notice(&live, NoticeLevel::Warning, &reason);
            stopped(&live, TabState::Failed { reason });
            return Failure::Permanent;
        }
        // A notice followed by a clean close is the server ending this attachment
        // on purpose (session closed, replaced by another tab, could not connect;
        // the notice is on screen already). Only lost connections are retried.
        // Errors are the session's own end (its target could not be reached).
        match last_notice.filter(|_| ev.was_clean()) {
            Some((NoticeLevel::Info, _)) => session_over(
                &live,
                TabState::Exited {
                    status: "ended".into(),
                },
            ),
            Some((NoticeLevel::Error, reason)) => {
                session_over(&live, TabState::SessionFailed { reason })
            }
            Some((_, reason)) => stopped(&live, TabState::Failed { reason }),
            None => return Failure::Transient,
        }
        Failure::Permanent
    }

    fn waiting(&self, in_secs: u32) {
        if let Some(live) = self.live.upgrade() {
            let tab = live.borrow().tab;
            tab.state.set(TabState::Reconnecting { in_secs });
        }
    }
}

/// Close codes that refuse this client for good: a policy refusal or an
/// application-defined code.
fn refused(code: u16) -> bool {
    code == 1008 || (4000..=4999).contains(&code)
}

pub(super) fn clamp_u16(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX).max(1)
}

/// The session ended for good (`state` says how): never reconnect.
pub(super) fn session_over(live: &Shared, state: TabState) {
    live.borrow_mut().exited = true;
    stopped(live, state);
}

/// The tab stops trying (for now, or for good): input kept for a reattach
/// that will not come is dropped, and the user is told.
pub(super) fn stopped(live: &Shared, state: TabState) {
    let (tab, flushed) = {
        let mut l = live.borrow_mut();
        (l.tab, l.pending.take())
    };
    let lost = flushed.bytes.len() + flushed.refused;
    if lost > 0 {
        output::notice(
            live,
            NoticeLevel::Warning,
            &format!(
                "{} of input typed while disconnected were not sent",
                output::bytes_text(lost)
            ),
        );
        input::count_unsent(live, lost);
    }
    tab.state.set(state);
}

/// The page learned from the server's session list that the session ended.
pub(super) fn ended(live: &Shared, state: TabState) {
    let (exited, tab) = {
        let l = live.borrow();
        (l.exited, l.tab)
    };
    if exited {
        // Already over (shown as exited): only the cause is news.
        tab.state.set(state);
        return;
    }
    // Cancels a pending retry and ignores the old socket's events.
    socket(live).cancel();
    output::notice(live, NoticeLevel::Warning, &state.detail());
    session_over(live, state);
}

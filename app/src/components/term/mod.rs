//! Terminal tabs: the state the page shows for each tab, the commands the page
//! sends to a tab, and the pane hosting its xterm.js. Everything that touches
//! xterm.js or the terminal socket lives in `live`, compiled only for the
//! browser (`hydrate`); [`TerminalPane`] starts it from an effect.
use std::rc::Rc;

use leptos::html::Div;
use leptos::prelude::*;

pub mod flow;
#[cfg(feature = "hydrate")]
mod live;
pub mod paste;
pub mod pending;
pub mod settings;
pub mod store;
pub mod webgl_probe;

/// What became of the last "send to all" line in a tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastState {
    /// Sent; the server has not answered yet.
    Pending,
    /// The shell got it.
    Sent,
    /// Not sent, and why (a guard rule blocked it, the session is frozen).
    Blocked(String),
    /// The tab was not connected: nothing was sent.
    NotConnected,
}

impl BroadcastState {
    /// Short text for the tab and the summary.
    pub fn label(&self) -> &'static str {
        match self {
            BroadcastState::Pending => "sending",
            BroadcastState::Sent => "sent",
            BroadcastState::Blocked(_) => "blocked",
            BroadcastState::NotConnected => "not connected",
        }
    }
}

/// "sent 2 · blocked 1 · not connected 1" for the results of the tabs that
/// got the last line, in that order, skipping what did not happen.
pub fn broadcast_summary(states: &[BroadcastState]) -> String {
    let order = [
        BroadcastState::Sent.label(),
        BroadcastState::Blocked(String::new()).label(),
        BroadcastState::NotConnected.label(),
        BroadcastState::Pending.label(),
    ];
    order
        .iter()
        .filter_map(|label| {
            let n = states.iter().filter(|s| s.label() == *label).count();
            (n > 0).then(|| format!("{label} {n}"))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Where a tab's session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TabState {
    /// Opening or attaching.
    Connecting,
    /// Attached; keystrokes go to the shell.
    Live,
    /// The socket dropped while the session lives; retrying in `in_secs` (0: now).
    Reconnecting { in_secs: u32 },
    /// The shell ended (`status` says how).
    Exited { status: String },
    /// This tab could not open or attach, or the server ended its connection;
    /// the session may still live (the user can try to reconnect).
    Failed { reason: String },
    /// The session itself failed: the target could not be reached or the
    /// connection to it was lost. Nothing to reconnect to.
    SessionFailed { reason: String },
}

impl TabState {
    /// Short text for the tab title.
    pub fn label(&self) -> String {
        match self {
            TabState::Connecting => "connecting".into(),
            TabState::Live => "live".into(),
            TabState::Reconnecting { in_secs: 0 } => "reconnecting".into(),
            TabState::Reconnecting { in_secs } => format!("reconnecting in {in_secs} s"),
            TabState::Exited { status } => format!("exited ({status})"),
            TabState::Failed { .. } => "failed".into(),
            TabState::SessionFailed { .. } => "session failed".into(),
        }
    }

    /// Stable name for CSS classes and `data-state`.
    pub fn key(&self) -> &'static str {
        match self {
            TabState::Connecting => "connecting",
            TabState::Live => "live",
            TabState::Reconnecting { .. } => "reconnecting",
            TabState::Exited { .. } => "exited",
            TabState::Failed { .. } => "failed",
            TabState::SessionFailed { .. } => "session-failed",
        }
    }

    /// Why the tab is not live, for a tooltip or status line (the label otherwise).
    pub fn detail(&self) -> String {
        match self {
            TabState::Failed { reason } => format!("failed: {reason}"),
            TabState::SessionFailed { reason } => format!("session failed: {reason}"),
            other => other.label(),
        }
    }

    /// Whether the session has ended for good (exited or failed): the tab is
    /// not reattached after a reload and never reconnects.
    pub fn session_over(&self) -> bool {
        matches!(
            self,
            TabState::Exited { .. } | TabState::SessionFailed { .. }
        )
    }

    /// The state a tab should switch to when the server's session list says
    /// its session is `listed` (`TermSessionInfo::state`: `running`,
    /// `exited` or `failed`), or `None` to leave it alone.
    ///
    /// The socket knows best while it is open or opening (`Live`,
    /// `Connecting`; the session's last frames are on their way), so only a
    /// tab waiting to reconnect, one that could not attach, or one that saw
    /// an exit without its cause is corrected. Unknown states change nothing.
    pub fn after_listing(&self, listed: &str) -> Option<TabState> {
        let correctable = matches!(
            self,
            TabState::Reconnecting { .. } | TabState::Failed { .. } | TabState::Exited { .. }
        );
        if !correctable {
            return None;
        }
        match listed {
            "failed" => Some(TabState::SessionFailed {
                reason: match self {
                    TabState::Failed { reason } => reason.clone(),
                    _ => "the session failed".into(),
                },
            }),
            "exited" if !matches!(self, TabState::Exited { .. }) => Some(TabState::Exited {
                status: "ended".into(),
            }),
            _ => None,
        }
    }

    /// Whether the server-side session may still be running (closing the tab should end it).
    pub fn session_alive(&self) -> bool {
        matches!(
            self,
            TabState::Connecting | TabState::Live | TabState::Reconnecting { .. }
        )
    }
}

/// What the page can ask of a tab's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermCmd {
    /// Type this text into the shell (mirrored keystrokes).
    Input(String),
    /// Type this line from the send-to-all bar into the shell; the session's
    /// recording marks it.
    SendToAll(String),
    /// Give the terminal keyboard focus.
    Focus,
    /// Fit the terminal to its pane (and tell the server the new size).
    Fit,
    /// Find `text`: forward or backward; `incremental` extends the current
    /// match while the user is still typing.
    Find {
        text: String,
        forward: bool,
        incremental: bool,
    },
    /// Clear search highlighting.
    ClearFind,
    /// Copy the selection to the clipboard.
    Copy,
    /// Paste the clipboard into the shell.
    Paste,
    /// Try again now after a failure or during a backoff wait.
    Reconnect,
    /// The session has ended (the server's list says so): stop reconnecting
    /// and show this state.
    Ended(TabState),
    /// Tear down the terminal and its socket (the session itself stays).
    Dispose,
}

/// Where commands for a started terminal go.
type Sink = Rc<dyn Fn(TermCmd)>;

/// One tab as the page holds it. `Copy`: every field is an arena handle, owned
/// by the page, so views and callbacks can capture it freely.
#[derive(Clone, Copy)]
pub struct TermTab {
    /// Unique within the page; used as list key and in `data-key`.
    pub key: u64,
    /// Target name (host, or `local`).
    pub target: StoredValue<String>,
    /// The server session, once opened (or the one to reattach).
    pub session_id: RwSignal<Option<String>>,
    /// Connection state, shown in the tab title.
    pub state: RwSignal<TabState>,
    /// Receives "send to all" and mirrored keystrokes.
    pub included: RwSignal<bool>,
    /// The last search found nothing.
    pub search_miss: RwSignal<bool>,
    /// Bytes typed while disconnected that were not sent (the buffer was
    /// full, or the session ended before it could be sent); 0 when nothing
    /// was lost since the user last typed into a live tab.
    pub unsent: RwSignal<usize>,
    /// Who is watching the session now (the server says so whenever it changes).
    pub watchers: RwSignal<Vec<String>>,
    /// What became of the last "send to all" line (`None`: none was sent here).
    pub broadcast: RwSignal<Option<BroadcastState>>,
    sink: StoredValue<Option<Sink>, LocalStorage>,
}

impl TermTab {
    /// A tab for `target`; with `session_id` it reattaches instead of opening.
    /// Call under the page's owner so the handles live as long as the page.
    pub fn new(key: u64, target: String, session_id: Option<String>) -> Self {
        Self {
            key,
            target: StoredValue::new(target),
            session_id: RwSignal::new(session_id),
            state: RwSignal::new(TabState::Connecting),
            included: RwSignal::new(true),
            search_miss: RwSignal::new(false),
            unsent: RwSignal::new(0),
            watchers: RwSignal::new(Vec::new()),
            broadcast: RwSignal::new(None),
            sink: StoredValue::new_local(None),
        }
    }

    /// Sends a command to the terminal (ignored before it started or after it ended).
    pub fn send(&self, cmd: TermCmd) {
        if let Some(Some(sink)) = self.sink.try_get_value() {
            sink(cmd);
        }
    }

    /// Whether keystrokes reach a shell right now.
    pub fn is_live(&self) -> bool {
        self.state.with_untracked(|s| *s == TabState::Live)
    }

    /// Whether "send to all" and mirroring should type into this tab.
    pub fn receives_broadcast(&self) -> bool {
        self.is_live() && self.included.get_untracked()
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn set_sink(&self, sink: Sink) {
        self.sink.set_value(Some(sink));
    }

    /// Disposes the terminal and forgets it.
    fn stop(&self) {
        self.send(TermCmd::Dispose);
        if let Some(sink) = self.sink.try_update_value(Option::take) {
            drop(sink);
        }
    }
}

/// The element hosting one tab's terminal. All panes stay laid out (inactive
/// ones are hidden, not removed) so xterm.js can measure and fit them.
#[component]
pub fn TerminalPane(
    /// The tab.
    tab: TermTab,
    /// Whether this tab is the one shown.
    #[prop(into)]
    active: Signal<bool>,
    /// Called with `(tab key, data)` for every keystroke typed in this tab.
    on_input: Callback<(u64, String)>,
) -> impl IntoView {
    let node = NodeRef::<Div>::new();
    Effect::new(move |started: Option<bool>| {
        if started == Some(true) {
            return true;
        }
        match node.get() {
            Some(el) => {
                start_live(tab, el.into(), on_input);
                true
            }
            None => false,
        }
    });
    Effect::new(move || {
        if active.get() {
            // After the pane became visible: size it and take the keyboard.
            request_animation_frame(move || {
                tab.send(TermCmd::Fit);
                tab.send(TermCmd::Focus);
            });
        }
    });
    on_cleanup(move || tab.stop());
    view! {
        <div
            class="term-pane"
            class:active=move || active.get()
            data-testid="term-pane"
            data-key=tab.key
            data-target=move || tab.target.get_value()
            data-state=move || tab.state.get().key()
            node_ref=node
        ></div>
    }
}

/// Starts xterm.js and the socket for `tab` inside `el` (browser only).
#[cfg(feature = "hydrate")]
fn start_live(tab: TermTab, el: web_sys::HtmlElement, on_input: Callback<(u64, String)>) {
    tab.set_sink(live::start(tab, el, on_input));
}

/// The server renders the empty pane; the browser starts the terminal.
#[cfg(not(feature = "hydrate"))]
fn start_live(_tab: TermTab, _el: web_sys::HtmlElement, _on_input: Callback<(u64, String)>) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(reason: &str) -> TabState {
        TabState::Failed {
            reason: reason.into(),
        }
    }

    fn session_failed(reason: &str) -> TabState {
        TabState::SessionFailed {
            reason: reason.into(),
        }
    }

    fn exited(status: &str) -> TabState {
        TabState::Exited {
            status: status.into(),
        }
    }

    #[test]
    fn a_failed_session_has_its_own_state() {
        let s = session_failed("the connection to web1 was lost");
        assert_eq!(s.key(), "session-failed");
        assert_eq!(s.label(), "session failed");
        assert_eq!(
            s.detail(),
            "session failed: the connection to web1 was lost"
        );
        assert!(s.session_over());
        assert!(!s.session_alive());
        assert_ne!(s.key(), exited("ended").key());
        assert_ne!(s.key(), failed("x").key());
        assert!(!failed("signed out").session_over());
        assert!(exited("0").session_over());
    }

    #[test]
    fn listed_failed_sessions_are_shown_failed_not_exited() {
        let reconnecting = TabState::Reconnecting { in_secs: 4 };
        assert_eq!(
            reconnecting.after_listing("failed"),
            Some(session_failed("the session failed"))
        );
        assert_eq!(
            exited("ended").after_listing("failed"),
            Some(session_failed("the session failed"))
        );
        // An attach failure keeps its reason, now known to be the session's.
        assert_eq!(
            failed("could not connect to web1").after_listing("failed"),
            Some(session_failed("could not connect to web1"))
        );
        assert_eq!(reconnecting.after_listing("exited"), Some(exited("ended")));
        assert_eq!(failed("x").after_listing("exited"), Some(exited("ended")));
        // Nothing to correct.
        assert_eq!(exited("0").after_listing("exited"), None);
        assert_eq!(session_failed("x").after_listing("failed"), None);
        assert_eq!(session_failed("x").after_listing("exited"), None);
        for listed in ["running", "failed", "exited", "unknown"] {
            assert_eq!(TabState::Live.after_listing(listed), None, "{listed}");
            assert_eq!(TabState::Connecting.after_listing(listed), None, "{listed}");
        }
        assert_eq!(reconnecting.after_listing("running"), None);
        assert_eq!(reconnecting.after_listing("paused"), None);
    }

    #[test]
    fn broadcast_results_are_summed_up_in_a_fixed_order() {
        use BroadcastState::*;
        assert_eq!(broadcast_summary(&[]), "");
        assert_eq!(
            broadcast_summary(&[
                NotConnected,
                Sent,
                Blocked("blocked by deny word \"rm\" (#1)".into()),
                Sent,
                Pending,
            ]),
            "sent 2 · blocked 1 · not connected 1 · sending 1"
        );
    }
}

//! Live monitoring: the admins' Live page (`/live`: every live session,
//! refreshed every two seconds, with watch, freeze and terminate) and the
//! watch page (`/live/{id}`: a read-only view of one session, for admins and
//! for teammates the owner shared it with).
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;

use crate::api::{freeze_session, live_sessions, terminate_session, watch_session};
use crate::components::auth::{AfterHydration, RequireUser};
use crate::model::LiveSession;
use crate::pages::recordings::{short_time, size_text};

/// How often the Live page asks for the list again.
const REFRESH_MS: u64 = 2000;

/// The list of live sessions (admins only).
#[component]
pub fn LivePage() -> impl IntoView {
    view! {
        <RequireUser admin=true>
            <LiveView/>
        </RequireUser>
    }
    .into_any()
}

/// Seconds as `42s`, `3m 05s`, `1h 02m`.
fn idle_text(secs: u64) -> String {
    match (secs / 3600, (secs / 60) % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

#[component]
fn LiveView() -> impl IntoView {
    let tick = RwSignal::new(0u64);
    // Fetched by the browser after hydration (see `AfterHydration`).
    let rows = LocalResource::new(move || {
        tick.track();
        live_sessions()
    });
    let message = RwSignal::new(None::<Result<String, String>>);
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || tick.update(|t| *t += 1),
            std::time::Duration::from_millis(REFRESH_MS),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    let refresh = move || tick.update(|t| *t += 1);
    view! {
        <main class="page live-page">
            <h1>"Live sessions"</h1>
            <p class="muted">
                "Every terminal session open now. Watching is read-only; the owner sees who watches. "
                "Terminate ends a session at once and shows your reason to its owner."
            </p>
            {move || message.get().map(|m| match m {
                Ok(text) => view! { <p class="notice" data-testid="live-message">{text}</p> }.into_any(),
                Err(text) => view! { <p class="error" role="alert" data-testid="live-message">{text}</p> }.into_any(),
            })}
            <AfterHydration>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="muted" data-testid="live-empty">"No live sessions."</p> }.into_any()
                        }
                        Ok(list) => view! { <LiveTable list message refresh/> }.into_any(),
                        Err(e) => view! { <p class="error">{crate::pages::error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
            </AfterHydration>
        </main>
    }
}

#[component]
fn LiveTable(
    list: Vec<LiveSession>,
    message: RwSignal<Option<Result<String, String>>>,
    refresh: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|s| view! { <LiveRow s message refresh/> })
        .collect_view();
    view! {
        <table class="card live-table" data-testid="live-table">
            <thead>
                <tr>
                    <th>"User"</th>
                    <th>"Host"</th>
                    <th>"Namespace"</th>
                    <th>"Started"</th>
                    <th>"Idle"</th>
                    <th>"Output"</th>
                    <th>"Watchers"</th>
                    <th>"Control"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
fn LiveRow(
    s: LiveSession,
    message: RwSignal<Option<Result<String, String>>>,
    refresh: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let id = StoredValue::new(s.session_id.clone());
    let frozen = s.frozen;
    let who = format!("{}@{}", s.user, s.target);
    let who_done = who.clone();
    let terminate = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (id, why, who) = (id.get_value(), reason.get_untracked(), who_done.clone());
        spawn_local(async move {
            message.set(Some(match terminate_session(id, why).await {
                Ok(()) => Ok(format!("terminated {who}")),
                Err(e) => Err(crate::pages::error_text(&e)),
            }));
            refresh();
        });
    };
    let toggle_freeze = move |_| {
        let id = id.get_value();
        spawn_local(async move {
            if let Err(e) = freeze_session(id, !frozen).await {
                message.set(Some(Err(crate::pages::error_text(&e))));
            }
            refresh();
        });
    };
    // Held by another node: what only that node knows is not shown.
    let node = s.node.clone();
    let remote = !node.is_empty();
    let watchers = if remote || s.watchers.is_empty() {
        "—".to_string()
    } else {
        s.watchers.join(", ")
    };
    view! {
        <tr data-testid="live-row" data-session=s.session_id.clone() data-user=s.user.clone() data-frozen=frozen.to_string()>
            <td>
                {s.user.clone()}
                {(!s.attached && !remote).then(|| view! { <small class="muted">" (detached)"</small> })}
                {remote.then(|| view! { <small class="muted" data-testid="live-node">{format!(" (node {node})")}</small> })}
            </td>
            <td>{s.target.clone()}</td>
            <td>{if s.namespace.is_empty() { "—".to_string() } else { s.namespace.clone() }}</td>
            <td>{short_time(&s.started)}</td>
            <td data-testid="live-idle">{if remote { "—".to_string() } else { idle_text(s.idle_secs) }}</td>
            <td>{if remote { "—".to_string() } else { size_text(i64::try_from(s.bytes).ok()) }}</td>
            <td data-testid="live-watchers">{watchers}</td>
            <td class="live-controls">
                <a class="button" data-testid="live-watch" href=format!("/live/{}", s.session_id)>"Watch"</a>
                <button type="button" data-testid="live-freeze" on:click=toggle_freeze>
                    {if frozen { "Unfreeze input" } else { "Freeze input" }}
                </button>
                <form class="inline" on:submit=terminate>
                    <input
                        type="text"
                        placeholder="reason (shown to the user)"
                        aria-label=format!("Reason for terminating {who}")
                        data-testid="live-reason"
                        maxlength="200"
                        required
                        bind:value=reason
                    />
                    <button type="submit" class="danger" data-testid="live-terminate">"Terminate"</button>
                </form>
            </td>
        </tr>
    }
}

/// The read-only view of one session.
#[component]
pub fn WatchPage() -> impl IntoView {
    view! {
        <RequireUser>
            <WatchSession/>
        </RequireUser>
    }
    .into_any()
}

#[component]
fn WatchSession() -> impl IntoView {
    let params = use_params_map();
    let id = params.with_untracked(|p| p.get("id").unwrap_or_default());
    let node = NodeRef::<leptos::html::Div>::new();
    let status = RwSignal::new("Connecting…".to_string());
    let ended = RwSignal::new(false);
    let attempt = RwSignal::new(0u32);
    let title = RwSignal::new(String::new());
    {
        let id = id.clone();
        Effect::new(move |_| {
            attempt.track();
            let Some(el) = node.get() else {
                return;
            };
            let id = id.clone();
            spawn_local(async move {
                match watch_session(id.clone()).await {
                    Ok(ticket) => {
                        title.set(format!("{}@{}", ticket.user, ticket.target));
                        view::open(el.into(), &ticket.session_id, &ticket.otp, status, ended);
                    }
                    Err(e) => {
                        status.set(crate::pages::error_text(&e));
                        ended.set(true);
                    }
                }
            });
        });
    }
    on_cleanup(view::close);
    let again = move |_| {
        ended.set(false);
        status.set("Connecting…".into());
        attempt.update(|a| *a += 1);
    };
    view! {
        <main class="page watch-page">
            <header class="watch-head">
                <h1>"Watching " <span data-testid="watch-title">{move || title.get()}</span></h1>
                <span class="badge">"read-only"</span>
                <span class="muted" data-testid="watch-status">{move || status.get()}</span>
                <button type="button" data-testid="watch-again" hidden=move || !ended.get() on:click=again>
                    "Watch again"
                </button>
                <a href="/live">"All live sessions"</a>
            </header>
            <div class="watch-pane" data-testid="watch-pane" node_ref=node></div>
        </main>
    }
}

#[cfg(feature = "hydrate")]
mod view {
    //! The page's one watch (browser only).
    use std::cell::RefCell;

    use leptos::prelude::*;

    use crate::components::watch_view::{self, WatchState, WatchView};

    thread_local! {
        static VIEW: RefCell<Option<WatchView>> = const { RefCell::new(None) };
    }

    /// Starts the watch (replacing any earlier one) and reports its state.
    pub fn open(
        el: web_sys::HtmlElement,
        id: &str,
        otp: &str,
        status: RwSignal<String>,
        ended: RwSignal<bool>,
    ) {
        close();
        let on_state = move |s: WatchState| match s {
            WatchState::Live => status.set("Live".into()),
            WatchState::Ended(why) => {
                status.set(format!("Ended: {why}"));
                ended.set(true);
            }
        };
        match watch_view::start(&el, id, otp, on_state) {
            Ok(v) => VIEW.with(|cell| *cell.borrow_mut() = Some(v)),
            Err(e) => {
                status.set(format!("cannot watch: {e}"));
                ended.set(true);
            }
        }
    }

    /// Ends the watch.
    pub fn close() {
        let view = VIEW.with(|cell| cell.borrow_mut().take());
        drop(view);
    }
}

#[cfg(not(feature = "hydrate"))]
mod view {
    //! The server renders the empty pane; the browser fills it.
    use leptos::prelude::*;

    pub fn open(
        _el: web_sys::HtmlElement,
        _id: &str,
        _otp: &str,
        _status: RwSignal<String>,
        _ended: RwSignal<bool>,
    ) {
    }

    pub fn close() {}
}

#[cfg(test)]
mod tests {
    use super::idle_text;

    #[test]
    fn idle_times_read_short() {
        assert_eq!(idle_text(0), "0s");
        assert_eq!(idle_text(59), "59s");
        assert_eq!(idle_text(65), "1m 05s");
        assert_eq!(idle_text(3725), "1h 02m");
    }
}

//! Terminals page (`/terminals`, deep link `?host=a&host=b`): tabs of live
//! shells, a target picker, sessions to reattach, per-tab search/copy/paste
//! and sharing of the tab's recording into chat, and the "send to all" bar with keystroke mirroring. Each tab's terminal is a
//! [`TerminalPane`]; this module arranges them and keeps the tab list in
//! `sessionStorage` so a reload reattaches to the same shells.
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_query_map;

use crate::api::{close_terminal, list_targets, my_terminals, share_recording, share_watch};
use crate::components::auth::RequireUser;
use crate::components::browser;
use crate::components::term::{
    broadcast_summary,
    paste::neutralize_markers,
    store::{self, SavedTab},
    BroadcastState, TabState, TermCmd, TermTab, TerminalPane,
};
use crate::model::TermSessionInfo;

/// Terminal tabs (logged-in users only).
#[component]
pub fn TerminalsPage() -> impl IntoView {
    view! {
        <RequireUser>
            <TerminalsView/>
        </RequireUser>
    }
    .into_any()
}

/// The page's tab list and what acts on it; `Copy` so every view can use it.
#[derive(Clone, Copy)]
struct Tabs {
    list: RwSignal<Vec<TermTab>>,
    active: RwSignal<Option<u64>>,
    /// Opens a tab: `(target, session to reattach)`.
    open: Callback<(String, Option<String>)>,
    /// Bumped when the server's session list may have changed.
    refresh: RwSignal<u64>,
}

impl Tabs {
    fn active_tab(&self) -> Option<TermTab> {
        let active = self.active.get()?;
        self.list
            .with(|l| l.iter().find(|t| t.key == active).copied())
    }

    fn activate(&self, key: u64) {
        self.active.set(Some(key));
    }

    /// Closes a tab; a live session is ended on the server after confirmation.
    fn close(&self, tab: TermTab) {
        let state = tab.state.get_untracked();
        let target = tab.target.get_value();
        let session = tab.session_id.get_untracked();
        let alive = state.session_alive() && session.is_some();
        if alive
            && !browser::confirm(&format!(
                "Close the terminal on {target}? Its shell will be ended."
            ))
        {
            return;
        }
        let mut next_active = None;
        self.list.update(|l| {
            if let Some(pos) = l.iter().position(|t| t.key == tab.key) {
                l.remove(pos);
                next_active = l.get(pos).or_else(|| l.last()).map(|t| t.key);
            }
        });
        if self.active.get_untracked() == Some(tab.key) {
            self.active.set(next_active);
        }
        let refresh = self.refresh;
        if let (true, Some(id)) = (alive, session) {
            spawn_local(async move {
                if let Err(e) = close_terminal(id).await {
                    leptos::logging::warn!("closing the session: {e}");
                }
                refresh.update(|n| *n += 1);
            });
        }
    }
}

#[component]
fn TerminalsView() -> impl IntoView {
    let owner = Owner::current();
    let next_key = StoredValue::new(1u64);
    let list = RwSignal::new(Vec::<TermTab>::new());
    let active = RwSignal::new(None::<u64>);
    let refresh = RwSignal::new(0u64);
    let open = Callback::new(move |(target, session): (String, Option<String>)| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        // Create the tab's handles under the page, not under the event handler.
        let tab = match &owner {
            Some(owner) => owner.with(|| TermTab::new(key, target, session)),
            None => TermTab::new(key, target, session),
        };
        list.update(|l| l.push(tab));
        active.set(Some(key));
    });
    let tabs = Tabs {
        list,
        active,
        open,
        refresh,
    };
    let mirror = RwSignal::new(false);

    restore_and_deep_link(tabs);

    // Keystrokes typed in one selected tab go to every other selected live tab.
    let on_input = Callback::new(move |(key, data): (u64, String)| {
        if !mirror.get_untracked() {
            return;
        }
        let all = list.get_untracked();
        if !all
            .iter()
            .any(|t| t.key == key && t.included.get_untracked())
        {
            return;
        }
        for t in all
            .iter()
            .filter(|t| t.key != key && t.receives_broadcast())
        {
            t.send(TermCmd::Input(data.clone()));
        }
    });

    view! {
        <main class="term-page">
            <div class="term-top">
                <OpenForm tabs/>
                <Detached tabs/>
            </div>
            <div class="tabbar" role="tablist" data-testid="tabbar">
                <For each=move || list.get() key=|t| t.key let:tab>
                    <TabButton tab tabs mirror/>
                </For>
            </div>
            <TabTools tabs/>
            <div class="panes" data-testid="panes">
                <For each=move || list.get() key=|t| t.key let:tab>
                    <TerminalPane tab active=Signal::derive(move || active.get() == Some(tab.key)) on_input/>
                </For>
                <div class="panes-empty" hidden=move || !list.with(Vec::is_empty)>
                    <p>"No terminal open."</p>
                    <p class="muted">"Pick a target above and open a terminal. Tabs survive a page reload."</p>
                </div>
            </div>
            <BroadcastBar tabs mirror/>
        </main>
    }
    .into_any()
}

/// On first run in the browser: reattach the tabs saved in this browser tab,
/// then open the deep link's hosts (once per link), and from then on save the
/// tab list whenever it changes.
fn restore_and_deep_link(tabs: Tabs) {
    let query = use_query_map();
    let restored = RwSignal::new(false);
    Effect::new(move |_| {
        if restored.get_untracked() {
            return;
        }
        for saved in store::load() {
            tabs.open.run((saved.target, Some(saved.session_id)));
        }
        restored.set(true);
    });
    Effect::new(move || {
        if !restored.get() {
            return;
        }
        let q = query.get();
        let hosts: Vec<String> = q
            .get_all("host")
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() {
            return;
        }
        let link = q.to_query_string();
        if store::deep_link_done(&link) {
            return;
        }
        store::mark_deep_link_done(&link);
        for host in hosts {
            tabs.open.run((host, None));
        }
    });
    Effect::new(move || {
        if !restored.get() {
            return;
        }
        let saved: Vec<SavedTab> = tabs.list.with(|l| {
            l.iter()
                .filter(|t| !t.state.with(TabState::session_over))
                .filter_map(|t| {
                    t.session_id.get().map(|session_id| SavedTab {
                        session_id,
                        target: t.target.get_value(),
                    })
                })
                .collect()
        });
        store::save(&saved);
    });
}

/// Target picker and "open" button.
#[component]
fn OpenForm(tabs: Tabs) -> impl IntoView {
    let targets = Resource::new(|| (), |_| list_targets());
    let chosen = RwSignal::new(String::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut target = chosen.get_untracked();
        if target.is_empty() {
            target = targets
                .get_untracked()
                .and_then(Result::ok)
                .and_then(|t| t.first().map(|t| t.name.clone()))
                .unwrap_or_default();
        }
        if !target.is_empty() {
            tabs.open.run((target, None));
        }
    };
    view! {
        <form class="open-form" on:submit=submit data-testid="open-form">
            <Transition fallback=|| view! { <span class="muted">"Loading targets…"</span> }>
                {move || Suspend::new(async move {
                    match targets.await {
                        Ok(list) if list.is_empty() => {
                            view! {
                                <span class="muted" data-testid="no-targets">
                                    "No targets yet: ask an admin to add a host to one of your namespaces."
                                </span>
                            }
                                .into_any()
                        }
                        Ok(list) => {
                            // Until the user picks one, the first target is the choice.
                            let first = list.first().map(|t| t.name.clone()).unwrap_or_default();
                            view! {
                                <label class="inline">
                                    <span class="sr-only">"Target"</span>
                                    <select
                                        data-testid="target-select"
                                        on:change=move |ev| chosen.set(event_target_value(&ev))
                                        prop:value=move || {
                                            let c = chosen.get();
                                            if c.is_empty() { first.clone() } else { c }
                                        }
                                    >
                                        {list
                                            .into_iter()
                                            .map(|t| {
                                                let label = if t.namespace.is_empty() {
                                                    format!("{} — {}", t.name, t.endpoint)
                                                } else {
                                                    format!("{} — {} ({})", t.name, t.endpoint, t.namespace)
                                                };
                                                view! { <option value=t.name>{label}</option> }
                                            })
                                            .collect_view()}
                                    </select>
                                </label>
                                <button type="submit" class="primary" data-testid="open-tab">"Open terminal"</button>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <span class="error">{super::error_text(&e)}</span> }.into_any(),
                    }
                })}
            </Transition>
        </form>
    }
    .into_any()
}

/// Tells each open tab what the server's session list says about its session
/// when that corrects the tab (a failed session is shown failed, and a tab
/// waiting to reconnect to an ended session stops).
fn reconcile(tabs: Tabs, list: &[TermSessionInfo]) {
    for tab in tabs.list.get_untracked() {
        let Some(id) = tab.session_id.get_untracked() else {
            continue;
        };
        let Some(info) = list.iter().find(|s| s.session_id == id) else {
            continue;
        };
        if let Some(next) = tab.state.get_untracked().after_listing(&info.state) {
            tab.send(TermCmd::Ended(next));
        }
    }
}

/// The user's running sessions that no tab shows, with "reattach".
#[component]
fn Detached(tabs: Tabs) -> impl IntoView {
    // A plain signal filled by an effect, not a resource: a resource read here
    // would put the whole page behind the login guard's <Suspense> fallback
    // (and take the keyboard focus away) every time it reloads.
    let sessions = RwSignal::new(Vec::<TermSessionInfo>::new());
    let latest = StoredValue::new(0u64);
    // The kind of state of every tab (not the reconnect countdown): a tab
    // going live, reconnecting or failing may have changed the list.
    let tab_states = Memo::new(move |_| {
        tabs.list.with(|l| {
            l.iter()
                .map(|t| t.state.with(TabState::key))
                .collect::<Vec<_>>()
        })
    });
    Effect::new(move || {
        tabs.refresh.track();
        tabs.list.with(Vec::len);
        tab_states.track();
        let request = latest.get_value() + 1;
        latest.set_value(request);
        spawn_local(async move {
            // Only the newest answer counts.
            if let Ok(list) = my_terminals().await {
                if latest.try_get_value() == Some(request) {
                    reconcile(tabs, &list);
                    sessions.set(list);
                }
            }
        });
    });
    let detached = move || -> Vec<TermSessionInfo> {
        let open: Vec<String> = tabs
            .list
            .with(|l| l.iter().filter_map(|t| t.session_id.get()).collect());
        sessions.with(|all| {
            all.iter()
                .filter(|s| s.state == "running" && !open.contains(&s.session_id))
                .cloned()
                .collect()
        })
    };
    view! {
        <div class="detached" data-testid="detached" hidden=move || detached().is_empty()>
            <span class="muted">"Running elsewhere:"</span>
            <For each=detached key=|s| s.session_id.clone() let:s>
                {
                    let TermSessionInfo { session_id, target, started, .. } = s;
                    let when = browser::local_time(&started);
                    let open_target = target.clone();
                    view! {
                        <button
                            class="chip"
                            data-testid="reattach"
                            data-session=session_id.clone()
                            title=format!("started {when}")
                            on:click=move |_| tabs.open.run((open_target.clone(), Some(session_id.clone())))
                        >
                            "reattach " {target}
                        </button>
                    }
                }
            </For>
            <button class="ghost small" on:click=move |_| tabs.refresh.update(|n| *n += 1)>"refresh"</button>
        </div>
    }
    .into_any()
}

/// One tab in the tab bar: include checkbox, title with state, close button.
#[component]
fn TabButton(tab: TermTab, tabs: Tabs, mirror: RwSignal<bool>) -> impl IntoView {
    let is_active = move || tabs.active.get() == Some(tab.key);
    let target = tab.target.get_value();
    let data_target = target.clone();
    view! {
        <div
            class=move || format!("tab state-{}", tab.state.get().key())
            class:active=is_active
            class:mirroring=move || mirror.get() && tab.included.get()
            role="tab"
            aria-selected=move || if is_active() { "true" } else { "false" }
            data-testid="term-tab"
            data-key=tab.key
            data-target=data_target
            data-state=move || tab.state.get().key()
            data-session=move || tab.session_id.get().unwrap_or_default()
        >
            <input
                type="checkbox"
                class="include"
                title="Include this tab in “send to all” and mirroring"
                aria-label="Include in send to all"
                data-testid="tab-include"
                bind:checked=tab.included
            />
            <button
                class="tab-title"
                data-testid="tab-title"
                title=move || tab.state.with(TabState::detail)
                on:click=move |_| tabs.activate(tab.key)
            >
                <span class="state-dot" aria-hidden="true"></span>
                <span class="host">{target}</span>
                <small class="state" data-testid="tab-state">{move || tab.state.get().label()}</small>
                <small
                    class="unsent"
                    data-testid="tab-unsent"
                    hidden=move || tab.unsent.get() == 0
                    title=move || format!("{} bytes typed while disconnected were not sent", tab.unsent.get())
                >
                    "input not sent"
                </small>
                <small
                    class=move || format!("broadcast {}", tab.broadcast.get().map(|b| b.label()).unwrap_or_default().replace(' ', "-"))
                    data-testid="tab-broadcast"
                    hidden=move || tab.broadcast.with(Option::is_none)
                    title=move || match tab.broadcast.get() {
                        Some(BroadcastState::Blocked(why)) => format!("send to all: not run: {why}"),
                        Some(b) => format!("send to all: {}", b.label()),
                        None => String::new(),
                    }
                >
                    {move || tab.broadcast.get().map(|b| b.label()).unwrap_or_default()}
                </small>
                <small
                    class="watched"
                    data-testid="tab-watched"
                    hidden=move || tab.watchers.with(Vec::is_empty)
                    title="An admin (or a teammate you shared it with) sees this session live"
                >
                    {move || format!("👁 watched by {}", tab.watchers.get().join(", "))}
                </small>
            </button>
            <button class="tab-close" aria-label="Close tab" data-testid="tab-close" on:click=move |_| tabs.close(tab)>
                "×"
            </button>
        </div>
    }
    .into_any()
}

/// Search, copy, paste and reconnect for the active tab.
#[component]
fn TabTools(tabs: Tabs) -> impl IntoView {
    let query = RwSignal::new(String::new());
    let with_tab = move |cmd: TermCmd| {
        if let Some(tab) = tabs.active_tab() {
            tab.send(cmd);
        }
    };
    let find = move |forward: bool, incremental: bool| {
        with_tab(TermCmd::Find {
            text: query.get_untracked(),
            forward,
            incremental,
        });
    };
    let miss = move || tabs.active_tab().is_some_and(|t| t.search_miss.get());
    let can_reconnect = move || {
        tabs.active_tab().is_some_and(|t| {
            t.session_id.get().is_some()
                && matches!(
                    t.state.get(),
                    TabState::Failed { .. } | TabState::Reconnecting { .. }
                )
        })
    };
    view! {
        <div class="term-tools" hidden=move || tabs.active_tab().is_none()>
            <input
                type="search"
                class="search"
                class:miss=miss
                placeholder="Search in terminal"
                aria-label="Search in terminal"
                data-testid="term-search"
                bind:value=query
                on:input=move |_| find(true, true)
                on:keydown=move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
                    "Enter" => {
                        ev.prevent_default();
                        find(!ev.shift_key(), false);
                    }
                    "Escape" => {
                        query.set(String::new());
                        with_tab(TermCmd::ClearFind);
                        with_tab(TermCmd::Focus);
                    }
                    _ => {}
                }
            />
            <button class="ghost small" title="Previous match (Shift+Enter)" on:click=move |_| find(false, false)>"↑"</button>
            <button class="ghost small" title="Next match (Enter)" on:click=move |_| find(true, false)>"↓"</button>
            <span class="sep"></span>
            <button class="ghost small" title="Copy the selection (Ctrl+Shift+C)" data-testid="term-copy" on:click=move |_| with_tab(TermCmd::Copy)>
                "Copy"
            </button>
            <button class="ghost small" title="Paste (Ctrl+Shift+V)" data-testid="term-paste" on:click=move |_| with_tab(TermCmd::Paste)>
                "Paste"
            </button>
            <button class="ghost small" hidden=move || !can_reconnect() data-testid="term-reconnect" on:click=move |_| with_tab(TermCmd::Reconnect)>
                "Reconnect"
            </button>
            <span class="sep"></span>
            <ShareTab tabs/>
            <span class="muted small state-text">
                {move || tabs.active_tab().map(|t| t.state.with(TabState::detail))}
            </span>
        </div>
    }
    .into_any()
}

/// Posts a card for the active tab's recording (its session's id) into a
/// chat room.
#[component]
fn ShareTab(tabs: Tabs) -> impl IntoView {
    let open = RwSignal::new(false);
    let room = RwSignal::new("general".to_string());
    let status = RwSignal::new(None::<Result<String, String>>);
    let session = move || tabs.active_tab().and_then(|t| t.session_id.get());
    let share = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(id) = session() else {
            return;
        };
        let room = room.get_untracked().trim().to_string();
        spawn_local(async move {
            let r = share_recording(id, room.clone(), None)
                .await
                .map(|()| format!("posted to #{room}"))
                .map_err(|e| crate::pages::error_text(&e));
            status.set(Some(r));
        });
    };
    // The live view: admins and members of the host's namespace may watch.
    let share_live = move |_| {
        let Some(id) = session() else {
            return;
        };
        let room = room.get_untracked().trim().to_string();
        spawn_local(async move {
            let r = share_watch(id, room.clone())
                .await
                .map(|()| format!("live view posted to #{room}"))
                .map_err(|e| crate::pages::error_text(&e));
            status.set(Some(r));
        });
    };
    view! {
        <span class="share-tab">
        <button
            class="ghost small"
            title="Post a card for this session's recording into a chat room"
            data-testid="term-share"
            hidden=move || session().is_none()
            on:click=move |_| {
                status.set(None);
                open.update(|o| *o = !*o);
            }
        >
            "Share"
        </button>
        <form class="share inline" hidden=move || !open.get() on:submit=share>
            <input type="text" aria-label="Room" data-testid="term-share-room" bind:value=room/>
            <button type="submit" class="small" data-testid="term-share-send">"Post recording"</button>
            <button
                type="button"
                class="small"
                title="Post a link to watch this session live, read-only (admins and the host's team)"
                data-testid="term-share-live"
                on:click=share_live
            >
                "Post live view"
            </button>
        </form>
        <span data-testid="term-share-result" class=move || match status.get() {
            Some(Err(_)) => "error small",
            _ => "ok small",
        }>
            {move || status.get().map(|r| r.unwrap_or_else(|e| e))}
        </span>
        </span>
    }
    .into_any()
}

/// Types one line into every selected live tab; optionally mirrors keystrokes.
#[component]
fn BroadcastBar(tabs: Tabs, mirror: RwSignal<bool>) -> impl IntoView {
    let line = RwSignal::new(String::new());
    let result = RwSignal::new(String::new());
    let receivers = move || {
        tabs.list.with(|l| {
            l.iter()
                .filter(|t| t.included.get() && t.state.get() == TabState::Live)
                .count()
        })
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        // Typed, not pasted, but it may hold a pasted marker all the same:
        // `ESC[200~` would swallow the Enter into a paste that never ends.
        let text = format!("{}\r", neutralize_markers(&line.get_untracked()));
        let selected: Vec<TermTab> = tabs
            .list
            .get_untracked()
            .into_iter()
            .filter(|t| t.included.get_untracked())
            .collect();
        for t in tabs.list.get_untracked() {
            t.broadcast.set(None);
        }
        if !selected.iter().any(TermTab::receives_broadcast) {
            result.set("no selected live tab".into());
            return;
        }
        // Each tab says what became of the line: sent, blocked (and by
        // which rule), or not connected.
        for t in &selected {
            if t.receives_broadcast() {
                t.broadcast.set(Some(BroadcastState::Pending));
                t.send(TermCmd::SendToAll(text.clone()));
            } else {
                t.broadcast.set(Some(BroadcastState::NotConnected));
            }
        }
        result.set(String::new());
        line.set(String::new());
    };
    view! {
        <form class="broadcast" on:submit=submit data-testid="broadcast-form">
            <span class="prompt" aria-hidden="true">"all ›"</span>
            <input
                type="text"
                placeholder="Command for every selected tab (Enter sends)"
                aria-label="Send to all selected tabs"
                autocomplete="off"
                spellcheck="false"
                data-testid="broadcast-input"
                bind:value=line
            />
            <button type="submit" data-testid="broadcast-send">"Send to all"</button>
            <label class="toggle" title="Mirror every keystroke typed in a selected tab to the other selected tabs">
                <input type="checkbox" data-testid="mirror-toggle" bind:checked=mirror/>
                "mirror keystrokes"
            </label>
            <span class="muted small" data-testid="broadcast-result">
                {move || {
                    let states: Vec<BroadcastState> =
                        tabs.list.with(|l| l.iter().filter_map(|t| t.broadcast.get()).collect());
                    let r = if states.is_empty() { result.get() } else { broadcast_summary(&states) };
                    let n = receivers();
                    let tabs = if n == 1 { "tab" } else { "tabs" };
                    if r.is_empty() { format!("{n} {tabs} receiving") } else { format!("{n} {tabs} receiving · {r}") }
                }}
            </span>
        </form>
    }
    .into_any()
}

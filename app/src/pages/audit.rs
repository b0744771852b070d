//! Audit page (`/audit`, admins): the command lines typed in terminal
//! sessions, searchable by user, host, namespace, verdict, text and days,
//! each linking to its recording at that moment; and the audit log's newest
//! events (logins, host changes, watches, terminations, rule changes).
use leptos::prelude::*;

use crate::api::{audit_commands, audit_events};
use crate::components::auth::{AfterHydration, RequireUser};
use crate::model::{AuditEntry, CommandEntry, CommandQuery, AUDIT_PER_PAGE};
use crate::pages::recordings::short_time;

/// The audit page.
#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <RequireUser admin=true>
            <AuditView/>
        </RequireUser>
    }
    .into_any()
}

#[component]
fn AuditView() -> impl IntoView {
    let form = RwSignal::new(CommandQuery::default());
    let query = RwSignal::new(CommandQuery::default());
    // Fetched by the browser after hydration (see `AfterHydration`).
    let rows = LocalResource::new(move || audit_commands(query.get()));
    let since = RwSignal::new(String::new());
    let events_since = RwSignal::new(String::new());
    let events = LocalResource::new(move || audit_events(events_since.get()));
    let field =
        |label: &'static str, testid: &'static str, get: fn(&mut CommandQuery) -> &mut String| {
            view! {
                <label>
                    {label}
                    <input
                        type="text"
                        data-testid=testid
                        on:input=move |ev| form.update(|q| *get(q) = event_target_value(&ev))
                    />
                </label>
            }
        };
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        query.set(CommandQuery {
            before_id: None,
            ..form.get_untracked()
        });
    };
    view! {
        <main class="page audit-page">
            <h1>"Audit"</h1>
            <h2>"Commands"</h2>
            <p class="muted">
                "Each line submitted at a shell prompt, read from the terminal screen when Enter was pressed. "
                "The guard stops mistakes and flags intent; it cannot see inside scripts, aliases, variables, "
                "interpreters or editors, and it is not a sandbox. Spans in full-screen programs are marked unchecked."
            </p>
            <form class="card filters" on:submit=apply data-testid="audit-filters">
                {field("User", "audit-user", |q| &mut q.user)}
                {field("Host", "audit-host", |q| &mut q.host)}
                {field("Namespace", "audit-namespace", |q| &mut q.namespace)}
                {field("Text", "audit-text", |q| &mut q.text)}
                <label>
                    "Verdict"
                    <select
                        data-testid="audit-verdict"
                        on:change=move |ev| form.update(|q| q.verdict = event_target_value(&ev))
                    >
                        <option value="">"any"</option>
                        <option value="allow">"allow"</option>
                        <option value="warn">"warn"</option>
                        <option value="deny">"deny"</option>
                        <option value="unchecked">"unchecked"</option>
                    </select>
                </label>
                <label>"From" <input type="date" data-testid="audit-since" on:input=move |ev| form.update(|q| q.since = event_target_value(&ev))/></label>
                <label>"To" <input type="date" data-testid="audit-until" on:input=move |ev| form.update(|q| q.until = event_target_value(&ev))/></label>
                <button type="submit">"Search"</button>
            </form>
            <AfterHydration>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Ok(list) => view! { <CommandsTable list query/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{crate::pages::error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
            </AfterHydration>
            <h2>"Events"</h2>
            <form class="card filters" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                events_since.set(since.get_untracked());
            }>
                <label>"Since" <input type="date" data-testid="events-since" bind:value=since/></label>
                <button type="submit">"Show"</button>
            </form>
            <AfterHydration>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match events.await {
                        Ok(list) => view! { <EventsTable list/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{crate::pages::error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
            </AfterHydration>
        </main>
    }
}

#[component]
fn CommandsTable(list: Vec<CommandEntry>, query: RwSignal<CommandQuery>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="muted" data-testid="no-commands">"No commands match."</p> }
            .into_any();
    }
    let older = (list.len() >= AUDIT_PER_PAGE as usize)
        .then(|| list.last().map(|c| c.id))
        .flatten();
    let rows = list
        .into_iter()
        .map(|c| {
            let link = c.recording_link();
            view! {
                <tr data-testid="command-row" data-verdict=c.verdict.clone()>
                    <td><a href=link data-testid="command-link">{short_time(&c.at)}</a></td>
                    <td>{c.user.clone()}</td>
                    <td>{c.target.clone()}</td>
                    <td>{if c.namespace.is_empty() { "—".to_string() } else { c.namespace.clone() }}</td>
                    <td class="command-line"><code data-testid="command-line">{c.line.clone()}</code></td>
                    <td class=format!("verdict {}", c.verdict)>{c.verdict.clone()}</td>
                    <td class="muted">{c.rule.clone().unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table commands" data-testid="commands">
            <thead>
                <tr>
                    <th>"When"</th><th>"User"</th><th>"Host"</th><th>"Namespace"</th>
                    <th>"Command"</th><th>"Verdict"</th><th>"Rule"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <div class="pager">
            <button
                disabled=query.with_untracked(|q| q.before_id.is_none())
                on:click=move |_| query.update(|q| q.before_id = None)
            >
                "Newest"
            </button>
            <button disabled=older.is_none() on:click=move |_| query.update(|q| q.before_id = older)>
                "Older"
            </button>
        </div>
    }
    .into_any()
}

#[component]
fn EventsTable(list: Vec<AuditEntry>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="muted">"No events."</p> }.into_any();
    }
    let rows = list
        .into_iter()
        .map(|e| {
            view! {
                <tr data-testid="event-row" data-action=e.action.clone()>
                    <td>{short_time(&e.at)}</td>
                    <td>{e.actor.clone().unwrap_or_else(|| "—".into())}</td>
                    <td>{e.action.clone()}</td>
                    <td>{e.target.clone().unwrap_or_default()}</td>
                    <td class="muted">{e.detail.clone().unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="table events" data-testid="events">
            <thead>
                <tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"On"</th><th>"Detail"</th></tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

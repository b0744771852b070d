//! Recordings page (`/recordings`): the terminal sessions the user may
//! replay, newest first, with filters (user, host, namespace, status, days)
//! and paging; each links to its player and downloads.
use leptos::prelude::*;

use crate::api::list_recordings;
use crate::components::auth::{AfterHydration, RequireUser};
use crate::model::{RecordingInfo, RecordingQuery, RECORDINGS_PER_PAGE};

/// The recordings list.
#[component]
pub fn RecordingsPage() -> impl IntoView {
    view! {
        <RequireUser>
            <RecordingsView/>
        </RequireUser>
    }
    .into_any()
}

/// `2026-12-01T05:04:43.123Z` as `2026-12-01 05:04 UTC`.
pub(crate) fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => rfc3339.to_string(),
    }
}

/// Milliseconds as `1h 02m 03s`, `2m 03s` or `4.5s`.
pub(crate) fn duration_text(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "—".into();
    };
    let s = ms / 1000;
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, _) => format!("{:.1}s", ms as f64 / 1000.0),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, s) => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// Bytes as `512 B`, `12.3 KB`, `4.5 MB`.
pub(crate) fn size_text(bytes: Option<i64>) -> String {
    match bytes {
        None => "—".into(),
        Some(b) if b < 1000 => format!("{b} B"),
        Some(b) if b < 1_000_000 => format!("{:.1} KB", b as f64 / 1e3),
        Some(b) => format!("{:.1} MB", b as f64 / 1e6),
    }
}

#[component]
fn RecordingsView() -> impl IntoView {
    let user = RwSignal::new(String::new());
    let target = RwSignal::new(String::new());
    let namespace = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    let since = RwSignal::new(String::new());
    let until = RwSignal::new(String::new());
    let query = RwSignal::new(RecordingQuery::default());
    // Fetched by the browser after hydration (see `AfterHydration`).
    let rows = LocalResource::new(move || list_recordings(query.get()));
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        query.set(RecordingQuery {
            user: user.get_untracked(),
            target: target.get_untracked(),
            namespace: namespace.get_untracked(),
            status: status.get_untracked(),
            since: since.get_untracked(),
            until: until.get_untracked(),
            page: 0,
        });
    };
    let text_filter = |label: &'static str, testid: &'static str, sig: RwSignal<String>| {
        view! {
            <label>
                {label}
                <input type="text" data-testid=testid bind:value=sig/>
            </label>
        }
    };
    view! {
        <main class="page recordings-page">
            <h1>"Recordings"</h1>
            <form class="card filters" on:submit=apply data-testid="recording-filters">
                {text_filter("User", "filter-user", user)}
                {text_filter("Host", "filter-target", target)}
                {text_filter("Namespace", "filter-namespace", namespace)}
                <label>
                    "Status"
                    <select data-testid="filter-status" bind:value=status>
                        <option value="">"any"</option>
                        <option value="running">"running"</option>
                        <option value="exited">"exited"</option>
                        <option value="closed">"closed"</option>
                        <option value="failed">"failed"</option>
                        <option value="interrupted">"interrupted"</option>
                        <option value="terminated">"terminated"</option>
                    </select>
                </label>
                <label>"From" <input type="date" data-testid="filter-since" bind:value=since/></label>
                <label>"To" <input type="date" data-testid="filter-until" bind:value=until/></label>
                <button type="submit">"Filter"</button>
            </form>
            <AfterHydration>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Ok(list) => view! { <RecordingsTable list query/> }.into_any(),
                        Err(e) => view! { <p class="error">{crate::pages::error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
            </AfterHydration>
        </main>
    }
    .into_any()
}

#[component]
fn RecordingsTable(list: Vec<RecordingInfo>, query: RwSignal<RecordingQuery>) -> impl IntoView {
    let page = query.with_untracked(|q| q.page);
    let full = list.len() >= RECORDINGS_PER_PAGE as usize;
    let turn = move |delta: i64| {
        query.update(|q| q.page = (i64::from(q.page) + delta).max(0) as u32);
    };
    if list.is_empty() && page == 0 {
        return view! { <p class="muted" data-testid="no-recordings">"No recordings match."</p> }
            .into_any();
    }
    view! {
        <table class="table recordings" data-testid="recordings">
            <thead>
                <tr>
                    <th>"Started"</th><th>"User"</th><th>"Host"</th><th>"Namespace"</th>
                    <th>"Status"</th><th>"Length"</th><th>"Size"</th><th>"Download"</th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|r| {
                        let play = format!("/recordings/{}", r.id);
                        let cast = format!("/recordings/{}.cast", r.id);
                        let txt = format!("/recordings/{}.txt", r.id);
                        view! {
                            <tr data-testid="recording-row" data-id=r.id.clone()>
                                <td><a href=play data-testid="recording-link">{short_time(&r.started)}</a></td>
                                <td>{r.user}</td>
                                <td>{r.target}</td>
                                <td>{r.namespace}</td>
                                <td class=format!("status {}", r.status)>
                                    {r.status.clone()}
                                    {(r.state == "incomplete" || r.state == "recovered")
                                        .then(|| view! { <span class="badge warn" title="parts of this session were not recorded, or it was cut by a crash">{r.state.clone()}</span> })}
                                </td>
                                <td>{duration_text(r.duration_ms)}</td>
                                <td>{size_text(r.size)}</td>
                                <td class="downloads">
                                    <a href=cast download="">"cast"</a>
                                    " "
                                    <a href=txt download="">"txt"</a>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <div class="pager">
            <button disabled=page == 0 on:click=move |_| turn(-1)>"Newer"</button>
            <span class="muted">{format!("page {}", page + 1)}</span>
            <button disabled=!full on:click=move |_| turn(1)>"Older"</button>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_lengths_and_sizes_read_well() {
        assert_eq!(
            short_time("2026-12-01T05:04:43.123Z"),
            "2026-12-01 05:04 UTC"
        );
        assert_eq!(short_time("bad"), "bad");
        assert_eq!(duration_text(None), "—");
        assert_eq!(duration_text(Some(4_500)), "4.5s");
        assert_eq!(duration_text(Some(123_000)), "2m 03s");
        assert_eq!(duration_text(Some(3_723_000)), "1h 02m 03s");
        assert_eq!(size_text(Some(512)), "512 B");
        assert_eq!(size_text(Some(12_345)), "12.3 KB");
        assert_eq!(size_text(Some(4_500_000)), "4.5 MB");
    }
}

//! Player page (`/recordings/{id}`, `?t=SECONDS` to start there): the
//! recording in asciinema-player with its markers on the timeline and in a
//! list beside it (click to seek), speed and idle-time-limit controls, search
//! in what was printed (click a hit to seek), and downloads. A long recording
//! plays in windows (see `RecordingWindow`): the page loads the one that holds
//! the moment sought, moves on to the next at the end of one, and shows a
//! scrubber over the whole recording.
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{get_recording, search_recording, share_recording};
use crate::components::auth::RequireUser;
use crate::model::{RecordingDetail, RecordingWindow, SearchHit};
use crate::pages::recordings::{duration_text, short_time, size_text};

/// The player page.
#[component]
pub fn PlayerPage() -> impl IntoView {
    view! {
        <RequireUser>
            <PlayerView/>
        </RequireUser>
    }
    .into_any()
}

#[component]
fn PlayerView() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let start = query.with_untracked(|q| {
        q.get("t")
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t >= 0.0)
            .unwrap_or(0.0)
    });
    let detail = Resource::new(id, get_recording);
    view! {
        <main class="page player-page">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! { <Player detail=d start/> }.into_any(),
                        Err(e) => view! {
                            <p class="error" data-testid="player-error">{crate::pages::error_text(&e)}</p>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </main>
    }
    .into_any()
}

/// `12.3` seconds as `0:12`, `75` as `1:15`, `3725` as `1:02:05`.
pub(crate) fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, m, s) => format!("{m}:{s:02}"),
        (h, m, s) => format!("{h}:{m:02}:{s:02}"),
    }
}

#[component]
fn Player(detail: RecordingDetail, start: f64) -> impl IntoView {
    let RecordingDetail {
        info,
        markers,
        duration,
        windows,
    } = detail;
    let id = info.id.clone();
    let node = NodeRef::<leptos::html::Div>::new();
    let speed = RwSignal::new("1".to_string());
    let idle = RwSignal::new(String::new());
    let now = RwSignal::new(start);
    let search_text = RwSignal::new(String::new());
    let hits = RwSignal::new(None::<Result<Vec<SearchHit>, String>>);
    let timeline: Vec<(f64, String)> = markers.iter().map(|m| (m.time, m.label.clone())).collect();
    let windowed = windows.len() > 1;
    {
        let id = id.clone();
        Effect::new(move |_| {
            let speed = speed.get().parse::<f64>().unwrap_or(1.0);
            let idle = idle.get().parse::<f64>().ok();
            if let Some(el) = node.get() {
                // Recreated at the current position when the options change.
                let setup = Setup {
                    el: el.into(),
                    id: id.clone(),
                    windows: windows.clone(),
                    speed,
                    idle,
                    markers: timeline.clone(),
                    now,
                };
                live::mount(setup, now.get_untracked(), false);
            }
        });
    }
    on_cleanup(live::dispose);
    let seek = move |t: f64| {
        live::seek(t);
        now.set(t);
    };
    let search = {
        let id = id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let text = search_text.get_untracked();
            let id = id.clone();
            spawn_local(async move {
                let r = search_recording(id, text)
                    .await
                    .map_err(|e| crate::pages::error_text(&e));
                hits.set(Some(r));
            });
        }
    };
    let title = format!("{}@{}", info.user, info.target);
    let (cast, v2, txt) = (
        format!("/recordings/{id}.cast"),
        format!("/recordings/{id}.v2.cast"),
        format!("/recordings/{id}.txt"),
    );
    view! {
        <header class="player-head">
            <h1 data-testid="player-title">{title}</h1>
            <p class="muted">
                {short_time(&info.started)} " · " {info.status.clone()} " · "
                {duration_text(info.duration_ms)} " · " {size_text(info.size)}
                {(!info.namespace.is_empty()).then(|| format!(" · namespace {}", info.namespace))}
            </p>
        </header>
        <div class="player-layout">
            <div class="player" data-testid="player" node_ref=node></div>
            <aside class="player-side">
                <div class="controls">
                    <label>
                        "Speed"
                        <select data-testid="player-speed" bind:value=speed>
                            <option value="0.5">"0.5×"</option>
                            <option value="1">"1×"</option>
                            <option value="2">"2×"</option>
                            <option value="4">"4×"</option>
                        </select>
                    </label>
                    <label>
                        "Pauses"
                        <select data-testid="player-idle" bind:value=idle>
                            <option value="">"as recorded"</option>
                            <option value="1">"at most 1 s"</option>
                            <option value="2">"at most 2 s"</option>
                            <option value="5">"at most 5 s"</option>
                        </select>
                    </label>
                    <span class="muted" data-testid="player-time" data-seconds=move || format!("{:.2}", now.get())>
                        {move || format!("{} / {}", clock(now.get()), clock(duration))}
                    </span>
                </div>
                {windowed.then(|| view! {
                    <label class="scrub">
                        "Whole recording"
                        <input type="range" min="0" max=format!("{duration:.3}") step="any"
                            data-testid="player-scrub"
                            prop:value=move || format!("{:.3}", now.get())
                            on:change=move |ev| {
                                if let Ok(t) = event_target_value(&ev).parse::<f64>() {
                                    seek(t);
                                }
                            }/>
                    </label>
                    <p class="muted small">"A long recording: the player holds one part of it at a time."</p>
                })}
                <h2>"Markers"</h2>
                {if markers.is_empty() {
                    view! { <p class="muted">"No markers."</p> }.into_any()
                } else {
                    view! {
                        <ol class="markers" data-testid="markers">
                            {markers
                                .into_iter()
                                .map(|m| {
                                    let t = m.time;
                                    view! {
                                        <li>
                                            <button class="link" data-testid="marker" data-time=format!("{t:.3}") on:click=move |_| seek(t)>
                                                <span class="time">{clock(t)}</span>
                                                " "
                                                {m.label}
                                            </button>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ol>
                    }
                    .into_any()
                }}
                <h2>"Search"</h2>
                <form class="search" on:submit=search>
                    <input type="search" placeholder="text that was printed" data-testid="recording-search" bind:value=search_text/>
                    <button type="submit">"Find"</button>
                </form>
                {move || hits.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="muted" data-testid="no-hits">"Not found."</p> }.into_any(),
                    Ok(list) => view! {
                        <ol class="hits" data-testid="hits">
                            {list.into_iter().map(|h| {
                                let t = h.time;
                                view! {
                                    <li>
                                        <button class="link" data-testid="search-hit" data-time=format!("{t:.3}") on:click=move |_| seek(t)>
                                            <span class="time">{clock(t)}</span>
                                            " "
                                            <code>{h.line}</code>
                                        </button>
                                    </li>
                                }
                            }).collect_view()}
                        </ol>
                    }.into_any(),
                })}
                <h2>"Share"</h2>
                <ShareForm id=id.clone() now/>
                <h2>"Download"</h2>
                <p class="downloads">
                    <a href=cast download="">"asciicast v3"</a> " · "
                    <a href=v2 download="">"v2"</a> " · "
                    <a href=txt download="">"text"</a>
                </p>
            </aside>
        </div>
    }
}

/// Posts a card for this recording into a chat room, optionally at the
/// player's current time.
#[component]
fn ShareForm(id: String, now: RwSignal<f64>) -> impl IntoView {
    let room = RwSignal::new("general".to_string());
    let at_now = RwSignal::new(true);
    let status = RwSignal::new(None::<Result<String, String>>);
    let share = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (id, room) = (id.clone(), room.get_untracked().trim().to_string());
        let at = at_now.get_untracked().then(|| now.get_untracked());
        spawn_local(async move {
            let r = share_recording(id, room.clone(), at)
                .await
                .map(|()| format!("posted to #{room}"))
                .map_err(|e| crate::pages::error_text(&e));
            status.set(Some(r));
        });
    };
    view! {
        <form class="share" on:submit=share>
            <input type="text" aria-label="Room" data-testid="share-room" bind:value=room/>
            <label class="small">
                <input type="checkbox" data-testid="share-at-now" bind:checked=at_now/>
                " at the current time"
            </label>
            <button type="submit" data-testid="share-send">"Post to chat"</button>
        </form>
        {move || status.get().map(|r| match r {
            Ok(t) => view! { <p class="ok small" data-testid="share-result">{t}</p> }.into_any(),
            Err(e) => view! { <p class="error small" data-testid="share-result">{e}</p> }.into_any(),
        })}
    }
}

/// What a player is made of; kept to make the next one (another window).
#[derive(Clone)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
struct Setup {
    el: web_sys::HtmlElement,
    id: String,
    windows: Vec<RecordingWindow>,
    speed: f64,
    idle: Option<f64>,
    /// `(seconds, label)` over the whole recording.
    markers: Vec<(f64, String)>,
    /// Follows the position in the whole recording.
    now: RwSignal<f64>,
}

/// The page's one player (browser only).
#[cfg(feature = "hydrate")]
mod live {
    use std::cell::RefCell;

    use leptos::prelude::*;
    use wasm_bindgen::{prelude::Closure, JsCast};

    use super::Setup;
    use crate::components::player::{self, Options, Player};
    use crate::model::window_at;

    struct Live {
        setup: Setup,
        player: Player,
        timer: IntervalHandle,
        /// The window playing and where it starts (seconds).
        window: usize,
        start: f64,
        _ended: Closure<dyn FnMut()>,
    }

    thread_local! {
        static LIVE: RefCell<Option<Live>> = const { RefCell::new(None) };
    }

    /// (Re)creates the player at second `at` of the whole recording, in the
    /// window that holds it.
    pub fn mount(setup: Setup, at: f64, auto_play: bool) {
        dispose();
        setup.el.set_inner_html("");
        let window = window_at(&setup.windows, at);
        let (start, end) = setup
            .windows
            .get(window)
            .map_or((0.0, f64::INFINITY), |w| (w.start, w.end));
        let src = if setup.windows.len() > 1 {
            format!("/recordings/{}.cast?window={window}", setup.id)
        } else {
            format!("/recordings/{}.cast", setup.id)
        };
        let last = window + 1 >= setup.windows.len();
        let markers = setup
            .markers
            .iter()
            .filter(|(t, _)| *t >= start && (*t < end || last))
            .map(|(t, label)| (t - start, label.clone()))
            .collect();
        let opts = Options {
            speed: setup.speed,
            idle_time_limit: setup.idle,
            start_at: (at - start).max(0.0),
            markers,
            auto_play,
        };
        leptos::task::spawn_local(async move {
            let el = player::element(&setup.el);
            let p = match player::create(&src, &el, &opts).await {
                Ok(p) => p,
                Err(e) => {
                    leptos::logging::warn!("cannot start the player: {e:?}");
                    return;
                }
            };
            let follow = p.clone();
            let now = setup.now;
            let Ok(timer) = set_interval_with_handle(
                move || now.set(start + player::time_of(&follow)),
                std::time::Duration::from_millis(250),
            ) else {
                return;
            };
            // At the end of a window, the next one goes on playing.
            let next = (!last).then(|| setup.clone());
            let ended = Closure::<dyn FnMut()>::new(move || {
                if let Some(setup) = next.clone() {
                    let at = end;
                    leptos::task::spawn_local(async move { mount(setup, at, true) });
                }
            });
            p.add_event_listener("ended", ended.as_ref().unchecked_ref());
            LIVE.with(|cell| {
                *cell.borrow_mut() = Some(Live {
                    setup,
                    player: p,
                    timer,
                    window,
                    start,
                    _ended: ended,
                })
            });
        });
    }

    /// Jumps to second `t` of the whole recording (loading its window if
    /// another one is playing).
    pub fn seek(t: f64) {
        let other = LIVE.with(|cell| {
            let live = cell.borrow();
            let live = live.as_ref()?;
            if window_at(&live.setup.windows, t) == live.window {
                let _ = live.player.seek(t - live.start);
                None
            } else {
                Some(live.setup.clone())
            }
        });
        if let Some(setup) = other {
            mount(setup, t, false);
        }
    }

    /// Removes the player and its timer.
    pub fn dispose() {
        if let Some(live) = LIVE.with(|cell| cell.borrow_mut().take()) {
            live.timer.clear();
            live.player.dispose();
        }
    }
}

/// The server renders the empty player box; the browser fills it.
#[cfg(not(feature = "hydrate"))]
mod live {
    use super::Setup;

    pub fn mount(_setup: Setup, _at: f64, _auto_play: bool) {}

    pub fn seek(_t: f64) {}

    pub fn dispose() {}
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn clock_reads_like_a_player() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(12.7), "0:12");
        assert_eq!(clock(75.0), "1:15");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(-3.0), "0:00");
    }
}

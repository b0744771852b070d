//! Chat page (`/`): rooms, the conversation of the current room, who is
//! online, and the connection state. The socket logic is in
//! [`crate::components::chat_socket`]; this module only renders it.
use leptos::html::{Div, Input};
use leptos::prelude::*;

use crate::components::auth::RequireUser;
use crate::components::browser;
use crate::components::chat_socket::{use_chat_client, ChatClient, ConnState};
use crate::protocol::chat::{MAX_MESSAGE_CHARS, MAX_ROOM_CHARS};

/// Distance from the bottom (px) within which the list counts as "at the bottom".
const STICKY_PX: i32 = 48;

/// Rooms, messages, presence (logged-in users only).
#[component]
pub fn ChatPage() -> impl IntoView {
    view! {
        <RequireUser>
            <ChatView/>
        </RequireUser>
    }
    .into_any()
}

#[component]
fn ChatView() -> impl IntoView {
    let chat = use_chat_client();
    view! {
        <main class="chat-page">
            <RoomList chat/>
            <Conversation chat/>
            <OnlineList chat/>
        </main>
    }
    .into_any()
}

/// Rooms that exist plus the one being joined, and the join/create field.
#[component]
fn RoomList(chat: ChatClient) -> impl IntoView {
    let new_room = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let rooms = Memo::new(move |_| {
        let mut rooms = chat.rooms().get();
        let current = chat.room().get();
        if !rooms.contains(&current) {
            rooms.push(current);
        }
        rooms.sort();
        rooms
    });
    let join = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match chat.join(&new_room.get_untracked()) {
            Ok(()) => {
                new_room.set(String::new());
                error.set(None);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <aside class="sidebar rooms" aria-label="Rooms">
            <h2>"Rooms"</h2>
            <ul class="room-list" data-testid="room-list">
                <For each=move || rooms.get() key=|r| r.clone() let:room>
                    {
                        let name = room.clone();
                        let data_room = room.clone();
                        let active = {
                            let name = room.clone();
                            move || chat.room().get() == name
                        };
                        view! {
                            <li>
                                <button
                                    class="room"
                                    class:active=active.clone()
                                    aria-current=move || active().then_some("true")
                                    data-testid="room"
                                    data-room=data_room
                                    on:click=move |_| {
                                        if let Err(e) = chat.join(&name) {
                                            error.set(Some(e));
                                        }
                                    }
                                >
                                    "#"
                                    {room}
                                </button>
                            </li>
                        }
                    }
                </For>
            </ul>
            <form class="join-room" on:submit=join data-testid="join-room-form">
                <input
                    type="text"
                    placeholder="join or create a room"
                    maxlength=MAX_ROOM_CHARS
                    aria-label="Room to join or create"
                    data-testid="join-room-input"
                    bind:value=new_room
                />
                <button type="submit" data-testid="join-room-button">"Join"</button>
            </form>
            <p class="error small" role="alert" hidden=move || error.get().is_none()>
                {move || error.get().unwrap_or_default()}
            </p>
        </aside>
    }
    .into_any()
}

/// The current room: header with connection state, messages, composer.
#[component]
fn Conversation(chat: ChatClient) -> impl IntoView {
    // Owned by the client: kept until the server confirms the message.
    let draft = chat.draft();
    let local_error = RwSignal::new(None::<String>);
    let list = NodeRef::<Div>::new();
    let input = NodeRef::<Input>::new();
    // Whether the user is reading the newest messages (then new ones scroll in).
    let at_bottom = StoredValue::new(true);
    let unseen = RwSignal::new(false);

    let scroll_to_bottom = move || {
        request_animation_frame(move || {
            // The page may be gone by the next frame.
            if let Some(Some(el)) = list.try_get_untracked() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    };
    // A new room always opens at its newest message.
    Effect::new(move || {
        chat.room().track();
        at_bottom.set_value(true);
        unseen.set(false);
    });
    Effect::new(move || {
        chat.lines().track();
        if at_bottom.get_value() {
            scroll_to_bottom();
        } else {
            unseen.set(true);
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            let bottom = el.scroll_height() - el.scroll_top() - el.client_height() < STICKY_PX;
            at_bottom.set_value(bottom);
            if bottom {
                unseen.set(false);
            }
        }
    };
    let send = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match chat.send_draft() {
            Ok(()) => {
                local_error.set(None);
                at_bottom.set_value(true);
            }
            Err(e) => local_error.set(Some(e)),
        }
        // Keep typing without reaching for the mouse (also after a button click).
        if let Some(el) = input.get_untracked() {
            let _ = el.focus();
        }
    };

    view! {
        <section class="conversation">
            <header class="conv-head">
                <h1 data-testid="current-room">"#" {move || chat.room().get()}</h1>
                <ConnBadge chat/>
            </header>
            <div class="messages" node_ref=list on:scroll=on_scroll data-testid="messages" aria-live="polite">
                <p class="gap-note" hidden=move || !chat.gap().get()>"Older messages were left out."</p>
                <p class="empty-note" hidden=move || !chat.lines().with(Vec::is_empty)>
                    "No messages yet. Say hello!"
                </p>
                <ol class="message-list">
                    <For each=move || chat.lines().get() key=|l| l.key let:line>
                        {
                            let from = line.from.clone();
                            let mine = move || chat.me().with(|me| me.as_deref() == Some(from.as_str()));
                            let time = browser::local_time(&line.sent);
                            let data_from = line.from.clone();
                            let datetime = line.sent.clone();
                            view! {
                                <li class="msg" class:mine=mine data-testid="message" data-from=data_from>
                                    <div class="meta">
                                        <span class="from">{line.from}</span>
                                        <time datetime=datetime>{time}</time>
                                    </div>
                                    {
                                        let card = crate::model::RecordingLink::find(&line.message);
                                        let watch = crate::model::WatchLink::find(&line.message);
                                        view! {
                                            <div class="text" data-testid="message-text">{line.message}</div>
                                            {card.map(|link| view! { <RecordingCard link/> })}
                                            {watch.map(|link| view! {
                                                <a class="rec-card" href=link.path() data-testid="watch-card">
                                                    <span class="play" aria-hidden="true">"👁"</span>
                                                    <span>
                                                        <strong>"Watch live"</strong>
                                                        <span class="muted">" · read-only, for admins and the session's team"</span>
                                                    </span>
                                                </a>
                                            })}
                                        }
                                    }
                                </li>
                            }
                        }
                    </For>
                </ol>
            </div>
            <button
                class="jump"
                hidden=move || !unseen.get()
                data-testid="jump-latest"
                on:click=move |_| {
                    at_bottom.set_value(true);
                    unseen.set(false);
                    scroll_to_bottom();
                }
            >
                "New messages ↓"
            </button>
            <div class="error banner" role="alert" data-testid="chat-error" hidden=move || chat.error().get().is_none()>
                <span>{move || chat.error().get().unwrap_or_default()}</span>
                <button class="ghost small" aria-label="Dismiss" on:click=move |_| chat.dismiss_error()>
                    "×"
                </button>
            </div>
            <p class="error small" role="alert" hidden=move || local_error.get().is_none()>
                {move || local_error.get().unwrap_or_default()}
            </p>
            <form class="composer" on:submit=send data-testid="composer">
                <input
                    type="text"
                    node_ref=input
                    placeholder=move || format!("Message #{}", chat.room().get())
                    maxlength=MAX_MESSAGE_CHARS
                    autocomplete="off"
                    aria-label="Message"
                    data-testid="message-input"
                    bind:value=draft
                />
                <button type="submit" class="primary" data-testid="send-button">
                    {move || if chat.sending().get() > 0 { "Sending…" } else { "Send" }}
                </button>
            </form>
        </section>
    }
    .into_any()
}

/// Connection state, with "retry now" while waiting to reconnect.
#[component]
fn ConnBadge(chat: ChatClient) -> impl IntoView {
    view! {
        <span class="conn-wrap">
            <span
                class=move || format!("conn conn-{}", chat.state().get().key())
                data-testid="conn-state"
                data-state=move || chat.state().get().key()
            >
                {move || chat.state().get().label()}
            </span>
            <button
                class="ghost small"
                hidden=move || !matches!(chat.state().get(), ConnState::Reconnecting { .. })
                on:click=move |_| chat.retry_now()
            >
                "retry now"
            </button>
        </span>
    }
    .into_any()
}

/// Users connected to the current room.
#[component]
fn OnlineList(chat: ChatClient) -> impl IntoView {
    view! {
        <aside class="sidebar online" aria-label="Online">
            <h2>"Online " <span class="count">{move || chat.online().with(Vec::len)}</span></h2>
            <ul class="online-list" data-testid="online-list">
                <For each=move || chat.online().get() key=|u| u.clone() let:user>
                    <li data-testid="online-user">
                        <span class="dot"></span>
                        {user}
                    </li>
                </For>
            </ul>
        </aside>
    }
    .into_any()
}

/// A shared recording under its chat message: who, where and how long,
/// linking to the player (at the shared time); "restricted" for a reader
/// who may not replay it.
#[component]
fn RecordingCard(link: crate::model::RecordingLink) -> impl IntoView {
    let id = link.id.clone();
    let detail = Resource::new(move || id.clone(), crate::api::get_recording);
    let href = link.path();
    let at = link.at;
    view! {
        <Transition fallback=|| ()>
            {move || {
                let href = href.clone();
                Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! {
                            <a class="rec-card" href=href data-testid="recording-card">
                                <span class="play" aria-hidden="true">"▶"</span>
                                <span>
                                    <strong>{format!("{}@{}", d.info.user, d.info.target)}</strong>
                                    <span class="muted">
                                        {format!(
                                            " · {} · {}",
                                            crate::pages::recordings::short_time(&d.info.started),
                                            crate::pages::recordings::duration_text(d.info.duration_ms)
                                        )}
                                        {at.map(|t| format!(" · from {}", crate::pages::player::clock(t)))}
                                    </span>
                                </span>
                            </a>
                        }
                        .into_any(),
                        Err(_) => view! {
                            <span class="rec-card restricted" data-testid="recording-card-restricted">
                                "Recording — restricted: you may not replay it"
                            </span>
                        }
                        .into_any(),
                    }
                })
            }}
        </Transition>
    }
}

//! Chat page.
use leptos::prelude::*;

/// Rooms, messages, presence.
#[component]
pub fn ChatPage() -> impl IntoView {
    view! { <main class="chat"><h1>"chat"</h1></main> }
}

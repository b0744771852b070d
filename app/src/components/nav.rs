//! The top bar: product name, page links (admin only for admins), the user (a link to their account page) and logout.
use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::auth::{logout_and_leave, use_auth};

/// Top navigation; renders nothing until a user is logged in.
#[component]
pub fn TopNav() -> impl IntoView {
    let auth = use_auth();
    view! {
        <Transition fallback=|| ()>
            {move || {
                auth.user()
                    .map(|user| {
                        let admin = user.is_admin();
                        view! {
                            <header class="topbar" data-testid="topbar">
                                <a class="brand" href="/">"termroom"</a>
                                <nav class="links">
                                    <A href="/" exact=true>"Chat"</A>
                                    <A href="/terminals">"Terminals"</A>
                                    <A href="/recordings">"Recordings"</A>
                                    {admin.then(|| view! { <A href="/live">"Live"</A> })}
                                    {admin.then(|| view! { <A href="/audit">"Audit"</A> })}
                                    {admin.then(|| view! { <A href="/admin">"Admin"</A> })}
                                </nav>
                                <a class="who" href="/account" data-testid="current-user" title="Your account: change password">
                                    {user.name.clone()}
                                    {admin.then(|| view! { <span class="badge">"admin"</span> })}
                                </a>
                                <button
                                    class="ghost"
                                    data-testid="logout"
                                    on:click=move |_| logout_and_leave()
                                >
                                    "Log out"
                                </button>
                            </header>
                        }
                    })
            }}
        </Transition>
    }
}

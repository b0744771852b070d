//! Login page: the form posts to the `login` server function, then loads the
//! page the visitor came for (`?next=`, same site only) or the chat.
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_query_map;

use crate::api::login;
use crate::components::{auth::use_auth, browser};
use crate::error::ApiError;

/// What to tell the user when login fails.
fn login_error(err: &ApiError) -> String {
    match err {
        ApiError::Unauthorized => "wrong user name or password".into(),
        ApiError::RateLimited(secs) => format!("too many attempts, try again in {secs} s"),
        other => super::error_text(other),
    }
}

/// The login form.
#[component]
pub fn LoginPage() -> impl IntoView {
    let auth = use_auth();
    let query = use_query_map();
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Until the page is interactive, a native submit would put the password
    // in the URL: the button stays disabled until effects run (browser only).
    let ready = RwSignal::new(false);
    Effect::new(move || ready.set(true));

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (user, pass) = (name.get_untracked(), password.get_untracked());
        if user.trim().is_empty() || pass.is_empty() {
            error.set(Some("enter your user name and password".into()));
            return;
        }
        let next = query
            .with_untracked(|q| q.get("next"))
            .and_then(|n| browser::safe_next(&n).map(str::to_string))
            .unwrap_or_else(|| "/".to_string());
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match login(user.trim().to_string(), pass).await {
                // A full load: every page piece starts fresh with the new cookie.
                Ok(_) => browser::go(&next),
                Err(e) => {
                    error.set(Some(login_error(&e)));
                    password.set(String::new());
                    busy.set(false);
                }
            }
        });
    };

    view! {
        <main class="login-page">
            <form class="card login-card" method="post" on:submit=submit data-testid="login-form">
                <h1 class="login-brand">"termroom"</h1>
                <p class="muted">"Chat rooms and live terminals for your team."</p>
                {move || {
                    query
                        .with(|q| q.get("changed").is_some())
                        .then(|| {
                            view! {
                                <p class="notice" data-testid="password-changed">
                                    "Your password was changed and your sessions ended. Sign in with the new password."
                                </p>
                            }
                        })
                }}
                <Transition fallback=|| ()>
                    {move || {
                        auth.user()
                            .map(|u| {
                                view! {
                                    <p class="notice">
                                        "Signed in as " <strong>{u.name}</strong> ". "
                                        <a href="/">"Go to chat"</a>
                                    </p>
                                }
                            })
                    }}
                </Transition>
                <label>
                    "User name"
                    <input
                        type="text"
                        name="username"
                        autocomplete="username"
                        autocapitalize="none"
                        spellcheck="false"
                        required
                        data-testid="login-username"
                        bind:value=name
                    />
                </label>
                <label>
                    "Password"
                    <input
                        type="password"
                        name="password"
                        autocomplete="current-password"
                        required
                        data-testid="login-password"
                        bind:value=password
                    />
                </label>
                <p class="error" role="alert" data-testid="login-error" hidden=move || error.get().is_none()>
                    {move || error.get().unwrap_or_default()}
                </p>
                <button type="submit" class="primary" data-testid="login-submit" disabled=move || busy.get() || !ready.get()>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
        </main>
    }
    .into_any()
}

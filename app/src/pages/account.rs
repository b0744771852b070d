//! Account page (`/account`): the logged-in user changes their own password,
//! after which every login session of theirs ends and they sign in again.
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::change_password;
use crate::components::{
    auth::{use_auth, RequireUser},
    browser,
};

/// Where a changed password sends the user: the login page, saying why.
pub const AFTER_CHANGE: &str = "/login?changed=1";

/// The page, for logged-in users.
#[component]
pub fn AccountPage() -> impl IntoView {
    view! {
        <RequireUser>
            <PasswordForm/>
        </RequireUser>
    }
    .into_any()
}

/// Current password, the new one twice.
#[component]
fn PasswordForm() -> impl IntoView {
    let auth = use_auth();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let again = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (cur, next) = (current.get_untracked(), new.get_untracked());
        if cur.is_empty() || next.is_empty() {
            error.set(Some("enter your current password and a new one".into()));
            return;
        }
        if next != again.get_untracked() {
            error.set(Some("the two new passwords differ".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match change_password(cur, next).await {
                // Every session ended: a full load of the login page.
                Ok(()) => browser::go(AFTER_CHANGE),
                Err(e) => {
                    error.set(Some(super::error_text(&e)));
                    current.set(String::new());
                    busy.set(false);
                }
            }
        });
    };

    view! {
        <main class="page narrow">
            <form class="card account-card" on:submit=submit data-testid="password-form">
                <h1>"Change password"</h1>
                <p class="muted">
                    "Signed in as "
                    <strong>{move || auth.user().map(|u| u.name).unwrap_or_default()}</strong>
                    ". Every session of yours ends after the change, this one too: you sign in again with the new password."
                </p>
                <label>
                    "Current password"
                    <input type="password" autocomplete="current-password" required data-testid="password-current" bind:value=current/>
                </label>
                <label>
                    "New password"
                    <input type="password" autocomplete="new-password" required data-testid="password-new" bind:value=new/>
                </label>
                <label>
                    "New password again"
                    <input type="password" autocomplete="new-password" required data-testid="password-again" bind:value=again/>
                </label>
                <p class="error" role="alert" data-testid="password-error" hidden=move || error.get().is_none()>
                    {move || error.get().unwrap_or_default()}
                </p>
                <button type="submit" class="primary" data-testid="password-submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Changing…" } else { "Change password" }}
                </button>
            </form>
        </main>
    }
    .into_any()
}

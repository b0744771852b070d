//! Admin page (`/admin`, admins only): users, namespaces (teams) and their
//! members, SSH hosts with the probe → confirm fingerprint → add flow.
use std::future::Future;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::components::auth::RequireUser;
use crate::error::ApiError;

mod hosts;
mod namespaces;
mod users;

/// The admin page.
#[component]
pub fn AdminPage() -> impl IntoView {
    view! {
        <RequireUser admin=true>
            <AdminView/>
        </RequireUser>
    }
    .into_any()
}

#[component]
fn AdminView() -> impl IntoView {
    // Any change reloads every list: members, hosts and users refer to each other.
    let reload = RwSignal::new(0u64);
    view! {
        <main class="page admin-page">
            <h1>"Administration"</h1>
            <users::UsersSection reload/>
            <namespaces::NamespacesSection reload/>
            <hosts::HostsSection reload/>
        </main>
    }
    .into_any()
}

/// Outcome of the last action of a section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Status {
    /// Nothing to report.
    #[default]
    Idle,
    /// A request is running.
    Busy,
    /// It worked.
    Done(String),
    /// It failed, with why.
    Failed(String),
}

impl Status {
    /// Whether a request is running.
    pub fn busy(&self) -> bool {
        matches!(self, Status::Busy)
    }
}

/// Runs a server call for an admin action: shows progress, the outcome, and
/// reloads the lists on success.
pub fn act(
    status: RwSignal<Status>,
    reload: RwSignal<u64>,
    done: String,
    call: impl Future<Output = Result<(), ApiError>> + 'static,
) {
    status.set(Status::Busy);
    spawn_local(async move {
        match call.await {
            Ok(()) => {
                status.set(Status::Done(done));
                reload.update(|n| *n += 1);
            }
            Err(e) => status.set(Status::Failed(super::error_text(&e))),
        }
    });
}

/// One line showing a section's [`Status`].
#[component]
pub fn StatusLine(status: RwSignal<Status>, testid: &'static str) -> impl IntoView {
    view! {
        <p
            class=move || match status.get() {
                Status::Failed(_) => "status error",
                Status::Done(_) => "status ok",
                _ => "status muted",
            }
            role="status"
            data-testid=testid
        >
            {move || match status.get() {
                Status::Idle => String::new(),
                Status::Busy => "working…".to_string(),
                Status::Done(text) | Status::Failed(text) => text,
            }}
        </p>
    }
    .into_any()
}

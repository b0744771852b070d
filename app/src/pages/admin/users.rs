//! Admin: the user list, adding a user with a role, disabling a user.
use leptos::prelude::*;

use super::{act, Status, StatusLine};
use crate::api::{add_user, disable_user, list_users};
use crate::components::{auth::use_auth, browser};
use crate::model::{Role, UserSummary};

/// Users table and the add-user form.
#[component]
pub(super) fn UsersSection(reload: RwSignal<u64>) -> impl IntoView {
    let auth = use_auth();
    let users = Resource::new(move || reload.get(), |_| list_users());
    let status = RwSignal::new(Status::Idle);
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new("member".to_string());

    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let n = name.get_untracked().trim().to_string();
        let p = password.get_untracked();
        let r = Role::parse(&role.get_untracked()).unwrap_or(Role::Member);
        if n.is_empty() || p.is_empty() {
            status.set(Status::Failed("enter a name and a password".into()));
            return;
        }
        name.set(String::new());
        password.set(String::new());
        act(
            status,
            reload,
            format!("added {} {n}", r.as_str()),
            add_user(n, p, r),
        );
    };
    let disable = move |user: String| {
        if browser::confirm(&format!(
            "Disable {user}? They are logged out and their terminals end."
        )) {
            act(
                status,
                reload,
                format!("disabled {user}"),
                disable_user(user),
            );
        }
    };

    view! {
        <section class="card admin-section" data-testid="admin-users">
            <h2>"Users"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let me = auth.0.await.ok().flatten().map(|u| u.name);
                    match users.await {
                        Ok(list) => view! { <UsersTable list me disable/> }.into_any(),
                        Err(e) => view! { <p class="error">{crate::pages::error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
            <form class="row-form" on:submit=add data-testid="add-user-form">
                <input type="text" placeholder="user name" aria-label="User name" autocomplete="off" data-testid="add-user-name" bind:value=name/>
                <input
                    type="password"
                    placeholder="initial password"
                    aria-label="Initial password"
                    autocomplete="new-password"
                    data-testid="add-user-password"
                    bind:value=password
                />
                <select aria-label="Role" data-testid="add-user-role" on:change=move |ev| role.set(event_target_value(&ev)) prop:value=move || role.get()>
                    <option value="member">"member"</option>
                    <option value="admin">"admin"</option>
                </select>
                <button type="submit" class="primary" disabled=move || status.get().busy()>"Add user"</button>
            </form>
            <StatusLine status testid="users-status"/>
        </section>
    }
    .into_any()
}

#[component]
fn UsersTable(
    list: Vec<UserSummary>,
    /// The admin looking at the list (who cannot disable themselves).
    me: Option<String>,
    disable: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Role"</th>
                        <th>"Namespaces"</th>
                        <th>"Status"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|u| {
                            let name = u.name.clone();
                            let can_disable = !u.disabled && me.as_deref() != Some(u.name.as_str());
                            view! {
                                <tr data-testid="user-row" data-user=u.name.clone() class:disabled=u.disabled>
                                    <td>{u.name.clone()}</td>
                                    <td>{u.role.as_str()}</td>
                                    <td>{u.namespaces.join(", ")}</td>
                                    <td>{if u.disabled { "disabled" } else { "active" }}</td>
                                    <td class="actions">
                                        {can_disable
                                            .then(|| {
                                                view! {
                                                    <button class="danger small" data-testid="disable-user" on:click=move |_| disable(name.clone())>
                                                        "Disable"
                                                    </button>
                                                }
                                            })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

//! Admin: namespaces (teams) with their members; add a namespace, grant and
//! revoke membership (members reach the namespace's hosts).
use leptos::prelude::*;

use super::{act, Status, StatusLine};
use crate::api::{add_namespace, grant_namespace, list_namespaces, revoke_namespace};
use crate::model::NamespaceInfo;

/// Namespaces, members, and the forms that change them.
#[component]
pub(super) fn NamespacesSection(reload: RwSignal<u64>) -> impl IntoView {
    let namespaces = Resource::new(move || reload.get(), |_| list_namespaces());
    let status = RwSignal::new(Status::Idle);
    let new_name = RwSignal::new(String::new());

    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let n = new_name.get_untracked().trim().to_string();
        if n.is_empty() {
            status.set(Status::Failed("enter a namespace name".into()));
            return;
        }
        new_name.set(String::new());
        act(
            status,
            reload,
            format!("added namespace {n}"),
            add_namespace(n),
        );
    };

    view! {
        <section class="card admin-section" data-testid="admin-namespaces">
            <h2>"Namespaces"</h2>
            <p class="muted small">"Members of a namespace can open terminals to its hosts."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match namespaces.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No namespaces yet."</p> }.into_any(),
                        Ok(list) => {
                            view! {
                                <ul class="ns-list">
                                    {list.into_iter().map(|ns| view! { <NamespaceItem ns status reload/> }).collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error">{crate::pages::error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
            <form class="row-form" on:submit=add data-testid="add-namespace-form">
                <input type="text" placeholder="new namespace" aria-label="New namespace" data-testid="add-namespace-name" bind:value=new_name/>
                <button type="submit" class="primary" disabled=move || status.get().busy()>"Add namespace"</button>
            </form>
            <StatusLine status testid="namespaces-status"/>
        </section>
    }
    .into_any()
}

#[component]
fn NamespaceItem(
    ns: NamespaceInfo,
    status: RwSignal<Status>,
    reload: RwSignal<u64>,
) -> impl IntoView {
    let member = RwSignal::new(String::new());
    let ns_name = StoredValue::new(ns.name.clone());
    let grant = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let user = member.get_untracked().trim().to_string();
        if user.is_empty() {
            return;
        }
        member.set(String::new());
        let namespace = ns_name.get_value();
        act(
            status,
            reload,
            format!("added {user} to {namespace}"),
            grant_namespace(namespace, user),
        );
    };
    view! {
        <li class="ns" data-testid="namespace" data-namespace=ns.name.clone()>
            <strong class="ns-name">{ns.name.clone()}</strong>
            <span class="members">
                {ns
                    .members
                    .into_iter()
                    .map(|user| {
                        let who = user.clone();
                        view! {
                            <span class="chip" data-testid="member">
                                {user.clone()}
                                <button
                                    class="chip-x"
                                    aria-label=format!("Remove {user}")
                                    title="Remove from namespace"
                                    data-testid="revoke-member"
                                    on:click=move |_| {
                                        let namespace = ns_name.get_value();
                                        act(status, reload, format!("removed {who} from {namespace}"), revoke_namespace(namespace, who.clone()));
                                    }
                                >
                                    "×"
                                </button>
                            </span>
                        }
                    })
                    .collect_view()}
            </span>
            <form class="inline-form" on:submit=grant>
                <input type="text" placeholder="user" aria-label="User to add" autocomplete="off" data-testid="grant-user" bind:value=member/>
                <button type="submit" class="small">"Add member"</button>
            </form>
        </li>
    }
    .into_any()
}

//! Admin: SSH hosts. Adding one is a two-step flow: probe the host for its key
//! (no credentials are sent), let the admin compare the SHA-256 fingerprint
//! with the real one, then add the host pinned to exactly that fingerprint.
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{act, Status, StatusLine};
use crate::api::{add_host, delete_host, list_hosts, list_namespaces, probe_host};
use crate::components::browser;
use crate::model::{HostInfo, NewHost};
use crate::pages::error_text;

/// How the new host authenticates us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    Password,
    Key,
}

/// Host list and the add-host flow.
#[component]
pub(super) fn HostsSection(reload: RwSignal<u64>) -> impl IntoView {
    let hosts = Resource::new(move || reload.get(), |_| list_hosts());
    let status = RwSignal::new(Status::Idle);
    let delete = move |name: String| {
        if browser::confirm(&format!(
            "Delete host {name}? Users can no longer open terminals to it."
        )) {
            act(status, reload, format!("deleted {name}"), delete_host(name));
        }
    };
    view! {
        <section class="card admin-section" data-testid="admin-hosts">
            <h2>"Hosts"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match hosts.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No hosts yet."</p> }.into_any(),
                        Ok(list) => view! { <HostsTable list delete/> }.into_any(),
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
            <StatusLine status testid="hosts-status"/>
            <AddHost reload/>
            <p class="muted small note">
                "Host keys are pinned: a host that later presents another key is refused. "
                "The command guard (coming) is a safeguard against mistakes, not a security boundary: "
                "anyone with a shell can work around it."
            </p>
        </section>
    }
    .into_any()
}

#[component]
fn HostsTable(
    list: Vec<HostInfo>,
    delete: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Namespace"</th>
                        <th>"Endpoint"</th>
                        <th>"Auth"</th>
                        <th>"Host key"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|h| {
                            let name = h.name.clone();
                            let fp = h.fingerprint.clone().unwrap_or_else(|| "not pinned".into());
                            view! {
                                <tr data-testid="host-row" data-host=h.name.clone()>
                                    <td>{h.name.clone()}</td>
                                    <td>{h.namespace.clone()}</td>
                                    <td class="mono">{format!("{}@{}:{}", h.user, h.address, h.port)}</td>
                                    <td>{h.auth.clone()}</td>
                                    <td class="mono fingerprint" title=fp.clone()>{fp.clone()}</td>
                                    <td class="actions">
                                        <button class="danger small" data-testid="delete-host" on:click=move |_| delete(name.clone())>
                                            "Delete"
                                        </button>
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

/// The add-host form: fill in, probe, confirm the fingerprint, add.
#[component]
fn AddHost(reload: RwSignal<u64>) -> impl IntoView {
    let namespaces = Resource::new(move || reload.get(), |_| list_namespaces());
    let name = RwSignal::new(String::new());
    let namespace = RwSignal::new(String::new());
    let address = RwSignal::new(String::new());
    let port = RwSignal::new("22".to_string());
    let user = RwSignal::new(String::new());
    let auth = RwSignal::new(AuthKind::Password);
    let password = RwSignal::new(String::new());
    let key = RwSignal::new(String::new());
    // The probed fingerprint, for the address and port it was probed at.
    let probed = RwSignal::new(None::<(String, String, String)>);
    let confirmed = RwSignal::new(false);
    let status = RwSignal::new(Status::Idle);

    let fingerprint = move || {
        probed
            .get()
            .and_then(|(a, p, fp)| (a == address.get() && p == port.get()).then_some(fp))
    };
    let parse_port = move || {
        port.get_untracked()
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
    };

    let probe = move |_| {
        let addr = address.get_untracked().trim().to_string();
        let port_text = port.get_untracked();
        let Some(p) = parse_port() else {
            status.set(Status::Failed(
                "the port must be a number from 1 to 65535".into(),
            ));
            return;
        };
        if addr.is_empty() {
            status.set(Status::Failed("enter the host's address first".into()));
            return;
        }
        confirmed.set(false);
        probed.set(None);
        status.set(Status::Busy);
        spawn_local(async move {
            match probe_host(addr.clone(), p).await {
                Ok(fp) => {
                    probed.set(Some((addr, port_text, fp)));
                    status.set(Status::Idle);
                }
                Err(e) => status.set(Status::Failed(format!("probe failed: {}", error_text(&e)))),
            }
        });
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(fp) = fingerprint() else {
            status.set(Status::Failed(
                "probe the host and confirm its fingerprint first".into(),
            ));
            return;
        };
        if !confirmed.get_untracked() {
            status.set(Status::Failed(
                "confirm that the fingerprint is the host's real key".into(),
            ));
            return;
        }
        let Some(p) = parse_port() else {
            status.set(Status::Failed(
                "the port must be a number from 1 to 65535".into(),
            ));
            return;
        };
        let (pw, pk) = match auth.get_untracked() {
            AuthKind::Password => (
                Some(password.get_untracked()).filter(|s| !s.is_empty()),
                None,
            ),
            AuthKind::Key => (
                None,
                Some(key.get_untracked()).filter(|s| !s.trim().is_empty()),
            ),
        };
        if pw.is_none() && pk.is_none() {
            status.set(Status::Failed(
                "enter the password or paste the private key".into(),
            ));
            return;
        }
        let host = NewHost {
            name: name.get_untracked().trim().to_string(),
            namespace: namespace.get_untracked(),
            address: address.get_untracked().trim().to_string(),
            port: p,
            user: user.get_untracked().trim().to_string(),
            password: pw,
            private_key: pk,
            fingerprint: fp,
        };
        if host.name.is_empty() || host.namespace.is_empty() || host.user.is_empty() {
            status.set(Status::Failed(
                "name, namespace and user are required".into(),
            ));
            return;
        }
        let done = format!("added host {}", host.name);
        password.set(String::new());
        key.set(String::new());
        probed.set(None);
        confirmed.set(false);
        act(status, reload, done, add_host(host));
    };

    view! {
        <form class="add-host" on:submit=submit data-testid="add-host-form">
            <h3>"Add a host"</h3>
            <div class="grid-form">
                <label>"Name" <input type="text" placeholder="web-1" data-testid="host-name" bind:value=name/></label>
                <label>
                    "Namespace"
                    <Transition fallback=|| view! { <select disabled=true></select> }>
                        {move || Suspend::new(async move {
                            let list = namespaces.await.unwrap_or_default();
                            view! {
                                <select data-testid="host-namespace" on:change=move |ev| namespace.set(event_target_value(&ev)) prop:value=move || namespace.get()>
                                    <option value="">"— choose —"</option>
                                    {list.into_iter().map(|ns| { let value = ns.name.clone(); view! { <option value=value>{ns.name}</option> } }).collect_view()}
                                </select>
                            }
                        })}
                    </Transition>
                </label>
                <label>"Address" <input type="text" placeholder="10.0.0.5 or host.example" data-testid="host-address" bind:value=address/></label>
                <label>"Port" <input type="text" inputmode="numeric" data-testid="host-port" bind:value=port/></label>
                <label>"SSH user" <input type="text" placeholder="deploy" data-testid="host-user" bind:value=user/></label>
                <fieldset class="auth-kind">
                    <legend>"Authentication"</legend>
                    <label class="inline">
                        <input type="radio" name="auth" checked=true on:change=move |_| auth.set(AuthKind::Password)/>
                        "password"
                    </label>
                    <label class="inline">
                        <input type="radio" name="auth" on:change=move |_| auth.set(AuthKind::Key)/>
                        "private key"
                    </label>
                </fieldset>
            </div>
            <label hidden=move || auth.get() != AuthKind::Password>
                "Password"
                <input type="password" autocomplete="new-password" data-testid="host-password" bind:value=password/>
            </label>
            <label hidden=move || auth.get() != AuthKind::Key>
                "Private key (OpenSSH format)"
                <textarea rows="5" class="mono" spellcheck="false" data-testid="host-key" bind:value=key></textarea>
            </label>
            <div class="probe-row">
                <button type="button" data-testid="probe-host" on:click=probe disabled=move || status.get().busy()>
                    "Probe host key"
                </button>
                <span class="muted small">"Connects to the host and reads its key; no credentials are sent."</span>
            </div>
            <div class="fingerprint-box" hidden=move || fingerprint().is_none() data-testid="probe-result">
                <p>"The host presented this key:"</p>
                <code class="mono" data-testid="probe-fingerprint">{move || fingerprint().unwrap_or_default()}</code>
                <p class="muted small">
                    "Compare it with the host's real key, e.g. on the host: "
                    <code>"ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"</code>
                </p>
                <label class="inline">
                    <input type="checkbox" data-testid="confirm-fingerprint" bind:checked=confirmed/>
                    "This is the host's key"
                </label>
            </div>
            <button type="submit" class="primary" data-testid="add-host" disabled=move || fingerprint().is_none() || !confirmed.get() || status.get().busy()>
                "Add host"
            </button>
            <StatusLine status testid="add-host-status"/>
        </form>
    }
    .into_any()
}

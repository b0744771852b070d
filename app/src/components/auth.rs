//! Who is logged in. The current-user resource is *blocking*: the server
//! resolves it before sending any HTML, so a visitor without a session gets a
//! real redirect to `/login` and the browser hydrates with the same answer.
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::{components::Redirect, hooks::use_location};

use crate::api::{current_user, logout};
use crate::components::browser;
use crate::error::ApiError;
use crate::model::UserInfo;

/// The current-user resource, provided as context by the app.
#[derive(Clone, Copy)]
pub struct Auth(pub Resource<Result<Option<UserInfo>, ApiError>>);

impl Auth {
    /// The logged-in user once loaded (tracked).
    pub fn user(&self) -> Option<UserInfo> {
        self.0.get().and_then(Result::ok).flatten()
    }
}

/// Loads the current user and provides [`Auth`] to the whole app.
pub fn provide_auth() -> Auth {
    let auth = Auth(Resource::new_blocking(|| (), |_| current_user()));
    provide_context(auth);
    auth
}

/// The [`Auth`] the app provided.
pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// Renders `children` for a logged-in user (an admin when `admin` is set);
/// sends anyone else to `/login?next=<this page>`.
#[component]
pub fn RequireUser(
    /// Only admins may see the children.
    #[prop(optional)]
    admin: bool,
    children: ChildrenFn,
) -> impl IntoView {
    let auth = use_auth();
    let location = use_location();
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let children = children.clone();
                let here = location.pathname.get_untracked();
                let search = location.search.get_untracked();
                Suspend::new(async move {
                    match auth.0.await {
                        Ok(Some(user)) if !admin || user.is_admin() => children().into_any(),
                        Ok(Some(_)) => {
                            view! {
                                <main class="page narrow">
                                    <p class="notice" data-testid="admins-only">
                                        "This page is for admins."
                                    </p>
                                </main>
                            }
                                .into_any()
                        }
                        Ok(None) | Err(ApiError::Unauthorized) => {
                            let next = if search.is_empty() { here } else { format!("{here}?{search}") };
                            let path = format!("/login?next={}", browser::encode_query_value(&next));
                            view! { <Redirect path/> }.into_any()
                        }
                        Err(e) => {
                            view! {
                                <main class="page narrow">
                                    <p class="error" role="alert">{e.to_string()}</p>
                                </main>
                            }
                                .into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
}

/// Renders `children` only in the browser, once the page has hydrated: for
/// lists the browser fetches itself (`LocalResource`), whose rows may change
/// between the server's render and hydration (a session ends, a command is
/// logged) and so could not be hydrated.
#[component]
pub fn AfterHydration(children: ChildrenFn) -> impl IntoView {
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    move || mounted.get().then(|| children())
}

/// Ends the login session, then loads the login page (whatever the outcome:
/// a failed logout still leaves this page).
pub fn logout_and_leave() {
    spawn_local(async {
        if let Err(e) = logout().await {
            leptos::logging::warn!("logout: {e}");
        }
        browser::go("/login");
    });
}

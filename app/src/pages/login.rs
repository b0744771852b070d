//! Login page.
use leptos::prelude::*;

/// The login form.
#[component]
pub fn LoginPage() -> impl IntoView {
    view! { <main class="login"><h1>"termroom"</h1></main> }
}

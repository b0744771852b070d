//! The HTML document and the router: which page answers which path, the top
//! bar, and the current-user context every page reads.
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

use crate::components::{auth::provide_auth, nav::TopNav};
use crate::pages;

/// The full HTML document rendered by the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" href="/vendor/xterm/xterm.css"/>
                <link rel="stylesheet" href="/vendor/asciinema-player/asciinema-player.css"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: top bar and routes to pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_auth();
    // Effects run only in the browser, after hydration: mark the page as
    // interactive (end-to-end tests wait for this before clicking).
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/termroom.css"/>
        <Title text="termroom"/>
        <Router>
            <TopNav/>
            <Routes fallback=|| view! { <main class="page narrow"><p class="notfound">"Page not found."</p></main> }>
                <Route path=path!("/") view=pages::chat::ChatPage/>
                <Route path=path!("/login") view=pages::login::LoginPage/>
                <Route path=path!("/terminals") view=pages::terminals::TerminalsPage/>
                <Route path=path!("/recordings") view=pages::recordings::RecordingsPage/>
                <Route path=path!("/recordings/:id") view=pages::player::PlayerPage/>
                <Route path=path!("/live") view=pages::live::LivePage/>
                <Route path=path!("/live/:id") view=pages::live::WatchPage/>
                <Route path=path!("/audit") view=pages::audit::AuditPage/>
                <Route path=path!("/admin") view=pages::admin::AdminPage/>
                <Route path=path!("/account") view=pages::account::AccountPage/>
            </Routes>
        </Router>
    }
}

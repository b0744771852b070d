//! The HTML document and the router: which page answers which path.
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

use crate::pages;

/// The full HTML document rendered by the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
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

/// The application: routes to pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/termroom.css"/>
        <Title text="termroom"/>
        <Router>
            <Routes fallback=|| view! { <p class="notfound">"Page not found."</p> }>
                <Route path=path!("/") view=pages::chat::ChatPage/>
                <Route path=path!("/login") view=pages::login::LoginPage/>
            </Routes>
        </Router>
    }
}

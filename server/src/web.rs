//! The HTTP server: builds the core, the router (Leptos pages, server
//! functions, WebSockets, static site) and serves it on an injected listener
//! until a shutdown future resolves.
use std::{future::Future, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use app::{api::ssr::ClientAddr, shell, App};
use axum::{
    extract::{ConnectInfo, Request},
    middleware::{self, Next},
    response::Response,
    routing::get,
    serve::ListenerExt,
    Router,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::{info, info_span};

use crate::{
    auth::{ratelimit::LoginLimiter, tokens},
    chat::ChatHub,
    cli::{ServeArgs, StoreArgs},
    config::Config,
    db,
    secrets::SecretBox,
    services,
    state::{AppState, Core},
    term::{TermConfig, TermManager},
    ws,
};

/// How long an SSH connection attempt may take.
const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A running core plus the tasks that must be stopped with it.
pub struct Runtime {
    /// Shared state for the router.
    pub state: AppState,
    hub_task: tokio::task::JoinHandle<()>,
}

impl Runtime {
    /// Opens the database, generates the secret key if needed, starts the hub
    /// and the terminal manager.
    pub async fn start(
        serve: &ServeArgs,
        store: &StoreArgs,
        leptos_options: LeptosOptions,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&store.data_dir)
            .with_context(|| format!("creating data dir {}", store.data_dir.display()))?;
        let db = db::open(store.database_url.as_deref(), &store.data_dir)
            .await
            .context("opening the database")?;
        // Sessions of a previous process cannot be running any more.
        let stale = db::terminal_sessions::close_stale(&db)
            .await
            .context("closing stale terminal sessions")?;
        if stale > 0 {
            info!(
                stale,
                "marked terminal sessions of the previous run as closed"
            );
        }
        let secrets = SecretBox::load(store.secret_key_file.as_deref(), &store.data_dir)?;
        let config = Config {
            data_dir: store.data_dir.clone(),
            allowed_origins: serve.allowed_origins.clone(),
            local_target: serve.local_target,
            local_shell: serve.local_shell.clone(),
            term_grace: Duration::from_secs(serve.term_grace_secs),
            chat_rate: serve.chat_rate,
            chat_idle: Duration::from_secs(serve.chat_idle_secs.max(2)),
            max_rooms: serve.max_rooms,
            max_chat_sockets_per_user: serve.max_chat_sockets_per_user,
        };
        let (hub, hub_task) = ChatHub::spawn(db.clone(), &config);
        let terms = TermManager::new(
            TermConfig {
                grace: config.term_grace,
                local_shell: config.local_shell.clone(),
                connect_timeout: SSH_CONNECT_TIMEOUT,
            },
            db.clone(),
        );
        let core = Arc::new(Core {
            db,
            config,
            hub,
            terms,
            secrets,
            login_limiter: LoginLimiter::default(),
            sockets: Default::default(),
        });
        Ok(Self {
            state: AppState {
                leptos_options,
                core,
            },
            hub_task,
        })
    }

    /// Disconnects clients and ends terminal sessions.
    pub async fn stop(self) {
        self.state.core.hub.shutdown().await;
        let _ = self.hub_task.await;
        self.state.core.terms.shutdown().await;
        self.state.core.db.close().await;
    }
}

/// Creates the first admin with a random password if there are no users;
/// returns the password to print once.
pub async fn ensure_first_admin(core: &Core) -> anyhow::Result<Option<String>> {
    if db::users::count(&core.db).await? > 0 {
        return Ok(None);
    }
    let password = tokens::random_token();
    services::accounts::create_user(&core.db, "admin", &password, app::model::Role::Admin)
        .await
        .map_err(|e| anyhow::anyhow!("creating the first admin: {e}"))?;
    Ok(Some(password))
}

/// Puts the peer address where server functions can read it.
async fn client_addr(
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(ClientAddr(addr.ip()));
    next.run(req).await
}

/// The full router.
pub fn router(state: AppState) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(App);
    let services = services::services(state.core.clone());
    let fallback_services = services.clone();
    Router::new()
        .route("/ws", get(ws::chat::upgrade))
        .route("/ws/term/{id}", get(ws::term::upgrade))
        .leptos_routes_with_context(&state, routes, move || provide_context(services.clone()), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        // Static files; unknown paths render the app's "not found" page, which
        // needs the services (it asks who is logged in).
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(
            move || provide_context(fallback_services.clone()), shell
        ))
        .layer(middleware::from_fn(client_addr))
        // Spans carry the path only: tickets travel in query strings and must never be logged.
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request| info_span!("http", method = %req.method(), path = %req.uri().path()),
        ))
        .with_state(state)
}

/// Serves `router(state)` on `listener` (TCP_NODELAY on every accepted
/// socket) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Leptos settings: from the config file if it exists, LEPTOS_* variables override.
pub fn leptos_options(config_file: &Path, addr: SocketAddr) -> anyhow::Result<LeptosOptions> {
    let file = config_file
        .exists()
        .then(|| config_file.to_string_lossy().into_owned());
    let conf =
        leptos::config::get_configuration(file.as_deref()).context("reading Leptos settings")?;
    let mut options = conf.leptos_options;
    options.site_addr = addr;
    Ok(options)
}

/// `termroom serve`: runs until Ctrl-C / SIGTERM.
pub async fn run(serve_args: ServeArgs, store: StoreArgs) -> anyhow::Result<()> {
    let options = leptos_options(&serve_args.leptos_config, serve_args.addr)?;
    let runtime = Runtime::start(&serve_args, &store, options).await?;
    if let Some(password) = ensure_first_admin(&runtime.state.core).await? {
        println!("termroom: created the first account. user: admin  password: {password}");
        println!(
            "termroom: this password is shown once; change it with `termroom user passwd admin`."
        );
    }
    let listener = TcpListener::bind(serve_args.addr)
        .await
        .with_context(|| format!("binding {}", serve_args.addr))?;
    info!("termroom listening on http://{}", listener.local_addr()?);
    println!("termroom: listening on http://{}", listener.local_addr()?);
    serve(listener, runtime.state.clone(), shutdown_signal()).await?;
    info!("shutting down");
    runtime.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

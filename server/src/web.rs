//! The HTTP server: builds the core, the router (Leptos pages, server
//! functions, WebSockets, static site) and serves it on an injected listener
//! until a shutdown future resolves.
use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

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
use tower_http::{services::ServeDir, trace::TraceLayer};
use tracing::{debug, info, info_span, warn};

use crate::{
    auth::{ratelimit::LoginLimiter, tokens},
    chat::{hub::HubCluster, ChatHub},
    cli::{ServeArgs, StoreArgs},
    cluster,
    config::Config,
    db, http,
    secrets::SecretBox,
    services,
    state::{AppState, Core},
    term::{TermConfig, TermManager},
    ws,
};

/// Logins queued per password hash worker by default: at ~40 ms a hash,
/// a full queue drains in about a third of a second.
const HASH_QUEUE_PER_WORKER: usize = 8;

/// How long an SSH connection attempt may take.
/// Other nodes' events waiting for the hub.
const BROKER_QUEUE: usize = 1024;
const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A running core plus the tasks that must be stopped with it.
pub struct Runtime {
    /// Shared state for the router.
    pub state: AppState,
    hub_task: tokio::task::JoinHandle<()>,
    /// The revocation watcher (polls the change counter, purges expired rows).
    watcher_task: tokio::task::JoinHandle<()>,
    /// Deletes recordings past their retention period.
    retention_task: Option<tokio::task::JoinHandle<()>>,
    /// With several nodes: this node's heartbeat (and dead-node sweep), and its id.
    heartbeat_task: Option<(tokio::task::JoinHandle<()>, String)>,
}

impl Runtime {
    /// Opens the database, generates the secret key if needed, starts the hub
    /// and the terminal manager.
    pub async fn start(
        serve: &ServeArgs,
        store: &StoreArgs,
        leptos_options: LeptosOptions,
    ) -> anyhow::Result<Self> {
        serve.check(store.broker.as_deref())?;
        db::create_data_dir(&store.data_dir)
            .with_context(|| format!("creating data dir {}", store.data_dir.display()))?;
        let db = db::open(store.database_url.as_deref(), &store.data_dir)
            .await
            .context("opening the database")?;
        let recordings = (!serve.no_recording).then(|| store.recordings());
        let secrets = SecretBox::load(store.secret_key_file.as_deref(), &store.data_dir)?;
        let node = serve.node_id.as_ref().map(|id| cluster::NodeConfig {
            id: id.clone(),
            url: serve
                .node_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", serve.addr)),
        });
        if let Some(node) = &node {
            cluster::join(&db, &secrets, node)
                .await
                .context("joining the cluster")?;
        }
        let node_id = node.as_ref().map(|n| n.id.clone());
        // This node's sessions of a previous process cannot be running any more.
        let stale = crate::recordings::recovery::recover_stale(
            &db,
            recordings.as_ref(),
            node_id.as_deref(),
        )
        .await
        .context("recovering interrupted terminal sessions")?;
        if stale > 0 {
            info!(
                stale,
                "marked terminal sessions of the previous run as interrupted"
            );
        }
        let upgraded = db::hosts::reseal_legacy(&db, &secrets)
            .await
            .context("binding host secrets to their rows")?;
        if upgraded > 0 {
            info!(
                upgraded,
                "bound host secrets of an older version to their rows"
            );
        }
        let config = Config {
            data_dir: store.data_dir.clone(),
            allowed_origins: serve.allowed_origins.clone(),
            local_target: serve.local_target,
            local_shell: serve.local_shell.clone(),
            term_grace: Duration::from_secs(serve.term_grace_secs),
            chat_rate: serve.chat_rate,
            chat_idle: Duration::from_secs(serve.chat_idle_secs.max(2)),
            term_ping: Duration::from_secs(serve.term_ping_secs.max(1)),
            term_idle: Duration::from_secs(serve.term_idle_secs.max(2)),
            max_sessions_per_user: serve.max_sessions_per_user,
            revocation_poll: Duration::from_millis(serve.revocation_poll_ms.max(50)),
            purge_interval: Duration::from_secs(serve.purge_interval_secs.max(1)),
            trusted_proxies: serve.trusted_proxies.clone(),
            diagnostics: serve.diagnostics,
            max_rooms: serve.max_rooms,
            max_chat_sockets_per_user: serve.max_chat_sockets_per_user,
            recordings: recordings.clone(),
            node_id: node_id.clone(),
        };
        spawn_precompression(&leptos_options);
        let hash_workers = serve.hash_workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let hasher = crate::auth::password::HashPool::new(
            hash_workers,
            serve
                .hash_queue
                .unwrap_or(hash_workers.saturating_mul(HASH_QUEUE_PER_WORKER)),
            if serve.hash_fresh_memory {
                crate::auth::password::MemoryMode::Fresh
            } else {
                crate::auth::password::MemoryMode::Reuse
            },
        )
        .context("starting the password hashers")?;
        let changed_elsewhere = Arc::new(tokio::sync::Notify::new());
        let hub_cluster = match (&store.broker, &node_id) {
            (Some(url), Some(id)) => {
                let (tx, incoming) = tokio::sync::mpsc::channel(BROKER_QUEUE);
                let broker = cluster::broker::Broker::start(url, id, tx, changed_elsewhere.clone())
                    .await
                    .context("connecting to the broker")?;
                let cursor = db::messages::max_id(&db)
                    .await
                    .context("reading the last chat message")?;
                Some(HubCluster {
                    broker,
                    incoming,
                    cursor,
                })
            }
            _ => None,
        };
        let broker = hub_cluster.as_ref().map(|c| c.broker.clone());
        let (hub, hub_task) = ChatHub::spawn(db.clone(), &config, hub_cluster);
        let terms = TermManager::new(
            TermConfig {
                grace: config.term_grace,
                local_shell: config.local_shell.clone(),
                local_record_input: serve.local_record_input,
                announce_watchers: serve.announce_watchers,
                node_id: node_id.clone(),
                connect_timeout: SSH_CONNECT_TIMEOUT,
                max_sessions_per_user: config.max_sessions_per_user,
                recordings: recordings.clone(),
                ..TermConfig::default()
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
            hasher,
            sockets: Default::default(),
            broker,
            changed_elsewhere,
        });
        let watcher_task = crate::revocation::spawn(core.clone());
        let heartbeat_task = node_id
            .clone()
            .map(|id| (cluster::spawn_heartbeat(core.db.clone(), id.clone()), id));
        let retention_task = recordings.map(|dir| {
            crate::recordings::retention::spawn(core.db.clone(), dir, core.config.purge_interval)
        });
        Ok(Self {
            state: AppState {
                leptos_options,
                core,
            },
            hub_task,
            watcher_task,
            retention_task,
            heartbeat_task,
        })
    }

    /// Disconnects clients and ends terminal sessions.
    pub async fn stop(self) {
        self.watcher_task.abort();
        let _ = self.watcher_task.await;
        if let Some(t) = self.retention_task {
            t.abort();
            let _ = t.await;
        }
        self.state.core.hub.shutdown().await;
        let _ = self.hub_task.await;
        self.state.core.terms.shutdown().await;
        if let Some((task, id)) = self.heartbeat_task {
            task.abort();
            let _ = task.await;
            cluster::leave(&self.state.core.db, &id).await;
        }
        self.state.core.db.close().await;
    }
}

/// Compresses the static site into `.br`/`.gz` siblings in the background
/// (brotli at its best level takes seconds for a Wasm file; until it is done,
/// the compression layer compresses those files per request). Under
/// `cargo leptos watch` (`LEPTOS_WATCH`), the site changes under the running
/// server, so siblings are removed instead of written: a stale one would be
/// served in place of the new file.
fn spawn_precompression(options: &LeptosOptions) {
    let root = PathBuf::from(options.site_root.as_ref());
    let watching = std::env::var_os("LEPTOS_WATCH").is_some();
    tokio::task::spawn_blocking(
        move || match http::compress::precompress_site(&root, watching) {
            Ok(s) => info!(
                site = %root.display(),
                compressed = s.compressed,
                fresh = s.fresh,
                removed = s.removed,
                "static files precompressed"
            ),
            Err(e) => warn!(
                "precompressing the static site failed (files are compressed per request): {e}"
            ),
        },
    );
}

/// Creates the first admin with a random password if there are no users;
/// returns the password to print once.
pub async fn ensure_first_admin(core: &Core) -> anyhow::Result<Option<String>> {
    if db::users::count(&core.db).await? > 0 {
        return Ok(None);
    }
    let password = tokens::random_token();
    services::accounts::create_user_with(
        &core.hasher,
        &core.db,
        "admin",
        &password,
        app::model::Role::Admin,
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the first admin: {e}"))?;
    Ok(Some(password))
}

/// Puts the client's address where server functions can read it: the TCP
/// peer, or behind a `--trusted-proxy` the address it forwarded for.
async fn client_addr(
    axum::extract::State(core): axum::extract::State<Arc<Core>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let client =
        crate::auth::ratelimit::client_ip(addr.ip(), forwarded, &core.config.trusted_proxies);
    req.extensions_mut().insert(ClientAddr(client));
    next.run(req).await
}

/// The full router.
pub fn router(state: AppState) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(App);
    let services = services::services(state.core.clone());
    let fallback_services = services.clone();
    // Static site files, sent precompressed (`.br`/`.gz` siblings) when the
    // client accepts it; an unknown path renders the app's "not found" page
    // with status 404 (the page needs the services: it asks who is logged in).
    let render_not_found = leptos_axum::render_app_to_stream_with_context(
        move || provide_context(fallback_services.clone()),
        {
            let options = leptos_options.clone();
            move || shell(options.clone())
        },
    );
    let static_files = ServeDir::new(leptos_options.site_root.as_ref())
        .precompressed_br()
        .precompressed_gzip()
        // Any method on an unknown path gets the 404 page, not a 405.
        .call_fallback_on_method_not_allowed(true)
        .not_found_service(tower::service_fn(move |req: Request| {
            let render = render_not_found.clone();
            async move { Ok::<_, Infallible>(render(req).await) }
        }));
    let mut router = Router::new()
        .route("/ws", get(ws::chat::upgrade))
        .route("/ws/term/{id}", get(ws::term::upgrade))
        .route("/ws/watch/{id}", get(ws::watch::upgrade))
        .route("/healthz", get(http::health::healthz));
    if state.core.config.diagnostics {
        router = router.route("/ws/echo", get(ws::echo::upgrade));
    }
    router
        .leptos_routes_with_context(&state, routes, move || provide_context(services.clone()), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback_service(static_files)
        .layer(middleware::from_fn_with_state(
            state.core.clone(),
            http::recordings::downloads,
        ))
        .layer(middleware::from_fn_with_state(
            state.core.clone(),
            client_addr,
        ))
        .layer(middleware::from_fn_with_state(
            state.core.clone(),
            http::csrf::guard,
        ))
        .layer(http::compress::layer())
        // Spans carry the path only: tickets travel in query strings and must never be logged.
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request| info_span!("http", method = %req.method(), path = %req.uri().path()),
        ))
        .with_state(state)
}

/// Serves `router(state)` on `listener` (TCP_NODELAY and keepalive on every
/// accepted socket) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = http::tcp::configure(tcp) {
            debug!("setting socket options: {e}");
        }
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

/// `termroom serve`: runs until Ctrl-C / SIGTERM (draining first, see [`crate::drain`]).
pub async fn run(serve_args: ServeArgs, store: StoreArgs) -> anyhow::Result<()> {
    crate::memory::keep_large_buffers_returnable();
    let options = leptos_options(&serve_args.leptos_config, serve_args.addr)?;
    let runtime = Runtime::start(&serve_args, &store, options).await?;
    if let Some(password) = ensure_first_admin(&runtime.state.core).await? {
        println!("termroom: created the first account. user: admin  password: {password}");
        println!(
            "termroom: this password is shown once; change it on the account page (click your name at the top) or with `termroom user passwd admin`."
        );
    }
    let listener = TcpListener::bind(serve_args.addr)
        .await
        .with_context(|| format!("binding {}", serve_args.addr))?;
    // Listened for before "listening" is printed: a signal sent on seeing it
    // is never the default one that kills the process.
    let signals = crate::drain::StopSignals::listen().context("listening for stop signals")?;
    info!("termroom listening on http://{}", listener.local_addr()?);
    println!("termroom: listening on http://{}", listener.local_addr()?);
    let drain = Duration::from_secs(serve_args.drain_secs);
    let stopped = crate::drain::until_stopped(runtime.state.core.clone(), drain, signals);
    serve(listener, runtime.state.clone(), stopped).await?;
    info!("shutting down");
    runtime.stop().await;
    Ok(())
}

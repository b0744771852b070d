//! Shared integration-test harness: a real termroom server on 127.0.0.1:0 with
//! a temporary data directory, plus HTTP and WebSocket client helpers.
#![allow(dead_code)]

pub mod served;
pub mod services;
pub mod sshd;
pub mod term;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use leptos::config::LeptosOptions;
use serde_json::Value;
use server::{
    cli::{LocalTarget, ServeArgs, StoreArgs},
    web::{self, Runtime},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    tungstenite::{self, client::IntoClientRequest, http, Message},
    MaybeTlsStream, WebSocketStream,
};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The database URL for the data directory `dir`: `None` (SQLite inside the
/// directory) unless `TERMROOM_TEST_POSTGRES` names a Postgres server
/// (`scripts/with-postgres.sh`); then a scratch database made for `dir` on
/// first use, its URL kept in `dir/.test-database-url` so that restarts and
/// command-line runs on the same directory find the same data.
pub fn database_url(dir: &Path) -> Option<String> {
    let admin = server::db::test_postgres()?;
    let file = dir.join(".test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(url);
    }
    // On a thread of its own: callers may be inside a runtime or not.
    let url = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(server::db::create_scratch_database(&admin))
    })
    .join()
    .expect("scratch database thread")
    .expect("scratch database");
    {
        use std::os::unix::fs::DirBuilderExt;
        // As private as the server makes it (a test checks the mode).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .expect("data dir");
    }
    std::fs::write(&file, &url).expect("keep the database url");
    Some(url)
}

/// The environment a `termroom` child process needs to use the same database
/// as the tests for data directory `dir`.
pub fn database_env(dir: &Path) -> Vec<(&'static str, String)> {
    database_url(dir)
        .map(|u| ("TERMROOM_DATABASE_URL", u))
        .into_iter()
        .collect()
}

/// Runs `f` to completion from synchronous code (on a runtime of its own,
/// on a thread of its own).
pub fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(f)
            })
            .join()
            .expect("block_on thread")
    })
}

/// The local-target shell of the tests (`scripts/test-shell`: bash without
/// the machine's startup files).
pub fn test_shell() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-shell")
}

/// Whether the tests run on Postgres (else SQLite files).
pub fn on_postgres() -> bool {
    server::db::test_postgres().is_some()
}

/// Password every test user gets.
pub const PASSWORD: &str = "correct-horse-battery";

/// Knobs of a test server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reuse this data directory (for restart tests).
    pub data_dir: Option<PathBuf>,
    pub local_target: LocalTarget,
    pub chat_rate: u32,
    pub chat_idle_secs: u64,
    pub term_grace_secs: u64,
    pub allowed_origins: Vec<String>,
    pub term_ping_secs: u64,
    pub term_idle_secs: u64,
    pub max_sessions_per_user: usize,
    pub revocation_poll_ms: u64,
    pub purge_interval_secs: u64,
    pub hash_workers: Option<usize>,
    pub hash_queue: Option<usize>,
    pub trusted_proxies: Vec<String>,
    /// Serve `/ws/echo` (`--diagnostics`).
    pub diagnostics: bool,
    /// A database shared with other test servers (several nodes); else
    /// [`database_url`] of the data directory.
    pub database_url: Option<String>,
    /// Several nodes: the Redis broker and this node's id.
    pub broker: Option<String>,
    pub node_id: Option<String>,
    /// A secret key file (several nodes share one).
    pub secret_key_file: Option<PathBuf>,
    pub max_rooms: usize,
    pub max_chat_sockets_per_user: usize,
    /// Site root (static files); default `target/site`.
    pub site_root: Option<PathBuf>,
    /// Recordings directory; default `<data dir>/recordings`.
    pub recordings_dir: Option<PathBuf>,
    /// Local-target sessions record typed input.
    pub local_record_input: bool,
    pub announce_watchers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            data_dir: None,
            local_target: LocalTarget::Admins,
            chat_rate: 1000,
            chat_idle_secs: 60,
            term_grace_secs: 300,
            allowed_origins: vec!["https://ops.example.com".into()],
            term_ping_secs: 20,
            term_idle_secs: 60,
            max_sessions_per_user: 32,
            revocation_poll_ms: 2000,
            purge_interval_secs: 60,
            hash_workers: None,
            hash_queue: None,
            trusted_proxies: Vec::new(),
            diagnostics: false,
            database_url: None,
            broker: None,
            node_id: None,
            secret_key_file: None,
            max_rooms: 1000,
            max_chat_sockets_per_user: 16,
            site_root: None,
            recordings_dir: None,
            local_record_input: false,
            announce_watchers: true,
        }
    }
}

/// A running server; stops when dropped (or explicitly with [`TestServer::stop`]).
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    runtime: Option<Runtime>,
    pub store: StoreArgs,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Self {
        Self::try_start_with(opts).await.expect("start runtime")
    }

    /// [`TestServer::start_with`], returning why the server refused to start.
    pub async fn try_start_with(opts: Options) -> anyhow::Result<Self> {
        // TERMROOM_TEST_LOG=debug (a tracing filter) shows the servers' logs.
        if let Ok(filter) = std::env::var("TERMROOM_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let (tmp, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir().expect("temp dir");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serve = ServeArgs {
            addr,
            allowed_origins: opts.allowed_origins.clone(),
            local_target: opts.local_target,
            // A test that asks for `all` means it.
            i_understand_local_shells: opts.local_target == LocalTarget::All,
            local_shell: test_shell(),
            local_record_input: opts.local_record_input,
            announce_watchers: opts.announce_watchers,
            term_grace_secs: opts.term_grace_secs,
            leptos_config: PathBuf::from("/nonexistent"),
            chat_rate: opts.chat_rate,
            chat_idle_secs: opts.chat_idle_secs,
            term_ping_secs: opts.term_ping_secs,
            term_idle_secs: opts.term_idle_secs,
            max_sessions_per_user: opts.max_sessions_per_user,
            drain_secs: 0,
            revocation_poll_ms: opts.revocation_poll_ms,
            purge_interval_secs: opts.purge_interval_secs,
            hash_workers: opts.hash_workers,
            hash_queue: opts.hash_queue,
            hash_fresh_memory: false,
            trusted_proxies: opts
                .trusted_proxies
                .iter()
                .map(|p| p.parse().expect("proxy range"))
                .collect(),
            diagnostics: opts.diagnostics,
            max_rooms: opts.max_rooms,
            max_chat_sockets_per_user: opts.max_chat_sockets_per_user,
            no_recording: false,
            node_id: opts.node_id.clone(),
            node_url: None,
        };
        let store = StoreArgs {
            data_dir: data_dir.clone(),
            database_url: opts
                .database_url
                .clone()
                .or_else(|| database_url(&data_dir)),
            secret_key_file: opts.secret_key_file.clone(),
            recordings_dir: opts.recordings_dir.clone(),
            broker: opts.broker.clone(),
        };
        let options = LeptosOptions::builder()
            .output_name("termroom")
            .site_root(opts.site_root.as_deref().map_or_else(
                || "target/site".into(),
                |p| p.to_string_lossy().into_owned(),
            ))
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let runtime = Runtime::start(&serve, &store, options).await?;
        let (tx, rx) = oneshot::channel::<()>();
        let state = runtime.state.clone();
        let task = tokio::spawn(async move {
            web::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Ok(Self {
            addr,
            data_dir,
            _tmp: tmp,
            shutdown: Some(tx),
            task: Some(task),
            runtime: Some(runtime),
            store,
        })
    }

    /// Stops the server and waits for it; the data directory is kept while `self` lives.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.stop().await;
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    /// Takes the temp dir out so it outlives this server (for restarts).
    pub fn keep_data(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's own origin (`http://ADDR`).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An `Origin: <own origin>` header, as a browser sends on every POST from
    /// the app's pages; cookie-carrying POSTs without it are refused.
    pub fn same_origin(&self) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::ORIGIN,
            self.origin().parse().expect("origin header"),
        );
        h
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The core (database, hub, terminals) of the running server.
    pub fn core(&self) -> &std::sync::Arc<server::state::Core> {
        &self.runtime.as_ref().expect("running").state.core
    }

    /// Creates a user with [`PASSWORD`].
    pub async fn add_user(&self, name: &str, role: app::model::Role) {
        server::services::accounts::create_user(&self.core().db, name, PASSWORD, role)
            .await
            .expect("create user");
    }

    /// Logs in; returns a cookie-keeping HTTP client and the `/ws` ticket.
    pub async fn login(&self, name: &str) -> (reqwest::Client, String) {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(self.same_origin())
            .build()
            .expect("client");
        let resp = client
            .post(self.url("/login"))
            .json(&serde_json::json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200, "login of {name} failed");
        let body: Value = resp.json().await.expect("login json");
        let otp = body["otp"].as_str().expect("otp").to_string();
        (client, otp)
    }

    /// Asserts that `action` on `target` is in the audit log, done by `actor`.
    pub async fn assert_audited(&self, action: &str, target: &str, actor: &str) {
        let audit = server::db::audit::recent(&self.core().db, 100)
            .await
            .expect("audit log");
        let ev = audit
            .iter()
            .find(|e| e.action == action && e.target.as_deref() == Some(target))
            .unwrap_or_else(|| panic!("{action} on {target} is audited: {audit:?}"));
        assert_eq!(
            ev.actor.as_deref(),
            Some(actor),
            "{action} names who did it"
        );
    }

    /// Calls a server function under `/api/` with form-encoded arguments.
    pub async fn call(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        args: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.url(&format!("/api/{endpoint}")))
            .form(args)
            .send()
            .await
            .expect("server fn request")
    }

    /// A fresh chat ticket for a logged-in client.
    pub async fn chat_ticket(&self, client: &reqwest::Client) -> String {
        let resp = self.call(client, "chat_ticket", &[]).await;
        assert_eq!(resp.status(), 200);
        resp.json::<String>().await.expect("ticket")
    }

    /// Opens `/ws` (rich protocol if `rich`); `Err(status)` if the upgrade is refused.
    pub async fn chat(&self, otp: &str, rich: bool, origin: Option<&str>) -> Result<Ws, u16> {
        let q = if rich { "&v=1" } else { "" };
        connect(&self.ws_url(&format!("/ws?otp={otp}{q}")), origin).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Connects a WebSocket, optionally with an Origin header.
pub async fn connect(url: &str, origin: Option<&str>) -> Result<Ws, u16> {
    let mut req = url.into_client_request().expect("request");
    if let Some(o) = origin {
        req.headers_mut()
            .insert(http::header::ORIGIN, o.parse().expect("origin"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// What a chat socket yielded.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Closed(Option<(u16, String)>),
}

/// The next text frame as JSON or the close, within `secs` seconds.
pub async fn next_event(ws: &mut Ws, secs: u64) -> Got {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for a frame");
        match msg {
            Some(Ok(Message::Text(t))) => {
                return Got::Json(
                    serde_json::from_str(t.as_str()).expect("server sent invalid JSON"),
                )
            }
            Some(Ok(Message::Close(f))) => {
                return Got::Closed(f.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Got::Closed(None),
        }
    }
}

/// The next JSON frame (panics on close or timeout).
pub async fn next_json(ws: &mut Ws) -> Value {
    match next_event(ws, 5).await {
        Got::Json(v) => v,
        Got::Closed(c) => panic!("socket closed unexpectedly: {c:?}"),
    }
}

/// Skips frames until one of type `ty`.
pub async fn next_of_type(ws: &mut Ws, ty: &str) -> Value {
    for _ in 0..200 {
        let v = next_json(ws).await;
        if v["type"] == ty {
            return v;
        }
    }
    panic!("no {ty} frame");
}

/// Asserts nothing but control frames arrive for `ms` milliseconds (and no `new_message`).
pub async fn assert_no_message(ws: &mut Ws, ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                assert_ne!(v["type"], "new_message", "unexpected message: {v}");
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}

/// Sends a JSON value as a text frame.
pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// Posts a chat message.
pub async fn say(ws: &mut Ws, text: &str) {
    send_json(ws, serde_json::json!({"type": "send_message", "payload": {"message": text, "from": "spoofed"}})).await;
}

/// Changes room.
pub async fn change_room(ws: &mut Ws, room: &str, since: Option<i64>) {
    let mut payload = serde_json::json!({"name": room});
    if let Some(s) = since {
        payload["since"] = s.into();
    }
    send_json(
        ws,
        serde_json::json!({"type": "change_room", "payload": payload}),
    )
    .await;
}

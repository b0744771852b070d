//! Several nodes on one Postgres and one Redis, all started here: chat across
//! nodes, tickets redeemed on another node, Redis going away mid-chat,
//! revocation without Redis, a dead node's sessions, configuration errors.
mod common;

use std::{path::PathBuf, time::Duration};

use app::model::Role;
use common::{served::Served, services::*, *};
use serde_json::Value;

/// A cluster for one test: the shared services and the key every node uses.
struct Cluster {
    pg: Postgres,
    redis: Redis,
    db_url: String,
    key_dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let pg = Postgres::start();
        let db_url = pg.database().await;
        let key_dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(key_dir.path().join("secret.key"), "ab".repeat(32)).expect("key file");
        Self {
            pg,
            redis: Redis::start(),
            db_url,
            key_dir,
        }
    }

    fn key_file(&self) -> PathBuf {
        self.key_dir.path().join("secret.key")
    }

    fn options(&self, node: &str) -> Options {
        Options {
            database_url: Some(self.db_url.clone()),
            broker: Some(self.redis.url()),
            node_id: Some(node.to_string()),
            secret_key_file: Some(self.key_file()),
            revocation_poll_ms: 200,
            chat_rate: 1000,
            ..Options::default()
        }
    }

    async fn node(&self, node: &str) -> TestServer {
        TestServer::start_with(self.options(node)).await
    }

    /// Nodes a and b.
    async fn pair(&self) -> (TestServer, TestServer) {
        self.pair_with(|o| o).await
    }

    /// Nodes a and b polling the database a minute apart: only a hint
    /// through Redis makes one act quickly on a change.
    async fn pair_polling_slowly(&self) -> (TestServer, TestServer) {
        self.pair_with(|o| Options {
            revocation_poll_ms: 60_000,
            ..o
        })
        .await
    }

    /// Nodes a and b, each with `tweak` applied to its options.
    async fn pair_with(&self, tweak: impl Fn(Options) -> Options) -> (TestServer, TestServer) {
        let a = TestServer::start_with(tweak(self.options("a"))).await;
        let b = TestServer::start_with(tweak(self.options("b"))).await;
        (a, b)
    }
}

/// Reads `ws` until it closes, which must be as logged out; fails the test
/// when nothing comes within 3 s.
async fn closed_as_logged_out(ws: &mut Ws) {
    loop {
        match next_event(ws, 3).await {
            Got::Json(_) => continue,
            Got::Closed(frame) => {
                let (code, reason) = frame.expect("a close frame with a reason");
                assert_eq!((code, reason.as_str()), (1008, "logged out"));
                return;
            }
        }
    }
}

async fn rich_client(s: &TestServer, name: &str) -> Ws {
    let (_c, otp) = s.login(name).await;
    let mut ws = s.chat(&otp, true, None).await.expect("connect");
    next_of_type(&mut ws, "joined").await;
    ws
}

/// The next `n` chat messages on `ws`, as text.
async fn messages(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let m = next_of_type(ws, "new_message").await;
        out.push(
            m["payload"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    out
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

/// The ids and texts of a room's history as a fresh client on `s` sees it.
async fn history(s: &TestServer, user: &str) -> Vec<(i64, String)> {
    let (_c, otp) = s.login(user).await;
    let mut ws = s.chat(&otp, true, None).await.expect("connect");
    let joined = next_of_type(&mut ws, "joined").await;
    joined["payload"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m: &Value| {
            (
                m["id"].as_i64().unwrap_or_default(),
                m["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_message_sent_on_one_node_reaches_the_other_once_in_order() {
    let c = Cluster::start().await;
    let (a, b) = c.pair().await;
    a.add_user("alice", Role::Member).await;
    a.add_user("bob", Role::Member).await;
    let mut on_a = rich_client(&a, "alice").await;
    let mut on_b = rich_client(&b, "bob").await;
    // Presence is cluster-wide: alice on A sees bob, who is on B.
    loop {
        let p = next_of_type(&mut on_a, "presence").await;
        if p["payload"]["users"] == serde_json::json!(["alice", "bob"]) {
            break;
        }
    }

    let sent = numbered("from a", 0..50);
    for text in &sent {
        say(&mut on_a, text).await;
    }
    assert_eq!(
        messages(&mut on_b, 50).await,
        sent,
        "every message once, in order"
    );
    assert_eq!(messages(&mut on_a, 50).await, sent, "the sender's own echo");
    say(&mut on_b, "from b").await;
    assert_eq!(messages(&mut on_a, 1).await, ["from b"]);
    assert_eq!(messages(&mut on_b, 1).await, ["from b"]);
    assert_no_message(&mut on_b, 500).await;

    // Both nodes talking at once: each client sees one order, the same.
    let (mut a_got, mut b_got) = (Vec::new(), Vec::new());
    for i in 0..20 {
        say(&mut on_a, &format!("a{i}")).await;
        say(&mut on_b, &format!("b{i}")).await;
    }
    a_got.extend(messages(&mut on_a, 40).await);
    b_got.extend(messages(&mut on_b, 40).await);
    assert_eq!(a_got, b_got, "the same order on both nodes");
    let h_a = history(&a, "alice").await;
    let h_b = history(&b, "bob").await;
    assert_eq!(h_a, h_b, "history is the same from both nodes");
    let ids: Vec<i64> = h_a.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        h_a.iter()
            .rev()
            .take(40)
            .rev()
            .map(|(_, t)| t.clone())
            .collect::<Vec<_>>(),
        a_got,
        "delivered in id order"
    );

    // A room made on B is listed on A.
    change_room(&mut on_b, "night-shift", None).await;
    loop {
        let m = next_json(&mut on_a).await;
        if m["type"] == "room_added" {
            assert_eq!(m["payload"]["room"], "night-shift");
            break;
        }
    }
}

#[tokio::test]
async fn a_ticket_from_one_node_is_redeemed_on_the_other_and_only_once() {
    let c = Cluster::start().await;
    let (a, b) = c.pair().await;
    a.add_user("alice", Role::Member).await;
    let (client, _) = a.login("alice").await;
    let otp = a.chat_ticket(&client).await;
    let mut ws = b
        .chat(&otp, true, None)
        .await
        .expect("ticket of A redeemed on B");
    let welcome = next_of_type(&mut ws, "welcome").await;
    assert_eq!(welcome["payload"]["user"], "alice");
    // The login cookie of A works on B too.
    let me = client
        .post(b.url("/api/me"))
        .header("origin", b.origin())
        .send()
        .await
        .expect("me on b");
    assert_eq!(me.status(), 200);
    let me = me.text().await.expect("me body");
    assert!(me.contains("alice"), "{me}");
    for _ in 0..10 {
        let otp = a.chat_ticket(&client).await;
        let (on_a, on_b) = tokio::join!(a.chat(&otp, true, None), b.chat(&otp, true, None));
        assert!(
            on_a.is_ok() != on_b.is_ok(),
            "exactly one node takes a ticket: {:?} {:?}",
            on_a.as_ref().err(),
            on_b.as_ref().err()
        );
        assert_eq!(on_a.err().or(on_b.err()), Some(401));
    }
}

#[tokio::test]
async fn redis_away_for_five_seconds_loses_and_repeats_nothing() {
    let mut c = Cluster::start().await;
    let (a, b) = c.pair().await;
    a.add_user("alice", Role::Member).await;
    a.add_user("bob", Role::Member).await;
    let mut on_a = rich_client(&a, "alice").await;
    let mut on_b = rich_client(&b, "bob").await;
    let mut sent = Vec::new();
    for text in numbered("before", 0..10) {
        say(&mut on_a, &text).await;
        sent.push(text);
    }
    assert_eq!(messages(&mut on_b, 10).await, sent[..10]);
    c.redis.stop();
    for text in numbered("without redis", 0..10) {
        say(&mut on_a, &text).await;
        sent.push(text);
    }
    // Each node keeps serving its own sockets, and reads the others'
    // messages from the database meanwhile.
    assert_eq!(messages(&mut on_a, 20).await, sent);
    assert_eq!(messages(&mut on_b, 10).await, sent[10..20]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.redis.resume();
    for text in numbered("after", 0..10) {
        say(&mut on_a, &text).await;
        sent.push(text);
        say(&mut on_b, "b-side").await;
        sent.push("b-side".into());
    }
    let on_a_got = messages(&mut on_a, 20).await;
    let on_b_got = messages(&mut on_b, 20).await;
    assert_eq!(on_a_got, on_b_got, "one order on both nodes");
    let mut sorted_a = on_a_got.clone();
    sorted_a.sort();
    let mut expected = sent[20..].to_vec();
    expected.sort();
    assert_eq!(sorted_a, expected, "each message once");
    assert_no_message(&mut on_b, 1500).await;
    assert_no_message(&mut on_a, 100).await;
}

#[tokio::test]
async fn disabling_a_user_while_redis_is_down_closes_their_sockets_on_both_nodes() {
    let mut c = Cluster::start().await;
    let (a, b) = c.pair().await;
    a.add_user("carol", Role::Member).await;
    let mut on_a = rich_client(&a, "carol").await;
    let mut on_b = rich_client(&b, "carol").await;
    c.redis.stop();
    // As the command line does it: in the database only.
    server::db::users::disable(&a.core().db, "carol")
        .await
        .expect("disable")
        .expect("carol exists");
    for ws in [&mut on_a, &mut on_b] {
        // next_event fails the test when nothing comes within 5 s.
        while let Got::Json(_) = next_event(ws, 5).await {}
    }
    assert_eq!(
        b.chat("x", true, None).await.err(),
        Some(401),
        "and nothing opens again"
    );
}

#[tokio::test]
async fn disabling_a_user_on_one_node_closes_their_socket_on_the_other_at_once() {
    let c = Cluster::start().await;
    let (a, b) = c.pair_polling_slowly().await;
    a.add_user("root1", Role::Admin).await;
    a.add_user("carol", Role::Member).await;
    let mut on_b = rich_client(&b, "carol").await;
    let (admin, _) = a.login("root1").await;
    let r = a.call(&admin, "user_disable", &[("name", "carol")]).await;
    assert_eq!(r.status(), 200);
    closed_as_logged_out(&mut on_b).await;
}

#[tokio::test]
async fn the_command_line_with_a_broker_tells_every_node_at_once() {
    let c = Cluster::start().await;
    let (a, b) = c.pair_polling_slowly().await;
    a.add_user("carol", Role::Member).await;
    let mut on_a = rich_client(&a, "carol").await;
    let mut on_b = rich_client(&b, "carol").await;
    let cli_dir = tempfile::tempdir().expect("temp dir");
    let store = server::cli::StoreArgs {
        data_dir: cli_dir.path().to_path_buf(),
        database_url: Some(c.db_url.clone()),
        secret_key_file: Some(c.key_file()),
        recordings_dir: None,
        broker: Some(c.redis.url()),
    };
    server::admin::user(
        server::cli::UserCmd::Disable {
            name: "carol".into(),
        },
        &store,
    )
    .await
    .expect("termroom user disable carol");
    closed_as_logged_out(&mut on_a).await;
    closed_as_logged_out(&mut on_b).await;
}

#[tokio::test]
async fn a_users_chat_rate_is_one_budget_across_nodes() {
    let c = Cluster::start().await;
    let (a, b) = c.pair_with(|o| Options { chat_rate: 2, ..o }).await;
    a.add_user("dave", Role::Member).await;
    a.add_user("erin", Role::Member).await;
    let mut dave_b = rich_client(&b, "dave").await;
    let _erin_b = rich_client(&b, "erin").await;
    let mut dave_a = rich_client(&a, "dave").await;
    // Once A shows erin, it has B's presence, dave's included.
    loop {
        let p = next_of_type(&mut dave_a, "presence").await;
        if p["payload"]["users"] == serde_json::json!(["dave", "erin"]) {
            break;
        }
    }
    // B's view of A changes nothing its clients see (dave is on B too):
    // give A's presence the time it took the other way, with room to spare.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A burst of 3 x 2 = 6 messages is dave's in all: 12 from each node.
    for i in 0..12 {
        say(&mut dave_a, &format!("a {i}")).await;
        say(&mut dave_b, &format!("b {i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stored: Vec<String> = history(&a, "erin")
        .await
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    let from_a = stored.iter().filter(|t| t.starts_with("a ")).count();
    let from_b = stored.iter().filter(|t| t.starts_with("b ")).count();
    // Each node allows half the burst (3) plus what refills at half the
    // rate while the messages go out; one budget per node would allow 12.
    assert!((3..=4).contains(&from_a), "{stored:?}");
    assert!((3..=4).contains(&from_b), "{stored:?}");
}

#[tokio::test]
async fn the_health_check_fails_while_the_database_refuses_and_recovers() {
    let c = Cluster::start().await;
    let a = c.node("a").await;
    let health = || async {
        let resp = reqwest::get(a.url("/healthz")).await.expect("healthz");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    };
    assert_eq!(health().await, (200, "ok a\n".to_string()));

    // The node's database refuses connections and drops the open ones.
    let name = c
        .db_url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    let admin = sqlx::PgPool::connect(&c.pg.admin_url).await.expect("admin");
    let set_allowed = |allowed: bool| {
        let (admin, name) = (admin.clone(), name.clone());
        async move {
            // The name is the scratch database's (letters, digits, `_`).
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allowed}"
            )))
            .execute(&admin)
            .await
            .expect("alter database");
        }
    };
    set_allowed(false).await;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&admin)
        .await
        .expect("terminate");
    let until = |want: u16| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = health().await;
            if status == want {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{want} within 10 s; last {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let body = until(503).await;
    assert!(body.starts_with("unavailable a: the database"), "{body}");
    set_allowed(true).await;
    assert_eq!(until(200).await, "ok a\n");
}

#[tokio::test]
async fn a_node_id_in_use_and_a_different_secret_key_are_refused_at_start() {
    let c = Cluster::start().await;
    let _a = c.node("a").await;
    assert_refused(c.options("a"), "in use by a running node").await;

    let other_key = tempfile::tempdir().expect("temp dir");
    let key = other_key.path().join("secret.key");
    std::fs::write(&key, "cd".repeat(32)).expect("key");
    let other_key_options = Options {
        secret_key_file: Some(key),
        ..c.options("b")
    };
    assert_refused(other_key_options, "secret key differs from node \"a\"").await;
    let no_broker = Options {
        broker: Some("redis://127.0.0.1:1".into()),
        ..c.options("c")
    };
    assert_refused(no_broker, "cannot reach the broker").await;
    let no_database = Options {
        database_url: Some("postgres://nobody@127.0.0.1:1/x".into()),
        ..c.options("d")
    };
    assert_refused(no_database, "cannot connect to").await;
    drop(c.pg);
}

/// Asserts that a node with `options` refuses to start, saying `why`.
async fn assert_refused(options: Options, why: &str) {
    match TestServer::try_start_with(options).await {
        Ok(_) => panic!("started, though it should refuse: {why}"),
        Err(e) => assert!(format!("{e:#}").contains(why), "{e:#}"),
    }
}

/// The terminal session ids `client` lists through node `s`.
async fn listed(s: &TestServer, client: &reqwest::Client) -> Vec<String> {
    let list: Value = s
        .call(client, "term_list", &[])
        .await
        .json()
        .await
        .expect("term list");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|t| t["session_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn attach_ticket(s: &TestServer, client: &reqwest::Client, id: &str) -> reqwest::Response {
    s.call(client, "term_attach", &[("session_id", id)]).await
}

#[tokio::test]
async fn a_terminal_opened_through_one_node_is_reached_through_the_other() {
    use common::term::{open, Term};
    let c = Cluster::start().await;
    // Polls far apart: a freeze or close asked for through B reaches A
    // in time only by the hint through Redis.
    let (a, b) = c
        .pair_with(|o| Options {
            local_target: server::cli::LocalTarget::Admins,
            max_sessions_per_user: 1,
            revocation_poll_ms: 60_000,
            ..o
        })
        .await;
    a.add_user("root1", Role::Admin).await;
    let (on_a, _) = a.login("root1").await;
    let (on_b, _) = b.login("root1").await;
    let (id, otp) = open(&a, &on_a, "local").await.expect("open on a");
    assert_eq!(
        open(&b, &on_b, "local").await.err(),
        Some(400),
        "the per-user cap counts the session A holds"
    );
    assert_eq!(
        listed(&b, &on_b).await,
        std::slice::from_ref(&id),
        "listed on every node"
    );

    // The ticket of A, the socket through B: forwarded to A.
    let mut t = Term::attach(&b, &id, &otp, 0).await;
    t.type_line("echo forwarded-$((40+2))").await;
    t.until(10, |t| t.text.contains("forwarded-42")).await;
    let seen = t.next_seq;
    drop(t);

    // Reload: a ticket from B, the socket through B again, resuming.
    let resp = attach_ticket(&b, &on_b, &id).await;
    assert_eq!(resp.status(), 200);
    let ticket: Value = resp.json().await.expect("ticket");
    let otp = ticket["otp"].as_str().expect("otp").to_string();
    let mut t = Term::attach(&b, &id, &otp, seen).await;
    t.type_line("echo again-$((1+1))").await;
    t.until(10, |t| t.text.contains("again-2")).await;
    assert!(
        !t.text.contains("forwarded-42"),
        "resumed where it left off"
    );
    drop(t);

    // An admin on B sees it on the Live page, named with its node, and
    // watches it through B.
    let live: Value = b.call(&on_b, "live", &[]).await.json().await.expect("live");
    let row = live
        .as_array()
        .and_then(|l| l.iter().find(|s| s["session_id"] == id.as_str()))
        .cloned()
        .expect("A's session listed on B");
    assert_eq!(row["node"], "a");
    let resp = b.call(&on_b, "watch", &[("session_id", &id)]).await;
    assert_eq!(resp.status(), 200);
    let watch: Value = resp.json().await.expect("watch ticket");
    let mut w = Term::watch(&b, &id, watch["otp"].as_str().expect("otp")).await;
    w.until(10, |w| w.text.contains("again-2")).await;
    let mut t = {
        let resp = attach_ticket(&b, &on_b, &id).await;
        let ticket: Value = resp.json().await.expect("ticket");
        Term::attach(&b, &id, ticket["otp"].as_str().expect("otp"), 0).await
    };
    t.until(10, |t| t.watchers == ["root1"]).await;
    drop(w);
    drop(t);
    // Freezing through B reaches A (a request in the database A applies,
    // told of it through Redis).
    let held = || a.core().terms.session(&id).is_some_and(|s| s.frozen());
    for frozen in [true, false] {
        let on = if frozen { "true" } else { "false" };
        let resp = b
            .call(&on_b, "freeze", &[("session_id", &id), ("frozen", on)])
            .await;
        assert_eq!(resp.status(), 200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while held() != frozen {
            assert!(
                tokio::time::Instant::now() < deadline,
                "frozen={frozen} within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // B's Live page shows the state A applied.
        let live: Value = b.call(&on_b, "live", &[]).await.json().await.expect("live");
        let row = live
            .as_array()
            .and_then(|l| l.iter().find(|s| s["session_id"] == id.as_str()))
            .cloned()
            .expect("listed");
        assert_eq!(row["frozen"], frozen);
    }

    // A forged or replayed claim gets nothing from A.
    let forged = reqwest::Client::new()
        .get(a.url(&format!("/ws/term/{id}")))
        .header("x-termroom-forward", "00.00")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("forged request");
    assert_eq!(forged.status(), 401);

    // Closing through B ends the session on A.
    let resp = b.call(&on_b, "term_close", &[("session_id", &id)]).await;
    assert_eq!(resp.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while a
        .core()
        .terms
        .session(&id)
        .is_some_and(|s| s.phase() != server::term::Phase::Ended)
    {
        assert!(tokio::time::Instant::now() < deadline, "closed within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_nodes_sessions_become_interrupted_and_its_chat_resumes_on_another() {
    let c = Cluster::start().await;
    let b = c.node("b").await;
    b.add_user("root1", Role::Admin).await;
    // Node A is a real process, so that it can be killed outright.
    let data = tempfile::tempdir().expect("temp dir");
    let key = c.key_file();
    let mut node_a = Served::start(
        data.path(),
        &[
            "--local-target",
            "admins",
            "--node-id",
            "a",
            "--broker",
            &c.redis.url(),
            "--database-url",
            &c.db_url,
            "--secret-key-file",
            &key.to_string_lossy(),
        ],
    );
    let addr = node_a.addr.clone();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let origin = format!("http://{addr}");
    let resp = client
        .post(format!("{origin}/login"))
        .header("origin", &origin)
        .json(&serde_json::json!({"username": "root1", "password": PASSWORD}))
        .send()
        .await
        .expect("login on a");
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(format!("{origin}/api/term_open"))
        .header("origin", &origin)
        .form(&[("target", "local"), ("cols", "80"), ("rows", "24")])
        .send()
        .await
        .expect("open on a");
    assert_eq!(resp.status(), 200);
    let id = resp.json::<Value>().await.expect("ticket")["session_id"]
        .as_str()
        .expect("id")
        .to_string();
    // A chat message on B before A dies; the client that was on A resumes on B.
    let mut on_b = rich_client(&b, "root1").await;
    say(&mut on_b, "before a died").await;
    messages(&mut on_b, 1).await;

    // SIGKILL: no clean stop, the node's row stays until its heartbeat ages.
    let _ = node_a.child.kill();
    let _ = node_a.child.wait();
    let row = || async {
        server::db::terminal_sessions::by_id(&b.core().db, &id)
            .await
            .expect("row")
            .expect("session row")
    };
    assert_eq!(row().await.status, "running");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while row().await.status != "interrupted" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "interrupted within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The owner, now on B, is told what happened.
    let (on_b_client, _) = b.login("root1").await;
    let resp = attach_ticket(&b, &on_b_client, &id).await;
    assert_eq!(resp.status(), 410, "gone, not missing");
    let body = resp.text().await.expect("body");
    assert!(body.contains("interrupted"), "{body}");
    // The chat client that was on A reconnects to B from its last id.
    let h = history(&b, "root1").await;
    assert_eq!(h.last().map(|(_, t)| t.as_str()), Some("before a died"));
    drop(data);
}

#[tokio::test]
async fn failed_logins_count_on_every_node() {
    let c = Cluster::start().await;
    let (a, b) = c.pair().await;
    a.add_user("alice", Role::Member).await;
    let attempt = |s: &TestServer, password: &'static str| {
        let url = s.url("/login");
        let origin = s.origin();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("origin", origin)
                .json(&serde_json::json!({"username": "alice", "password": password}))
                .send()
                .await
                .expect("login request")
                .status()
                .as_u16()
        }
    };
    // The free failures of the name, spread over both nodes.
    for i in 0..server::auth::ratelimit::FREE_FAILURES_PER_NAME {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(attempt(node, "wrong-password").await, 401);
    }
    // The clock's second ticks over between the last failure and the next
    // guess (stored times are whole seconds): the wait is not cut short.
    let server::db::Db::Postgres(pool) = &b.core().db else {
        panic!("a cluster runs on Postgres");
    };
    sqlx::query("UPDATE login_failures SET last_at = last_at - 1 WHERE key = 'name:alice'")
        .execute(pool)
        .await
        .expect("age the failures by one clock second");
    // B alone saw fewer than the free failures, yet it slows the name down.
    assert_eq!(attempt(&b, "wrong-password").await, 429);
    assert_eq!(attempt(&a, "wrong-password").await, 429);
}

//! Revocation through the real server: the database is changed directly (as
//! the command line or another node would), and live terminal sessions and
//! sockets that lost their access close with the reason, within a deadline.
mod common;

use std::time::{Duration, Instant};

use app::{
    model::Role,
    protocol::term::{ClientFrame, NoticeLevel, ServerFrame},
};
use common::{sshd::Sshd, *};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use server::ws::registry::{ACCOUNT_DISABLED, SIGNED_OUT};
use tokio_tungstenite::tungstenite::Message;

/// How long a revocation may take to show (the poll interval is 100 ms here;
/// generous for a loaded machine).
const DEADLINE: Duration = Duration::from_secs(15);

/// A server whose watcher polls every 100 ms and purges every second.
async fn server() -> TestServer {
    TestServer::start_with(Options {
        revocation_poll_ms: 100,
        purge_interval_secs: 1,
        ..Options::default()
    })
    .await
}

/// A terminal socket and what came out of it.
struct Term {
    ws: Ws,
    text: String,
    notices: Vec<(NoticeLevel, String)>,
    /// `Some` once the socket ended: the close frame's code and reason, if any.
    closed: Option<Option<(u16, String)>>,
}

impl Term {
    async fn attach(s: &TestServer, session: &str, otp: &str) -> Term {
        let ws = connect(&s.ws_url(&format!("/ws/term/{session}?otp={otp}")), None)
            .await
            .expect("terminal socket");
        let mut t = Term {
            ws,
            text: String::new(),
            notices: vec![],
            closed: None,
        };
        t.ws.send(Message::Binary(
            ClientFrame::ResumeFrom { seq: 0 }.encode().into(),
        ))
        .await
        .expect("resume");
        t
    }

    async fn type_line(&mut self, line: &str) {
        self.ws
            .send(Message::Binary(
                ClientFrame::Input(format!("{line}\r").into_bytes())
                    .encode()
                    .into(),
            ))
            .await
            .expect("input");
    }

    /// Reads frames until `pred` holds or the socket ends (panics after `DEADLINE`).
    async fn until(&mut self, pred: impl Fn(&Term) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !pred(self) && self.closed.is_none() {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out; output {:?} notices {:?}",
                        self.text, self.notices
                    )
                });
            match msg {
                Some(Ok(Message::Binary(b))) => match ServerFrame::decode(&b).expect("frame") {
                    ServerFrame::Output { data, .. } | ServerFrame::Snapshot { data, .. } => {
                        self.text.push_str(&String::from_utf8_lossy(&data))
                    }
                    ServerFrame::Notice { level, text } => self.notices.push((level, text)),
                    ServerFrame::Exit { .. }
                    | ServerFrame::Size { .. }
                    | ServerFrame::Watchers(_)
                    | ServerFrame::Broadcast { .. } => {}
                },
                Some(Ok(Message::Close(f))) => {
                    self.closed = Some(f.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => self.closed = Some(None),
            }
        }
    }

    /// Runs `echo` and waits for its answer (the shell is up).
    async fn ready(&mut self) {
        self.type_line("echo up-$((40+2))").await;
        self.until(|t| t.text.contains("up-42")).await;
        assert!(
            self.closed.is_none(),
            "socket ended early: {:?}",
            self.notices
        );
    }

    /// Reads until the socket ends; asserts a warning notice with `reason` came first.
    async fn ends_with_reason(&mut self, reason: &str) {
        self.until(|_| false).await;
        assert!(
            self.notices
                .iter()
                .any(|(level, text)| *level == NoticeLevel::Warning && text.contains(reason)),
            "expected a notice {reason:?}, got {:?}",
            self.notices
        );
    }
}

/// Opens a terminal through the server function; `Err(status, body)` if refused.
async fn open(
    s: &TestServer,
    client: &reqwest::Client,
    target: &str,
) -> Result<(String, String), (u16, String)> {
    let resp = s
        .call(
            client,
            "term_open",
            &[("target", target), ("cols", "80"), ("rows", "24")],
        )
        .await;
    if resp.status() != 200 {
        return Err((
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        ));
    }
    let t: Value = resp.json().await.expect("ticket json");
    Ok((
        t["session_id"].as_str().expect("id").to_string(),
        t["otp"].as_str().expect("otp").to_string(),
    ))
}

/// A server whose watcher polls only at start, admin `root1` and member `ann`
/// logged in, and `box` set up for `ann` (the sshd must outlive the test).
async fn ann_with_box_without_polling() -> (Sshd, TestServer, reqwest::Client, reqwest::Client) {
    let sshd = Sshd::start();
    let s = TestServer::start_with(Options {
        revocation_poll_ms: 3_600_000,
        ..Options::default()
    })
    .await;
    s.add_user("root1", Role::Admin).await;
    s.add_user("ann", Role::Member).await;
    let (admin, _) = s.login("root1").await;
    let (ann, _) = s.login("ann").await;
    setup_host(&s, &sshd, &admin, "ann").await;
    (sshd, s, admin, ann)
}

/// Namespace `prod` with host `box` (key auth, pinned) on `sshd`, and `member` granted `prod`.
async fn setup_host(s: &TestServer, sshd: &Sshd, admin: &reqwest::Client, member: &str) {
    let r = s.call(admin, "namespace_add", &[("name", "prod")]).await;
    assert_eq!(r.status(), 200, "namespace_add");
    let port = sshd.port.to_string();
    let form = [
        ("host[name]", "box".to_string()),
        ("host[namespace]", "prod".to_string()),
        ("host[address]", "127.0.0.1".to_string()),
        ("host[port]", port),
        ("host[user]", common::sshd::TEST_USER.to_string()),
        ("host[fingerprint]", sshd.host_fingerprint.clone()),
        ("host[private_key]", sshd.client_key.private.clone()),
    ];
    let r = admin
        .post(s.url("/api/host_add"))
        .form(&form)
        .send()
        .await
        .expect("host_add");
    assert_eq!(r.status(), 200, "host_add: {}", r.text().await.unwrap());
    let r = s
        .call(
            admin,
            "namespace_grant",
            &[("namespace", "prod"), ("user", member)],
        )
        .await;
    assert_eq!(r.status(), 200, "grant");
}

/// Waits until the server has forgotten session `id` (it ended and was unregistered).
async fn wait_gone(s: &TestServer, id: &str) {
    let deadline = Instant::now() + DEADLINE;
    while s.core().terms.session(id).is_some() {
        assert!(Instant::now() < deadline, "session {id} still registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status recorded for session `id`.
async fn status(s: &TestServer, id: &str) -> String {
    server::db::terminal_sessions::by_id(&s.core().db, id)
        .await
        .expect("row")
        .expect("session row")
        .status
}

/// Executes one SQL statement on the server's database, as the command line would.
async fn sql(s: &TestServer, statement: &'static str) -> u64 {
    server::on_db!(&s.core().db, p => sqlx::query(statement)
        .execute(p)
        .await.map(|r| r.rows_affected()))
    .expect(statement)
}

/// The single number `query` answers.
async fn count(db: &server::db::Db, query: &'static str) -> i64 {
    server::on_db!(db, p => sqlx::query_scalar::<_, i64>(query)
        .fetch_one(p)
        .await)
    .expect(query)
}

/// Waits until a chat socket is closed.
async fn chat_closed(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("chat socket still open")
        {
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn disabling_a_user_in_the_database_closes_their_terminals_and_chat() {
    let s = server().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, chat_otp) = s.login("root1").await;
    let mut chat = s.chat(&chat_otp, true, None).await.expect("chat");
    let (id, otp) = open(&s, &admin, "local").await.expect("local");
    let mut t = Term::attach(&s, &id, &otp).await;
    t.ready().await;

    assert_eq!(
        sql(&s, "UPDATE users SET disabled = 1 WHERE name = 'root1'").await,
        1
    );
    t.ends_with_reason(ACCOUNT_DISABLED).await;
    chat_closed(&mut chat).await;
    wait_gone(&s, &id).await;
    assert_eq!(status(&s, &id).await, "closed");
}

#[tokio::test]
async fn revoking_a_grant_or_deleting_the_host_closes_exactly_the_affected_sessions() {
    let sshd = Sshd::start();
    let s = server().await;
    s.add_user("root1", Role::Admin).await;
    s.add_user("ann", Role::Member).await;
    let (admin, _) = s.login("root1").await;
    let (ann, _) = s.login("ann").await;
    setup_host(&s, &sshd, &admin, "ann").await;

    let (ann_id, otp) = open(&s, &ann, "box").await.expect("ann opens box");
    let mut ann_term = Term::attach(&s, &ann_id, &otp).await;
    ann_term.ready().await;
    let (admin_id, otp) = open(&s, &admin, "box").await.expect("admin opens box");
    let mut admin_term = Term::attach(&s, &admin_id, &otp).await;
    admin_term.ready().await;

    // `termroom namespace revoke prod ann`, as the command line does it.
    sql(
        &s,
        "DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE name = 'ann')",
    )
    .await;
    ann_term
        .ends_with_reason("your access to host box was revoked")
        .await;
    wait_gone(&s, &ann_id).await;
    assert_eq!(status(&s, &ann_id).await, "closed");
    // Reopening is refused too (the host is not visible any more).
    assert_eq!(open(&s, &ann, "box").await.err().map(|e| e.0), Some(404));

    // The admin's session on the same host is untouched.
    admin_term.type_line("echo still-$((6*7))").await;
    admin_term.until(|t| t.text.contains("still-42")).await;
    assert!(admin_term.closed.is_none());

    // `termroom host delete box`.
    assert_eq!(sql(&s, "DELETE FROM hosts WHERE name = 'box'").await, 1);
    admin_term.ends_with_reason("host box was deleted").await;
    wait_gone(&s, &admin_id).await;
    assert_eq!(status(&s, &admin_id).await, "closed");
}

#[tokio::test]
async fn term_attach_and_the_socket_upgrade_recheck_access() {
    // The watcher polls once at start and then not for an hour: what follows
    // is the re-check of `term_attach` and `/ws/term` alone.
    let (_sshd, s, _admin, ann) = ann_with_box_without_polling().await;
    // Two sessions: one to try the socket upgrade, one to try term_attach.
    let (a, otp_a) = open(&s, &ann, "box").await.expect("ann opens box");
    let (b, _) = open(&s, &ann, "box").await.expect("ann opens box again");

    sql(
        &s,
        "DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE name = 'ann')",
    )
    .await;
    // A ticket issued before the revoke no longer opens the socket.
    let refused = connect(&s.ws_url(&format!("/ws/term/{a}?otp={otp_a}")), None).await;
    assert_eq!(refused.err(), Some(403));
    // No new ticket is issued, and the answer says why.
    let r = s.call(&ann, "term_attach", &[("session_id", &b)]).await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("your access to host box was revoked"),
        "the refusal says why: {body}"
    );
    // Both checks closed their session.
    for id in [&a, &b] {
        wait_gone(&s, id).await;
        assert_eq!(status(&s, id).await, "closed");
    }
}

#[tokio::test]
async fn deleting_a_login_session_closes_its_sockets_but_keeps_the_terminal() {
    let s = server().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, chat_otp) = s.login("root1").await;
    let mut chat = s.chat(&chat_otp, true, None).await.expect("chat");
    let (id, otp) = open(&s, &admin, "local").await.expect("local");
    let mut t = Term::attach(&s, &id, &otp).await;
    t.ready().await;

    // `termroom user passwd root1` ends the user's login sessions like this.
    assert_eq!(sql(&s, "DELETE FROM login_sessions").await, 1);
    t.ends_with_reason(SIGNED_OUT).await;
    assert_eq!(
        t.closed.clone().flatten().map(|c| c.0),
        Some(server::term::socket::CLOSE_ACCESS_ENDED),
        "closed with a code that ends the tab"
    );
    chat_closed(&mut chat).await;
    // The session outlives the login: another login can reattach.
    let session = s.core().terms.session(&id).expect("session kept");
    assert_eq!(session.phase(), server::term::Phase::Running);
    assert_eq!(s.call(&admin, "term_list", &[]).await.status(), 401);
}

#[tokio::test]
async fn expired_tickets_and_login_sessions_are_purged() {
    let s = server().await;
    s.add_user("root1", Role::Admin).await;
    let (_admin, _otp) = s.login("root1").await;
    let db = &s.core().db;
    let now = chrono::Utc::now().timestamp();
    server::on_db!(db, p => sqlx::query("INSERT INTO tickets (hash, user_id, purpose, login_session, expires_at) SELECT 'expired-ticket', id, 'chat', NULL, $1 FROM users WHERE name = 'root1'")
        .bind(now - 60)
        .execute(p)
        .await.map(|r| r.rows_affected()))
        .expect("expired ticket");
    server::on_db!(db, p => sqlx::query("INSERT INTO login_sessions (token_hash, user_id, created_at, expires_at) SELECT 'expired-login', id, '2020-01-01T00:00:00Z', $1 FROM users WHERE name = 'root1'")
        .bind(now - 60)
        .execute(p)
        .await.map(|r| r.rows_affected()))
        .expect("expired login session");
    let deadline = Instant::now() + DEADLINE;
    while count(
        db,
        "SELECT COUNT(*) FROM tickets WHERE hash = 'expired-ticket'",
    )
    .await
        > 0
        || count(
            db,
            "SELECT COUNT(*) FROM login_sessions WHERE token_hash = 'expired-login'",
        )
        .await
            > 0
    {
        assert!(Instant::now() < deadline, "expired rows were not purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The live login session stays.
    let live: i64 =
        server::on_db!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM login_sessions")
        .fetch_one(p)
        .await)
        .expect("count");
    assert_eq!(live, 1);
}

#[tokio::test]
async fn revoking_or_deleting_through_the_admin_pages_closes_sessions_at_once() {
    // No polling after the start: the admin actions themselves close the sessions.
    let (_sshd, s, admin, ann) = ann_with_box_without_polling().await;
    let (ann_id, otp) = open(&s, &ann, "box").await.expect("ann opens box");
    let mut ann_term = Term::attach(&s, &ann_id, &otp).await;
    ann_term.ready().await;
    let (admin_id, otp) = open(&s, &admin, "box").await.expect("admin opens box");
    let mut admin_term = Term::attach(&s, &admin_id, &otp).await;
    admin_term.ready().await;

    let r = s
        .call(
            &admin,
            "namespace_revoke",
            &[("namespace", "prod"), ("user", "ann")],
        )
        .await;
    assert_eq!(r.status(), 200);
    ann_term
        .ends_with_reason("your access to host box was revoked")
        .await;
    wait_gone(&s, &ann_id).await;

    let r = s.call(&admin, "host_delete", &[("name", "box")]).await;
    assert_eq!(r.status(), 200);
    admin_term.ends_with_reason("host box was deleted").await;
    wait_gone(&s, &admin_id).await;
    assert_eq!(status(&s, &admin_id).await, "closed");
}

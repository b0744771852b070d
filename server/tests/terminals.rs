//! Terminals through the whole server: server functions, ticket-bound
//! `/ws/term/{id}` sockets with binary frames, a real OpenSSH sshd, the local target.
mod common;

use std::time::Duration;

use app::{model::Role, protocol::term::ClientFrame};
use common::{sshd::Sshd, term::*, *};
use futures::StreamExt;
use serde_json::Value;

#[tokio::test]
async fn ssh_terminal_runs_commands_resizes_and_keeps_secrets_server_side() {
    let sshd = Sshd::start();
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    setup_host(&s, &sshd, &admin, "box", None).await;
    s.assert_audited("namespace.add", "prod", "root1").await;
    s.assert_audited("host.add", "box", "root1").await;
    let hosts: Value = s.call(&admin, "hosts", &[]).await.json().await.unwrap();
    let listing = hosts.to_string();
    assert!(
        !listing.contains("PRIVATE KEY"),
        "secrets never leave the server: {listing}"
    );
    assert_eq!(hosts[0]["fingerprint"], sshd.host_fingerprint.as_str());
    let stored: (Vec<u8>,) =
        server::on_db!(&s.core().db, p => sqlx::query_as("SELECT secret_ciphertext FROM hosts WHERE name = 'box'")
            .fetch_one(p)
            .await)
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored.0).contains("PRIVATE KEY"),
        "secret encrypted at rest"
    );

    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo hello-$((20+22))").await;
    t.until(15, |t| t.text.contains("hello-42")).await;
    t.send(ClientFrame::Resize {
        cols: 101,
        rows: 37,
    })
    .await;
    t.type_line("stty size").await;
    t.until(10, |t| t.text.contains("37 101")).await;
    t.type_line("exit 3").await;
    t.until(10, |t| t.exit.is_some()).await;
    assert_eq!(t.exit, Some(Some(3)));
}

#[tokio::test]
async fn password_auth_works_and_a_wrong_password_gives_a_clear_notice() {
    let sshd = Sshd::start();
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    setup_host(
        &s,
        &sshd,
        &admin,
        "pw-ok",
        Some(common::sshd::TEST_PASSWORD),
    )
    .await;
    setup_host(&s, &sshd, &admin, "pw-bad", Some("not-the-password")).await;
    let (id, otp) = open(&s, &admin, "pw-ok").await.unwrap();
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("whoami").await;
    t.until(15, |t| t.text.contains(common::sshd::TEST_USER))
        .await;

    let (id, otp) = open(&s, &admin, "pw-bad").await.unwrap();
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.until(20, |t| {
        t.notices
            .iter()
            .any(|n| n.to_lowercase().contains("authentication failed"))
    })
    .await;
}

#[tokio::test]
async fn members_open_only_their_namespaces_hosts() {
    let sshd = Sshd::start();
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    s.add_user("carol", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    let (admin, _) = s.login("root1").await;
    setup_host(&s, &sshd, &admin, "box", None).await;
    assert_eq!(
        s.call(&admin, "namespace_add", &[("name", "dev")])
            .await
            .status(),
        200
    );
    grant(&s, &admin, "prod", "carol").await;
    grant(&s, &admin, "dev", "bob").await;

    let (bob, _) = s.login("bob").await;
    let targets: Value = s.call(&bob, "targets", &[]).await.json().await.unwrap();
    assert_eq!(
        targets,
        serde_json::json!([]),
        "bob sees no host and no local shell"
    );
    assert_eq!(open(&s, &bob, "box").await.err(), Some(404));
    assert_eq!(open(&s, &bob, "local").await.err(), Some(403));

    let (carol, _) = s.login("carol").await;
    let targets: Value = s.call(&carol, "targets", &[]).await.json().await.unwrap();
    assert_eq!(targets[0]["name"], "box");
    let (id, otp) = open(&s, &carol, "box").await.expect("carol may open box");
    // Bob cannot attach to carol's session, even with a ticket of his own.
    assert_eq!(
        s.call(&bob, "term_attach", &[("session_id", &id)])
            .await
            .status(),
        404
    );
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo carol-ok").await;
    t.until(15, |t| t.text.contains("carol-ok")).await;
}

#[tokio::test]
async fn terminal_tickets_are_bound_to_their_session_and_origin_is_checked() {
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let (a, otp_a) = open(&s, &admin, "local").await.unwrap();
    let (b, _otp_b) = open(&s, &admin, "local").await.unwrap();
    assert_eq!(
        connect(&s.ws_url(&format!("/ws/term/{b}?otp={otp_a}")), None)
            .await
            .err(),
        Some(401)
    );
    let t: Value = s
        .call(&admin, "term_attach", &[("session_id", &a)])
        .await
        .json()
        .await
        .unwrap();
    let otp = t["otp"].as_str().unwrap();
    assert_eq!(
        connect(
            &s.ws_url(&format!("/ws/term/{a}?otp={otp}")),
            Some("https://evil.example.net")
        )
        .await
        .err(),
        Some(403)
    );
    // A chat ticket is not a terminal ticket.
    let chat = s.chat_ticket(&admin).await;
    assert_eq!(
        connect(&s.ws_url(&format!("/ws/term/{a}?otp={chat}")), None)
            .await
            .err(),
        Some(401)
    );
}

#[tokio::test]
async fn the_local_target_works_for_admins_and_is_refused_when_disabled() {
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let (id, otp) = open(&s, &admin, "local").await.expect("local shell");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo local-$((6*7))").await;
    t.until(10, |t| t.text.contains("local-42")).await;
    // termroom's settings (TERMROOM_SECRET_KEY among them) are not inherited by the shell.
    std::env::set_var("TERMROOM_TEST_LEAK", "leaked");
    let (id, otp) = open(&s, &admin, "local").await.expect("second local shell");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo env=[${TERMROOM_TEST_LEAK:-absent}]")
        .await;
    t.until(10, |t| {
        t.text.contains("env=[absent]") || t.text.contains("env=[leaked]")
    })
    .await;
    assert!(t.text.contains("env=[absent]"), "{}", t.text);

    let off = TestServer::start_with(Options {
        local_target: server::cli::LocalTarget::Off,
        ..Options::default()
    })
    .await;
    off.add_user("root1", Role::Admin).await;
    let (admin, _) = off.login("root1").await;
    assert_eq!(open(&off, &admin, "local").await.err(), Some(403));
    let targets: Value = off.call(&admin, "targets", &[]).await.json().await.unwrap();
    assert_eq!(targets, serde_json::json!([]));
}

#[tokio::test]
async fn send_to_all_reaches_three_sessions_and_each_shows_its_own_result() {
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let mut terms = vec![];
    for _ in 0..3 {
        let (id, otp) = open(&s, &admin, "local").await.unwrap();
        terms.push(Term::attach(&s, &id, &otp, 0).await);
    }
    for t in terms.iter_mut() {
        t.type_line("echo all-$((40+2))-pid$$").await;
    }
    let mut pids = std::collections::BTreeSet::new();
    for t in terms.iter_mut() {
        // The typed line echoes as `all-$((40+2))-pid$$`; only the shell's answer reads `all-42-pid<digits>`.
        t.until(10, |t| {
            t.text.split("all-42-pid").nth(1).is_some_and(|rest| {
                rest.starts_with(|c: char| c.is_ascii_digit()) && rest.contains('\r')
            })
        })
        .await;
        let at = t.text.rfind("all-42-pid").unwrap() + "all-42-pid".len();
        let pid: String = t.text[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        assert!(!pid.is_empty(), "{}", t.text);
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 3, "three distinct shells answered");
}

#[tokio::test]
async fn reattach_after_a_dropped_socket_gets_the_missed_output_exactly() {
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let (id, otp) = open(&s, &admin, "local").await.unwrap();
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    // `ready-2` appears only in the output, never in the echoed command line.
    t.type_line("export TR_MARK=kept; echo ready-$((1+1))")
        .await;
    t.until(10, |t| t.text.contains("ready-2\r\n")).await;
    t.type_line("sleep 1; for i in 1 2 3; do echo missed-$i; done")
        .await;
    let resume_at = t.next_seq;
    let seen_before = t.text.clone();
    drop(t);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ticket: Value = s
        .call(&admin, "term_attach", &[("session_id", &id)])
        .await
        .json()
        .await
        .unwrap();
    let mut t2 = Term::attach(&s, &id, ticket["otp"].as_str().unwrap(), resume_at).await;
    t2.until(10, |t| t.text.contains("missed-3")).await;
    assert!(
        t2.text.contains("missed-1\r\nmissed-2\r\nmissed-3"),
        "{:?}",
        t2.text
    );
    assert_eq!(
        t2.snapshots, 0,
        "the missed output was still buffered: no snapshot"
    );
    assert!(
        !t2.text.contains("ready-2"),
        "nothing before the resume point is sent again: {:?}",
        t2.text
    );
    assert!(!seen_before.contains("missed-1\r\n"));
    t2.type_line("echo mark=$TR_MARK").await;
    t2.until(10, |t| t.text.contains("mark=kept")).await;
    let listed: Value = s.call(&admin, "term_list", &[]).await.json().await.unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["session_id"] == id.as_str()));
}

#[tokio::test]
async fn a_terminal_socket_that_stops_answering_is_detached_and_the_grace_period_runs() {
    let s = TestServer::start_with(Options {
        term_ping_secs: 1,
        term_idle_secs: 2,
        term_grace_secs: 3,
        ..Options::default()
    })
    .await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;

    // A client that keeps reading answers the pings and stays attached past the idle time.
    let (live_id, otp) = open(&s, &admin, "local").await.expect("local");
    let mut live = Term::attach(&s, &live_id, &otp, 0).await;
    live.type_line("echo live-$((1+1))").await;
    live.until(10, |t| t.text.contains("live-2")).await;
    let live_session = s.core().terms.session(&live_id).expect("session");
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout_at(until, live.ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("live socket ended: {other:?}"),
        }
    }
    assert!(live_session.attached(), "a client that answers pings stays");

    // A client that vanishes: the TCP connection stays open but nothing is
    // read any more, so no pong ever comes back.
    let (id, otp) = open(&s, &admin, "local").await.expect("local");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo gone-$((1+1))").await;
    t.until(10, |t| t.text.contains("gone-2")).await;
    let session = s.core().terms.session(&id).expect("session");
    assert!(session.attached());
    let silent = t;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while session.attached() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a silent socket must be detached"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Detached means the grace period runs: the session ends after it.
    while s.core().terms.session(&id).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grace period must end the session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed: Value = s.call(&admin, "term_list", &[]).await.json().await.unwrap();
    assert!(
        !listed.to_string().contains(&id),
        "ended session not listed: {listed}"
    );
    drop(silent);
}

#[tokio::test]
async fn sessions_per_user_and_terminal_sizes_are_capped() {
    let s = TestServer::start_with(Options {
        max_sessions_per_user: 2,
        ..Options::default()
    })
    .await;
    s.add_user("root1", Role::Admin).await;
    s.add_user("root2", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let (other, _) = s.login("root2").await;
    let (first, _) = open(&s, &admin, "local").await.expect("first");
    open(&s, &admin, "local").await.expect("second");
    let r = s
        .call(
            &admin,
            "term_open",
            &[("target", "local"), ("cols", "80"), ("rows", "24")],
        )
        .await;
    assert_eq!(r.status(), 400, "a third session is refused");
    let body = r.text().await.unwrap();
    assert!(body.contains("too many terminal sessions"), "{body}");
    // The limit is per user.
    open(&s, &other, "local")
        .await
        .expect("another user's session");
    // Closing one makes room again.
    let r = s
        .call(&admin, "term_close", &[("session_id", &first)])
        .await;
    assert_eq!(r.status(), 200);
    open(&s, &admin, "local").await.expect("room again");

    for (cols, rows) in [("501", "24"), ("80", "201"), ("0", "24")] {
        let r = s
            .call(
                &other,
                "term_open",
                &[("target", "local"), ("cols", cols), ("rows", rows)],
            )
            .await;
        assert_eq!(r.status(), 400, "{cols}x{rows} refused");
    }
    let r = s
        .call(
            &other,
            "term_open",
            &[("target", "local"), ("cols", "500"), ("rows", "200")],
        )
        .await;
    assert_eq!(r.status(), 200, "the largest size is accepted");
}

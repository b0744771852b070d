//! Stopping `termroom serve` with live terminals: the first SIGTERM drains
//! (live sessions go on, new ones are refused, `/healthz` answers 503), the
//! sessions ending, `--drain-secs` passing or a second signal stops it.
mod common;

use std::time::{Duration, Instant};

use common::{served::Served, term::Term};
use serde_json::Value;
use server::term::{DRAIN_NOTICE_START, STOPPED_NOTICE};

/// Sends SIGTERM to the server.
fn sigterm(served: &Served) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM");
}

/// Waits (panics after `limit`) for the server to exit, and checks it exited cleanly.
fn exits_cleanly_within(served: &mut Served, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = served.child.try_wait().expect("wait for termroom") {
            assert!(status.success(), "clean exit: {status}");
            return;
        }
        assert!(
            start.elapsed() < limit,
            "termroom serve still running {limit:?} after the signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server with `--drain-secs drain` whose admin (local shells allowed) is logged in.
async fn server(data: &std::path::Path, drain: &str) -> (Served, reqwest::Client) {
    let served = Served::start(data, &["--local-target", "admins", "--drain-secs", drain]);
    let password = served
        .admin_password
        .clone()
        .expect("first admin's password");
    let client = served.login("admin", &password).await;
    (served, client)
}

/// `POST /api/term_open` for a local shell: the status and the JSON or text answer.
async fn open(served: &Served, client: &reqwest::Client) -> (u16, String) {
    let resp = client
        .post(served.url("/api/term_open"))
        .form(&[("target", "local"), ("cols", "80"), ("rows", "24")])
        .send()
        .await
        .expect("term_open request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("term_open body"))
}

/// Opens a local shell and attaches to it, with a recognisable prompt.
async fn live_terminal(served: &Served, client: &reqwest::Client) -> Term {
    let (status, body) = open(served, client).await;
    assert_eq!(status, 200, "term_open: {body}");
    let ticket: Value = serde_json::from_str(&body).expect("ticket json");
    let (id, otp) = (
        ticket["session_id"].as_str().expect("session id"),
        ticket["otp"].as_str().expect("otp"),
    );
    let mut t = Term::attach_at(&format!("ws://{}/ws/term/{id}?otp={otp}", served.addr), 0).await;
    t.type_line("PS1='@@rea''dy@@ '").await;
    t.until(20, |t| t.text.contains("@@ready@@")).await;
    t
}

/// `GET /healthz`: status and body.
async fn health(served: &Served) -> (u16, String) {
    let resp = reqwest::get(served.url("/healthz")).await.expect("healthz");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("healthz body"))
}

fn has_notice(t: &Term, start: &str) -> bool {
    t.notices.iter().any(|n| n.starts_with(start))
}

/// SIGTERM, and the owner of `t` is told the server drains.
async fn drain(served: &Served, t: &mut Term) {
    sigterm(served);
    t.until(10, |t| has_notice(t, DRAIN_NOTICE_START)).await;
}

/// The owner of `t` is told the stop closed the session, and the server exits cleanly.
async fn closed_by_the_stop(served: &mut Served, t: &mut Term) {
    t.until(20, |t| has_notice(t, STOPPED_NOTICE)).await;
    exits_cleanly_within(served, Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_keeps_live_terminals_refuses_new_ones_and_stops_when_they_end() {
    let data = tempfile::tempdir().expect("temp dir");
    let (mut served, client) = server(data.path(), "120").await;
    let mut t = live_terminal(&served, &client).await;
    assert_eq!(health(&served).await.0, 200);

    // The owner is told how long the session has left.
    drain(&served, &mut t).await;
    let notice = t.notices.iter().find(|n| n.starts_with(DRAIN_NOTICE_START));
    assert!(
        notice.is_some_and(|n| n.contains("closed in 120 s") || n.contains("closed in 119 s")),
        "{notice:?}"
    );
    // Load balancers are told to send new users elsewhere.
    let (status, body) = health(&served).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("draining single: terminal sessions left: 1"),
        "{body}"
    );
    // No new terminal here; the refusal says why.
    let (status, body) = open(&served, &client).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    // The live session goes on.
    t.type_line("echo st''ill-here").await;
    t.until(10, |t| t.text.contains("still-here")).await;
    assert!(
        served.child.try_wait().expect("wait").is_none(),
        "still serving"
    );

    // Its end stops the server, long before the drain time is up.
    t.type_line("exit").await;
    exits_cleanly_within(&mut served, Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_drain_time_is_up_the_sessions_left_are_closed_with_a_reason() {
    let data = tempfile::tempdir().expect("temp dir");
    let (mut served, client) = server(data.path(), "2").await;
    let mut t = live_terminal(&served, &client).await;
    let signalled = Instant::now();
    drain(&served, &mut t).await;
    // At the deadline the owner learns why the session ended.
    closed_by_the_stop(&mut served, &mut t).await;
    assert!(
        signalled.elapsed() >= Duration::from_millis(1900),
        "the session had its drain time: {:?}",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_a_draining_server_at_once() {
    let data = tempfile::tempdir().expect("temp dir");
    let (mut served, client) = server(data.path(), "600").await;
    let mut t = live_terminal(&served, &client).await;
    drain(&served, &mut t).await;
    assert_eq!(health(&served).await.0, 503, "draining");
    sigterm(&served);
    closed_by_the_stop(&mut served, &mut t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_live_terminal_a_signal_stops_at_once() {
    let data = tempfile::tempdir().expect("temp dir");
    let (mut served, client) = server(data.path(), "600").await;
    // A session that ended does not hold the server up.
    let mut t = live_terminal(&served, &client).await;
    t.type_line("exit").await;
    t.until(10, |t| t.exit.is_some()).await;
    sigterm(&served);
    exits_cleanly_within(&mut served, Duration::from_secs(20));
}

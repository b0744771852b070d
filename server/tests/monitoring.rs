//! Live monitoring through the whole server: the admins' list of live
//! sessions, read-only watchers on `/ws/watch/{id}` (snapshot, then live
//! output; their input dropped; a stalled one dropped without slowing the
//! owner), terminate and freeze, the owner's watch links, and who may do what.
mod common;

use std::time::{Duration, Instant};

use app::{model::Role, protocol::term::ClientFrame};
use common::{sshd::Sshd, term::*, *};
use futures::SinkExt;
use serde_json::Value;
use server::db;
use tokio_tungstenite::tungstenite::Message;

/// A watch ticket for `session` as `client`: `Ok(otp)` or the HTTP status.
async fn watch_ticket(
    s: &TestServer,
    client: &reqwest::Client,
    session: &str,
) -> Result<String, u16> {
    let r = s.call(client, "watch", &[("session_id", session)]).await;
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    let v: Value = r.json().await.expect("ticket json");
    Ok(v["otp"].as_str().expect("otp").to_string())
}

/// The Live page's rows as `client` gets them: `Ok(rows)` or the HTTP status.
async fn live(s: &TestServer, client: &reqwest::Client) -> Result<Vec<Value>, u16> {
    let r = s.call(client, "live", &[]).await;
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    Ok(r.json().await.expect("live json"))
}

/// The recording of session `id` as text, once its row says it is finished.
async fn finished_recording(s: &TestServer, admin: &reqwest::Client, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = db::terminal_sessions::by_id(&s.core().db, id)
            .await
            .expect("row query")
            .expect("row");
        if matches!(
            row.recording_state.as_deref(),
            Some("complete" | "incomplete")
        ) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recording never finished: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin
        .get(s.url(&format!("/recordings/{id}.cast")))
        .send()
        .await
        .expect("cast")
        .text()
        .await
        .expect("cast text")
}

/// The owner and the admin of a test, and what they share.
struct Setup {
    s: TestServer,
    owner: reqwest::Client,
    admin: reqwest::Client,
    /// The owner's local session.
    id: String,
    /// The owner's socket on it, after `echo ready` ran.
    t: Term,
}

/// A server (`opts`) with the admins `root1` (the owner of a live local
/// session, attached) and `root2` (who watches and acts), both logged in.
async fn owner_and_admin(opts: Options) -> Setup {
    let s = TestServer::start_with(opts).await;
    s.add_user("root1", Role::Admin).await;
    s.add_user("root2", Role::Admin).await;
    let (owner, _) = s.login("root1").await;
    let (admin, _) = s.login("root2").await;
    let (id, otp) = open(&s, &owner, "local").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo ready-$((20+1))").await;
    t.until(10, |t| t.text.contains("ready-21")).await;
    Setup {
        s,
        owner,
        admin,
        id,
        t,
    }
}

#[tokio::test]
async fn a_watcher_sees_the_screen_then_live_output_and_cannot_type() {
    let Setup {
        s,
        owner,
        admin,
        id,
        mut t,
    } = owner_and_admin(Options::default()).await;
    t.type_line("echo before-$((40+2))").await;
    t.until(10, |t| t.text.contains("before-42")).await;

    let rows = live(&s, &admin).await.expect("admins list live sessions");
    let row = rows
        .iter()
        .find(|r| r["session_id"] == id.as_str())
        .expect("the session is listed");
    assert_eq!(row["user"], "root1");
    assert_eq!(row["target"], "local");
    assert!(
        row["bytes"].as_u64().unwrap_or(0) > 0,
        "output counted: {row}"
    );

    let wotp = watch_ticket(&s, &admin, &id)
        .await
        .expect("admin may watch");
    let mut w = Term::watch(&s, &id, &wotp).await;
    // First the size and a snapshot of the screen as it is.
    w.until(10, |w| w.snapshots == 1 && w.text.contains("before-42"))
        .await;
    assert_eq!(
        w.size,
        Some((80, 24)),
        "the watcher gets the session's size"
    );
    // The owner is told, and the Live page lists the watcher.
    t.until(10, |t| t.watchers == ["root2"]).await;
    let rows = live(&s, &admin).await.expect("live");
    let row = rows
        .iter()
        .find(|r| r["session_id"] == id.as_str())
        .unwrap();
    assert_eq!(row["watchers"], serde_json::json!(["root2"]));

    // Live output reaches the watcher.
    t.type_line("echo live-$((50+5))").await;
    w.until(10, |w| w.text.contains("live-55")).await;
    // Whatever a watcher sends is dropped.
    w.send(ClientFrame::Input(b"echo intruder-$((60+6))\r".to_vec()))
        .await;
    w.ws.send(Message::Binary(b"garbage".to_vec().into()))
        .await
        .expect("send");
    t.type_line("echo after-$((70+7))").await;
    t.until(10, |t| t.text.contains("after-77")).await;
    w.until(10, |w| w.text.contains("after-77")).await;
    assert!(
        !t.text.contains("intruder-66") && !w.text.contains("intruder-66"),
        "a watcher's input never reaches the shell: {:?}",
        t.text
    );

    // Leaving is noticed by the owner.
    drop(w);
    t.until(10, |t| t.watchers.is_empty()).await;
    t.type_line("exit").await;
    t.until(10, |t| t.exit.is_some()).await;
    let cast = finished_recording(&s, &owner, &id).await;
    assert!(cast.contains("watch: root2 joined"), "join marker: {cast}");
    assert!(cast.contains("watch: root2 left"), "leave marker: {cast}");
    s.assert_audited("session.watch", &id, "root2").await;
}

#[tokio::test]
async fn terminate_ends_the_session_at_once_and_the_owner_sees_why() {
    let Setup {
        s,
        owner,
        admin,
        id,
        mut t,
    } = owner_and_admin(Options::default()).await;

    let r = s
        .call(
            &admin,
            "terminate",
            &[("session_id", &id), ("reason", "  ")],
        )
        .await;
    assert_eq!(r.status(), 400, "a reason is required");

    let started = Instant::now();
    let r = s
        .call(
            &admin,
            "terminate",
            &[("session_id", &id), ("reason", "incident 42: stop now")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "terminate took {took:?}");
    t.until(5, |t| {
        t.notices
            .iter()
            .any(|n| n.contains("terminated by root2") && n.contains("incident 42: stop now"))
    })
    .await;
    let row = db::terminal_sessions::by_id(&s.core().db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "terminated");
    let cast = finished_recording(&s, &owner, &id).await;
    assert!(
        cast.contains("terminated by root2: incident 42: stop now"),
        "marker: {cast}"
    );
    let last = cast.lines().last().unwrap_or_default();
    assert!(
        last.contains("\"x\""),
        "the recording ends with an exit event: {last}"
    );
    s.assert_audited("session.terminate", &id, "root2").await;
    // Ended sessions cannot be terminated again.
    let r = s
        .call(
            &admin,
            "terminate",
            &[("session_id", &id), ("reason", "again")],
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn freeze_holds_the_owners_input_until_unfrozen() {
    let Setup {
        s,
        admin,
        id,
        mut t,
        ..
    } = owner_and_admin(Options::default()).await;

    let r = s
        .call(&admin, "freeze", &[("session_id", &id), ("frozen", "true")])
        .await;
    assert_eq!(r.status(), 200);
    t.until(5, |t| t.notices.iter().any(|n| n.contains("input frozen")))
        .await;
    let rows = live(&s, &admin).await.expect("live");
    let row = rows
        .iter()
        .find(|r| r["session_id"] == id.as_str())
        .unwrap();
    assert_eq!(row["frozen"], true);
    t.type_line("echo held-$((3+3))").await;
    // Give the shell time it would need to answer; nothing may arrive.
    tokio::time::sleep(Duration::from_millis(700)).await;
    t.type_line("").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = tokio::time::timeout(Duration::from_millis(300), async {
        t.until(1, |t| t.text.contains("held-6")).await
    })
    .await;
    assert!(got.is_err(), "frozen input reached the shell: {:?}", t.text);

    let r = s
        .call(
            &admin,
            "freeze",
            &[("session_id", &id), ("frozen", "false")],
        )
        .await;
    assert_eq!(r.status(), 200);
    t.until(10, |t| t.text.contains("held-6")).await;
    s.assert_audited("session.freeze", &id, "root2").await;
    s.assert_audited("session.unfreeze", &id, "root2").await;
}

#[tokio::test]
async fn a_stalled_watcher_is_dropped_and_the_owner_gets_everything() {
    let Setup {
        s,
        admin,
        id,
        mut t,
        ..
    } = owner_and_admin(Options::default()).await;
    let wotp = watch_ticket(&s, &admin, &id).await.expect("ticket");
    // A watcher that never reads: its socket buffers fill and stay full.
    let _stalled = Term::watch(&s, &id, &wotp).await;
    t.until(10, |t| t.watchers == ["root2"]).await;

    // 40 MB of output: far more than the socket buffers hold.
    let started = Instant::now();
    t.type_line("head -c 40000000 /dev/zero | tr '\\0' 'y'; echo; echo flood-$((8*8))")
        .await;
    // Only the tail is searched: 40 MB scanned per frame would be the bottleneck.
    let tail_has = |t: &Term, what: &str| {
        let from = t.raw.len().saturating_sub(400);
        String::from_utf8_lossy(&t.raw[from..]).contains(what)
    };
    t.until(60, |t| t.raw.len() > 40_000_000 && tail_has(t, "flood-64"))
        .await;
    let flood = started.elapsed();
    // The watcher is dropped (a write stalled, or it fell out of the ring).
    t.until(20, |t| t.watchers.is_empty()).await;
    // The owner still gets an echo promptly.
    let echo_started = Instant::now();
    t.type_line("echo quick-$((9*9))").await;
    t.until(5, |t| tail_has(t, "quick-81")).await;
    let echo = echo_started.elapsed();
    println!("flood of 40 MB with a stalled watcher: {flood:?}; echo after: {echo:?}");
    assert!(echo < Duration::from_secs(1), "echo took {echo:?}");
}

#[tokio::test]
async fn members_cannot_see_watch_or_stop_sessions_unless_shared() {
    let sshd = Sshd::start();
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    s.add_user("alice", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    s.add_user("eve", Role::Member).await;
    let (admin, _) = s.login("root1").await;
    setup_host(&s, &sshd, &admin, "box", None).await;
    grant(&s, &admin, "prod", "alice").await;
    grant(&s, &admin, "prod", "bob").await;
    let (alice, _) = s.login("alice").await;
    let (bob, _) = s.login("bob").await;
    let (eve, _) = s.login("eve").await;
    let (id, otp) = open(&s, &alice, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo shared-$((4+4))").await;
    t.until(15, |t| t.text.contains("shared-8")).await;

    for member in [&alice, &bob, &eve] {
        assert_eq!(
            live(&s, member).await.err(),
            Some(403),
            "members cannot list"
        );
        let r = s
            .call(member, "terminate", &[("session_id", &id), ("reason", "x")])
            .await;
        assert_eq!(r.status(), 403, "members cannot terminate");
        let r = s
            .call(member, "freeze", &[("session_id", &id), ("frozen", "true")])
            .await;
        assert_eq!(r.status(), 403, "members cannot freeze");
    }
    // Not shared yet: even a member of the namespace cannot watch.
    assert_eq!(watch_ticket(&s, &bob, &id).await.err(), Some(404));
    // Only the owner shares.
    let chat_otp = s.chat_ticket(&alice).await;
    let mut chat = s.chat(&chat_otp, false, None).await.expect("chat");
    let r = s
        .call(
            &bob,
            "watch_share",
            &[("session_id", &id), ("room", "general")],
        )
        .await;
    assert_eq!(r.status(), 404, "only the owner shares a session");
    let r = s
        .call(
            &alice,
            "watch_share",
            &[("session_id", &id), ("room", "general")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let posted = next_of_type(&mut chat, "new_message").await;
    assert_eq!(posted["payload"]["from"], "alice");
    let text = posted["payload"]["message"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("/live/{id}")),
        "the link is posted: {posted}"
    );

    // Shared: a member of the namespace watches; someone outside it does not.
    let botp = watch_ticket(&s, &bob, &id)
        .await
        .expect("bob may watch now");
    assert_eq!(watch_ticket(&s, &eve, &id).await.err(), Some(404));
    let mut w = Term::watch(&s, &id, &botp).await;
    w.until(10, |w| w.text.contains("shared-8")).await;
    t.until(10, |t| t.watchers == ["bob"]).await;
    // A ticket is bound to its session and used once.
    let reused = common::connect(&s.ws_url(&format!("/ws/watch/{id}?otp={botp}")), None).await;
    assert_eq!(reused.err(), Some(401));
    let aotp = watch_ticket(&s, &admin, &id)
        .await
        .expect("admins always may");
    let other = common::connect(&s.ws_url(&format!("/ws/term/{id}?otp={aotp}")), None).await;
    assert_eq!(
        other.err(),
        Some(401),
        "a watch ticket does not open the owner's socket"
    );
}

#[tokio::test]
async fn owners_are_not_told_about_watchers_when_the_server_says_so() {
    let Setup {
        s,
        admin,
        id,
        mut t,
        ..
    } = owner_and_admin(Options {
        announce_watchers: false,
        ..Options::default()
    })
    .await;
    let wotp = watch_ticket(&s, &admin, &id).await.expect("ticket");
    let mut w = Term::watch(&s, &id, &wotp).await;
    w.until(10, |w| w.snapshots == 1).await;
    t.type_line("echo quiet-$((3*3))").await;
    t.until(10, |t| t.text.contains("quiet-9")).await;
    w.until(10, |w| w.text.contains("quiet-9")).await;
    assert!(t.watchers.is_empty(), "no watcher list for the owner");
    let rows = live(&s, &admin).await.expect("live");
    let row = rows
        .iter()
        .find(|r| r["session_id"] == id.as_str())
        .unwrap();
    assert_eq!(
        row["watchers"],
        serde_json::json!(["root2"]),
        "admins still see it"
    );
}

//! Chat over real WebSockets: rooms, old clients, bad input, limits, history,
//! backfill and slow clients.
mod common;

use std::time::Duration;

use app::model::Role;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn rich_client(s: &TestServer, name: &str) -> Ws {
    let (_c, otp) = s.login(name).await;
    let mut ws = s.chat(&otp, true, None).await.expect("connect");
    let welcome = next_of_type(&mut ws, "welcome").await;
    assert_eq!(welcome["payload"]["user"], name);
    next_of_type(&mut ws, "joined").await;
    ws
}

async fn next_message(ws: &mut Ws) -> Value {
    next_of_type(ws, "new_message").await["payload"].clone()
}

#[tokio::test]
async fn two_clients_in_a_room_exchange_messages_and_other_rooms_get_nothing() {
    let s = TestServer::start().await;
    for u in ["alice", "bob", "carol"] {
        s.add_user(u, Role::Member).await;
    }
    let mut a = rich_client(&s, "alice").await;
    let mut b = rich_client(&s, "bob").await;
    let mut c = rich_client(&s, "carol").await;
    change_room(&mut c, "ops", None).await;
    let joined = next_of_type(&mut c, "joined").await;
    assert_eq!(joined["payload"]["room"], "ops");

    say(&mut a, "hello bob").await;
    for ws in [&mut a, &mut b] {
        let m = next_message(ws).await;
        assert_eq!(m["message"], "hello bob");
        assert_eq!(
            m["from"], "alice",
            "the server names the sender, not the client"
        );
        assert_eq!(m["room"], "general");
        assert!(chrono::DateTime::parse_from_rfc3339(m["sent"].as_str().unwrap()).is_ok());
    }
    say(&mut b, "hi alice").await;
    assert_eq!(next_message(&mut a).await["message"], "hi alice");
    assert_eq!(
        next_message(&mut b).await["message"],
        "hi alice",
        "the sender gets its own message"
    );
    assert_no_message(&mut c, 300).await;

    say(&mut c, "ops only").await;
    assert_eq!(next_message(&mut c).await["message"], "ops only");
    assert_no_message(&mut a, 300).await;
    assert_no_message(&mut b, 100).await;
}

#[tokio::test]
async fn rich_clients_get_rooms_and_presence() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    let _b = rich_client(&s, "bob").await;
    let presence = loop {
        let p = next_of_type(&mut a, "presence").await;
        if p["payload"]["users"].as_array().unwrap().len() == 2 {
            break p;
        }
    };
    assert_eq!(
        presence["payload"],
        json!({"room": "general", "users": ["alice", "bob"]})
    );
    change_room(&mut a, "ops", None).await;
    let added = next_of_type(&mut a, "room_added").await;
    assert_eq!(added["payload"]["room"], "ops");
}

#[tokio::test]
async fn old_clients_receive_only_new_message_with_the_classic_fields() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    let (_c, otp) = s.login("alice").await;
    let mut old = s.chat(&otp, false, None).await.unwrap();
    let mut rich = rich_client(&s, "bob").await;
    say(&mut rich, "to everyone").await;
    // Malformed input from an old client is dropped (logged), never answered.
    old.send(Message::Text("{not json".into())).await.unwrap();
    say(&mut old, "from old").await;
    let first = next_json(&mut old).await;
    assert_eq!(first["type"], "new_message");
    let keys: Vec<_> = first["payload"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 3, "{first}");
    assert_eq!(first["payload"]["message"], "to everyone");
    let second = next_json(&mut old).await;
    assert_eq!(second["type"], "new_message");
    assert_eq!(second["payload"]["from"], "alice");
    assert_no_message(&mut old, 200).await;
}

#[tokio::test]
async fn malformed_json_and_unknown_types_get_typed_errors_and_the_socket_stays_open() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    a.send(Message::Text("{oops".into())).await.unwrap();
    let e = next_of_type(&mut a, "error").await;
    assert_eq!(e["payload"]["code"], "bad_json");
    send_json(&mut a, json!({"type": "dance", "payload": {}})).await;
    assert_eq!(
        next_of_type(&mut a, "error").await["payload"]["code"],
        "unknown_type"
    );
    say(&mut a, &"x".repeat(4001)).await;
    assert_eq!(
        next_of_type(&mut a, "error").await["payload"]["code"],
        "bad_message"
    );
    change_room(&mut a, "no spaces allowed", None).await;
    assert_eq!(
        next_of_type(&mut a, "error").await["payload"]["code"],
        "bad_room"
    );
    a.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(
        next_of_type(&mut a, "error").await["payload"]["code"],
        "unsupported"
    );
    say(&mut a, &"y".repeat(4000)).await;
    assert_eq!(
        next_message(&mut a).await["message"]
            .as_str()
            .unwrap()
            .len(),
        4000
    );
}

#[tokio::test]
async fn frames_over_16_kib_close_with_1009() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    let big =
        json!({"type": "send_message", "payload": {"message": "z".repeat(17 * 1024)}}).to_string();
    a.send(Message::Text(big.into())).await.unwrap();
    loop {
        match next_event(&mut a, 5).await {
            Got::Closed(Some((code, _))) => {
                assert_eq!(code, 1009);
                break;
            }
            Got::Closed(None) => panic!("closed without a close frame"),
            Got::Json(_) => {}
        }
    }
}

#[tokio::test]
async fn sending_too_fast_gets_a_rate_limit_error() {
    let s = TestServer::start_with(Options {
        chat_rate: 2,
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    for i in 0..10 {
        say(&mut a, &format!("m{i}")).await;
    }
    let mut delivered = 0;
    let mut limited = 0;
    for _ in 0..10 {
        let v = loop {
            let v = next_json(&mut a).await;
            if v["type"] == "new_message" || v["type"] == "error" {
                break v;
            }
        };
        if v["type"] == "new_message" {
            delivered += 1;
        } else {
            assert_eq!(v["payload"]["code"], "rate_limited");
            limited += 1;
        }
    }
    assert_eq!(delivered, 6, "burst of 3x the rate");
    assert_eq!(limited, 4);
}

#[tokio::test]
async fn history_survives_a_server_restart() {
    let mut s = TestServer::start().await;
    let keep = s.keep_data();
    s.add_user("alice", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    for i in 0..3 {
        say(&mut a, &format!("before restart {i}")).await;
        next_message(&mut a).await;
    }
    drop(a);
    s.stop().await;
    let s2 = TestServer::start_with(Options {
        data_dir: Some(s.data_dir.clone()),
        ..Options::default()
    })
    .await;
    let (_c, otp) = s2.login("alice").await;
    let mut ws = s2.chat(&otp, true, None).await.unwrap();
    let joined = next_of_type(&mut ws, "joined").await;
    let texts: Vec<_> = joined["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        ["before restart 0", "before restart 1", "before restart 2"]
    );
    drop(keep);
}

#[tokio::test]
async fn reconnect_backfill_has_no_gaps_and_no_duplicates() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    let mut b = rich_client(&s, "bob").await;
    say(&mut b, "seen").await;
    let last_seen = next_message(&mut a).await["id"].as_i64().unwrap();
    drop(a);
    for i in 0..5 {
        say(&mut b, &format!("missed {i}")).await;
    }
    // Reconnect while more messages keep coming.
    let (_c, otp) = s.login("alice").await;
    let mut a = s.chat(&otp, true, None).await.unwrap();
    change_room(&mut a, "general", Some(last_seen)).await;
    for i in 0..5 {
        say(&mut b, &format!("live {i}")).await;
    }
    let mut ids = vec![];
    let mut texts = vec![];
    // The first `joined` is the automatic join to general (last 100); the second answers `since`.
    next_of_type(&mut a, "joined").await;
    let joined = next_of_type(&mut a, "joined").await;
    for m in joined["payload"]["messages"].as_array().unwrap() {
        ids.push(m["id"].as_i64().unwrap());
        texts.push(m["message"].as_str().unwrap().to_string());
    }
    assert_eq!(joined["payload"]["complete"], true);
    while texts.len() < 10 {
        let m = next_message(&mut a).await;
        ids.push(m["id"].as_i64().unwrap());
        texts.push(m["message"].as_str().unwrap().to_string());
    }
    let expected: Vec<String> = (0..5)
        .map(|i| format!("missed {i}"))
        .chain((0..5).map(|i| format!("live {i}")))
        .collect();
    assert_eq!(texts, expected);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(ids[0] > last_seen);
    assert_no_message(&mut a, 300).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_while_others_keep_receiving() {
    let s = TestServer::start().await;
    for u in ["alice", "bob", "stalled"] {
        s.add_user(u, Role::Member).await;
    }
    // A small receive buffer makes the stalled socket back up quickly.
    let (_c, otp) = s.login("stalled").await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(s.addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(
        s.ws_url(&format!("/ws?otp={otp}&v=1")),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut a = rich_client(&s, "alice").await;
    let mut b = rich_client(&s, "bob").await;
    const N: usize = 1500;
    let body = "m".repeat(3900);
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < N {
            let v = next_json(&mut b).await;
            if v["type"] == "new_message" {
                got += 1;
            }
        }
        got
    });
    let started = std::time::Instant::now();
    for i in 0..N {
        say(&mut a, &format!("{i}{body}")).await;
        // keep alice's own socket drained so she is not the slow one
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(0), a.next()).await {}
    }
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("bob kept receiving")
        .unwrap();
    assert_eq!(got, N);
    // The stalled client now reads: it gets some messages, then is closed with a reason.
    let mut seen = 0;
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.next())
            .await
            .expect("stalled socket ends")
        {
            Some(Ok(Message::Text(_))) => seen += 1,
            Some(Ok(Message::Close(f))) => break f.map(|f| f.reason.to_string()),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(
        seen < N,
        "the stalled client cannot have received everything ({seen})"
    );
    if let Some(r) = reason {
        assert!(r.contains("too slow"), "{r}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_idle_timeout() {
    let s = TestServer::start_with(Options {
        chat_idle_secs: 2,
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    let (_c, otp) = s.login("alice").await;
    let mut ws = s.chat(&otp, false, None).await.unwrap();
    // Do not read (so no pongs are sent) for longer than the timeout.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut closed = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
        if let Ok(Message::Close(f)) = msg {
            closed = f.map(|f| f.reason.to_string());
            break;
        }
    }
    assert_eq!(closed.as_deref(), Some("idle timeout"));
}

//! Chat room limits against the real server: join rate, room cap, room
//! announcements as changes only, chat sockets per user.
mod common;

use std::time::Duration;

use app::model::Role;
use common::*;
use serde_json::{json, Value};

async fn rich_client(s: &TestServer, name: &str) -> Ws {
    let (_c, otp) = s.login(name).await;
    let mut ws = s.chat(&otp, true, None).await.expect("connect");
    next_of_type(&mut ws, "joined").await;
    ws
}

/// The next `joined` or `error` frame.
async fn next_answer(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == "joined" || v["type"] == "error" {
            return v;
        }
    }
}

#[tokio::test]
async fn joining_rooms_too_fast_gets_a_rate_limit_error() {
    let s = TestServer::start_with(Options {
        chat_rate: 2,
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    for i in 0..10 {
        change_room(&mut a, if i % 2 == 0 { "a" } else { "b" }, None).await;
    }
    let mut joined = 0;
    let mut limited = 0;
    for _ in 0..10 {
        let v = next_answer(&mut a).await;
        if v["type"] == "joined" {
            joined += 1;
        } else {
            assert_eq!(v["payload"]["code"], "rate_limited", "{v}");
            limited += 1;
        }
    }
    assert_eq!(joined, 6, "burst of 3x the rate");
    assert_eq!(limited, 4);
}

#[tokio::test]
async fn rooms_are_capped_and_only_new_rooms_are_announced() {
    let s = TestServer::start_with(Options {
        max_rooms: 3,
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    let mut a = rich_client(&s, "alice").await;
    let mut b = rich_client(&s, "bob").await;
    for room in ["r1", "r2"] {
        change_room(&mut a, room, None).await;
        let v = next_answer(&mut a).await;
        assert_eq!(v["type"], "joined", "{v}");
        // Others learn of the new room alone, never the whole list again.
        let added = loop {
            let v = next_json(&mut b).await;
            assert_ne!(
                v["type"], "rooms",
                "the full list is sent only on connect: {v}"
            );
            if v["type"] == "room_added" {
                break v;
            }
        };
        assert_eq!(added["payload"], json!({"room": room}));
    }
    // general, r1, r2: a fourth room is refused ...
    change_room(&mut a, "r3", None).await;
    let v = next_answer(&mut a).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["payload"]["code"], "too_many_rooms");
    // ... existing ones can still be joined.
    change_room(&mut a, "r1", None).await;
    let v = next_answer(&mut a).await;
    assert_eq!(v["type"], "joined");
    assert_eq!(v["payload"]["room"], "r1");
    // A new socket gets the full list once.
    let (_c, otp) = s.login("bob").await;
    let mut c = s.chat(&otp, true, None).await.unwrap();
    let rooms = next_of_type(&mut c, "rooms").await;
    assert_eq!(rooms["payload"]["rooms"], json!(["general", "r1", "r2"]));
    assert_no_room_frames(&mut b, 300).await;
}

/// Nothing about rooms arrives for `ms` milliseconds.
async fn assert_no_room_frames(ws: &mut Ws, ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout_at(deadline, futures::StreamExt::next(ws)).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert!(v["type"] != "rooms" && v["type"] != "room_added", "{v}");
        }
    }
}

#[tokio::test]
async fn chat_sockets_per_user_are_capped_with_429() {
    let s = TestServer::start_with(Options {
        max_chat_sockets_per_user: 2,
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    let (client, otp) = s.login("alice").await;
    let first = s.chat(&otp, true, None).await.expect("first socket");
    let ticket = s.chat_ticket(&client).await;
    let _second = s.chat(&ticket, false, None).await.expect("second socket");
    let ticket = s.chat_ticket(&client).await;
    assert_eq!(s.chat(&ticket, true, None).await.err(), Some(429));
    // Other users are not affected.
    let _bob = rich_client(&s, "bob").await;
    // Closing a socket frees its place.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ticket = s.chat_ticket(&client).await;
        match s.chat(&ticket, true, None).await {
            Ok(_) => break,
            Err(429) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(code) => panic!("socket place not freed: {code}"),
        }
    }
}

//! Hub tests with fake outlets and a real SQLite file: a slow store does not stall the hub, and order holds across batched stores.
use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::{model::Role, protocol::chat::ErrorCode};
use serde_json::Value;
use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection, Executor};

use super::*;

/// Records what the hub offers, one entry per `offer_all` call.
#[derive(Default)]
struct Recorder {
    offers: Mutex<Vec<Vec<Value>>>,
    /// Keep the hub busy in the first chat message's offer for this long.
    stall_first: Option<Duration>,
    /// Set when that stall begins.
    stalled: std::sync::atomic::AtomicBool,
}

impl Outlet for Recorder {
    fn offer_all(&self, outs: &[Outbound]) -> Offered {
        let message = outs.iter().any(|o| matches!(o, Outbound::Message { .. }));
        if let Some(stall) = self.stall_first.filter(|_| message) {
            use std::sync::atomic::Ordering;
            if !self.stalled.swap(true, Ordering::SeqCst) {
                // A slow fan-out (the hub's thread is busy, as writing 1000 sockets).
                std::thread::sleep(stall);
            }
        }
        let frames = outs
            .iter()
            .map(|o| {
                let f = match o {
                    Outbound::Message { frame, .. } | Outbound::Frame(frame) => frame,
                };
                serde_json::from_str(f.as_str()).unwrap_or(Value::Null)
            })
            .collect();
        lock(&self.offers).push(frames);
        Offered::Delivered
    }

    fn enter_room(&self, _room_id: i64, _upto: i64) {}
}

impl Recorder {
    /// The `new_message` frames received, as (text, id), and how many offers carried them.
    fn messages(&self) -> Vec<Vec<(String, i64)>> {
        lock(&self.offers)
            .iter()
            .map(|offer| {
                offer
                    .iter()
                    .filter(|f| f["type"] == "new_message")
                    .map(|f| {
                        (
                            f["payload"]["message"].as_str().unwrap_or("").to_string(),
                            f["payload"]["id"].as_i64().unwrap_or(-1),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|m| !m.is_empty())
            .collect()
    }

    fn presence_for(&self, room: &str) -> usize {
        lock(&self.offers)
            .iter()
            .flatten()
            .filter(|f| f["type"] == "presence" && f["payload"]["room"] == room)
            .count()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    hub: ChatHub,
    user_id: i64,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db::open(None, dir.path()).await.expect("open db");
    let user_id = db::users::create(&db, "ann", "x", Role::Member)
        .await
        .expect("user");
    let mut config = Config::for_tests(&[]);
    config.chat_rate = 1000;
    let (hub, _task) = ChatHub::spawn(db, &config, None);
    Setup {
        file: dir.path().join("termroom.db"),
        _dir: dir,
        hub,
        user_id,
    }
}

async fn client(s: &Setup, room: &str) -> (ClientId, Arc<Recorder>) {
    client_with(s, room, Recorder::default()).await
}

async fn client_with(s: &Setup, room: &str, rec: Recorder) -> (ClientId, Arc<Recorder>) {
    let rec = Arc::new(rec);
    let member = Member {
        user_id: s.user_id,
        user_name: "ann".into(),
        rich: true,
        login_session: None,
    };
    let handle = s.hub.connect(member, rec.clone()).await.expect("connect");
    s.hub
        .join(handle.id, room, false)
        .await
        .expect("hub")
        .expect("join");
    (handle.id, rec)
}

/// Another connection that holds the database's write lock until dropped
/// or rolled back: every store waits meanwhile (as behind a slow one).
async fn hold_write_lock(file: &std::path::Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite:{}", file.display());
    let mut conn = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    conn.execute("BEGIN IMMEDIATE").await.expect("begin");
    conn
}

#[tokio::test]
async fn a_slow_store_does_not_stall_the_hub_and_a_batch_keeps_its_order() {
    let s = setup().await;
    let (a, rec_a) = client(&s, "a").await;
    let (_b, rec_b) = client(&s, "b").await;
    let (c, _rec_c) = client(&s, "b").await;

    let mut lock_conn = hold_write_lock(&s.file).await;
    let first = s.hub.post(a, "1".into()).await.expect("post");

    // The store of "1" waits for the lock; the hub still serves another room.
    let presence_before = rec_b.presence_for("b");
    let joined = tokio::time::timeout(Duration::from_secs(1), s.hub.join(c, "a", false))
        .await
        .expect("the hub waited for a slow store")
        .expect("hub");
    assert!(joined.is_ok());
    assert!(
        rec_b.presence_for("b") > presence_before,
        "room b saw c leave while a's message was being stored"
    );

    // More messages (two senders) arrive while "1" is stored: one batch.
    let second = s.hub.post(a, "2".into()).await.expect("post");
    let third = s.hub.post(c, "3".into()).await.expect("post");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        rec_a.messages().is_empty(),
        "nothing is broadcast before it is stored"
    );

    lock_conn.execute("ROLLBACK").await.expect("rollback");
    for answer in [first, second, third] {
        assert_answered_ok(answer).await;
    }
    lock_conn.close().await.expect("close");

    let got = rec_a.messages();
    let texts: Vec<&str> = got.iter().flatten().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["1", "2", "3"]);
    let ids: Vec<i64> = got.iter().flatten().map(|(_, id)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "ids ascend: {ids:?}"
    );
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [1, 2],
        "the batch stored together reaches a member in one offer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_during_a_fan_out_are_stored_and_delivered_as_one_batch() {
    let s = setup().await;
    let slow = Recorder {
        stall_first: Some(Duration::from_millis(300)),
        ..Recorder::default()
    };
    let (a, rec) = client_with(&s, "a", slow).await;
    let first = s.hub.post(a, "1".into()).await.expect("post");
    while !rec.stalled.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The hub is busy broadcasting "1": these wait in its queue.
    let later: Vec<_> = [
        s.hub.post(a, "2".into()).await.expect("post"),
        s.hub.post(a, "3".into()).await.expect("post"),
        s.hub.post(a, "4".into()).await.expect("post"),
    ]
    .into_iter()
    .collect();
    for answer in std::iter::once(first).chain(later) {
        assert_answered_ok(answer).await;
    }
    let got = rec.messages();
    let texts: Vec<Vec<&str>> = got
        .iter()
        .map(|o| o.iter().map(|(t, _)| t.as_str()).collect())
        .collect();
    assert_eq!(
        texts,
        [vec!["1"], vec!["2", "3", "4"]],
        "one batch, one offer"
    );
}

#[tokio::test]
async fn refused_messages_are_answered_without_a_store() {
    let s = setup().await;
    let rec = Arc::new(Recorder::default());
    let member = Member {
        user_id: s.user_id,
        user_name: "ann".into(),
        rich: true,
        login_session: None,
    };
    let handle = s.hub.connect(member, rec).await.expect("connect");
    // Not in a room yet.
    assert_eq!(
        s.hub.send(handle.id, "hi".into()).await.expect("hub"),
        Err(ErrorCode::BadRoom)
    );
}

#[tokio::test]
async fn the_store_connection_leaves_checkpoints_to_the_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db::open(None, dir.path()).await.expect("open db");
    let db::messages::StoreConnection::Sqlite(mut conn) =
        db::messages::store_connection(&db).await.expect("conn")
    else {
        panic!("the default database is SQLite");
    };
    let db::Db::Sqlite(pool) = &db else {
        panic!("the default database is SQLite");
    };
    let (own,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
        .fetch_one(&mut conn)
        .await
        .expect("pragma");
    let (pool,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
        .fetch_one(pool)
        .await
        .expect("pragma");
    assert_eq!((own, pool), (0, 1000));
    db::messages::checkpoint(&db).await.expect("checkpoint");
}

/// Waits (at most 5 s) for a posted message's answer and checks it is `Ok`.
async fn assert_answered_ok<T: std::fmt::Debug + PartialEq, E: std::fmt::Debug>(
    answer: impl std::future::Future<Output = Result<Result<(), T>, E>>,
) {
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .expect("answered")
            .expect("hub"),
        Ok(())
    );
}

//! A healthy but briefly slow chat client: it reads steadily (faster on
//! average than messages arrive) but in small chunks with pauses, so its TCP
//! window fills now and then and the server has to queue for it. It must get
//! every message of a long burst, in order, and never be kicked.
mod common;

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use app::model::Role;
use common::*;
use futures::StreamExt;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};
use tokio_tungstenite::tungstenite::Message;

/// The slow client's average read rate while reading, bytes per second.
const READ_RATE: f64 = 1_100_000.0;
/// Most bytes it may read at once after waiting (its read budget's cap).
const READ_BURST: f64 = 16.0 * 1024.0;
/// Every [`PAUSE_EVERY`] it stops reading for [`PAUSE_FOR`]: its window fills.
const PAUSE_EVERY: Duration = Duration::from_millis(1000);
const PAUSE_FOR: Duration = Duration::from_millis(250);
/// The sender posts [`BATCH`] messages every [`BATCH_EVERY`] (700/s, ~0.8 MB/s:
/// below the reader's average of 0.75 x 1.1 MB/s, above what fits in the
/// socket buffers during a pause).
const BATCH: usize = 7;
const BATCH_EVERY: Duration = Duration::from_millis(10);
/// Batches sent in all (6 s).
const BATCHES: usize = 600;
/// Filler that makes each frame ~1.1 KB.
const FILLER: usize = 1000;

/// A TCP stream read at an average of [`READ_RATE`], with a pause every [`PAUSE_EVERY`].
struct SlowReader {
    inner: TcpStream,
    start: Instant,
    consumed: f64,
    wait: Pin<Box<Sleep>>,
}

impl AsyncRead for SlowReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let t = now - self.start;
            let phase = Duration::from_nanos((t.as_nanos() % PAUSE_EVERY.as_nanos()) as u64);
            if phase < PAUSE_FOR {
                let until = now + (PAUSE_FOR - phase);
                self.wait.as_mut().reset(until);
                continue;
            }
            let allowed = t.as_secs_f64() * READ_RATE;
            if allowed - self.consumed > READ_BURST {
                self.consumed = allowed - READ_BURST;
            }
            let budget = allowed - self.consumed;
            if budget < 1024.0 {
                let until = now + Duration::from_secs_f64((1024.0 - budget) / READ_RATE);
                self.wait.as_mut().reset(until);
                continue;
            }
            let want = buf.remaining().min(budget as usize);
            let mut limited = ReadBuf::new(&mut buf.initialize_unfilled()[..want]);
            return match Pin::new(&mut self.inner).poll_read(cx, &mut limited) {
                Poll::Ready(Ok(())) => {
                    let n = limited.filled().len();
                    buf.advance(n);
                    self.consumed += n as f64;
                    Poll::Ready(Ok(()))
                }
                other => other,
            };
        }
    }
}

impl AsyncWrite for SlowReader {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_reader_gets_every_message_in_order_and_is_never_kicked() {
    let s = TestServer::start_with(Options {
        chat_rate: 100_000,
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    s.add_user("slow", Role::Member).await;

    // A small receive buffer and segment size keep the server's send buffer
    // small too, so the window fills within a burst.
    let (_c, otp) = s.login("slow").await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    socket2::SockRef::from(&sock).set_tcp_mss(1024).unwrap();
    let stream = sock.connect(s.addr).await.unwrap();
    let slow_stream = SlowReader {
        inner: stream,
        start: Instant::now(),
        consumed: 0.0,
        wait: Box::pin(tokio::time::sleep(Duration::ZERO)),
    };
    let (mut slow, _) =
        tokio_tungstenite::client_async(s.ws_url(&format!("/ws?otp={otp}&v=1")), slow_stream)
            .await
            .unwrap();

    let (_c, otp) = s.login("alice").await;
    let mut alice = s.chat(&otp, true, None).await.unwrap();
    next_of_type(&mut alice, "joined").await;

    let total = BATCH * BATCHES;
    let reader = tokio::spawn(async move {
        let mut texts = Vec::with_capacity(total);
        let mut ids = Vec::with_capacity(total);
        let deadline = Instant::now() + Duration::from_secs(90);
        let end = loop {
            if texts.len() == total {
                break None;
            }
            match tokio::time::timeout_at(deadline, slow.next()).await {
                Err(_) => break Some("timed out".to_string()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "new_message" {
                        let p = &v["payload"];
                        ids.push(p["id"].as_i64().unwrap());
                        texts.push(p["message"].as_str().unwrap()[..5].to_string());
                    }
                }
                Ok(Some(Ok(Message::Close(f)))) => break Some(format!("closed: {f:?}")),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => break Some(format!("error: {e}")),
                Ok(None) => break Some("ended".to_string()),
            }
        };
        (texts, ids, end)
    });

    let filler = "x".repeat(FILLER);
    let mut tick = tokio::time::interval(BATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for b in 0..BATCHES {
        tick.tick().await;
        for i in 0..BATCH {
            say(&mut alice, &format!("{:05} {filler}", b * BATCH + i)).await;
        }
        // Alice reads her own copies, so she is never the slow one.
        let mut echoed = 0;
        while echoed < BATCH {
            if next_json(&mut alice).await["type"] == "new_message" {
                echoed += 1;
            }
        }
    }

    let (texts, ids, end) = reader.await.unwrap();
    assert_eq!(
        end,
        None,
        "the slow reader was cut off after {} of {total} messages",
        texts.len()
    );
    let expected: Vec<String> = (0..total).map(|i| format!("{i:05}")).collect();
    assert_eq!(texts, expected, "every message, in order");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
}

//! The write side of one chat socket, shared by the hub and the connection task.
//!
//! Fan-out without a task wake-up per delivery: when nothing is queued for the
//! socket, the hub writes the (already serialized, shared) frame straight into
//! it, which costs one `write` when the kernel takes it at once. Otherwise the
//! frame waits in a bounded queue that the connection task writes out, and
//! direct writes resume once it is empty. A full queue means the client cannot
//! keep up: the hub disconnects it instead of slowing the room.
use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::{stream::SplitSink, SinkExt};
use tokio::sync::{futures::Notified, Notify};

use crate::chat::{Offered, Outbound, Outlet};

/// Frames queued per client; a client whose queue is full is dropped.
pub const CLIENT_QUEUE: usize = 256;

/// The socket's write half.
pub type FrameSink = SplitSink<WebSocket, Message>;

/// The write side of a chat socket (see the module documentation).
pub struct SocketOutlet {
    state: Mutex<State>,
    /// Wakes the connection task when frames are queued or a direct write
    /// could not be flushed at once.
    wake: Notify,
}

struct State {
    sink: FrameSink,
    /// Room and highest message id sent there; `None` before the first join.
    position: Option<Position>,
    /// A join is in progress: live messages wait until its history is sent.
    holding: bool,
    /// A direct write left bytes the connection task must flush.
    unflushed: bool,
    /// The socket failed.
    broken: bool,
    queue: VecDeque<Outbound>,
}

#[derive(Debug, Clone, Copy)]
struct Position {
    room_id: i64,
    floor: i64,
}

impl State {
    /// Keeps only messages of the current room that were not sent yet.
    fn accept(&mut self, out: Outbound) -> Option<Utf8Bytes> {
        match out {
            Outbound::Frame(f) => Some(f),
            Outbound::Message { room_id, id, frame } => {
                let pos = self.position.as_mut()?;
                if pos.room_id != room_id || id <= pos.floor {
                    return None;
                }
                pos.floor = id;
                Some(frame)
            }
        }
    }

    fn may_write_directly(&self) -> bool {
        self.queue.is_empty() && !self.holding && !self.unflushed && !self.broken
    }
}

impl SocketOutlet {
    /// An outlet writing into `sink`.
    pub fn new(sink: FrameSink) -> Self {
        Self {
            state: Mutex::new(State {
                sink,
                position: None,
                holding: false,
                unflushed: false,
                broken: false,
                queue: VecDeque::new(),
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent: recover from a panic.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves when the connection task has queued frames to write.
    pub fn notified(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// The join's history was sent: live messages flow again.
    pub fn release(&self) {
        let mut st = self.lock();
        st.holding = false;
        if !st.queue.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Writes one frame of the connection's own (welcome, history, errors,
    /// pings, close), after whatever an earlier direct write left unflushed.
    pub async fn write(&self, msg: Message) -> Result<(), axum::Error> {
        let mut msg = Some(msg);
        poll_fn(|cx| {
            let mut st = self.lock();
            match st.sink.poll_ready_unpin(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => {
                    st.broken = true;
                    Poll::Ready(Err(e))
                }
                Poll::Ready(Ok(())) => match msg.take() {
                    Some(m) => Poll::Ready(st.sink.start_send_unpin(m)),
                    None => Poll::Ready(Ok(())),
                },
            }
        })
        .await?;
        self.flush().await
    }

    async fn flush(&self) -> Result<(), axum::Error> {
        poll_fn(|cx| {
            let mut st = self.lock();
            match st.sink.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    st.unflushed = false;
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => {
                    st.broken = true;
                    Poll::Ready(Err(e))
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Writes out everything queued (and what a direct write left unflushed);
    /// direct writes resume when this returns `Ok`.
    pub async fn drain(&self) -> Result<(), axum::Error> {
        loop {
            let next = {
                let mut st = self.lock();
                loop {
                    match st.queue.pop_front() {
                        None => break None,
                        Some(out) => {
                            if let Some(frame) = st.accept(out) {
                                break Some(frame);
                            }
                        }
                    }
                }
            };
            match next {
                Some(frame) => self.write(Message::Text(frame)).await?,
                None => return self.flush().await,
            }
        }
    }

    /// Tries to write `frame` now without waiting: `false` if it must be
    /// queued instead (the frame is then untouched).
    fn write_directly(st: &mut State, frame: &Utf8Bytes) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match st.sink.poll_ready_unpin(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Pending => return false,
            Poll::Ready(Err(_)) => {
                st.broken = true;
                return false;
            }
        }
        if st
            .sink
            .start_send_unpin(Message::Text(frame.clone()))
            .is_err()
        {
            st.broken = true;
            // The frame was consumed by a failed socket: nothing more to deliver.
            return true;
        }
        match st.sink.poll_flush_unpin(&mut cx) {
            Poll::Ready(Ok(())) => {}
            // In the socket's buffer; the connection task flushes it.
            Poll::Pending => st.unflushed = true,
            Poll::Ready(Err(_)) => st.broken = true,
        }
        true
    }
}

impl Outlet for SocketOutlet {
    fn offer(&self, out: Outbound) -> Offered {
        let mut st = self.lock();
        if st.broken {
            return Offered::Closed;
        }
        if st.may_write_directly() {
            let Some(frame) = st.accept(out) else {
                return Offered::Delivered;
            };
            if Self::write_directly(&mut st, &frame) {
                if st.unflushed || st.broken {
                    self.wake.notify_one();
                }
                return Offered::Delivered;
            }
            // Not writable now: keep it, ahead of anything later.
            st.queue.push_back(Outbound::Frame(frame));
            self.wake.notify_one();
            return Offered::Delivered;
        }
        if st.queue.len() >= CLIENT_QUEUE {
            return Offered::Full;
        }
        st.queue.push_back(out);
        self.wake.notify_one();
        Offered::Delivered
    }

    fn enter_room(&self, room_id: i64, upto: i64) {
        let mut st = self.lock();
        st.position = Some(Position {
            room_id,
            floor: upto,
        });
        st.holding = true;
    }
}

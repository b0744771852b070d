//! The write side of one chat socket, shared by the hub and the connection task.
//!
//! Fan-out without a task wake-up per delivery: when nothing is queued for the
//! socket, the hub writes the (already serialized, shared) frames of a batch
//! straight into it, which costs one `write` when the kernel takes them at
//! once. Otherwise the frames wait in a bounded queue that the connection
//! task writes out, its whole backlog in one write (the socket's write buffer
//! gathers frames until flushed), and direct writes resume once it is empty.
//! A full queue means the client cannot keep up: the hub disconnects it
//! instead of slowing the room.
//!
//! The socket keeps a single writer waker, so the hub (which polls with a
//! no-op waker) must never touch the sink while the connection task is parked
//! in a write of its own: that would replace the task's waker and leave it
//! asleep until its queue overflowed. [`State::writing`] marks those spans
//! (cleared by a guard, so a cancelled write cannot leave it set); the hub
//! queues instead, and the task drains what it finds after its write.
use crate::sync::lock;
use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::{stream::SplitSink, Sink, SinkExt};
use tokio::sync::{futures::Notified, Notify};

use crate::chat::{Offered, Outbound, Outlet};

/// Frames queued per client; a client whose queue is full is dropped.
pub const CLIENT_QUEUE: usize = 256;

/// The socket's write half.
pub type FrameSink = SplitSink<WebSocket, Message>;

/// The write side of a chat socket (see the module documentation). `S` is
/// the socket's write half; tests use a fake one.
pub struct SocketOutlet<S = FrameSink> {
    state: Mutex<State<S>>,
    /// Wakes the connection task when frames are queued or a direct write
    /// could not be flushed at once.
    wake: Notify,
}

struct State<S> {
    sink: S,
    /// Room and highest message id sent there; `None` before the first join.
    position: Option<Position>,
    /// A join is in progress: live messages wait until its history is sent.
    holding: bool,
    /// A direct write left bytes the connection task must flush.
    unflushed: bool,
    /// The socket failed.
    broken: bool,
    /// Nesting depth of the connection task's own writes (`write`, `drain`)
    /// in progress, possibly parked with the task's waker in the socket:
    /// while it is not zero the hub only queues.
    writing: u32,
    queue: VecDeque<Outbound>,
}

#[derive(Debug, Clone, Copy)]
struct Position {
    room_id: i64,
    floor: i64,
}

impl<S> State<S> {
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

    /// The next queued frame still to be sent.
    fn next_queued(&mut self) -> Option<Utf8Bytes> {
        while let Some(out) = self.queue.pop_front() {
            if let Some(frame) = self.accept(out) {
                return Some(frame);
            }
        }
        None
    }

    fn may_write_directly(&self) -> bool {
        self.queue.is_empty()
            && !self.holding
            && !self.unflushed
            && !self.broken
            && self.writing == 0
    }
}

/// Marks a write of the connection task in progress; dropping it (also when
/// the write future is cancelled) clears the mark and wakes the task if the
/// hub queued frames meanwhile (Notify keeps the permit until it looks).
struct Writing<'a, S> {
    outlet: &'a SocketOutlet<S>,
}

impl<S> SocketOutlet<S> {
    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // Every critical section leaves the state consistent: recover from a panic.
        lock(&self.state)
    }
}

impl<S> Drop for Writing<'_, S> {
    fn drop(&mut self) {
        let mut st = self.outlet.lock();
        st.writing = st.writing.saturating_sub(1);
        if st.writing == 0 && !st.queue.is_empty() {
            self.outlet.wake.notify_one();
        }
    }
}

impl<S> SocketOutlet<S>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    /// An outlet writing into `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            state: Mutex::new(State {
                sink,
                position: None,
                holding: false,
                unflushed: false,
                broken: false,
                writing: 0,
                queue: VecDeque::new(),
            }),
            wake: Notify::new(),
        }
    }

    /// Marks a write of the connection task until the guard is dropped.
    fn writing(&self) -> Writing<'_, S> {
        self.lock().writing += 1;
        Writing { outlet: self }
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
        let _writing = self.writing();
        self.write_inner(msg).await
    }

    async fn write_inner(&self, msg: Message) -> Result<(), axum::Error> {
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

    /// Writes out everything queued (and what a direct write left unflushed):
    /// all queued frames are fed into the socket's write buffer, then flushed
    /// together, so a backlog costs one write (more only when it exceeds the
    /// buffer or the kernel's). Direct writes resume when this returns `Ok`.
    pub async fn drain(&self) -> Result<(), axum::Error> {
        let _writing = self.writing();
        loop {
            poll_fn(|cx| {
                let mut st = self.lock();
                loop {
                    // Ready before a frame is taken from the queue: waiting
                    // (here, with the task's waker) never loses one.
                    match st.sink.poll_ready_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => {
                            st.broken = true;
                            return Poll::Ready(Err(e));
                        }
                        Poll::Ready(Ok(())) => {}
                    }
                    let Some(frame) = st.next_queued() else {
                        return Poll::Ready(Ok(()));
                    };
                    if let Err(e) = st.sink.start_send_unpin(Message::Text(frame)) {
                        st.broken = true;
                        return Poll::Ready(Err(e));
                    }
                }
            })
            .await?;
            self.flush().await?;
            // The hub queues while this task writes: go again for those.
            if self.lock().queue.is_empty() {
                return Ok(());
            }
        }
    }

    /// Writes what it can of `outs` now without waiting, flushing once, and
    /// returns how many it consumed (written or filtered out); the first one
    /// not consumed and the rest must be queued.
    fn write_directly(st: &mut State<S>, outs: &[Outbound]) -> usize {
        let mut cx = Context::from_waker(Waker::noop());
        let mut done = 0;
        let mut fed = false;
        for out in outs {
            match st.sink.poll_ready_unpin(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Pending => break,
                Poll::Ready(Err(_)) => {
                    st.broken = true;
                    break;
                }
            }
            done += 1;
            let Some(frame) = st.accept(out.clone()) else {
                continue;
            };
            if st.sink.start_send_unpin(Message::Text(frame)).is_err() {
                // Consumed by a failed socket: nothing more to deliver.
                st.broken = true;
                return outs.len();
            }
            fed = true;
        }
        if fed && !st.broken {
            match st.sink.poll_flush_unpin(&mut cx) {
                Poll::Ready(Ok(())) => {}
                // In the socket's buffer; the connection task flushes it.
                Poll::Pending => st.unflushed = true,
                Poll::Ready(Err(_)) => st.broken = true,
            }
        }
        done
    }
}

impl<S> Outlet for SocketOutlet<S>
where
    S: Sink<Message, Error = axum::Error> + Unpin + Send,
{
    fn offer_all(&self, outs: &[Outbound]) -> Offered {
        let mut st = self.lock();
        if st.broken {
            return Offered::Closed;
        }
        let mut rest = outs;
        if st.may_write_directly() {
            let done = Self::write_directly(&mut st, outs);
            rest = outs.get(done..).unwrap_or_default();
            if st.broken {
                // The connection task finds out and ends.
                self.wake.notify_one();
                return Offered::Delivered;
            }
            if st.unflushed {
                self.wake.notify_one();
            }
        }
        for out in rest {
            if st.queue.len() >= CLIENT_QUEUE {
                return Offered::Full;
            }
            st.queue.push_back(out.clone());
        }
        if !rest.is_empty() {
            self.wake.notify_one();
        }
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

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        pin::{pin, Pin},
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc,
        },
        task::Wake,
    };

    use super::*;

    /// A socket that takes `cap` frames until its peer reads, and keeps one
    /// writer waker (as the real one does).
    #[derive(Default)]
    struct Peer {
        cap: usize,
        buffered: Vec<String>,
        read: Vec<String>,
        waker: Option<Waker>,
    }

    struct FakeSink(Arc<Mutex<Peer>>);

    impl Sink<Message> for FakeSink {
        type Error = axum::Error;

        fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            let mut p = self.0.lock().unwrap();
            if p.buffered.len() < p.cap {
                Poll::Ready(Ok(()))
            } else {
                p.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            if let Message::Text(t) = item {
                self.0.lock().unwrap().buffered.push(t.to_string());
            }
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The peer reads everything buffered and wakes the writer, like the kernel.
    fn peer_reads(peer: &Mutex<Peer>) {
        let mut p = peer.lock().unwrap();
        let got = std::mem::take(&mut p.buffered);
        p.read.extend(got);
        if let Some(w) = p.waker.take() {
            w.wake();
        }
    }

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn msg(id: i64) -> Outbound {
        Outbound::Message {
            room_id: 1,
            id,
            frame: Utf8Bytes::from(format!("m{id}")),
        }
    }

    #[test]
    fn the_hub_queues_while_the_task_writes_and_never_takes_its_waker() {
        let peer = Arc::new(Mutex::new(Peer {
            cap: 2,
            ..Peer::default()
        }));
        let outlet = SocketOutlet::new(FakeSink(peer.clone()));
        outlet.enter_room(1, 0);
        outlet.release();
        // Two frames fit: written by the hub directly; the third is queued.
        for id in 1..=3 {
            assert_eq!(outlet.offer(msg(id)), Offered::Delivered);
        }
        assert_eq!(outlet.lock().queue.len(), 1);

        // The task drains and parks, with its waker, waiting for the socket
        // to take frame 3 (which stays queued until it does).
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut drain = pin!(outlet.drain());
        assert!(drain.as_mut().poll(&mut cx).is_pending());
        assert_eq!(outlet.lock().queue.len(), 1);
        assert_eq!(outlet.lock().writing, 1);

        // The hub offers meanwhile: it must queue, not poll the socket.
        assert_eq!(outlet.offer(msg(4)), Offered::Delivered);
        assert_eq!(outlet.lock().queue.len(), 2);

        // The peer reads: the task (not a no-op waker) is woken.
        peer_reads(&peer);
        assert!(flag.0.load(Ordering::SeqCst), "the task's waker was lost");
        let mut polls = 0;
        while drain.as_mut().poll(&mut cx).is_pending() {
            peer_reads(&peer);
            polls += 1;
            assert!(polls < 10, "drain does not finish");
        }
        peer_reads(&peer);
        assert_eq!(peer.lock().unwrap().read, ["m1", "m2", "m3", "m4"]);
        let st = outlet.lock();
        assert_eq!(st.writing, 0, "the guard cleared the mark");
        assert!(st.may_write_directly());
    }

    #[test]
    fn a_cancelled_write_clears_the_mark() {
        let peer = Arc::new(Mutex::new(Peer {
            cap: 0,
            ..Peer::default()
        }));
        let outlet = SocketOutlet::new(FakeSink(peer));
        let waker = Waker::from(Arc::new(Flag::default()));
        let mut cx = Context::from_waker(&waker);
        {
            let mut write = pin!(outlet.write(Message::Text("ping".into())));
            assert!(write.as_mut().poll(&mut cx).is_pending());
            assert_eq!(outlet.lock().writing, 1);
        }
        assert_eq!(outlet.lock().writing, 0);
    }

    /// A socket with a write buffer, like tungstenite's: frames fed with
    /// `start_send` gather until a flush writes them all as one write, which
    /// the peer takes only while `open`.
    #[derive(Default)]
    struct Wire {
        open: bool,
        staged: Vec<String>,
        writes: Vec<Vec<String>>,
        waker: Option<Waker>,
    }

    struct BufferedSink(Arc<Mutex<Wire>>);

    impl Sink<Message> for BufferedSink {
        type Error = axum::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            if let Message::Text(t) = item {
                self.0.lock().unwrap().staged.push(t.to_string());
            }
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            let mut w = self.0.lock().unwrap();
            if w.staged.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if !w.open {
                w.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let write = std::mem::take(&mut w.staged);
            w.writes.push(write);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_batch_offered_to_an_idle_socket_leaves_in_one_write() {
        let wire = Arc::new(Mutex::new(Wire {
            open: true,
            ..Wire::default()
        }));
        let outlet = SocketOutlet::new(BufferedSink(wire.clone()));
        outlet.enter_room(1, 0);
        outlet.release();
        assert_eq!(
            outlet.offer_all(&[msg(1), msg(2), msg(3)]),
            Offered::Delivered
        );
        assert_eq!(wire.lock().unwrap().writes, [vec!["m1", "m2", "m3"]]);
        assert!(outlet.lock().may_write_directly());
    }

    #[test]
    fn the_connection_task_writes_its_backlog_in_one_write() {
        let wire = Arc::new(Mutex::new(Wire::default()));
        let outlet = SocketOutlet::new(BufferedSink(wire.clone()));
        outlet.enter_room(1, 0);
        outlet.release();
        // The peer does not read: the first frame stays unflushed, the rest queue.
        for id in 1..=5 {
            assert_eq!(outlet.offer(msg(id)), Offered::Delivered);
        }
        assert_eq!(outlet.lock().queue.len(), 4);

        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut drain = pin!(outlet.drain());
        assert!(drain.as_mut().poll(&mut cx).is_pending());
        // The peer reads again: the whole backlog goes out at once.
        {
            let mut w = wire.lock().unwrap();
            w.open = true;
            if let Some(waker) = w.waker.take() {
                waker.wake();
            }
        }
        assert!(flag.0.load(Ordering::SeqCst), "the task's waker was kept");
        assert!(drain.as_mut().poll(&mut cx).is_ready());
        assert_eq!(
            wire.lock().unwrap().writes,
            [vec!["m1", "m2", "m3", "m4", "m5"]]
        );
        assert!(outlet.lock().may_write_directly());
    }
}

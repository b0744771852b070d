//! The hub's store stage: chat messages wait here until stored, a batch at a time in one transaction (group commit), beside the hub's loop.
//!
//! The hub pushes each accepted message and keeps serving (joins, presence,
//! fan-out of earlier batches) while one batch is stored in a task of its
//! own; everything that arrived meanwhile forms the next batch. Batches are
//! stored one after another and handed back in order, so a room's messages
//! are broadcast in the order of their ids, each after it was stored.
use std::{collections::VecDeque, future::pending};

use app::protocol::chat::{ChatLine, ErrorCode};
use tokio::{sync::oneshot, task::JoinHandle};

use super::hub::ClientId;
use crate::db::{self, messages::NewMessage, Db};

/// Most messages waiting to be stored; while it is reached the hub takes no
/// new commands (the senders wait on its bounded queue).
pub const MAX_PENDING: usize = 4096;
/// Most messages stored in one transaction.
pub const MAX_BATCH: usize = 512;

/// The answer to a posted message: `Ok` once it was stored and offered to
/// its room (or its store failure was reported on the socket), else why it
/// was refused.
pub type PostReply = oneshot::Sender<Result<(), ErrorCode>>;

/// A message accepted by the hub, not stored yet.
pub struct Pending {
    /// Who sent it.
    pub client: ClientId,
    /// The row to store.
    pub row: NewMessage,
    /// Answered after the fan-out.
    pub reply: PostReply,
}

/// A batch whose store finished: its messages in order, and the stored lines
/// (same order, ids ascending) or the reason nothing was stored.
pub struct Stored {
    pub batch: Vec<Pending>,
    pub result: Result<Vec<ChatLine>, String>,
}

/// The task storing one batch.
type StoreTask = JoinHandle<Result<Vec<ChatLine>, db::DbError>>;

/// Messages waiting, and the batch being stored.
pub struct Store {
    db: Db,
    queue: VecDeque<Pending>,
    /// The batch being stored and its task.
    in_flight: Option<(Vec<Pending>, StoreTask)>,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            queue: VecDeque::new(),
            in_flight: None,
        }
    }

    /// No more messages may wait (see [`MAX_PENDING`]).
    pub fn is_full(&self) -> bool {
        self.queue.len() >= MAX_PENDING
    }

    /// Queues a message; [`Store::start`] stores it with what else is waiting.
    pub fn push(&mut self, p: Pending) {
        self.queue.push_back(p);
    }

    /// Starts storing everything waiting (up to [`MAX_BATCH`]) unless a batch
    /// is being stored.
    pub fn start(&mut self) {
        if self.in_flight.is_some() || self.queue.is_empty() {
            return;
        }
        let n = self.queue.len().min(MAX_BATCH);
        let batch: Vec<Pending> = self.queue.drain(..n).collect();
        let rows: Vec<NewMessage> = batch.iter().map(|p| p.row.clone()).collect();
        let db = self.db.clone();
        let task = tokio::spawn(async move { db::messages::insert_all(&db, &rows).await });
        self.in_flight = Some((batch, task));
    }

    /// Resolves when the batch being stored is done (never if there is none).
    /// Cancel-safe: the batch stays in flight until this completes.
    pub async fn finished(&mut self) -> Stored {
        let Some((_, task)) = self.in_flight.as_mut() else {
            return pending().await;
        };
        let outcome = task.await;
        let batch = self.in_flight.take().map(|(b, _)| b).unwrap_or_default();
        let result = match outcome {
            Ok(Ok(lines)) if lines.len() == batch.len() => Ok(lines),
            Ok(Ok(lines)) => Err(format!(
                "stored {} lines for {} messages",
                lines.len(),
                batch.len()
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("store task failed: {e}")),
        };
        Stored { batch, result }
    }
}

//! The hub's store stage: chat messages wait here until stored, a batch at a time in one transaction (group commit), beside the hub's loop.
//!
//! The hub pushes each accepted message and keeps serving (joins, presence,
//! fan-out of earlier batches) while one batch is stored in a task of its
//! own; everything that arrived meanwhile forms the next batch. Batches are
//! stored one after another and handed back in order, so a room's messages
//! are broadcast in the order of their ids, each after it was stored.
use std::{collections::VecDeque, future::pending};

use app::protocol::chat::ErrorCode;
use tokio::{sync::oneshot, task::JoinHandle};

use super::hub::ClientId;
use crate::db::{
    self,
    messages::{NewMessage, StoreConnection, StoredBatch},
    Db,
};

/// Most messages waiting to be stored; while it is reached the hub takes no
/// new commands (the senders wait on its bounded queue).
pub const MAX_PENDING: usize = 4096;
/// Most messages stored in one transaction.
pub const MAX_BATCH: usize = 512;
/// Messages stored between two checkpoints of the write-ahead log (the
/// store's own connection never checkpoints: see
/// [`db::messages::store_connection`]).
pub const CHECKPOINT_EVERY: usize = 256;

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
/// (same order, ids ascending, with the id committed before them on
/// Postgres) or the reason nothing was stored.
pub struct Stored {
    pub batch: Vec<Pending>,
    pub result: Result<StoredBatch, String>,
}

/// The task storing one batch; it hands back its connection unless it failed.
type StoreTask = JoinHandle<(Option<StoreConnection>, Result<StoredBatch, db::DbError>)>;

/// Messages waiting, and the batch being stored.
pub struct Store {
    db: Db,
    queue: VecDeque<Pending>,
    /// The batch being stored and its task.
    in_flight: Option<(Vec<Pending>, StoreTask)>,
    /// The store's connection while no batch is being stored (opened on
    /// first use, again after a failure).
    conn: Option<StoreConnection>,
    /// Messages stored since the last checkpoint was started.
    since_checkpoint: usize,
    /// The checkpoint running beside the store, if any.
    checkpoint: Option<JoinHandle<()>>,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            queue: VecDeque::new(),
            in_flight: None,
            conn: None,
            since_checkpoint: 0,
            checkpoint: None,
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
        let conn = self.conn.take();
        let task = tokio::spawn(async move {
            let mut conn = match conn {
                Some(c) => c,
                None => match db::messages::store_connection(&db).await {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = db::messages::insert_all(&mut conn, &rows).await;
            // A connection that failed is not trusted with the next batch.
            (result.is_ok().then_some(conn), result)
        });
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
            Ok((conn, stored)) => {
                self.conn = conn;
                match stored {
                    Ok(stored) if stored.lines.len() == batch.len() => Ok(stored),
                    Ok(stored) => Err(format!(
                        "stored {} lines for {} messages",
                        stored.lines.len(),
                        batch.len()
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(format!("store task failed: {e}")),
        };
        if result.is_ok() {
            self.since_checkpoint += batch.len();
            self.maybe_checkpoint();
        }
        Stored { batch, result }
    }

    /// Starts a checkpoint beside the store every [`CHECKPOINT_EVERY`]
    /// messages, unless one is still running.
    fn maybe_checkpoint(&mut self) {
        if self.since_checkpoint < CHECKPOINT_EVERY
            || self.checkpoint.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.since_checkpoint = 0;
        let db = self.db.clone();
        self.checkpoint = Some(tokio::spawn(async move {
            if let Err(e) = db::messages::checkpoint(&db).await {
                tracing::warn!("checkpoint after chat messages: {e}");
            }
        }));
    }
}

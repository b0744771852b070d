//! The Redis broker between nodes: what a node publishes (chat batches, new rooms, presence, change hints) and the subscription that hands other nodes' events to the hub and the revocation watcher, reconnecting for ever.
//!
//! Redis only carries hints and copies: everything that must survive is in
//! the database first. A publication lost while Redis is away is made up
//! for by the readers (the chat feed reads its gaps from the database), so
//! publishing never waits: a full queue drops the event.
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

/// The one channel every node publishes to and subscribes to.
const CHANNEL: &str = "termroom:events";
/// Events waiting to be published.
const PUBLISH_QUEUE: usize = 4096;
/// Pause before connecting again after Redis went away.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);
/// How long the first connection may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub use crate::db::messages::RoomLine;

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A batch of chat messages stored by `node`; `after` is the highest id
    /// committed before it (see `chat::feed`).
    Chat {
        node: String,
        after: i64,
        lines: Vec<RoomLine>,
    },
    /// `node` created a room.
    RoomAdded { node: String, room: String },
    /// The users `node` has in `room` now (sent on every change and again
    /// periodically; a node not heard from for a while is forgotten).
    Presence {
        node: String,
        room: String,
        users: Vec<String>,
    },
    /// `node` wrote a change the other nodes act on: who may do what
    /// (disabled a user, ended a login session, revoked a grant, deleted a
    /// host) or a request to end or freeze a session they hold. Their
    /// revocation watchers check now rather than at their next poll.
    Changed { node: String },
}

impl Event {
    /// The node that published it.
    pub fn node(&self) -> &str {
        match self {
            Event::Chat { node, .. }
            | Event::RoomAdded { node, .. }
            | Event::Presence { node, .. }
            | Event::Changed { node } => node,
        }
    }
}

/// What the subscription hands this node.
#[derive(Debug)]
pub enum Incoming {
    /// Another node's event.
    Event(Event),
    /// The subscription is (again) in place: events published while it was
    /// not were lost and must be read from the database.
    Subscribed,
}

/// Broker failures at start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker url {0:?}: {1}")]
    Url(String, redis::RedisError),
    #[error("cannot reach the broker at {0}: {1}")]
    Unreachable(String, String),
    #[error("publishing to the broker at {0}: {1}")]
    Publish(String, String),
}

/// This node's handle on the broker.
#[derive(Clone)]
pub struct Broker {
    node: String,
    publish: mpsc::Sender<Event>,
    /// Events dropped since the last warning (one warning per full spell).
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("node", &self.node).finish()
    }
}

impl Broker {
    /// Connects to Redis at `url` (failing when it cannot be reached within
    /// a few seconds), then publishes and subscribes in tasks of their own;
    /// other nodes' change hints wake `changed`, their other events go to
    /// `incoming`.
    pub async fn start(
        url: &str,
        node: &str,
        incoming: mpsc::Sender<Incoming>,
        changed: Arc<Notify>,
    ) -> Result<Self, BrokerError> {
        let (client, conn) = connect(url).await?;
        let (publish, queue) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publisher(client.clone(), Some(conn), queue));
        tokio::spawn(subscriber(
            client,
            node.to_string(),
            Receivers { incoming, changed },
        ));
        Ok(Self {
            node: node.to_string(),
            publish,
            dropped: Default::default(),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tells the other nodes that this one wrote a change they act on.
    pub fn hint_changed(&self) {
        self.publish(Event::Changed {
            node: self.node.clone(),
        });
    }

    /// Publishes `event` when the queue has room (see the module comment).
    pub fn publish(&self, event: Event) {
        use std::sync::atomic::Ordering;
        if self.publish.try_send(event).is_err() {
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                warn!("broker queue full: events are not published (other nodes read them from the database)");
            }
        } else if self.dropped.load(Ordering::Relaxed) > 0 {
            let n = self.dropped.swap(0, Ordering::Relaxed);
            info!(dropped = n, "broker queue drains again");
        }
    }
}

/// Connects to Redis at `url` and checks that it answers, within a few seconds.
async fn connect(
    url: &str,
) -> Result<(redis::Client, redis::aio::MultiplexedConnection), BrokerError> {
    let shown = crate::db::redacted(url);
    let client = redis::Client::open(url).map_err(|e| BrokerError::Url(shown.clone(), e))?;
    let unreachable = |e: String| BrokerError::Unreachable(shown.clone(), e);
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok((client, conn))
}

/// Tells every node once that `from` (not a node: the command line) wrote a
/// change they act on, as [`Broker::hint_changed`] does for a node. Returns
/// how many subscribers (nodes) received it.
pub async fn hint_changed_once(url: &str, from: &str) -> Result<u64, BrokerError> {
    let (_client, mut conn) = connect(url).await?;
    let shown = crate::db::redacted(url);
    let payload = serde_json::to_string(&Event::Changed {
        node: from.to_string(),
    })
    .map_err(|e| BrokerError::Publish(shown.clone(), e.to_string()))?;
    redis::cmd("PUBLISH")
        .arg(CHANNEL)
        .arg(payload)
        .query_async(&mut conn)
        .await
        .map_err(|e| BrokerError::Publish(shown, e.to_string()))
}

/// Publishes queued events, one connection, reconnecting when it failed.
async fn publisher(
    client: redis::Client,
    mut conn: Option<redis::aio::MultiplexedConnection>,
    mut queue: mpsc::Receiver<Event>,
) {
    // No connection attempt before this (after a failed one).
    let mut retry_at = tokio::time::Instant::now();
    while let Some(event) = queue.recv().await {
        let payload = match serde_json::to_string(&event) {
            Ok(p) => p,
            Err(e) => {
                warn!("encoding a broker event: {e}");
                continue;
            }
        };
        if conn.is_none() && tokio::time::Instant::now() >= retry_at {
            retry_at = tokio::time::Instant::now() + RECONNECT_PAUSE;
            // Bounded: an unreachable host must not hold the queue for minutes.
            conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
                .await
                .ok()
                .and_then(Result::ok);
        }
        let Some(c) = conn.as_mut() else {
            // Redis is away: this event is lost (readers catch up from the
            // database); the next one tries again.
            continue;
        };
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .query_async(c)
            .await;
        if let Err(e) = sent {
            warn!("publishing to the broker: {e}");
            conn = None;
        }
    }
}

/// Where the subscription hands other nodes' events.
struct Receivers {
    /// The hub: chat, rooms, presence, and each (re)subscription.
    incoming: mpsc::Sender<Incoming>,
    /// The revocation watcher.
    changed: Arc<Notify>,
}

/// Subscribes to [`CHANNEL`] and hands other nodes' events to their
/// receivers; connects again whenever the subscription ends.
async fn subscriber(client: redis::Client, node: String, to: Receivers) {
    let incoming = &to.incoming;
    let mut was_down = false;
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
            .await
            .unwrap_or_else(|_| {
                Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting timed out",
                )))
            });
        match connected {
            Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                Ok(()) => {
                    if was_down {
                        info!("broker subscription back");
                    }
                    if incoming.send(Incoming::Subscribed).await.is_err() {
                        return;
                    }
                    let mut stream = pubsub.into_on_message();
                    while let Some(msg) = stream.next().await {
                        let event: Event = match serde_json::from_slice(msg.get_payload_bytes()) {
                            Ok(e) => e,
                            Err(e) => {
                                warn!("undecodable broker event: {e}");
                                continue;
                            }
                        };
                        if event.node() == node {
                            continue;
                        }
                        if let Event::Changed { .. } = event {
                            to.changed.notify_one();
                            continue;
                        }
                        if incoming.send(Incoming::Event(event)).await.is_err() {
                            return;
                        }
                    }
                    warn!("broker subscription lost");
                }
                Err(e) => warn!("subscribing on the broker: {e}"),
            },
            Err(e) => {
                if !was_down {
                    warn!("broker unreachable: {e}");
                }
            }
        }
        was_down = true;
        if incoming.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_travel_as_tagged_json() {
        let e = Event::RoomAdded {
            node: "a".into(),
            room: "ops".into(),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(text, r#"{"type":"room_added","node":"a","room":"ops"}"#);
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
        assert_eq!(e.node(), "a");
    }
}

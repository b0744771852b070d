//! The hub with several nodes: its batches published through the broker, other nodes' batches taken in, both delivered through the cluster feed in id order; rooms and presence shared.
use std::{
    collections::{BTreeSet, HashMap},
    future::pending,
    time::{Duration, Instant},
};

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::warn;

use super::{Hub, Pending};
use crate::{
    chat::feed::{Batch, Feed, Step},
    cluster::broker::{Broker, Event, Incoming, RoomLine},
    db::{self, DbError},
};

/// How often the hub reads what it may have missed from the database (a
/// publication lost while Redis was away), expires presence and repeats
/// its own presence.
const TICK: Duration = Duration::from_secs(1);
/// Presence is published again every this many ticks.
const PRESENCE_EVERY: u32 = 5;
/// Another node's presence is forgotten when not repeated for this long.
const PRESENCE_TTL: Duration = Duration::from_secs(15);
/// Most messages one read from the database returns.
const FETCH_LIMIT: i64 = 2048;

/// What the hub needs to join the cluster.
pub struct HubCluster {
    pub broker: Broker,
    /// Other nodes' events.
    pub incoming: mpsc::Receiver<Incoming>,
    /// The highest message id stored when the hub starts (delivered by
    /// history, not by the feed).
    pub cursor: i64,
}

type Fetch = JoinHandle<Result<(Vec<RoomLine>, bool), DbError>>;

/// The hub's cluster state.
pub(super) struct ClusterChat {
    broker: Broker,
    incoming: mpsc::Receiver<Incoming>,
    incoming_closed: bool,
    /// This node's batches carry their senders' replies.
    feed: Feed<Option<Vec<Pending>>, RoomLine>,
    fetch: Option<Fetch>,
    tick: tokio::time::Interval,
    ticks: u32,
    /// Per room, per other node: its users and when they were last heard.
    presence: HashMap<String, HashMap<String, (Vec<String>, Instant)>>,
    /// Per user, how many other nodes have them in a room; built from
    /// `presence` when needed after it changed.
    nodes_elsewhere: Option<HashMap<String, u32>>,
}

impl ClusterChat {
    pub(super) fn new(c: HubCluster) -> Self {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            broker: c.broker,
            incoming: c.incoming,
            incoming_closed: false,
            feed: Feed::new(c.cursor),
            fetch: None,
            tick,
            ticks: 0,
            presence: HashMap::new(),
            nodes_elsewhere: None,
        }
    }
}

/// Why the hub's cluster side woke up.
pub(super) enum Wake {
    Incoming(Option<Incoming>),
    Fetched(Result<Result<(Vec<RoomLine>, bool), DbError>, tokio::task::JoinError>),
    Tick,
}

/// Waits for the cluster side (never, with one node). Cancel-safe.
pub(super) async fn next_wake(cluster: &mut Option<ClusterChat>) -> Wake {
    let Some(c) = cluster else {
        return pending().await;
    };
    let incoming_closed = c.incoming_closed;
    tokio::select! {
        ev = c.incoming.recv(), if !incoming_closed => Wake::Incoming(ev),
        r = async {
            match c.fetch.as_mut() {
                Some(t) => t.await,
                None => pending().await,
            }
        } => Wake::Fetched(r),
        _ = c.tick.tick() => Wake::Tick,
    }
}

impl Hub {
    /// This node's stored batch: published, then delivered through the feed
    /// (after the gap before it, if another node's batch came first).
    pub(super) async fn deliver_in_cluster(
        &mut self,
        after: i64,
        lines: Vec<RoomLine>,
        batch: Vec<Pending>,
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.broker.publish(Event::Chat {
            node: c.broker.node().to_string(),
            after,
            lines: lines.clone(),
        });
        c.feed.push(Batch {
            after,
            lines,
            extra: Some(batch),
        });
        self.pump().await;
    }

    pub(super) async fn on_cluster(&mut self, wake: Wake) {
        match wake {
            Wake::Incoming(None) => {
                warn!("broker subscription ended for good");
                if let Some(c) = self.cluster.as_mut() {
                    c.incoming_closed = true;
                }
            }
            Wake::Incoming(Some(Incoming::Subscribed)) => {
                if let Some(c) = self.cluster.as_mut() {
                    c.feed.catch_up();
                }
                self.publish_all_presence();
            }
            Wake::Incoming(Some(Incoming::Event(event))) => self.on_event(event),
            Wake::Fetched(result) => {
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                c.fetch = None;
                match result {
                    Ok(Ok((lines, complete))) => {
                        let lines = c.feed.filled(lines, complete);
                        self.note_rooms(&lines);
                        self.fan_out(lines).await;
                    }
                    Ok(Err(e)) => {
                        warn!("reading chat messages of other nodes: {e}");
                        c.feed.failed();
                        // Asked for again at the next tick.
                        return;
                    }
                    Err(e) => {
                        warn!("chat read task: {e}");
                        c.feed.failed();
                        return;
                    }
                }
            }
            Wake::Tick => self.on_tick(),
        }
        self.pump().await;
    }

    /// Another node's event.
    fn on_event(&mut self, event: Event) {
        match event {
            Event::Chat { after, lines, .. } => {
                if let Some(c) = self.cluster.as_mut() {
                    c.feed.push(Batch {
                        after,
                        lines,
                        extra: None,
                    });
                }
            }
            Event::RoomAdded { room, .. } => self.note_room(&room),
            Event::Presence { node, room, users } => {
                if let Some(c) = self.cluster.as_mut() {
                    c.presence
                        .entry(room.clone())
                        .or_default()
                        .insert(node, (users, Instant::now()));
                    c.nodes_elsewhere = None;
                }
                self.broadcast_presence(&room);
            }
            // The subscription hands these to the revocation watcher.
            Event::Changed { .. } => {}
        }
    }

    fn on_tick(&mut self) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.feed.catch_up();
        c.ticks = c.ticks.wrapping_add(1);
        let republish = c.ticks % PRESENCE_EVERY == 0;
        let mut expired = Vec::new();
        for (room, nodes) in &mut c.presence {
            let before = nodes.len();
            nodes.retain(|_, (_, seen)| seen.elapsed() < PRESENCE_TTL);
            if nodes.len() != before {
                expired.push(room.clone());
            }
        }
        c.presence.retain(|_, nodes| !nodes.is_empty());
        if !expired.is_empty() {
            c.nodes_elsewhere = None;
        }
        for room in expired {
            self.broadcast_presence(&room);
        }
        if republish {
            self.publish_all_presence();
        }
    }

    /// Does what the feed asks for until it waits.
    async fn pump(&mut self) {
        loop {
            let Some(c) = self.cluster.as_mut() else {
                return;
            };
            match c.feed.step() {
                Step::Deliver { lines, extra } => {
                    self.note_rooms(&lines);
                    self.fan_out(lines).await;
                    for p in extra.into_iter().flatten() {
                        let _ = p.reply.send(Ok(()));
                    }
                }
                Step::Fetch { after, upto } => {
                    let db = self.db.clone();
                    c.fetch = Some(tokio::spawn(async move {
                        db::messages::between(&db, after, upto, FETCH_LIMIT).await
                    }));
                }
                Step::Idle => return,
            }
        }
    }

    /// Rooms of other nodes' messages join the room list.
    fn note_rooms(&mut self, lines: &[RoomLine]) {
        let mut seen = BTreeSet::new();
        for l in lines {
            if seen.insert(l.line.room.as_str()) {
                self.note_room(&l.line.room);
            }
        }
    }

    /// `room` exists (created here, by another process or on another node):
    /// rich clients are told if it is new to this node's list.
    pub(super) fn note_room(&mut self, room: &str) {
        let added = self
            .room_names
            .as_mut()
            .is_some_and(|n| n.insert(room.to_string()));
        if added {
            self.broadcast_room_added(room);
        }
    }

    /// Tells the other nodes that this one created `room`.
    pub(super) fn publish_room_added(&self, room: &str) {
        if let Some(c) = &self.cluster {
            c.broker.publish(Event::RoomAdded {
                node: c.broker.node().to_string(),
                room: room.to_string(),
            });
        }
    }

    /// Tells the other nodes who this one has in `room`.
    pub(super) fn publish_presence(&self, room: &str) {
        if let Some(c) = &self.cluster {
            c.broker.publish(Event::Presence {
                node: c.broker.node().to_string(),
                room: room.to_string(),
                users: self.local_users(room).into_iter().collect(),
            });
        }
    }

    /// Repeats this node's presence in every room it has members in.
    fn publish_all_presence(&self) {
        if self.cluster.is_none() {
            return;
        }
        for (room, r) in &self.rooms {
            if !r.members.is_empty() {
                self.publish_presence(room);
            }
        }
    }

    /// How many nodes have `user` in a room, this one included. A user's
    /// chat rate is one budget across the cluster: each node charges
    /// this many tokens per message (or join), so a user on two nodes gets
    /// half the rate on each and never twice the rate in all.
    pub(super) fn nodes_with(&mut self, user: &str) -> u32 {
        let Some(c) = self.cluster.as_mut() else {
            return 1;
        };
        let elsewhere = c
            .nodes_elsewhere
            .get_or_insert_with(|| nodes_per_user(&c.presence));
        1 + elsewhere.get(user).copied().unwrap_or(0)
    }

    /// The users other nodes have in `room`.
    pub(super) fn remote_users(&self, room: &str) -> Vec<String> {
        self.cluster
            .as_ref()
            .and_then(|c| c.presence.get(room))
            .map(|nodes| {
                nodes
                    .values()
                    .flat_map(|(users, _)| users.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Per user, the number of other nodes that have them in some room.
fn nodes_per_user(
    presence: &HashMap<String, HashMap<String, (Vec<String>, Instant)>>,
) -> HashMap<String, u32> {
    let mut nodes: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for per_node in presence.values() {
        for (node, (users, _)) in per_node {
            for user in users {
                nodes.entry(user).or_default().insert(node);
            }
        }
    }
    nodes
        .into_iter()
        .map(|(user, n)| (user.to_string(), u32::try_from(n.len()).unwrap_or(u32::MAX)))
        .collect()
}

impl crate::chat::feed::Line for RoomLine {
    fn id(&self) -> i64 {
        self.line.id
    }
}

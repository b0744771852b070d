//! The messages of one chat room as the browser keeps them: ordered by id,
//! each id at most once, bounded in length. The highest id is the cursor sent
//! as `since` when the socket rejoins the room after a reconnect.
use std::collections::HashSet;

use crate::protocol::chat::ChatLine;

/// Messages kept per room; older ones are dropped from the browser (the server keeps them).
pub const MAX_LINES: usize = 1000;

/// One message ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Stable key for the list view: the message id, or a negative local
    /// number for the (classic-protocol) messages that carry no id.
    pub key: i64,
    /// Server id, if known.
    pub id: Option<i64>,
    /// Sender.
    pub from: String,
    /// Text, shown as text (never HTML).
    pub message: String,
    /// Server time, RFC 3339.
    pub sent: String,
}

/// A room's messages in id order, deduplicated.
#[derive(Debug, Default, Clone)]
pub struct RoomLog {
    lines: Vec<Line>,
    seen: HashSet<i64>,
    local_keys: i64,
    /// The server left out older missed messages (`complete: false`).
    pub gap: bool,
}

impl RoomLog {
    /// Messages in order, oldest first.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The highest message id held: the `since` cursor for a rejoin.
    pub fn last_id(&self) -> Option<i64> {
        self.lines.iter().rev().find_map(|l| l.id)
    }

    /// Adds a stored message; `false` if it was already there.
    pub fn insert_line(&mut self, line: ChatLine) -> bool {
        self.insert(Some(line.id), line.from, line.message, line.sent)
    }

    /// Adds a message at its place by id (messages without id go last);
    /// `false` for a duplicate id.
    pub fn insert(&mut self, id: Option<i64>, from: String, message: String, sent: String) -> bool {
        let key = match id {
            Some(id) => {
                if !self.seen.insert(id) {
                    return false;
                }
                id
            }
            None => {
                self.local_keys -= 1;
                self.local_keys
            }
        };
        let line = Line {
            key,
            id,
            from,
            message,
            sent,
        };
        let pos = match id {
            Some(id) => self.lines.partition_point(|l| l.id.is_none_or(|x| x < id)),
            None => self.lines.len(),
        };
        self.lines.insert(pos, line);
        if self.lines.len() > MAX_LINES {
            let excess = self.lines.len() - MAX_LINES;
            for old in self.lines.drain(..excess) {
                if let Some(id) = old.id {
                    self.seen.remove(&id);
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i64) -> ChatLine {
        ChatLine {
            id,
            room: "general".into(),
            from: "a".into(),
            message: format!("m{id}"),
            sent: String::new(),
        }
    }

    #[test]
    fn dedupes_and_orders_by_id() {
        let mut log = RoomLog::default();
        for id in [1, 2, 5] {
            assert!(log.insert_line(line(id)));
        }
        // A backfill overlapping what we have, plus a gap filler.
        for id in [2, 3, 4, 5, 6] {
            log.insert_line(line(id));
        }
        let ids: Vec<_> = log.lines().iter().map(|l| l.key).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        assert_eq!(log.last_id(), Some(6));
        assert!(!log.insert_line(line(4)));
    }

    #[test]
    fn messages_without_id_go_last_with_unique_keys() {
        let mut log = RoomLog::default();
        log.insert_line(line(7));
        assert!(log.insert(None, "a".into(), "x".into(), String::new()));
        assert!(log.insert(None, "a".into(), "x".into(), String::new()));
        let keys: Vec<_> = log.lines().iter().map(|l| l.key).collect();
        assert_eq!(keys, [7, -1, -2]);
        assert_eq!(log.last_id(), Some(7));
    }

    #[test]
    fn bounded() {
        let mut log = RoomLog::default();
        for id in 0..(MAX_LINES as i64 + 10) {
            log.insert_line(line(id));
        }
        assert_eq!(log.lines().len(), MAX_LINES);
        assert_eq!(log.lines()[0].key, 10);
        assert_eq!(log.last_id(), Some(MAX_LINES as i64 + 9));
    }
}

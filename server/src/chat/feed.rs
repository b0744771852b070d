//! The cluster's chat feed on one node: batches stored here and batches other nodes published, put back into one stream in id order, each message once.
//!
//! On Postgres every node stores its batches under one advisory lock, so ids
//! commit in order across the cluster and each batch carries `after`, the
//! highest id committed before it. A node keeps `cursor`, the highest id it
//! delivered: a batch with `after <= cursor` may be delivered now (the lines
//! it already delivered are dropped); one with `after > cursor` waits until
//! the gap `(cursor, after]` was read from the database. Pure state: the hub
//! performs what [`Feed::step`] asks for.
use std::collections::VecDeque;

/// A message line as the feed orders it: its id, and what the hub delivers.
pub trait Line {
    fn id(&self) -> i64;
}

/// A batch waiting to be delivered: `after` links it to what came before;
/// `T` is what the hub keeps with it (its senders' replies, or nothing for
/// another node's batch).
pub struct Batch<T, L> {
    pub after: i64,
    pub lines: Vec<L>,
    pub extra: T,
}

/// What the hub should do next.
pub enum Step<T, L> {
    /// Deliver these lines (already in order, none delivered before), then
    /// settle `extra`.
    Deliver { lines: Vec<L>, extra: T },
    /// Read the messages with `after < id <= upto` from the database (all of
    /// them with a later id when `upto` is `None`) and hand them to
    /// [`Feed::filled`].
    Fetch { after: i64, upto: Option<i64> },
    /// Nothing to do until a fetch finishes or another batch arrives.
    Idle,
}

/// The ordering state (see the module comment).
pub struct Feed<T, L> {
    cursor: i64,
    waiting: VecDeque<Batch<T, L>>,
    /// The upper end of the fetch in flight (`Some(None)`: a catch-up read
    /// of everything after the cursor).
    fetching: Option<Option<i64>>,
    /// A catch-up read was asked for while another fetch was in flight.
    catch_up: bool,
}

impl<T, L: Line> Feed<T, L> {
    /// A feed that has delivered everything up to `cursor`.
    pub fn new(cursor: i64) -> Self {
        Self {
            cursor,
            waiting: VecDeque::new(),
            fetching: None,
            catch_up: false,
        }
    }

    /// The highest id delivered.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Queues a batch (this node's or another's), in the order it arrived.
    pub fn push(&mut self, batch: Batch<T, L>) {
        self.waiting.push_back(batch);
    }

    /// Asks for a read of everything after the cursor (the broker connection
    /// came back, or the periodic check): messages whose publication was
    /// lost are delivered from the database.
    pub fn catch_up(&mut self) {
        self.catch_up = true;
    }

    /// The next thing to do; call until it says [`Step::Idle`].
    pub fn step(&mut self) -> Step<T, L> {
        if self.fetching.is_some() {
            return Step::Idle;
        }
        if let Some(front) = self.waiting.front() {
            if front.after > self.cursor {
                self.fetching = Some(Some(front.after));
                return Step::Fetch {
                    after: self.cursor,
                    upto: Some(front.after),
                };
            }
            if let Some(batch) = self.waiting.pop_front() {
                let cursor = self.cursor;
                let lines: Vec<L> = batch
                    .lines
                    .into_iter()
                    .filter(|l| l.id() > cursor)
                    .collect();
                if let Some(last) = lines.last() {
                    self.cursor = last.id();
                }
                return Step::Deliver {
                    lines,
                    extra: batch.extra,
                };
            }
        }
        if std::mem::take(&mut self.catch_up) {
            self.fetching = Some(None);
            return Step::Fetch {
                after: self.cursor,
                upto: None,
            };
        }
        Step::Idle
    }

    /// The fetch asked for finished with `lines` (ids ascending); returns
    /// the ones to deliver now. `complete` is false when the read stopped at
    /// its limit: the rest is read next.
    pub fn filled(&mut self, lines: Vec<L>, complete: bool) -> Vec<L> {
        let upto = self.fetching.take().flatten();
        let cursor = self.cursor;
        let lines: Vec<L> = lines.into_iter().filter(|l| l.id() > cursor).collect();
        if let Some(last) = lines.last() {
            self.cursor = last.id();
        }
        match upto {
            // Everything up to `upto` was committed before the batch that
            // waits for it: the gap is closed even where ids were skipped.
            Some(upto) if complete => self.cursor = self.cursor.max(upto),
            _ if !complete => self.catch_up = true,
            _ => {}
        }
        lines
    }

    /// The fetch asked for failed: it is asked for again by the next
    /// [`Feed::step`] (the hub retries after a pause).
    pub fn failed(&mut self) {
        if self.fetching.take() == Some(None) {
            self.catch_up = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Line for i64 {
        fn id(&self) -> i64 {
            *self
        }
    }

    fn batch(after: i64, lines: &[i64]) -> Batch<&'static str, i64> {
        Batch {
            after,
            lines: lines.to_vec(),
            extra: "b",
        }
    }

    /// Runs the feed against `db` (every committed id) until idle; returns
    /// the ids delivered in order.
    fn drain(feed: &mut Feed<&'static str, i64>, db: &[i64]) -> Vec<i64> {
        let mut out = Vec::new();
        loop {
            match feed.step() {
                Step::Deliver { lines, .. } => out.extend(lines),
                Step::Fetch { after, upto } => {
                    let rows: Vec<i64> = db
                        .iter()
                        .copied()
                        .filter(|&id| id > after && upto.is_none_or(|u| id <= u))
                        .collect();
                    out.extend(feed.filled(rows, true));
                }
                Step::Idle => return out,
            }
        }
    }

    #[test]
    fn batches_in_order_are_delivered_without_reading_the_database() {
        let mut feed = Feed::new(10);
        feed.push(batch(10, &[11, 12]));
        feed.push(batch(12, &[13]));
        let mut out = Vec::new();
        loop {
            match feed.step() {
                Step::Deliver { lines, .. } => out.extend(lines),
                Step::Fetch { .. } => panic!("no gap to read"),
                Step::Idle => break,
            }
        }
        assert_eq!(out, [11, 12, 13]);
        assert_eq!(feed.cursor(), 13);
    }

    #[test]
    fn a_batch_published_before_the_one_it_follows_waits_for_the_gap() {
        // Node B's batch (after 12) arrives before node A's (11, 12).
        let db = [11, 12, 13];
        let mut feed = Feed::new(10);
        feed.push(batch(12, &[13]));
        assert_eq!(drain(&mut feed, &db), [11, 12, 13]);
        // A's publication arrives late: nothing is delivered twice.
        feed.push(batch(10, &[11, 12]));
        assert_eq!(drain(&mut feed, &db), Vec::<i64>::new());
        assert_eq!(feed.cursor(), 13);
    }

    #[test]
    fn skipped_ids_do_not_open_a_gap_for_ever() {
        // Id 11 was taken by a transaction that rolled back.
        let db = [12];
        let mut feed = Feed::new(10);
        feed.push(batch(12, &[13]));
        assert_eq!(drain(&mut feed, &[12, 13]), [12, 13]);
        let mut feed = Feed::new(10);
        feed.push(batch(11, &[12]));
        assert_eq!(drain(&mut feed, &db), [12]);
    }

    #[test]
    fn a_catch_up_delivers_what_was_never_published() {
        let db = [11, 12, 13, 14];
        let mut feed = Feed::new(12);
        feed.catch_up();
        assert_eq!(drain(&mut feed, &db), [13, 14]);
        assert_eq!(feed.cursor(), 14);
        // Then the lost publications arrive after all.
        feed.push(batch(12, &[13, 14]));
        assert_eq!(drain(&mut feed, &db), Vec::<i64>::new());
    }

    #[test]
    fn an_incomplete_read_goes_on_where_it_stopped() {
        let mut feed: Feed<&str, i64> = Feed::new(0);
        feed.push(batch(5, &[6]));
        let Step::Fetch {
            after: 0,
            upto: Some(5),
        } = feed.step()
        else {
            panic!("gap read first");
        };
        // The read stopped at its limit after 1, 2.
        assert_eq!(feed.filled(vec![1, 2], false), [1, 2]);
        assert_eq!(drain(&mut feed, &[1, 2, 3, 4, 5, 6]), [3, 4, 5, 6]);
    }

    #[test]
    fn a_failed_read_is_asked_for_again() {
        let mut feed: Feed<&str, i64> = Feed::new(0);
        feed.push(batch(2, &[3]));
        assert!(matches!(feed.step(), Step::Fetch { upto: Some(2), .. }));
        assert!(matches!(feed.step(), Step::Idle), "one read at a time");
        feed.failed();
        assert_eq!(drain(&mut feed, &[1, 2, 3]), [1, 2, 3]);
    }
}

//! Rate limits: failed logins per account name and per remote address (IPv6
//! grouped by /64), chat messages per user, and which address a request
//! counts against when it comes through a trusted reverse proxy.
use crate::sync::lock;
use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use ipnet::IpNet;

/// Failed logins allowed on one account name before it must wait: few,
/// because only someone guessing its password fails on one name repeatedly.
pub const FREE_FAILURES_PER_NAME: u32 = 5;
/// Failed logins allowed from one address (or IPv6 /64) before it must wait:
/// more than per name, as several people may share an address (NAT).
pub const FREE_FAILURES_PER_ADDR: u32 = 20;
/// Longest wait imposed after repeated failures.
const MAX_LOCKOUT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
pub(crate) const FAILURE_MEMORY: Duration = Duration::from_secs(900);
/// Entries remembered at most per table (addresses, names); past this,
/// forgotten and harmless entries are pruned, then new keys go untracked
/// (the other table still limits them). Bounds memory to a few MB.
const MAX_TRACKED: usize = 100_000;
/// IPv6 prefix counted as one client: a single host usually gets a whole /64.
const IPV6_GROUP_PREFIX: u8 = 64;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failure counts for one kind of key.
#[derive(Debug)]
struct Table<K> {
    free: u32,
    map: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Self {
            free,
            map: HashMap::new(),
        }
    }

    /// `Err(seconds)` when `key` must wait.
    fn check(&self, key: &K) -> Result<(), u64> {
        let Some(f) = self.map.get(key) else {
            return Ok(());
        };
        let elapsed = f.last.elapsed();
        if f.count < self.free || elapsed > FAILURE_MEMORY {
            return Ok(());
        }
        let wait = lockout(f.count, self.free);
        if elapsed >= wait {
            Ok(())
        } else {
            Err((wait - elapsed).as_secs().max(1))
        }
    }

    /// Counts one attempt against `key`; false if the table is full and the key untracked.
    fn record(&mut self, key: &K) -> bool {
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED {
            self.map.retain(|_, f| f.last.elapsed() < FAILURE_MEMORY);
            if self.map.len() >= MAX_TRACKED {
                let free = self.free;
                self.map.retain(|_, f| f.count >= free);
            }
            if self.map.len() >= MAX_TRACKED {
                return false;
            }
        }
        let entry = self.map.entry(key.clone()).or_insert(Failures {
            count: 0,
            last: Instant::now(),
        });
        if entry.last.elapsed() > FAILURE_MEMORY {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = Instant::now();
        true
    }

    /// Moves the time of `key`'s last failure to now.
    fn touch(&mut self, key: &K) {
        if let Some(f) = self.map.get_mut(key) {
            f.last = Instant::now();
        }
    }

    /// Takes back one recorded attempt.
    fn undo(&mut self, key: &K) {
        if let Some(f) = self.map.get_mut(key) {
            f.count = f.count.saturating_sub(1);
            if f.count == 0 {
                self.map.remove(key);
            }
        }
    }
}

#[derive(Debug)]
struct Tables {
    by_addr: Table<IpAddr>,
    by_name: Table<String>,
}

/// Slows down password guessing. Every attempt is counted against its
/// address and its account name *before* the password is hashed (so N
/// parallel guesses cannot all pass the check); past the free failures,
/// each further attempt on that key must wait 2^(n-free) s (capped).
/// A success forgets only its own name's failures and its own attempt on the
/// address; it never clears what failures on other names built up.
#[derive(Debug)]
pub struct LoginLimiter {
    tables: Mutex<Tables>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(FREE_FAILURES_PER_NAME, FREE_FAILURES_PER_ADDR)
    }
}

/// One counted login attempt, to settle with [`LoginLimiter::succeeded`],
/// [`LoginLimiter::failed`] or [`LoginLimiter::not_tried`]; dropping it
/// leaves it counted as a failure that happened when it began.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    addr: Option<IpAddr>,
    name: Option<String>,
}

impl LoginLimiter {
    /// A limiter allowing `free_per_name` failures per name and
    /// `free_per_addr` per address before slowing down.
    pub fn new(free_per_name: u32, free_per_addr: u32) -> Self {
        Self {
            tables: Mutex::new(Tables {
                by_addr: Table::new(free_per_addr.max(1)),
                by_name: Table::new(free_per_name.max(1)),
            }),
        }
    }

    /// Checks `addr` and `name` (None for a name that failed validation) and,
    /// if neither must wait, counts the attempt against both at once.
    /// `Err(seconds)` when the caller must wait (nothing is counted then).
    pub fn begin(&self, addr: IpAddr, name: Option<&str>) -> Result<Attempt, u64> {
        let addr = addr_key(addr);
        let mut t = lock(&self.tables);
        let name = name.map(str::to_owned);
        let by_addr = t.by_addr.check(&addr);
        let by_name = name.as_ref().map_or(Ok(()), |n| t.by_name.check(n));
        if let (Err(a), Err(b)) = (by_addr, by_name) {
            return Err(a.max(b));
        }
        by_addr?;
        by_name?;
        let addr = t.by_addr.record(&addr).then_some(addr);
        let name = name.filter(|n| t.by_name.record(n));
        Ok(Attempt { addr, name })
    }

    /// The password was right: the name's failures are forgotten and this
    /// attempt no longer counts against the address (earlier failures do).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut t = lock(&self.tables);
        if let Some(a) = &attempt.addr {
            t.by_addr.undo(a);
        }
        if let Some(n) = &attempt.name {
            t.by_name.map.remove(n);
        }
    }

    /// The password was wrong: the attempt stays counted and any wait runs
    /// from now, when the failure is known, not from when hashing began (a
    /// slow hash would otherwise use up the first, short waits).
    pub fn failed(&self, attempt: Attempt) {
        let mut t = lock(&self.tables);
        if let Some(a) = &attempt.addr {
            t.by_addr.touch(a);
        }
        if let Some(n) = &attempt.name {
            t.by_name.touch(n);
        }
    }

    /// The password was never checked (the server was busy): the attempt is
    /// taken back from both counts.
    pub fn not_tried(&self, attempt: Attempt) {
        let mut t = lock(&self.tables);
        if let Some(a) = &attempt.addr {
            t.by_addr.undo(a);
        }
        if let Some(n) = &attempt.name {
            t.by_name.undo(n);
        }
    }
}

/// What an address is counted as: IPv4 as is (also when IPv4-mapped), IPv6
/// by its /64.
pub fn addr_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - u32::from(IPV6_GROUP_PREFIX));
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

pub(crate) fn lockout(count: u32, free: u32) -> Duration {
    let exp = count.saturating_sub(free).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_LOCKOUT)
}

/// The address a request counts as. Only when the TCP `peer` is inside one
/// of the `trusted` proxy ranges are the `X-Forwarded-For` values (all
/// headers, in order) read: walking from the right, the first address that
/// is not itself a trusted proxy is the client. An unreadable entry stops
/// the walk at the last trusted hop (its sender is the best we know).
pub fn client_ip<'h>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'h str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&ip.to_canonical()));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for
        .rev()
        .flat_map(|h| h.rsplit(','))
        .map(str::trim)
        .filter(|h| !h.is_empty());
    for hop in hops {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`[v6]:p`, `v4:p`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// A token bucket: `rate` per second sustained, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one token if available.
    pub fn try_take(&mut self) -> bool {
        self.try_take_n(1)
    }

    /// Takes `n` tokens at once if available (at most the burst: a cost
    /// above it could never be paid). Charging `n` per event gives `n`
    /// buckets that share one budget a `1/n` share each.
    pub fn try_take_n(&mut self, n: u32) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        let cost = f64::from(n.max(1)).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_locks_after_its_free_failures_from_any_address() {
        let l = LoginLimiter::new(3, 100);
        for i in 0..3 {
            let _failed = l.begin(ip(&format!("10.0.0.{i}")), Some("alice")).unwrap();
        }
        let wait = l.begin(ip("10.9.9.9"), Some("alice")).unwrap_err();
        assert!(wait >= 1);
        // other names are unaffected
        assert!(l.begin(ip("10.9.9.9"), Some("bob")).is_ok());
    }

    #[test]
    fn an_address_locks_after_its_free_failures_on_any_names() {
        let l = LoginLimiter::new(100, 3);
        for i in 0..3 {
            let _failed = l.begin(ip("10.0.0.1"), Some(&format!("user{i}"))).unwrap();
        }
        assert!(l.begin(ip("10.0.0.1"), Some("fresh")).is_err());
        assert!(l.begin(ip("10.0.0.1"), None).is_err());
        assert!(l.begin(ip("10.0.0.2"), Some("fresh")).is_ok());
    }

    #[test]
    fn the_wait_runs_from_when_the_failure_is_known() {
        let l = LoginLimiter::new(1, 100);
        let slow = l.begin(ip("10.0.0.1"), Some("alice")).unwrap();
        // Hashing took longer than the first wait (1 s)...
        std::thread::sleep(Duration::from_millis(1_100));
        l.failed(slow);
        // ...yet the next guess must still wait it out.
        assert_eq!(l.begin(ip("10.0.0.2"), Some("alice")).unwrap_err(), 1);
    }

    #[test]
    fn attempts_are_counted_before_the_outcome_is_known() {
        // Parallel guesses: each begins before any has finished.
        let l = LoginLimiter::new(5, 100);
        let started: Vec<_> = (0..50)
            .filter_map(|_| l.begin(ip("10.0.0.1"), Some("alice")).ok())
            .collect();
        assert_eq!(started.len(), 5, "only the free failures get through");
    }

    #[test]
    fn a_success_clears_only_its_own_name_and_attempt() {
        let l = LoginLimiter::new(3, 4);
        let me = ip("10.0.0.1");
        // Failures on someone else's account from my address...
        for _ in 0..3 {
            let _failed = l.begin(me, Some("victim")).unwrap();
        }
        // ...then I log into my own account.
        let mine = l.begin(me, Some("mallory")).unwrap();
        l.succeeded(mine);
        // The victim's count was not cleared.
        assert!(l.begin(ip("10.0.0.9"), Some("victim")).is_err());
        // My address keeps its 3 failures: one more and it must wait.
        let _failed = l.begin(me, Some("other")).unwrap();
        assert!(l.begin(me, Some("another")).is_err());
    }

    #[test]
    fn successes_alone_never_lock_anyone_out() {
        let l = LoginLimiter::new(2, 2);
        for _ in 0..20 {
            let a = l.begin(ip("10.0.0.1"), Some("alice")).unwrap();
            l.succeeded(a);
        }
        let a = l.begin(ip("10.0.0.1"), Some("alice")).unwrap();
        l.not_tried(a);
        assert!(l.tables.lock().unwrap().by_addr.map.is_empty());
    }

    #[test]
    fn failures_on_a_name_survive_its_later_success_elsewhere_only_per_name() {
        let l = LoginLimiter::new(2, 100);
        let _f = l.begin(ip("10.0.0.1"), Some("alice")).unwrap();
        let ok = l.begin(ip("10.0.0.2"), Some("alice")).unwrap();
        l.succeeded(ok);
        // the name is clear again
        assert!(l.begin(ip("10.0.0.3"), Some("alice")).is_ok());
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            addr_key(ip("2001:db8:1:2:aaaa::1")),
            addr_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            addr_key(ip("2001:db8:1:2::1")),
            addr_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(addr_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        let l = LoginLimiter::new(100, 2);
        let _a = l.begin(ip("2001:db8::1"), None).unwrap();
        let _b = l.begin(ip("2001:db8::2"), None).unwrap();
        assert!(l.begin(ip("2001:db8::ffff:3"), None).is_err());
        assert!(l.begin(ip("2001:db8:0:1::1"), None).is_ok());
    }

    #[test]
    fn lockout_grows_and_is_capped() {
        assert_eq!(lockout(5, 5), Duration::from_secs(1));
        assert_eq!(lockout(7, 5), Duration::from_secs(4));
        assert_eq!(lockout(100, 5), MAX_LOCKOUT);
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("192.0.2.7"), ["198.51.100.1"].into_iter(), &trusted),
            ip("192.0.2.7")
        );
        assert_eq!(
            client_ip(ip("192.0.2.7"), ["198.51.100.1"].into_iter(), &[]),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn the_right_most_untrusted_forwarded_address_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8::/32"]);
        let peer = ip("10.0.0.1");
        // The client may put anything on the left; only the right is ours.
        let xff = ["6.6.6.6, 198.51.100.1, 10.1.1.1"];
        assert_eq!(
            client_ip(peer, xff.into_iter(), &trusted),
            ip("198.51.100.1")
        );
        // Several headers are one list, in order.
        let xff = ["6.6.6.6", "198.51.100.2 ,10.2.2.2"];
        assert_eq!(
            client_ip(peer, xff.into_iter(), &trusted),
            ip("198.51.100.2")
        );
        // Ports and IPv6 brackets.
        let xff = ["[2001:db9::5]:4711, 198.51.100.3:80"];
        assert_eq!(
            client_ip(peer, xff.into_iter(), &trusted),
            ip("198.51.100.3")
        );
        let xff = ["2001:db9::5, 2001:db8::1"];
        assert_eq!(
            client_ip(peer, xff.into_iter(), &trusted),
            ip("2001:db9::5")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(peer, std::iter::empty(), &trusted), peer);
        // Only trusted hops: the left-most of them.
        let xff = ["10.3.3.3, 10.4.4.4"];
        assert_eq!(client_ip(peer, xff.into_iter(), &trusted), ip("10.3.3.3"));
        // Garbage stops the walk at the last trusted hop.
        let xff = ["198.51.100.9, nonsense, 10.5.5.5"];
        assert_eq!(client_ip(peer, xff.into_iter(), &trusted), ip("10.5.5.5"));
        // An IPv4-mapped peer is matched as IPv4.
        let xff = ["198.51.100.4"];
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), xff.into_iter(), &trusted),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn bucket_allows_burst_then_refuses() {
        let mut b = TokenBucket::new(1, 3);
        assert!(b.try_take() && b.try_take() && b.try_take());
        assert!(!b.try_take());
    }

    #[test]
    fn a_bucket_charged_n_per_event_allows_a_share_of_its_burst() {
        let mut b = TokenBucket::new(1, 6);
        assert!(b.try_take_n(2) && b.try_take_n(2) && b.try_take_n(2));
        assert!(
            !b.try_take_n(2),
            "three events of cost 2 use up a burst of 6"
        );
        let mut small = TokenBucket::new(1, 2);
        assert!(small.try_take_n(5), "a cost above the burst is the burst");
        assert!(!small.try_take_n(1));
    }
}

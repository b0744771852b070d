//! Chat fan-out benchmark: starts a real `termroom serve` child process, opens
//! N chat clients in one room and one sender at a fixed rate, and prints
//! deliveries per second, fan-out latency p50/p99/max (against the intended
//! send time), per message when its first and its last copy arrived (waiting
//! before the fan-out against the fan-out itself) and the server's memory per
//! idle connection (RSS slope over N).
//! Listeners are a mix of classic and rich (`v=1`) clients; each checks that
//! the messages (numbered in their text, rich ones also carrying ids) arrive
//! in order, without gaps or duplicates.
//!
//! `--cluster` compares, in one run, one node holding all N clients against
//! two nodes holding half each (the sender on the first), both setups on
//! Postgres and the two nodes joined by a Redis broker: deliveries per
//! second, latency overall and of the clients on the other node, delivery
//! exactly once in order, CPU per node. `chat_load/cluster.rs` starts
//! Postgres, Redis and the nodes; `chat_load/compare.rs` runs both setups
//! and prints them side by side.
use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::{io::AsyncReadExt, net::TcpStream};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

#[path = "support/bench_server.rs"]
mod bench_server;
#[path = "chat_load/cluster.rs"]
mod cluster;
#[path = "chat_load/compare.rs"]
mod compare;

/// Benchmark settings.
#[derive(Debug, Parser)]
#[command(about = "termroom chat fan-out benchmark")]
struct Args {
    /// The termroom binary to benchmark.
    #[arg(long, default_value = "target/release/termroom")]
    server_bin: PathBuf,
    /// Client counts at which idle memory is sampled (the last one runs the
    /// fan-out test; with --cluster, the last one is the client count).
    #[arg(long, value_delimiter = ',', default_value = "250,500,750,1000")]
    clients: Vec<usize>,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// CPUs the server is pinned to (taskset list), the load generator takes the others.
    #[arg(long, default_value = "0")]
    server_cpus: String,
    /// Port for the server (without --cluster; nodes take free ports).
    #[arg(long, default_value_t = 39123)]
    port: u16,
    /// Percentage of listeners that speak the rich protocol (`v=1`); the rest are classic.
    #[arg(long, default_value_t = 50)]
    rich_percent: u32,
    /// Compare one node (all clients) with two nodes (half the clients each,
    /// the sender on the first) on Postgres, the two joined by Redis.
    #[arg(long)]
    cluster: bool,
    /// With --cluster: admin URL of a Postgres server that allows CREATE
    /// DATABASE (each setup gets a fresh database, dropped afterwards).
    /// Default: a throwaway Postgres 15 from /usr/lib/postgresql/15/bin.
    #[arg(long)]
    pg_url: Option<String>,
    /// With --cluster: the Redis server binary, started on a free port.
    #[arg(long, default_value = "redis-server")]
    redis_bin: PathBuf,
    /// With --cluster: the CPU of each of the two nodes (one each); when the
    /// machine has too few CPUs, both share --server-cpus.
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    node_cpus: Vec<usize>,
}

/// `serve` options of every server here.
const SERVE_OPTIONS: &[&str] = &[
    "--chat-rate",
    "100000",
    // The listeners never answer pings: keep them through the run.
    "--chat-idle-secs",
    "3600",
    // Every listener is the same bench user.
    "--max-chat-sockets-per-user",
    "1000000",
];
/// The benchmark's account.
const USER: &str = "bench";
const PASSWORD: &str = "bench-password-123";

/// Pins the server process (all its threads) to `cpus` (a taskset list).
fn pin_server(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("taskset failed");
    }
    Ok(())
}

/// Moves this process (the load generator) onto the CPUs the server does not
/// use, and returns how many it has.
fn pin_self_away_from(server_cpus: &str) -> anyhow::Result<usize> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let taken: Vec<usize> = server_cpus
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let ours: Vec<String> = (0..n)
        .filter(|c| !taken.contains(c))
        .map(|c| c.to_string())
        .collect();
    if ours.is_empty() {
        return Ok(n);
    }
    let status = std::process::Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &ours.join(","),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("taskset failed");
    }
    Ok(ours.len())
}

/// The machine's load averages (1, 5, 15 minutes), as /proc/loadavg gives them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Which CPUs the servers are pinned to; the load generator takes the rest.
struct CpuPlan {
    /// The one server (taskset list).
    single: String,
    /// Each node of the two-node setup (taskset lists); empty without --cluster.
    nodes: Vec<String>,
    /// Why the two nodes share CPUs, when they do.
    shared: Option<String>,
}

impl CpuPlan {
    fn new(args: &Args) -> Self {
        let single = args.server_cpus.clone();
        if !args.cluster {
            return Self {
                single,
                nodes: Vec::new(),
                shared: None,
            };
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wanted = args.node_cpus.get(..2).unwrap_or_default();
        // A CPU of its own for each node, and one left for the load generator.
        let own = wanted.len() == 2
            && wanted.first() != wanted.get(1)
            && wanted.iter().all(|&c| c < cpus)
            && cpus > 2;
        if own {
            Self {
                single,
                nodes: wanted.iter().map(|c| c.to_string()).collect(),
                shared: None,
            }
        } else {
            let why = if cpus > 2 {
                format!(
                    "--node-cpus {} is not two different CPUs below {cpus}",
                    args.node_cpus
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            } else {
                format!("this machine has {cpus} CPU(s); a CPU of its own per node needs 3")
            };
            Self {
                shared: Some(format!("nodes a and b SHARE CPU(s) {single} ({why})")),
                nodes: vec![single.clone(), single.clone()],
                single,
            }
        }
    }

    /// Every CPU a server may be pinned to (taskset list).
    fn taken(&self) -> String {
        std::iter::once(&self.single)
            .chain(&self.nodes)
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }
}

async fn ticket(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let r = http.post(format!("{base}/api/chat_ticket")).send().await?;
    if !r.status().is_success() {
        bail!("ticket: {}", r.status());
    }
    Ok(r.json::<String>().await?)
}

/// A listening client: a real WebSocket handshake, then raw reads. Server
/// frames are unmasked, so the message numbers can be found in the byte
/// stream without a WebSocket parser; this keeps the load generator (which
/// shares the machine with the server) much lighter than the server.
async fn open_listener(
    http: &reqwest::Client,
    base: &str,
    addr: &str,
    rich: bool,
) -> anyhow::Result<TcpStream> {
    let otp = ticket(http, base).await?;
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let v = if rich { "&v=1" } else { "" };
    let request = format!("ws://{addr}/ws?otp={otp}{v}").into_client_request()?;
    // The handshake borrows the stream; dropping the WebSocket afterwards
    // leaves the connection open (frames it had buffered are not needed).
    let (ws, _) = tokio_tungstenite::client_async(request, &mut tcp).await?;
    drop(ws);
    Ok(tcp)
}

/// A server the listeners connect to: a logged-in client of it, its base
/// URL and its address.
struct Endpoint<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    addr: &'a str,
}

/// A listening client, and the index of the server it is connected to.
struct Listener {
    tcp: TcpStream,
    rich: bool,
    node: usize,
}

/// Whether listener `i` speaks the rich protocol: `percent` of them do,
/// spread evenly.
fn rich_at(percent: u32, i: usize) -> bool {
    let pct = percent.min(100) as usize;
    (i * pct) / 100 != ((i + 1) * pct) / 100
}

/// Connects listeners until there are `n`, listener `i` to server
/// `i * servers / n`: split evenly over `servers` in order.
async fn grow_listeners(
    servers: &[Endpoint<'_>],
    listeners: &mut Vec<Listener>,
    n: usize,
    rich_percent: u32,
) -> anyhow::Result<()> {
    for i in listeners.len()..n {
        let node = i * servers.len() / n;
        let server = servers.get(node).context("no server to connect to")?;
        let rich = rich_at(rich_percent, i);
        let tcp = open_listener(server.http, server.base, server.addr, rich)
            .await
            .with_context(|| format!("connecting listener {i} to {}", server.addr))?;
        listeners.push(Listener { tcp, rich, node });
    }
    Ok(())
}

/// A chat WebSocket URL for the sender on `server`.
async fn sender_url(server: &Endpoint<'_>) -> anyhow::Result<String> {
    Ok(format!(
        "ws://{}/ws?otp={}",
        server.addr,
        ticket(server.http, server.base).await?
    ))
}

/// How late the load generator's runtime runs a task that wants to wake
/// every millisecond, from `start` for `length`: the share of the measured
/// latency that is the generator's own queueing, not the server's.
async fn generator_lateness(start: Instant, length: Duration) -> Vec<Duration> {
    const TICK: Duration = Duration::from_millis(1);
    tokio::time::sleep_until(start.into()).await;
    let mut late = Vec::new();
    while start.elapsed() < length {
        let due = Instant::now() + TICK;
        tokio::time::sleep_until(due.into()).await;
        late.push(Instant::now().saturating_duration_since(due));
    }
    late
}

/// Where `"message":"` (the start of a message number) occurs in chat frames.
const NUMBER_MARK: &[u8] = b"\"message\":\"";
/// Where a rich frame's message id starts (after the text, sender and time).
const ID_MARK: &[u8] = b"\"id\":";

/// The id that follows a message number in a rich frame: `Some(None)` when
/// the bytes for it have not all arrived yet.
fn id_after(rest: &[u8]) -> Option<Option<i64>> {
    let Some(at) = rest.windows(ID_MARK.len()).position(|w| w == ID_MARK) else {
        return Some(None);
    };
    let digits = rest.get(at + ID_MARK.len()..)?;
    let len = digits.iter().position(|b| !b.is_ascii_digit());
    match len {
        None => Some(None),
        Some(len) => Some(
            std::str::from_utf8(digits.get(..len)?)
                .ok()
                .and_then(|d| d.parse().ok()),
        ),
    }
}

/// Message numbers from here on are not ours (the sender counts from 0):
/// counted as duplicates, not tracked.
const MAX_NUMBER: u32 = 1 << 24;

/// Per-listener check that messages arrive exactly once, in order.
#[derive(Debug, Default, Clone)]
struct OrderCheck {
    /// One past the highest message number seen.
    next: u32,
    /// Different message numbers seen.
    distinct: u64,
    /// Message numbers skipped when a higher one arrived (each then arrives
    /// late or never).
    gaps: u64,
    /// First copies that arrived after a higher number (out of order).
    late: u64,
    /// Copies of a number already seen.
    duplicates: u64,
    /// Last message id seen (rich clients).
    last_id: Option<i64>,
    /// Ids that did not follow the previous one by exactly one.
    id_breaks: u64,
    /// The numbers seen, a bit each.
    seen: Vec<u64>,
}

impl OrderCheck {
    /// Counts message `n` (with its id, for rich clients); whether it is the
    /// first copy of `n`.
    fn see(&mut self, n: u32, id: Option<i64>) -> bool {
        if let Some(id) = id {
            if self.last_id.is_some_and(|last| id != last + 1) {
                self.id_breaks += 1;
            }
            self.last_id = Some(id);
        }
        if n >= MAX_NUMBER {
            self.duplicates += 1;
            return false;
        }
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let first = self.seen.get_mut(word).is_some_and(|w| {
            let first = *w & bit == 0;
            *w |= bit;
            first
        });
        if !first {
            self.duplicates += 1;
            return false;
        }
        self.distinct += 1;
        if n >= self.next {
            self.gaps += u64::from(n - self.next);
            self.next = n + 1;
        } else {
            self.late += 1;
        }
        true
    }

    /// Messages of `total` never seen.
    fn missing(&self, total: usize) -> u64 {
        (total as u64).saturating_sub(self.distinct)
    }

    fn clean(&self, total: usize) -> bool {
        self.missing(total) == 0 && self.late == 0 && self.duplicates == 0 && self.id_breaks == 0
    }
}

/// Finds the message numbers in `pending` (raw bytes from the socket), and
/// for rich frames (`rich`) their ids, calling `found` for each and dropping
/// the bytes already scanned.
fn take_messages(pending: &mut Vec<u8>, rich: bool, mut found: impl FnMut(u32, Option<i64>)) {
    let mut from = 0;
    loop {
        let Some(at) = pending.get(from..).and_then(|rest| {
            rest.windows(NUMBER_MARK.len())
                .position(|w| w == NUMBER_MARK)
        }) else {
            // Keep a possible partial mark at the end.
            from = pending
                .len()
                .saturating_sub(NUMBER_MARK.len() - 1)
                .max(from);
            break;
        };
        let digits_at = from + at + NUMBER_MARK.len();
        let Some(len) = pending
            .get(digits_at..)
            .and_then(|rest| rest.iter().position(|&b| b == b'"'))
        else {
            from += at; // the number is not complete yet
            break;
        };
        let mut id = None;
        if rich {
            match pending.get(digits_at + len..).and_then(id_after) {
                Some(Some(i)) => id = Some(i),
                _ => {
                    from += at; // the id is not complete yet
                    break;
                }
            }
        }
        if let Some(n) = pending
            .get(digits_at..digits_at + len)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse().ok())
        {
            found(n, id);
        }
        from = digits_at + len;
    }
    pending.drain(..from);
}

/// The sender: its own thread and runtime, so that each message leaves at
/// its intended time (a thread sleep is precise to tens of microseconds; the
/// shared runtime's timer rounds up to the next millisecond).
fn send_at_fixed_rate(
    url: &str,
    start: Instant,
    interval: Duration,
    total: usize,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut ws = rt.block_on(async {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        anyhow::Ok(ws)
    })?;
    for i in 0..total as u32 {
        std::thread::sleep((start + interval * i).saturating_duration_since(Instant::now()));
        let msg =
            serde_json::json!({"type": "send_message", "payload": {"message": i.to_string()}});
        rt.block_on(ws.send(Message::Text(msg.to_string().into())))?;
    }
    // Read our own copies for a moment so the server is not left writing to
    // a socket nobody reads while the listeners finish.
    rt.block_on(async {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await {}
    });
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(idx.min(sorted.len() - 1))
        .copied()
        .unwrap_or_default()
}

/// Milliseconds, for printing.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One listener's result.
struct Heard {
    /// The server it was connected to.
    node: usize,
    rich: bool,
    check: OrderCheck,
}

/// Per message, when its first and its last copy arrived: a late first copy
/// means the message waited before its fan-out began (sender, store, hub), a
/// wide gap means the fan-out itself (or the readers) took that long.
struct Spread {
    first: Vec<Option<Duration>>,
    last: Vec<Option<Duration>>,
}

impl Spread {
    fn new(total: usize) -> Self {
        Self {
            first: vec![None; total],
            last: vec![None; total],
        }
    }

    /// One listener's (message number, latency) pairs.
    fn add(&mut self, arrivals: &[(u32, Duration)]) {
        for &(i, l) in arrivals {
            if let Some(f) = self.first.get_mut(i as usize) {
                *f = Some(f.map_or(l, |f| f.min(l)));
            }
            if let Some(m) = self.last.get_mut(i as usize) {
                *m = Some(m.map_or(l, |m| m.max(l)));
            }
        }
    }

    fn sorted(self) -> [Vec<Duration>; 2] {
        [self.first, self.last].map(|v| {
            let mut v: Vec<Duration> = v.into_iter().flatten().collect();
            v.sort_unstable();
            v
        })
    }
}

/// What one fan-out measured.
struct FanOut {
    /// Messages the sender sent.
    total: usize,
    /// From the first send until the last listener finished.
    elapsed: Duration,
    listeners: Vec<Heard>,
    /// Latencies (first copies, against the intended send time) of the
    /// listeners on each server, sorted.
    latencies: Vec<Vec<Duration>>,
    /// Per message, the first and the last listener's latency, each sorted.
    spread: [Vec<Duration>; 2],
    /// CPU seconds each server used during the fan-out.
    server_cpu: Vec<f64>,
    /// CPU seconds the load generator used.
    own_cpu: f64,
    /// How late a 1 ms timer on the load generator's runtime fired, sorted.
    lateness: Vec<Duration>,
    load_before: String,
    load_after: String,
}

impl FanOut {
    /// Messages delivered (first copies), over all listeners.
    fn delivered(&self) -> u64 {
        self.sum(|c| c.distinct)
    }

    fn per_second(&self) -> f64 {
        self.delivered() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Every listener's latencies, sorted.
    fn all_latencies(&self) -> Vec<Duration> {
        let mut all = self.latencies.concat();
        all.sort_unstable();
        all
    }

    /// CPU seconds as a percentage of one core over the fan-out.
    fn percent(&self, cpu_secs: f64) -> f64 {
        cpu_secs / self.elapsed.as_secs_f64().max(1e-9) * 100.0
    }

    /// Listeners that did not get every message exactly once, in order.
    fn failed(&self) -> Vec<&Heard> {
        self.listeners
            .iter()
            .filter(|l| !l.check.clean(self.total))
            .collect()
    }

    /// A count summed over the listeners.
    fn sum(&self, f: impl Fn(&OrderCheck) -> u64) -> u64 {
        self.listeners.iter().map(|l| f(&l.check)).sum()
    }

    /// Listeners on server `node`.
    fn on(&self, node: usize) -> usize {
        self.listeners.iter().filter(|l| l.node == node).count()
    }

    /// Missing, duplicate, out-of-order messages and id breaks, summed.
    fn faults(&self) -> [u64; 4] {
        [
            self.sum(|c| c.missing(self.total)),
            self.sum(|c| c.duplicates),
            self.sum(|c| c.late),
            self.sum(|c| c.id_breaks),
        ]
    }
}

/// Every listener reads while one sender (`sender_url`) posts `rate`
/// messages a second for `seconds`. `nodes`: how many servers the listeners
/// are spread over; `servers`: the processes whose CPU time is measured.
async fn fan_out(
    listeners: Vec<Listener>,
    nodes: usize,
    sender_url: String,
    servers: &[u32],
    rate: u32,
    seconds: u64,
) -> anyhow::Result<FanOut> {
    if rate == 0 {
        bail!("--rate must be at least 1");
    }
    let total = u32::try_from(u64::from(rate) * seconds)
        .ok()
        .filter(|&t| t < MAX_NUMBER)
        .context("too many messages (--rate × --seconds)")?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(500);
    let read_deadline =
        tokio::time::Instant::from_std(start + interval * total) + Duration::from_secs(30);
    let total = total as usize;
    let lateness = tokio::spawn(generator_lateness(start, interval * total as u32));
    let mut readers = Vec::with_capacity(listeners.len());
    for Listener {
        mut tcp,
        rich,
        node,
    } in listeners
    {
        readers.push(tokio::spawn(async move {
            // (message number, latency) of each first copy.
            let mut arrivals = Vec::with_capacity(total);
            let mut check = OrderCheck::default();
            let mut buf = vec![0u8; 4096];
            let mut pending = Vec::with_capacity(512);
            // One deadline for the whole fan-out (a timer per read would
            // cost the generator 100 k timer updates a second).
            let read_all = async {
                while (check.distinct as usize) < total {
                    match tcp.read(&mut buf).await {
                        Ok(n) if n > 0 => {
                            let now = Instant::now();
                            pending.extend_from_slice(buf.get(..n).unwrap_or_default());
                            take_messages(&mut pending, rich, |i, id| {
                                if check.see(i, id) {
                                    arrivals.push((
                                        i,
                                        now.saturating_duration_since(start + interval * i),
                                    ));
                                }
                            });
                        }
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout_at(read_deadline, read_all).await;
            (Heard { node, rich, check }, arrivals)
        }));
    }
    let load_before = load_average();
    let cpu_before = servers
        .iter()
        .map(|&pid| bench_server::cpu_secs(pid))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let own_cpu_before = bench_server::cpu_secs(std::process::id())?;
    let sender =
        std::thread::spawn(move || send_at_fixed_rate(&sender_url, start, interval, total));
    let mut heard = Vec::with_capacity(readers.len());
    let mut latencies = vec![Vec::new(); nodes];
    let mut spread = Spread::new(total);
    for r in readers {
        let (h, arrivals) = r.await?;
        spread.add(&arrivals);
        if let Some(on_node) = latencies.get_mut(h.node) {
            on_node.extend(arrivals.iter().map(|&(_, l)| l));
        }
        heard.push(h);
    }
    let elapsed = start.elapsed();
    let mut server_cpu = Vec::with_capacity(servers.len());
    for (&pid, before) in servers.iter().zip(cpu_before) {
        server_cpu.push(bench_server::cpu_secs(pid)? - before);
    }
    let own_cpu = bench_server::cpu_secs(std::process::id())? - own_cpu_before;
    match sender.join() {
        Ok(r) => r?,
        Err(_) => bail!("the sender thread panicked"),
    }
    for l in &mut latencies {
        l.sort_unstable();
    }
    let mut lateness = lateness.await?;
    lateness.sort_unstable();
    Ok(FanOut {
        total,
        elapsed,
        listeners: heard,
        latencies,
        spread: spread.sorted(),
        server_cpu,
        own_cpu,
        lateness,
        load_before,
        load_after: load_average(),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = CpuPlan::new(&args);
    // The load generator gets the CPUs the servers are not pinned to; one
    // worker thread per CPU avoids cross-thread wake-ups competing for the
    // same core.
    let cpus = pin_self_away_from(&plan.taken())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .enable_all()
        .build()?
        .block_on(async move {
            if args.cluster {
                compare::compare(args, plan, cpus).await
            } else {
                run(args).await
            }
        })
}

/// One server on SQLite: idle memory at each `--clients` count, then the
/// fan-out at the last.
async fn run(args: Args) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let bin = &args.server_bin;
    bench_server::add_member(bin, data.path(), USER, PASSWORD).await?;
    let addr = format!("127.0.0.1:{}", args.port);
    let mut server = bench_server::serve(bin, &addr, data.path(), SERVE_OPTIONS, "warn")?;
    let pid = server.id().context("server pid")?;
    pin_server(pid, &args.server_cpus)?;
    let base = format!("http://{addr}");
    let http = bench_server::same_origin_client(&base)?;
    bench_server::wait_for_login(&http, &base, USER, PASSWORD).await?;
    let servers = [Endpoint {
        http: &http,
        base: &base,
        addr: &addr,
    }];

    // Idle memory: RSS at several client counts.
    let mut clients: Vec<Listener> = Vec::new();
    // Warm up allocator and runtime with a few connections first.
    grow_listeners(&servers, &mut clients, 20, args.rich_percent).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = vec![(clients.len(), bench_server::rss_kib(pid)?)];
    for &n in &args.clients {
        grow_listeners(&servers, &mut clients, n, args.rich_percent).await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        samples.push((clients.len(), bench_server::rss_kib(pid)?));
    }
    println!("idle memory (server RSS):");
    for (n, kib) in &samples {
        println!("  {n:>5} clients: {kib:>8} KiB");
    }
    if let (Some(&(n0, r0)), Some(&(n1, r1))) = (samples.first(), samples.last()) {
        let slope = (r1 as f64 - r0 as f64) * 1024.0 / (n1.saturating_sub(n0)).max(1) as f64;
        println!(
            "  memory per idle connection (slope): {:.1} KB",
            slope / 1000.0
        );
    }

    // Fan-out: every client reads; one sender posts at a fixed rate.
    let [server_endpoint] = &servers;
    let sender = sender_url(server_endpoint).await?;
    let r = fan_out(clients, 1, sender, &[pid], args.rate, args.seconds).await?;
    print_fan_out(&r, args.rate, args.seconds);
    server.kill().await.ok();
    Ok(())
}

/// The single server's fan-out report.
fn print_fan_out(r: &FanOut, rate: u32, seconds: u64) {
    let n = r.listeners.len();
    let lat = r.all_latencies();
    println!("fan-out: {n} clients, {rate} msg/s for {seconds} s");
    println!(
        "  deliveries: {} of {} ({:.0} per second)",
        r.delivered(),
        n * r.total,
        r.per_second()
    );
    println!(
        "  latency vs intended send time: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    for (which, v) in ["first", "last"].iter().zip(&r.spread) {
        println!(
            "  per message, its {which} copy: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(percentile(v, 0.50)),
            ms(percentile(v, 0.99)),
            ms(v.last().copied().unwrap_or_default())
        );
    }
    let rich = r.listeners.iter().filter(|l| l.rich).count();
    let failed = r.failed();
    let [missing, duplicates, late, id_breaks] = r.faults();
    println!(
        "  order check ({rich} rich, {} classic listeners): {}",
        n - rich,
        if failed.is_empty() {
            "every listener got every message once, in order (rich: consecutive ids)".to_string()
        } else {
            format!(
                "{} listeners FAILED ({} rich): missing {missing}, duplicates {duplicates}, \
                 out of order {late}, id breaks {id_breaks}",
                failed.len(),
                failed.iter().filter(|l| l.rich).count(),
            )
        }
    );
    println!(
        "  load generator's own delay (a 1 ms timer on its runtime, how late it fires): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&r.lateness, 0.50)),
        ms(percentile(&r.lateness, 0.99)),
        ms(r.lateness.last().copied().unwrap_or_default())
    );
    println!(
        "  server CPU during fan-out: {:.0}% of one core",
        r.percent(r.server_cpu.iter().sum())
    );
    println!(
        "  load generator CPU during fan-out: {:.0}% of one core",
        r.percent(r.own_cpu)
    );
    println!(
        "  machine load average (1 5 15 min): {} before, {} after",
        r.load_before, r.load_after
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_keeps_each_messages_first_and_last_copy() {
        let ms = Duration::from_millis;
        let mut spread = Spread::new(3);
        // Two listeners; message 2 reached neither.
        spread.add(&[(0, ms(4)), (1, ms(9))]);
        spread.add(&[(1, ms(2)), (0, ms(7))]);
        let [first, last] = spread.sorted();
        assert_eq!(
            first,
            [ms(2), ms(4)],
            "message 1 first at 2 ms, message 0 at 4 ms"
        );
        assert_eq!(
            last,
            [ms(7), ms(9)],
            "message 0 last at 7 ms, message 1 at 9 ms"
        );
        // A number past the messages sent is ignored, not a panic.
        let mut spread = Spread::new(1);
        spread.add(&[(5, ms(1))]);
        assert_eq!(spread.sorted(), [Vec::<Duration>::new(), Vec::new()]);
    }

    #[test]
    fn numbers_are_found_across_reads_and_frames() {
        let stream = b"\x81\x30{\"type\":\"new_message\",\"payload\":{\"message\":\"17\"}}\x81\x30{\"type\":\"new_message\",\"payload\":{\"message\":\"18\"}}";
        for split in 0..stream.len() {
            let mut pending = Vec::new();
            let mut found = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                pending.extend_from_slice(part);
                take_messages(&mut pending, false, |n, _| found.push(n));
            }
            assert_eq!(found, vec![17, 18], "split at {split}");
            assert!(
                pending.len() < NUMBER_MARK.len() + 8,
                "scanned bytes are dropped"
            );
        }
    }

    #[test]
    fn rich_frames_yield_numbers_with_ids_across_reads() {
        let stream = b"\x81\x7e\x00\x60{\"type\":\"new_message\",\"payload\":{\"message\":\"3\",\"from\":\"b\",\"sent\":\"t\",\"id\":41,\"room\":\"general\"}}\x81\x7e\x00\x60{\"type\":\"new_message\",\"payload\":{\"message\":\"4\",\"from\":\"b\",\"sent\":\"t\",\"id\":42,\"room\":\"general\"}}";
        for split in 0..stream.len() {
            let mut pending = Vec::new();
            let mut found = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                pending.extend_from_slice(part);
                take_messages(&mut pending, true, |n, id| found.push((n, id)));
            }
            assert_eq!(
                found,
                vec![(3, Some(41)), (4, Some(42))],
                "split at {split}"
            );
        }
    }

    #[test]
    fn the_order_check_counts_gaps_duplicates_and_id_breaks() {
        let mut c = OrderCheck::default();
        for (n, id) in [(0, 10), (1, 11), (2, 12)] {
            c.see(n, Some(id));
        }
        assert!(c.clean(3));
        assert!(!c.clean(4), "a missing last message is short");
        let mut c = OrderCheck::default();
        c.see(0, None);
        c.see(2, None);
        c.see(2, None);
        assert_eq!((c.gaps, c.duplicates), (1, 1));
        let mut c = OrderCheck::default();
        c.see(0, Some(5));
        c.see(1, Some(7));
        assert_eq!(c.id_breaks, 1);
        assert!(!c.clean(2));
    }
}

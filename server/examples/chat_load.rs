//! Chat fan-out benchmark: starts a real `termroom serve` child process, opens
//! N chat clients in one room and one sender at a fixed rate, and prints
//! deliveries per second, fan-out latency p50/p99/max (against the intended
//! send time) and the server's memory per idle connection (RSS slope over N).
//! Listeners are a mix of classic and rich (`v=1`) clients; each checks that
//! the messages (numbered in their text, rich ones also carrying ids) arrive
//! in order, without gaps or duplicates.
use std::{
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::{io::AsyncReadExt, net::TcpStream, sync::Mutex};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

#[path = "support/bench_server.rs"]
mod bench_server;

/// Benchmark settings.
#[derive(Debug, Parser)]
#[command(about = "termroom chat fan-out benchmark")]
struct Args {
    /// The termroom binary to benchmark.
    #[arg(long, default_value = "target/release/termroom")]
    server_bin: PathBuf,
    /// Client counts at which idle memory is sampled (the last one runs the fan-out test).
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
    /// Port for the server.
    #[arg(long, default_value_t = 39123)]
    port: u16,
    /// Percentage of listeners that speak the rich protocol (`v=1`); the rest are classic.
    #[arg(long, default_value_t = 50)]
    rich_percent: u32,
}

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

/// Per-listener check that messages arrive in order, without gaps or duplicates.
#[derive(Debug, Default, Clone, Copy)]
struct OrderCheck {
    /// The message number expected next.
    next: u32,
    /// Message numbers skipped.
    gaps: u64,
    /// Message numbers seen again or late.
    duplicates: u64,
    /// Last message id seen (rich clients).
    last_id: Option<i64>,
    /// Ids that did not follow the previous one by exactly one.
    id_breaks: u64,
}

impl OrderCheck {
    fn see(&mut self, n: u32, id: Option<i64>) {
        if n == self.next {
            self.next += 1;
        } else if n > self.next {
            self.gaps += u64::from(n - self.next);
            self.next = n + 1;
        } else {
            self.duplicates += 1;
        }
        if let Some(id) = id {
            if self.last_id.is_some_and(|last| id != last + 1) {
                self.id_breaks += 1;
            }
            self.last_id = Some(id);
        }
    }

    fn clean(&self, total: usize) -> bool {
        self.gaps == 0 && self.duplicates == 0 && self.id_breaks == 0 && self.next as usize == total
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
    sorted[idx.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The load generator gets the CPUs the server is not pinned to; one worker
    // thread per CPU avoids cross-thread wake-ups competing for the same core.
    let cpus = pin_self_away_from(&args.server_cpus)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let bin = &args.server_bin;
    let password = "bench-password-123";
    bench_server::add_member(bin, data.path(), "bench", password).await?;
    let addr = format!("127.0.0.1:{}", args.port);
    let mut server = bench_server::serve(
        bin,
        &addr,
        data.path(),
        &[
            "--chat-rate",
            "100000",
            // The listeners never answer pings: keep them through the run.
            "--chat-idle-secs",
            "3600",
            // Every listener is the same bench user.
            "--max-chat-sockets-per-user",
            "1000000",
        ],
        "warn",
    )?;
    let pid = server.id().context("server pid")?;
    pin_server(pid, &args.server_cpus)?;
    let base = format!("http://{addr}");
    let ws_base = format!("ws://{addr}");
    let http = bench_server::same_origin_client(&base)?;
    bench_server::wait_for_login(&http, &base, "bench", password).await?;

    // Idle memory: RSS at several client counts.
    let mut clients: Vec<(TcpStream, bool)> = Vec::new();
    // `rich_percent` of the listeners are rich, spread evenly over the run.
    let pct = args.rich_percent.min(100) as usize;
    let rich_at = move |i: usize| (i * pct) / 100 != ((i + 1) * pct) / 100;
    // Warm up allocator and runtime with a few connections first.
    for _ in 0..20 {
        let rich = rich_at(clients.len());
        clients.push((open_listener(&http, &base, &addr, rich).await?, rich));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = vec![(clients.len(), bench_server::rss_kib(pid)?)];
    for &n in &args.clients {
        while clients.len() < n {
            let rich = rich_at(clients.len());
            clients.push((open_listener(&http, &base, &addr, rich).await?, rich));
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        samples.push((clients.len(), bench_server::rss_kib(pid)?));
    }
    println!("idle memory (server RSS):");
    for (n, kib) in &samples {
        println!("  {n:>5} clients: {kib:>8} KiB");
    }
    let (n0, r0) = samples[0];
    let (n1, r1) = samples[samples.len() - 1];
    let slope = (r1 as f64 - r0 as f64) * 1024.0 / (n1 - n0).max(1) as f64;
    println!(
        "  memory per idle connection (slope): {:.1} KB",
        slope / 1000.0
    );

    // Fan-out: every client reads; one sender posts at a fixed rate.
    let n = clients.len();
    let total = (args.rate as u64 * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let start = Instant::now() + Duration::from_millis(500);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n * total)));
    let rich_count = clients.iter().filter(|(_, rich)| *rich).count();
    let read_deadline =
        tokio::time::Instant::from_std(start + interval * total as u32) + Duration::from_secs(30);
    let lateness = tokio::spawn(generator_lateness(start, interval * total as u32));
    let mut readers = Vec::new();
    for (mut tcp, rich) in clients {
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut local = Vec::with_capacity(total);
            let mut check = OrderCheck::default();
            let mut buf = vec![0u8; 4096];
            let mut pending = Vec::with_capacity(512);
            // One deadline for the whole fan-out (a timer per read would
            // cost the generator 100 k timer updates a second).
            let read_all = async {
                while local.len() < total {
                    match tcp.read(&mut buf).await {
                        Ok(n) if n > 0 => {
                            let now = Instant::now();
                            pending.extend_from_slice(buf.get(..n).unwrap_or_default());
                            take_messages(&mut pending, rich, |i, id| {
                                check.see(i, id);
                                local.push(now.saturating_duration_since(start + interval * i));
                            });
                        }
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout_at(read_deadline, read_all).await;
            let got = local.len();
            latencies.lock().await.extend(local);
            (got, rich, check)
        }));
    }
    let sender_url = format!("{ws_base}/ws?otp={}", ticket(&http, &base).await?);
    let load_before = load_average();
    let cpu_before = bench_server::cpu_secs(pid)?;
    let own_cpu_before = bench_server::cpu_secs(std::process::id())?;
    let sender =
        std::thread::spawn(move || send_at_fixed_rate(&sender_url, start, interval, total));
    let mut delivered = 0usize;
    let mut checks = Vec::with_capacity(n);
    for r in readers {
        let (got, rich, check) = r.await?;
        delivered += got;
        checks.push((rich, check));
    }
    let elapsed = start.elapsed();
    let server_cpu = bench_server::cpu_secs(pid)? - cpu_before;
    let own_cpu = bench_server::cpu_secs(std::process::id())? - own_cpu_before;
    match sender.join() {
        Ok(r) => r?,
        Err(_) => bail!("the sender thread panicked"),
    }
    let mut lat = latencies.lock().await.clone();
    lat.sort();
    let mut late = lateness.await?;
    late.sort();
    println!(
        "fan-out: {n} clients, {} msg/s for {} s",
        args.rate, args.seconds
    );
    println!(
        "  deliveries: {delivered} of {} ({:.0} per second)",
        n * total,
        delivered as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency vs intended send time: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    let bad: Vec<&(bool, OrderCheck)> = checks.iter().filter(|(_, c)| !c.clean(total)).collect();
    let sum = |f: fn(&OrderCheck) -> u64| checks.iter().map(|(_, c)| f(c)).sum::<u64>();
    println!(
        "  order check ({rich_count} rich, {} classic listeners): {}",
        n - rich_count,
        if bad.is_empty() {
            "every listener got every message once, in order (rich: consecutive ids)".to_string()
        } else {
            format!(
                "{} listeners FAILED ({} rich): gaps {}, duplicates/late {}, id breaks {}, short {}",
                bad.len(),
                bad.iter().filter(|(rich, _)| *rich).count(),
                sum(|c| c.gaps),
                sum(|c| c.duplicates),
                sum(|c| c.id_breaks),
                checks
                    .iter()
                    .filter(|(_, c)| (c.next as usize) < total)
                    .count()
            )
        }
    );
    println!(
        "  load generator's own delay (a 1 ms timer on its runtime, how late it fires): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&late, 0.50).as_secs_f64() * 1e3,
        percentile(&late, 0.99).as_secs_f64() * 1e3,
        late.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  server CPU during fan-out: {:.0}% of one core",
        server_cpu / elapsed.as_secs_f64() * 100.0
    );
    println!(
        "  load generator CPU during fan-out: {:.0}% of one core",
        own_cpu / elapsed.as_secs_f64() * 100.0
    );
    println!(
        "  machine load average (1 5 15 min): {load_before} before, {} after",
        load_average()
    );
    server.kill().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

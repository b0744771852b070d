//! Chat fan-out benchmark: starts a real `termroom serve` child process, opens
//! N chat clients in one room and one sender at a fixed rate, and prints
//! deliveries per second, fan-out latency p50/p99/max (against the intended
//! send time) and the server's memory per idle connection (RSS slope over N).
use std::{
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::{process::Command, sync::Mutex};
use tokio_tungstenite::tungstenite::Message;

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
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Moves this process (the load generator) onto the CPUs the server does not use.
fn pin_self_away_from(server_cpus: &str) -> anyhow::Result<()> {
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
        return Ok(());
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
    Ok(())
}

/// CPU time (user + system) the process has used, from /proc/PID/stat.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|f| f.parse::<f64>().ok())
        .context("utime")?
        + fields
            .get(12)
            .and_then(|f| f.parse::<f64>().ok())
            .context("stime")?;
    // USER_HZ is 100 on Linux.
    Ok(ticks / 100.0)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS not found")
}

async fn ticket(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let r = http.post(format!("{base}/api/chat_ticket")).send().await?;
    if !r.status().is_success() {
        bail!("ticket: {}", r.status());
    }
    Ok(r.json::<String>().await?)
}

async fn open_client(http: &reqwest::Client, base: &str, ws_base: &str) -> anyhow::Result<Ws> {
    let otp = ticket(http, base).await?;
    let (ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}/ws?otp={otp}")).await?;
    Ok(ws)
}

/// The number in `"message":"<n>"` of a `new_message` frame.
fn message_number(frame: &str) -> Option<u32> {
    let start = frame.find("\"message\":\"")? + "\"message\":\"".len();
    let rest = &frame[start..];
    rest[..rest.find('"')?].parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = tempfile::tempdir()?;
    let bin = &args.server_bin;
    let password = "bench-password-123";
    let mut add = Command::new(bin)
        .args(["user", "add", "bench", "--role", "member", "--data-dir"])
        .arg(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    if let Some(mut stdin) = add.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(format!("{password}\n").as_bytes()).await?;
    }
    if !add.wait().await?.success() {
        bail!("creating the bench user failed");
    }
    let addr = format!("127.0.0.1:{}", args.port);
    let mut server = Command::new(bin)
        .args([
            "serve",
            "--addr",
            &addr,
            "--chat-rate",
            "100000",
            "--data-dir",
        ])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().context("server pid")?;
    pin_self_away_from(&args.server_cpus)?;
    let base = format!("http://{addr}");
    let ws_base = format!("ws://{addr}");
    let http = reqwest::Client::builder().cookie_store(true).build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(format!("{base}/login"))
            .json(&serde_json::json!({"username": "bench", "password": password}))
            .send()
            .await;
        if matches!(&r, Ok(r) if r.status().is_success()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Idle memory: RSS at several client counts.
    let mut clients: Vec<Ws> = Vec::new();
    // Warm up allocator and runtime with a few connections first.
    for _ in 0..20 {
        clients.push(open_client(&http, &base, &ws_base).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = vec![(clients.len(), rss_kib(pid)?)];
    for &n in &args.clients {
        while clients.len() < n {
            clients.push(open_client(&http, &base, &ws_base).await?);
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        samples.push((clients.len(), rss_kib(pid)?));
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
    let mut readers = Vec::new();
    for mut ws in clients {
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut local = Vec::with_capacity(total);
            while local.len() < total {
                match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let now = Instant::now();
                        // A cheap scan instead of a full parse: the load generator
                        // shares the machine with the server and must stay light.
                        let Some(i) = message_number(t.as_str()) else {
                            continue;
                        };
                        let intended = start + interval * i;
                        local.push(now.saturating_duration_since(intended));
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            let got = local.len();
            latencies.lock().await.extend(local);
            got
        }));
    }
    let mut sender = open_client(&http, &base, &ws_base).await?;
    let cpu_before = cpu_secs(pid)?;
    let sender_task = tokio::spawn(async move {
        for i in 0..total as u32 {
            tokio::time::sleep_until((start + interval * i).into()).await;
            let msg =
                serde_json::json!({"type": "send_message", "payload": {"message": i.to_string()}});
            if sender
                .send(Message::Text(msg.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        // drain own copies until the readers finish
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), sender.next()).await {}
    });
    let mut delivered = 0usize;
    for r in readers {
        delivered += r.await?;
    }
    let elapsed = start.elapsed();
    let server_cpu = cpu_secs(pid)? - cpu_before;
    sender_task.abort();
    let mut lat = latencies.lock().await.clone();
    lat.sort();
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
    println!(
        "  server CPU during fan-out: {:.0}% of one core",
        server_cpu / elapsed.as_secs_f64() * 100.0
    );
    server.kill().await.ok();
    Ok(())
}

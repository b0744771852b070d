//! Login flood benchmark: starts a real `termroom serve` child process and
//! fires N bad logins at once (each from its own address through a trusted
//! proxy header, the worst case: no address limit applies), with one good
//! login in the middle. Prints the server's RSS before, at its peak during
//! and after each flood, how the bad logins were answered, and how long the
//! good login took (retrying after `Retry-After` when refused as busy).
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;

#[path = "support/bench_server.rs"]
mod bench_server;

/// Benchmark settings.
#[derive(Debug, Parser)]
#[command(about = "termroom login flood benchmark")]
struct Args {
    /// The termroom binary to benchmark.
    #[arg(long, default_value = "target/release/termroom")]
    server_bin: PathBuf,
    /// Bad logins sent at the same time per flood.
    #[arg(long, default_value_t = 1000)]
    bad: usize,
    /// Floods in a row (memory must not grow from one to the next).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Send every bad login from the benchmark's own address (no
    /// X-Forwarded-For): then the address limit answers most of them.
    #[arg(long)]
    one_address: bool,
    /// Extra argument for `termroom serve` (repeatable), e.g. `--server-arg=--hash-workers=2`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Port for the server.
    #[arg(long, default_value_t = 39124)]
    port: u16,
}

/// How often the server's RSS is sampled during a flood.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// How long the server may take to answer its first login.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the good login keeps retrying when refused as busy.
const GOOD_LOGIN_GIVE_UP: Duration = Duration::from_secs(30);
/// Good logins run in parallel before measuring, so that "before" is a
/// server that has served logins (its hashing workers have since gone idle
/// and freed their buffers).
const WARMUP_LOGINS: usize = 16;
/// Time for the server to settle after a flood before "after" is measured.
const SETTLE: Duration = Duration::from_secs(2);

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One login (with the browser's device cookie `device`, `name=value`, if
/// given); returns the status and the `Retry-After` seconds if any.
async fn login(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
    forwarded_for: Option<&str>,
    device: Option<&str>,
) -> anyhow::Result<(u16, Option<u64>)> {
    let mut req = http
        .post(format!("{base}/login"))
        .json(&serde_json::json!({"username": name, "password": password}));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    if let Some(cookie) = device {
        // A request with a cookie must say where it comes from (CSRF check).
        req = req.header("cookie", cookie).header("origin", base);
    }
    let r = req.send().await?;
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok((r.status().as_u16(), retry))
}

/// A good login (from a browser holding `device`, if given), retrying
/// after `Retry-After` while refused with 503/429; returns the total time
/// and the number of attempts.
async fn good_login(
    http: &reqwest::Client,
    base: &str,
    password: &str,
    xff: &str,
    device: Option<&str>,
) -> anyhow::Result<(Duration, u32)> {
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, retry) = login(http, base, "bench", password, Some(xff), device).await?;
        match status {
            200 => return Ok((start.elapsed(), attempts)),
            429 | 503 if start.elapsed() < GOOD_LOGIN_GIVE_UP => {
                tokio::time::sleep(Duration::from_secs(retry.unwrap_or(1))).await;
            }
            other => bail!("good login answered {other}"),
        }
    }
}

/// Logs in once as a browser would the first time; the device cookie the
/// server gives it (`name=value`).
async fn device_cookie(
    http: &reqwest::Client,
    base: &str,
    password: &str,
) -> anyhow::Result<String> {
    let r = http
        .post(format!("{base}/login"))
        .header("x-forwarded-for", "192.0.2.2")
        .json(&serde_json::json!({"username": "bench", "password": password}))
        .send()
        .await?
        .error_for_status()?;
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("termroom_device="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .context("the server set no device cookie")
}

/// Samples the server's RSS until `stop`; returns the highest value seen.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let peak = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(kib) = bench_server::rss_kib(pid) {
                peak.fetch_max(kib, Ordering::Relaxed);
            }
            tokio::time::sleep(RSS_SAMPLE_EVERY).await;
        }
        peak.load(Ordering::Relaxed)
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
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
    let extra: Vec<&str> = ["--trusted-proxy", "127.0.0.1/32"]
        .into_iter()
        .chain(args.server_args.iter().map(String::as_str))
        .collect();
    let mut server = bench_server::serve(bin, &addr, data.path(), &extra, "error")?;
    let pid = server.id().context("server pid")?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while !matches!(
        login(&http, &base, "bench", password, Some("192.0.2.1"), None).await,
        Ok((200, _))
    ) {
        if Instant::now() > deadline {
            bail!("server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let warm = (0..WARMUP_LOGINS).map(|i| {
        let http = http.clone();
        let base = base.clone();
        async move {
            good_login(
                &http,
                &base,
                password,
                &format!("192.0.2.{}", 10 + i),
                None,
            )
            .await
        }
    });
    for r in futures::future::join_all(warm).await {
        r.context("warm-up login")?;
    }
    let device = device_cookie(&http, &base, password).await?;
    tokio::time::sleep(SETTLE).await;
    let before = bench_server::rss_kib(pid)?;
    println!(
        "login flood: {} bad logins at once, {} round(s), {}; server args: {:?}",
        args.bad,
        args.rounds,
        if args.one_address {
            "all from one address"
        } else {
            "each from its own address (X-Forwarded-For via a trusted proxy)"
        },
        args.server_args
    );
    println!("  RSS before: {:.1} MiB", mib(before));
    let mut worst_peak = 0;
    let mut worst_good = Duration::ZERO;
    let mut worst_new = Duration::ZERO;
    let mut after = before;
    for round in 0..args.rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_peak(pid, stop.clone());
        let start = Instant::now();
        let bad: Vec<_> = (0..args.bad)
            .map(|i| {
                let http = http.clone();
                let base = base.clone();
                let xff =
                    (!args.one_address).then(|| format!("10.{}.{}.{}", round, i / 256, i % 256));
                tokio::spawn(async move {
                    login(
                        &http,
                        &base,
                        &format!("nobody{i}"),
                        "wrong-password",
                        xff.as_deref(),
                        None,
                    )
                    .await
                })
            })
            .collect();
        // The good logins start while the flood is arriving: one from the
        // browser that logged in before (it holds a device cookie), one
        // from a browser never used before.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (known_from, new_from) = (
            format!("192.0.2.{}", 100 + round),
            format!("192.0.2.{}", 150 + round),
        );
        let (good, new_browser) = tokio::join!(
            good_login(&http, &base, password, &known_from, Some(&device),),
            good_login(&http, &base, password, &new_from, None,)
        );
        let mut answers: BTreeMap<String, usize> = BTreeMap::new();
        let mut refused_with_retry_after = 0;
        for task in bad {
            let key = match task.await? {
                Ok((status, retry)) => {
                    if matches!(status, 429 | 503) && retry.is_some() {
                        refused_with_retry_after += 1;
                    }
                    status.to_string()
                }
                Err(e) => format!("error: {e}"),
            };
            *answers.entry(key).or_default() += 1;
        }
        let flood_time = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.await?;
        let mut curve = Vec::new();
        let settled_at = Instant::now() + SETTLE;
        while Instant::now() < settled_at {
            tokio::time::sleep(SETTLE / 8).await;
            curve.push(format!("{:.1}", mib(bench_server::rss_kib(pid)?)));
        }
        after = bench_server::rss_kib(pid)?;
        let (good_time, good_attempts) = good?;
        let (new_time, new_attempts) = new_browser?;
        worst_peak = worst_peak.max(peak);
        worst_good = worst_good.max(good_time);
        worst_new = worst_new.max(new_time);
        println!(
            "  round {}: flood answered in {:.2} s",
            round + 1,
            flood_time.as_secs_f64()
        );
        println!("    bad logins by status: {answers:?} ({refused_with_retry_after} refused with Retry-After)");
        println!(
            "    good login during the flood, browser that logged in before: {:.0} ms ({good_attempts} attempt(s))",
            good_time.as_secs_f64() * 1e3
        );
        println!(
            "    good login during the flood, new browser: {:.0} ms ({new_attempts} attempt(s))",
            new_time.as_secs_f64() * 1e3
        );
        println!(
            "    RSS peak {:.1} MiB, after {:.1} MiB (every {} ms after the flood: {})",
            mib(peak),
            mib(after),
            (SETTLE / 8).as_millis(),
            curve.join(" ")
        );
    }
    let grown = mib(after) - mib(before);
    println!("summary:");
    println!(
        "  peak RSS {:.1} MiB (target < 200 MB): {}",
        mib(worst_peak),
        if worst_peak * 1024 < 200_000_000 {
            "ok"
        } else {
            "MISSED"
        }
    );
    println!(
        "  RSS after - before: {grown:+.1} MiB (target within 20 MB): {}",
        if (after.abs_diff(before) * 1024) <= 20_000_000 {
            "ok"
        } else {
            "MISSED"
        }
    );
    println!(
        "  slowest good login from a browser that logged in before: {:.0} ms (target < 2 s): {}",
        worst_good.as_secs_f64() * 1e3,
        if worst_good < Duration::from_secs(2) {
            "ok"
        } else {
            "MISSED"
        }
    );
    println!(
        "  slowest good login from a new browser: {:.0} ms (waits in the strangers' queue)",
        worst_new.as_secs_f64() * 1e3
    );
    server.kill().await.ok();
    Ok(())
}

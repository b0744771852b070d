//! Per-session memory benchmark: starts a real `termroom serve` child and a
//! real sshd, opens N terminal sessions through `/ws/term` (as the browser
//! does), and prints the server's RSS at each step divided by N: sessions
//! open at a prompt, after each printed a screenful, and after their sockets
//! closed (sessions kept for reattach). Two warm-up sessions first, so that
//! what the first SSH connection sets up once (crypto tables, runtime
//! threads' heaps) is not charged to every session.
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use app::protocol::term::{ClientFrame, ServerFrame};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[path = "support/bench_server.rs"]
mod bench_server;
#[path = "../tests/common/sshd.rs"]
mod sshd;

/// Benchmark settings.
#[derive(Debug, Parser)]
#[command(about = "termroom per-session memory benchmark")]
struct Args {
    /// The termroom binary to benchmark.
    #[arg(long, default_value = "target/release/termroom")]
    server_bin: PathBuf,
    /// Sessions measured (after the warm-up ones).
    #[arg(long, default_value_t = 30)]
    sessions: usize,
    /// Terminal size of every session, columns.
    #[arg(long, default_value_t = 160)]
    cols: u16,
    /// Terminal size of every session, rows.
    #[arg(long, default_value_t = 50)]
    rows: u16,
}

/// Sessions opened and kept before the baseline is taken.
const WARM_UP: usize = 2;
/// How long output must pause before a terminal counts as settled.
const QUIET: Duration = Duration::from_millis(300);
/// How long a server gets to settle before RSS is read.
const SETTLE: Duration = Duration::from_secs(2);
const PASSWORD: &str = "bench-password-123";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads output frames until the terminal has been quiet for [`QUIET`]
/// (after at least one byte); the number of output bytes read.
async fn read_until_quiet(ws: &mut Ws) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut total = 0;
    loop {
        let wait = if total == 0 {
            deadline.saturating_duration_since(Instant::now())
        } else {
            QUIET
        };
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) if total > 0 => return Ok(total),
            Err(_) => bail!("no output from the terminal"),
            Ok(None) => bail!("terminal socket closed"),
            Ok(Some(m)) => {
                if let Message::Binary(b) = m? {
                    match ServerFrame::decode(&b)? {
                        ServerFrame::Output { data, .. } | ServerFrame::Snapshot { data, .. } => {
                            total += data.len();
                        }
                        ServerFrame::Exit { .. } => bail!("terminal exited"),
                        ServerFrame::Notice { .. }
                        | ServerFrame::Size { .. }
                        | ServerFrame::Watchers(_)
                        | ServerFrame::Broadcast { .. } => {}
                    }
                }
            }
        }
    }
}

/// Opens a session on host `box` and attaches a socket to it.
async fn open(http: &reqwest::Client, base: &str, args: &Args) -> anyhow::Result<Ws> {
    let t: serde_json::Value = http
        .post(format!("{base}/api/term_open"))
        .form(&[
            ("target", "box".to_string()),
            ("cols", args.cols.to_string()),
            ("rows", args.rows.to_string()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = t["session_id"].as_str().context("no session id")?;
    let otp = t["otp"].as_str().context("no ticket")?;
    let ws_base = base.replacen("http", "ws", 1);
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_base}/ws/term/{id}?otp={otp}")).await?;
    ws.send(Message::Binary(
        ClientFrame::ResumeFrom { seq: 0 }.encode().into(),
    ))
    .await?;
    read_until_quiet(&mut ws).await?;
    Ok(ws)
}

/// Types `line` and a return into `ws`, then reads until it is quiet.
async fn run(ws: &mut Ws, line: &str) -> anyhow::Result<usize> {
    ws.send(Message::Binary(
        ClientFrame::Input(format!("{line}\r").into_bytes())
            .encode()
            .into(),
    ))
    .await?;
    read_until_quiet(ws).await
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints one step: RSS and its growth per measured session over `base`.
fn report(step: &str, kib: u64, base: u64, n: usize) {
    let per = (kib as f64 - base as f64) / n as f64;
    println!(
        "| {step} | {:.1} | {:+.0} KiB ({:+.2} MB) |",
        mib(kib),
        per,
        per * 1024.0 / 1e6
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = if args.server_bin.exists() {
        args.server_bin.clone()
    } else {
        PathBuf::from("..").join(&args.server_bin)
    };
    let sshd = sshd::Sshd::start();
    let data = tempfile::tempdir()?;
    bench_server::add_ssh_host(
        &bin,
        data.path(),
        "bench",
        PASSWORD,
        &bench_server::SshTarget {
            port: sshd.port,
            user: sshd::TEST_USER,
            key: &sshd.client_key.path,
            fingerprint: &sshd.host_fingerprint,
        },
    )
    .await?;
    let addr = bench_server::free_addr()?;
    let limit = (args.sessions + WARM_UP).to_string();
    let server = bench_server::serve(
        &bin,
        &addr.to_string(),
        data.path(),
        &["--max-sessions-per-user", &limit],
        "warn",
    )?;
    let pid = server.id().context("server exited")?;
    let base = format!("http://{addr}");
    let http = bench_server::same_origin_client(&base)?;
    bench_server::wait_for_login(&http, &base, "bench", PASSWORD).await?;
    let idle = bench_server::rss_kib(pid)?;

    let mut warm = Vec::new();
    for _ in 0..WARM_UP {
        let mut ws = open(&http, &base, &args).await?;
        run(&mut ws, &format!("seq 1 {}", args.rows as usize * 4)).await?;
        warm.push(ws);
    }
    tokio::time::sleep(SETTLE).await;
    let baseline = bench_server::rss_kib(pid)?;

    let n = args.sessions;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(open(&http, &base, &args).await?);
    }
    tokio::time::sleep(SETTLE).await;
    let opened = bench_server::rss_kib(pid)?;

    // A screenful of numbered lines, then a full-screen redraw of the
    // bottom line: the screen model and the ring both in use.
    let mut printed = 0;
    for ws in &mut sockets {
        printed += run(ws, &format!("seq 1 {}", args.rows as usize * 4)).await?;
    }
    tokio::time::sleep(SETTLE).await;
    let used = bench_server::rss_kib(pid)?;

    for mut ws in sockets {
        ws.close(None).await.ok();
    }
    tokio::time::sleep(SETTLE).await;
    let detached = bench_server::rss_kib(pid)?;

    println!(
        "{n} sessions of {}×{} over SSH (after {WARM_UP} warm-up sessions); \
         server idle after login {:.1} MiB, with the warm-up sessions {:.1} MiB",
        args.cols,
        args.rows,
        mib(idle),
        mib(baseline)
    );
    println!("\n| step | server RSS (MiB) | per session |");
    println!("|---|---|---|");
    report(
        "sessions open at a prompt, sockets attached",
        opened,
        baseline,
        n,
    );
    report(
        &format!(
            "after each printed {} lines ({:.1} KiB of output each, in the ring)",
            args.rows as usize * 4,
            printed as f64 / n as f64 / 1024.0
        ),
        used,
        baseline,
        n,
    );
    report(
        "sockets closed, sessions kept for reattach",
        detached,
        baseline,
        n,
    );
    println!(
        "\nper attached socket: {:+.0} KiB",
        (used as f64 - detached as f64) / n as f64
    );
    drop(warm);
    Ok(())
}

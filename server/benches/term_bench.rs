//! Terminal benchmark: keystroke-to-echo latency, bulk output throughput and
//! Ctrl-C recovery, measured through termroom (a `termroom serve` child process,
//! WebSocket client) and directly with OpenSSH `ssh -tt` to the same sshd, in
//! the same run, rounds of the two paths interleaved. Bulk output also goes
//! through a second termroom with recording off (what recording costs), and
//! the recorder's syncs under `yes` are read from the server's log. Bulk output is checked
//! byte for byte; both SSH connections use the same cipher (read from sshd's
//! log, then pinned with `ssh -c`). The termroom figures are the server path
//! as a Rust WebSocket client sees it, not a browser. Run: `cargo bench -p
//! server --bench term_bench` after `make build` (uses target/release/termroom;
//! override with TERMROOM_BIN).
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use app::protocol::term::{ClientFrame, ServerFrame};
use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, ChildStdin, ChildStdout, Command},
};
use tokio_tungstenite::tungstenite::Message;

#[path = "../examples/support/bench_server.rs"]
mod bench_server;
#[path = "../tests/common/sshd.rs"]
mod sshd;

/// Keystrokes measured for echo latency, per path.
const KEYSTROKES: usize = 1000;
/// Echo rounds per path, alternating termroom and direct, so that both see the
/// same machine noise ([`KEYSTROKES`] / this many keys per round).
const ECHO_ROUNDS: usize = 10;
/// Ctrl-C samples per path, alternating.
const CTRL_C_SAMPLES: usize = 20;
/// Size of the file `cat` prints for the throughput test.
const BULK_BYTES: usize = 64 << 20;
/// Bulk rounds per path, alternating termroom and direct, so that both see
/// the same machine noise; the median is reported.
const BULK_ROUNDS: usize = 5;
/// How long `yes` runs before Ctrl-C (long enough to fill every buffer on the way).
const YES_FOR: Duration = Duration::from_secs(1);
/// How long `yes` runs for the recorder's sync count.
const SYNC_YES_FOR: Duration = Duration::from_secs(5);
/// The prompt set in both shells, to recognise "back at the prompt".
const PROMPT: &str = "BENCH-PROMPT> ";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal we can type into and read from.
trait Tty {
    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()>;
    /// Next chunk of output (empty on end).
    async fn read(&mut self) -> anyhow::Result<Vec<u8>>;
}

struct WsTty {
    ws: Ws,
}

impl Tty for WsTty {
    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.ws
            .send(Message::Binary(
                ClientFrame::Input(bytes.to_vec()).encode().into(),
            ))
            .await?;
        Ok(())
    }
    async fn read(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => match ServerFrame::decode(&b)? {
                    ServerFrame::Output { data, .. } | ServerFrame::Snapshot { data, .. } => {
                        return Ok(data)
                    }
                    ServerFrame::Exit { .. } => return Ok(vec![]),
                    ServerFrame::Notice { text, .. } => eprintln!("notice: {text}"),
                    ServerFrame::Size { .. }
                    | ServerFrame::Watchers(_)
                    | ServerFrame::Broadcast { .. } => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("terminal socket: {e}"),
                None => return Ok(vec![]),
            }
        }
    }
}

struct SshTty {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    buf: Vec<u8>,
}

impl Tty for SshTty {
    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stdin.write_all(bytes).await?;
        self.stdin.flush().await?;
        Ok(())
    }
    async fn read(&mut self) -> anyhow::Result<Vec<u8>> {
        let n = self.stdout.read(&mut self.buf).await?;
        Ok(self.buf[..n].to_vec())
    }
}

fn ssh_cmd(port: u16, key: &Path, cipher: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args([
        "-tt",
        "-q",
        "-c",
        cipher,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-i",
    ])
    .arg(key)
    .args([
        "-p",
        &port.to_string(),
        &format!("{}@127.0.0.1", sshd::TEST_USER),
    ]);
    c
}

fn spawn_ssh(port: u16, key: &Path, cipher: &str) -> anyhow::Result<SshTty> {
    let mut child = ssh_cmd(port, key, cipher)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take().context("ssh stdin")?;
    let stdout = child.stdout.take().context("ssh stdout")?;
    Ok(SshTty {
        _child: child,
        stdin,
        stdout,
        buf: vec![0; 256 * 1024],
    })
}

/// Reads until `needle` appears in the output after this call; returns bytes read.
async fn read_until<T: Tty>(t: &mut T, needle: &str, limit: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + limit;
    let mut tail = Vec::new();
    let mut total = 0;
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), t.read())
            .await
            .with_context(|| format!("waiting for {needle:?}"))??;
        if chunk.is_empty() {
            bail!("terminal ended while waiting for {needle:?}");
        }
        total += chunk.len();
        tail.extend_from_slice(&chunk);
        if tail.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return Ok(total);
        }
        let keep = tail.len().saturating_sub(needle.len());
        tail.drain(..keep);
    }
}

async fn prepare<T: Tty>(t: &mut T) -> anyhow::Result<()> {
    // `READY-$((1+1))` only matches the command's output, not its echo.
    t.write(format!("PS1='{PROMPT}'; stty -echoctl; echo READY-$((1+1))\r").as_bytes())
        .await?;
    read_until(t, "READY-2", Duration::from_secs(20)).await?;
    drain_quiet(t).await;
    Ok(())
}

/// Reads until the terminal has been quiet for 200 ms (the prompt may have
/// arrived in the same chunk as the marker we waited for).
async fn drain_quiet<T: Tty>(t: &mut T) {
    while let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(200), t.read()).await {
        if c.is_empty() {
            break;
        }
    }
}

/// Puts the shell into `cat >/dev/null`: in canonical mode the remote tty echoes each key at once.
async fn echo_begin<T: Tty>(t: &mut T) -> anyhow::Result<()> {
    t.write(b"cat >/dev/null\r").await?;
    drain_quiet(t).await;
    Ok(())
}

/// Types keys `first..first + n` and times each echo.
async fn echo_round<T: Tty>(
    t: &mut T,
    first: usize,
    n: usize,
    samples: &mut Vec<Duration>,
) -> anyhow::Result<()> {
    for i in first..first + n {
        let key = [b'a' + (i % 26) as u8];
        let sent = Instant::now();
        t.write(&key).await?;
        loop {
            let c = tokio::time::timeout(Duration::from_secs(5), t.read())
                .await
                .context("echo timed out")??;
            if c.contains(&key[0]) {
                break;
            }
        }
        samples.push(sent.elapsed());
        if i % 100 == 99 {
            // stay far below the canonical line limit
            t.write(b"\r").await?;
            drain_quiet(t).await;
        }
    }
    Ok(())
}

/// Ends `cat`.
async fn echo_end<T: Tty>(t: &mut T) -> anyhow::Result<()> {
    t.write(b"\x04").await?;
    drain_quiet(t).await;
    Ok(())
}

/// Reads until `needle` appears; returns everything read.
async fn read_all_until<T: Tty>(
    t: &mut T,
    needle: &[u8],
    limit: Duration,
    capacity: usize,
) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::with_capacity(capacity);
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), t.read())
            .await
            .context("waiting for the end of the bulk output")??;
        if chunk.is_empty() {
            bail!("terminal ended during the bulk output");
        }
        let from = all.len().saturating_sub(needle.len());
        all.extend_from_slice(&chunk);
        if all[from..].windows(needle.len()).any(|w| w == needle) {
            return Ok(all);
        }
    }
}

/// Checks that `received` holds the file exactly once, as the tty sends it
/// (every `\n` as `\r\n`), directly followed by the end marker; returns the
/// number of file bytes seen.
fn check_bulk(received: &[u8], line: &[u8], lines: usize, path: &str) -> anyhow::Result<usize> {
    let mut expected_line = line[..line.len() - 1].to_vec();
    expected_line.extend_from_slice(b"\r\n");
    let Some(start) = received
        .windows(expected_line.len())
        .position(|w| w == expected_line.as_slice())
    else {
        bail!("{path}: the bulk output never shows its first line");
    };
    let body = &received[start..];
    let want = expected_line.len() * lines;
    if body.len() < want {
        bail!(
            "{path}: received {} bytes of the file, expected {want}",
            body.len()
        );
    }
    for (i, got) in body[..want].chunks(expected_line.len()).enumerate() {
        if got != expected_line.as_slice() {
            bail!(
                "{path}: line {i} of the bulk output differs: {:?}",
                String::from_utf8_lossy(got)
            );
        }
    }
    if !body[want..].starts_with(b"DONE-4") {
        bail!(
            "{path}: after {lines} lines came {:?} instead of the end marker (extra or missing bytes)",
            String::from_utf8_lossy(&body[want..body.len().min(want + 80)])
        );
    }
    Ok(want)
}

/// `cat`s the file; returns MB/s of terminal output received after checking
/// every byte of it.
async fn throughput<T: Tty>(
    t: &mut T,
    file: &Path,
    line: &[u8],
    lines: usize,
    path: &str,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    t.write(format!("cat {}; echo DONE-$((2+2))\r", file.display()).as_bytes())
        .await?;
    let got = read_all_until(
        t,
        b"DONE-4",
        Duration::from_secs(120),
        BULK_BYTES + BULK_BYTES / 64,
    )
    .await?;
    let secs = start.elapsed().as_secs_f64();
    drain_quiet(t).await;
    check_bulk(&got, line, lines, path)?;
    Ok(got.len() as f64 / secs / 1e6)
}

async fn ctrl_c<T: Tty>(t: &mut T) -> anyhow::Result<Duration> {
    t.write(b"yes\r").await?;
    let until = Instant::now() + YES_FOR;
    while Instant::now() < until {
        tokio::time::timeout(Duration::from_secs(5), t.read())
            .await
            .context("yes produced nothing")??;
    }
    let sent = Instant::now();
    t.write(b"\x03").await?;
    read_until(t, PROMPT, Duration::from_secs(30)).await?;
    Ok(sent.elapsed())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
}

/// `cipher MAC compression` of every key exchange sshd has logged, in order.
fn negotiated(sshd: &sshd::Sshd) -> Vec<String> {
    sshd.log()
        .lines()
        .filter_map(|l| l.split("kex: client->server cipher: ").nth(1))
        .map(|rest| rest.trim_end_matches(" [preauth]").trim().to_string())
        .collect()
}

/// The median of `xs`.
fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// The rounds' figures, whole MB/s, in order.
fn rounds(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = PathBuf::from(
        std::env::var("TERMROOM_BIN").unwrap_or_else(|_| "target/release/termroom".into()),
    );
    let bin = if bin.exists() {
        bin
    } else {
        PathBuf::from("..").join(bin)
    };
    let sshd = sshd::Sshd::start();
    // A file of printable lines, readable by the ssh test user.
    let file = sshd.dir.path().join("bulk.txt");
    let line: Vec<u8> = (0..79)
        .map(|i| b'!' + (i % 90) as u8)
        .chain([b'\n'])
        .collect();
    let lines = BULK_BYTES / line.len();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for _ in 0..lines {
            f.write_all(&line)?;
        }
        f.flush()?;
    }
    let data = tempfile::tempdir()?;
    let pw = "bench-password-123\n";
    let target = bench_server::SshTarget {
        port: sshd.port,
        user: sshd::TEST_USER,
        key: &sshd.client_key.path,
        fingerprint: &sshd.host_fingerprint,
    };
    bench_server::add_ssh_host(&bin, data.path(), "bench", pw.trim(), &target).await?;
    let data_off = tempfile::tempdir()?;
    bench_server::add_ssh_host(&bin, data_off.path(), "bench", pw.trim(), &target).await?;
    let addr = bench_server::free_addr()?;
    let log_file = data.path().join("server.log");
    let mut server = bench_server::serve_with_output(
        &bin,
        &addr.to_string(),
        data.path(),
        &[],
        "warn,server::term::recorder=info",
        Some(&log_file),
    )?;
    let base = format!("http://{addr}");
    let http = bench_server::same_origin_client(&base)?;
    bench_server::wait_for_login(&http, &base, "bench", pw.trim()).await?;
    let addr_off = bench_server::free_addr()?;
    let mut server_off = bench_server::serve(
        &bin,
        &addr_off.to_string(),
        data_off.path(),
        &["--no-recording"],
        "warn",
    )?;
    let base_off = format!("http://{addr_off}");
    let http_off = bench_server::same_origin_client(&base_off)?;
    bench_server::wait_for_login(&http_off, &base_off, "bench", pw.trim()).await?;
    let open = |http: reqwest::Client, addr: std::net::SocketAddr| async move {
        let t: serde_json::Value = http
            .post(format!("http://{addr}/api/term_open"))
            .form(&[("target", "box"), ("cols", "120"), ("rows", "40")])
            .send()
            .await?
            .json()
            .await?;
        let (id, otp) = (
            t["session_id"].as_str().context("session")?.to_string(),
            t["otp"].as_str().context("otp")?.to_string(),
        );
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws/term/{id}?otp={otp}")).await?;
        ws.send(Message::Binary(
            ClientFrame::ResumeFrom { seq: 0 }.encode().into(),
        ))
        .await?;
        anyhow::Ok((WsTty { ws }, id))
    };

    let kex_before = negotiated(&sshd).len();
    let (mut tr, _) = open(http.clone(), addr).await?;
    prepare(&mut tr).await?;
    let tr_algos = negotiated(&sshd)
        .get(kex_before)
        .cloned()
        .context("sshd logged no key exchange for termroom's connection")?;
    let cipher = tr_algos
        .split_whitespace()
        .next()
        .context("no cipher in sshd's log line")?
        .to_string();
    let kex_before = negotiated(&sshd).len();
    let mut direct = spawn_ssh(sshd.port, &sshd.client_key.path, &cipher)?;
    prepare(&mut direct).await?;
    let ssh_algos = negotiated(&sshd)
        .get(kex_before)
        .cloned()
        .context("sshd logged no key exchange for the direct ssh connection")?;
    if tr_algos != ssh_algos {
        bail!("the two paths negotiated differently: termroom {tr_algos:?}, ssh {ssh_algos:?}");
    }

    let (mut e_tr, mut e_ssh) = (Vec::new(), Vec::new());
    echo_begin(&mut tr).await?;
    echo_begin(&mut direct).await?;
    let per_round = KEYSTROKES / ECHO_ROUNDS;
    for round in 0..ECHO_ROUNDS {
        echo_round(&mut tr, round * per_round, per_round, &mut e_tr).await?;
        echo_round(&mut direct, round * per_round, per_round, &mut e_ssh).await?;
    }
    echo_end(&mut tr).await?;
    echo_end(&mut direct).await?;
    e_tr.sort();
    e_ssh.sort();

    let (mut off, _) = open(http_off.clone(), addr_off).await?;
    prepare(&mut off).await?;
    let (mut all_tr, mut all_off, mut all_ssh) = (Vec::new(), Vec::new(), Vec::new());
    let (pid_on, pid_off) = (
        server.id().context("server pid")?,
        server_off.id().context("server pid")?,
    );
    // Server CPU seconds spent during each path's own rounds.
    let (mut cpu_on, mut cpu_off) = (0.0, 0.0);
    for _ in 0..BULK_ROUNDS {
        let before = bench_server::cpu_secs(pid_on)?;
        all_tr.push(throughput(&mut tr, &file, &line, lines, "termroom").await?);
        cpu_on += bench_server::cpu_secs(pid_on)? - before;
        let before = bench_server::cpu_secs(pid_off)?;
        all_off.push(throughput(&mut off, &file, &line, lines, "termroom, recording off").await?);
        cpu_off += bench_server::cpu_secs(pid_off)? - before;
        all_ssh.push(throughput(&mut direct, &file, &line, lines, "direct ssh").await?);
    }
    let mb_per_path = (BULK_ROUNDS * BULK_BYTES) as f64 / 1e6;
    let (t_tr, t_off, t_ssh) = (median(&all_tr), median(&all_off), median(&all_ssh));

    let (mut c_tr, mut c_ssh) = (Vec::new(), Vec::new());
    for _ in 0..CTRL_C_SAMPLES {
        c_tr.push(ctrl_c(&mut tr).await?);
        c_ssh.push(ctrl_c(&mut direct).await?);
    }
    c_tr.sort();
    c_ssh.sort();
    let syncs = recorder_syncs_under_yes(&http, addr, &open, &log_file).await?;

    println!(
        "terminal benchmark ({KEYSTROKES} keystrokes in {ECHO_ROUNDS} interleaved rounds, \
         {BULK_ROUNDS} x {} MiB cat checked byte for byte, {CTRL_C_SAMPLES} x Ctrl-C after {} s of yes)",
        BULK_BYTES >> 20,
        YES_FOR.as_secs_f64()
    );
    println!("ssh algorithms (sshd log), both paths: {tr_algos}");
    println!(
        "termroom = server path measured by a Rust WebSocket client (reads at full speed, never \
         sends Pause), not a browser"
    );
    println!("{:<34} {:>14} {:>14}", "", "termroom", "direct ssh -tt");
    println!(
        "{:<34} {:>11.3} ms {:>11.3} ms",
        "keystroke echo p50",
        pct(&e_tr, 0.5),
        pct(&e_ssh, 0.5)
    );
    println!(
        "{:<34} {:>11.3} ms {:>11.3} ms",
        "keystroke echo p99",
        pct(&e_tr, 0.99),
        pct(&e_ssh, 0.99)
    );
    println!(
        "{:<34} {:>9.1} MB/s {:>9.1} MB/s",
        "bulk output (cat), median", t_tr, t_ssh
    );
    println!(
        "{:<34} {:>14} {:>14}",
        "  each round (MB/s)",
        rounds(&all_tr),
        rounds(&all_ssh)
    );
    println!(
        "{:<34} {:>9.1} MB/s   (each round: {})",
        "bulk output, recording off",
        t_off,
        rounds(&all_off)
    );
    println!(
        "recording costs {:.1}% of bulk throughput (medians, same run; target under 5%)",
        (1.0 - t_tr / t_off) * 100.0
    );
    println!(
        "server CPU per MB of bulk output: {:.2} ms recording, {:.2} ms not recording ({:+.0}%)",
        cpu_on / mb_per_path * 1e3,
        cpu_off / mb_per_path * 1e3,
        (cpu_on / cpu_off - 1.0) * 100.0
    );
    println!(
        "recorder under yes for {} s: {} syncs in {:.1} s = {:.1} syncs/s, {} bytes recorded, complete: {}",
        SYNC_YES_FOR.as_secs(),
        syncs.syncs,
        syncs.secs,
        syncs.syncs as f64 / syncs.secs,
        syncs.size,
        syncs.complete
    );
    println!(
        "{:<34} {:>11.1} ms {:>11.1} ms",
        "Ctrl-C after yes -> prompt, p50",
        pct(&c_tr, 0.5),
        pct(&c_ssh, 0.5)
    );
    println!(
        "{:<34} {:>11.1} ms {:>11.1} ms",
        "Ctrl-C after yes -> prompt, max",
        pct(&c_tr, 1.0),
        pct(&c_ssh, 1.0)
    );
    println!(
        "echo overhead at p50: {:+.3} ms; throughput ratio (medians): {:.0}%",
        pct(&e_tr, 0.5) - pct(&e_ssh, 0.5),
        t_tr / t_ssh * 100.0
    );
    server.kill().await.ok();
    server_off.kill().await.ok();
    Ok(())
}

/// What the server logged when a recording closed.
struct RecorderLog {
    syncs: u64,
    secs: f64,
    size: u64,
    complete: bool,
}

/// Opens a session, runs `yes` for [`SYNC_YES_FOR`], ends the session, and
/// reads the recorder's figures for it from the server's log.
async fn recorder_syncs_under_yes<F, Fut>(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    open: &F,
    log_file: &Path,
) -> anyhow::Result<RecorderLog>
where
    F: Fn(reqwest::Client, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(WsTty, String)>>,
{
    let (mut t, id) = open(http.clone(), addr).await?;
    prepare(&mut t).await?;
    t.write(b"yes\r").await?;
    let until = Instant::now() + SYNC_YES_FOR;
    while Instant::now() < until {
        tokio::time::timeout(Duration::from_secs(5), t.read())
            .await
            .context("yes produced nothing")??;
    }
    t.write(b"\x03").await?;
    read_until(&mut t, PROMPT, Duration::from_secs(30)).await?;
    http.post(format!("http://{addr}/api/term_close"))
        .form(&[("session_id", id.as_str())])
        .send()
        .await?
        .error_for_status()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(log_file).unwrap_or_default();
        if let Some(line) = log
            .lines()
            .map(strip_ansi)
            .find(|l| l.contains("recording closed") && l.contains(&format!("recording={id}")))
        {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .map(|v| v.trim_matches('"').to_string())
                    .with_context(|| format!("no {name} in {line:?}"))
            };
            return Ok(RecorderLog {
                syncs: field("syncs")?.parse()?,
                secs: field("secs")?.parse()?,
                size: field("size")?.parse()?,
                complete: field("complete")? == "true",
            });
        }
        if Instant::now() > deadline {
            bail!("the server logged no \"recording closed\" for {id}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A log line without its colour escapes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

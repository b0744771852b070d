//! A `termroom serve` child for the benchmark programs (`examples/` and
//! `benches/`): CLI calls against its data directory, the server process, a
//! same-origin HTTP client, and waiting until it accepts a login.
#![allow(dead_code)] // each program uses a different part

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::{
    io::AsyncWriteExt,
    process::{Child, Command},
};

/// How long a started server may take to accept its first login.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `termroom ARGS --data-dir DATA`, feeding `stdin`; its standard output.
pub async fn cli(
    bin: &Path,
    data: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    let mut child = Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    if let Some(mut s) = child.stdin.take() {
        if let Some(text) = stdin {
            s.write_all(text.as_bytes()).await?;
        }
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("termroom {args:?} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates the member account `name` with `password` in `data` (through the CLI).
pub async fn add_member(bin: &Path, data: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    cli(
        bin,
        data,
        &["user", "add", name, "--role", "member"],
        Some(&format!("{password}\n")),
    )
    .await
    .map(|_| ())
}

/// An sshd on 127.0.0.1 that a benchmark's host points at.
pub struct SshTarget<'a> {
    pub port: u16,
    /// Account logged in as.
    pub user: &'a str,
    /// Private key file for that account.
    pub key: &'a Path,
    /// The host key's `SHA256:` fingerprint, checked when it is trusted.
    pub fingerprint: &'a str,
}

/// Sets up what a terminal benchmark needs in `data`: the admin `user` with
/// `password`, the namespace `bench`, and the host `box` pointing at
/// `target`, its host key trusted and checked.
pub async fn add_ssh_host(
    bin: &Path,
    data: &Path,
    user: &str,
    password: &str,
    target: &SshTarget<'_>,
) -> anyhow::Result<()> {
    cli(
        bin,
        data,
        &["user", "add", user, "--role", "admin"],
        Some(&format!("{password}\n")),
    )
    .await?;
    cli(bin, data, &["namespace", "add", "bench"], None).await?;
    let port = target.port.to_string();
    let key = target.key.to_string_lossy();
    cli(
        bin,
        data,
        &[
            "host",
            "add",
            "box",
            "--namespace",
            "bench",
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "--user",
            target.user,
            "--key-file",
            &key,
        ],
        None,
    )
    .await?;
    let fp = cli(bin, data, &["host", "trust", "box"], None).await?;
    if fp.trim() != target.fingerprint {
        bail!(
            "trusted fingerprint {fp:?} differs from {}",
            target.fingerprint
        );
    }
    Ok(())
}

/// The resident set size of process `pid` in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc status")
}

/// CPU time (user + system) the process has used, from /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
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

/// A free loopback address for a server to listen on.
pub fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Starts `termroom serve --addr ADDR EXTRA… --data-dir DATA` with its output
/// silenced and `RUST_LOG=log`; killed when the handle is dropped.
pub fn serve(
    bin: &Path,
    addr: &str,
    data: &Path,
    extra: &[&str],
    log: &str,
) -> anyhow::Result<Child> {
    serve_with_output(bin, addr, data, extra, log, None)
}

/// [`serve`] with the server's log written to `log_file` when given.
pub fn serve_with_output(
    bin: &Path,
    addr: &str,
    data: &Path,
    extra: &[&str],
    log: &str,
    log_file: Option<&Path>,
) -> anyhow::Result<Child> {
    let out = match log_file {
        Some(f) => Stdio::from(std::fs::File::create(f)?),
        None => Stdio::null(),
    };
    Command::new(bin)
        .args(["serve", "--addr", addr])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// An HTTP client that keeps cookies and sends `Origin: BASE` on every
/// request, as a browser on the app's pages does (cookie-carrying POSTs
/// without it are refused).
pub fn same_origin_client(base: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ORIGIN, base.parse()?);
    Ok(reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .build()?)
}

/// Logs `user` in through `http` (retrying while the server starts), so the
/// client then holds the login cookie.
pub async fn wait_for_login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let r = http
            .post(format!("{base}/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await;
        if matches!(&r, Ok(r) if r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("termroom did not come up at {base}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

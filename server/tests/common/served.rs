//! A `termroom serve` child process (the real binary, as an operator starts it), for tests of the command line and of a node killed outright.
#![allow(dead_code)]

use std::{
    path::Path,
    process::{Command, Stdio},
};

/// A `termroom serve` child process on a free loopback port; killed on drop.
pub struct Served {
    pub child: std::process::Child,
    pub addr: String,
    /// The first admin's password, printed once on the first start.
    pub admin_password: Option<String>,
}

/// How long a `termroom serve` child may take to start listening (generous: a
/// busy machine, the first database migration).
pub const START_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `termroom serve` on `data` (any free port, no Leptos config file, the
/// test database) with `extra` arguments, not started yet.
pub fn serve_command(data: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_termroom"));
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--leptos-config",
        "/nonexistent",
    ])
    .args(extra)
    .arg("--data-dir")
    .arg(data)
    .envs(super::database_env(data));
    cmd
}

impl Served {
    /// Starts `termroom serve` on `data` with `extra` arguments and waits until it listens.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_env(data, extra, &[])
    }

    /// [`Served::start`] with extra environment variables.
    pub fn start_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = serve_command(data, extra)
            .env("TERMROOM_LOCAL_SHELL", super::test_shell())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run termroom serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(64);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + START_LIMIT;
        let mut admin_password = None;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("termroom serve did not start listening: {e}");
                }
            };
            if let Some(pw) = line.split("password: ").nth(1) {
                admin_password = Some(pw.trim().to_string());
            }
            if let Some(url) = line.split("listening on http://").nth(1) {
                return Self {
                    child,
                    addr: url.trim().to_string(),
                    admin_password,
                };
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client that keeps cookies and sends the server's own Origin.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ORIGIN,
            format!("http://{}", self.addr).parse().expect("origin"),
        );
        reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .build()
            .expect("client")
    }

    /// Logs `name` in; returns the client holding the login cookie.
    pub async fn login(&self, name: &str, password: &str) -> reqwest::Client {
        let client = self.client();
        let resp = client
            .post(self.url("/login"))
            .json(&serde_json::json!({"username": name, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200, "login of {name}");
        client
    }

    /// Status of `POST /api/chat_ticket` (200 while the login cookie is valid) and the ticket.
    pub async fn chat_ticket(&self, client: &reqwest::Client) -> (u16, Option<String>) {
        let resp = client
            .post(self.url("/api/chat_ticket"))
            .send()
            .await
            .expect("chat_ticket request");
        let status = resp.status().as_u16();
        (status, resp.json::<String>().await.ok())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

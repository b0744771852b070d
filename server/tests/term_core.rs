//! Terminal core against a real OpenSSH sshd and local PTYs, without the web server.
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use app::protocol::term::{ClientFrame, NoticeLevel, ServerFrame};
use common::sshd::{keygen, Sshd, TEST_PASSWORD, TEST_USER};
use server::{
    db::{self, Db},
    term::{
        self, Attachment, OpenRequest, SshAuth, SshTarget, Target, TermConfig, TermManager,
        HIGH_WATER, REPLACED_NOTICE, RING_BYTES,
    },
};
use sha2::{Digest, Sha256};

/// Generous bound for anything that should be quick, so a hang fails instead of blocking.
const STEP: Duration = Duration::from_secs(20);
/// Prompt the tests install; typed as `PS1='@@rea''dy@@ '` so the echo never matches.
const PROMPT: &[u8] = b"@@ready@@ ";

/// A database with one user.
struct Env {
    _dir: tempfile::TempDir,
    db: Db,
    user_id: i64,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = db::open(common::database_url(dir.path()).as_deref(), dir.path())
        .await
        .expect("open db");
    let user_id = db::users::create(&db, "alice", "not-a-real-hash", app::model::Role::Admin)
        .await
        .expect("user");
    Env {
        _dir: dir,
        db,
        user_id,
    }
}

fn manager(env: &Env, grace: Duration) -> Arc<TermManager> {
    TermManager::new(
        TermConfig {
            grace,
            local_shell: common::test_shell(),
            connect_timeout: Duration::from_secs(10),
            ..TermConfig::default()
        },
        env.db.clone(),
    )
}

/// Stores a host row for `sshd` (sessions reference hosts) and returns its id.
async fn host_row(env: &Env, name: &str, sshd: &Sshd) -> i64 {
    let ns = match db::namespaces::id_by_name(&env.db, "ops")
        .await
        .expect("ns lookup")
    {
        Some(id) => id,
        None => db::namespaces::create(&env.db, "ops")
            .await
            .expect("namespace"),
    };
    db::hosts::create(
        &env.db,
        db::hosts::NewHostRow {
            name,
            namespace_id: ns,
            address: "127.0.0.1",
            port: sshd.port,
            user: TEST_USER,
            auth_kind: "password",
            secret_nonce: b"n",
            secret_ciphertext: b"c",
            fingerprint: Some(&sshd.host_fingerprint),
        },
    )
    .await
    .expect("host row")
}

fn ssh_target(host_id: i64, name: &str, sshd: &Sshd, auth: SshAuth, fingerprint: &str) -> Target {
    Target::Ssh(SshTarget {
        host_id,
        name: name.into(),
        namespace: "ops".into(),
        address: "127.0.0.1".into(),
        port: sshd.port,
        user: TEST_USER.into(),
        auth,
        fingerprint: fingerprint.into(),
    })
}

/// A request of alice's for a local shell, 80 × 24.
fn local_request(env: &Env) -> OpenRequest {
    OpenRequest {
        user_id: env.user_id,
        user_name: "alice".into(),
        target: Target::Local,
        cols: 80,
        rows: 24,
        remote_addr: None,
        user_agent: None,
        held_elsewhere: 0,
    }
}

async fn open(mgr: &Arc<TermManager>, env: &Env, target: Target) -> String {
    tokio::time::timeout(
        STEP,
        mgr.open(OpenRequest {
            target,
            remote_addr: Some("127.0.0.1:5555".into()),
            user_agent: Some("term-core-test".into()),
            ..local_request(env)
        }),
    )
    .await
    .expect("open timed out")
    .expect("open")
}

/// An owner attachment that checks stream continuity and keeps the output.
struct Term {
    att: Attachment,
    /// Output since the attachment's first offset (or its latest snapshot).
    out: Vec<u8>,
    /// Stream offset of `out[0]`.
    base: u64,
    /// Next expected offset.
    next: u64,
    /// Non-output frames received.
    others: Vec<ServerFrame>,
}

impl Term {
    async fn attach(mgr: &TermManager, id: &str, seq: u64) -> Term {
        let session = mgr.session(id).expect("session registered");
        let att = session.attach();
        timeout(att.send(ClientFrame::ResumeFrom { seq }))
            .await
            .expect("resume");
        Term {
            att,
            out: Vec::new(),
            base: seq,
            next: seq,
            others: Vec::new(),
        }
    }

    /// Handles one frame; `None` when the attachment ended.
    async fn step(&mut self) -> Option<ServerFrame> {
        let f = tokio::time::timeout(STEP, self.att.recv())
            .await
            .expect("no frame in time")?;
        match &f {
            ServerFrame::Output { seq, data } => {
                assert_eq!(*seq, self.next, "gap or duplicate in the output stream");
                self.next += data.len() as u64;
                self.out.extend_from_slice(data);
            }
            ServerFrame::Snapshot { seq, .. } => {
                self.out.clear();
                self.base = *seq;
                self.next = *seq;
                self.others.push(f.clone());
            }
            _ => self.others.push(f.clone()),
        }
        Some(f)
    }

    /// Reads until the output after byte `from` contains `needle`; returns the index after it.
    async fn wait_for(&mut self, from: usize, needle: &[u8]) -> usize {
        let mut scan = from;
        loop {
            if let Some(i) = find(self.out.get(scan..).unwrap_or_default(), needle) {
                return scan + i + needle.len();
            }
            // Next time only the new bytes (plus a needle split across frames).
            scan = self.out.len().saturating_sub(needle.len() - 1).max(scan);
            if self.step().await.is_none() {
                panic!(
                    "attachment ended before {:?} appeared; output: {:?}; frames: {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.out),
                    self.others
                );
            }
        }
    }

    async fn input(&self, s: &str) {
        timeout(self.att.send(ClientFrame::Input(s.as_bytes().to_vec())))
            .await
            .expect("input");
    }

    /// Installs the test prompt and waits for it.
    async fn ready(&mut self) -> usize {
        // No bracketed-paste markers around command output, a recognisable prompt.
        self.input("bind 'set enable-bracketed-paste off'; PS1='@@rea''dy@@ '\r")
            .await;
        let from = self.out.len();
        self.wait_for(from, PROMPT).await
    }

    /// Runs a command and returns its output up to the next prompt.
    async fn run(&mut self, cmd: &str) -> String {
        let from = self.out.len();
        self.input(&format!("{cmd}\r")).await;
        // Skip the echoed command line, then read up to the prompt.
        let after_echo = self.wait_for(from, b"\r\n").await;
        let end = self.wait_for(after_echo, PROMPT).await;
        String::from_utf8_lossy(&self.out[after_echo..end - PROMPT.len()]).into_owned()
    }

    /// Reads until the attachment ends; returns the non-output frames seen.
    async fn drain(&mut self) -> Vec<ServerFrame> {
        while self.step().await.is_some() {}
        self.others.clone()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn timeout<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f).await.expect("step timed out")
}

fn error_notices(frames: &[ServerFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Notice {
                level: NoticeLevel::Error,
                text,
            } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

async fn row(env: &Env, id: &str) -> db::terminal_sessions::TermSessionRow {
    db::terminal_sessions::by_id(&env.db, id)
        .await
        .expect("query")
        .expect("session row")
}

/// Waits until the session's row leaves `running`.
async fn ended_row(env: &Env, id: &str) -> db::terminal_sessions::TermSessionRow {
    let deadline = Instant::now() + STEP;
    loop {
        let r = row(env, id).await;
        if r.status != "running" {
            return r;
        }
        assert!(Instant::now() < deadline, "session {id} still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts sshd, a manager (60 s grace) and one password-authenticated session to host `name`.
async fn password_session(name: &str) -> (Sshd, Env, Arc<TermManager>, String, i64) {
    let sshd = Sshd::start();
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let host = host_row(&env, name, &sshd).await;
    let target = ssh_target(
        host,
        name,
        &sshd,
        SshAuth::Password(TEST_PASSWORD.into()),
        &sshd.host_fingerprint,
    );
    let id = open(&mgr, &env, target).await;
    (sshd, env, mgr, id, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_auth_runs_echo_and_records_the_session() {
    let (_sshd, env, mgr, id, host) = password_session("web1").await;
    assert!(
        id.len() >= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "random url-safe id: {id}"
    );

    let r = row(&env, &id).await;
    assert_eq!(
        (
            r.status.as_str(),
            r.target.as_str(),
            r.host_id,
            r.cols,
            r.rows
        ),
        ("running", "web1", Some(host), 80, 24)
    );
    assert_eq!(r.user_agent.as_deref(), Some("term-core-test"));
    let listed = mgr.list_for_user(env.user_id);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].session_id.as_str(),
            listed[0].target.as_str(),
            listed[0].state.as_str()
        ),
        (id.as_str(), "web1", "running")
    );
    assert!(mgr.list_for_user(env.user_id + 1).is_empty());

    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    assert_eq!(t.run("echo hel''lo").await, "hello\r\n");
    assert_eq!(t.run("whoami").await.trim(), TEST_USER);

    t.input("exit 7\r").await;
    let frames = t.drain().await;
    assert!(
        frames.contains(&ServerFrame::Exit {
            code: Some(7),
            signal: None
        }),
        "exit status: {frames:?}"
    );
    let r = ended_row(&env, &id).await;
    assert_eq!((r.status.as_str(), r.exit_code), ("exited", Some(7)));
    assert!(r.ended_at.is_some());
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_works() {
    let sshd = Sshd::start();
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let host = host_row(&env, "web2", &sshd).await;
    let key = SshAuth::Key(sshd.client_key.private.clone());
    let id = open(
        &mgr,
        &env,
        ssh_target(host, "web2", &sshd, key, &sshd.host_fingerprint),
    )
    .await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    assert_eq!(t.run("echo key''-ok").await, "key-ok\r\n");
    assert!(
        sshd.wait_log("Accepted publickey", Duration::from_secs(5)),
        "sshd saw key auth:\n{}",
        sshd.log()
    );
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_reaches_the_remote_pty_and_the_local_pty() {
    let sshd = Sshd::start();
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let host = host_row(&env, "web3", &sshd).await;
    let ssh = open(
        &mgr,
        &env,
        ssh_target(
            host,
            "web3",
            &sshd,
            SshAuth::Password(TEST_PASSWORD.into()),
            &sshd.host_fingerprint,
        ),
    )
    .await;
    let local = open(&mgr, &env, Target::Local).await;
    for id in [ssh, local] {
        let mut t = Term::attach(&mgr, &id, 0).await;
        t.ready().await;
        assert_eq!(t.run("stty size").await, "24 80\r\n");
        timeout(t.att.send(ClientFrame::Resize {
            cols: 123,
            rows: 45,
        }))
        .await
        .expect("resize");
        assert_eq!(t.run("stty size").await, "45 123\r\n");
    }
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error() {
    let sshd = Sshd::start();
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let host = host_row(&env, "web4", &sshd).await;
    let id = open(
        &mgr,
        &env,
        ssh_target(
            host,
            "web4",
            &sshd,
            SshAuth::Password("wrong".into()),
            &sshd.host_fingerprint,
        ),
    )
    .await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    let errors = error_notices(&t.drain().await);
    assert_eq!(
        errors,
        vec![format!("authentication failed for {TEST_USER}@web4")]
    );
    assert_eq!(ended_row(&env, &id).await.status, "failed");
    assert!(sshd.wait_log("Failed password", Duration::from_secs(5)));
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_host_key_is_refused_before_authentication() {
    let sshd = Sshd::start();
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let host = host_row(&env, "db1", &sshd).await;
    let other = keygen(sshd.dir.path(), "other_host_key");
    let id = open(
        &mgr,
        &env,
        ssh_target(
            host,
            "db1",
            &sshd,
            SshAuth::Password(TEST_PASSWORD.into()),
            &other.fingerprint,
        ),
    )
    .await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    let errors = error_notices(&t.drain().await);
    assert_eq!(
        errors,
        vec![format!(
            "host key changed for db1: expected {}, got {} — refusing to connect",
            other.fingerprint, sshd.host_fingerprint
        )]
    );
    assert_eq!(ended_row(&env, &id).await.status, "failed");

    let audit = db::audit::recent(&env.db, 10).await.expect("audit");
    let ev = audit
        .iter()
        .find(|e| e.action == "host.key_mismatch")
        .expect("audit event");
    assert_eq!(
        (ev.actor.as_deref(), ev.target.as_deref()),
        (Some("alice"), Some("db1"))
    );
    let detail = ev.detail.clone().unwrap_or_default();
    assert!(
        detail.contains(&other.fingerprint) && detail.contains(&sshd.host_fingerprint),
        "{detail}"
    );

    // sshd saw the connection and key exchange, but no authentication request at all.
    assert!(
        sshd.wait_log("Connection closed by", Duration::from_secs(5))
            || sshd.wait_log("Disconnected from", Duration::from_secs(1))
    );
    let log = sshd.log();
    assert!(
        log.contains("kex: "),
        "the connection reached key exchange:\n{log}"
    );
    for needle in [
        "userauth-request",
        "Accepted",
        "Failed password",
        "Postponed",
    ] {
        assert!(
            !log.contains(needle),
            "sshd saw an authentication attempt ({needle}):\n{log}"
        );
    }
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reads_the_host_key_without_authenticating() {
    let sshd = Sshd::start();
    let fp = term::probe_host_key("127.0.0.1", sshd.port, Duration::from_secs(10))
        .await
        .expect("probe");
    assert_eq!(
        fp, sshd.host_fingerprint,
        "same format and value as ssh-keygen -l"
    );
    sshd.wait_log("Connection closed by", Duration::from_secs(5));
    assert!(!sshd.log().contains("userauth-request"));

    // A closed port is reported, not hung on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let e = term::probe_host_key("127.0.0.1", closed, Duration::from_secs(5))
        .await
        .expect_err("closed port");
    assert!(matches!(e, term::TermError::Unreachable(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_is_a_clear_error() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let ns = db::namespaces::create(&env.db, "misc").await.expect("ns");
    let host_id = db::hosts::create(
        &env.db,
        db::hosts::NewHostRow {
            name: "gone",
            namespace_id: ns,
            address: "127.0.0.1",
            port: closed,
            user: "x",
            auth_kind: "password",
            secret_nonce: b"n",
            secret_ciphertext: b"c",
            fingerprint: None,
        },
    )
    .await
    .expect("host");
    let target = Target::Ssh(SshTarget {
        host_id,
        name: "gone".into(),
        namespace: "misc".into(),
        address: "127.0.0.1".into(),
        port: closed,
        user: "x".into(),
        auth: SshAuth::Password("x".into()),
        fingerprint: "SHA256:x".into(),
    });
    let id = open(&mgr, &env, target).await;
    // Before anyone attached: listed as failed, its screen already freed.
    let session = mgr.session(&id).expect("session");
    let deadline = Instant::now() + STEP;
    while !session.failed() {
        assert!(Instant::now() < deadline, "connecting did not fail");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listed = mgr.list_for_user(env.user_id);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "failed");
    assert_eq!(session.screen_size(), (1, 1), "screen freed at once");
    let mut t = Term::attach(&mgr, &id, 0).await;
    let errors = error_notices(&t.drain().await);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("cannot reach host gone: "),
        "{errors:?}"
    );
    assert_eq!(ended_row(&env, &id).await.status, "failed");
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_gets_exactly_the_missed_output() {
    let (_sshd, _env, mgr, id, _host) = password_session("web5").await;

    let mut first = Term::attach(&mgr, &id, 0).await;
    first.ready().await;
    // Output keeps coming while nobody is attached.
    first
        .input("for i in $(seq 1 400); do echo line-$i; sleep 0.002; done; echo fin''ished\r")
        .await;
    first.wait_for(0, b"line-50\r\n").await;
    let seen = first.next;
    let part1 = first.out.clone();
    drop(first);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = Term::attach(&mgr, &id, seen).await;
    second.wait_for(0, b"finished\r\n").await;
    assert!(
        second.others.is_empty(),
        "no snapshot needed: {:?}",
        second.others
    );
    let mut joined = part1;
    joined.extend_from_slice(&second.out);

    // The whole stream is still in the ring: compare byte for byte.
    let end = second.next;
    drop(second);
    let mut whole = Term::attach(&mgr, &id, 0).await;
    while whole.next < end {
        whole.step().await.expect("stream");
    }
    assert_eq!(
        &whole.out[..joined.len()],
        &joined[..],
        "no gap, no duplicate"
    );
    let text = String::from_utf8_lossy(&joined);
    for i in 1..=400 {
        assert_eq!(
            text.matches(&format!("line-{i}\r\n")).count(),
            1,
            "line-{i} exactly once"
        );
    }
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_a_lost_offset_gets_a_snapshot() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let id = open(&mgr, &env, Target::Local).await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    let seen = t.next;
    t.input("head -c 1500000 /dev/zero | tr '\\0' x; echo; echo snap''shot-me\r")
        .await;
    drop(t);
    // More than the ring while detached: the reader keeps reading, the ring overwrites.
    let session = mgr.session(&id).expect("session");
    let deadline = Instant::now() + STEP;
    while session.output_head() < seen + 1_500_000 {
        assert!(Instant::now() < deadline, "output stalled while detached");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut again = Term::attach(&mgr, &id, seen).await;
    let first = again.step().await.expect("frame");
    let ServerFrame::Snapshot { seq, data } = first else {
        panic!("expected a snapshot, got {first:?}")
    };
    assert_eq!(seq, session.output_head());
    assert!(
        find(&data, b"snapshot-me").is_some(),
        "snapshot shows the screen"
    );
    assert!(find(&data, PROMPT).is_some(), "snapshot shows the prompt");
    // The stream continues right after the snapshot.
    assert_eq!(again.run("echo af''ter").await, "after\r\n");
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_yes_within_a_second_for_a_slow_reader() {
    let (_sshd, _env, mgr, id, _host) = password_session("web6").await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    let session = mgr.session(&id).expect("session");
    t.input("yes\r").await;
    // Read slowly until the reader is held back by the owner's lag.
    let deadline = Instant::now() + STEP;
    loop {
        t.step().await.expect("output");
        tokio::time::sleep(Duration::from_millis(5)).await;
        if session.output_head() - t.next >= HIGH_WATER / 2 && t.out.len() > 1_000_000 {
            break;
        }
        assert!(Instant::now() < deadline, "yes produced too little");
    }
    let from = t.out.len();
    let sent = Instant::now();
    t.input("\x03").await;
    loop {
        let scan = t.out.len().saturating_sub(PROMPT.len()).max(from);
        t.step().await.expect("output");
        if find(&t.out[scan..], PROMPT).is_some() {
            break;
        }
        // Still a slow reader: 5 ms per frame.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "no prompt after Ctrl-C"
        );
    }
    let took = sent.elapsed();
    eprintln!(
        "prompt {took:?} after Ctrl-C; {} bytes of output read",
        t.out.len()
    );
    assert!(
        took < Duration::from_secs(1),
        "prompt after Ctrl-C took {took:?}"
    );
    assert_eq!(t.run("echo al''ive").await, "alive\r\n");
    mgr.shutdown().await;
}

/// Whether a process whose command line contains `token` runs on this machine.
fn process_running(token: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", token])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_reaches_the_host_while_the_tab_is_paused() {
    let (_sshd, _env, mgr, id, _host) = password_session("web9").await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    let session = mgr.session(&id).expect("session");
    let token = format!("paused-yes-{}", std::process::id());
    t.input(&format!("yes {token}\r")).await;
    t.wait_for(0, format!("{token}\r\n{token}").as_bytes())
        .await;
    assert!(process_running(&token), "yes runs on the host");
    // The tab stops reading: the reader stops at the watermark and russh's
    // buffers fill until its session loop stalls.
    timeout(t.att.send(ClientFrame::Pause))
        .await
        .expect("pause");
    let mut head = session.output_head();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = session.output_head();
        if now == head {
            break;
        }
        head = now;
    }
    let lag = head - t.next;
    assert!(
        (HIGH_WATER..=HIGH_WATER + 64 * 1024).contains(&lag),
        "reader held at the watermark (lag {lag})"
    );

    let sent = Instant::now();
    t.input("\x03").await;
    while process_running(&token) {
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "Ctrl-C did not reach the host while the tab was paused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lag = session.output_head() - t.next;
    assert!(
        lag <= term::HARD_LIMIT + 64 * 1024,
        "memory stays bounded while paused (lag {lag})"
    );
    eprintln!(
        "yes ended {:?} after Ctrl-C with the tab paused (lag {lag})",
        sent.elapsed()
    );

    // Once the tab reads again, the rest of the output and the prompt follow, nothing lost.
    timeout(t.att.send(ClientFrame::Resume))
        .await
        .expect("resume");
    let from = t.out.len();
    t.wait_for(from, PROMPT).await;
    assert_eq!(t.run("echo al''ive").await, "alive\r\n");
    mgr.shutdown().await;
}

/// Deterministic file content (hex lines), `len` bytes.
fn big_content(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 100);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut line = 0u64;
    while out.len() < len {
        let mut words = String::new();
        for _ in 0..6 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            words.push_str(&format!("{x:016x}"));
        }
        out.extend_from_slice(format!("{line:08} {words}\n").as_bytes());
        line += 1;
    }
    out.truncate(len);
    out
}

/// Streams a large file to a slow, pausing reader and checks every byte arrived.
async fn stream_big_file(mgr: &Arc<TermManager>, id: &str, file: &std::path::Path, content: &[u8]) {
    let mut t = Term::attach(mgr, id, 0).await;
    t.ready().await;
    let session = mgr.session(id).expect("session");
    let from = t.out.len();
    // Raw mode: the PTY passes bytes through unchanged (no \n -> \r\n), no echo of the command's output.
    t.input(&format!(
        "stty raw -echo; printf 'ST''ART>'; cat {}; printf '<E''ND'; stty sane\r",
        file.display()
    ))
    .await;
    let start = t.wait_for(from, b"START>").await;
    let mut frames = 0u64;
    let mut max_lag = 0u64;
    let end = loop {
        // Only the new bytes (and a marker split across frames) need searching.
        let scan = t.out.len().saturating_sub(3).max(start);
        t.step().await.expect("output");
        frames += 1;
        if let Some(i) = find(t.out.get(scan..).unwrap_or_default(), b"<END") {
            break scan + i;
        }
        if frames.is_multiple_of(50) {
            timeout(t.att.send(ClientFrame::Pause))
                .await
                .expect("pause");
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Paused: the session holds at most the ring, and the reader stopped near the watermark.
            let lag = session.output_head() - t.next;
            max_lag = max_lag.max(lag);
            assert!(lag <= RING_BYTES as u64, "lag {lag} beyond the ring");
            timeout(t.att.send(ClientFrame::Resume))
                .await
                .expect("resume");
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let got = &t.out[start..end];
    assert_eq!(got.len(), content.len(), "length");
    assert_eq!(Sha256::digest(got), Sha256::digest(content), "checksum");
    eprintln!(
        "streamed {} bytes in {frames} frames, max lag {max_lag}",
        got.len()
    );
    assert!(
        max_lag >= HIGH_WATER / 2,
        "the pauses held output back (max lag {max_lag})"
    );
    assert!(
        max_lag <= term::HARD_LIMIT + 64 * 1024,
        "the reader stopped near the watermark (max lag {max_lag})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_byte_lost_for_a_slow_pausing_reader() {
    let sshd = Sshd::start();
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let content = big_content(24 << 20);
    let file = sshd.dir.path().join("big.txt");
    std::fs::write(&file, &content).expect("write big file");

    let host = host_row(&env, "web7", &sshd).await;
    let ssh = open(
        &mgr,
        &env,
        ssh_target(
            host,
            "web7",
            &sshd,
            SshAuth::Password(TEST_PASSWORD.into()),
            &sshd.host_fingerprint,
        ),
    )
    .await;
    stream_big_file(&mgr, &ssh, &file, &content).await;
    let local = open(&mgr, &env, Target::Local).await;
    stream_big_file(&mgr, &local, &file, &content).await;
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_to_three_sessions_each_shows_its_own_result() {
    let sshd = Sshd::start();
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let host = host_row(&env, "web8", &sshd).await;
    let mut terms = Vec::new();
    for _ in 0..3 {
        let id = open(
            &mgr,
            &env,
            ssh_target(
                host,
                "web8",
                &sshd,
                SshAuth::Password(TEST_PASSWORD.into()),
                &sshd.host_fingerprint,
            ),
        )
        .await;
        let mut t = Term::attach(&mgr, &id, 0).await;
        t.ready().await;
        terms.push(t);
    }
    // The same input to every session at once ("send to all"), then each result.
    let cmd = "echo pid=$$ tty=$(tty)\r";
    let froms: Vec<usize> = terms.iter().map(|t| t.out.len()).collect();
    futures::future::join_all(terms.iter().map(|t| t.input(cmd))).await;
    let mut results = Vec::new();
    for (t, from) in terms.iter_mut().zip(froms) {
        // Past the echoed command line (which also contains "pid=").
        let after_echo = t.wait_for(from, b"\r\n").await;
        let start = t.wait_for(after_echo, b"pid=").await;
        let end = t.wait_for(start, b"\r\n").await;
        results.push(String::from_utf8_lossy(&t.out[start - 4..end - 2]).into_owned());
    }
    let mut unique = results.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        3,
        "three different shells answered: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.starts_with("pid=") && r.contains("tty=/dev/pts/")),
        "{results:?}"
    );
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_target_runs_a_shell_and_reports_its_exit() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let id = open(&mgr, &env, Target::Local).await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    assert_eq!(t.run("echo lo''cal").await, "local\r\n");
    assert_eq!(t.run("echo $TERM").await, "xterm-256color\r\n");
    t.input("exit 3\r").await;
    let frames = t.drain().await;
    assert!(
        frames.contains(&ServerFrame::Exit {
            code: Some(3),
            signal: None
        }),
        "{frames:?}"
    );
    let r = ended_row(&env, &id).await;
    assert_eq!(
        (r.status.as_str(), r.exit_code, r.host_id, r.target.as_str()),
        ("exited", Some(3), None, "local")
    );
    // Seen by its owner: the ended session is gone from the list.
    let deadline = Instant::now() + STEP;
    while mgr.session(&id).is_some() {
        assert!(Instant::now() < deadline, "ended session not unregistered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_attachment_replaces_the_older() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let id = open(&mgr, &env, Target::Local).await;
    let mut old = Term::attach(&mgr, &id, 0).await;
    old.ready().await;
    let mut new = Term::attach(&mgr, &id, old.next).await;
    let frames = old.drain().await;
    assert_eq!(
        frames.last(),
        Some(&ServerFrame::Notice {
            level: NoticeLevel::Warning,
            text: REPLACED_NOTICE.into()
        })
    );
    assert!(matches!(
        old.att.send(ClientFrame::Input(b"x".to_vec())).await,
        Err(term::TermError::Detached)
    ));
    assert_eq!(new.run("echo ne''w").await, "new\r\n");
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_session_lives_for_the_grace_period_then_ends() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_millis(800));
    let id = open(&mgr, &env, Target::Local).await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    let seen = t.next;
    drop(t);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Reattaching within the grace period keeps it.
    let mut t = Term::attach(&mgr, &id, seen).await;
    assert_eq!(t.run("echo st''ill-here").await, "still-here\r\n");
    drop(t);
    let detached = Instant::now();
    let r = ended_row(&env, &id).await;
    assert!(
        detached.elapsed() >= Duration::from_millis(700),
        "ended after the grace period"
    );
    assert_eq!(r.status, "closed");
    assert!(mgr.session(&id).is_none());
    assert!(mgr.list_for_user(env.user_id).is_empty());
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_and_tells_the_owner() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let id = open(&mgr, &env, Target::Local).await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    timeout(mgr.close(&id)).await.expect("close");
    let frames = t.drain().await;
    assert_eq!(
        frames.last(),
        Some(&ServerFrame::Notice {
            level: NoticeLevel::Info,
            text: "terminal session closed".into()
        })
    );
    assert_eq!(row(&env, &id).await.status, "closed");
    assert!(mgr.session(&id).is_none());
    assert!(matches!(
        mgr.close(&id).await,
        Err(term::TermError::NotFound)
    ));

    // close_all_for_user and shutdown end everything.
    let a = open(&mgr, &env, Target::Local).await;
    let b = open(&mgr, &env, Target::Local).await;
    mgr.close_all_for_user(env.user_id);
    assert_eq!(ended_row(&env, &a).await.status, "closed");
    assert_eq!(ended_row(&env, &b).await.status, "closed");
    let c = open(&mgr, &env, Target::Local).await;
    timeout(mgr.shutdown()).await;
    assert_eq!(row(&env, &c).await.status, "closed");
    assert!(matches!(
        mgr.open(local_request(&env)).await,
        Err(term::TermError::ShuttingDown)
    ));
}

/// The notices among `frames` that start with `start`.
fn notices_starting<'a>(frames: &'a [ServerFrame], start: &str) -> Vec<&'a str> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Notice {
                level: NoticeLevel::Warning,
                text,
            } if text.starts_with(start) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_refuses_new_sessions_and_tells_live_ones_how_long_they_have() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let id = open(&mgr, &env, Target::Local).await;
    let ended = open(&mgr, &env, Target::Local).await;
    timeout(mgr.close(&ended)).await.expect("close");
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    assert_eq!(mgr.live_sessions(), 1, "the closed session is not live");
    assert!(!mgr.draining());

    mgr.begin_drain(Instant::now() + Duration::from_secs(30));
    assert!(mgr.draining());
    // The live session goes on; its owner is told when it will be closed.
    assert_eq!(t.run("echo dr''aining").await, "draining\r\n");
    let told = notices_starting(&t.others, term::DRAIN_NOTICE_START);
    assert_eq!(told.len(), 1, "{:?}", t.others);
    assert!(
        told[0].contains("closed in 30 s") || told[0].contains("closed in 29 s"),
        "{told:?}"
    );
    // A tab that attaches later (a reload) is told again.
    let seen = t.next;
    drop(t);
    let mut again = Term::attach(&mgr, &id, seen).await;
    assert_eq!(again.run("echo ag''ain").await, "again\r\n");
    assert_eq!(
        notices_starting(&again.others, term::DRAIN_NOTICE_START).len(),
        1,
        "{:?}",
        again.others
    );
    // No new session.
    assert!(matches!(
        mgr.open(local_request(&env)).await,
        Err(term::TermError::Draining)
    ));
    // Once it exits, nothing is live.
    again.input("exit\r").await;
    again.drain().await;
    assert_eq!(ended_row(&env, &id).await.status, "exited");
    assert_eq!(mgr.live_sessions(), 0);
    timeout(mgr.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_owners_the_server_stopped() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let id = open(&mgr, &env, Target::Local).await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    timeout(mgr.shutdown()).await;
    assert_eq!(
        t.drain().await.last(),
        Some(&ServerFrame::Notice {
            level: NoticeLevel::Warning,
            text: term::STOPPED_NOTICE.into()
        })
    );
    assert_eq!(row(&env, &id).await.status, "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_sessions_are_listed_as_exited_and_live_ones_are_capped() {
    let env = env().await;
    let mgr = TermManager::new(
        TermConfig {
            grace: Duration::from_secs(60),
            max_sessions_per_user: 2,
            local_shell: common::test_shell(),
            ..TermConfig::default()
        },
        env.db.clone(),
    );
    let a = open(&mgr, &env, Target::Local).await;
    let b = open(&mgr, &env, Target::Local).await;
    let req = local_request(&env);
    assert!(matches!(
        mgr.open(req.clone()).await,
        Err(term::TermError::TooManySessions(2))
    ));
    // A session whose shell exited no longer counts, and is listed as exited.
    let mut t = Term::attach(&mgr, &a, 0).await;
    t.ready().await;
    t.input("exit 0\r").await;
    let deadline = Instant::now() + STEP;
    let session = mgr.session(&a).expect("session");
    while session.phase() != term::Phase::Ended {
        assert!(Instant::now() < deadline, "shell did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let states: Vec<(String, String)> = mgr
        .list_for_user(env.user_id)
        .into_iter()
        .map(|i| (i.session_id, i.state))
        .collect();
    assert!(states.contains(&(a.clone(), "exited".into())), "{states:?}");
    assert!(
        states.contains(&(b.clone(), "running".into())),
        "{states:?}"
    );
    assert!(!session.failed());
    // Sessions the user holds on other nodes count against the cap too.
    assert!(matches!(
        mgr.open(OpenRequest {
            held_elsewhere: 1,
            ..req.clone()
        })
        .await,
        Err(term::TermError::TooManySessions(2))
    ));
    let c = timeout(mgr.open(req)).await.expect("room after an exit");
    assert!(mgr.session(&c).is_some());
    mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_because_tells_the_owner_why() {
    let env = env().await;
    let mgr = manager(&env, Duration::from_secs(60));
    let id = open(&mgr, &env, Target::Local).await;
    let mut t = Term::attach(&mgr, &id, 0).await;
    t.ready().await;
    assert!(mgr.close_because(&id, "your access to host local was revoked"));
    let frames = t.drain().await;
    assert_eq!(
        frames.last(),
        Some(&ServerFrame::Notice {
            level: NoticeLevel::Warning,
            text: "your access to host local was revoked".into()
        })
    );
    assert_eq!(ended_row(&env, &id).await.status, "closed");
    assert!(!mgr.close_because(&id, "again"));
    mgr.shutdown().await;
}

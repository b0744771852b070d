//! Terminal helpers for integration tests: a terminal socket that checks
//! output offsets, opening sessions and setting up an SSH host through
//! server functions.
use std::time::Duration;

use app::protocol::term::{ClientFrame, ServerFrame};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{connect, sshd::Sshd, TestServer, Ws};

/// Terminal output collected from a socket, checked for gaps and duplicates.
pub struct Term {
    pub ws: Ws,
    pub next_seq: u64,
    pub text: String,
    /// Output bytes exactly as received (snapshots included).
    pub raw: Vec<u8>,
    pub notices: Vec<String>,
    pub snapshots: usize,
    pub exit: Option<Option<u32>>,
    /// The last list of watchers the server announced.
    pub watchers: Vec<String>,
    /// The last size the server announced (watchers only).
    pub size: Option<(u16, u16)>,
    /// What became of each send-to-all line (`None`: sent).
    pub broadcasts: Vec<Option<String>>,
}

impl Term {
    pub async fn attach(s: &TestServer, session: &str, otp: &str, from: u64) -> Term {
        Term::attach_at(&s.ws_url(&format!("/ws/term/{session}?otp={otp}")), from).await
    }

    /// [`Term::attach`] on a full socket URL (`ws://…/ws/term/{id}?otp=…`).
    pub async fn attach_at(url: &str, from: u64) -> Term {
        let ws = connect(url, None).await.expect("terminal socket");
        let mut t = Term::over(ws, from);
        t.send(ClientFrame::ResumeFrom { seq: from }).await;
        t
    }

    /// Nothing received yet on `ws`; output expected from offset `from`.
    fn over(ws: Ws, from: u64) -> Term {
        Term {
            ws,
            next_seq: from,
            text: String::new(),
            raw: Vec::new(),
            notices: vec![],
            snapshots: 0,
            exit: None,
            watchers: Vec::new(),
            size: None,
            broadcasts: Vec::new(),
        }
    }

    /// A read-only watcher's socket on `/ws/watch/{session}`.
    pub async fn watch(s: &TestServer, session: &str, otp: &str) -> Term {
        let ws = connect(&s.ws_url(&format!("/ws/watch/{session}?otp={otp}")), None)
            .await
            .expect("watch socket");
        Term::over(ws, 0)
    }

    pub async fn send(&mut self, f: ClientFrame) {
        self.ws
            .send(Message::Binary(f.encode().into()))
            .await
            .expect("send frame");
    }

    pub async fn type_line(&mut self, line: &str) {
        self.send(ClientFrame::Input(format!("{line}\r").into_bytes()))
            .await;
    }

    /// Reads frames until `pred(text)` holds (or panics after `secs`).
    pub async fn until(&mut self, secs: u64, pred: impl Fn(&Term) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !pred(self) {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out; output so far: {:?} notices: {:?}",
                        self.text, self.notices
                    )
                });
            match msg {
                Some(Ok(Message::Binary(b))) => match ServerFrame::decode(&b).expect("valid frame")
                {
                    ServerFrame::Output { seq, data } => {
                        assert_eq!(
                            seq, self.next_seq,
                            "output must continue exactly where it left off"
                        );
                        self.next_seq += data.len() as u64;
                        self.text.push_str(&String::from_utf8_lossy(&data));
                        self.raw.extend_from_slice(&data);
                    }
                    ServerFrame::Snapshot { seq, data } => {
                        self.next_seq = seq;
                        self.snapshots += 1;
                        self.text.push_str(&String::from_utf8_lossy(&data));
                        self.raw.extend_from_slice(&data);
                    }
                    ServerFrame::Notice { text, .. } => self.notices.push(text),
                    ServerFrame::Exit { code, .. } => self.exit = Some(code),
                    ServerFrame::Watchers(names) => self.watchers = names,
                    ServerFrame::Size { cols, rows } => self.size = Some((cols, rows)),
                    ServerFrame::Broadcast { blocked } => self.broadcasts.push(blocked),
                },
                Some(Ok(_)) => {}
                other => panic!(
                    "terminal socket ended: {other:?}; output {:?} notices {:?}",
                    self.text, self.notices
                ),
            }
        }
    }
}

pub async fn open(
    s: &TestServer,
    client: &reqwest::Client,
    target: &str,
) -> Result<(String, String), u16> {
    let resp = s
        .call(
            client,
            "term_open",
            &[("target", target), ("cols", "80"), ("rows", "24")],
        )
        .await;
    if resp.status() != 200 {
        return Err(resp.status().as_u16());
    }
    let t: Value = resp.json().await.expect("ticket json");
    Ok((
        t["session_id"].as_str().unwrap().to_string(),
        t["otp"].as_str().unwrap().to_string(),
    ))
}

/// An sshd, a server with host `box` in namespace `prod` (added by the
/// admin `root1`), and the admin's client.
pub async fn with_ssh_host() -> (Sshd, TestServer, reqwest::Client) {
    let sshd = Sshd::start();
    let s = TestServer::start().await;
    s.add_user("root1", app::model::Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    setup_host(&s, &sshd, &admin, "box", None).await;
    (sshd, s, admin)
}

/// An admin adds `user` to `namespace` through the server function.
pub async fn grant(s: &TestServer, admin: &reqwest::Client, namespace: &str, user: &str) {
    let r = s
        .call(
            admin,
            "namespace_grant",
            &[("namespace", namespace), ("user", user)],
        )
        .await;
    assert_eq!(r.status(), 200, "grant {user} in {namespace}");
}

/// An admin adds namespace `prod` with host `box` (key auth, probed and pinned) through server functions.
pub async fn setup_host(
    s: &TestServer,
    sshd: &Sshd,
    admin: &reqwest::Client,
    name: &str,
    password: Option<&str>,
) {
    let r = s.call(admin, "namespace_add", &[("name", "prod")]).await;
    assert!(
        r.status() == 200 || r.status() == 400,
        "namespace_add: {}",
        r.status()
    );
    let port = sshd.port.to_string();
    let fp: String = s
        .call(
            admin,
            "host_probe",
            &[("address", "127.0.0.1"), ("port", &port)],
        )
        .await
        .json()
        .await
        .expect("probe");
    assert_eq!(
        fp, sshd.host_fingerprint,
        "probe returns the key's SHA-256 fingerprint"
    );
    let mut form = vec![
        ("host[name]", name.to_string()),
        ("host[namespace]", "prod".to_string()),
        ("host[address]", "127.0.0.1".to_string()),
        ("host[port]", port.clone()),
        ("host[user]", super::sshd::TEST_USER.to_string()),
        ("host[fingerprint]", fp),
    ];
    match password {
        Some(p) => form.push(("host[password]", p.to_string())),
        None => form.push(("host[private_key]", sshd.client_key.private.clone())),
    }
    let r = admin
        .post(s.url("/api/host_add"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "host_add: {}",
        r.text().await.unwrap_or_default()
    );
}

//! SSH target (russh client): pinned host key, password/key auth, PTY shell, reader and writer tasks.
use crate::sync::lock;
use std::{sync::Arc, time::Duration};

use russh::{
    client::{self, Handle, Msg},
    keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate},
    ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Sig,
};
use tokio::{net::TcpStream, sync::mpsc};

use super::{
    session::{Session, WriteOp},
    SshAuth, SshTarget, TermError,
};

/// SSH receive window per channel (russh default 2 MiB): caps the output the
/// host can have in flight when the owner's tab stalls, which bounds how much
/// output follows a Ctrl-C (all of it must be drawn before the prompt);
/// 256 KiB still fills a 25 ms link at 10 MB/s, faster than a browser draws.
const WINDOW_BYTES: u32 = 256 << 10;
/// Largest SSH data packet we accept (russh default).
const MAX_PACKET_BYTES: u32 = 32 << 10;
/// Channel messages russh buffers before its session loop waits for us
/// (russh default 100): at most 64 KiB of 32 KiB packets, which the
/// reader may still take past `HIGH_WATER` while input waits (`HARD_LIMIT`).
const CHANNEL_BUFFER_MESSAGES: usize = 2;
// While input waits, the reader must be allowed to empty russh's channel
// buffer, or Ctrl-C could not get through under `yes`.
const _: () = assert!(
    super::HARD_LIMIT - super::HIGH_WATER
        >= CHANNEL_BUFFER_MESSAGES as u64 * MAX_PACKET_BYTES as u64
);
/// Keepalive after this much silence from the host.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Unanswered keepalives before the connection is declared dead (about a minute).
const KEEPALIVE_MAX: usize = 4;
/// Backstop: a connection with no traffic at all for this long is dropped
/// (keepalive replies count as traffic, so a live idle shell is never hit).
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(300);
/// Terminal type announced to the host.
use super::recorder::TERM_TYPE as TERM;

/// Why the SSH handshake handler refused.
#[derive(Debug, thiserror::Error)]
enum HandlerError {
    /// A protocol or I/O error.
    #[error(transparent)]
    Russh(#[from] russh::Error),
    /// The host presented another key than the pinned one.
    #[error("host key mismatch: got {actual}")]
    KeyMismatch {
        /// Fingerprint presented.
        actual: String,
    },
}

/// SHA-256 fingerprint as OpenSSH prints it (`SHA256:<base64, no padding>`).
fn fingerprint(key: &PublicKeyOrCertificate) -> String {
    match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => {
            key.fingerprint(HashAlg::Sha256).to_string()
        }
        PublicKeyOrCertificate::Certificate(cert) => {
            cert.public_key().fingerprint(HashAlg::Sha256).to_string()
        }
    }
}

/// Client handler that accepts only the pinned host key.
struct PinnedHandler {
    /// Pinned `SHA256:...`.
    expected: String,
}

impl client::Handler for PinnedHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let actual = fingerprint(key);
        if actual == self.expected {
            Ok(true)
        } else {
            // Refused during key exchange: no credential is ever sent.
            Err(HandlerError::KeyMismatch { actual })
        }
    }
}

/// Client handler that records the host key and refuses to go on.
struct ProbeHandler {
    /// Where the fingerprint goes.
    seen: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for ProbeHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fp = fingerprint(key);
        *lock(&self.seen) = Some(fp);
        Ok(false)
    }
}

/// The russh client settings every connection uses.
fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: Some(INACTIVITY_TIMEOUT),
        window_size: WINDOW_BYTES,
        maximum_packet_size: MAX_PACKET_BYTES,
        channel_buffer_size: CHANNEL_BUFFER_MESSAGES,
        ..Default::default()
    })
}

/// Opens the TCP connection with `TCP_NODELAY` (keystrokes must not wait for Nagle).
async fn tcp_connect(address: &str, port: u16) -> Result<TcpStream, TermError> {
    let tcp = TcpStream::connect((address, port))
        .await
        .map_err(|e| TermError::Unreachable(e.to_string()))?;
    tcp.set_nodelay(true)
        .map_err(|e| TermError::Unreachable(e.to_string()))?;
    Ok(tcp)
}

/// Probes a host key WITHOUT sending any credential: connect, key exchange,
/// capture the key, disconnect. Returns `SHA256:<base64>` as OpenSSH prints it.
pub async fn probe_host_key(
    address: &str,
    port: u16,
    timeout: Duration,
) -> Result<String, TermError> {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let handler = ProbeHandler { seen: seen.clone() };
    let attempt = async {
        let tcp = tcp_connect(address, port).await?;
        // Always an error: the handler refuses every key once it has seen it.
        match client::connect_stream(client_config(), tcp, handler).await {
            Ok(handle) => {
                let _ = handle
                    .disconnect(Disconnect::ByApplication, "probe", "en")
                    .await;
                Ok(())
            }
            Err(e) => Err(TermError::Unreachable(e.to_string())),
        }
    };
    let outcome = tokio::time::timeout(timeout, attempt).await;
    let fp = lock(&seen).take();
    match (fp, outcome) {
        (Some(fp), _) => Ok(fp),
        (None, Err(_)) => Err(TermError::Timeout),
        (None, Ok(Err(e))) => Err(e),
        (None, Ok(Ok(()))) => Err(TermError::Unreachable("the host presented no key".into())),
    }
}

/// A connected shell channel.
pub(crate) struct SshConn {
    /// The connection (kept for disconnect and the writer's barrier).
    handle: Arc<Handle<PinnedHandler>>,
    /// Output and exit status.
    read: ChannelReadHalf,
    /// Input and resizes.
    write: ChannelWriteHalf<Msg>,
}

/// Connects, checks the pinned key, authenticates, and starts a PTY shell.
/// Output arriving during setup goes to `session`.
pub(crate) async fn connect(
    t: &SshTarget,
    cols: u16,
    rows: u16,
    session: &Session,
) -> Result<SshConn, TermError> {
    let tcp = tcp_connect(&t.address, t.port).await?;
    let handler = PinnedHandler {
        expected: t.fingerprint.clone(),
    };
    let mut handle = client::connect_stream(client_config(), tcp, handler)
        .await
        .map_err(|e| match e {
            HandlerError::KeyMismatch { actual } => TermError::HostKeyMismatch {
                expected: t.fingerprint.clone(),
                actual,
            },
            HandlerError::Russh(e) => TermError::Unreachable(e.to_string()),
        })?;
    let auth = match &t.auth {
        SshAuth::Password(p) => {
            handle
                .authenticate_password(t.user.clone(), p.clone())
                .await
        }
        SshAuth::Key(text) => {
            let key = russh::keys::decode_secret_key(text, None)
                .map_err(|e| TermError::BadKey(e.to_string()))?;
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| TermError::Unreachable(e.to_string()))?
                    .flatten()
            } else {
                None
            };
            handle
                .authenticate_publickey(
                    t.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
        }
    }
    .map_err(|e| TermError::Unreachable(e.to_string()))?;
    if !auth.success() {
        let _ = handle
            .disconnect(Disconnect::ByApplication, "authentication failed", "en")
            .await;
        return Err(TermError::AuthFailed);
    }
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| TermError::Unreachable(e.to_string()))?;
    let (mut read, write) = channel.split();
    write
        .request_pty(true, TERM, u32::from(cols), u32::from(rows), 0, 0, &[])
        .await
        .map_err(|e| TermError::Unreachable(e.to_string()))?;
    write
        .request_shell(true)
        .await
        .map_err(|e| TermError::Unreachable(e.to_string()))?;
    // Two replies, in request order: PTY, then shell.
    for what in ["a terminal (PTY)", "a shell"] {
        loop {
            match read.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(TermError::Refused(format!("the host refused {what}")))
                }
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    session.push_output(&data).await
                }
                Some(_) => {}
                None => {
                    return Err(TermError::Unreachable(
                        "the host closed the connection".into(),
                    ))
                }
            }
        }
    }
    Ok(SshConn {
        handle: Arc::new(handle),
        read,
        write,
    })
}

/// How the remote shell ended.
#[derive(Debug, Default)]
pub(crate) struct ExitInfo {
    /// Exit status, if reported.
    pub(crate) code: Option<u32>,
    /// Signal name, if killed by one.
    pub(crate) signal: Option<String>,
    /// The connection dropped without an exit report.
    pub(crate) lost: bool,
}

/// Signal name without the `SIG` prefix, as SSH reports it.
fn signal_name(sig: Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(name) => name,
    }
}

impl SshConn {
    /// Splits into the reader's half, the writer's half, and the connection.
    pub(crate) fn into_parts(self) -> (SshReader, SshWriter, SshControl) {
        (
            SshReader { read: self.read },
            SshWriter {
                write: self.write,
                handle: self.handle.clone(),
            },
            SshControl {
                handle: self.handle,
            },
        )
    }
}

/// Reads the channel in its own task (russh's session loop stalls if nobody does).
pub(crate) struct SshReader {
    /// Channel output.
    read: ChannelReadHalf,
}

impl SshReader {
    /// Moves output into the session, gated by the owner's lag, until the channel closes.
    pub(crate) async fn run(mut self, session: Arc<Session>) -> ExitInfo {
        let mut info = ExitInfo::default();
        loop {
            session.wait_read_allowed().await;
            match self.read.wait().await {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    session.push_output(&data).await;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => info.code = Some(exit_status),
                Some(ChannelMsg::ExitSignal {
                    signal_name: sig, ..
                }) => info.signal = Some(signal_name(sig)),
                Some(ChannelMsg::Close) => break,
                Some(_) => {}
                None => {
                    info.lost = info.code.is_none() && info.signal.is_none();
                    break;
                }
            }
        }
        info
    }
}

/// Writes owner input and resizes to the channel.
pub(crate) struct SshWriter {
    /// Channel input.
    write: ChannelWriteHalf<Msg>,
    /// For the barrier after each input.
    handle: Arc<Handle<PinnedHandler>>,
}

impl SshWriter {
    /// Runs until the queue closes or the channel fails.
    pub(crate) async fn run(self, mut ops: mpsc::Receiver<WriteOp>) {
        while let Some(op) = ops.recv().await {
            let result = match op {
                WriteOp::Input(mut input) => {
                    let sent = self
                        .write
                        .data_bytes(std::mem::take(&mut input.bytes))
                        .await;
                    // `data_bytes` returns once the message is queued for russh's
                    // session loop, not when the loop took it. A local request on
                    // the same queue answers only after the loop took everything
                    // before it (no network round trip): until then the input
                    // counts as pending and the reader may read past HIGH_WATER.
                    let _ = self.handle.best_supported_rsa_hash().await;
                    drop(input);
                    sent
                }
                WriteOp::Resize { cols, rows } => {
                    self.write
                        .window_change(u32::from(cols), u32::from(rows), 0, 0)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!("ssh write failed: {e}");
                break;
            }
        }
    }
}

/// The connection, for ending it.
pub(crate) struct SshControl {
    /// The connection.
    handle: Arc<Handle<PinnedHandler>>,
}

impl SshControl {
    /// Ends the connection (the reader then sees the channel close).
    pub(crate) async fn disconnect(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "session closed", "en")
            .await;
    }
}

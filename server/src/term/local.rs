//! Local target: a shell on a PTY of this machine (pty-process), with split read/write halves.
use std::{
    os::fd::{AsFd, OwnedFd},
    path::Path,
    sync::Arc,
};

use pty_process::{OwnedReadPty, OwnedWritePty, Size};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::Child,
    sync::mpsc,
};

use super::{
    session::{Session, WriteOp},
    ssh::ExitInfo,
    TermError,
};

/// Bytes per PTY read (PTYs hand out about 4 KiB at a time; this leaves headroom).
const READ_BYTES: usize = 16 << 10;
/// Terminal type announced to the shell.
use super::recorder::TERM_TYPE as TERM;

/// A shell running on a local PTY.
pub(crate) struct LocalConn {
    /// The shell process.
    pub(crate) child: Child,
    /// PTY output.
    pub(crate) reader: LocalReader,
    /// PTY input and resizes.
    pub(crate) writer: LocalWriter,
    /// The PTY once more, to read its echo flag (for input recording).
    pub(crate) echo_probe: Option<OwnedFd>,
}

/// Starts `shell` on a new PTY of `cols` x `rows`.
pub(crate) fn spawn(shell: &Path, cols: u16, rows: u16) -> Result<LocalConn, TermError> {
    let (pty, pts) = pty_process::open().map_err(|e| TermError::Spawn(e.to_string()))?;
    pty.resize(Size::new(rows, cols))
        .map_err(|e| TermError::Spawn(e.to_string()))?;
    let mut command = pty_process::Command::new(shell).env("TERM", TERM);
    // termroom's own settings (the secret key among them) never reach the shell.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TERMROOM_") {
            command = command.env_remove(key);
        }
    }
    let child = command
        .kill_on_drop(true)
        .spawn(pts)
        .map_err(|e| TermError::Spawn(format!("{}: {e}", shell.display())))?;
    let echo_probe = pty.as_fd().try_clone_to_owned().ok();
    let (read, write) = pty.into_split();
    Ok(LocalConn {
        child,
        reader: LocalReader { read },
        writer: LocalWriter { write },
        echo_probe,
    })
}

/// Reads the PTY in its own task.
pub(crate) struct LocalReader {
    /// PTY output.
    read: OwnedReadPty,
}

impl LocalReader {
    /// Moves output into the session, gated by the owner's lag, until the
    /// PTY closes (Linux reports EIO once no process holds the terminal).
    pub(crate) async fn run(mut self, session: Arc<Session>) {
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            session.wait_read_allowed().await;
            match self.read.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => session.push_output(buf.get(..n).unwrap_or_default()).await,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.raw_os_error() != Some(5) {
                        tracing::debug!("local pty read ended: {e}");
                    }
                    break;
                }
            }
        }
    }
}

/// Writes input to the PTY; its own half, so a stopped reader never blocks writes.
pub(crate) struct LocalWriter {
    /// PTY input.
    write: OwnedWritePty,
}

impl LocalWriter {
    /// Runs until the queue closes or the PTY fails.
    pub(crate) async fn run(mut self, mut ops: mpsc::Receiver<WriteOp>) {
        while let Some(op) = ops.recv().await {
            let result = match op {
                WriteOp::Input(input) => self.write.write_all(&input.bytes).await,
                WriteOp::Resize { cols, rows } => self
                    .write
                    .resize(Size::new(rows, cols))
                    .map_err(|e| std::io::Error::other(e.to_string())),
            };
            if let Err(e) = result {
                tracing::debug!("local pty write failed: {e}");
                break;
            }
        }
    }
}

/// Exit status of the local shell in the form SSH reports it.
pub(crate) fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    ExitInfo {
        code: status.code().and_then(|c| u32::try_from(c).ok()),
        signal: status.signal().map(signal_name),
        lost: false,
    }
}

/// Signal name without the `SIG` prefix.
fn signal_name(n: i32) -> String {
    let name = match n {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        8 => "FPE",
        9 => "KILL",
        10 => "USR1",
        11 => "SEGV",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return n.to_string(),
    };
    name.into()
}

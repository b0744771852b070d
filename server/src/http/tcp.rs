//! Options for accepted TCP sockets: no Nagle delay (keystrokes and chat
//! frames are small) and keepalive probes, so a peer that vanished without a
//! FIN or RST (a laptop closed, a network gone) is noticed by the kernel and
//! its socket errors out instead of staying "connected" for ever.
use std::{io, os::fd::AsFd, time::Duration};

use socket2::{SockRef, TcpKeepalive};

/// Idle time before the first keepalive probe: long enough that a quiet but
/// live connection costs a probe only every half minute.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Time between unanswered probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the kernel drops the connection: a vanished peer
/// is noticed after about 30 s + 3 × 10 s = 1 minute.
pub const KEEPALIVE_RETRIES: u32 = 3;

/// Sets TCP_NODELAY and keepalive ([`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`],
/// [`KEEPALIVE_RETRIES`]) on a connected TCP socket.
pub fn configure(socket: &impl AsFd) -> io::Result<()> {
    let sock = SockRef::from(socket);
    sock.set_tcp_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    sock.set_tcp_keepalive(&keepalive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn configure_turns_on_nodelay_and_keepalive() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
        let (accepted, _) = listener.accept().await?;
        let before = SockRef::from(&accepted);
        assert!(!before.keepalive()?, "keepalive is off by default");

        configure(&accepted)?;

        let sock = SockRef::from(&accepted);
        assert!(sock.keepalive()?, "SO_KEEPALIVE");
        assert!(sock.tcp_nodelay()?, "TCP_NODELAY");
        assert_eq!(sock.tcp_keepalive_time()?, KEEPALIVE_IDLE);
        assert_eq!(sock.tcp_keepalive_interval()?, KEEPALIVE_INTERVAL);
        assert_eq!(sock.tcp_keepalive_retries()?, KEEPALIVE_RETRIES);
        drop(client);
        Ok(())
    }
}

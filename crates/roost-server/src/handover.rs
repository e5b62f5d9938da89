//! Handing this server's process over to another `roost` binary (a
//! software update of the server's own host, or its rollback) without a
//! refused connection, a lost acknowledged write or a failed host.
//!
//! The old process keeps a duplicate of each bound socket, tells every
//! agent in the heartbeat pulses that silence is expected
//! ([`roost_api::heartbeat::FLAG_HOLD`]), stops accepting, lets requests in
//! progress finish, stops its loops and commits what its writers hold.
//! Then it replaces itself (`exec`, same process id) with the new binary,
//! passing the sockets as systemd's socket activation does: `LISTEN_FDS`
//! descriptors from 3 (the API listener, the heartbeat socket, the DC
//! listener if any), `LISTEN_PID`, and when the agents' hold ends. New
//! connections wait in the listener's backlog meanwhile; the new process
//! takes the sockets instead of binding, and does not count missed pulses
//! before the hold ends.

use std::os::fd::{AsFd, OwnedFd};

use command_fds::{CommandFdExt, FdMapping};
use roost_types::Timestamp;

/// Set on a handover: when the agents' hold ends (microseconds since the
/// epoch).
pub const HOLD_ENV: &str = "ROOST_HOLD_MISSES_UNTIL";

/// The sockets handed over, in order from descriptor 3.
const NAMES: [&str; 3] = ["http", "heartbeat", "dc"];

/// The sockets a previous process of this server handed over.
#[derive(Debug, Default)]
pub struct Inherited {
    pub http: Option<std::net::TcpListener>,
    pub heartbeat: Option<std::net::UdpSocket>,
    pub dc: Option<std::net::TcpListener>,
    pub hold_until: Option<Timestamp>,
}

impl Inherited {
    /// Takes the sockets from the environment (once; none when this
    /// process was not started by a handover).
    pub fn take() -> Inherited {
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() == 0 {
            return Inherited::default();
        }
        let hold_until = std::env::var(HOLD_ENV)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .map(Timestamp);
        let taken = Inherited {
            http: fds.take_tcp_listener(0).ok().flatten(),
            heartbeat: fds.take_udp_socket(1).ok().flatten(),
            dc: fds.take_tcp_listener(2).ok().flatten(),
            hold_until,
        };
        tracing::info!(
            http = taken.http.is_some(),
            heartbeat = taken.heartbeat.is_some(),
            dc = taken.dc.is_some(),
            "took over the sockets of the previous process"
        );
        taken
    }
}

/// The API or DC listener: the one handed over, else one bound to `addr`.
pub async fn tcp_listener(
    inherited: Option<std::net::TcpListener>,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    match inherited {
        Some(l) => {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        }
        None => tokio::net::TcpListener::bind(addr).await,
    }
}

/// The heartbeat socket: the one handed over, else one bound to `addr`.
pub async fn udp_socket(
    inherited: Option<std::net::UdpSocket>,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio::net::UdpSocket> {
    match inherited {
        Some(s) => {
            s.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(s)
        }
        None => tokio::net::UdpSocket::bind(addr).await,
    }
}

/// When the agents' hold ends, for a handover starting `now`.
pub fn hold_until(now: Timestamp) -> Timestamp {
    let hold = i64::try_from(roost_api::heartbeat::HOLD_MILLIS * 1000).unwrap_or(i64::MAX);
    Timestamp(now.micros().saturating_add(hold))
}

/// Duplicates of the bound sockets, kept for a handover.
#[derive(Debug)]
pub struct Sockets {
    fds: Vec<OwnedFd>,
}

impl Sockets {
    /// Duplicates `http`, `heartbeat` and `dc`.
    pub fn of(
        http: &impl AsFd,
        heartbeat: &impl AsFd,
        dc: Option<&tokio::net::TcpListener>,
    ) -> std::io::Result<Sockets> {
        let mut fds = vec![
            http.as_fd().try_clone_to_owned()?,
            heartbeat.as_fd().try_clone_to_owned()?,
        ];
        if let Some(dc) = dc {
            fds.push(dc.as_fd().try_clone_to_owned()?);
        }
        Ok(Sockets { fds })
    }
}

/// Replaces this process with `h`'s binary, handing it `sockets`, and
/// telling it the agents hold until `hold_until`. Returns only when that
/// fails (the sockets are kept, for another try).
pub fn exec(
    h: &roost_update::Handover,
    sockets: &Sockets,
    hold_until: Timestamp,
) -> std::io::Error {
    exec_with(h, sockets, hold_until, &[])
}

/// [`exec`], with more variables in the new process's environment.
pub fn exec_with(
    h: &roost_update::Handover,
    sockets: &Sockets,
    hold_until: Timestamp,
    env: &[(&str, String)],
) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let n = sockets.fds.len();
    let mut mappings = Vec::with_capacity(n);
    for (fd, child_fd) in sockets.fds.iter().zip(3..) {
        match fd.try_clone() {
            Ok(parent_fd) => mappings.push(FdMapping {
                parent_fd,
                child_fd,
            }),
            Err(e) => return e,
        }
    }
    let mut cmd = h.command();
    if let Err(e) = cmd.fd_mappings(mappings) {
        return std::io::Error::other(e);
    }
    cmd.env("LISTEN_FDS", n.to_string())
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDNAMES", NAMES[..n].join(":"))
        .env(HOLD_ENV, hold_until.micros().to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    tracing::info!(exe = %h.exe.display(), why = %h.why, sockets = n, "handing over to another roost binary");
    cmd.exec()
}

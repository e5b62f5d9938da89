//! Liveness and readiness probes: exec in the container, an HTTP GET or a
//! TCP connect to 127.0.0.1 (containers share the host's network), each
//! attempt bounded by the probe's timeout.

use std::sync::Arc;
use std::time::Duration;

use roost_api::apps::agent::{ProbeAction, ProbeSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Runtime;

/// Which probe an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Liveness,
    Readiness,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
        }
    }
}

/// The probe's timing with Kubernetes' floors (a period or timeout of 0
/// means 1 s; thresholds at least 1).
pub(crate) struct Timing {
    pub(crate) initial_delay: Duration,
    pub(crate) period: Duration,
    pub(crate) timeout: Duration,
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
}

impl Timing {
    pub(crate) fn of(p: &ProbeSpec) -> Timing {
        Timing {
            initial_delay: Duration::from_secs(u64::from(p.initial_delay_seconds)),
            period: Duration::from_secs(u64::from(p.period_seconds.max(1))),
            timeout: Duration::from_secs(u64::from(p.timeout_seconds.max(1))),
            failure_threshold: p.failure_threshold.max(1),
            success_threshold: p.success_threshold.max(1),
        }
    }
}

/// The result of one probe attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    /// The application failed it, and why.
    Failed(String),
    /// The runtime could not carry it out (containerd unavailable): not
    /// counted either way.
    Unknown(String),
}

/// Runs one attempt.
pub(crate) async fn attempt(
    rt: &Arc<dyn Runtime>,
    container_id: &str,
    action: &ProbeAction,
    timeout: Duration,
) -> Outcome {
    use Outcome::{Failed, Passed, Unknown};
    match action {
        ProbeAction::Exec { command } => match rt.exec(container_id, command, timeout).await {
            Ok(o) if o.success() => Passed,
            Ok(o) if o.timed_out => Failed(format!("exec {command:?} timed out after {timeout:?}")),
            Ok(o) => Failed(format!(
                "exec {command:?} exited with {}: {}",
                o.exit_code.unwrap_or_default(),
                String::from_utf8_lossy(&o.output).trim()
            )),
            Err(e) if e.kind() == roost_types::ErrorKind::Unavailable => {
                Unknown(format!("exec {command:?}: {e}"))
            }
            Err(e) => Failed(format!("exec {command:?}: {e}")),
        },
        ProbeAction::TcpSocket { port } => {
            match tokio::time::timeout(timeout, TcpStream::connect(("127.0.0.1", *port))).await {
                Ok(Ok(_)) => Passed,
                Ok(Err(e)) => Failed(format!("tcp connect to port {port}: {e}")),
                Err(_) => Failed(format!("tcp connect to port {port} timed out")),
            }
        }
        ProbeAction::HttpGet { path, port, https } => {
            if *https {
                return Failed(format!(
                    "https GET {path} on port {port}: HTTPS probes are not supported"
                ));
            }
            match tokio::time::timeout(timeout, http_get(*port, path)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Passed,
                Ok(Ok(code)) => Failed(format!("GET {path} on port {port}: HTTP status {code}")),
                Ok(Err(e)) => Failed(format!("GET {path} on port {port}: {e}")),
                Err(_) => Failed(format!("GET {path} on port {port} timed out")),
            }
        }
    }
}

/// A plain HTTP/1.0 GET to 127.0.0.1; returns the status code.
async fn http_get(port: u16, path: &str) -> std::io::Result<u16> {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path holds spaces or control characters",
        ));
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: roost-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    // Only the status line matters: read until its end (or 1 KiB).
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP status line: {line:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(reply: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /healthz HTTP/1.0\r\n"));
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn http_get_reads_the_status_line() {
        let port = serve_once("HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(http_get(port, "/healthz").await.unwrap(), 204);
        let port = serve_once("HTTP/1.0 503 Unavailable\r\n\r\n").await;
        assert_eq!(http_get(port, "healthz").await.unwrap(), 503);
        let port = serve_once("garbage\r\n").await;
        assert!(http_get(port, "/healthz").await.is_err());
    }
}

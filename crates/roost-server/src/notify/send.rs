//! One task per destination: it takes the records queued for it and sends
//! them, by webhook (ordered per entity, retried, dead-lettered), SNMP
//! trap or syslog message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_api::notify::{
    ATTEMPT_HEADER, DELIVERY_HEADER, NotifiedEvent, SIGNATURE_HEADER, WebhookBody,
    webhook_signature,
};
use roost_notify::snmp::TrapEncoder;
use roost_notify::syslog::{self, Facility};
use roost_notify::webhook::{Outbox, Policy};
use roost_store::{StoredDeadLetter, StoredDestination};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::settings::{self, Kind, Secrets, SnmpSettings, SyslogSettings, WebhookSettings};
use super::{Job, Shared, Stats};
use crate::error::Error;

/// Longest error text kept for a destination.
const MAX_ERROR: usize = 300;

/// Starts the task of `stored`; fails when its settings cannot be used.
pub(super) fn spawn(
    runtime: &tokio::runtime::Handle,
    shared: Arc<Shared>,
    stored: &StoredDestination,
    kind: &Kind,
    secrets: &Secrets,
    rx: mpsc::Receiver<Job>,
    stats: Stats,
) -> Result<tokio::task::AbortHandle, Error> {
    let id = stored.id.clone();
    let task = match kind {
        Kind::Webhook(w) => {
            let secret = secrets
                .webhook_secret
                .clone()
                .ok_or_else(|| Error::Invalid("a webhook needs a secret".into()))?;
            runtime.spawn(webhook(shared, id, w.clone(), secret, rx, stats))
        }
        Kind::Snmp(s) => {
            let security = settings::security(s, secrets)?;
            let encoder = TrapEncoder::new(security, shared.engine.id.clone(), shared.engine.boots)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            runtime.spawn(snmp(shared, s.clone(), encoder, rx, stats))
        }
        Kind::Syslog(s) => {
            let facility =
                Facility::parse(&s.facility).map_err(|e| Error::Invalid(e.to_string()))?;
            runtime.spawn(syslog_task(shared, s.clone(), facility, rx, stats))
        }
    };
    Ok(task.abort_handle())
}

fn note_error(stats: &Stats, e: &str) {
    if let Ok(mut s) = stats.lock() {
        s.failed_attempts += 1;
        s.last_error = Some(e.chars().take(MAX_ERROR).collect());
    }
}

fn note_delivered(shared: &Shared, stats: &Stats, kind: &'static str, since: Instant) {
    shared
        .metrics
        .notify_sent(kind, since.elapsed().as_secs_f64());
    if let Ok(mut s) = stats.lock() {
        s.delivered += 1;
        s.last_delivered_at = Some(shared.clock.now().to_string());
    }
}

fn set_pending(stats: &Stats, n: usize) {
    if let Ok(mut s) = stats.lock() {
        s.pending = n as u64;
    }
}

/// A webhook message: its body (with its sequence) and when its record
/// was committed.
#[derive(Clone)]
struct Message {
    body: Arc<Vec<u8>>,
    event: String,
    since: Instant,
}

type Outcome = (String, u64, Result<(), Error>);

async fn webhook(
    shared: Arc<Shared>,
    dest_id: String,
    w: WebhookSettings,
    secret: String,
    mut rx: mpsc::Receiver<Job>,
    stats: Stats,
) {
    let policy = Policy {
        max_attempts: w.max_attempts,
        retry_base_ms: w.retry_base_ms,
        ..Policy::default()
    };
    let mut outbox: Outbox<Message> = Outbox::new(policy, 1);
    let origin = Instant::now();
    let now_ms = move || u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (done_tx, mut done_rx) = mpsc::channel::<Outcome>(policy.max_in_flight.max(1) * 2);
    let secret = Arc::new(secret);
    let mut open = true;
    loop {
        for a in outbox.due(now_ms()) {
            let (http, url, secret, done) = (
                shared.http.clone(),
                w.url.clone(),
                secret.clone(),
                done_tx.clone(),
            );
            let timeout = Duration::from_millis(w.timeout_ms);
            tokio::spawn(async move {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let result = http
                    .post(&url)
                    .timeout(timeout)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(
                        SIGNATURE_HEADER,
                        webhook_signature(secret.as_bytes(), unix, &a.payload.body),
                    )
                    .header(DELIVERY_HEADER, a.payload.event.as_str())
                    .header(ATTEMPT_HEADER, a.attempt.to_string())
                    .body(a.payload.body.as_ref().clone())
                    .send()
                    .await;
                let r = match result {
                    Ok(resp) if resp.status().is_success() => Ok(()),
                    Ok(resp) => Err(format!("the receiver answered {}", resp.status())),
                    Err(e) if e.is_timeout() => Err("the receiver did not answer in time".into()),
                    Err(e) => Err(format!(
                        "cannot reach the receiver: {}",
                        crate::error::error_chain(&e)
                    )),
                }
                .map_err(Error::Unreachable);
                let _ = done.send((a.entity, a.sequence, r)).await;
            });
        }
        set_pending(&stats, outbox.pending());
        let wait = outbox
            .next_due_ms()
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        tokio::select! {
            job = rx.recv(), if open => {
                let Some(job) = job else {
                    open = false;
                    continue;
                };
                let (event, since) = match job {
                    Job::Event(e, since) => (NotifiedEvent::new(&e), since),
                    Job::Again(e) => (*e, Instant::now()),
                };
                let entity = event.entity_instance_id.clone();
                let uuid = event.uuid.clone();
                let system = shared.system.clone();
                let pushed = outbox.push_with(&entity, now_ms(), |sequence| {
                    let body = WebhookBody { sequence, system, event };
                    Message {
                        body: Arc::new(serde_json::to_vec(&body).unwrap_or_default()),
                        event: uuid,
                        since,
                    }
                });
                if pushed.is_err() {
                    shared.metrics.notify_dropped("webhook");
                    if let Ok(mut s) = stats.lock() {
                        s.dropped += 1;
                    }
                }
            }
            Some((entity, sequence, result)) = done_rx.recv() => {
                match result {
                    Ok(()) => {
                        let since = outbox_since(&outbox, &entity, sequence);
                        outbox.delivered(&entity, sequence);
                        note_delivered(&shared, &stats, "webhook", since);
                    }
                    Err(e) => {
                        let e = e.to_string();
                        shared.metrics.notify_failed("webhook");
                        note_error(&stats, &e);
                        tracing::warn!(destination = %dest_id, %entity, sequence, error = %e, "a webhook call failed");
                        if let Some(dead) = outbox.failed(&entity, sequence, now_ms(), &e) {
                            shared.metrics.notify_dead_lettered("webhook");
                            if let Ok(mut s) = stats.lock() {
                                s.dead_lettered += 1;
                            }
                            tracing::warn!(destination = %dest_id, %entity, sequence, attempts = dead.attempts, "a webhook delivery ran out of tries; kept as a dead letter");
                            let letter = StoredDeadLetter {
                                id: uuid::Uuid::new_v4().to_string(),
                                destination_id: dest_id.clone(),
                                sequence: i64::try_from(dead.sequence).unwrap_or(i64::MAX),
                                entity: dead.entity,
                                attempts: i64::from(dead.attempts),
                                last_error: dead.last_error,
                                body: String::from_utf8_lossy(&dead.payload.body).into_owned(),
                                created_at: shared.clock.now(),
                            };
                            let store = shared.store.clone();
                            let kept = tokio::task::spawn_blocking(move || store.insert_dead_letter(&letter)).await;
                            if !matches!(kept, Ok(Ok(()))) {
                                tracing::error!(destination = %dest_id, sequence = dead.sequence, "a dead letter could not be stored; it is lost");
                            }
                        }
                    }
                }
            }
            () = sleep_for(wait) => {}
        }
        if !open && outbox.pending() == 0 {
            return;
        }
    }
}

/// When the message `sequence` of `entity` was committed (its latency's
/// start); now if it is not found.
fn outbox_since(outbox: &Outbox<Message>, entity: &str, sequence: u64) -> Instant {
    outbox
        .head(entity)
        .filter(|(s, _)| *s == sequence)
        .map_or_else(Instant::now, |(_, m)| m.since)
}

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn resolve(host: &str, port: u16) -> Result<std::net::SocketAddr, Error> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::Unreachable(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| Error::Unreachable(format!("{host} has no address")))
}

async fn udp_socket(to: std::net::SocketAddr) -> Result<tokio::net::UdpSocket, Error> {
    let bind: std::net::SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| Error::Unreachable(format!("cannot open a UDP socket: {e}")))
}

async fn snmp(
    shared: Arc<Shared>,
    s: SnmpSettings,
    mut encoder: TrapEncoder,
    mut rx: mpsc::Receiver<Job>,
    stats: Stats,
) {
    let mut socket: Option<(tokio::net::UdpSocket, std::net::SocketAddr)> = None;
    let mut salt: u64 = {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        u64::from_be_bytes(b)
    };
    while let Some(job) = rx.recv().await {
        let Job::Event(event, since) = job else {
            continue;
        };
        set_pending(&stats, rx.len());
        let up = shared.engine.started.elapsed();
        let centis = u32::try_from(up.as_millis() / 10).unwrap_or(u32::MAX);
        let secs = u32::try_from(up.as_secs()).unwrap_or(u32::MAX);
        salt = salt.wrapping_add(1);
        let note = roost_notify::snmp::event_notification(&event);
        let datagram = match encoder.encode(&note, centis, secs, salt) {
            Ok(d) => d,
            Err(e) => {
                shared.metrics.notify_failed("snmp");
                note_error(&stats, &e.to_string());
                continue;
            }
        };
        if socket.is_none() {
            match resolve(&s.host, s.port).await {
                Ok(to) => match udp_socket(to).await {
                    Ok(sock) => socket = Some((sock, to)),
                    Err(e) => {
                        shared.metrics.notify_failed("snmp");
                        note_error(&stats, &e.to_string());
                        continue;
                    }
                },
                Err(e) => {
                    shared.metrics.notify_failed("snmp");
                    note_error(&stats, &e.to_string());
                    continue;
                }
            }
        }
        let Some((sock, to)) = socket.as_ref() else {
            continue;
        };
        match sock.send_to(&datagram, to).await {
            Ok(_) => note_delivered(&shared, &stats, "snmp", since),
            Err(e) => {
                shared.metrics.notify_failed("snmp");
                note_error(&stats, &format!("cannot send the trap: {e}"));
                socket = None;
            }
        }
    }
}

/// How long a TCP syslog collector has to take a message.
const SYSLOG_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

async fn syslog_task(
    shared: Arc<Shared>,
    s: SyslogSettings,
    facility: Facility,
    mut rx: mpsc::Receiver<Job>,
    stats: Stats,
) {
    let mut udp: Option<(tokio::net::UdpSocket, std::net::SocketAddr)> = None;
    let mut tcp: Option<tokio::net::TcpStream> = None;
    let mut backoff = Duration::from_millis(200);
    while let Some(job) = rx.recv().await {
        let Job::Event(event, since) = job else {
            continue;
        };
        let line = syslog::format(&event, facility, &shared.hostname);
        // A TCP collector that is down holds the message (and the queue
        // behind it) until it is back; UDP has no such wait.
        loop {
            set_pending(&stats, rx.len() + 1);
            let sent = if s.transport == "udp" {
                send_udp(&mut udp, &s, line.as_bytes()).await
            } else {
                send_tcp(&mut tcp, &s, &syslog::octet_counted(&line)).await
            };
            match sent {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    note_delivered(&shared, &stats, "syslog", since);
                    break;
                }
                Err(e) => {
                    shared.metrics.notify_failed("syslog");
                    note_error(&stats, &e.to_string());
                    if s.transport == "udp" {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        set_pending(&stats, rx.len());
    }
}

async fn send_udp(
    socket: &mut Option<(tokio::net::UdpSocket, std::net::SocketAddr)>,
    s: &SyslogSettings,
    msg: &[u8],
) -> Result<(), Error> {
    if socket.is_none() {
        let to = resolve(&s.host, s.port).await?;
        *socket = Some((udp_socket(to).await?, to));
    }
    let Some((sock, to)) = socket.as_ref() else {
        return Err(Error::Unreachable("no socket".into()));
    };
    if let Err(e) = sock.send_to(msg, to).await {
        *socket = None;
        return Err(Error::Unreachable(format!(
            "cannot send the syslog message: {e}"
        )));
    }
    Ok(())
}

async fn send_tcp(
    conn: &mut Option<tokio::net::TcpStream>,
    s: &SyslogSettings,
    framed: &[u8],
) -> Result<(), Error> {
    if conn.is_none() {
        let to = resolve(&s.host, s.port).await?;
        let c = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(to))
            .await
            .map_err(|_| Error::Unreachable(format!("cannot connect to {to}: timed out")))?
            .map_err(|e| Error::Unreachable(format!("cannot connect to {to}: {e}")))?;
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        return Err(Error::Unreachable("no connection".into()));
    };
    let written = tokio::time::timeout(SYSLOG_WRITE_TIMEOUT, async {
        c.write_all(framed).await?;
        c.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            *conn = None;
            Err(Error::Unreachable(format!(
                "the syslog connection failed: {e}"
            )))
        }
        Err(_) => {
            *conn = None;
            Err(Error::Unreachable(
                "the syslog collector did not take the message in time".into(),
            ))
        }
    }
}

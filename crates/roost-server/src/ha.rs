//! Several servers on one PostgreSQL store: one active, the others
//! standbys, decided by the controller lease (`roost_types::lease`, the
//! row in `roost_store`).
//!
//! A server on a PostgreSQL store takes the lease before it starts its
//! services. While another server holds it, this one is a standby: it
//! binds its sockets, serves authenticated reads (GET and HEAD with a
//! token) by forwarding them to the active and returning its answer,
//! answers every other request with a redirect (307) to the active's URL,
//! and looks at the lease four times per lease length.
//! When the lease has expired (the active died, was paused or cut off) it
//! takes it with the next epoch, ending the old holder's database
//! connections, fences the store with the new epoch and starts its
//! services: they load everything from the store, as at any start.
//!
//! The active renews the lease four times per lease length. If it cannot
//! renew in time (by its own clock), or finds another server took the
//! lease, it stops acting at once: it executes itself again with its
//! sockets and comes back as a standby. Its writes were refused by the
//! store from the moment its lease ended.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roost_store::Store;
use roost_types::lease::{Holding, LeaseRow, Next, next};

use crate::handover;
use crate::http::serve::{Limits, serve};

/// Who this server is among those sharing the store.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    /// Where it serves the API, for the standbys to send clients to.
    pub url: String,
    /// Lease length, microseconds.
    pub ttl: i64,
}

/// The lease this server holds.
#[derive(Debug, Clone)]
pub struct Acquired {
    pub epoch: i64,
    /// It was taken over from another server (not free, not this server's
    /// own from before a restart): hosts ride through the switch-over.
    pub took_over: bool,
    /// The controller whose lease ran out and was taken over, if any (its
    /// services failed: 400.001 until it is back).
    pub previous: Option<String>,
    /// When the taking started, by [`now`].
    pub started: i64,
}

/// Microseconds on this process's monotonic clock.
pub fn now() -> i64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    i64::try_from(base.elapsed().as_micros()).unwrap_or(i64::MAX)
}

/// What a standby tells clients: where the active is, if one is known,
/// else why none is.
#[derive(Debug, Clone, Default)]
pub struct Standby {
    pub url: Option<String>,
    pub reason: Option<String>,
}

/// The standby's answer, shared with whoever decides it.
pub type StandbyState = Arc<RwLock<Standby>>;

/// The largest answer a standby forwards; a larger one is redirected.
const MAX_FORWARDED: usize = 64 << 20;

/// Headers that belong to one connection, not to the request or answer.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// The standby's client of the active: no redirects followed, bounded.
fn forwarder() -> Option<&'static reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(30))
                .build()
                .ok()
        })
        .as_ref()
}

/// An authenticated read, forwarded to the active at `url`; `None` when it
/// cannot be (the active does not answer, its certificate is not trusted
/// here, or the answer is too large): the client is then redirected.
async fn forward(url: &str, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    let client = forwarder()?;
    let mut req = client.request(
        method.clone(),
        format!("{}{path}", url.trim_end_matches('/')),
    );
    for (name, value) in headers {
        if !hop_by_hop(name) {
            req = req.header(name, value);
        }
    }
    let answer = match req.send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(error = %roost_types::error_chain(&e), "cannot forward a read to the active; redirecting");
            return None;
        }
    };
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_FORWARDED as u64)
    {
        return None;
    }
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let mut answer = answer;
    let mut body = Vec::new();
    loop {
        match answer.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > MAX_FORWARDED {
                    return None;
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    out_headers.insert(header::VIA, HeaderValue::from_static("1.1 roost-standby"));
    let mut r = (status, body).into_response();
    *r.headers_mut() = out_headers;
    Some(r)
}

async fn redirect(
    State(active): State<StandbyState>,
    method: Method,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let seen = active.read().map(|a| a.clone()).unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authenticated =
        headers.contains_key("x-auth-token") || headers.contains_key(header::AUTHORIZATION);
    if let Some(url) = &seen.url
        && (method == Method::GET || method == Method::HEAD)
        && authenticated
        && let Some(r) = forward(url, &method, path, &headers).await
    {
        return r;
    }
    match seen.url {
        Some(url) => {
            let to = format!("{}{path}", url.trim_end_matches('/'));
            let message =
                format!("this controller is the standby; the active controller is at {url}");
            let mut r = (
                StatusCode::TEMPORARY_REDIRECT,
                axum::Json(roost_api::error_body(307, "Temporary Redirect", &message)),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => {
            let message = match seen.reason {
                Some(why) => {
                    format!("this controller is the standby and no controller is active: {why}")
                }
                None => {
                    "this controller is the standby and no controller is active yet; retry shortly"
                        .into()
                }
            };
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(roost_api::error_body(503, "Service Unavailable", &message)),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// A standby's API on a second handle of the listener: every request is
/// redirected to the active (or refused while there is none) until
/// [`StandbyServer::stop`].
pub struct StandbyServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl StandbyServer {
    pub fn start(
        listener: &tokio::net::TcpListener,
        state: StandbyState,
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
        url: &str,
    ) -> std::io::Result<StandbyServer> {
        let dup = duplicate(listener)?;
        let app = Router::new().fallback(redirect).with_state(state);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(dup, app, limits, tls, async move {
                let _ = stop_rx.await;
                Duration::from_millis(200)
            })
            .await;
        });
        println!("roost server standby on {url}");
        Ok(StandbyServer { stop, task })
    }

    /// Stops answering (the listener goes on to the active's API).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Holds the lease for `me` before returning: at once if it is free, else
/// after serving as a standby on `listener` until it can be taken.
pub async fn acquire(
    store: Arc<Store>,
    me: &Identity,
    listener: &tokio::net::TcpListener,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> crate::Result<Acquired> {
    let every = Duration::from_micros(u64::try_from((me.ttl / 4).max(1000)).unwrap_or(250_000));
    let active: StandbyState = Arc::new(RwLock::new(Standby::default()));
    let mut standby: Option<StandbyServer> = None;
    let mut waited_for: Option<String> = None;
    let yield_until = std::env::var(YIELD_ENV)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let out = loop {
        let started = now();
        let seen = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.lease()).await
        };
        let (row, db_now) = match seen {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) => {
                tracing::warn!(error = %roost_types::error_chain(&e), "cannot read the controller lease; trying again");
                tokio::time::sleep(every).await;
                continue;
            }
            Err(e) => {
                return Err(crate::Error::Invalid(format!(
                    "the lease check stopped: {e}"
                )));
            }
        };
        let decision = match next(row.as_ref(), db_now) {
            // A lease under this server's own name whose process is gone
            // (a restart after a crash): taken back at once rather than
            // after it expires.
            Next::Wait { holder, url } if holder == me.name => {
                let (store, name) = (store.clone(), me.name.clone());
                match tokio::task::spawn_blocking(move || store.other_process_named(&name)).await {
                    Ok(Ok(false)) => Next::Take,
                    _ => Next::Wait { holder, url },
                }
            }
            d => d,
        };
        let decision = match decision {
            // Just gave the lease up: leave it to a standby for a while.
            Next::Take if wall_micros() < yield_until => Next::Wait {
                holder: row.as_ref().map_or_else(String::new, |r| r.holder.clone()),
                url: String::new(),
            },
            d => d,
        };
        match decision {
            Next::Take => {
                let taken = {
                    let (store, me, row) = (store.clone(), me.clone(), row.clone());
                    tokio::task::spawn_blocking(move || {
                        store.take_lease(&me.name, &me.url, row.as_ref(), me.ttl)
                    })
                    .await
                };
                match taken {
                    Ok(Ok(Some(epoch))) => {
                        let took_over =
                            row.as_ref().is_some_and(|r: &LeaseRow| r.holder != me.name);
                        tracing::info!(
                            epoch,
                            previous = row.as_ref().map_or("", |r| r.holder.as_str()),
                            "took the controller lease: this server is the active controller"
                        );
                        break Acquired {
                            epoch,
                            took_over,
                            // A lease given up (a swact, a stop) is not a
                            // failure of its holder; one that ran out is.
                            previous: row
                                .as_ref()
                                .filter(|r| took_over && r.expires_at > 0)
                                .map(|r| r.holder.clone()),
                            started,
                        };
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %roost_types::error_chain(&e), "cannot take the controller lease; trying again");
                    }
                    Err(e) => {
                        return Err(crate::Error::Invalid(format!(
                            "the lease take stopped: {e}"
                        )));
                    }
                }
            }
            // An earlier process of this server still holds the lease (it
            // was just killed, and the database has not noticed yet, or
            // it is paused): wait for it without serving; connections wait
            // in the listener's backlog for the moment this one is active.
            Next::Wait { holder, .. } if holder == me.name && standby.is_none() => {
                if waited_for.as_deref() != Some(holder.as_str()) {
                    tracing::info!(
                        "waiting for the lease of an earlier process of this server to end"
                    );
                    waited_for = Some(holder);
                }
            }
            Next::Wait { holder, url } => {
                if let Ok(mut a) = active.write() {
                    // While yielding there is no active to send clients to.
                    a.url = (!url.is_empty()).then(|| url.clone());
                }
                if waited_for.as_deref() != Some(holder.as_str()) {
                    if holder == me.name {
                        tracing::warn!(%url, "standby: the lease is held under this server's own name, by an earlier process of it or by another server given the same [ha] name; waiting for it to expire");
                    } else {
                        tracing::info!(active = %holder, %url, "standby: another controller is active; sending clients to it");
                    }
                    waited_for = Some(holder);
                }
                if standby.is_none() {
                    standby = Some(StandbyServer::start(
                        listener,
                        active.clone(),
                        limits,
                        tls.clone(),
                        &me.url,
                    )?);
                }
            }
        }
        tokio::time::sleep(every).await;
    };
    if let Some(s) = standby {
        s.stop().await;
    }
    Ok(out)
}

/// A second handle on the bound listener: the standby serves on it and
/// drops it, the listener itself goes on to the active's API.
fn duplicate(l: &tokio::net::TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    use std::os::fd::AsFd;
    let std = std::net::TcpListener::from(l.as_fd().try_clone_to_owned()?);
    std.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(std)
}

/// What the lease keeper does when this server must stop acting.
pub type StepDown = Box<dyn FnOnce(String) + Send>;

/// Renews the lease four times per lease length, on a thread of its own
/// (a busy runtime or blocking pool must not make the lease lapse), until
/// `shutdown` sends (true: give the lease up; false: keep it, for a
/// handover); calls `step_down` with the reason if the lease is lost or
/// cannot be renewed in time.
pub fn keep(
    store: Arc<Store>,
    me: Identity,
    acquired: Acquired,
    step_down: StepDown,
    shutdown: std::sync::mpsc::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lease-keeper".into())
        .spawn(move || keep_on(&store, &me, &acquired, step_down, &shutdown))
}

fn keep_on(
    store: &Arc<Store>,
    me: &Identity,
    acquired: &Acquired,
    step_down: StepDown,
    shutdown: &std::sync::mpsc::Receiver<bool>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut holding = Holding::new(acquired.epoch, me.ttl, acquired.started);
    let every = Duration::from_micros(u64::try_from(holding.renew_every()).unwrap_or(250_000));
    let reason = loop {
        match shutdown.recv_timeout(every) {
            Ok(release) => {
                if release {
                    let _ = store.release_lease(&me.name, holding.epoch);
                }
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if holding.lapsed(now()) {
            break "the controller lease could not be renewed in time".to_string();
        }
        // A renewal that hangs (a stalled disk, a lost database) is waited
        // for one renewal period at most: the lapse is checked on time.
        let started = now();
        let (tx, rx) = std::sync::mpsc::channel();
        let (s, name, epoch, ttl) = (store.clone(), me.name.clone(), holding.epoch, me.ttl);
        let spawned = std::thread::Builder::new()
            .name("lease-renewal".into())
            .spawn(move || {
                let _ = tx.send(s.renew_lease(&name, epoch, ttl));
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a lease renewal");
            continue;
        }
        match rx.recv_timeout(every) {
            Ok(Ok(true)) => holding.renewed(started),
            Ok(Ok(false)) => break "another controller took the lease".to_string(),
            Ok(Err(e)) => {
                tracing::warn!(error = %roost_types::error_chain(&e), "cannot renew the controller lease");
            }
            Err(_) => tracing::warn!("renewing the controller lease takes longer than its period"),
        }
        if holding.lapsed(now()) {
            break "the controller lease could not be renewed in time".to_string();
        }
    };
    step_down(reason);
}

/// Set when a controller that gave its lease up executes itself again:
/// until then (microseconds since the epoch) it does not take a free
/// lease, so that a standby takes it first.
pub const YIELD_ENV: &str = "ROOST_HA_YIELD_UNTIL";

/// Whether this process was started again as a standby by
/// [`restart_as_standby`].
pub fn restarted_as_standby() -> bool {
    std::env::var_os(YIELD_ENV).is_some()
}

/// Whether this process gave the lease up a moment ago ([`YIELD_ENV`]).
pub fn yielding() -> bool {
    std::env::var(YIELD_ENV)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|until| wall_micros() < until)
}

pub(crate) fn wall_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Stops acting at once: executes this binary again with the sockets, to
/// come back as a standby, leaving a free lease to the others for two
/// lease lengths (`ttl`, microseconds). Returns only if that failed.
pub fn restart_as_standby(reason: &str, sockets: &handover::Sockets, ttl: i64) -> crate::Error {
    tracing::error!(%reason, "stepping down: this server is no longer the active controller; starting again as a standby");
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(e) => return crate::Error::Invalid(format!("cannot find this binary: {e}")),
    };
    let h = roost_update::Handover::rollback(me);
    let until = wall_micros().saturating_add(ttl.saturating_mul(2));
    let e = handover::exec_with(
        &h,
        sockets,
        roost_types::Timestamp(0),
        &[(YIELD_ENV, until.to_string())],
    );
    crate::Error::Invalid(format!(
        "cannot execute this binary again: {}",
        roost_types::error_chain(&e)
    ))
}

/// Keeps the controllers' redundancy alarms (400.002, 400.001) while this
/// server is active, looking at the servers connected to the store every
/// second. `failed` is the controller whose lease this one took over.
pub async fn redundancy_loop(
    store: Arc<Store>,
    fm: crate::fm_service::FmService,
    me: String,
    duplex: bool,
    failed: Option<String>,
    shutdown: crate::Shutdown,
) {
    let mut kept: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    loop {
        let connected = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.connected_servers()).await
        };
        let connected = match connected {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => {
                tracing::warn!(error = %roost_types::error_chain(&e), "cannot list the controllers connected to the store");
                None
            }
            Err(_) => None,
        };
        tracing::debug!(?connected, %me, duplex, "controllers connected to the store");
        if let Some(connected) = connected {
            for (id, entity, raised) in
                roost_types::lease::redundancy(&me, &connected, duplex, failed.as_deref())
            {
                let key = format!("{id} {entity}");
                if kept.get(&key) == Some(&raised) {
                    continue;
                }
                let (severity, reason) = match (id, raised) {
                    ("400.002", true) => (
                        Some(roost_types::Severity::Major),
                        format!(
                            "Controller services have lost redundancy: no standby controller is connected; {me} is active alone"
                        ),
                    ),
                    (_, true) => (
                        Some(roost_types::Severity::Critical),
                        format!(
                            "Controller services failed on {}: {me} took over as the active controller",
                            failed.as_deref().unwrap_or("the previous controller")
                        ),
                    ),
                    _ => (None, String::new()),
                };
                let cmd = crate::fm_service::raise_or_clear(id, entity, severity, reason);
                match fm.submit(cmd).await {
                    Ok(o) => {
                        tracing::debug!(
                            alarm_id = id,
                            raised,
                            changes = o.changes.len(),
                            events = o.events.len(),
                            "controller redundancy alarm"
                        );
                        kept.insert(key, raised);
                    }
                    Err(e) => {
                        tracing::warn!(alarm_id = id, error = %roost_types::error_chain(&e), "cannot record a controller redundancy alarm; trying again");
                    }
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

//! Many lightweight simulated subclouds in one process, each enrolled like
//! a real one and syncing with its system controller over mutual TLS.
//!
//! A real subcloud is a whole `roost server --role subcloud`. To put
//! thousands of subclouds in front of a system controller (benchmarks,
//! scale tests), [`SubcloudFleet`] plays each subcloud's DC link from one
//! process, with the real protocol of `roost_api::dcsync`:
//!
//! 1. `POST /v1.0/subclouds/` `{name, description}` on the system
//!    controller's API with the admin token gives a one-time enrollment
//!    token `rsc1.<CA fingerprint>.<secret>` and the DC listener's URL
//!    (`system_controller_dc_url`, unless [`SubcloudsConfig::dc_url`] says
//!    otherwise);
//! 2. a fresh P-256 key and CSR per subcloud
//!    (`roost_pki::ClientIdentity::generate`), sent to `POST /dc/v1/enroll`
//!    over a client that trusts only the CA whose fingerprint the token
//!    carries, give the subcloud's certificate and the DC CA;
//! 3. one sync right away (the subcloud is online and, with every synced
//!    endpoint reported, `complete`), then, with `--manage`,
//!    `PATCH /v1.0/subclouds/{name}` `{"management-state": "managed"}`;
//! 4. from then on each subcloud is one tokio task with its own
//!    `reqwest::Client` (its own certificate: the system controller takes
//!    the subcloud's identity from the certificate's CN, so clients cannot
//!    be shared) that syncs every `interval_secs` of the system
//!    controller's reply, exactly as `roost_server::subcloud::SyncLoop` does:
//!    alarm changes after the last acknowledged number (or a snapshot when
//!    the system controller asks for one), what it applied of each synced
//!    endpoint with the digest of its local content, and the pushes of the
//!    reply applied (content stored, its digest reported at once, 50 ms
//!    later, so the system controller sees it in-sync). The first sync of
//!    each loop is delayed by a per-subcloud offset within one interval, so
//!    10,000 subclouds do not sync in lockstep.
//!
//! Alarms live in a [`roost_dc::AlarmLog`] per subcloud:
//! [`SubcloudFleet::raise_alarm`] and [`SubcloudFleet::clear_alarm`] append
//! to it and the change goes out at the subcloud's next sync (as with a
//! real subcloud; [`SubcloudFleet::sync_now`] sends it at once).
//! `--alarm-churn` raises and clears alarms at random at a given total rate.
//!
//! Deploy orders of a fleet rollout (`sw-update-strategy`) are answered
//! with the real subcloud's protocol (`roost_api::dcsync::OrderSlot`): the
//! release named by the `software` endpoint is fetched once over the link
//! like a real subcloud fetches it, then the order goes through the
//! phases a real site strategy reports, `apply VIM sw-deploy strategy`
//! lasting [`SubcloudsConfig::deploy_time`]; `complete` and `rollback`
//! answer at once. [`SubcloudFleet::fail_deploy`] makes a subcloud's next
//! deploy fail.
//!
//! Failures: [`SubcloudFleet::kill`] ends a subcloud's task and drops its
//! client (its connection closes): a dead subcloud.
//! [`SubcloudFleet::partition`] stops a subcloud's syncs while it keeps
//! accumulating alarm changes; when the partition ends it resumes from the
//! last acknowledged number, as the real subcloud does after losing its
//! link.
//!
//! Cost: each subcloud holds one TLS connection (kept alive between syncs,
//! as reqwest's pool does for the real subcloud) and one client. Measured
//! with `roost-bench dc` (release build, 2 s interval): about 60 KiB and
//! 500 syncs/s per 1,000 subclouds; 10,000 subclouds take 581 MiB and 36 %
//! of a core in one process, so one process is enough up to 10,000 on the
//! 2-core machine. A process needs one file descriptor per subcloud:
//! `ulimit -n` must be above `--count` (and so must the system
//! controller's). For more, run several `roost sim subclouds` against one
//! system controller with different `--prefix`es.
//!
//! `roost sim subclouds` ([`run_subclouds`]) prints `roost sim subclouds
//! ready: N subclouds` on stdout once every subcloud is enrolled (and
//! managed), then reads commands on stdin, one per line, and answers each
//! with one line on stdout, `ok ...` or `err ...` (see [`CONTROL_HELP`]), so
//! a benchmark in another process can kill, partition and raise alarms.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use roost_api::dcsync::{
    DeployOrder, EndpointConfig, EnrollRequest, EnrollResponse, OrderSlot, SyncReply, SyncRequest,
    empty_digest, parse_enroll_token, push_applied, sync_request, take_reply,
};
use roost_dc::{
    AlarmChange, AlarmCounts, AlarmLog, ENDPOINT_COUNT, Endpoint, SubcloudLink, SyncResult,
};
use roost_release::rollout::Phase;
use roost_types::{Severity, Timestamp};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::error::{Context as _, Error, Result};

/// Header that carries the admin's Keystone token.
const AUTH_HEADER: &str = "X-Auth-Token";

/// Enrollments in flight at once.
const DEFAULT_CONCURRENCY: usize = 16;

/// After applying a push, the subcloud reports it this soon.
const REPORT_SOON: Duration = Duration::from_millis(50);

/// Unacknowledged alarm changes a simulated subcloud keeps.
const LOG_CAPACITY: usize = 10_000;

/// What the control channel understands (`help` prints it).
pub const CONTROL_HELP: &str = "commands (NAMES: comma-separated names, or * for every live subcloud): \
kill NAMES | partition on|off NAMES | raise NAMES ALARM_ID ENTITY SEVERITY | \
clear NAMES ALARM_ID ENTITY | sync NAMES | applied NAME ENDPOINT | generation ENDPOINT | \
insync ENDPOINT GENERATION SINCE_UNIX_MICROS [NAMES] | counts NAMES | fail-deploy NAMES | \
stats | rtt-reset | help";

/// Arguments of `roost sim subclouds`.
///
/// Example: `roost sim subclouds --system-controller http://127.0.0.1:6385 --count 1000 --manage`
/// (the admin token may come from `ROOST_TOKEN`).
#[derive(Args, Clone, PartialEq)]
pub struct SubcloudsArgs {
    /// The system controller's API URL, to add the subclouds and manage them
    /// (as for the command-line client, ROOST_URL).
    #[arg(long, env = "ROOST_URL")]
    pub system_controller: String,
    /// The system controller's DC listener (https://HOST:PORT) [default: the
    /// system_controller_dc_url it answers when a subcloud is added]
    #[arg(long)]
    pub dc_url: Option<String>,
    /// An admin token (X-Auth-Token), to add and manage the subclouds.
    #[arg(long, env = "ROOST_TOKEN", hide_env_values = true)]
    pub token: String,
    /// How many subclouds to simulate.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Name prefix: subclouds are PREFIX00001, PREFIX00002, ...
    #[arg(long, default_value = "sim-")]
    pub prefix: String,
    /// Manage every subcloud once it is enrolled and online.
    #[arg(long)]
    pub manage: bool,
    /// Alarm changes (raise or clear) per second over the whole fleet.
    #[arg(long, default_value_t = 0.0)]
    pub alarm_churn: f64,
    /// Seconds between two syncs of a subcloud [default: the interval_secs of
    /// the system controller's replies]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval_secs: Option<u64>,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY as u32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// How long a simulated deploy of a release to the subcloud's hosts
    /// takes, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub deploy_ms: u64,
    /// Give up when the fleet is not enrolled after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub ready_timeout_secs: u64,
}

impl fmt::Debug for SubcloudsArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubcloudsArgs")
            .field("system_controller", &self.system_controller)
            .field("dc_url", &self.dc_url)
            .field("token", &"<hidden>")
            .field("count", &self.count)
            .field("prefix", &self.prefix)
            .field("manage", &self.manage)
            .field("alarm_churn", &self.alarm_churn)
            .field("interval_secs", &self.interval_secs)
            .field("concurrency", &self.concurrency)
            .field("deploy_ms", &self.deploy_ms)
            .field("ready_timeout_secs", &self.ready_timeout_secs)
            .finish()
    }
}

/// How a [`SubcloudFleet`] is set up.
#[derive(Clone, PartialEq)]
pub struct SubcloudsConfig {
    /// The system controller's API URL (`http://127.0.0.1:6385`).
    pub system_controller: String,
    /// Its DC listener; `None`: what it answers when a subcloud is added.
    pub dc_url: Option<String>,
    /// An admin token, to add and manage the subclouds.
    pub admin_token: String,
    /// How many subclouds.
    pub count: usize,
    /// Name prefix: `{prefix}00001`, `{prefix}00002`, ...
    pub prefix: String,
    /// Manage each subcloud after its first sync.
    pub manage: bool,
    /// Alarm changes per second over the whole fleet (0: none).
    pub alarm_churn: f64,
    /// Fixed time between syncs; `None`: the system controller's `interval_secs`.
    pub interval: Option<Duration>,
    /// Enrollments in flight at once.
    pub concurrency: usize,
    /// How long a simulated deploy to the subcloud's hosts takes.
    pub deploy_time: Duration,
}

impl SubcloudsConfig {
    /// Unmanaged subclouds, no churn, the system controller's interval,
    /// 16 enrollments at a time.
    pub fn new(
        system_controller: &str,
        admin_token: &str,
        count: usize,
        prefix: &str,
    ) -> SubcloudsConfig {
        SubcloudsConfig {
            system_controller: system_controller.trim().trim_end_matches('/').to_string(),
            dc_url: None,
            admin_token: admin_token.to_string(),
            count,
            prefix: prefix.to_string(),
            manage: false,
            alarm_churn: 0.0,
            interval: None,
            concurrency: DEFAULT_CONCURRENCY,
            deploy_time: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for SubcloudsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubcloudsConfig")
            .field("system_controller", &self.system_controller)
            .field("dc_url", &self.dc_url)
            .field("admin_token", &"<hidden>")
            .field("count", &self.count)
            .field("prefix", &self.prefix)
            .field("manage", &self.manage)
            .field("alarm_churn", &self.alarm_churn)
            .field("interval", &self.interval)
            .field("concurrency", &self.concurrency)
            .field("deploy_time", &self.deploy_time)
            .finish()
    }
}

/// The name of subcloud number `n` (from 1) of a fleet.
pub fn subcloud_name(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:05}")
}

fn null_digest() -> &'static str {
    static D: OnceLock<String> = OnceLock::new();
    D.get_or_init(empty_digest)
}

fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

// ----- counters ----------------------------------------------------------

/// Buckets of the sync round-trip histogram: bucket `i` holds times in
/// `[HIST_BASE^i, HIST_BASE^(i+1))` microseconds.
const HIST_BUCKETS: usize = 128;
const HIST_BASE: f64 = 1.2;

/// A lock-free histogram of durations (about 10 % resolution).
struct Hist {
    buckets: [AtomicU64; HIST_BUCKETS],
}

impl Hist {
    fn new() -> Hist {
        Hist {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn record(&self, d: Duration) {
        let us = (d.as_micros() as f64).max(1.0);
        let i = (us.ln() / HIST_BASE.ln()) as usize;
        self.buckets[i.min(HIST_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// Count and (p50, p99, max) as the upper bounds of their buckets.
    fn summary(&self) -> (u64, Option<[Duration; 3]>) {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return (0, None);
        }
        let upper = |i: usize| Duration::from_micros(HIST_BASE.powi(i as i32 + 1).ceil() as u64);
        let at = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper(i);
                }
            }
            upper(HIST_BUCKETS - 1)
        };
        (n, Some([at(50.0), at(99.0), at(100.0)]))
    }
}

struct Counters {
    syncs_ok: AtomicU64,
    syncs_refused: AtomicU64,
    syncs_failed: AtomicU64,
    pushes_applied: AtomicU64,
    pushes_stale: AtomicU64,
    snapshots_sent: AtomicU64,
    changes_sent: AtomicU64,
    snapshots_asked: AtomicU64,
    alarm_changes: AtomicU64,
    packages_fetched: AtomicU64,
    package_bytes: AtomicU64,
    package_failures: AtomicU64,
    orders_answered: AtomicU64,
    rtt: Hist,
    /// How long a simulated deploy takes (set once).
    deploy_time: Duration,
}

impl Counters {
    fn new(deploy_time: Duration) -> Counters {
        Counters {
            syncs_ok: AtomicU64::new(0),
            syncs_refused: AtomicU64::new(0),
            syncs_failed: AtomicU64::new(0),
            pushes_applied: AtomicU64::new(0),
            pushes_stale: AtomicU64::new(0),
            snapshots_sent: AtomicU64::new(0),
            changes_sent: AtomicU64::new(0),
            snapshots_asked: AtomicU64::new(0),
            alarm_changes: AtomicU64::new(0),
            packages_fetched: AtomicU64::new(0),
            package_bytes: AtomicU64::new(0),
            package_failures: AtomicU64::new(0),
            orders_answered: AtomicU64::new(0),
            rtt: Hist::new(),
            deploy_time,
        }
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Counters of a whole fleet since it started (sync round trips since the
/// last [`SubcloudFleet::reset_rtt`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SubcloudFleetStats {
    pub subclouds: usize,
    pub killed: usize,
    pub partitioned: usize,
    /// Subclouds whose last sync was answered.
    pub online: usize,
    pub syncs_ok: u64,
    /// Syncs the system controller answered with an error status.
    pub syncs_refused: u64,
    /// Syncs that got no answer (connection or timeout).
    pub syncs_failed: u64,
    pub pushes_applied: u64,
    pub pushes_stale: u64,
    pub snapshots_sent: u64,
    pub changes_sent: u64,
    /// Replies with `want_snapshot`.
    pub snapshots_asked: u64,
    /// Alarm changes made (raise, clear, churn).
    pub alarm_changes: u64,
    /// Application packages fetched from the system controller, and their bytes.
    pub packages_fetched: u64,
    pub package_bytes: u64,
    /// Package fetches that failed (the push is then not acknowledged).
    pub package_failures: u64,
    /// Deploy order answers that changed a subcloud's report.
    pub orders_answered: u64,
    /// Answered syncs timed by the round-trip histogram.
    pub rtt_samples: u64,
    /// Round trip of answered syncs: p50, p99 and max (about 10 % resolution).
    pub rtt: Option<[Duration; 3]>,
}

// ----- one simulated subcloud ---------------------------------------------

/// What one subcloud runs of an endpoint type.
struct Local {
    config: EndpointConfig,
    digest: String,
}

struct SubState {
    log: AlarmLog,
    /// The same link state machine as the real subcloud's.
    link: SubcloudLink,
    local: [Option<Local>; ENDPOINT_COUNT],
    /// Per endpoint: the generation whose report the system controller
    /// last answered, and when (Unix microseconds).
    confirmed: [(u64, i64); ENDPOINT_COUNT],
    /// Digests of the application packages and release files fetched
    /// (once each).
    fetched: std::collections::HashSet<String>,
    /// The answer to the last deploy order, as the real subcloud keeps it.
    order: OrderSlot,
    /// When the simulated deploy of the current order began (Unix µs).
    deploy_began: Option<i64>,
}

impl SubState {
    fn new(name: &str) -> SubState {
        SubState {
            log: AlarmLog::with_capacity(LOG_CAPACITY),
            link: SubcloudLink::new(Timestamp(unix_micros()), fnv1a(name.as_bytes())),
            local: std::array::from_fn(|_| None),
            confirmed: [(0, 0); ENDPOINT_COUNT],
            fetched: Default::default(),
            order: OrderSlot::default(),
            deploy_began: None,
        }
    }

    fn local_digest(&self, ep: Endpoint) -> &str {
        self.local[ep.index()]
            .as_ref()
            .map_or(null_digest(), |l| l.digest.as_str())
    }

    /// The next sync request, built as the real subcloud builds it.
    fn request(&self) -> SyncRequest {
        let mut req = sync_request(&self.link, &self.log, env!("CARGO_PKG_VERSION"), |ep| {
            self.local_digest(ep).to_string()
        });
        req.order = self.order.report.clone();
        req
    }

    /// The release `id` as the `software` endpoint names it, if it was
    /// fetched here.
    fn has_release(&self, id: &str) -> bool {
        match self.local[Endpoint::Software.index()]
            .as_ref()
            .map(|l| &l.config)
        {
            Some(EndpointConfig::Software(c)) => c
                .releases
                .iter()
                .any(|r| r.release_id == id && self.fetched.contains(&r.digest)),
            _ => false,
        }
    }

    /// One step of a deploy order, with the phases a real subcloud reports;
    /// true when the answer changed.
    fn take_order(&mut self, o: &DeployOrder, now: i64, deploy_time: Duration, fail: bool) -> bool {
        if !self.order.needs_step(o) {
            return false;
        }
        // The last answer to this very order, if any.
        let last = self
            .order
            .report
            .as_ref()
            .filter(|r| r.order == o.id && self.order.action == o.action)
            .and_then(|r| Some((Phase::parse(&r.phase)?, r.details.clone())));
        let (phase, details) = match o.action.as_str() {
            "deploy" => match last {
                _ if !self.has_release(&o.release_id) => (
                    Phase::PreCheck,
                    format!("waiting for release {}", o.release_id),
                ),
                None | Some((Phase::PreCheck, _)) => {
                    (Phase::CreateStrategy, "site strategy created".into())
                }
                Some((Phase::CreateStrategy, _)) => {
                    self.deploy_began = Some(now);
                    (Phase::ApplyStrategy, "applying".into())
                }
                Some((Phase::ApplyStrategy, _)) if fail => {
                    (Phase::Failed, "simulated deploy failure".into())
                }
                Some((Phase::ApplyStrategy, details)) => {
                    let began = self.deploy_began.unwrap_or(now);
                    if now - began >= deploy_time.as_micros() as i64 {
                        (
                            Phase::Activated,
                            format!("release {} activated", o.release_id),
                        )
                    } else {
                        (Phase::ApplyStrategy, details)
                    }
                }
                Some((p, details)) => (p, details),
            },
            "complete" => (
                Phase::Complete,
                format!("release {} deployed", o.release_id),
            ),
            "rollback" => (Phase::RolledBack, "rolled back".into()),
            other => (Phase::Failed, format!("unknown order action {other:?}")),
        };
        self.order.answer(o, phase.as_str(), details)
    }
}

struct Sub {
    name: String,
    state: Mutex<SubState>,
    wake: Notify,
    killed: AtomicBool,
    partitioned: AtomicBool,
    /// The next deploy fails.
    fail_deploy: AtomicBool,
}

impl Sub {
    fn new(name: String) -> Sub {
        Sub {
            state: Mutex::new(SubState::new(&name)),
            name,
            wake: Notify::new(),
            killed: AtomicBool::new(false),
            partitioned: AtomicBool::new(false),
            fail_deploy: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alive(&self) -> bool {
        !self.killed.load(Ordering::Relaxed)
    }

    /// Appends an alarm change to the subcloud's log; returns its number.
    fn change(&self, alarm_id: &str, entity: &str, severity: Option<Severity>) -> u64 {
        self.lock().log.append(AlarmChange {
            seq: 0,
            alarm_id: alarm_id.to_string(),
            entity_instance_id: entity.to_string(),
            severity,
            reason_text: if severity.is_some() {
                format!("simulated alarm on {}", self.name)
            } else {
                String::new()
            },
            timestamp: Timestamp(unix_micros()),
        })
    }
}

/// One sync; returns the interval the system controller asked for (when it
/// answered) and whether to sync again soon (a push was applied).
async fn sync_once(
    sub: &Sub,
    http: &reqwest::Client,
    url: &str,
    c: &Counters,
) -> (Option<Duration>, bool) {
    let req = sub.lock().request();
    let sent_snapshot = req.snapshot.is_some();
    if sent_snapshot {
        bump(&c.snapshots_sent, 1);
    }
    bump(&c.changes_sent, req.changes.len() as u64);
    let reported: Vec<(Endpoint, u64)> = req
        .applied
        .iter()
        .filter_map(|a| Some((Endpoint::parse(&a.endpoint)?, a.generation)))
        .collect();
    let started = Instant::now();
    let reply = match http.post(url).json(&req).send().await {
        Ok(resp) if resp.status().is_success() => resp.json::<SyncReply>().await.ok(),
        Ok(resp) => {
            bump(&c.syncs_refused, 1);
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            tracing::debug!(subcloud = %sub.name, %status, body = %body.chars().take(200).collect::<String>(), "the system controller refused a sync");
            // A refused stream: start over with a snapshot.
            sub.lock().link.finished(sent_snapshot, SyncResult::Refused);
            return (None, false);
        }
        Err(e) => {
            tracing::debug!(subcloud = %sub.name, error = %e, "sync failed");
            None
        }
    };
    let Some(reply) = reply else {
        bump(&c.syncs_failed, 1);
        sub.lock()
            .link
            .finished(sent_snapshot, SyncResult::Unreachable);
        return (None, false);
    };
    c.rtt.record(started.elapsed());
    bump(&c.syncs_ok, 1);
    if reply.want_snapshot {
        bump(&c.snapshots_asked, 1);
    }
    let now = unix_micros();
    let mut again_soon = false;
    let interval_secs = reply.interval_secs;
    let order = reply.order.clone();
    let (mut pushes, missing) = {
        let mut st = sub.lock();
        let taken = take_reply(&mut st.link, sent_snapshot, reply);
        let acked = st.link.acked();
        st.log.ack(acked);
        for (ep, generation) in reported {
            let slot = &mut st.confirmed[ep.index()];
            if generation != slot.0 || slot.1 == 0 {
                *slot = (generation, now);
            }
        }
        bump(&c.pushes_stale, taken.stale.len() as u64);
        let mut missing: Vec<Wanted> = Vec::new();
        for p in &taken.pushes {
            match &p.config {
                EndpointConfig::Apps(a) => missing.extend(a.apps.iter().map(|a| Wanted {
                    what: a.name.clone(),
                    digest: a.digest.clone(),
                    size: a.size,
                    endpoint: Endpoint::Apps,
                })),
                EndpointConfig::Software(c) => missing.extend(c.releases.iter().map(|r| Wanted {
                    what: r.release_id.clone(),
                    digest: r.digest.clone(),
                    size: r.size,
                    endpoint: Endpoint::Software,
                })),
                _ => {}
            }
        }
        missing.retain(|w| !st.fetched.contains(&w.digest));
        (taken.pushes, missing)
    };
    // The packages come over the real link with the real subcloud's fetch
    // (resumed, checked); only then is the push acknowledged.
    if !missing.is_empty() {
        let failed = fetch_packages(sub, http, url, &missing, c).await;
        pushes.retain(|p| !failed.contains(&p.config.endpoint()));
    }
    let mut st = sub.lock();
    for p in pushes {
        let ep = p.config.endpoint();
        // Applying is storing it; the same digest the real subcloud reports.
        push_applied(&mut st.link, &p);
        let d = p.config.digest();
        st.local[ep.index()] = Some(Local {
            config: p.config,
            digest: d,
        });
        bump(&c.pushes_applied, 1);
        again_soon = true;
    }
    if let Some(o) = order {
        let fail = o.action == "deploy" && sub.fail_deploy.load(Ordering::Relaxed);
        if st.take_order(&o, unix_micros(), c.deploy_time, fail) {
            if st
                .order
                .report
                .as_ref()
                .is_some_and(|r| r.phase == Phase::Failed.as_str())
            {
                sub.fail_deploy.store(false, Ordering::Relaxed);
            }
            bump(&c.orders_answered, 1);
            st.link.report_soon();
            again_soon = true;
        }
    }
    let interval = Duration::from_secs(interval_secs.clamp(1, 60));
    (Some(interval), again_soon)
}

/// A file a push names: an application package or a release file.
struct Wanted {
    what: String,
    digest: String,
    size: u64,
    endpoint: Endpoint,
}

/// Fetches application packages and release files into a scratch
/// directory with [`roost_pki::fetch_content`], then drops the bytes (the
/// digest is remembered: each is fetched once). Answers the endpoints of
/// the files that failed.
async fn fetch_packages(
    sub: &Sub,
    http: &reqwest::Client,
    sync_url: &str,
    apps: &[Wanted],
    c: &Counters,
) -> Vec<Endpoint> {
    let base = sync_url.trim_end_matches("/dc/v1/sync");
    let dir = std::env::temp_dir().join(format!(
        "roost-sim-packages-{}/{}",
        std::process::id(),
        sub.name
    ));
    let mut failed = Vec::new();
    for a in apps {
        let url = format!("{base}{}{}", roost_api::dcsync::PACKAGES_PATH, a.digest);
        match roost_pki::fetch_content(http, &url, &dir, &a.digest, a.size).await {
            Ok(f) => {
                bump(&c.packages_fetched, 1);
                bump(&c.package_bytes, f.received);
                let _ = std::fs::remove_file(&f.path);
                sub.lock().fetched.insert(a.digest.clone());
            }
            Err(e) => {
                bump(&c.package_failures, 1);
                tracing::debug!(subcloud = %sub.name, file = %a.what, error = %e, "cannot fetch a package");
                failed.push(a.endpoint);
            }
        }
    }
    let _ = std::fs::remove_dir(&dir);
    failed
}

/// A subcloud's sync loop: runs until its task is aborted.
async fn sync_loop(
    sub: Arc<Sub>,
    http: reqwest::Client,
    url: String,
    c: Arc<Counters>,
    first_delay: Duration,
    mut interval: Duration,
    fixed: bool,
) {
    let mut wait = first_delay;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = sub.wake.notified() => {}
        }
        if !sub.alive() {
            return;
        }
        if sub.partitioned.load(Ordering::Relaxed) {
            // The link is down: nothing reaches the system controller, and
            // the alarm log keeps growing until the partition ends.
            sub.lock().link.finished(false, SyncResult::Unreachable);
            wait = interval;
            continue;
        }
        let (asked, soon) = sync_once(&sub, &http, &url, &c).await;
        if fixed {
            // A fixed interval set by the operator (benchmarks).
            wait = if soon { REPORT_SOON } else { interval };
        } else {
            if let Some(i) = asked {
                interval = i;
            }
            // The real subcloud's schedule: fixed rate, jitter, quick
            // reports of applied pushes, backoff without answers.
            let now = unix_micros();
            let next = sub.lock().link.next_sync(Timestamp(now));
            wait = Duration::from_micros((next.micros() - now).max(0) as u64);
        }
    }
}

/// A spread of first syncs over one interval: a stable offset per name.
fn offset(name: &str, interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(fnv1a(name.as_bytes()) % ms)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A small xorshift generator (seeded from std's random hasher keys).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(unix_micros() as u64);
        Rng(h.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Raises and clears alarms at random, `per_sec` changes a second in all.
async fn churn(subs: Vec<Arc<Sub>>, per_sec: f64, c: Arc<Counters>) {
    const TICK: Duration = Duration::from_millis(100);
    const SEVERITIES: [Severity; 3] = [Severity::Major, Severity::Minor, Severity::Warning];
    let mut rng = Rng::seeded();
    let mut owed = 0.0;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        owed += per_sec * TICK.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            let sub = &subs[rng.below(subs.len())];
            if !sub.alive() {
                continue;
            }
            let entity = format!("host=controller-0.filesystem=/churn{}", rng.below(4));
            let active = sub.lock().log.active().get("100.104", &entity).is_some();
            let severity = (!active).then(|| SEVERITIES[rng.below(SEVERITIES.len())]);
            sub.change("100.104", &entity, severity);
            bump(&c.alarm_changes, 1);
        }
    }
}

// ----- enrollment -----------------------------------------------------------

/// What enrollment needs, shared by the enrollment tasks.
struct Enroller {
    cfg: SubcloudsConfig,
    api: reqwest::Client,
    /// The enrollment client (no client certificate), by CA fingerprint.
    pinned: Mutex<Option<(String, reqwest::Client)>>,
    counters: Arc<Counters>,
}

/// An enrolled subcloud, ready for its loop.
struct Enrolled {
    sub: Arc<Sub>,
    http: reqwest::Client,
    sync_url: String,
    interval: Duration,
}

impl Enroller {
    fn pinned_client(&self, fingerprint: &str) -> Result<reqwest::Client> {
        let mut p = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((fp, c)) = p.as_ref()
            && fp.eq_ignore_ascii_case(fingerprint)
        {
            return Ok(c.clone());
        }
        let c = roost_pki::https_client(roost_pki::pinned_client_config(fingerprint)?)?;
        *p = Some((fingerprint.to_string(), c.clone()));
        Ok(c)
    }

    /// Adds, enrolls, syncs once and (optionally) manages subcloud `n`.
    async fn enroll(&self, n: usize) -> Result<Enrolled> {
        let cfg = &self.cfg;
        let name = subcloud_name(&cfg.prefix, n);
        let r = self
            .api
            .post(format!("{}/v1.0/subclouds/", cfg.system_controller))
            .header(AUTH_HEADER, &cfg.admin_token)
            .json(&json!({"name": name, "description": "simulated subcloud (roost sim subclouds)"}))
            .send()
            .await
            .with_context(|| format!("adding subcloud {name}"))?;
        let added = answer(r)
            .await
            .with_context(|| format!("adding subcloud {name}"))?;
        let token = added["enroll_token"]
            .as_str()
            .context("the system controller gave no enroll_token")?;
        let dc_url = match &cfg.dc_url {
            Some(u) => u.clone(),
            None => added["system_controller_dc_url"]
                .as_str()
                .context("the system controller gave no system_controller_dc_url: pass --dc-url")?
                .to_string(),
        };
        let dc_url = dc_url.trim_end_matches('/').to_string();
        let (fingerprint, _) =
            parse_enroll_token(token).context("the enrollment token is malformed")?;
        let id = roost_pki::ClientIdentity::generate(&name)?;
        let r = self
            .pinned_client(fingerprint)?
            .post(format!("{dc_url}/dc/v1/enroll"))
            .json(&EnrollRequest {
                token: token.to_string(),
                csr_pem: id.csr_pem.clone(),
            })
            .send()
            .await
            .with_context(|| format!("enrolling {name} at {dc_url}"))?;
        let e: EnrollResponse = serde_json::from_value(
            answer(r)
                .await
                .with_context(|| format!("enrolling {name}"))?,
        )
        .with_context(|| format!("the enrollment answer for {name}"))?;
        roost_pki::check_ca_fingerprint(&e.ca_pem, fingerprint)
            .context("the system controller's CA does not match the token")?;
        let http = roost_pki::https_client(roost_pki::client_config(
            &e.ca_pem,
            Some((&e.cert_pem, &id.key_pem)),
        )?)?;
        let sub = Arc::new(Sub::new(e.name));
        let sync_url = format!("{dc_url}/dc/v1/sync");
        // The first sync: online, and `complete` once every endpoint is reported.
        let (asked, _) = sync_once(&sub, &http, &sync_url, &self.counters).await;
        let asked = asked.with_context(|| format!("the first sync of {name} failed"))?;
        if cfg.manage {
            let r = self
                .api
                .patch(format!("{}/v1.0/subclouds/{name}", cfg.system_controller))
                .header(AUTH_HEADER, &cfg.admin_token)
                .json(&json!({"management-state": "managed"}))
                .send()
                .await
                .with_context(|| format!("managing {name}"))?;
            answer(r)
                .await
                .with_context(|| format!("managing {name}"))?;
        }
        tracing::debug!(subcloud = %name, "simulated subcloud enrolled");
        Ok(Enrolled {
            sub,
            http,
            sync_url,
            interval: cfg.interval.unwrap_or(asked),
        })
    }
}

/// The JSON body of a 2xx answer, else an error with (the start of) the body.
async fn answer(r: reqwest::Response) -> Result<Value> {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_str(&text).context("the answer is not JSON");
    }
    // dcmanager's errors are HTML pages: keep the text.
    let plain: String = text
        .replace(['\n', '\r'], " ")
        .split('<')
        .map(|s| s.split_once('>').map_or(s, |(_, t)| t))
        .collect::<Vec<_>>()
        .join(" ");
    let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    Err(Error::Http {
        status: status.as_u16(),
        message: plain.chars().take(300).collect(),
    })
}

// ----- the fleet ------------------------------------------------------------

/// How far the fleet got with one generation of an endpoint
/// ([`SubcloudFleet::insync`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Convergence {
    /// Live subclouds asked about.
    pub of: usize,
    /// When the system controller answered the sync that reported the
    /// generation (or a later one), Unix microseconds, one per subcloud
    /// that got there.
    pub reached: Vec<i64>,
}

/// A subcloud's alarms as it holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmState {
    pub counts: AlarmCounts,
    /// Number of the latest alarm change.
    pub last_seq: u64,
    /// The last number the system controller acknowledged.
    pub acked: u64,
}

/// A fleet of simulated subclouds syncing with one system controller until
/// [`SubcloudFleet::shutdown`] (or until dropped: the tasks are aborted).
pub struct SubcloudFleet {
    cfg: SubcloudsConfig,
    subs: Vec<Arc<Sub>>,
    aborts: Vec<AbortHandle>,
    by_name: HashMap<String, usize>,
    counters: Arc<Counters>,
    tasks: JoinSet<()>,
}

impl fmt::Debug for SubcloudFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubcloudFleet")
            .field("cfg", &self.cfg)
            .field("subclouds", &self.subs.len())
            .finish_non_exhaustive()
    }
}

impl SubcloudFleet {
    /// Adds and enrolls `cfg.count` subclouds on the system controller
    /// (and manages them with `cfg.manage`), and starts their sync loops.
    pub async fn start(cfg: SubcloudsConfig) -> Result<SubcloudFleet> {
        if !cfg.system_controller.starts_with("http://")
            && !cfg.system_controller.starts_with("https://")
        {
            return Err(Error::Invalid(format!(
                "the system controller URL {:?} must start with http://",
                cfg.system_controller
            )));
        }
        if !(cfg.alarm_churn.is_finite() && cfg.alarm_churn >= 0.0) {
            return Err(Error::Invalid(
                "the alarm churn must be a rate of 0 or more per second".into(),
            ));
        }
        let api = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("roost-sim-subclouds/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let counters = Arc::new(Counters::new(cfg.deploy_time));
        let enroller = Arc::new(Enroller {
            cfg: cfg.clone(),
            api,
            pinned: Mutex::new(None),
            counters: counters.clone(),
        });
        let mut tasks = JoinSet::new();
        let mut slots: Vec<Option<(Arc<Sub>, AbortHandle)>> =
            (0..cfg.count).map(|_| None).collect();
        let mut enrolling = JoinSet::new();
        let (mut next, mut done) = (0usize, 0usize);
        let started = std::time::Instant::now();
        loop {
            while next < cfg.count && enrolling.len() < cfg.concurrency.max(1) {
                let e = enroller.clone();
                let i = next;
                enrolling.spawn(async move { (i, e.enroll(i + 1).await) });
                next += 1;
            }
            let Some(joined) = enrolling.join_next().await else {
                break;
            };
            let (i, result) = joined.context("an enrollment task failed")?;
            let e = match result {
                Ok(e) => e,
                Err(err) => {
                    enrolling.abort_all();
                    tasks.abort_all();
                    return Err(err);
                }
            };
            let first = offset(&e.sub.name, e.interval);
            let abort = tasks.spawn(sync_loop(
                e.sub.clone(),
                e.http,
                e.sync_url,
                counters.clone(),
                first,
                e.interval,
                cfg.interval.is_some(),
            ));
            slots[i] = Some((e.sub, abort));
            done += 1;
            if done.is_multiple_of(500) || done == cfg.count {
                tracing::info!(
                    enrolled = done,
                    of = cfg.count,
                    secs = format!("{:.1}", started.elapsed().as_secs_f64()),
                    "enrolling simulated subclouds"
                );
            }
        }
        let (subs, aborts): (Vec<Arc<Sub>>, Vec<AbortHandle>) = slots.into_iter().flatten().unzip();
        let by_name = subs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        if cfg.alarm_churn > 0.0 && !subs.is_empty() {
            tasks.spawn(churn(subs.clone(), cfg.alarm_churn, counters.clone()));
        }
        Ok(SubcloudFleet {
            cfg,
            subs,
            aborts,
            by_name,
            counters,
            tasks,
        })
    }

    /// How many subclouds (killed ones included).
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether the fleet has no subcloud.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.subs.iter().map(|s| s.name.clone()).collect()
    }

    fn sub(&self, name: &str) -> Option<&Arc<Sub>> {
        self.by_name.get(name).map(|&i| &self.subs[i])
    }

    fn known(&self, name: &str) -> Result<&Arc<Sub>> {
        self.sub(name)
            .ok_or_else(|| Error::NotFound(format!("no simulated subcloud is named {name:?}")))
    }

    /// Kills a subcloud: its loop ends and its connection closes; it never
    /// syncs again. False if there is no such subcloud.
    /// Makes the next deploy of subcloud `name` fail.
    pub fn fail_deploy(&self, name: &str) -> Result<()> {
        let sub = self
            .subs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::Invalid(format!("no subcloud {name}")))?;
        sub.fail_deploy.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub fn kill(&self, name: &str) -> bool {
        let Some(&i) = self.by_name.get(name) else {
            return false;
        };
        self.subs[i].killed.store(true, Ordering::Relaxed);
        self.subs[i]
            .lock()
            .link
            .finished(false, SyncResult::Unreachable);
        self.aborts[i].abort();
        true
    }

    /// Starts (`true`) or ends (`false`) a partition of these subclouds:
    /// they stop syncing but keep their alarm changes, and replay them from
    /// the last acknowledged number when it ends. Returns how many it found.
    pub fn partition(&self, names: &[String], on: bool) -> usize {
        let mut n = 0;
        for name in names {
            if let Some(s) = self.sub(name) {
                s.partitioned.store(on, Ordering::Relaxed);
                n += 1;
            }
        }
        n
    }

    /// Raises (or updates) an alarm on a subcloud; it is sent at the
    /// subcloud's next sync. Returns its change number.
    pub fn raise_alarm(
        &self,
        name: &str,
        alarm_id: &str,
        entity: &str,
        severity: Severity,
    ) -> Result<u64> {
        let s = self.known(name)?;
        bump(&self.counters.alarm_changes, 1);
        Ok(s.change(alarm_id, entity, Some(severity)))
    }

    /// Clears an alarm on a subcloud (at its next sync). Returns the change number.
    pub fn clear_alarm(&self, name: &str, alarm_id: &str, entity: &str) -> Result<u64> {
        let s = self.known(name)?;
        bump(&self.counters.alarm_changes, 1);
        Ok(s.change(alarm_id, entity, None))
    }

    /// Makes a subcloud sync now rather than at its next tick.
    pub fn sync_now(&self, name: &str) -> bool {
        self.sub(name).map(|s| s.wake.notify_one()).is_some()
    }

    /// The generation of `endpoint` a subcloud applied (0: none, or no such subcloud).
    pub fn applied_generation(&self, name: &str, endpoint: Endpoint) -> u64 {
        self.sub(name)
            .map_or(0, |s| s.lock().link.applied().generation(endpoint).0)
    }

    /// The content of `endpoint` a subcloud runs (what it was pushed last).
    pub fn applied_content(&self, name: &str, endpoint: Endpoint) -> Option<EndpointConfig> {
        self.sub(name)?.lock().local[endpoint.index()]
            .as_ref()
            .map(|l| l.config.clone())
    }

    /// The highest generation of `endpoint` any live subcloud applied.
    pub fn max_generation(&self, endpoint: Endpoint) -> u64 {
        self.subs
            .iter()
            .filter(|s| s.alive())
            .map(|s| s.lock().link.applied().generation(endpoint).0)
            .max()
            .unwrap_or(0)
    }

    /// Which live subclouds (of `names`, or all) the system controller
    /// has heard report `generation` of `endpoint` (or a later one), and when.
    pub fn insync(
        &self,
        endpoint: Endpoint,
        generation: u64,
        names: Option<&[String]>,
    ) -> Convergence {
        let chosen: Vec<&Arc<Sub>> = match names {
            Some(ns) => ns.iter().filter_map(|n| self.sub(n)).collect(),
            None => self.subs.iter().collect(),
        };
        let mut c = Convergence::default();
        for s in chosen.into_iter().filter(|s| s.alive()) {
            c.of += 1;
            let (g, at) = s.lock().confirmed[endpoint.index()];
            if g >= generation && at > 0 {
                c.reached.push(at);
            }
        }
        c
    }

    /// A subcloud's alarms and stream position.
    pub fn alarm_state(&self, name: &str) -> Option<AlarmState> {
        let s = self.sub(name)?;
        let st = s.lock();
        Some(AlarmState {
            counts: st.log.active().counts(),
            last_seq: st.log.last_seq(),
            acked: st.link.acked(),
        })
    }

    /// Counters since the start.
    pub fn stats(&self) -> SubcloudFleetStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (rtt_samples, rtt) = c.rtt.summary();
        SubcloudFleetStats {
            subclouds: self.subs.len(),
            killed: self.subs.iter().filter(|s| !s.alive()).count(),
            partitioned: self
                .subs
                .iter()
                .filter(|s| s.partitioned.load(Ordering::Relaxed))
                .count(),
            online: self
                .subs
                .iter()
                .filter(|s| s.alive() && s.lock().link.is_online())
                .count(),
            syncs_ok: get(&c.syncs_ok),
            syncs_refused: get(&c.syncs_refused),
            syncs_failed: get(&c.syncs_failed),
            pushes_applied: get(&c.pushes_applied),
            pushes_stale: get(&c.pushes_stale),
            snapshots_sent: get(&c.snapshots_sent),
            changes_sent: get(&c.changes_sent),
            snapshots_asked: get(&c.snapshots_asked),
            alarm_changes: get(&c.alarm_changes),
            packages_fetched: get(&c.packages_fetched),
            package_bytes: get(&c.package_bytes),
            package_failures: get(&c.package_failures),
            orders_answered: get(&c.orders_answered),
            rtt_samples,
            rtt,
        }
    }

    /// Starts the sync round-trip histogram afresh.
    pub fn reset_rtt(&self) {
        self.counters.rtt.reset();
    }

    /// Stops every subcloud and waits for the tasks to end. The subclouds
    /// stay on the system controller (they go offline there).
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Runs one control command (see [`CONTROL_HELP`]); the answer without
    /// its `ok ` prefix.
    pub fn control(&self, line: &str) -> Result<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Err(Error::Invalid(format!("empty command; {CONTROL_HELP}")));
        };
        let want = |n: usize| -> Result<()> {
            if args.len() < n {
                return Err(Error::Invalid(format!(
                    "{verb}: missing arguments; {CONTROL_HELP}"
                )));
            }
            Ok(())
        };
        match verb {
            "help" => Ok(CONTROL_HELP.to_string()),
            "kill" => {
                want(1)?;
                let names = self.names_arg(args[0])?;
                let n = names.iter().filter(|n| self.kill(n)).count();
                Ok(format!("killed={n}"))
            }
            "partition" => {
                want(2)?;
                let on = match args[0] {
                    "on" => true,
                    "off" => false,
                    other => {
                        return Err(Error::Invalid(format!("partition on|off, not {other:?}")));
                    }
                };
                let names = self.names_arg(args[1])?;
                // When it ends, each resumes at its own next tick, as real
                // subclouds retrying on their timers do.
                let n = self.partition(&names, on);
                Ok(format!("partitioned={n} on={on}"))
            }
            "raise" => {
                want(4)?;
                let names = self.names_arg(args[0])?;
                let severity: Severity = args[3]
                    .parse()
                    .map_err(|e| Error::Invalid(format!("severity {:?}: {e}", args[3])))?;
                for name in &names {
                    self.raise_alarm(name, args[1], args[2], severity)?;
                }
                Ok(format!("raised={}", names.len()))
            }
            "clear" => {
                want(3)?;
                let names = self.names_arg(args[0])?;
                for name in &names {
                    self.clear_alarm(name, args[1], args[2])?;
                }
                Ok(format!("cleared={}", names.len()))
            }
            "sync" => {
                want(1)?;
                let names = self.names_arg(args[0])?;
                let n = names.iter().filter(|n| self.sync_now(n)).count();
                Ok(format!("woken={n}"))
            }
            "applied" => {
                want(2)?;
                let ep = endpoint_arg(args[1])?;
                self.known(args[0])?;
                Ok(self.applied_generation(args[0], ep).to_string())
            }
            "generation" => {
                want(1)?;
                Ok(self.max_generation(endpoint_arg(args[0])?).to_string())
            }
            "insync" => {
                want(3)?;
                let ep = endpoint_arg(args[0])?;
                let generation: u64 = args[1].parse().context("insync: GENERATION")?;
                let since: i64 = args[2].parse().context("insync: SINCE_UNIX_MICROS")?;
                let names = args.get(3).map(|a| self.names_arg(a)).transpose()?;
                let c = self.insync(ep, generation, names.as_deref());
                let mut ms: Vec<f64> = c
                    .reached
                    .iter()
                    .map(|t| (t - since) as f64 / 1000.0)
                    .collect();
                ms.sort_by(f64::total_cmp);
                let pct = |p: f64| -> String {
                    if ms.is_empty() {
                        return "-".into();
                    }
                    let rank = ((p / 100.0) * ms.len() as f64).ceil().max(1.0) as usize;
                    format!("{:.1}", ms[rank.min(ms.len()) - 1])
                };
                Ok(format!(
                    "reached={} of={} p50_ms={} p99_ms={} max_ms={}",
                    ms.len(),
                    c.of,
                    pct(50.0),
                    pct(99.0),
                    pct(100.0)
                ))
            }
            "counts" => {
                want(1)?;
                let names = self.names_arg(args[0])?;
                let mut out = Vec::with_capacity(names.len());
                for name in &names {
                    let a = self
                        .alarm_state(name)
                        .ok_or_else(|| Error::NotFound("unknown subcloud".into()))?;
                    out.push(format!(
                        "{name}={}/{}/{}/{}/{}/{}",
                        a.counts.critical,
                        a.counts.major,
                        a.counts.minor,
                        a.counts.warnings,
                        a.last_seq,
                        a.acked
                    ));
                }
                Ok(out.join(" "))
            }
            "fail-deploy" => {
                want(1)?;
                let names = self.names_arg(args[0])?;
                for name in &names {
                    self.fail_deploy(name)?;
                }
                Ok(format!("failing={}", names.len()))
            }
            "stats" => Ok(stats_line(&self.stats())),
            "rtt-reset" => {
                self.reset_rtt();
                Ok("rtt reset".into())
            }
            other => Err(Error::Invalid(format!(
                "unknown command {other:?}; {CONTROL_HELP}"
            ))),
        }
    }

    /// `a,b,c` or `*` (every live subcloud); every name must be known.
    fn names_arg(&self, arg: &str) -> Result<Vec<String>> {
        if arg == "*" {
            return Ok(self
                .subs
                .iter()
                .filter(|s| s.alive())
                .map(|s| s.name.clone())
                .collect());
        }
        let names: Vec<String> = arg
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for n in &names {
            self.known(n)?;
        }
        Ok(names)
    }
}

fn endpoint_arg(s: &str) -> Result<Endpoint> {
    Endpoint::parse(s).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown endpoint type {s:?} (one of {})",
            Endpoint::ALL.map(Endpoint::as_str).join(", ")
        ))
    })
}

/// `key=value` pairs of the fleet's counters.
pub fn stats_line(s: &SubcloudFleetStats) -> String {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let rtt = s.rtt.map_or(
        "rtt_p50_ms=- rtt_p99_ms=- rtt_max_ms=-".into(),
        |[a, b, c]| {
            format!(
                "rtt_p50_ms={} rtt_p99_ms={} rtt_max_ms={}",
                ms(a),
                ms(b),
                ms(c)
            )
        },
    );
    format!(
        "subclouds={} online={} killed={} partitioned={} syncs_ok={} syncs_refused={} \
         syncs_failed={} pushes_applied={} pushes_stale={} snapshots_sent={} changes_sent={} \
         snapshots_asked={} alarm_changes={} packages_fetched={} package_bytes={} \
         package_failures={} orders_answered={} rtt_samples={} {rtt}",
        s.subclouds,
        s.online,
        s.killed,
        s.partitioned,
        s.syncs_ok,
        s.syncs_refused,
        s.syncs_failed,
        s.pushes_applied,
        s.pushes_stale,
        s.snapshots_sent,
        s.changes_sent,
        s.snapshots_asked,
        s.alarm_changes,
        s.packages_fetched,
        s.package_bytes,
        s.package_failures,
        s.orders_answered,
        s.rtt_samples,
    )
}

/// Prints one line on stdout at once.
fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Runs a fleet until SIGINT or SIGTERM.
///
/// Prints `roost sim subclouds ready: N subclouds` on stdout once every
/// subcloud is enrolled (and managed, with `--manage`), then answers the
/// commands it reads on stdin (see [`CONTROL_HELP`]); the end of stdin
/// only ends the commands.
pub async fn run_subclouds(args: SubcloudsArgs) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    tokio::pin!(stop);
    let timeout = Duration::from_secs(args.ready_timeout_secs);
    let cfg = SubcloudsConfig {
        dc_url: args.dc_url.clone(),
        manage: args.manage,
        alarm_churn: args.alarm_churn,
        interval: args.interval_secs.map(Duration::from_secs),
        concurrency: args.concurrency as usize,
        deploy_time: Duration::from_millis(args.deploy_ms),
        ..SubcloudsConfig::new(
            &args.system_controller,
            &args.token,
            args.count as usize,
            &args.prefix,
        )
    };
    let started = std::time::Instant::now();
    let fleet = tokio::select! {
        f = tokio::time::timeout(timeout, SubcloudFleet::start(cfg)) => {
            f.map_err(|_| Error::Timeout(format!("the subclouds were not enrolled after {} s", timeout.as_secs())))??
        }
        sig = &mut stop => {
            tracing::info!("{sig} received during enrollment; stopping");
            return Ok(());
        }
    };
    tracing::info!(
        subclouds = fleet.len(),
        secs = format!("{:.1}", started.elapsed().as_secs_f64()),
        "every simulated subcloud is enrolled{}",
        if args.manage { " and managed" } else { "" }
    );
    say(&format!(
        "roost sim subclouds ready: {} subclouds",
        fleet.len()
    ))?;
    // Commands come from a thread: reading stdin blocks.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut commands_open = true;
    let sig = loop {
        tokio::select! {
            sig = &mut stop => break sig,
            line = rx.recv(), if commands_open => match line {
                None => commands_open = false,
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    let reply = match fleet.control(&line) {
                        Ok(s) => format!("ok {s}"),
                        Err(e) => format!("err {}", e.chain().replace('\n', " ")),
                    };
                    say(&reply)?;
                }
            },
        }
    };
    tracing::info!(stats = %stats_line(&fleet.stats()), "{sig} received; stopping");
    fleet.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_from_one_with_five_digits() {
        assert_eq!(subcloud_name("sim-", 1), "sim-00001");
        assert_eq!(subcloud_name("x", 12345), "x12345");
    }

    #[test]
    fn the_digest_of_an_empty_endpoint_is_sha256_of_null() {
        assert_eq!(
            null_digest(),
            "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
        );
    }

    #[test]
    fn offsets_spread_within_one_interval() {
        let i = Duration::from_secs(2);
        let offs: Vec<Duration> = (1..=1000)
            .map(|n| offset(&subcloud_name("sim-", n), i))
            .collect();
        assert!(offs.iter().all(|o| *o < i));
        let early = offs.iter().filter(|o| **o < Duration::from_secs(1)).count();
        assert!((350..650).contains(&early), "{early}");
    }

    #[test]
    fn the_histogram_reads_percentiles_within_its_resolution() {
        let h = Hist::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let (n, s) = h.summary();
        assert_eq!(n, 100);
        let [p50, p99, max] = s.unwrap();
        let near = |d: Duration, want: f64| {
            let v = d.as_secs_f64() * 1000.0;
            v >= want && v <= want * 1.25
        };
        assert!(near(p50, 50.0), "{p50:?}");
        assert!(near(p99, 99.0), "{p99:?}");
        assert!(near(max, 100.0), "{max:?}");
        h.reset();
        assert_eq!(h.summary().0, 0);
    }

    #[test]
    fn a_partitioned_subcloud_resends_from_the_last_acknowledged_change() {
        let sub = Sub::new("sim-00001".into());
        let answered = |acked_seq| SyncResult::Answered {
            acked_seq,
            want_snapshot: false,
            interval_secs: 2,
        };
        // The first sync carried the (empty) snapshot.
        sub.lock().link.finished(true, answered(0));
        sub.change("100.104", "a", Some(Severity::Major));
        {
            let mut st = sub.lock();
            assert_eq!(st.request().changes.len(), 1);
            // The system controller acknowledged change 1.
            st.link.finished(false, answered(1));
            st.log.ack(1);
        }
        // During the partition: three more changes, one of them a clear.
        sub.change("100.104", "b", Some(Severity::Minor));
        sub.change("100.104", "c", Some(Severity::Warning));
        sub.change("100.104", "b", None);
        let req = sub.lock().request();
        assert!(req.snapshot.is_none());
        let seqs: Vec<u64> = req.changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        assert_eq!(req.changes[2].severity, None);
        assert_eq!(req.applied.len(), Endpoint::SYNCED.len());
        assert!(req.applied.iter().all(|a| a.digest == null_digest()));
        let counts = sub.lock().log.active().counts();
        assert_eq!((counts.major, counts.minor, counts.warnings), (1, 0, 1));
    }

    #[test]
    fn a_fresh_subcloud_starts_with_a_snapshot() {
        let sub = Sub::new("sim-00002".into());
        sub.change("100.104", "a", Some(Severity::Critical));
        let req = sub.lock().request();
        let snap = req.snapshot.expect("snapshot");
        assert_eq!(snap.seq, 1);
        assert_eq!(snap.alarms.len(), 1);
        assert!(req.changes.is_empty());
    }
}

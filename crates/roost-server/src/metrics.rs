//! Prometheus metrics. One registry per server (no global registry).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;

use roost_fm::Summary;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabels {
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifyLabels {
    r#type: &'static str,
}

/// The notification destination types, each counted (zero included).
pub const NOTIFY_TYPES: [&str; 3] = ["webhook", "snmp", "syslog"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    availability: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubcloudLabels {
    availability: String,
    sync: String,
}

/// Host availabilities, each counted (zero included).
pub const HOST_AVAILABILITIES: [&str; 7] = [
    "available",
    "degraded",
    "failed",
    "intest",
    "offline",
    "online",
    "power-off",
];

/// Subcloud availabilities and sync states, each pair counted.
pub const SUBCLOUD_AVAILABILITIES: [&str; 2] = ["online", "offline"];
pub const SUBCLOUD_SYNC: [&str; 3] = ["in-sync", "out-of-sync", "unknown"];

/// What `/metrics` counts at the moment it is read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub alarms: Summary,
    pub event_log_len: u64,
    /// Hosts by availability, and how many are locked.
    pub hosts: Vec<String>,
    pub hosts_locked: u64,
    /// Subclouds by (availability, sync status), on a system controller.
    pub subclouds: Vec<(String, String)>,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    alarms: Family<SeverityLabels, Gauge>,
    event_log: Gauge,
    pulses_sent: Counter,
    pulses_answered: Counter,
    pulses_missed: Counter,
    pulse_rtt: Histogram,
    heartbeat_dropped: Family<ReasonLabels, Counter>,
    monitor_periods: Counter,
    audit_dropped: Counter,
    audit_written: Counter,
    hosts: Family<HostLabels, Gauge>,
    hosts_locked: Gauge,
    subclouds: Family<SubcloudLabels, Gauge>,
    sync_duration: Histogram,
    commit_duration: Histogram,
    notify_sent: Family<NotifyLabels, Counter>,
    notify_failed: Family<NotifyLabels, Counter>,
    notify_dead: Family<NotifyLabels, Counter>,
    notify_dropped: Family<NotifyLabels, Counter>,
    notify_latency: Family<NotifyLabels, Histogram>,
    /// The host and subcloud gauges are rebuilt by one render at a time.
    render_lock: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("roost");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 14))
        });
        let alarms = Family::<SeverityLabels, Gauge>::default();
        let event_log = Gauge::default();
        let pulses_sent = Counter::default();
        let pulses_answered = Counter::default();
        let pulses_missed = Counter::default();
        let pulse_rtt = Histogram::new(exponential_buckets(0.00005, 2.0, 14));
        let heartbeat_dropped = Family::<ReasonLabels, Counter>::default();
        let monitor_periods = Counter::default();
        let audit_dropped = Counter::default();
        let audit_written = Counter::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let hosts = Family::<HostLabels, Gauge>::default();
        let hosts_locked = Gauge::default();
        let subclouds = Family::<SubcloudLabels, Gauge>::default();
        let sync_duration = Histogram::new(exponential_buckets(0.0001, 2.5, 14));
        let commit_duration = Histogram::new(exponential_buckets(0.0001, 2.5, 14));
        let notify_sent = Family::<NotifyLabels, Counter>::default();
        let notify_failed = Family::<NotifyLabels, Counter>::default();
        let notify_dead = Family::<NotifyLabels, Counter>::default();
        let notify_dropped = Family::<NotifyLabels, Counter>::default();
        let notify_latency = Family::<NotifyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.5, 14))
        });
        for t in NOTIFY_TYPES {
            let l = NotifyLabels { r#type: t };
            for f in [&notify_sent, &notify_failed, &notify_dead, &notify_dropped] {
                f.get_or_create(&l).inc_by(0);
            }
            let _ = notify_latency.get_or_create(&l);
        }
        registry.register(
            "notifications_sent",
            "Notifications delivered (webhook answered 2xx; trap or syslog message sent), by destination type",
            notify_sent.clone(),
        );
        registry.register(
            "notification_attempts_failed",
            "Notification attempts that failed (each retry counts), by destination type",
            notify_failed.clone(),
        );
        registry.register(
            "notifications_dead_lettered",
            "Webhook deliveries that ran out of tries and were kept as dead letters",
            notify_dead.clone(),
        );
        registry.register(
            "notifications_dropped",
            "Notifications dropped because a destination's queue was full",
            notify_dropped.clone(),
        );
        registry.register(
            "notification_delivery_seconds",
            "Time from a record's commit to its delivery, by destination type",
            notify_latency.clone(),
        );
        // Every drop reason's series is there from the start.
        for reason in roost_api::heartbeat::DropReason::ALL.iter() {
            heartbeat_dropped
                .get_or_create(&ReasonLabels {
                    reason: reason.as_str(),
                })
                .inc_by(0);
        }
        registry.register(
            "build_info",
            "The running server's version (always 1)",
            build,
        );
        registry.register(
            "hosts",
            "Hosts by availability (every availability listed, zero included)",
            hosts.clone(),
        );
        registry.register(
            "hosts_locked",
            "Hosts administratively locked",
            hosts_locked.clone(),
        );
        registry.register(
            "subclouds",
            "Subclouds by availability and sync status (a system controller's; zero elsewhere)",
            subclouds.clone(),
        );
        registry.register(
            "dc_sync_duration_seconds",
            "Time a system controller takes to answer a subcloud's sync",
            sync_duration.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Time the alarm writer's commits take (one per batch)",
            commit_duration.clone(),
        );
        registry.register(
            "audit_records_dropped",
            "Audit records lost: the writer's queue was full or its commit failed",
            audit_dropped.clone(),
        );
        registry.register(
            "audit_records_written",
            "Audit records committed to the audit log",
            audit_written.clone(),
        );
        registry.register(
            "resource_monitor_periods",
            "Sampling periods of the server's own resource monitor whose alarm decisions were carried out",
            monitor_periods.clone(),
        );
        registry.register(
            "heartbeat_pulses_sent",
            "Heartbeat pulse requests sent",
            pulses_sent.clone(),
        );
        registry.register(
            "heartbeat_pulses_answered",
            "Valid heartbeat pulse responses received",
            pulses_answered.clone(),
        );
        registry.register(
            "heartbeat_pulses_missed",
            "Heartbeat pulses that got no valid answer within their period",
            pulses_missed.clone(),
        );
        registry.register(
            "heartbeat_rtt_seconds",
            "Round-trip time of answered pulses",
            pulse_rtt.clone(),
        );
        registry.register(
            "heartbeat_dropped",
            "Heartbeat packets dropped, by reason (truncated, oversized, bad_magic, unknown_host, bad_mac, malformed, replayed, stale)",
            heartbeat_dropped.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route and status",
            latency.clone(),
        );
        registry.register(
            "active_alarms",
            "Active alarms by severity (suppressed ones included)",
            alarms.clone(),
        );
        registry.register(
            "event_log_records",
            "Records in the event log",
            event_log.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            alarms,
            event_log,
            pulses_sent,
            pulses_answered,
            pulses_missed,
            pulse_rtt,
            heartbeat_dropped,
            monitor_periods,
            audit_dropped,
            audit_written,
            hosts,
            hosts_locked,
            subclouds,
            sync_duration,
            commit_duration,
            notify_sent,
            notify_failed,
            notify_dead,
            notify_dropped,
            notify_latency,
            render_lock: std::sync::Mutex::new(()),
        }
    }

    /// Records a subcloud sync answered in `seconds`.
    pub fn sync_answered(&self, seconds: f64) {
        self.sync_duration.observe(seconds);
    }

    /// Counts a notification delivered `seconds` after its record's commit.
    pub fn notify_sent(&self, kind: &'static str, seconds: f64) {
        let l = NotifyLabels { r#type: kind };
        self.notify_sent.get_or_create(&l).inc();
        self.notify_latency.get_or_create(&l).observe(seconds);
    }

    /// Counts a failed notification attempt.
    pub fn notify_failed(&self, kind: &'static str) {
        self.notify_failed
            .get_or_create(&NotifyLabels { r#type: kind })
            .inc();
    }

    /// Counts a delivery kept as a dead letter.
    pub fn notify_dead_lettered(&self, kind: &'static str) {
        self.notify_dead
            .get_or_create(&NotifyLabels { r#type: kind })
            .inc();
    }

    /// Counts a notification dropped (queue full).
    pub fn notify_dropped(&self, kind: &'static str) {
        self.notify_dropped
            .get_or_create(&NotifyLabels { r#type: kind })
            .inc();
    }

    /// Records a store commit that took `seconds`.
    pub fn store_committed(&self, seconds: f64) {
        self.commit_duration.observe(seconds);
    }

    /// Counts audit records lost; returns the total so far.
    pub fn audit_dropped(&self, n: u64) -> u64 {
        self.audit_dropped.inc_by(n) + n
    }

    /// Counts audit records committed.
    pub fn audit_written(&self, n: u64) {
        self.audit_written.inc_by(n);
    }

    /// Counts a resource monitor period whose decisions were carried out.
    pub fn monitor_period(&self) {
        self.monitor_periods.inc();
    }

    /// Counts pulse requests sent.
    pub fn pulses_sent(&self, n: u64) {
        self.pulses_sent.inc_by(n);
    }

    /// Counts a valid response and its round-trip time.
    /// Counts pulses that got no answer within their period.
    pub fn pulses_missed(&self, n: u64) {
        self.pulses_missed.inc_by(n);
    }

    pub fn pulse_answered(&self, rtt_seconds: f64) {
        self.pulses_answered.inc();
        self.pulse_rtt.observe(rtt_seconds);
    }

    /// Valid pulse responses counted so far.
    pub fn pulses_answered_total(&self) -> u64 {
        self.pulses_answered.get()
    }

    /// Counts a dropped heartbeat packet.
    pub fn heartbeat_dropped(&self, reason: &'static str) {
        self.heartbeat_dropped
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Records one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = RequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// The exposition text, with the gauges brought up to date.
    pub fn render(&self, now: &Snapshot) -> String {
        let summary = &now.alarms;
        for (severity, n) in [
            ("critical", summary.critical),
            ("major", summary.major),
            ("minor", summary.minor),
            ("warning", summary.warnings),
        ] {
            self.alarms
                .get_or_create(&SeverityLabels { severity })
                .set(n as i64);
        }
        self.event_log.set(now.event_log_len as i64);
        let _one_at_a_time = self
            .render_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut hosts: HashMap<String, i64> = HOST_AVAILABILITIES
            .iter()
            .map(|a| (a.to_string(), 0))
            .collect();
        for a in &now.hosts {
            *hosts.entry(a.clone()).or_default() += 1;
        }
        self.hosts.clear();
        for (availability, n) in hosts {
            self.hosts
                .get_or_create(&HostLabels { availability })
                .set(n);
        }
        self.hosts_locked.set(now.hosts_locked as i64);
        let mut subclouds: HashMap<(String, String), i64> = SUBCLOUD_AVAILABILITIES
            .iter()
            .flat_map(|a| {
                SUBCLOUD_SYNC
                    .iter()
                    .map(|s| ((a.to_string(), s.to_string()), 0))
            })
            .collect();
        for key in &now.subclouds {
            *subclouds.entry(key.clone()).or_default() += 1;
        }
        self.subclouds.clear();
        for ((availability, sync), n) in subclouds {
            self.subclouds
                .get_or_create(&SubcloudLabels { availability, sync })
                .set(n);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

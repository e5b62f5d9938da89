//! Prometheus metrics. One registry per server (no global registry).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
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

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    alarms: Family<SeverityLabels, Gauge>,
    event_log: Gauge,
    pulses_sent: Counter,
    pulses_answered: Counter,
    pulse_rtt: Histogram,
    heartbeat_dropped: Family<ReasonLabels, Counter>,
    monitor_periods: Counter,
    audit_dropped: Counter,
    audit_written: Counter,
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
        let pulse_rtt = Histogram::new(exponential_buckets(0.00005, 2.0, 14));
        let heartbeat_dropped = Family::<ReasonLabels, Counter>::default();
        let monitor_periods = Counter::default();
        let audit_dropped = Counter::default();
        let audit_written = Counter::default();
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
            pulse_rtt,
            heartbeat_dropped,
            monitor_periods,
            audit_dropped,
            audit_written,
        }
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
    pub fn render(&self, summary: &Summary, event_log_len: u64) -> String {
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
        self.event_log.set(event_log_len as i64);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

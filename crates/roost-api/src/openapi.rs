//! The OpenAPI 3.1 document of every endpoint Roost serves.
//!
//! The committed copy lives at `openapi/roost.json`; `roost openapi` prints
//! this document, and a test fails when the two differ.

use serde_json::{Map, Value, json};

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Who may call it: the server enforces this on every request.
    pub access: Access,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// Status codes that mean success.
    pub ok: &'static [u16],
    /// Body schema name in `components.schemas`, if the operation takes one.
    pub body: Option<&'static str>,
}

/// Who may call an operation. Roles imply the ones below them, as
/// Keystone's implied roles do: `admin` ⊃ `member` (StarlingX's operator)
/// ⊃ `reader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Anyone: the version documents, health, login.
    Public,
    /// An enrolled agent, by its own credential (header `X-Agent-Token`).
    Agent,
    /// Any valid token, scoped or not (its holder's own token and password).
    Token,
    /// A project-scoped token with role `reader`, `member` or `admin`.
    Reader,
    /// A project-scoped token with role `member` or `admin`.
    Member,
    /// A project-scoped token with role `admin`.
    Admin,
}

impl Access {
    /// Roles that satisfy it (none for the first three).
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Access::Public | Access::Agent | Access::Token => &[],
            Access::Reader => &["reader", "member", "admin"],
            Access::Member => &["member", "admin"],
            Access::Admin => &["admin"],
        }
    }

    /// Whether a token is needed.
    pub fn needs_token(self) -> bool {
        !matches!(self, Access::Public | Access::Agent)
    }

    /// Whether a holder of `roles` may call it (a valid token given).
    pub fn allows(self, roles: &[String]) -> bool {
        match self {
            Access::Public | Access::Agent | Access::Token => true,
            _ => roles.iter().any(|r| self.roles().contains(&r.as_str())),
        }
    }

    /// The name the document gives it (`x-roost-access`).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Agent => "agent",
            Access::Token => "token",
            Access::Reader => "reader",
            Access::Member => "member",
            Access::Admin => "admin",
        }
    }
}

/// The operation `method` (lower or upper case) on the route `path`, as
/// the router matched it (path parameters may be named differently).
pub fn route_for(method: &str, path: &str) -> Option<&'static Route> {
    let method = if method.eq_ignore_ascii_case("head") {
        "get"
    } else {
        method
    };
    let want = shape(path);
    ROUTES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && shape(r.path) == want)
}

/// A path with its parameters unnamed and no trailing slash.
fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

const Q_FILTER: &[(&str, &str)] = &[
    (
        "q.field",
        "field to filter on (repeatable; pairs with q.op, q.type and q.value by position)",
    ),
    (
        "q.op",
        "eq (substring match, the default), ne, lt, le, gt or ge",
    ),
    ("q.type", "value type (ignored; accepted for compatibility)"),
    ("q.value", "value to compare with"),
];

const ALARM_LIST_Q: &[(&str, &str)] = &[
    (
        "q.field",
        "alarm_id, uuid, entity_type_id, entity_instance_id, severity, alarm_type, probable_cause, reason_text or timestamp (repeatable)",
    ),
    (
        "q.op",
        "eq (substring match, the default), ne, lt, le, gt or ge",
    ),
    ("q.type", "value type (ignored; accepted for compatibility)"),
    ("q.value", "value to compare with"),
    (
        "include_suppress",
        "True to include alarms whose id is suppressed",
    ),
    ("expand", "True for every field of each alarm"),
    (
        "limit",
        "most alarms to return (1-2000); without it, every alarm",
    ),
    ("marker", "uuid of the last alarm of the previous page"),
    (
        "sort_key",
        "severity (default: severity, then entity), timestamp, alarm_id, entity_instance_id, uuid, id, created_at",
    ),
    ("sort_dir", "asc (default) or desc"),
];

const EVENT_LIST_Q: &[(&str, &str)] = &[
    (
        "q.field",
        "event_log_id, uuid, state, entity_type_id, entity_instance_id, severity, event_log_type, reason_text, start or end (repeatable)",
    ),
    (
        "q.op",
        "eq (substring match, the default), ne, lt, le, gt or ge",
    ),
    ("q.type", "value type (ignored; accepted for compatibility)"),
    (
        "q.value",
        "value to compare with; for start and end a time such as 2026-11-01T10:00:00",
    ),
    ("start", "only records at or after this time"),
    ("end", "only records at or before this time"),
    ("alarms", "True for alarm records (set and clear) only"),
    ("logs", "True for log records only"),
    (
        "include_suppress",
        "True to include records of suppressed alarm ids",
    ),
    ("expand", "True for every field of each record"),
    (
        "limit",
        "most records to return (1-2000); without it, every record",
    ),
    ("marker", "uuid of the last record of the previous page"),
    ("sort_key", "timestamp"),
    ("sort_dir", "desc (default: newest first) or asc"),
];

const SUMMARY_Q: &[(&str, &str)] =
    &[("include_suppress", "True to count suppressed alarm ids too")];

const RELEASE_LIST_Q: &[(&str, &str)] = &[
    (
        "show",
        "only releases in this state (available, deploying, deployed, ...); an unknown state filters nothing",
    ),
    (
        "release",
        "only releases of this MM.mm (ignored when show is given)",
    ),
];

const AUDIT_LIST_Q: &[(&str, &str)] = &[
    ("user", "only calls by this user (host:<name> for an agent)"),
    (
        "since",
        "only calls at or after this UTC time, e.g. 2026-11-01T10:00:00",
    ),
    ("until", "only calls at or before this UTC time"),
    (
        "method",
        "only calls with this HTTP method (POST, PATCH, PUT, DELETE)",
    ),
    ("status", "only calls answered with this HTTP status"),
    (
        "limit",
        "the newest N matching records (1-10000, default 100)",
    ),
];

/// Every operation Roost serves.
pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/v1/certificates",
        tag: "certificates",
        summary: "Every certificate Roost uses (API, cloud CA, DC CA, subclouds): subject, serial, validity, fingerprint, issuer",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/certificate_install",
        tag: "certificates",
        summary: "Install an operator's server certificate for the API (chain and key, PEM); it is presented from the next connection on; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("CertificateInstall"),
    },
    Route {
        method: "post",
        path: "/v1/certificates/rotate_ca",
        tag: "certificates",
        summary: "Rotate the cloud CA: a new CA and a new API certificate from it; clients trust the bundle of both until the next rotation; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/audit",
        tag: "audit",
        summary: "List audit records (mutating calls and logins), oldest first; admin role only",
        access: Access::Admin,
        query: AUDIT_LIST_Q,
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/audit/verify",
        tag: "audit",
        summary: "Verify the audit log's hash chain: {ok, records, first_bad_seq, reason}; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/notifications/destinations",
        tag: "notifications",
        summary: "List notification destinations (webhooks, SNMP managers, syslog collectors) with their delivery counters; secrets are never shown",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/notifications/destinations",
        tag: "notifications",
        summary: "Add a notification destination: every alarm set and clear, and every customer log, at or above min_severity, is sent to it; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[201],
        body: Some("DestinationCreate"),
    },
    Route {
        method: "get",
        path: "/v1/notifications/destinations/{destination}",
        tag: "notifications",
        summary: "Show a notification destination and its delivery counters",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1/notifications/destinations/{destination}",
        tag: "notifications",
        summary: "Enable or disable a destination, or change its severity or log filter; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("DestinationUpdate"),
    },
    Route {
        method: "delete",
        path: "/v1/notifications/destinations/{destination}",
        tag: "notifications",
        summary: "Delete a destination with its dead letters; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/notifications/destinations/{destination}/test",
        tag: "notifications",
        summary: "Send a test record (a customer log) to one destination, whatever its filters; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[202],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/notifications/destinations/{destination}/dead-letters",
        tag: "notifications",
        summary: "A webhook destination's deliveries that ran out of tries, oldest first",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v1/notifications/destinations/{destination}/dead-letters/{letter}",
        tag: "notifications",
        summary: "Discard a dead letter; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/notifications/destinations/{destination}/dead-letters/{letter}/retry",
        tag: "notifications",
        summary: "Queue a dead letter's record again (a new delivery with a new sequence) and remove the letter; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[202],
        body: None,
    },
    Route {
        method: "get",
        path: "/",
        tag: "version",
        summary: "API versions",
        access: Access::Public,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1",
        tag: "version",
        summary: "The v1 API (fault management and inventory)",
        access: Access::Public,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0",
        tag: "version",
        summary: "The v1.0 API (Distributed Cloud)",
        access: Access::Public,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3",
        tag: "identity",
        summary: "Identity API version",
        access: Access::Public,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v3/auth/tokens",
        tag: "identity",
        summary: "Issue a token (methods password, token and application_credential); the token is in header X-Subject-Token",
        access: Access::Public,
        query: &[],
        ok: &[201],
        body: Some("AuthRequest"),
    },
    Route {
        method: "get",
        path: "/v3/auth/tokens",
        tag: "identity",
        summary: "Validate the token given in header X-Subject-Token",
        access: Access::Token,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v3/auth/tokens",
        tag: "identity",
        summary: "Revoke the token given in header X-Subject-Token",
        access: Access::Token,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/healthz",
        tag: "operations",
        summary: "Liveness and readiness",
        access: Access::Public,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/metrics",
        tag: "operations",
        summary: "Prometheus metrics",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/openapi.json",
        tag: "operations",
        summary: "This document",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/alarms",
        tag: "fault management",
        summary: "List active alarms (severity, then entity)",
        access: Access::Reader,
        query: ALARM_LIST_Q,
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/alarms",
        tag: "fault management",
        summary: "Set, clear (by uuid, by pair, or by entity prefix), or log",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("AlarmPost"),
    },
    Route {
        method: "get",
        path: "/v1/alarms/summary",
        tag: "fault management",
        summary: "Counts of active alarms by severity, and the overall status",
        access: Access::Reader,
        query: SUMMARY_Q,
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/alarms/{uuid}",
        tag: "fault management",
        summary: "Show one alarm",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v1/alarms/{uuid}",
        tag: "fault management",
        summary: "Clear one alarm by hand",
        access: Access::Member,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/event_log",
        tag: "fault management",
        summary: "List event log records, newest first",
        access: Access::Reader,
        query: EVENT_LIST_Q,
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/event_log/{uuid}",
        tag: "fault management",
        summary: "Show one event log record",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/event_suppression",
        tag: "fault management",
        summary: "Suppression status of every catalogue alarm",
        access: Access::Reader,
        query: Q_FILTER,
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1/event_suppression/{uuid}",
        tag: "fault management",
        summary: "Suppress or unsuppress an alarm id (JSON patch of /suppression_status)",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("JsonPatch"),
    },
    Route {
        method: "get",
        path: "/v1/isystems",
        tag: "inventory",
        summary: "The system: name, mode, type, software version, Distributed Cloud role",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts",
        tag: "inventory",
        summary: "List hosts with their X.731 states",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/ihosts",
        tag: "inventory",
        summary: "Add a host (locked, offline until its agent enrolls); the answer carries a single-use join_token",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("HostAdd"),
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}",
        tag: "inventory",
        summary: "Show a host (by id, uuid or hostname)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1/ihosts/{host}",
        tag: "inventory",
        summary: "Act on a host (replace /action: lock, force-lock, unlock, force-unlock, swact, force-swact, reboot, reset, power-on, power-off) or change its BMC settings and location",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("JsonPatch"),
    },
    Route {
        method: "delete",
        path: "/v1/ihosts/{host}",
        tag: "inventory",
        summary: "Delete a locked host",
        access: Access::Member,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/icpus",
        tag: "inventory",
        summary: "A host's CPUs (cpu, core, thread, NUMA node, model, function)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "put",
        path: "/v1/ihosts/{host}/state/host_cpus_modify",
        tag: "inventory",
        summary: "Change the function of a locked host's CPUs (platform, application-isolated); the answer lists every CPU",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("CpuModify"),
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/labels",
        tag: "inventory",
        summary: "A host's labels",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/labels/{id}",
        tag: "inventory",
        summary: "Assign labels (a JSON object of key: value) to the host whose uuid is given",
        access: Access::Member,
        query: &[(
            "overwrite",
            "True to change the value of a label the host already has",
        )],
        ok: &[200],
        body: Some("LabelAssign"),
    },
    Route {
        method: "get",
        path: "/v1/labels/{id}",
        tag: "inventory",
        summary: "One label by its uuid",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v1/labels/{id}",
        tag: "inventory",
        summary: "Remove a label by its uuid",
        access: Access::Member,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/inodes",
        tag: "inventory",
        summary: "A host's NUMA nodes",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/imemorys",
        tag: "inventory",
        summary: "A host's memory per NUMA node",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/idisks",
        tag: "inventory",
        summary: "A host's disks",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/ethernet_ports",
        tag: "inventory",
        summary: "A host's network ports (name, MAC, MTU, speed)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/ports",
        tag: "inventory",
        summary: "A host's ports, as system host-port-list reads them",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/ihosts/{host}/join_token",
        tag: "inventory",
        summary: "A new single-use join token for a host's agent",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/heartbeat_key",
        tag: "inventory",
        summary: "Fingerprint of a host's heartbeat key (never the key) and whether a rotation runs",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/ihosts/{host}/heartbeat_key",
        tag: "inventory",
        summary: "Rotate a host's heartbeat key: the agent gets the new key in its next report's reply and pulses switch once it holds it, with no pulse missed; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/ihosts/{host}/attestation",
        tag: "inventory",
        summary: "A host's TPM attestation: status (none, trusted, failed) and why, the attestation key's fingerprint, the expected and the last quoted PCR values",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/ihosts/{host}/attestation",
        tag: "inventory",
        summary: "Accept the PCR values a host quotes now as the expected ones (after a legitimate change) and clear its attestation failure (500.110); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/ihosts/{host}/revoke",
        tag: "inventory",
        summary: "Revoke a host's agent: its token, client certificates and heartbeat key are withdrawn at once; it comes back only by enrolling with a new join token; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/service_parameter",
        tag: "maintenance",
        summary: "Maintenance service parameters (service platform, section maintenance)",
        access: Access::Reader,
        query: Q_FILTER,
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1/service_parameter/{uuid}",
        tag: "maintenance",
        summary: "Change a parameter (replace /name and /value; applied at once when the set is consistent)",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("JsonPatch"),
    },
    Route {
        method: "post",
        path: "/v1/service_parameter/apply",
        tag: "maintenance",
        summary: "Check and apply the maintenance parameters",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("ParameterApply"),
    },
    Route {
        method: "get",
        path: "/v1/release",
        tag: "software",
        summary: "List software releases (USM; a bare array, as the stock software client reads it)",
        access: Access::Reader,
        query: RELEASE_LIST_Q,
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/release",
        tag: "software",
        summary: "Upload release files (multipart, one part per *.patch file named by its local path, streamed to disk): each is verified against the trusted signing keys, its payload checked by digest and unpacked; the reply is USM's envelope with upload_info; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("ReleaseUpload"),
    },
    Route {
        method: "get",
        path: "/v1/release/{id}",
        tag: "software",
        summary: "Show a release (a bare object; 404 with USM's envelope)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v1/release/{id}",
        tag: "software",
        summary: "Delete a release that is available, unavailable or upload-failed and required by no other (a refusal is 200 with the reason in error, as USM answers); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/release/{id}/is_available",
        tag: "software",
        summary: "Whether a release is available (a bare true or false)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/release/{id}/is_deployed",
        tag: "software",
        summary: "Whether a release is deployed (a bare true or false)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/release/{id}/is_committed",
        tag: "software",
        summary: "Whether a release is committed (a bare true or false)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/deploy",
        tag: "software",
        summary: "The deploy in progress (a bare array of at most one item, as software deploy show reads it)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v1/deploy",
        tag: "software",
        summary: "Delete the deploy once completed, rolled back or never begun; the release becomes deployed or available again (USM envelope; a refusal is 406); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy/precheck",
        tag: "software",
        summary: "Check whether a release can be deployed: available, its prerequisites deployed, no other deploy, every host unlocked, enabled and available, no management-affecting alarm unless forced (USM envelope with system_healthy; 406 when not); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("DeployRequest"),
    },
    Route {
        method: "post",
        path: "/v1/deploy/start",
        tag: "software",
        summary: "Start deploying a release: the precheck, then every host pending (USM envelope; a refusal is 406); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("DeployRequest"),
    },
    Route {
        method: "post",
        path: "/v1/deploy/activate",
        tag: "software",
        summary: "Activate the deployed release once every host runs it; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy/activate_rollback",
        tag: "software",
        summary: "Roll back the activation of an aborted deploy; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy/complete",
        tag: "software",
        summary: "Complete an activated deploy; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy/abort",
        tag: "software",
        summary: "Abort the deploy: every host that took the release is to be rolled back; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/deploy/strategy",
        tag: "software",
        summary: "The site strategy and its stages (404 without one)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy/strategy",
        tag: "software",
        summary: "Create the site strategy for an available release: deploy start, the controllers one at a time, the other hosts serially or in groups, activate, complete (one strategy at a time); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("StrategyRequest"),
    },
    Route {
        method: "delete",
        path: "/v1/deploy/strategy",
        tag: "software",
        summary: "Delete the site strategy unless it is applying; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy/strategy/actions",
        tag: "software",
        summary: "Apply or abort the site strategy ({\"action\": \"apply\"|\"abort\"}); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("StrategyAction"),
    },
    Route {
        method: "get",
        path: "/v1/deploy_host",
        tag: "software",
        summary: "The hosts of the deploy with their deploy state (a bare array; empty without a deploy)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy_host/{host}",
        tag: "software",
        summary: "Deploy the release to a host: its agent fetches, stages, switches, checks, and rolls back by itself when the check fails (USM envelope; a refusal is 406); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy_host/{host}/force",
        tag: "software",
        summary: "Deploy the release to a host that is not in service; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy_host/{host}/rollback",
        tag: "software",
        summary: "Roll a host back after an abort; admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/deploy_host/{host}/rollback/force",
        tag: "software",
        summary: "Roll a host back after an abort (forced); admin role only",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/agent/enroll",
        tag: "agent",
        summary: "Enroll an agent with a join token; returns its host identity, heartbeat key and agent token",
        access: Access::Agent,
        query: &[],
        ok: &[200],
        body: Some("AgentEnroll"),
    },
    Route {
        method: "post",
        path: "/v1/agent/report",
        tag: "agent",
        summary: "An enrolled agent's report (header X-Agent-Token): inventory, resource alarms, process states",
        access: Access::Agent,
        query: &[],
        ok: &[200],
        body: Some("AgentReport"),
    },
    Route {
        method: "post",
        path: "/v1/agent/certificate",
        tag: "agent",
        summary: "A new client certificate for an enrolled agent's key (header X-Agent-Token, and over HTTPS its current client certificate): renewal, or a first certificate for an agent enrolled over plain HTTP",
        access: Access::Agent,
        query: &[],
        ok: &[200],
        body: Some("AgentCertificate"),
    },
    Route {
        method: "get",
        path: "/v1.0/subcloud-groups/{group}/apps",
        tag: "distributed cloud",
        summary: "The applications assigned to a subcloud group (system controller; Roost's own)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1.0/subcloud-groups/{group}/apps",
        tag: "distributed cloud",
        summary: "Assign an application uploaded on the system controller to a subcloud group: every subcloud of the group fetches and applies it",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("GroupAppAssign"),
    },
    Route {
        method: "delete",
        path: "/v1.0/subcloud-groups/{group}/apps/{app}",
        tag: "distributed cloud",
        summary: "Take an application off a subcloud group: its subclouds remove it",
        access: Access::Member,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subclouds/{subcloud}/apps",
        tag: "distributed cloud",
        summary: "Where the applications assigned to a subcloud stand: applied, failed (with the reason) or pending",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subcloud-apps",
        tag: "distributed cloud",
        summary: "Every subcloud's applications and where they stand",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/sw-update-options",
        tag: "orchestration",
        summary: "strategy-config: the defaults (`all clouds default`), then each subcloud that has its own options",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/sw-update-options/{cloud}",
        tag: "orchestration",
        summary: "The options of a subcloud (name or id), or the defaults (SystemController)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1.0/sw-update-options/{cloud}",
        tag: "orchestration",
        summary: "Create or replace the options of a subcloud, or the defaults (SystemController): the site strategy each subcloud runs takes them",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("SwUpdateOptionsWrite"),
    },
    Route {
        method: "delete",
        path: "/v1.0/sw-update-options/{cloud}",
        tag: "orchestration",
        summary: "Delete a subcloud's options (it takes the defaults again), or reset the defaults (SystemController)",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/sw-update-strategy",
        tag: "orchestration",
        summary: "The orchestration strategy, with Roost's stages and their progress (404 without one)",
        access: Access::Reader,
        query: &[("type", "the strategy type: sw-deploy")],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1.0/sw-update-strategy",
        tag: "orchestration",
        summary: "Create the sw-deploy strategy: a release (uploaded here) to the managed subclouds, in stages (a canary first if asked, then per group or as the request says); one strategy at a time",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("SwUpdateStrategyCreate"),
    },
    Route {
        method: "delete",
        path: "/v1.0/sw-update-strategy",
        tag: "orchestration",
        summary: "Delete the strategy unless it is applying; answers it in state `deleting`",
        access: Access::Admin,
        query: &[("type", "the strategy type: sw-deploy")],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1.0/sw-update-strategy/actions",
        tag: "orchestration",
        summary: "Apply the strategy (also the approval a canary stage waits for) or abort it",
        access: Access::Admin,
        query: &[("type", "the strategy type: sw-deploy")],
        ok: &[200],
        body: Some("StrategyAction"),
    },
    Route {
        method: "get",
        path: "/v1.0/sw-update-strategy/steps",
        tag: "orchestration",
        summary: "The strategy's steps: one per subcloud, with its stage, state and details",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/sw-update-strategy/steps/{cloud}",
        tag: "orchestration",
        summary: "One subcloud's step",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/apps",
        tag: "applications",
        summary: "List applications (and, during an update, the previous version's row)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/apps",
        tag: "applications",
        summary: "Upload an application package as `system application-upload` sends it: JSON with the .tgz in base64 (`binary_data`), decoded as it arrives; answered `uploading`",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("AppUpload"),
    },
    Route {
        method: "post",
        path: "/v1/apps/update",
        tag: "applications",
        summary: "Move an applied application to the version of a package at a path on the server",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("AppUpdate"),
    },
    Route {
        method: "get",
        path: "/v1/apps/{name}",
        tag: "applications",
        summary: "One application",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1/apps/{name}",
        tag: "applications",
        summary: "Apply, remove or abort (the directive in the query)",
        access: Access::Member,
        query: &[
            ("directive", "apply, remove or abort"),
            ("force", "True or False (remove)"),
        ],
        ok: &[200],
        body: Some("AppPatch"),
    },
    Route {
        method: "delete",
        path: "/v1/apps/{name}",
        tag: "applications",
        summary: "Delete an uploaded (not applied) application and its package",
        access: Access::Member,
        query: &[("force", "True or False")],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/apps/{name}/replicas",
        tag: "applications",
        summary: "Every replica of an application: host, state, readiness, restarts, exclusive CPUs (Roost's own)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/apps/{name}/logs",
        tag: "applications",
        summary: "A container's output as text, followed with follow=true (Roost's own)",
        access: Access::Reader,
        query: &[
            (
                "replica",
                "replica id, or its index or host (default: the first)",
            ),
            ("container", "container name (default: the first)"),
            ("tail", "only the last this many lines"),
            ("follow", "True to keep the answer open and send new output"),
        ],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/agent/apps/plan",
        tag: "agent",
        summary: "The host's plan (header X-Agent-Token): at once when newer than `generation`, else when it changes or after `wait` seconds",
        access: Access::Agent,
        query: &[
            ("generation", "the plan generation the agent has"),
            ("wait", "seconds to wait for a newer plan (at most 60)"),
        ],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/agent/apps/report",
        tag: "agent",
        summary: "What the host runs (header X-Agent-Token): the plan generation carried out and each replica",
        access: Access::Agent,
        query: &[],
        ok: &[204],
        body: Some("AgentAppsReport"),
    },
    Route {
        method: "get",
        path: "/v1/agent/apps/images/{digest}",
        tag: "agent",
        summary: "An image archive by its manifest digest (header X-Agent-Token); `Range: bytes=N-` resumes",
        access: Access::Agent,
        query: &[],
        ok: &[200, 206],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/agent/software/order",
        tag: "agent",
        summary: "The host's deploy order (header X-Agent-Token): at once when its attempt is after `after`, else as soon as there is one, or null after `wait` seconds",
        access: Access::Agent,
        query: &[
            ("after", "the last attempt the agent has seen"),
            ("wait", "seconds to wait for a new order (at most 60)"),
        ],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/agent/software/blobs/{sha256}",
        tag: "agent",
        summary: "A release payload file by its SHA-256 (header X-Agent-Token); `Range: bytes=N-` resumes",
        access: Access::Agent,
        query: &[],
        ok: &[200, 206],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/agent/apps/log-requests",
        tag: "agent",
        summary: "Requests for container output on the host (header X-Agent-Token), waiting up to `wait` seconds",
        access: Access::Agent,
        query: &[("wait", "seconds to wait for a request (at most 60)")],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1/agent/apps/logs/{id}",
        tag: "agent",
        summary: "A piece of the answer to a log request (header X-Agent-Token); 404 once nobody waits for it",
        access: Access::Agent,
        query: &[("end", "True: the answer is complete")],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subclouds",
        tag: "distributed cloud",
        summary: "List subclouds with their management, availability, deploy and sync status (system controller)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1.0/subclouds",
        tag: "distributed cloud",
        summary: "Add a subcloud (JSON or StarlingX's multipart form); the answer carries a one-time enroll_token and the DC URL to dial",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("SubcloudCreate"),
    },
    Route {
        method: "get",
        path: "/v1.0/subclouds/{subcloud}",
        tag: "distributed cloud",
        summary: "Show a subcloud (by id or name)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1.0/subclouds/{subcloud}",
        tag: "distributed cloud",
        summary: "Manage or unmanage a subcloud, or change its description, location or group",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("SubcloudUpdate"),
    },
    Route {
        method: "delete",
        path: "/v1.0/subclouds/{subcloud}",
        tag: "distributed cloud",
        summary: "Delete an unmanaged, offline subcloud",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subclouds/{subcloud}/detail",
        tag: "distributed cloud",
        summary: "Show a subcloud with detail keys",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subclouds/{subcloud}/alarms",
        tag: "distributed cloud",
        summary: "A subcloud's active alarms as the system controller holds them",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subclouds/{subcloud}/audit",
        tag: "audit",
        summary: "The audit records a subcloud forwarded to this system controller, oldest first; admin role only",
        access: Access::Admin,
        query: &[("limit", "the newest N records (1-10000, default 100)")],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subcloud-groups",
        tag: "distributed cloud",
        summary: "List subcloud groups",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v1.0/subcloud-groups",
        tag: "distributed cloud",
        summary: "Add a subcloud group",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("GroupCreate"),
    },
    Route {
        method: "get",
        path: "/v1.0/subcloud-groups/{group}",
        tag: "distributed cloud",
        summary: "Show a subcloud group",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1.0/subcloud-groups/{group}",
        tag: "distributed cloud",
        summary: "Change a subcloud group",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("GroupWrite"),
    },
    Route {
        method: "delete",
        path: "/v1.0/subcloud-groups/{group}",
        tag: "distributed cloud",
        summary: "Delete an empty subcloud group (never Default)",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/subcloud-groups/{group}/subclouds",
        tag: "distributed cloud",
        summary: "The subclouds of a group",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1.0/alarms",
        tag: "distributed cloud",
        summary: "Per-subcloud alarm summary (counts -1 and status disabled when unreachable)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v3/users/{user_id}/password",
        tag: "identity",
        summary: "Change your own password (Keystone): {\"user\": {\"password\", \"original_password\"}}; synced to managed subclouds",
        access: Access::Token,
        query: &[],
        ok: &[204],
        body: Some("PasswordChange"),
    },
    Route {
        method: "post",
        path: "/v3/users/{user_id}/application_credentials",
        tag: "identity",
        summary: "Create an application credential for yourself (Keystone): scoped to your token's project with its roles (or the subset given); the secret is shown only in this answer",
        access: Access::Token,
        query: &[],
        ok: &[201],
        body: Some("AppCredentialCreate"),
    },
    Route {
        method: "get",
        path: "/v3/users/{user_id}/application_credentials",
        tag: "identity",
        summary: "List a user's application credentials, without secrets (your own; an admin's token: anyone's; others' are answered 404)",
        access: Access::Token,
        query: &[("name", "only the credential with this name")],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3/users/{user_id}/application_credentials/{application_credential_id}",
        tag: "identity",
        summary: "Show an application credential, without its secret (your own; an admin's token: anyone's)",
        access: Access::Token,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v3/users/{user_id}/application_credentials/{application_credential_id}",
        tag: "identity",
        summary: "Delete an application credential; the tokens it issued are revoked (your own; an admin's token: anyone's)",
        access: Access::Token,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3/users",
        tag: "identity",
        summary: "List users (Keystone), with Roost's roles, failed_logins and locked_until",
        access: Access::Admin,
        query: &[
            ("name", "only the user with this name"),
            ("enabled", "true or false"),
        ],
        ok: &[200],
        body: None,
    },
    Route {
        method: "post",
        path: "/v3/users",
        tag: "identity",
        summary: "Create a user (openstack user create): name, password (at least 8 characters), enabled, and Roost's roles on project admin",
        access: Access::Admin,
        query: &[],
        ok: &[201],
        body: Some("UserCreate"),
    },
    Route {
        method: "get",
        path: "/v3/users/{user_id}",
        tag: "identity",
        summary: "Show a user (by id or name)",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v3/users/{user_id}",
        tag: "identity",
        summary: "Change a user (openstack user set): name, password (revokes the user's tokens), enabled (true also clears a lockout; false revokes the user's tokens)",
        access: Access::Admin,
        query: &[],
        ok: &[200],
        body: Some("UserUpdate"),
    },
    Route {
        method: "delete",
        path: "/v3/users/{user_id}",
        tag: "identity",
        summary: "Delete a user: its tokens and role assignments go with it (never admin)",
        access: Access::Admin,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3/roles",
        tag: "identity",
        summary: "The roles: admin, member (StarlingX's operator), reader; each implies the ones after it",
        access: Access::Reader,
        query: &[("name", "only the role with this name")],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3/roles/{role_id}",
        tag: "identity",
        summary: "Show a role (its id is its name)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3/projects",
        tag: "identity",
        summary: "List projects",
        access: Access::Reader,
        query: &[("name", "only the project with this name")],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3/projects/{project_id}",
        tag: "identity",
        summary: "Show a project (by id or name)",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "put",
        path: "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
        tag: "identity",
        summary: "Grant a role on a project (openstack role add); the user's tokens are revoked",
        access: Access::Admin,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "delete",
        path: "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
        tag: "identity",
        summary: "Revoke a role on a project (openstack role remove); the user's tokens are revoked",
        access: Access::Admin,
        query: &[],
        ok: &[204],
        body: None,
    },
    Route {
        method: "get",
        path: "/v3/role_assignments",
        tag: "identity",
        summary: "Every role assignment (openstack role assignment list)",
        access: Access::Admin,
        query: &[
            ("user.id", "only this user's"),
            ("role.id", "only this role"),
            ("scope.project.id", "only on this project"),
            ("include_names", "true for names beside ids"),
        ],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/idns",
        tag: "inventory",
        summary: "DNS servers (idnss, nameservers as a comma-separated string); synced to managed subclouds",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/idns/{uuid}",
        tag: "inventory",
        summary: "Show the DNS servers",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1/idns/{uuid}",
        tag: "inventory",
        summary: "Set the DNS servers (replace /nameservers; at most 3 IP addresses)",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("JsonPatch"),
    },
    Route {
        method: "get",
        path: "/v1/intp",
        tag: "inventory",
        summary: "NTP servers (intps, ntpservers as a comma-separated string); synced to managed subclouds",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "get",
        path: "/v1/intp/{uuid}",
        tag: "inventory",
        summary: "Show the NTP servers",
        access: Access::Reader,
        query: &[],
        ok: &[200],
        body: None,
    },
    Route {
        method: "patch",
        path: "/v1/intp/{uuid}",
        tag: "inventory",
        summary: "Set the NTP servers (replace /ntpservers; at most 3 addresses or host names)",
        access: Access::Member,
        query: &[],
        ok: &[200],
        body: Some("JsonPatch"),
    },
];

/// dcmanager's name rule (roost-dc's `name_problem`): no whitespace, control
/// characters or any of `.*+?|()[]{}^$=,`, and not only digits. (Reserved
/// names and the 255-byte limit are checked by the server alone.)
const NAME_PATTERN: &str = r"^[^.*+?|()\[\]{}^$=,\s\x00-\x1f\x7f-\x9f]*[^0-9.*+?|()\[\]{}^$=,\s\x00-\x1f\x7f-\x9f][^.*+?|()\[\]{}^$=,\s\x00-\x1f\x7f-\x9f]*$";

fn schemas() -> Value {
    let s = |t: &str| json!({"type": t});
    // An optional string: serde reads null as absent.
    let os = json!({"type": ["string", "null"]});
    let named = json!({"type": ["object", "null"], "properties": {"id": os, "name": os}});
    let text =
        json!({"type": ["string", "null"], "maxLength": 4096, "description": "at most 4096 bytes"});
    // A boolean as JSON or as the strings True/False (any case), as
    // StarlingX's tools send both.
    let flex_bool = json!({"anyOf": [
        {"type": "boolean"},
        {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"},
        {"type": "null"}
    ]});
    let group_properties = json!({
        "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 254},
        "description": {"type": ["string", "null"], "minLength": 1, "maxLength": 254},
        "update_apply_type": {"enum": ["serial", "parallel", null]},
        "max_parallel_subclouds": {"anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 5000},
            {"type": "string", "pattern": "^([1-9][0-9]{0,2}|[1-4][0-9]{3}|5000)$"},
            {"type": "null"}
        ], "description": "1 to 5000, as an integer or a numeric string"}
    });
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "error_message"],
            "properties": {
                "error": {"type": "object", "properties": {
                    "message": s("string"), "faultstring": s("string"), "title": s("string"), "code": s("integer")}},
                "error_message": {"type": "string", "description": "a JSON document {faultcode, faultstring, debuginfo} as a string"}
            }
        },
        "AuthRequest": {
            "type": "object",
            "required": ["auth"],
            "properties": {"auth": {"type": "object", "required": ["identity"], "properties": {
                "identity": {"type": "object", "required": ["methods"],
                    "allOf": [
                        {"if": {"properties": {"methods": {"contains": {"const": "password"}}}},
                         "then": {"required": ["password"], "properties": {"password": {"type": "object"}}}},
                        {"if": {"properties": {"methods": {"contains": {"const": "token"}}}},
                         "then": {"required": ["token"], "properties": {"token": {"type": "object"}}}},
                        {"if": {"properties": {"methods": {"contains": {"const": "application_credential"}}}},
                         "then": {"required": ["application_credential"], "properties": {"application_credential": {"type": "object"}}}}
                    ],
                    "properties": {
                    "methods": {"type": "array", "minItems": 1, "items": {"enum": ["password", "token", "application_credential"]}},
                    "password": {"type": ["object", "null"], "required": ["user"], "properties": {
                        "user": {"type": "object", "required": ["password"],
                            "anyOf": [{"required": ["name"], "properties": {"name": s("string")}},
                                      {"required": ["id"], "properties": {"id": s("string")}}],
                            "properties": {
                            "id": os, "name": os, "password": s("string"), "domain": named.clone()}}}},
                    "token": {"type": ["object", "null"], "required": ["id"], "properties": {"id": s("string")}},
                    "application_credential": {"type": ["object", "null"], "required": ["secret"],
                        "anyOf": [{"required": ["id"], "properties": {"id": s("string")}},
                                  {"required": ["name", "user"], "properties": {"name": s("string"), "user": {"type": "object"}}}],
                        "properties": {
                        "id": os, "name": os, "secret": s("string"),
                        "user": {"type": ["object", "null"], "properties": {"id": os, "name": os, "domain": named.clone()}}}}}},
                "scope": {"type": ["object", "null"], "properties": {"project": {
                    "type": ["object", "null"],
                    "anyOf": [{"required": ["name"], "properties": {"name": s("string")}},
                              {"required": ["id"], "properties": {"id": s("string")}}],
                    "properties": {"id": os, "name": os, "domain": named}}}}}}}
        },
        "CertificateInstall": {
            "type": "object",
            "required": ["certificate_pem", "private_key_pem"],
            "properties": {
                "certificate_pem": {"type": "string", "description": "the chain, PEM, server certificate first"},
                "private_key_pem": {"type": "string", "description": "its private key, PEM"}
            }
        },
        "AlarmPost": {
            "type": "object",
            "description": "set (the default) and log need alarm_id, entity_instance_id and (for set) severity; a clear names a uuid, or an alarm_id and entity_instance_id, or only an entity_instance_id (everything under it)",
            "properties": {
                "alarm_state": {"enum": ["set", "clear", "log", "msg", null], "default": "set"},
                "uuid": {"type": ["string", "null"], "description": "clear this alarm"},
                "alarm_id": {"type": ["string", "null"], "pattern": "^\\S+$", "maxLength": 32, "description": "at most 32 bytes, no whitespace", "examples": ["100.104"]},
                "entity_instance_id": {"type": ["string", "null"], "pattern": "\\S", "maxLength": 255, "description": "at most 255 bytes", "examples": ["host=controller-0.filesystem=/var"]},
                "entity_type_id": os,
                "severity": {"enum": ["critical", "major", "minor", "warning", "not-applicable", null]},
                "reason_text": text.clone(),
                "alarm_type": os,
                "probable_cause": os,
                "proposed_repair_action": text,
                "service_affecting": flex_bool.clone(),
                "suppression": flex_bool,
                "timestamp": {"type": ["string", "null"], "pattern": "^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?$"},
                "suppression_status": {"description": "accepted and ignored (derived by the server)"},
                "mgmt_affecting": {"description": "accepted and ignored (derived by the server)"},
                "degrade_affecting": {"description": "accepted and ignored (derived by the server)"},
                "inhibit_alarms": {"description": "accepted and ignored"}
            },
            "additionalProperties": false,
            "allOf": [{
                "if": {"required": ["alarm_state"], "properties": {"alarm_state": {"enum": ["log", "msg"]}}},
                "then": {
                    "required": ["alarm_id", "entity_instance_id"],
                    "properties": {"alarm_id": s("string"), "entity_instance_id": s("string")}
                }
            }],
            "if": {"properties": {"alarm_state": {"enum": ["set", null]}}},
            "then": {
                "required": ["alarm_id", "entity_instance_id", "severity"],
                "properties": {
                    "alarm_id": s("string"),
                    "entity_instance_id": s("string"),
                    "severity": {"enum": ["critical", "major", "minor", "warning"]}
                }
            }
        },
        "JsonPatch": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["op", "path"], "properties": {
                "op": {"enum": ["replace"]}, "path": s("string"), "value": {}},
                "additionalProperties": false}
        },
        "SubcloudCreate": {
            "type": "object",
            "required": ["name"],
            "description": "in StarlingX's multipart form, a bootstrap_values file with a name: key may give the name instead",
            "properties": {
                "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 254},
                "description": os,
                "location": os,
                "group_id": {"type": ["integer", "string", "null"], "description": "id or name of the group"},
                "group": {"type": ["string", "null"], "description": "name of the group"},
                "bootstrap_values": {"type": "string", "description": "multipart form only: StarlingX's bootstrap values file"}
            }
        },
        "SubcloudUpdate": {
            "type": "object",
            "description": "at least one of management-state, description, location or group_id",
            "anyOf": [
                {"required": ["management-state"]},
                {"required": ["description"]},
                {"required": ["location"]},
                {"required": ["group_id"]}
            ],
            "properties": {
                "management-state": {"enum": ["managed", "unmanaged"]},
                "description": s("string"),
                "location": s("string"),
                "group_id": {"type": ["integer", "string"], "description": "id or name of the group"},
                "force": {"type": ["boolean", "string", "null"]}
            }
        },
        "GroupCreate": {
            "type": "object",
            "required": ["name"],
            "properties": group_properties.clone()
        },
        "GroupWrite": {
            "type": "object",
            "description": "at least one field",
            "minProperties": 1,
            "properties": group_properties
        },
        "AppCredentialCreate": {
            "type": "object",
            "required": ["application_credential"],
            "properties": {"application_credential": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": {"type": ["string", "null"]},
                    "expires_at": {"type": ["string", "null"], "description": "ISO 8601 (UTC); null or absent: never"},
                    "secret": {"type": ["string", "null"], "minLength": 16, "description": "made by the server when absent"},
                    "roles": {"type": ["array", "null"], "items": {"type": "object", "properties": {"id": os, "name": os}}},
                    "unrestricted": {"type": ["boolean", "null"], "description": "only false is accepted"}
                }
            }}
        },
        "PasswordChange": {
            "type": "object",
            "required": ["user"],
            "properties": {"user": {
                "type": "object",
                "required": ["password", "original_password"],
                "properties": {"password": s("string"), "original_password": s("string")}
            }}
        },
        "UserCreate": {
            "type": "object",
            "required": ["user"],
            "properties": {"user": {
                "type": "object",
                "required": ["name", "password"],
                "properties": {
                    "name": s("string"),
                    "password": {"type": "string", "minLength": 8},
                    "enabled": s("boolean"),
                    "domain_id": s("string"),
                    "default_project_id": s("string"),
                    "roles": {"type": "array", "items": {"type": "string", "enum": ["admin", "member", "reader"]}}
                }
            }}
        },
        "UserUpdate": {
            "type": "object",
            "required": ["user"],
            "properties": {"user": {
                "type": "object",
                "properties": {
                    "name": s("string"),
                    "password": {"type": "string", "minLength": 8},
                    "enabled": s("boolean")
                }
            }}
        },
        "ParameterApply": {
            "type": "object",
            "required": ["service"],
            "properties": {
                "service": {"enum": ["platform"]},
                "section": os
            }
        },
        "AgentEnroll": {
            "type": "object",
            "required": ["join_token", "inventory", "heartbeat_port"],
            "properties": {
                "join_token": s("string"),
                "inventory": {"type": "object", "description": "the host's inventory (CPUs, NUMA nodes, memory, disks, NICs)"},
                "heartbeat_port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "mgmt_ip": s("string"),
                "csr_pem": {"type": "string", "description": "PKCS#10 request (PEM) for the agent's client certificate; required when the API speaks HTTPS"},
                "tpm": {"$ref": "#/components/schemas/TpmEnrollment"}
            },
            "additionalProperties": false
        },
        "ReleaseUpload": {
            "type": "object",
            "description": "one part per release file; the part's name and filename are the file's local path",
            "additionalProperties": {"type": "string", "contentMediaType": "application/octet-stream"}
        },
        "DeployRequest": {
            "type": "object",
            "description": "what software deploy precheck|start sends: the release, force (any value counts) and k=v options",
            "properties": {
                "releases": {"type": "array", "items": s("string"), "maxItems": 1},
                "force": {},
                "options": {"type": "array", "items": s("string")},
                "region_name": s("string")
            }
        },
        "StrategyRequest": {
            "type": "object",
            "required": ["release_id"],
            "properties": {
                "release_id": s("string"),
                "worker_apply_type": {"enum": ["serial", "parallel"]},
                "max_parallel_workers": {"type": "integer", "minimum": 1, "maximum": 100},
                "alarm_restriction": {"enum": ["strict", "relaxed"]}
            },
            "additionalProperties": false
        },
        "StrategyAction": {
            "type": "object",
            "required": ["action"],
            "properties": {"action": {"enum": ["apply", "abort"]}},
            "additionalProperties": false
        },
        "UsmEnvelope": {
            "type": "object",
            "required": ["info", "warning", "error"],
            "properties": {
                "info": s("string"),
                "warning": s("string"),
                "error": s("string"),
                "upload_info": {"type": "array", "items": {"type": "object"}}
            }
        },
        "AgentCertificate": {
            "type": "object",
            "required": ["csr_pem"],
            "properties": {
                "csr_pem": {"type": "string", "description": "PKCS#10 request (PEM) for the agent's new key"}
            },
            "additionalProperties": false
        },
        "AgentReport": {
            "type": "object",
            "properties": {
                "inventory": {"type": "object"},
                "heartbeat_port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "cluster_ip": s("string"),
                "cluster_heartbeat_port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "alarms": {"type": "array", "items": {
                    "type": "object",
                    "required": ["alarm_id", "entity_instance_id"],
                    "properties": {
                        "alarm_id": s("string"),
                        "entity_instance_id": s("string"),
                        "severity": {"enum": ["critical", "major", "minor", "warning", null], "description": "null clears"},
                        "reason_text": s("string")
                    },
                    "additionalProperties": false
                }},
                "processes": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": s("string"),
                        "failed": {"enum": ["critical", "major", "minor", "warning", null], "description": "null when healthy"}
                    },
                    "additionalProperties": false
                }},
                "heartbeat_key_next": {"type": ["string", "null"], "description": "fingerprint of the next heartbeat key the agent holds, during a rotation"},
                "tpm_quote": {"$ref": "#/components/schemas/TpmQuote"},
                "software": {
                    "type": "object",
                    "description": "the release the host runs (empty: the installed software), the roost binary's version and how the last deploy attempt ended",
                    "required": ["release_id", "version"],
                    "properties": {
                        "release_id": s("string"),
                        "version": s("string"),
                        "last": {
                            "type": "object",
                            "required": ["attempt", "release_id", "ok", "message"],
                            "properties": {
                                "attempt": {"type": "integer", "minimum": 0},
                                "release_id": s("string"),
                                "ok": {"type": "boolean"},
                                "message": s("string")
                            }
                        }
                    }
                }
            },
            "additionalProperties": false
        },
        "TpmQuote": {
            "type": "object",
            "required": ["attest", "signature_r", "signature_s", "pcrs"],
            "properties": {
                "attest": {"type": "string", "description": "the signed TPMS_ATTEST, hex"},
                "signature_r": {"type": "string", "description": "ECDSA r, hex"},
                "signature_s": {"type": "string", "description": "ECDSA s, hex"},
                "pcrs": {"type": "object", "additionalProperties": {"type": "string"}, "description": "quoted SHA-256 PCR values by index, hex"}
            },
            "additionalProperties": false
        },
        "TpmEnrollment": {
            "type": "object",
            "required": ["ak_public", "quote"],
            "properties": {
                "ak_public": {"type": "string", "description": "the TPM attestation key (P-256, SEC1 uncompressed), hex"},
                "quote": {"$ref": "#/components/schemas/TpmQuote"}
            },
            "additionalProperties": false
        },
        "CpuModify": {
            "type": "array",
            "maxItems": 8,
            "items": {
                "type": "object",
                "required": ["function"],
                "properties": {
                    "function": {"type": "string"},
                    "sockets": {"type": "array", "items": {"type": "object", "additionalProperties": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}}},
                    "cpulist": {"type": "string"}
                }
            }
        },
        "SwUpdateOptionsWrite": {
            "type": "object",
            "required": ["storage-apply-type", "worker-apply-type", "max-parallel-workers", "alarm-restriction-type", "default-instance-action"],
            "properties": {
                "storage-apply-type": {"enum": ["serial", "parallel"]},
                "worker-apply-type": {"enum": ["serial", "parallel"]},
                "max-parallel-workers": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100}, {"type": "string", "pattern": "^[0-9]+$"}]},
                "alarm-restriction-type": {"enum": ["strict", "relaxed"]},
                "default-instance-action": {"enum": ["stop-start", "migrate"]}
            },
            "additionalProperties": false
        },
        "SwUpdateStrategyCreate": {
            "type": "object",
            "description": "what dcmanager sw-deploy-strategy create sends (booleans as JSON or as \"true\"/\"false\"), plus Roost's canary, canary_group, approval, soak_secs, auto_rollback and defer_secs",
            "required": ["type"],
            "properties": {
                "type": {"type": "string"},
                "subcloud-apply-type": {"enum": ["serial", "parallel"]},
                "max-parallel-subclouds": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
                "stop-on-failure": {"anyOf": [{"type": "boolean"}, {"enum": ["true", "false"]}]},
                "cloud_name": s("string"),
                "subcloud_group": s("string"),
                "release_id": s("string"),
                "rollback": flex_bool,
                "snapshot": flex_bool,
                "delete": flex_bool,
                "cleanup": flex_bool,
                "with_delete": flex_bool,
                "delete_only": flex_bool,
                "with_prestage": flex_bool,
                "sysadmin_password": s("string"),
                "kube_upgrade": {},
                "force": flex_bool,
                "canary": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
                "canary_group": s("string"),
                "approval": flex_bool,
                "soak_secs": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
                "auto_rollback": flex_bool,
                "defer_secs": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}
            }
        },
        "GroupAppAssign": {
            "type": "object",
            "required": ["app"],
            "properties": {"app": {"type": "string", "minLength": 1, "maxLength": 255}},
            "additionalProperties": false
        },
        "AppUpload": {
            "type": "object",
            "required": ["tarfile"],
            "properties": {
                "tarfile": s("string"),
                "name": os,
                "app_version": os,
                "images": flex_bool,
                "binary_data": {"type": "string", "description": "the package, base64"}
            }
        },
        "AppUpdate": {
            "type": "object",
            "required": ["tarfile"],
            "properties": {
                "tarfile": s("string"),
                "name": os,
                "app_version": os,
                "reuse_user_overrides": {"type": ["string", "null"], "enum": ["true", "True", "false", "False", null]},
                "reuse_attributes": {"type": ["string", "null"], "enum": ["true", "True", "false", "False", null]}
            }
        },
        "AppPatch": {
            "type": "object",
            "properties": {
                "values": {"type": "object", "properties": {"client_side": flex_bool, "mode": os}}
            }
        },
        "AgentAppsReport": {
            "type": "object",
            "required": ["host", "plan_generation", "replicas"],
            "properties": {
                "host": s("string"),
                "plan_generation": {"type": "integer", "minimum": 0},
                "replicas": {"type": "array", "maxItems": 10000, "items": {"type": "object"}},
                "unavailable": os
            }
        },
        "LabelAssign": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 63}
        },
        "DestinationCreate": {
            "type": "object",
            "required": ["name", "type"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                "type": {"enum": ["webhook", "snmp", "syslog"]},
                "min_severity": {"enum": ["critical", "major", "minor", "warning", "all", "not-applicable", null]},
                "include_logs": {"type": ["boolean", "null"]},
                "url": {"type": "string", "description": "webhook: http(s) URL; syslog: udp://HOST[:PORT] or tcp://HOST[:PORT]"},
                "secret": {"type": "string", "minLength": 16, "description": "webhook signing key"},
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "retry_base_ms": {"type": "integer", "minimum": 10, "maximum": 60000},
                "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 60000},
                "host": {"type": "string", "description": "SNMP manager: HOST or HOST:PORT"},
                "version": {"enum": ["2c", "3"]},
                "community": {"type": "string"},
                "user": {"type": "string"},
                "auth_protocol": {"enum": ["SHA", "SHA-256"]},
                "auth_password": {"type": "string", "minLength": 8},
                "priv_protocol": {"enum": ["AES"]},
                "priv_password": {"type": "string", "minLength": 8},
                "facility": {"type": "string", "description": "syslog facility: local0..local7, user, daemon"}
            }
        },
        "DestinationUpdate": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "enabled": {"type": ["boolean", "null"]},
                "min_severity": {"enum": ["critical", "major", "minor", "warning", "all", "not-applicable", null]},
                "include_logs": {"type": ["boolean", "null"]}
            }
        },
        "HostAdd": {
            "type": "object",
            "required": ["hostname", "personality"],
            "properties": {
                "hostname": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,63}$"},
                "personality": {"enum": ["controller", "worker", "storage", "edgeworker"]},
                "subfunctions": os,
                "mgmt_mac": {"type": ["string", "null"], "pattern": "^$|^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"},
                "mgmt_ip": {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}, {"type": "null"}]},
                "bm_type": {"enum": ["none", "dynamic", "ipmi", "redfish", null]},
                "bm_ip": os, "bm_username": os, "bm_password": os,
                "location": {}
            }
        }
    })
}

/// The schema of a query parameter, as the server parses it.
fn query_schema(path: &str, name: &str) -> Value {
    // True/False in any case, 1/0, yes/no, or empty (true).
    let flag = json!({"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0|[Yy][Ee][Ss]|[Nn][Oo])?$"});
    let fields = |f: &[&str]| json!({"enum": f});
    match name {
        "include_suppress" | "expand" | "alarms" | "logs" => flag,
        "q.field" if path == "/v1/alarms" => fields(&[
            "alarm_id",
            "uuid",
            "entity_type_id",
            "entity_instance_id",
            "severity",
            "alarm_type",
            "probable_cause",
            "reason_text",
            "timestamp",
        ]),
        "q.field" if path == "/v1/event_log" => fields(&[
            "event_log_id",
            "uuid",
            "state",
            "entity_type_id",
            "entity_instance_id",
            "severity",
            "event_log_type",
            "probable_cause",
            "reason_text",
            "timestamp",
            "start",
            "end",
        ]),
        "q.field" if path == "/v1/event_suppression" => {
            fields(&["alarm_id", "suppression_status", "uuid", "description"])
        }
        "q.field" if path == "/v1/service_parameter" => {
            fields(&["service", "section", "name", "uuid", "value"])
        }
        "limit" if path.ends_with("/audit") => {
            json!({"type": "integer", "minimum": 1, "maximum": 10000})
        }
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": 2000}),
        "status" if path == "/v1/audit" => {
            json!({"type": "integer", "minimum": 100, "maximum": 599})
        }
        "since" | "until" if path == "/v1/audit" => json!({"type": "string"}),
        "sort_dir" => json!({"enum": ["asc", "desc"]}),
        "sort_key" if path == "/v1/alarms" => json!({"enum": [
            "severity", "timestamp", "alarm_id", "entity_instance_id", "uuid", "id", "created_at"]}),
        "sort_key" => json!({"enum": ["timestamp"]}),
        "q.op" => json!({"enum": ["eq", "ne", "lt", "le", "gt", "ge"]}),
        _ => json!({"type": "string"}),
    }
}

/// Headers an operation requires besides the token: (name, description).
fn header_parameters(method: &str, path: &str) -> Vec<(&'static str, &'static str)> {
    match (method, path) {
        ("get" | "delete", "/v3/auth/tokens") => {
            vec![("X-Subject-Token", "the token to validate or revoke")]
        }
        ("post", "/v1/agent/report")
        | ("post", "/v1/agent/certificate")
        | ("get", "/v1/agent/apps/plan")
        | ("post", "/v1/agent/apps/report")
        | ("get", "/v1/agent/apps/images/{digest}")
        | ("get", "/v1/agent/software/blobs/{sha256}")
        | ("get", "/v1/agent/software/order")
        | ("get", "/v1/agent/apps/log-requests")
        | ("post", "/v1/agent/apps/logs/{id}") => {
            vec![("X-Agent-Token", "the agent token issued at enrollment")]
        }
        _ => Vec::new(),
    }
}

/// The names of a path's `{parameters}`, in order.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

fn path_parameter_description(name: &str) -> &'static str {
    match name {
        "uuid" => "uuid of the resource",
        "host" => "id, uuid or hostname of the host",
        "subcloud" => "id or name of the subcloud",
        "group" => "id or name of the subcloud group",
        "user_id" => {
            "id of the user (for a password change, the token's own user); elsewhere also its name"
        }
        "role_id" => "the role: admin, member or reader",
        "application_credential_id" => "id of the application credential",
        "project_id" => "id or name of the project",
        "id" => {
            "uuid of the host (to assign labels) or of the label (to show or remove it); the log request's id (agent)"
        }
        "name" => "name of the application",
        "app" => "name of the application",
        "digest" => "the image's manifest digest, sha256:<hex>",
        "destination" => "id or name of the notification destination",
        "letter" => "id of the dead letter",
        _ => "identifies the resource",
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let mut params: Vec<Value> = r
            .query
            .iter()
            .map(|(n, d)| json!({"name": n, "in": "query", "required": false, "description": d, "schema": query_schema(r.path, n)}))
            .collect();
        for (name, what) in header_parameters(r.method, r.path) {
            params.push(json!({"name": name, "in": "header", "required": true, "description": what, "schema": {"type": "string", "minLength": 1}}));
        }
        for name in path_parameters(r.path) {
            params.push(json!({"name": name, "in": "path", "required": true, "description": path_parameter_description(name), "schema": {"type": "string"}}));
        }
        // dcmanager's paths answer errors as HTML pages, as StarlingX does
        // (the token check in front of them still answers JSON).
        let html_errors = r.path.starts_with("/v1.0/");
        // USM's paths answer refusals in USM's envelope (406 for a refused
        // upload or deploy step), as the stock software client reads them;
        // the site strategy is Roost's own.
        let usm = (r.path.starts_with("/v1/release") || r.path.starts_with("/v1/deploy"))
            && !r.path.starts_with("/v1/deploy/strategy");

        let mut responses = Map::new();
        for code in r.ok {
            responses.insert(code.to_string(), json!({"description": "success"}));
        }
        for (code, what) in [
            (400, "bad input"),
            (401, "missing, expired or revoked token"),
            (403, "not allowed for this token's holder"),
            (404, "not found"),
            (409, "refused in the current state (the message says why)"),
            (413, "body too large"),
            (415, "body is not JSON"),
            (429, "too many failed logins: retry after the delay"),
            (503, "the store is temporarily unavailable; retry later"),
        ] {
            let login = r.path == "/v3/auth/tokens" && r.method == "post";
            let credentials = r.access != Access::Public || login;
            if code == 401 && !credentials {
                continue;
            }
            // Only a change can conflict with the current state.
            if code == 409 && r.method == "get" {
                continue;
            }
            if code == 429 && !login {
                continue;
            }
            if code == 403 && !r.access.needs_token() {
                continue;
            }
            let content = if html_errors && code != 401 {
                json!({"text/html": {"schema": {"type": "string"}}})
            } else if usm && code != 401 && code != 403 {
                json!({"application/json": {"schema": {"$ref": "#/components/schemas/UsmEnvelope"}}})
            } else {
                json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
            };
            responses.insert(
                code.to_string(),
                json!({"description": what, "content": content}),
            );
        }
        if usm && r.method != "get" {
            responses.insert(
                "406".into(),
                json!({"description": "refused: every file of an upload, or a deploy step (the error says why)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UsmEnvelope"}}}}),
            );
        }
        let mut op = json!({
            "tags": [r.tag],
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
            "x-roost-access": r.access.as_str(),
        });
        if !r.access.needs_token() {
            op["security"] = json!([]);
        }
        if let Some(b) = r.body {
            let schema = json!({"$ref": format!("#/components/schemas/{b}")});
            let mut content = json!({"application/json": {"schema": schema}});
            if r.path == "/v1/release" {
                // USM's upload: a multipart form of files.
                content = json!({"multipart/form-data": {"schema": schema}});
            }
            if r.path.starts_with("/v1.0/subclouds") {
                // StarlingX's dcmanager client sends multipart forms.
                content["multipart/form-data"] = json!({"schema": schema});
            }
            op["requestBody"] = json!({"required": true, "content": content});
        }
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Roost API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Roost's REST API on one port: StarlingX-compatible fault management (fm), inventory and maintenance (sysinv), Distributed Cloud (dcmanager, on a system controller), identity (a Keystone v3 subset), the agent protocol and operations endpoints. dcmanager errors are HTML pages, as StarlingX sends them. The system controller's DC listener (mutual TLS: /dc/v1/enroll, /dc/v1/sync, /dc/v1/renew) is described in docs/distributed-cloud.md.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "servers": [{"url": "http://127.0.0.1:6385"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": schemas()
        }
    })
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/roost.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document_text(),
            "openapi/roost.json is stale: run `cargo run -p roost -- openapi > openapi/roost.json`"
        );
    }

    /// Every `$ref` in `v`, with where it was found.
    fn refs<'a>(v: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        if let Some(r) = x.as_str() {
                            out.push((at.to_string(), r));
                        }
                    } else {
                        refs(x, &format!("{at}/{k}"), out);
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    refs(x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// Resolves a local JSON pointer (`#/components/schemas/X`).
    fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
        doc.pointer(r.strip_prefix('#')?)
    }

    #[test]
    fn every_ref_resolves_and_every_schema_is_used() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, "#", &mut found);
        assert!(!found.is_empty());
        let dangling: Vec<String> = found
            .iter()
            .filter(|(_, r)| resolve(&doc, r).is_none())
            .map(|(at, r)| format!("{at}: {r}"))
            .collect();
        assert!(dangling.is_empty(), "dangling $refs: {dangling:#?}");
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            let target = format!("#/components/schemas/{name}");
            assert!(
                found.iter().any(|(_, r)| *r == target),
                "schema {name} is never used"
            );
        }
    }

    #[test]
    fn every_path_parameter_is_declared_and_every_declared_one_is_in_the_path() {
        let doc = document();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let in_path = path_parameters(path);
            for (method, op) in ops.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{method} {path}: {p}");
                        p["name"].as_str().unwrap()
                    })
                    .collect();
                assert_eq!(declared, in_path, "{method} {path}");
            }
        }
    }

    /// Operations that take no JSON body: the path says everything, or the
    /// body is raw bytes (a container's output).
    const BODYLESS: &[(&str, &str)] = &[
        ("post", "/v1/certificates/rotate_ca"),
        ("post", "/v1/ihosts/{host}/join_token"),
        ("post", "/v1/ihosts/{host}/heartbeat_key"),
        ("post", "/v1/ihosts/{host}/revoke"),
        ("post", "/v1/ihosts/{host}/attestation"),
        ("post", "/v1/agent/apps/logs/{id}"),
        // Notification actions: the destination and letter are in the path.
        ("post", "/v1/notifications/destinations/{destination}/test"),
        (
            "post",
            "/v1/notifications/destinations/{destination}/dead-letters/{letter}/retry",
        ),
        // USM's deploy steps: the stock client sends `{}` or nothing.
        ("post", "/v1/deploy/activate"),
        ("post", "/v1/deploy/activate_rollback"),
        ("post", "/v1/deploy/complete"),
        ("post", "/v1/deploy/abort"),
        ("post", "/v1/deploy_host/{host}"),
        ("post", "/v1/deploy_host/{host}/force"),
        ("post", "/v1/deploy_host/{host}/rollback"),
        ("post", "/v1/deploy_host/{host}/rollback/force"),
        (
            "put",
            "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
        ),
    ];

    #[test]
    fn every_write_declares_its_body() {
        let doc = document();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let writes = matches!(method.as_str(), "post" | "put" | "patch");
                let bodyless = BODYLESS.contains(&(method.as_str(), path.as_str()));
                let has_body = op.get("requestBody").is_some();
                if writes && !bodyless {
                    assert!(has_body, "{method} {path} declares no request body");
                    let content = op["requestBody"]["content"].as_object().unwrap();
                    // USM's upload alone is a multipart form of files.
                    let media = if path == "/v1/release" {
                        "multipart/form-data"
                    } else {
                        "application/json"
                    };
                    assert!(content.contains_key(media), "{method} {path}");
                } else {
                    assert!(!has_body, "{method} {path} should take no body");
                }
            }
        }
    }

    #[test]
    fn dcmanager_errors_are_documented_as_html_and_others_as_json() {
        let doc = document();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for (code, r) in op["responses"].as_object().unwrap() {
                    if !code.starts_with('4') && !code.starts_with('5') {
                        continue;
                    }
                    let html = path.starts_with("/v1.0/") && code != "401";
                    let want = if html {
                        "text/html"
                    } else {
                        "application/json"
                    };
                    let content = r["content"].as_object().unwrap();
                    assert!(
                        content.len() == 1 && content.contains_key(want),
                        "{method} {path} {code}: {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (_, ops) in document()["paths"].as_object().unwrap() {
            for (_, op) in ops.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(seen.insert(id.clone()), "{id} twice");
            }
        }
    }

    #[test]
    fn a_matched_route_finds_its_rule_whatever_its_parameters_are_called() {
        let r = route_for("GET", "/v1/alarms/{alarm_uuid}").unwrap();
        assert_eq!(r.path, "/v1/alarms/{uuid}");
        assert_eq!(r.access, Access::Reader);
        assert_eq!(route_for("HEAD", "/v1/alarms").unwrap().method, "get");
        assert_eq!(
            route_for("delete", "/v1/alarms/{x}").unwrap().access,
            Access::Member
        );
        assert_eq!(
            route_for("post", "/v3/users").unwrap().access,
            Access::Admin
        );
        assert!(route_for("put", "/v1/alarms").is_none());
        assert!(route_for("get", "/nowhere").is_none());
        // One rule per method and shape: no route can be matched two ways.
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, shape(r.path))),
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn roles_imply_the_ones_below() {
        let roles = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Access::Reader.allows(&roles(&["reader"])));
        assert!(Access::Reader.allows(&roles(&["admin"])));
        assert!(!Access::Member.allows(&roles(&["reader"])));
        assert!(Access::Member.allows(&roles(&["member"])));
        assert!(!Access::Admin.allows(&roles(&["member", "reader"])));
        assert!(!Access::Reader.allows(&[]));
        assert!(Access::Token.allows(&[]));
    }

    #[test]
    fn every_route_is_documented_once() {
        let doc = document();
        let mut n = 0;
        for (_, ops) in doc["paths"].as_object().unwrap() {
            n += ops.as_object().unwrap().len();
        }
        assert_eq!(n, ROUTES.len());
    }
}

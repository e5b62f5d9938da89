//! Every list verb in every output format, against canned server answers:
//! tables on a terminal and piped, wide, json, yaml, value, `--no-headers`
//! and `-c`.

use serde_json::{Value, json};

use crate::error::EXIT_USAGE;
use crate::testutil::{Canned, FakeServer, Outcome, run_verb_on};

/// One list verb and what its output must show.
struct Case {
    args: &'static [&'static str],
    /// The replies of one run, in order.
    replies: fn() -> Vec<Value>,
    /// How many rows the list has.
    rows: usize,
    /// A column to pick with `-c`, as typed (any case, `_` for spaces).
    column: &'static str,
    /// Its header text.
    header: &'static str,
    /// The cell of that column in the first row.
    first: &'static str,
    /// A header only the wide format shows, if the verb has one.
    wide_only: Option<&'static str>,
}

const UUID_1: &str = "0b8e5d2c-7f3a-4c1e-9a6b-2d4f8e1c3a5b";
const UUID_2: &str = "9f1c2e3d-4b5a-4d6c-8e7f-0a1b2c3d4e5f";
const LONG_REASON: &str = "Platform CPU threshold exceeded; threshold 90.00%, actual 99.00% over a long long period of time";

fn alarms() -> Vec<Value> {
    vec![json!({"alarms": [
        {"uuid": UUID_1, "alarm_id": "100.101", "severity": "major",
         "entity_instance_id": "host=controller-0", "entity_type_id": "host",
         "reason_text": LONG_REASON, "timestamp": "2026-11-26T18:16:12.086207",
         "alarm_type": "operational-violation", "suppression_status": "unsuppressed"},
        {"uuid": UUID_2, "alarm_id": "200.001", "severity": "warning",
         "entity_instance_id": "host=compute-1", "entity_type_id": "host",
         "reason_text": "compute-1 was locked", "timestamp": "2026-11-26T18:17:00.000000",
         "suppression_status": "unsuppressed"}
    ]})]
}

fn suppressions() -> Vec<Value> {
    vec![json!({"event_suppression": [
        {"uuid": UUID_1, "alarm_id": "100.101", "suppression_status": "unsuppressed",
         "description": LONG_REASON},
        {"uuid": UUID_2, "alarm_id": "200.001", "suppression_status": "suppressed",
         "description": "Locked"}
    ]})]
}

fn events() -> Vec<Value> {
    vec![json!({"event_log": [
        {"uuid": UUID_1, "event_log_id": "100.101", "state": "set", "severity": "major",
         "entity_instance_id": "host=controller-0", "reason_text": LONG_REASON,
         "timestamp": "2026-11-26T18:16:12.086207"},
        {"uuid": UUID_2, "event_log_id": "100.101", "state": "clear", "severity": "major",
         "entity_instance_id": "host=controller-0", "reason_text": "CPU back to normal",
         "timestamp": "2026-11-26T18:20:00.000000"}
    ]})]
}

fn hosts() -> Vec<Value> {
    vec![json!({"ihosts": [
        {"id": 1, "uuid": UUID_1, "hostname": "controller-0", "personality": "controller",
         "administrative": "unlocked", "operational": "enabled", "availability": "available",
         "mgmt_ip": "192.168.204.2", "task": ""},
        {"id": 2, "uuid": UUID_2, "hostname": "worker-1", "personality": "worker",
         "administrative": "locked", "operational": "disabled", "availability": "online",
         "mgmt_ip": "192.168.204.3"}
    ]})]
}

fn cpus() -> Vec<Value> {
    vec![json!({"icpus": [
        {"uuid": UUID_1, "cpu": 0, "core": 0, "thread": 0, "numa_node": 0,
         "cpu_model": "Xeon", "allocated_function": "platform"},
        {"uuid": UUID_2, "cpu": 1, "core": 1, "thread": 0, "numa_node": 0,
         "cpu_model": "Xeon", "allocated_function": "application"}
    ]})]
}

fn memory() -> Vec<Value> {
    vec![json!({"imemorys": [
        {"uuid": UUID_1, "numa_node": 0, "memtotal_mib": 16000, "memavail_mib": 9000},
        {"uuid": UUID_2, "numa_node": 1, "memtotal_mib": 16000, "memavail_mib": 12000}
    ]})]
}

fn disks() -> Vec<Value> {
    vec![json!({"idisks": [
        {"uuid": UUID_1, "device_node": "/dev/sda", "device_type": "SSD",
         "size_mib": 512000, "serial_id": "S1", "rpm": "N/A"},
        {"uuid": UUID_2, "device_node": "/dev/sdb", "device_type": "HDD",
         "size_mib": 1024000, "serial_id": "S2", "rpm": "7200"}
    ]})]
}

fn ports() -> Vec<Value> {
    vec![json!({"ethernet_ports": [
        {"uuid": UUID_1, "name": "eth0", "mac": "52:54:00:00:00:01", "mtu": 1500,
         "speed": 10000, "pciaddr": "0000:00:03.0", "driver": "virtio"},
        {"uuid": UUID_2, "name": "eth1", "mac": "52:54:00:00:00:02", "mtu": 9000,
         "speed": 10000, "pciaddr": "0000:00:04.0", "driver": "virtio"}
    ]})]
}

fn labels() -> Vec<Value> {
    vec![
        json!({"uuid": UUID_1, "hostname": "worker-1"}),
        json!({"labels": [
            {"uuid": UUID_1, "label_key": "sriov", "label_value": "enabled"},
            {"uuid": UUID_2, "label_key": "zone", "label_value": "east"}
        ]}),
    ]
}

fn apps() -> Vec<Value> {
    vec![json!({"apps": [
        {"name": "hello", "app_version": "1.0-1", "status": "applied",
         "progress": "completed", "active": true, "manifest_name": "hello-manifest"},
        {"name": "web", "app_version": "2.0-1", "status": "apply-failed",
         "progress": LONG_REASON, "active": false, "manifest_name": "web-manifest"}
    ]})]
}

fn subclouds() -> Vec<Value> {
    vec![json!({"subclouds": [
        {"id": 1, "name": "edge-1", "management-state": "managed",
         "availability-status": "online", "deploy-status": "complete",
         "sync_status": "in-sync", "group_id": 1, "location": "Ottawa",
         "description": LONG_REASON},
        {"id": 2, "name": "edge-2", "management-state": "unmanaged",
         "availability-status": "offline", "deploy-status": "complete",
         "sync_status": "unknown", "group_id": 1}
    ]})]
}

fn records() -> Vec<Value> {
    let record = |seq: u64, path: &str| {
        json!({"seq": seq, "time": "2026-11-26T18:16:12Z", "user": "admin",
               "roles": ["admin"], "source": "127.0.0.1", "method": "POST",
               "path": path, "status": 200, "prev_hash": "00", "hash": format!("{seq:02}")})
    };
    vec![json!({"records": [record(1, "/v1/ihosts"), record(2, "/v1/apps")]})]
}

fn groups() -> Vec<Value> {
    vec![json!({"subcloud_groups": [
        {"id": 1, "name": "Default", "description": LONG_REASON,
         "update_apply_type": "parallel", "max_parallel_subclouds": 2},
        {"id": 2, "name": "east", "description": "East coast",
         "update_apply_type": "serial", "max_parallel_subclouds": 1}
    ]})]
}

fn dc_alarms() -> Vec<Value> {
    vec![json!({"alarm_summary": [
        {"region_name": "edge-1", "critical_alarms": 0, "major_alarms": 2,
         "minor_alarms": 0, "warnings": 1, "cloud_status": "degraded"},
        {"region_name": "edge-2", "critical_alarms": -1, "major_alarms": -1,
         "minor_alarms": -1, "warnings": -1, "cloud_status": "disabled"}
    ]})]
}

fn users() -> Vec<Value> {
    let user = |id: &str, name: &str| {
        json!({"id": id, "name": name, "domain_id": "default", "enabled": true,
               "failed_logins": 0, "roles": ["admin"], "password_expires_at": null,
               "options": {}, "links": {}})
    };
    vec![json!({"users": [user(UUID_1, "admin"), user(UUID_2, "operator")], "links": {}})]
}

fn certificates() -> Vec<Value> {
    let cert = |name: &str, uuid: &str| {
        json!({"name": name, "purpose": "api", "mode": "roost", "source": "generated",
               "uuid": uuid, "subject": "CN=roost", "issuer": "CN=roost CA",
               "serial": "01", "not_before": "2026-01-01", "not_after": "2027-01-01",
               "fingerprint": "AB:CD"})
    };
    vec![json!({"tls": true, "certificates": [cert("api", UUID_1), cert("ca", UUID_2)]})]
}

fn heartbeat() -> Vec<Value> {
    let param = |name: &str, value: &str, uuid: &str| {
        json!({"uuid": uuid, "service": "platform", "section": "maintenance",
               "name": name, "value": value})
    };
    vec![json!({"parameters": [
        param("heartbeat_period", "100", UUID_1),
        param("heartbeat_failure_action", "fail", UUID_2)
    ]})]
}

fn strategy_options() -> Vec<Value> {
    let options = |name: &str, id: Value| {
        json!({"id": 1, "name": name, "subcloud-id": id,
               "storage-apply-type": "parallel", "worker-apply-type": "parallel",
               "max-parallel-workers": 2, "alarm-restriction-type": "relaxed",
               "default-instance-action": "migrate", "created-at": null, "updated-at": null})
    };
    vec![
        json!({"sw-update-options": [options("all clouds default", Value::Null), options("edge-1", json!(1))]}),
    ]
}

fn destinations() -> Vec<Value> {
    let dest = |id: &str, name: &str, kind: &str, address: &str| {
        json!({"id": id, "name": name, "type": kind, "address": address, "enabled": true,
               "min_severity": "all", "include_logs": true, "settings": {},
               "stats": {"delivered": 3, "failed_attempts": 1, "pending": 0,
                         "dead_lettered": 0, "dropped": 0, "last_error": LONG_REASON},
               "created_at": "2026-12-04T05:00:00.000000"})
    };
    vec![json!({"destinations": [
        dest(UUID_1, "ops", "webhook", "https://hooks.example.com/roost"),
        dest(UUID_2, "nms", "snmp", "10.0.0.9:162")
    ]})]
}

fn dead_letters() -> Vec<Value> {
    let letter = |id: &str, seq: u64| {
        json!({"id": id, "destination_id": UUID_1, "sequence": seq,
               "entity_instance_id": "host=controller-0", "attempts": 8,
               "last_error": LONG_REASON, "created_at": "2026-12-04T05:00:00.000000",
               "body": {"sequence": seq, "system": "roost", "event": {
                   "uuid": id, "event_log_id": "100.101", "state": "set",
                   "entity_instance_id": "host=controller-0", "entity_type_id": "host",
                   "severity": "major", "reason_text": "r", "event_log_type": "t",
                   "probable_cause": "c", "proposed_repair_action": "a",
                   "service_affecting": false, "suppression": true,
                   "timestamp": "2026-12-04T05:00:00.000000Z"}}})
    };
    vec![json!({"dead_letters": [letter(UUID_1, 4), letter(UUID_2, 9)]})]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            args: &["alarm", "list"],
            replies: alarms,
            rows: 2,
            column: "alarm_id",
            header: "Alarm ID",
            first: "100.101",
            wide_only: Some("Entity type"),
        },
        Case {
            args: &["alarm", "suppress", "--list"],
            replies: suppressions,
            rows: 2,
            column: "status",
            header: "Status",
            first: "unsuppressed",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["event", "list"],
            replies: events,
            rows: 2,
            column: "EVENT ID",
            header: "Event ID",
            first: "100.101",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["host", "list"],
            replies: hosts,
            rows: 2,
            column: "hostname",
            header: "Hostname",
            first: "controller-0",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["host", "cpus", "worker-1"],
            replies: cpus,
            rows: 2,
            column: "function",
            header: "Function",
            first: "platform",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["host", "memory", "worker-1"],
            replies: memory,
            rows: 2,
            column: "total_mib",
            header: "Total MiB",
            first: "16000",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["host", "disks", "worker-1"],
            replies: disks,
            rows: 2,
            column: "size gib",
            header: "Size GiB",
            first: "500.0",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["host", "ports", "worker-1"],
            replies: ports,
            rows: 2,
            column: "mac",
            header: "MAC",
            first: "52:54:00:00:00:01",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["host", "label", "list", "worker-1"],
            replies: labels,
            rows: 2,
            column: "key",
            header: "Key",
            first: "sriov",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["app", "list"],
            replies: apps,
            rows: 2,
            column: "version",
            header: "Version",
            first: "1.0-1",
            wide_only: Some("Manifest"),
        },
        Case {
            args: &["subcloud", "list"],
            replies: subclouds,
            rows: 2,
            column: "deploy_status",
            header: "Deploy status",
            first: "complete",
            wide_only: Some("Location"),
        },
        Case {
            args: &["subcloud", "alarms", "edge-1"],
            replies: alarms,
            rows: 2,
            column: "severity",
            header: "Severity",
            first: "major",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["subcloud", "audit", "edge-1"],
            replies: records,
            rows: 2,
            column: "path",
            header: "Path",
            first: "/v1/ihosts",
            wide_only: Some("Previous hash"),
        },
        Case {
            args: &["subcloud-group", "list"],
            replies: groups,
            rows: 2,
            column: "apply_type",
            header: "Apply type",
            first: "parallel",
            wide_only: None,
        },
        Case {
            args: &["subcloud-group", "subclouds", "Default"],
            replies: subclouds,
            rows: 2,
            column: "name",
            header: "Name",
            first: "edge-1",
            wide_only: Some("Group"),
        },
        Case {
            args: &["dc", "alarms"],
            replies: dc_alarms,
            rows: 2,
            column: "critical",
            header: "Critical",
            first: "0",
            wide_only: None,
        },
        Case {
            args: &["audit", "list"],
            replies: records,
            rows: 2,
            column: "method",
            header: "Method",
            first: "POST",
            wide_only: Some("Hash"),
        },
        Case {
            args: &["user", "list"],
            replies: users,
            rows: 2,
            column: "failed logins",
            header: "Failed logins",
            first: "0",
            wide_only: Some("Domain"),
        },
        Case {
            args: &["certificate", "list"],
            replies: certificates,
            rows: 2,
            column: "not_after",
            header: "Not after",
            first: "2027-01-01",
            wide_only: Some("Purpose"),
        },
        Case {
            args: &["heartbeat", "show"],
            replies: heartbeat,
            rows: 2,
            column: "name",
            header: "Name",
            first: "heartbeat_period",
            wide_only: Some("UUID"),
        },
        Case {
            args: &["strategy", "config", "list"],
            replies: strategy_options,
            rows: 2,
            column: "worker_apply",
            header: "Worker apply",
            first: "parallel",
            wide_only: Some("Subcloud ID"),
        },
        Case {
            args: &["destination", "list"],
            replies: destinations,
            rows: 2,
            column: "address",
            header: "Address",
            first: "https://hooks.example.com/roost",
            wide_only: Some("Last error"),
        },
        Case {
            args: &["destination", "dead-letters", "ops"],
            replies: dead_letters,
            rows: 2,
            column: "sequence",
            header: "Sequence",
            first: "4",
            wide_only: None,
        },
    ]
}

/// Runs a case's verb with extra flags against a fresh server.
fn run(case: &Case, flags: &[&str], terminal: bool) -> Outcome {
    let server = FakeServer::start(
        (case.replies)()
            .into_iter()
            .map(|body| Canned::json(200, body))
            .collect(),
    );
    let mut args = case.args.to_vec();
    args.extend_from_slice(flags);
    let outcome = run_verb_on(&args, &server.env(), "", terminal);
    if let Err(e) = &outcome.result
        && e.code() != EXIT_USAGE
    {
        panic!("{args:?}: {e:?}");
    }
    outcome
}

fn ok(case: &Case, flags: &[&str], terminal: bool) -> String {
    let outcome = run(case, flags, terminal);
    if let Err(e) = outcome.result {
        panic!("{:?} {flags:?}: {e:?}", case.args);
    }
    outcome.out
}

/// Box-drawing characters a piped table must not have.
const BOX: &[char] = &['│', '┆', '─', '╞', '═', '┌', '└', '╭', '╰', '┼'];

/// The content lines (rows and header) of an ASCII table.
fn content_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("| ")).collect()
}

#[test]
fn piped_tables_use_ascii_borders_and_terminal_tables_box_drawing() {
    for case in cases() {
        let name = case.args.join(" ");
        let piped = ok(&case, &[], false);
        assert!(!piped.contains(BOX), "{name}: {piped}");
        let lines: Vec<&str> = piped.lines().collect();
        assert!(
            lines[0].starts_with("+-") && lines[0].ends_with("-+"),
            "{name}: {piped}"
        );
        assert!(lines[2].starts_with("+-"), "{name}: header line: {piped}");
        assert!(lines.last().unwrap().starts_with("+-"), "{name}: {piped}");
        assert_eq!(
            content_lines(&piped).len(),
            case.rows + 1,
            "{name}: {piped}"
        );
        assert!(lines[1].contains(case.header), "{name}: {piped}");
        let terminal = ok(&case, &[], true);
        assert!(terminal.contains('│'), "{name}: {terminal}");
        assert!(terminal.contains(case.header), "{name}: {terminal}");
    }
}

#[test]
fn the_wide_format_adds_columns_and_untruncated_text() {
    for case in cases() {
        let name = case.args.join(" ");
        let table = ok(&case, &[], false);
        let wide = ok(&case, &["-o", "wide"], false);
        assert_eq!(content_lines(&wide).len(), case.rows + 1, "{name}: {wide}");
        if let Some(header) = case.wide_only {
            assert!(
                !table.lines().nth(1).unwrap().contains(header),
                "{name}: {table}"
            );
            assert!(
                wide.lines().nth(1).unwrap().contains(header),
                "{name}: {wide}"
            );
        }
        let raw = serde_json::to_string(&(case.replies)()).unwrap();
        if raw.contains(LONG_REASON) && !table.contains(LONG_REASON) {
            assert!(wide.contains(LONG_REASON), "{name}: {wide}");
        }
    }
}

#[test]
fn yaml_is_the_same_data_as_json() {
    for case in cases() {
        let name = case.args.join(" ");
        let json: Value = serde_json::from_str(&ok(&case, &["-o", "json"], false))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let yaml_text = ok(&case, &["-o", "yaml"], false);
        let yaml: Value =
            serde_norway::from_str(&yaml_text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(yaml, json, "{name}: {yaml_text}");
        assert!(
            !yaml_text.trim_start().starts_with('{'),
            "{name}: {yaml_text}"
        );
    }
}

#[test]
fn the_value_format_prints_one_line_per_row_without_header_or_borders() {
    for case in cases() {
        let name = case.args.join(" ");
        let out = ok(&case, &["-o", "value"], false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), case.rows, "{name}: {out}");
        assert!(!out.contains('|') && !out.contains("+-"), "{name}: {out}");
        assert!(!out.contains(BOX), "{name}: {out}");
        assert!(lines[0].contains(case.first), "{name}: {out}");
        let picked = ok(&case, &["-o", "value", "-c", case.column], false);
        assert_eq!(picked.lines().next(), Some(case.first), "{name}: {picked}");
    }
}

#[test]
fn no_headers_drops_the_header_line() {
    for case in cases() {
        let name = case.args.join(" ");
        let out = ok(&case, &["--no-headers"], false);
        assert_eq!(content_lines(&out).len(), case.rows, "{name}: {out}");
        assert!(!out.contains(case.header), "{name}: {out}");
        let terminal = ok(&case, &["--no-headers"], true);
        assert!(!terminal.contains(case.header), "{name}: {terminal}");
    }
}

#[test]
fn column_picks_columns_in_the_given_order() {
    for case in cases() {
        let name = case.args.join(" ");
        let out = ok(&case, &["-c", case.column], false);
        let lines = content_lines(&out);
        assert_eq!(lines.len(), case.rows + 1, "{name}: {out}");
        for line in &lines {
            assert_eq!(line.matches('|').count(), 2, "{name}: {out}");
        }
        assert_eq!(
            lines[0].trim_matches(['|', ' ']),
            case.header,
            "{name}: {out}"
        );
        assert_eq!(
            lines[1].trim_matches(['|', ' ']),
            case.first,
            "{name}: {out}"
        );
        // Two columns, the picked one last.
        let first_header = content_lines(&ok(&case, &[], false))[0]
            .trim_matches(['|', ' '])
            .split('|')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let two = ok(
            &case,
            &["--column", case.column, "-c", &first_header],
            false,
        );
        let header = content_lines(&two)[0];
        assert!(
            header.find(case.header).unwrap() <= header.rfind(first_header.as_str()).unwrap(),
            "{name}: {two}"
        );
    }
}

#[test]
fn column_with_json_and_yaml_keeps_only_those_keys() {
    for case in cases() {
        let name = case.args.join(" ");
        for format in ["json", "yaml"] {
            let text = ok(&case, &["-o", format, "-c", case.column], false);
            let value: Value = serde_norway::from_str(&text).unwrap();
            let items = value.as_array().unwrap_or_else(|| panic!("{name}: {text}"));
            assert_eq!(items.len(), case.rows, "{name}: {text}");
            for item in items {
                assert_eq!(item.as_object().unwrap().len(), 1, "{name}: {text}");
            }
        }
    }
}

#[test]
fn an_unknown_column_is_a_usage_error_naming_the_valid_ones() {
    for case in cases() {
        let name = case.args.join(" ");
        for format in ["table", "value", "json"] {
            let outcome = run(&case, &["-o", format, "-c", "no-such-column"], false);
            let err = outcome.result.expect_err(&name);
            assert_eq!(err.code(), EXIT_USAGE, "{name}");
            let message = err.message();
            assert!(message.contains("\"no-such-column\""), "{name}: {message}");
            assert!(
                message.contains(&format!("\"{}\"", case.header)),
                "{name}: {message}"
            );
            assert!(outcome.out.is_empty(), "{name}: {}", outcome.out);
        }
    }
}

#[test]
fn nowrap_keeps_long_rows_on_one_line_on_a_terminal() {
    let case = &cases()[0];
    let out = ok(case, &["-o", "wide", "--nowrap"], true);
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("host=")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(out.contains(LONG_REASON), "{out}");
    assert!(out.contains(UUID_1) && out.contains(UUID_2), "{out}");
}

#[test]
fn show_verbs_print_fields_values_yaml_and_picked_fields() {
    let alarm = || {
        vec![
            json!({"uuid": UUID_1, "alarm_id": "100.101", "severity": "major",
                     "reason_text": LONG_REASON, "extra": "x"}),
        ]
    };
    let case = Case {
        args: &["alarm", "show", UUID_1],
        replies: alarm,
        rows: 0,
        column: "",
        header: "",
        first: "",
        wide_only: None,
    };
    let table = ok(&case, &[], false);
    assert!(content_lines(&table)[0].contains("Field"), "{table}");
    assert!(
        table.contains(LONG_REASON) && !table.contains(BOX),
        "{table}"
    );
    let picked = ok(&case, &["-c", "severity", "-c", "UUID"], false);
    let lines = content_lines(&picked);
    assert_eq!(lines.len(), 3, "{picked}");
    assert!(
        lines[1].contains("severity") && lines[2].contains(UUID_1),
        "{picked}"
    );
    let values = ok(
        &case,
        &["-o", "value", "-c", "severity", "-c", "uuid"],
        false,
    );
    assert_eq!(values, format!("major\n{UUID_1}\n"));
    let json: Value = serde_json::from_str(&ok(&case, &["-o", "json"], false)).unwrap();
    let yaml: Value = serde_norway::from_str(&ok(&case, &["-o", "yaml"], false)).unwrap();
    assert_eq!(json, yaml);
    let some: Value =
        serde_json::from_str(&ok(&case, &["-o", "json", "-c", "alarm_id"], false)).unwrap();
    assert_eq!(some, json!({"alarm_id": "100.101"}));
    let headless = ok(&case, &["--no-headers"], false);
    assert!(!headless.contains("Field"), "{headless}");
    let err = run(&case, &["-c", "nope"], false).result.unwrap_err();
    assert_eq!(err.code(), EXIT_USAGE);
    assert!(err.message().contains("\"alarm_id\""), "{err:?}");
}

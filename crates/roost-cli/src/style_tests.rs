//! The message style, checked over the verbs: every verb's error on a
//! 404 reply, the confirmations of the verbs that confirm, and the
//! sentences of empty lists (see [`crate::style`]).

use serde_json::json;

use crate::style::{confirmation_fault, error_fault};
use crate::testutil::{Canned, FakeServer, run_verb};

/// Every verb that asks the server, as typed.
const VERBS: &[&[&str]] = &[
    &["alarm", "list"],
    &["alarm", "show", "100.104"],
    &["alarm", "clear", "a-1"],
    &["alarm", "summary"],
    &["alarm", "suppress", "100.101"],
    &["alarm", "unsuppress", "100.101"],
    &["event", "list"],
    &["event", "show", "e-1"],
    &["host", "list"],
    &["host", "show", "worker-9"],
    &["host", "add", "worker-9", "--personality", "worker"],
    &["host", "delete", "worker-9"],
    &["host", "lock", "worker-9"],
    &["host", "unlock", "worker-9"],
    &["host", "lock", "worker-9", "--wait"],
    &["host", "unlock", "worker-9", "--wait"],
    &["host", "swact", "worker-9"],
    &["host", "reboot", "worker-9"],
    &["host", "reset", "worker-9"],
    &["host", "power-on", "worker-9"],
    &["host", "power-off", "worker-9"],
    &["host", "join-token", "worker-9"],
    &["host", "heartbeat-key", "worker-9"],
    &["host", "revoke", "worker-9"],
    &["host", "attestation", "worker-9"],
    &["host", "cpus", "worker-9"],
    &["host", "memory", "worker-9"],
    &["host", "disks", "worker-9"],
    &["host", "ports", "worker-9"],
    &["host", "label", "list", "worker-9"],
    &["host", "bmc", "worker-9", "--type", "none"],
    &["app", "list"],
    &["app", "show", "hello"],
    &["app", "apply", "hello"],
    &["app", "apply", "hello", "--wait"],
    &["app", "remove", "hello"],
    &["app", "abort", "hello"],
    &["app", "delete", "hello"],
    &["app", "status", "hello"],
    &["app", "logs", "hello"],
    &["heartbeat", "show"],
    &["subcloud", "list"],
    &["subcloud", "show", "edge-9"],
    &["subcloud", "add", "edge-9"],
    &["subcloud", "manage", "edge-9"],
    &["subcloud", "unmanage", "edge-9", "--wait"],
    &["subcloud", "update", "edge-9", "--location", "x"],
    &["subcloud", "delete", "edge-9"],
    &["subcloud", "alarms", "edge-9"],
    &["subcloud", "audit", "edge-9"],
    &["subcloud", "app-status", "edge-9"],
    &["subcloud-group", "list"],
    &["subcloud-group", "show", "g"],
    &["subcloud-group", "delete", "g"],
    &["subcloud-group", "subclouds", "g"],
    &["subcloud-group", "apps", "g"],
    &["dc", "alarms"],
    &["audit", "list"],
    &["user", "list"],
    &["user", "show", "u"],
    &["user", "delete", "u"],
    &["user", "unlock", "u"],
    &["user", "disable", "u"],
    &["certificate", "list"],
    &["deploy", "show"],
    &["deploy", "strategy", "show"],
    &["deploy", "strategy", "apply"],
    &["deploy", "strategy", "abort"],
    &["deploy", "strategy", "delete"],
    &["strategy", "show"],
    &["strategy", "apply"],
    &["strategy", "abort"],
    &["strategy", "delete"],
    &["strategy", "config", "list"],
    &["strategy", "config", "delete", "edge-9"],
    &["destination", "list"],
    &["destination", "show", "d"],
    &["destination", "delete", "d"],
    &["destination", "test", "d"],
    &["destination", "dead-letters", "d"],
];

/// What the server says for an unknown object, in StarlingX's envelope.
fn not_found_reply() -> Canned {
    Canned::json(
        404,
        json!({"error": {"message": "Resource not found.", "code": 404, "title": "Not Found"}}),
    )
}

#[test]
fn every_verbs_error_on_a_404_follows_the_style() {
    let mut faults = Vec::new();
    for verb in VERBS {
        let server = FakeServer::start(vec![not_found_reply()]);
        let outcome = run_verb(verb, &server.env(), "");
        server.finish();
        let Err(err) = outcome.result else {
            faults.push(format!("roost {}: succeeded on a 404", verb.join(" ")));
            continue;
        };
        if let Some(fault) = error_fault(err.message()) {
            faults.push(format!(
                "roost {}: {fault}: {:?}",
                verb.join(" "),
                err.message()
            ));
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

#[test]
fn not_found_errors_name_what_was_looked_up_and_how() {
    for (verb, expected) in [
        (
            &["alarm", "show", "100.104"][..],
            "no alarm with UUID 100.104: alarms are named by UUID here; `roost alarm list --alarm-id 100.104` finds it by alarm ID",
        ),
        (
            &["host", "show", "worker-9"][..],
            "no host with name, ID or UUID worker-9 (`roost host list` lists the hosts)",
        ),
        (
            &["app", "apply", "hello"][..],
            "no application with name hello (`roost app list` lists the applications)",
        ),
        (
            &["subcloud", "manage", "edge-9"][..],
            "no subcloud with name or ID edge-9 (`roost subcloud list` lists the subclouds)",
        ),
        (
            &["event", "show", "e-1"][..],
            "no event with UUID e-1 (`roost event list` shows the UUIDs)",
        ),
    ] {
        let server = FakeServer::start(vec![not_found_reply()]);
        let outcome = run_verb(verb, &server.env(), "");
        server.finish();
        assert_eq!(outcome.result.unwrap_err().message(), expected);
    }
}

/// A verb, the server's replies, and the confirmation it must print.
struct Confirms {
    verb: &'static [&'static str],
    replies: fn() -> Vec<Canned>,
    line: &'static str,
}

#[test]
fn confirmations_and_empty_lists_follow_the_style() {
    let cases = [
        Confirms {
            verb: &["alarm", "clear", "a-1"],
            replies: || vec![Canned::empty(204)],
            line: "Cleared alarm a-1",
        },
        Confirms {
            verb: &["alarm", "clear", "--entity", "host=worker-1"],
            replies: || vec![Canned::json(200, json!({"cleared": ["a-1"]}))],
            line: "Cleared 1 alarm",
        },
        Confirms {
            verb: &["alarm", "clear", "--entity", "host=worker-1"],
            replies: || vec![Canned::json(200, json!({"cleared": ["a-1", "a-2"]}))],
            line: "Cleared 2 alarms",
        },
        Confirms {
            verb: &["alarm", "suppress", "100.104"],
            replies: || {
                vec![
                    Canned::json(
                        200,
                        json!({"event_suppression": [{"uuid": "s-1", "alarm_id": "100.104",
                            "description": "FS", "suppression_status": "unsuppressed", "links": []}]}),
                    ),
                    Canned::json(200, json!({"uuid": "s-1"})),
                ]
            },
            line: "Suppressed alarm ID 100.104",
        },
        Confirms {
            verb: &["alarm", "list"],
            replies: || {
                vec![
                    Canned::json(200, json!({"alarms": []})),
                    Canned::json(
                        200,
                        json!({"alarms": [{"uuid": "a-1", "alarm_id": "100.104",
                            "suppression_status": "suppressed", "severity": "major"}]}),
                    ),
                ]
            },
            line: "No active alarms (1 suppressed; --include-suppressed shows them)",
        },
        Confirms {
            verb: &["event", "list"],
            replies: || vec![Canned::json(200, json!({"event_log": []}))],
            line: "No events",
        },
        Confirms {
            verb: &["host", "list"],
            replies: || vec![Canned::json(200, json!({"ihosts": []}))],
            line: "No hosts",
        },
        Confirms {
            verb: &["app", "list"],
            replies: || vec![Canned::json(200, json!({"apps": []}))],
            line: "No applications",
        },
        Confirms {
            verb: &["subcloud", "list"],
            replies: || vec![Canned::json(200, json!({"subclouds": []}))],
            line: "No subclouds",
        },
        Confirms {
            verb: &["host", "delete", "worker-1"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted host worker-1",
        },
        Confirms {
            verb: &["app", "delete", "hello"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted application hello",
        },
        Confirms {
            verb: &["subcloud", "delete", "edge-1"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted subcloud edge-1",
        },
        Confirms {
            verb: &["subcloud-group", "delete", "g"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted subcloud group g",
        },
        Confirms {
            verb: &["user", "delete", "u"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted user u",
        },
        Confirms {
            verb: &["destination", "delete", "d"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted destination d",
        },
        Confirms {
            verb: &["deploy", "strategy", "apply"],
            replies: || vec![Canned::json(200, json!({}))],
            line: "Started applying the strategy",
        },
        Confirms {
            verb: &["deploy", "strategy", "abort"],
            replies: || vec![Canned::json(200, json!({}))],
            line: "Aborted the strategy",
        },
        Confirms {
            verb: &["deploy", "strategy", "delete"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted the strategy",
        },
        Confirms {
            verb: &["strategy", "abort"],
            replies: || vec![Canned::json(200, json!({}))],
            line: "Started aborting the strategy",
        },
        Confirms {
            verb: &["strategy", "delete"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted the strategy",
        },
        Confirms {
            verb: &["strategy", "config", "delete", "edge-1"],
            replies: || vec![Canned::empty(204)],
            line: "Deleted the strategy options of edge-1",
        },
    ];
    let mut faults = Vec::new();
    for case in cases {
        let server = FakeServer::start((case.replies)());
        let outcome = run_verb(case.verb, &server.env(), "");
        server.finish();
        let shown = format!("roost {}", case.verb.join(" "));
        if let Err(e) = &outcome.result {
            faults.push(format!("{shown}: failed: {}", e.message()));
            continue;
        }
        let last = outcome.out.lines().last().unwrap_or_default();
        if last != case.line {
            faults.push(format!(
                "{shown}: printed {:?}, not {:?}",
                outcome.out, case.line
            ));
        }
        for line in outcome.out.lines() {
            if let Some(fault) = confirmation_fault(line) {
                faults.push(format!("{shown}: {fault}: {line:?}"));
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

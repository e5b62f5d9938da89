//! Failed commits end to end: a real server whose store fails every third
//! commit (`ROOST_FAULT_FAIL_COMMITS`, built in by the `fault-injection`
//! feature the tests turn on). Alarm writes, host adds, patches, deletes,
//! enrollments and agent reports either succeed and stay, or fail with 503
//! and leave nothing behind; after a restart without faults the API shows
//! exactly what it showed before (memory agreed with the store).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use roost_api::sysinv::{AgentReport, EnrollRequest};
use roost_test_support::{Api, Reply, Server, ServerOptions, http};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// Succeeded (2xx) or failed by an injected fault (503); anything else is a
/// defect.
fn acknowledged(what: &str, r: &Reply) -> bool {
    match r.status {
        200..=299 => true,
        503 => {
            let msg = r.body["error_message"].as_str().unwrap_or_default();
            assert!(
                !msg.is_empty(),
                "{what}: a 503 carries a message: {:?}",
                r.body
            );
            false
        }
        s => panic!("{what}: unexpected {s}: {:?}", r.body),
    }
}

/// What the API shows of the things this test writes.
fn snapshot(api: &Api) -> (BTreeSet<String>, BTreeMap<String, Value>) {
    let alarms = api
        .alarms("")
        .iter()
        .filter_map(|a| a["entity_instance_id"].as_str().map(str::to_string))
        .filter(|e| e.starts_with("host=fault-"))
        .collect();
    let hosts = api.get("/v1/ihosts");
    assert_eq!(hosts.status, 200, "{:?}", hosts.body);
    let hosts = hosts.body["ihosts"]
        .as_array()
        .expect("ihosts")
        .iter()
        .map(|h| {
            let kept = json!({
                "location": h["location"],
                "mgmt_ip": h["mgmt_ip"],
                "mgmt_mac": h["mgmt_mac"],
                "administrative": h["administrative"],
                "personality": h["personality"],
            });
            (h["hostname"].as_str().unwrap_or_default().to_string(), kept)
        })
        .collect();
    (alarms, hosts)
}

fn enroll(url: &str, token: &str, port: u16) -> Reply {
    let r = http()
        .post(format!("{url}/v1/agent/enroll"))
        .json(&EnrollRequest {
            join_token: token.to_string(),
            inventory: Default::default(),
            heartbeat_port: port,
            mgmt_ip: Some("127.0.0.1".into()),
        })
        .send()
        .expect("request");
    let status = r.status().as_u16();
    Reply {
        status,
        body: r.json().unwrap_or(Value::Null),
        content_type: None,
    }
}

fn report(url: &str, agent_token: &str, port: u16) -> u16 {
    http()
        .post(format!("{url}/v1/agent/report"))
        .header("X-Agent-Token", agent_token)
        .json(&AgentReport {
            heartbeat_port: Some(port),
            ..AgentReport::default()
        })
        .send()
        .expect("request")
        .status()
        .as_u16()
}

#[test]
fn failed_commits_leave_nothing_behind_and_acknowledged_writes_survive_a_restart() {
    // A first start makes the data directory and a token that outlives it.
    let mut first = Server::start(bin());
    let token = first.token();
    first.terminate();
    let faulty = ServerOptions {
        env: vec![("ROOST_FAULT_FAIL_COMMITS".into(), "every:3".into())],
        ..ServerOptions::default()
    };
    let mut s = Server::start_in(bin(), &first.data_dir, faulty, None).expect("starts");
    assert!(
        s.log().contains("commit fault injection is on"),
        "the faults are armed: {}",
        s.log()
    );
    let api = Api {
        url: s.url.clone(),
        token,
    };
    let (mut failures, mut successes) = (0, 0);
    let mut count = |ok: bool| if ok { successes += 1 } else { failures += 1 };

    // Alarm writes.
    let mut raised = BTreeSet::new();
    for i in 0..24 {
        let entity = format!("host=fault-{i}");
        let r = api.post(
            "/v1/alarms",
            &json!({"alarm_state": "set", "alarm_id": "100.104", "entity_instance_id": entity,
                    "severity": "major", "reason_text": "filesystem full"}),
        );
        let ok = acknowledged("alarm set", &r);
        count(ok);
        let listed = api
            .alarms("")
            .iter()
            .any(|a| a["entity_instance_id"] == entity);
        assert_eq!(
            listed, ok,
            "alarm {entity}: listed exactly when acknowledged"
        );
        if ok {
            raised.insert(entity);
        }
    }

    // Host adds, patches, enrollments, reports, deletes.
    let mut hosts: BTreeMap<String, Value> = snapshot(&api).1;
    for i in 0..12 {
        let name = format!("w-{i}");
        let r = api.post(
            "/v1/ihosts",
            &json!({"hostname": name, "personality": "worker"}),
        );
        let added = acknowledged("host add", &r);
        count(added);
        assert_eq!(api.get(&format!("/v1/ihosts/{name}")).status == 200, added);
        if !added {
            continue;
        }
        let join_token = r.body["join_token"]
            .as_str()
            .expect("join_token")
            .to_string();
        hosts = snapshot(&api).1;

        let before = hosts[&name].clone();
        let r = api.patch(
            &format!("/v1/ihosts/{name}"),
            &json!([{"op": "replace", "path": "/location", "value": format!("rack {i}")}]),
        );
        let patched = acknowledged("host patch", &r);
        count(patched);
        let now = snapshot(&api).1;
        if patched {
            assert_eq!(now[&name]["location"], json!({"locn": format!("rack {i}")}));
        } else {
            assert_eq!(now[&name], before, "a failed patch changes nothing");
        }

        // The join token survives a failed enrollment; retry until it takes.
        let port = 40_000 + i as u16;
        let mut agent_token = None;
        for _ in 0..4 {
            let r = enroll(&s.url, &join_token, port);
            let ok = acknowledged("enroll", &r);
            count(ok);
            let host = api.get(&format!("/v1/ihosts/{name}")).body;
            assert_eq!(
                host["mgmt_ip"] == "127.0.0.1",
                ok,
                "{name} after enroll: {host}"
            );
            if ok {
                agent_token = r.body["agent_token"].as_str().map(str::to_string);
                break;
            }
        }
        let agent_token = agent_token.expect("an enrollment took within four tries");
        let again = enroll(&s.url, &join_token, port);
        assert_eq!(
            again.status, 401,
            "a used join token is refused: {:?}",
            again.body
        );
        for _ in 0..3 {
            let status = report(&s.url, &agent_token, port + 1000);
            assert!(matches!(status, 200 | 503), "report: {status}");
            count(status == 200);
        }

        if i % 2 == 0 {
            let r = api.delete(&format!("/v1/ihosts/{name}"));
            let deleted = acknowledged("host delete", &r);
            count(deleted);
            assert_eq!(
                api.get(&format!("/v1/ihosts/{name}")).status == 404,
                deleted
            );
        }
        hosts = snapshot(&api).1;
    }
    assert!(
        failures >= 10,
        "faults happened: {failures} failed, {successes} succeeded"
    );
    assert!(successes >= 20, "work got done: {successes} succeeded");

    // What the API showed is what the store holds.
    let before = snapshot(&api);
    assert_eq!(
        before.0, raised,
        "every acknowledged alarm and nothing else"
    );
    assert_eq!(before.1, hosts);
    s.terminate();
    // The database itself holds the same hosts and alarms.
    let store = roost_store::Store::open(roost_store::StoreConfig {
        path: first.data_dir.join("roost.db"),
        durability: Default::default(),
        event_log_cap: 100_000,
    })
    .expect("the store opens");
    let stored_hosts: BTreeSet<String> = store
        .hosts()
        .expect("hosts")
        .into_iter()
        .map(|h| h.hostname)
        .collect();
    assert_eq!(stored_hosts, before.1.keys().cloned().collect());
    let stored_alarms: BTreeSet<String> = store
        .load_fm()
        .expect("alarms")
        .0
        .into_iter()
        .map(|a| a.entity_instance_id)
        .filter(|e| e.starts_with("host=fault-"))
        .collect();
    assert_eq!(stored_alarms, raised);
    drop(store);
    let clean =
        Server::start_in(bin(), &first.data_dir, ServerOptions::default(), None).expect("restarts");
    let api = Api {
        url: clean.url.clone(),
        token: api.token,
    };
    assert_eq!(snapshot(&api), before);
}

//! Failed commits end to end: a real server whose store fails every third
//! commit (`ROOST_FAULT_FAIL_COMMITS`, built in by the `fault-injection`
//! feature the tests turn on). Alarm writes, host adds, patches, deletes,
//! enrollments and agent reports either succeed and stay, or fail with 503
//! and leave nothing behind; after a restart without faults the API shows
//! exactly what it showed before (memory agreed with the store). The same
//! holds for a system controller whose commits fail while a real subcloud
//! syncs with it: its availability, alarms and configuration converge, and
//! no alarm the subcloud acknowledged is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use roost_api::sysinv::{AgentReport, EnrollRequest};
use roost_test_support::{Api, Reply, Server, ServerOptions, http, wait_for};
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
            csr_pem: None,
            tpm: None,
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
            // An alarm of the host, which its deletion clears (the clear is
            // a commit of its own, which may fail too).
            let entity = format!("host={name}");
            wait_for(30, || {
                let r = api.post(
                    "/v1/alarms",
                    &json!({"alarm_state": "set", "alarm_id": "200.001", "entity_instance_id": entity,
                            "severity": "warning", "reason_text": "to be cleared with its host"}),
                );
                acknowledged("alarm of a host", &r).then_some(())
            })
            .expect("the alarm is raised within a few tries");
            let r = api.delete(&format!("/v1/ihosts/{name}"));
            let deleted = acknowledged("host delete", &r);
            count(deleted);
            assert_eq!(
                api.get(&format!("/v1/ihosts/{name}")).status == 404,
                deleted,
                "answered {} for the deletion",
                r.status
            );
            if deleted {
                // Its alarms go with it, even when the first clear failed.
                wait_for(30, || {
                    (!api
                        .alarms("")
                        .iter()
                        .any(|a| a["entity_instance_id"] == entity.as_str()))
                    .then_some(())
                })
                .unwrap_or_else(|| panic!("the alarms of {name} stayed\n{}", s.log()));
            }
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
        key: roost_store::KeySource::beside(&first.data_dir.join("roost.db")),
        location: roost_store::Location::Sqlite(first.data_dir.join("roost.db")),
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

/// A system controller's options: its DC listener on a fixed port (a
/// restart comes back where its subclouds look), syncs every second, and
/// `faults` in `ROOST_FAULT_FAIL_COMMITS` if given.
fn system_controller_options(dir: &Path, dc_port: u16, faults: Option<&str>) -> ServerOptions {
    let cfg = dir.join("sc.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dc]\nlisten = \"127.0.0.1:{dc_port}\"\nsync_interval_secs = 1\noffline_after_secs = 4\nout_of_sync_alarm_after_secs = 5\n"
        ),
    )
    .expect("config");
    ServerOptions {
        args: vec![
            "--role".into(),
            "systemcontroller".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        env: faults
            .map(|f| vec![("ROOST_FAULT_FAIL_COMMITS".to_string(), f.to_string())])
            .unwrap_or_default(),
        ..ServerOptions::default()
    }
}

/// Succeeded (2xx) or failed by an injected fault (503), for dcmanager's
/// API (whose errors are not the error envelope); anything else is a defect.
fn dc_acknowledged(what: &str, r: &Reply) -> bool {
    match r.status {
        200..=299 => true,
        503 => false,
        s => panic!("{what}: unexpected {s}: {:?}", r.body),
    }
}

/// Retries a request that an injected fault may fail until it succeeds;
/// returns the reply and how many attempts failed.
fn until_acknowledged(what: &str, mut f: impl FnMut() -> Reply) -> (Reply, u32) {
    for failed in 0..10 {
        let r = f();
        if dc_acknowledged(what, &r) {
            return (r, failed);
        }
    }
    panic!("{what}: ten injected failures in a row");
}

/// What the system controller's API shows of a subcloud: its states, the
/// alarms it reports, its row of the alarm summary, and whether 280.001 or
/// 280.002 is raised for it.
fn dc_view(api: &Api, name: &str) -> Value {
    let s = api.get(&format!("/v1.0/subclouds/{name}"));
    assert_eq!(s.status, 200, "{:?}", s.body);
    let alarms: BTreeSet<String> =
        api.get(&format!("/v1.0/subclouds/{name}/alarms")).body["alarms"]
            .as_array()
            .expect("alarms")
            .iter()
            .map(|a| {
                format!(
                    "{} {} {}",
                    a["alarm_id"].as_str().unwrap_or_default(),
                    a["entity_instance_id"].as_str().unwrap_or_default(),
                    a["severity"].as_str().unwrap_or_default()
                )
            })
            .collect();
    let summary = api.get("/v1.0/alarms").body["alarm_summary"]
        .as_array()
        .expect("alarm_summary")
        .iter()
        .find(|r| r["region_name"] == name)
        .cloned()
        .unwrap_or(Value::Null);
    let raised: BTreeSet<String> = api
        .alarms("")
        .iter()
        .filter(|a| a["entity_instance_id"] == format!("subcloud={name}"))
        .filter_map(|a| a["alarm_id"].as_str().map(str::to_string))
        .collect();
    json!({
        "management": s.body["management-state"],
        "availability": s.body["availability-status"],
        "deploy": s.body["deploy-status"],
        "sync": s.body["sync_status"],
        "alarms": alarms,
        "summary": {
            "critical": summary["critical_alarms"],
            "major": summary["major_alarms"],
            "minor": summary["minor_alarms"],
            "warnings": summary["warnings"],
        },
        "raised": raised,
    })
}

fn suppression(api: &Api, alarm_id: &str) -> (String, bool) {
    let r = api.get("/v1/event_suppression");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let row = r.body["event_suppression"]
        .as_array()
        .expect("event_suppression")
        .iter()
        .find(|r| r["alarm_id"] == alarm_id)
        .cloned()
        .expect("a suppression row");
    (
        row["uuid"].as_str().unwrap_or_default().to_string(),
        row["suppression_status"] == "suppressed",
    )
}

#[test]
fn failed_commits_of_a_system_controller_during_syncs_leave_memory_store_and_api_agreeing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dc_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let sc_data = dir.path().join("sc");
    // A first start makes the data directory and a token that outlives it.
    let mut first = Server::start_in(
        bin(),
        &sc_data,
        system_controller_options(dir.path(), dc_port, None),
        None,
    )
    .expect("starts");
    let token = first.token();
    first.terminate();
    let mut sc = Server::start_in(
        bin(),
        &sc_data,
        system_controller_options(dir.path(), dc_port, Some("every:3")),
        None,
    )
    .expect("starts with faults");
    assert!(
        sc.log().contains("commit fault injection is on"),
        "the faults are armed: {}",
        sc.log()
    );
    let api = Api {
        url: sc.url.clone(),
        token: token.clone(),
    };
    let mut failures = 0;

    // The subcloud is added (a failed add leaves no subcloud behind).
    let (r, failed) = until_acknowledged("subcloud add", || {
        let r = api.post("/v1.0/subclouds/", &json!({"name": "edge-1"}));
        if r.status == 503 {
            assert_eq!(api.get("/v1.0/subclouds/edge-1").status, 404);
        }
        r
    });
    failures += failed;
    let enroll_token = r.body["enroll_token"]
        .as_str()
        .expect("enroll_token")
        .to_string();
    // A real subcloud enrolls (a failed enrollment commit is answered 503,
    // which it retries) and syncs.
    let sub_dir = dir.path().join("edge-1");
    std::fs::create_dir_all(&sub_dir).expect("mkdir");
    let sub_cfg = sub_dir.join("sub.toml");
    std::fs::write(&sub_cfg, "[dc]\nsync_interval_secs = 1\n").expect("config");
    let mut sub = Server::start_in(
        bin(),
        &sub_dir.join("data"),
        ServerOptions {
            args: vec![
                "--role".into(),
                "subcloud".into(),
                "--system-controller".into(),
                format!("https://127.0.0.1:{dc_port}"),
                "--enroll-token".into(),
                enroll_token,
                "--config".into(),
                sub_cfg.display().to_string(),
            ],
            ..ServerOptions::default()
        },
        None,
    )
    .expect("the subcloud starts");
    let (_, failed) = until_acknowledged("manage", || {
        api.patch(
            "/v1.0/subclouds/edge-1",
            &json!({"management-state": "managed"}),
        )
    });
    failures += failed;
    // Managed, it takes the system controller's users: log in once they
    // are in place.
    wait_for(60, || {
        (dc_view(&api, "edge-1")["sync"] == "in-sync").then_some(())
    })
    .unwrap_or_else(|| panic!("never in sync: {}", dc_view(&api, "edge-1")));
    let sub_api = sub.api();

    // While it syncs: alarms raised on the subcloud, and suppressions
    // changed on the system controller (each a new configuration to push).
    let mut raised = BTreeSet::new();
    for i in 0..8 {
        let entity = format!("host=controller-0.filesystem=/fs{i}");
        let severity = if i % 2 == 0 { "major" } else { "critical" };
        sub_api.set_alarm("100.104", &entity, severity);
        raised.insert(format!("100.104 {entity} {severity}"));
        let (uuid, on) = suppression(&api, "100.101");
        let r = api.patch(
            &format!("/v1/event_suppression/{uuid}"),
            &json!([{"op": "replace", "path": "/suppression_status",
                     "value": if on {"unsuppressed"} else {"suppressed"}}]),
        );
        if acknowledged("suppression", &r) {
            assert_eq!(suppression(&api, "100.101").1, !on);
        } else {
            failures += 1;
            assert_eq!(
                suppression(&api, "100.101").1,
                on,
                "a failed change changes nothing"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // The link drops and comes back: offline (280.001), then online again.
    sub.kill9();
    wait_for(30, || {
        (dc_view(&api, "edge-1")["availability"] == "offline").then_some(())
    })
    .expect("offline once the subcloud is silent");
    sub.restart();
    let sub_api = sub.api();

    // Settled: the API shows the subcloud online and in sync, every alarm it
    // acknowledged, no 280.001 or 280.002, and the subcloud runs the
    // suppressions the system controller acknowledged.
    let want_suppressed = suppression(&api, "100.101").1;
    let view = wait_for(60, || {
        let v = dc_view(&api, "edge-1");
        let settled = v["availability"] == "online"
            && v["sync"] == "in-sync"
            && v["alarms"] == json!(raised)
            && v["raised"] == json!([])
            && suppression(&sub_api, "100.101").1 == want_suppressed;
        settled.then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "never settled: {} (suppressed on the subcloud: {}, want {want_suppressed})\n{}",
            dc_view(&api, "edge-1"),
            suppression(&sub_api, "100.101").1,
            sc.log()
        )
    });
    assert_eq!(view["management"], "managed");
    assert_eq!(
        view["summary"],
        json!({"critical": 4, "major": 4, "minor": 0, "warnings": 0})
    );
    // Failed commits are refused requests (503) or logged and retried.
    let log = sc.log();
    let retried = log.matches("will retry").count()
        + log
            .matches("cannot update the desired configuration")
            .count();
    assert!(
        failures as usize + retried >= 3,
        "faults happened: {failures} refused requests, {retried} retried commits"
    );

    // The store holds what the API shows.
    sc.terminate();
    let store = roost_store::Store::open(roost_store::StoreConfig {
        key: roost_store::KeySource::beside(&sc_data.join("roost.db")),
        location: roost_store::Location::Sqlite(sc_data.join("roost.db")),
        durability: Default::default(),
        event_log_cap: 100_000,
    })
    .expect("the store opens");
    let row = store
        .subclouds()
        .expect("subclouds")
        .into_iter()
        .find(|s| s.name == "edge-1")
        .expect("edge-1 is stored");
    assert_eq!(json!(row.management_state), view["management"]);
    assert_eq!(json!(row.deploy_status), view["deploy"]);
    let stored_alarms: Vec<String> = store
        .load_fm()
        .expect("alarms")
        .0
        .into_iter()
        .filter(|a| a.entity_instance_id == "subcloud=edge-1")
        .map(|a| a.alarm_id)
        .collect();
    assert!(stored_alarms.is_empty(), "{stored_alarms:?}");
    drop(store);

    // Restarted without faults on the same data, the system controller
    // shows the same once the subcloud has synced with it again.
    let clean = Server::start_in(
        bin(),
        &sc_data,
        system_controller_options(dir.path(), dc_port, None),
        None,
    )
    .expect("restarts");
    let api = Api {
        url: clean.url.clone(),
        token,
    };
    let after = wait_for(60, || {
        let v = dc_view(&api, "edge-1");
        (v == view).then_some(v)
    });
    assert_eq!(
        after.as_ref(),
        Some(&view),
        "after a restart: {}",
        dc_view(&api, "edge-1")
    );
}

//! Hosts, agents and maintenance end to end: a real server, real agents on
//! distinct loopback addresses, real UDP heartbeats, a real Redfish BMC
//! simulator.

use std::path::Path;

use roost_test_support::{Agent, Api, Server, ServerOptions, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// Starts an agent for a newly added host on `ip`.
fn agent(
    s: &Server,
    api: &Api,
    dir: &tempfile::TempDir,
    name: &str,
    ip: &str,
    extra: &[&str],
) -> Agent {
    let token = api.add_host(name, "worker");
    Agent::start(bin(), &s.url, &token, &dir.path().join(name), ip, extra).expect("agent starts")
}

/// An unlocked, available worker.
fn available(api: &Api, name: &str) {
    api.wait_avail(name, "online", 30);
    let r = api.host_action(name, "unlock");
    assert_eq!(r.status, 200, "{:?}", r.body);
    api.wait_avail(name, "available", 30);
}

/// The event log of one host's alarms, oldest first: (id, state, severity).
fn alarm_history(api: &Api, host: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = api
        .events(&format!(
            "?alarms=True&q.field=entity_instance_id&q.value=host%3D{host}"
        ))
        .iter()
        .filter(|e| e["entity_instance_id"] == format!("host={host}"))
        .map(|e| {
            (
                e["event_log_id"].as_str().unwrap().to_string(),
                e["state"].as_str().unwrap().to_string(),
                e["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.reverse();
    v
}

/// The host's active alarm ids, but the resource alarms (100.101-100.104:
/// CPU, memory, filesystem), which the agent raises from the test machine's
/// own load and disk use, not from anything a test does.
/// Waits until `host` has no active alarm (beyond the 100.10x ones): a
/// host shows its new state as soon as it is decided, and its alarms are
/// cleared by the commit that follows.
fn no_alarms_soon(api: &Api, host: &str) {
    if wait_for(30, || active_ids(api, host).is_empty().then_some(())).is_none() {
        panic!("{host} keeps alarms: {:?}", active_ids(api, host));
    }
}

fn active_ids(api: &Api, host: &str) -> Vec<String> {
    let mut v: Vec<String> = api
        .alarms(&format!(
            "?q.field=entity_instance_id&q.value=host%3D{host}"
        ))
        .iter()
        .filter(|a| {
            let e = a["entity_instance_id"].as_str().unwrap();
            e == format!("host={host}") || e.starts_with(&format!("host={host}."))
        })
        .filter(|a| !a["alarm_id"].as_str().unwrap().starts_with("100.10"))
        .map(|a| a["alarm_id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn an_all_in_one_simplex_controller_is_available_right_after_start() {
    let s = Server::start(bin());
    let api = s.api();
    let hosts = api.get("/v1/ihosts").body["ihosts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(hosts.len(), 1);
    let c = &hosts[0];
    assert_eq!(c["hostname"], "controller-0");
    assert_eq!(c["personality"], "controller");
    assert_eq!(c["subfunctions"], "controller,worker");
    assert_eq!(
        (
            c["administrative"].as_str(),
            c["operational"].as_str(),
            c["availability"].as_str()
        ),
        (Some("unlocked"), Some("enabled"), Some("available"))
    );
    assert!(c["id"].is_i64());
    let sys = &api.get("/v1/isystems").body["isystems"][0];
    assert_eq!(sys["system_mode"], "simplex");
    assert!(sys["capabilities"].is_object());
    assert!(sys.get("distributed_cloud_role").is_some());
    // Real inventory of this machine.
    let cpus = api.get("/v1/ihosts/controller-0/icpus").body["icpus"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(cpus, std::thread::available_parallelism().unwrap().get());
    let mem = &api.get("/v1/ihosts/controller-0/imemorys").body["imemorys"][0];
    assert!(mem["memtotal_mib"].as_u64().unwrap() > 0);
    let node = &api.get("/v1/ihosts/controller-0/inodes").body["inodes"][0];
    assert_eq!(mem["inode_uuid"], node["uuid"]);
    assert!(
        !api.get("/v1/ihosts/controller-0/idisks").body["idisks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(api.get("/v1/ihosts/controller-0/ethernet_ports").body["ethernet_ports"].is_array());
    // By id and uuid too.
    let id = c["id"].as_i64().unwrap();
    assert_eq!(api.host(&id.to_string())["hostname"], "controller-0");
    assert_eq!(
        api.host(c["uuid"].as_str().unwrap())["hostname"],
        "controller-0"
    );
    assert_eq!(api.get("/v1/ihosts/nobody").status, 404);
    assert!(active_ids(&api, "controller-0").is_empty());
}

#[test]
fn agents_enroll_with_single_use_join_tokens_and_report_inventory() {
    let s = Server::start(bin());
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    let token = api.add_host("worker-1", "worker");
    let h = api.host("worker-1");
    assert_eq!(
        (h["administrative"].as_str(), h["availability"].as_str()),
        (Some("locked"), Some("offline"))
    );
    assert_eq!(active_ids(&api, "worker-1"), ["200.001"]);
    let a = Agent::start(
        bin(),
        &s.url,
        &token,
        &dir.path().join("a"),
        "127.0.0.2",
        &[],
    )
    .unwrap();
    assert_eq!(a.hostname, "worker-1");
    api.wait_avail("worker-1", "online", 30);
    let h = api.host("worker-1");
    assert_eq!(h["mgmt_ip"], "127.0.0.2");
    let cpus = api.get("/v1/ihosts/worker-1/icpus").body["icpus"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(cpus, std::thread::available_parallelism().unwrap().get());
    assert!(
        !api.get("/v1/ihosts/worker-1/idisks").body["idisks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The identity is private.
    use std::os::unix::fs::PermissionsExt;
    let id = dir.path().join("a/identity.json");
    assert_eq!(
        std::fs::metadata(&id).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The same token again, or a forged one: refused, nothing enrolled.
    for t in [token.as_str(), "forged-token"] {
        let e = Agent::start(
            bin(),
            &s.url,
            t,
            &dir.path().join(format!("b{}", t.len())),
            "127.0.0.3",
            &[],
        );
        assert!(e.is_err(), "token {t} must be refused");
    }
    let r = api.post(
        "/v1/agent/enroll",
        &json!({"join_token": "nope", "inventory": {}, "heartbeat_port": 1}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        api.get("/v1/ihosts").body["ihosts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_stopped_or_killed_agent_degrades_then_fails_and_recovers() {
    let s = Server::start(bin());
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for (i, ip) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().enumerate() {
        let name = format!("worker-{i}");
        // The third writes its log as JSON lines.
        let format = if i == 2 { "json" } else { "text" };
        agents.push(agent(
            &s,
            &api,
            &dir,
            &name,
            ip,
            &["--reboot-command", "true", "--log-format", format],
        ));
        available(&api, &name);
    }
    let json_log = agents[2].log();
    assert!(!json_log.is_empty());
    for line in json_log.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a JSON log line ({e}): {line}"));
        assert!(v["fields"].is_object() && v["level"].is_string(), "{line}");
    }
    // SIGSTOP: degraded, then failed, with 200.005 major, 200.005 critical, 200.004.
    agents[0].signal("STOP");
    api.wait_avail("worker-0", "failed", 30);
    // A failure is logged as a warning.
    let failed_line = wait_for(10, || {
        s.log()
            .lines()
            .find(|l| l.contains("host=worker-0") && l.contains("availability=failed"))
            .map(str::to_string)
    })
    .expect("the failure is logged");
    assert!(failed_line.contains("WARN"), "{failed_line}");
    // The unanswered pulses are counted as missed.
    assert!(
        api.metric("roost_heartbeat_pulses_missed_total")
            .unwrap_or(0)
            > 0,
        "no missed pulse counted"
    );
    let h = alarm_history(&api, "worker-0");
    let sets: Vec<(String, String)> = h
        .iter()
        .filter(|e| e.1 == "set" && e.0 != "200.001")
        .map(|e| (e.0.clone(), e.2.clone()))
        .collect();
    assert_eq!(
        sets,
        [
            ("200.005".to_string(), "major".to_string()),
            ("200.005".to_string(), "critical".to_string()),
            ("200.004".to_string(), "critical".to_string()),
        ],
        "{h:?}"
    );
    for other in ["worker-1", "worker-2"] {
        assert_eq!(
            api.host(other)["availability"],
            "available",
            "{other} unaffected"
        );
    }
    agents[0].signal("CONT");
    api.wait_avail("worker-0", "available", 30);
    no_alarms_soon(&api, "worker-0");

    // kill -9: failed; restarted with the same identity: back to available.
    agents[1].kill9();
    api.wait_avail("worker-1", "failed", 30);
    agents[1].restart().unwrap();
    api.wait_avail("worker-1", "available", 30);
    no_alarms_soon(&api, "worker-1");
}

#[test]
fn two_hosts_lost_together_are_held_not_failed() {
    let s = Server::start(bin());
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for (i, ip) in ["127.0.0.5", "127.0.0.6", "127.0.0.7"].iter().enumerate() {
        let name = format!("worker-{i}");
        agents.push(agent(
            &s,
            &api,
            &dir,
            &name,
            ip,
            &["--reboot-command", "true"],
        ));
        available(&api, &name);
    }
    agents[0].signal("STOP");
    agents[1].signal("STOP");
    let held = wait_for(30, || {
        let a = api.host("worker-0");
        let b = api.host("worker-1");
        (a["mnfa_hold"] == true && b["mnfa_hold"] == true).then_some(())
    });
    assert!(held.is_some(), "both held");
    // Well past the failure threshold (10 missed pulses): twenty more
    // periods decided for the three hosts, and still not failed, no 200.004.
    api.wait_heartbeat_periods(3, 20);
    for h in ["worker-0", "worker-1"] {
        let v = api.host(h);
        assert_ne!(v["availability"], "failed", "{h}: {v}");
        assert!(!active_ids(&api, h).contains(&"200.004".to_string()));
    }
    let crit = api.alarms("?q.field=alarm_id&q.value=200.005&expand=True");
    assert!(crit.iter().any(|a| {
        a["reason_text"]
            .as_str()
            .unwrap()
            .contains("graceful recovery")
    }));
    agents[0].signal("CONT");
    agents[1].signal("CONT");
    api.wait_avail("worker-0", "available", 30);
    api.wait_avail("worker-1", "available", 30);
    for h in ["worker-0", "worker-1"] {
        no_alarms_soon(&api, h);
    }
}

#[test]
fn a_failed_host_is_power_cycled_through_its_bmc_and_comes_back() {
    let s = Server::start(bin());
    let api = s.api();
    api.set_parameter("bmc_reset_delay", "1");
    api.set_parameter("bmc_retry_interval", "5");
    let dir = tempfile::tempdir().unwrap();
    let token = api.add_host("worker-9", "worker");
    // The BMC owns the agent process: its "host".
    let agent_dir = dir.path().join("agent");
    let mut bmc = Bmc(std::process::Command::new(bin())
        .args([
            "sim",
            "bmc",
            "--listen",
            "127.0.0.1:0",
            "--username",
            "root",
            "--",
        ])
        .arg(bin())
        .args([
            "agent",
            "--server",
            &s.url,
            "--join-token",
            &token,
            "--heartbeat-listen",
            "127.0.0.8:0",
            "--mgmt-ip",
            "127.0.0.8",
            "--simulated-reboot",
            "--data-dir",
        ])
        .arg(&agent_dir)
        .env("ROOST_BMC_PASSWORD", "calvin")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap());
    let out = bmc.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(u) = l.strip_prefix("roost sim bmc ready on ") {
                let _ = tx.send(u.to_string());
            }
        }
    });
    let bmc_url = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("bmc ready");
    let bmc_addr = bmc_url.trim_start_matches("http://").to_string();
    let r = api.patch(
        "/v1/ihosts/worker-9",
        &json!([
            {"op": "replace", "path": "/bm_type", "value": "redfish"},
            {"op": "replace", "path": "/bm_ip", "value": bmc_addr},
            {"op": "replace", "path": "/bm_username", "value": "root"},
            {"op": "replace", "path": "/bm_password", "value": "calvin"},
        ]),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body.get("bm_password").is_none(),
        "the password is never returned"
    );
    available(&api, "worker-9");
    assert!(
        !s.log().contains("calvin"),
        "the BMC password is never logged"
    );

    // Kill the agent behind the BMC's back: the "machine" stays on but its OS is dead.
    let marker = agent_dir.display().to_string();
    let pid = wait_for(10, || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .find(|p| *p != bmc.0.id())
    })
    .expect("agent pid");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    // The host fails (the record is in the event log even if a poll misses the state)...
    let failed = wait_for(30, || {
        alarm_history(&api, "worker-9")
            .iter()
            .any(|e| e.0 == "200.004" && e.1 == "set")
            .then_some(())
    });
    assert!(failed.is_some(), "{:?}", alarm_history(&api, "worker-9"));
    // ...the agent cannot reboot itself; after the delay the BMC resets the host.
    api.wait_avail("worker-9", "available", 60);
    no_alarms_soon(&api, "worker-9");
    assert!(
        s.log().contains("resetting the host through its BMC"),
        "{}",
        s.log()
    );
}

/// A `roost sim bmc` process, stopped with SIGTERM (so it powers its host
/// off) when the test ends, passed or not.
struct Bmc(std::process::Child);

impl Drop for Bmc {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = wait_for(10, || self.0.try_wait().ok().flatten());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_unreachable_bmc_raises_200_010() {
    let s = Server::start(bin());
    let api = s.api();
    api.set_parameter("bmc_reset_delay", "0");
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(
        &s,
        &api,
        &dir,
        "worker-3",
        "127.0.0.9",
        &["--reboot-command", "true"],
    );
    let r = api.patch(
        "/v1/ihosts/worker-3",
        &json!([
            {"op": "replace", "path": "/bm_type", "value": "redfish"},
            {"op": "replace", "path": "/bm_ip", "value": "127.0.0.1:1"},
            {"op": "replace", "path": "/bm_username", "value": "root"},
            {"op": "replace", "path": "/bm_password", "value": "pw"},
        ]),
    );
    assert_eq!(r.status, 200);
    available(&api, "worker-3");
    a.kill9();
    api.wait_avail("worker-3", "failed", 30);
    let bmc_alarm = wait_for(30, || {
        active_ids(&api, "worker-3")
            .contains(&"200.010".to_string())
            .then_some(())
    });
    assert!(bmc_alarm.is_some(), "{:?}", active_ids(&api, "worker-3"));
}

#[test]
fn host_actions_follow_starlingx_rules() {
    let s = Server::start(bin());
    let api = s.api();
    // Simplex: swact refused, controller lock allowed.
    let r = api.host_action("controller-0", "swact");
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("simplex")
    );
    let r = api.host_action("controller-0", "lock");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["administrative"], "locked");
    assert!(active_ids(&api, "controller-0").contains(&"200.001".to_string()));
    assert_eq!(
        api.host_action("controller-0", "lock").status,
        400,
        "already locked"
    );
    let r = api.host_action("controller-0", "unlock");
    assert_eq!(r.status, 200);
    api.wait_avail("controller-0", "available", 10);
    assert!(!active_ids(&api, "controller-0").contains(&"200.001".to_string()));

    // A host whose agent never came: unlock refused.
    api.add_host("worker-5", "worker");
    let r = api.host_action("worker-5", "unlock");
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not online")
    );
    assert_eq!(api.host_action("worker-5", "dance").status, 400);
    assert_eq!(api.host_action("worker-5", "reset").status, 400, "no BMC");
    // Bad BMC input is refused and changes nothing.
    let r = api.patch(
        "/v1/ihosts/worker-5",
        &json!([{"op": "replace", "path": "/bm_password", "value": "x"}]),
    );
    assert_eq!(r.status, 400);
    let r = api.patch(
        "/v1/ihosts/worker-5",
        &json!([{"op": "replace", "path": "/bm_type", "value": "telepathy"}]),
    );
    assert_eq!(r.status, 400);
    assert_eq!(api.host("worker-5")["bm_type"], "none");
    // Delete needs a locked host; worker-5 is locked.
    assert_eq!(api.delete("/v1/ihosts/worker-5").status, 204);
    assert_eq!(api.get("/v1/ihosts/worker-5").status, 404);
    // Its alarms go with it.
    no_alarms_soon(&api, "worker-5");
    assert_eq!(api.delete("/v1/ihosts/controller-0").status, 400);
    // Bad host adds.
    for body in [
        json!({"hostname": "bad name", "personality": "worker"}),
        json!({"hostname": "w", "personality": "wizard"}),
        json!({"hostname": "controller-0", "personality": "worker"}),
        json!({"personality": "worker"}),
    ] {
        let r = api.post("/v1/ihosts", &body);
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
    }
}

#[test]
fn duplex_rules_protect_the_active_controller() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("roost.toml");
    std::fs::write(&cfg, "system_mode = \"duplex\"\n").unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), cfg.display().to_string()],
            ..Default::default()
        },
    );
    let api = s.api();
    let r = api.host_action("controller-0", "lock");
    assert_eq!(r.status, 400);
    let r = api.host_action("controller-0", "swact");
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("peer")
    );
}

#[test]
fn heartbeat_settings_are_service_parameters_that_change_at_run_time() {
    let s = Server::start(bin());
    let api = s.api();
    let list = api.get("/v1/service_parameter").body["parameters"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in [
        "heartbeat_period",
        "heartbeat_failure_threshold",
        "heartbeat_degrade_threshold",
        "heartbeat_failure_action",
        "mnfa_threshold",
        "mnfa_timeout",
        "worker_boot_timeout",
        "controller_boot_timeout",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    for p in &list {
        assert_eq!(p["service"], "platform");
        assert_eq!(p["section"], "maintenance");
        assert!(p["value"].is_string());
    }
    api.set_parameter("heartbeat_period", "10");
    let only =
        api.get("/v1/service_parameter?q.field=name&q.op=eq&q.type=&q.value=heartbeat_period");
    let rows = only.body["parameters"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["value"], "10");
    let uuid = rows[0]["uuid"].as_str().unwrap();
    // StarlingX's client piles ops up: a rename then a value, in order.
    let r = api.patch(
        &format!("/v1/service_parameter/{uuid}"),
        &json!([
            {"op": "replace", "path": "/name", "value": "heartbeat_period"},
            {"op": "replace", "path": "/value", "value": "5"},
        ]),
    );
    assert_eq!(r.status, 400, "below the 10 ms floor");
    let r = api.patch(
        &format!("/v1/service_parameter/{uuid}"),
        &json!([{"op": "replace", "path": "/value", "value": "fast"}]),
    );
    assert_eq!(r.status, 400);
    let r = api.post(
        "/v1/service_parameter/apply",
        &json!({"service": "platform", "section": null}),
    );
    assert_eq!(r.status, 200);
    api.set_parameter("heartbeat_degrade_threshold", "20");
    let r = api.post(
        "/v1/service_parameter/apply",
        &json!({"service": "platform", "section": "maintenance"}),
    );
    assert_eq!(
        r.status, 400,
        "degrade must stay below failure: {:?}",
        r.body
    );
    api.set_parameter("heartbeat_failure_threshold", "30");
    let r = api.post(
        "/v1/service_parameter/apply",
        &json!({"service": "platform", "section": "maintenance"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Persistent.
    let mut s = s;
    s.restart();
    let api = s.api();
    let v: Vec<Value> = api.get("/v1/service_parameter").body["parameters"]
        .as_array()
        .unwrap()
        .clone();
    let get = |n: &str| v.iter().find(|p| p["name"] == n).unwrap()["value"].clone();
    assert_eq!(get("heartbeat_period"), "10");
    assert_eq!(get("heartbeat_failure_threshold"), "30");
}

#[test]
fn a_monitored_process_that_dies_raises_200_006_and_degrades_the_host() {
    let s = Server::start(bin());
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    // The monitored "process": a sleep with an argument nobody else uses.
    let marker = format!("{}", 900_000 + std::process::id() % 99_999);
    let mut proc_ = std::process::Command::new("sleep")
        .arg(&marker)
        .spawn()
        .unwrap();
    let pdir = dir.path().join("processes");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(
        pdir.join("napper.toml"),
        format!(
            "name = \"napper\"\nmatch = \"sleep {marker}\"\nseverity = \"major\"\nrestarts = 0\nrestart_interval_secs = 1\ndebounce_secs = 1\n"
        ),
    )
    .unwrap();
    let pdir_s = pdir.display().to_string();
    let _a = agent(
        &s,
        &api,
        &dir,
        "worker-4",
        "127.0.0.11",
        &["--reboot-command", "true", "--process-dir", &pdir_s],
    );
    available(&api, "worker-4");
    let _ = proc_.kill();
    let _ = proc_.wait();
    api.wait_avail("worker-4", "degraded", 30);
    // The alarm is committed just after the state changes in memory.
    let a = wait_for(30, || {
        let a = api.alarms("?q.field=alarm_id&q.value=200.006");
        (a.len() == 1).then_some(a)
    })
    .unwrap_or_else(|| {
        panic!(
            "one 200.006: {:?}",
            api.alarms("?q.field=alarm_id&q.value=200.006")
        )
    });
    assert_eq!(a[0]["entity_instance_id"], "host=worker-4.process=napper");
    assert_eq!(a[0]["severity"], "major");
    // It comes back and stays up: the alarm clears and the host is available.
    let mut again = std::process::Command::new("sleep")
        .arg(&marker)
        .spawn()
        .unwrap();
    api.wait_avail("worker-4", "available", 30);
    no_alarms_soon(&api, "worker-4");
    let _ = again.kill();
    let _ = again.wait();
}

/// sysinv's label API as `system host-label-assign|list|remove` use it:
/// assign returns the labels, each then read by uuid; list by host uuid;
/// remove by label uuid. Labels survive a restart.
#[test]
fn host_labels_work_as_the_system_client_uses_them() {
    let mut s = Server::start(bin());
    let api = s.api();
    let host = api.host("controller-0");
    let uuid = host["uuid"].as_str().unwrap().to_string();
    let r = api.post(
        &format!("/v1/labels/{uuid}"),
        &json!({"zone": "north", "roost.io/camera": "true"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let assigned = r.body["labels"].as_array().unwrap().clone();
    assert_eq!(assigned.len(), 2);
    for l in &assigned {
        let one = api.get(&format!("/v1/labels/{}", l["uuid"].as_str().unwrap()));
        assert_eq!(one.status, 200);
        assert_eq!(one.body["host_uuid"], uuid.as_str());
        assert_eq!(&one.body, l);
    }
    // A changed value needs overwrite; the label keeps its uuid.
    let r = api.post(&format!("/v1/labels/{uuid}"), &json!({"zone": "south"}));
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("already exists"),
        "{:?}",
        r.body
    );
    let r = api.post(
        &format!("/v1/labels/{uuid}?overwrite=True"),
        &json!({"zone": "south"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let zone_uuid = r.body["labels"][0]["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        assigned.iter().find(|l| l["label_key"] == "zone").unwrap()["uuid"],
        zone_uuid.as_str()
    );
    // Bad keys and values are refused and change nothing.
    for bad in [
        json!({"bad key": "x"}),
        json!({"k": "a b"}),
        json!({"k": {"x": 1}}),
    ] {
        let r = api.post(&format!("/v1/labels/{uuid}"), &bad);
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
    }
    assert_eq!(
        api.post("/v1/labels/nobody", &json!({"a": "b"})).status,
        404
    );
    // Listed by host; survives a restart.
    s.restart();
    let api = s.api();
    let list = api.get(&format!("/v1/ihosts/{uuid}/labels")).body["labels"]
        .as_array()
        .unwrap()
        .clone();
    let mut pairs: Vec<(String, String)> = list
        .iter()
        .map(|l| {
            (
                l["label_key"].as_str().unwrap().to_string(),
                l["label_value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("roost.io/camera".to_string(), "true".to_string()),
            ("zone".to_string(), "south".to_string())
        ]
    );
    // Remove by uuid: 204, then 404.
    assert_eq!(api.delete(&format!("/v1/labels/{zone_uuid}")).status, 204);
    assert_eq!(api.get(&format!("/v1/labels/{zone_uuid}")).status, 404);
    assert_eq!(api.delete(&format!("/v1/labels/{zone_uuid}")).status, 404);
    assert_eq!(
        api.get("/v1/ihosts/controller-0/labels").body["labels"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `system host-cpu-modify -f application-isolated -p0 1`: refused while
/// the host is unlocked, applied once it is locked, shown by
/// `host-cpu-list`, kept across a restart.
#[test]
fn cpu_functions_change_on_a_locked_host_and_persist() {
    let mut s = Server::start(bin());
    let api = s.api();
    let uuid = api.host("controller-0")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/ihosts/{uuid}/state/host_cpus_modify");
    let isolate = json!([{"function": "application-isolated", "sockets": [{"0": 1}]}]);
    let r = api.put(&path, &isolate);
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("must be locked"),
        "{:?}",
        r.body
    );
    let r = api.host_action("controller-0", "lock");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cores: std::collections::BTreeSet<(u64, u64)> =
        api.get(&format!("/v1/ihosts/{uuid}/icpus")).body["icpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["numa_node"].as_u64().unwrap(),
                    c["core"].as_u64().unwrap(),
                )
            })
            .collect();
    let r = api.put(&path, &isolate);
    if cores.len() < 2 {
        // A one-core host: that core is the platform's; nothing to isolate.
        assert_eq!(r.status, 400, "{:?}", r.body);
        return;
    }
    assert_eq!(r.status, 200, "{:?}", r.body);
    let functions = |body: &Value| -> Vec<(u64, String)> {
        let mut v: Vec<(u64, String)> = body["icpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["cpu"].as_u64().unwrap(),
                    c["allocated_function"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let after = functions(&r.body);
    assert!(after.iter().any(|(_, f)| f == "Platform"), "{after:?}");
    assert!(
        after.iter().any(|(_, f)| f == "Application-isolated"),
        "{after:?}"
    );
    // Bad requests: a clear 400 and nothing changes.
    for bad in [
        json!([{"function": "vswitch", "sockets": [{"0": 1}]}]),
        json!([{"function": "platform", "sockets": [{"7": 1}]}]),
        json!([{"function": "platform", "sockets": [{"0": 0}]}]),
        json!({"function": "platform"}),
    ] {
        let r = api.put(&path, &bad);
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
    }
    s.restart();
    let api = s.api();
    let listed = functions(&api.get(&format!("/v1/ihosts/{uuid}/icpus")).body);
    assert_eq!(listed, after);
}

/// The agent's stored identity.
fn agent_identity(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).unwrap()).unwrap()
}

#[test]
fn a_heartbeat_key_rotates_with_no_pulse_missed_and_survives_restarts() {
    let s = Server::start(bin());
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    // Reports every second, so the rotation ends quickly; heartbeat drops
    // logged, so that none can pass unseen.
    let mut a = agent(
        &s,
        &api,
        &dir,
        "worker-5",
        "127.0.0.5",
        &[
            "--report-interval-secs",
            "1",
            "--log-level",
            "info,roost_agent::heartbeat=debug",
        ],
    );
    available(&api, "worker-5");
    let agent_dir = dir.path().join("worker-5");
    let before = api.get("/v1/ihosts/worker-5/heartbeat_key");
    assert_eq!(before.status, 200, "{:?}", before.body);
    assert_eq!(before.body["rotating"], false);
    let old_fp = before.body["fingerprint"].as_str().unwrap().to_string();
    let old_key = agent_identity(&agent_dir)["heartbeat_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        roost_api::heartbeat::HostKey::from_hex(&old_key)
            .unwrap()
            .fingerprint(),
        old_fp
    );
    let answered_before = api
        .metric("roost_heartbeat_pulses_answered_total")
        .unwrap_or(0);

    // Through the CLI, as an operator would.
    let cli = roost_test_support::Cli::new(bin());
    let mut cmd = cli.cmd(&[
        "host",
        "heartbeat-key",
        "worker-5",
        "--rotate",
        "-o",
        "json",
    ]);
    cmd.env("ROOST_URL", &s.url).env("ROOST_TOKEN", s.token());
    let run = cmd.output().unwrap();
    assert!(run.status.success(), "{run:?}");
    let out = String::from_utf8(run.stdout).unwrap();
    let started: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(started["rotating"], true, "{started}");
    let new_fp = started["next_fingerprint"].as_str().unwrap().to_string();
    assert_ne!(new_fp, old_fp);
    // Never the key itself, only fingerprints.
    assert!(!out.contains(&old_key), "{out}");

    // The rotation ends: the server pulses under the new key, the agent
    // took it at the first such pulse and saved it.
    let done = wait_for(60, || {
        let r = api.get("/v1/ihosts/worker-5/heartbeat_key");
        (r.body["rotating"] == false).then_some(r.body)
    })
    .unwrap_or_else(|| panic!("the rotation never ended\n{}\n{}", s.log(), a.log()));
    assert_eq!(done["fingerprint"], new_fp.as_str(), "{done}");
    wait_for(30, || {
        let id = agent_identity(&agent_dir);
        (id.get("heartbeat_key_next").is_none()
            && roost_api::heartbeat::HostKey::from_hex(id["heartbeat_key"].as_str()?)
                .ok()?
                .fingerprint()
                == new_fp)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the agent never saved the new key\n{}", a.log()));
    // Twenty more answered pulses, all under the new key.
    let answered_at_switch = api
        .metric("roost_heartbeat_pulses_answered_total")
        .unwrap_or(0);
    assert!(answered_at_switch > answered_before);
    wait_for(60, || {
        (api.metric("roost_heartbeat_pulses_answered_total")
            .unwrap_or(0)
            >= answered_at_switch + 20)
            .then_some(())
    })
    .expect("pulses go on under the new key");
    // No pulse was missed: neither side dropped a packet, no heartbeat
    // alarm, the host stayed available.
    assert_eq!(
        api.metric("roost_heartbeat_dropped_total{reason=\"bad_mac\"}")
            .unwrap_or(0),
        0
    );
    assert!(!a.log().contains("heartbeat packet dropped"), "{}", a.log());
    let h = alarm_history(&api, "worker-5");
    assert!(
        !h.iter().any(|e| e.0 == "200.005" || e.0 == "200.004"),
        "{h:?}"
    );
    assert_eq!(api.host("worker-5")["availability"], "available");

    // The agent kept the new key: restarted, it heartbeats again.
    a.kill9();
    api.wait_avail("worker-5", "failed", 30);
    a.restart().unwrap();
    api.wait_avail("worker-5", "available", 30);

    // A host with no agent has no key to rotate (a 400, as sysinv answers
    // a refused host operation).
    let r = api.post("/v1/ihosts/controller-0/heartbeat_key", &json!({}));
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no heartbeat key")),
        "{:?}",
        r.body
    );
    let r = api.get("/v1/ihosts/worker-404/heartbeat_key");
    assert_eq!(r.status, 404, "{:?}", r.body);
}

#[test]
fn heartbeat_keys_older_than_the_configured_age_rotate_by_themselves() {
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("roost.toml");
    std::fs::write(&path, "heartbeat_key_max_age_secs = 2\n").unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), path.display().to_string()],
            ..Default::default()
        },
    );
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    let _a = agent(
        &s,
        &api,
        &dir,
        "worker-6",
        "127.0.0.6",
        &["--report-interval-secs", "1"],
    );
    available(&api, "worker-6");
    // Two rotations end without anyone asking: three fingerprints seen.
    let mut seen = Vec::new();
    wait_for(90, || {
        let r = api.get("/v1/ihosts/worker-6/heartbeat_key");
        let fp = r.body["fingerprint"].as_str()?.to_string();
        if seen.last() != Some(&fp) {
            seen.push(fp);
        }
        (seen.len() >= 3).then_some(())
    })
    .unwrap_or_else(|| panic!("fingerprints seen: {seen:?}\n{}", s.log()));
    assert_eq!(
        api.metric("roost_heartbeat_dropped_total{reason=\"bad_mac\"}")
            .unwrap_or(0),
        0
    );
    assert_eq!(api.host("worker-6")["availability"], "available");
    let h = alarm_history(&api, "worker-6");
    assert!(
        !h.iter().any(|e| e.0 == "200.005" || e.0 == "200.004"),
        "{h:?}"
    );
}

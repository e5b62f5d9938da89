//! Simulated agents end to end: `roost sim agents` as a real process, and
//! the `SimFleet` library in process, against a real server over real UDP
//! heartbeats.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use roost_sim::agents::SimFleet;
use roost_test_support::{Api, Server, wait_for};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// A `roost sim agents` process, killed when the test ends.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The hosts whose name starts with `prefix`.
fn hosts_with_prefix(api: &Api, prefix: &str) -> Vec<Value> {
    let r = api.get("/v1/ihosts");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["ihosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["hostname"].as_str().unwrap().starts_with(prefix))
        .cloned()
        .collect()
}

fn active_ids(api: &Api, host: &str) -> Vec<String> {
    let mut v: Vec<String> = api
        .alarms(&format!(
            "?q.field=entity_instance_id&q.value=host%3D{host}"
        ))
        .iter()
        .filter(|a| a["entity_instance_id"] == format!("host={host}"))
        .map(|a| a["alarm_id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// `POST /v1/agent/report` answered 200, from the server's metrics.
fn reports_accepted(api: &Api) -> u64 {
    let r = api.get("/metrics");
    let text = r.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .filter(|l| {
            l.starts_with("roost_http_requests_total{")
                && l.contains("route=\"/v1/agent/report\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn roost_sim_agents_brings_twenty_hosts_to_available_and_they_fail_when_it_dies() {
    let s = Server::start(bin());
    let api = s.api();
    // Twenty hosts lost together would be held by multi-node failure
    // avoidance (threshold 2); raise it so that each one fails.
    api.set_parameter("mnfa_threshold", "100");
    let mut child = Command::new(bin())
        .args([
            "sim",
            "agents",
            "--server",
            &s.url,
            "--count",
            "20",
            "--prefix",
            "sim-",
            "--ip",
            "127.0.0.9",
            "--unlock",
            "--report-interval-secs",
            "1",
        ])
        .env("ROOST_TOKEN", &api.token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut sim = Sim(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("a ready line");
    assert_eq!(ready, "roost sim agents ready: 20 hosts");
    let hosts = hosts_with_prefix(&api, "sim-");
    assert_eq!(hosts.len(), 20);
    for h in &hosts {
        assert_eq!(
            (
                h["administrative"].as_str(),
                h["operational"].as_str(),
                h["availability"].as_str(),
                h["mgmt_ip"].as_str(),
            ),
            (
                Some("unlocked"),
                Some("enabled"),
                Some("available"),
                Some("127.0.0.9")
            ),
            "{h}"
        );
        assert!(
            h["mgmt_mac"].as_str().unwrap().starts_with("02:52:53:"),
            "{h}"
        );
    }
    let mut names: Vec<&str> = hosts
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!((names[0], names[19]), ("sim-0001", "sim-0020"));
    let cpus = api.get("/v1/ihosts/sim-0007/icpus").body["icpus"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(cpus, 4);
    assert_eq!(
        api.get("/v1/ihosts/sim-0007/idisks").body["idisks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Reports arrive (every host every second here) and are accepted.
    let reports = wait_for(30, || {
        let n = reports_accepted(&api);
        (n >= 40).then_some(n)
    });
    assert!(reports.is_some(), "{} reports", reports_accepted(&api));
    assert!(active_ids(&api, "sim-0003").is_empty());

    // A simulated host follows a heartbeat key rotation as an agent does.
    let r = api.post("/v1/ihosts/sim-0005/heartbeat_key", &serde_json::json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let next = r.body["next_fingerprint"].clone();
    wait_for(30, || {
        let r = api.get("/v1/ihosts/sim-0005/heartbeat_key");
        (r.body["rotating"] == false && r.body["fingerprint"] == next).then_some(())
    })
    .expect("the simulated host takes the new key");
    let answered = api
        .metric("roost_heartbeat_pulses_answered_total")
        .unwrap_or(0);
    wait_for(30, || {
        (api.metric("roost_heartbeat_pulses_answered_total")
            .unwrap_or(0)
            > answered + 40)
            .then_some(())
    })
    .expect("pulses go on");
    assert_eq!(api.host("sim-0005")["availability"], "available");
    assert!(active_ids(&api, "sim-0005").is_empty());

    // The process dies: every host stops answering and fails.
    let _ = sim.0.kill();
    let _ = sim.0.wait();
    for i in 1..=20 {
        let name = format!("sim-{i:04}");
        api.wait_avail(&name, "failed", 30);
        // The alarm is committed by FM just after the state changes.
        wait_for(30, || {
            active_ids(&api, &name)
                .contains(&"200.004".to_string())
                .then_some(())
        })
        .unwrap_or_else(|| panic!("{name}: {:?}", active_ids(&api, &name)));
    }
}

#[test]
fn a_sim_fleet_stops_and_resumes_hosts_in_process() {
    let s = Server::start(bin());
    let api = s.api();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fleet = rt
        .block_on(SimFleet::start(
            &s.url,
            &api.token,
            5,
            "lib-",
            "127.0.0.10".parse().unwrap(),
        ))
        .expect("the fleet enrolls");
    assert_eq!(
        fleet.names(),
        ["lib-0001", "lib-0002", "lib-0003", "lib-0004", "lib-0005"]
    );
    rt.block_on(fleet.wait_availability(&["online"], Duration::from_secs(30)))
        .expect("online");
    rt.block_on(fleet.unlock_all(Duration::from_secs(30)))
        .expect("unlocked and available");
    let h = api.host("lib-0002");
    assert_eq!(
        h["id"].as_i64().map(|i| i as u32),
        fleet.host_id("lib-0002")
    );
    assert_eq!(
        h["mgmt_ip"].as_str(),
        Some("127.0.0.10"),
        "the fleet's address"
    );

    // One host stops answering: degraded, then failed; the others are fine.
    assert!(fleet.stop_host("lib-0002"));
    assert_eq!(fleet.is_answering("lib-0002"), Some(false));
    api.wait_avail("lib-0002", "failed", 30);
    for other in ["lib-0001", "lib-0003", "lib-0004", "lib-0005"] {
        assert_eq!(api.host(other)["availability"], "available", "{other}");
    }
    // It answers again (the reboot request is acknowledged): available.
    assert!(fleet.resume_host("lib-0002"));
    api.wait_avail("lib-0002", "available", 30);
    assert!(active_ids(&api, "lib-0002").is_empty());
    assert!(fleet.stats().reboot_requests >= 1, "{:?}", fleet.stats());

    // Three together: a multi-node event; they are held, not failed.
    for h in ["lib-0003", "lib-0004", "lib-0005"] {
        fleet.stop_host(h);
    }
    let held = wait_for(30, || {
        ["lib-0003", "lib-0004", "lib-0005"]
            .iter()
            .all(|h| api.host(h)["mnfa_hold"] == true)
            .then_some(())
    });
    assert!(held.is_some(), "all three held");
    // Well past the failure threshold (10 missed pulses): twenty more
    // periods decided for the five hosts, and still none failed.
    api.wait_heartbeat_periods(5, 20);
    for h in ["lib-0003", "lib-0004", "lib-0005"] {
        assert_ne!(api.host(h)["availability"], "failed", "{h}");
    }
    for h in ["lib-0003", "lib-0004", "lib-0005"] {
        fleet.resume_host(h);
    }
    for h in ["lib-0003", "lib-0004", "lib-0005"] {
        api.wait_avail(h, "available", 30);
    }
    let stats = fleet.stats();
    assert!(
        stats.pulses_answered > 0 && stats.pulses_ignored > 0,
        "{stats:?}"
    );
    assert_eq!(stats.pulses_dropped, 0, "{stats:?}");
    assert!(!fleet.stop_host("nobody"));
    rt.block_on(fleet.shutdown());
    // Gone all together: held by multi-node failure avoidance.
    let lost = wait_for(30, || {
        (api.host("lib-0001")["mnfa_hold"] == true).then_some(())
    });
    assert!(lost.is_some(), "{}", api.host("lib-0001"));
}

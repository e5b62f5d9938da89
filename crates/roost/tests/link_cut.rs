//! A host whose network link is cut: the agent runs in its own network
//! namespace behind a veth pair, and the test takes the link down.
//! Needs root and iproute2 (`./scripts/test` runs as root in CI).

use std::path::Path;

use roost_test_support::{Agent, Netns, Server, ServerOptions, ip};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

#[test]
fn a_cut_link_degrades_then_fails_the_host_and_it_recovers_when_restored() {
    let tag = std::process::id() % 10_000;
    let Some(ns) = Netns::require(tag, 1) else {
        return;
    };
    let server_ip = ns.addr(0, 1);
    let agent_ip = ns.addr(0, 2);
    let s = Server::start_with(
        bin(),
        ServerOptions {
            listen: Some(format!("{server_ip}:0")),
            ..Default::default()
        },
    );
    let api = s.api();
    let token = api.add_host("worker-1", "worker");
    let dir = tempfile::tempdir().unwrap();
    let _agent = Agent::start_in_netns(
        bin(),
        Some(&ns.name),
        &s.url,
        &token,
        &dir.path().join("a"),
        &agent_ip,
        &["--reboot-command", "true"],
    )
    .expect("agent in its namespace");
    api.wait_avail("worker-1", "online", 30);
    assert_eq!(api.host_action("worker-1", "unlock").status, 200);
    api.wait_avail("worker-1", "available", 30);

    // Cut the link.
    assert!(ip(&["link", "set", &ns.host_ifs[0], "down"]));
    api.wait_avail("worker-1", "failed", 30);
    let sets: Vec<String> = api
        .events("?alarms=True&q.field=state&q.value=set")
        .iter()
        .filter(|e| e["entity_instance_id"] == "host=worker-1")
        .map(|e| {
            format!(
                "{} {}",
                e["event_log_id"].as_str().unwrap(),
                e["severity"].as_str().unwrap()
            )
        })
        .collect();
    assert!(sets.contains(&"200.004 critical".to_string()), "{sets:?}");
    assert!(sets.contains(&"200.005 major".to_string()), "{sets:?}");

    // Restore it: the host recovers by itself and its alarms clear.
    assert!(ip(&["link", "set", &ns.host_ifs[0], "up"]));
    api.wait_avail("worker-1", "available", 60);
    let left: Vec<serde_json::Value> = api
        .alarms("")
        .into_iter()
        .filter(|a| a["entity_instance_id"] == "host=worker-1")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn losing_only_the_cluster_host_network_raises_200_009() {
    let tag = std::process::id() % 10_000 + 10_000;
    let Some(ns) = Netns::require(tag, 2) else {
        return;
    };
    let s = Server::start_with(
        bin(),
        ServerOptions {
            listen: Some(format!("{}:0", ns.addr(0, 1))),
            ..Default::default()
        },
    );
    let api = s.api();
    let token = api.add_host("worker-2", "worker");
    let dir = tempfile::tempdir().unwrap();
    let cluster_listen = format!("{}:0", ns.addr(1, 2));
    let cluster_ip = ns.addr(1, 2);
    let _agent = Agent::start_in_netns(
        bin(),
        Some(&ns.name),
        &s.url,
        &token,
        &dir.path().join("a"),
        &ns.addr(0, 2),
        &[
            "--reboot-command",
            "true",
            "--cluster-heartbeat-listen",
            &cluster_listen,
            "--cluster-ip",
            &cluster_ip,
        ],
    )
    .expect("agent in its namespace");
    api.wait_avail("worker-2", "online", 30);
    assert_eq!(api.host_action("worker-2", "unlock").status, 200);
    api.wait_avail("worker-2", "available", 30);

    assert!(ip(&["link", "set", &ns.host_ifs[1], "down"]));
    api.wait_avail("worker-2", "failed", 30);
    let ids: Vec<String> = api
        .events("?alarms=True&q.field=state&q.value=set")
        .iter()
        .filter(|e| e["entity_instance_id"] == "host=worker-2")
        .map(|e| e["event_log_id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"200.009".to_string()), "{ids:?}");
    assert!(
        !ids.contains(&"200.005".to_string()),
        "management is fine: {ids:?}"
    );

    assert!(ip(&["link", "set", &ns.host_ifs[1], "up"]));
    api.wait_avail("worker-2", "available", 60);
    let left: Vec<serde_json::Value> = api
        .alarms("")
        .into_iter()
        .filter(|a| a["entity_instance_id"] == "host=worker-2")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

//! A host whose network link is cut: the agent runs in its own network
//! namespace behind a veth pair, and the test takes the link down.
//! Needs root and iproute2 (`./scripts/test` runs as root in CI).

use std::path::Path;
use std::process::Command;

use roost_test_support::{Agent, Server, ServerOptions};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A namespace with veth links to the root namespace, one per network;
/// removed on drop.
struct Netns {
    name: String,
    /// Root-side interface of each link.
    host_ifs: Vec<String>,
    tag: u32,
}

impl Netns {
    fn create(tag: u32, links: u8) -> Option<Netns> {
        let name = format!("roost-t{tag}");
        let _ = ip(&["netns", "del", &name]);
        let mut ns = Netns {
            name,
            host_ifs: Vec::new(),
            tag,
        };
        if !ip(&["netns", "add", &ns.name]) {
            return None;
        }
        for l in 0..links {
            let host_if = format!("rv{tag}h{l}");
            let ns_if = format!("rv{tag}n{l}");
            let _ = ip(&["link", "del", &host_if]);
            let server_side = format!("{}/24", ns.addr(l, 1));
            let host_side = format!("{}/24", ns.addr(l, 2));
            let ok = ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ]) && ip(&["link", "set", &ns_if, "netns", &ns.name])
                && ip(&["addr", "add", &server_side, "dev", &host_if])
                && ip(&["link", "set", &host_if, "up"])
                && ip(&[
                    "netns", "exec", &ns.name, "ip", "addr", "add", &host_side, "dev", &ns_if,
                ])
                && ip(&["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"]);
            ns.host_ifs.push(host_if);
            if !ok {
                return None;
            }
        }
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]).then_some(ns)
    }

    /// Address `last` on link `link`: .1 is the server's side, .2 the host's.
    fn addr(&self, link: u8, last: u8) -> String {
        format!(
            "10.{}.{}.{last}",
            100 + u32::from(link) * 50 + self.tag / 250 % 50,
            self.tag % 250
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        for i in &self.host_ifs {
            let _ = ip(&["link", "del", i]);
        }
    }
}

#[test]
fn a_cut_link_degrades_then_fails_the_host_and_it_recovers_when_restored() {
    let tag = std::process::id() % 10_000;
    let Some(ns) = Netns::create(tag, 1) else {
        eprintln!("skipped: cannot create a network namespace (needs root and iproute2)");
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
    let Some(ns) = Netns::create(tag, 2) else {
        eprintln!("skipped: cannot create a network namespace (needs root and iproute2)");
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

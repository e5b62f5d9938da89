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

/// A namespace with one veth link to the root namespace; removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

impl Netns {
    fn create(tag: u32) -> Option<Netns> {
        let name = format!("roost-t{tag}");
        let host_if = format!("rv{tag}h");
        let ns_if = format!("rv{tag}n");
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &host_if]);
        let ok = ip(&["netns", "add", &name])
            && ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ])
            && ip(&["link", "set", &ns_if, "netns", &name])
            && ip(&[
                "addr",
                "add",
                &format!("10.{}.{}.1/24", 200 + tag / 250 % 50, tag % 250),
                "dev",
                &host_if,
            ])
            && ip(&["link", "set", &host_if, "up"])
            && ip(&[
                "netns",
                "exec",
                &name,
                "ip",
                "addr",
                "add",
                &format!("10.{}.{}.2/24", 200 + tag / 250 % 50, tag % 250),
                "dev",
                &ns_if,
            ])
            && ip(&["netns", "exec", &name, "ip", "link", "set", &ns_if, "up"])
            && ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        let ns = Netns { name, host_if };
        ok.then_some(ns)
    }

    fn addr(&self, tag: u32, last: u8) -> String {
        format!("10.{}.{}.{last}", 200 + tag / 250 % 50, tag % 250)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

#[test]
fn a_cut_link_degrades_then_fails_the_host_and_it_recovers_when_restored() {
    let tag = std::process::id() % 10_000;
    let Some(ns) = Netns::create(tag) else {
        eprintln!("skipped: cannot create a network namespace (needs root and iproute2)");
        return;
    };
    let server_ip = ns.addr(tag, 1);
    let agent_ip = ns.addr(tag, 2);
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
    assert!(ip(&["link", "set", &ns.host_if, "down"]));
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
    assert!(ip(&["link", "set", &ns.host_if, "up"]));
    api.wait_avail("worker-1", "available", 60);
    let left: Vec<serde_json::Value> = api
        .alarms("")
        .into_iter()
        .filter(|a| a["entity_instance_id"] == "host=worker-1")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

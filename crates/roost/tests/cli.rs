//! The `roost` client verbs against the real server.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use roost_test_support::{Cli, PASSWORD, Server};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn new_cli() -> Cli {
    Cli::new(bin())
}

/// What these tests ask of the client beyond running it.
trait CliExt {
    fn json(&self, args: &[&str]) -> Value;
    /// `roost login`, answering its three questions.
    fn login(&self, url: &str) -> Output;
}

impl CliExt for Cli {
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn login(&self, url: &str) -> Output {
        Cli::run_with_input(self.cmd(&["login"]), &format!("{url}\nadmin\n{PASSWORD}\n"))
    }
}

#[test]
fn login_stores_a_private_token_and_the_alarm_verbs_work() {
    let s = Server::start(bin());
    let cli = new_cli();

    let out = cli.login(&s.url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(PASSWORD), "the password is never printed");
    let cred = cli.config_dir().join("contexts.json");
    let mode = std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let api = s.api();
    let u = api.set_alarm("100.101", "host=controller-0", "critical");
    api.set_alarm("100.104", "host=controller-0.filesystem=/var", "major");
    api.set_alarm("200.001", "host=worker-1", "warning");

    let table = cli.ok(&["alarm", "list"]);
    assert!(
        table.contains("100.101") && table.contains("host=worker-1"),
        "{table}"
    );
    let list = cli.json(&["alarm", "list", "-o", "json"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let filtered = cli.json(&["alarm", "list", "--severity", "critical", "-o", "json"]);
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let shown = cli.json(&["alarm", "show", &u, "-o", "json"]);
    assert_eq!(shown["alarm_id"], "100.101");
    let summary = cli.json(&["alarm", "summary", "-o", "json"]);
    assert_eq!(summary["critical"], 1);
    assert_eq!(summary["status"], "critical");

    cli.ok(&["alarm", "suppress", "100.101"]);
    assert_eq!(
        cli.json(&["alarm", "list", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let with = cli.json(&["alarm", "list", "--include-suppressed", "-o", "json"]);
    assert_eq!(with.as_array().unwrap().len(), 3);
    assert!(
        cli.ok(&["alarm", "list", "--include-suppressed"])
            .contains("S(100.101)")
    );
    cli.ok(&["alarm", "unsuppress", "100.101"]);

    cli.ok(&["alarm", "clear", "--entity", "host=controller-0"]);
    let left = cli.json(&["alarm", "list", "-o", "json"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    let u2 = left[0]["uuid"].as_str().unwrap().to_string();
    cli.ok(&["alarm", "clear", &u2]);
    assert!(
        cli.json(&["alarm", "list", "-o", "json"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let events = cli.json(&["event", "list", "-o", "json"]);
    assert_eq!(events.as_array().unwrap().len(), 6);
    let clears = cli.json(&["event", "list", "--state", "clear", "-o", "json"]);
    assert_eq!(clears.as_array().unwrap().len(), 3);
    assert!(cli.ok(&["event", "list"]).contains("clear"));
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let s = Server::start(bin());
    let cli = new_cli();

    let out = cli.run(&["alarm", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not logged in"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);

    assert!(cli.login(&s.url).status.success());
    let out = cli.run(&["alarm", "show", "no-such-uuid"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("roost: ") && err.contains("no alarm with UUID no-such-uuid"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1);

    let out = cli.run(&["alarm", "suppress", "123.456"]);
    assert_ne!(out.status.code(), Some(0));

    // Environment overrides the stored credentials.
    let out = cli
        .cmd(&["alarm", "list"])
        .env("ROOST_TOKEN", "bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));

    let out = cli
        .cmd(&["alarm", "list"])
        .env("ROOST_URL", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));

    // An address as people type it: no scheme (plain HTTP on loopback, as
    // the server serves there by default).
    let bare = s.url.trim_start_matches("http://").to_string();
    let u = s
        .api()
        .set_alarm("100.104", "host=bare-url.filesystem=/", "major");
    let listed = cli
        .cmd(&["alarm", "list", "-o", "json"])
        .env("ROOST_URL", &bare)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "ROOST_URL={bare}: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains(u.as_str()));
}

#[test]
fn the_host_verbs_drive_inventory_and_heartbeat_settings() {
    let s = Server::start(bin());
    let cli = new_cli();
    assert!(cli.login(&s.url).status.success());
    let list = cli.json(&["host", "list", "-o", "json"]);
    assert_eq!(list[0]["hostname"], "controller-0");
    assert!(cli.ok(&["host", "list"]).contains("available"));
    assert!(
        cli.ok(&["host", "show", "controller-0"])
            .contains("controller,worker")
    );
    let added = cli.json(&[
        "host",
        "add",
        "worker-1",
        "--personality",
        "worker",
        "-o",
        "json",
    ]);
    assert!(added["join_token"].as_str().unwrap().len() >= 32);
    let text = cli.ok(&["host", "add", "worker-2", "--personality", "worker"]);
    assert!(text.contains("roost agent --server"), "{text}");
    assert!(
        !cli.json(&["host", "cpus", "controller-0", "-o", "json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(cli.ok(&["host", "memory", "controller-0"]).contains("0"));
    assert!(cli.ok(&["host", "disks", "controller-0"]).contains("/dev/"));
    // Rules come back as one clear line.
    let out = cli.run(&["host", "swact", "controller-0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("simplex"));
    let out = cli.run(&["host", "unlock", "worker-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not online"));
    assert!(cli.ok(&["host", "lock", "controller-0"]).contains("locked"));
    assert!(
        cli.ok(&["host", "unlock", "controller-0"])
            .contains("unlocked")
    );
    cli.ok(&["host", "delete", "worker-2"]);
    assert_eq!(
        cli.json(&["host", "list", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // BMC settings: the password from stdin, never echoed.
    let mut child = cli
        .cmd(&[
            "host",
            "bmc",
            "worker-1",
            "--type",
            "redfish",
            "--ip",
            "127.0.0.1:9",
            "--username",
            "root",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
    assert_eq!(
        cli.json(&["host", "show", "worker-1", "-o", "json"])["bm_type"],
        "redfish"
    );
    // Heartbeat settings.
    cli.ok(&["heartbeat", "set", "heartbeat_period=50"]);
    let hb = cli.json(&["heartbeat", "show", "-o", "json"]);
    let period = hb
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "heartbeat_period")
        .unwrap()["value"]
        .clone();
    assert_eq!(period, "50");
    let out = cli.run(&["heartbeat", "set", "heartbeat_period=5"]);
    assert_ne!(out.status.code(), Some(0));
    let out = cli.run(&["heartbeat", "set", "colour=red"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_subcloud_verbs_drive_a_system_controller() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sc.toml");
    std::fs::write(&cfg, "[dc]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let s = Server::start_with(
        bin(),
        roost_test_support::ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                cfg.display().to_string(),
            ],
            ..Default::default()
        },
    );
    let cli = new_cli();
    assert!(cli.login(&s.url).status.success());
    let text = cli.ok(&["subcloud", "add", "edge-1", "--description", "pond"]);
    let dc = s.dc_url.clone().unwrap();
    assert!(
        text.contains(&format!("--system-controller {dc}")),
        "{text}\n(dc {dc})"
    );
    assert!(text.contains("--enroll-token rsc1."), "{text}");
    let list = cli.json(&["subcloud", "list", "-o", "json"]);
    assert_eq!(list[0]["name"], "edge-1");
    assert!(cli.ok(&["subcloud", "list"]).contains("unmanaged"));
    assert!(
        cli.ok(&["subcloud", "show", "edge-1"])
            .contains("platform_sync_status")
    );
    cli.ok(&[
        "subcloud-group",
        "add",
        "--name",
        "west",
        "--max-parallel-subclouds",
        "5",
    ]);
    cli.ok(&["subcloud", "update", "edge-1", "--group", "west"]);
    let members = cli.json(&["subcloud-group", "subclouds", "west", "-o", "json"]);
    assert_eq!(members.as_array().unwrap().len(), 1);
    let alarms = cli.ok(&["dc", "alarms"]);
    assert!(
        alarms.contains("edge-1") && alarms.contains('-'),
        "{alarms}"
    );
    let out = cli.run(&["subcloud", "delete", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "roost: no subcloud with name or ID nobody (`roost subcloud list` lists the subclouds)"
    );
    cli.ok(&["subcloud", "delete", "edge-1"]);
    assert!(
        cli.json(&["subcloud", "list", "-o", "json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_refused_heartbeat_set_changes_nothing_and_later_sets_still_apply() {
    let s = Server::start(bin());
    let cli = new_cli();
    assert!(cli.login(&s.url).status.success());
    let value = |name: &str| -> String {
        cli.json(&["heartbeat", "show", "-o", "json"])
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Degrade at or above failure (10) is inconsistent: refused, nothing kept.
    let out = cli.run(&["heartbeat", "set", "heartbeat_degrade_threshold=12"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be below"), "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(value("heartbeat_degrade_threshold"), "6");
    // The refused value does not block an unrelated change...
    cli.ok(&["heartbeat", "set", "heartbeat_period=200"]);
    assert_eq!(value("heartbeat_period"), "200");
    // ...nor come back when the set later becomes consistent.
    cli.ok(&["heartbeat", "set", "heartbeat_failure_threshold=30"]);
    assert_eq!(value("heartbeat_degrade_threshold"), "6");
    assert_eq!(value("heartbeat_failure_threshold"), "30");
    // A consistent set whose first step alone is not still applies whole.
    cli.ok(&[
        "heartbeat",
        "set",
        "heartbeat_degrade_threshold=40",
        "heartbeat_failure_threshold=50",
    ]);
    assert_eq!(value("heartbeat_degrade_threshold"), "40");
    assert_eq!(value("heartbeat_failure_threshold"), "50");
}

#[test]
fn the_label_and_cpu_verbs_change_what_placement_reads() {
    let s = Server::start(bin());
    let cli = new_cli();
    assert!(cli.login(&s.url).status.success());
    let out = cli.ok(&[
        "host",
        "label",
        "assign",
        "controller-0",
        "zone=north",
        "gpu=yes",
    ]);
    assert!(out.contains("controller-0: zone=north"), "{out}");
    let labels = cli.json(&["host", "label", "list", "controller-0", "-o", "json"]);
    assert_eq!(labels.as_array().unwrap().len(), 2, "{labels}");
    // A changed value needs --overwrite.
    let refused = cli.run(&["host", "label", "assign", "controller-0", "zone=south"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    cli.ok(&[
        "host",
        "label",
        "assign",
        "controller-0",
        "zone=south",
        "--overwrite",
    ]);
    assert!(
        cli.ok(&["host", "label", "list", "controller-0"])
            .contains("south")
    );
    // Removing an unknown key removes nothing.
    let refused = cli.run(&["host", "label", "remove", "controller-0", "gpu", "nope"]);
    assert!(!refused.status.success());
    assert_eq!(
        cli.json(&["host", "label", "list", "controller-0", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = cli.ok(&["host", "label", "remove", "controller-0", "gpu"]);
    assert!(out.contains("Deleted host label gpu"), "{out}");
    // CPU functions: refused while unlocked, then applied.
    let refused = cli.run(&[
        "host",
        "cpu-modify",
        "controller-0",
        "-f",
        "application-isolated",
        "-p",
        "0=1",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be locked"));
    cli.ok(&["host", "lock", "controller-0"]);
    let listed = cli.json(&["host", "cpus", "controller-0", "-o", "json"]);
    let cores: std::collections::BTreeSet<(u64, u64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["numa_node"].as_u64().unwrap_or(0),
                c["core"].as_u64().unwrap(),
            )
        })
        .collect();
    let args = [
        "host",
        "cpu-modify",
        "controller-0",
        "-f",
        "application-isolated",
        "-p",
        "0=1",
        "-o",
        "json",
    ];
    if cores.len() < 2 {
        // One core: it is the platform's; nothing can be isolated.
        let refused = cli.run(&args);
        assert!(String::from_utf8_lossy(&refused.stderr).contains("cores available"));
        return;
    }
    let cpus = cli.json(&args);
    let isolated = cpus
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["allocated_function"] == "Application-isolated")
        .count();
    assert!(isolated > 0, "{cpus}");
}

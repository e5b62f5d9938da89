//! `roost sim subclouds` end to end: a real system controller, 20 simulated
//! subclouds in one process speaking the real enrollment and sync protocol,
//! driven through the simulator's stdin control channel, then killed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use roost_test_support::{Api, Server, ServerOptions, wait_for};
use serde_json::Value;

const COUNT: usize = 20;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn system_controller(dir: &Path) -> Server {
    let config = dir.join("dc.toml");
    std::fs::write(
        &config,
        "[dc]\nlisten = \"127.0.0.1:0\"\nsync_interval_secs = 1\noffline_after_secs = 4\n",
    )
    .unwrap();
    Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                config.display().to_string(),
            ],
            ..Default::default()
        },
    )
}

/// The simulator: its process, its stdin (commands) and its stdout lines.
struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Sim {
    fn start(sc: &Server, token: &str) -> Sim {
        let mut child = Command::new(bin())
            .args(["sim", "subclouds", "--system-controller", &sc.url])
            .args(["--count", &COUNT.to_string(), "--manage"])
            .env("ROOST_TOKEN", token)
            .env_remove("ROOST_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("roost sim subclouds starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Sim {
            child,
            stdin,
            lines,
        }
    }

    fn line(&self, secs: u64) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(secs))
            .expect("a line from roost sim subclouds")
    }

    /// Sends a command and returns its answer (which must be `ok ...`).
    fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let reply = self.line(10);
        assert!(reply.starts_with("ok"), "{cmd}: {reply}");
        reply
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn subclouds(api: &Api) -> Vec<Value> {
    let r = api.get("/v1.0/subclouds/");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["subclouds"].as_array().unwrap().clone()
}

fn summary(api: &Api) -> Vec<Value> {
    let r = api.get("/v1.0/alarms/");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["alarm_summary"].as_array().unwrap().clone()
}

#[test]
fn simulated_subclouds_enroll_sync_raise_alarms_and_go_offline_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let mut sim = Sim::start(&sc, &api.token);
    let ready = sim.line(120);
    assert_eq!(
        ready,
        format!("roost sim subclouds ready: {COUNT} subclouds")
    );

    // Every subcloud is online, managed, complete and in-sync.
    let all = wait_for(60, || {
        let list = subclouds(&api);
        let good = list
            .iter()
            .filter(|s| {
                s["availability-status"] == "online"
                    && s["management-state"] == "managed"
                    && s["deploy-status"] == "complete"
                    && s["sync_status"] == "in-sync"
            })
            .count();
        (good == COUNT).then_some(list)
    });
    let all = all.unwrap_or_else(|| panic!("not all in-sync: {:?}", subclouds(&api)));
    assert_eq!(all.len(), COUNT);
    let mut names: Vec<&str> = all.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let want: Vec<String> = (1..=COUNT).map(|n| format!("sim-{n:05}")).collect();
    assert_eq!(names, want);
    let rows = summary(&api);
    assert_eq!(rows.len(), COUNT);
    assert!(rows.iter().all(|r| r["cloud_status"] == "OK"));

    // An alarm raised on one simulated subcloud reaches the summary.
    sim.command("raise sim-00003 100.104 host=controller-0.filesystem=/var critical");
    wait_for(15, || {
        summary(&api)
            .iter()
            .any(|r| r["region_name"] == "sim-00003" && r["critical_alarms"] == 1)
            .then_some(())
    })
    .expect("sim-00003's alarm reaches the summary");
    let counts = sim.command("counts sim-00003");
    assert!(counts.contains("sim-00003=1/0/0/0/1/1"), "{counts}");
    let stats = sim.command("stats");
    assert!(stats.contains(&format!("online={COUNT}")), "{stats}");
    assert!(stats.contains("syncs_refused=0"), "{stats}");
    let generation = sim.command("generation platform");
    assert_ne!(generation, "ok 0", "the platform configuration was pushed");

    // The simulator dies: every subcloud goes offline soon after.
    let _ = sim.child.kill();
    let _ = sim.child.wait();
    let killed = Instant::now();
    wait_for(30, || {
        subclouds(&api)
            .iter()
            .all(|s| s["availability-status"] == "offline")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("still online: {:?}", subclouds(&api)));
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(15), "offline after {took:?}");
    assert!(
        summary(&api)
            .iter()
            .all(|r| r["cloud_status"] == "disabled")
    );
}

//! `roost sim subclouds` end to end: a real system controller, 20 simulated
//! subclouds in one process speaking the real enrollment and sync protocol,
//! driven through the simulator's stdin control channel, then killed; and a
//! fleet rollout to simulated subclouds: a canary, then waves no wider
//! than asked, stopped by a failure.

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
    system_controller_with(dir, "")
}

/// A system controller whose configuration ends with `extra`.
fn system_controller_with(dir: &Path, extra: &str) -> Server {
    let config = dir.join("dc.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nlisten = \"127.0.0.1:0\"\nsync_interval_secs = 1\noffline_after_secs = 4\n{extra}"
        ),
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
        Sim::start_with(sc, token, COUNT, &[])
    }

    /// `count` simulated subclouds, with more arguments.
    fn start_with(sc: &Server, token: &str, count: usize, args: &[&str]) -> Sim {
        let mut child = Command::new(bin())
            .args(["sim", "subclouds", "--system-controller", &sc.url])
            .args(["--count", &count.to_string(), "--manage"])
            .args(args)
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

#[test]
fn a_rollout_to_simulated_subclouds_goes_canary_then_waves_and_stops_at_a_failure() {
    const N: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("release.key");
    let public = roost_test_support::release::release_cli(
        bin(),
        &["keygen", "--out", &key.display().to_string()],
    )
    .unwrap();
    let sc = system_controller_with(
        dir.path(),
        &format!("[software]\ntrusted_keys = [\"{public}\"]\n"),
    );
    let api = sc.api();
    let mut sim = Sim::start_with(&sc, &api.token, N, &["--deploy-ms", "300"]);
    let ready = sim.line(120);
    assert!(ready.starts_with("roost sim subclouds ready"), "{ready}");
    let payload = vec![7u8; 256 * 1024];
    let files: [(&str, &[u8]); 1] = [("data/blob", &payload)];
    let release = roost_test_support::release::build_release(
        bin(),
        dir.path(),
        &key,
        &roost_test_support::release::ReleaseSpec {
            id: "roost-2.0.0",
            requires: &[],
            files: &files,
            reboot_required: false,
            health_check: None,
        },
    )
    .unwrap();
    let size = std::fs::metadata(&release).unwrap().len();
    let (status, v) =
        roost_test_support::release::upload_release(&sc.url, &sc.token(), &[release.as_path()]);
    assert_eq!((status, v["error"].as_str()), (200, Some("")), "{v}");
    // Every subcloud fetches the release file once, whole.
    let fetched = wait_for(120, || {
        let stats = sim.command("stats");
        stats
            .contains(&format!("package_bytes={}", size * N as u64))
            .then_some(stats)
    })
    .unwrap_or_else(|| {
        panic!(
            "the release did not reach every subcloud: {}",
            sim.command("stats")
        )
    });
    assert!(
        fetched.contains(&format!("packages_fetched={N}")),
        "{fetched}"
    );

    // sim-00007 fails its deploy: with stop-on-failure, nothing starts after it.
    sim.command("fail-deploy sim-00007");
    let r = api.post(
        "/v1.0/sw-update-strategy/",
        &serde_json::json!({"type": "sw-deploy", "release_id": "roost-2.0.0",
            "subcloud-apply-type": "parallel", "max-parallel-subclouds": 3,
            "stop-on-failure": "true", "canary": 2}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["stages"][0]["subclouds"], 2);
    assert_eq!(r.body["stages"][1]["subclouds"], N - 2);
    let r = api.post(
        "/v1.0/sw-update-strategy/actions?type=sw-deploy",
        &serde_json::json!({"action": "apply"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut widest = 0;
    let mut canary_first = true;
    let end = wait_for(240, || {
        let steps = api.get("/v1.0/sw-update-strategy/steps").body;
        let steps = steps["strategy-steps"].as_array().unwrap().clone();
        let running = |s: &&Value| {
            !matches!(
                s["state"].as_str().unwrap(),
                "initial" | "complete" | "failed" | "aborted" | "deferred"
            )
        };
        let in_flight = steps.iter().filter(running).count();
        widest = widest.max(in_flight);
        // No step of the second stage runs before the canaries are done.
        if steps
            .iter()
            .any(|s| s["stage"] == 2 && s["state"] != "initial")
            && steps
                .iter()
                .any(|s| s["stage"] == 1 && s["state"] != "complete")
        {
            canary_first = false;
        }
        let st = api.get("/v1.0/sw-update-strategy?type=sw-deploy").body;
        matches!(st["state"].as_str(), Some("failed" | "complete")).then_some((st, steps))
    });
    let (st, _) = end.expect("the strategy ends");
    // The steps as they are once the strategy ended (the snapshot above was
    // taken just before its state was read).
    let steps = api.get("/v1.0/sw-update-strategy/steps").body["strategy-steps"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(st["state"], "failed", "{st}");
    assert!(
        canary_first,
        "the second stage started before the canary ended"
    );
    assert!(widest <= 3, "{widest} subclouds at once, at most 3 asked");
    let state = |name: &str| {
        steps
            .iter()
            .find(|s| s["cloud"] == name)
            .map(|s| s["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(state("sim-00001"), "complete");
    assert_eq!(state("sim-00002"), "complete");
    assert_eq!(state("sim-00007"), "failed");
    let failed = steps.iter().find(|s| s["cloud"] == "sim-00007").unwrap();
    assert!(
        failed["details"]
            .as_str()
            .unwrap()
            .contains("simulated deploy failure"),
        "{failed}"
    );
    // Nothing started after the failure (the timestamps have one form, so
    // they compare as text), and what had not started stays initial.
    let failed_at = failed["finished-at"].as_str().unwrap();
    for s in &steps {
        if let Some(t) = s["started-at"].as_str() {
            assert!(
                t < failed_at,
                "{s} started after the failure at {failed_at}"
            );
        } else {
            assert_eq!(s["state"], "initial", "{s}");
        }
    }
}

//! Two controllers on one PostgreSQL store (the test command's), end to
//! end: one holds the controller lease and is active, the other is a
//! standby that redirects. The active is killed (`kill -9`) or paused
//! (`SIGSTOP`) under a write load: the standby takes over; every
//! acknowledged write is there; a real agent given both addresses keeps
//! its host available through the switch-over; the old active, resumed or
//! started again, stays out as a standby.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_test_support::{Agent, Api, Server, ServerOptions, postgres_store, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// Two controllers on a new PostgreSQL database: controller-0 (active,
/// started first) and controller-1 (standby), with the same data key.
struct Pair {
    dir: tempfile::TempDir,
    store: String,
    c0: Server,
    c1: Server,
}

fn controller(dir: &Path, name: &str, store: &str) -> Server {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("hostname = \"{name}\"\n[ha]\nlease_ms = 1000\n"),
    )
    .unwrap();
    Server::start_in(
        bin(),
        &dir.join(name),
        ServerOptions {
            args: vec!["--config".into(), config.display().to_string()],
            store: Some(store.to_string()),
            ..Default::default()
        },
        None,
    )
    .expect("controller starts")
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let store = postgres_store();
    let c0 = controller(dir.path(), "controller-0", &store);
    assert!(
        c0.log().contains("this server is the active controller"),
        "{}",
        c0.log()
    );
    // The second controller seals with the same data key.
    let d1 = dir.path().join("controller-1");
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::copy(c0.data_dir.join("secret.key"), d1.join("secret.key")).unwrap();
    let c1 = controller(dir.path(), "controller-1", &store);
    assert!(
        c1.log().contains("standby: another controller is active"),
        "{}",
        c1.log()
    );
    Pair { dir, store, c0, c1 }
}

/// An API client of the pair: the token is good on both.
fn api_of(s: &Server, token: &str) -> Api {
    Api {
        url: s.url.clone(),
        token: token.to_string(),
    }
}

/// Writers raising alarms as fast as they can against both controllers
/// (redirects followed; a controller that is not reachable is left for
/// the other). Each acknowledged alarm is kept.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn load(urls: [String; 2], token: String) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads = (0..4)
        .map(|w| {
            let (stop, acked, urls, token) = (stop.clone(), acked.clone(), urls.clone(), token.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let (mut at, mut i) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let entity = format!("host=w{w}.n={i}");
                    let r = client
                        .post(format!("{}/v1/alarms", urls[at % 2]))
                        .header("X-Auth-Token", &token)
                        .json(&json!({"alarm_id": "100.104", "entity_instance_id": entity, "severity": "major"}))
                        .send();
                    match r {
                        Ok(r) if r.status().as_u16() == 200 => {
                            let b: Value = r.json().unwrap_or_default();
                            if let Some(uuid) = b["uuid"].as_str() {
                                acked.lock().unwrap().push(uuid.to_string());
                            }
                            i += 1;
                        }
                        // Refused (a fenced or stepping-down controller) or
                        // not reached: not acknowledged; try the other one.
                        _ => {
                            at += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            })
        })
        .collect();
    Load {
        stop,
        acked,
        threads,
    }
}

impl Load {
    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn wait_for_more(&self, n: usize) {
        let from = self.count();
        wait_for(60, || (self.count() >= from + n).then_some(()))
            .unwrap_or_else(|| panic!("{n} more writes acknowledged"));
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.acked.lock().unwrap().clone()
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Every acknowledged alarm is in the store the active serves.
fn all_there(api: &Api, acked: &[String]) {
    let alarms: std::collections::HashSet<String> = api
        .alarms("")
        .iter()
        .filter_map(|a| a["uuid"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|u| !alarms.contains(*u)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged alarms lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}

/// The worker's heartbeat failure history (200.004/200.005/200.009).
fn failures(api: &Api, host: &str) -> Vec<Value> {
    api.events(&format!(
        "?alarms=True&q.field=entity_instance_id&q.value=host%3D{host}"
    ))
    .into_iter()
    .filter(|e| {
        matches!(
            e["event_log_id"].as_str(),
            Some("200.004" | "200.005" | "200.009")
        )
    })
    .collect()
}

fn agent_of(p: &Pair, api: &Api) -> Agent {
    let token = api.add_host("worker-0", "worker");
    let servers = format!("{},{}", p.c0.url, p.c1.url);
    let a = Agent::start(
        bin(),
        &servers,
        &token,
        &p.dir.path().join("worker-0"),
        "127.0.0.2",
        &[],
    )
    .expect("agent starts");
    api.wait_avail("worker-0", "online", 30);
    let r = api.host_action("worker-0", "unlock");
    assert_eq!(r.status, 200, "{:?}", r.body);
    api.wait_avail("worker-0", "available", 30);
    a
}

/// The active dies (`kill -9`, or SIGSTOP when `pause`) under writes; the
/// standby takes over; nothing acknowledged is lost; the host stays
/// available; the old active comes back as a standby.
fn switch_over(pause: bool) {
    let mut p = pair();
    let token = p.c0.token();
    let api0 = api_of(&p.c0, &token);
    let _agent = agent_of(&p, &api0);
    let w = load([p.c0.url.clone(), p.c1.url.clone()], token.clone());
    w.wait_for_more(200);

    let old_pid = p.c0.pid();
    if pause {
        signal(old_pid, "STOP");
    } else {
        p.c0.kill9();
    }
    // The standby takes over and answers writes.
    let api1 = api_of(&p.c1, &token);
    wait_for(30, || {
        p.c1.log()
            .contains("this server is the active controller")
            .then_some(())
    })
    .expect("the standby takes the lease");
    w.wait_for_more(200);

    if pause {
        // Resumed, the old active finds its lease gone and comes back as a
        // standby: it redirects to the new active.
        signal(old_pid, "CONT");
        wait_for(30, || p.c0.log().contains("stepping down").then_some(()))
            .expect("the old active steps down");
    } else {
        p.c0 = controller(p.dir.path(), "controller-0", &p.store);
    }
    wait_for(30, || {
        let r = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/v1/alarms", p.c0.url))
            .send()
            .ok()?;
        (r.status().as_u16() == 307).then_some(())
    })
    .expect("the old active redirects to the new one");
    let acked = w.finish();
    assert!(acked.len() >= 400);
    all_there(&api1, &acked);
    // Through the old active's address too (redirected).
    assert_eq!(
        api_of(&p.c0, &token).alarms("").len(),
        api1.alarms("").len()
    );

    // The host rode through: the new active's pulses are answered (its
    // counter moves), it is still available and it never failed.
    let answered = || {
        let text = api1.get("/metrics").body.as_str().unwrap_or("").to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("roost_heartbeat_pulses_answered_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let seen = answered();
    wait_for(60, || (answered() >= seen + 10.0).then_some(()))
        .expect("the agent answers the new active's pulses");
    let h = api1.host("worker-0");
    assert_eq!(h["availability"], "available", "{h:?}");
    assert!(
        failures(&api1, "worker-0").is_empty(),
        "{:?}",
        failures(&api1, "worker-0")
    );
    let log = p.c1.log();
    assert!(!log.contains("failed"), "{log}");
}

#[test]
fn kill_9_of_the_active_under_writes_loses_nothing() {
    switch_over(false);
}

#[test]
fn a_paused_active_is_fenced_and_comes_back_as_a_standby() {
    switch_over(true);
}

#[test]
fn a_stopped_active_hands_over_at_once_and_a_standby_serves_through_redirects() {
    let mut p = pair();
    let token = p.c0.token();
    // Through the standby: logins and writes are redirected to the active.
    let via_standby = api_of(&p.c1, &token);
    let uuid = via_standby.set_alarm("100.104", "host=via-standby.filesystem=/", "major");
    let api0 = api_of(&p.c0, &token);
    assert!(api0.alarms("").iter().any(|a| a["uuid"] == uuid.as_str()));
    // A graceful stop gives the lease up: the standby takes it at its next
    // look, well before the lease would have expired.
    p.c0.terminate();
    wait_for(30, || {
        p.c1.log()
            .contains("this server is the active controller")
            .then_some(())
    })
    .expect("the standby takes over");
    let log = p.c1.log();
    let taken = log
        .lines()
        .find(|l| l.contains("took the controller lease"))
        .unwrap();
    assert!(taken.contains("epoch=2"), "{taken}");
    assert!(
        via_standby
            .alarms("")
            .iter()
            .any(|a| a["uuid"] == uuid.as_str())
    );
}

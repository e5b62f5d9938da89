//! Software deploys through the real binary with real agents: a release
//! carrying a `roost` binary is deployed host by host (each agent fetches
//! it by digest, stages it, switches and re-executes itself with the new
//! binary, which checks its health and confirms), activated, completed and
//! deleted; a later release whose health check fails on one host rolls that
//! host back by itself, raises 900.002 and fails the step; a corrupted
//! partial download is refused and fetched again; a release whose binary
//! does not start is rolled back; abort then host-rollback brings every
//! host back to one release; the precheck refuses with reasons.
//!
//! The server's own host is deployed too: the server hands its process over
//! to the release's binary under a write load (no acknowledged write lost,
//! no host failed), hands back by itself when the new binary fails its
//! health check, and rolls back at its next start a binary that died
//! before it confirmed.

use std::path::{Path, PathBuf};

use roost_test_support::{Agent, Api, Server, http, release, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn release_cli(args: &[&str]) -> String {
    release::release_cli(bin(), args).unwrap()
}

/// Builds release `id` from `files` (payload path, bytes) with a health
/// check hook, into `dir`.
fn build(
    dir: &Path,
    key: &Path,
    id: &str,
    requires: &[&str],
    files: &[(&str, Vec<u8>)],
) -> PathBuf {
    build_with(dir, key, id, requires, files, false)
}

/// [`build`], of a release that reboots hosts when `reboot`.
fn build_with(
    dir: &Path,
    key: &Path,
    id: &str,
    requires: &[&str],
    files: &[(&str, Vec<u8>)],
    reboot: bool,
) -> PathBuf {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let spec = release::ReleaseSpec {
        id,
        requires,
        files: &files,
        reboot_required: reboot,
        health_check: Some("hooks/health"),
    };
    release::build_release(bin(), dir, key, &spec).unwrap()
}

/// The health check: fails on a host whose agent directory holds
/// `fail-health` (the hook runs in `<agent-dir>/software/releases/<id>/`).
const HEALTH: &str = "#!/bin/sh\nif [ -e ../../../fail-health ]; then echo 'service did not come up' >&2; exit 3; fi\nexit 0\n";

/// This `roost` binary without its debug sections (much smaller to ship).
fn roost_binary(dir: &Path) -> Vec<u8> {
    let out = dir.join("roost-stripped");
    let stripped = std::process::Command::new("strip")
        .args(["-g", "-o"])
        .arg(&out)
        .arg(bin())
        .status()
        .is_ok_and(|s| s.success());
    std::fs::read(if stripped { out.as_path() } else { bin() }).unwrap()
}

fn upload(s: &Server, file: &Path) {
    let (status, v) = release::upload_release(&s.url, &s.token(), &[file]);
    assert_eq!((status, v["error"].as_str()), (200, Some("")), "{v}");
}

/// A USM action: (status, envelope).
fn act(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = http();
    let url = format!("{}{path}", s.url);
    let req = match method {
        "DELETE" => c.delete(url),
        _ => c.post(url),
    }
    .header("X-Auth-Token", s.token())
    .header("Content-Type", "application/json");
    let req = match body {
        Some(b) => req.body(b.to_string()),
        None => req,
    };
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn ok(s: &Server, method: &str, path: &str, body: Option<Value>) -> String {
    let (status, v) = act(s, method, path, body);
    assert_eq!(
        (status, v["error"].as_str()),
        (200, Some("")),
        "{path}: {v}"
    );
    v["info"].as_str().unwrap_or_default().to_string()
}

fn refused(s: &Server, method: &str, path: &str, body: Option<Value>, says: &str) {
    let (status, v) = act(s, method, path, body);
    assert_eq!(status, 406, "{path}: {v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains(says), "{path}: {e:?} should say {says:?}");
}

/// The deploy state of `host` in `deploy host-list`.
fn host_state(api: &Api, host: &str) -> Value {
    let list = api.get("/v1/deploy_host").body;
    list.as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == host)
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_host_state(api: &Api, host: &str, want: &str) -> Value {
    wait_for(240, || {
        let h = host_state(api, host);
        (h["host_state"] == want).then_some(h)
    })
    .unwrap_or_else(|| panic!("{host} never became {want}: {}", host_state(api, host)))
}

fn deploy_state(api: &Api) -> String {
    api.get("/v1/deploy").body[0]["state"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

/// The binary process `pid` runs.
fn exe(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

fn alarms_on(api: &Api, id: &str) -> Vec<String> {
    api.alarms("")
        .iter()
        .filter(|a| a["alarm_id"] == id)
        .map(|a| {
            a["entity_instance_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn releases_deploy_host_by_host_and_a_failing_host_rolls_back_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("release.key");
    let public = release_cli(&["keygen", "--out", &key.display().to_string()]);
    let (s, _cfg) = Server::start_with_config(
        bin(),
        &format!("[software]\ntrusted_keys = [\"{public}\"]\nhost_deploy_timeout_secs = 600\n"),
    );
    let api = s.api();
    let mut agents = Vec::new();
    for (name, ip) in [("worker-1", "127.0.0.2"), ("worker-2", "127.0.0.3")] {
        let join = api.add_host(name, "worker");
        let agent = Agent::start(
            bin(),
            &s.url,
            &join,
            &tmp.path().join(name),
            ip,
            &[
                "--report-interval-secs",
                "1",
                "--no-apps",
                "--software-trial-secs",
                "120",
            ],
        )
        .expect("agent starts");
        api.wait_avail(name, "online", 60);
        assert_eq!(api.host_action(name, "unlock").status, 200);
        api.wait_avail(name, "available", 120);
        agents.push(agent);
    }

    let roost = roost_binary(tmp.path());
    let a = build(
        tmp.path(),
        &key,
        "roost-0.2.0",
        &[],
        &[
            ("bin/roost", roost.clone()),
            ("hooks/health", HEALTH.into()),
        ],
    );
    let b = build(
        tmp.path(),
        &key,
        "roost-0.3.0",
        &["roost-0.2.0"],
        &[
            ("etc/motd", b"roost 0.3.0\n".to_vec()),
            ("hooks/health", HEALTH.into()),
        ],
    );
    upload(&s, &a);
    upload(&s, &b);

    // The precheck: no release named; a release whose prerequisite is not
    // deployed; then all well.
    refused(
        &s,
        "POST",
        "/v1/deploy/precheck",
        Some(json!({"releases": []})),
        "name the release",
    );
    refused(
        &s,
        "POST",
        "/v1/deploy/precheck",
        Some(json!({"releases": ["roost-0.3.0"]})),
        "requires roost-0.2.0, which is not deployed",
    );
    refused(
        &s,
        "POST",
        "/v1/deploy/start",
        Some(json!({"releases": ["roost-0.3.0"]})),
        "requires roost-0.2.0",
    );
    let (status, v) = act(
        &s,
        "POST",
        "/v1/deploy/precheck",
        Some(
            json!({"releases": ["roost-0.2.0"], "force": "true", "options": [], "region_name": "RegionOne"}),
        ),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["system_healthy"], true, "{v}");
    assert!(v["info"].as_str().unwrap().contains("[OK]"), "{v}");
    assert_eq!(api.get("/v1/deploy").body, json!([]));

    // worker-2 holds the first half of the binary from an interrupted
    // fetch: it fetches only the rest.
    let roost_sha = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(&roost);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let blobs = agents[1].data_dir.join("software/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(
        blobs.join(format!("{roost_sha}.part")),
        &roost[..roost.len() / 2],
    )
    .unwrap();

    // Deploy A: start, each host, activate, complete, delete.
    start_deploy(&s, "roost-0.2.0");
    assert_eq!(deploy_state(&api), "start-done");
    let shown = &api.get("/v1/deploy").body[0];
    assert_eq!(shown["to_release"], "0.2.0");
    assert_eq!(shown["reboot_required"], false);
    assert_eq!(
        api.get("/v1/release/roost-0.2.0").body["state"],
        "deploying"
    );
    assert_eq!(alarms_on(&api, "900.001"), ["host=controller"]);
    refused(
        &s,
        "POST",
        "/v1/deploy/start",
        Some(json!({"releases": ["roost-0.2.0"]})),
        "in progress",
    );
    refused(&s, "POST", "/v1/deploy/activate", None, "state start-done");

    // The server's own host first: the server hands over to the release's
    // binary (same process id, same sockets) while a client keeps raising
    // alarms. Every acknowledged alarm is kept, and no host is failed.
    let load = AlarmLoad::start(&s.url, &api.token);
    let server_pid = s.pid();
    let before = std::fs::canonicalize(exe(server_pid)).unwrap();
    ok(&s, "POST", "/v1/deploy_host/controller-0", None);
    let h = wait_host_state(&api, "controller-0", "deployed");
    assert_eq!(h["software_release"], "0.2.0", "{h}");
    let want = std::fs::canonicalize(
        s.data_dir
            .join("host-software/releases/roost-0.2.0/bin/roost"),
    )
    .unwrap();
    assert_ne!(before, want);
    assert_eq!(exe(server_pid), want, "the server runs the new binary");
    assert!(
        s.log().contains("handing over to another roost binary")
            && s.log()
                .contains("took over the sockets of the previous process")
            && s.log().contains("the new roost binary is confirmed"),
        "{}",
        s.log()
    );
    let (acked, failed) = load.stop();
    eprintln!(
        "during the handover: {} alarms acknowledged, {failed} requests failed",
        acked.len()
    );
    let listed: std::collections::BTreeSet<String> = api
        .alarms("?limit=1000")
        .iter()
        .filter_map(|a| a["entity_instance_id"].as_str().map(String::from))
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|e| !listed.contains(*e)).collect();
    assert!(lost.is_empty(), "acknowledged alarms lost: {lost:?}");
    assert!(acked.len() >= 5, "the load ran: {}", acked.len());
    for name in ["worker-1", "worker-2"] {
        assert_eq!(api.host(name)["availability"], "available", "{name}");
    }
    assert!(alarms_on(&api, "200.004").is_empty(), "no host failed");

    for (name, agent) in ["worker-1", "worker-2"].iter().zip(&agents) {
        ok(&s, "POST", &format!("/v1/deploy_host/{name}"), None);
        let h = wait_host_state(&api, name, "deployed");
        assert_eq!(h["software_release"], "0.2.0", "{h}");
        // The agent runs the release's binary, with the same process id.
        let want = std::fs::canonicalize(
            agent
                .data_dir
                .join("software/releases/roost-0.2.0/bin/roost"),
        )
        .unwrap();
        assert_eq!(exe(agent.pid()), want);
        assert_eq!(
            std::fs::read_link(agent.data_dir.join("software/current")).unwrap(),
            Path::new("releases/roost-0.2.0")
        );
    }
    assert_eq!(deploy_state(&api), "host-done");
    // worker-2's fetch resumed: the server answered a ranged request.
    let metrics = api.get("/metrics").body;
    assert!(
        metrics.as_str().unwrap_or_default().contains(
            "roost_http_requests_total{method=\"GET\",route=\"/v1/agent/software/blobs/{sha256}\",status=\"206\"}"
        ),
        "no ranged fetch: {metrics}"
    );
    ok(&s, "POST", "/v1/deploy/activate", Some(json!({})));
    ok(&s, "POST", "/v1/deploy/complete", Some(json!({})));
    let info = ok(&s, "DELETE", "/v1/deploy", None);
    assert!(info.contains("roost-0.2.0 is deployed"), "{info}");
    assert_eq!(api.get("/v1/release/roost-0.2.0/is_deployed").body, true);
    assert_eq!(api.get("/v1/deploy").body, json!([]));
    wait_for(30, || alarms_on(&api, "900.001").is_empty().then_some(()))
        .expect("900.001 clears once the deploy is deleted");
    for name in ["worker-1", "worker-2"] {
        assert_eq!(api.host(name)["availability"], "available", "{name}");
    }
    assert!(alarms_on(&api, "200.004").is_empty());

    // Deploy B. On worker-1 a corrupted partial download is refused (and
    // thrown away), then the retry fetches it whole. On worker-2 the health
    // check fails: it rolls back by itself and the step fails.
    let motd = agents[0].data_dir.join("software/blobs");
    let sha = api.get("/v1/release/roost-0.3.0").body["payload"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "etc/motd")
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(motd.join(format!("{sha}.part")), b"garbage").unwrap();
    std::fs::write(agents[1].data_dir.join("fail-health"), b"").unwrap();
    start_deploy(&s, "roost-0.3.0");
    ok(&s, "POST", "/v1/deploy_host/worker-1", None);
    let h = wait_host_state(&api, "worker-1", "failed");
    assert!(h["message"].as_str().unwrap().contains("corrupted"), "{h}");
    assert!(!motd.join(format!("{sha}.part")).exists());
    ok(&s, "POST", "/v1/deploy_host/worker-1", None);
    wait_host_state(&api, "worker-1", "deployed");
    assert_eq!(
        std::fs::read(agents[0].data_dir.join("software/current/etc/motd")).unwrap(),
        b"roost 0.3.0\n"
    );
    // A release without a binary keeps the binary of the one before.
    assert!(exe(agents[0].pid()).ends_with("releases/roost-0.2.0/bin/roost"));

    ok(&s, "POST", "/v1/deploy_host/worker-2", None);
    let h = wait_host_state(&api, "worker-2", "failed");
    let message = h["message"].as_str().unwrap();
    assert!(message.contains("health check failed"), "{message}");
    assert!(message.contains("service did not come up"), "{message}");
    assert!(message.contains("rolled back to roost-0.2.0"), "{message}");
    assert_eq!(
        std::fs::read_link(agents[1].data_dir.join("software/current")).unwrap(),
        Path::new("releases/roost-0.2.0")
    );
    assert_eq!(deploy_state(&api), "host-failed");
    wait_for(30, || {
        (alarms_on(&api, "900.002") == ["host=worker-2"]).then_some(())
    })
    .expect("900.002 is raised on worker-2");
    refused(&s, "DELETE", "/v1/deploy", None, "host-failed");

    // Abort: worker-1 is rolled back, worker-2 never took the release.
    ok(&s, "POST", "/v1/deploy/abort", Some(json!({})));
    assert_eq!(deploy_state(&api), "host-rollback");
    assert_eq!(
        host_state(&api, "worker-1")["host_state"],
        "rollback-pending"
    );
    ok(&s, "POST", "/v1/deploy_host/worker-1/rollback", None);
    wait_host_state(&api, "worker-1", "rollback-deployed");
    // The release rolled back to is checked too: worker-2 is healthy now.
    std::fs::remove_file(agents[1].data_dir.join("fail-health")).unwrap();
    ok(&s, "POST", "/v1/deploy_host/worker-2/rollback", None);
    wait_host_state(&api, "worker-2", "rollback-deployed");
    assert_eq!(deploy_state(&api), "host-rollback-done");
    for agent in &agents {
        assert_eq!(
            std::fs::read_link(agent.data_dir.join("software/current")).unwrap(),
            Path::new("releases/roost-0.2.0")
        );
        assert!(exe(agent.pid()).ends_with("releases/roost-0.2.0/bin/roost"));
    }
    ok(&s, "DELETE", "/v1/deploy", None);
    assert_eq!(
        api.get("/v1/release/roost-0.3.0").body["state"],
        "available"
    );
    wait_for(30, || alarms_on(&api, "900.002").is_empty().then_some(()))
        .expect("900.002 clears once worker-2 is rolled back");

    // A release whose binary does not start: refused by the host, which
    // stays on the binary it runs.
    let c = build(
        tmp.path(),
        &key,
        "roost-0.4.0",
        &["roost-0.2.0"],
        &[
            (
                "bin/roost",
                b"#!/bin/sh\necho broken >&2\nexit 1\n".to_vec(),
            ),
            ("hooks/health", HEALTH.into()),
        ],
    );
    upload(&s, &c);
    start_deploy(&s, "roost-0.4.0");
    ok(&s, "POST", "/v1/deploy_host/worker-2", None);
    let h = wait_host_state(&api, "worker-2", "failed");
    assert!(
        h["message"]
            .as_str()
            .unwrap()
            .contains("the new roost binary does not start"),
        "{h}"
    );
    assert!(exe(agents[1].pid()).ends_with("releases/roost-0.2.0/bin/roost"));
    assert_eq!(api.host("worker-2")["availability"], "available");
    // The server refuses it too, before handing anything over.
    ok(&s, "POST", "/v1/deploy_host/controller-0", None);
    let h = wait_host_state(&api, "controller-0", "failed");
    assert!(
        h["message"]
            .as_str()
            .unwrap()
            .contains("the new roost binary does not start"),
        "{h}"
    );
    assert_eq!(exe(server_pid), want);
    abort_and_roll_back(&s, &api, &["worker-2", "controller-0"]);

    // A binary that answers --version but dies as an agent: the process is
    // gone; started again (as its service manager would, with the binary
    // it was installed with) the agent finds the trial it never confirmed,
    // rolls back and re-executes the binary it ran before.
    let d = build(
        tmp.path(),
        &key,
        "roost-0.5.0",
        &["roost-0.2.0"],
        &[
            ("bin/roost", DIES_AFTER_VERSION.to_vec()),
            ("hooks/health", HEALTH.into()),
        ],
    );
    upload(&s, &d);
    start_deploy(&s, "roost-0.5.0");
    let pid = agents[1].pid();
    ok(&s, "POST", "/v1/deploy_host/worker-2", None);
    wait_for(60, || {
        (!Path::new(&format!("/proc/{pid}/exe")).exists()).then_some(())
    })
    .expect("the agent process ends with the broken binary");
    agents[1].restart().expect("the agent starts again");
    let h = wait_host_state(&api, "worker-2", "failed");
    assert!(
        h["message"]
            .as_str()
            .unwrap()
            .contains("stopped before it confirmed"),
        "{h}"
    );
    assert!(exe(agents[1].pid()).ends_with("releases/roost-0.2.0/bin/roost"));
    assert_eq!(
        std::fs::read_link(agents[1].data_dir.join("software/current")).unwrap(),
        Path::new("releases/roost-0.2.0")
    );
    api.wait_avail("worker-2", "available", 60);
    abort_and_roll_back(&s, &api, &["worker-2"]);

    // A new server binary that starts but fails the release's health
    // check on the server's host: the new process hands back to the
    // binary before it by itself, and the host's step fails.
    let e = build(
        tmp.path(),
        &key,
        "roost-0.6.0",
        &["roost-0.2.0"],
        &[("bin/roost", roost), ("hooks/health", HEALTH.into())],
    );
    upload(&s, &e);
    std::fs::write(s.data_dir.join("fail-health"), b"").unwrap();
    start_deploy(&s, "roost-0.6.0");
    ok(&s, "POST", "/v1/deploy_host/controller-0", None);
    let h = wait_host_state(&api, "controller-0", "failed");
    let message = h["message"].as_str().unwrap();
    assert!(message.contains("health check failed"), "{message}");
    assert!(message.contains("rolled back to roost-0.2.0"), "{message}");
    assert_eq!(s.pid(), server_pid);
    assert_eq!(exe(server_pid), want, "back on the binary before");
    assert_eq!(
        std::fs::read_link(s.data_dir.join("host-software/current")).unwrap(),
        Path::new("releases/roost-0.2.0")
    );
    std::fs::remove_file(s.data_dir.join("fail-health")).unwrap();
    abort_and_roll_back(&s, &api, &["controller-0"]);
    for name in ["worker-1", "worker-2"] {
        assert_eq!(api.host(name)["availability"], "available", "{name}");
    }
    assert!(alarms_on(&api, "200.004").is_empty(), "no host failed");
}

#[test]
fn a_server_binary_that_dies_before_it_confirms_is_rolled_back_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("release.key");
    let public = release_cli(&["keygen", "--out", &key.display().to_string()]);
    let (mut s, _cfg) = Server::start_with_config(
        bin(),
        &format!("[software]\ntrusted_keys = [\"{public}\"]\n"),
    );
    // Answers --version, then dies as a server.
    let r = build(
        tmp.path(),
        &key,
        "roost-0.7.0",
        &[],
        &[
            ("bin/roost", DIES_AFTER_VERSION.to_vec()),
            ("hooks/health", HEALTH.into()),
        ],
    );
    upload(&s, &r);
    start_deploy(&s, "roost-0.7.0");
    let pid = s.pid();
    let installed = std::fs::canonicalize(exe(pid)).unwrap();
    ok(&s, "POST", "/v1/deploy_host/controller-0", None);
    wait_for(60, || {
        (!Path::new(&format!("/proc/{pid}/exe")).exists()).then_some(())
    })
    .expect("the server process ends with the broken binary");
    // Started again by its service manager, with the binary it was
    // installed with: the trial it was not started for is rolled back
    // before anything else, and the host's step fails.
    s.restart();
    let api = s.api();
    let h = wait_host_state(&api, "controller-0", "failed");
    let message = h["message"].as_str().unwrap();
    assert!(message.contains("stopped before it confirmed"), "{message}");
    assert!(
        message.contains("rolled back to the installed software"),
        "{message}"
    );
    assert_eq!(std::fs::canonicalize(exe(s.pid())).unwrap(), installed);
    assert!(std::fs::symlink_metadata(s.data_dir.join("host-software/current")).is_err());
    abort_and_roll_back(&s, &api, &["controller-0"]);
    assert_eq!(
        api.get("/v1/release/roost-0.7.0").body["state"],
        "available"
    );
}

/// A `roost` binary that answers `--version` and dies when it runs.
const DIES_AFTER_VERSION: &[u8] =
    b"#!/bin/sh\n[ \"$1\" = --version ] && exec echo roost 9.9.9\nexit 1\n";

/// `deploy start` of release `id`, forced past alarms.
fn start_deploy(s: &Server, id: &str) {
    ok(
        s,
        "POST",
        "/v1/deploy/start",
        Some(json!({"releases": [id], "force": "true"})),
    );
}

/// Aborts the deploy, rolls `hosts` back and deletes the deploy.
fn abort_and_roll_back(s: &Server, api: &Api, hosts: &[&str]) {
    ok(s, "POST", "/v1/deploy/abort", None);
    for host in hosts {
        ok(s, "POST", &format!("/v1/deploy_host/{host}/rollback"), None);
        wait_host_state(api, host, "rollback-deployed");
    }
    ok(s, "DELETE", "/v1/deploy", None);
}

/// A client raising alarms (100.104 on `host=load-N`) as fast as they are
/// answered, in a thread, until stopped.
struct AlarmLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<String>, u32)>,
}

impl AlarmLoad {
    fn start(url: &str, token: &str) -> AlarmLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (url, token, flag) = (url.to_string(), token.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let c = http();
            let (mut acked, mut failed) = (Vec::new(), 0u32);
            for i in 0.. {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let entity = format!("host=load-{i}");
                let r = c
                    .post(format!("{url}/v1/alarms"))
                    .header("X-Auth-Token", &token)
                    .json(&json!({"alarm_state": "set", "alarm_id": "100.104",
                        "entity_instance_id": entity, "severity": "major",
                        "reason_text": "filesystem full"}))
                    .send();
                match r {
                    Ok(r) if r.status().is_success() => acked.push(entity),
                    _ => failed += 1,
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (acked, failed)
        });
        AlarmLoad { stop, thread }
    }

    /// The entities acknowledged, and how many requests failed.
    fn stop(self) -> (Vec<String>, u32) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The site strategy (`GET` or `POST` it, `DELETE` it): (status, body).
fn strategy(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = http();
    let url = format!("{}/v1/deploy/strategy{path}", s.url);
    let req = match method {
        "GET" => c.get(url),
        "DELETE" => c.delete(url),
        _ => c.post(url),
    }
    .header("X-Auth-Token", s.token());
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn wait_strategy(s: &Server, state: &str) -> Value {
    wait_for(240, || {
        let (_, v) = strategy(s, "GET", "", None);
        (v["state"] == state).then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "the strategy never became {state}: {}",
            strategy(s, "GET", "", None).1
        )
    })
}

#[test]
fn a_site_strategy_deploys_every_host_in_order_and_stops_at_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("release.key");
    let public = release_cli(&["keygen", "--out", &key.display().to_string()]);
    let (s, _cfg) = Server::start_with_config(
        bin(),
        &format!("[software]\ntrusted_keys = [\"{public}\"]\n"),
    );
    let api = s.api();
    let names = ["worker-1", "worker-2", "worker-3"];
    let mut agents = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let join = api.add_host(name, "worker");
        let agent = Agent::start(
            bin(),
            &s.url,
            &join,
            &tmp.path().join(name),
            &format!("127.0.0.{}", i + 5),
            &["--report-interval-secs", "1", "--no-apps"],
        )
        .expect("agent starts");
        api.wait_avail(name, "online", 60);
        assert_eq!(api.host_action(name, "unlock").status, 200);
        agents.push(agent);
    }
    for name in names {
        api.wait_avail(name, "available", 120);
    }
    let a = build(
        tmp.path(),
        &key,
        "roost-0.2.0",
        &[],
        &[
            ("etc/motd", b"0.2.0\n".to_vec()),
            ("hooks/health", HEALTH.into()),
        ],
    );
    let b = build(
        tmp.path(),
        &key,
        "roost-0.3.0",
        &["roost-0.2.0"],
        &[
            ("etc/motd", b"0.3.0\n".to_vec()),
            ("hooks/health", HEALTH.into()),
        ],
    );
    upload(&s, &a);
    upload(&s, &b);

    // Bad requests.
    let (status, v) = strategy(&s, "GET", "", None);
    assert_eq!(status, 404, "{v}");
    let (status, v) = strategy(
        &s,
        "POST",
        "",
        Some(json!({"release_id": "roost-0.2.0", "worker_apply_type": "sideways"})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("serial or parallel"), "{v}");
    let (status, _) = strategy(&s, "POST", "", Some(json!({"release_id": "roost-9.9.9"})));
    assert_eq!(status, 404);

    // Parallel by two, relaxed: start, the server's own host, worker-1 and
    // worker-2, worker-3, activate, complete; the deploy is deleted at the end. Through the
    // CLI, as an operator would.
    let cli = roost_test_support::Cli::new(bin());
    let roost = |args: &[&str]| {
        let mut cmd = cli.cmd(args);
        cmd.env("ROOST_URL", &s.url).env("ROOST_TOKEN", s.token());
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = roost(&[
        "deploy",
        "strategy",
        "create",
        "roost-0.2.0",
        "--worker-apply-type",
        "parallel",
        "--max-parallel-workers",
        "2",
        "--alarm-restriction",
        "relaxed",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("Strategy for roost-0.2.0: initial (0 of 6 stages done"),
        "{out}"
    );
    assert!(err.contains("roost deploy strategy apply"), "{err}");
    let (_, v) = strategy(&s, "GET", "", None);
    let stages: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "deploy-start",
            "deploy-hosts controller-0",
            "deploy-hosts worker-1 worker-2",
            "deploy-hosts worker-3",
            "deploy-activate",
            "deploy-complete"
        ]
    );
    assert_eq!(v["state"], "initial");
    let (status, v) = strategy(&s, "POST", "", Some(json!({"release_id": "roost-0.2.0"})));
    assert_eq!(status, 400, "one strategy at a time: {v}");
    assert!(v.to_string().contains("exists already"), "{v}");
    let (code, out, err) = roost(&["deploy", "strategy", "apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // --watch returns once the strategy is over: applied, exit status 0.
    let (code, out, err) = roost(&["deploy", "strategy", "show", "--watch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("applied (6 of 6 stages done"), "{out}");
    let v = wait_strategy(&s, "applied");
    assert_eq!(v["stages_done"], 6, "{v}");
    assert_eq!(api.get("/v1/release/roost-0.2.0").body["state"], "deployed");
    assert_eq!(api.get("/v1/deploy").body, json!([]));
    for dir in agents
        .iter()
        .map(|a| a.data_dir.join("software"))
        .chain([s.data_dir.join("host-software")])
    {
        assert_eq!(
            std::fs::read(dir.join("current/etc/motd")).unwrap(),
            b"0.2.0\n",
            "{}",
            dir.display()
        );
    }
    let (status, _) = strategy(&s, "POST", "/actions", Some(json!({"action": "apply"})));
    assert_eq!(status, 400, "an applied strategy is not applied again");
    assert_eq!(strategy(&s, "DELETE", "", None).0, 204);

    // Serial: worker-2's health check fails, the strategy stops there and
    // worker-3 is not touched.
    std::fs::write(agents[1].data_dir.join("fail-health"), b"").unwrap();
    let (status, v) = strategy(&s, "POST", "", Some(json!({"release_id": "roost-0.3.0"})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["worker_apply_type"], "serial");
    assert_eq!(v["alarm_restriction"], "strict");
    strategy(&s, "POST", "/actions", Some(json!({"action": "apply"})));
    let (code, out, err) = roost(&["deploy", "strategy", "show", "--watch"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("roost: the strategy is failed: deploy-hosts worker-2"),
        "{err}"
    );
    let (code, out, _) = roost(&["deploy", "show"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Deploy of roost-0.3.0"), "{out}");
    assert!(out.contains("host-failed"), "{out}");
    let v = wait_strategy(&s, "failed");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("deploy-hosts worker-2: host worker-2 failed: the health check failed"),
        "{reason}"
    );
    assert_eq!(host_state(&api, "worker-1")["host_state"], "deployed");
    assert_eq!(host_state(&api, "worker-3")["host_state"], "pending");
    assert_eq!(deploy_state(&api), "host-failed");
    wait_for(30, || {
        (alarms_on(&api, "900.002") == ["host=worker-2"]).then_some(())
    })
    .expect("900.002 is raised on worker-2");
    let (status, _) = strategy(&s, "POST", "/actions", Some(json!({"action": "abort"})));
    assert_eq!(status, 400, "a failed strategy is over");
    assert_eq!(strategy(&s, "DELETE", "", None).0, 204);
}

#[test]
fn a_reboot_required_release_locks_reboots_and_unlocks_each_host() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("release.key");
    let public = release_cli(&["keygen", "--out", &key.display().to_string()]);
    let (s, _cfg) = Server::start_with_config(
        bin(),
        &format!("[software]\ntrusted_keys = [\"{public}\"]\n"),
    );
    let api = s.api();
    let names = ["worker-1", "worker-2"];
    let mut agents = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let join = api.add_host(name, "worker");
        // A reboot ends the agent; the loop below starts it again, as the
        // host's boot would.
        let agent = Agent::start(
            bin(),
            &s.url,
            &join,
            &tmp.path().join(name),
            &format!("127.0.0.{}", i + 8),
            &[
                "--report-interval-secs",
                "1",
                "--no-apps",
                "--reboot-command",
                "kill -TERM $PPID",
            ],
        )
        .expect("agent starts");
        api.wait_avail(name, "online", 60);
        assert_eq!(api.host_action(name, "unlock").status, 200);
        agents.push(agent);
    }
    for name in names {
        api.wait_avail(name, "available", 120);
    }
    let pids: Vec<u32> = agents.iter().map(|a| a.pid()).collect();
    let r = build_with(
        tmp.path(),
        &key,
        "roost-0.2.0",
        &[],
        &[
            ("etc/motd", b"0.2.0\n".to_vec()),
            ("hooks/health", HEALTH.into()),
        ],
        true,
    );
    upload(&s, &r);
    assert_eq!(
        api.get("/v1/release/roost-0.2.0").body["reboot_required"],
        true
    );

    // By hand, an unlocked host is refused.
    start_deploy(&s, "roost-0.2.0");
    refused(
        &s,
        "POST",
        "/v1/deploy_host/worker-1",
        None,
        "lock host worker-1 first",
    );
    ok(&s, "DELETE", "/v1/deploy", None);

    let (status, v) = strategy(&s, "POST", "", Some(json!({"release_id": "roost-0.2.0"})));
    assert_eq!(status, 200, "{v}");
    strategy(&s, "POST", "/actions", Some(json!({"action": "apply"})));
    let mut locked_seen = [false, false];
    let applied = wait_for(240, || {
        for (i, a) in agents.iter_mut().enumerate() {
            if api.host(names[i])["administrative"] == "locked" {
                locked_seen[i] = true;
            }
            if !Path::new(&format!("/proc/{}/exe", a.pid())).exists() {
                a.restart().expect("the agent starts after its reboot");
            }
        }
        let (_, v) = strategy(&s, "GET", "", None);
        assert_ne!(v["state"], "failed", "{v}");
        (v["state"] == "applied").then_some(v)
    });
    assert!(applied.is_some(), "{}", strategy(&s, "GET", "", None).1);
    assert_eq!(locked_seen, [true, true], "each host was locked");
    for (i, a) in agents.iter().enumerate() {
        assert_ne!(a.pid(), pids[i], "{} rebooted", names[i]);
        assert_eq!(
            std::fs::read(a.data_dir.join("software/current/etc/motd")).unwrap(),
            b"0.2.0\n"
        );
        let h = api.host(names[i]);
        assert_eq!(
            (h["administrative"].as_str(), h["availability"].as_str()),
            (Some("unlocked"), Some("available")),
            "{h}"
        );
    }
    assert_eq!(api.get("/v1/release/roost-0.2.0").body["state"], "deployed");
}

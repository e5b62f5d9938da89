//! The simulated BMC against real processes and a real HTTP client.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use roost_sim::{Bmc, BmcConfig, PowerState};
use serde_json::{Value, json};

const USER: &str = "root";
const PASS: &str = "s3cret";
const PATIENCE: Duration = Duration::from_secs(10);

/// A host that appends `started` to `file` on every boot, then sleeps.
fn counting_host(file: &Path) -> Vec<String> {
    sh(&format!(
        "echo started >> '{}'; exec sleep 1000",
        file.display()
    ))
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn config(command: Vec<String>) -> BmcConfig {
    BmcConfig {
        username: USER.into(),
        password: PASS.into(),
        system_id: "7".into(),
        command,
        ..BmcConfig::default()
    }
}

struct Sim {
    bmc: Bmc,
    http: Client,
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl Sim {
    async fn start(f: impl FnOnce(&Path) -> BmcConfig) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boots");
        let bmc = Bmc::start(f(&file)).await.unwrap();
        Sim {
            bmc,
            http: Client::new(),
            _dir: dir,
            file,
        }
    }

    async fn counting() -> Sim {
        Sim::start(|file| config(counting_host(file))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bmc.url())
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .basic_auth(USER, Some(PASS))
            .send()
            .await
            .unwrap()
    }

    async fn system(&self) -> Value {
        let resp = self.get("/redfish/v1/Systems/7").await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    async fn reset(&self, reset_type: &str) -> reqwest::Response {
        self.http
            .post(self.url("/redfish/v1/Systems/7/Actions/ComputerSystem.Reset"))
            .basic_auth(USER, Some(PASS))
            .json(&json!({"ResetType": reset_type}))
            .send()
            .await
            .unwrap()
    }

    fn boot_lines(&self) -> usize {
        std::fs::read_to_string(&self.file)
            .map(|s| s.lines().filter(|l| *l == "started").count())
            .unwrap_or(0)
    }

    async fn wait_for_pid(&self) -> u32 {
        wait_until("the host to run", || self.bmc.child_pid()).await
    }
}

/// Polls `f` every 20 ms until it returns `Some`, failing after 10 s.
async fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn wait_gone(pid: u32) {
    wait_until(&format!("pid {pid} to disappear"), || {
        (!alive(pid)).then_some(())
    })
    .await;
}

fn kill(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_root_is_served_without_authentication() {
    let sim = Sim::counting().await;
    for path in ["/redfish/v1", "/redfish/v1/"] {
        let resp = sim.http.get(sim.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["OData-Version"], "4.0");
        let root: Value = resp.json().await.unwrap();
        assert_eq!(root["@odata.id"], "/redfish/v1");
        assert_eq!(root["@odata.type"], "#ServiceRoot.v1_5_0.ServiceRoot");
        assert_eq!(root["Id"], "RootService");
        assert_eq!(root["RedfishVersion"], "1.6.0");
        assert_eq!(root["Systems"]["@odata.id"], "/redfish/v1/Systems");
    }
    let versions: Value = sim
        .http
        .get(sim.url("/redfish"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions["v1"], "/redfish/v1/");
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systems_require_basic_authentication() {
    let sim = Sim::counting().await;
    for path in [
        "/redfish/v1/Systems",
        "/redfish/v1/Systems/7",
        "/redfish/v1/Nope",
    ] {
        let anonymous = sim.http.get(sim.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            anonymous.headers()["WWW-Authenticate"],
            "Basic realm=\"roost-bmc\""
        );
        let wrong = sim
            .http
            .get(sim.url(path))
            .basic_auth(USER, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = wrong.json().await.unwrap();
        assert!(body["error"]["code"].is_string());
        let wrong_user = sim
            .http
            .get(sim.url(path))
            .basic_auth("admin", Some(PASS))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_user.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let reset = sim
        .http
        .post(sim.url("/redfish/v1/Systems/7/Actions/ComputerSystem.Reset"))
        .json(&json!({"ResetType": "ForceOff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    assert_eq!(sim.bmc.resets(), 0);

    let collection = sim.get("/redfish/v1/Systems").await;
    assert_eq!(collection.status(), StatusCode::OK);
    let collection: Value = collection.json().await.unwrap();
    assert_eq!(collection["Members@odata.count"], 1);
    assert_eq!(
        collection["Members"],
        json!([{"@odata.id": "/redfish/v1/Systems/7"}])
    );
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_is_on_at_start_and_advertises_the_reset_action() {
    let sim = Sim::counting().await;
    let pid = sim.wait_for_pid().await;
    assert!(alive(pid));
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    let system = sim.system().await;
    assert_eq!(system["@odata.id"], "/redfish/v1/Systems/7");
    assert_eq!(
        system["@odata.type"],
        "#ComputerSystem.v1_10_0.ComputerSystem"
    );
    assert_eq!(system["Id"], "7");
    assert_eq!(system["PowerState"], "On");
    assert_eq!(
        system["Status"],
        json!({"State": "Enabled", "Health": "OK"})
    );
    let action = &system["Actions"]["#ComputerSystem.Reset"];
    assert_eq!(
        action["target"],
        "/redfish/v1/Systems/7/Actions/ComputerSystem.Reset"
    );
    assert_eq!(
        action["ResetType@Redfish.AllowableValues"],
        json!([
            "On",
            "ForceOff",
            "GracefulShutdown",
            "GracefulRestart",
            "ForceRestart",
            "PowerCycle"
        ])
    );
    sim.bmc.shutdown().await;
    assert!(!alive(pid), "shutdown kills the host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_off_kills_the_host_and_on_starts_a_new_one() {
    let sim = Sim::counting().await;
    let first = sim.wait_for_pid().await;
    wait_until("the first boot to be logged", || {
        (sim.boot_lines() == 1).then_some(())
    })
    .await;

    let off = sim.reset("ForceOff").await;
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    wait_gone(first).await;
    assert_eq!(sim.bmc.power_state(), PowerState::Off);
    assert_eq!(sim.bmc.child_pid(), None);
    assert_eq!(sim.system().await["PowerState"], "Off");

    let on = sim.reset("On").await;
    assert_eq!(on.status(), StatusCode::NO_CONTENT);
    let second = sim.wait_for_pid().await;
    assert_ne!(first, second);
    assert!(alive(second));
    assert_eq!(sim.system().await["PowerState"], "On");
    wait_until("the second boot to be logged", || {
        (sim.boot_lines() == 2).then_some(())
    })
    .await;

    // On while already On is a no-op.
    let again = sim.reset("On").await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(sim.bmc.child_pid(), Some(second));
    assert_eq!(sim.bmc.resets(), 3);
    assert_eq!(sim.bmc.boots(), 2);
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_restart_starts_a_new_host_and_counts_a_reset() {
    let sim = Sim::counting().await;
    let first = sim.wait_for_pid().await;
    assert_eq!(sim.bmc.resets(), 0);

    let resp = sim.reset("ForceRestart").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    wait_gone(first).await;
    let second = sim.wait_for_pid().await;
    assert_ne!(first, second);
    assert_eq!(sim.bmc.resets(), 1);
    assert_eq!(sim.bmc.power_state(), PowerState::On);

    let resp = sim.reset("PowerCycle").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    wait_gone(second).await;
    let third = sim.wait_for_pid().await;
    assert_ne!(second, third);
    assert_eq!(sim.bmc.resets(), 2);
    wait_until("three boots to be logged", || {
        (sim.boot_lines() == 3).then_some(())
    })
    .await;
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_sends_sigterm() {
    let sim = Sim::start(|file| {
        let f = file.display();
        config(sh(&format!(
            "trap 'echo term >> \"{f}\"; exit 0' TERM; echo started >> '{f}'; \
             while :; do sleep 0.05; done"
        )))
    })
    .await;
    let pid = sim.wait_for_pid().await;
    wait_until("the host to install its trap", || {
        (sim.boot_lines() == 1).then_some(())
    })
    .await;

    let started = Instant::now();
    let resp = sim.reset("GracefulShutdown").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the host exited on TERM, no SIGKILL fallback needed"
    );
    let log = std::fs::read_to_string(&sim.file).unwrap();
    assert!(log.lines().any(|l| l == "term"), "log: {log:?}");
    wait_gone(pid).await;
    assert_eq!(sim.bmc.power_state(), PowerState::Off);
    assert_eq!(sim.bmc.child_pid(), None);
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_falls_back_to_sigkill_when_term_is_ignored() {
    let sim = Sim::start(|file| {
        let f = file.display();
        config(sh(&format!(
            "trap '' TERM; echo started >> '{f}'; while :; do sleep 0.05; done"
        )))
    })
    .await;
    let first = sim.wait_for_pid().await;
    wait_until("the host to ignore TERM", || {
        (sim.boot_lines() == 1).then_some(())
    })
    .await;

    let resp = sim.reset("GracefulRestart").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    wait_gone(first).await;
    let second = sim.wait_for_pid().await;
    assert_ne!(first, second);
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_exiting_with_194_is_rebooted() {
    let sim = Sim::start(|file| {
        let f = file.display();
        // First boot asks for a reboot; the second one stays up.
        config(sh(&format!(
            "echo started >> '{f}'; \
             if [ \"$(grep -c started '{f}')\" -lt 2 ]; then exit 194; fi; \
             exec sleep 1000"
        )))
    })
    .await;
    wait_until("the rebooted host to run", || {
        (sim.boot_lines() == 2 && sim.bmc.child_pid().is_some()).then_some(())
    })
    .await;
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    assert_eq!(sim.bmc.boots(), 2);
    assert_eq!(sim.bmc.resets(), 0, "a requested reboot is not a reset");
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_from_outside_is_not_restarted_and_stays_on() {
    let sim = Sim::start(|file| BmcConfig {
        log_file: Some(file.with_extension("log")),
        ..config(counting_host(file))
    })
    .await;
    let pid = sim.wait_for_pid().await;
    kill("-KILL", pid);
    wait_gone(pid).await;
    // The BMC logs what it decided about the exit; a restart (there is no
    // boot delay) would already have happened by then.
    let decided = format!("roost-bmc: host pid {pid} exited");
    let line = wait_until("the BMC to decide about the exit", || {
        let log = std::fs::read_to_string(sim.file.with_extension("log")).unwrap_or_default();
        log.lines()
            .find(|l| l.starts_with(&decided))
            .map(str::to_string)
    })
    .await;
    assert!(line.ends_with("staying powered on"), "{line}");
    assert_eq!(sim.bmc.child_pid(), None);
    assert_eq!(sim.boot_lines(), 1);
    assert_eq!(sim.bmc.boots(), 1);
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    assert_eq!(sim.system().await["PowerState"], "On");

    // A reset brings it back.
    let resp = sim.reset("ForceRestart").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let pid2 = sim.wait_for_pid().await;
    assert_ne!(pid, pid2);
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_bmc_answers_503() {
    let sim = Sim::counting().await;
    sim.bmc.set_refusing(true);
    for path in ["/redfish/v1", "/redfish/v1/Systems/7"] {
        assert_eq!(
            sim.get(path).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(
        sim.reset("ForceOff").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    sim.bmc.set_refusing(false);
    assert_eq!(
        sim.get("/redfish/v1/Systems/7").await.status(),
        StatusCode::OK
    );
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_reset_type_is_rejected_with_a_redfish_error() {
    let sim = Sim::counting().await;
    let pid = sim.wait_for_pid().await;
    let resp = sim.reset("Nmi").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Base.1.0.PropertyValueNotInList");
    assert!(body["error"]["message"].as_str().unwrap().contains("Nmi"));

    let missing = sim
        .http
        .post(sim.url("/redfish/v1/Systems/7/Actions/ComputerSystem.Reset"))
        .basic_auth(USER, Some(PASS))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let malformed = sim
        .http
        .post(sim.url("/redfish/v1/Systems/7/Actions/ComputerSystem.Reset"))
        .basic_auth(USER, Some(PASS))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    assert_eq!(sim.bmc.child_pid(), Some(pid));
    assert_eq!(sim.bmc.resets(), 0);
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_system_is_404() {
    let sim = Sim::counting().await;
    let resp = sim.get("/redfish/v1/Systems/8").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["code"].is_string());
    let resp = sim
        .http
        .post(sim.url("/redfish/v1/Systems/8/Actions/ComputerSystem.Reset"))
        .basic_auth(USER, Some(PASS))
        .json(&json!({"ResetType": "ForceOff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    assert_eq!(
        sim.get("/redfish/v1/Systems/7").await.status(),
        StatusCode::OK
    );
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_started_off_boots_after_the_boot_delay() {
    let sim = Sim::start(|file| BmcConfig {
        power_on_at_start: false,
        boot_delay: Duration::from_millis(300),
        log_file: Some(file.with_extension("log")),
        ..config(counting_host(file))
    })
    .await;
    assert_eq!(sim.bmc.power_state(), PowerState::Off);
    assert_eq!(sim.system().await["PowerState"], "Off");
    assert_eq!(sim.bmc.child_pid(), None);

    let resp = sim.reset("On").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    let pid = sim.wait_for_pid().await;
    assert!(alive(pid));
    assert_eq!(sim.bmc.boots(), 1);

    // The BMC notes each start in the host log.
    let log = std::fs::read_to_string(sim.file.with_extension("log")).unwrap();
    assert!(log.contains(&format!("host started, pid {pid}")), "{log}");
    sim.bmc.shutdown().await;
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_during_the_boot_delay_cancels_the_boot() {
    let sim = Sim::start(|file| BmcConfig {
        boot_delay: Duration::from_secs(2),
        ..config(counting_host(file))
    })
    .await;
    assert_eq!(sim.bmc.power_state(), PowerState::On);
    assert_eq!(sim.reset("ForceOff").await.status(), StatusCode::NO_CONTENT);
    // The boot comes due after the delay and is dropped.
    wait_until("the pending boot to be dropped", || {
        (sim.bmc.cancelled_boots() == 1).then_some(())
    })
    .await;
    assert_eq!(sim.bmc.child_pid(), None);
    assert_eq!(sim.bmc.boots(), 0);
    assert_eq!(sim.bmc.power_state(), PowerState::Off);
    sim.bmc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_command_is_refused() {
    assert!(Bmc::start(config(Vec::new())).await.is_err());
}

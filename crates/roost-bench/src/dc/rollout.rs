//! Benchmark `dc-rollout`: one release rolled out to N simulated subclouds
//! (5,000 by default; `--quick`: 200; `--sizes` the first size). A system
//! controller trusting a fresh signing key is uploaded a release of 1 MiB;
//! N subclouds of `roost sim subclouds --manage` fetch its file over their
//! mutual-TLS links (the real subcloud's fetch: resumed, checked) and report
//! the `software` endpoint in sync. Then, for each width (50, 200 and
//! 1,000; `--quick`: 50), a `sw-deploy` strategy with a canary of 10 and
//! `max-parallel-subclouds` of that width is created and applied, and timed
//! until `complete`. Each simulated subcloud answers its deploy order with
//! the phases a real one reports, its hosts' deploy lasting 2 s
//! (`--deploy-ms`), so the floor of a rollout is the number of waves times
//! one subcloud's deploy. Reported per width: time to complete, the waves
//! and the time per wave, the system controller's CPU time and peak RSS
//! during the rollout; and once: time for the release to reach every
//! subcloud and the bytes each received.

use std::time::{Duration, Instant};

use roost_test_support::{ServerOptions, release};
use serde_json::json;

use super::sim::{Api, SimSubclouds, num};
use super::wait_in_sync;
use crate::procfs;
use crate::{Plan, emit, start_server};

/// How long one simulated subcloud's hosts take to deploy, ms.
const DEPLOY_MS: u64 = 2000;
/// Subclouds in the canary stage.
const CANARY: usize = 10;

/// One rollout at one width.
struct Row {
    width: usize,
    secs: f64,
    waves: usize,
    cpu: Option<f64>,
    rss_before: f64,
    rss_peak: f64,
}

pub fn run(plan: &Plan, sizes: &[usize]) -> anyhow::Result<u64> {
    let n = sizes
        .first()
        .copied()
        .unwrap_or(if plan.quick { 200 } else { 5000 });
    let widths: Vec<usize> = if plan.quick {
        vec![50]
    } else {
        vec![50, 200, 1000]
    };
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("release.key");
    let public = release::release_cli(&plan.bin, &["keygen", "--out", &key.display().to_string()])
        .map_err(|e| anyhow::anyhow!("roost release keygen: {e}"))?;
    let config = dir.path().join("sc.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nlisten = \"127.0.0.1:0\"\n[apps]\nlocal_runtime = false\n\
             [software]\ntrusted_keys = [\"{public}\"]\n"
        ),
    )?;
    let server = start_server(
        plan,
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                config.display().to_string(),
            ],
            ..ServerOptions::default()
        },
    )?;
    let sc_pid = server.pid();
    let api = Api::new(&server.url, &server.token())?;

    eprintln!("dc-rollout: {n} subclouds");
    let timeout = Duration::from_secs(120) + Duration::from_millis(60 * n as u64);
    let mut sim = SimSubclouds::start_with(
        &plan.bin,
        &api.url,
        &api.token,
        n,
        "sim-",
        timeout,
        &["--deploy-ms", &DEPLOY_MS.to_string()],
    )?;
    wait_in_sync(
        &api,
        n,
        &Default::default(),
        Duration::from_secs(120) + Duration::from_millis(20 * n as u64),
        Duration::from_secs(1),
    )?;

    // The release reaches every subcloud.
    let payload: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let files: [(&str, &[u8]); 1] = [("data/blob", &payload)];
    let file = release::build_release(
        &plan.bin,
        dir.path(),
        &key,
        &release::ReleaseSpec {
            id: "roost-9.0.0",
            requires: &[],
            files: &files,
            reboot_required: false,
            health_check: None,
        },
    )
    .map_err(|e| anyhow::anyhow!("building the release: {e}"))?;
    let size = std::fs::metadata(&file)?.len();
    let s0 = sim.kv("stats")?;
    let t0 = Instant::now();
    let (status, v) = release::upload_release(&server.url, &api.token, &[file.as_path()]);
    anyhow::ensure!(status == 200 && v["error"] == "", "upload: {status} {v}");
    let reach = loop {
        let s = sim.kv("stats")?;
        let fetched = num(&s, "packages_fetched") - num(&s0, "packages_fetched");
        if fetched >= n as f64 {
            break t0.elapsed();
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(120) + Duration::from_millis(100 * n as u64),
            "{fetched} of {n} subclouds fetched the release; the simulator's log:\n{}",
            sim.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let s1 = sim.kv("stats")?;
    let bytes = (num(&s1, "package_bytes") - num(&s0, "package_bytes")) / n as f64;
    let failures = num(&s1, "package_failures") - num(&s0, "package_failures");

    let mut rows = Vec::new();
    let mut errors = 0u64;
    for &width in &widths {
        eprintln!("dc-rollout: {n} subclouds, {width} at once");
        api.post(
            "/v1.0/sw-update-strategy/",
            &json!({"type": "sw-deploy", "release_id": "roost-9.0.0",
                    "subcloud-apply-type": "parallel", "max-parallel-subclouds": width,
                    "stop-on-failure": "false", "canary": CANARY}),
        )?;
        let rss_before = procfs::status_mib(sc_pid, "VmRSS").unwrap_or(0.0);
        let mut rss_peak = rss_before;
        let cpu0 = procfs::cpu_secs(sc_pid);
        let t = Instant::now();
        api.post(
            "/v1.0/sw-update-strategy/actions?type=sw-deploy",
            &json!({"action": "apply"}),
        )?;
        let state = loop {
            std::thread::sleep(Duration::from_millis(500));
            rss_peak = rss_peak.max(procfs::status_mib(sc_pid, "VmRSS").unwrap_or(0.0));
            let s = api.get("/v1.0/sw-update-strategy?type=sw-deploy")?.body;
            let state = s["state"].as_str().unwrap_or_default().to_string();
            if matches!(state.as_str(), "complete" | "failed" | "aborted") {
                if state != "complete" {
                    eprintln!("dc-rollout: the strategy ended {state}: {}", s["reason"]);
                }
                break state;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(3600),
                "the rollout at width {width} did not end within an hour: {s}"
            );
        };
        let secs = t.elapsed().as_secs_f64();
        let cpu1 = procfs::cpu_secs(sc_pid);
        if state != "complete" {
            errors += 1;
        }
        api.delete("/v1.0/sw-update-strategy?type=sw-deploy")?;
        rows.push(Row {
            width,
            secs,
            waves: 1 + (n.saturating_sub(CANARY)).div_ceil(width),
            cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
            rss_before,
            rss_peak,
        });
    }
    sim.stop();

    let mut table = String::from(
        "| Max parallel | Waves (canary + rest) | Time to complete | Time per wave | System controller CPU (share of one core) | RSS before → peak |\n|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {:.1} s | {:.1} s | {} | {:.0} → {:.0} MiB |\n",
            r.width,
            r.waves,
            r.secs,
            r.secs / r.waves as f64,
            r.cpu.map_or("unknown".into(), |c| format!(
                "{c:.1} s ({:.0} %)",
                100.0 * c / r.secs
            )),
            r.rss_before,
            r.rss_peak,
        ));
    }
    emit(&format!(
        "## Fleet rollout: one release to {n} subclouds\n\n\
         System controller: `roost server --role systemcontroller`, default DC timers (sync every \
         2 s). Subclouds: `roost sim subclouds --manage --deploy-ms {DEPLOY_MS}` ({n}, one \
         process); each fetches the release file with the real subcloud's fetch and answers its \
         deploy order with the real subcloud's phases (`OrderSlot`), its hosts' deploy lasting \
         {DEPLOY_MS} ms. Strategy: `sw-deploy`, a canary of {CANARY}, then one stage of \
         `max-parallel-subclouds`.\n\n\
         | Measure | Value |\n|---|---|\n\
         | Release file | {size} bytes |\n\
         | Time from the upload to every subcloud holding the release | {:.1} s |\n\
         | Release bytes received per subcloud | {bytes:.0} (fetched once; {failures:.0} failed fetches) |\n\n\
         {table}\n\
         A wave cannot take less than one subcloud's deploy ({:.1} s) plus the round trips of its \
         phases (sync every 2 s, an answer that changed is sent within 50 ms); the time per \
         wave above that floor is the system controller's and the simulator's share.\n",
        reach.as_secs_f64(),
        DEPLOY_MS as f64 / 1000.0,
    ));
    Ok(errors)
}

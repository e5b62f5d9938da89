//! Benchmark `dc-apps`: one application to N simulated subclouds (1,000 by
//! default; `--quick`: 100; `--sizes` the first size). A system controller
//! (`roost server --role systemcontroller`, no local runtime) is uploaded
//! a small application (a Deployment of static busybox); N subclouds of
//! `roost sim subclouds --manage` enroll and come in-sync; then the
//! application is assigned to their group (`Default`) and the benchmark
//! times until every subcloud reports it applied (the `apps` endpoint
//! in-sync and the application `applied` in `GET /v1.0/subcloud-apps`).
//! Each simulated subcloud fetches the package over its mutual-TLS link with
//! the real subcloud's fetch code (`roost_pki::fetch_content`: resumed,
//! checked against the digest) before it acknowledges the push; it does
//! not run the application (no containers). Reported: time to all applied
//! (and to half), bytes sent per subcloud (from the system controller's
//! counters), the system controller's CPU time during the rollout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roost_test_support::ServerOptions;
use serde_json::json;

use super::sim::{Api, SimSubclouds, num};
use super::wait_in_sync;
use crate::procfs;
use crate::{Plan, emit, start_server};

/// A package of one Deployment whose image is static busybox (a text file
/// when busybox is not installed).
fn package(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = dir.join("hello-1.0");
    std::fs::create_dir_all(src.join("manifests"))?;
    std::fs::create_dir_all(src.join("images"))?;
    std::fs::write(
        src.join("metadata.yaml"),
        "app_name: hello\napp_version: \"1.0\"\n",
    )?;
    std::fs::write(
        src.join("manifests/app.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 1
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      hostNetwork: true
      containers:
        - name: main
          image: registry.local/hello:1
          command: [\"/bin/sh\", \"-c\", \"sleep 100000\"]
",
    )?;
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin"))?;
    if Path::new("/bin/busybox").exists() {
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
        std::os::unix::fs::symlink("busybox", root.join("bin/sh"))?;
    } else {
        std::fs::write(root.join("bin/hello"), "hello\n")?;
    }
    roost_runtime::oci::build_image_from_dir(
        &root,
        &src.join("images/hello.tar"),
        &roost_runtime::oci::BuildOptions {
            name: "registry.local/hello:1".into(),
            cmd: vec!["/bin/sh".into()],
            ..Default::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("building the image: {e}"))?;
    let out = dir.join("hello-1.0.tgz");
    roost_package::build(&src, &out).map_err(|e| anyhow::anyhow!("building the package: {e}"))?;
    Ok(out)
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn run(plan: &Plan, sizes: &[usize]) -> anyhow::Result<u64> {
    let n = sizes
        .first()
        .copied()
        .unwrap_or(if plan.quick { 100 } else { 1000 });
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("sc.toml");
    std::fs::write(
        &config,
        "[dc]\nlisten = \"127.0.0.1:0\"\n[apps]\nlocal_runtime = false\n",
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
    let tgz = package(dir.path())?;
    let size = std::fs::metadata(&tgz)?.len();
    api.post(
        "/v1/apps",
        &json!({
            "tarfile": tgz.display().to_string(),
            "binary_data": base64(&std::fs::read(&tgz)?),
        }),
    )?;
    let t = Instant::now();
    while api.get("/v1/apps/hello")?.body["status"] != "uploaded" {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(60),
            "the package never became uploaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    eprintln!("dc-apps: {n} subclouds");
    let timeout = Duration::from_secs(120) + Duration::from_millis(60 * n as u64);
    let mut sim = SimSubclouds::start(&plan.bin, &api.url, &api.token, n, "sim-", timeout)?;
    wait_in_sync(
        &api,
        n,
        &Default::default(),
        Duration::from_secs(120) + Duration::from_millis(20 * n as u64),
        Duration::from_secs(1),
    )?;
    std::thread::sleep(Duration::from_secs(3));

    let cpu0 = procfs::cpu_secs(sc_pid);
    let s0 = sim.kv("stats")?;
    let t0 = Instant::now();
    api.post(
        "/v1.0/subcloud-groups/Default/apps",
        &json!({"app": "hello"}),
    )?;
    let mut half = None;
    let all = loop {
        let rows = api.get("/v1.0/subcloud-apps")?.body;
        let applied = rows["subclouds"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|s| s["sync_status"] == "in-sync" && s["apps"][0]["state"] == "applied")
                    .count()
            })
            .unwrap_or(0);
        if half.is_none() && applied * 2 >= n {
            half = Some(t0.elapsed());
        }
        if applied >= n {
            break t0.elapsed();
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(300) + Duration::from_millis(100 * n as u64),
            "{applied} of {n} subclouds applied after {:.0} s; the simulator's log:\n{}",
            t0.elapsed().as_secs_f64(),
            sim.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let cpu1 = procfs::cpu_secs(sc_pid);
    let s1 = sim.kv("stats")?;
    let rows = api.get("/v1.0/subcloud-apps")?.body;
    let per: Vec<u64> = rows["subclouds"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|s| s["package_bytes"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let requests: u64 = rows["subclouds"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|s| s["package_requests"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let (min, max) = (
        per.iter().copied().min().unwrap_or(0),
        per.iter().copied().max().unwrap_or(0),
    );
    let fetched = num(&s1, "packages_fetched") - num(&s0, "packages_fetched");
    let failures = num(&s1, "package_failures") - num(&s0, "package_failures");
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => format!("{:.2} s", b - a),
        _ => "unknown".into(),
    };
    sim.stop();
    emit(&format!(
        "## Applications across the fleet: one application to {n} subclouds\n\n\
         System controller: `roost server --role systemcontroller` (no local runtime), default DC \
         timers (sync every 2 s). Subclouds: `roost sim subclouds --manage` ({n}, one process), each \
         fetching the package over its mutual-TLS link with the real subcloud's fetch \
         (`roost_pki::fetch_content`) before acknowledging the `apps` push (it runs no containers). \
         Application: one Deployment, package {size} bytes.\n\n\
         | Measure | Value |\n|---|---|\n\
         | Time from the assignment to all {n} subclouds applied | {:.1} s |\n\
         | Time to half of them | {} |\n\
         | Package bytes sent per subcloud (min / max) | {min} / {max} (package {size}) |\n\
         | Package requests in all | {requests} ({fetched:.0} fetches, {failures:.0} failed) |\n\
         | System controller CPU time during the rollout | {cpu} |\n",
        all.as_secs_f64(),
        half.map_or("-".into(), |h| format!("{:.1} s", h.as_secs_f64())),
    ));
    Ok(u64::from(min != size || max != size))
}

//! Benchmark `apps`: applications on real hosts, real containerd.
//!
//! 1. **Upload to running**: a one-container busybox application uploaded
//!    (`POST /v1/apps`, the body `system application-upload` sends), applied
//!    and run on the server's own host; per trial a fresh name. The first
//!    trial starts the server's private containerd lazily (cold).
//! 2. **Failover**: a server without a local runtime, two real agents; one
//!    replica with a `nodeSelector`. Per trial the agent of the host running
//!    it is stopped with SIGSTOP; the replica's move is polled every 20 ms
//!    until it is `running` on the other host. Then SIGCONT, and the next
//!    trial waits until the host is `available` and its containerd runs
//!    nothing.
//! 3. **Density**: 100 busybox containers on one agent host: time to all
//!    running, the agent's, containerd's, the shims' and the loggers'
//!    memory, then time to all gone.
//! 4. **Jitter**: `cyclictest` in a container on an application-isolated
//!    core against the same in an unpinned container, while `stress-ng` in
//!    another container loads the platform cores.
//!
//! It is not part of `all`: a full run takes about 15 minutes, `--quick`
//! about 5. `ROOST_BENCH_APPS=2,4` runs only some of the four parts;
//! `ROOST_BENCH_FAILOVER_TRIALS=N` changes the number of failover trials. Needs
//! root, containerd, runc and busybox-static; part 4 installs the Debian
//! packages `rt-tests` and `stress-ng` when they are missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use roost_api::apps::{App, AppPatch, AppReplicaList};
use roost_test_support::{Agent, Server, ServerOptions};
use serde_json::{Value, json};

use crate::mtce::probe::{self, Http};
use crate::stats::{Dist, ms, ratio};
use crate::table::Table;
use crate::{Plan, emit, procfs};

const BUSYBOX: &str = "registry.local/busybox:1";
const TOOLS: &str = "registry.local/rt-tools:1";
/// Time between two polls of the API while something is timed.
const POLL: Duration = Duration::from_millis(20);
/// Longest a timed step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// Failover target.
const FAILOVER_TARGET: Duration = Duration::from_secs(3);
/// Kubernetes defaults: kube-controller-manager `--node-monitor-grace-period`
/// (40 s) before a silent node is NotReady/Unreachable, then the
/// `DefaultTolerationSeconds` admission plugin's 300 s tolerations for
/// `node.kubernetes.io/not-ready` and `unreachable` before eviction.
const K8S_GRACE_S: f64 = 40.0;
const K8S_TOLERATION_S: f64 = 300.0;

/// How much to measure.
struct Spec {
    upload_trials: usize,
    failover_trials: usize,
    density: usize,
    steady: Duration,
    jitter_loops: u64,
}

impl Spec {
    fn new(quick: bool) -> Spec {
        Spec {
            upload_trials: if quick { 5 } else { 20 },
            failover_trials: std::env::var("ROOST_BENCH_FAILOVER_TRIALS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if quick { 5 } else { 30 }),
            density: 100,
            steady: Duration::from_secs(if quick { 5 } else { 20 }),
            // -i 200 µs: 150,000 loops is 30 s.
            jitter_loops: if quick { 25_000 } else { 150_000 },
        }
    }
}

/// Runs the parts asked for, printing each table as it completes; returns
/// the number of failed trials and parts.
pub fn run(plan: &Plan) -> anyhow::Result<u64> {
    prerequisites()?;
    let spec = Spec::new(plan.quick);
    let parts = parts_wanted(std::env::var("ROOST_BENCH_APPS").ok().as_deref())?;
    let mut errors = 0u64;
    if parts[0] {
        match upload(plan, &spec) {
            Ok(u) => emit(&render_upload(&u)),
            Err(e) => fail(&mut errors, "upload to running", e),
        }
    }
    if parts[1] {
        match failover(plan, &spec) {
            Ok(f) => {
                errors += f.errors.len() as u64;
                emit(&render_failover(&f));
            }
            Err(e) => fail(&mut errors, "failover", e),
        }
    }
    if parts[2] {
        match density(plan, &spec) {
            Ok(d) => emit(&render_density(&d)),
            Err(e) => fail(&mut errors, "density", e),
        }
    }
    if parts[3] {
        match jitter(plan, &spec) {
            Ok(j) => emit(&render_jitter(&j)),
            Err(e) => fail(&mut errors, "jitter", e),
        }
    }
    Ok(errors)
}

/// Reports a part that could not run.
fn fail(errors: &mut u64, what: &str, e: anyhow::Error) {
    eprintln!("apps: {what} failed: {e:#}");
    emit(&format!("**{what} could not run:** {e:#}\n"));
    *errors += 1;
}

/// Which of the four parts to run: all, or those listed (`1,3`).
fn parts_wanted(list: Option<&str>) -> anyhow::Result<[bool; 4]> {
    let Some(list) = list.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok([true; 4]);
    };
    let mut parts = [false; 4];
    for p in list.split(',') {
        match p.trim().parse::<usize>() {
            Ok(n @ 1..=4) => parts[n - 1] = true,
            _ => anyhow::bail!("ROOST_BENCH_APPS lists parts 1 to 4 (like 2,4), not {p:?}"),
        }
    }
    Ok(parts)
}

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Root, containerd, runc and busybox-static: what running containers needs.
fn prerequisites() -> anyhow::Result<()> {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !(root && have("containerd") && have("runc") && Path::new("/bin/busybox").exists()) {
        anyhow::bail!(
            "the apps benchmark needs root, containerd, runc and /bin/busybox \
             (Debian: apt-get install containerd runc busybox-static)"
        );
    }
    Ok(())
}

/// Installs Debian packages when `cmd` is missing (as `./scripts/test` does).
fn ensure_installed(cmd: &str, package: &str) -> anyhow::Result<()> {
    if have(cmd) {
        return Ok(());
    }
    eprintln!("  installing {package} (no {cmd})");
    let ok = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -qq {package} >/dev/null"
            ),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !have(cmd) {
        anyhow::bail!("{cmd} is missing and apt-get install {package} failed");
    }
    Ok(())
}

// ------------------------------------------------------------ packages

/// A package source: metadata, one manifest, the image archive made from `root`.
fn source(
    dir: &Path,
    name: &str,
    manifest: &str,
    image: &str,
    root: &Path,
) -> anyhow::Result<PathBuf> {
    let src = dir.join(format!("{name}-1"));
    std::fs::create_dir_all(src.join("manifests"))?;
    std::fs::create_dir_all(src.join("images"))?;
    std::fs::write(
        src.join("metadata.yaml"),
        format!("app_name: {name}\napp_version: \"1\"\n"),
    )?;
    std::fs::write(src.join("manifests/app.yaml"), manifest)?;
    roost_runtime::oci::build_image_from_dir(
        root,
        &src.join("images/image.tar"),
        &roost_runtime::oci::BuildOptions {
            name: image.into(),
            cmd: vec!["/bin/sh".into()],
            ..Default::default()
        },
    )
    .with_context(|| format!("build image {image}"))?;
    let tgz = src.with_extension("tgz");
    roost_package::build(&src, &tgz).with_context(|| format!("package {name}"))?;
    Ok(tgz)
}

/// A root filesystem with static busybox and a few applets.
fn busybox_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("busybox-rootfs");
    if root.exists() {
        return Ok(root);
    }
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    for applet in ["sh", "sleep", "true", "cat", "echo", "grep", "[", "test"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    Ok(root)
}

/// Busybox plus the host's `cyclictest` and `stress-ng` with the shared
/// libraries `ldd` names, at the same paths.
fn tools_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = busybox_root(dir)?;
    for tool in ["/usr/bin/cyclictest", "/usr/bin/stress-ng"] {
        let mut files = vec![PathBuf::from(tool)];
        let out = std::process::Command::new("ldd").arg(tool).output()?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libx.so.1 => /lib/x/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                files.push(PathBuf::from(p));
            }
        }
        for f in files {
            let to = root.join(f.strip_prefix("/")?);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&f, &to).with_context(|| format!("copy {}", f.display()))?;
        }
    }
    Ok(root)
}

/// The body `system application-upload` sends.
fn upload_body(tgz: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(tgz)?;
    Ok(json!({
        "tarfile": tgz.display().to_string(),
        "binary_data": roost_api::apps::base64::encode(&bytes),
    }))
}

fn app(http: &Http, name: &str) -> anyhow::Result<App> {
    Ok(serde_json::from_value(
        http.get(&format!("/v1/apps/{name}"))?,
    )?)
}

fn replicas(http: &Http, name: &str) -> anyhow::Result<AppReplicaList> {
    Ok(serde_json::from_value(
        http.get(&format!("/v1/apps/{name}/replicas"))?,
    )?)
}

fn directive(http: &Http, name: &str, d: &str) -> anyhow::Result<()> {
    http.patch(
        &format!("/v1/apps/{name}?directive={d}"),
        &serde_json::to_value(AppPatch::default())?,
    )?;
    Ok(())
}

/// Polls until the application's status is `want`; the time it took.
fn wait_status(http: &Http, name: &str, want: &str, timeout: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let a = app(http, name)?;
        if a.status == want {
            return Ok(t0.elapsed());
        }
        if a.status.ends_with("-failed") {
            anyhow::bail!("{name} is {} ({:?}), not {want}", a.status, a.progress);
        }
        if t0.elapsed() > timeout {
            anyhow::bail!("{name} is {}, not {want}, after {timeout:?}", a.status);
        }
        std::thread::sleep(POLL);
    }
}

/// Uploads `tgz` and waits until it is uploaded.
fn upload_app(http: &Http, name: &str, tgz: &Path) -> anyhow::Result<()> {
    http.post("/v1/apps", &upload_body(tgz)?)?;
    wait_status(http, name, "uploaded", STEP_TIMEOUT)?;
    Ok(())
}

/// Removes (waits for `uploaded`) and deletes an application.
fn remove_app(http: &Http, name: &str) -> anyhow::Result<()> {
    directive(http, name, "remove")?;
    wait_status(http, name, "uploaded", STEP_TIMEOUT)?;
    http.delete(&format!("/v1/apps/{name}"))
}

/// A server with `[apps]` settings, its config file kept beside it.
fn server_with(plan: &Plan, apps: &str) -> anyhow::Result<(Server, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("roost.toml");
    std::fs::write(&conf, format!("[apps]\n{apps}"))?;
    let server = crate::start_server(
        plan,
        ServerOptions {
            env: vec![("ROOST_CONFIG".into(), conf.display().to_string())],
            ..Default::default()
        },
    )?;
    Ok((server, dir))
}

fn label(http: &Http, host: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let h = http.get(&format!("/v1/ihosts/{host}"))?;
    let uuid = h["uuid"].as_str().context("host without uuid")?;
    http.post(&format!("/v1/labels/{uuid}"), &json!({ key: value }))?;
    Ok(())
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

/// Containers of the containerd at `sock`: (all, with a running task).
fn containerd_counts(sock: &Path) -> anyhow::Result<(usize, usize)> {
    if !sock.exists() {
        return Ok((0, 0));
    }
    block_on(async {
        let c = roost_runtime::Containerd::connect(sock).await?;
        let all = c.list().await?;
        let running = all
            .iter()
            .filter(|s| {
                s.task
                    .as_ref()
                    .is_some_and(|t| t.status == roost_runtime::TaskStatus::Running)
            })
            .count();
        Ok::<_, roost_runtime::Error>((all.len(), running))
    })?
    .map_err(anyhow::Error::from)
}

fn agent_sock(a: &Agent) -> PathBuf {
    a.data_dir.join("apps/containerd/containerd.sock")
}

/// Stops an agent with SIGTERM (its containerd goes with it) and waits.
fn stop_agent(a: &Agent) {
    let pid = a.pid();
    a.signal("CONT");
    a.signal("TERM");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.contains(") Z "));
        if gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn secs_text(d: Duration) -> String {
    format!("{} ms", ms(d))
}

fn dist_cells(d: &Dist) -> [String; 4] {
    if d.len() == 0 {
        return ["—".into(), "—".into(), "—".into(), "—".into()];
    }
    [
        secs_text(d.pct(50.0)),
        secs_text(d.pct(99.0)),
        secs_text(d.min()),
        secs_text(d.max()),
    ]
}

// ---------------------------------------------------------------- 1

struct UploadTrial {
    uploaded: Duration,
    running: Duration,
    applied: Duration,
}

struct UploadResults {
    trials: Vec<UploadTrial>,
    errors: Vec<String>,
}

const ONE_SLEEPER: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: main}
spec:
  replicas: 1
  selector: {matchLabels: {app: main}}
  template:
    metadata: {labels: {app: main}}
    spec:
      hostNetwork: true
      containers:
        - name: main
          image: registry.local/busybox:1
          command: [\"/bin/sh\", \"-c\", \"exec sleep 100000\"]
";

fn upload(plan: &Plan, spec: &Spec) -> anyhow::Result<UploadResults> {
    eprintln!(
        "apps 1: upload to running, {} trials on the server's own host",
        spec.upload_trials
    );
    plan.settle();
    let server = crate::start_server(plan, ServerOptions::default())?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let _reaper = Reaper(vec![server.data_dir.clone()]);
    let root = busybox_root(dir.path())?;
    let mut r = UploadResults {
        trials: Vec::new(),
        errors: Vec::new(),
    };
    for i in 0..spec.upload_trials {
        let name = format!("up{i}");
        let tgz = source(dir.path(), &name, ONE_SLEEPER, BUSYBOX, &root)?;
        let body = upload_body(&tgz)?;
        match upload_trial(&http, &name, &body) {
            Ok(t) => {
                eprintln!(
                    "  trial {i}: running after {} ms, applied after {} ms",
                    ms(t.running),
                    ms(t.applied)
                );
                r.trials.push(t);
            }
            Err(e) => {
                eprintln!("  trial {i} failed: {e:#}");
                r.errors.push(format!("{e:#}"));
            }
        }
        if let Err(e) = remove_app(&http, &name) {
            eprintln!("  removing {name} failed: {e:#}");
        }
    }
    Ok(r)
}

fn upload_trial(http: &Http, name: &str, body: &Value) -> anyhow::Result<UploadTrial> {
    let t0 = Instant::now();
    http.post("/v1/apps", body)?;
    wait_status(http, name, "uploaded", STEP_TIMEOUT)?;
    let uploaded = t0.elapsed();
    directive(http, name, "apply")?;
    let (mut running, mut applied) = (None, None);
    loop {
        let r = replicas(http, name)?;
        let t = t0.elapsed();
        if running.is_none() && r.replicas.iter().any(|x| x.state == "running") {
            running = Some(t);
        }
        if applied.is_none() && r.status == "applied" {
            applied = Some(t);
        }
        if r.status == "apply-failed" {
            anyhow::bail!("{name} apply-failed: {:?}", r.replicas);
        }
        if let (Some(running), Some(applied)) = (running, applied) {
            return Ok(UploadTrial {
                uploaded,
                running,
                applied,
            });
        }
        if t > STEP_TIMEOUT {
            anyhow::bail!(
                "{name} is {} after {STEP_TIMEOUT:?}: {:?}",
                r.status,
                r.replicas
            );
        }
        std::thread::sleep(POLL);
    }
}

fn render_upload(r: &UploadResults) -> String {
    let mut out = String::from("### Applications 1. Upload to running\n\n");
    out.push_str(
        "A one-container busybox application (`sleep`, host network), packaged with Roost's own \
         tools, uploaded as `system application-upload` sends it (one JSON body, the package in \
         base64), on the AIO server's own host (its private containerd). Each trial uses a fresh \
         application name and times from sending `POST /v1/apps` to: the application `uploaded` \
         (then `PATCH ?directive=apply` is sent), the replica reported `running` by \
         `GET /v1/apps/{name}/replicas`, and the application `applied` (polled every 20 ms). The \
         first trial is cold: the server starts its containerd on first use and imports the image; \
         the others find containerd running and the image's layer already there. Between trials \
         the application is removed and deleted.\n\n",
    );
    let mut t = Table::new(&["trials", ">n", "to", ">p50", ">p99", ">min", ">max"]);
    let groups: Vec<(&str, &[UploadTrial])> = vec![
        ("first (cold)", &r.trials[..r.trials.len().min(1)]),
        ("the others (warm)", r.trials.get(1..).unwrap_or(&[])),
        ("all", &r.trials[..]),
    ];
    for (label, trials) in groups {
        for (to, pick) in [
            (
                "uploaded",
                (|t: &UploadTrial| t.uploaded) as fn(&UploadTrial) -> Duration,
            ),
            ("replica running", |t| t.running),
            ("applied", |t| t.applied),
        ] {
            let d = Dist::new(trials.iter().map(pick).collect());
            let [p50, p99, min, max] = dist_cells(&d);
            t.row(vec![
                label.into(),
                trials.len().to_string(),
                to.into(),
                p50,
                p99,
                min,
                max,
            ]);
        }
    }
    out.push_str(&t.render());
    if !r.errors.is_empty() {
        out.push_str(&format!(
            "\n{} trials failed; the first: {}\n",
            r.errors.len(),
            r.errors[0]
        ));
    }
    out
}

// ---------------------------------------------------------------- 2

const FAILOVER_APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  replicas: 1
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      hostNetwork: true
      nodeSelector: {pool: edge}
      containers:
        - name: main
          image: registry.local/busybox:1
          command: [\"/bin/sh\", \"-c\", \"exec sleep 100000\"]
";

struct FailoverTrial {
    /// SIGSTOP to the host reported `failed`.
    detected: Duration,
    /// SIGSTOP to the replica `running` on the other host.
    running: Duration,
    /// SIGCONT to the host `available` with nothing running on it.
    recovery: Duration,
    /// The stopped host's containerd still ran the old copy when the new
    /// one was reported running.
    two_copies: bool,
}

struct FailoverResults {
    trials: Vec<FailoverTrial>,
    errors: Vec<String>,
    heartbeat: String,
}

fn failover(plan: &Plan, spec: &Spec) -> anyhow::Result<FailoverResults> {
    eprintln!(
        "apps 2: failover, {} SIGSTOP trials, two agents",
        spec.failover_trials
    );
    plan.settle();
    let (server, _conf) = server_with(plan, "local_runtime = false\n")?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let _reaper = Reaper(vec![dir.path().join("fo-0"), dir.path().join("fo-1")]);
    let mut agents = Vec::new();
    for (i, ip) in ["127.0.0.2", "127.0.0.3"].iter().enumerate() {
        let name = format!("fo-{i}");
        agents.push(probe::available_agent(
            &plan.bin,
            &http,
            dir.path(),
            &name,
            ip,
        )?);
        label(&http, &name, "pool", "edge")?;
    }
    let heartbeat = heartbeat_settings(&http);
    let root = busybox_root(dir.path())?;
    let tgz = source(dir.path(), "fo", FAILOVER_APP, BUSYBOX, &root)?;
    upload_app(&http, "fo", &tgz)?;
    directive(&http, "fo", "apply")?;
    wait_status(&http, "fo", "applied", STEP_TIMEOUT)?;
    let mut r = FailoverResults {
        trials: Vec::new(),
        errors: Vec::new(),
        heartbeat,
    };
    for i in 0..spec.failover_trials {
        match failover_trial(&http, &agents) {
            Ok(t) => {
                eprintln!(
                    "  trial {i}: failed after {} ms, running elsewhere after {} ms",
                    ms(t.detected),
                    ms(t.running)
                );
                r.trials.push(t);
            }
            Err(e) => {
                eprintln!("  trial {i} failed: {e:#}");
                r.errors.push(format!("{e:#}"));
                for a in &agents {
                    a.signal("CONT");
                }
                for a in &agents {
                    http.wait_avail(&a.hostname, "available", STEP_TIMEOUT)?;
                }
            }
        }
    }
    let _ = remove_app(&http, "fo");
    for a in &agents {
        stop_agent(a);
    }
    Ok(r)
}

/// The heartbeat period and failure threshold in force, as text.
fn heartbeat_settings(http: &Http) -> String {
    let Ok(list) = http.get("/v1/service_parameter") else {
        return "unknown".into();
    };
    let get = |n: &str| {
        list["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == n)
            .and_then(|p| p["value"].as_str().map(str::to_string))
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} ms × {}",
        get("heartbeat_period"),
        get("heartbeat_failure_threshold")
    )
}

fn failover_trial(http: &Http, agents: &[Agent]) -> anyhow::Result<FailoverTrial> {
    let r = replicas(http, "fo")?;
    let rep = r.replicas.first().context("no replica")?;
    anyhow::ensure!(rep.state == "running", "replica is {}", rep.state);
    let host = rep.host.clone().context("replica not placed")?;
    let (lost, kept) = if agents[0].hostname == host {
        (&agents[0], &agents[1])
    } else {
        (&agents[1], &agents[0])
    };
    let t0 = Instant::now();
    lost.signal("STOP");
    let mut detected = None;
    let running = loop {
        let r = replicas(http, "fo")?;
        let t = t0.elapsed();
        if detected.is_none() && http.availability(&lost.hostname)? == "failed" {
            detected = Some(t0.elapsed());
        }
        let moved = r
            .replicas
            .iter()
            .any(|x| x.host.as_deref() == Some(kept.hostname.as_str()) && x.state == "running");
        if moved {
            break t;
        }
        if t > STEP_TIMEOUT {
            lost.signal("CONT");
            anyhow::bail!(
                "the replica did not move in {STEP_TIMEOUT:?}: {:?}",
                r.replicas
            );
        }
        std::thread::sleep(POLL);
    };
    let (_, old_copy) = containerd_counts(&agent_sock(lost))?;
    let detected = match detected {
        Some(d) => d,
        // The move and the failure were seen in the same poll.
        None if http.availability(&lost.hostname)? == "failed" => running,
        None => {
            lost.signal("CONT");
            anyhow::bail!("the replica moved but {} is not failed", lost.hostname);
        }
    };
    let back = Instant::now();
    lost.signal("CONT");
    http.wait_avail(&lost.hostname, "available", STEP_TIMEOUT)?;
    loop {
        let (_, running) = containerd_counts(&agent_sock(lost))?;
        if running == 0 {
            break;
        }
        if back.elapsed() > STEP_TIMEOUT {
            anyhow::bail!("{} still runs {running} containers", lost.hostname);
        }
        std::thread::sleep(POLL);
    }
    let recovery = back.elapsed();
    let (_, on_kept) = containerd_counts(&agent_sock(kept))?;
    anyhow::ensure!(
        on_kept == 1,
        "{} runs {on_kept} containers, not 1",
        kept.hostname
    );
    Ok(FailoverTrial {
        detected,
        running,
        recovery,
        two_copies: old_copy > 0,
    })
}

fn render_failover(r: &FailoverResults) -> String {
    let mut out = String::from("### Applications 2. Failover\n\n");
    out.push_str(&format!(
        "A server with `[apps] local_runtime = false` and two real agents (127.0.0.2 and \
         127.0.0.3, each with its private containerd), both labelled `pool=edge`; one replica of \
         a busybox Deployment with `nodeSelector: {{pool: edge}}`. Each trial sends SIGSTOP to the \
         agent of the host running the replica (the agent stops answering heartbeats and plan \
         polls; its containerd and container are not stopped) and polls \
         `GET /v1/apps/fo/replicas` and the host every 20 ms: \"detection\" is SIGSTOP → host \
         `failed`, \"replacement\" is `failed` → the replica `running` on the other host, \
         \"failover\" the sum. Then SIGCONT; the next trial starts when the host is `available` \
         again and its containerd runs nothing (\"recovery\"), so trials alternate between the two \
         hosts. Heartbeat: the server's defaults ({}). Kubernetes' row is its documented default, \
         not measured: kube-controller-manager's `--node-monitor-grace-period` (40 s) before the \
         node is marked NotReady/Unreachable, plus the 300 s `tolerationSeconds` that the \
         DefaultTolerationSeconds admission plugin gives every pod for \
         `node.kubernetes.io/not-ready` and `unreachable` before it is evicted and replaced (the \
         replacement's own start comes on top).\n\n",
        r.heartbeat
    ));
    let total = Dist::new(r.trials.iter().map(|t| t.running).collect());
    let detect = Dist::new(r.trials.iter().map(|t| t.detected).collect());
    let replace = Dist::new(
        r.trials
            .iter()
            .map(|t| t.running.saturating_sub(t.detected))
            .collect(),
    );
    let recovery = Dist::new(r.trials.iter().map(|t| t.recovery).collect());
    let mut t = Table::new(&["", ">trials", ">p50", ">p99", ">min", ">max", "target"]);
    for (label, d, target) in [
        (
            "failover: SIGSTOP → running elsewhere",
            &total,
            format!(
                "< 3 s ({})",
                if total.len() > 0 && total.max() < FAILOVER_TARGET {
                    "met"
                } else {
                    "**MISSED**"
                }
            ),
        ),
        ("detection: SIGSTOP → host failed", &detect, "—".into()),
        (
            "replacement: failed → running elsewhere",
            &replace,
            "—".into(),
        ),
        (
            "recovery: SIGCONT → available, nothing left",
            &recovery,
            "—".into(),
        ),
    ] {
        let [p50, p99, min, max] = dist_cells(d);
        t.row(vec![
            label.into(),
            d.len().to_string(),
            p50,
            p99,
            min,
            max,
            target,
        ]);
    }
    let k8s = (K8S_GRACE_S + K8S_TOLERATION_S) * 1000.0;
    t.row(vec![
        "Kubernetes default (documented, not measured)".into(),
        "—".into(),
        format!("{} ms", crate::stats::group(k8s as u64)),
        "—".into(),
        "—".into(),
        "—".into(),
        "—".into(),
    ]);
    out.push_str(&t.render());
    if total.len() > 0 {
        out.push_str(&format!(
            "\nRoost's p50 against Kubernetes' 340 s: {}.\n",
            ratio(total.pct(50.0).as_secs_f64() * 1000.0, k8s, false)
        ));
    }
    let two = r.trials.iter().filter(|t| t.two_copies).count();
    out.push_str(&format!(
        "\nTrials in which the stopped host's containerd still ran the old copy when the new \
         one was reported running: {two} of {}. A frozen agent cannot fence itself; its copy \
         is stopped when the agent runs again (counted in \"recovery\").\n",
        r.trials.len()
    ));
    if !r.errors.is_empty() {
        out.push_str(&format!(
            "\n{} trials failed; the first: {}\n",
            r.errors.len(),
            r.errors[0]
        ));
    }
    out
}

// ---------------------------------------------------------------- 3

/// Memory (VmRSS and Pss, MiB) and CPU ticks of a set of processes.
#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    count: usize,
    rss: f64,
    pss: f64,
    ticks: u64,
}

/// `Pss` of `/proc/<pid>/smaps_rollup`, in MiB.
fn pss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn mem_of(pids: &[u32]) -> Mem {
    let mut m = Mem::default();
    for &p in pids {
        m.count += 1;
        m.rss += procfs::status_mib(p, "VmRSS").unwrap_or(0.0);
        m.pss += pss_mib(p).unwrap_or(0.0);
        m.ticks += procfs::cpu_ticks(&p.to_string()).unwrap_or(0);
    }
    m
}

/// The processes of one agent's container stack, found in `/proc`.
#[derive(Default)]
struct Stack {
    containerd: Vec<u32>,
    shims: Vec<u32>,
    loggers: Vec<u32>,
    /// Everything else under the shims: the containers' own processes.
    workloads: Vec<u32>,
}

/// Finds the containerd of `agent_data`, the shims speaking to it, and
/// what runs under them.
fn stack_of(agent_data: &Path) -> Stack {
    let conf = agent_data.join("apps/containerd/config.toml");
    let sock = agent_data.join("apps/containerd/containerd.sock");
    let (conf, sock) = (conf.display().to_string(), sock.display().to_string());
    let mut cmd: BTreeMap<u32, String> = BTreeMap::new();
    let mut parent: BTreeMap<u32, u32> = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s[s.rfind(')')? + 1..].to_string();
                rest.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        cmd.insert(pid, line);
        parent.insert(pid, ppid);
    }
    let mut s = Stack::default();
    for (pid, line) in &cmd {
        if line.contains("containerd-shim") && line.contains(&sock) {
            s.shims.push(*pid);
        } else if line.contains("containerd ") && line.contains(&conf) {
            s.containerd.push(*pid);
        }
    }
    for (pid, line) in &cmd {
        // Walk up to a shim.
        let mut p = parent.get(pid).copied().unwrap_or(0);
        let mut hops = 0;
        while p > 1 && !s.shims.contains(&p) && hops < 16 {
            p = parent.get(&p).copied().unwrap_or(0);
            hops += 1;
        }
        if p > 1 && s.shims.contains(&p) {
            if line.contains("container-logger") {
                s.loggers.push(*pid);
            } else {
                s.workloads.push(*pid);
            }
        }
    }
    s
}

/// Kills, when dropped, what the agents (or server) with these data
/// directories left running: their containerd, shims, log copiers and
/// containers. A part that fails half-way drops its agents with SIGKILL,
/// which leaves their containerd and containers behind otherwise.
struct Reaper(Vec<PathBuf>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for dir in &self.0 {
            let s = stack_of(dir);
            let pids = s
                .workloads
                .iter()
                .chain(&s.loggers)
                .chain(&s.shims)
                .chain(&s.containerd);
            for pid in pids {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        }
    }
}

struct Snapshot {
    agent: Mem,
    containerd: Mem,
    shims: Mem,
    loggers: Mem,
    workloads: Mem,
}

fn snapshot(agent: &Agent) -> Snapshot {
    let s = stack_of(&agent.data_dir);
    Snapshot {
        agent: mem_of(&[agent.pid()]),
        containerd: mem_of(&s.containerd),
        shims: mem_of(&s.shims),
        loggers: mem_of(&s.loggers),
        workloads: mem_of(&s.workloads),
    }
}

struct DensityResults {
    n: usize,
    to_running: Duration,
    to_applied: Duration,
    to_gone: Duration,
    to_uploaded_after_remove: Duration,
    before: Snapshot,
    after: Snapshot,
    /// Agent and containerd CPU while starting everything, % of one core.
    apply_cpu: (f64, f64),
    steady_secs: f64,
    /// Agent, containerd, shims CPU with everything running, % of one core.
    steady_cpu: (f64, f64, f64),
}

fn density_manifest(n: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: many}}
spec:
  replicas: {n}
  selector: {{matchLabels: {{app: many}}}}
  template:
    metadata: {{labels: {{app: many}}}}
    spec:
      hostNetwork: true
      containers:
        - name: main
          image: registry.local/busybox:1
          command: [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; sleep 100000 & wait\"]
"
    )
}

fn pct(ticks: u64, secs: f64) -> f64 {
    ticks as f64 / procfs::clock_ticks() / secs.max(1e-9) * 100.0
}

fn density(plan: &Plan, spec: &Spec) -> anyhow::Result<DensityResults> {
    let n = spec.density;
    eprintln!("apps 3: density, {n} containers on one agent host");
    plan.settle();
    let (server, _conf) = server_with(plan, "local_runtime = false\n")?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let _reaper = Reaper(vec![dir.path().join("dense-0")]);
    let agent = probe::available_agent(&plan.bin, &http, dir.path(), "dense-0", "127.0.0.4")?;
    let root = busybox_root(dir.path())?;
    let tgz = source(dir.path(), "many", &density_manifest(n), BUSYBOX, &root)?;
    upload_app(&http, "many", &tgz)?;
    // Settle after start-up; containerd starts with the agent.
    std::thread::sleep(Duration::from_secs(2));
    let before = snapshot(&agent);
    let t0 = Instant::now();
    directive(&http, "many", "apply")?;
    let (mut to_running, mut to_applied) = (None, None);
    loop {
        let r = replicas(&http, "many")?;
        let t = t0.elapsed();
        let running = r.replicas.iter().filter(|x| x.state == "running").count();
        if to_running.is_none() && running >= n {
            to_running = Some(t);
        }
        if to_applied.is_none() && r.status == "applied" {
            to_applied = Some(t);
        }
        if to_running.is_some() && to_applied.is_some() {
            break;
        }
        if t > Duration::from_secs(600) {
            anyhow::bail!("{running} of {n} running after 600 s; app {}", r.status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let apply_secs = t0.elapsed().as_secs_f64();
    let mid = snapshot(&agent);
    let apply_cpu = (
        pct(
            mid.agent.ticks.saturating_sub(before.agent.ticks),
            apply_secs,
        ),
        pct(
            mid.containerd.ticks.saturating_sub(before.containerd.ticks),
            apply_secs,
        ),
    );
    eprintln!(
        "  {n} running after {} ms; watching {} s",
        ms(to_running.unwrap_or_default()),
        spec.steady.as_secs()
    );
    let w0 = Instant::now();
    std::thread::sleep(spec.steady);
    let after = snapshot(&agent);
    let steady_secs = w0.elapsed().as_secs_f64();
    let steady_cpu = (
        pct(
            after.agent.ticks.saturating_sub(mid.agent.ticks),
            steady_secs,
        ),
        pct(
            after.containerd.ticks.saturating_sub(mid.containerd.ticks),
            steady_secs,
        ),
        pct(
            after.shims.ticks.saturating_sub(mid.shims.ticks),
            steady_secs,
        ),
    );
    let (count, _) = containerd_counts(&agent_sock(&agent))?;
    anyhow::ensure!(count == n, "containerd holds {count} containers, not {n}");
    let t1 = Instant::now();
    directive(&http, "many", "remove")?;
    let mut uploaded = None;
    let to_gone = loop {
        if uploaded.is_none() && app(&http, "many")?.status == "uploaded" {
            uploaded = Some(t1.elapsed());
        }
        let (all, _) = containerd_counts(&agent_sock(&agent))?;
        if all == 0 && uploaded.is_some() {
            break t1.elapsed();
        }
        if t1.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("{all} containers left 600 s after remove");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = http.delete("/v1/apps/many");
    stop_agent(&agent);
    Ok(DensityResults {
        n,
        to_running: to_running.unwrap_or_default(),
        to_applied: to_applied.unwrap_or_default(),
        to_gone,
        to_uploaded_after_remove: uploaded.unwrap_or_default(),
        before,
        after,
        apply_cpu,
        steady_secs,
        steady_cpu,
    })
}

fn render_density(r: &DensityResults) -> String {
    let n = r.n;
    let mut out = String::from("### Applications 3. Density\n\n");
    out.push_str(&format!(
        "A server with `[apps] local_runtime = false` and one real agent (127.0.0.4); one \
         Deployment of {n} busybox replicas (host network, no resource requests), each a shell \
         that waits for a `sleep` and exits on SIGTERM (a bare `sleep` as the container's first \
         process ignores SIGTERM, so every stop would wait out the agent's 10 s grace), applied \
         at once. Times are from `PATCH ?directive=apply` to all {n} replicas reported `running` by \
         `GET /v1/apps/many/replicas` (polled every 100 ms) and to the application `applied`; then \
         from `PATCH ?directive=remove` to the application `uploaded` and to the agent's \
         containerd holding no container at all. Memory is read from `/proc`: VmRSS counts \
         shared pages (the same binary's text) in every process, Pss divides them among the \
         processes sharing them, so the Pss sum is the real cost. Each container is one \
         `containerd-shim-runc-v2`, one log copier (`roost container-logger`, bounded files) and \
         the container's own processes (the shell and its `sleep`).\n\n"
    ));
    let mut t = Table::new(&["step", ">time"]);
    t.row(vec![
        format!("apply → {n} running"),
        secs_text(r.to_running),
    ]);
    t.row(vec!["apply → applied".into(), secs_text(r.to_applied)]);
    t.row(vec![
        format!("per container (running / {n})"),
        secs_text(r.to_running / n.max(1) as u32),
    ]);
    t.row(vec![
        "remove → uploaded".into(),
        secs_text(r.to_uploaded_after_remove),
    ]);
    t.row(vec![
        "remove → no container left in containerd".into(),
        secs_text(r.to_gone),
    ]);
    out.push_str(&t.render());
    out.push('\n');
    let mut m = Table::new(&[
        "processes",
        ">count before",
        ">RSS before",
        ">Pss before",
        ">CPU time before",
        ">count after",
        ">RSS after",
        ">Pss after",
        ">CPU time after",
        ">Pss per container",
    ]);
    let cpu_s = |t: u64| format!("{:.2} s", t as f64 / procfs::clock_ticks());
    let rows = [
        ("agent (`roost agent`)", r.before.agent, r.after.agent),
        ("its containerd", r.before.containerd, r.after.containerd),
        ("shims (sum)", r.before.shims, r.after.shims),
        ("log copiers (sum)", r.before.loggers, r.after.loggers),
        (
            "containers' processes (sum)",
            r.before.workloads,
            r.after.workloads,
        ),
    ];
    let mut total_pss_delta = 0.0;
    for (label, b, a) in rows {
        let delta = a.pss - b.pss;
        total_pss_delta += delta;
        m.row(vec![
            label.into(),
            b.count.to_string(),
            format!("{:.1} MiB", b.rss),
            format!("{:.1} MiB", b.pss),
            cpu_s(b.ticks),
            a.count.to_string(),
            format!("{:.1} MiB", a.rss),
            format!("{:.1} MiB", a.pss),
            cpu_s(a.ticks),
            format!("{:.2} MiB", delta / n.max(1) as f64),
        ]);
    }
    m.row(vec![
        "all of the above".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:.2} MiB", total_pss_delta / n.max(1) as f64),
    ]);
    out.push_str(&m.render());
    out.push_str(&format!(
        "\nCPU while starting all {n} (apply → all running and applied): agent {:.1} %, \
         containerd {:.1} % of a core. With all {n} running, over {:.0} s: agent {:.2} %, \
         containerd {:.2} %, all shims together {:.2} % of a core. \"Per container\" is the Pss \
         growth from before the apply divided by {n}; CPU time is user + system from \
         `/proc/<pid>/stat` (the agent's since it started; the agent starts its containerd when \
         its first plan holds a replica, so containerd is not there before the apply).\n",
        r.apply_cpu.0, r.apply_cpu.1, r.steady_secs, r.steady_cpu.0, r.steady_cpu.1, r.steady_cpu.2
    ));
    out
}

// ---------------------------------------------------------------- 4

/// What one cyclictest run reported.
#[derive(Debug, Default, Clone)]
struct Latency {
    samples: u64,
    min_us: Option<u64>,
    avg_us: Option<f64>,
    p99_us: Option<u64>,
    max_us: Option<u64>,
    overflows: u64,
    cpus: String,
    options: String,
}

struct JitterResults {
    cpus: usize,
    isolated: u32,
    load: String,
    pinned: Latency,
    shared: Latency,
    rt_kernel: bool,
    cgroup: String,
    loops: u64,
}

/// Histogram width in µs (`--histogram`); later samples count as overflows.
const HIST_US: u64 = 100_000;

/// Parses cyclictest's histogram output (bucket lines `000012 000345`,
/// `# Max Latencies: 00123`, `# Histogram Overflows: 00000`).
fn parse_cyclictest(text: &str) -> Latency {
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    let mut l = Latency::default();
    let field = |line: &str| -> Option<String> {
        line.split_once(':')
            .map(|(_, v)| v.split_whitespace().next().unwrap_or("").to_string())
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim();
            let num = field(rest);
            if rest.starts_with("Min Latencies") {
                l.min_us = num.and_then(|v| v.parse().ok());
            } else if rest.starts_with("Avg Latencies") {
                l.avg_us = num.and_then(|v| v.parse().ok());
            } else if rest.starts_with("Max Latencies") {
                l.max_us = num.and_then(|v| v.parse().ok());
            } else if rest.starts_with("Histogram Overflows") {
                l.overflows = num.and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            continue;
        }
        let mut it = line.split_whitespace();
        if let (Some(a), Some(b), None) = (it.next(), it.next(), it.next())
            && a.len() == 6
            && let (Ok(us), Ok(count)) = (a.parse::<u64>(), b.parse::<u64>())
        {
            buckets.push((us, count));
        }
    }
    buckets.sort_unstable();
    let total: u64 = buckets.iter().map(|b| b.1).sum::<u64>() + l.overflows;
    l.samples = total;
    if total > 0 {
        let want = (total as f64 * 0.99).ceil() as u64;
        let mut cum = 0;
        for (us, c) in &buckets {
            cum += c;
            if cum >= want {
                l.p99_us = Some(*us);
                break;
            }
        }
    }
    l
}

/// The cyclictest options used in the containers.
fn cyclictest_args(loops: u64) -> String {
    format!("-q -m -p 80 -i 200 -l {loops} --histfile=/tmp/hist -h {HIST_US}")
}

/// Real-time runtime given to the measuring container's cgroup and its
/// parents (µs per `cpu.rt_period_us`, 1 s by default).
const RT_RUNTIME_US: u64 = 500_000;

/// What [`grant_rt`] changed, to undo it.
struct RtGrant {
    /// cgroup directories and their `cpu.rt_runtime_us` before, parents first.
    changed: Vec<(PathBuf, String)>,
}

impl RtGrant {
    /// Puts the old values back, children first (a parent may not have
    /// less than its children).
    fn undo(self) {
        for (dir, old) in self.changed.iter().rev() {
            let _ = std::fs::write(dir.join("cpu.rt_runtime_us"), old);
        }
    }
}

/// Gives the cgroup of process `pid` (a container's first process) and the
/// cgroups above it real-time runtime: on cgroup v1 a new cgroup has
/// `cpu.rt_runtime_us` 0, and no SCHED_FIFO thread may run in it.
fn grant_rt(pid: u32) -> anyhow::Result<RtGrant> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let rel = cg
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            ctrl.split(',')
                .any(|c| c == "cpu")
                .then(|| path.to_string())
        })
        .context("no cgroup v1 cpu controller for the container")?;
    let mut grant = RtGrant {
        changed: Vec::new(),
    };
    let mut dir = PathBuf::from("/sys/fs/cgroup/cpu");
    for part in rel
        .trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
    {
        dir.push(part);
        let file = dir.join("cpu.rt_runtime_us");
        let old =
            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        if let Err(e) = std::fs::write(&file, RT_RUNTIME_US.to_string()) {
            grant.undo();
            return Err(e).with_context(|| format!("write {}", file.display()));
        }
        grant.changed.push((dir.clone(), old.trim().to_string()));
    }
    Ok(grant)
}

/// Runs cyclictest inside the container whose first process is `pid`: a
/// shell joins every cgroup of that process (its cpuset among them), then
/// `nsenter` enters its mount, PID, IPC and UTS namespaces and runs the
/// image's `/usr/bin/cyclictest`. Unlike the container's own processes it
/// keeps this process's `CAP_SYS_NICE` and `CAP_IPC_LOCK`, like an exec
/// into a container given them. Returns cyclictest's output, the
/// histogram's non-empty buckets and its summary.
fn exec_cyclictest(pid: u32, loops: u64) -> anyhow::Result<String> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let mut join = String::new();
    for line in cg.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let mount = match ctrls {
            "" => "unified".to_string(),
            c => c
                .split(',')
                .next()
                .unwrap_or(c)
                .trim_start_matches("name=")
                .to_string(),
        };
        let procs = Path::new("/sys/fs/cgroup")
            .join(&mount)
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs");
        if procs.exists() {
            join.push_str(&format!("echo $$ > '{}' || exit 97; ", procs.display()));
        }
    }
    let script = format!(
        "{join}exec nsenter -t {pid} -m -p -i -u -r -w -- /usr/bin/cyclictest {} \
         && nsenter -t {pid} -m -r -- /bin/grep -v ' 000000$' /tmp/hist",
        cyclictest_args(loops)
    );
    // `exec` replaces the shell; the histogram is read by a second nsenter.
    let script = script.replacen("exec nsenter", "nsenter", 1);
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .context("run cyclictest in the container")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        out.status.success(),
        "cyclictest in the container failed ({}):\n{text}",
        out.status
    );
    Ok(text)
}

/// The pid of the first process of app `app`'s container on the agent.
fn container_pid(agent: &Agent, app: &str) -> anyhow::Result<u32> {
    let sock = agent_sock(agent);
    let list = block_on(async {
        let c = roost_runtime::Containerd::connect(&sock).await?;
        c.list().await
    })??;
    list.iter()
        .filter(|c| c.labels.get("roost.app").map(String::as_str) == Some(app))
        .find_map(|c| c.task.as_ref().map(|t| t.pid))
        .filter(|p| *p > 0)
        .with_context(|| format!("no running task of {app}"))
}

fn jitter_manifest(name: &str, pinned: bool) -> String {
    let resources = if pinned {
        "          resources:
            requests: {cpu: \"1\", memory: 64Mi}
            limits: {cpu: \"1\", memory: 64Mi}
"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      hostNetwork: true
      nodeSelector: {{pool: rt}}
      containers:
        - name: ct
          image: {TOOLS}
          command: [\"/bin/sh\", \"-c\", \"grep Cpus_allowed_list /proc/self/status; exec sleep 100000\"]
{resources}"
    )
}

fn load_manifest(cpus: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: load}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: load}}}}
  template:
    metadata: {{labels: {{app: load}}}}
    spec:
      hostNetwork: true
      nodeSelector: {{pool: rt}}
      containers:
        - name: stress
          image: {TOOLS}
          command: [\"/bin/sh\", \"-c\", \"grep Cpus_allowed_list /proc/self/status; \
exec stress-ng --cpu {cpus} --quiet\"]
"
    )
}

/// The text container `container` of application `app` wrote, from the
/// agent's bounded log files (`<app>.<workload>.<index>.<container>.<generation>.log`).
fn container_log(agent: &Agent, app: &str, container: &str) -> String {
    let dir = agent.data_dir.join("apps/logs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .is_some_and(|n| {
                    n.starts_with(&format!("{app}.")) && n.contains(&format!(".{container}."))
                })
        })
        .collect();
    // Rotated files (`.log.1`, ...) are older: read them first.
    files.sort_by(|a, b| b.cmp(a));
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect::<Vec<_>>()
        .join("")
}

fn jitter(plan: &Plan, spec: &Spec) -> anyhow::Result<JitterResults> {
    ensure_installed("cyclictest", "rt-tests")?;
    ensure_installed("stress-ng", "stress-ng")?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    anyhow::ensure!(cpus >= 2, "the jitter benchmark needs two CPUs");
    let isolated = (cpus - 1) as u32;
    eprintln!(
        "apps 4: jitter, cyclictest {} loops pinned to CPU {isolated} and unpinned",
        spec.jitter_loops
    );
    plan.settle();
    let (server, _conf) = server_with(plan, "local_runtime = false\n")?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let _reaper = Reaper(vec![dir.path().join("rt-0")]);
    // The host is added and its agent started, but it stays locked until
    // its last CPU is application-isolated.
    let added = http.post(
        "/v1/ihosts",
        &json!({"hostname": "rt-0", "personality": "worker"}),
    )?;
    let token = added["join_token"].as_str().context("no join_token")?;
    let agent = Agent::start(
        &plan.bin,
        &http.url,
        token,
        &dir.path().join("rt-0"),
        "127.0.0.5",
        &["--reboot-command", "true"],
    )
    .map_err(anyhow::Error::msg)?;
    http.wait_avail("rt-0", "online", Duration::from_secs(30))?;
    let uuid = http.get("/v1/ihosts/rt-0")?["uuid"]
        .as_str()
        .context("no uuid")?
        .to_string();
    http.put(
        &format!("/v1/ihosts/{uuid}/state/host_cpus_modify"),
        &json!([{"function": "application-isolated", "cpulist": isolated.to_string()}]),
    )?;
    http.patch(
        "/v1/ihosts/rt-0",
        &json!([{"op": "replace", "path": "/action", "value": "unlock"}]),
    )?;
    http.wait_avail("rt-0", "available", Duration::from_secs(60))?;
    label(&http, "rt-0", "pool", "rt")?;

    let root = tools_root(dir.path())?;
    let platform = cpus - 1;
    let tgz = source(dir.path(), "load", &load_manifest(platform), TOOLS, &root)?;
    upload_app(&http, "load", &tgz)?;
    directive(&http, "load", "apply")?;
    wait_status(&http, "load", "applied", STEP_TIMEOUT)?;
    // Let the load reach its steady state.
    std::thread::sleep(Duration::from_secs(2));
    let load_cpus = container_log(&agent, "load", "stress")
        .lines()
        .find(|l| l.contains("Cpus_allowed_list"))
        .and_then(|l| l.split_whitespace().last().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let load = format!("`stress-ng --cpu {platform}` in a container on CPUs {load_cpus}");
    let run = |name: &str, pinned: bool| -> anyhow::Result<Latency> {
        let tgz = source(
            dir.path(),
            name,
            &jitter_manifest(name, pinned),
            TOOLS,
            &root,
        )?;
        upload_app(&http, name, &tgz)?;
        directive(&http, name, "apply")?;
        wait_status(&http, name, "applied", STEP_TIMEOUT)?;
        let reps = replicas(&http, name)?;
        let exclusive = reps
            .replicas
            .first()
            .map(|r| r.exclusive_cpus.clone())
            .unwrap_or_default();
        if pinned {
            anyhow::ensure!(
                exclusive == [isolated],
                "the pinned replica got CPUs {exclusive:?}, not [{isolated}]"
            );
        }
        let pid = container_pid(&agent, name)?;
        let grant = grant_rt(pid)?;
        let ran = exec_cyclictest(pid, spec.jitter_loops);
        let text = match ran {
            Ok(t) => t,
            Err(e) => {
                grant.undo();
                return Err(e);
            }
        };
        let log = container_log(&agent, name, "ct");
        let mut l = parse_cyclictest(&text);
        l.cpus = log
            .lines()
            .find(|l| l.contains("Cpus_allowed_list"))
            .and_then(|l| l.split_whitespace().last().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        l.options = cyclictest_args(spec.jitter_loops);
        let removed = remove_app(&http, name);
        grant.undo();
        removed?;
        if l.samples == 0 {
            anyhow::bail!("cyclictest in {name} reported nothing:\n{text}");
        }
        Ok(l)
    };
    let pinned = run("jpin", true)?;
    eprintln!(
        "  pinned (CPUs {}): p99 {:?} µs, max {:?} µs",
        pinned.cpus, pinned.p99_us, pinned.max_us
    );
    let shared = run("jshared", false)?;
    eprintln!(
        "  unpinned (CPUs {}): p99 {:?} µs, max {:?} µs",
        shared.cpus, shared.p99_us, shared.max_us
    );
    let _ = remove_app(&http, "load");
    stop_agent(&agent);
    let rt_kernel = std::fs::read_to_string("/sys/kernel/realtime").is_ok_and(|s| s.trim() == "1")
        || std::process::Command::new("uname")
            .arg("-v")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PREEMPT_RT"));
    let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else {
        "v1"
    };
    Ok(JitterResults {
        cpus,
        isolated,
        load,
        pinned,
        shared,
        rt_kernel,
        cgroup: cgroup.into(),
        loops: spec.jitter_loops,
    })
}

fn us(v: Option<u64>, overflow: bool) -> String {
    match v {
        Some(v) => format!("{} µs", crate::stats::group(v)),
        None if overflow => format!("> {} µs", crate::stats::group(HIST_US)),
        None => "—".into(),
    }
}

fn render_jitter(r: &JitterResults) -> String {
    let mut out = String::from("### Applications 4. Jitter\n\n");
    out.push_str(&format!(
        "One real agent (127.0.0.5) whose CPU {} was made `application-isolated` with \
         `host-cpu-modify` while it was locked; {}. Then, one after the other, `cyclictest` \
         (Debian `rt-tests`; the image is the host's binary with the libraries `ldd` names, built \
         with `roost_runtime::oci::build_image_from_dir`) in a container asking for one whole CPU \
         (requests = limits = `cpu: \"1\"`: Roost gives it the isolated core) and in one asking for \
         nothing (Roost keeps it on the platform CPUs, beside the load). Options in both: \
         `cyclictest {}` ({} wake-ups 200 µs apart); p99 is read from its histogram (1 µs buckets), \
         min, average and max from its summary.\n\n",
        r.isolated,
        r.load,
        r.pinned.options,
        crate::stats::group(r.loops),
    ));
    let mut t = Table::new(&[
        "container",
        ">CPUs",
        ">samples",
        ">min",
        ">avg",
        ">p99",
        ">max",
        ">over 100 ms",
    ]);
    for (label, l) in [
        ("pinned (1 whole CPU, isolated)", &r.pinned),
        ("unpinned (no request)", &r.shared),
    ] {
        t.row(vec![
            label.into(),
            l.cpus.clone(),
            crate::stats::group(l.samples),
            us(l.min_us, false),
            l.avg_us.map_or("—".into(), |v| format!("{v:.0} µs")),
            us(l.p99_us, l.overflows > 0),
            us(l.max_us, false),
            l.overflows.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nThe machine: {} CPUs, cgroup {}, {} kernel{}. With two CPUs the isolated pool is one \
         core, and the platform (server, agent, containerd), the load and the unpinned container \
         share the other. **A Roost container cannot run a real-time thread on its own**: it gets \
         Docker's default capabilities (no `CAP_SYS_NICE`, no `CAP_IPC_LOCK`), RLIMIT_RTPRIO 0, \
         and on cgroup v1 its cgroup has `cpu.rt_runtime_us` 0, so `sched_setscheduler(SCHED_FIFO)` \
         is refused even for root, and cyclictest refuses to start without it (it has no \
         non-real-time mode). So the containers only sleep, and the benchmark runs cyclictest \
         inside each of them the way an exec with added capabilities would: a process joins all \
         of the container's cgroups (its cpuset too), enters its mount, PID, IPC and UTS \
         namespaces with `nsenter` and runs the image's cyclictest, keeping `CAP_SYS_NICE` and \
         `CAP_IPC_LOCK`; the container's cgroup and those above it get {} ms of real-time \
         runtime per second for the run (undone afterwards). Both containers are measured the \
         same way; only the placement differs. The \"isolated\" core is isolated from Roost's \
         containers, not from the host's other processes: on this shared machine other \
         engineers' compilers ran on both CPUs during the run (see the load average above), and \
         the machine is a virtual one whose vCPUs the hypervisor may preempt, which no guest \
         setting can prevent.\n",
        r.cpus,
        r.cgroup,
        if r.rt_kernel { "a PREEMPT_RT" } else { "no real-time (PREEMPT_RT)" },
        if r.rt_kernel { "" } else { " (`PREEMPT_DYNAMIC`)" },
        RT_RUNTIME_US / 1000,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclictest_histograms_are_read() {
        let text = "Cpus_allowed_list:\t1\n\
                    CYCLICTEST-EXIT 0\n\
                    # /dev/cpu_dma_latency set to 0us\n\
                    000003 000050\n\
                    000004 000049\n\
                    000090 000001\n\
                    # Total: 000000100\n\
                    # Min Latencies: 00003\n\
                    # Avg Latencies: 00004\n\
                    # Max Latencies: 00090\n\
                    # Histogram Overflows: 00000\n";
        let l = parse_cyclictest(text);
        assert_eq!(l.samples, 100);
        assert_eq!(l.p99_us, Some(4));
        assert_eq!(l.max_us, Some(90));
        assert_eq!(l.min_us, Some(3));
        let over = parse_cyclictest("000003 000090\n# Histogram Overflows: 00010\n");
        assert_eq!(over.samples, 100);
        assert_eq!(over.p99_us, None);
    }

    #[test]
    fn parts_are_chosen() {
        assert_eq!(parts_wanted(None).unwrap(), [true; 4]);
        assert_eq!(
            parts_wanted(Some("2,4")).unwrap(),
            [false, true, false, true]
        );
        assert!(parts_wanted(Some("5")).is_err());
    }
}

//! The plan executor against a real containerd and runc: each test starts
//! its own private supervised containerd in a temporary directory, builds a
//! busybox image with `oci::build_image_from_dir`, and drives a `Runner`
//! through plans, waiting on its report channel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use roost_api::apps::agent::{
    AgentAppsReport, ContainerSpec, HostPlan, ImageRef, MountSource, MountSpec, ProbeAction,
    ProbeSpec, ReplicaReport, ReplicaSpec, ReplicaState, SecuritySpec,
};
use roost_runtime::oci::{BuildOptions, BuiltImage, build_image_from_dir};
use roost_runtime::runner::{ImageSource, Runner, RunnerConfig};
use roost_runtime::{
    BoxFuture, Containerd, Error, LogConfig, Runtime, Supervised, SupervisorOptions, TaskStatus,
};
use tokio::sync::watch;

const HOST: &str = "controller-0";
const IMAGE: &str = "roost.local/busybox:runner";
const ARCHIVE: &str = "images/busybox.tar";
const WAIT: Duration = Duration::from_secs(90);

fn prerequisites() -> bool {
    let root = rustix::process::geteuid().is_root();
    let have = |b: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .chain([PathBuf::from("/usr/sbin")])
            .any(|d| d.join(b).exists())
    };
    roost_test_support::require_or_skip(
        root && have("containerd") && have("runc") && Path::new("/bin/busybox").exists(),
        "root, containerd, runc and busybox-static (./scripts/test installs them)",
    )
}

/// A root filesystem holding static busybox and the applets the tests use.
fn busybox_image(dir: &Path) -> (PathBuf, BuiltImage) {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "run", "www"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat", "test", "grep", "rm", "httpd"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let out = dir.join("busybox.tar");
    let built = build_image_from_dir(
        &root,
        &out,
        &BuildOptions {
            name: IMAGE.into(),
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-c".into(), "echo default".into()],
            env: vec!["GREETING=hello".into()],
            workdir: Some("/tmp".into()),
        },
    )
    .expect("image builds");
    (out, built)
}

/// Image archives by their path in the package, as the server would serve them.
struct Archives(HashMap<String, PathBuf>);

impl ImageSource for Archives {
    fn fetch<'a>(
        &'a self,
        _app: &'a str,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, roost_runtime::Result<PathBuf>> {
        Box::pin(async move {
            self.0
                .get(&image.archive)
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("archive {}", image.archive)))
        })
    }
}

/// A test's world: its containerd, image and directories.
struct World {
    tmp: tempfile::TempDir,
    sup: Supervised,
    rt: Containerd,
    digest: String,
    images: Arc<Archives>,
    /// Unique per test and process, so concurrent tests' container ids differ.
    app: String,
}

impl World {
    async fn new(tag: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let sup = Supervised::start(&tmp.path().join("ctr"), SupervisorOptions::default())
            .await
            .expect("private containerd starts");
        let rt = sup.client().clone();
        let (tar, built) = busybox_image(tmp.path());
        World {
            images: Arc::new(Archives([(ARCHIVE.to_string(), tar)].into())),
            digest: built.manifest_digest,
            rt,
            sup,
            app: format!("{tag}{}", std::process::id()),
            tmp,
        }
    }

    fn logs(&self) -> PathBuf {
        self.tmp.path().join("logs")
    }

    fn config(&self) -> RunnerConfig {
        RunnerConfig {
            host: HOST.into(),
            dir: self.tmp.path().join("runner"),
            log: Some(LogConfig {
                dir: self.logs(),
                max_bytes: 1 << 20,
                files: 2,
                logger: env!("CARGO_BIN_EXE_roost-container-logger").into(),
                subcommand: "container-logger".into(),
            }),
            stop_grace: Duration::from_secs(2),
        }
    }

    async fn runner(&self) -> Runner {
        let rt: Arc<dyn Runtime> = Arc::new(self.rt.clone());
        let (runner, _task) = Runner::start(rt, self.images.clone(), self.config())
            .await
            .expect("runner starts");
        runner
    }

    fn image(&self) -> ImageRef {
        ImageRef {
            name: IMAGE.into(),
            digest: self.digest.clone(),
            archive: ARCHIVE.into(),
        }
    }

    fn container(&self, name: &str, command: &[&str], args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: IMAGE.into(),
            image_digest: self.digest.clone(),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            host_network: true,
            cpuset: None,
            exclusive: false,
            ports: Vec::new(),
            cpu_millis_request: 100,
            cpu_millis_limit: None,
            memory_request_bytes: 0,
            memory_limit_bytes: None,
            mounts: Vec::new(),
            liveness: None,
            readiness: None,
            security: SecuritySpec::default(),
        }
    }

    fn replica(
        &self,
        workload: &str,
        generation: u64,
        containers: Vec<ContainerSpec>,
    ) -> ReplicaSpec {
        ReplicaSpec {
            id: format!("{}/{workload}/0", self.app),
            app: self.app.clone(),
            generation,
            containers,
            restart_policy: "Always".into(),
            images: vec![self.image()],
        }
    }

    /// Removes whatever a test left, then stops containerd.
    async fn finish(self) {
        let left = self.rt.reconcile(&[]).await;
        self.sup.shutdown().await;
        left.expect("cleanup removes everything");
    }
}

/// Runs a test body on its own task so that a failed assertion still cleans up.
async fn cleanly<F, Fut>(world: World, f: F)
where
    F: FnOnce(Arc<World>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let world = Arc::new(world);
    let outcome = tokio::spawn(f(world.clone())).await;
    let world = match Arc::try_unwrap(world) {
        Ok(w) => w,
        Err(_) => panic!("the test body kept its world"),
    };
    world.finish().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn plan(generation: u64, replicas: Vec<ReplicaSpec>) -> HostPlan {
    HostPlan {
        host: HOST.into(),
        generation,
        replicas,
    }
}

fn probe(action: ProbeAction, failure_threshold: u32) -> ProbeSpec {
    ProbeSpec {
        action,
        initial_delay_seconds: 0,
        period_seconds: 1,
        // Generous: a loaded machine must not fail a probe that passes.
        timeout_seconds: 30,
        failure_threshold,
        success_threshold: 1,
    }
}

fn exec_probe(cmd: &str, failure_threshold: u32) -> ProbeSpec {
    probe(
        ProbeAction::Exec {
            command: vec!["/bin/busybox".into(), "sh".into(), "-c".into(), cmd.into()],
        },
        failure_threshold,
    )
}

/// Waits until the report satisfies `f`.
async fn wait_report(
    rx: &mut watch::Receiver<AgentAppsReport>,
    what: &str,
    f: impl FnMut(&AgentAppsReport) -> bool,
) -> AgentAppsReport {
    let got = match tokio::time::timeout(WAIT, rx.wait_for(f)).await {
        Ok(Ok(r)) => Some(r.clone()),
        Ok(Err(_)) => panic!("{what}: the runner went away"),
        Err(_) => None,
    };
    got.unwrap_or_else(|| {
        panic!(
            "{what}: not within {WAIT:?}; last report {:#?}",
            *rx.borrow()
        )
    })
}

fn replica<'a>(r: &'a AgentAppsReport, id: &str) -> Option<&'a ReplicaReport> {
    r.replicas.iter().find(|x| x.id == id)
}

fn state_is(r: &AgentAppsReport, id: &str, state: ReplicaState) -> bool {
    replica(r, id).is_some_and(|x| x.state == state)
}

/// Polls the runtime until `f` holds for its container list.
async fn wait_runtime(
    rt: &Containerd,
    what: &str,
    mut f: impl FnMut(&[roost_runtime::ContainerState]) -> bool,
) -> Vec<roost_runtime::ContainerState> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = rt.list().await.unwrap();
        if f(&listed) {
            return listed;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not within {WAIT:?}; containers {listed:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `f` (without blocking the test's runtime, which the runner shares)
/// until it holds.
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sh(rt: &Containerd, id: &str, cmd: &str) -> String {
    let out = rt
        .exec(
            id,
            &["/bin/busybox".into(), "sh".into(), "-c".into(), cmd.into()],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(out.success(), "{cmd}: {out:?}");
    String::from_utf8_lossy(&out.output).to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A sleeper that ends at once on SIGTERM.
const SLEEPER: &str = "trap 'exit 0' TERM; echo started; while true; do sleep 1; done";

#[tokio::test]
async fn a_two_container_replica_runs_is_probed_and_is_removed_without_leftovers() {
    if !prerequisites() {
        return;
    }
    let world = World::new("two").await;
    cleanly(world, |w| async move {
        let port = free_port();
        let mut web = w.container(
            "web",
            &[],
            // Kubernetes `args` only: after the image's entrypoint /bin/sh.
            &[
                "-c",
                &format!("exec /bin/busybox httpd -f -p {port} -h /www"),
            ],
        );
        web.env = vec![("SITE".into(), "edge".into())];
        web.memory_limit_bytes = Some(64 << 20);
        web.mounts = vec![MountSpec {
            target: "/www".into(),
            read_only: true,
            source: MountSource::Files {
                files: [(
                    "index.html".to_string(),
                    roost_api::apps::base64::encode(b"hello from roost\n"),
                )]
                .into(),
                mode: 0o644,
            },
        }];
        web.readiness = Some(probe(
            ProbeAction::HttpGet {
                path: "/index.html".into(),
                port,
                https: false,
            },
            3,
        ));
        let mut sleeper = w.container("sleeper", &["/bin/busybox", "sh", "-c", SLEEPER], &[]);
        sleeper.liveness = Some(exec_probe("true", 3));
        sleeper.mounts = vec![MountSpec {
            target: "/scratch".into(),
            read_only: false,
            source: MountSource::EmptyDir {
                memory: false,
                volume: "scratch".into(),
            },
        }];
        let spec = w.replica("web", 1, vec![web, sleeper]);
        let id = spec.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec]));
        let r = wait_report(&mut reports, "running and ready", |r| {
            replica(r, &id).is_some_and(|x| x.state == ReplicaState::Running && x.ready)
        })
        .await;
        assert_eq!(r.host, HOST);
        assert_eq!(r.plan_generation, 1);
        let rep = replica(&r, &id).unwrap();
        assert_eq!(rep.generation, 1);
        assert_eq!(rep.containers.len(), 2);
        for c in &rep.containers {
            assert_eq!(c.state, ReplicaState::Running, "{rep:?}");
            assert!(c.ready, "{rep:?}");
        }

        let web_id = Runner::log_id(&id, "web", 1);
        let sleeper_id = Runner::log_id(&id, "sleeper", 1);
        assert_eq!(web_id, format!("{}.web.0.web.1", w.app));
        // The files volume, the env, the image's env and the host network.
        assert_eq!(
            sh(&w.rt, &web_id, "cat /www/index.html; echo $SITE $GREETING").await,
            "hello from roost\nedge hello\n"
        );
        assert!(
            http_get(port, "/index.html")
                .await
                .contains("hello from roost")
        );
        // The files are read-only; the emptyDir is writable.
        let out =
            w.rt.exec(
                &web_id,
                &[
                    "/bin/busybox".into(),
                    "sh".into(),
                    "-c".into(),
                    "echo x > /www/new".into(),
                ],
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert!(!out.success(), "{out:?}");
        sh(
            &w.rt,
            &sleeper_id,
            "echo data > /scratch/f && cat /scratch/f",
        )
        .await;
        // The sleeper's output is in its log.
        let logs = w.logs();
        wait_until("the sleeper's log says started", || {
            roost_runtime::logs::read_log(&logs, &sleeper_id)
                .is_ok_and(|l| String::from_utf8_lossy(&l).contains("started"))
        })
        .await;
        // Labels let a restarted runner adopt them.
        let listed = w.rt.list().await.unwrap();
        let c = listed.iter().find(|c| c.id == web_id).unwrap();
        assert_eq!(c.labels["roost.replica"], id);
        assert_eq!(c.labels["roost.container"], "web");
        assert_eq!(c.labels["roost.generation"], "1");
        assert_eq!(c.labels["roost.app"], w.app);
        let replica_dirs = w.tmp.path().join("runner/replicas");
        assert_eq!(std::fs::read_dir(&replica_dirs).unwrap().count(), 1);

        // A plan without the replica: everything goes.
        runner.apply(plan(2, vec![]));
        let r = wait_report(&mut reports, "plan 2", |r| r.plan_generation == 2).await;
        assert!(r.replicas.is_empty(), "{r:?}");
        // Containers go first, their snapshots right after.
        wait_runtime(&w.rt, "containers removed", |l| l.is_empty()).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let snaps = w.rt.list_snapshots().await.unwrap();
            if !snaps.iter().any(|s| s.active) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{snaps:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        assert!(
            !mounts.contains(&web_id) && !mounts.contains(&sleeper_id),
            "{mounts}"
        );
        wait_until("the replica's volume directory removed", || {
            std::fs::read_dir(&replica_dirs).is_ok_and(|d| d.count() == 0)
        })
        .await;
        // A replica gone from the plan leaves no logs.
        wait_until("the replica's logs removed", || {
            !logs.join(format!("{sleeper_id}.log")).exists()
                && !logs.join(format!("{web_id}.log")).exists()
        })
        .await;
        runner.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_container_that_exits_3_is_reported_failed_and_not_restarted() {
    if !prerequisites() {
        return;
    }
    let world = World::new("exit").await;
    cleanly(world, |w| async move {
        let quitter = w.container("main", &[], &["-c", "echo bye; exit 3"]);
        let spec = w.replica("quit", 1, vec![quitter]);
        let id = spec.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec.clone()]));
        let r = wait_report(&mut reports, "failed", |r| {
            state_is(r, &id, ReplicaState::Failed)
        })
        .await;
        let rep = replica(&r, &id).unwrap();
        assert_eq!(rep.exit_code, Some(3), "{rep:?}");
        assert!(!rep.liveness_failed);
        assert_eq!(rep.restarts, 0);
        assert!(
            rep.message
                .as_deref()
                .unwrap_or_default()
                .contains("code 3"),
            "{rep:?}"
        );
        assert_eq!(rep.containers[0].state, ReplicaState::Failed);
        assert_eq!(rep.containers[0].exit_code, Some(3));

        // Another replica starting and running shows the runner went on
        // working; the failed one stays as it was, not restarted.
        let other = w.replica(
            "other",
            1,
            vec![w.container("s", &["/bin/busybox", "sh", "-c", SLEEPER], &[])],
        );
        let other_id = other.id.clone();
        runner.apply(plan(2, vec![spec, other]));
        let r = wait_report(&mut reports, "the other runs", |r| {
            state_is(r, &other_id, ReplicaState::Running)
        })
        .await;
        assert_eq!(replica(&r, &id).unwrap().state, ReplicaState::Failed);
        let listed = w.rt.list().await.unwrap();
        let quit = listed
            .iter()
            .find(|c| c.id == Runner::log_id(&id, "main", 1))
            .unwrap();
        let task = quit.task.as_ref().unwrap();
        assert_eq!(task.status, TaskStatus::Stopped);
        assert_eq!(task.exit.unwrap().code, 3);
        runner.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_failing_liveness_probe_stops_the_replica() {
    if !prerequisites() {
        return;
    }
    let world = World::new("live").await;
    cleanly(world, |w| async move {
        let mut c = w.container(
            "app",
            &[
                "/bin/busybox",
                "sh",
                "-c",
                "trap 'exit 0' TERM; echo ok > /tmp/alive; sleep 2; rm /tmp/alive; while true; do sleep 1; done",
            ],
            &[],
        );
        c.liveness = Some(exec_probe("test -f /tmp/alive", 2));
        let partner = w.container("partner", &["/bin/busybox", "sh", "-c", SLEEPER], &[]);
        let spec = w.replica("live", 1, vec![c, partner]);
        let id = spec.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec]));
        let r = wait_report(&mut reports, "liveness failure", |r| {
            state_is(r, &id, ReplicaState::Failed)
        })
        .await;
        let rep = replica(&r, &id).unwrap();
        assert!(rep.liveness_failed, "{rep:?}");
        let msg = rep.message.clone().unwrap_or_default();
        assert!(msg.contains("liveness") && msg.contains("app"), "{msg}");
        assert!(!rep.ready);
        // Both containers were stopped, nothing restarted.
        let listed = w.rt.list().await.unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        for c in &listed {
            assert_eq!(c.task.as_ref().unwrap().status, TaskStatus::Stopped, "{c:?}");
        }
        runner.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_restarted_runner_adopts_running_containers_and_removes_old_generations() {
    if !prerequisites() {
        return;
    }
    let world = World::new("adopt").await;
    cleanly(world, |w| async move {
        let mut keep = w.replica(
            "keep",
            1,
            vec![w.container("s", &["/bin/busybox", "sh", "-c", SLEEPER], &[])],
        );
        keep.containers[0].readiness = Some(exec_probe("true", 1));
        let old = w.replica(
            "bump",
            1,
            vec![w.container("s", &["/bin/busybox", "sh", "-c", SLEEPER], &[])],
        );
        let (keep_id, bump_id) = (keep.id.clone(), old.id.clone());
        let first = w.runner().await;
        let mut reports = first.reports();
        first.apply(plan(1, vec![keep.clone(), old.clone()]));
        wait_report(&mut reports, "both run", |r| {
            r.replicas
                .iter()
                .all(|x| x.state == ReplicaState::Running && x.ready)
                && r.replicas.len() == 2
        })
        .await;
        first.shutdown().await;
        let pid_of = |l: &[roost_runtime::ContainerState], id: &str| {
            l.iter()
                .find(|c| c.id == id)
                .and_then(|c| c.task.as_ref())
                .filter(|t| t.status == TaskStatus::Running)
                .map(|t| t.pid)
        };
        let keep_cid = Runner::log_id(&keep_id, "s", 1);
        let old_cid = Runner::log_id(&bump_id, "s", 1);
        let listed = w.rt.list().await.unwrap();
        let keep_pid = pid_of(&listed, &keep_cid).expect("still runs after the runner stopped");
        assert!(pid_of(&listed, &old_cid).is_some(), "{listed:?}");
        // A container no plan knows of, left by someone else.
        let mut stray = roost_runtime::ContainerConfig {
            id: format!("stray-{}", std::process::id()),
            // The runner keeps images as `<name>@<digest>`.
            image: roost_runtime::pinned_name(IMAGE, &w.digest),
            args: vec!["/bin/busybox".into(), "sleep".into(), "1000".into()],
            host_network: true,
            ..Default::default()
        };
        stray
            .labels
            .insert("roost.replica".into(), "gone/x/0".into());
        w.rt.start(&stray).await.unwrap();

        let second = w.runner().await;
        let mut reports = second.reports();
        let mut new = old.clone();
        new.generation = 2;
        second.apply(plan(2, vec![keep, new]));
        // The plan counts as carried out once the old generation and the
        // stray are gone too.
        let r = wait_report(&mut reports, "adopted and bumped", |r| {
            r.plan_generation == 2
                && replica(r, &keep_id).is_some_and(|x| x.state == ReplicaState::Running && x.ready)
                && replica(r, &bump_id)
                    .is_some_and(|x| x.state == ReplicaState::Running && x.generation == 2)
        })
        .await;
        assert_eq!(r.plan_generation, 2);
        let listed =
            wait_runtime(&w.rt, "old generation and stray removed", |l| l.len() == 2).await;
        assert_eq!(
            pid_of(&listed, &keep_cid),
            Some(keep_pid),
            "adopted, not restarted"
        );
        assert!(
            pid_of(&listed, &Runner::log_id(&bump_id, "s", 2)).is_some(),
            "{listed:?}"
        );
        assert!(
            !listed.iter().any(|c| c.id == old_cid || c.id == stray.id),
            "{listed:?}"
        );
        // The replaced generation's log stays (the newest previous one).
        let old_log = roost_runtime::logs::read_log(&w.logs(), &old_cid).unwrap();
        assert!(String::from_utf8_lossy(&old_log).contains("started"));
        // The adopted replica is watched again: its exit is reported.
        sh(&w.rt, &keep_cid, "kill -TERM 1").await;
        let r = wait_report(&mut reports, "adopted exit seen", |r| {
            state_is(r, &keep_id, ReplicaState::Exited)
        })
        .await;
        assert_eq!(replica(&r, &keep_id).unwrap().exit_code, Some(0));
        second.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn fencing_stops_everything_and_a_newer_plan_runs_it_again() {
    if !prerequisites() {
        return;
    }
    let world = World::new("fence").await;
    cleanly(world, |w| async move {
        let spec = w.replica(
            "f",
            1,
            vec![w.container("s", &["/bin/busybox", "sh", "-c", SLEEPER], &[])],
        );
        let id = spec.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec.clone()]));
        wait_report(&mut reports, "running", |r| {
            state_is(r, &id, ReplicaState::Running)
        })
        .await;
        runner.fence();
        let r = wait_report(&mut reports, "fenced", |r| {
            state_is(r, &id, ReplicaState::Stopped)
        })
        .await;
        assert_eq!(r.plan_generation, 1);
        wait_runtime(&w.rt, "everything removed", |l| l.is_empty()).await;
        // The same plan again does not resume; a newer one does.
        runner.apply(plan(1, vec![spec.clone()]));
        runner.apply(plan(2, vec![spec]));
        let r = wait_report(&mut reports, "running again", |r| {
            r.plan_generation == 2 && state_is(r, &id, ReplicaState::Running)
        })
        .await;
        assert!(!replica(&r, &id).unwrap().liveness_failed);
        assert_eq!(w.rt.list().await.unwrap().len(), 1);
        runner.shutdown().await;
        // A restarted runner told to fence before any plan removes what the
        // previous one left running.
        let fresh = w.runner().await;
        fresh.fence();
        wait_runtime(&w.rt, "fenced before a plan", |l| l.is_empty()).await;
        fresh.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_container_pinned_to_cpu_0_runs_only_there() {
    if !prerequisites() {
        return;
    }
    let world = World::new("pin").await;
    cleanly(world, |w| async move {
        let mut c = w.container("s", &["/bin/busybox", "sh", "-c", SLEEPER], &[]);
        c.cpuset = Some(vec![0]);
        c.exclusive = true;
        c.cpu_millis_request = 1000;
        c.cpu_millis_limit = Some(1000);
        let spec = w.replica("pin", 1, vec![c]);
        let id = spec.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec]));
        wait_report(&mut reports, "running", |r| {
            state_is(r, &id, ReplicaState::Running)
        })
        .await;
        let out = sh(
            &w.rt,
            &Runner::log_id(&id, "s", 1),
            "grep Cpus_allowed_list /proc/self/status",
        )
        .await;
        assert!(out.trim().ends_with("\t0"), "{out:?}");
        runner.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_image_digest_or_a_port_mapping_fails_the_replica_and_leaves_nothing() {
    if !prerequisites() {
        return;
    }
    let world = World::new("digest").await;
    cleanly(world, |w| async move {
        let wrong = format!("sha256:{}", "0".repeat(64));
        let mut spec = w.replica("bad", 1, vec![w.container("s", &[], &[])]);
        spec.images[0].digest = wrong.clone();
        spec.containers[0].image_digest = wrong.clone();
        let id = spec.id.clone();
        let mut mapped = w.replica("mapped", 1, vec![w.container("s", &[], &[])]);
        mapped.containers[0].ports = vec![roost_api::apps::agent::PortSpec {
            container_port: 80,
            host_port: Some(8080),
            protocol: "TCP".into(),
        }];
        let mapped_id = mapped.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec, mapped]));
        let r = wait_report(&mut reports, "both failed", |r| {
            state_is(r, &id, ReplicaState::Failed) && state_is(r, &mapped_id, ReplicaState::Failed)
        })
        .await;
        let message = |id: &str| replica(&r, id).unwrap().message.clone().unwrap_or_default();
        let msg = message(&id);
        assert!(msg.contains(&wrong) && msg.contains(&w.digest), "{msg}");
        let msg = message(&mapped_id);
        assert!(msg.contains("hostPort 8080"), "{msg}");
        assert!(w.rt.list().await.unwrap().is_empty());
        runner.shutdown().await;
    })
    .await;
}

/// A field of `/proc/self/status` as the container's shell sees it.
async fn status_field(rt: &Containerd, id: &str, field: &str) -> String {
    let out = sh(rt, id, &format!("grep '^{field}:' /proc/self/status")).await;
    out.split_once(':')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// Runs `cmd` in the container and returns its output (stderr included)
/// followed by `rc=<exit status>`.
async fn sh_rc(rt: &Containerd, id: &str, cmd: &str) -> String {
    sh(rt, id, &format!("{{ {cmd} ; }} 2>&1; echo rc=$?")).await
}

/// The namespace link of `kind` (`pid:[4026531836]`).
fn host_namespace(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

#[tokio::test]
async fn a_default_container_sees_only_its_own_processes_and_seccomp_refuses_new_namespaces() {
    if !prerequisites() {
        return;
    }
    let world = World::new("confined").await;
    cleanly(world, |w| async move {
        let confined = w.container("confined", &["/bin/busybox", "sh", "-c", SLEEPER], &[]);
        let mut privileged = w.container("privileged", &["/bin/busybox", "sh", "-c", SLEEPER], &[]);
        privileged.security.privileged = true;
        let spec = w.replica("ns", 1, vec![confined, privileged]);
        let id = spec.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec]));
        wait_report(&mut reports, "running", |r| {
            state_is(r, &id, ReplicaState::Running)
        })
        .await;
        let c = Runner::log_id(&id, "confined", 1);
        let p = Runner::log_id(&id, "privileged", 1);

        // Its own PID and IPC namespaces: pid 1 is its own shell, and no
        // host process (this test's among them) is visible.
        for kind in ["pid", "ipc", "mnt"] {
            let inside = sh(&w.rt, &c, &format!("/bin/busybox readlink /proc/self/ns/{kind}")).await;
            assert_ne!(inside.trim(), host_namespace(kind), "{kind}");
        }
        let init = sh(&w.rt, &c, "cat /proc/1/cmdline | /bin/busybox tr '\\0' ' '").await;
        assert!(init.contains("echo started"), "pid 1 is {init:?}");
        let listing = sh(
            &w.rt,
            &c,
            "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(/bin/busybox tr '\\0' ' ' < $p/cmdline 2>/dev/null)\"; done",
        )
        .await;
        let pids: Vec<u32> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(pids.contains(&1), "{listing}");
        assert!(!pids.contains(&std::process::id()), "{listing}");
        assert!(pids.len() < 10, "{listing}");
        // A process may end between the listing and the reading of its
        // command line (the sleeper's `sleep 1`): an empty one is skipped.
        for line in listing.lines().filter(|l| l.split_whitespace().nth(1).is_some()) {
            assert!(
                line.contains("busybox") || line.contains("sleep") || line.contains("sh"),
                "a process that is not the container's: {line}"
            );
        }
        let host_pids = std::fs::read_dir("/proc")
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            })
            .count();
        assert!(host_pids > pids.len(), "{host_pids} host processes");

        // The default capabilities (Docker's set: 0xa80425fb), no new
        // privileges, a seccomp filter.
        assert_eq!(status_field(&w.rt, &c, "CapEff").await, "00000000a80425fb");
        assert_eq!(status_field(&w.rt, &c, "CapBnd").await, "00000000a80425fb");
        assert_eq!(status_field(&w.rt, &c, "NoNewPrivs").await, "1");
        assert_eq!(status_field(&w.rt, &c, "Seccomp").await, "2");

        // A new user namespace needs no capability, so only the filter
        // stands in the way; the privileged container (no filter) shows
        // that this kernel would allow it.
        let refused = sh_rc(&w.rt, &c, "/bin/busybox unshare -U true").await;
        assert!(
            refused.contains("Operation not permitted") && !refused.contains("rc=0"),
            "{refused}"
        );
        let refused = sh_rc(&w.rt, &c, "/bin/busybox unshare -r -m true").await;
        assert!(!refused.contains("rc=0"), "{refused}");
        assert_eq!(status_field(&w.rt, &p, "Seccomp").await, "0");
        assert_eq!(
            sh_rc(&w.rt, &p, "/bin/busybox unshare -U true").await.trim(),
            "rc=0"
        );
        // Privileged: every capability, the host's devices.
        assert_ne!(status_field(&w.rt, &p, "CapEff").await, "00000000a80425fb");
        assert_eq!(
            sh_rc(&w.rt, &p, "test -c /dev/kmsg").await.trim(),
            "rc=0"
        );
        assert_ne!(sh_rc(&w.rt, &c, "test -c /dev/kmsg").await.trim(), "rc=0");
        runner.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_read_only_root_without_capabilities_is_written_only_through_its_volumes() {
    if !prerequisites() {
        return;
    }
    let world = World::new("readonly").await;
    let host_dir = world.tmp.path().join("host-data");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("keep"), "original\n").unwrap();
    cleanly(world, move |w| async move {
        let mut c = w.container("app", &["/bin/busybox", "sh", "-c", SLEEPER], &[]);
        c.security = SecuritySpec {
            read_only_root_filesystem: true,
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        };
        c.mounts = vec![
            MountSpec {
                target: "/scratch".into(),
                read_only: false,
                source: MountSource::EmptyDir {
                    memory: false,
                    volume: "scratch".into(),
                },
            },
            MountSpec {
                target: "/host".into(),
                read_only: true,
                source: MountSource::HostPath {
                    path: host_dir.display().to_string(),
                    kind: "Directory".into(),
                },
            },
        ];
        let spec = w.replica("ro", 1, vec![c]);
        let id = spec.id.clone();
        let runner = w.runner().await;
        let mut reports = runner.reports();
        runner.apply(plan(1, vec![spec]));
        wait_report(&mut reports, "running", |r| {
            state_is(r, &id, ReplicaState::Running)
        })
        .await;
        let c = Runner::log_id(&id, "app", 1);

        // The image's root and its working directory are read-only.
        for path in ["/escape", "/tmp/escape", "/bin/escape"] {
            let out = sh_rc(&w.rt, &c, &format!("echo x > {path}")).await;
            assert!(out.contains("Read-only file system"), "{path}: {out}");
            assert!(!out.contains("rc=0"), "{path}: {out}");
        }
        // The emptyDir is writable.
        assert_eq!(
            sh(&w.rt, &c, "echo data > /scratch/f && cat /scratch/f").await,
            "data\n"
        );
        // The read-only hostPath can be read, not written.
        assert_eq!(sh(&w.rt, &c, "cat /host/keep").await, "original\n");
        for cmd in [
            "echo changed > /host/keep",
            "echo new > /host/new",
            "rm /host/keep",
        ] {
            let out = sh_rc(&w.rt, &c, cmd).await;
            assert!(!out.contains("rc=0"), "{cmd}: {out}");
        }
        assert_eq!(
            std::fs::read_to_string(host_dir.join("keep")).unwrap(),
            "original\n"
        );
        assert!(!host_dir.join("new").exists());

        // No capabilities at all: even root cannot chown.
        assert_eq!(status_field(&w.rt, &c, "CapEff").await, "0000000000000000");
        assert_eq!(status_field(&w.rt, &c, "CapBnd").await, "0000000000000000");
        let out = sh_rc(&w.rt, &c, "/bin/busybox chown 1:1 /scratch/f").await;
        assert!(out.contains("Operation not permitted"), "{out}");
        runner.shutdown().await;
    })
    .await;
}

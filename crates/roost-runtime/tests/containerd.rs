//! Against a real containerd and runc: each test starts its own private
//! supervised containerd in a temporary directory, and builds its busybox
//! image with `oci::build_image_from_dir`.

use std::path::{Path, PathBuf};

use roost_runtime::oci::{BuildOptions, BuiltImage, build_image_from_dir};
use roost_runtime::{Error, Supervised, SupervisorOptions};

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

async fn containerd(dir: &Path) -> Supervised {
    Supervised::start(&dir.join("ctr"), SupervisorOptions::default())
        .await
        .expect("private containerd starts")
}

/// A root filesystem holding static busybox and its applet links.
fn busybox_tree(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat", "ls", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    root
}

fn busybox_image(dir: &Path, name: &str) -> (PathBuf, BuiltImage) {
    let root = busybox_tree(dir);
    let out = dir.join("busybox.tar");
    let built = build_image_from_dir(
        &root,
        &out,
        &BuildOptions {
            name: name.into(),
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-c".into(), "echo default".into()],
            env: vec!["GREETING=hello".into()],
            workdir: Some("/tmp".into()),
        },
    )
    .expect("image builds");
    (out, built)
}

#[tokio::test]
async fn a_private_containerd_answers_and_has_namespace_roost() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sup = containerd(tmp.path()).await;
    let v = sup.client().version().await.unwrap();
    assert!(!v.version.is_empty(), "{v:?}");
    assert!(sup.client().list_images().await.unwrap().is_empty());
    sup.shutdown().await;
}

#[tokio::test]
async fn an_image_imports_unpacks_and_exports_with_the_same_digests() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sup = containerd(tmp.path()).await;
    let c = sup.client();
    let (tar, built) = busybox_image(tmp.path(), "roost.local/busybox:import");
    let imported = c.import_image(&tar).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].name, "roost.local/busybox:import");
    assert_eq!(imported[0].digest, built.manifest_digest);
    let content = c.list_content().await.unwrap();
    for d in [
        &built.manifest_digest,
        &built.config_digest,
        &built.layer_digest,
    ] {
        assert!(content.contains(d), "{d} missing from {content:?}");
    }
    let snaps = c.list_snapshots().await.unwrap();
    assert!(
        snaps.iter().any(|s| s.name == built.diff_id && !s.active),
        "layer snapshot {} missing: {snaps:?}",
        built.diff_id
    );
    // Importing again is harmless.
    c.import_image(&tar).await.unwrap();

    // Export, then import the export into a second containerd.
    let exported = tmp.path().join("exported.tar");
    c.export_image("roost.local/busybox:import", &exported)
        .await
        .unwrap();
    let layout = roost_runtime::oci::verify_layout(&exported, &tmp.path().join("scratch")).unwrap();
    assert_eq!(layout.images[0].target.digest, built.manifest_digest);
    drop(layout);
    sup.shutdown().await;
    let tmp2 = tempfile::tempdir().unwrap();
    let sup2 = containerd(tmp2.path()).await;
    let again = sup2.client().import_image(&exported).await.unwrap();
    assert_eq!(again[0].digest, built.manifest_digest);
    sup2.shutdown().await;
}

#[tokio::test]
async fn an_image_whose_digest_does_not_match_is_refused_and_leaves_nothing() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sup = containerd(tmp.path()).await;
    let c = sup.client();
    let root = busybox_tree(tmp.path());
    let dir = tmp.path().join("layout");
    let built = build_image_from_dir(
        &root,
        &dir,
        &BuildOptions {
            name: "roost.local/busybox:bad".into(),
            ..Default::default()
        },
    )
    .unwrap();
    // Corrupt the config: same size, other content.
    let config = dir
        .join("blobs/sha256")
        .join(built.config_digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&config).unwrap();
    bytes[0] = b' ';
    std::fs::write(&config, &bytes).unwrap();
    let err = c.import_image(&dir).await.unwrap_err();
    assert!(matches!(err, Error::InvalidImage(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("digest mismatch") && msg.contains(&built.config_digest),
        "{msg}"
    );
    assert!(c.list_images().await.unwrap().is_empty());
    assert!(c.list_content().await.unwrap().is_empty());
    assert!(c.list_snapshots().await.unwrap().is_empty());
    sup.shutdown().await;
}

mod life_cycle {
    use super::*;
    use roost_runtime::{ContainerConfig, CpuLimits, LogConfig, Runtime, TaskStatus};
    use std::time::Duration;

    const IMAGE: &str = "roost.local/busybox:test";

    fn unique(id: &str) -> String {
        format!("{id}-{}", std::process::id())
    }

    fn config(id: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            image: IMAGE.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            host_network: true,
            ..Default::default()
        }
    }

    /// Runs a test body, then removes every container whatever happened
    /// (a failed assertion included), so no shim, mount or cgroup is left.
    async fn cleanly<F, Fut>(sup: Supervised, f: F)
    where
        F: FnOnce(roost_runtime::Containerd, PathBuf) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let client = sup.client().clone();
        let outcome = tokio::spawn(f(client.clone(), sup.socket())).await;
        let cleanup = client.reconcile(&[]).await;
        sup.shutdown().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
        cleanup.expect("cleanup removes everything");
    }

    async fn with_image(tmp: &Path) -> Supervised {
        let sup = containerd(tmp).await;
        let (tar, _) = busybox_image(tmp, IMAGE);
        sup.client().import_image(&tar).await.unwrap();
        sup
    }

    fn wait_file_contains(path: &Path, dir: &Path, id: &str, needle: &str) -> String {
        roost_test_support::wait_for(30, || {
            let log = roost_runtime::logs::read_log(dir, id).ok()?;
            let s = String::from_utf8_lossy(&log).to_string();
            s.contains(needle).then_some(s)
        })
        .unwrap_or_else(|| panic!("{} never contained {needle:?}", path.display()))
    }

    #[tokio::test]
    async fn a_container_exits_with_its_status_and_its_output_is_in_the_log() {
        if !prerequisites() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let sup = with_image(tmp.path()).await;
        let dir = tmp.path().to_path_buf();
        cleanly(sup, move |rt, _socket| async move {
            let rt: &dyn Runtime = &rt;
            let id = unique("exit3");
            let logs = dir.as_path().join("logs");
            let mut c = config(
                &id,
                &["/bin/busybox", "sh", "-c", "echo hi; echo oops >&2; exit 3"],
            );
            c.log = Some(LogConfig {
                dir: logs.clone(),
                max_bytes: 1 << 20,
                files: 2,
                logger: env!("CARGO_BIN_EXE_roost-container-logger").into(),
                subcommand: "container-logger".into(),
            });
            rt.start(&c).await.unwrap();
            let st = rt.wait_exit(&id).await.unwrap();
            assert_eq!(st.code, 3);
            let log = wait_file_contains(&logs.join(format!("{id}.log")), &logs, &id, "oops");
            assert!(log.contains("hi\n"), "{log}");
            let listed = rt.list().await.unwrap();
            let me = listed.iter().find(|s| s.id == id).unwrap();
            let task = me.task.as_ref().unwrap();
            assert_eq!(task.status, TaskStatus::Stopped);
            assert_eq!(task.exit.unwrap().code, 3);
            rt.remove(&id).await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn stop_sends_sigterm_then_sigkill_after_the_grace() {
        if !prerequisites() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let sup = with_image(tmp.path()).await;
        cleanly(sup, move |rt, _socket| async move {
            let rt = &rt;
            // A shell that exits 143 on SIGTERM.
            let polite = unique("polite");
            rt.start(&config(
                &polite,
                &[
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "trap 'exit 143' TERM; echo ready > /tmp/ready; while true; do sleep 1; done",
                ],
            ))
            .await
            .unwrap();
            wait_exec_ok(rt, &polite, "test -f /tmp/ready").await;
            let st = rt
                .stop(&polite, Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(st.code, 143, "the shell's TERM trap ran");
            // `sleep` as pid 1 ignores SIGTERM: SIGKILL after the grace.
            let stubborn = unique("stubborn");
            rt.start(&config(&stubborn, &["/bin/busybox", "sleep", "1000"]))
                .await
                .unwrap();
            let st = rt
                .stop(&stubborn, Duration::from_millis(500))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(st.code, 137);
            // Stopping again reports the same exit; no task at all gives None.
            assert_eq!(
                rt.stop(&stubborn, Duration::from_secs(1))
                    .await
                    .unwrap()
                    .unwrap()
                    .code,
                137
            );
            rt.remove(&polite).await.unwrap();
            rt.remove(&stubborn).await.unwrap();
            assert_eq!(
                rt.stop(&stubborn, Duration::from_secs(1)).await.unwrap(),
                None
            );
        })
        .await;
    }

    async fn wait_exec_ok(rt: &roost_runtime::Containerd, id: &str, cmd: &str) {
        for _ in 0..200 {
            let out = rt
                .exec(
                    id,
                    &["/bin/busybox".into(), "sh".into(), "-c".into(), cmd.into()],
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            if out.success() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{cmd} never succeeded in {id}");
    }

    #[tokio::test]
    async fn exec_runs_in_the_container_and_is_killed_at_its_timeout() {
        if !prerequisites() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let sup = with_image(tmp.path()).await;
        cleanly(sup, move |rt, _socket| async move {
            let rt = &rt;
            let id = unique("execs");
            let mut c = config(&id, &["/bin/busybox", "sleep", "1000"]);
            c.env = vec!["EXTRA=1".into()];
            rt.start(&c).await.unwrap();
            let out = rt
                .exec(
                    &id,
                    &[
                        "/bin/busybox".into(),
                        "sh".into(),
                        "-c".into(),
                        "echo $GREETING$EXTRA; pwd; exit 4".into(),
                    ],
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            assert_eq!(out.exit_code, Some(4));
            assert_eq!(String::from_utf8_lossy(&out.output), "hello1\n/tmp\n");
            let slow = rt
                .exec(
                    &id,
                    &["/bin/busybox".into(), "sleep".into(), "100".into()],
                    Duration::from_millis(500),
                )
                .await
                .unwrap();
            assert!(slow.timed_out && slow.exit_code.is_none(), "{slow:?}");
            rt.remove(&id).await.unwrap();
        })
        .await;
    }

    fn cgroup_file(controller: &str, id: &str, v1: &str, v2: &str) -> String {
        let p1 = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("roost")
            .join(id)
            .join(v1);
        let p2 = Path::new("/sys/fs/cgroup/roost").join(id).join(v2);
        std::fs::read_to_string(&p1)
            .or_else(|_| std::fs::read_to_string(&p2))
            .unwrap_or_else(|e| panic!("{} / {}: {e}", p1.display(), p2.display()))
            .trim()
            .to_string()
    }

    #[tokio::test]
    async fn memory_limit_and_cpuset_are_in_the_containers_cgroup() {
        if !prerequisites() {
            return;
        }
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if !roost_test_support::require_or_skip(cpus >= 2, "at least 2 CPUs to pin to CPU 1") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let sup = with_image(tmp.path()).await;
        cleanly(sup, move |rt, _socket| async move {
            let rt = &rt;
            let id = unique("pinned");
            let mut c = config(&id, &["/bin/busybox", "sleep", "1000"]);
            c.memory_limit = Some(64 << 20);
            c.cpu = CpuLimits::from_millis(Some(1000), Some(1000), Some(vec![1]));
            rt.start(&c).await.unwrap();
            assert_eq!(
                cgroup_file("memory", &id, "memory.limit_in_bytes", "memory.max"),
                (64u64 << 20).to_string()
            );
            assert_eq!(
                cgroup_file("cpuset", &id, "cpuset.cpus", "cpuset.cpus"),
                "1"
            );
            // And the process inside runs only on CPU 1.
            let out = rt
                .exec(
                    &id,
                    &[
                        "/bin/busybox".into(),
                        "grep".into(),
                        "Cpus_allowed_list".into(),
                        "/proc/self/status".into(),
                    ],
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            assert!(
                String::from_utf8_lossy(&out.output).trim().ends_with("\t1"),
                "{out:?}"
            );
            rt.remove(&id).await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn remove_leaves_no_task_container_snapshot_or_mount() {
        if !prerequisites() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let sup = with_image(tmp.path()).await;
        let dir = tmp.path().to_path_buf();
        cleanly(sup, move |rt, _socket| async move {
            let rt = &rt;
            let id = unique("removed");
            rt.start(&config(&id, &["/bin/busybox", "sleep", "1000"]))
                .await
                .unwrap();
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
            assert!(
                mounts.contains(&id),
                "the running container's rootfs is mounted"
            );
            rt.remove(&id).await.unwrap();
            assert!(rt.list().await.unwrap().is_empty());
            assert!(!rt.list_snapshots().await.unwrap().iter().any(|s| s.active));
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
            assert!(!mounts.contains(&id), "{mounts}");
            assert!(
                !mounts.contains(&dir.as_path().display().to_string()),
                "{mounts}"
            );
            // Removing again is fine.
            rt.remove(&id).await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn reconcile_after_an_agent_crash_keeps_only_what_is_wanted() {
        if !prerequisites() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let sup = with_image(tmp.path()).await;
        cleanly(sup, move |_rt, socket| async move {
            let keep = unique("keep");
            let stale = unique("stale");
            let exited = unique("exited");
            {
                // The "agent" that crashes: its client goes away with its state.
                let before = roost_runtime::Containerd::connect(&socket).await.unwrap();
                before
                    .start(&config(&keep, &["/bin/busybox", "sleep", "1000"]))
                    .await
                    .unwrap();
                before
                    .start(&config(&stale, &["/bin/busybox", "sleep", "1000"]))
                    .await
                    .unwrap();
                before
                    .start(&config(&exited, &["/bin/busybox", "true"]))
                    .await
                    .unwrap();
                before.wait_exit(&exited).await.unwrap();
            }
            let after = roost_runtime::Containerd::connect(&socket).await.unwrap();
            let mut removed = after.reconcile(std::slice::from_ref(&keep)).await.unwrap();
            removed.sort();
            let mut expected = vec![exited.clone(), stale.clone()];
            expected.sort();
            assert_eq!(removed, expected);
            let left = after.list().await.unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].id, keep);
            assert_eq!(left[0].task.as_ref().unwrap().status, TaskStatus::Running);
            let active: Vec<_> = after
                .list_snapshots()
                .await
                .unwrap()
                .into_iter()
                .filter(|s| s.active)
                .map(|s| s.name)
                .collect();
            assert_eq!(active, vec![keep.clone()]);
            after.remove(&keep).await.unwrap();
        })
        .await;
    }
}

#[tokio::test]
async fn a_missing_containerd_is_reported_with_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Supervised::start(
        &tmp.path().join("ctr"),
        SupervisorOptions {
            containerd: Some(tmp.path().join("no-such-containerd")),
            ..Default::default()
        },
    )
    .await
    .err()
    .expect("no containerd, no start");
    assert!(matches!(err, Error::NotInstalled { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("install the Debian packages containerd and runc"),
        "{err}"
    );
}

#[tokio::test]
async fn a_supervised_containerd_that_dies_is_restarted_and_answers_again() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut sup = containerd(tmp.path()).await;
    assert_eq!(sup.starts(), 1);
    let pid = sup.pid().expect("containerd runs");
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    sup.wait_started_after(1, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_ne!(
        sup.pid().map(|p| p as i32),
        Some(pid.as_raw_nonzero().get())
    );
    // The same client reconnects to the new containerd.
    let v = sup.client().version().await.unwrap();
    assert!(!v.version.is_empty());
    sup.shutdown().await;
}

#[tokio::test]
async fn two_archives_giving_one_name_to_different_content_are_both_kept_when_pinned() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sup = containerd(tmp.path()).await;
    let c = sup.client();
    const NAME: &str = "roost.local/busybox:same";
    let (tar_a, a) = busybox_image(&tmp.path().join("a"), NAME);
    // The second tree differs by one file: another digest, the same name.
    let dir_b = tmp.path().join("b");
    std::fs::create_dir_all(&dir_b).unwrap();
    let root_b = busybox_tree(&dir_b);
    std::fs::write(root_b.join("etc/version"), "2\n").unwrap();
    let tar_b = dir_b.join("busybox.tar");
    let b = build_image_from_dir(
        &root_b,
        &tar_b,
        &BuildOptions {
            name: NAME.into(),
            cmd: vec!["/bin/sh".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_ne!(a.manifest_digest, b.manifest_digest);

    let got_a = c.import_image_pinned(&tar_a).await.unwrap();
    let got_b = c.import_image_pinned(&tar_b).await.unwrap();
    let pinned_a = roost_runtime::pinned_name(NAME, &a.manifest_digest);
    let pinned_b = roost_runtime::pinned_name(NAME, &b.manifest_digest);
    assert_eq!(got_a[0].name, pinned_a);
    assert_eq!(got_b[0].name, pinned_b);
    let names = |v: Vec<roost_runtime::ImageInfo>| -> Vec<String> {
        let mut n: Vec<String> = v.into_iter().map(|i| i.name).collect();
        n.sort();
        n
    };
    let mut both = vec![pinned_a.clone(), pinned_b.clone()];
    both.sort();
    assert_eq!(names(c.list_images().await.unwrap()), both);

    // Removing the first leaves the second whole.
    c.remove_image(&pinned_a).await.unwrap();
    assert_eq!(
        names(c.list_images().await.unwrap()),
        vec![pinned_b.clone()]
    );
    let content = c.list_content().await.unwrap();
    assert!(content.contains(&b.manifest_digest), "{content:?}");
    assert!(content.contains(&b.layer_digest), "{content:?}");
    sup.shutdown().await;
}

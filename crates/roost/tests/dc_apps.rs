//! Applications across the fleet, end to end: a real system controller and
//! three real subclouds (each with its own containerd). An application
//! uploaded on the system controller and assigned to a group becomes
//! `applied` on every subcloud of the group (checked on the subcloud's own
//! `/v1/apps`); a subcloud stopped during the assignment catches up when it
//! returns; each subcloud fetches the package once; taking the application
//! off the group removes it.

use std::path::{Path, PathBuf};

use roost_test_support::{Api, Server, ServerOptions, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn config(dir: &Path, extra: &str) -> String {
    roost_test_support::quick_dc_config(dir, extra)
}

/// Root, containerd, runc and busybox-static: what running containers needs.
fn runtime_prerequisites() -> bool {
    let have = |b: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    roost_test_support::require_or_skip(
        root && have("containerd") && have("runc") && Path::new("/bin/busybox").exists(),
        "root, containerd, runc and busybox-static (./scripts/test installs them)",
    )
}

const BUSYBOX: &str = "registry.local/busybox:1";

/// A package whose one Deployment sleeps in static busybox.
fn package(dir: &Path, name: &str, version: &str) -> PathBuf {
    let src = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(src.join("manifests")).unwrap();
    std::fs::create_dir_all(src.join("images")).unwrap();
    std::fs::write(
        src.join("metadata.yaml"),
        format!("app_name: {name}\napp_version: {version}\n"),
    )
    .unwrap();
    std::fs::write(
        src.join("manifests/app.yaml"),
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
      containers:
        - name: main
          image: {BUSYBOX}
          command: [\"/bin/sh\", \"-c\", \"sleep 100000\"]
"
        ),
    )
    .unwrap();
    let root = dir.join(format!("{name}-{version}-rootfs"));
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    if Path::new("/bin/busybox").exists() {
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    } else {
        // Enough to upload (the simulated subclouds run nothing).
        std::fs::write(root.join("bin/hello"), "hello\n").unwrap();
    }
    roost_runtime::oci::build_image_from_dir(
        &root,
        &src.join("images/busybox.tar"),
        &roost_runtime::oci::BuildOptions {
            name: BUSYBOX.into(),
            cmd: vec!["/bin/sh".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let out = src.with_extension("tgz");
    roost_package::build(&src, &out).unwrap();
    out
}

fn system_controller(dir: &Path) -> Server {
    system_controller_with(dir, "[apps]\nlocal_runtime = false\n")
}

/// A system controller whose configuration file ends with `extra`.
fn system_controller_with(dir: &Path, extra: &str) -> Server {
    Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                config(dir, extra),
            ],
            ..Default::default()
        },
    )
}

/// A subcloud of `sc` in `dir`, enrolling with `token`.
fn subcloud(sc: &Server, dir: &Path, token: String) -> Server {
    Server::start_in(
        bin(),
        &dir.join("data"),
        ServerOptions {
            args: vec![
                "--role".into(),
                "subcloud".into(),
                "--system-controller".into(),
                sc.dc_url.clone().unwrap(),
                "--enroll-token".into(),
                token,
                "--config".into(),
                config(dir, ""),
            ],
            ..Default::default()
        },
        None,
    )
    .expect("subcloud starts")
}

/// Uploads `tgz` on `s` and waits until it is `uploaded`.
fn upload(s: &Server, tgz: &Path, name: &str) {
    let bytes = std::fs::read(tgz).unwrap();
    let r = s.api().post(
        "/v1/apps",
        &json!({
            "tarfile": tgz.display().to_string(),
            "binary_data": roost_api::apps::base64::encode(&bytes),
        }),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_app(s, name, "uploaded", 60);
}

fn app_status(api: &Api, name: &str) -> Option<String> {
    let r = api.get(&format!("/v1/apps/{name}"));
    (r.status == 200).then(|| r.body["status"].as_str().unwrap_or("").to_string())
}

fn wait_app(s: &Server, name: &str, want: &str, secs: u64) {
    let api = s.api();
    wait_for(secs, || {
        (app_status(&api, name).as_deref() == Some(want)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} never became {want} on {}: {:?}\n{}",
            s.url,
            api.get(&format!("/v1/apps/{name}")).body,
            s.log()
        )
    });
}

fn subcloud_apps(api: &Api, sc: &str) -> Value {
    let r = api.get(&format!("/v1.0/subclouds/{sc}/apps"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

fn endpoint_status(api: &Api, sc: &str, ep: &str) -> String {
    let r = api.get(&format!("/v1.0/subclouds/{sc}/detail"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["endpoint_sync_status"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint_type"] == ep)
        .map(|e| e["sync_status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {ep} endpoint in {}", r.body))
}

fn wait_online(api: &Api, sc: &str) {
    wait_for(240, || {
        let r = api.get(&format!("/v1.0/subclouds/{sc}"));
        (r.body["availability-status"] == "online").then_some(())
    })
    .unwrap_or_else(|| panic!("{sc} never came online"));
}

#[test]
fn an_app_assigned_to_a_group_is_applied_on_each_subcloud_once_fetched_and_removed_when_taken_off()
{
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sc = system_controller(&tmp.path().join("sc"));
    let api = sc.api();
    let tgz = package(tmp.path(), "hello", "1.0");
    let size = std::fs::metadata(&tgz).unwrap().len();
    upload(&sc, &tgz, "hello");

    // An application that is not uploaded cannot be assigned.
    let r = api.post("/v1.0/subcloud-groups", &json!({"name": "edge"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.post("/v1.0/subcloud-groups/edge/apps", &json!({"app": "nope"}));
    assert_eq!(r.status, 400, "{:?}", r.body);

    let names = ["edge-1", "edge-2", "edge-3"];
    let mut subs = Vec::new();
    for n in names {
        let r = api.post(
            "/v1.0/subclouds/",
            &json!({"name": n, "description": "site", "group": "edge"}),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        let token = r.body["enroll_token"].as_str().unwrap().to_string();
        let dir = tmp.path().join(n);
        subs.push(subcloud(&sc, &dir, token));
    }
    for n in names {
        wait_online(&api, n);
        let r = api.patch(
            &format!("/v1.0/subclouds/{n}"),
            &json!({"management-state": "managed"}),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // edge-3 is stopped before the assignment.
    subs[2].kill9();
    wait_for(240, || {
        let r = api.get("/v1.0/subclouds/edge-3");
        (r.body["availability-status"] == "offline").then_some(())
    })
    .expect("edge-3 goes offline");

    let r = api.post("/v1.0/subcloud-groups/edge/apps", &json!({"app": "hello"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["apps"][0]["name"], "hello");
    assert_eq!(r.body["apps"][0]["size"], size);
    assert!(
        r.body["apps"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let listed = api.get("/v1.0/subcloud-groups/edge/apps");
    assert_eq!(listed.body["apps"], r.body["apps"]);

    for (i, n) in names.iter().take(2).enumerate() {
        wait_app(&subs[i], "hello", "applied", 180);
        let st = wait_for(240, || {
            let st = subcloud_apps(&api, n);
            (st["apps"][0]["state"] == "applied").then_some(st)
        })
        .unwrap_or_else(|| panic!("{n}: {}", subcloud_apps(&api, n)));
        assert_eq!(st["sync_status"], "in-sync", "{st}");
        assert_eq!(endpoint_status(&api, n, "apps"), "in-sync");
    }
    // The stopped subcloud: pending (status unknown while offline).
    let st = subcloud_apps(&api, "edge-3");
    assert_eq!(st["apps"][0]["state"], "pending", "{st}");
    assert_eq!(st["sync_status"], "unknown", "{st}");

    // Back again, it catches up.
    subs[2].restart();
    wait_online(&api, "edge-3");
    wait_app(&subs[2], "hello", "applied", 180);
    wait_for(240, || {
        (subcloud_apps(&api, "edge-3")["apps"][0]["state"] == "applied").then_some(())
    })
    .unwrap_or_else(|| panic!("edge-3: {}", subcloud_apps(&api, "edge-3")));

    // Each subcloud fetched the package once, whole.
    for n in names {
        let st = subcloud_apps(&api, n);
        assert_eq!(st["package_requests"], 1, "{n}: {st}");
        assert_eq!(st["package_bytes"], size, "{n}: {st}");
    }
    let all = api.get("/v1.0/subcloud-apps");
    assert_eq!(all.body["subclouds"].as_array().unwrap().len(), 3);

    // Taken off the group: removed on the subclouds.
    let r = api.delete("/v1.0/subcloud-groups/edge/apps/hello");
    assert_eq!(r.status, 200, "{:?}", r.body);
    for s in &subs {
        let sapi = s.api();
        wait_for(180, || app_status(&sapi, "hello").is_none().then_some(())).unwrap_or_else(|| {
            panic!(
                "hello stays on {}: {:?}\n{}",
                s.url,
                app_status(&sapi, "hello"),
                s.log()
            )
        });
    }
    for n in names {
        wait_for(240, || {
            (endpoint_status(&api, n, "apps") == "in-sync").then_some(())
        })
        .unwrap_or_else(|| panic!("{n}: apps never in-sync again"));
    }
    let r = api.delete("/v1.0/subcloud-groups/edge/apps/hello");
    assert_eq!(r.status, 404);
}

#[test]
fn a_group_follows_an_application_update_on_the_system_controller() {
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // This system controller runs the application itself, so that it can
    // be updated there.
    let sc = system_controller_with(&tmp.path().join("sc"), "");
    let api = sc.api();
    let v1 = package(tmp.path(), "hello", "1.0");
    upload(&sc, &v1, "hello");
    let r = api.patch("/v1/apps/hello?directive=apply", &json!({"values": {}}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_app(&sc, "hello", "applied", 180);

    let r = api.post("/v1.0/subcloud-groups", &json!({"name": "edge"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.post(
        "/v1.0/subclouds/",
        &json!({"name": "edge-1", "description": "site", "group": "edge"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = r.body["enroll_token"].as_str().unwrap().to_string();
    let dir = tmp.path().join("edge-1");
    let sub = subcloud(&sc, &dir, token);
    wait_online(&api, "edge-1");
    let r = api.patch(
        "/v1.0/subclouds/edge-1",
        &json!({"management-state": "managed"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.post("/v1.0/subcloud-groups/edge/apps", &json!({"app": "hello"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let first_digest = r.body["apps"][0]["digest"].clone();
    wait_app(&sub, "hello", "applied", 180);

    // application-update on the system controller: the group follows once
    // the new version is applied there, and the subcloud moves to it.
    let v2 = package(tmp.path(), "hello", "2.0");
    let r = api.post(
        "/v1/apps/update",
        &json!({"tarfile": v2.display().to_string(), "name": "hello", "app_version": "2.0"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_for(180, || {
        let r = api.try_get("/v1/apps/hello").ok()?;
        (r.body["status"] == "applied" && r.body["app_version"] == "2.0").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{:?}\n{}",
            api.try_get("/v1/apps/hello").map(|r| r.body),
            sc.log()
        )
    });
    let listed = wait_for(240, || {
        let r = api.get("/v1.0/subcloud-groups/edge/apps");
        (r.body["apps"][0]["version"] == "2.0").then_some(r.body)
    })
    .unwrap_or_else(|| panic!("{}", api.get("/v1.0/subcloud-groups/edge/apps").body));
    assert_ne!(listed["apps"][0]["digest"], first_digest, "{listed}");
    assert_eq!(
        listed["apps"][0]["size"],
        std::fs::metadata(&v2).unwrap().len()
    );
    let sapi = sub.api();
    wait_for(240, || {
        let r = sapi.try_get("/v1/apps/hello").ok()?;
        (r.body["status"] == "applied" && r.body["app_version"] == "2.0").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{:?}\n{}\n{}",
            sapi.try_get("/v1/apps/hello").map(|r| r.body),
            sub.log(),
            sc.log()
        )
    });
    let st = wait_for(240, || {
        let st = subcloud_apps(&api, "edge-1");
        (st["sync_status"] == "in-sync" && st["apps"][0]["state"] == "applied").then_some(st)
    })
    .unwrap_or_else(|| panic!("{}", subcloud_apps(&api, "edge-1")));
    assert_eq!(st["apps"][0]["version"], "2.0", "{st}");
    // Each version's package crossed the link once.
    assert_eq!(st["package_requests"], 2, "{st}");
    // Updated in place, as application-update does: never removed.
    let texts: Vec<String> = sapi
        .events("?limit=100")
        .iter()
        .filter_map(|e| e["reason_text"].as_str().map(str::to_string))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("update from version 1.0 to version 2.0")),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("hello removed")),
        "{texts:?}"
    );
}

#[test]
fn simulated_subclouds_fetch_the_package_once_each_over_the_real_link() {
    use std::io::{BufRead, BufReader, Write};
    const COUNT: usize = 10;
    let tmp = tempfile::tempdir().unwrap();
    let sc = system_controller(&tmp.path().join("sc"));
    let api = sc.api();
    let tgz = package(tmp.path(), "hello", "1.0");
    let size = std::fs::metadata(&tgz).unwrap().len();
    upload(&sc, &tgz, "hello");
    let mut child = std::process::Command::new(bin())
        .args(["sim", "subclouds", "--system-controller", &sc.url])
        .args(["--count", &COUNT.to_string(), "--manage"])
        .env("ROOST_TOKEN", sc.token())
        .env_remove("ROOST_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("roost sim subclouds starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.starts_with("roost sim subclouds ready"), "{ready}");

    let r = api.post(
        "/v1.0/subcloud-groups/Default/apps",
        &json!({"app": "hello"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rows = wait_for(120, || {
        let r = api.get("/v1.0/subcloud-apps");
        let rows = r.body["subclouds"].as_array().cloned().unwrap_or_default();
        (rows.len() == COUNT
            && rows
                .iter()
                .all(|s| s["sync_status"] == "in-sync" && s["apps"][0]["state"] == "applied"))
        .then_some(rows)
    })
    .unwrap_or_else(|| panic!("{}", api.get("/v1.0/subcloud-apps").body));
    for s in &rows {
        assert_eq!(s["package_requests"], 1, "{s}");
        assert_eq!(s["package_bytes"], size, "{s}");
    }
    writeln!(stdin, "stats").unwrap();
    stdin.flush().unwrap();
    let stats = lines.next().unwrap().unwrap();
    assert!(
        stats.contains(&format!("packages_fetched={COUNT} ")),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("package_bytes={} ", COUNT as u64 * size)),
        "{stats}"
    );
    assert!(stats.contains("package_failures=0 "), "{stats}");
    let _ = child.kill();
    let _ = child.wait();
}

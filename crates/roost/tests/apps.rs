//! Applications through StarlingX's `/v1/apps`, end to end against a real
//! `roost server`: packages built with Roost's own tools (an OCI image from
//! a directory tree, the package `.tgz` with its checksum file), uploaded
//! as `system application-upload` sends them (one JSON body with the
//! package in base64), and bad packages refused with nothing stored.

use std::io::Write;
use std::path::{Path, PathBuf};

use roost_test_support::{Server, ServerOptions, wait_for};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_roost"))
}

const IMAGE: &str = "registry.local/web:1";

/// A small root filesystem (no binary needed to upload; the runtime tests
/// use busybox).
fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hello"), "hello\n").unwrap();
    root
}

fn deployment(image: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      hostNetwork: true
{extra}      containers:
        - name: web
          image: {image}
          command: [\"/bin/sh\", \"-c\", \"sleep 1000\"]
"
    )
}

/// A package source directory: metadata, one manifest, one image archive.
fn source(dir: &Path, name: &str, version: &str, manifest: &str) -> PathBuf {
    let src = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(src.join("manifests")).unwrap();
    std::fs::create_dir_all(src.join("images")).unwrap();
    std::fs::write(
        src.join("metadata.yaml"),
        format!("app_name: {name}\napp_version: {version}\n"),
    )
    .unwrap();
    std::fs::write(src.join("manifests/app.yaml"), manifest).unwrap();
    roost_runtime::oci::build_image_from_dir(
        &rootfs(dir),
        &src.join("images/web.tar"),
        &roost_runtime::oci::BuildOptions {
            name: IMAGE.into(),
            cmd: vec!["/bin/sh".into()],
            ..Default::default()
        },
    )
    .unwrap();
    src
}

fn package(src: &Path) -> PathBuf {
    let out = src.with_extension("tgz");
    roost_package::build(src, &out).unwrap();
    out
}

/// A package of `src` as is: checksums written, nothing checked (for
/// packages Roost's builder refuses to make).
fn package_unchecked(src: &Path) -> PathBuf {
    use sha2::Digest;
    let mut sums = String::new();
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().display().to_string();
        if rel == "checksums.sha256" {
            continue;
        }
        let hex: String = sha2::Sha256::digest(std::fs::read(&f).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        sums.push_str(&format!("{hex}  {rel}\n"));
    }
    std::fs::write(src.join("checksums.sha256"), sums).unwrap();
    let out = src.with_extension("tgz");
    let f = std::fs::File::create(&out).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    b.append_dir_all(".", src).unwrap();
    b.into_inner().unwrap().finish().unwrap();
    out
}

/// The body `system application-upload` sends.
fn upload_body(tgz: &Path) -> Value {
    let bytes = std::fs::read(tgz).unwrap();
    json!({
        "tarfile": tgz.display().to_string(),
        "binary_data": roost_api::apps::base64::encode(&bytes),
    })
}

fn wait_status(s: &Server, name: &str, want: &str) -> Value {
    let api = s.api();
    wait_for(60, || {
        let r = api.get(&format!("/v1/apps/{name}"));
        (r.status == 200 && r.body["status"] == want).then_some(r.body)
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} never became {want}: {:?}\n{}",
            api.get(&format!("/v1/apps/{name}")).body,
            s.log()
        )
    })
}

/// Everything left of packages in the data directory (kept packages, and
/// uploads being received or unpacked).
fn stored_files(s: &Server) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["packages", "incoming", "staging"] {
        let d = s.data_dir.join("apps").join(sub);
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn upload_show_list_and_delete_follow_starlingx() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&bin());
    let api = s.api();
    let tgz = package(&source(
        tmp.path(),
        "hello",
        "1.0-1",
        &deployment(IMAGE, ""),
    ));

    let r = api.post("/v1/apps", &upload_body(&tgz));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "hello");
    assert_eq!(r.body["app_version"], "1.0-1");
    assert_eq!(r.body["status"], "uploading");
    assert_eq!(r.body["manifest_name"], "hello-manifests");
    assert!(r.body.get("id").is_none());

    let shown = wait_status(&s, "hello", "uploaded");
    assert_eq!(shown["progress"], "completed");
    assert_eq!(shown["active"], false);
    let mut keys: Vec<&String> = shown.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "active",
            "app_version",
            "created_at",
            "manifest_file",
            "manifest_name",
            "name",
            "progress",
            "status",
            "updated_at"
        ]
    );

    let list = api.get("/v1/apps");
    assert_eq!(list.status, 200);
    let items = list.body["apps"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_object().unwrap().len(), 7);
    assert_eq!(stored_files(&s), ["packages/hello"]);

    // The same name again: StarlingX's refusal, and the first is untouched.
    let again = api.post("/v1/apps", &upload_body(&tgz));
    assert_eq!(again.status, 400);
    assert!(
        again
            .body
            .to_string()
            .contains("Application-upload rejected: application hello already exists."),
        "{}",
        again.body.to_string()
    );
    assert_eq!(api.get("/v1/apps/hello").body["status"], "uploaded");

    // Unknown applications: 404 on show, 400 on actions (fact 33).
    assert_eq!(api.get("/v1/apps/nope").status, 404);
    let r = api.patch("/v1/apps/nope?directive=apply", &json!({"values": {}}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.to_string().contains("Application-apply rejected"),
        "{}",
        r.body.to_string()
    );
    let r = api.patch("/v1/apps/hello?directive=launch", &json!({"values": {}}));
    assert_eq!(r.status, 403, "{}", r.body);

    // Survives a restart, then delete answers 204 and removes the package.
    let mut s = s;
    s.restart();
    let api = s.api();
    assert_eq!(api.get("/v1/apps/hello").body["status"], "uploaded");
    let r = api.delete("/v1/apps/hello?force=False");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(api.get("/v1/apps/hello").status, 404);
    assert!(stored_files(&s).is_empty(), "{:?}", stored_files(&s));
    let events = api.events("");
    assert!(
        events.iter().any(|e| e["reason_text"]
            .as_str()
            .unwrap_or("")
            .contains("hello uploaded")),
        "{events:?}"
    );
}

/// A `.tgz` written entry by entry, for packages Roost's builder would
/// never make.
fn raw_tgz(path: &Path, entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        // Names are written as given, `..` included (set_path refuses it).
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

#[test]
fn bad_packages_are_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        &bin(),
        ServerOptions {
            env: vec![("ROOST_CONFIG".into(), {
                let c = tmp.path().join("roost.toml");
                std::fs::write(&c, "[apps]\nmax_package_bytes = 2097152\n").unwrap();
                c.display().to_string()
            })],
            ..Default::default()
        },
    );
    let api = s.api();
    let meta: &[u8] = b"app_name: evil\napp_version: 1\n";
    let mut cases: Vec<(String, PathBuf, &str)> = Vec::new();

    let p = tmp.path().join("traversal.tgz");
    raw_tgz(
        &p,
        &[
            ("metadata.yaml", tar::EntryType::Regular, meta, None),
            ("../escape.txt", tar::EntryType::Regular, b"x", None),
        ],
    );
    cases.push(("a path escaping the package".into(), p, ".."));

    let p = tmp.path().join("symlink.tgz");
    raw_tgz(
        &p,
        &[
            ("metadata.yaml", tar::EntryType::Regular, meta, None),
            ("manifests", tar::EntryType::Symlink, b"", Some("/etc")),
        ],
    );
    cases.push(("a link out of the package".into(), p, "link"));

    // A checksum file that does not match the manifest.
    let src = source(tmp.path(), "sums", "1", &deployment(IMAGE, ""));
    let tgz = package(&src);
    let unpacked = tmp.path().join("sums-unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&tgz).unwrap(),
    ))
    .unpack(&unpacked)
    .unwrap();
    let top = unpacked.clone();
    let manifest = top.join("manifests/app.yaml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("# changed after the checksums were written\n");
    std::fs::write(&manifest, text).unwrap();
    let p = tmp.path().join("checksum.tgz");
    {
        let f = std::fs::File::create(&p).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        b.append_dir_all(".", &top).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    cases.push(("a wrong checksum".into(), p, "checksum validation failed"));

    // An image whose blob does not match its digest.
    let src = source(tmp.path(), "digest", "1", &deployment(IMAGE, ""));
    let layout = tmp.path().join("digest-layout");
    roost_runtime::oci::build_image_from_dir(
        &rootfs(&tmp.path().join("d2")),
        &layout,
        &roost_runtime::oci::BuildOptions {
            name: IMAGE.into(),
            ..Default::default()
        },
    )
    .unwrap();
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut data = std::fs::read(&biggest).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&biggest, data).unwrap();
    {
        let f = std::fs::File::create(src.join("images/web.tar")).unwrap();
        let mut b = tar::Builder::new(f);
        b.append_dir_all(".", &layout).unwrap();
        b.into_inner().unwrap();
    }
    cases.push((
        "an image digest mismatch".into(),
        package_unchecked(&src),
        "digest",
    ));

    let src = source(
        tmp.path(),
        "unknown",
        "1",
        &deployment(IMAGE, "      affinity: {}\n"),
    );
    cases.push((
        "an unknown manifest field".into(),
        package_unchecked(&src),
        "spec.template.spec.affinity",
    ));

    let src = source(
        tmp.path(),
        "noimage",
        "1",
        &deployment("registry.local/missing:1", ""),
    );
    cases.push((
        "an image the package lacks".into(),
        package_unchecked(&src),
        "registry.local/missing:1",
    ));

    let big = format!("{}# {}\n", deployment(IMAGE, ""), "x".repeat(1_100_000));
    let src = source(tmp.path(), "big", "1", &big);
    cases.push((
        "a manifest too large".into(),
        package_unchecked(&src),
        "manifest",
    ));

    for (what, tgz, needle) in &cases {
        let r = api.post("/v1/apps", &upload_body(tgz));
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(
            r.body
                .to_string()
                .to_lowercase()
                .contains(&needle.to_lowercase()),
            "{what}: {needle:?} not in {}",
            r.body
        );
        assert!(
            r.body["error_message"].is_string() || r.body.is_object(),
            "{what}"
        );
        assert_eq!(api.get("/v1/apps").body["apps"], json!([]), "{what}");
        assert!(
            stored_files(&s).is_empty(),
            "{what}: {:?}",
            stored_files(&s)
        );
    }

    // Larger than the configured limit: 413, nothing stored.
    let mut body = upload_body(&cases[0].1);
    body["binary_data"] = json!(roost_api::apps::base64::encode(&vec![7u8; 3 << 20]));
    let r = api.post("/v1/apps", &body);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        r.body.to_string().contains("2097152"),
        "{}",
        r.body.to_string()
    );
    assert!(stored_files(&s).is_empty(), "{:?}", stored_files(&s));

    // Not JSON at all, and a path the server does not have.
    let r = api.post_raw("/v1/apps", "application/json", b"{\"tarfile\": ".to_vec());
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api.post("/v1/apps", &json!({"tarfile": "/nonexistent/x.tgz"}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.to_string().contains("does not exist"),
        "{}",
        r.body.to_string()
    );
    assert!(stored_files(&s).is_empty(), "{:?}", stored_files(&s));
    assert_eq!(api.get("/v1/apps").body["apps"], json!([]));
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

/// A package whose image is static busybox.
fn busybox_source(dir: &Path, name: &str, version: &str, manifest: &str) -> PathBuf {
    let src = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(src.join("manifests")).unwrap();
    std::fs::create_dir_all(src.join("images")).unwrap();
    std::fs::write(
        src.join("metadata.yaml"),
        format!("app_name: {name}\napp_version: {version}\n"),
    )
    .unwrap();
    std::fs::write(src.join("manifests/app.yaml"), manifest).unwrap();
    let root = dir.join(format!("{name}-rootfs"));
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "www"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "true", "cat", "echo", "httpd"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
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
    src
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn two_containers(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: web-conf}}
data:
  index.html: \"hello from roost\\n\"
  GREETING: hi
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      hostNetwork: true
      volumes:
        - name: www
          configMap: {{name: web-conf}}
      containers:
        - name: httpd
          image: {BUSYBOX}
          command: [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]
          volumeMounts:
            - {{name: www, mountPath: /www}}
          readinessProbe:
            httpGet: {{path: /index.html, port: {port}}}
            periodSeconds: 1
        - name: sidecar
          image: {BUSYBOX}
          command: [\"/bin/sh\", \"-c\", \"echo sidecar says $GREETING; exec sleep 100000\"]
          env:
            - name: GREETING
              valueFrom: {{configMapKeyRef: {{name: web-conf, key: GREETING}}}}
          livenessProbe:
            exec: {{command: [\"/bin/true\"]}}
            periodSeconds: 1
"
    )
}

fn get_text(url: &str) -> Option<String> {
    let r = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
        .get(url)
        .send()
        .ok()?;
    r.status().is_success().then(|| r.text().ok()).flatten()
}

/// What the server's private containerd holds in namespace `roost`.
fn containerd_leftovers(s: &Server) -> (usize, usize) {
    let sock = s.data_dir.join("apps/containerd/containerd.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = roost_runtime::Containerd::connect(&sock).await.unwrap();
        let containers = c.list().await.unwrap().len();
        let snapshots = c.list_snapshots().await.unwrap().len();
        (containers, snapshots)
    })
}

#[test]
fn a_two_container_app_applies_runs_probes_logs_and_removes_without_leftovers() {
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&bin());
    let api = s.api();
    let port = free_port();
    let tgz = package(&busybox_source(
        tmp.path(),
        "web",
        "1.0",
        &two_containers(port),
    ));
    let r = api.post("/v1/apps", &upload_body(&tgz));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "web", "uploaded");

    let r = api.patch(
        "/v1/apps/web?directive=apply",
        &json!({"values": {"client_side": false}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "applying");
    let applied = wait_status(&s, "web", "applied");
    assert_eq!(applied["active"], true);
    assert_eq!(applied["progress"], "completed");

    let replicas = api.get("/v1/apps/web/replicas");
    assert_eq!(replicas.status, 200);
    let r0 = &replicas.body["replicas"][0];
    assert_eq!(r0["host"], "controller-0", "{}", replicas.body);
    assert_eq!(r0["state"], "running");
    assert_eq!(r0["ready"], true);
    assert_eq!(r0["kind"], "Deployment");
    assert_eq!(
        get_text(&format!("http://127.0.0.1:{port}/index.html")).as_deref(),
        Some("hello from roost\n")
    );
    let logs = wait_for(30, || {
        let r = s.api().get("/v1/apps/web/logs?container=sidecar");
        let text = r
            .body
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| r.body.to_string());
        text.contains("sidecar says hi").then_some(text)
    });
    assert!(logs.is_some(), "{}", s.log());

    // Remove stops everything and leaves nothing in containerd.
    let r = api.patch(
        "/v1/apps/web?directive=remove&force=False",
        &json!({"values": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let removed = wait_status(&s, "web", "uploaded");
    assert_eq!(removed["active"], false);
    assert!(get_text(&format!("http://127.0.0.1:{port}/index.html")).is_none());
    let left = wait_for(30, || {
        let l = containerd_leftovers(&s);
        (l == (0, 0)).then_some(l)
    });
    assert_eq!(
        left,
        Some((0, 0)),
        "containers and snapshots left: {:?}",
        containerd_leftovers(&s)
    );
    assert_eq!(api.delete("/v1/apps/web").status, 204);
}

/// Running containers per replica id in the containerd at `sock`.
fn running_replicas(sock: &Path) -> Vec<String> {
    if !sock.exists() {
        return Vec::new();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(c) = roost_runtime::Containerd::connect(sock).await else {
            return Vec::new();
        };
        c.list()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                s.task
                    .as_ref()
                    .is_some_and(|t| t.status == roost_runtime::TaskStatus::Running)
            })
            .filter_map(|s| s.labels.get("roost.replica").cloned())
            .collect()
    })
}

fn agent_containerd(a: &roost_test_support::Agent) -> PathBuf {
    a.data_dir.join("apps/containerd/containerd.sock")
}

/// Stops an agent with SIGTERM (its private containerd goes with it) and
/// waits until it is gone.
fn stop_agent(a: &roost_test_support::Agent) {
    let pid = a.pid();
    a.signal("TERM");
    wait_for(30, || {
        (!Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    });
}

const SLEEPER: &str = "apiVersion: apps/v1
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
          command: [\"/bin/sh\", \"-c\", \"echo running; exec sleep 100000\"]
";

#[test]
fn a_failed_hosts_replica_runs_elsewhere_and_never_twice() {
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("roost.toml");
    std::fs::write(&conf, "[apps]\nlocal_runtime = false\n").unwrap();
    let s = Server::start_with(
        &bin(),
        ServerOptions {
            env: vec![("ROOST_CONFIG".into(), conf.display().to_string())],
            ..Default::default()
        },
    );
    let api = s.api();
    let mut agents = Vec::new();
    for (i, ip) in ["127.0.0.2", "127.0.0.3"].iter().enumerate() {
        let name = format!("worker-{i}");
        let token = api.add_host(&name, "worker");
        let a = roost_test_support::Agent::start(
            &bin(),
            &s.url,
            &token,
            &tmp.path().join(&name),
            ip,
            &["--reboot-command", "true"],
        )
        .expect("agent starts");
        api.wait_avail(&name, "online", 30);
        assert_eq!(api.host_action(&name, "unlock").status, 200);
        api.wait_avail(&name, "available", 30);
        let uuid = api.host(&name)["uuid"].as_str().unwrap().to_string();
        let r = api.post(&format!("/v1/labels/{uuid}"), &json!({"pool": "edge"}));
        assert_eq!(r.status, 200, "{}", r.body);
        agents.push(a);
    }
    let tgz = package(&busybox_source(tmp.path(), "fo", "1", SLEEPER));
    assert_eq!(api.post("/v1/apps", &upload_body(&tgz)).status, 200);
    wait_status(&s, "fo", "uploaded");
    let r = api.patch("/v1/apps/fo?directive=apply", &json!({"values": {}}));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "fo", "applied");
    let first = api.get("/v1/apps/fo/replicas").body["replicas"][0]["host"]
        .as_str()
        .unwrap()
        .to_string();
    let (lost, kept) = if first == "worker-0" { (0, 1) } else { (1, 0) };
    assert_eq!(
        running_replicas(&agent_containerd(&agents[lost])),
        ["fo/worker/0"]
    );

    // The host's agent stops answering (frozen): its fence watchdog kills
    // what it ran, it is declared failed, and the replica runs on the other
    // host.
    agents[lost].signal("STOP");
    let fenced = wait_for(30, || {
        running_replicas(&agent_containerd(&agents[lost]))
            .is_empty()
            .then_some(())
    });
    assert!(fenced.is_some(), "the frozen host still runs its replica");
    let moved = wait_for(60, || {
        let r = s.api().get("/v1/apps/fo/replicas").body["replicas"][0].clone();
        (r["host"] == agents[kept].hostname.as_str() && r["state"] == "running").then_some(r)
    });
    assert!(
        moved.is_some(),
        "{}\n{}",
        api.get("/v1/apps/fo/replicas").body,
        s.log()
    );
    assert_eq!(api.host(&agents[lost].hostname)["availability"], "failed");
    assert_eq!(
        running_replicas(&agent_containerd(&agents[kept])),
        ["fo/worker/0"]
    );

    // It comes back: what it ran is stopped, one copy runs in all.
    agents[lost].signal("CONT");
    api.wait_avail(&agents[lost].hostname, "available", 60);
    let single = wait_for(60, || {
        running_replicas(&agent_containerd(&agents[lost]))
            .is_empty()
            .then_some(())
    });
    assert!(
        single.is_some(),
        "the returned host still runs {:?}\n{}",
        running_replicas(&agent_containerd(&agents[lost])),
        agents[lost].log()
    );
    assert_eq!(
        running_replicas(&agent_containerd(&agents[kept])),
        ["fo/worker/0"]
    );
    let r = api.get("/v1/apps/fo/replicas").body;
    assert_eq!(r["replicas"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["replicas"][0]["host"], agents[kept].hostname.as_str());

    // Locking the host it runs on moves it first: when the lock answers,
    // the replica runs on the other host and nothing runs on the locked one.
    let r = api.host_action(&agents[kept].hostname, "lock");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(running_replicas(&agent_containerd(&agents[kept])).is_empty());
    let back = wait_for(60, || {
        let r = s.api().get("/v1/apps/fo/replicas").body["replicas"][0].clone();
        (r["host"] == agents[lost].hostname.as_str() && r["state"] == "running").then_some(r)
    });
    assert!(back.is_some(), "{}", api.get("/v1/apps/fo/replicas").body);
    assert_eq!(
        running_replicas(&agent_containerd(&agents[lost])),
        ["fo/worker/0"]
    );

    // Remove: nothing runs anywhere; the agents stop cleanly.
    let r = api.patch("/v1/apps/fo?directive=remove", &json!({"values": {}}));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "fo", "uploaded");
    for a in &agents {
        assert!(running_replicas(&agent_containerd(a)).is_empty());
        stop_agent(a);
    }
}

const PINNED: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: rt}
spec:
  replicas: 1
  selector: {matchLabels: {app: rt}}
  template:
    metadata: {labels: {app: rt}}
    spec:
      hostNetwork: true
      nodeSelector: {pool: rt}
      containers:
        - name: pinned
          image: registry.local/busybox:1
          command: [\"/bin/sh\", \"-c\", \"grep Cpus_allowed_list /proc/self/status; exec sleep 100000\"]
          resources:
            requests: {cpu: \"1\", memory: 32Mi}
            limits: {cpu: \"1\", memory: 32Mi}
        - name: shared
          image: registry.local/busybox:1
          command: [\"/bin/sh\", \"-c\", \"grep Cpus_allowed_list /proc/self/status; exec sleep 100000\"]
";

/// The CPUs a container printed (`Cpus_allowed_list:` in its log).
fn allowed_cpus(logs: &Path, container: &str) -> Option<String> {
    for e in std::fs::read_dir(logs).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(&format!(".{container}.")) {
            let text = std::fs::read_to_string(e.path()).ok()?;
            if let Some(l) = text.lines().find(|l| l.contains("Cpus_allowed_list")) {
                return l.split_whitespace().last().map(str::to_string);
            }
        }
    }
    None
}

#[test]
fn a_container_asking_for_a_whole_cpu_gets_an_isolated_core_and_no_one_else_does() {
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("roost.toml");
    std::fs::write(&conf, "[apps]\nlocal_runtime = false\n").unwrap();
    let s = Server::start_with(
        &bin(),
        ServerOptions {
            env: vec![("ROOST_CONFIG".into(), conf.display().to_string())],
            ..Default::default()
        },
    );
    let api = s.api();
    let token = api.add_host("worker-0", "worker");
    let agent = roost_test_support::Agent::start(
        &bin(),
        &s.url,
        &token,
        &tmp.path().join("worker-0"),
        "127.0.0.2",
        &["--reboot-command", "true"],
    )
    .expect("agent starts");
    api.wait_avail("worker-0", "online", 30);
    let host = api.host("worker-0");
    let uuid = host["uuid"].as_str().unwrap().to_string();
    // The last CPU becomes application-isolated (the host is locked).
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(cpus >= 2, "the pinning test needs two CPUs");
    let last = cpus - 1;
    let r = api.put(
        &format!("/v1/ihosts/{uuid}/state/host_cpus_modify"),
        &json!([{"function": "application-isolated", "cpulist": last.to_string()}]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.host_action("worker-0", "unlock").status, 200);
    api.wait_avail("worker-0", "available", 30);
    let r = api.post(&format!("/v1/labels/{uuid}"), &json!({"pool": "rt"}));
    assert_eq!(r.status, 200, "{}", r.body);

    let tgz = package(&busybox_source(tmp.path(), "rt", "1", PINNED));
    assert_eq!(api.post("/v1/apps", &upload_body(&tgz)).status, 200);
    wait_status(&s, "rt", "uploaded");
    let r = api.patch("/v1/apps/rt?directive=apply", &json!({"values": {}}));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "rt", "applied");
    let replicas = api.get("/v1/apps/rt/replicas").body;
    assert_eq!(
        replicas["replicas"][0]["exclusive_cpus"],
        json!([last]),
        "{replicas}"
    );
    let logs = agent.data_dir.join("apps/logs");
    let pinned = wait_for(30, || allowed_cpus(&logs, "pinned"));
    let shared = wait_for(30, || allowed_cpus(&logs, "shared"));
    assert_eq!(
        pinned.as_deref(),
        Some(last.to_string().as_str()),
        "{}",
        agent.log()
    );
    let shared = shared.expect("the shared container printed its CPUs");
    assert!(
        !shared.split([',', '-']).any(|c| c == last.to_string()),
        "the shared container may run on the isolated CPU {last}: {shared}"
    );

    // The output of a container on another host comes through its agent.
    let url = format!("{}/v1/apps/rt/logs?container=pinned", s.url);
    let text = roost_test_support::http()
        .get(&url)
        .header("X-Auth-Token", s.token())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("Cpus_allowed_list"), "{text}");

    let r = api.patch("/v1/apps/rt?directive=remove", &json!({"values": {}}));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "rt", "uploaded");
    stop_agent(&agent);
}

fn roost_cli(s: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .args(args)
        .env("ROOST_URL", &s.url)
        .env("ROOST_TOKEN", s.token())
        .env("ROOST_CONFIG_DIR", s.data_dir.join("cli-config"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn roost_ok(s: &Server, args: &[&str]) -> String {
    let out = roost_cli(s, args);
    assert!(
        out.status.success(),
        "roost {args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_roost_app_cli_builds_an_image_and_package_and_runs_the_app() {
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&bin());
    // An image from a directory tree, and a package, with the CLI alone.
    let root = tmp.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let src = tmp.path().join("hello");
    std::fs::create_dir_all(src.join("manifests")).unwrap();
    std::fs::create_dir_all(src.join("images")).unwrap();
    let archive = src.join("images/busybox.tar");
    roost_ok(
        &s,
        &[
            "app",
            "image",
            "import",
            root.to_str().unwrap(),
            "--name",
            BUSYBOX,
            "-o",
            archive.to_str().unwrap(),
        ],
    );
    std::fs::write(
        src.join("metadata.yaml"),
        "app_name: hello\napp_version: 1.0-1\n",
    )
    .unwrap();
    std::fs::write(
        src.join("manifests/app.yaml"),
        SLEEPER
            .replace("nodeSelector: {pool: edge}", "restartPolicy: Always")
            .replace("echo running", "echo hello from the cli"),
    )
    .unwrap();
    let tgz = tmp.path().join("hello-1.0-1.tgz");
    roost_ok(
        &s,
        &[
            "app",
            "package",
            src.to_str().unwrap(),
            "-o",
            tgz.to_str().unwrap(),
        ],
    );

    roost_ok(&s, &["app", "upload", tgz.to_str().unwrap(), "--wait"]);
    roost_ok(&s, &["app", "apply", "hello", "--wait", "--timeout", "120"]);
    let status: Value =
        serde_json::from_str(&roost_ok(&s, &["app", "status", "hello", "-o", "json"])).unwrap();
    assert_eq!(status["replicas"][0]["state"], "running", "{status}");
    let logs = wait_for(30, || {
        let out = roost_cli(&s, &["app", "logs", "hello"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("hello from the cli").then_some(text)
    });
    assert!(logs.is_some(), "{}", s.log());
    let list = roost_ok(&s, &["app", "list"]);
    assert!(list.contains("hello") && list.contains("applied"), "{list}");

    // A refusal: exit 1 and StarlingX's message.
    let out = roost_cli(&s, &["app", "delete", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("application-delete rejected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    roost_ok(&s, &["app", "remove", "hello", "--wait"]);
    roost_ok(&s, &["app", "delete", "hello"]);
    assert_eq!(s.api().get("/v1/apps/hello").status, 404);
}

#[test]
fn without_containerd_the_cloud_runs_and_apply_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let s = Server::start_with(
        &bin(),
        ServerOptions {
            env: vec![("PATH".into(), empty.display().to_string())],
            ..Default::default()
        },
    );
    let api = s.api();
    let tgz = package(&source(
        tmp.path(),
        "hello",
        "1.0-1",
        &deployment(IMAGE, ""),
    ));
    assert_eq!(api.post("/v1/apps", &upload_body(&tgz)).status, 200);
    wait_status(&s, "hello", "uploaded");
    let r = api.patch("/v1/apps/hello?directive=apply", &json!({"values": {}}));
    assert_eq!(r.status, 400, "{}", r.body);
    let text = r.body.to_string();
    assert!(
        text.contains("Application-apply rejected") && text.contains("containerd and runc"),
        "{text}"
    );
    assert_eq!(api.get("/v1/apps/hello").body["status"], "uploaded");
    // Everything else still works.
    assert_eq!(api.get("/v1/ihosts").status, 200);
}

/// The task pid of each running container of a replica in the containerd
/// at `sock`.
fn task_pids(sock: &Path, replica: &str) -> Vec<u32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(c) = roost_runtime::Containerd::connect(sock).await else {
            return Vec::new();
        };
        c.list()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.labels.get("roost.replica").map(String::as_str) == Some(replica))
            .filter_map(|s| {
                s.task
                    .filter(|t| t.status == roost_runtime::TaskStatus::Running)
            })
            .map(|t| t.pid)
            .collect()
    })
}

#[test]
fn a_server_restart_restarts_no_container_and_update_moves_to_the_new_version() {
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&bin());
    let manifest = |word: &str| {
        SLEEPER
            .replace("nodeSelector: {pool: edge}", "restartPolicy: Always")
            .replace("echo running", &format!("echo {word}"))
    };
    let v1 = package(&busybox_source(
        tmp.path(),
        "svc",
        "1",
        &manifest("version one"),
    ));
    let api = s.api();
    assert_eq!(api.post("/v1/apps", &upload_body(&v1)).status, 200);
    wait_status(&s, "svc", "uploaded");
    assert_eq!(
        api.patch("/v1/apps/svc?directive=apply", &json!({"values": {}}))
            .status,
        200
    );
    wait_status(&s, "svc", "applied");
    let sock = s.data_dir.join("apps/containerd/containerd.sock");
    let before = task_pids(&sock, "svc/worker/0");
    assert_eq!(before.len(), 1, "{before:?}");

    // SIGTERM and start again: the same process goes on running.
    assert!(s.terminate().is_some_and(|st| st.success()));
    let mut s = Server::start_in(&bin(), &s.data_dir.clone(), ServerOptions::default(), None)
        .expect("server starts again");
    let api = s.api();
    assert_eq!(api.get("/v1/apps/svc").body["status"], "applied");
    let running = wait_for(60, || {
        let r = s.api().get("/v1/apps/svc/replicas").body["replicas"][0].clone();
        (r["state"] == "running").then_some(r)
    });
    assert!(running.is_some(), "{}", s.log());
    assert_eq!(
        task_pids(&sock, "svc/worker/0"),
        before,
        "the container was restarted"
    );

    // application-update: the path of the new version on the server.
    let src2 = busybox_source(&tmp.path().join("v2"), "svc", "2", &manifest("version two"));
    let v2 = package(&src2);
    let r = api.post(
        "/v1/apps/update",
        &json!({"tarfile": v2.display().to_string(), "name": "svc", "app_version": "2",
                "reuse_user_overrides": "true", "reuse_attributes": "false"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["app_version"], "2");
    assert_eq!(r.body["status"], "updating");
    let updated = wait_status(&s, "svc", "applied");
    assert_eq!(updated["app_version"], "2");
    let logs = wait_for(30, || {
        let r = s.api().get("/v1/apps/svc/logs");
        let text = r.body.as_str().map(str::to_string).unwrap_or_default();
        text.contains("version two").then_some(text)
    });
    assert!(logs.is_some(), "{}", s.log());
    // The same version again is refused, as StarlingX does.
    let r = api.post(
        "/v1/apps/update",
        &json!({"tarfile": v2.display().to_string(), "name": "svc", "app_version": "2"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.to_string().contains("already applied"), "{}", r.body);

    assert_eq!(
        api.patch("/v1/apps/svc?directive=remove", &json!({"values": {}}))
            .status,
        200
    );
    wait_status(&s, "svc", "uploaded");
    assert!(task_pids(&sock, "svc/worker/0").is_empty());
    s.terminate();
}

/// `deployment` with `security` (a YAML flow mapping) as its container's
/// `securityContext`.
fn secured_deployment(security: &str, pod_extra: &str) -> String {
    format!(
        "{}          securityContext: {security}\n",
        deployment(IMAGE, pod_extra)
    )
}

#[test]
fn privileged_containers_and_host_namespaces_are_refused_unless_the_cloud_allows_privileged() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&bin());
    let api = s.api();
    let cases = [
        (
            "privileged",
            secured_deployment("{privileged: true}", ""),
            "securityContext.privileged: privileged containers are not allowed",
        ),
        (
            "sysadmin",
            secured_deployment("{capabilities: {add: [SYS_ADMIN]}}", ""),
            "securityContext.capabilities.add[0]: CAP_SYS_ADMIN may not be added",
        ),
        (
            "hostpid",
            deployment(IMAGE, "      hostPID: true\n"),
            "spec.template.spec.hostPID: unknown field",
        ),
        (
            "hostipc",
            deployment(IMAGE, "      hostIPC: true\n"),
            "spec.template.spec.hostIPC: unknown field",
        ),
    ];
    for (name, manifest, needle) in &cases {
        let tgz = package_unchecked(&source(tmp.path(), name, "1", manifest));
        let r = api.post("/v1/apps", &upload_body(&tgz));
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        let message = r.body["error_message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{name}: {needle:?} not in {message:?}"
        );
        assert_eq!(api.get("/v1/apps").body["apps"], json!([]), "{name}");
        assert!(
            stored_files(&s).is_empty(),
            "{name}: {:?}",
            stored_files(&s)
        );
    }
    let r = api.post(
        "/v1/apps",
        &upload_body(&package_unchecked(&source(
            tmp.path(),
            "privileged",
            "1",
            &cases[0].1,
        ))),
    );
    assert!(
        r.body["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("allow_privileged = true under [apps]"),
        "{}",
        r.body
    );
    drop(s);

    // An administrator who allows privileged applications gets them.
    let config = tmp.path().join("roost.toml");
    std::fs::write(&config, "[apps]\nallow_privileged = true\n").unwrap();
    let s = Server::start_with(
        &bin(),
        ServerOptions {
            env: vec![("ROOST_CONFIG".into(), config.display().to_string())],
            ..Default::default()
        },
    );
    let src = tmp.path().join("allowed");
    std::fs::create_dir_all(&src).unwrap();
    let tgz = package_unchecked(&source(&src, "privileged", "1", &cases[0].1));
    let r = s.api().post("/v1/apps", &upload_body(&tgz));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "privileged", "uploaded");
    // Host namespaces stay refused: Roost does not offer them at all.
    let tgz = package_unchecked(&source(&src, "hostpid", "1", &cases[2].1));
    assert_eq!(s.api().post("/v1/apps", &upload_body(&tgz)).status, 400);
}

/// What the confined container of the next test checks, written to /out.
const CHECKS: &str = r#"
exec > /out/report.tmp 2>&1
echo "pid1=$(/bin/busybox tr '\0' ' ' < /proc/1/cmdline)"
echo "pids=$(cd /proc && echo [0-9]*)"
for f in CapEff CapBnd NoNewPrivs Seccomp; do /bin/busybox grep "^$f:" /proc/self/status | /bin/busybox tr -d ' \t'; done
echo x > /written && echo root=written || echo root=refused
echo x > /tmp/written && echo tmp=written || echo tmp=refused
echo x > /scratch/f && echo scratch=written || echo scratch=refused
echo x > /host/keep && echo host=written || echo host=refused
echo x > /host/new && echo hostnew=written || echo hostnew=refused
/bin/busybox chown 1:1 /scratch/f && echo chown=ran || echo chown=refused
/bin/busybox unshare -U true && echo unshare=ran || echo unshare=refused
/bin/busybox mv /out/report.tmp /out/report
exec sleep 100000
"#;

fn confined_app(host_dir: &Path, out_dir: &Path) -> String {
    let script: String = CHECKS.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: checks}}
data:
  check.sh: |
{script}---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: confined}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: confined}}}}
  template:
    metadata: {{labels: {{app: confined}}}}
    spec:
      hostNetwork: true
      volumes:
        - {{name: checks, configMap: {{name: checks}}}}
        - {{name: scratch, emptyDir: {{}}}}
        - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
        - {{name: out, hostPath: {{path: {out}, type: Directory}}}}
      containers:
        - name: check
          image: {BUSYBOX}
          command: [\"/bin/sh\", \"/checks/check.sh\"]
          securityContext:
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
          volumeMounts:
            - {{name: checks, mountPath: /checks}}
            - {{name: scratch, mountPath: /scratch}}
            - {{name: host, mountPath: /host, readOnly: true}}
            - {{name: out, mountPath: /out}}
",
        host = host_dir.display(),
        out = out_dir.display(),
    )
}

#[test]
fn a_confined_app_sees_only_its_own_processes_and_writes_only_to_its_volumes() {
    if !runtime_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host_dir = tmp.path().join("host-data");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(host_dir.join("keep"), "original\n").unwrap();
    let s = Server::start(&bin());
    let api = s.api();
    let tgz = package(&busybox_source(
        tmp.path(),
        "confined",
        "1.0",
        &confined_app(&host_dir, &out_dir),
    ));
    let r = api.post("/v1/apps", &upload_body(&tgz));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "confined", "uploaded");
    let r = api.patch(
        "/v1/apps/confined?directive=apply",
        &json!({"values": {"client_side": false}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "confined", "applied");
    let report = wait_for(90, || std::fs::read_to_string(out_dir.join("report")).ok())
        .unwrap_or_else(|| panic!("no report from the container\n{}", s.log()));
    // `key=value` lines of the script, `Key:value` lines of /proc/self/status.
    let value = |key: &str| -> String {
        let find = |sep: &str| {
            report
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}{sep}")))
        };
        find("=")
            .or_else(|| find(":"))
            .unwrap_or_else(|| panic!("{key} not in {report}"))
            .trim()
            .to_string()
    };

    // Its own PID namespace: pid 1 is its own script, and neither the
    // server nor this test is among the few processes it sees.
    assert!(value("pid1").contains("/checks/check.sh"), "{report}");
    let pids: Vec<u32> = value("pids")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.contains(&1) && pids.len() < 10, "{report}");
    assert!(!pids.contains(&s.pid()), "{report}");
    assert!(!pids.contains(&std::process::id()), "{report}");

    // Every capability dropped, no new privileges, a seccomp filter.
    assert_eq!(value("CapEff"), "0000000000000000", "{report}");
    assert_eq!(value("CapBnd"), "0000000000000000", "{report}");
    assert_eq!(value("NoNewPrivs"), "1", "{report}");
    assert_eq!(value("Seccomp"), "2", "{report}");
    assert_eq!(value("chown"), "refused", "{report}");
    assert_eq!(value("unshare"), "refused", "{report}");

    // Writes land only in its writable volumes.
    assert_eq!(value("root"), "refused", "{report}");
    assert_eq!(value("tmp"), "refused", "{report}");
    assert_eq!(value("scratch"), "written", "{report}");
    assert_eq!(value("host"), "refused", "{report}");
    assert_eq!(value("hostnew"), "refused", "{report}");
    assert_eq!(
        std::fs::read_to_string(host_dir.join("keep")).unwrap(),
        "original\n"
    );
    assert!(!host_dir.join("new").exists());
    assert!(report.contains("Read-only file system"), "{report}");

    let r = api.patch(
        "/v1/apps/confined?directive=remove&force=False",
        &json!({"values": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&s, "confined", "uploaded");
}

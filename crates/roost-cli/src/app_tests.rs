//! `roost app …` end to end: the local verbs on real files (package, image
//! import and export, layer unpacking), and the server verbs against the
//! scripted server of `testutil` (the requests they send, what they print).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app_local::Unpacker;
use crate::credentials::Env;
use crate::testutil::{Canned, FakeServer, run_verb};

const METADATA: &str = "app_name: hello\napp_version: 1.0-1\n";

const MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: httpd
          image: roost.local/web:1
          command: [/bin/httpd, -f]
          resources: {requests: {cpu: 250m, memory: 64Mi}}
"#;

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small root filesystem: nested directories, an executable, an empty
/// file, relative and absolute symbolic links, a read-only directory.
fn rootfs(dir: &Path) {
    write(&dir.join("bin/httpd"), b"#!/bin/sh\necho serving\n");
    fs::set_permissions(dir.join("bin/httpd"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&dir.join("etc/web/index.html"), b"<h1>hello</h1>\n");
    write(&dir.join("etc/empty"), b"");
    fs::set_permissions(dir.join("etc/empty"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("httpd", dir.join("bin/web")).unwrap();
    std::os::unix::fs::symlink("/etc/web/index.html", dir.join("index")).unwrap();
    fs::create_dir_all(dir.join("var/empty")).unwrap();
    write(&dir.join("ro/file"), b"read only\n");
    fs::set_permissions(dir.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
}

/// Every entry below `root`: relative path, kind, mode and content (or
/// link target), sorted.
fn tree(root: &Path) -> Vec<(PathBuf, String, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String, u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push((
                    rel,
                    "link".into(),
                    0,
                    target.into_os_string().into_encoded_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((rel, "dir".into(), mode, Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((rel, "file".into(), mode, fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Makes the read-only directories writable again so the temporary
/// directory can be removed.
fn writable(root: &Path) {
    for dir in [root.join("ro")] {
        if dir.exists() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn an_image_imported_from_a_tree_exports_back_to_the_same_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rootfs");
    rootfs(&src);
    let archive = tmp.path().join("web-1.tar");
    let outcome = run_verb(
        &[
            "app",
            "image",
            "import",
            s(&src),
            "--name",
            "roost.local/web:1",
            "--entrypoint",
            "/bin/httpd",
            "--cmd",
            "-f",
            "--env",
            "MODE=fast",
            "-o",
            s(&archive),
        ],
        &Env::default(),
        "",
    );
    outcome.result.unwrap();
    assert!(
        outcome.out.starts_with(&format!(
            "Built image roost.local/web:1 in {}",
            archive.display()
        )),
        "{}",
        outcome.out
    );
    assert!(outcome.out.contains("manifest: sha256:"), "{}", outcome.out);
    assert!(outcome.err.contains("images/"), "{}", outcome.err);

    // The archive is a layout the runtime accepts, with the run settings.
    let layout = roost_runtime::oci::verify_layout(&archive, tmp.path()).unwrap();
    assert_eq!(layout.images.len(), 1);
    assert_eq!(layout.images[0].name, "roost.local/web:1");
    let run = &layout.images[0]
        .host_manifest
        .as_ref()
        .unwrap()
        .config
        .config;
    assert_eq!(
        run.entrypoint.as_deref(),
        Some(&["/bin/httpd".to_string()][..])
    );
    assert_eq!(run.cmd.as_deref(), Some(&["-f".to_string()][..]));
    assert_eq!(run.env.as_deref(), Some(&["MODE=fast".to_string()][..]));
    drop(layout);

    let dest = tmp.path().join("exported");
    let outcome = run_verb(
        &["app", "image", "export", s(&archive), s(&dest)],
        &Env::default(),
        "",
    );
    outcome.result.unwrap();
    assert_eq!(
        outcome.out,
        format!(
            "Exported roost.local/web:1 (1 layer) into {}\n",
            dest.display()
        )
    );
    let (before, after) = (tree(&src), tree(&dest));
    writable(&src);
    writable(&dest);
    assert_eq!(before, after);
    assert!(
        before
            .iter()
            .any(|(p, k, m, _)| p == Path::new("ro") && k == "dir" && *m == 0o555)
    );
}

#[test]
fn export_refuses_a_non_empty_directory_and_a_tampered_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rootfs");
    write(&src.join("a"), b"a\n");
    let archive = tmp.path().join("a.tar");
    run_verb(
        &[
            "app",
            "image",
            "import",
            s(&src),
            "--name",
            "roost.local/a:1",
            "-o",
            s(&archive),
        ],
        &Env::default(),
        "",
    )
    .result
    .unwrap();

    let full = tmp.path().join("full");
    write(&full.join("x"), b"x");
    let err = run_verb(
        &["app", "image", "export", s(&archive), s(&full)],
        &Env::default(),
        "",
    )
    .result
    .unwrap_err();
    assert_eq!(err.code(), 2);
    assert!(err.message().contains("is not empty"), "{}", err.message());

    // A layout directory whose layer was changed after it was built.
    let layout = tmp.path().join("layout");
    let built = roost_runtime::oci::build_image_from_dir(
        &src,
        &layout,
        &roost_runtime::oci::BuildOptions {
            name: "roost.local/a:1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(built.layer_digest.strip_prefix("sha256:").unwrap());
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let dest = tmp.path().join("dest");
    let err = run_verb(
        &["app", "image", "export", s(&layout), s(&dest)],
        &Env::default(),
        "",
    )
    .result
    .unwrap_err();
    assert_eq!(err.code(), 1);
    assert!(err.message().contains("invalid image"), "{}", err.message());
    assert!(!dest.exists(), "nothing is left behind");
}

/// One entry of a hand-made layer: path, kind, content or link target.
type LayerEntry<'a> = (&'a str, tar::EntryType, &'a str);

/// A layer tar with the given entries: (path, kind, content or link target).
fn layer(path: &Path, entries: &[LayerEntry<'_>]) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        // Written by hand so that hostile paths ("../x") can be made too.
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                h.set_link_name(data).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            _ => {
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[test]
fn whiteouts_delete_what_the_layers_below_hold() {
    use tar::EntryType::{Directory, Regular};
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2) = (tmp.path().join("l1.tar"), tmp.path().join("l2.tar"));
    layer(
        &l1,
        &[
            ("a/", Directory, ""),
            ("a/x", Regular, "x"),
            ("a/y", Regular, "y"),
            ("b/z/deep", Regular, "z"),
            ("c/keep", Regular, "keep"),
            ("gone", Regular, "gone"),
        ],
    );
    layer(
        &l2,
        &[
            ("a/.wh.x", Regular, ""),
            ("b/new", Regular, "new"),
            ("b/.wh..wh..opq", Regular, ""),
            (".wh.gone", Regular, ""),
            ("c/keep", Regular, "changed"),
        ],
    );
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut u = Unpacker::new(&root);
    u.apply_layer(&l1).unwrap();
    u.apply_layer(&l2).unwrap();
    u.finish().unwrap();
    let names: Vec<String> = tree(&root)
        .into_iter()
        .map(|(p, _, _, _)| p.display().to_string())
        .collect();
    assert_eq!(names, ["a", "a/y", "b", "b/new", "c", "c/keep"]);
    assert_eq!(fs::read(root.join("c/keep")).unwrap(), b"changed");
    assert_eq!(fs::read(root.join("b/new")).unwrap(), b"new");
}

#[test]
fn layer_entries_that_would_leave_the_directory_are_refused() {
    use tar::EntryType::{Link, Regular, Symlink};
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let cases: [(&str, Vec<LayerEntry<'_>>, &str); 4] = [
        (
            "dotdot",
            vec![("../outside/evil", Regular, "x")],
            "leaves the image's root",
        ),
        (
            "absolute",
            vec![("/outside/evil", Regular, "x")],
            "leaves the image's root",
        ),
        (
            "through-link",
            vec![
                ("link", Symlink, outside.to_str().unwrap()),
                ("link/evil", Regular, "x"),
            ],
            "goes through the symbolic link link",
        ),
        (
            "hard-link",
            vec![("h", Link, "../outside/victim")],
            "leaves the image's root",
        ),
    ];
    for (name, entries, expected) in cases {
        let path = tmp.path().join(format!("{name}.tar"));
        layer(&path, &entries);
        let err = Unpacker::new(&root).apply_layer(&path).unwrap_err();
        assert!(
            err.message().contains(expected),
            "{name}: {}",
            err.message()
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{name}: nothing written outside"
        );
    }
}

#[test]
fn package_builds_a_checked_package_and_prints_its_path_size_and_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hello");
    write(&dir.join("metadata.yaml"), METADATA.as_bytes());
    write(&dir.join("manifests/app.yaml"), MANIFEST.as_bytes());
    let src = tmp.path().join("rootfs");
    rootfs(&src);
    run_verb(
        &[
            "app",
            "image",
            "import",
            s(&src),
            "--name",
            "roost.local/web:1",
            "-o",
            s(&dir.join("images/web.tar")),
        ],
        &Env::default(),
        "",
    )
    .result
    .unwrap();
    writable(&src);

    let out = tmp.path().join("hello-1.0-1.tgz");
    let outcome = run_verb(
        &["app", "package", s(&dir), "-o", s(&out)],
        &Env::default(),
        "",
    );
    outcome.result.unwrap();
    let bytes = fs::read(&out).unwrap();
    let sha = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert_eq!(
        outcome.out,
        format!(
            "Built package {} (hello 1.0-1)\nsize: {} bytes\nsha256: {sha}\n",
            out.display(),
            bytes.len()
        )
    );
    assert_eq!(
        outcome.err,
        format!("(next: `roost app upload {} --wait`)\n", out.display())
    );
    // What the server reads: checksums, metadata, manifests, the image.
    let unpacked = tmp.path().join("unpacked");
    let package = roost_package::read(
        fs::File::open(&out).unwrap(),
        &unpacked,
        &roost_package::Limits::default(),
    )
    .unwrap();
    assert_eq!(package.metadata.app_name, "hello");
    assert_eq!(package.images.len(), 1);
}

#[test]
fn package_names_the_package_after_the_application_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    write(&dir.join("metadata.yaml"), METADATA.as_bytes());
    assert_eq!(
        crate::app_local::default_package_name(&dir),
        PathBuf::from("hello-1.0-1.tgz")
    );
    assert_eq!(
        crate::app_local::default_package_name(&tmp.path().join("nothing-here")),
        PathBuf::from("nothing-here.tgz")
    );
    assert_eq!(
        crate::app_local::default_archive_name("roost.local/web:1"),
        PathBuf::from("web-1.tar")
    );
    assert_eq!(
        crate::app_local::default_archive_name("busybox"),
        PathBuf::from("busybox.tar")
    );
}

#[test]
fn package_refuses_an_unknown_manifest_field_naming_it_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hello");
    write(&dir.join("metadata.yaml"), METADATA.as_bytes());
    let bad = MANIFEST.replace("      containers:", "      affinity: {}\n      containers:");
    write(&dir.join("manifests/app.yaml"), bad.as_bytes());
    let out = tmp.path().join("hello.tgz");
    let err = run_verb(
        &["app", "package", s(&dir), "-o", s(&out)],
        &Env::default(),
        "",
    )
    .result
    .unwrap_err();
    assert_eq!(err.code(), 1);
    assert!(err.message().contains("affinity"), "{}", err.message());
    assert!(!out.exists());
    let err = run_verb(
        &[
            "app",
            "package",
            s(&dir),
            "-o",
            s(&tmp.path().join("x.zip")),
        ],
        &Env::default(),
        "",
    )
    .result
    .unwrap_err();
    assert_eq!(err.code(), 2);
}

fn app(status: &str, progress: Option<&str>) -> serde_json::Value {
    json!({
        "name": "hello", "app_version": "1.0-1", "manifest_name": "hello-manifest",
        "manifest_file": "manifests", "status": status, "progress": progress,
        "active": status == "applied", "created_at": "2026-12-02T09:00:00.000000+00:00",
        "updated_at": null
    })
}

#[test]
fn upload_streams_the_package_as_base64_json_and_waits_for_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("hello-1.0-1.tgz");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 256) as u8).collect();
    fs::write(&file, &data).unwrap();
    let server = FakeServer::start(vec![
        Canned::json(
            200,
            app("uploading", Some("extracting application tar file")),
        ),
        Canned::json(200, app("uploaded", Some("completed"))),
    ]);
    let outcome = run_verb(
        &[
            "app",
            "upload",
            s(&file),
            "--name",
            "hello",
            "--wait",
            "--poll-interval",
            "0.01",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v1/apps")
    );
    let body = seen[0].json();
    assert_eq!(body["tarfile"], s(&file));
    assert_eq!(body["name"], "hello");
    let decoded =
        roost_api::apps::base64::decode(body["binary_data"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(decoded, data);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("GET", "/v1/apps/hello")
    );
    assert_eq!(outcome.out, "hello 1.0-1: uploaded (completed)\n");
    assert_eq!(
        outcome.err,
        "hello 1.0-1: uploading (extracting application tar file)\n\
         hello 1.0-1: uploaded (completed)\n\
         (next: `roost app apply hello --wait`)\n"
    );
}

#[test]
fn upload_checks_the_file_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.tgz");
    let err = run_verb(&["app", "upload", s(&missing)], &Env::default(), "")
        .result
        .unwrap_err();
    assert_eq!(err.code(), 2);
    assert_eq!(
        err.message(),
        format!("tar file {} does not exist", missing.display())
    );
}

#[test]
fn a_failed_apply_prints_the_reason_and_exits_non_zero() {
    let server = FakeServer::start(vec![
        Canned::json(200, app("applying", Some("applying application manifest"))),
        Canned::json(
            200,
            app(
                "apply-failed",
                Some(
                    "no host has room for web: operation aborted, check system inventory logs for details",
                ),
            ),
        ),
    ]);
    let outcome = run_verb(
        &["app", "apply", "hello", "--wait", "--poll-interval", "0.01"],
        &server.env(),
        "",
    );
    let seen = server.finish();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("PATCH", "/v1/apps/hello?directive=apply")
    );
    assert_eq!(seen[0].json(), json!({"values": {"client_side": false}}));
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), 1);
    assert_eq!(
        err.message(),
        "apply of hello 1.0-1 failed (apply-failed): no host has room for web: operation aborted, check system inventory logs for details"
    );
    assert_eq!(outcome.out, "");
}

#[test]
fn a_wait_that_runs_out_of_time_says_so_and_exits_non_zero() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        app("removing", Some("deleting application manifest")),
    )]);
    let outcome = run_verb(
        &[
            "app",
            "remove",
            "hello",
            "--force",
            "--wait",
            "--wait-timeout",
            "0",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    assert_eq!(seen[0].target, "/v1/apps/hello?directive=remove&force=True");
    assert_eq!(seen[0].json(), json!({"values": {}}));
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), 1);
    assert!(
        err.message()
            .starts_with("gave up after 0 s waiting for the remove of hello"),
        "{}",
        err.message()
    );
}

#[test]
fn apply_without_wait_prints_the_state_and_how_to_follow_it() {
    let server = FakeServer::start(vec![Canned::json(200, app("applying", None))]);
    let outcome = run_verb(&["app", "apply", "hello"], &server.env(), "");
    server.finish();
    outcome.result.unwrap();
    assert_eq!(outcome.out, "hello 1.0-1: applying\n");
    assert!(
        outcome.err.contains("`roost app show hello`"),
        "{}",
        outcome.err
    );
}

#[test]
fn update_sends_the_absolute_path_only() {
    let server = FakeServer::start(vec![Canned::json(200, app("updating", None))]);
    let outcome = run_verb(
        &["app", "update", "pkgs/hello-1.0-1.tgz"],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[0].target, "/v1/apps/update");
    let expected = std::path::absolute("pkgs/hello-1.0-1.tgz").unwrap();
    assert_eq!(seen[0].json(), json!({"tarfile": s(&expected)}));
}

#[test]
fn list_show_delete_and_abort_speak_the_starlingx_api() {
    let server = FakeServer::start(vec![
        Canned::json(200, json!({"apps": [app("applied", Some("completed"))]})),
        Canned::json(
            404,
            json!({"error": {"message": "Application not found: nope"}}),
        ),
        Canned::empty(204),
        Canned::json(200, app("apply-failed", Some("operation aborted by user"))),
    ]);
    let env = server.env();
    let list = run_verb(&["app", "list"], &env, "");
    let show = run_verb(&["app", "show", "nope"], &env, "");
    let delete = run_verb(&["app", "delete", "hello"], &env, "");
    let abort = run_verb(&["app", "abort", "hello"], &env, "");
    let seen = server.finish();
    list.result.unwrap();
    for expected in [
        "Name",
        "Version",
        "hello",
        "1.0-1",
        "applied",
        "completed",
        "True",
    ] {
        assert!(list.out.contains(expected), "{expected}: {}", list.out);
    }
    assert_eq!(
        show.result.unwrap_err().message(),
        "no application with name nope (`roost app list` lists the applications)"
    );
    delete.result.unwrap();
    assert_eq!(delete.out, "Deleted application hello\n");
    abort.result.unwrap();
    assert_eq!(
        abort.out,
        "Abort of hello accepted; the operation in progress stops shortly\n"
    );
    let targets: Vec<(&str, &str)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("GET", "/v1/apps"),
            ("GET", "/v1/apps/nope"),
            ("DELETE", "/v1/apps/hello?force=False"),
            ("PATCH", "/v1/apps/hello?directive=abort"),
        ]
    );
}

#[test]
fn status_lists_the_replicas_and_logs_prints_the_text_as_sent() {
    let replicas = json!({"app": "hello", "status": "applied", "replicas": [
        {"id": "hello/web/0", "workload": "web", "kind": "Deployment", "host": "controller-0",
         "state": "running", "ready": true, "restarts": 0, "exclusive_cpus": [3]}
    ]});
    let server = FakeServer::start(vec![
        Canned::json(200, replicas),
        Canned {
            status: 200,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: "line 1\nline 2\n".into(),
        },
    ]);
    let env = server.env();
    let status = run_verb(&["app", "status", "hello"], &env, "");
    let logs = run_verb(&["app", "logs", "hello", "--tail", "2", "-f"], &env, "");
    let seen = server.finish();
    status.result.unwrap();
    assert!(status.out.starts_with("hello: applied\n"), "{}", status.out);
    for expected in ["hello/web/0", "controller-0", "running", "yes", "3"] {
        assert!(status.out.contains(expected), "{expected}: {}", status.out);
    }
    logs.result.unwrap();
    assert_eq!(logs.out, "line 1\nline 2\n");
    assert_eq!(seen[0].target, "/v1/apps/hello/replicas");
    assert_eq!(seen[1].target, "/v1/apps/hello/logs?tail=2&follow=true");
}

//! Against a real containerd and runc: each test starts its own private
//! supervised containerd in a temporary directory, and builds its busybox
//! image with `oci::build_image_from_dir`.

use std::path::{Path, PathBuf};

use roost_runtime::oci::{BuildOptions, BuiltImage, build_image_from_dir};
use roost_runtime::{RuntimeError, Supervised, SupervisorOptions};

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
    assert!(matches!(err, RuntimeError::InvalidImage(_)), "{err}");
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

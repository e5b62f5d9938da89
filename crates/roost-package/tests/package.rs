//! Packages made here with the `tar` crate and with the system's `tar`,
//! read back through `roost_package::read`.

use roost_api::apps::manifest::Object;
use roost_package::{Error, Limits, build, read};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

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
      volumes: [{name: conf, configMap: {name: web-conf}}]
      containers:
        - name: httpd
          image: registry.local/web:1
          env: [{name: GREETING, valueFrom: {configMapKeyRef: {name: web-conf, key: greeting}}}]
          volumeMounts: [{name: conf, mountPath: /etc/web}]
          resources: {requests: {cpu: 250m, memory: 64Mi}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-conf}
data: {greeting: hello}
"#;

/// A stand-in OCI archive: a tar holding an `oci-layout` file.
fn image_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let mut h = tar::Header::new_ustar();
    h.set_size(layout.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "oci-layout", &layout[..]).unwrap();
    b.into_inner().unwrap()
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// A package directory without a checksum file.
fn app_dir(root: &Path, manifest: &str) -> PathBuf {
    let dir = root.join("src");
    write(&dir.join("metadata.yaml"), METADATA.as_bytes());
    write(&dir.join("manifests/app.yaml"), manifest.as_bytes());
    write(&dir.join("images/web.tar"), &image_tar());
    dir
}

fn md5sum(dir: &Path, files: &[&str]) -> String {
    let out = Command::new("md5sum")
        .args(files)
        .current_dir(dir)
        .output()
        .expect("md5sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn built_package_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = app_dir(tmp.path(), MANIFEST);
    let out = tmp.path().join("hello-1.0-1.tgz");
    let built = build(&dir, &out).unwrap();
    assert_eq!(built.metadata.app_name, "hello");
    let bytes = fs::read(&out).unwrap();
    assert_eq!(built.digest, format!("sha256:{}", sha256_hex(&bytes)));
    assert_eq!(built.size, bytes.len() as u64);
    // Reproducible: the same directory gives the same bytes.
    let again = build(&dir, &tmp.path().join("again.tgz")).unwrap();
    assert_eq!(again.digest, built.digest);

    let target = tmp.path().join("unpacked");
    let pkg = read(fs::File::open(&out).unwrap(), &target, &Limits::default()).unwrap();
    assert_eq!(pkg.metadata.app_name, "hello");
    assert_eq!(pkg.metadata.app_version, "1.0-1");
    assert_eq!(pkg.digest, built.digest);
    assert_eq!(pkg.size, built.size);
    assert_eq!(pkg.images, [target.join("images/web.tar")]);
    assert_eq!(fs::read(&pkg.images[0]).unwrap(), image_tar());
    let kinds: Vec<String> = pkg.objects.iter().map(|o| o.object.describe()).collect();
    assert_eq!(kinds, ["Deployment web", "ConfigMap web-conf"]);
    assert_eq!(pkg.objects[1].source.document, 2);
    let Object::Deployment(d) = &pkg.objects[0].object else {
        panic!()
    };
    assert_eq!(d.spec.replicas, 2);
    // The checksum file covers every file, in sha256sum's format.
    let sums = fs::read_to_string(target.join("checksums.sha256")).unwrap();
    let check = Command::new("sha256sum")
        .args(["-c", "--strict", "checksums.sha256"])
        .current_dir(&target)
        .output()
        .unwrap();
    assert!(check.status.success(), "{sums}");
    assert_eq!(sums.lines().count(), 3, "{sums}");
}

#[test]
fn system_tar_package_with_md5_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = app_dir(tmp.path(), MANIFEST);
    let md5 = md5sum(
        &dir,
        &["metadata.yaml", "manifests/app.yaml", "images/web.tar"],
    );
    write(&dir.join("hello.md5"), md5.as_bytes());
    let out = tmp.path().join("hello.tgz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let target = tmp.path().join("unpacked");
    let pkg = read(fs::File::open(&out).unwrap(), &target, &Limits::default()).unwrap();
    assert_eq!(pkg.objects.len(), 2);
    assert_eq!(
        pkg.digest,
        format!("sha256:{}", sha256_hex(&fs::read(&out).unwrap()))
    );
    assert!(target.join("hello.md5").is_file());
}

/// One raw tar entry, written without the `tar` crate's path checks.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: &'a [u8],
}

fn file(name: &str, data: &[u8]) -> Raw<'static> {
    Raw {
        name: Box::leak(name.as_bytes().to_vec().into_boxed_slice()),
        kind: tar::EntryType::Regular,
        data: Box::leak(data.to_vec().into_boxed_slice()),
        link: b"",
    }
}

fn raw_tgz(entries: &[Raw]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..e.name.len()].copy_from_slice(e.name);
            g.linkname[..e.link.len()].copy_from_slice(e.link);
        }
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// The entries of a good package (with a right md5 file).
fn good_entries() -> Vec<Raw<'static>> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = app_dir(tmp.path(), MANIFEST);
    let md5 = md5sum(
        &dir,
        &["metadata.yaml", "manifests/app.yaml", "images/web.tar"],
    );
    vec![
        file("metadata.yaml", METADATA.as_bytes()),
        file("manifests/app.yaml", MANIFEST.as_bytes()),
        file("images/web.tar", &image_tar()),
        file("hello.md5", md5.as_bytes()),
    ]
}

/// Reads `tgz` into a fresh target and expects a refusal containing `want`;
/// nothing may be left in the target.
fn refused(tgz: &[u8], limits: &Limits, want: &str) -> (tempfile::TempDir, Error) {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("apps").join("hello");
    let e = read(tgz, &target, limits).unwrap_err();
    assert!(e.to_string().contains(want), "want {want:?}, got: {e}");
    assert!(e.is_invalid(), "{e:?}");
    assert!(!target.exists(), "{want}: the target was left behind");
    (tmp, e)
}

#[test]
fn the_good_raw_package_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    read(&raw_tgz(&good_entries())[..], &target, &Limits::default()).unwrap();
}

#[test]
fn path_traversal_is_refused() {
    let mut entries = good_entries();
    entries.push(file("../evil.txt", b"x"));
    let (tmp, _) = refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "entry \"../evil.txt\" leaves the package ('..')",
    );
    assert!(!tmp.path().join("apps/evil.txt").exists());
    assert!(!tmp.path().join("evil.txt").exists());

    let mut entries = good_entries();
    entries.insert(0, file("manifests/../../x", b"x"));
    refused(&raw_tgz(&entries), &Limits::default(), "leaves the package");

    let abs = tempfile::tempdir().unwrap();
    let abs_file = abs.path().join("abs.txt");
    let mut entries = good_entries();
    entries.push(file(abs_file.to_str().unwrap(), b"x"));
    refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "has an absolute path",
    );
    assert!(!abs_file.exists());
}

#[test]
fn links_are_refused() {
    for (kind, link) in [
        (tar::EntryType::Symlink, &b"../../../etc/passwd"[..]),
        (tar::EntryType::Symlink, &b"images"[..]),
        (tar::EntryType::Link, &b"/etc/passwd"[..]),
    ] {
        let mut entries = good_entries();
        entries.insert(
            1,
            Raw {
                name: b"manifests/link.yaml",
                kind,
                data: b"",
                link,
            },
        );
        refused(&raw_tgz(&entries), &Limits::default(), "is a link (to ");
    }
}

#[test]
fn devices_and_fifos_are_refused() {
    for (kind, want) in [
        (tar::EntryType::Char, "is a device"),
        (tar::EntryType::Block, "is a device"),
        (tar::EntryType::Fifo, "is a FIFO"),
    ] {
        let mut entries = good_entries();
        entries.push(Raw {
            name: b"dev",
            kind,
            data: b"",
            link: b"",
        });
        refused(&raw_tgz(&entries), &Limits::default(), want);
    }
}

#[test]
fn a_wrong_checksum_is_refused() {
    let mut entries = good_entries();
    let md5 = String::from_utf8(entries[3].data.to_vec()).unwrap();
    let wrong = md5.replacen(&md5[..1], if &md5[..1] == "0" { "1" } else { "0" }, 1);
    entries[3] = file("hello.md5", wrong.as_bytes());
    let (_t, e) = refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "checksum validation failed: hello.md5: metadata.yaml does not match",
    );
    assert!(matches!(e, Error::Checksum(_)));

    // A changed file under a right-looking sha256 file.
    let mut entries = good_entries();
    entries.pop();
    let sums = format!("{}  metadata.yaml\n", sha256_hex(b"something else"));
    entries.push(file("checksums.sha256", sums.as_bytes()));
    refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "checksum validation failed",
    );

    // A checksum of a file that is not there.
    let mut entries = good_entries();
    entries.pop();
    entries.push(file(
        "hello.md5",
        format!("{}  missing.yaml\n", "0".repeat(32)).as_bytes(),
    ));
    refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "checksum validation failed: hello.md5: missing.yaml: missing",
    );

    // No checksum file at all.
    let mut entries = good_entries();
    entries.pop();
    refused(&raw_tgz(&entries), &Limits::default(), "no checksum file");
}

#[test]
fn an_unknown_manifest_field_is_refused_with_its_path() {
    let bad = MANIFEST.replacen(
        "      volumes:",
        "      affinity: {nodeAffinity: {}}\n      volumes:",
        1,
    );
    let mut entries = good_entries();
    entries[1] = file("manifests/app.yaml", bad.as_bytes());
    entries.pop();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("manifests/app.yaml"), bad.as_bytes());
    write(&dir.join("metadata.yaml"), METADATA.as_bytes());
    write(&dir.join("images/web.tar"), &image_tar());
    entries.push(file(
        "hello.md5",
        md5sum(dir, &["metadata.yaml", "manifests/app.yaml"]).as_bytes(),
    ));
    let (_t, e) = refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "manifests/app.yaml: document 1 (Deployment web): spec.template.spec.affinity: unknown field `affinity`",
    );
    assert!(matches!(e, Error::Manifest(_)));
}

#[test]
fn limits_are_enforced_before_writing() {
    let big = format!("{MANIFEST}# {}\n", "x".repeat(4000));
    let mut entries = good_entries();
    entries[1] = file("manifests/app.yaml", big.as_bytes());
    let limits = Limits {
        max_manifest_bytes: 4000,
        ..Limits::default()
    };
    refused(&raw_tgz(&entries), &limits, "manifests/app.yaml is 4");

    let limits = Limits {
        max_total_bytes: 3000,
        ..Limits::default()
    };
    let mut entries = good_entries();
    entries.push(file("images/big.tar", &vec![7u8; 10_000]));
    refused(
        &raw_tgz(&entries),
        &limits,
        "larger than the limit of 3000 bytes",
    );

    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    refused(&raw_tgz(&good_entries()), &limits, "more than 3 entries");

    // A compressed bomb: 50 MB of zeros in a few kilobytes stops at the limit.
    let limits = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut entries = good_entries();
    entries.push(file("images/zeros.tar", &vec![0u8; 50 << 20]));
    let tgz = raw_tgz(&entries);
    assert!(tgz.len() < 1 << 20);
    refused(&tgz, &limits, "larger than the limit");
}

#[test]
fn system_tar_links_and_absolute_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = app_dir(tmp.path(), MANIFEST);
    let md5 = md5sum(&dir, &["metadata.yaml", "manifests/app.yaml"]);
    write(&dir.join("hello.md5"), md5.as_bytes());
    std::os::unix::fs::symlink("/etc/passwd", dir.join("manifests/passwd.yaml")).unwrap();
    let out = tmp.path().join("link.tgz");
    assert!(
        Command::new("tar")
            .arg("-czf")
            .arg(&out)
            .arg("-C")
            .arg(&dir)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    refused(
        &fs::read(&out).unwrap(),
        &Limits::default(),
        "is a link (to \"/etc/passwd\")",
    );
    // The builder refuses the same directory.
    let e = build(&dir, &tmp.path().join("x.tgz")).unwrap_err();
    assert!(e.to_string().contains("passwd.yaml is a link"), "{e}");
    assert!(!tmp.path().join("x.tgz").exists());

    fs::remove_file(dir.join("manifests/passwd.yaml")).unwrap();
    let out = tmp.path().join("abs.tgz");
    let st = Command::new("tar")
        .arg("-czPf")
        .arg(&out)
        .arg(dir.join("metadata.yaml"))
        .status()
        .unwrap();
    assert!(st.success());
    refused(
        &fs::read(&out).unwrap(),
        &Limits::default(),
        "has an absolute path",
    );
}

#[test]
fn other_refusals() {
    refused(
        b"not a tarball at all",
        &Limits::default(),
        "not a gzip-compressed tar archive",
    );
    // A package without metadata.yaml.
    let mut entries = good_entries();
    entries.remove(0);
    entries.pop();
    entries.push(file(
        "checksums.sha256",
        format!("{}  images/web.tar\n", sha256_hex(&image_tar())).as_bytes(),
    ));
    refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "metadata.yaml is missing",
    );
    // The same entry twice.
    let mut entries = good_entries();
    entries.push(file("metadata.yaml", b"app_name: other\napp_version: 2\n"));
    refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "entry \"metadata.yaml\" appears twice",
    );
    // An existing target is neither used nor removed.
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    fs::create_dir(&target).unwrap();
    fs::File::create(target.join("keep"))
        .unwrap()
        .write_all(b"k")
        .unwrap();
    let e = read(&raw_tgz(&good_entries())[..], &target, &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::Exists(_)), "{e}");
    assert!(target.join("keep").is_file());
}

#[test]
fn build_refuses_a_bad_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = app_dir(tmp.path(), &MANIFEST.replace("key: greeting", "key: nope"));
    let out = tmp.path().join("x.tgz");
    let e = build(&dir, &out).unwrap_err();
    assert!(
        e.to_string()
            .contains("ConfigMap \"web-conf\" has no key \"nope\""),
        "{e}"
    );
    assert!(!out.exists());
    let dir = app_dir(&tmp.path().join("good"), MANIFEST);
    let inside = dir.join("images/self.tgz");
    let e = build(&dir, &inside).unwrap_err();
    assert!(
        e.to_string().contains("is inside the package directory"),
        "{e}"
    );
    assert!(!inside.exists());
}

#[test]
fn entries_that_conflict_or_carry_no_file() {
    // A file and then a path through it.
    let mut entries = good_entries();
    entries.insert(0, file("images", b"x"));
    refused(
        &raw_tgz(&entries),
        &Limits::default(),
        "entry \"images/web.tar\" conflicts with another entry",
    );
    // A pax global header, as `git archive` writes first, holds no file.
    let mut entries = good_entries();
    entries.insert(
        0,
        Raw {
            name: b"pax_global_header",
            kind: tar::EntryType::XGlobalHeader,
            data: b"52 comment=0123456789012345678901234567890123456789\n",
            link: b"",
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    read(&raw_tgz(&entries)[..], &target, &Limits::default()).unwrap();
    assert!(!target.join("pax_global_header").exists());
    // Data past the gzip stream counts against the limit.
    let mut tgz = raw_tgz(&good_entries());
    let limit = tgz.len() as u64 + 100;
    tgz.extend(std::iter::repeat_n(0u8, 200));
    let limits = Limits {
        max_total_bytes: limit.max(4096),
        ..Limits::default()
    };
    tgz.extend(std::iter::repeat_n(0u8, limits.max_total_bytes as usize));
    refused(&tgz, &limits, "the package is larger than the limit");
}

/// A reader that fails part way, as a dropped connection does.
struct Failing(Vec<u8>, usize);
impl std::io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1 >= self.0.len() / 2 {
            return Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        }
        let n = buf.len().min(self.0.len() / 2 - self.1).min(512);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 += n;
        Ok(n)
    }
}

#[test]
fn a_failing_input_is_an_io_error_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    let mut entries = good_entries();
    entries.push(file(
        "images/noise.tar",
        &(0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    ));
    let e = read(Failing(raw_tgz(&entries), 0), &target, &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(!e.is_invalid());
    assert!(!target.exists());
}

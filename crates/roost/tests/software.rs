//! Software releases through the real binary: `roost release keygen` and
//! `build` make a signed release, which is uploaded as the stock `software`
//! client uploads (multipart, each part named by the file's local path, no
//! part Content-Type), listed, shown, checked, kept across a restart and
//! deleted; unsigned, tampered, untrusted, duplicate and orphan releases
//! and other files are refused with USM's envelope, and nothing is kept.

use std::path::{Path, PathBuf};

use roost_test_support::{Cli, Server, http, release};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// `roost release ...`, which needs no server.
fn release_cli(args: &[&str]) -> String {
    release::release_cli(bin(), args).unwrap()
}

/// Builds release `id` (requiring `requires`) with `key` into `dir`.
fn build(dir: &Path, key: &Path, id: &str, requires: &[&str], binary: &[u8]) -> PathBuf {
    let files: &[(&str, &[u8])] = &[("bin/roost", binary)];
    let spec = release::ReleaseSpec {
        id,
        requires,
        files,
        ..Default::default()
    };
    release::build_release(bin(), dir, key, &spec).unwrap()
}

/// `POST /v1/release` as the stock client sends it: (status, body).
fn upload(s: &Server, files: &[&Path]) -> (u16, Value) {
    release::upload_release(&s.url, &s.token(), files)
}

fn get(s: &Server, path: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{}{path}", s.url))
        .header("X-Auth-Token", s.token())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn delete(s: &Server, id: &str) -> (u16, Value) {
    let r = http()
        .delete(format!("{}/v1/release/{id}", s.url))
        .header("X-Auth-Token", s.token())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn ids(s: &Server, query: &str) -> Vec<String> {
    let (status, v) = get(s, &format!("/v1/release{query}"));
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["release_id"].as_str().unwrap().to_string())
        .collect()
}

/// Nothing of a refused upload is left in the data directory.
fn nothing_left(s: &Server) {
    for sub in ["incoming", "staging"] {
        let d = s.data_dir.join("software").join(sub);
        let n = std::fs::read_dir(&d).map(|r| r.count()).unwrap_or(0);
        assert_eq!(n, 0, "{} is not empty", d.display());
    }
}

#[test]
fn signed_releases_upload_list_show_and_delete_and_bad_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("release.key");
    let public = release_cli(&["keygen", "--out", &key.display().to_string()]);
    assert!(public.starts_with("ed25519:"), "{public}");
    let (mut s, _cfg) = Server::start_with_config(
        bin(),
        &format!("[software]\ntrusted_keys = [\"{public}\"]\n"),
    );

    let binary = vec![0x42u8; 300_000];
    let first = build(tmp.path(), &key, "roost-0.2.0", &[], &binary);
    let (status, v) = upload(&s, &[&first]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["error"], "", "{v}");
    let info = &v["upload_info"][0]["roost-0.2.0.patch"];
    assert_eq!(info["id"], "roost-0.2.0", "{v}");
    assert_eq!(info["sw_release"], "0.2.0");
    assert_eq!(info["is_product_release"], false);
    assert_eq!(
        std::fs::read(
            s.data_dir
                .join("software/releases/roost-0.2.0/payload/bin/roost")
        )
        .unwrap(),
        binary
    );

    // Listed and shown with the keys the stock client reads.
    let (_, list) = get(&s, "/v1/release");
    let item = &list[0];
    assert_eq!(item["state"], "available");
    assert_eq!(item["reboot_required"], false);
    assert_eq!(item["sw_version"], "0.2.0");
    assert_eq!(ids(&s, "?show=available"), ["roost-0.2.0"]);
    assert!(ids(&s, "?show=deployed").is_empty());
    assert_eq!(ids(&s, "?show=nonsense"), ["roost-0.2.0"]);
    assert_eq!(ids(&s, "?release=0.2"), ["roost-0.2.0"]);
    assert!(ids(&s, "?release=0.3").is_empty());
    let (status, shown) = get(&s, "/v1/release/roost-0.2.0");
    assert_eq!(status, 200);
    assert_eq!(shown["summary"], "test release roost-0.2.0");
    assert_eq!(get(&s, "/v1/release/roost-0.2.0/is_available").1, true);
    assert_eq!(get(&s, "/v1/release/roost-0.2.0/is_deployed").1, false);
    let (status, v) = get(&s, "/v1/release/roost-9.9.9");
    assert_eq!(status, 404);
    assert_eq!(v["error"], "Release roost-9.9.9 not found");

    // Refused, each with its reason, and nothing kept.
    let refused = |files: &[&Path], says: &str| {
        let (status, v) = upload(&s, files);
        assert_eq!(status, 406, "{v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(says), "{e} (wanted {says:?})");
        nothing_left(&s);
    };
    refused(&[&first], "already exists");
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = tmp.path().join("tampered/roost-0.2.1.patch");
    std::fs::create_dir_all(tampered.parent().unwrap()).unwrap();
    std::fs::write(&tampered, bytes).unwrap();
    refused(&[&tampered], "digest");
    let other_key = tmp.path().join("other.key");
    release_cli(&["keygen", "--out", &other_key.display().to_string()]);
    let foreign = build(
        &tmp.path().join("other"),
        &other_key,
        "roost-0.4.0",
        &[],
        b"x",
    );
    refused(&[&foreign], "does not trust");
    let orphan = build(tmp.path(), &key, "roost-0.5.0", &["roost-0.1.9"], b"y");
    refused(&[&orphan], "requires roost-0.1.9");
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    refused(&[&text], "only *.patch");
    let junk = tmp.path().join("junk.patch");
    std::fs::write(&junk, "not a release at all").unwrap();
    refused(&[&junk], "not a Roost release");
    assert_eq!(ids(&s, ""), ["roost-0.2.0"]);

    // A second release requiring the first; both survive a restart.
    let second = build(tmp.path(), &key, "roost-0.3.0", &["roost-0.2.0"], b"z");
    let (status, v) = upload(&s, &[&second]);
    assert_eq!(status, 200, "{v}");
    s.restart();
    assert_eq!(ids(&s, ""), ["roost-0.2.0", "roost-0.3.0"]);

    // The required one cannot go first; then both go, with their files.
    let (status, v) = delete(&s, "roost-0.2.0");
    assert_eq!(status, 200);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("required by roost-0.3.0"),
        "{v}"
    );
    let (status, v) = delete(&s, "roost-0.3.0");
    assert_eq!((status, v["error"].as_str().unwrap()), (200, ""), "{v}");
    let (_, v) = delete(&s, "roost-0.2.0");
    assert_eq!(v["error"], "", "{v}");
    assert!(ids(&s, "").is_empty());
    assert!(!s.data_dir.join("software/releases/roost-0.2.0").exists());
    let (status, _) = delete(&s, "roost-0.2.0");
    assert_eq!(status, 404);

    // `roost release verify` agrees with the server about the good file.
    let out = Cli::new(bin()).run(&[
        "release",
        "verify",
        &first.display().to_string(),
        "--trust",
        &public,
    ]);
    assert!(out.status.success(), "{out:?}");
}

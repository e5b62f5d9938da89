use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;

fn file(name: &str, bytes: &[u8]) -> PayloadFile {
    PayloadFile {
        name: name.into(),
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(bytes)),
    }
}

const BIN: &[u8] = b"\x7fELF pretend this is a roost binary";
const HEALTH: &[u8] = b"#!/bin/sh\nexit 0\n";

fn manifest() -> Manifest {
    Manifest {
        release_id: "roost-0.2.0".into(),
        version: "0.2.0".into(),
        summary: "a test release".into(),
        requires: vec!["roost-0.1.0".into()],
        payload: vec![file("bin/roost", BIN), file("hooks/health", HEALTH)],
        hooks: Hooks {
            health_check: Some("hooks/health".into()),
            ..Hooks::default()
        },
        ..Manifest::default()
    }
}

/// A release file signed by `key`.
fn build(key: &SigningKey, m: &Manifest) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut a, mut b) = (BIN, HEALTH);
    write_release(&mut out, m, key, &mut [&mut a, &mut b]).unwrap();
    out
}

fn trusting(key: &SigningKey) -> TrustedKeys {
    TrustedKeys::parse([key.public().to_text().as_str()]).unwrap()
}

/// Files by name, as a sink collects them.
type Files = std::rc::Rc<std::cell::RefCell<Vec<(String, Vec<u8>)>>>;

/// Opens and reads the whole release: the files it holds.
fn read_all(bytes: &[u8], trusted: &TrustedKeys) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let opened = open(bytes, trusted)?;
    let files: Files = Files::default();
    struct Sink(Files, String);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut f = self.0.borrow_mut();
            match f.iter_mut().find(|(n, _)| *n == self.1) {
                Some((_, v)) => v.extend_from_slice(b),
                None => f.push((self.1.clone(), b.to_vec())),
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink_files = files.clone();
    opened.payload(move |entry| {
        sink_files
            .borrow_mut()
            .push((entry.name.clone(), Vec::new()));
        Ok(Box::new(Sink(sink_files.clone(), entry.name.clone())))
    })?;
    let out = files.borrow().clone();
    Ok(out)
}

#[test]
fn a_release_round_trips_and_its_payload_comes_back() {
    let key = SigningKey::generate().unwrap();
    let bytes = build(&key, &manifest());
    let opened = open(bytes.as_slice(), &trusting(&key)).unwrap();
    assert_eq!(opened.manifest.key_id, key.public().id());
    assert_eq!(opened.manifest.sw_release(), "0.2");
    let files = read_all(&bytes, &trusting(&key)).unwrap();
    assert_eq!(
        files,
        vec![
            ("bin/roost".to_string(), BIN.to_vec()),
            ("hooks/health".to_string(), HEALTH.to_vec())
        ]
    );
}

#[test]
fn keys_survive_their_text_forms() {
    let key = SigningKey::generate().unwrap();
    let again = SigningKey::from_text(&key.to_text()).unwrap();
    assert_eq!(again.public(), key.public());
    assert_eq!(
        PublicKey::from_text(&key.public().to_text()).unwrap(),
        key.public()
    );
    assert!(!format!("{key:?}").contains(&key.to_text()[40..60]));
    assert!(SigningKey::from_text("nonsense").is_err());
    assert!(PublicKey::from_text("ed25519:AAAA").is_err());
    assert!(PublicKey::from_text("rsa:AAAA").is_err());
}

#[test]
fn an_untrusted_key_a_changed_manifest_and_a_changed_payload_are_refused() {
    let key = SigningKey::generate().unwrap();
    let other = SigningKey::generate().unwrap();
    let bytes = build(&key, &manifest());
    // Another cloud's key.
    assert!(matches!(
        open(bytes.as_slice(), &trusting(&other)),
        Err(Error::UntrustedKey(_))
    ));
    // A byte of the manifest changed (reboot_required false -> true would
    // change the length; flip a letter of the summary instead).
    let at = bytes
        .windows(4)
        .position(|w| w == b"test")
        .expect("summary in the manifest");
    let mut changed = bytes.clone();
    changed[at] = b'b';
    assert!(matches!(
        open(changed.as_slice(), &trusting(&key)),
        Err(Error::BadSignature)
    ));
    // A byte of the payload changed: the head opens, the payload fails.
    let mut changed = bytes.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    assert!(matches!(
        read_all(&changed, &trusting(&key)),
        Err(Error::BadDigest { name }) if name == "hooks/health"
    ));
    // A file signed by the other key, claiming this key's id.
    let mut forged = manifest();
    forged.key_id = key.public().id();
    let forged_bytes = build(&other, &forged);
    assert!(open(forged_bytes.as_slice(), &trusting(&key)).is_err());
}

#[test]
fn cut_and_padded_files_are_refused() {
    let key = SigningKey::generate().unwrap();
    let bytes = build(&key, &manifest());
    let trusted = trusting(&key);
    for n in [0, 5, MAGIC.len() + 2, MAGIC.len() + 10, bytes.len() - 1] {
        let r = read_all(&bytes[..n], &trusted);
        assert!(
            matches!(r, Err(Error::Truncated(_)) | Err(Error::NotARelease)),
            "cut at {n}: {:?}",
            r.err()
        );
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(matches!(
        read_all(&padded, &trusted),
        Err(Error::TrailingBytes)
    ));
    assert!(matches!(
        open(&b"PK\x03\x04 a zip file"[..], &trusted),
        Err(Error::NotARelease)
    ));
    // A manifest length past the limit is refused before it is read.
    let mut huge = MAGIC.to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        open(huge.as_slice(), &trusted),
        Err(Error::Manifest(_))
    ));
}

#[test]
fn manifests_that_break_a_rule_are_refused_with_the_rule() {
    let key = SigningKey::generate().unwrap();
    let cases: Vec<(Manifest, &str)> = vec![
        (
            Manifest {
                release_id: "Roost-1.0.0".into(),
                ..manifest()
            },
            "lowercase",
        ),
        (
            Manifest {
                release_id: "roost-1.0".into(),
                version: "1.0".into(),
                ..manifest()
            },
            "MM.mm.pp",
        ),
        (
            Manifest {
                version: "0.3.0".into(),
                ..manifest()
            },
            "not the release id's",
        ),
        (
            Manifest {
                requires: vec!["roost-0.2.0".into()],
                ..manifest()
            },
            "require itself",
        ),
        (
            Manifest {
                payload: vec![file("../etc/passwd", BIN), file("hooks/health", HEALTH)],
                ..manifest()
            },
            "relative path",
        ),
        (
            Manifest {
                payload: vec![file("bin/roost", BIN), file("bin/roost", HEALTH)],
                ..manifest()
            },
            "listed twice",
        ),
        (
            Manifest {
                hooks: Hooks {
                    post_install: Some("hooks/missing".into()),
                    ..Hooks::default()
                },
                ..manifest()
            },
            "not a payload file",
        ),
    ];
    for (m, says) in cases {
        let mut out = Vec::new();
        let (mut a, mut b) = (BIN, HEALTH);
        let e = write_release(&mut out, &m, &key, &mut [&mut a, &mut b]).unwrap_err();
        assert!(e.to_string().contains(says), "{e} (wanted {says:?})");
    }
    // A payload that is not what the manifest says cannot be written.
    let mut out = Vec::new();
    let (mut a, mut b) = (&b"other bytes"[..], HEALTH);
    assert!(write_release(&mut out, &manifest(), &key, &mut [&mut a, &mut b]).is_err());
}

//! The TPM code against a software TPM (Debian's swtpm): the attestation
//! key is the same on every open, a quote verifies with `roost_pki::attest`
//! and follows a PCR extend, and a sealed secret opens only on its own TPM.

use std::collections::BTreeMap;

use roost_test_support::{Swtpm, require_or_skip};

fn needs_tpm() -> bool {
    require_or_skip(
        roost_tpm::supported(),
        "roost-tpm built with the cargo feature tpm",
    )
}

#[test]
fn quotes_verify_and_follow_pcr_extends() {
    if !needs_tpm() {
        return;
    }
    let sw = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
    let first = roost_tpm::Tpm::open(&sw.tcti()).unwrap().ak_public();
    let mut tpm = roost_tpm::Tpm::open(&sw.tcti()).unwrap();
    let ak = tpm.ak_public();
    assert_eq!(ak, first, "the attestation key is deterministic");
    let quote = |tpm: &mut roost_tpm::Tpm, nonce: &[u8]| {
        let q = tpm.quote(nonce, &[0, 7, 16]).unwrap();
        let pcrs: BTreeMap<u8, [u8; 32]> = q.pcrs.iter().copied().collect();
        let parts = roost_pki::attest::QuoteParts {
            attest: &q.attest,
            r: &q.signature_r,
            s: &q.signature_s,
            pcrs: &pcrs,
        };
        roost_pki::attest::verify_quote(&ak, &parts, nonce).expect("the quote verifies");
        pcrs
    };
    let before = quote(&mut tpm, b"first nonce");
    tpm.extend(16, [0x11; 32]).unwrap();
    let after = quote(&mut tpm, b"second nonce");
    assert_eq!(before[&0], after[&0]);
    assert_ne!(before[&16], after[&16]);
}

#[test]
fn a_sealed_secret_opens_only_on_its_own_tpm() {
    if !needs_tpm() {
        return;
    }
    let a = Swtpm::start().expect("swtpm starts");
    let secret = [0x5a_u8; 32];
    let blob = roost_tpm::seal(&a.tcti(), &secret).unwrap();
    assert!(!blob.windows(secret.len()).any(|w| w == secret));
    for _ in 0..3 {
        assert_eq!(roost_tpm::unseal(&a.tcti(), &blob).unwrap(), secret);
    }
    let mut flipped = blob.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(roost_tpm::unseal(&a.tcti(), &flipped).is_err());
    assert!(roost_tpm::unseal(&a.tcti(), &blob[..blob.len() / 2]).is_err());
    assert!(roost_tpm::seal(&a.tcti(), &[]).is_err());
    let b = Swtpm::start().expect("a second swtpm");
    let e = roost_tpm::unseal(&b.tcti(), &blob).unwrap_err();
    assert!(e.to_string().contains("cannot load the sealed blob"), "{e}");
}

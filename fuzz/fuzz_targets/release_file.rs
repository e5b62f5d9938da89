//! Fuzzes the release file reader: arbitrary bytes as a release must never
//! panic; and, so that what follows the signature gets fuzzed too, the
//! input is also taken as a manifest (its first part) and a payload (the
//! rest) and signed with a key the reader trusts, then read to the end.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use roost_release::{MAGIC, SigningKey, TrustedKeys};

fn key() -> &'static (SigningKey, TrustedKeys) {
    static KEY: OnceLock<(SigningKey, TrustedKeys)> = OnceLock::new();
    KEY.get_or_init(|| {
        let k = SigningKey::generate().expect("a key");
        let mut t = TrustedKeys::default();
        t.add(k.public());
        (k, t)
    })
}

fn read_all(bytes: &[u8], trusted: &TrustedKeys) {
    if let Ok(opened) = roost_release::open(bytes, trusted) {
        let _ = opened.payload(|_| Ok(Box::new(std::io::sink())));
    }
}

fuzz_target!(|data: &[u8]| {
    let (key, trusted) = key();
    read_all(data, trusted);
    // The first two bytes say how much of the rest is the manifest.
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
    let (manifest, payload) = data[2..].split_at(split);
    let mut signed_over = MAGIC.to_vec();
    signed_over.extend_from_slice(manifest);
    let mut file = signed_over.clone();
    file.splice(
        MAGIC.len()..MAGIC.len(),
        u32::try_from(manifest.len()).unwrap_or(0).to_be_bytes(),
    );
    file.extend_from_slice(&key.sign(&signed_over));
    file.extend_from_slice(payload);
    read_all(&file, trusted);
});

//! A 200 MB package in an upload body is decoded in bounded memory. Alone
//! in its test binary so the process's peak memory is this test's.

use roost_api::apps::base64::encode;
use roost_package::upload::UploadDecoder;
use sha2::{Digest, Sha256};
use std::io::Write;

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A sink that hashes and counts.
struct Hasher(Sha256, u64);
impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Deterministic pseudo-random package bytes, block by block.
fn block(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_200_mb_body_stays_in_bounded_memory() {
    const TOTAL: u64 = 200 << 20;
    const BLOCK: usize = 48 * 1024; // a multiple of 3: base64 blocks concatenate
    let before = peak_rss();
    let mut d = UploadDecoder::new(1 << 30);
    let mut sink = Hasher(Sha256::new(), 0);
    let mut want = Sha256::new();
    d.push(
        br#"{"tarfile": "/root/big.tgz", "name": "big", "binary_data": ""#,
        &mut sink,
    )
    .unwrap();
    // A few distinct blocks, encoded once, repeated up to the total.
    let blocks: Vec<(Vec<u8>, String)> = (0..4)
        .map(|i| {
            let data = block(i, BLOCK);
            let text = encode(&data).replace('+', "-").replace('/', "_");
            (data, text)
        })
        .collect();
    let mut sent = 0u64;
    let mut i = 0;
    while sent < TOTAL {
        let (data, text) = &blocks[i as usize % blocks.len()];
        want.update(data);
        // Feed in uneven pieces, as a socket delivers them.
        for piece in text.as_bytes().chunks(16_000 + (i as usize % 7) * 1000) {
            d.push(piece, &mut sink).unwrap();
        }
        sent += BLOCK as u64;
        i += 1;
    }
    d.push(br#"", "app_version": "1"}"#, &mut sink).unwrap();
    let up = d.finish().unwrap();
    assert_eq!(up.binary_bytes, Some(sent));
    assert_eq!(sink.1, sent);
    assert_eq!(sink.0.finalize(), want.finalize());
    assert_eq!(up.request.app_version.as_deref(), Some("1"));
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 32 << 20,
        "peak memory grew by {grew} bytes for a {TOTAL}-byte package"
    );
}

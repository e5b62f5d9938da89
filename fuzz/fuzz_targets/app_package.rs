//! Fuzzes the application package reader: arbitrary bytes as a `.tgz`
//! must never panic, never write outside the target directory and never
//! go past the limits; when the bytes look like gzip they are also read
//! after gzip framing fixes, so the tar parser behind it gets fuzzed too.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use roost_package::{Limits, read};

fn limits() -> Limits {
    Limits {
        max_total_bytes: 1 << 20,
        max_entries: 64,
        max_manifest_bytes: 64 << 10,
        require_checksum: false,
    }
}

fn try_read(bytes: &[u8]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("pkg");
    if let Ok(p) = read(bytes, &target, &limits()) {
        // Everything it kept is under the target.
        assert!(p.root.starts_with(&target));
        for i in &p.images {
            assert!(i.starts_with(&target));
        }
    } else {
        assert!(!target.exists(), "a refused package leaves nothing");
    }
    // Nothing beside the target.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.len() <= 1, "{names:?}");
}

fuzz_target!(|data: &[u8]| {
    try_read(data);
    // The same bytes as the tar inside a well-formed gzip stream.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    try_read(&gz.finish().unwrap());
});

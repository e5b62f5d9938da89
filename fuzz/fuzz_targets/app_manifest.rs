//! Fuzzes the parsers of an application package's text: Kubernetes-style
//! manifests (every document, every kind Roost supports) and
//! `metadata.yaml`. Arbitrary text must be parsed or refused with an error,
//! never panic, and never take unbounded time (YAML aliases are bounded by
//! the parser).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(objects) = roost_api::apps::manifest::parse_documents(text) {
        // What parses shows as a kind and a name.
        for o in &objects {
            let _ = format!("{o:?}");
        }
    }
    let _ = roost_api::apps::Metadata::parse(text);
});

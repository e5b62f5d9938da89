//! containerd ids and directory names for replicas and their containers.

use sha2::{Digest, Sha256};

use crate::valid_id;

/// Label keys the runner puts on every container it starts.
pub const LABEL_REPLICA: &str = "roost.replica";
pub const LABEL_CONTAINER: &str = "roost.container";
pub const LABEL_GENERATION: &str = "roost.generation";
pub const LABEL_APP: &str = "roost.app";

/// `raw` with `/` as `.` when that is a valid containerd id; otherwise the
/// letters and digits of `raw` (at most 50, other runs as one `-`) followed
/// by 16 hex digits of its SHA-256, which is always valid and unique in
/// practice.
pub(crate) fn id_for(raw: &str) -> String {
    let dotted = raw.replace('/', ".");
    if valid_id(&dotted) {
        return dotted;
    }
    let mut out = String::new();
    for ch in raw.chars() {
        if out.len() >= 50 {
            break;
        }
        if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    let hash = Sha256::digest(raw.as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    if out.is_empty() {
        format!("h{hex}")
    } else {
        format!("{out}-{hex}")
    }
}

/// The containerd id of container `container` of replica `replica_id` at
/// `generation`: `<app>.<workload>.<index>.<container>.<generation>`, or a
/// hashed form when that is not a valid id.
pub(crate) fn container_id(replica_id: &str, container: &str, generation: u64) -> String {
    id_for(&format!("{replica_id}/{container}/{generation}"))
}

/// The directory name (under `<dir>/replicas`) of a replica generation's
/// volumes.
pub(crate) fn replica_dir_name(replica_id: &str, generation: u64) -> String {
    id_for(&format!("{replica_id}/{generation}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_readable_when_possible_and_always_valid() {
        assert_eq!(
            container_id("hello/web/0", "nginx", 3),
            "hello.web.0.nginx.3"
        );
        assert_eq!(replica_dir_name("hello/web/0", 3), "hello.web.0.3");
        let long = "a".repeat(80);
        let id = container_id(&format!("app/{long}/0"), "c", 1);
        assert!(valid_id(&id), "{id}");
        assert_ne!(id, container_id(&format!("app/{long}/1"), "c", 1));
        for odd in ["--/__/..", "ümlaut/x/0", "a..b/c/0", "/", ""] {
            let id = container_id(odd, "c", 1);
            assert!(valid_id(&id), "{odd:?} -> {id}");
        }
        // Deterministic: an agent restart finds the same ids.
        assert_eq!(
            container_id("ümlaut/x/0", "c", 1),
            container_id("ümlaut/x/0", "c", 1)
        );
    }
}

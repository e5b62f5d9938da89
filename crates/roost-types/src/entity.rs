//! Entity instance ids: dot-separated `key=value` pairs, most general first,
//! e.g. `host=controller-0.filesystem=/var/log`.

/// True when `entity` is `prefix` itself or lies beneath it.
///
/// `host=worker-1` covers `host=worker-1.filesystem=/var` but not
/// `host=worker-10`. A dot inside a value (`host=a.b`) does not start a new
/// level: a level starts only where the text after a dot has the shape
/// `key=...` with no dot in the key.
pub fn entity_is_under(entity: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return false;
    }
    let Some(rest) = entity.strip_prefix(prefix) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(next) = rest.strip_prefix('.') else {
        return false;
    };
    match next.find('=') {
        Some(eq) => eq > 0 && !next[..eq].contains('.'),
        None => false,
    }
}

/// The entity type of an instance id: the key of its last level
/// (`host=x.filesystem=/y` has type `host.filesystem` in StarlingX's terms;
/// this returns the dotted list of keys).
pub fn entity_type_of(entity: &str) -> String {
    let mut keys = Vec::new();
    let mut rest = entity;
    while let Some(eq) = rest.find('=') {
        keys.push(&rest[..eq]);
        let after = &rest[eq + 1..];
        // Find the next level start: a '.' followed by `key=` with no dot in key.
        let mut next = None;
        for (i, _) in after.match_indices('.') {
            let cand = &after[i + 1..];
            if let Some(e) = cand.find('=')
                && e > 0
                && !cand[..e].contains('.')
            {
                next = Some(i + 1);
                break;
            }
        }
        match next {
            Some(n) => rest = &after[n..],
            None => break,
        }
    }
    keys.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_a_prefix_keeps_sibling_hosts() {
        assert!(entity_is_under("host=worker-1", "host=worker-1"));
        assert!(entity_is_under(
            "host=worker-1.filesystem=/var",
            "host=worker-1"
        ));
        assert!(!entity_is_under("host=worker-10", "host=worker-1"));
        assert!(!entity_is_under(
            "host=worker-10.filesystem=/",
            "host=worker-1"
        ));
        assert!(!entity_is_under("host=worker-1", ""));
    }

    #[test]
    fn dots_inside_values_do_not_start_levels() {
        assert!(!entity_is_under("host=a.example.com", "host=a"));
        assert!(entity_is_under(
            "host=a.example.com.port=1",
            "host=a.example.com"
        ));
    }

    #[test]
    fn entity_type_lists_the_keys() {
        assert_eq!(
            entity_type_of("host=c-0.filesystem=/var/log"),
            "host.filesystem"
        );
        assert_eq!(entity_type_of("subcloud=s1"), "subcloud");
        assert_eq!(entity_type_of("nonsense"), "");
    }
}

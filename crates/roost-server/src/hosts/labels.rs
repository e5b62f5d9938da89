//! Host labels: key/value pairs that applications select hosts by
//! (`nodeSelector`), managed through sysinv's label API. Pure: validation
//! and the new label list; the service commits it with the host row.

use roost_api::sysinv::Label;
use serde::{Deserialize, Serialize};

use crate::Error;

/// A label as stored with its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLabel {
    pub uuid: String,
    pub key: String,
    pub value: String,
}

/// At most this many labels per host.
pub const MAX_LABELS: usize = 64;

/// Reads the stored JSON; anything unreadable is no labels.
pub fn from_json(s: &str) -> Vec<StoredLabel> {
    serde_json::from_str(s).unwrap_or_default()
}

pub fn to_json(labels: &[StoredLabel]) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "[]".into())
}

pub fn wire(host_uuid: &str, l: &StoredLabel) -> Label {
    Label {
        uuid: l.uuid.clone(),
        host_uuid: host_uuid.to_string(),
        label_key: l.key.clone(),
        label_value: l.value.clone(),
    }
}

/// A name part of a key or a value: at most 63 characters, alphanumerics
/// with `-`, `_` and `.` inside (Kubernetes' rule). Values may be empty.
fn valid_name(s: &str, empty_ok: bool) -> bool {
    if s.is_empty() {
        return empty_ok;
    }
    let b = s.as_bytes();
    s.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Checks a label key (`[prefix/]name`, the prefix a DNS subdomain) and
/// value.
pub fn validate(key: &str, value: &str) -> Result<(), Error> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if !prefix_ok || !valid_name(name, false) {
        return Err(Error::Invalid(format!(
            "invalid label key {key:?}: a name of at most 63 letters, digits, '-', '_' or '.', \
             optionally prefixed by a DNS subdomain and '/'"
        )));
    }
    if !valid_name(value, true) {
        return Err(Error::Invalid(format!(
            "invalid value {value:?} for label {key}: at most 63 letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

/// The labels after assigning `pairs` (in order); an existing key keeps its
/// uuid. Without `overwrite`, changing an existing key's value is refused.
/// Returns the new list and the labels assigned.
pub fn assign(
    current: &[StoredLabel],
    pairs: &[(String, String)],
    overwrite: bool,
    hostname: &str,
    new_uuid: &mut dyn FnMut() -> String,
) -> Result<(Vec<StoredLabel>, Vec<StoredLabel>), Error> {
    if pairs.is_empty() {
        return Err(Error::Invalid("no labels given".into()));
    }
    let mut labels = current.to_vec();
    let mut assigned = Vec::new();
    for (k, v) in pairs {
        validate(k, v)?;
        match labels.iter_mut().find(|l| &l.key == k) {
            Some(l) if l.value == *v => assigned.push(l.clone()),
            Some(l) if overwrite => {
                l.value = v.clone();
                assigned.push(l.clone());
            }
            Some(l) => {
                return Err(Error::Conflict(format!(
                    "Label {k} already exists on host {hostname} with value {}; \
                     use overwrite to change it",
                    l.value
                )));
            }
            None => {
                let l = StoredLabel {
                    uuid: new_uuid(),
                    key: k.clone(),
                    value: v.clone(),
                };
                labels.push(l.clone());
                assigned.push(l);
            }
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(Error::Invalid(format!(
            "a host may have at most {MAX_LABELS} labels"
        )));
    }
    Ok((labels, assigned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("u{n}")
        }
    }

    #[test]
    fn keys_and_values_follow_kubernetes_rules() {
        for (k, v) in [
            ("zone", "a"),
            ("roost.io/gpu", "true"),
            ("a.b-c_d", ""),
            ("x", "v1.2-rc_3"),
        ] {
            validate(k, v).unwrap();
        }
        for (k, v) in [
            ("", "a"),
            ("-x", "a"),
            ("x", "a b"),
            ("Bad_Prefix/x", "a"),
            ("/x", "a"),
            ("x", &"v".repeat(64)),
        ] {
            assert!(validate(k, v).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn assigning_keeps_uuids_and_refuses_a_silent_change() {
        let mut ids = counter();
        let (l, a) = assign(&[], &[("zone".into(), "a".into())], false, "h", &mut ids).unwrap();
        assert_eq!((l.len(), a[0].uuid.as_str()), (1, "u1"));
        // The same value again is fine and keeps the uuid.
        let (l2, a2) = assign(&l, &[("zone".into(), "a".into())], false, "h", &mut ids).unwrap();
        assert_eq!((l2, a2[0].uuid.as_str()), (l.clone(), "u1"));
        // Another value needs overwrite.
        let e = assign(&l, &[("zone".into(), "b".into())], false, "h", &mut ids).unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        let (l3, _) = assign(&l, &[("zone".into(), "b".into())], true, "h", &mut ids).unwrap();
        assert_eq!((l3[0].uuid.as_str(), l3[0].value.as_str()), ("u1", "b"));
    }
}

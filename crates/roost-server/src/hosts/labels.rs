//! Host labels: key/value pairs that applications select hosts by
//! (`nodeSelector`), managed through sysinv's label API. Pure: validation
//! and the new label list; the service commits it with the host row.

use roost_api::apps::Label;
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

/// Checks a label key and value with the rule manifests' selectors use
/// ([`roost_api::apps::check_label`]).
pub fn validate(key: &str, value: &str) -> Result<(), Error> {
    roost_api::apps::check_label(key, value).map_err(|e| {
        Error::Invalid(format!(
            "{e}: a label key is a name of at most 63 letters, digits, '-', '_' or '.', \
             optionally prefixed by a DNS subdomain and '/'; a value is such a name or empty"
        ))
    })
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

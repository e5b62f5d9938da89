//! Roost's wire types: the JSON that crosses HTTP, in StarlingX's shapes.
//!
//! Architecture invariant: only this crate defines JSON on the wire. Domain
//! types (`roost_fm::Alarm`, ...) are converted here, so a change of a
//! domain type can never silently change the API.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod agent;
pub mod apps;
pub mod audit;
pub mod certificates;
pub mod dcmanager;
pub mod dcsync;
mod error;
pub mod fm;
pub mod heartbeat;
pub mod identity;
pub mod notify;
pub mod openapi;
pub mod orchestration;
pub mod redfish;
pub mod software;
pub mod sysinv;
pub mod tpm;
pub mod witness;

pub use error::Error;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// The error body that StarlingX's `fm` and `system` clients can both print
/// (`error` first, then `error_message` holding a JSON document as a string).
pub fn error_body(code: u16, title: &str, message: &str) -> Value {
    let inner = json!({"faultcode": if code < 500 {"Client"} else {"Server"}, "faultstring": message, "debuginfo": null});
    json!({
        "error": {"message": message, "faultstring": message, "title": title, "code": code},
        "error_message": inner.to_string(),
    })
}

/// Reads a boolean given as JSON `true`/`false` or as the strings
/// `"True"`/`"False"` (any case), as StarlingX's tools send both.
pub fn flex_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        B(bool),
        S(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::B(b)) => Ok(Some(b)),
        Some(B::S(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom(format!(
                "expected a boolean (true or false), got {s:?}"
            ))),
        },
    }
}

/// `"True"` or `"False"`, as StarlingX writes derived flags.
pub fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// A link of a resource, as StarlingX's APIs list them under `links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    pub rel: String,
}

impl Link {
    /// The `self` and `bookmark` links of `{base}/v1/{kind}/{uuid}`.
    pub fn self_and_bookmark(base: &str, kind: &str, uuid: &str) -> Vec<Link> {
        vec![
            Link {
                href: format!("{base}/v1/{kind}/{uuid}"),
                rel: "self".into(),
            },
            Link {
                href: format!("{base}/{kind}/{uuid}"),
                rel: "bookmark".into(),
            },
        ]
    }
}

/// `GET /healthz` body. Fields are in the order the document has always
/// had on the wire (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub active_alarms: u64,
    pub event_log_records: u64,
    /// Always `ok`: the server answers.
    pub status: String,
}

/// `GET /`: the version document.
pub fn root_versions(base: &str) -> Value {
    json!({
        "name": "Roost",
        "description": "Roost edge cloud API: fault management, inventory and identity, StarlingX-compatible",
        // The v3 entry lets Keystone clients whose auth URL has no version
        // discover the identity API here.
        "versions": [v1_link(base), {
            "id": "v3.14",
            "status": "stable",
            "links": [{"href": format!("{base}/v3/"), "rel": "self"}],
        }],
        "default_version": v1_link(base),
    })
}

fn v1_link(base: &str) -> Value {
    json!({
        "id": "v1",
        "status": "stable",
        "links": [{"href": format!("{base}/v1/"), "rel": "self"}],
    })
}

/// `GET /v1`: the v1 document with links to its collections.
pub fn v1_document(base: &str) -> Value {
    let link = |name: &str| {
        json!([
            {"href": format!("{base}/v1/{name}/"), "rel": "self"},
            {"href": format!("{base}/{name}/"), "rel": "bookmark"},
        ])
    };
    json!({
        "id": "v1",
        "media_types": [{"base": "application/json", "type": "application/vnd.roost.v1+json"}],
        "links": [{"href": format!("{base}/v1/"), "rel": "self"}],
        "alarms": link("alarms"),
        "event_log": link("event_log"),
        "event_suppression": link("event_suppression"),
    })
}

/// `GET /v1.0`: the Distributed Cloud API's version document.
pub fn v1_0_document(base: &str) -> Value {
    json!({
        "id": "v1.0",
        "status": "CURRENT",
        "links": [{"href": format!("{base}/v1.0/"), "rel": "self"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_body_satisfies_both_starlingx_clients() {
        let b = error_body(400, "Bad Request", "limit must be a number");
        // fm reads the first key, which must be an object with a message.
        let text = serde_json::to_string(&b).unwrap();
        assert!(text.starts_with("{\"error\":{"));
        assert_eq!(b["error"]["message"], "limit must be a number");
        // system decodes error_message from a string.
        let inner: Value = serde_json::from_str(b["error_message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["faultstring"], "limit must be a number");
        assert_eq!(inner["faultcode"], "Client");
    }

    #[test]
    fn booleans_come_in_both_spellings() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "flex_bool")]
            b: Option<bool>,
        }
        let t: T = serde_json::from_str(r#"{"b":"True"}"#).unwrap();
        assert_eq!(t.b, Some(true));
        let t: T = serde_json::from_str(r#"{"b":false}"#).unwrap();
        assert_eq!(t.b, Some(false));
        let t: T = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(t.b, None);
        assert!(serde_json::from_str::<T>(r#"{"b":"maybe"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"b":3}"#).is_err());
    }

    #[test]
    fn links_and_health_keep_their_json_form() {
        let l = Link::self_and_bookmark("http://x", "ihosts", "u");
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"[{"href":"http://x/v1/ihosts/u","rel":"self"},{"href":"http://x/ihosts/u","rel":"bookmark"}]"#
        );
        let h = Health {
            status: "ok".into(),
            active_alarms: 2,
            event_log_records: 7,
        };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(
            text,
            r#"{"active_alarms":2,"event_log_records":7,"status":"ok"}"#
        );
        assert_eq!(serde_json::from_str::<Health>(&text).unwrap(), h);
    }
}

//! Applications: StarlingX's `/v1/apps` JSON, sysinv's host label JSON, the
//! application package's `metadata.yaml` and Kubernetes-style manifests, and
//! the agent app protocol.
//!
//! ## Kubernetes types: our own, not `k8s-openapi`
//! The manifest subset ([`manifest`]) is typed here rather than taken from
//! `k8s-openapi`. Roost promises that anything in a manifest it does not
//! carry out is refused with the field's path, never silently ignored;
//! `k8s-openapi`'s types accept and drop unknown fields, so every one of its
//! hundreds of structs would need a second, strict walk over the YAML. It is
//! also one of the heaviest builds in the ecosystem (minutes on two cores) for
//! the dozen types used here. Our structs carry `#[serde(deny_unknown_fields)]`
//! and are read through `serde_path_to_error`, so an unsupported field such
//! as `spec.template.spec.affinity` is named exactly. Field names and shapes
//! follow the Kubernetes API, so a manifest that Roost accepts is a valid
//! Kubernetes manifest too.

pub mod agent;
pub mod base64;
pub mod manifest;
pub mod quantity;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An application as `GET /v1/apps/{name}` and the POST/PATCH replies carry
/// it (CLIENTS.md section 6): no `id`, no `links`; `progress` may be null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    pub app_version: String,
    pub manifest_name: String,
    pub manifest_file: String,
    pub status: String,
    pub progress: Option<String>,
    pub active: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// One item of `GET /v1/apps`: exactly these keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppListItem {
    pub name: String,
    pub app_version: String,
    pub manifest_name: String,
    pub manifest_file: String,
    pub status: String,
    pub progress: Option<String>,
    pub active: bool,
}

impl From<&App> for AppListItem {
    fn from(a: &App) -> Self {
        AppListItem {
            name: a.name.clone(),
            app_version: a.app_version.clone(),
            manifest_name: a.manifest_name.clone(),
            manifest_file: a.manifest_file.clone(),
            status: a.status.clone(),
            progress: a.progress.clone(),
            active: a.active,
        }
    }
}

/// `GET /v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppList {
    #[serde(default)]
    pub apps: Vec<AppListItem>,
}

/// The small fields of `POST /v1/apps` (fact 31). The package itself comes
/// in `binary_data`, which is never held in memory: the server reads the
/// body with `roost_package::upload::UploadDecoder`, which yields this and
/// writes the decoded package to a file. A URL upload has `tarfile` only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppUploadRequest {
    pub tarfile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::flex_bool"
    )]
    pub images: Option<bool>,
}

/// `POST /v1/apps/update`: the path only, no file content (fact 31). The
/// flags are the strings `"true"`/`"false"` (any case) as `system` sends them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppUpdateRequest {
    pub tarfile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_user_overrides: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_attributes: Option<String>,
}

impl AppUpdateRequest {
    /// The flag values as booleans; StarlingX refuses anything but
    /// true/True/false/False; the error names the offending text.
    pub fn flags(&self) -> Result<(Option<bool>, Option<bool>), crate::Error> {
        fn one(v: &Option<String>) -> Result<Option<bool>, crate::Error> {
            match v.as_deref() {
                None => Ok(None),
                Some("true" | "True") => Ok(Some(true)),
                Some("false" | "False") => Ok(Some(false)),
                Some(other) => Err(crate::Error::Invalid(format!(
                    "invalid flag value {other:?}: expected true, True, false or False"
                ))),
            }
        }
        Ok((
            one(&self.reuse_user_overrides)?,
            one(&self.reuse_attributes)?,
        ))
    }
}

/// The body of `PATCH /v1/apps/{name}?directive=...` (fact 32):
/// `{"values": {"client_side": false}}`, `{"values": {"mode": "m", ...}}`
/// or `{"values": {}}`. Other keys in `values` are kept, not refused, as
/// StarlingX passes them through.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AppPatch {
    #[serde(default)]
    pub values: AppPatchValues,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AppPatchValues {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::flex_bool"
    )]
    pub client_side: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// The query of `PATCH /v1/apps/{name}` and `DELETE /v1/apps/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppActionQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// `False` or `True` (Python capitals) as `system` sends it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::flex_bool"
    )]
    pub force: Option<bool>,
}

/// `GET /v1/apps/{name}/replicas` (Roost's own, for `roost app status`):
/// every replica of an application, where it is and how it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppReplicaList {
    pub app: String,
    pub status: String,
    #[serde(default)]
    pub replicas: Vec<AppReplica>,
}

/// One replica in [`AppReplicaList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppReplica {
    /// `<app>/<workload>/<index or host>`.
    pub id: String,
    pub workload: String,
    /// `Deployment`, `DaemonSet` or `Pod`.
    pub kind: String,
    /// Where it is placed; `None` while pending.
    pub host: Option<String>,
    /// pending, starting, running, exited, failed or stopped.
    pub state: String,
    pub ready: bool,
    pub restarts: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why it is pending, or the last exit's or probe's message.
    #[serde(default)]
    pub message: Option<String>,
    /// Exclusive CPUs given to it (isolated pool), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusive_cpus: Vec<u32>,
    /// 750.101 is raised for it (it keeps failing).
    #[serde(default)]
    pub alarmed: bool,
}

/// The query of `GET /v1/apps/{name}/logs` (Roost's own, for
/// `roost app logs`): the answer is the container's output as text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppLogsQuery {
    /// The replica id (or its last part, the index or host); the first
    /// replica when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// The container name; the first container when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Only the last this many lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u64>,
    /// Keep the answer open and send new output as it comes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::flex_bool"
    )]
    pub follow: Option<bool>,
}

/// A host label as sysinv's label API carries it
/// (`system host-label-list|assign`; `GET /v1/labels/{uuid}` answers a bare
/// one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub uuid: String,
    pub host_uuid: String,
    pub label_key: String,
    pub label_value: String,
}

/// `GET /v1/ihosts/{uuid}/labels`, and the reply of
/// `POST /v1/labels/{host_uuid}` (the labels assigned).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelList {
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// The body of `POST /v1/labels/{host_uuid}?overwrite=False|True`: a JSON
/// object of label key to value.
pub type LabelAssign = BTreeMap<String, String>;

/// The query of `POST /v1/labels/{host_uuid}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelAssignQuery {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::flex_bool"
    )]
    pub overwrite: Option<bool>,
}

/// Checks a label key and value as Kubernetes does (an optional DNS
/// subdomain prefix and `/`, then a name of at most 63 characters of
/// alphanumerics, `-`, `_`, `.`, beginning and ending alphanumeric; the value
/// the same without prefix, or empty). Host labels (sysinv's label API) and
/// manifests' selectors use this one rule, so that a selector can always
/// name a label a host may carry.
pub fn check_label(key: &str, value: &str) -> Result<(), crate::Error> {
    fn name_ok(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    }
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(manifest::is_dns_label);
            if !prefix_ok {
                return Err(crate::Error::Invalid(format!(
                    "invalid label key prefix {prefix:?}"
                )));
            }
            name
        }
        None => key,
    };
    if !name_ok(name) {
        return Err(crate::Error::Invalid(format!("invalid label key {key:?}")));
    }
    if !value.is_empty() && !name_ok(value) {
        return Err(crate::Error::Invalid(format!(
            "invalid label value {value:?} for key {key:?}"
        )));
    }
    Ok(())
}

/// `metadata.yaml` of an application package. `app_name` and `app_version`
/// are required and non-empty; StarlingX's optional keys (`upgrades`,
/// `dependent_apps`, `behavior`, ...) are accepted and kept untouched in
/// `other`, as they describe StarlingX's own life cycle, not the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub app_name: String,
    pub app_version: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

impl Metadata {
    pub fn parse(yaml: &str) -> Result<Metadata, crate::Error> {
        let m: Metadata =
            serde_norway::from_str(yaml).map_err(|e| crate::Error::Metadata(e.to_string()))?;
        for (key, v) in [("app_name", &m.app_name), ("app_version", &m.app_version)] {
            if v.trim().is_empty() {
                return Err(crate::Error::Metadata(format!("{key} is empty")));
            }
            if v.len() > 255 || v.chars().any(|c| c.is_control() || c == '/') {
                return Err(crate::Error::Metadata(format!(
                    "{key} {v:?} is not a valid name"
                )));
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn app_list_items_have_exactly_starlingx_keys() {
        let app = App {
            name: "hello".into(),
            app_version: "1.0-1".into(),
            manifest_name: "hello-manifest".into(),
            manifest_file: "manifests".into(),
            status: "uploaded".into(),
            progress: None,
            active: false,
            created_at: Some("2026-01-01T00:00:00.000000+00:00".into()),
            updated_at: None,
        };
        let list = AppList {
            apps: vec![AppListItem::from(&app)],
        };
        let v = serde_json::to_value(&list).unwrap();
        let keys: Vec<&String> = v["apps"][0].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "active",
                "app_version",
                "manifest_file",
                "manifest_name",
                "name",
                "progress",
                "status"
            ]
        );
        let v = serde_json::to_value(&app).unwrap();
        assert_eq!(v["progress"], serde_json::Value::Null);
        assert_eq!(v.as_object().unwrap().len(), 9);
        assert!(v.get("id").is_none());
    }

    #[test]
    fn patch_and_update_bodies_as_system_sends_them() {
        let p: AppPatch =
            serde_json::from_value(json!({"values": {"client_side": false}})).unwrap();
        assert_eq!(p.values.client_side, Some(false));
        let p: AppPatch =
            serde_json::from_value(json!({"values": {"mode": "m", "client_side": true}})).unwrap();
        assert_eq!(p.values.mode.as_deref(), Some("m"));
        let p: AppPatch = serde_json::from_value(json!({"values": {}})).unwrap();
        assert_eq!(p, AppPatch::default());
        let u: AppUpdateRequest =
            serde_json::from_value(json!({"tarfile": "/root/a.tgz", "name": "a",
            "app_version": "2", "reuse_user_overrides": "true", "reuse_attributes": "False"}))
            .unwrap();
        assert_eq!(u.flags().unwrap(), (Some(true), Some(false)));
        let u = AppUpdateRequest {
            reuse_attributes: Some("yes".into()),
            ..u
        };
        assert!(u.flags().unwrap_err().to_string().contains("\"yes\""));
        let q: AppActionQuery =
            serde_json::from_value(json!({"directive": "remove", "force": "False"})).unwrap();
        assert_eq!(q.force, Some(false));
        let up: AppUploadRequest =
            serde_json::from_value(json!({"tarfile": "/x.tgz", "images": true})).unwrap();
        assert_eq!(up.images, Some(true));
    }

    #[test]
    fn labels() {
        let body: LabelAssign = serde_json::from_value(json!({"sriov": "enabled"})).unwrap();
        assert_eq!(body["sriov"], "enabled");
        let list: LabelList = serde_json::from_value(json!({"labels": [
            {"uuid": "u", "host_uuid": "h", "label_key": "k", "label_value": "v"}]}))
        .unwrap();
        assert_eq!(list.labels[0].label_key, "k");
        assert!(check_label("openstack-control-plane", "enabled").is_ok());
        assert!(check_label("example.com/zone", "a_b.c-1").is_ok());
        assert!(check_label("a", "").is_ok());
        assert!(check_label("", "x").is_err());
        assert!(check_label("-a", "x").is_err());
        assert!(check_label("a", "x y").is_err());
        assert!(check_label("/a", "x").is_err());
        assert!(check_label(&"a".repeat(64), "x").is_err());
    }

    #[test]
    fn metadata() {
        let m = Metadata::parse(
            "app_name: hello\napp_version: 1.0-1\nupgrades:\n  auto_update: true\n",
        )
        .unwrap();
        assert_eq!(m.app_name, "hello");
        assert!(m.other.contains_key("upgrades"));
        assert!(
            Metadata::parse("app_name: ''\napp_version: 1\n")
                .unwrap_err()
                .to_string()
                .contains("app_name is empty")
        );
        assert!(
            Metadata::parse("app_name: x\n")
                .unwrap_err()
                .to_string()
                .contains("app_version")
        );
        assert!(Metadata::parse("app_name: a/b\napp_version: 1\n").is_err());
    }
}

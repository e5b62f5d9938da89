//! The Kubernetes-style manifest subset Roost runs: `Deployment`, `DaemonSet`,
//! `Pod`, `ConfigMap` and `Secret`, with the pod and container fields listed
//! on each type. Every struct refuses unknown fields, and a refusal names the
//! field's path (`spec.template.spec.affinity`), so nothing in a manifest is
//! silently ignored. `metadata` allows `name`, `namespace` and `labels`.
//!
//! [`parse_documents`] reads one multi-document YAML file;
//! [`check_references`] checks a whole package (names, ConfigMap and Secret
//! references, volume mounts).

use super::quantity::Quantity;
use crate::Error;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where an object came from in a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    /// 1-based document number.
    pub document: usize,
}

/// One supported object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    Pod(Pod),
    ConfigMap(ConfigMap),
    Secret(Secret),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Deployment(_) => "Deployment",
            Object::DaemonSet(_) => "DaemonSet",
            Object::Pod(_) => "Pod",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Deployment(o) => &o.metadata,
            Object::DaemonSet(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// `Kind name`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind(), self.name())
    }

    /// The pod spec of a workload, with the path prefix of its fields.
    pub fn pod_spec(&self) -> Option<(&'static str, &PodSpec)> {
        match self {
            Object::Deployment(d) => Some(("spec.template.spec", &d.spec.template.spec)),
            Object::DaemonSet(d) => Some(("spec.template.spec", &d.spec.template.spec)),
            Object::Pod(p) => Some(("spec", &p.spec)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The metadata of a pod template: labels (and optionally a name).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deployment {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: DeploymentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// 1 when absent, as in Kubernetes.
    #[serde(default = "one")]
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DaemonSet {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: DaemonSetSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DaemonSetSpec {
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodTemplateSpec {
    #[serde(default)]
    pub metadata: TemplateMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pod {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub host_network: bool,
}

/// A volume: exactly one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolume>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPathVolume {
    pub path: String,
    /// `""`, `Directory`, `DirectoryOrCreate`, `File`, `FileOrCreate`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmptyDirVolume {
    /// `""` or `Memory` (a tmpfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapVolume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode"
    )]
    pub default_mode: Option<u32>,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretVolume {
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode"
    )]
    pub default_mode: Option<u32>,
    #[serde(default)]
    pub optional: bool,
}

/// A file mode as manifests write it: a number (`256`, YAML 1.2's `0o400`)
/// or YAML 1.1's octal `0400`, which YAML 1.2 readers see as text.
fn file_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Mode {
        Number(u32),
        Text(String),
    }
    let mode = match Option::<Mode>::deserialize(d)? {
        None => return Ok(None),
        Some(Mode::Number(n)) => n,
        Some(Mode::Text(t)) => {
            let digits = t
                .strip_prefix("0o")
                .or_else(|| t.strip_prefix('0'))
                .filter(|d| !d.is_empty() && d.bytes().all(|b| (b'0'..=b'7').contains(&b)));
            match digits {
                Some(d) => u32::from_str_radix(d, 8).map_err(serde::de::Error::custom)?,
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "invalid file mode {t:?}: expected a number such as 0644 or 420"
                    )));
                }
            }
        }
    };
    if mode > 0o777 {
        return Err(serde::de::Error::custom(format!(
            "invalid file mode {mode:#o}: at most 0777"
        )));
    }
    Ok(Some(mode))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

/// A container's `securityContext`: the fields Roost carries out. Others
/// (`seLinuxOptions`, `seccompProfile`, `procMount`, ...) are refused as
/// unknown fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityContext {
    /// Refused unless the cloud allows privileged applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Roost's default is `false` (no new privileges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
}

/// Capabilities added to and dropped from the default set, as Kubernetes
/// writes them (`NET_ADMIN`, or `ALL`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// An environment variable: a `value`, or `valueFrom` a ConfigMap or Secret key
/// (neither: the empty string, as in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVarSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerPort {
    /// A name probes can refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(default)]
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: ResourceList,
    #[serde(default)]
    pub limits: ResourceList,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

impl Resources {
    /// The effective CPU request in millicores: the request, else the limit
    /// (as Kubernetes defaults a missing request to the limit), else 0.
    pub fn cpu_request_millis(&self) -> u64 {
        q_or(&self.requests.cpu, &self.limits.cpu, Quantity::cpu_millis)
    }
    pub fn cpu_limit_millis(&self) -> Option<u64> {
        self.limits.cpu.as_ref().and_then(Quantity::cpu_millis)
    }
    pub fn memory_request_bytes(&self) -> u64 {
        q_or(&self.requests.memory, &self.limits.memory, Quantity::bytes)
    }
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        self.limits.memory.as_ref().and_then(Quantity::bytes)
    }
}

fn q_or(a: &Option<Quantity>, b: &Option<Quantity>, f: fn(&Quantity) -> Option<u64>) -> u64 {
    a.as_ref().or(b.as_ref()).and_then(f).unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A liveness or readiness probe: exactly one of `exec`, `httpGet`,
/// `tcpSocket`. Missing timings take Kubernetes' defaults (see the methods).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
}

impl Probe {
    pub fn initial_delay(&self) -> u32 {
        self.initial_delay_seconds.unwrap_or(0)
    }
    pub fn period(&self) -> u32 {
        self.period_seconds.unwrap_or(10)
    }
    pub fn timeout(&self) -> u32 {
        self.timeout_seconds.unwrap_or(1)
    }
    pub fn failures(&self) -> u32 {
        self.failure_threshold.unwrap_or(3)
    }
    pub fn successes(&self) -> u32 {
        self.success_threshold.unwrap_or(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecAction {
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpGetAction {
    #[serde(default = "slash")]
    pub path: String,
    pub port: PortRef,
    /// `HTTP` (default) or `HTTPS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

fn slash() -> String {
    "/".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSocketAction {
    pub port: PortRef,
}

/// A probe's port: a number or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMap {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// A Secret: `data` holds base64 values, `stringData` plain ones (which win
/// on a key in both, as in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Secret {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    /// `Opaque` only.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

impl Secret {
    /// The decoded values (checked when the manifest was read).
    pub fn values(&self) -> Result<BTreeMap<String, Vec<u8>>, Error> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.data {
            out.insert(k.clone(), super::base64::decode(v.as_bytes())?);
        }
        for (k, v) in &self.string_data {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        Ok(out)
    }

    pub fn has_key(&self, key: &str) -> bool {
        self.data.contains_key(key) || self.string_data.contains_key(key)
    }
}

/// A DNS-1123 label: 1 to 63 of `a-z`, `0-9`, `-`, beginning and ending
/// alphanumeric. Object, container and volume names must be one.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Reads every document of a multi-document YAML text. Empty documents are
/// skipped. Each document is checked alone (kinds, versions, names, fields,
/// values); cross-object references are checked by [`check_references`].
pub fn parse_documents(yaml: &str) -> Result<Vec<Object>, Error> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let number = i + 1;
        let with_doc = |e: Error, object: Option<String>| e.in_document(number, object);
        let value = serde_norway::Value::deserialize(doc)
            .map_err(|e| with_doc(Error::manifest(format!("invalid YAML: {e}")), None))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str());
        let label = name.map(|n| format!("{kind} {n}"));
        let object = match kind.as_str() {
            "Deployment" => typed(value).map(Object::Deployment),
            "DaemonSet" => typed(value).map(Object::DaemonSet),
            "Pod" => typed(value).map(Object::Pod),
            "ConfigMap" => typed(value).map(Object::ConfigMap),
            "Secret" => typed(value).map(Object::Secret),
            "" => Err(Error::manifest("missing kind").at("kind")),
            other => Err(Error::manifest(format!(
                "unsupported kind {other:?} (supported: Deployment, DaemonSet, Pod, ConfigMap, Secret)"
            ))
            .at("kind")),
        };
        let object = object
            .and_then(|o| check_object(&o).map(|()| o))
            .map_err(|e| with_doc(e, label))?;
        out.push(object);
    }
    Ok(out)
}

fn typed<T: DeserializeOwned>(value: serde_norway::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = match inner.strip_prefix("unknown field ") {
            Some(rest) => format!("unknown field {rest} (not supported by Roost)"),
            None => inner,
        };
        let err = Error::manifest(message);
        if path == "." { err } else { err.at(path) }
    })
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Error {
    Error::manifest(message).at(path)
}

/// Checks one object alone.
fn check_object(o: &Object) -> Result<(), Error> {
    let (api, kind) = match o {
        Object::Deployment(d) => (&d.api_version, "apps/v1"),
        Object::DaemonSet(d) => (&d.api_version, "apps/v1"),
        Object::Pod(p) => (&p.api_version, "v1"),
        Object::ConfigMap(c) => (&c.api_version, "v1"),
        Object::Secret(s) => (&s.api_version, "v1"),
    };
    if api != kind {
        return Err(invalid(
            "apiVersion",
            format!("{} must have apiVersion {kind}, not {api:?}", o.kind()),
        ));
    }
    let meta = o.metadata();
    if !is_dns_label(&meta.name) {
        return Err(invalid(
            "metadata.name",
            format!(
                "{:?} is not a valid name (1 to 63 lower-case letters, digits or '-')",
                meta.name
            ),
        ));
    }
    for (k, v) in &meta.labels {
        super::check_label(k, v).map_err(|m| invalid("metadata.labels", m.to_string()))?;
    }
    match o {
        Object::Deployment(d) => check_workload(&d.spec.selector, &d.spec.template)?,
        Object::DaemonSet(d) => check_workload(&d.spec.selector, &d.spec.template)?,
        Object::Secret(s) => {
            if let Some(t) = &s.secret_type
                && t != "Opaque"
            {
                return Err(invalid(
                    "type",
                    format!("secret type {t:?} is not supported (only Opaque)"),
                ));
            }
            for (k, v) in &s.data {
                super::base64::decode(v.as_bytes())
                    .map_err(|e| invalid(format!("data.{k}"), e.to_string()))?;
            }
        }
        _ => {}
    }
    if let Some((prefix, spec)) = o.pod_spec() {
        check_pod_spec(prefix, spec)?;
    }
    Ok(())
}

fn check_workload(selector: &LabelSelector, template: &PodTemplateSpec) -> Result<(), Error> {
    if selector.match_labels.is_empty() {
        return Err(invalid("spec.selector.matchLabels", "must not be empty"));
    }
    for (k, v) in &selector.match_labels {
        if template.metadata.labels.get(k) != Some(v) {
            return Err(invalid(
                "spec.selector.matchLabels",
                format!(
                    "selector {k}={v} does not match the template's labels (spec.template.metadata.labels)"
                ),
            ));
        }
    }
    for (k, v) in &template.metadata.labels {
        super::check_label(k, v)
            .map_err(|m| invalid("spec.template.metadata.labels", m.to_string()))?;
    }
    match template.spec.restart_policy {
        None | Some(RestartPolicy::Always) => Ok(()),
        Some(p) => Err(invalid(
            "spec.template.spec.restartPolicy",
            format!("{p:?} is not allowed in a workload; only Always"),
        )),
    }
}

fn check_pod_spec(prefix: &str, spec: &PodSpec) -> Result<(), Error> {
    if spec.containers.is_empty() {
        return Err(invalid(
            format!("{prefix}.containers"),
            "at least one container is required",
        ));
    }
    for (k, v) in &spec.node_selector {
        super::check_label(k, v)
            .map_err(|m| invalid(format!("{prefix}.nodeSelector"), m.to_string()))?;
    }
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let p = format!("{prefix}.volumes[{i}]");
        if !is_dns_label(&v.name) {
            return Err(invalid(
                format!("{p}.name"),
                format!("{:?} is not a valid volume name", v.name),
            ));
        }
        if !volumes.insert(v.name.as_str()) {
            return Err(invalid(
                format!("{p}.name"),
                format!("duplicate volume name {:?}", v.name),
            ));
        }
        let sources = [
            v.host_path.is_some(),
            v.empty_dir.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(invalid(
                p,
                "exactly one of hostPath, emptyDir, configMap, secret is required",
            ));
        }
        if let Some(h) = &v.host_path {
            if !h.path.starts_with('/') {
                return Err(invalid(
                    format!("{p}.hostPath.path"),
                    "must be an absolute path",
                ));
            }
            if let Some(t) = &h.kind
                && !["", "Directory", "DirectoryOrCreate", "File", "FileOrCreate"]
                    .contains(&t.as_str())
            {
                return Err(invalid(
                    format!("{p}.hostPath.type"),
                    format!("{t:?} is not supported"),
                ));
            }
        }
        if let Some(e) = &v.empty_dir
            && let Some(m) = &e.medium
            && !["", "Memory"].contains(&m.as_str())
        {
            return Err(invalid(
                format!("{p}.emptyDir.medium"),
                format!("{m:?} is not supported"),
            ));
        }
        let items = v
            .config_map
            .as_ref()
            .map(|c| (&c.items, "configMap"))
            .or(v.secret.as_ref().map(|s| (&s.items, "secret")));
        if let Some((items, what)) = items {
            for (j, item) in items.iter().enumerate() {
                if !relative_path_ok(&item.path) {
                    return Err(invalid(
                        format!("{p}.{what}.items[{j}].path"),
                        format!("{:?} must be a relative path without '..'", item.path),
                    ));
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = format!("{prefix}.containers[{i}]");
        if !is_dns_label(&c.name) {
            return Err(invalid(
                format!("{p}.name"),
                format!("{:?} is not a valid container name", c.name),
            ));
        }
        if !names.insert(c.name.as_str()) {
            return Err(invalid(
                format!("{p}.name"),
                format!("duplicate container name {:?}", c.name),
            ));
        }
        if c.image.trim().is_empty() {
            return Err(invalid(format!("{p}.image"), "must not be empty"));
        }
        for (j, e) in c.env.iter().enumerate() {
            if e.name.is_empty() || e.name.contains('=') || e.name.contains('\0') {
                return Err(invalid(
                    format!("{p}.env[{j}].name"),
                    format!("{:?} is not a valid name", e.name),
                ));
            }
            if let Some(from) = &e.value_from {
                if e.value.is_some() {
                    return Err(invalid(
                        format!("{p}.env[{j}]"),
                        "value and valueFrom are exclusive",
                    ));
                }
                if from.config_map_key_ref.is_some() == from.secret_key_ref.is_some() {
                    return Err(invalid(
                        format!("{p}.env[{j}].valueFrom"),
                        "exactly one of configMapKeyRef, secretKeyRef is required",
                    ));
                }
            }
        }
        let mut port_names = BTreeSet::new();
        for (j, port) in c.ports.iter().enumerate() {
            if port.container_port == 0 {
                return Err(invalid(
                    format!("{p}.ports[{j}].containerPort"),
                    "must be 1 to 65535",
                ));
            }
            if let Some(h) = port.host_port {
                if spec.host_network && h != port.container_port {
                    return Err(invalid(
                        format!("{p}.ports[{j}].hostPort"),
                        "must equal containerPort with hostNetwork",
                    ));
                }
                if h == 0 {
                    return Err(invalid(
                        format!("{p}.ports[{j}].hostPort"),
                        "must be 1 to 65535",
                    ));
                }
                if !host_ports.insert((h, port.protocol as u8)) {
                    return Err(invalid(
                        format!("{p}.ports[{j}].hostPort"),
                        format!("duplicate host port {h}"),
                    ));
                }
            }
            if let Some(n) = &port.name
                && !port_names.insert(n.as_str())
            {
                return Err(invalid(
                    format!("{p}.ports[{j}].name"),
                    format!("duplicate port name {n:?}"),
                ));
            }
        }
        let r = &c.resources;
        if let (Some(req), Some(lim)) = (&r.requests.cpu, r.cpu_limit_millis())
            && req.cpu_millis().unwrap_or(0) > lim
        {
            return Err(invalid(
                format!("{p}.resources.requests.cpu"),
                "must not be more than limits.cpu",
            ));
        }
        if let (Some(req), Some(lim)) = (&r.requests.memory, r.memory_limit_bytes())
            && req.bytes().unwrap_or(0) > lim
        {
            return Err(invalid(
                format!("{p}.resources.requests.memory"),
                "must not be more than limits.memory",
            ));
        }
        let mut paths = BTreeSet::new();
        for (j, m) in c.volume_mounts.iter().enumerate() {
            if !volumes.contains(m.name.as_str()) {
                return Err(invalid(
                    format!("{p}.volumeMounts[{j}].name"),
                    format!("no volume named {:?} in {prefix}.volumes", m.name),
                ));
            }
            if !m.mount_path.starts_with('/') || m.mount_path.split('/').any(|s| s == "..") {
                return Err(invalid(
                    format!("{p}.volumeMounts[{j}].mountPath"),
                    format!("{:?} must be an absolute path without '..'", m.mount_path),
                ));
            }
            if !paths.insert(m.mount_path.as_str()) {
                return Err(invalid(
                    format!("{p}.volumeMounts[{j}].mountPath"),
                    format!("duplicate mount path {:?}", m.mount_path),
                ));
            }
        }
        for (probe, what) in [
            (&c.liveness_probe, "livenessProbe"),
            (&c.readiness_probe, "readinessProbe"),
        ] {
            let Some(probe) = probe else { continue };
            let pp = format!("{p}.{what}");
            let n = [
                probe.exec.is_some(),
                probe.http_get.is_some(),
                probe.tcp_socket.is_some(),
            ]
            .iter()
            .filter(|s| **s)
            .count();
            if n != 1 {
                return Err(invalid(
                    pp,
                    "exactly one of exec, httpGet, tcpSocket is required",
                ));
            }
            if let Some(e) = &probe.exec
                && e.command.is_empty()
            {
                return Err(invalid(format!("{pp}.exec.command"), "must not be empty"));
            }
            let port = probe
                .http_get
                .as_ref()
                .map(|h| (&h.port, "httpGet"))
                .or(probe.tcp_socket.as_ref().map(|t| (&t.port, "tcpSocket")));
            if let Some((port, action)) = port {
                match port {
                    PortRef::Number(0) => {
                        return Err(invalid(format!("{pp}.{action}.port"), "must be 1 to 65535"));
                    }
                    PortRef::Name(n) if !port_names.contains(n.as_str()) => {
                        return Err(invalid(
                            format!("{pp}.{action}.port"),
                            format!("no container port named {n:?}"),
                        ));
                    }
                    _ => {}
                }
            }
            if let Some(h) = &probe.http_get
                && let Some(s) = &h.scheme
                && s != "HTTP"
                && s != "HTTPS"
            {
                return Err(invalid(
                    format!("{pp}.httpGet.scheme"),
                    format!("{s:?} is not HTTP or HTTPS"),
                ));
            }
            for (v, field) in [
                (probe.period_seconds, "periodSeconds"),
                (probe.timeout_seconds, "timeoutSeconds"),
                (probe.failure_threshold, "failureThreshold"),
                (probe.success_threshold, "successThreshold"),
            ] {
                if v == Some(0) {
                    return Err(invalid(format!("{pp}.{field}"), "must be at least 1"));
                }
            }
            if what == "livenessProbe" && probe.successes() != 1 {
                return Err(invalid(
                    format!("{pp}.successThreshold"),
                    "must be 1 for a liveness probe",
                ));
            }
        }
    }
    Ok(())
}

fn relative_path_ok(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && p.split('/').all(|s| !s.is_empty() && s != "..")
}

/// Checks a whole package: one name per kind (and one per workload across
/// Deployments, DaemonSets and Pods, as replicas are named after it), and
/// every ConfigMap or Secret a workload uses (env, volumes, keys) present in
/// the package unless marked `optional`.
pub fn check_references<'a>(
    objects: impl IntoIterator<Item = (&'a Source, &'a Object)>,
) -> Result<(), Error> {
    let objects: Vec<(&Source, &Object)> = objects.into_iter().collect();
    let mut config_maps = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut workloads = BTreeMap::new();
    for (src, o) in &objects {
        let (map, class) = match o {
            Object::ConfigMap(_) => (&mut config_maps, "ConfigMap"),
            Object::Secret(_) => (&mut secrets, "Secret"),
            _ => (&mut workloads, "workload"),
        };
        if let Some((first, _)) = map.insert(o.name(), (*src, *o)) {
            return Err(invalid(
                "metadata.name",
                format!(
                    "duplicate {class} name {:?} (also in {} document {})",
                    o.name(),
                    first.file,
                    first.document
                ),
            )
            .located(&src.file, src.document, o.describe()));
        }
    }
    for (src, o) in &objects {
        let Some((prefix, spec)) = o.pod_spec() else {
            continue;
        };
        let cm = |name: &str| match config_maps.get(name) {
            Some((_, Object::ConfigMap(c))) => Some(c),
            _ => None,
        };
        let sec = |name: &str| match secrets.get(name) {
            Some((_, Object::Secret(s))) => Some(s),
            _ => None,
        };
        let missing = |path: String, what: &str, name: &str| {
            invalid(path, format!("{what} {name:?} is not in the package")).located(
                &src.file,
                src.document,
                o.describe(),
            )
        };
        for (i, v) in spec.volumes.iter().enumerate() {
            let p = format!("{prefix}.volumes[{i}]");
            if let Some(c) = &v.config_map {
                match cm(&c.name) {
                    None if !c.optional => {
                        return Err(missing(format!("{p}.configMap.name"), "ConfigMap", &c.name));
                    }
                    Some(map) => {
                        for (j, item) in c.items.iter().enumerate() {
                            if !map.data.contains_key(&item.key) && !c.optional {
                                return Err(invalid(
                                    format!("{p}.configMap.items[{j}].key"),
                                    format!("ConfigMap {:?} has no key {:?}", c.name, item.key),
                                )
                                .located(
                                    &src.file,
                                    src.document,
                                    o.describe(),
                                ));
                            }
                        }
                    }
                    None => {}
                }
            }
            if let Some(s) = &v.secret {
                match sec(&s.secret_name) {
                    None if !s.optional => {
                        return Err(missing(
                            format!("{p}.secret.secretName"),
                            "Secret",
                            &s.secret_name,
                        ));
                    }
                    Some(secret) => {
                        for (j, item) in s.items.iter().enumerate() {
                            if !secret.has_key(&item.key) && !s.optional {
                                return Err(invalid(
                                    format!("{p}.secret.items[{j}].key"),
                                    format!("Secret {:?} has no key {:?}", s.secret_name, item.key),
                                )
                                .located(
                                    &src.file,
                                    src.document,
                                    o.describe(),
                                ));
                            }
                        }
                    }
                    None => {}
                }
            }
        }
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, e) in c.env.iter().enumerate() {
                let Some(from) = &e.value_from else { continue };
                let p = format!("{prefix}.containers[{i}].env[{j}].valueFrom");
                if let Some(r) = &from.config_map_key_ref {
                    let p = format!("{p}.configMapKeyRef");
                    match cm(&r.name) {
                        None if !r.optional => return Err(missing(p, "ConfigMap", &r.name)),
                        Some(map) if !r.optional && !map.data.contains_key(&r.key) => {
                            return Err(invalid(
                                p,
                                format!("ConfigMap {:?} has no key {:?}", r.name, r.key),
                            )
                            .located(
                                &src.file,
                                src.document,
                                o.describe(),
                            ));
                        }
                        _ => {}
                    }
                }
                if let Some(r) = &from.secret_key_ref {
                    let p = format!("{p}.secretKeyRef");
                    match sec(&r.name) {
                        None if !r.optional => return Err(missing(p, "Secret", &r.name)),
                        Some(s) if !r.optional && !s.has_key(&r.key) => {
                            return Err(invalid(
                                p,
                                format!("Secret {:?} has no key {:?}", r.name, r.key),
                            )
                            .located(
                                &src.file,
                                src.document,
                                o.describe(),
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

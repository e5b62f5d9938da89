//! USM (`software`) on the wire: release items, the reply envelope and the
//! upload reply, with the keys the stock `software` client reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A release as `software list` and `software show` read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseView {
    pub release_id: String,
    pub state: String,
    /// `MM.mm.pp`.
    pub sw_version: String,
    pub component: Option<String>,
    /// `REL`.
    pub status: String,
    pub unremovable: bool,
    pub summary: String,
    pub description: String,
    pub install_instructions: String,
    pub warnings: String,
    pub reboot_required: bool,
    pub prepatched_iso: bool,
    pub requires: Vec<String>,
    /// Payload files: name, size and SHA-256 (Roost's own key).
    pub payload: Vec<PayloadView>,
    /// The id of the key that signed it (Roost's own key).
    pub signed_by: String,
    pub uploaded_at: String,
}

/// One payload file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadView {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// USM's reply to an action: the client prints `error`, else `warning`,
/// else `info`; a non-empty `error` is a failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub info: String,
    pub warning: String,
    pub error: String,
}

impl Envelope {
    pub fn info(s: impl Into<String>) -> Envelope {
        Envelope {
            info: s.into(),
            ..Envelope::default()
        }
    }

    pub fn error(s: impl Into<String>) -> Envelope {
        Envelope {
            error: s.into(),
            ..Envelope::default()
        }
    }
}

/// What an upload says of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    pub id: String,
    pub sw_release: String,
    pub is_product_release: bool,
}

/// The reply to `POST /v1/release`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReply {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// One map per uploaded file: its base name to what it held.
    pub upload_info: Vec<BTreeMap<String, UploadInfo>>,
}

/// The body of `deploy precheck` and `deploy start`, as the stock client
/// sends it: `force` is the string "true" (any value counts), `options` are
/// `k=v` strings. Unknown keys are ignored, as USM's handler ignores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    #[serde(default)]
    pub releases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<serde_json::Value>,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
}

impl DeployRequest {
    /// Whether the request is forced (any `force` but JSON false or "false").
    pub fn forced(&self) -> bool {
        match &self.force {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => !s.eq_ignore_ascii_case("false"),
            Some(_) => true,
        }
    }
}

/// The reply to `deploy precheck` and `deploy start`: the envelope and
/// whether the cloud is healthy enough to deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecheckReply {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub system_healthy: bool,
}

/// The deploy in progress, as `software deploy show` reads it (one item of
/// a bare array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployView {
    /// `MM.mm.pp` the hosts ran before (swapped with `to_release` by abort).
    pub from_release: String,
    pub to_release: String,
    /// The release ids (Roost's own keys).
    pub from_release_id: String,
    pub to_release_id: String,
    pub reboot_required: bool,
    pub pre_upgrade_deploy: bool,
    pub state: String,
    pub feed_repo: Option<String>,
    pub commit_id: Option<String>,
    pub options: BTreeMap<String, String>,
    pub major_release: bool,
    pub prepatched_iso: bool,
    pub started_at: String,
}

/// The deploy in progress and its hosts together (`roost deploy show -o
/// json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployStatus {
    /// At most one.
    pub deploy: Vec<DeployView>,
    pub hosts: Vec<DeployHostView>,
}

/// A host in the deploy, as `software deploy host-list` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployHostView {
    pub hostname: String,
    /// `MM.mm.pp` the host runs.
    pub software_release: String,
    pub target_release: Option<String>,
    pub reboot_required: Option<bool>,
    pub pre_upgrade_deploy: bool,
    pub host_state: Option<String>,
    /// What the host's last attempt ended with (Roost's own key).
    pub message: String,
}

/// How messages name release `id`: the id, or "the installed software"
/// for the empty id (what a host runs before any deploy).
pub fn release_name(id: &str) -> &str {
    if id.is_empty() {
        "the installed software"
    } else {
        id
    }
}

/// A release an agent is asked to run (in a report's reply): what to
/// fetch, stage and switch to, and the attempt its outcome must name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwareOrder {
    /// Empty: the software the host was installed with.
    pub release_id: String,
    pub attempt: u64,
    pub rollback: bool,
    /// The host reboots onto the release (it is locked).
    #[serde(default)]
    pub reboot_required: bool,
    /// The payload files, fetched by digest
    /// (`GET /v1/agent/software/blobs/{sha256}`).
    pub payload: Vec<PayloadView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_install: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
}

/// What an agent runs and how its last attempt ended (in a report).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwareStatus {
    /// The release the host runs; empty for the installed software.
    pub release_id: String,
    /// The version of the running `roost` binary.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<SoftwareOutcome>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftwareOutcome {
    pub attempt: u64,
    pub release_id: String,
    pub ok: bool,
    pub message: String,
}

/// `POST /v1/deploy/strategy`: a site strategy for a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    pub release_id: String,
    /// `serial` (default) or `parallel`, for the hosts other than controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_apply_type: Option<String>,
    /// With `parallel`: the most hosts deployed at once (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_workers: Option<u32>,
    /// `strict` (default: any alarm stops the start) or `relaxed` (only
    /// management-affecting ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_restriction: Option<String>,
}

/// `POST /v1/deploy/strategy/actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyAction {
    /// `apply` or `abort`.
    pub action: String,
}

/// A site strategy and its stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyView {
    pub release_id: String,
    /// `initial`, `applying`, `applied`, `failed` or `aborted`.
    pub state: String,
    pub worker_apply_type: String,
    pub max_parallel_workers: u32,
    pub alarm_restriction: String,
    /// Why it failed or was aborted.
    pub reason: String,
    pub created_at: String,
    /// Stages done, of all.
    pub stages_done: usize,
    pub stages: Vec<StageView>,
}

/// One stage of a site strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageView {
    /// `deploy-start`, `deploy-hosts worker-1 worker-2`, `deploy-activate`,
    /// `deploy-complete`.
    pub name: String,
    pub hosts: Vec<String>,
    /// `initial`, `in-progress`, `done`, `failed` or `aborted`.
    pub state: String,
    pub reason: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

//! dcmanager's orchestration in its shapes: strategy-config
//! (`/v1.0/sw-update-options`), the `sw-deploy` strategy
//! (`/v1.0/sw-update-strategy`) and its steps
//! (`/v1.0/sw-update-strategy/steps`). Keys are hyphenated where
//! StarlingX's are; Roost's own additions are keys the stock client does
//! not read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The name of the default options in lists.
pub const DEFAULT_OPTIONS_NAME: &str = "all clouds default";

/// One item of `sw-update-options`: the defaults (`all clouds default`) or
/// one subcloud's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwUpdateOptions {
    #[serde(default)]
    pub id: Option<i64>,
    pub name: String,
    #[serde(rename = "subcloud-id", default)]
    pub subcloud_id: Option<i64>,
    #[serde(rename = "storage-apply-type")]
    pub storage_apply_type: String,
    #[serde(rename = "worker-apply-type")]
    pub worker_apply_type: String,
    #[serde(rename = "max-parallel-workers")]
    pub max_parallel_workers: u32,
    #[serde(rename = "alarm-restriction-type")]
    pub alarm_restriction_type: String,
    #[serde(rename = "default-instance-action")]
    pub default_instance_action: String,
    #[serde(rename = "created-at")]
    pub created_at: Option<String>,
    #[serde(rename = "updated-at")]
    pub updated_at: Option<String>,
}

/// `GET /v1.0/sw-update-options`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwUpdateOptionsList {
    #[serde(rename = "sw-update-options")]
    pub sw_update_options: Vec<SwUpdateOptions>,
}

/// `POST /v1.0/sw-update-options/{cloud}`: all five options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwUpdateOptionsWrite {
    #[serde(rename = "storage-apply-type")]
    pub storage_apply_type: String,
    #[serde(rename = "worker-apply-type")]
    pub worker_apply_type: String,
    /// An integer (a numeric string is accepted too).
    #[serde(rename = "max-parallel-workers")]
    pub max_parallel_workers: Value,
    #[serde(rename = "alarm-restriction-type")]
    pub alarm_restriction_type: String,
    #[serde(rename = "default-instance-action")]
    pub default_instance_action: String,
}

/// `POST /v1.0/sw-update-strategy`, as `dcmanager sw-deploy-strategy create`
/// sends it (booleans as JSON or as strings, `stop-on-failure` as a
/// string), plus Roost's rollout safety options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwUpdateStrategyCreate {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub strategy_type: Option<String>,
    #[serde(
        rename = "subcloud-apply-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subcloud_apply_type: Option<String>,
    #[serde(
        rename = "max-parallel-subclouds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_parallel_subclouds: Option<Value>,
    #[serde(
        rename = "stop-on-failure",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_on_failure: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcloud_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_delete: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_only: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_prestage: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysadmin_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_upgrade: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<Value>,
    /// Roost: the first N subclouds form a canary stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Value>,
    /// Roost: the subclouds of this group form the canary stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_group: Option<String>,
    /// Roost: after the canary stage, wait for `apply` again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
    /// Roost: seconds each updated subcloud must stay online and free of
    /// management-affecting alarms before it counts as updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_secs: Option<Value>,
    /// Roost: roll failed subclouds back to the release they ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<Value>,
    /// Roost: how long offline subclouds are waited for, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defer_secs: Option<Value>,
}

/// `POST /v1.0/sw-update-strategy/actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyAction {
    pub action: String,
}

/// A count of steps in one state, for progress displays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateCount {
    pub state: String,
    pub count: usize,
}

/// One stage of a rollout (Roost's addition to the strategy object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStage {
    pub stage: usize,
    pub name: String,
    #[serde(rename = "max-parallel")]
    pub max_parallel: u32,
    pub subclouds: usize,
    pub states: Vec<StateCount>,
}

/// The strategy object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwUpdateStrategy {
    pub id: i64,
    #[serde(rename = "type")]
    pub strategy_type: String,
    #[serde(rename = "subcloud-apply-type")]
    pub subcloud_apply_type: Option<String>,
    #[serde(rename = "max-parallel-subclouds")]
    pub max_parallel_subclouds: Option<u32>,
    #[serde(rename = "stop-on-failure")]
    pub stop_on_failure: bool,
    pub state: String,
    #[serde(rename = "created-at")]
    pub created_at: String,
    #[serde(rename = "updated-at")]
    pub updated_at: Option<String>,
    #[serde(rename = "extra-args")]
    pub extra_args: serde_json::Map<String, Value>,
    /// Roost: why the strategy failed or was aborted.
    #[serde(default)]
    pub reason: String,
    /// Roost: the stages and how far each got.
    #[serde(default)]
    pub stages: Vec<RolloutStage>,
}

/// One strategy step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyStep {
    pub id: i64,
    pub cloud: String,
    pub stage: usize,
    pub state: String,
    pub details: String,
    #[serde(rename = "started-at")]
    pub started_at: Option<String>,
    #[serde(rename = "finished-at")]
    pub finished_at: Option<String>,
    #[serde(rename = "created-at")]
    pub created_at: String,
    #[serde(rename = "updated-at")]
    pub updated_at: Option<String>,
}

/// `GET /v1.0/sw-update-strategy/steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyStepList {
    #[serde(rename = "strategy-steps")]
    pub strategy_steps: Vec<StrategyStep>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stock_clients_create_body_reads() {
        let body = r#"{"subcloud-apply-type":"serial","max-parallel-subclouds":10,"stop-on-failure":"true","cloud_name":"edge-1","release_id":"stx-26.03.1","sysadmin_password":"cHc=","snapshot":true,"rollback":false,"delete":true,"cleanup":false,"with_prestage":true,"kube_upgrade":"v1.32.2","type":"sw-deploy"}"#;
        let c: SwUpdateStrategyCreate = serde_json::from_str(body).unwrap();
        assert_eq!(c.strategy_type.as_deref(), Some("sw-deploy"));
        assert_eq!(c.stop_on_failure, Some(Value::String("true".into())));
        assert_eq!(c.cloud_name.as_deref(), Some("edge-1"));
        let w: SwUpdateOptionsWrite = serde_json::from_str(
            r#"{"storage-apply-type": "parallel", "worker-apply-type": "serial", "max-parallel-workers": 5, "alarm-restriction-type": "strict", "default-instance-action": "stop-start"}"#,
        )
        .unwrap();
        assert_eq!(w.worker_apply_type, "serial");
    }
}

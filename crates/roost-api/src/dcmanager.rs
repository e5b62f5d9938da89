//! Distributed Cloud JSON in dcmanager's shapes (`/v1.0/subclouds`,
//! `/v1.0/subcloud-groups`, `/v1.0/alarms`), and the HTML error pages
//! StarlingX's `dcmanager` client parses.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;

/// What the system controller knows of a subcloud, for rendering.
#[derive(Debug, Clone, Default)]
pub struct SubcloudView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub software_version: Option<String>,
    pub management_state: String,
    pub availability_status: String,
    pub deploy_status: String,
    pub error_description: String,
    pub group_id: i64,
    pub region_name: String,
    /// `in-sync`, `out-of-sync` or `unknown`.
    pub sync_status: String,
    /// (endpoint_type, sync_status).
    pub endpoint_sync_status: Vec<(String, String)>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

/// dcmanager's timestamp form: `2021-10-04 15:04:13.045076`.
pub fn dc_time(t: roost_types::Timestamp) -> String {
    t.to_string().replacen('T', " ", 1)
}

/// The bare subcloud object: the 16 keys every `dcmanager subcloud` command
/// needs, and the status keys it shows. `with_sync` adds
/// `endpoint_sync_status` (left out of group member lists, where the client
/// cannot print it).
pub fn subcloud_json(s: &SubcloudView, with_sync: bool) -> Value {
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "location": s.location,
        "software-version": s.software_version,
        "management-state": s.management_state,
        "availability-status": s.availability_status,
        "deploy-status": s.deploy_status,
        "backup-status": null,
        "backup-datetime": null,
        "prestage-status": null,
        "prestage-versions": null,
        "error-description": s.error_description,
        "region-name": s.region_name,
        "openstack-installed": false,
        "management-subnet": null,
        "management-start-ip": null,
        "management-end-ip": null,
        "management-gateway-ip": null,
        "systemcontroller-gateway-ip": null,
        "group_id": s.group_id,
        "peer_group_id": null,
        "rehome_data": null,
        "data_install": null,
        "data_upgrade": null,
        "created-at": s.created_at,
        "updated-at": s.updated_at,
        "sync_status": s.sync_status,
    });
    if with_sync {
        v["endpoint_sync_status"] = Value::Array(
            s.endpoint_sync_status
                .iter()
                .map(|(e, st)| json!({"endpoint_type": e, "sync_status": st}))
                .collect(),
        );
    }
    v
}

/// `GET /v1.0/subclouds/{x}/detail`: the object plus the keys `subcloud show
/// --detail` reads.
pub fn subcloud_detail_json(s: &SubcloudView) -> Value {
    let mut v = subcloud_json(s, true);
    v["oam_floating_ip"] = json!("unavailable");
    v["deploy_config_sync_status"] = json!("unknown");
    v["region_name"] = json!(s.region_name);
    v
}

/// A subcloud group.
#[derive(Debug, Clone, Default)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub update_apply_type: String,
    pub max_parallel_subclouds: u32,
    pub created_at: String,
    pub updated_at: Option<String>,
}

/// The 7 keys `dcmanager subcloud-group` reads.
pub fn group_json(g: &GroupView) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "update_apply_type": g.update_apply_type,
        "max_parallel_subclouds": g.max_parallel_subclouds,
        "created-at": g.created_at,
        "updated-at": g.updated_at,
    })
}

/// One row of `GET /v1.0/alarms`. Counts are -1 for a subcloud that cannot
/// be reached (status `disabled`), as StarlingX sends them.
pub fn alarm_summary_row(
    region_name: &str,
    counts: Option<(usize, usize, usize, usize)>,
    cloud_status: &str,
) -> Value {
    let (c, m, n, w) = match counts {
        Some((c, m, n, w)) => (c as i64, m as i64, n as i64, w as i64),
        None => (-1, -1, -1, -1),
    };
    json!({
        "region_name": region_name,
        "critical_alarms": c,
        "major_alarms": m,
        "minor_alarms": n,
        "warnings": w,
        "cloud_status": cloud_status,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A webob-style HTML error page: title, explanation, detail. StarlingX's
/// `dcmanager` client prints "<explanation>.\nDetails: <detail>".
pub fn html_error(code: u16, detail: &str) -> String {
    let (title, explanation) = match code {
        400 => (
            "400 Bad Request",
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        ),
        401 => (
            "401 Unauthorized",
            "This server could not verify that you are authorized to access the document you requested.",
        ),
        403 => ("403 Forbidden", "Access was denied to this resource."),
        404 => ("404 Not Found", "The resource could not be found."),
        405 => (
            "405 Method Not Allowed",
            "The method specified is not allowed for this resource.",
        ),
        409 => (
            "409 Conflict",
            "There was a conflict when trying to complete your request.",
        ),
        413 => (
            "413 Request Entity Too Large",
            "The body of your request was too large for this server.",
        ),
        422 => (
            "422 Unprocessable Entity",
            "Unable to process the contained instructions",
        ),
        415 => (
            "415 Unsupported Media Type",
            "The request media type is not supported by this server.",
        ),
        _ => (
            "500 Internal Server Error",
            "The server has either erred or is incapable of performing the requested operation.",
        ),
    };
    format!(
        "<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  {explanation}<br /><br />\n{}\n </body>\n</html>",
        escape(detail)
    )
}

/// Longest subcloud description or location, in bytes (StarlingX's
/// dcmanager refuses longer ones too).
pub const MAX_SUBCLOUD_TEXT: usize = 255;

fn check_subcloud_texts(description: Option<&str>, location: Option<&str>) -> Result<(), Error> {
    for (what, v) in [("description", description), ("location", location)] {
        if v.is_some_and(|s| s.len() > MAX_SUBCLOUD_TEXT) {
            return Err(Error::Invalid(format!(
                "{what} is longer than {MAX_SUBCLOUD_TEXT} characters"
            )));
        }
    }
    Ok(())
}

/// `POST /v1.0/subclouds` as JSON (Roost's form; the multipart form of
/// StarlingX's client is read into the same struct).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubcloudCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Group id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `PATCH /v1.0/subclouds/{x}` as JSON (or multipart fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubcloudUpdate {
    #[serde(
        default,
        rename = "management-state",
        skip_serializing_if = "Option::is_none"
    )]
    pub management_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<Value>,
}

impl SubcloudCreate {
    /// The rules a new subcloud's fields must follow (the same as an update's).
    pub fn validate(&self) -> Result<(), Error> {
        check_subcloud_texts(self.description.as_deref(), self.location.as_deref())
    }
}

impl SubcloudUpdate {
    /// The rules an update's fields must follow (the same as a new subcloud's).
    pub fn validate(&self) -> Result<(), Error> {
        check_subcloud_texts(self.description.as_deref(), self.location.as_deref())
    }
}

/// `POST` and `PATCH /v1.0/subcloud-groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupWrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_apply_type: Option<String>,
    /// An integer or, from `subcloud-group add`, a numeric string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_subclouds: Option<Value>,
}

/// Reads `name: value` from a small YAML document such as StarlingX's
/// bootstrap values (only top-level scalar keys are needed here).
pub fn yaml_scalar(doc: &str, key: &str) -> Option<String> {
    doc.lines()
        .find_map(|l| {
            let l = l.trim_end();
            if l.starts_with(' ') || l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_update_share_the_text_limits() {
        let long = "d".repeat(MAX_SUBCLOUD_TEXT + 1);
        let ok = "d".repeat(MAX_SUBCLOUD_TEXT);
        let create = |d: &str| SubcloudCreate {
            description: Some(d.into()),
            ..Default::default()
        };
        let update = |l: &str| SubcloudUpdate {
            location: Some(l.into()),
            ..Default::default()
        };
        assert!(create(&ok).validate().is_ok());
        assert!(update(&ok).validate().is_ok());
        assert!(
            create(&long)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("description")
        );
        assert!(
            update(&long)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("location")
        );
    }

    #[test]
    fn every_subcloud_object_carries_the_sixteen_keys() {
        let v = subcloud_json(&SubcloudView::default(), true);
        for k in [
            "id",
            "name",
            "description",
            "location",
            "software-version",
            "management-state",
            "availability-status",
            "deploy-status",
            "management-subnet",
            "management-start-ip",
            "management-end-ip",
            "management-gateway-ip",
            "systemcontroller-gateway-ip",
            "created-at",
            "updated-at",
            "group_id",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["endpoint_sync_status"].is_array());
        assert!(
            subcloud_json(&SubcloudView::default(), false)
                .get("endpoint_sync_status")
                .is_none()
        );
        let d = subcloud_detail_json(&SubcloudView::default());
        for k in [
            "oam_floating_ip",
            "deploy_config_sync_status",
            "region_name",
        ] {
            assert!(d.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn error_pages_have_the_shape_the_client_parses() {
        let p = html_error(404, "Subcloud not found");
        assert!(p.contains("<title>404 Not Found</title>"));
        assert!(p.contains("The resource could not be found.<br /><br />\nSubcloud not found"));
        assert!(html_error(400, "<x>").contains("&lt;x&gt;"));
    }

    #[test]
    fn yaml_scalars_are_read_from_bootstrap_values() {
        let doc = "---\nname: \"edge-1\"\nsystem_mode: simplex\n  nested: no\n# name: other\n";
        assert_eq!(yaml_scalar(doc, "name").as_deref(), Some("edge-1"));
        assert_eq!(yaml_scalar(doc, "system_mode").as_deref(), Some("simplex"));
        assert_eq!(yaml_scalar(doc, "nested"), None);
    }

    #[test]
    fn unreachable_subclouds_count_minus_one() {
        let r = alarm_summary_row("s1", None, "disabled");
        assert_eq!(r["critical_alarms"], -1);
        let r = alarm_summary_row("s1", Some((1, 2, 3, 4)), "critical");
        assert_eq!(r["warnings"], 4);
    }
}

// ----- Roost's own: applications across the fleet ------------------------------

/// `POST /v1.0/subcloud-groups/{group}/apps`: assigns an application
/// uploaded on the system controller to a group.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupAppAssign {
    pub app: String,
}

/// `GET /v1.0/subcloud-groups/{group}/apps`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Default)]
pub struct GroupAppList {
    pub group: String,
    pub apps: Vec<crate::dcsync::DesiredApp>,
}

/// The state of one application on one subcloud, as the system controller
/// knows it: `applied`, `failed` (with the reason) or `pending`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SubcloudAppStatus {
    pub app: String,
    pub version: String,
    pub digest: String,
    pub state: String,
    #[serde(default)]
    pub reason: String,
}

/// `GET /v1.0/subclouds/{subcloud}/apps`: the applications a subcloud's
/// group is assigned and where each stands, the `apps` endpoint's sync
/// status, and what the subcloud fetched of packages from the system
/// controller (requests and bytes, since the system controller started).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Default)]
pub struct SubcloudApps {
    pub subcloud: String,
    pub sync_status: String,
    pub apps: Vec<SubcloudAppStatus>,
    pub package_requests: u64,
    pub package_bytes: u64,
}

/// `GET /v1.0/subcloud-apps`: every subcloud's.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Default)]
pub struct SubcloudAppsList {
    pub subclouds: Vec<SubcloudApps>,
}

//! The few Redfish bodies Roost sends and reads: the systems collection and
//! the `ComputerSystem.Reset` action. Used by the server's BMC client and by
//! the BMC simulator.

use serde::{Deserialize, Serialize};

/// A link to a resource (`{"@odata.id": "/redfish/v1/Systems/1"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

/// A Redfish collection (`/redfish/v1/Systems`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    #[serde(rename = "@odata.id", default)]
    pub odata_id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Members", default)]
    pub members: Vec<Link>,
    #[serde(rename = "Members@odata.count", default)]
    pub count: usize,
}

/// The body of `POST .../Actions/ComputerSystem.Reset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequest {
    #[serde(rename = "ResetType")]
    pub reset_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_reads_redfish_member_links() {
        let c: Collection = serde_json::from_str(
            r#"{"@odata.id":"/redfish/v1/Systems","Members":[{"@odata.id":"/redfish/v1/Systems/1"}],"Members@odata.count":1}"#,
        )
        .unwrap();
        assert_eq!(c.members[0].odata_id, "/redfish/v1/Systems/1");
        let r = serde_json::to_string(&ResetRequest {
            reset_type: "ForceOff".into(),
        })
        .unwrap();
        assert_eq!(r, r#"{"ResetType":"ForceOff"}"#);
    }
}

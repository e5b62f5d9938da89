//! The Redfish bodies Roost sends and reads: the service root, the systems
//! collection, a computer system, the `ComputerSystem.Reset` action, and
//! Redfish's messages and errors. The server's BMC client reads them and the
//! BMC simulator writes them.

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
    #[serde(rename = "@odata.type", default)]
    pub odata_type: String,
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

/// `/redfish/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRoot {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "RedfishVersion")]
    pub redfish_version: String,
    #[serde(rename = "Systems")]
    pub systems: Link,
}

/// A resource's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "Health")]
    pub health: String,
}

/// The reset action a computer system offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetAction {
    pub target: String,
    #[serde(rename = "ResetType@Redfish.AllowableValues")]
    pub allowed: Vec<String>,
}

/// The actions of a computer system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemActions {
    #[serde(rename = "#ComputerSystem.Reset")]
    pub reset: ResetAction,
}

/// `/redfish/v1/Systems/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerSystem {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "SystemType")]
    pub system_type: String,
    #[serde(rename = "PowerState")]
    pub power_state: String,
    #[serde(rename = "Status")]
    pub status: Status,
    #[serde(rename = "Actions")]
    pub actions: SystemActions,
}

/// A Redfish message (`Message.v1_0_0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Severity")]
    pub severity: String,
}

impl Message {
    pub fn new(id: &str, text: &str, severity: &str) -> Message {
        Message {
            odata_type: "#Message.v1_0_0.Message".into(),
            message_id: id.into(),
            message: text.into(),
            severity: severity.into(),
        }
    }
}

/// A body that carries only messages (an action's success answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    #[serde(rename = "@Message.ExtendedInfo")]
    pub extended_info: Vec<Message>,
}

/// The inside of a Redfish error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(rename = "@Message.ExtendedInfo")]
    pub extended_info: Vec<Message>,
}

/// A Redfish error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// An error whose one message repeats its code and text.
    pub fn new(code: &str, text: &str) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: text.into(),
                extended_info: vec![Message::new(code, text, "Warning")],
            },
        }
    }
}

/// The reset action's body as received: the type is checked by the caller,
/// so that a missing or unknown value gets Redfish's own error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResetBody {
    #[serde(rename = "ResetType")]
    pub reset_type: Option<serde_json::Value>,
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

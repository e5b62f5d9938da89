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

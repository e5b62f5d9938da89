//! Fault management JSON, as StarlingX's FM API shapes it.

use roost_fm::{Alarm, AlarmInput, Catalogue, Event, EventInput, EventState, Summary};
use roost_types::{Severity, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Error, flex_bool, py_bool};

/// Largest page the alarm and event listings return when a limit is given.
pub const MAX_PAGE: usize = 2000;

/// An alarm as listed or shown.
#[derive(Debug, Serialize)]
pub struct AlarmJson {
    pub uuid: String,
    pub alarm_id: String,
    pub entity_instance_id: String,
    pub severity: String,
    pub timestamp: String,
    pub reason_text: String,
    pub suppression_status: &'static str,
    pub mgmt_affecting: &'static str,
    pub degrade_affecting: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub expanded: Option<AlarmExpanded>,
}

/// The fields an expanded alarm adds.
#[derive(Debug, Serialize)]
pub struct AlarmExpanded {
    pub alarm_state: &'static str,
    pub entity_type_id: String,
    pub alarm_type: String,
    pub probable_cause: String,
    pub proposed_repair_action: String,
    pub service_affecting: bool,
    pub suppression: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

/// `"suppressed"` or `"unsuppressed"`.
pub fn suppression_status(suppressed: bool) -> &'static str {
    if suppressed {
        "suppressed"
    } else {
        "unsuppressed"
    }
}

impl AlarmJson {
    pub fn new(a: &Alarm, cat: &Catalogue, suppressed: bool, expand: bool) -> Self {
        AlarmJson {
            uuid: a.uuid.clone(),
            alarm_id: a.alarm_id.clone(),
            entity_instance_id: a.entity_instance_id.clone(),
            severity: a.severity.to_string(),
            timestamp: a.timestamp.to_string(),
            reason_text: a.reason_text.clone(),
            suppression_status: suppression_status(suppressed),
            mgmt_affecting: py_bool(cat.mgmt_affecting(&a.alarm_id, a.severity)),
            degrade_affecting: py_bool(cat.degrade_affecting(&a.alarm_id, a.severity)),
            expanded: expand.then(|| AlarmExpanded {
                alarm_state: "set",
                entity_type_id: a.entity_type_id.clone(),
                alarm_type: a.alarm_type.clone(),
                probable_cause: a.probable_cause.clone(),
                proposed_repair_action: a.proposed_repair_action.clone(),
                service_affecting: a.service_affecting,
                suppression: a.suppression,
                created_at: a.created_at.to_string(),
                updated_at: a.updated_at.map(|t| t.to_string()),
            }),
        }
    }
}

/// `GET /v1/alarms` body.
#[derive(Debug, Serialize)]
pub struct AlarmList {
    pub alarms: Vec<AlarmJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// An event log record as listed or shown.
#[derive(Debug, Serialize)]
pub struct EventJson {
    pub uuid: String,
    pub event_log_id: String,
    pub state: &'static str,
    pub entity_instance_id: String,
    pub severity: String,
    pub timestamp: String,
    pub reason_text: String,
    pub suppression_status: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub expanded: Option<EventExpanded>,
}

/// The fields an expanded event adds.
#[derive(Debug, Serialize)]
pub struct EventExpanded {
    pub entity_type_id: String,
    pub event_log_type: String,
    pub probable_cause: String,
    pub proposed_repair_action: String,
    pub service_affecting: bool,
    pub suppression: bool,
}

impl EventJson {
    pub fn new(e: &Event, suppressed: bool, expand: bool) -> Self {
        EventJson {
            uuid: e.uuid.clone(),
            event_log_id: e.event_log_id.clone(),
            state: e.state.as_str(),
            entity_instance_id: e.entity_instance_id.clone(),
            severity: e.severity.to_string(),
            timestamp: e.timestamp.to_string(),
            reason_text: e.reason_text.clone(),
            suppression_status: suppression_status(suppressed),
            expanded: expand.then(|| EventExpanded {
                entity_type_id: e.entity_type_id.clone(),
                event_log_type: e.event_log_type.clone(),
                probable_cause: e.probable_cause.clone(),
                proposed_repair_action: e.proposed_repair_action.clone(),
                service_affecting: e.service_affecting,
                suppression: e.suppression,
            }),
        }
    }
}

/// `GET /v1/event_log` body.
#[derive(Debug, Serialize)]
pub struct EventList {
    pub event_log: Vec<EventJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/alarms/summary` body.
#[derive(Debug, Serialize)]
pub struct SummaryJson {
    pub critical: usize,
    pub major: usize,
    pub minor: usize,
    pub warnings: usize,
    pub status: &'static str,
}

impl From<Summary> for SummaryJson {
    fn from(s: Summary) -> Self {
        SummaryJson {
            critical: s.critical,
            major: s.major,
            minor: s.minor,
            warnings: s.warnings,
            status: s.status(),
        }
    }
}

/// One row of `GET /v1/event_suppression`.
#[derive(Debug, Serialize)]
pub struct SuppressionJson {
    pub uuid: String,
    pub alarm_id: String,
    pub description: String,
    pub suppression_status: &'static str,
    pub links: Vec<crate::Link>,
}

/// `GET /v1/event_suppression` body.
#[derive(Debug, Serialize)]
pub struct SuppressionList {
    pub event_suppression: Vec<SuppressionJson>,
}

/// One JSON-patch operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOp {
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl PatchOp {
    /// `{"op": "replace", "path": path, "value": value}`.
    pub fn replace(path: &str, value: impl Into<serde_json::Value>) -> Self {
        PatchOp {
            op: "replace".into(),
            path: path.into(),
            value: Some(value.into()),
        }
    }
}

/// `POST /v1/alarms` body: set, clear, log or msg.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmPost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probable_cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_repair_action: Option<String>,
    #[serde(
        default,
        deserialize_with = "flex_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_affecting: Option<bool>,
    #[serde(
        default,
        deserialize_with = "flex_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub suppression: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Clear by uuid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    // Accepted for compatibility with bodies copied from a listing; derived
    // by the server, so ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression_status: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt_affecting: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degrade_affecting: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_alarms: Option<serde_json::Value>,
}

/// What a valid `POST /v1/alarms` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmRequest {
    Set(AlarmInput),
    ClearUuid(String),
    ClearPair {
        alarm_id: String,
        entity_instance_id: String,
    },
    ClearPrefix {
        entity_prefix: String,
    },
    Log(EventInput),
}

fn need(v: Option<String>, name: &str) -> Result<String, Error> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(Error::Invalid(format!("{name} is required"))),
    }
}

fn severity(v: Option<String>, default: Option<Severity>) -> Result<Severity, Error> {
    match (v, default) {
        (Some(s), _) => s
            .parse::<Severity>()
            .map_err(|e| Error::Invalid(e.to_string())),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(Error::Invalid("severity is required".into())),
    }
}

fn timestamp(v: Option<String>) -> Result<Option<Timestamp>, Error> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Timestamp>()
                .map_err(|e| Error::Invalid(e.to_string()))
        })
        .transpose()
}

/// Longest `reason_text`, `entity_instance_id`, `entity_type_id`,
/// `alarm_type` and `probable_cause` a posted alarm or event may carry, in
/// characters: the size of StarlingX's columns (and of its C API's
/// buffers).
pub const MAX_FIELD_CHARS: usize = 255;
/// Longest posted `proposed_repair_action`, in characters: StarlingX's own
/// catalogue has repair actions of up to about 350.
pub const MAX_REPAIR_ACTION_CHARS: usize = 1024;

impl AlarmPost {
    /// Refuses fields longer than StarlingX's columns, so that what one
    /// alarm may carry (and so a listing of every alarm) stays bounded.
    fn check_lengths(&self) -> Result<(), Error> {
        let fields = [
            ("reason_text", &self.reason_text, MAX_FIELD_CHARS),
            (
                "entity_instance_id",
                &self.entity_instance_id,
                MAX_FIELD_CHARS,
            ),
            ("entity_type_id", &self.entity_type_id, MAX_FIELD_CHARS),
            ("alarm_type", &self.alarm_type, MAX_FIELD_CHARS),
            ("probable_cause", &self.probable_cause, MAX_FIELD_CHARS),
            (
                "proposed_repair_action",
                &self.proposed_repair_action,
                MAX_REPAIR_ACTION_CHARS,
            ),
        ];
        for (name, value, max) in fields {
            if let Some(v) = value
                && v.chars().count() > max
            {
                return Err(Error::Invalid(format!(
                    "{name} has {} characters; at most {max} are allowed",
                    v.chars().count()
                )));
            }
        }
        Ok(())
    }

    /// Validates the body and says what it asks for.
    pub fn into_request(self) -> Result<AlarmRequest, Error> {
        self.check_lengths()?;
        let state = self.alarm_state.as_deref().unwrap_or("set");
        match state {
            "set" => Ok(AlarmRequest::Set(AlarmInput {
                alarm_id: need(self.alarm_id, "alarm_id")?,
                entity_instance_id: need(self.entity_instance_id, "entity_instance_id")?,
                entity_type_id: self.entity_type_id,
                severity: severity(self.severity, None)?,
                reason_text: self.reason_text,
                alarm_type: self.alarm_type,
                probable_cause: self.probable_cause,
                proposed_repair_action: self.proposed_repair_action,
                service_affecting: self.service_affecting,
                suppression: self.suppression,
                timestamp: timestamp(self.timestamp)?,
            })),
            "clear" => match (self.uuid, self.alarm_id, self.entity_instance_id) {
                (Some(u), None, None) => Ok(AlarmRequest::ClearUuid(u)),
                (None, Some(id), Some(e)) => Ok(AlarmRequest::ClearPair {
                    alarm_id: id,
                    entity_instance_id: e,
                }),
                (None, None, Some(e)) => Ok(AlarmRequest::ClearPrefix { entity_prefix: e }),
                _ => Err(Error::Invalid(
                    "a clear names either a uuid, or an alarm_id and entity_instance_id, \
                     or only an entity_instance_id (to clear everything under it)"
                        .into(),
                )),
            },
            "log" | "msg" => Ok(AlarmRequest::Log(EventInput {
                event_log_id: need(self.alarm_id, "alarm_id")?,
                state: EventState::parse(state).unwrap_or(EventState::Log),
                entity_instance_id: need(self.entity_instance_id, "entity_instance_id")?,
                entity_type_id: self.entity_type_id,
                severity: severity(self.severity, Some(Severity::NotApplicable))?,
                reason_text: self.reason_text,
                event_log_type: self.alarm_type,
                probable_cause: self.probable_cause,
                proposed_repair_action: self.proposed_repair_action,
                service_affecting: self.service_affecting,
                suppression: self.suppression,
                timestamp: timestamp(self.timestamp)?,
            })),
            other => Err(Error::Invalid(format!(
                "alarm_state {other:?} is not one of set, clear, log, msg"
            ))),
        }
    }
}

/// `POST /v1/alarms` answer.
#[derive(Debug, Serialize)]
pub struct PostReply {
    /// The alarm set or the event logged; for a clear, the first alarm cleared.
    pub uuid: Option<String>,
    /// For a clear: every alarm cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(v: serde_json::Value) -> Result<AlarmRequest, String> {
        serde_json::from_value::<AlarmPost>(v)
            .map_err(|e| e.to_string())?
            .into_request()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn fields_longer_than_starlingxs_columns_are_refused() {
        let body = |field: &str, n: usize| {
            let mut v = serde_json::json!({"alarm_id": "100.101", "entity_instance_id": "host=a", "severity": "major"});
            v[field] = serde_json::json!("é".repeat(n));
            post(v)
        };
        for f in [
            "reason_text",
            "entity_instance_id",
            "entity_type_id",
            "alarm_type",
            "probable_cause",
        ] {
            assert!(body(f, MAX_FIELD_CHARS).is_ok(), "{f}");
            let e = body(f, MAX_FIELD_CHARS + 1).unwrap_err();
            assert!(e.contains(f) && e.contains("255"), "{e}");
        }
        assert!(body("proposed_repair_action", MAX_REPAIR_ACTION_CHARS).is_ok());
        assert!(body("proposed_repair_action", MAX_REPAIR_ACTION_CHARS + 1).is_err());
    }

    #[test]
    fn starlingxs_set_body_is_understood() {
        let r = post(serde_json::json!({"alarm_state":"set","alarm_id":"100.104","entity_instance_id":"host=x.filesystem=/y","entity_type_id":"host","severity":"major","reason_text":"...","alarm_type":"equipment","probable_cause":"threshold-crossed","service_affecting":false,"proposed_repair_action":"...","suppression":true})).unwrap();
        match r {
            AlarmRequest::Set(i) => {
                assert_eq!(i.severity, Severity::Major);
                assert_eq!(i.suppression, Some(true));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clears_take_three_forms() {
        assert!(matches!(
            post(serde_json::json!({"alarm_state":"clear","uuid":"u"})),
            Ok(AlarmRequest::ClearUuid(_))
        ));
        assert!(matches!(
            post(
                serde_json::json!({"alarm_state":"clear","alarm_id":"1","entity_instance_id":"e","severity":"major"})
            ),
            Ok(AlarmRequest::ClearPair { .. })
        ));
        assert!(matches!(
            post(serde_json::json!({"alarm_state":"clear","entity_instance_id":"host=a"})),
            Ok(AlarmRequest::ClearPrefix { .. })
        ));
        assert!(post(serde_json::json!({"alarm_state":"clear"})).is_err());
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let e =
            post(serde_json::json!({"alarm_id":"1","entity_instance_id":"e","severity":"huge"}))
                .unwrap_err();
        assert!(e.contains("huge"), "{e}");
        let e = post(serde_json::json!({"alarm_id":"1","entity_instance_id":"e"})).unwrap_err();
        assert!(e.contains("severity"), "{e}");
        let e = post(serde_json::json!({"alarm_id":"1","colour":"red"})).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = post(serde_json::json!({"alarm_id":5,"entity_instance_id":"e","severity":"major"}))
            .unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        let e = post(serde_json::json!({"alarm_state":"gone","alarm_id":"1"})).unwrap_err();
        assert!(e.contains("gone"), "{e}");
    }

    #[test]
    fn suppression_rows_keep_their_json_form() {
        let row = SuppressionJson {
            uuid: "u".into(),
            alarm_id: "100.101".into(),
            description: "d".into(),
            suppression_status: suppression_status(false),
            links: crate::Link::self_and_bookmark("http://x", "event_suppression", "u"),
        };
        assert_eq!(
            serde_json::to_string(&SuppressionList {
                event_suppression: vec![row]
            })
            .unwrap(),
            concat!(
                r#"{"event_suppression":[{"uuid":"u","alarm_id":"100.101","description":"d","#,
                r#""suppression_status":"unsuppressed","links":["#,
                r#"{"href":"http://x/v1/event_suppression/u","rel":"self"},"#,
                r#"{"href":"http://x/event_suppression/u","rel":"bookmark"}]}]}"#
            )
        );
    }
}

//! Request bodies that a client (the CLI) serializes are read back by the
//! server's deserializer unchanged: no renamed key lost, no `null` sent for an
//! absent field where the server refuses it, nothing the server's
//! `deny_unknown_fields` would refuse.

use roost_api::dcmanager::{GroupWrite, SubcloudCreate, SubcloudUpdate};
use roost_api::fm::{AlarmPost, PatchOp};
use roost_api::identity::{
    Auth, AuthRequest, Identity, NamedRef, PasswordMethod, ProjectRef, Scope, UserRef,
};
use roost_api::sysinv::{HostAdd, ParameterApply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(t: &T) -> Value {
    let v = serde_json::to_value(t).unwrap();
    let back: T = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(&back, t);
    v
}

#[test]
fn a_clear_by_pair_sends_only_what_it_names() {
    let post = AlarmPost {
        alarm_state: Some("clear".into()),
        alarm_id: Some("100.101".into()),
        entity_instance_id: Some("host=c-0".into()),
        ..AlarmPost::default()
    };
    assert_eq!(
        round_trip(&post),
        json!({"alarm_state": "clear", "alarm_id": "100.101", "entity_instance_id": "host=c-0"})
    );
    assert!(post.into_request().is_ok());
}

#[test]
fn flags_go_out_as_booleans_and_come_back() {
    let post = AlarmPost {
        alarm_id: Some("100.101".into()),
        entity_instance_id: Some("host=c-0".into()),
        severity: Some("major".into()),
        service_affecting: Some(true),
        suppression: Some(false),
        ..AlarmPost::default()
    };
    let v = round_trip(&post);
    assert_eq!(v["service_affecting"], true);
    assert_eq!(v["suppression"], false);
}

#[test]
fn patches_and_the_parameter_apply_body_keep_their_shape() {
    assert_eq!(
        round_trip(&vec![PatchOp::replace("/action", "unlock")]),
        json!([{"op": "replace", "path": "/action", "value": "unlock"}])
    );
    let apply = ParameterApply {
        service: "platform".into(),
        section: Some("maintenance".into()),
    };
    assert_eq!(
        round_trip(&apply),
        json!({"service": "platform", "section": "maintenance"})
    );
}

#[test]
fn a_host_add_sends_no_nulls() {
    let add = HostAdd {
        hostname: "worker-1".into(),
        personality: "worker".into(),
        mgmt_ip: Some("192.168.204.11".into()),
        ..HostAdd::default()
    };
    assert_eq!(
        round_trip(&add),
        json!({"hostname": "worker-1", "personality": "worker", "mgmt_ip": "192.168.204.11"})
    );
}

#[test]
fn subcloud_bodies_keep_dcmanager_spellings() {
    let update = SubcloudUpdate {
        management_state: Some("managed".into()),
        ..SubcloudUpdate::default()
    };
    assert_eq!(round_trip(&update), json!({"management-state": "managed"}));
    let create = SubcloudCreate {
        name: Some("edge-1".into()),
        group_id: Some(Value::from(2)),
        ..SubcloudCreate::default()
    };
    assert_eq!(
        round_trip(&create),
        json!({"name": "edge-1", "group_id": 2})
    );
    let group = GroupWrite {
        name: Some("edge-sites".into()),
        max_parallel_subclouds: Some(Value::from(5)),
        ..GroupWrite::default()
    };
    assert_eq!(
        round_trip(&group),
        json!({"name": "edge-sites", "max_parallel_subclouds": 5})
    );
}

#[test]
fn a_password_token_request_is_keystone_v3() {
    let domain = || NamedRef {
        id: None,
        name: Some("Default".into()),
    };
    let req = AuthRequest {
        auth: Auth {
            identity: Identity {
                methods: vec!["password".into()],
                password: Some(PasswordMethod {
                    user: UserRef {
                        id: None,
                        name: Some("admin".into()),
                        password: "pw".into(),
                        domain: Some(domain()),
                    },
                }),
                token: None,
                application_credential: None,
            },
            scope: Some(Scope {
                project: Some(ProjectRef {
                    id: None,
                    name: Some("admin".into()),
                    domain: Some(domain()),
                }),
            }),
        },
    };
    assert_eq!(
        round_trip(&req),
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "password": "pw", "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}
        }})
    );
}

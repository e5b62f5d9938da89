//! Distributed Cloud end to end: a system controller and real subcloud
//! servers (own data directories and ports), enrolled over mutual TLS.

use std::path::Path;

use roost_test_support::{Api, Server, ServerOptions, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

const SYNC_INTERVAL_SECS: u64 = 1;
const OFFLINE_AFTER_SECS: u64 = 4;

fn dc_config(dir: &Path, extra: &str) -> String {
    let p = dir.join("dc.toml");
    std::fs::write(
        &p,
        format!("[dc]\nlisten = \"127.0.0.1:0\"\nsync_interval_secs = {SYNC_INTERVAL_SECS}\noffline_after_secs = {OFFLINE_AFTER_SECS}\nout_of_sync_alarm_after_secs = 5\n{extra}"),
    )
    .unwrap();
    p.display().to_string()
}

fn system_controller(dir: &Path) -> Server {
    Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                dc_config(dir, ""),
            ],
            ..Default::default()
        },
    )
}

/// Adds a subcloud on the system controller; returns its enrollment token.
fn add_subcloud(api: &Api, name: &str) -> String {
    let r = api.post(
        "/v1.0/subclouds/",
        &json!({"name": name, "description": format!("{name} site")}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["enroll_token"].as_str().unwrap().to_string()
}

fn start_subcloud(sc: &Server, token: &str, dir: &Path) -> Server {
    let dc_url = sc.dc_url.clone().expect("DC listener");
    Server::start_in(
        bin(),
        &dir.join("data"),
        ServerOptions {
            args: vec![
                "--role".into(),
                "subcloud".into(),
                "--system-controller".into(),
                dc_url,
                "--enroll-token".into(),
                token.into(),
                "--config".into(),
                dc_config(dir, ""),
            ],
            ..Default::default()
        },
        None,
    )
    .expect("subcloud starts")
}

/// Starts a subcloud that must fail to enroll; returns what it printed.
fn enroll_must_fail(dc_url: &str, token: &str, dir: &Path) -> String {
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--no-monitor",
            "--listen",
            "127.0.0.1:0",
            "--role",
            "subcloud",
            "--system-controller",
            dc_url,
            "--enroll-token",
            token,
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .env("ROOST_ADMIN_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(!out.status.success(), "enrollment into {dir:?} must fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn subcloud(api: &Api, name: &str) -> Value {
    let r = api.get(&format!("/v1.0/subclouds/{name}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

fn wait_field(api: &Api, name: &str, key: &str, want: &str, secs: u64) -> Value {
    wait_for(secs, || {
        let s = subcloud(api, name);
        (s[key] == want).then_some(s)
    })
    .unwrap_or_else(|| panic!("{name}: {key} never became {want}: {}", subcloud(api, name)))
}

fn suppression_uuid(api: &Api, alarm_id: &str) -> String {
    api.get("/v1/event_suppression").body["event_suppression"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alarm_id"] == alarm_id)
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn set_suppressed(api: &Api, alarm_id: &str, on: bool) {
    let r = api.patch(
        &format!("/v1/event_suppression/{}", suppression_uuid(api, alarm_id)),
        &json!([{"op": "replace", "path": "/suppression_status", "value": if on {"suppressed"} else {"unsuppressed"}}]),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

fn is_suppressed(api: &Api, alarm_id: &str) -> bool {
    api.get("/v1/event_suppression").body["event_suppression"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["alarm_id"] == alarm_id && r["suppression_status"] == "suppressed")
}

#[test]
fn subclouds_enroll_aggregate_alarms_and_converge_on_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    assert_eq!(
        api.get("/v1/isystems").body["isystems"][0]["distributed_cloud_role"],
        "systemcontroller"
    );
    let mut subs = Vec::new();
    for i in 1..=3 {
        let name = format!("edge-{i}");
        let token = add_subcloud(&api, &name);
        let d = dir.path().join(&name);
        std::fs::create_dir_all(&d).unwrap();
        subs.push(start_subcloud(&sc, &token, &d));
        let s = wait_field(&api, &name, "availability-status", "online", 30);
        assert_eq!(s["management-state"], "unmanaged");
    }
    let list = api.get("/v1.0/subclouds/").body["subclouds"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 3);
    for s in &list {
        assert_eq!(s["deploy-status"], "complete");
    }
    // Manage two; edge-3 stays unmanaged.
    for name in ["edge-1", "edge-2"] {
        let r = api.patch(
            &format!("/v1.0/subclouds/{name}"),
            &json!({"management-state": "managed"}),
        );
        assert_eq!(r.status, 200);
        wait_field(&api, name, "sync_status", "in-sync", 30);
    }
    // The metrics count them by availability and sync, and time the syncs.
    let metrics = api.get("/metrics");
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l == "roost_subclouds{availability=\"online\",sync=\"in-sync\"} 2"),
        "{text}"
    );
    let syncs = text
        .lines()
        .find_map(|l| l.strip_prefix("roost_dc_sync_duration_seconds_count "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(syncs.is_some_and(|n| n > 0), "{text}");
    let apis: Vec<Api> = subs.iter().map(|s| s.api()).collect();

    // Alarms aggregate on the system controller.
    apis[1].set_alarm("100.104", "host=controller-0.filesystem=/var", "critical");
    apis[1].set_alarm("200.001", "host=worker-1", "warning");
    let row = wait_for(30, || {
        api.get("/v1.0/alarms/").body["alarm_summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["region_name"] == "edge-2" && r["critical_alarms"] == 1 && r["warnings"] == 1
            })
            .cloned()
    })
    .expect("edge-2's alarms reach the summary");
    assert_eq!(row["cloud_status"], "critical");
    let alarms = api.get("/v1.0/subclouds/edge-2/alarms").body["alarms"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(alarms, 2);

    // A platform change on the system controller reaches managed subclouds only.
    set_suppressed(&api, "100.101", true);
    for a in &apis[..2] {
        assert!(wait_for(30, || is_suppressed(a, "100.101").then_some(())).is_some());
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        !is_suppressed(&apis[2], "100.101"),
        "unmanaged subclouds are not synced"
    );
    for name in ["edge-1", "edge-2"] {
        wait_field(&api, name, "sync_status", "in-sync", 30);
    }

    // DNS servers set on the system controller reach managed subclouds.
    let dns = api.get("/v1/idns").body["idnss"][0].clone();
    let r = api.patch(
        &format!("/v1/idns/{}", dns["uuid"].as_str().unwrap()),
        &json!([{"op": "replace", "path": "/nameservers", "value": "10.0.0.53,10.0.1.53"}, {"op": "replace", "path": "/action", "value": "apply"}]),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.patch(
        &format!("/v1/idns/{}", dns["uuid"].as_str().unwrap()),
        &json!([{"op": "replace", "path": "/nameservers", "value": "not-an-ip"}]),
    );
    assert_eq!(r.status, 400);
    for a in &apis[..2] {
        assert!(
            wait_for(30, || (a.get("/v1/idns").body["idnss"][0]["nameservers"]
                == "10.0.0.53,10.0.1.53")
                .then_some(()))
            .is_some()
        );
    }

    // Drift: a local change on a managed subcloud is found and overwritten.
    set_suppressed(&apis[0], "100.101", false);
    assert!(
        wait_for(30, || is_suppressed(&apis[0], "100.101").then_some(())).is_some(),
        "the system controller repairs the drift"
    );
    assert!(sc.log().contains("drift"), "the drift is reported");

    // Managed again, the unmanaged subcloud converges.
    let r = api.patch(
        "/v1.0/subclouds/edge-3",
        &json!({"management-state": "managed"}),
    );
    assert_eq!(r.status, 200);
    assert!(wait_for(30, || is_suppressed(&apis[2], "100.101").then_some(())).is_some());
    wait_field(&api, "edge-3", "sync_status", "in-sync", 30);

    // Groups.
    let r = api.post(
        "/v1.0/subcloud-groups/",
        &json!({"name": "west", "max_parallel_subclouds": "5"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let gid = r.body["id"].clone();
    let r = api.patch("/v1.0/subclouds/edge-1", &json!({"group_id": gid}));
    assert_eq!(r.status, 200);
    let members = api.get("/v1.0/subcloud-groups/west/subclouds").body["subclouds"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(members.len(), 1);
    assert!(members[0].get("endpoint_sync_status").is_none());
    let r = api.delete("/v1.0/subcloud-groups/west");
    assert_eq!(r.status, 400, "a group with subclouds cannot be deleted");
    assert!(
        r.body
            .as_str()
            .unwrap_or("")
            .contains("<title>400 Bad Request</title>")
    );
    let r = api.delete("/v1.0/subcloud-groups/Default");
    assert_eq!(r.status, 400);

    // Identity: the admin password changed on the system controller reaches
    // managed subclouds.
    let (_, _, body) = sc.login(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": roost_test_support::PASSWORD}}}}}));
    let uid = body["token"]["user"]["id"].as_str().unwrap().to_string();
    let r = api.post(
        &format!("/v3/users/{uid}/password"),
        &json!({"user": {"password": "central-pw-2026", "original_password": roost_test_support::PASSWORD}}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    let new_login = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": "central-pw-2026"}}}}});
    for sub in &subs {
        assert!(
            wait_for(30, || (sub.login(new_login.clone()).0 == 201).then_some(())).is_some(),
            "the new password works on {}",
            sub.url
        );
    }
}

#[test]
fn a_killed_subcloud_goes_offline_with_280_001_and_can_only_be_deleted_unmanaged() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let token = add_subcloud(&api, "edge-9");
    let mut sub = start_subcloud(&sc, &token, dir.path());
    wait_field(&api, "edge-9", "availability-status", "online", 30);
    let r = api.patch(
        "/v1.0/subclouds/edge-9",
        &json!({"management-state": "managed"}),
    );
    assert_eq!(r.status, 200);
    let r = api.delete("/v1.0/subclouds/edge-9");
    assert_eq!(r.status, 400, "managed and online: refused");
    sub.kill9();
    let killed = std::time::Instant::now();
    wait_field(&api, "edge-9", "availability-status", "offline", 60);
    // Detection follows the configured threshold (offline_after_secs = 4,
    // syncs every second): never before the threshold less one sync
    // interval, and within it plus a margin for a loaded machine. The
    // strict timing target is measured by `roost-bench dc`.
    let took = killed.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(OFFLINE_AFTER_SECS - SYNC_INTERVAL_SECS),
        "offline before the threshold: {took:?}"
    );
    assert!(
        took <= std::time::Duration::from_secs(OFFLINE_AFTER_SECS + 15),
        "offline detection took {took:?} for a threshold of {OFFLINE_AFTER_SECS} s"
    );
    let a = api.alarms("?q.field=alarm_id&q.value=280.001");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["entity_instance_id"], "subcloud=edge-9");
    let row = api.get("/v1.0/alarms/").body["alarm_summary"][0].clone();
    assert_eq!(row["cloud_status"], "disabled");
    assert_eq!(row["critical_alarms"], -1);
    // Back again: online, alarm cleared.
    sub.restart();
    wait_field(&api, "edge-9", "availability-status", "online", 30);
    assert!(
        wait_for(10, || api
            .alarms("?q.field=alarm_id&q.value=280.001")
            .is_empty()
            .then_some(()))
        .is_some()
    );
    // Delete: unmanage, stop it, then it goes.
    api.patch(
        "/v1.0/subclouds/edge-9",
        &json!({"management-state": "unmanaged"}),
    );
    sub.kill9();
    wait_field(&api, "edge-9", "availability-status", "offline", 30);
    // Its own strategy options go with it.
    let r = api.post(
        "/v1.0/sw-update-options/edge-9",
        &json!({"storage-apply-type": "parallel", "worker-apply-type": "parallel",
                "max-parallel-workers": 3, "alarm-restriction-type": "relaxed",
                "default-instance-action": "stop-start"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.delete("/v1.0/subclouds/edge-9").status, 200);
    let r = api.get("/v1.0/subclouds/edge-9");
    assert_eq!(r.status, 404);
    assert!(r.body.as_str().unwrap().contains("Subcloud not found"));
    // A subcloud added again under the name starts from the defaults.
    add_subcloud(&api, "edge-9");
    let r = api.get("/v1.0/sw-update-options/edge-9");
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("defaults will be used"),
        "{:?}",
        r.body
    );
}

#[test]
fn alarms_raised_during_a_partition_arrive_exactly_once() {
    // The partition: the system controller is frozen (SIGSTOP), so the
    // subcloud's syncs go unanswered as if the link were down, while the
    // subcloud keeps running and raising alarms on its own.
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let token = add_subcloud(&api, "edge-5");
    let sub = start_subcloud(&sc, &token, dir.path());
    wait_field(&api, "edge-5", "availability-status", "online", 30);
    let sapi = sub.api();
    sapi.set_alarm("100.104", "host=controller-0.filesystem=/a", "major");
    wait_for(30, || {
        (api.get("/v1.0/subclouds/edge-5/alarms").body["alarms"]
            .as_array()
            .unwrap()
            .len()
            == 1)
            .then_some(())
    })
    .expect("first alarm arrives");
    // The link is down: the system controller is frozen.
    let pid = sc.pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    for i in 0..5 {
        sapi.set_alarm(
            "100.104",
            &format!("host=controller-0.filesystem=/p{i}"),
            "minor",
        );
    }
    sapi.post(
        "/v1/alarms",
        &json!({"alarm_state": "clear", "alarm_id": "100.104", "entity_instance_id": "host=controller-0.filesystem=/p0"}),
    );
    // The subcloud carries on alone.
    assert_eq!(sapi.get("/v1/alarms/summary").body["minor"], 4);
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    let got = wait_for(30, || {
        let a = api.get("/v1.0/subclouds/edge-5/alarms").body["alarms"]
            .as_array()
            .unwrap()
            .clone();
        (a.len() == 5).then_some(a)
    })
    .expect("every change made during the partition arrives");
    let row = api.get("/v1.0/alarms/").body["alarm_summary"][0].clone();
    assert_eq!(row["major_alarms"], 1);
    assert_eq!(row["minor_alarms"], 4, "nothing counted twice: {got:?}");
}

#[test]
fn bad_enrollment_tokens_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let token = add_subcloud(&api, "edge-1");
    let d1 = dir.path().join("one");
    std::fs::create_dir_all(&d1).unwrap();
    let _sub = start_subcloud(&sc, &token, &d1);
    wait_field(&api, "edge-1", "availability-status", "online", 30);
    let dc_url = sc.dc_url.clone().unwrap();
    let try_enroll =
        |token: &str, tag: &str| enroll_must_fail(&dc_url, token, &dir.path().join(tag));
    // Used.
    let e = try_enroll(&token, "used");
    assert!(e.contains("enrollment refused"), "{e}");
    // Forged secret with the right fingerprint.
    let parts: Vec<&str> = token.splitn(3, '.').collect();
    let forged = format!("{}.{}.{}", parts[0], parts[1], "00".repeat(24));
    let e = try_enroll(&forged, "forged");
    assert!(e.contains("enrollment refused"), "{e}");
    // A token naming another CA: the subcloud refuses the system controller.
    let other = format!("{}.{}.{}", parts[0], "ab".repeat(32), parts[2]);
    let e = try_enroll(&other, "other-ca");
    assert!(
        e.contains("cannot reach") || e.contains("certificate"),
        "{e}"
    );
    // Malformed.
    let e = try_enroll("hello", "malformed");
    assert!(e.contains("malformed"), "{e}");
    // Nothing new was created.
    assert_eq!(
        api.get("/v1.0/subclouds/").body["subclouds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // dcmanager-style errors for bad API input.
    let r = api.post("/v1.0/subclouds/", &json!({"description": "no name"}));
    assert_eq!(r.status, 400);
    let r = api.post("/v1.0/subclouds/", &json!({"name": "edge-1"}));
    assert_eq!(r.status, 400, "duplicate name");
    let r = api.patch(
        "/v1.0/subclouds/edge-1",
        &json!({"management-state": "sideways"}),
    );
    assert_eq!(r.status, 400);
    let r = api.patch(
        "/v1.0/subclouds/nobody",
        &json!({"management-state": "managed"}),
    );
    assert_eq!(r.status, 404);
    assert!(r.content_type.unwrap().starts_with("text/html"));
}

#[test]
fn a_client_certificate_from_another_ca_and_bad_stream_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let token = add_subcloud(&api, "edge-7");
    let dc_url = sc.dc_url.clone().unwrap();
    // Play the subcloud by hand: enroll with a CSR over the pinned channel.
    let (fp, _) = roost_api::dcsync::parse_enroll_token(&token).unwrap();
    let me = roost_pki::ClientIdentity::generate("whoever").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let enrolled: roost_api::dcsync::EnrollResponse = rt.block_on(async {
        let http = roost_pki::https_client(roost_pki::pinned_client_config(fp).unwrap()).unwrap();
        http.post(format!("{dc_url}/dc/v1/enroll"))
            .json(&json!({"token": token, "csr_pem": me.csr_pem}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(
        enrolled.name, "edge-7",
        "the CN is the system controller's choice"
    );
    let good = roost_pki::https_client(
        roost_pki::client_config(&enrolled.ca_pem, Some((&enrolled.cert_pem, &me.key_pem)))
            .unwrap(),
    )
    .unwrap();
    let post = |client: &reqwest::Client, body: Value| -> Result<(u16, String), String> {
        rt.block_on(async {
            let r = client
                .post(format!("{dc_url}/dc/v1/sync"))
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            Ok((r.status().as_u16(), r.text().await.unwrap_or_default()))
        })
    };
    let change = |seq: u64, sev: &str| json!({"seq": seq, "alarm_id": "100.104", "entity_instance_id": format!("host=c.filesystem=/{seq}"), "severity": sev, "reason_text": "x", "timestamp": 1});
    let (st, _) = post(&good, json!({"changes": [change(1, "major")]})).unwrap();
    assert_eq!(st, 200);
    // Out of order: refused whole.
    let (st, body) = post(
        &good,
        json!({"changes": [change(3, "major"), change(2, "major")]}),
    )
    .unwrap();
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("out of order"), "{body}");
    // Malformed: a severity that does not exist, an unknown field.
    let (st, _) = post(&good, json!({"changes": [change(2, "apocalyptic")]})).unwrap();
    assert_eq!(st, 400);
    let (st, _) = post(&good, json!({"colour": "red"})).unwrap();
    assert_eq!(st, 400);
    // A gap: what came before is kept and a snapshot is asked for.
    let (st, body) = post(&good, json!({"changes": [change(5, "major")]})).unwrap();
    assert_eq!(st, 200);
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["acked_seq"], 1);
    assert_eq!(reply["want_snapshot"], true);
    let alarms = api.get("/v1.0/subclouds/edge-7/alarms").body["alarms"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(alarms, 1, "nothing from the bad messages was stored");

    // Renewal: a fresh CSR over the mutual TLS link gives a new certificate
    // with the same subject.
    let fresh = roost_pki::ClientIdentity::generate("anything").unwrap();
    let renewed: Value = rt.block_on(async {
        good.post(format!("{dc_url}/dc/v1/renew"))
            .json(&json!({"csr_pem": fresh.csr_pem}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let info = roost_pki::cert_info(renewed["cert_pem"].as_str().unwrap()).unwrap();
    assert_eq!(info.cn.as_deref(), Some("edge-7"));
    let renewed_client = roost_pki::https_client(
        roost_pki::client_config(
            &enrolled.ca_pem,
            Some((renewed["cert_pem"].as_str().unwrap(), &fresh.key_pem)),
        )
        .unwrap(),
    )
    .unwrap();
    let (st, _) = post(&renewed_client, json!({})).unwrap();
    assert_eq!(st, 200, "the renewed certificate works");

    // A client certificate from another CA: the handshake fails.
    let other_dir = tempfile::tempdir().unwrap();
    let other = roost_pki::DcCa::load_or_create(other_dir.path(), "impostor").unwrap();
    let them = roost_pki::ClientIdentity::generate("edge-7").unwrap();
    let their_cert = other.sign_client_csr(&them.csr_pem, "edge-7", 1).unwrap();
    let impostor = roost_pki::https_client(
        roost_pki::client_config(&enrolled.ca_pem, Some((&their_cert, &them.key_pem))).unwrap(),
    )
    .unwrap();
    assert!(
        post(&impostor, json!({})).is_err(),
        "refused at the handshake"
    );
    // No certificate at all: 401.
    let anonymous =
        roost_pki::https_client(roost_pki::client_config(&enrolled.ca_pem, None).unwrap()).unwrap();
    let (st, _) = post(&anonymous, json!({})).unwrap();
    assert_eq!(st, 401);
}

#[test]
fn a_cut_link_gives_offline_and_autonomy_and_the_subcloud_converges_when_it_returns() {
    let tag = std::process::id() % 10_000 + 20_000;
    // Link 0 carries the subcloud's traffic to the system controller; link 1
    // lets the test reach the subcloud's API while link 0 is down.
    let Some(ns) = roost_test_support::Netns::require(tag, 2) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sc.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dc]\nlisten = \"{}:0\"\nsync_interval_secs = 1\noffline_after_secs = 4\n",
            ns.addr(0, 1)
        ),
    )
    .unwrap();
    let sc = Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                cfg.display().to_string(),
            ],
            ..Default::default()
        },
    );
    let api = sc.api();
    let token = add_subcloud(&api, "edge-net");
    let sub_dir = dir.path().join("sub");
    std::fs::create_dir_all(&sub_dir).unwrap();
    let sub = Server::start_in(
        bin(),
        &sub_dir.join("data"),
        ServerOptions {
            args: vec![
                "--role".into(),
                "subcloud".into(),
                "--system-controller".into(),
                sc.dc_url.clone().unwrap(),
                "--enroll-token".into(),
                token,
                "--config".into(),
                dc_config(&sub_dir, ""),
            ],
            listen: Some(format!("{}:0", ns.addr(1, 2))),
            netns: Some(ns.name.clone()),
            ..Default::default()
        },
        None,
    )
    .expect("subcloud in its namespace");
    wait_field(&api, "edge-net", "availability-status", "online", 30);
    api.patch(
        "/v1.0/subclouds/edge-net",
        &json!({"management-state": "managed"}),
    );
    wait_field(&api, "edge-net", "sync_status", "in-sync", 30);

    // Cut the link: offline on the system controller, 280.001 raised.
    assert!(roost_test_support::ip(&[
        "link",
        "set",
        &ns.host_ifs[0],
        "down"
    ]));
    wait_field(&api, "edge-net", "availability-status", "offline", 30);
    assert_eq!(api.alarms("?q.field=alarm_id&q.value=280.001").len(), 1);
    // The subcloud works on its own: its API answers and takes alarms.
    let sapi = sub.api();
    sapi.set_alarm("100.104", "host=controller-0.filesystem=/cut", "major");
    assert_eq!(sapi.get("/v1/alarms/summary").body["major"], 1);
    // A change on the system controller while the link is down...
    set_suppressed(&api, "100.103", true);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!is_suppressed(&sapi, "100.103"));
    // ...arrives once the link returns, with the alarm raised meanwhile.
    assert!(roost_test_support::ip(&[
        "link",
        "set",
        &ns.host_ifs[0],
        "up"
    ]));
    wait_field(&api, "edge-net", "availability-status", "online", 60);
    assert!(wait_for(30, || is_suppressed(&sapi, "100.103").then_some(())).is_some());
    wait_field(&api, "edge-net", "sync_status", "in-sync", 30);
    let a = api.get("/v1.0/subclouds/edge-net/alarms").body["alarms"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(api.alarms("?q.field=alarm_id&q.value=280.001").is_empty());
}

#[test]
fn an_expired_enrollment_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dc_config(dir.path(), "enroll_token_ttl_secs = 1\n");
    let sc = Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                cfg,
            ],
            ..Default::default()
        },
    );
    let api = sc.api();
    let token = add_subcloud(&api, "edge-late");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let err = enroll_must_fail(
        sc.dc_url.as_deref().unwrap(),
        &token,
        &dir.path().join("late"),
    );
    assert!(err.contains("enrollment refused"), "{err}");
    let s = subcloud(&api, "edge-late");
    assert_eq!(s["deploy-status"], "not-deployed", "nothing changed");
}

#[test]
fn starlingx_multipart_forms_add_and_manage_subclouds() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    // What StarlingX's `dcmanager subcloud add` sends: text fields and a
    // bootstrap_values file whose `name` names the subcloud.
    let boundary = "roostboundary7";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"bootstrap-address\"\r\n\r\n10.10.10.12\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"sysadmin_password\"\r\n\r\nU3lzYWRtaW4q\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"bootstrap_values\"; filename=\"/home/sysadmin/edge-mp.yaml\"\r\n\r\n\
         name: edge-mp\nsystem_mode: simplex\n\r\n--{b}--\r\n",
        b = boundary
    );
    let r = api.post_raw(
        "/v1.0/subclouds/",
        &format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "edge-mp");
    assert!(
        r.body["enroll_token"]
            .as_str()
            .unwrap()
            .starts_with("rsc1.")
    );
    // `dcmanager subcloud manage` is a multipart PATCH too.
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"management-state\"\r\n\r\nmanaged\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"force\"\r\n\r\ntrue\r\n--{b}--\r\n",
        b = boundary
    );
    let r = roost_test_support::http()
        .patch(format!("{}/v1.0/subclouds/edge-mp", sc.url))
        .header("X-Auth-Token", &api.token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["management-state"], "managed");
    // A broken form is a clear 400 page, and nothing is created.
    let r = api.post_raw(
        "/v1.0/subclouds/",
        "multipart/form-data; boundary=nothere",
        b"garbage".to_vec(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        api.get("/v1.0/subclouds/").body["subclouds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_deleted_subclouds_certificate_is_refused_when_its_name_is_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let token = add_subcloud(&api, "edge-1");
    let old_dir = dir.path().join("old");
    std::fs::create_dir_all(&old_dir).unwrap();
    let mut old = start_subcloud(&sc, &token, &old_dir);
    wait_field(&api, "edge-1", "availability-status", "online", 30);
    // Unmanaged (it never was managed), stopped, deleted.
    old.kill9();
    wait_field(&api, "edge-1", "availability-status", "offline", 60);
    assert_eq!(api.delete("/v1.0/subclouds/edge-1").status, 200);
    // A new edge-1, managed before it is even installed, with configuration
    // waiting for it.
    let token2 = add_subcloud(&api, "edge-1");
    let r = api.patch(
        "/v1.0/subclouds/edge-1",
        &json!({"management-state": "managed"}),
    );
    assert_eq!(r.status, 200);
    set_suppressed(&api, "100.101", true);
    // The old subcloud comes back on its old data directory.
    old.restart();
    let refused = |s: &Server| s.log().matches("refused a sync").count();
    assert!(
        wait_for(60, || (refused(&old) >= 3).then_some(())).is_some(),
        "its syncs are refused: {}",
        old.log()
    );
    assert!(old.log().contains("not the one issued"), "{}", old.log());
    let s = subcloud(&api, "edge-1");
    assert_eq!(s["availability-status"], "offline", "{s}");
    assert_eq!(s["deploy-status"], "not-deployed", "{s}");
    let old_api = old.api();
    assert!(!is_suppressed(&old_api, "100.101"));
    assert!(!old.log().contains("applied configuration"));
    // The real new edge-1 enrolls and is configured; the old one stays out.
    let new_dir = dir.path().join("new");
    std::fs::create_dir_all(&new_dir).unwrap();
    let new = start_subcloud(&sc, &token2, &new_dir);
    wait_field(&api, "edge-1", "availability-status", "online", 30);
    assert!(wait_for(30, || is_suppressed(&new.api(), "100.101").then_some(())).is_some());
    let n = refused(&old);
    assert!(wait_for(60, || (refused(&old) >= n + 2).then_some(())).is_some());
    assert!(!is_suppressed(&old_api, "100.101"));
    assert!(!old.log().contains("applied configuration"));
}

/// Completes a TLS handshake with the DC listener without a client
/// certificate (as an enrolling subcloud does) and returns the connection.
fn anonymous_tls(
    addr: &str,
    fingerprint: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let cfg = roost_pki::pinned_client_config(fingerprint).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

#[test]
fn idle_connections_to_the_dc_listener_do_not_lock_subclouds_out() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let token = add_subcloud(&api, "edge-1");
    let (fp, _) = roost_api::dcsync::parse_enroll_token(&token).unwrap();
    let fp = fp.to_string();
    let mut sub = start_subcloud(&sc, &token, dir.path());
    wait_field(&api, "edge-1", "availability-status", "online", 30);
    let r = api.patch(
        "/v1.0/subclouds/edge-1",
        &json!({"management-state": "managed"}),
    );
    assert_eq!(r.status, 200);
    let addr = sc
        .dc_url
        .as_deref()
        .unwrap()
        .trim_start_matches("https://")
        .to_string();

    // The attack: a steady stream of idle TCP connections that never start
    // a handshake (several hundred open at any time), and completed TLS
    // connections without a certificate that stay silent.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut open = std::collections::VecDeque::new();
            let mut opened = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..100 {
                    if let Ok(c) = std::net::TcpStream::connect(&addr) {
                        open.push_back((std::time::Instant::now(), c));
                        opened += 1;
                    }
                }
                while open
                    .front()
                    .is_some_and(|(t, _)| t.elapsed() > std::time::Duration::from_secs(8))
                {
                    open.pop_front();
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            opened
        })
    };
    let mut anonymous: Vec<_> = (0..20).map(|_| anonymous_tls(&addr, &fp)).collect();

    // Syncs go on: each alarm raised on the subcloud reaches the system
    // controller, through a connection made after the attack began.
    let sapi = sub.api();
    let arrived = |n: usize| {
        wait_for(60, || {
            (api.get("/v1.0/subclouds/edge-1/alarms").body["alarms"]
                .as_array()
                .map_or(0, Vec::len)
                >= n)
                .then_some(())
        })
        .is_some()
    };
    sapi.set_alarm("100.104", "host=controller-0.filesystem=/a", "major");
    assert!(arrived(1), "a sync during the attack");
    sub.restart();
    let sapi = sub.api();
    sapi.set_alarm("100.104", "host=controller-0.filesystem=/b", "major");
    assert!(
        arrived(2),
        "a restarted subcloud reconnects during the attack"
    );
    wait_field(&api, "edge-1", "availability-status", "online", 30);

    // Connections without a certificate are closed by the listener.
    for tls in anonymous.iter_mut() {
        tls.sock
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut buf = [0u8; 64];
        match tls.read(&mut buf) {
            Ok(0) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "a connection without a certificate stayed open"
            ),
            Ok(n) => panic!("the listener sent {n} bytes unasked"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = attacker.join().unwrap();
    assert!(opened >= 1000, "the attack ran: {opened} connections");
    // 280.001 was never raised for it.
    assert!(
        api.alarms("?q.field=alarm_id&q.value=280.001").is_empty(),
        "the subcloud stayed online"
    );
}

/// Accepts `n` connections on `listener` (and drops them at once), within
/// a minute.
fn accept_and_drop(listener: &std::net::TcpListener, n: usize) -> bool {
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut got = 0;
    while got < n && std::time::Instant::now() < deadline {
        match listener.accept() {
            Ok((c, _)) => {
                drop(c);
                got += 1;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    got == n
}

#[test]
fn a_subcloud_started_before_its_system_controller_retries_until_it_enrolls() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed DC port, so that the system controller comes back on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("sc.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dc]\nlisten = \"127.0.0.1:{port}\"\nsync_interval_secs = 1\noffline_after_secs = 4\n"
        ),
    )
    .unwrap();
    let mut sc = Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                cfg.display().to_string(),
            ],
            ..Default::default()
        },
    );
    let token = add_subcloud(&sc.api(), "edge-early");
    // The system controller is down when the subcloud first starts: its
    // first attempts find nothing there (connections dropped, then refused).
    sc.kill9();
    let fake = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let sub_dir = dir.path().join("sub");
    std::fs::create_dir_all(&sub_dir).unwrap();
    let starting = {
        let dc_url = format!("https://127.0.0.1:{port}");
        let sub_dir = sub_dir.clone();
        std::thread::spawn(move || {
            Server::start_in(
                bin(),
                &sub_dir.join("data"),
                ServerOptions {
                    args: vec![
                        "--role".into(),
                        "subcloud".into(),
                        "--system-controller".into(),
                        dc_url,
                        "--enroll-token".into(),
                        token,
                        "--config".into(),
                        dc_config(&sub_dir, ""),
                    ],
                    ..Default::default()
                },
                None,
            )
        })
    };
    assert!(
        accept_and_drop(&fake, 2),
        "the subcloud tries, and tries again"
    );
    drop(fake);
    // The system controller comes up; the subcloud enrolls and syncs.
    sc.restart();
    let sub = starting
        .join()
        .unwrap()
        .expect("the subcloud starts once enrolled");
    assert!(sub.log().contains("retrying"), "{}", sub.log());
    wait_field(&sc.api(), "edge-early", "availability-status", "online", 30);
}

#[test]
fn after_identity_sync_the_stale_admin_credentials_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let sc = system_controller(dir.path());
    let api = sc.api();
    let token = add_subcloud(&api, "edge-cred");
    let dc_url = sc.dc_url.clone().unwrap();
    // No ROOST_ADMIN_PASSWORD: the subcloud writes its admin password to
    // `admin-credentials` at its first start.
    let sub = Server::start_in(
        bin(),
        &dir.path().join("sub"),
        ServerOptions {
            args: vec![
                "--role".into(),
                "subcloud".into(),
                "--system-controller".into(),
                dc_url,
                "--enroll-token".into(),
                token,
                "--config".into(),
                dc_config(dir.path(), ""),
            ],
            admin_password: false,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let creds = dir.path().join("sub").join("admin-credentials");
    let text = std::fs::read_to_string(&creds).unwrap();
    let local_pw = text
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap()
        .to_string();
    let login = |pw: &str| {
        sub.login(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": pw}}}}}))
            .0
    };
    assert_eq!(login(&local_pw), 201, "the local password works at first");
    wait_field(&api, "edge-cred", "availability-status", "online", 30);
    let r = api.patch(
        "/v1.0/subclouds/edge-cred",
        &json!({"management-state": "managed"}),
    );
    assert_eq!(r.status, 200);
    // Identity sync: the system controller's admin password now works...
    assert!(
        wait_for(30, || (login(roost_test_support::PASSWORD) == 201)
            .then_some(()))
        .is_some(),
        "the system controller's password works on the subcloud"
    );
    wait_field(&api, "edge-cred", "sync_status", "in-sync", 30);
    // ...the local one no longer does, and the file that held it is gone.
    assert_eq!(login(&local_pw), 401);
    assert!(
        !creds.exists(),
        "a stale admin-credentials file is left behind"
    );
    assert!(
        sub.log()
            .contains("removed the local admin credentials file")
    );
}

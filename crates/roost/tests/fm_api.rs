//! Fault management over real HTTP against the real `roost server`.

use roost_test_support::{Server, ServerOptions, require_fixture_or_skip, shared_events_yaml};
use serde_json::json;
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

#[test]
fn an_alarm_lives_from_set_through_update_to_clear() {
    let s = Server::start(bin());
    let api = s.api();
    let u = api.set_alarm("100.104", "host=controller-0.filesystem=/var", "major");

    let shown = api.get(&format!("/v1/alarms/{u}"));
    assert_eq!(shown.status, 200);
    for key in [
        "uuid",
        "alarm_id",
        "alarm_state",
        "entity_type_id",
        "entity_instance_id",
        "timestamp",
        "severity",
        "reason_text",
        "alarm_type",
        "probable_cause",
        "proposed_repair_action",
        "service_affecting",
        "suppression",
        "suppression_status",
        "mgmt_affecting",
        "degrade_affecting",
    ] {
        assert!(shown.body.get(key).is_some(), "alarm-show lacks {key}");
    }
    assert_eq!(shown.body["entity_type_id"], "host.filesystem");
    // StarlingX's naive UTC form, never null.
    let ts = shown.body["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 26, "{ts}");

    // Setting the same pair again updates it: same uuid, no duplicate.
    let again = api.post(
        "/v1/alarms",
        &json!({"alarm_id": "100.104", "entity_instance_id": "host=controller-0.filesystem=/var", "severity": "critical", "reason_text": "fuller"}),
    );
    assert_eq!(again.body["uuid"], u.as_str());
    let list = api.alarms("");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["severity"], "critical");
    assert_eq!(list[0]["mgmt_affecting"], "True");

    // Manual clear: 204 without a body, then 404.
    let del = api.delete(&format!("/v1/alarms/{u}"));
    assert_eq!(del.status, 204);
    assert!(
        del.content_type.is_none(),
        "204 must carry no JSON content type"
    );
    assert_eq!(api.get(&format!("/v1/alarms/{u}")).status, 404);
    assert_eq!(api.delete(&format!("/v1/alarms/{u}")).status, 404);

    // The event log saw set, set (update) and clear, newest first.
    let ev = api.events("");
    let states: Vec<&str> = ev.iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["clear", "set", "set"]);
    assert_eq!(
        ev[2]["uuid"],
        u.as_str(),
        "the first set event reuses the alarm's uuid"
    );
    assert_eq!(
        ev[0]["severity"], "critical",
        "the clear keeps the alarm's severity"
    );
}

#[test]
fn clears_work_by_pair_and_by_entity_prefix() {
    let s = Server::start(bin());
    let api = s.api();
    api.set_alarm("200.004", "host=worker-1", "critical");
    api.set_alarm("100.104", "host=worker-1.filesystem=/var", "major");
    api.set_alarm("200.004", "host=worker-10", "critical");
    api.set_alarm("100.101", "host=worker-10", "major");

    let r = api.post(
        "/v1/alarms",
        &json!({"alarm_state": "clear", "alarm_id": "100.101", "entity_instance_id": "host=worker-10",
                "severity": "major", "alarm_type": "x", "probable_cause": "y"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["cleared"].as_array().unwrap().len(), 1);

    let r = api.post(
        "/v1/alarms",
        &json!({"alarm_state": "clear", "entity_instance_id": "host=worker-1"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["cleared"].as_array().unwrap().len(), 2);
    let left: Vec<String> = api
        .alarms("")
        .iter()
        .map(|a| a["entity_instance_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["host=worker-10"]);

    // Clearing what is not active succeeds and clears nothing.
    let r = api.post(
        "/v1/alarms",
        &json!({"alarm_state": "clear", "alarm_id": "100.101", "entity_instance_id": "host=nowhere"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["cleared"], json!([]));
}

#[test]
fn listing_orders_filters_and_pages() {
    let s = Server::start(bin());
    let api = s.api();
    api.set_alarm("200.001", "host=a", "warning");
    api.set_alarm("100.101", "host=b", "critical");
    api.set_alarm("100.101", "host=a", "critical");
    api.set_alarm("100.104", "host=a.filesystem=/", "major");
    api.set_alarm("100.103", "host=c", "minor");

    let order: Vec<(String, String)> = api
        .alarms("")
        .iter()
        .map(|a| {
            (
                a["alarm_id"].as_str().unwrap().into(),
                a["entity_instance_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("100.101", "host=a"),
        ("100.101", "host=b"),
        ("100.104", "host=a.filesystem=/"),
        ("100.103", "host=c"),
        ("200.001", "host=a"),
    ];
    assert_eq!(
        order,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );

    // eq is a substring match; several triples combine with AND.
    assert_eq!(
        api.alarms("?q.field=alarm_id&q.op=eq&q.type=&q.value=100.1")
            .len(),
        4
    );
    assert_eq!(
        api.alarms("?q.field=alarm_id&q.field=severity&q.op=eq&q.op=eq&q.type=&q.type=&q.value=100.1&q.value=critical").len(),
        2
    );
    assert_eq!(
        api.alarms("?q.field=entity_instance_id&q.value=host=a")
            .len(),
        3
    );
    assert_eq!(
        api.alarms("?q.field=entity_type_id&q.value=filesystem")
            .len(),
        1
    );
    let operational = api
        .alarms("?expand=True")
        .iter()
        .filter(|a| a["alarm_type"].as_str().unwrap().contains("operational"))
        .count();
    assert!(operational > 0);
    assert_eq!(
        api.alarms("?q.field=alarm_type&q.value=operational").len(),
        operational
    );
    assert_eq!(
        api.alarms("?q.field=severity&q.op=ne&q.value=critical")
            .len(),
        3
    );
    // Short form by default, every field with expand.
    let short = api.alarms("");
    assert!(short[0].get("probable_cause").is_none());
    let long = api.alarms("?expand=True");
    assert!(long[0].get("probable_cause").is_some());
    // sort_key / sort_dir.
    let by_time = api.alarms("?sort_key=timestamp&sort_dir=desc");
    assert_eq!(by_time[0]["alarm_id"], "100.103");

    // Paging: limit + marker, and a next link that can be followed.
    let r = api.get("/v1/alarms?limit=2");
    assert_eq!(r.body["alarms"].as_array().unwrap().len(), 2);
    let mut next = r.body["next"].as_str().unwrap().to_string();
    assert!(next.contains("marker="));
    let mut seen = 2;
    loop {
        let path = next
            .strip_prefix(&s.url)
            .expect("next points at this server")
            .to_string();
        let r = api.get(&path);
        assert_eq!(r.status, 200, "{:?}", r.body);
        seen += r.body["alarms"].as_array().unwrap().len();
        match r.body["next"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, 5);
}

#[test]
fn without_a_limit_every_alarm_is_listed() {
    let s = Server::start(bin());
    let api = s.api();
    for i in 0..2100 {
        // Posting in one go keeps the test quick; each is still its own request.
        let r = api.post(
            "/v1/alarms",
            &json!({"alarm_id": "100.104", "entity_instance_id": format!("host=h{i}.filesystem=/"), "severity": "major"}),
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(api.alarms("").len(), 2100);
    let page = api.get("/v1/alarms?limit=5000");
    assert_eq!(
        page.body["alarms"].as_array().unwrap().len(),
        2000,
        "pages hold at most 2000"
    );
    assert!(page.body["next"].is_string());
}

#[test]
fn the_summary_follows_the_worst_severity() {
    let s = Server::start(bin());
    let api = s.api();
    let sum = |api: &roost_test_support::Api| api.get("/v1/alarms/summary").body;
    assert_eq!(
        sum(&api),
        json!({"critical": 0, "major": 0, "minor": 0, "warnings": 0, "status": "OK"})
    );
    api.set_alarm("200.001", "host=a", "warning");
    assert_eq!(sum(&api)["status"], "OK");
    api.set_alarm("100.103", "host=a", "minor");
    assert_eq!(sum(&api)["status"], "degraded");
    api.set_alarm("200.004", "host=a", "critical");
    assert_eq!(
        sum(&api),
        json!({"critical": 1, "major": 0, "minor": 1, "warnings": 1, "status": "critical"})
    );
}

#[test]
fn suppression_hides_alarms_until_asked_and_survives_restart() {
    let mut s = Server::start(bin());
    let api = s.api();
    api.set_alarm("100.101", "host=a", "critical");
    api.set_alarm("200.001", "host=a", "warning");

    let table = api.get("/v1/event_suppression");
    assert_eq!(table.status, 200);
    let rows = table.body["event_suppression"].as_array().unwrap();
    let row = rows.iter().find(|r| r["alarm_id"] == "100.101").unwrap();
    for key in [
        "uuid",
        "alarm_id",
        "description",
        "suppression_status",
        "links",
    ] {
        assert!(row.get(key).is_some(), "{key}");
    }
    let uuid = row["uuid"].as_str().unwrap().to_string();
    // StarlingX's client sends a growing list of identical ops.
    let op = json!({"op": "replace", "path": "/suppression_status", "value": "suppressed"});
    let r = api.patch(&format!("/v1/event_suppression/{uuid}"), &json!([op, op]));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["suppression_status"], "suppressed");

    let only = api.get(
        "/v1/event_suppression?q.field=suppression_status&q.op=eq&q.type=string&q.value=suppressed",
    );
    let ids: Vec<&str> = only.body["event_suppression"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alarm_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["100.101"]);

    assert_eq!(api.alarms("").len(), 1);
    assert_eq!(api.get("/v1/alarms/summary").body["critical"], 0);
    let all = api.alarms("?include_suppress=True");
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|a| a["suppression_status"] == "suppressed"));
    assert_eq!(
        api.get("/v1/alarms/summary?include_suppress=True").body["critical"],
        1
    );
    assert_eq!(
        api.events("").len(),
        1,
        "suppressed ids leave the event log too"
    );
    assert_eq!(api.events("?include_suppress=True").len(), 2);

    // 200.001 is not suppressible.
    let locked = rows.iter().find(|r| r["alarm_id"] == "200.001").unwrap();
    let r = api.patch(
        &format!("/v1/event_suppression/{}", locked["uuid"].as_str().unwrap()),
        &json!([op]),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        api.patch("/v1/event_suppression/nope", &json!([op])).status,
        404
    );
    let bad = json!([{"op": "replace", "path": "/suppression_status", "value": "maybe"}]);
    assert_eq!(
        api.patch(&format!("/v1/event_suppression/{uuid}"), &bad)
            .status,
        400
    );

    s.restart();
    let api = s.api();
    assert_eq!(api.alarms("").len(), 1, "suppression is persistent");
    let un = json!([{"op": "replace", "path": "/suppression_status", "value": "unsuppressed"}]);
    assert_eq!(
        api.patch(&format!("/v1/event_suppression/{uuid}"), &un)
            .status,
        200
    );
    assert_eq!(api.alarms("").len(), 2);
}

#[test]
fn the_event_log_filters_by_kind_time_and_fields_and_pages() {
    let s = Server::start(bin());
    let api = s.api();
    api.set_alarm("100.101", "host=a", "major");
    let r = api.post(
        "/v1/alarms",
        &json!({"alarm_state": "log", "alarm_id": "200.020", "entity_instance_id": "host=a", "reason_text": "booted", "severity": "critical"}),
    );
    assert_eq!(r.status, 200);
    let log_uuid = r.body["uuid"].as_str().unwrap().to_string();
    let r = api.post(
        "/v1/alarms",
        &json!({"alarm_state": "msg", "alarm_id": "200.021", "entity_instance_id": "host=b", "timestamp": "2020-01-01T00:00:00"}),
    );
    assert_eq!(r.status, 200);
    api.post(
        "/v1/alarms",
        &json!({"alarm_state": "clear", "alarm_id": "100.101", "entity_instance_id": "host=a"}),
    );

    assert_eq!(api.alarms("").len(), 0, "logs never become alarms");
    assert_eq!(api.events("").len(), 4);
    assert_eq!(api.events("?alarms=True").len(), 2);
    assert_eq!(api.events("?logs=True").len(), 2);
    assert_eq!(api.events("?alarms=True&logs=True").len(), 4);
    assert_eq!(api.events("?q.field=event_log_id&q.value=200.02").len(), 2);
    assert_eq!(api.events("?q.field=state&q.value=clear").len(), 1);
    // start/end as StarlingX's client sends them (q fields) and as plain parameters.
    assert_eq!(
        api.events("?q.field=start&q.op=eq&q.type=&q.value=2021-01-01+00%3A00%3A00")
            .len(),
        3
    );
    assert_eq!(api.events("?end=2021-01-01T00:00:00").len(), 1);
    let shown = api.get(&format!("/v1/event_log/{log_uuid}"));
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["state"], "log");
    assert_eq!(shown.body["severity"], "critical");
    assert_eq!(api.get("/v1/event_log/nope").status, 404);
    // Newest first; the record stamped in 2020 is last.
    let all = api.events("");
    assert_eq!(all[3]["event_log_id"], "200.021");
    // Paging.
    let p1 = api.get("/v1/event_log?limit=3");
    assert_eq!(p1.body["event_log"].as_array().unwrap().len(), 3);
    let next = p1.body["next"].as_str().unwrap();
    let p2 = api.get(next.strip_prefix(&s.url).unwrap());
    assert_eq!(p2.body["event_log"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/v1/event_log?start=yesterday").status, 400);
}

#[test]
fn the_event_log_is_bounded_and_prunes_the_oldest() {
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--event-log-cap".into(), "10".into()],
            ..Default::default()
        },
    );
    let api = s.api();
    for i in 0..25 {
        api.set_alarm("100.104", &format!("host=h{i:02}.filesystem=/"), "major");
    }
    let ev = api.events("");
    assert_eq!(ev.len(), 10);
    assert_eq!(ev[0]["entity_instance_id"], "host=h24.filesystem=/");
    assert_eq!(ev[9]["entity_instance_id"], "host=h15.filesystem=/");
    assert_eq!(
        api.alarms("").len(),
        25,
        "pruning the log never touches alarms"
    );
}

#[test]
fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let s = Server::start(bin());
    let api = s.api();
    let good = api.set_alarm("100.101", "host=a", "major");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", b"{not json".to_vec(), 400),
        ("application/json", br#"{"alarm_id": 5, "entity_instance_id": "e", "severity": "major"}"#.to_vec(), 400),
        ("application/json", br#"{"alarm_id": "1", "entity_instance_id": "e", "severity": "huge"}"#.to_vec(), 400),
        ("application/json", br#"{"alarm_id": "1", "entity_instance_id": "e", "severity": "major", "colour": "red"}"#.to_vec(), 400),
        ("application/json", br#"{"alarm_id": "1", "entity_instance_id": "e"}"#.to_vec(), 400),
        ("application/json", br#"{"alarm_id": "1", "entity_instance_id": "e", "severity": "major", "service_affecting": "sometimes"}"#.to_vec(), 400),
        ("application/json", br#"{"alarm_id": "1", "entity_instance_id": "e", "severity": "major", "timestamp": "noon"}"#.to_vec(), 400),
        ("application/json", br#"[1, 2]"#.to_vec(), 400),
        ("application/json", Vec::new(), 400),
        ("text/plain", br#"{"alarm_id": "1"}"#.to_vec(), 415),
        ("application/json", format!(r#"{{"alarm_id": "1", "entity_instance_id": "e", "severity": "major", "reason_text": "{}"}}"#, "x".repeat(200_000)).into_bytes(), 413),
        ("application/json", format!(r#"{{"alarm_id": "1", "entity_instance_id": "e", "severity": "major", "reason_text": "{}"}}"#, "x".repeat(5000)).into_bytes(), 400),
    ];
    for (ct, body, want) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(80)]).to_string();
        let r = api.post_raw("/v1/alarms", ct, body);
        assert_eq!(r.status, want, "{preview}: {:?}", r.body);
        let msg = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(!msg.is_empty(), "{preview}: no message in {:?}", r.body);
        assert!(r.body["error_message"].is_string(), "system's error form");
    }
    for q in [
        "?limit=abc",
        "?limit=-1",
        "?sort_dir=sideways",
        "?sort_key=colour",
        "?q.field=colour&q.value=red",
        "?q.field=alarm_id&q.op=like&q.value=1",
        "?marker=nope",
        "?include_suppress=perhaps",
        "?limt=5",
    ] {
        let r = api.get(&format!("/v1/alarms{q}"));
        assert_eq!(r.status, 400, "{q}: {:?}", r.body);
    }
    let alarms = api.alarms("");
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0]["uuid"], good.as_str());
    assert_eq!(
        api.events("").len(),
        1,
        "no failed request reached the event log"
    );
    assert_eq!(api.get("/v1/nothing/here").status, 404);
}

#[test]
fn ids_outside_the_catalogue_are_accepted_with_defaults() {
    let s = Server::start(bin());
    let api = s.api();
    let u = api.set_alarm("999.123", "app=mine", "minor");
    let a = api.get(&format!("/v1/alarms/{u}")).body;
    assert_eq!(a["alarm_type"], "other");
    assert_eq!(a["mgmt_affecting"], "True");
    assert_eq!(a["degrade_affecting"], "False");
}

#[test]
fn the_real_starlingx_catalogue_loads_with_ids_as_written() {
    let path = shared_events_yaml();
    if !require_fixture_or_skip(path.is_some(), "../shared/starlingx/events.yaml") {
        return;
    }
    let path = path.expect("checked above");
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--alarm-catalogue".into(), path.display().to_string()],
            ..Default::default()
        },
    );
    let api = s.api();
    let rows = api.get("/v1/event_suppression").body["event_suppression"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["alarm_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"200.010"));
    assert!(!ids.contains(&"200.01"));
    // 135 alarms in StarlingX's file; Roost's own entries add a few ids it lacks.
    assert!(ids.len() >= 135, "{}", ids.len());
    assert!(
        s.log().contains("entries=331"),
        "the log reports 331 entries"
    );
    // mgmt_affecting comes from the loaded file: 100.101 is affecting from major up.
    let u = api.set_alarm("100.101", "host=a", "major");
    assert_eq!(
        api.get(&format!("/v1/alarms/{u}")).body["mgmt_affecting"],
        "True"
    );
}

#[test]
fn a_bad_catalogue_file_stops_the_server_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.yaml");
    std::fs::write(&f, "100.101:\n    Type: Alarm\n    Severity: apocalyptic\n").unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--no-monitor",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("d"))
        .arg("--alarm-catalogue")
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("100.101"), "{err}");
}

#[test]
fn a_path_parameter_that_is_not_utf8_gets_the_error_envelope() {
    let s = Server::start(bin());
    let api = s.api();
    for (method, path) in [
        ("GET", "/v1/alarms/%FF"),
        ("DELETE", "/v1/alarms/%FF%FE"),
        ("GET", "/v1/event_log/%C3%28"),
        ("PATCH", "/v1/event_suppression/%FF"),
        ("GET", "/v1/ihosts/%FF"),
        ("GET", "/v1/ihosts/%FF/icpus"),
        ("PATCH", "/v1/service_parameter/%FF"),
        ("GET", "/v1/idns/%FF"),
        ("POST", "/v3/users/%FF/password"),
    ] {
        let r = roost_test_support::http()
            .request(method.parse().unwrap(), format!("{}{path}", s.url))
            .header("X-Auth-Token", &api.token)
            .header("Content-Type", "application/json")
            .body("[]")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{method} {path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/json"), "{method} {path}: {ct}");
        let body: serde_json::Value = r.json().unwrap();
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("UTF-8"), "{method} {path}: {body}");
        assert!(body["error_message"].is_string(), "{method} {path}: {body}");
    }
    // A method the route does not serve also answers in the envelope.
    let r = api.patch("/v1/alarms", &json!({}));
    assert_eq!(r.status, 405);
    assert!(r.body["error"]["message"].is_string(), "{:?}", r.body);
}

/// A line of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

#[test]
fn what_one_alarm_carries_is_capped_and_full_listings_stay_small() {
    let s = Server::start(bin());
    let api = s.api();
    // Field lengths: StarlingX's 255 characters; repair actions up to 1024.
    let post = |field: &str, len: usize| {
        let mut b = json!({"alarm_id": "100.101", "entity_instance_id": "host=limits", "severity": "major"});
        b[field] = json!("r".repeat(len));
        api.post("/v1/alarms", &b)
    };
    for field in [
        "reason_text",
        "alarm_type",
        "probable_cause",
        "entity_type_id",
    ] {
        assert_eq!(post(field, 255).status, 200, "{field}");
        let r = post(field, 256);
        assert_eq!(r.status, 400, "{field}");
        let msg = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(field) && msg.contains("255"), "{msg}");
    }
    assert_eq!(post("proposed_repair_action", 1024).status, 200);
    assert_eq!(post("proposed_repair_action", 1025).status, 400);
    assert_eq!(api.alarms("").len(), 1);

    // Many alarms as large as allowed.
    let n = 4000;
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let api = api.clone();
            std::thread::spawn(move || {
                for i in (w..n).step_by(8) {
                    let r = api.post(
                        "/v1/alarms",
                        &json!({
                            "alarm_id": "100.104",
                            "entity_instance_id": format!("host=h{i}.filesystem=/"),
                            "severity": "major",
                            "reason_text": "x".repeat(255),
                            "proposed_repair_action": "y".repeat(1024),
                        }),
                    );
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // The stock fm client sends no limit: it still gets every alarm.
    let all = api.alarms("?expand=True");
    assert_eq!(all.len(), n + 1);
    assert_eq!(
        all[0]["proposed_repair_action"].as_str().unwrap().len(),
        1024
    );
    let paged = api.get("/v1/alarms?limit=3").body;
    assert_eq!(paged["alarms"].as_array().unwrap().len(), 3);
    assert!(paged["next"].as_str().unwrap().contains("marker="));

    // Eight unpaged expanded listings at once (5.5 MB each) do not each
    // hold a whole copy: they are written a chunk at a time.
    let baseline = status_kib(s.pid(), "VmHWM:");
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            std::thread::spawn(move || api.alarms("?expand=True").len())
        })
        .collect();
    for r in readers {
        assert_eq!(r.join().unwrap(), n + 1);
    }
    let peak = status_kib(s.pid(), "VmHWM:");
    // Whole documents would need 8 x (5.5 MB of JSON + the values it is
    // made from), over 80 MiB; chunks need well under 1 MiB per listing.
    assert!(
        peak < baseline + 24 * 1024,
        "peak {peak} KiB, {baseline} KiB before the listings"
    );
}

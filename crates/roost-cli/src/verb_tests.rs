//! The verbs end to end against a scripted fake server: the requests they
//! send, what they print, and how failures read.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::credentials::{CREDENTIALS_FILE, Env, NOT_LOGGED_IN};
use crate::testutil::{Canned, FakeServer, run_verb};

fn alarm(uuid: &str, id: &str, status: &str) -> serde_json::Value {
    json!({
        "uuid": uuid, "alarm_id": id, "entity_instance_id": "host=controller-0",
        "severity": "major", "timestamp": "2026-11-26T18:16:12.086207",
        "reason_text": "CPU high", "suppression_status": status,
        "mgmt_affecting": "False", "degrade_affecting": "False"
    })
}

#[test]
fn alarm_list_sends_the_token_and_prints_a_table() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"alarms": [alarm("a-1", "100.101", "suppressed"), alarm("a-2", "100.104", "unsuppressed")]}),
    )]);
    let outcome = run_verb(
        &[
            "alarm",
            "list",
            "--severity",
            "major",
            "--include-suppressed",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].target,
        "/v1/alarms?q.field=severity&q.op=eq&q.type=&q.value=major&include_suppress=True&expand=True"
    );
    assert_eq!(seen[0].header("x-auth-token"), Some("test-token"));
    assert!(outcome.out.contains("S(100.101)"), "{}", outcome.out);
    assert!(outcome.out.contains("100.104"));
}

#[test]
fn alarm_list_as_json_prints_the_bare_array() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"alarms": [alarm("a-1", "100.101", "unsuppressed")], "next": null}),
    )]);
    let outcome = run_verb(&["alarm", "list", "-o", "json"], &server.env(), "");
    server.finish();
    outcome.result.unwrap();
    let printed: serde_json::Value = serde_json::from_str(&outcome.out).unwrap();
    assert_eq!(printed, json!([alarm("a-1", "100.101", "unsuppressed")]));
}

#[test]
fn a_401_tells_the_user_to_log_in_again() {
    let server = FakeServer::start(vec![Canned::json(
        401,
        json!({"error": {"message": "The request you have made requires authentication.", "code": 401, "title": "Unauthorized"}}),
    )]);
    let outcome = run_verb(&["alarm", "summary"], &server.env(), "");
    server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(
        err.message(),
        "the server refused the token (expired or revoked); run `roost login` again"
    );
    assert_eq!(err.code(), 1);
}

#[test]
fn a_server_error_prints_the_envelope_message() {
    let server = FakeServer::start(vec![Canned::json(
        400,
        json!({"error": {"message": "Invalid limit: 0", "faultstring": "Invalid limit: 0", "title": "Bad Request", "code": 400},
               "error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid limit: 0\", \"debuginfo\": null}"}),
    )]);
    let outcome = run_verb(&["event", "list"], &server.env(), "");
    server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(err.message(), "invalid limit: 0");
    assert_eq!(err.code(), 1);
}

#[test]
fn showing_an_unknown_alarm_says_it_was_not_found() {
    let server = FakeServer::start(vec![Canned::json(
        404,
        json!({"error": {"message": "Alarm not found: 1234", "code": 404}}),
    )]);
    let outcome = run_verb(&["alarm", "show", "1234"], &server.env(), "");
    let seen = server.finish();
    assert_eq!(seen[0].target, "/v1/alarms/1234");
    assert_eq!(
        outcome.result.unwrap_err().message(),
        "no alarm with UUID 1234 (`roost alarm list` shows the UUIDs)"
    );
}

#[test]
fn alarm_show_prints_field_value_rows() {
    let mut full = alarm("a-1", "100.101", "unsuppressed");
    full["service_affecting"] = json!(false);
    full["created_at"] = json!("2026-11-26T18:16:12.086207");
    let server = FakeServer::start(vec![Canned::json(200, full)]);
    let outcome = run_verb(&["alarm", "show", "a-1"], &server.env(), "");
    server.finish();
    outcome.result.unwrap();
    for expected in [
        "Field",
        "Value",
        "alarm_id",
        "100.101",
        "service_affecting",
        "False",
        "created_at",
    ] {
        assert!(
            outcome.out.contains(expected),
            "{expected}: {}",
            outcome.out
        );
    }
}

#[test]
fn clearing_by_uuid_sends_a_delete_and_accepts_204() {
    let server = FakeServer::start(vec![Canned::empty(204)]);
    let outcome = run_verb(&["alarm", "clear", "a-1"], &server.env(), "");
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("DELETE", "/v1/alarms/a-1")
    );
    assert_eq!(outcome.out, "Cleared alarm a-1\n");
}

#[test]
fn clearing_an_entity_prefix_posts_a_clear_and_counts_the_cleared_alarms() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"uuid": "a-1", "cleared": ["a-1", "a-2", "a-3"]}),
    )]);
    let outcome = run_verb(
        &["alarm", "clear", "--entity", "host=controller-0"],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v1/alarms")
    );
    assert_eq!(
        seen[0].json(),
        json!({"alarm_state": "clear", "entity_instance_id": "host=controller-0"})
    );
    assert!(
        seen[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(outcome.out, "Cleared 3 alarms\n");
}

#[test]
fn an_invalid_clear_is_refused_before_any_request() {
    let outcome = run_verb(
        &["alarm", "clear", "a-1", "--entity", "host=x"],
        &Env::default(),
        "",
    );
    assert_eq!(outcome.result.unwrap_err().code(), 2);
}

#[test]
fn suppress_patches_every_known_id_after_checking_them_all() {
    let catalogue = json!({"event_suppression": [
        {"uuid": "s-1", "alarm_id": "100.101", "description": "CPU", "suppression_status": "unsuppressed", "links": []},
        {"uuid": "s-2", "alarm_id": "100.104", "description": "FS", "suppression_status": "unsuppressed", "links": []}
    ]});
    let server = FakeServer::start(vec![
        Canned::json(200, catalogue.clone()),
        Canned::json(200, json!({"uuid": "s-1"})),
        Canned::empty(204),
    ]);
    let outcome = run_verb(
        &["alarm", "suppress", "100.101", "100.104"],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[1].method, "PATCH");
    assert_eq!(seen[1].target, "/v1/event_suppression/s-1");
    assert_eq!(
        seen[1].json(),
        json!([{"op": "replace", "path": "/suppression_status", "value": "suppressed"}])
    );
    assert_eq!(seen[2].target, "/v1/event_suppression/s-2");
    assert_eq!(
        outcome.out,
        "Suppressed alarm ID 100.101\nSuppressed alarm ID 100.104\n"
    );

    // An unknown id stops everything before the first PATCH.
    let server = FakeServer::start(vec![Canned::json(200, catalogue)]);
    let outcome = run_verb(
        &["alarm", "unsuppress", "100.101", "999.999"],
        &server.env(),
        "",
    );
    let seen = server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(err.message(), "alarm id 999.999 is not in the catalogue");
    assert_eq!(seen.len(), 1, "no PATCH was sent");
    assert_eq!(outcome.out, "");
}

#[test]
fn without_credentials_the_user_is_told_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        roost_config_dir: Some(dir.path().into()),
        ..Env::default()
    };
    let err = run_verb(&["alarm", "list"], &env, "").result.unwrap_err();
    assert_eq!(err.message(), NOT_LOGGED_IN);
    assert_eq!(err.code(), 2);
}

#[test]
fn an_unreachable_server_is_reported_with_its_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let env = Env {
        roost_url: Some(format!("http://127.0.0.1:{port}")),
        roost_token: Some("t".into()),
        ..Env::default()
    };
    let err = run_verb(&["alarm", "list"], &env, "").result.unwrap_err();
    assert!(
        err.message()
            .starts_with(&format!("cannot reach http://127.0.0.1:{port}: ")),
        "{}",
        err.message()
    );
    assert_eq!(err.code(), 1);
}

#[test]
fn login_reads_piped_answers_stores_a_private_file_and_never_prints_secrets() {
    let server = FakeServer::start(vec![
        Canned::json(
            201,
            json!({"token": {"expires_at": "2026-11-27T18:16:12.000000Z"}}),
        )
        .with_header("X-Subject-Token", "tok-123"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cfg");
    let env = Env {
        roost_config_dir: Some(config.clone().into()),
        ..Env::default()
    };
    let url = server.url.clone();
    let input = format!("{url}/\nalice\ns3cret pw\n");
    let outcome = run_verb(&["login"], &env, &input);
    let seen = server.finish();
    outcome.result.unwrap();

    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v3/auth/tokens")
    );
    assert_eq!(seen[0].header("x-auth-token"), None);
    let user = &seen[0].json()["auth"]["identity"]["password"]["user"];
    assert_eq!(user["name"], "alice");
    assert_eq!(user["password"], "s3cret pw");

    assert_eq!(
        outcome.out,
        format!(
            "Logged in to {url} as alice (context {}; token expires 2026-11-27T18:16:12.000000Z)\n",
            crate::context::default_name(&url)
        )
    );
    for stream in [&outcome.out, &outcome.err] {
        assert!(!stream.contains("s3cret"));
        assert!(!stream.contains("tok-123"));
    }
    let path = config.join(crate::context::CONTEXTS_FILE);
    let contexts = crate::context::load(&path).unwrap();
    let stored = &contexts.contexts[0];
    assert_eq!(contexts.current.as_deref(), Some(stored.name.as_str()));
    assert_eq!(stored.token.as_deref(), Some("tok-123"));
    assert_eq!(
        stored.expires_at.as_deref(),
        Some("2026-11-27T18:16:12.000000Z")
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn login_with_password_stdin_asks_nothing_else_and_uses_the_flags() {
    let server = FakeServer::start(vec![
        Canned::json(
            201,
            json!({"token": {"expires_at": "2026-11-27T00:00:00Z"}}),
        )
        .with_header("X-Subject-Token", "tok"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        roost_config_dir: Some(dir.path().into()),
        ..Env::default()
    };
    let url = server.url.clone();
    let outcome = run_verb(&["login", "--url", &url, "--password-stdin"], &env, "pw\n");
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        seen[0].json()["auth"]["identity"]["password"]["user"]["name"],
        "admin"
    );
    let contexts = crate::context::load(&dir.path().join(crate::context::CONTEXTS_FILE)).unwrap();
    assert_eq!(contexts.contexts[0].url, url);
}

#[test]
fn a_refused_login_names_the_user_and_writes_nothing() {
    let server = FakeServer::start(vec![Canned::json(
        401,
        json!({"error": {"message": "The request you have made requires authentication.", "code": 401}}),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        roost_config_dir: Some(dir.path().into()),
        ..Env::default()
    };
    let outcome = run_verb(
        &[
            "login",
            "--url",
            &server.url,
            "--username",
            "bob",
            "--password-stdin",
        ],
        &env,
        "wrong\n",
    );
    server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(
        err.message(),
        "login as bob refused: the request you have made requires authentication"
    );
    assert!(!dir.path().join(CREDENTIALS_FILE).exists());
    assert!(!dir.path().join(crate::context::CONTEXTS_FILE).exists());
}

#[test]
fn stored_credentials_are_used_and_roost_url_overrides_only_the_url() {
    let server = FakeServer::start(vec![Canned::json(200, json!({"event_log": []}))]);
    let dir = tempfile::tempdir().unwrap();
    crate::credentials::write_credentials(
        &dir.path().join(CREDENTIALS_FILE),
        &crate::credentials::Credentials {
            url: "http://127.0.0.1:9".into(),
            token: "stored-token".into(),
            expires_at: None,
        },
    )
    .unwrap();
    let env = Env {
        roost_url: Some(server.url.clone()),
        roost_config_dir: Some(dir.path().into()),
        ..Env::default()
    };
    let outcome = run_verb(&["event", "list", "--alarms"], &env, "");
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[0].header("x-auth-token"), Some("stored-token"));
    assert_eq!(outcome.out, "No events\n");
}

#[test]
fn a_full_page_of_events_adds_a_hint_on_stderr_only() {
    let event = json!({
        "uuid": "e-1", "event_log_id": "200.001", "state": "log",
        "entity_instance_id": "host=compute-1", "severity": "not-applicable",
        "timestamp": "2026-11-26T18:16:12.086207", "reason_text": "locked",
        "suppression_status": "unsuppressed"
    });
    let server = FakeServer::start(vec![Canned::json(200, json!({"event_log": [event]}))]);
    let outcome = run_verb(&["event", "list", "--limit", "1"], &server.env(), "");
    server.finish();
    outcome.result.unwrap();
    assert!(outcome.out.contains("200.001"));
    assert!(!outcome.out.contains("more may exist"));
    assert!(
        outcome
            .err
            .contains("the newest 1 event shown; more may exist"),
        "{}",
        outcome.err
    );
}

fn host(id: i64, name: &str, admin: &str, oper: &str, avail: &str) -> serde_json::Value {
    json!({
        "id": id, "uuid": format!("00000000-0000-4000-8000-00000000000{id}"),
        "hostname": name, "personality": if name.starts_with("controller") { "controller" } else { "worker" },
        "subfunctions": "worker", "administrative": admin, "operational": oper,
        "availability": avail, "task": "", "mgmt_ip": null, "bm_type": "none",
        "bm_ip": null, "bm_username": null, "uptime": 0, "mnfa_hold": false,
        "created_at": "2026-11-26T18:16:12.086207", "updated_at": null
    })
}

#[test]
fn host_list_prints_the_hosts_sorted_by_id_in_a_table() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"ihosts": [
            host(3, "worker-2", "locked", "disabled", "offline"),
            host(1, "controller-0", "unlocked", "enabled", "available"),
            host(2, "worker-1", "unlocked", "enabled", "degraded"),
        ]}),
    )]);
    let outcome = run_verb(&["host", "list"], &server.env(), "");
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/v1/ihosts")
    );
    assert_eq!(seen[0].header("x-auth-token"), Some("test-token"));
    let out = &outcome.out;
    for header in [
        "ID",
        "Hostname",
        "Personality",
        "Administrative",
        "Operational",
        "Availability",
    ] {
        assert!(out.contains(header), "{header}: {out}");
    }
    assert!(!out.contains("Task"), "no host has a task: {out}");
    let pos = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s}: {out}"));
    assert!(pos("controller-0") < pos("worker-1"));
    assert!(pos("worker-1") < pos("worker-2"));
    assert!(out.contains("degraded"));
}

#[test]
fn host_add_prints_the_join_token_and_the_agent_command() {
    let mut added = host(4, "worker-3", "locked", "disabled", "offline");
    added["join_token"] = json!("tok_ABC-123");
    let server = FakeServer::start(vec![Canned::json(200, added.clone())]);
    let url = server.url.clone();
    let outcome = run_verb(
        &[
            "host",
            "add",
            "worker-3",
            "--personality",
            "worker",
            "--mgmt-ip",
            "192.168.204.13",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v1/ihosts")
    );
    assert_eq!(
        seen[0].json(),
        json!({"hostname": "worker-3", "personality": "worker", "mgmt_ip": "192.168.204.13"})
    );
    assert!(outcome.out.contains("worker-3"), "{}", outcome.out);
    assert!(
        outcome.out.contains("\n    tok_ABC-123\n"),
        "{}",
        outcome.out
    );
    assert!(
        outcome.out.contains(&format!(
            "\n    roost agent --server {url} --join-token tok_ABC-123\n"
        )),
        "{}",
        outcome.out
    );
    // The fake server listens on 127.0.0.1: the user is told that the new
    // host needs another address.
    assert!(outcome.err.contains("loopback"), "{}", outcome.err);

    // With -o json, the object itself, token included.
    let server = FakeServer::start(vec![Canned::json(200, added.clone())]);
    let outcome = run_verb(
        &[
            "host",
            "add",
            "worker-3",
            "--personality",
            "worker",
            "-o",
            "json",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        seen[0].json(),
        json!({"hostname": "worker-3", "personality": "worker"})
    );
    let printed: serde_json::Value = serde_json::from_str(&outcome.out).unwrap();
    assert_eq!(printed, added);
}

#[test]
fn host_lock_sends_the_lock_action_and_prints_the_new_states() {
    let server = FakeServer::start(vec![
        Canned::json(200, host(2, "worker-1", "locked", "disabled", "online")),
        Canned::json(200, host(2, "worker-1", "locked", "disabled", "online")),
    ]);
    let outcome = run_verb(&["host", "lock", "worker-1"], &server.env(), "");
    outcome.result.unwrap();
    assert_eq!(outcome.out, "worker-1: locked/disabled/online\n");
    let forced = run_verb(&["host", "lock", "worker-1", "--force"], &server.env(), "");
    forced.result.unwrap();
    let seen = server.finish();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("PATCH", "/v1/ihosts/worker-1")
    );
    assert_eq!(
        seen[0].json(),
        json!([{"op": "replace", "path": "/action", "value": "lock"}])
    );
    assert_eq!(
        seen[1].json(),
        json!([{"op": "replace", "path": "/action", "value": "force-lock"}])
    );
}

#[test]
fn a_refused_host_action_prints_the_server_message() {
    let server = FakeServer::start(vec![Canned::json(
        400,
        json!({"error": {"message": "cannot lock controller-0: it is the only controller", "code": 400}}),
    )]);
    let outcome = run_verb(&["host", "lock", "controller-0"], &server.env(), "");
    server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(
        err.message(),
        "cannot lock controller-0: it is the only controller"
    );
    assert_eq!(err.code(), 1);
    assert_eq!(outcome.out, "");
}

#[test]
fn showing_an_unknown_host_says_host_not_found() {
    let server = FakeServer::start(vec![Canned::json(
        404,
        json!({"error": {"message": "no host with name, ID or UUID worker-9 (`roost host list` lists the hosts)", "code": 404}}),
    )]);
    let outcome = run_verb(&["host", "show", "worker-9"], &server.env(), "");
    let seen = server.finish();
    assert_eq!(seen[0].target, "/v1/ihosts/worker-9");
    assert_eq!(
        outcome.result.unwrap_err().message(),
        "no host with name, ID or UUID worker-9 (`roost host list` lists the hosts)"
    );
}

#[test]
fn host_bmc_reads_the_password_from_stdin_and_sends_it_with_the_username_without_echoing_it() {
    let mut updated = host(2, "worker-1", "locked", "disabled", "online");
    updated["bm_type"] = json!("redfish");
    updated["bm_ip"] = json!("10.0.0.9:8000");
    updated["bm_username"] = json!("root");
    let server = FakeServer::start(vec![Canned::json(200, updated)]);
    let outcome = run_verb(
        &[
            "host",
            "bmc",
            "worker-1",
            "--type",
            "redfish",
            "--ip",
            "10.0.0.9:8000",
            "--username",
            "root",
            "--password-stdin",
        ],
        &server.env(),
        "s3cret-pw\nnot this line\n",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen.len(), 1, "one patch carries everything");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("PATCH", "/v1/ihosts/worker-1")
    );
    assert_eq!(
        seen[0].json(),
        json!([
            {"op": "replace", "path": "/bm_type", "value": "redfish"},
            {"op": "replace", "path": "/bm_ip", "value": "10.0.0.9:8000"},
            {"op": "replace", "path": "/bm_username", "value": "root"},
            {"op": "replace", "path": "/bm_password", "value": "s3cret-pw"}
        ])
    );
    for stream in [&outcome.out, &outcome.err] {
        assert!(!stream.contains("s3cret"), "{stream}");
    }
    for shown in ["redfish", "10.0.0.9:8000", "root", "bm_username"] {
        assert!(outcome.out.contains(shown), "{shown}: {}", outcome.out);
    }
}

#[test]
fn host_bmc_reads_the_password_from_the_named_variable() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        host(2, "worker-1", "locked", "disabled", "online"),
    )]);
    let env = crate::credentials::Env {
        vars: crate::credentials::Vars::default().with("BMC_PW", "from-env"),
        ..server.env()
    };
    let outcome = run_verb(
        &[
            "host",
            "bmc",
            "2",
            "--type",
            "ipmi",
            "--ip",
            "10.0.0.9",
            "--username",
            "admin",
            "--password-env",
            "BMC_PW",
        ],
        &env,
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[0].target, "/v1/ihosts/2");
    assert_eq!(seen[0].json()[3]["value"], "from-env");
    assert!(!outcome.out.contains("from-env"));

    // An unset variable stops before any request.
    let server = FakeServer::start(vec![]);
    let outcome = run_verb(
        &[
            "host",
            "bmc",
            "2",
            "--type",
            "ipmi",
            "--ip",
            "10.0.0.9",
            "--username",
            "admin",
            "--password-env",
            "NOPE",
        ],
        &server.env(),
        "",
    );
    assert!(server.finish().is_empty());
    let err = outcome.result.unwrap_err();
    assert_eq!(err.message(), "environment variable NOPE is not set");
    assert_eq!(err.code(), 2);
}

fn parameter(uuid: &str, name: &str, value: &str) -> serde_json::Value {
    json!({"uuid": uuid, "service": "platform", "section": "maintenance", "name": name,
           "value": value, "personality": null, "resource": null})
}

#[test]
fn heartbeat_set_patches_each_setting_by_uuid_then_applies() {
    let server = FakeServer::start(vec![
        Canned::json(
            200,
            json!({"parameters": [
                parameter("p-1", "heartbeat_period", "100"),
                parameter("p-2", "heartbeat_failure_threshold", "10"),
                parameter("p-3", "heartbeat_degrade_threshold", "6"),
                {"uuid": "o-1", "service": "platform", "section": "other", "name": "heartbeat_period", "value": "x"}
            ]}),
        ),
        Canned::json(200, parameter("p-1", "heartbeat_period", "200")),
        Canned::json(200, parameter("p-2", "heartbeat_failure_threshold", "20")),
        Canned::json(
            200,
            json!({"service": "platform", "section": "maintenance"}),
        ),
    ]);
    let outcome = run_verb(
        &[
            "heartbeat",
            "set",
            "heartbeat_period=200",
            "heartbeat_failure_threshold=20",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    let requests: Vec<_> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.target.as_str()))
        .collect();
    assert_eq!(
        requests,
        [
            ("GET", "/v1/service_parameter"),
            ("PATCH", "/v1/service_parameter/p-1"),
            ("PATCH", "/v1/service_parameter/p-2"),
            ("POST", "/v1/service_parameter/apply"),
        ]
    );
    assert_eq!(
        seen[1].json(),
        json!([{"op": "replace", "path": "/value", "value": "200"}])
    );
    assert_eq!(
        seen[2].json(),
        json!([{"op": "replace", "path": "/value", "value": "20"}])
    );
    assert_eq!(
        seen[3].json(),
        json!({"service": "platform", "section": "maintenance"})
    );
    for shown in [
        "heartbeat_period",
        "200",
        "heartbeat_failure_threshold",
        "20",
    ] {
        assert!(outcome.out.contains(shown), "{shown}: {}", outcome.out);
    }
}

#[test]
fn an_unknown_heartbeat_setting_is_refused_before_any_request() {
    let server = FakeServer::start(vec![]);
    let outcome = run_verb(
        &["heartbeat", "set", "heartbeat_period=200", "pulse=5"],
        &server.env(),
        "",
    );
    assert!(server.finish().is_empty(), "nothing was sent");
    let err = outcome.result.unwrap_err();
    assert!(
        err.message().starts_with(
            "unknown heartbeat setting pulse; known: heartbeat_period, heartbeat_degrade_threshold, "
        ),
        "{}",
        err.message()
    );
    assert_eq!(err.code(), 2);
}

#[test]
fn a_refused_heartbeat_value_prints_the_server_message_and_skips_the_apply() {
    let server = FakeServer::start(vec![
        Canned::json(
            200,
            json!({"parameters": [parameter("p-1", "heartbeat_period", "100")]}),
        ),
        Canned::json(
            400,
            json!({"error": {"message": "heartbeat_period must be between 10 and 1000 (got 5)", "code": 400}}),
        ),
    ]);
    let outcome = run_verb(
        &["heartbeat", "set", "heartbeat_period=5"],
        &server.env(),
        "",
    );
    let seen = server.finish();
    assert_eq!(seen.len(), 2, "no apply after a refused value");
    let err = outcome.result.unwrap_err();
    assert_eq!(
        err.message(),
        "heartbeat_period must be between 10 and 1000 (got 5)"
    );
    assert_eq!(err.code(), 1);
}

#[test]
fn heartbeat_show_lists_the_maintenance_settings_in_order() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"parameters": [
            parameter("p-2", "worker_boot_timeout", "720"),
            parameter("p-1", "heartbeat_period", "100"),
        ]}),
    )]);
    let outcome = run_verb(&["heartbeat", "show"], &server.env(), "");
    server.finish();
    outcome.result.unwrap();
    let out = &outcome.out;
    assert!(out.contains("Name") && out.contains("Value"), "{out}");
    assert!(out.find("heartbeat_period").unwrap() < out.find("worker_boot_timeout").unwrap());
}

fn subcloud(id: i64, name: &str, management: &str, availability: &str) -> serde_json::Value {
    json!({
        "id": id, "name": name, "description": null, "location": null,
        "software-version": null, "management-state": management,
        "availability-status": availability, "deploy-status": "complete",
        "error-description": "", "region-name": "0f1e2d3c", "group_id": 1,
        "management-subnet": null, "management-start-ip": null,
        "management-end-ip": null, "management-gateway-ip": null,
        "systemcontroller-gateway-ip": null,
        "created-at": "2026-11-26 18:16:12.086207", "updated-at": null,
        "sync_status": if availability == "online" { "in-sync" } else { "unknown" },
        "endpoint_sync_status": [{"endpoint_type": "platform", "sync_status": "in-sync"}]
    })
}

/// What Roost's dcmanager endpoints send for an unknown subcloud.
const SUBCLOUD_NOT_FOUND_PAGE: &str = "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  The resource could not be found.<br /><br />\nSubcloud not found\n </body>\n</html>";

#[test]
fn subcloud_list_prints_the_subclouds_sorted_by_id_in_a_table() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"subclouds": [
            subcloud(2, "edge-2", "unmanaged", "offline"),
            subcloud(1, "edge-1", "managed", "online"),
        ]}),
    )]);
    let outcome = run_verb(&["subcloud", "list"], &server.env(), "");
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/v1.0/subclouds/")
    );
    assert_eq!(seen[0].header("x-auth-token"), Some("test-token"));
    let out = &outcome.out;
    for shown in [
        "ID",
        "Name",
        "Management",
        "Availability",
        "Deploy status",
        "Sync",
        "managed",
        "online",
        "complete",
        "in-sync",
        "unmanaged",
        "offline",
    ] {
        assert!(out.contains(shown), "{shown}: {out}");
    }
    let pos = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s}: {out}"));
    assert!(pos("edge-1") < pos("edge-2"));
}

#[test]
fn subcloud_add_prints_the_enrollment_token_and_the_command_to_run_on_the_subcloud() {
    let mut added = subcloud(3, "edge-3", "unmanaged", "offline");
    added["deploy-status"] = json!("not-deployed");
    added["enroll_token"] = json!("fp1234.tok_ABC-9");
    let server = FakeServer::start(vec![Canned::json(200, added.clone())]);
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let outcome = run_verb(
        &[
            "subcloud",
            "add",
            "edge-3",
            "--group",
            "edge-sites",
            "--description",
            "store 42",
            "--location",
            "Ottawa",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v1.0/subclouds/")
    );
    assert_eq!(
        seen[0].json(),
        json!({"name": "edge-3", "description": "store 42", "location": "Ottawa", "group_id": "edge-sites"})
    );
    let out = &outcome.out;
    assert!(out.contains("not-deployed"), "{out}");
    assert!(out.contains("\n    fp1234.tok_ABC-9\n"), "{out}");
    // The DC listener is on the API's host but port 6386, and over TLS.
    assert!(
        out.contains(
            "\n    roost server --role subcloud --system-controller https://127.0.0.1:6386 --enroll-token fp1234.tok_ABC-9\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("the system controller's DC address, port 6386 by default"),
        "{out}"
    );
    assert!(
        !out.contains(&format!(":{port} --enroll")),
        "not the API port: {out}"
    );
    assert!(outcome.err.contains("loopback"), "{}", outcome.err);

    // With -o json, the object itself, token included; a numeric group is sent as a number.
    let server = FakeServer::start(vec![Canned::json(200, added.clone())]);
    let outcome = run_verb(
        &["subcloud", "add", "edge-3", "--group", "2", "-o", "json"],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[0].json(), json!({"name": "edge-3", "group_id": 2}));
    let printed: serde_json::Value = serde_json::from_str(&outcome.out).unwrap();
    assert_eq!(printed, added);
}

#[test]
fn subcloud_manage_and_unmanage_patch_the_management_state_and_print_the_states() {
    let server = FakeServer::start(vec![
        Canned::json(200, subcloud(1, "edge-1", "managed", "online")),
        Canned::json(200, subcloud(1, "edge-1", "unmanaged", "online")),
    ]);
    let managed = run_verb(&["subcloud", "manage", "edge-1"], &server.env(), "");
    managed.result.unwrap();
    assert_eq!(managed.out, "edge-1: managed/online/complete/in-sync\n");
    let unmanaged = run_verb(&["subcloud", "unmanage", "edge-1"], &server.env(), "");
    unmanaged.result.unwrap();
    assert_eq!(unmanaged.out, "edge-1: unmanaged/online/complete/in-sync\n");
    let seen = server.finish();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("PATCH", "/v1.0/subclouds/edge-1")
    );
    assert_eq!(seen[0].json(), json!({"management-state": "managed"}));
    assert!(
        seen[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(seen[1].json(), json!({"management-state": "unmanaged"}));
}

#[test]
fn an_html_404_page_is_printed_as_its_detail_line() {
    let server = FakeServer::start(vec![Canned::html(404, SUBCLOUD_NOT_FOUND_PAGE)]);
    let outcome = run_verb(&["subcloud", "show", "edge-9"], &server.env(), "");
    let seen = server.finish();
    assert_eq!(seen[0].target, "/v1.0/subclouds/edge-9");
    let err = outcome.result.unwrap_err();
    assert_eq!(
        err.message(),
        "no subcloud with name or ID edge-9 (`roost subcloud list` lists the subclouds)"
    );
    assert_eq!(err.code(), 1);
    assert_eq!(outcome.out, "");
}

#[test]
fn an_html_400_page_from_a_refused_delete_is_printed_as_its_detail_line() {
    let page = SUBCLOUD_NOT_FOUND_PAGE
        .replace("404 Not Found", "400 Bad Request")
        .replace(
            "The resource could not be found.",
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        )
        .replace(
            "Subcloud not found",
            "Cannot delete a subcloud that is &quot;managed&quot;",
        );
    let server = FakeServer::start(vec![Canned::html(400, &page), Canned::json(200, json!({}))]);
    let refused = run_verb(&["subcloud", "delete", "edge-1"], &server.env(), "");
    assert_eq!(
        refused.result.unwrap_err().message(),
        r#"cannot delete a subcloud that is "managed""#
    );
    let deleted = run_verb(&["subcloud", "delete", "edge-1"], &server.env(), "");
    deleted.result.unwrap();
    assert_eq!(deleted.out, "Deleted subcloud edge-1\n");
    let seen = server.finish();
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("DELETE", "/v1.0/subclouds/edge-1")
    );
}

#[test]
fn subcloud_update_with_nothing_to_change_is_a_usage_error_before_any_request() {
    let server = FakeServer::start(vec![]);
    let outcome = run_verb(&["subcloud", "update", "edge-1"], &server.env(), "");
    assert!(server.finish().is_empty(), "nothing was sent");
    let err = outcome.result.unwrap_err();
    assert!(
        err.message().starts_with("nothing to update"),
        "{}",
        err.message()
    );
    assert_eq!(err.code(), 2);
}

#[test]
fn subcloud_update_patches_only_the_given_fields_and_prints_the_subcloud() {
    let mut updated = subcloud(1, "edge-1", "managed", "online");
    updated["location"] = json!("Ottawa");
    let server = FakeServer::start(vec![Canned::json(200, updated)]);
    let outcome = run_verb(
        &[
            "subcloud",
            "update",
            "1",
            "--location",
            "Ottawa",
            "--group",
            "3",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("PATCH", "/v1.0/subclouds/1")
    );
    assert_eq!(seen[0].json(), json!({"location": "Ottawa", "group_id": 3}));
    for shown in ["location", "Ottawa", "platform_sync_status"] {
        assert!(outcome.out.contains(shown), "{shown}: {}", outcome.out);
    }
}

#[test]
fn subcloud_alarms_lists_what_the_subcloud_reported() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"alarms": [{"alarm_id": "100.101", "entity_instance_id": "host=controller-0",
                           "severity": "major", "reason_text": "CPU high",
                           "timestamp": "2026-11-26T18:16:12.086207"}]}),
    )]);
    let outcome = run_verb(&["subcloud", "alarms", "edge-1"], &server.env(), "");
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[0].target, "/v1.0/subclouds/edge-1/alarms");
    for shown in [
        "100.101",
        "major",
        "host=controller-0",
        "CPU high",
        "2026-11-26 18:16:12",
    ] {
        assert!(outcome.out.contains(shown), "{shown}: {}", outcome.out);
    }
}

#[test]
fn dc_alarms_prints_a_dash_for_the_counts_of_an_unreachable_subcloud() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        json!({"alarm_summary": [
            {"region_name": "edge-1", "critical_alarms": 0, "major_alarms": 2,
             "minor_alarms": 0, "warnings": 1, "cloud_status": "degraded"},
            {"region_name": "edge-2", "critical_alarms": -1, "major_alarms": -1,
             "minor_alarms": -1, "warnings": -1, "cloud_status": "disabled"}
        ]}),
    )]);
    let outcome = run_verb(&["dc", "alarms"], &server.env(), "");
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/v1.0/alarms/")
    );
    let out = &outcome.out;
    // The cells of the row naming `region`, trimmed.
    let cells = |region: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.contains(region))
            .unwrap_or_else(|| panic!("{region}: {out}"))
            .trim_matches(|c| c == '|' || c == ' ')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    assert_eq!(
        cells("edge-2"),
        ["edge-2", "-", "-", "-", "-", "disabled"],
        "{out}"
    );
    assert_eq!(
        cells("edge-1"),
        ["edge-1", "0", "2", "0", "1", "degraded"],
        "{out}"
    );
}

#[test]
fn subcloud_group_add_posts_the_settings_and_prints_the_group() {
    let group = json!({"id": 2, "name": "edge-sites", "description": "No description provided",
                       "update_apply_type": "serial", "max_parallel_subclouds": 5,
                       "created-at": "2026-11-26 18:16:12.086207", "updated-at": null});
    let server = FakeServer::start(vec![Canned::json(200, group)]);
    let outcome = run_verb(
        &[
            "subcloud-group",
            "add",
            "--name",
            "edge-sites",
            "--update-apply-type",
            "serial",
            "--max-parallel-subclouds",
            "5",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v1.0/subcloud-groups/")
    );
    assert_eq!(
        seen[0].json(),
        json!({"name": "edge-sites", "update_apply_type": "serial", "max_parallel_subclouds": 5})
    );
    for shown in [
        "update_apply_type",
        "serial",
        "max_parallel_subclouds",
        "edge-sites",
    ] {
        assert!(outcome.out.contains(shown), "{shown}: {}", outcome.out);
    }
}

#[test]
fn subcloud_group_subclouds_lists_the_members_and_update_with_nothing_is_refused() {
    let server = FakeServer::start(vec![
        Canned::json(200, json!({"subclouds": []})),
        Canned::json(
            200,
            json!({"subclouds": [subcloud(1, "edge-1", "managed", "online")]}),
        ),
    ]);
    let empty = run_verb(
        &["subcloud-group", "subclouds", "edge-sites"],
        &server.env(),
        "",
    );
    empty.result.unwrap();
    assert_eq!(empty.out, "No subclouds in group edge-sites.\n");
    let one = run_verb(&["subcloud-group", "subclouds", "1"], &server.env(), "");
    one.result.unwrap();
    assert!(one.out.contains("edge-1"), "{}", one.out);
    let seen = server.finish();
    assert_eq!(seen[0].target, "/v1.0/subcloud-groups/edge-sites/subclouds");
    assert_eq!(seen[1].target, "/v1.0/subcloud-groups/1/subclouds");

    let server = FakeServer::start(vec![]);
    let outcome = run_verb(
        &["subcloud-group", "update", "edge-sites"],
        &server.env(),
        "",
    );
    assert!(server.finish().is_empty());
    assert_eq!(outcome.result.unwrap_err().code(), 2);
}

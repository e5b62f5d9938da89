//! A cloud on PostgreSQL end to end: `roost store migrate` moves a stopped
//! cloud's embedded store into an empty PostgreSQL database and the cloud
//! starts on it with everything it had; bad input is refused with a clear
//! message and nothing is written; a server whose PostgreSQL is unreachable
//! says so without printing the password.
//!
//! The PostgreSQL server is the test command's (`ROOST_TEST_POSTGRES`); the
//! other end-to-end suites also run on it with `ROOST_TEST_STORE=postgres`.

use std::path::Path;
use std::process::Command;

use roost_test_support::{
    EMBEDDED_STORE, Server, ServerOptions, postgres_available, postgres_store, wait_for,
};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn roost(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("ROOST_STORE")
        .env_remove("ROOST_CONFIG")
        .output()
        .expect("run roost");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a cloud shows that a migration must carry: alarms, suppression,
/// events, hosts, users.
fn view(s: &Server) -> Value {
    let api = s.api();
    let mut alarms: Vec<Value> = api
        .alarms("?include_suppress=True")
        .into_iter()
        .map(|a| {
            json!([
                a["uuid"],
                a["alarm_id"],
                a["entity_instance_id"],
                a["severity"]
            ])
        })
        .collect();
    alarms.sort_by_key(|a| a.to_string());
    let events: Vec<Value> = api
        .events("?include_suppress=True&limit=1000")
        .into_iter()
        .map(|e| e["uuid"].clone())
        .collect();
    let hosts = api.get("/v1/ihosts").body["ihosts"].clone();
    let hosts: Vec<Value> = hosts
        .as_array()
        .expect("ihosts")
        .iter()
        .map(|h| {
            json!([
                h["id"],
                h["uuid"],
                h["hostname"],
                h["personality"],
                h["location"]
            ])
        })
        .collect();
    let users: Vec<Value> = api.get("/v3/users").body["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| json!([u["id"], u["name"], u["roles"], u["enabled"]]))
        .collect();
    let suppression: Vec<Value> = api.get("/v1/event_suppression").body["event_suppression"]
        .as_array()
        .expect("event_suppression")
        .iter()
        .map(|r| json!([r["uuid"], r["alarm_id"], r["suppression_status"]]))
        .collect();
    json!({"alarms": alarms, "events": events, "hosts": hosts, "users": users, "suppression": suppression})
}

#[test]
fn migrate_moves_a_stopped_cloud_to_postgres_and_it_carries_on_there() {
    if !postgres_available() {
        return;
    }
    let mut s = Server::start_with(
        bin(),
        ServerOptions {
            // The cloud starts on its embedded store whatever the suite runs on.
            store: Some(EMBEDDED_STORE.into()),
            ..Default::default()
        },
    );
    wait_for(10, || s.log().contains("store=\"sqlite\"").then_some(()))
        .expect("the source cloud runs on its embedded store");
    let api = s.api();
    for i in 0..30 {
        api.set_alarm("100.104", &format!("host=w{i}.filesystem=/"), "major");
    }
    api.set_alarm("100.101", "host=w1", "critical");
    let rows = api.get("/v1/event_suppression?q.field=alarm_id&q.value=100.101");
    let uuid = rows.body["event_suppression"][0]["uuid"]
        .as_str()
        .expect("a suppression row for 100.101")
        .to_string();
    let r = api.patch(
        &format!("/v1/event_suppression/{uuid}"),
        &json!([{"op": "replace", "path": "/suppression_status", "value": "suppressed"}]),
    );
    assert!(r.status < 300, "{:?}", r.body);
    for name in ["worker-1", "worker-2"] {
        let r = api.post(
            "/v1/ihosts",
            &json!({"hostname": name, "personality": "worker", "location": {"locn": "rack 7"}}),
        );
        assert!(r.status < 300, "{:?}", r.body);
    }
    let r = api.post(
        "/v3/users",
        &json!({"user": {"name": "operator", "password": "Operator-pass-1"}}),
    );
    assert!(r.status < 300, "{:?}", r.body);
    let before = view(&s);
    // 31 set here, and what adding the hosts raised.
    let n_alarms = before["alarms"].as_array().unwrap().len();
    assert!(n_alarms >= 31, "{before:#}");

    // A running cloud holds its data directory: migrating it is refused.
    let url = postgres_store();
    let data = s.data_dir.display().to_string();
    let (ok, _, err) = roost(&["store", "migrate", "--from", &data, "--to", &url]);
    assert!(!ok && err.contains("in use"), "{err}");

    s.terminate();
    let (ok, out, err) = roost(&["store", "migrate", "--from", &data, "--to", &url]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("every table holds the same rows"), "{out}");
    let alarms_line = out
        .lines()
        .find(|l| l.starts_with("alarms "))
        .expect("a line for the alarms table");
    assert!(
        alarms_line.contains(&format!(" {n_alarms} rows")),
        "{alarms_line}"
    );

    // The cloud starts again on PostgreSQL with all it had, and writes there.
    let mut pg = Server::start_in(
        bin(),
        &s.data_dir,
        ServerOptions {
            store: Some(url.clone()),
            ..Default::default()
        },
        None,
    )
    .expect("the cloud starts on PostgreSQL");
    wait_for(10, || pg.log().contains("store=\"postgres\"").then_some(()))
        .unwrap_or_else(|| panic!("the cloud runs on PostgreSQL: {}", pg.log()));
    let after = view(&pg);
    for key in ["alarms", "hosts", "users", "suppression"] {
        assert_eq!(after[key], before[key], "{key} after the move");
    }
    // The event log holds every record it had, in order, after what the
    // start itself logged.
    let (events, was) = (
        after["events"].as_array().unwrap(),
        before["events"].as_array().unwrap(),
    );
    assert!(events.ends_with(was), "{events:?}\nwas {was:?}");
    let api = pg.api();
    let new = api.set_alarm("100.104", "host=after-move.filesystem=/", "minor");
    let r = api.post(
        "/v1/ihosts",
        &json!({"hostname": "worker-3", "personality": "worker"}),
    );
    assert!(r.status < 300, "{:?}", r.body);
    let id = r.body["id"].as_i64().expect("id");
    assert!(id > 3, "ids go on after the moved hosts: {id}");
    pg.restart();
    assert!(
        pg.api()
            .alarms("")
            .iter()
            .any(|a| a["uuid"].as_str() == Some(new.as_str()))
    );

    // The database now holds data: a second move into it is refused and
    // changes nothing.
    pg.terminate();
    let (ok, _, err) = roost(&["store", "migrate", "--from", &data, "--to", &url]);
    assert!(!ok && err.contains("not empty"), "{err}");
}

#[test]
fn migrate_refuses_bad_input_with_a_message() {
    if !postgres_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().display().to_string();
    let url = postgres_store();
    let cases: &[(&[&str], &str)] = &[
        (
            &["store", "migrate", "--from", &empty, "--to", &url],
            "no store at",
        ),
        (
            &["store", "migrate", "--from", &empty, "--to", "/tmp/x.db"],
            "is not a postgres:// URL",
        ),
        (
            &[
                "store",
                "migrate",
                "--from",
                &empty,
                "--to",
                "mysql://root:hunter2@db/x",
            ],
            "neither a postgres:// URL",
        ),
    ];
    for (args, want) in cases {
        let (ok, out, err) = roost(args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "a password was printed: {err}");
    }
}

#[test]
fn a_server_whose_postgres_is_unreachable_says_so_without_the_password() {
    if !postgres_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "server",
            "--no-monitor",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(["--store", "postgres://roost:hunter2@127.0.0.1:1/roost"])
        .env_remove("ROOST_STORE")
        .env_remove("ROOST_CONFIG")
        .output()
        .expect("run roost server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot open the store postgres://roost:***@127.0.0.1:1/roost"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let out = Command::new(bin())
        .args([
            "server",
            "--no-monitor",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(["--store", "sqlite:///tmp/x"])
        .env_remove("ROOST_STORE")
        .output()
        .expect("run roost server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("use a postgres:// URL"), "{err}");
}

//! The audit log end to end: what the real server records, `roost audit
//! verify` against a tampered store (offline and through the API after a
//! restart), retention, and a subcloud's records reaching its system
//! controller.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use roost_test_support::{Api, EMBEDDED_STORE, PASSWORD, Server, ServerOptions, http, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// Runs the CLI against `url` with `token` (no credentials file).
fn cli(url: &str, token: &str, args: &[&str]) -> Output {
    let config = tempfile::tempdir().unwrap();
    Command::new(bin())
        .args(args)
        .env("ROOST_CONFIG_DIR", config.path())
        .env("ROOST_URL", url)
        .env("ROOST_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn records(api: &Api, query: &str) -> Vec<Value> {
    let r = api.get(&format!("/v1/audit{query}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["records"].as_array().unwrap().clone()
}

/// Waits until a record with `path` is committed; returns every record.
fn wait_path(api: &Api, path: &str) -> Vec<Value> {
    wait_for(30, || {
        let all = records(api, "?limit=10000");
        all.iter().any(|r| r["path"] == path).then_some(all)
    })
    .unwrap_or_else(|| panic!("no audit record for {path}"))
}

/// A mutating call nobody routes: recorded (404), and a marker in the log.
fn probe(url: &str, name: &str) -> String {
    let path = format!("/v1/audit-probe/{name}");
    let r = http().post(format!("{url}{path}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    path
}

fn login_body(user: &str, password: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "password": password, "domain": {"name": "Default"}}}},
                    "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
}

fn find(all: &[Value], f: impl Fn(&Value) -> bool) -> &Value {
    all.iter()
        .find(|r| f(r))
        .unwrap_or_else(|| panic!("no such record in {all:#?}"))
}

#[test]
fn mutating_calls_and_logins_are_recorded_and_reads_are_not() {
    let s = Server::start(bin());
    let api = s.api();
    let wrong = "not-the-password-0";
    let (status, _, _) = s.login(login_body("admin", wrong));
    assert_eq!(status, 401);
    let uuid = api.set_alarm("100.101", "host=controller-0", "major");
    let del = api.delete(&format!("/v1/alarms/{uuid}"));
    assert!(del.status < 300, "{:?}", del.body);
    // Without a token: refused, and recorded as such.
    let r = http()
        .post(format!("{}/v1/alarms", s.url))
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // An agent that is not one.
    let r = http()
        .post(format!("{}/v1/agent/report", s.url))
        .header("x-agent-token", "no-such-agent-token")
        .json(&json!({}))
        .send()
        .unwrap();
    assert!(r.status().is_client_error());
    // Reads, then a mutating call after them: once it is in the log, every
    // read before it would be too if reads were recorded.
    for p in ["/v1/alarms", "/v1/ihosts", "/v1/event_log", "/healthz"] {
        assert_eq!(api.get(p).status, 200, "{p}");
    }
    let last = probe(&s.url, "after-reads");
    let all = wait_path(&api, &last);
    assert!(
        all.iter()
            .all(|r| r["method"] != "GET" && r["method"] != "HEAD"),
        "{all:#?}"
    );
    for r in &all {
        assert!(
            r["source"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{r}"
        );
    }
    // The logins: the token's own, and the failed one, by the user tried.
    let ok = find(&all, |r| {
        r["path"] == "/v3/auth/tokens" && r["status"] == 201
    });
    assert_eq!(ok["user"], "admin");
    assert_eq!(ok["method"], "POST");
    assert!(ok["roles"].as_array().unwrap().iter().any(|x| x == "admin"));
    let bad = find(&all, |r| {
        r["path"] == "/v3/auth/tokens" && r["status"] == 401
    });
    assert_eq!(bad["user"], "admin");
    assert_eq!(bad["roles"], json!([]));
    // The alarm calls, with who did them.
    let set = find(&all, |r| r["path"] == "/v1/alarms" && r["status"] == 200);
    assert_eq!(set["user"], "admin");
    assert!(
        set["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "admin")
    );
    let gone = find(&all, |r| r["method"] == "DELETE");
    assert_eq!(gone["path"], format!("/v1/alarms/{uuid}"));
    assert_eq!(gone["user"], "admin");
    let refused = find(&all, |r| r["path"] == "/v1/alarms" && r["status"] == 401);
    assert_eq!(refused["user"], "");
    let agent = find(&all, |r| r["path"] == "/v1/agent/report");
    assert_eq!(agent["user"], "agent");
    // Never a secret.
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains(wrong));
    assert!(!text.contains(&api.token) && !text.contains("no-such-agent-token"));
    // Numbered without gaps and chained.
    for w in all.windows(2) {
        assert_eq!(w[1]["seq"].as_u64(), w[0]["seq"].as_u64().map(|n| n + 1));
        assert_eq!(w[1]["prev_hash"], w[0]["hash"]);
    }
    // Filters.
    let deletes = records(&api, "?method=delete");
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    let refusals = records(&api, "?status=401&user=admin");
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    assert_eq!(records(&api, "?limit=2").len(), 2);
    assert_eq!(records(&api, "?since=2000-01-01&until=2000-01-02").len(), 0);
    assert_eq!(api.get("/v1/audit?since=yesterday").status, 400);
    assert_eq!(api.get("/v1/audit?bogus=1").status, 400);
    // Only with a token.
    let r = http().get(format!("{}/v1/audit", s.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // The CLI.
    let out = cli(&s.url, &api.token, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("audit log verified"),
        "{}",
        stdout(&out)
    );
    let out = cli(
        &s.url,
        &api.token,
        &[
            "audit", "list", "--user", "admin", "--limit", "3", "-o", "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed = listed["records"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|r| r["user"] == "admin"));
    let out = cli(&s.url, &api.token, &["audit", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("/v1/audit-probe/after-reads"));
}

/// The store files of a data directory (the database and its WAL).
fn db_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("roost.db"))
        })
        .collect()
}

fn copy_db(from: &Path, to: &Path) {
    for p in db_files(to) {
        std::fs::remove_file(p).unwrap();
    }
    for p in db_files(from) {
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// `roost audit verify` must fail naming record `seq`; `args` picks the
/// offline or the API path.
fn assert_broken_at(out: &Output, seq: u64, reason: &str, what: &str) {
    assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(out));
    let v: Value = serde_json::from_str(&stdout(out)).unwrap_or(Value::Null);
    assert_eq!(v["ok"], false, "{what}: {v}");
    assert_eq!(v["first_bad_seq"], seq, "{what}: {v}");
    assert!(
        v["reason"].as_str().unwrap().contains(reason),
        "{what}: {v}"
    );
    assert!(
        stderr(out).contains(&format!("broken at record {seq}")),
        "{what}: {}",
        stderr(out)
    );
}

type Tamper = fn(&Path) -> Result<(), roost_store::Error>;

#[test]
fn verify_finds_a_changed_a_removed_and_a_reordered_record() {
    // Offline verification reads the embedded store's file.
    let embedded = || ServerOptions {
        store: Some(EMBEDDED_STORE.into()),
        ..Default::default()
    };
    let mut s = Server::start_with(bin(), embedded());
    let api = s.api();
    let mut last = String::new();
    for i in 0..6 {
        last = probe(&s.url, &format!("p{i}"));
    }
    let all = wait_path(&api, &last);
    assert!(all.len() >= 7, "{all:#?}");
    let out = cli(&s.url, &api.token, &["audit", "verify", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.terminate().expect("the server stops");
    let data = s.data_dir.clone();
    let clean = tempfile::tempdir().unwrap();
    copy_db(&data, clean.path());
    let data_arg = data.display().to_string();
    let offline = ["audit", "verify", "--data-dir", &data_arg, "-o", "json"];
    // Untouched, offline.
    let out = cli("http://127.0.0.1:1", "none", &offline);
    assert!(out.status.success(), "{}", stderr(&out));

    let cases: [(&str, u64, &str, Tamper); 3] = [
        ("changed", 3, "changed", |db| {
            roost_store::audit_tamper::change_user(db, 3, "someone-else")
        }),
        ("removed", 4, "missing", |db| {
            roost_store::audit_tamper::delete(db, 4)
        }),
        ("swapped", 2, "does not follow", |db| {
            roost_store::audit_tamper::swap(db, 2, 3)
        }),
    ];
    for (what, seq, reason, tamper) in cases {
        copy_db(clean.path(), &data);
        tamper(&data.join("roost.db")).unwrap();
        let out = cli("http://127.0.0.1:1", "none", &offline);
        assert_broken_at(&out, seq, reason, &format!("{what}, offline"));
        // The server starts on it all the same and says so when asked.
        let mut again = Server::start_in(bin(), &data, embedded(), None)
            .expect("the server starts on a tampered log");
        let token = again.token();
        let out = cli(&again.url, &token, &["audit", "verify", "-o", "json"]);
        assert_broken_at(&out, seq, reason, &format!("{what}, API"));
        let r = http()
            .get(format!("{}/v1/audit/verify", again.url))
            .header("x-auth-token", &token)
            .send()
            .unwrap();
        let v: Value = r.json().unwrap();
        assert_eq!(v["first_bad_seq"], seq, "{what}: {v}");
        again.terminate();
    }
}

#[test]
fn retention_prunes_the_oldest_and_the_rest_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("audit.toml");
    std::fs::write(&config, "[audit]\nretention_days = 30\nmax_records = 5\n").unwrap();
    let mut s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), config.display().to_string()],
            // Offline verification reads the embedded store's file.
            store: Some(EMBEDDED_STORE.into()),
            ..Default::default()
        },
    );
    let api = s.api();
    let mut last = String::new();
    for i in 0..12 {
        last = probe(&s.url, &format!("r{i}"));
    }
    let all = wait_path(&api, &last);
    assert!(all.len() <= 5, "{all:#?}");
    let first = all[0]["seq"].as_u64().unwrap();
    assert!(first > 1, "the oldest records are gone: {all:#?}");
    assert_eq!(all.last().unwrap()["path"], last.as_str());
    let v = api.get("/v1/audit/verify");
    assert_eq!(v.body["ok"], true, "{:?}", v.body);
    s.terminate().expect("the server stops");
    let data_arg = s.data_dir.display().to_string();
    let out = cli(
        "http://127.0.0.1:1",
        "none",
        &["audit", "verify", "--data-dir", &data_arg],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Cutting below the anchor is found: the first kept record is gone.
    roost_store::audit_tamper::delete(&s.data_dir.join("roost.db"), first).unwrap();
    let out = cli(
        "http://127.0.0.1:1",
        "none",
        &["audit", "verify", "--data-dir", &data_arg, "-o", "json"],
    );
    assert_broken_at(&out, first, "missing", "below the anchor");
}

#[test]
fn a_subclouds_records_reach_its_system_controller() {
    let sc_dir = tempfile::tempdir().unwrap();
    let dc_toml = |dir: &Path| {
        let p = dir.join("dc.toml");
        std::fs::write(
            &p,
            "[dc]\nlisten = \"127.0.0.1:0\"\nsync_interval_secs = 1\noffline_after_secs = 4\n",
        )
        .unwrap();
        p.display().to_string()
    };
    let sc = Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                dc_toml(sc_dir.path()),
            ],
            ..Default::default()
        },
    );
    let api = sc.api();
    let r = api.post("/v1.0/subclouds/", &json!({"name": "edge1"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = r.body["enroll_token"].as_str().unwrap().to_string();
    let sub_dir = tempfile::tempdir().unwrap();
    let sub = Server::start_in(
        bin(),
        &sub_dir.path().join("data"),
        ServerOptions {
            args: vec![
                "--role".into(),
                "subcloud".into(),
                "--system-controller".into(),
                sc.dc_url.clone().expect("DC listener"),
                "--enroll-token".into(),
                token,
                "--config".into(),
                dc_toml(sub_dir.path()),
            ],
            ..Default::default()
        },
        None,
    )
    .expect("subcloud starts");
    let sub_api = sub.api();
    let marker = probe(&sub.url, "at-the-edge");
    wait_path(&sub_api, &marker);
    let held = wait_for(60, || {
        let r = api.get("/v1.0/subclouds/edge1/audit?limit=10000");
        assert_eq!(r.status, 200, "{:?}", r.body);
        let recs = r.body["records"].as_array().unwrap().clone();
        recs.iter()
            .any(|x| x["path"] == marker.as_str())
            .then_some(recs)
    })
    .unwrap_or_else(|| panic!("the subcloud's records never arrived; log:\n{}", sub.log()));
    // The subcloud's own login is there, by its user, with its chain.
    let login = find(&held, |r| {
        r["path"] == "/v3/auth/tokens" && r["status"] == 201
    });
    assert_eq!(login["user"], "admin");
    let local = records(&sub_api, "?limit=10000");
    for r in &held {
        let mine = find(&local, |l| l["seq"] == r["seq"]);
        assert_eq!(mine["hash"], r["hash"], "forwarded as recorded");
    }
    // The CLI.
    let out = cli(&sc.url, &api.token, &["subcloud", "audit", "edge1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("/v1/audit-probe/at-the-edge"),
        "{}",
        stdout(&out)
    );
    // Unknown subcloud: an HTML error page, as dcmanager's paths answer.
    assert_eq!(api.get("/v1.0/subclouds/nope/audit").status, 404);
}

//! Keystone-compatible token flows against the real server.

use roost_test_support::{PASSWORD, Server, ServerOptions, http, require_or_skip};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn password_body(password: &str, scope: bool) -> Value {
    let mut b = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": password, "domain": {"name": "Default"}}}}}});
    if scope {
        b["auth"]["scope"] = json!({"project": {"name": "admin", "domain": {"name": "Default"}}});
    }
    b
}

#[test]
fn a_scoped_password_login_returns_what_starlingx_clients_read() {
    let s = Server::start(bin());
    let (status, headers, body) = s.login(password_body(PASSWORD, true));
    assert_eq!(status, 201);
    let token = headers.get("x-subject-token").unwrap().to_str().unwrap();
    assert!(token.len() >= 32);
    let t = &body["token"];
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(t["user"]["id"].is_string());
    assert_eq!(t["user"]["name"], "admin");
    assert_eq!(t["project"]["name"], "admin");
    assert!(
        t["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "admin")
    );
    let catalog = t["catalog"].as_array().unwrap();
    for ty in [
        "identity",
        "platform",
        "faultmanagement",
        "dcmanager",
        "usm",
    ] {
        let svc = catalog
            .iter()
            .find(|c| c["type"] == ty)
            .unwrap_or_else(|| panic!("{ty}"));
        let eps = svc["endpoints"].as_array().unwrap();
        for iface in ["public", "internal", "admin"] {
            let e = eps.iter().find(|e| e["interface"] == iface).unwrap();
            assert_eq!(e["region_id"], "RegionOne");
            assert!(e["url"].as_str().unwrap().starts_with(&s.url));
        }
    }
    let fm = catalog
        .iter()
        .find(|c| c["type"] == "faultmanagement")
        .unwrap();
    assert_eq!(
        fm["endpoints"][0]["url"],
        s.url.as_str(),
        "fm's URL has no path"
    );
    let platform = catalog.iter().find(|c| c["type"] == "platform").unwrap();
    assert_eq!(platform["endpoints"][0]["url"], format!("{}/v1", s.url));
}

#[test]
fn unscoped_and_token_method_logins_work() {
    let s = Server::start(bin());
    let (status, headers, body) = s.login(password_body(PASSWORD, false));
    assert_eq!(status, 201);
    assert!(body["token"].get("project").is_none());
    let first = headers
        .get("x-subject-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    // dcmanager's flow: token method, unscoped, with the token also in X-Auth-Token.
    let r = http()
        .post(format!("{}/v3/auth/tokens", s.url))
        .header("X-Auth-Token", &first)
        .json(&json!({"auth": {"identity": {"methods": ["token"], "token": {"id": first}}}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let second = r
        .headers()
        .get("x-subject-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let b: Value = r.json().unwrap();
    assert!(b["token"]["user"]["id"].is_string());

    // Token method with a project scope.
    let (st, _, b) = s.login(
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": second}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}),
    );
    assert_eq!(st, 201);
    assert_eq!(b["token"]["project"]["name"], "admin");

    let (st, _, _) =
        s.login(json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "forged"}}}}));
    assert_eq!(st, 401);
}

#[test]
fn wrong_credentials_and_unknown_projects_are_refused() {
    let s = Server::start(bin());
    let (st, h, b) = s.login(password_body("wrong", true));
    assert_eq!(st, 401);
    assert!(h.get("x-subject-token").is_none());
    assert!(b["error"]["message"].is_string());
    let (st, _, _) = s.login(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "nobody", "password": "x"}}}}}));
    assert_eq!(st, 401);
    let (st, _, _) = s.login(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": PASSWORD}}},
        "scope": {"project": {"name": "elsewhere"}}}}));
    assert_eq!(st, 401);
    let (st, _, _) = s.login(json!({"auth": {"identity": {"methods": ["totp"]}}}));
    assert_eq!(st, 400);
    let (st, _, _) = s.login(json!({"nonsense": true}));
    assert_eq!(st, 400);
}

#[test]
fn every_api_but_the_version_documents_needs_a_valid_token() {
    let s = Server::start(bin());
    for path in ["/", "/v1", "/v1.0", "/v3", "/healthz"] {
        let r = http().get(format!("{}{path}", s.url)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} is public");
    }
    let root: Value = http()
        .get(format!("{}/", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(root["versions"][0]["id"], "v1");
    let v1: Value = http()
        .get(format!("{}/v1", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(v1.get("alarms").is_some() && v1.get("event_log").is_some());

    for (method, path) in [
        ("GET", "/v1/alarms"),
        ("POST", "/v1/alarms"),
        ("GET", "/v1/alarms/summary"),
        ("GET", "/v1/alarms/x"),
        ("DELETE", "/v1/alarms/x"),
        ("GET", "/v1/event_log"),
        ("GET", "/v1/event_suppression"),
        ("PATCH", "/v1/event_suppression/x"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/v3/auth/tokens"),
        ("DELETE", "/v3/auth/tokens"),
    ] {
        for token in [None, Some("not-a-token")] {
            let mut rb = http().request(method.parse().unwrap(), format!("{}{path}", s.url));
            if let Some(t) = token {
                rb = rb.header("X-Auth-Token", t);
            }
            let r = rb.send().unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {token:?}");
            let b: Value = r.json().unwrap();
            assert!(
                b["error"]["message"].is_string(),
                "{method} {path}: JSON error body"
            );
        }
    }
}

#[test]
fn tokens_validate_and_revoke() {
    let s = Server::start(bin());
    let admin = s.token();
    let other = s.token();
    let check = |subject: &str| {
        http()
            .get(format!("{}/v3/auth/tokens", s.url))
            .header("X-Auth-Token", &admin)
            .header("X-Subject-Token", subject)
            .send()
            .unwrap()
    };
    let r = check(&other);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("x-subject-token")
            .unwrap()
            .to_str()
            .unwrap(),
        other
    );
    let b: Value = r.json().unwrap();
    assert_eq!(b["token"]["user"]["name"], "admin");

    let r = http()
        .delete(format!("{}/v3/auth/tokens", s.url))
        .header("X-Auth-Token", &admin)
        .header("X-Subject-Token", &other)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(check(&other).status().as_u16(), 404);
    let r = http()
        .get(format!("{}/v1/alarms", s.url))
        .header("X-Auth-Token", &other)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "a revoked token is refused");
}

#[test]
fn tokens_survive_a_restart() {
    let mut s = Server::start(bin());
    let token = s.token();
    s.restart();
    let r = http()
        .get(format!("{}/v1/alarms", s.url))
        .header("X-Auth-Token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn without_a_configured_password_one_is_generated_into_a_private_file() {
    let s = Server::start_with(
        bin(),
        ServerOptions {
            admin_password: false,
            ..Default::default()
        },
    );
    let file = s.data_dir.join("admin-credentials");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("username=admin\n"));
    let pw = text
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap();
    assert!(pw.len() >= 20);
    assert!(!s.log().contains(pw), "the password is never logged");
    let (st, _, _) = s.login(password_body(pw, true));
    assert_eq!(st, 201);
    let dir_mode = std::fs::metadata(&s.data_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
}

/// keystoneauth1 is what StarlingX's clients use to log in. The test command
/// installs it and sets ROOST_TEST_PYTHON to a Python that has it.
#[test]
fn keystoneauth1_logs_in_and_finds_every_endpoint() {
    let python = std::env::var("ROOST_TEST_PYTHON").ok();
    if !require_or_skip(
        python.is_some(),
        "ROOST_TEST_PYTHON (a Python with keystoneauth1; ./scripts/test sets it)",
    ) {
        return;
    }
    let python = python.expect("checked above");
    let s = Server::start(bin());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/keystone_client.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&s.url)
        .arg(PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn users_change_their_own_password_with_the_current_one() {
    let s = Server::start(bin());
    let (_, headers, body) = s.login(password_body(PASSWORD, true));
    let token = headers
        .get("x-subject-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let user_id = body["token"]["user"]["id"].as_str().unwrap().to_string();
    let change = |uid: &str, original: &str, new: &str| {
        http()
            .post(format!("{}/v3/users/{uid}/password", s.url))
            .header("X-Auth-Token", &token)
            .json(&json!({"user": {"password": new, "original_password": original}}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(change(&user_id, "wrong", "new-password-1"), 401);
    assert_eq!(change(&user_id, PASSWORD, "short"), 400);
    assert_eq!(change("someone-else", PASSWORD, "new-password-1"), 403);
    assert_eq!(change(&user_id, PASSWORD, "new-password-1"), 204);
    assert_eq!(
        s.login(password_body(PASSWORD, true)).0,
        401,
        "the old one is gone"
    );
    assert_eq!(s.login(password_body("new-password-1", true)).0, 201);
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
fn a_flood_of_wrong_passwords_neither_starves_other_work_nor_grows_memory() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // Without lockout and delays (tested on their own), every wrong
    // password is checked: the password threads' bound alone holds.
    let cfg = tempfile::tempdir().unwrap();
    let cfg_path = cfg.path().join("roost.toml");
    std::fs::write(
        &cfg_path,
        "[identity]\nlockout_failure_attempts = 0\nlogin_free_failures = 1000000\n",
    )
    .unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), cfg_path.display().to_string()],
            ..Default::default()
        },
    );
    let api = s.api();
    for i in 0..20 {
        api.set_alarm("100.101", &format!("host=h{i}"), "major");
    }
    let baseline = status_kib(s.pid(), "VmHWM:");
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let client = http();
    let url = format!("{}/v3/auth/tokens", s.url);
    let body = password_body("not-the-password", true);
    let workers: Vec<_> = (0..256)
        .map(|_| {
            let (stop, refused, wrong, other) =
                (stop.clone(), refused.clone(), wrong.clone(), other.clone());
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match client.post(&url).json(&body).send() {
                        Ok(r) if r.status().as_u16() == 401 => {
                            wrong.fetch_add(1, Ordering::Relaxed)
                        }
                        Ok(r) if r.status().as_u16() == 503 => {
                            let b: Value = r.json().unwrap_or(Value::Null);
                            if b["error"]["message"].is_string() {
                                refused.fetch_add(1, Ordering::Relaxed)
                            } else {
                                other.fetch_add(1, Ordering::Relaxed)
                            }
                        }
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    // The flood saturates the password threads: surplus checks are refused.
    roost_test_support::wait_for(120, || {
        (refused.load(Ordering::Relaxed) > 0 && wrong.load(Ordering::Relaxed) > 4).then_some(())
    })
    .expect("the flood is refused beyond the password queue");
    // Meanwhile the event log, the alarm list and the health check answer.
    let at = wrong.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed);
    assert_eq!(api.events("").len(), 20);
    assert_eq!(api.alarms("").len(), 20);
    let h = http().get(format!("{}/healthz", s.url)).send().unwrap();
    assert_eq!(h.status().as_u16(), 200);
    // ...while the flood was still going on.
    roost_test_support::wait_for(120, || {
        (wrong.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) > at + 10).then_some(())
    })
    .expect("the flood went on");
    let peak = status_kib(s.pid(), "VmHWM:");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        other.load(Ordering::Relaxed),
        0,
        "every answer was 401 or 503"
    );
    // Two argon2 checks at a time need 2 x 19 MiB, kept by the password
    // threads; with buffers for 256 connections, 64 MiB above the peak
    // before the flood is ample. Unbounded, checks on the shared blocking
    // threads grew the server by hundreds of MiB.
    assert!(
        peak < baseline + 64 * 1024,
        "peak RSS {peak} KiB, {baseline} KiB before the flood"
    );
    // The right password still works once the flood is over.
    assert_eq!(s.login(password_body(PASSWORD, true)).0, 201);
}

//! The server process: data directory lock, configuration, shutdown,
//! operations endpoints, resource monitoring, and durability under kill -9.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use roost_test_support::{Server, ServerOptions, http, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let s = Server::start(bin());
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--no-monitor",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another roost server"), "{err}");
    // The first one is unharmed.
    assert_eq!(s.api().get("/v1/alarms").status, 200);
}

#[test]
fn sigterm_stops_the_server_cleanly_and_keeps_its_data() {
    let mut s = Server::start(bin());
    let api = s.api();
    api.set_alarm("100.101", "host=a", "major");
    let status = s.terminate().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(s.log().contains("stopped"));
    s.restart();
    assert_eq!(s.api().alarms("").len(), 1);
}

#[test]
fn a_config_file_is_read_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("roost.toml");
    std::fs::write(
        &cfg,
        "hostname = \"controller-0\"\n[fm]\nevent_log_cap = 3\ndurability = \"power\"\n",
    )
    .unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--config".into(),
                cfg.display().to_string(),
                "--event-log-cap".into(),
                "5".into(),
            ],
            ..Default::default()
        },
    );
    // The log reaches the test through a reader thread: wait for the line.
    let logged = roost_test_support::wait_for(10, || {
        s.log().contains("durability=\"power\"").then_some(())
    });
    assert!(logged.is_some(), "{}", s.log());
    let api = s.api();
    for i in 0..8 {
        api.set_alarm("100.104", &format!("host=h{i}.filesystem=/"), "major");
    }
    assert_eq!(api.events("").len(), 5, "the flag beat the file");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[fm]\ndurability = \"sometimes\"\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["server", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sometimes"));
}

#[test]
fn health_metrics_and_openapi_are_served() {
    // A system controller serves every documented route, /v1.0 included.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sc.toml");
    std::fs::write(&cfg, "[dc]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let s = Server::start_with(
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
    let api = s.api();
    api.set_alarm("200.004", "host=a", "critical");
    api.get("/v1/alarms");
    let h: Value = http()
        .get(format!("{}/healthz", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(h["status"], "ok");
    let m = api.get("/metrics");
    assert_eq!(m.status, 200);
    let text = m.body.as_str().unwrap();
    assert!(
        text.contains("roost_active_alarms{severity=\"critical\"} 1"),
        "{text}"
    );
    assert!(text.contains("roost_event_log_records 1"), "{text}");
    assert!(
        text.contains(
            "roost_http_requests_total{method=\"GET\",route=\"/v1/alarms\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("roost_http_request_duration_seconds_bucket"),
        "{text}"
    );
    // Every family a dashboard needs is there from the start, at zero where
    // nothing happened yet.
    let version = env!("CARGO_PKG_VERSION");
    for line in [
        format!("roost_build_info{{version=\"{version}\"}} 1"),
        "roost_hosts{availability=\"available\"} 1".to_string(),
        "roost_hosts{availability=\"failed\"} 0".to_string(),
        "roost_hosts{availability=\"power-off\"} 0".to_string(),
        "roost_hosts_locked 0".to_string(),
        "roost_subclouds{availability=\"offline\",sync=\"unknown\"} 0".to_string(),
        "roost_subclouds{availability=\"online\",sync=\"in-sync\"} 0".to_string(),
        "roost_heartbeat_dropped_total{reason=\"replayed\"} 0".to_string(),
        "roost_dc_sync_duration_seconds_count 0".to_string(),
        "roost_heartbeat_pulses_sent_total ".to_string(),
        "roost_heartbeat_pulses_missed_total ".to_string(),
        "roost_notifications_sent_total{type=\"syslog\"} 0".to_string(),
        "roost_notifications_dropped_total{type=\"webhook\"} 0".to_string(),
        "roost_active_alarms{severity=\"minor\"} 0".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&line)),
            "{line} in:\n{text}"
        );
    }
    // The alarm set above was one commit of the alarm writer.
    let commits = text
        .lines()
        .find_map(|l| l.strip_prefix("roost_store_commit_duration_seconds_count "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(commits.is_some_and(|n| n >= 1), "{text}");

    let doc = api.get("/openapi.json");
    assert_eq!(doc.status, 200);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../openapi/roost.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        doc.body, committed,
        "the served document is the committed one"
    );

    // Every documented operation is routed (never 404 for the route, never 405).
    for (path, ops) in committed["paths"].as_object().unwrap() {
        for (method, _) in ops.as_object().unwrap() {
            let concrete = path
                .replace("{uuid}", "00000000-0000-0000-0000-000000000000")
                .replace("{host}", "nobody")
                .replace("{subcloud}", "nobody")
                .replace("{group}", "nobody")
                .replace("{user_id}", "nobody");
            let r = http()
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", s.url),
                )
                .header("X-Auth-Token", &api.token)
                .header("X-Subject-Token", &api.token)
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .unwrap();
            let st = r.status().as_u16();
            assert_ne!(st, 405, "{method} {path}");
            // A 404 is fine for an unknown id or a resource that does not
            // exist yet (no strategy), but it must come from the route, not
            // from the fallback for unknown paths.
            if st == 404 {
                let text = r.text().unwrap_or_default();
                assert!(
                    !text.contains("no such resource"),
                    "{method} {path}: {text}"
                );
            }
        }
    }
}

#[test]
fn the_resource_monitor_raises_and_the_alarm_carries_the_host() {
    // Thresholds low enough that this machine's real memory use crosses them.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("roost.toml");
    std::fs::write(
        &cfg,
        "[monitor]\ninterval_secs = 1\n[monitor.thresholds.memory]\nmajor = 0.1\ncritical = 100.0\nhysteresis = 0.05\n[monitor.thresholds.filesystem]\nmajor = 0.01\ncritical = 100.0\nhysteresis = 0.005\n",
    )
    .unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), cfg.display().to_string()],
            monitor: true,
            ..Default::default()
        },
    );
    let api = s.api();
    let mem = wait_for(30, || {
        api.alarms("?q.field=alarm_id&q.value=100.103")
            .into_iter()
            .next()
    })
    .expect("100.103 raised");
    assert_eq!(mem["entity_instance_id"], "host=controller-0");
    assert_eq!(mem["severity"], "major");
    let fs = wait_for(30, || {
        api.alarms("?q.field=alarm_id&q.value=100.104")
            .into_iter()
            .next()
    })
    .expect("100.104 raised");
    assert!(
        fs["entity_instance_id"]
            .as_str()
            .unwrap()
            .starts_with("host=controller-0.filesystem=/")
    );
    // No CPU alarm at a 90 % threshold on an idle test machine is not asserted:
    // the machine may be busy. The alarms are raised once, not repeatedly:
    // after three more sampling periods have been carried out, still one set.
    let periods = || {
        let text = api.get("/metrics").body.as_str().unwrap_or("").to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("roost_resource_monitor_periods_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let seen = periods();
    wait_for(60, || (periods() >= seen + 3.0).then_some(()))
        .expect("the resource monitor keeps sampling");
    let sets = api.events("?q.field=event_log_id&q.value=100.103");
    assert_eq!(sets.len(), 1, "no flapping: {sets:?}");
}

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let mut s = Server::start(bin());
    let api = s.api();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let api = api.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let entity = format!("host=w{w}.n={i}");
                let r = client
                    .post(format!("{}/v1/alarms", api.url))
                    .header("X-Auth-Token", &api.token)
                    .json(&json!({"alarm_id": "100.104", "entity_instance_id": entity, "severity": "major"}))
                    .send();
                match r {
                    Ok(r) if r.status().as_u16() == 200 => {
                        if let Ok(b) = r.json::<Value>() {
                            let uuid = b["uuid"].as_str().unwrap_or_default().to_string();
                            acked.lock().unwrap().push((uuid, entity));
                        }
                    }
                    // The server died mid-request: that write was never acknowledged.
                    _ => break,
                }
                i += 1;
            }
        }));
    }
    // Let the burst run, then kill the server without warning.
    wait_for(60, || (acked.lock().unwrap().len() >= 400).then_some(()))
        .expect("writes are being acknowledged");
    s.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 400);

    s.restart();
    let api = s.api();
    let alarms: HashSet<String> = api
        .alarms("")
        .iter()
        .map(|a| a["uuid"].as_str().unwrap().to_string())
        .collect();
    let events: HashSet<String> = api
        .events("?include_suppress=True")
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .collect();
    for (uuid, entity) in &acked {
        assert!(alarms.contains(uuid), "acknowledged alarm {entity} lost");
        assert!(
            events.contains(uuid),
            "acknowledged set event of {entity} lost"
        );
    }
}

/// Runs `roost server ARGS` expecting it to refuse to start; returns its
/// stderr. A server that starts instead is killed and the test fails.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("server")
        .args(args)
        .env_remove("ROOST_CONFIG")
        .env_remove("ROOST_EVENT_LOG_CAP")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let status = wait_for(30, || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "the server started with {args:?} {env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(2), "{args:?} {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn numeric_settings_out_of_range_are_refused_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let base = [
        "--no-monitor",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_arg,
    ];
    // Just above i64::MAX: it used to wrap negative and prune the whole event log.
    let huge = "9223372036854775808";
    let mut args = base.to_vec();
    args.extend(["--event-log-cap", huge]);
    let err = refused_start(&args, &[]);
    assert!(
        err.contains("fm.event_log_cap") && err.contains(huge),
        "{err}"
    );
    let err = refused_start(&base, &[("ROOST_EVENT_LOG_CAP", huge)]);
    assert!(err.contains("fm.event_log_cap"), "{err}");
    // The same from a file, and for the other numeric settings.
    for (toml, name) in [
        (
            "[fm]\nevent_log_cap = 9223372036854775807\n",
            "fm.event_log_cap",
        ),
        ("token_ttl_secs = 9223372036854775807\n", "token_ttl_secs"),
        (
            "join_token_ttl_secs = 18446744073709551615\n",
            "join_token_ttl_secs",
        ),
        ("max_body_bytes = 18446744073709551615\n", "max_body_bytes"),
        (
            "[monitor]\ninterval_secs = 9223372036854775807\n",
            "monitor.interval_secs",
        ),
        (
            "[dc]\nenroll_token_ttl_secs = 9223372036854775807\n",
            "dc.enroll_token_ttl_secs",
        ),
        (
            "[dc]\nsync_interval_secs = 18446744073709551615\n",
            "dc.sync_interval_secs",
        ),
        (
            "[dc]\nout_of_sync_alarm_after_secs = 0\n",
            "dc.out_of_sync_alarm_after_secs",
        ),
        (
            "[dc]\nsubcloud_cert_days = 4000000000\n",
            "dc.subcloud_cert_days",
        ),
    ] {
        let cfg = dir.path().join("roost.toml");
        std::fs::write(&cfg, toml).unwrap();
        let cfg_arg = cfg.display().to_string();
        let mut args = base.to_vec();
        args.extend(["--config", &cfg_arg]);
        let err = refused_start(&args, &[]);
        assert!(err.contains(name), "{toml}: {err}");
    }
    assert!(!data.exists(), "a refused start created the data directory");
}

#[test]
fn a_subcloud_update_follows_the_same_rules_as_its_creation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sc.toml");
    std::fs::write(&cfg, "[dc]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let s = Server::start_with(
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
    let api = s.api();
    let long = "d".repeat(60_000);
    let r = api.post(
        "/v1.0/subclouds",
        &json!({"name": "edge-1", "description": long}),
    );
    assert_eq!(
        r.status, 400,
        "a description of 60,000 characters was accepted"
    );
    let r = api.post(
        "/v1.0/subclouds",
        &json!({"name": "edge-1", "description": "first"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    for field in ["description", "location"] {
        let r = api.patch("/v1.0/subclouds/edge-1", &json!({ field: long }));
        assert_eq!(r.status, 400, "{field} of 60,000 characters was accepted");
        let page = r.body.as_str().unwrap_or_default();
        assert!(page.contains("longer than 255"), "{field}: {page}");
    }
    let shown = api.get("/v1.0/subclouds/edge-1");
    assert_eq!(shown.body["description"], "first");
    // dcmanager's paths answer a bad path parameter with its HTML page.
    let r = api.get("/v1.0/subclouds/%FF");
    assert_eq!(r.status, 400);
    assert!(
        r.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("text/html"),
        "{:?}",
        r.content_type
    );
}

/// Reads until the server closes the connection (waiting for that event,
/// at most a minute); returns what it sent.
fn read_until_closed(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server never closed the connection: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn idle_slow_and_surplus_connections_cannot_starve_the_api_port() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("roost.toml");
    std::fs::write(
        &cfg,
        "[http]\nmax_connections = 16\nidle_timeout_secs = 3\nheader_read_timeout_secs = 2\nbody_read_timeout_secs = 2\n",
    )
    .unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), cfg.display().to_string()],
            ..Default::default()
        },
    );
    wait_for(30, || s.log().contains("max_connections=16").then_some(()))
        .unwrap_or_else(|| panic!("the cap is not logged: {}", s.log()));
    // The open-file soft limit was raised to the hard limit.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        files[3], files[4],
        "soft and hard open-file limits: {files:?}"
    );
    let addr = s.url.trim_start_matches("http://").to_string();
    // Far more idle connections than the cap.
    let mut idle: Vec<std::net::TcpStream> = (0..120)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // The API still answers: idle connections make room for working ones.
    let h = http().get(format!("{}/healthz", s.url)).send().unwrap();
    assert_eq!(h.status().as_u16(), 200);
    let api = s.api();
    api.set_alarm("100.101", "host=a", "major");
    // A head that never completes, and a body that never completes.
    let mut slow_head = std::net::TcpStream::connect(&addr).unwrap();
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        slow_body,
        "POST /v1/alarms HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"alarm_id\"",
        api.token
    )
    .unwrap();
    let reply = read_until_closed(&mut slow_body);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("error_message"), "{reply}");
    let reply = read_until_closed(&mut slow_head);
    assert!(!reply.contains("200 OK"), "{reply}");
    // Every idle connection is closed: those over the cap at once with a 503
    // (or evicted to make room), the others after the idle timeout.
    for c in &mut idle {
        let reply = read_until_closed(c);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 503"),
            "{reply}"
        );
    }
    // And the port still works afterwards.
    assert_eq!(api.alarms("").len(), 1);
}

#[test]
fn a_start_that_cannot_listen_leaves_nothing_on_disk() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("sc.toml");
    std::fs::write(&cfg, format!("[dc]\nlisten = \"{port}\"\n")).unwrap();
    for extra in [
        vec!["--listen", port.as_str()],
        vec![
            "--listen",
            "127.0.0.1:0",
            "--role",
            "systemcontroller",
            "--config",
            cfg.to_str().unwrap(),
        ],
    ] {
        let out = std::process::Command::new(bin())
            .args(["server", "--no-monitor", "--data-dir"])
            .arg(&data)
            .args(&extra)
            .env_remove("ROOST_CONFIG")
            .env_remove("ROOST_ADMIN_PASSWORD")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot listen on"), "{extra:?}: {err}");
        assert!(
            !data.exists(),
            "{extra:?}: a failed start created {}",
            data.display()
        );
    }
}

/// The access log: one INFO line per request, with its method, route
/// template, status, duration, user and source, for answers of every
/// class; never a password, a token or a query string.
#[test]
fn every_request_gets_one_access_log_line_and_no_secret() {
    let s = Server::start(bin());
    let api = s.api();
    let token = api.token.clone();
    // 2xx, 4xx (unauthenticated, unknown route, a wrong password), and a
    // query string that must not be logged.
    assert_eq!(
        api.get("/v1/alarms?q.field=alarm_id&q.value=secret-query")
            .status,
        200
    );
    let anon = http().get(format!("{}/v1/alarms", s.url)).send().unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert_eq!(api.get("/v1/no-such-thing").status, 404);
    let (status, _, _) = s.login(json!({"auth": {"identity": {"methods": ["password"],
        "password": {"user": {"name": "admin", "password": "wrong-password-xyz",
        "domain": {"name": "Default"}}}}}}));
    assert_eq!(status, 401);
    let line_for = |route: &str, status: u16| {
        wait_for(10, || {
            s.log()
                .lines()
                .find(|l| {
                    l.contains("roost::access")
                        && l.contains(&format!("route={route} "))
                        && l.contains(&format!("status={status} "))
                })
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("an access line for {route} {status}:\n{}", s.log()))
    };
    let ok = line_for("/v1/alarms", 200);
    assert!(ok.contains("INFO"), "{ok}");
    assert!(
        ok.contains("method=GET") && ok.contains("user=admin"),
        "{ok}"
    );
    assert!(ok.contains("source=127.0.0.1:"), "{ok}");
    assert!(ok.contains("duration_ms="), "{ok}");
    let anon = line_for("/v1/alarms", 401);
    assert!(anon.contains("user=-"), "{anon}");
    line_for("unmatched", 404);
    let login = line_for("/v3/auth/tokens", 401);
    assert!(login.contains("method=POST"), "{login}");
    let log = s.log();
    for secret in [
        roost_test_support::PASSWORD,
        "wrong-password-xyz",
        token.as_str(),
        "secret-query",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

/// `--listen` takes a name as people type it (`localhost:PORT`).
#[test]
fn the_server_listens_on_a_name_as_typed() {
    let s = Server::start_with(
        bin(),
        ServerOptions {
            listen: Some("localhost:0".into()),
            ..Default::default()
        },
    );
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    let h: Value = http()
        .get(format!("{}/healthz", s.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(h["status"], "ok");
}

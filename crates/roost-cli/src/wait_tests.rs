//! `--wait`, `--watch` and `--timeout` against the scripted fake server.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::credentials::Env;
use crate::testutil::{Canned, FakeServer, run_verb};

fn host(admin: &str, oper: &str, avail: &str) -> Value {
    json!({"id": 1, "hostname": "controller-0", "personality": "controller",
           "administrative": admin, "operational": oper, "availability": avail})
}

/// Polls every 10 ms, so that the tests do not wait for a second each time.
const FAST: [&str; 2] = ["--poll-interval", "0.01"];

fn args<'a>(verb: &[&'a str]) -> Vec<&'a str> {
    let mut all = verb.to_vec();
    all.extend_from_slice(&FAST);
    all
}

#[test]
fn unlock_wait_polls_the_host_until_it_is_available_and_shows_each_state() {
    let server = FakeServer::start(vec![
        Canned::json(200, host("unlocked", "disabled", "offline")),
        Canned::json(200, host("unlocked", "enabled", "intest")),
        Canned::json(200, host("unlocked", "enabled", "intest")),
        Canned::json(200, host("unlocked", "enabled", "available")),
    ]);
    let outcome = run_verb(
        &args(&["host", "unlock", "controller-0", "--wait"]),
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[0].method, "PATCH");
    for get in &seen[1..] {
        assert_eq!(
            (get.method.as_str(), get.target.as_str()),
            ("GET", "/v1/ihosts/controller-0")
        );
    }
    assert_eq!(
        outcome.err,
        "controller-0: unlocked/disabled/offline\n\
         controller-0: unlocked/enabled/intest\n\
         controller-0: unlocked/enabled/available\n"
    );
    assert_eq!(outcome.out, "controller-0: unlocked/enabled/available\n");
}

#[test]
fn lock_wait_ends_once_the_host_is_locked_and_disabled() {
    let server = FakeServer::start(vec![
        Canned::json(200, host("locked", "enabled", "available")),
        Canned::json(200, host("locked", "disabled", "online")),
    ]);
    let outcome = run_verb(
        &args(&["host", "lock", "controller-0", "--wait"]),
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(outcome.out, "controller-0: locked/disabled/online\n");
}

#[test]
fn a_host_that_fails_during_an_unlock_is_an_error_naming_its_state() {
    let server = FakeServer::start(vec![
        Canned::json(200, host("unlocked", "disabled", "offline")),
        Canned::json(200, host("unlocked", "disabled", "failed")),
    ]);
    let outcome = run_verb(
        &args(&["host", "unlock", "controller-0", "--wait"]),
        &server.env(),
        "",
    );
    server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), 1);
    assert_eq!(
        err.message(),
        "controller-0 failed (unlocked/disabled/failed); `roost alarm list` and `roost event list` say why"
    );
    assert_eq!(outcome.out, "");
}

#[test]
fn a_wait_that_runs_out_of_time_names_the_last_state_and_what_to_check() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        host("unlocked", "enabled", "intest"),
    )]);
    let outcome = run_verb(
        &args(&[
            "host",
            "unlock",
            "controller-0",
            "--wait",
            "--wait-timeout",
            "0",
        ]),
        &server.env(),
        "",
    );
    server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(err.code(), 1);
    assert_eq!(
        err.message(),
        "gave up after 0 s waiting for controller-0 to be unlocked/enabled/available; \
         controller-0 is still unlocked/enabled/intest (`roost host show controller-0` and \
         `roost alarm list` show what holds it; --wait-timeout waits longer)"
    );
}

#[test]
fn without_wait_an_action_prints_the_reply_and_asks_nothing_more() {
    let server = FakeServer::start(vec![Canned::json(
        200,
        host("unlocked", "disabled", "offline"),
    )]);
    let outcome = run_verb(&["host", "unlock", "controller-0"], &server.env(), "");
    assert_eq!(server.finish().len(), 1);
    outcome.result.unwrap();
    assert_eq!(outcome.out, "controller-0: unlocked/disabled/offline\n");
}

fn subcloud(management: &str, availability: &str, sync: &str) -> Value {
    json!({"id": 1, "name": "edge-1", "management-state": management,
           "availability-status": availability, "deploy-status": "complete",
           "sync_status": sync})
}

#[test]
fn manage_wait_ends_once_the_subcloud_is_online_and_in_sync() {
    let server = FakeServer::start(vec![
        Canned::json(200, subcloud("managed", "online", "unknown")),
        Canned::json(200, subcloud("managed", "online", "out-of-sync")),
        Canned::json(200, subcloud("managed", "online", "in-sync")),
    ]);
    let outcome = run_verb(
        &args(&["subcloud", "manage", "edge-1", "--wait"]),
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen[2].target, "/v1.0/subclouds/edge-1");
    assert_eq!(outcome.out, "edge-1: managed/online/complete/in-sync\n");
    assert_eq!(outcome.err.lines().count(), 3, "{}", outcome.err);
}

fn deploy_strategy(state: &str, reason: &str) -> Value {
    json!({"release_id": "roost-0.2.0", "state": state, "reason": reason,
           "stages_done": 1, "stages": [{}, {}]})
}

#[test]
fn deploy_strategy_apply_wait_fails_when_the_strategy_fails() {
    let server = FakeServer::start(vec![
        Canned::json(200, deploy_strategy("applying", "")),
        Canned::json(200, deploy_strategy("failed", "worker-1 did not come back")),
    ]);
    let outcome = run_verb(
        &args(&["deploy", "strategy", "apply", "--wait"]),
        &server.env(),
        "",
    );
    server.finish();
    let err = outcome.result.unwrap_err();
    assert_eq!(
        err.message(),
        "the strategy is failed: worker-1 did not come back (`roost deploy show` shows each host)"
    );
    assert_eq!(
        outcome.err,
        "strategy for roost-0.2.0: applying (1 of 2 stages done)\n\
         strategy for roost-0.2.0: failed (1 of 2 stages done)\n"
    );
}

#[test]
fn deploy_strategy_apply_wait_ends_when_applied() {
    let server = FakeServer::start(vec![
        Canned::json(200, deploy_strategy("applying", "")),
        Canned::json(200, deploy_strategy("applied", "")),
    ]);
    let outcome = run_verb(
        &args(&["deploy", "strategy", "apply", "--wait"]),
        &server.env(),
        "",
    );
    server.finish();
    outcome.result.unwrap();
    assert_eq!(outcome.out, "Applied the strategy for roost-0.2.0\n");
}

fn hosts_reply(avail: &str) -> Canned {
    Canned::json(200, json!({"ihosts": [host("unlocked", "enabled", avail)]}))
}

#[test]
fn watch_renders_the_list_again_after_a_time_line() {
    let server = FakeServer::start(vec![hosts_reply("intest"), hosts_reply("available")]);
    let outcome = run_verb(
        &[
            "host",
            "list",
            "--watch",
            "--interval",
            "0.01",
            "--watch-count",
            "2",
        ],
        &server.env(),
        "",
    );
    let seen = server.finish();
    outcome.result.unwrap();
    assert_eq!(seen.len(), 2);
    let out = &outcome.out;
    let stamps: Vec<&str> = out.lines().filter(|l| l.ends_with(" UTC")).collect();
    assert_eq!(stamps.len(), 2, "{out}");
    assert!(out.starts_with(stamps[0]), "{out}");
    let second = out.rfind(stamps[1]).unwrap();
    assert!(
        out[..second].ends_with("\n\n"),
        "a blank line between: {out}"
    );
    assert!(out[..second].contains("intest") && out[second..].contains("available"));
    assert!(!out.contains('\x1b'), "no screen clearing when piped");
}

#[test]
fn watch_on_a_terminal_clears_the_screen_for_each_listing() {
    let server = FakeServer::start(vec![hosts_reply("intest"), hosts_reply("available")]);
    let outcome = crate::testutil::run_verb_on(
        &[
            "host",
            "list",
            "--watch",
            "--interval",
            "0.01",
            "--watch-count",
            "2",
        ],
        &server.env(),
        "",
        true,
    );
    server.finish();
    outcome.result.unwrap();
    assert_eq!(outcome.out.matches("\x1b[H\x1b[2J").count(), 2);
    assert_eq!(outcome.out.matches("Ctrl-C stops").count(), 2);
}

#[test]
fn interval_and_count_mean_nothing_without_watch() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: crate::ClientCommand,
    }
    assert!(Cli::try_parse_from(["roost", "alarm", "list", "--interval", "5"]).is_err());
    assert!(Cli::try_parse_from(["roost", "host", "lock", "h", "--wait-timeout", "5"]).is_err());
    let parsed = Cli::try_parse_from(["roost", "alarm", "list", "--timeout", "2.5"]).unwrap();
    assert_eq!(parsed.cmd.timeout, Some(Duration::from_millis(2500)));
    let parsed = Cli::try_parse_from(["roost", "--help"]);
    assert!(parsed.is_err());
    assert!(Cli::try_parse_from(["roost", "alarm", "list", "--timeout", "0"]).is_err());
}

#[test]
fn a_server_that_never_answers_fails_after_the_timeout_with_a_clear_message() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts connections and holds them, never answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let env = Env {
        roost_url: Some(url.clone()),
        roost_token: Some("t".into()),
        ..Env::default()
    };
    let started = Instant::now();
    let outcome = run_verb(&["alarm", "list", "--timeout", "1"], &env, "");
    let err = outcome.result.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(err.code(), 1);
    assert_eq!(
        err.message(),
        format!(
            "the server at {url} did not answer within 1 s; it may be overloaded or unreachable (--timeout to wait longer)"
        )
    );
}

#[test]
fn roost_timeout_sets_the_limit_when_no_flag_does() {
    let env = Env {
        vars: crate::credentials::Vars::default().with("ROOST_TIMEOUT", "1.5"),
        ..Env::default()
    };
    assert_eq!(
        crate::request_timeout(&env).unwrap(),
        Duration::from_millis(1500)
    );
    let bad = Env {
        vars: crate::credentials::Vars::default().with("ROOST_TIMEOUT", "soon"),
        ..Env::default()
    };
    let err = crate::request_timeout(&bad).unwrap_err();
    assert_eq!(err.code(), 2);
    assert_eq!(
        err.message(),
        "ROOST_TIMEOUT: \"soon\" is not a number of seconds"
    );
    assert_eq!(
        crate::request_timeout(&Env::default()).unwrap(),
        Duration::from_secs(30)
    );
}

//! Two controllers on one PostgreSQL store (the test command's), end to
//! end: one holds the controller lease and is active, the other is a
//! standby that redirects. The active is killed (`kill -9`) or paused
//! (`SIGSTOP`) under a write load: the standby takes over; every
//! acknowledged write is there; a real agent given both addresses keeps
//! its host available through the switch-over; the old active, resumed or
//! started again, stays out as a standby.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use roost_test_support::{
    Agent, AlarmLoad, Api, Netns, Server, ServerOptions, ip, missing_alarms, postgres_available,
    postgres_store, wait_for,
};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// Two controllers on a new PostgreSQL database: controller-0 (active,
/// started first) and controller-1 (standby), with the same data key.
struct Pair {
    dir: tempfile::TempDir,
    store: String,
    c0: Server,
    c1: Server,
}

fn controller(dir: &Path, name: &str, store: &str) -> Server {
    controller_in(dir, name, store, "simplex")
}

fn controller_in(dir: &Path, name: &str, store: &str, mode: &str) -> Server {
    controller_at(dir, name, store, mode, ServerOptions::default())
}

/// A controller with `opts` (a network namespace, an address) besides.
fn controller_at(dir: &Path, name: &str, store: &str, mode: &str, opts: ServerOptions) -> Server {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("hostname = \"{name}\"\nsystem_mode = \"{mode}\"\n[ha]\nlease_ms = 1000\n"),
    )
    .unwrap();
    Server::start_in(
        bin(),
        &dir.join(name),
        ServerOptions {
            args: vec!["--config".into(), config.display().to_string()],
            store: Some(store.to_string()),
            ..opts
        },
        None,
    )
    .expect("controller starts")
}

fn pair() -> Pair {
    pair_in("simplex")
}

fn pair_in(mode: &str) -> Pair {
    pair_with(
        |dir, store| controller_in(dir, "controller-0", store, mode),
        mode,
    )
}

/// Waits until `s` logged `text` (30 s at most); fails with its log.
fn wait_logged(s: &Server, text: &str, what: &str) {
    wait_for(30, || s.log().contains(text).then_some(()))
        .unwrap_or_else(|| panic!("{what}: {}", s.log()));
}

const ACTIVE: &str = "this server is the active controller";
const STANDBY: &str = "standby: another controller is active";

/// controller-0 started by `start_c0` (given the directory and the store)
/// and active, then controller-1 in `mode`, with the same data key, the
/// standby.
fn pair_with(start_c0: impl FnOnce(&Path, &str) -> Server, mode: &str) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let store = postgres_store();
    let c0 = start_c0(dir.path(), &store);
    wait_logged(&c0, ACTIVE, "controller-0 is active");
    // The second controller seals with the same data key.
    let d1 = dir.path().join("controller-1");
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::copy(c0.data_dir.join("secret.key"), d1.join("secret.key")).unwrap();
    let c1 = controller_in(dir.path(), "controller-1", &store, mode);
    wait_logged(&c1, STANDBY, "controller-1 is the standby");
    Pair { dir, store, c0, c1 }
}

/// An API client of the pair: the token is good on both.
fn api_of(s: &Server, token: &str) -> Api {
    Api {
        url: s.url.clone(),
        token: token.to_string(),
    }
}

/// Waits until `n` more writes of `w` are acknowledged.
fn more_writes(w: &AlarmLoad, n: usize) {
    assert!(w.wait_for_more(n, 60), "{n} more writes acknowledged");
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Every acknowledged alarm is in the store the active serves.
fn all_there(api: &Api, acked: &[String]) {
    let lost = missing_alarms(api, acked).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged alarms lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}

/// The worker's heartbeat failure history (200.004/200.005/200.009).
fn failures(api: &Api, host: &str) -> Vec<Value> {
    api.events(&format!(
        "?alarms=True&q.field=entity_instance_id&q.value=host%3D{host}"
    ))
    .into_iter()
    .filter(|e| {
        matches!(
            e["event_log_id"].as_str(),
            Some("200.004" | "200.005" | "200.009")
        )
    })
    .collect()
}

fn agent_of(p: &Pair, api: &Api) -> Agent {
    let token = api.add_host("worker-0", "worker");
    let servers = format!("{},{}", p.c0.url, p.c1.url);
    let a = Agent::start(
        bin(),
        &servers,
        &token,
        &p.dir.path().join("worker-0"),
        "127.0.0.2",
        &[],
    )
    .expect("agent starts");
    api.wait_avail("worker-0", "online", 30);
    let r = api.host_action("worker-0", "unlock");
    assert_eq!(r.status, 200, "{:?}", r.body);
    api.wait_avail("worker-0", "available", 30);
    a
}

/// The active dies (`kill -9`, or SIGSTOP when `pause`) under writes; the
/// standby takes over; nothing acknowledged is lost; the host stays
/// available; the old active comes back as a standby.
fn switch_over(pause: bool) {
    let mut p = pair();
    let token = p.c0.token();
    let api0 = api_of(&p.c0, &token);
    let _agent = agent_of(&p, &api0);
    let w = AlarmLoad::start(&[p.c0.url.clone(), p.c1.url.clone()], &token);
    more_writes(&w, 200);

    let old_pid = p.c0.pid();
    if pause {
        signal(old_pid, "STOP");
    } else {
        p.c0.kill9();
    }
    // The standby takes over and answers writes.
    let api1 = api_of(&p.c1, &token);
    wait_logged(&p.c1, ACTIVE, "the standby takes the lease");
    more_writes(&w, 200);

    if pause {
        // Resumed, the old active finds its lease gone and comes back as a
        // standby: it redirects to the new active.
        signal(old_pid, "CONT");
        wait_logged(&p.c0, "stepping down", "the old active steps down");
    } else {
        p.c0 = controller(p.dir.path(), "controller-0", &p.store);
    }
    wait_for(30, || {
        let r = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/v1/alarms", p.c0.url))
            .send()
            .ok()?;
        (r.status().as_u16() == 307).then_some(())
    })
    .expect("the old active redirects to the new one");
    let acked = w.finish();
    assert!(acked.len() >= 400);
    all_there(&api1, &acked);
    // Through the old active's address too (redirected).
    assert_eq!(
        api_of(&p.c0, &token).alarms("").len(),
        api1.alarms("").len()
    );

    // The host rode through: the new active's pulses are answered (its
    // counter moves), it is still available and it never failed.
    let answered = || {
        let text = api1.get("/metrics").body.as_str().unwrap_or("").to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("roost_heartbeat_pulses_answered_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let seen = answered();
    wait_for(60, || (answered() >= seen + 10.0).then_some(()))
        .expect("the agent answers the new active's pulses");
    let h = api1.host("worker-0");
    assert_eq!(h["availability"], "available", "{h:?}");
    assert!(
        failures(&api1, "worker-0").is_empty(),
        "{:?}",
        failures(&api1, "worker-0")
    );
    let log = p.c1.log();
    assert!(!log.contains("failed"), "{log}");
}

#[test]
fn kill_9_of_the_active_under_writes_loses_nothing() {
    if !postgres_available() {
        return;
    }
    switch_over(false);
}

#[test]
fn a_paused_active_is_fenced_and_comes_back_as_a_standby() {
    if !postgres_available() {
        return;
    }
    switch_over(true);
}

#[test]
fn a_stopped_active_hands_over_at_once_and_a_standby_serves_reads_and_redirects_writes() {
    if !postgres_available() {
        return;
    }
    let mut p = pair();
    let token = p.c0.token();
    // Through the standby: logins and writes are redirected to the active.
    let via_standby = api_of(&p.c1, &token);
    let uuid = via_standby.set_alarm("100.104", "host=via-standby.filesystem=/", "major");
    let api0 = api_of(&p.c0, &token);
    assert!(api0.alarms("").iter().any(|a| a["uuid"] == uuid.as_str()));
    // The standby answers an authenticated read itself (forwarded to the
    // active), and redirects a write.
    let raw = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = raw
        .get(format!("{}/v1/alarms", p.c1.url))
        .header("X-Auth-Token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("via").and_then(|v| v.to_str().ok()),
        Some("1.1 roost-standby")
    );
    let listed: Value = r.json().unwrap();
    assert!(
        listed["alarms"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["uuid"] == uuid.as_str())),
        "{listed:?}"
    );
    let r = raw.get(format!("{}/v1/alarms", p.c1.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 307, "an anonymous read is redirected");
    let r = raw
        .delete(format!("{}/v1/alarms/{uuid}", p.c1.url))
        .header("X-Auth-Token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 307, "a write is redirected");
    // A graceful stop gives the lease up: the standby takes it at its next
    // look, well before the lease would have expired.
    p.c0.terminate();
    wait_logged(&p.c1, ACTIVE, "the standby takes over");
    let log = p.c1.log();
    let taken = log
        .lines()
        .find(|l| l.contains("took the controller lease"))
        .unwrap();
    assert!(taken.contains("epoch=2"), "{taken}");
    assert!(
        via_standby
            .alarms("")
            .iter()
            .any(|a| a["uuid"] == uuid.as_str())
    );
}

/// The active alarms with this id, by entity; during a switch-over the
/// answer may be a 503 from a standby with no active yet: then none.
fn raised_now(api: &Api, id: &str) -> Option<Vec<String>> {
    let r = api
        .try_get(&format!("/v1/alarms?q.field=alarm_id&q.value={id}"))
        .ok()?;
    (r.status == 200).then(|| {
        r.body["alarms"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|a| a["entity_instance_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    })
}

fn raised(api: &Api, id: &str) -> Vec<String> {
    raised_now(api, id).expect("the alarm list answers")
}

/// Waits until alarm `id` is raised (true) or not (false) on `s`.
fn wait_alarm(s: &Server, api: &Api, id: &str, up: bool) {
    wait_for(30, || {
        raised_now(api, id)
            .filter(|v| v.is_empty() != up)
            .map(|_| ())
    })
    .unwrap_or_else(|| {
        let r = api.get(&format!("/v1/alarms?q.field=alarm_id&q.value={id}"));
        panic!(
            "{id} {}: {} {:?}\n{}",
            if up { "raised" } else { "cleared" },
            r.status,
            r.body,
            s.log()
        )
    });
}

/// `system host-swact NAME` as StarlingX's client sends it (CLIENTS.md
/// fact 22): the host resolved through the list, then a PATCH of its
/// numeric id; the reply must be the full host.
fn host_swact(api: &Api, name: &str) -> (u16, Value) {
    let r = api.stock_host_action(name, "swact");
    (r.status, r.body)
}

/// Waits until the host list of `api` shows controller `name` in states
/// `oper`/`avail`, not as the active controller.
fn wait_peer_listed(api: &Api, name: &str, oper: &str, avail: &str) {
    let seen = wait_for(30, || {
        let r = api.try_get("/v1/ihosts").ok()?;
        let h = r.body["ihosts"]
            .as_array()?
            .iter()
            .find(|h| h["hostname"] == name)?
            .clone();
        (h["operational"] == oper && h["availability"] == avail).then_some(h)
    });
    let h = seen.unwrap_or_else(|| {
        panic!(
            "the host list shows {name} {oper}/{avail}: {:?}",
            api.try_get("/v1/ihosts").map(|r| r.body)
        )
    });
    assert_eq!(h["personality"], "controller", "{h:?}");
    assert_eq!(h["administrative"], "unlocked", "{h:?}");
}

#[test]
fn swact_hands_the_active_role_to_the_standby_and_redundancy_alarms_follow() {
    if !postgres_available() {
        return;
    }
    let mut p = pair_in("duplex");
    let token = p.c0.token();
    let api0 = api_of(&p.c0, &token);
    let api1 = api_of(&p.c1, &token);
    // Both connected: redundancy holds (controller-0 raised 400.002 while
    // it was alone, and clears it once controller-1 is connected).
    wait_alarm(&p.c0, &api0, "400.002", false);
    // The host list shows both controllers: the standby's host as its
    // server's connection says, and it is not this server's to act on.
    wait_peer_listed(&api0, "controller-1", "enabled", "available");
    let (status, body) = host_swact(&api0, "controller-1");
    assert_eq!(status, 400, "{body:?}");
    assert!(
        body.to_string().contains("is the standby controller"),
        "{body:?}"
    );
    let before = api0.set_alarm("100.104", "host=before-swact.filesystem=/", "major");

    let (status, body) = host_swact(&api0, "controller-0");
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(body["hostname"], "controller-0");
    assert!(
        body.get("subfunctions").is_some(),
        "the full host: {body:?}"
    );
    wait_for(30, || {
        p.c1.log()
            .contains("this server is the active controller")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "controller-1 takes over: {}\n---\n{}",
            p.c0.log(),
            p.c1.log()
        )
    });
    wait_for(30, || {
        p.c0.log()
            .contains("standby: another controller is active")
            .then_some(())
    })
    .expect("controller-0 comes back as the standby");
    // Nothing was lost, and a clean swact fails no service group.
    assert!(api1.alarms("").iter().any(|a| a["uuid"] == before.as_str()));
    assert!(raised(&api1, "400.001").is_empty());

    // The standby dies: redundancy is lost (400.002) until it is back,
    // and its host is listed offline.
    p.c0.kill9();
    wait_alarm(&p.c1, &api1, "400.002", true);
    wait_peer_listed(&api1, "controller-0", "disabled", "offline");
    assert_eq!(
        raised(&api1, "400.002"),
        ["service_domain=controller.service_group=controller-services"]
    );
    // Alone, it cannot swact, forced (`system host-swact -f`) or not.
    for action in ["swact", "force-swact"] {
        let r = api1.stock_host_action("controller-1", action);
        assert_eq!(r.status, 400, "{action}: {:?}", r.body);
        assert!(
            r.body
                .to_string()
                .contains("no peer controller is connected as a standby"),
            "{action}: {:?}",
            r.body
        );
    }
    p.c0 = controller_in(p.dir.path(), "controller-0", &p.store, "duplex");
    let api0 = api_of(&p.c0, &token);
    wait_alarm(&p.c1, &api1, "400.002", false);
    wait_peer_listed(&api1, "controller-0", "enabled", "available");

    // The active dies: the standby takes over and reports the failed
    // controller's services (400.001) until it is back.
    p.c1.kill9();
    wait_alarm(&p.c0, &api0, "400.001", true);
    assert_eq!(
        raised(&api0, "400.001"),
        ["service_domain=controller.service_group=controller-services.host=controller-1"]
    );
    p.c1 = controller_in(p.dir.path(), "controller-1", &p.store, "duplex");
    wait_alarm(&p.c0, &api0, "400.001", false);
}

#[test]
fn swact_is_refused_on_a_simplex_system() {
    if !postgres_available() {
        return;
    }
    let p = pair();
    let api0 = api_of(&p.c0, &p.c0.token());
    let (status, body) = host_swact(&api0, "controller-0");
    assert_eq!(status, 400, "{body:?}");
    assert!(body.to_string().contains("simplex"), "{body:?}");
}

/// Whether `s` answers a request with a redirect (it is a standby that
/// knows the active).
fn redirects(s: &Server) -> bool {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{}/v1/alarms", s.url))
        .send()
        .is_ok_and(|r| r.status().as_u16() == 307)
}

/// The active runs in a network namespace and reaches the database over a
/// veth link; the link is cut under writes. The standby takes over once
/// the lease expires; the cut-off active stops acting by its own clock,
/// and, the link restored, its writes under the old epoch are refused and
/// it comes back as a standby. Nothing acknowledged is lost.
#[test]
fn a_network_cut_between_the_active_and_the_database_moves_activity_and_loses_nothing() {
    if !postgres_available() {
        return;
    }
    let tag = std::process::id() % 10_000 + 30_000;
    let Some(ns) = Netns::require(tag, 1) else {
        return;
    };
    let p = pair_with(
        |dir, store| {
            // The database as the namespace reaches it: the root side of
            // the link.
            let store_ns = store.replacen("127.0.0.1", &ns.addr(0, 1), 1);
            assert_ne!(store_ns, store, "{store}");
            controller_at(
                dir,
                "controller-0",
                &store_ns,
                "duplex",
                ServerOptions {
                    netns: Some(ns.name.clone()),
                    listen: Some(format!("{}:0", ns.addr(0, 2))),
                    ..Default::default()
                },
            )
        },
        "duplex",
    );
    let (c0, c1) = (&p.c0, &p.c1);
    let token = c0.token();
    let w = AlarmLoad::start(&[c0.url.clone(), c1.url.clone()], &token);
    more_writes(&w, 200);

    assert!(
        ip(&["link", "set", &ns.host_ifs[0], "down"]),
        "cut the link"
    );
    wait_logged(c1, ACTIVE, "the standby takes over");
    let taken = c1
        .log()
        .lines()
        .find(|l| l.contains("took the controller lease"))
        .map(str::to_string)
        .unwrap();
    assert!(taken.contains("epoch=2"), "{taken}");
    more_writes(&w, 200);
    // Cut off, the old active stopped acting by its own clock.
    wait_logged(c0, "stepping down", "the cut-off active steps down");

    assert!(
        ip(&["link", "set", &ns.host_ifs[0], "up"]),
        "restore the link"
    );
    wait_for(60, || redirects(c0).then_some(()))
        .unwrap_or_else(|| panic!("the old active comes back as a standby: {}", c0.log()));
    let acked = w.finish();
    assert!(acked.len() >= 400);
    let api1 = api_of(c1, &token);
    all_there(&api1, &acked);
    // 400.001 for the controller whose lease ran out, cleared once it is
    // connected again.
    wait_alarm(c1, &api1, "400.001", false);
    assert!(
        !c1.log().contains("stepping down"),
        "the new active kept its lease: {}",
        c1.log()
    );
}

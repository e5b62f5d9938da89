//! A fleet software rollout, end to end: a real system controller, three
//! real subclouds, each with one real agent host. A release uploaded on the
//! system controller reaches every subcloud through the sync (fetched once,
//! verified against the subcloud's own trusted key). dcmanager's
//! `sw-deploy` strategy, driven with the stock client's requests, deploys
//! it: a canary stage first, a wait for approval, then the rest; each
//! subcloud runs its own site strategy and its agent switches to the
//! release. A second release then meets trouble: one subcloud is offline
//! when the strategy starts (deferred, updated once it is back), one raises
//! a management-affecting alarm during its soak and one fails its health
//! check; both are rolled back by themselves, so every subcloud ends on one
//! consistent release.

use std::path::Path;

use roost_test_support::{Agent, Api, Server, ServerOptions, release, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn config(dir: &Path, extra: &str) -> String {
    roost_test_support::quick_dc_config(dir, extra)
}

/// The health check (run in `<agent-dir>/software/releases/<id>/`): fails
/// on a host whose agent directory holds `fail-health-<id>`.
const HEALTH: &str = "#!/bin/sh\nif [ -e \"../../../fail-health-$(basename \"$PWD\")\" ]; then echo 'service did not come up' >&2; exit 3; fi\nexit 0\n";

fn build(dir: &Path, key: &Path, id: &str, requires: &[&str]) -> std::path::PathBuf {
    let files: [(&str, &[u8]); 2] = [
        ("etc/motd", id.as_bytes()),
        ("hooks/health", HEALTH.as_bytes()),
    ];
    release::build_release(
        bin(),
        dir,
        key,
        &release::ReleaseSpec {
            id,
            requires,
            files: &files,
            reboot_required: false,
            health_check: Some("hooks/health"),
        },
    )
    .unwrap()
}

fn release_state(api: &Api, id: &str) -> String {
    let r = api.get(&format!("/v1/release/{id}"));
    if r.status != 200 {
        return "absent".into();
    }
    r.body["state"].as_str().unwrap_or_default().to_string()
}

fn wait_release(s: &Server, id: &str, want: &str) {
    let api = s.api();
    wait_for(240, || (release_state(&api, id) == want).then_some(())).unwrap_or_else(|| {
        panic!(
            "{id} never became {want} on {}: {}\n{}",
            s.url,
            release_state(&api, id),
            s.log()
        )
    });
}

/// A dcmanager refusal: the status, and the detail in the HTML page.
fn refused(r: &roost_test_support::Reply, status: u16, says: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    let page = r.body.as_str().unwrap_or_default();
    assert!(page.contains(says), "{page:?} should say {says:?}");
}

fn strategy(api: &Api) -> Value {
    api.get("/v1.0/sw-update-strategy?type=sw-deploy").body
}

fn wait_strategy(api: &Api, want: &str, secs: u64) -> Value {
    wait_for(secs, || {
        let s = strategy(api);
        (s["state"] == want).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the strategy never became {want}: {}\nsteps: {}",
            strategy(api),
            api.get("/v1.0/sw-update-strategy/steps").body
        )
    })
}

fn step(api: &Api, cloud: &str) -> Value {
    api.get(&format!("/v1.0/sw-update-strategy/steps/{cloud}"))
        .body
}

fn wait_step(api: &Api, cloud: &str, want: &str, secs: u64) -> Value {
    wait_for(secs, || {
        let s = step(api, cloud);
        (s["state"] == want).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "{cloud}'s step never became {want}: {}",
            api.get("/v1.0/sw-update-strategy/steps").body
        )
    })
}

fn action(api: &Api, what: &str) -> (u16, Value) {
    let r = api.post(
        "/v1.0/sw-update-strategy/actions?type=sw-deploy",
        &json!({"action": what}),
    );
    (r.status, r.body)
}

/// The release the agent of a subcloud's host runs.
fn agent_release(dir: &Path) -> String {
    std::fs::read_link(dir.join("software/current"))
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .unwrap_or_default()
}

#[test]
fn a_release_rolls_out_through_a_canary_and_troubled_subclouds_roll_back_by_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("release.key");
    let public =
        release::release_cli(bin(), &["keygen", "--out", &key.display().to_string()]).unwrap();
    let software =
        format!("[software]\ntrusted_keys = [\"{public}\"]\nhost_deploy_timeout_secs = 300\n");
    let sc = Server::start_with(
        bin(),
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                config(
                    &tmp.path().join("sc"),
                    &format!("[apps]\nlocal_runtime = false\n{software}"),
                ),
            ],
            ..Default::default()
        },
    );
    let api = sc.api();

    // strategy-config: the defaults are StarlingX's constants until set.
    let r = api.get("/v1.0/sw-update-options");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["sw-update-options"][0]["name"], "all clouds default");
    assert_eq!(r.body["sw-update-options"][0]["max-parallel-workers"], 10);
    let r = api.post(
        "/v1.0/sw-update-options/SystemController",
        &json!({"storage-apply-type": "parallel", "worker-apply-type": "serial", "max-parallel-workers": 5, "alarm-restriction-type": "relaxed", "default-instance-action": "stop-start"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["worker-apply-type"], "serial");
    let r = api.get("/v1.0/sw-update-options/SystemController");
    assert_eq!(r.body["max-parallel-workers"], 5);
    // Bad options are refused whole.
    let r = api.post(
        "/v1.0/sw-update-options/SystemController",
        &json!({"storage-apply-type": "parallel", "worker-apply-type": "sideways", "max-parallel-workers": 5, "alarm-restriction-type": "relaxed", "default-instance-action": "stop-start"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        api.get("/v1.0/sw-update-options/SystemController").body["worker-apply-type"],
        "serial"
    );

    // Three subclouds, each with one agent host.
    let names = ["edge-1", "edge-2", "edge-3"];
    let mut subs = Vec::new();
    let mut agents = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let r = api.post(
            "/v1.0/subclouds/",
            &json!({"name": n, "description": "site"}),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        let token = r.body["enroll_token"].as_str().unwrap().to_string();
        let dir = tmp.path().join(n);
        // A fixed port: its agent finds it again after a restart.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sub = Server::start_in(
            bin(),
            &dir.join("data"),
            ServerOptions {
                args: vec![
                    "--role".into(),
                    "subcloud".into(),
                    "--system-controller".into(),
                    sc.dc_url.clone().unwrap(),
                    "--enroll-token".into(),
                    token,
                    "--config".into(),
                    config(&dir, &format!("[apps]\nlocal_runtime = false\n{software}")),
                ],
                listen: Some(format!("127.0.0.1:{port}")),
                ..Default::default()
            },
            None,
        )
        .expect("subcloud starts");
        let sapi = sub.api();
        let host = format!("worker-{}", i + 1);
        let join = sapi.add_host(&host, "worker");
        let agent = Agent::start(
            bin(),
            &sub.url,
            &join,
            &dir.join("agent"),
            &format!("127.0.0.{}", 21 + i),
            // The soak fails a subcloud on any new alarm: the agent does
            // not sample this machine's CPU during the test, whose load
            // (other tests) would raise 100.101.
            &[
                "--report-interval-secs",
                "1",
                "--no-apps",
                "--monitor-interval-secs",
                "3600",
            ],
        )
        .expect("agent starts");
        sapi.wait_avail(&host, "online", 60);
        assert_eq!(sapi.host_action(&host, "unlock").status, 200);
        sapi.wait_avail(&host, "available", 120);
        subs.push(sub);
        agents.push(agent);
    }
    for n in names {
        wait_for(240, || {
            (api.get(&format!("/v1.0/subclouds/{n}")).body["availability-status"] == "online")
                .then_some(())
        })
        .unwrap_or_else(|| panic!("{n} never came online"));
        let r = api.patch(
            &format!("/v1.0/subclouds/{n}"),
            &json!({"management-state": "managed"}),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    // No strategy yet, and strategy-config of a subcloud without its own
    // options or of an unknown one: StarlingX's 404s, as webob pages the
    // client parses.
    for (path, says) in [
        (
            "/v1.0/sw-update-strategy?type=sw-deploy",
            "Strategy of type 'sw-deploy' not found",
        ),
        ("/v1.0/sw-update-strategy", "Strategy not found"),
        (
            "/v1.0/sw-update-strategy/steps/edge-1",
            "Strategy step not found",
        ),
        (
            "/v1.0/sw-update-options/edge-2",
            "No options found for Subcloud with id",
        ),
        ("/v1.0/sw-update-options/nowhere", "Subcloud not found"),
    ] {
        refused(&api.get(path), 404, says);
    }
    assert_eq!(
        api.get("/v1.0/sw-update-strategy/steps").body,
        json!({"strategy-steps": []})
    );
    // strategy-config: no options of its own to delete.
    refused(
        &api.delete("/v1.0/sw-update-options/edge-2"),
        404,
        "Subcloud patch options not found",
    );
    let own = api.post(
        "/v1.0/sw-update-options/edge-2",
        &json!({"storage-apply-type": "serial", "worker-apply-type": "parallel", "max-parallel-workers": "3", "alarm-restriction-type": "strict", "default-instance-action": "migrate"}),
    );
    assert_eq!(own.status, 200, "{:?}", own.body);
    assert_eq!(own.body["name"], "edge-2");
    assert_eq!(own.body["max-parallel-workers"], 3);
    let list = api.get("/v1.0/sw-update-options").body;
    let clouds: Vec<&str> = list["sw-update-options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(clouds, ["all clouds default", "edge-2"]);
    for o in list["sw-update-options"].as_array().unwrap() {
        for k in [
            "name",
            "storage-apply-type",
            "worker-apply-type",
            "max-parallel-workers",
            "alarm-restriction-type",
            "default-instance-action",
            "created-at",
            "updated-at",
        ] {
            assert!(o.get(k).is_some(), "{k} missing in {o}");
        }
    }
    assert_eq!(api.delete("/v1.0/sw-update-options/edge-2").status, 200);
    // Bad creates: each refused whole with dcmanager's words.
    let create = |body: Value| api.post("/v1.0/sw-update-strategy/", &body);
    refused(
        &create(json!({"release_id": "roost-1.1.0"})),
        400,
        "type required",
    );
    refused(
        &create(json!({"type": "nope", "release_id": "x"})),
        400,
        "type invalid",
    );
    refused(
        &create(json!({"type": "sw-deploy", "snapshot": false})),
        400,
        "Release ID is required for strategy type: sw-deploy.",
    );
    refused(
        &create(json!({"type": "sw-deploy", "release_id": "roost-9.9.9"})),
        400,
        "Release ID: roost-9.9.9 not found or not deployed in the SystemController",
    );
    refused(
        &create(
            json!({"type": "sw-deploy", "release_id": "roost-9.9.9", "stop-on-failure": "yes"}),
        ),
        400,
        "stop-on-failure",
    );
    refused(
        &create(
            json!({"type": "sw-deploy", "release_id": "roost-9.9.9", "sysadmin_password": "cHc="}),
        ),
        400,
        "sysadmin_password",
    );
    refused(
        &create(
            json!({"type": "sw-deploy", "release_id": "roost-9.9.9", "with_prestage": "maybe"}),
        ),
        400,
        "with_prestage",
    );
    assert_eq!(
        api.get("/v1.0/sw-update-strategy").status,
        404,
        "nothing was created"
    );

    // The release reaches every subcloud through the sync.
    let a = build(tmp.path(), &key, "roost-1.1.0", &[]);
    let (status, v) = release::upload_release(&sc.url, &sc.token(), &[a.as_path()]);
    assert_eq!((status, v["error"].as_str()), (200, Some("")), "{v}");
    for s in &subs {
        wait_release(s, "roost-1.1.0", "available");
    }

    // Canary of one, approval, a short soak; the rest in one stage. Through
    // the CLI, as an operator would.
    let cli = roost_test_support::Cli::new(bin());
    let roost = |args: &[&str]| {
        let mut cmd = cli.cmd(args);
        cmd.env("ROOST_URL", &sc.url).env("ROOST_TOKEN", sc.token());
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = roost(&[
        "strategy",
        "create",
        "roost-1.1.0",
        "--subcloud-apply-type",
        "parallel",
        "--max-parallel-subclouds",
        "2",
        "--stop-on-failure",
        "--canary",
        "1",
        "--approval",
        "--soak",
        "3",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("(sw-deploy, roost-1.1.0): initial, stops on failure"),
        "{out}"
    );
    assert!(out.contains("canary"), "{out}");
    assert!(err.contains("roost strategy apply"), "{err}");
    let r = api.get("/v1.0/sw-update-strategy?type=sw-deploy");
    assert_eq!(r.body["state"], "initial");
    assert_eq!(r.body["stop-on-failure"], true);
    assert_eq!(r.body["subcloud-apply-type"], "parallel");
    assert_eq!(r.body["max-parallel-subclouds"], 2);
    assert_eq!(r.body["extra-args"]["release_id"], "roost-1.1.0");
    assert_eq!(r.body["stages"][0]["name"], "canary");
    assert_eq!(r.body["stages"][1]["subclouds"], 2);
    // One strategy at a time: 422, as dcmanager answers.
    let again = api.post(
        "/v1.0/sw-update-strategy/",
        &json!({"release_id": "roost-1.1.0", "type": "sw-deploy"}),
    );
    refused(&again, 422, "Strategy of type: 'sw-deploy' already exists");
    // Delete is refused while it applies, below.
    let steps = api.get("/v1.0/sw-update-strategy/steps").body;
    let steps = steps["strategy-steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for s in steps {
        for k in [
            "cloud",
            "stage",
            "state",
            "details",
            "started-at",
            "finished-at",
            "created-at",
            "updated-at",
        ] {
            assert!(s.get(k).is_some(), "{k} missing in {s}");
        }
    }
    // Abort is refused before apply (StarlingX's rule).
    let (status, body) = action(&api, "abort");
    assert_eq!(status, 422, "{body}");
    let (code, out, err) = roost(&["strategy", "apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    refused(
        &api.delete("/v1.0/sw-update-strategy?type=sw-deploy"),
        422,
        "Unable to delete strategy of type 'sw-deploy': Bad strategy request: Strategy in state applying cannot be deleted",
    );
    // --watch follows it until it waits for the approval.
    let (code, out, err) = roost(&["strategy", "show", "--watch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("awaiting approval"), "{out}");
    assert!(err.contains("roost strategy apply"), "{err}");
    let s = wait_strategy(&api, "awaiting approval", 300);
    assert_eq!(step(&api, "edge-1")["state"], "complete", "{s}");
    assert_eq!(step(&api, "edge-2")["state"], "initial");
    assert_eq!(release_state(&subs[0].api(), "roost-1.1.0"), "deployed");
    assert_eq!(
        agent_release(&tmp.path().join("edge-1/agent")),
        "roost-1.1.0"
    );
    assert_eq!(release_state(&subs[1].api(), "roost-1.1.0"), "available");
    // The approval, then --watch to the end.
    let (code, out, err) = roost(&["strategy", "apply"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = roost(&["strategy", "show", "--watch"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("): complete"), "{out}");
    assert!(out.contains("2 complete"), "{out}");
    wait_strategy(&api, "complete", 10);
    for (i, s) in subs.iter().enumerate() {
        assert_eq!(release_state(&s.api(), "roost-1.1.0"), "deployed");
        assert_eq!(
            agent_release(&tmp.path().join(names[i]).join("agent")),
            "roost-1.1.0",
            "{}: {}\n{}",
            names[i],
            s.log(),
            agents[i].log()
        );
        // Nothing left behind on the subcloud.
        assert_eq!(s.api().get("/v1/deploy").body, json!([]));
    }
    let r = api.delete("/v1.0/sw-update-strategy?type=sw-deploy");
    assert_eq!(
        (r.status, r.body["state"].as_str()),
        (200, Some("deleting"))
    );
    assert_eq!(api.get("/v1.0/sw-update-strategy").status, 404);

    // The second release meets trouble.
    let b = build(tmp.path(), &key, "roost-1.2.0", &["roost-1.1.0"]);
    let (status, v) = release::upload_release(&sc.url, &sc.token(), &[b.as_path()]);
    assert_eq!((status, v["error"].as_str()), (200, Some("")), "{v}");
    for s in &subs {
        wait_release(s, "roost-1.2.0", "available");
    }
    // edge-3's host fails its health check.
    std::fs::write(tmp.path().join("edge-3/agent/fail-health-roost-1.2.0"), "").unwrap();
    // edge-1 is offline when the strategy starts.
    subs[0].terminate();
    wait_for(240, || {
        (api.get("/v1.0/subclouds/edge-1").body["availability-status"] == "offline").then_some(())
    })
    .expect("edge-1 goes offline");
    let r = api.post(
        "/v1.0/sw-update-strategy/",
        &json!({"subcloud-apply-type": "parallel", "max-parallel-subclouds": 3, "stop-on-failure": "false",
                "release_id": "roost-1.2.0", "type": "sw-deploy", "soak_secs": 20, "auto_rollback": true}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (status, body) = action(&api, "apply");
    assert_eq!(status, 200, "{body}");
    let d = wait_step(&api, "edge-1", "deferred", 60);
    assert_eq!(d["details"], "the subcloud is offline");

    // edge-2 raises a management-affecting alarm while it soaks.
    wait_step(&api, "edge-2", "soaking", 300);
    subs[1].api().set_alarm("100.101", "host=worker-2", "major");
    let failed = wait_step(&api, "edge-2", "failed", 300);
    let details = failed["details"].as_str().unwrap();
    assert!(details.contains("100.101"), "{details}");
    assert!(details.ends_with("; rolled back"), "{details}");
    let failed = wait_step(&api, "edge-3", "failed", 300);
    let details = failed["details"].as_str().unwrap();
    assert!(details.contains("service did not come up"), "{details}");
    assert!(details.ends_with("; rolled back"), "{details}");

    // edge-1 returns and is updated.
    subs[0].restart();
    wait_step(&api, "edge-1", "complete", 300);
    let s = wait_strategy(&api, "failed", 120);
    assert!(s["reason"].as_str().unwrap().contains("2 of 3"), "{s}");
    let (code, out, err) = roost(&["strategy", "show", "--watch"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("the strategy is failed"), "{err}");

    // Every subcloud on one consistent release, nothing left in progress.
    assert_eq!(release_state(&subs[0].api(), "roost-1.2.0"), "deployed");
    assert_eq!(
        agent_release(&tmp.path().join("edge-1/agent")),
        "roost-1.2.0"
    );
    for i in [1, 2] {
        let sapi = subs[i].api();
        assert_eq!(release_state(&sapi, "roost-1.2.0"), "available");
        assert_eq!(release_state(&sapi, "roost-1.1.0"), "deployed");
        assert_eq!(sapi.get("/v1/deploy").body, json!([]));
        assert_eq!(
            agent_release(&tmp.path().join(names[i]).join("agent")),
            "roost-1.1.0"
        );
    }
    drop(agents);
}

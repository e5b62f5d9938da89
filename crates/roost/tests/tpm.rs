//! TPM-rooted host identity through the real binary and a software TPM
//! (Debian's swtpm, checked with tpm2-tools): an agent enrolls with an
//! attestation key made in the TPM and a quote, proves its PCRs with fresh
//! quotes, and a PCR changed behind its back raises 500.110 and keeps the
//! host locked until an admin accepts the new values.

use std::path::Path;

use roost_test_support::{
    Agent, Api, Cli, PASSWORD, Server, ServerOptions, Swtpm, require_or_skip, wait_for,
};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn attestation(api: &Api) -> Value {
    let r = api.get("/v1/ihosts/worker-1/attestation");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// PCR 16 of the SHA-256 bank as tpm2-tools reads it, lowercase hex.
fn pcr16(tpm: &Swtpm) -> String {
    let out = tpm
        .tool("tpm2_pcrread", &["sha256:16"])
        .expect("tpm2_pcrread (Debian package tpm2-tools)");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("16"))
        .unwrap_or_else(|| panic!("no PCR 16 in {out}"));
    line.rsplit(':')
        .next()
        .unwrap()
        .trim()
        .trim_start_matches("0x")
        .to_ascii_lowercase()
}

fn tpm_alarm(api: &Api) -> Option<Value> {
    api.alarms("")
        .into_iter()
        .find(|a| a["alarm_id"] == "500.110" && a["entity_instance_id"] == "host=worker-1")
}

#[test]
fn a_tpm_host_enrolls_with_quotes_and_a_changed_pcr_keeps_it_locked() {
    if !require_or_skip(
        cfg!(feature = "tpm"),
        "roost built with the cargo feature tpm (cargo test --features roost/tpm)",
    ) {
        return;
    }
    let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
    let (s, dir) = Server::start_with_config(
        bin(),
        "[tpm]\nrequired = true\npcrs = [0, 16]\nquote_interval_secs = 1\n",
    );
    let api = s.api();

    // Required: an agent without a TPM is refused, with the reason.
    let join = api.add_host("worker-1", "worker");
    let refused = Agent::start(
        bin(),
        &s.url,
        &join,
        &dir.path().join("no-tpm"),
        "127.0.0.1",
        &["--no-apps"],
    );
    let log = refused.err().expect("refused").to_string();
    assert!(log.contains("requires a TPM"), "{log}");

    // With the TPM: enrolled, trusted, the PCRs learned are the TPM's.
    let _agent = Agent::start(
        bin(),
        &s.url,
        &join,
        &dir.path().join("worker-1"),
        "127.0.0.1",
        &[
            "--no-apps",
            "--tpm",
            &tpm.tcti(),
            "--tpm-pcrs",
            "0,16",
            "--report-interval-secs",
            "1",
        ],
    )
    .expect("agent with a TPM starts");
    api.wait_avail("worker-1", "online", 30);
    let a = attestation(&api);
    assert_eq!(a["status"], "trusted", "{a}");
    assert_eq!(a["expected_pcrs"]["16"], pcr16(&tpm), "{a}");
    assert!(a["expected_pcrs"]["0"].is_string(), "{a}");
    assert!(a["ak_fingerprint"].is_string(), "{a}");

    // Fresh quotes keep coming (a positive event, not a sleep).
    let first = a["last_quote_at"].clone();
    wait_for(30, || {
        (attestation(&api)["last_quote_at"] != first).then_some(())
    })
    .expect("a periodic quote verified");
    assert!(tpm_alarm(&api).is_none());

    // PCR 16 is extended behind the agent's back: the next quote fails the
    // host, 500.110 is raised, and an unlock is refused.
    tpm.tool(
        "tpm2_pcrextend",
        &["16:sha256=1111111111111111111111111111111111111111111111111111111111111111"],
    )
    .expect("tpm2_pcrextend");
    let changed = pcr16(&tpm);
    let alarm = wait_for(30, || tpm_alarm(&api)).expect("500.110 raised");
    assert_eq!(alarm["severity"], "critical");
    assert!(
        alarm["reason_text"].as_str().unwrap().contains("PCR 16"),
        "{alarm}"
    );
    let a = attestation(&api);
    assert_eq!(a["status"], "failed", "{a}");
    assert_eq!(a["last_pcrs"]["16"], changed, "{a}");
    // Refused as sysinv refuses actions: 400 with the reason.
    let r = api.host_action("worker-1", "unlock");
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.body.to_string().contains("TPM attestation"),
        "{:?}",
        r.body
    );
    assert_eq!(api.host("worker-1")["administrative"], "locked");

    // The admin accepts the new values (stock CLI path): trusted again, the
    // alarm cleared, the unlock taken.
    let cli = Cli::new(bin());
    let out = Cli::run_with_input(
        cli.cmd(&["login", "--url", &s.url, "--password-stdin"]),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let out = cli.run(&["host", "attestation", "worker-1", "--accept", "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "trusted", "{v}");
    assert_eq!(v["expected_pcrs"]["16"], changed, "{v}");
    wait_for(30, || tpm_alarm(&api).is_none().then_some(())).expect("500.110 cleared");
    let r = api.host_action("worker-1", "unlock");
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// The server's data-encryption key sealed by its own TPM: no plain key
/// file, a restart unseals it, a plain key kept before is sealed and
/// removed, and the data directory copied next to another TPM does not
/// open.
#[test]
fn the_servers_data_key_is_sealed_by_its_tpm() {
    if !require_or_skip(
        cfg!(feature = "tpm"),
        "roost built with the cargo feature tpm (cargo test --features roost/tpm)",
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // First a server with a plain key file and a secret in the store.
    let mut plain =
        Server::start_in(bin(), &data, ServerOptions::default(), None).expect("server starts");
    let api = plain.api();
    api.add_host("worker-1", "worker");
    let r = api.patch(
        "/v1/ihosts/worker-1",
        &serde_json::json!([
            {"op": "replace", "path": "/bm_type", "value": "redfish"},
            {"op": "replace", "path": "/bm_ip", "value": "127.0.0.1"},
            {"op": "replace", "path": "/bm_username", "value": "root"},
            {"op": "replace", "path": "/bm_password", "value": "Sealed-Bmc-Pw-4417"}
        ]),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    plain.terminate();
    assert!(data.join("secret.key").exists());

    let sealed_cfg = |tcti: &str| {
        let cfg = dir.path().join(format!("tpm-{}.toml", tcti.len()));
        std::fs::write(&cfg, format!("[tpm]\ndevice = \"{tcti}\"\n")).unwrap();
        ServerOptions {
            args: vec!["--config".into(), cfg.display().to_string()],
            ..Default::default()
        }
    };
    // With the TPM: the plain key is sealed, then removed.
    let mut s = Server::start_in(bin(), &data, sealed_cfg(&tpm.tcti()), None)
        .expect("server with a TPM starts");
    assert!(!data.join("secret.key").exists(), "{}", s.log());
    let sealed = data.join("secret.key.tpm");
    let mode = std::fs::metadata(&sealed).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(s.api().host("worker-1")["bm_type"], "redfish");
    // A restart unseals it again.
    s.restart();
    assert_eq!(s.api().host("worker-1")["bm_username"], "root");
    s.terminate();
    // No secret in clear anywhere in the data directory.
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("Sealed-Bmc-Pw-4417"),
                "{} holds the BMC password",
                p.display()
            );
        }
    }

    // The data directory next to another TPM: the server refuses to start
    // and says why.
    let other = Swtpm::start().expect("a second swtpm");
    let refused = Server::start_in(bin(), &data, sealed_cfg(&other.tcti()), None);
    let log = refused.err().expect("refused").to_string();
    assert!(log.contains("cannot unseal"), "{log}");
    // Its own TPM still opens it.
    let back = Server::start_in(bin(), &data, sealed_cfg(&tpm.tcti()), None)
        .expect("the server starts again with its TPM");
    assert_eq!(back.api().host("worker-1")["bm_type"], "redfish");
}

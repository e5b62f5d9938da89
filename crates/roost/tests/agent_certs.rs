//! Agents' client certificates on an HTTPS cloud, through the real binary:
//! an agent enrolls with a CSR and presents its certificate on every call;
//! it renews it before expiry and after a rotation of the cloud CA without
//! its host missing a beat; a certificate from the cloud's own CA that is
//! not the one on the host's record, an earlier certificate of the host,
//! the certificate of a revoked host and that of a deleted host are all
//! refused although they are valid.

use std::path::Path;
use std::time::Duration;

use roost_pki::{Ca, ClientIdentity, Validity};
use roost_test_support::{Agent, Api, Cli, PASSWORD, Server, http, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// An HTTPS server on loopback whose agents' certificates live 30 s (so
/// they renew every 20 s).
fn tls_server() -> (Server, tempfile::TempDir) {
    let (s, dir) = Server::start_with_config(bin(), "agent_cert_secs = 30\n[http]\ntls = \"on\"\n");
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    (s, dir)
}

/// What an agent keeps: its token, certificate and key.
struct Held {
    token: String,
    cert_pem: String,
    key_pem: String,
}

fn held(agent_dir: &Path) -> Held {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(agent_dir.join("identity.json")).unwrap())
            .unwrap();
    Held {
        token: v["agent_token"].as_str().unwrap().to_string(),
        cert_pem: v["client_cert_pem"].as_str().unwrap().to_string(),
        key_pem: v["client_key_pem"].as_str().unwrap().to_string(),
    }
}

fn serial(pem: &str) -> String {
    roost_pki::cert_info(pem).unwrap().serial
}

/// `POST /v1/agent/report` with `token`, presenting `cert` (cert PEM, key
/// PEM) if given: (status, error message).
fn report(s: &Server, ca_pem: &str, token: &str, cert: Option<(&str, &str)>) -> (u16, String) {
    let mut b = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap());
    if let Some((c, k)) = cert {
        b = b.identity(reqwest::Identity::from_pem(format!("{c}\n{k}").as_bytes()).unwrap());
    }
    let r = b
        .build()
        .unwrap()
        .post(format!("{}/v1/agent/report", s.url))
        .header("X-Agent-Token", token)
        .json(&json!({}))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    let message = body["error"]["message"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or_default()
        .to_string();
    (status, message)
}

/// The certificate inventory's entry `name`, if listed.
fn listed(api: &Api, name: &str) -> Option<Value> {
    let v = api.get("/v1/certificates").body;
    v["certificates"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}

/// 200.004 (host failed) or 200.005 (heartbeat degraded) on `host`.
fn heartbeat_alarms(api: &Api, host: &str) -> usize {
    api.alarms("")
        .iter()
        .filter(|a| {
            let id = a["alarm_id"].as_str().unwrap_or_default();
            (id == "200.004" || id == "200.005")
                && a["entity_instance_id"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("host={host}"))
        })
        .count()
}

#[test]
fn agents_present_certificates_that_renew_and_are_refused_once_replaced_revoked_or_deleted() {
    let (s, _cfg) = tls_server();
    let api = s.api();
    let bundle_path = s.data_dir.join("tls/ca-bundle.crt");
    let bundle = bundle_path.display().to_string();
    let ca_pem = std::fs::read_to_string(&bundle_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent_dir = dir.path().join("worker-1");
    let join = api.add_host("worker-1", "worker");
    let _agent = Agent::start(
        bin(),
        &s.url,
        &join,
        &agent_dir,
        "127.0.0.1",
        &["--ca-file", &bundle, "--report-interval-secs", "1"],
    )
    .expect("agent starts");
    api.wait_avail("worker-1", "online", 30);
    let uuid = api.host("worker-1")["uuid"].as_str().unwrap().to_string();

    // Enrollment gave the agent a certificate for its own key, naming the
    // host's uuid, which the inventory lists.
    let first = held(&agent_dir);
    let info = roost_pki::cert_info(&first.cert_pem).unwrap();
    assert_eq!(info.cn.as_deref(), Some(uuid.as_str()));
    let entry = listed(&api, "agent/worker-1").expect("the agent's certificate is listed");
    assert_eq!(entry["serial"], info.serial);
    assert_eq!(entry["mode"], "agent");
    let mode = std::fs::metadata(agent_dir.join("identity.json"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // The token alone is refused over HTTPS; with the certificate it is
    // taken.
    let (status, message) = report(&s, &ca_pem, &first.token, None);
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("client certificate"), "{message}");
    let (status, message) = report(
        &s,
        &ca_pem,
        &first.token,
        Some((&first.cert_pem, &first.key_pem)),
    );
    assert_eq!(status, 200, "{message}");

    // A certificate from the cloud's own CA for this host's uuid, but not
    // the one on its record: refused.
    let ca = Ca::load_or_create(&s.data_dir.join("tls/ca"), "unused").unwrap();
    let forged_key = ClientIdentity::generate("x").unwrap();
    let forged = ca
        .sign_client_csr_with(
            &forged_key.csr_pem,
            &uuid,
            Validity::between(
                std::time::SystemTime::now() - Duration::from_secs(60),
                std::time::SystemTime::now() + Duration::from_secs(3600),
            )
            .unwrap(),
        )
        .unwrap();
    let (status, message) = report(
        &s,
        &ca_pem,
        &first.token,
        Some((&forged, &forged_key.key_pem)),
    );
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("no longer"), "{message}");

    // Renewal at two thirds of 30 s: a new serial, the host online all
    // along; once the agent uses the new certificate the first one is out.
    wait_for(60, || {
        let h = held(&agent_dir);
        (serial(&h.cert_pem) != info.serial).then_some(h)
    })
    .expect("the agent renewed its certificate");
    // The inventory lists the certificate the agent holds (read together:
    // with 30 s certificates the agent may renew again meanwhile).
    wait_for(30, || {
        let listed = listed(&api, "agent/worker-1")?;
        (listed["serial"] == serial(&held(&agent_dir).cert_pem)).then_some(())
    })
    .expect("the inventory lists the new certificate");
    wait_for(30, || {
        let (status, _) = report(
            &s,
            &ca_pem,
            &first.token,
            Some((&first.cert_pem, &first.key_pem)),
        );
        (status == 401).then_some(())
    })
    .expect("the replaced certificate is refused once the new one is used");
    assert_eq!(api.host("worker-1")["availability"], "online");
    assert_eq!(heartbeat_alarms(&api, "worker-1"), 0);

    // A rotation of the cloud CA: the agent's certificate from the old CA
    // stays good, the next report asks for a new one, from the new CA.
    let cli = Cli::new(bin());
    let out = Cli::run_with_input(
        cli.cmd(&[
            "login",
            "--url",
            &s.url,
            "--password-stdin",
            "--ca-file",
            &bundle,
        ]),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let old_issuer = roost_pki::cert_info(&held(&agent_dir).cert_pem)
        .unwrap()
        .issuer_cn;
    cli.ok(&["certificate", "rotate-ca"]);
    let new_ca = Ca::load_or_create(&s.data_dir.join("tls/ca"), "unused").unwrap();
    let new_issuer = new_ca.info().cn.clone();
    assert_ne!(old_issuer, new_issuer);
    wait_for(60, || {
        let h = held(&agent_dir);
        (roost_pki::cert_info(&h.cert_pem).ok()?.issuer_cn == new_issuer).then_some(())
    })
    .expect("the agent took a certificate from the new CA");
    let now = held(&agent_dir);
    let both = std::fs::read_to_string(&bundle_path).unwrap();
    let (status, message) = report(&s, &both, &now.token, Some((&now.cert_pem, &now.key_pem)));
    assert_eq!(status, 200, "{message}");
    assert_eq!(api.host("worker-1")["availability"], "online");
    assert_eq!(heartbeat_alarms(&api, "worker-1"), 0);

    // Revoked: the certificate it holds, still valid, is refused at once.
    let out = cli.run(&["host", "revoke", "worker-1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Revoked the agent of host worker-1"),
        "{out:?}"
    );
    let (status, message) = report(&s, &both, &now.token, Some((&now.cert_pem, &now.key_pem)));
    assert_eq!(status, 401, "{message}");
    assert!(listed(&api, "agent/worker-1").is_none());

    // Deleted: a second host's agent enrolls, the host is deleted, its
    // certificate is refused.
    let agent2_dir = dir.path().join("worker-2");
    let join = api.add_host("worker-2", "worker");
    let mut agent2 = Agent::start(
        bin(),
        &s.url,
        &join,
        &agent2_dir,
        "127.0.0.1",
        &["--ca-file", &bundle],
    )
    .expect("second agent starts");
    api.wait_avail("worker-2", "online", 30);
    let second = held(&agent2_dir);
    agent2.kill9();
    let r = http()
        .delete(format!("{}/v1/ihosts/worker-2", s.url))
        .header("X-Auth-Token", s.token())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (status, message) = report(
        &s,
        &both,
        &second.token,
        Some((&second.cert_pem, &second.key_pem)),
    );
    assert_eq!(status, 401, "{message}");
}

/// An agent cannot enroll over HTTPS without a CSR, and gets a clear error;
/// over plain HTTP its token alone is used.
#[test]
fn enrollment_over_https_needs_a_certificate_request() {
    let (s, _cfg) = tls_server();
    let api = s.api();
    let join = api.add_host("worker-1", "worker");
    let r = http()
        .post(format!("{}/v1/agent/enroll", s.url))
        .json(&json!({"join_token": join, "inventory": {}, "heartbeat_port": 2103}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().unwrap();
    assert!(
        body.to_string().contains("certificate signing request"),
        "{body}"
    );
    // The join token was not used up.
    assert_eq!(api.host("worker-1")["availability"], "offline");
    let plain = Server::start(bin());
    let api = plain.api();
    let join = api.add_host("worker-1", "worker");
    let dir = tempfile::tempdir().unwrap();
    let _a = Agent::start(bin(), &plain.url, &join, dir.path(), "127.0.0.1", &[])
        .expect("agent starts over plain HTTP");
    api.wait_avail("worker-1", "online", 30);
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("identity.json")).unwrap())
            .unwrap();
    assert!(v.get("client_cert_pem").is_none(), "{v}");
    assert!(listed(&api, "agent/worker-1").is_none());
}

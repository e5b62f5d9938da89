//! TLS on the API and the certificates: HTTPS with `[http] tls = "on"`,
//! `roost login` with a CA file or a pinned fingerprint, keystoneauth1 with
//! the CA file, an operator's certificate swapped in without restart, the
//! expiry alarms, the inventory and the rotation of the cloud CA.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use roost_pki::{Ca, Validity};
use roost_test_support::{Cli, PASSWORD, Server, require_or_skip, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// A server with `[http] tls = "on"` on loopback, and the directory of its
/// config file.
fn tls_server() -> (Server, tempfile::TempDir) {
    let (s, dir) = Server::start_with_config(bin(), "[http]\ntls = \"on\"\n");
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    (s, dir)
}

fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn ca_file(s: &Server) -> PathBuf {
    s.data_dir.join("tls/ca/ca.crt")
}

fn ca_pem(s: &Server) -> String {
    std::fs::read_to_string(ca_file(s)).unwrap()
}

/// A client trusting exactly `ca_pem`.
fn client_trusting(ca_pem: &str) -> reqwest::blocking::Client {
    let roots: Vec<reqwest::Certificate> = rustls_pemfile_certs(ca_pem)
        .iter()
        .map(|der| reqwest::Certificate::from_der(der).unwrap())
        .collect();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_certs_only(roots)
        .build()
        .unwrap()
}

fn rustls_pemfile_certs(pem: &str) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap().to_vec())
        .collect()
}

/// The SHA-256 fingerprint (lowercase hex) of the leaf the server presents now.
fn presented_leaf(url: &str) -> String {
    let chain = roost_pki::presented_chain("127.0.0.1", port(url), Duration::from_secs(10))
        .expect("TLS handshake");
    roost_pki::fingerprint_der(chain[0].as_ref())
}

fn token(s: &Server) -> String {
    s.token()
}

fn get(client: &reqwest::blocking::Client, url: &str, token: &str) -> reqwest::Result<u16> {
    client
        .get(url)
        .header("X-Auth-Token", token)
        .send()
        .map(|r| r.status().as_u16())
}

#[test]
fn with_tls_on_the_api_answers_https_only_and_its_catalog_says_https() {
    let (s, _cfg) = tls_server();
    let t = token(&s);
    // A client with the cloud CA.
    let good = client_trusting(&ca_pem(&s));
    assert_eq!(
        get(&good, &format!("{}/v1/alarms", s.url), &t).unwrap(),
        200
    );
    // Plain HTTP on the same port is not served.
    let plain = s.url.replacen("https://", "http://", 1);
    let r = get(&good, &format!("{plain}/v1/alarms"), &t);
    assert!(r.is_err(), "plain HTTP answered: {r:?}");
    // A client without the CA refuses the server.
    let stranger = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let e = get(&stranger, &format!("{}/v1/alarms", s.url), &t).unwrap_err();
    assert!(e.is_connect() || e.is_request(), "{e:?}");
    // The catalog and links name https.
    let (_, _, body) = s.login(json!({
        "auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": PASSWORD, "domain": {"name": "Default"}}}},
                 "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}
    }));
    let catalog = body["token"]["catalog"].as_array().unwrap();
    for svc in catalog {
        for ep in svc["endpoints"].as_array().unwrap() {
            assert!(ep["url"].as_str().unwrap().starts_with("https://"), "{ep}");
        }
    }
    // Keys are private.
    for f in ["tls/api.key", "tls/ca/ca.key"] {
        let mode = std::fs::metadata(s.data_dir.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // The inventory lists the API certificate and the cloud CA.
    let inv = s.api().get("/v1/certificates");
    assert_eq!(inv.status, 200);
    assert_eq!(inv.body["tls"], true);
    let names: Vec<&str> = inv.body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "cloud-ca"]);
    let api = &inv.body["certificates"][0];
    assert_eq!(
        api["fingerprint"]
            .as_str()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        presented_leaf(&s.url)
    );
    assert_eq!(api["source"], "self");
}

#[test]
fn plain_http_off_loopback_needs_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("roost.toml");
    std::fs::write(&cfg, "[http]\ntls = \"off\"\n").unwrap();
    let out = Command::new(bin())
        .args([
            "server",
            "--no-monitor",
            "--listen",
            "0.0.0.0:0",
            "--config",
        ])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--plain-http"), "{err}");
    assert!(!dir.path().join("d").exists(), "nothing touched");
}

fn new_cli() -> Cli {
    Cli::new(bin())
}

/// `roost login --url URL --password-stdin EXTRA`, the admin's password
/// on standard input.
fn cli_login(cli: &Cli, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["login", "--url", url, "--password-stdin"];
    args.extend_from_slice(extra);
    Cli::run_with_input(cli.cmd(&args), &format!("{PASSWORD}\n"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn display_fp(pem: &str) -> String {
    roost_pki::display_fingerprint(&roost_pki::cert_info(pem).unwrap().fingerprint)
}

#[test]
fn roost_login_takes_a_ca_file_or_pins_a_fingerprint_and_refuses_another_ca() {
    let (s, _cfg) = tls_server();
    let fp = display_fp(&ca_pem(&s));

    // --ca-file: logged in, and later commands use the pinned CA.
    let cli = new_cli();
    let ca = ca_file(&s).display().to_string();
    let out = cli_login(&cli, &s.url, &["--ca-file", &ca]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli.run(&["alarm", "list"]);
    assert!(out.status.success(), "{}", text(&out));

    // First use without a CA, not interactive: refused, showing the fingerprint.
    let cli = new_cli();
    let out = cli_login(&cli, &s.url, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains(&fp), "{}", text(&out));
    assert!(!cli.config_dir().join("contexts.json").exists());
    // A wrong fingerprint: refused.
    let wrong = format!("SHA256:{}", "00:".repeat(31) + "00");
    let out = cli_login(&cli, &s.url, &["--trust-fingerprint", &wrong]);
    assert!(!out.status.success());
    assert!(text(&out).contains(&fp), "{}", text(&out));
    // The right one: logged in, the CA pinned (0600), used afterwards.
    let out = cli_login(&cli, &s.url, &["--trust-fingerprint", &fp]);
    assert!(out.status.success(), "{}", text(&out));
    let pin = cli
        .config_dir()
        .join(format!("ca-127.0.0.1-{}.pem", port(&s.url)));
    assert_eq!(
        std::fs::metadata(&pin).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&pin).unwrap().trim(),
        ca_pem(&s).trim()
    );
    let out = cli.run(&["alarm", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    // Another login reuses the pin without flags.
    let out = cli_login(&cli, &s.url, &[]);
    assert!(out.status.success(), "{}", text(&out));

    // A server at a pinned address presenting another CA is refused, by
    // login and by every command, naming both fingerprints.
    let (other, _cfg2) = tls_server();
    let other_fp = display_fp(&ca_pem(&other));
    assert_ne!(other_fp, fp);
    let pin_other = cli
        .config_dir()
        .join(format!("ca-127.0.0.1-{}.pem", port(&other.url)));
    std::fs::copy(&pin, &pin_other).unwrap();
    let out = cli_login(&cli, &other.url, &[]);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("THE SERVER'S CA HAS CHANGED"), "{msg}");
    assert!(msg.contains(&fp) && msg.contains(&other_fp), "{msg}");
    let out = cli
        .cmd(&["alarm", "list"])
        .env("ROOST_URL", &other.url)
        .env("ROOST_TOKEN", other.token())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("THE SERVER'S CA HAS CHANGED") && msg.contains(&other_fp),
        "{msg}"
    );
}

/// keystoneauth1 (what StarlingX's clients log in with) over HTTPS: with
/// the CA file (`--os-cacert`) and with `OS_CACERT` it works; without, it
/// refuses the server.
#[test]
fn keystoneauth1_works_with_the_ca_file_and_fails_without_it() {
    let python = std::env::var("ROOST_TEST_PYTHON").ok();
    if !require_or_skip(
        python.is_some(),
        "ROOST_TEST_PYTHON (a Python with keystoneauth1; ./scripts/test sets it)",
    ) {
        return;
    }
    let python = python.expect("checked above");
    let (s, _cfg) = tls_server();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/keystone_tls.py"
    );
    let ca = ca_file(&s).display().to_string();
    for (mode, env) in [
        (format!("cafile:{ca}"), None),
        ("env".to_string(), Some(ca.clone())),
        ("none".to_string(), None),
    ] {
        let mut c = Command::new(&python);
        c.arg(script).arg(&s.url).arg(PASSWORD).arg(&mode);
        c.env_remove("OS_CACERT")
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("SSL_CERT_FILE");
        if let Some(v) = env {
            c.env("OS_CACERT", v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{mode}: {}", text(&out));
    }
}

/// A server certificate for 127.0.0.1/localhost from a CA of the test's own.
fn operator_cert(ca: &Ca, validity: Validity) -> (String, String) {
    ca.issue_server_cert_with(&["localhost".into(), "127.0.0.1".into()], validity)
        .unwrap()
}

fn cert_alarms(api: &roost_test_support::Api) -> Vec<Value> {
    api.alarms("")
        .into_iter()
        .filter(|a| {
            let id = a["alarm_id"].as_str().unwrap_or_default();
            id == "500.200" || id == "500.210"
        })
        .collect()
}

#[test]
fn an_installed_certificate_is_presented_at_once_and_alarmed_before_and_after_expiry() {
    let (s, _cfg) = tls_server();
    let api = s.api();
    let first = presented_leaf(&s.url);
    assert!(cert_alarms(&api).is_empty());
    let tmp = tempfile::tempdir().unwrap();
    let own = Ca::load_or_create(&tmp.path().join("ca"), "Operator CA").unwrap();
    roost_test_support::trust_ca(own.ca_pem());

    // A key that is not the certificate's: refused, nothing changes.
    let (chain, _) = operator_cert(&own, Validity::days_from_now(10).unwrap());
    let (_, other_key) = operator_cert(&own, Validity::days_from_now(10).unwrap());
    let r = api.post(
        "/v1/certificate_install",
        &json!({"certificate_pem": chain, "private_key_pem": other_key}),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(presented_leaf(&s.url), first);

    // Ten days left: installed, presented from the next connection, 500.200.
    let (chain, key) = operator_cert(&own, Validity::days_from_now(10).unwrap());
    let leaf = roost_pki::cert_info(&chain).unwrap();
    let r = api.post(
        "/v1/certificate_install",
        &json!({"certificate_pem": chain, "private_key_pem": key}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["certificate"]["source"], "installed");
    assert_eq!(presented_leaf(&s.url), leaf.fingerprint);
    let uuid = r.body["certificate"]["uuid"].as_str().unwrap().to_string();
    let entity = format!("system.certificate.mode=ssl.uuid={uuid}");
    let alarm = wait_for(30, || {
        cert_alarms(&api)
            .into_iter()
            .find(|a| a["entity_instance_id"] == entity.as_str())
    })
    .expect("500.200 for the installed certificate");
    assert_eq!(alarm["alarm_id"], "500.200");
    assert_eq!(alarm["severity"], "major");
    assert!(
        alarm["reason_text"].as_str().unwrap().contains(&format!(
            "Certificate 'system certificate-show {uuid}' (mode=ssl) expiring soon on"
        )),
        "{alarm}"
    );
    // The inventory shows it.
    let inv = api.get("/v1/certificates");
    let c = &inv.body["certificates"][0];
    assert_eq!(c["name"], "api");
    assert_eq!(c["source"], "installed");
    assert_eq!(c["subject"], "localhost");
    assert_eq!(c["issuer"], "Operator CA");
    assert_eq!(c["uuid"], uuid.as_str());

    // Expired: still installable (so that it is alarmed, not hidden), 500.210,
    // and the 500.200 of the replaced certificate is cleared.
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let (chain, key) = operator_cert(&own, Validity::between(now - 10 * day, now - day).unwrap());
    let r = api.post(
        "/v1/certificate_install",
        &json!({"certificate_pem": chain, "private_key_pem": key}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let expired_uuid = r.body["certificate"]["uuid"].as_str().unwrap().to_string();
    // Clients now refuse the server (as they must); this one looks anyway.
    let lenient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let t = api.token.clone();
    let lenient_alarms = || -> Vec<Value> {
        let v: Value = lenient
            .get(format!("{}/v1/alarms", s.url))
            .header("X-Auth-Token", &t)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["alarm_id"] == "500.200" || a["alarm_id"] == "500.210")
            .cloned()
            .collect()
    };
    assert!(
        get(
            &client_trusting(own.ca_pem()),
            &format!("{}/v1/alarms", s.url),
            &t
        )
        .is_err()
    );
    let alarms = wait_for(30, || {
        let a = lenient_alarms();
        (a.len() == 1 && a[0]["alarm_id"] == "500.210").then_some(a)
    })
    .unwrap_or_else(|| panic!("only 500.210 left: {:?}", lenient_alarms()));
    assert_eq!(alarms[0]["severity"], "critical");
    assert_eq!(
        alarms[0]["entity_instance_id"],
        format!("system.certificate.mode=ssl.uuid={expired_uuid}").as_str()
    );

    // The cloud CA rotated: a self-issued certificate again, alarms cleared.
    let r = lenient
        .post(format!("{}/v1/certificates/rotate_ca", s.url))
        .header("X-Auth-Token", &t)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().unwrap();
    assert_eq!(body["certificate"]["source"], "self");
    wait_for(30, || lenient_alarms().is_empty().then_some(()))
        .unwrap_or_else(|| panic!("cleared: {:?}", lenient_alarms()));
    // And the cloud's own CA is trusted again.
    assert_eq!(
        get(
            &client_trusting(&ca_pem(&s)),
            &format!("{}/v1/alarms", s.url),
            &t
        )
        .unwrap(),
        200
    );
}

#[test]
fn rotating_the_cloud_ca_keeps_clients_of_the_old_ca_and_the_cli_can_list_and_install() {
    let (s, _cfg) = tls_server();
    let old_ca = ca_pem(&s);
    let cli = new_cli();
    let ca = ca_file(&s).display().to_string();
    assert!(
        cli_login(&cli, &s.url, &["--ca-file", &ca])
            .status
            .success()
    );
    let before = presented_leaf(&s.url);

    let bundle = cli.config_dir().join("bundle.pem");
    let out = cli.run(&[
        "certificate",
        "rotate-ca",
        "--bundle",
        &bundle.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let after = presented_leaf(&s.url);
    assert_ne!(before, after, "a new server certificate");
    let new_ca = ca_pem(&s);
    assert_ne!(new_ca, old_ca);
    let bundle = std::fs::read_to_string(&bundle).unwrap();
    assert!(bundle.contains(new_ca.trim()) && bundle.contains(old_ca.trim()));

    // A client of the old CA only, one of the new CA only: both accepted.
    let t = s.token();
    for ca in [&old_ca, &new_ca] {
        let c = client_trusting(ca);
        assert_eq!(get(&c, &format!("{}/v1/alarms", s.url), &t).unwrap(), 200);
    }
    // The CLI pinned to the old CA keeps working.
    let out = cli.run(&["alarm", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    // The inventory lists the previous CA too.
    let out = cli.run(&["certificate", "list", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "cloud-ca", "cloud-ca-previous"]);

    // `roost certificate install` from files.
    let tmp = tempfile::tempdir().unwrap();
    let own = Ca::load_or_create(&tmp.path().join("ca"), "Operator CA").unwrap();
    let (chain, key) = operator_cert(&own, Validity::days_from_now(90).unwrap());
    let (cf, kf) = (tmp.path().join("c.pem"), tmp.path().join("k.pem"));
    std::fs::write(&cf, &chain).unwrap();
    std::fs::write(&kf, &key).unwrap();
    let out = cli.run(&[
        "certificate",
        "install",
        "--cert",
        &cf.display().to_string(),
        "--key",
        &kf.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        presented_leaf(&s.url),
        roost_pki::cert_info(&chain).unwrap().fingerprint
    );
    // The CLI pinned to the cloud CA now refuses the server, naming both CAs.
    let out = cli.run(&["alarm", "list"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&display_fp(own.ca_pem())),
        "{}",
        text(&out)
    );
}

/// An agent joins an HTTPS cloud with the cloud's CA bundle (`--ca-file`),
/// and one without it cannot enroll.
#[test]
fn an_agent_joins_over_https_with_the_ca_file() {
    let (s, _cfg) = tls_server();
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    let bundle = s.data_dir.join("tls/ca-bundle.crt").display().to_string();
    let token = api.add_host("worker-1", "worker");
    let _a = roost_test_support::Agent::start(
        bin(),
        &s.url,
        &token,
        &dir.path().join("worker-1"),
        "127.0.0.1",
        &["--ca-file", &bundle],
    )
    .expect("agent starts");
    api.wait_avail("worker-1", "online", 30);
    let token = api.add_host("worker-2", "worker");
    let refused = roost_test_support::Agent::start(
        bin(),
        &s.url,
        &token,
        &dir.path().join("worker-2"),
        "127.0.0.1",
        &[],
    );
    assert!(refused.is_err(), "an agent without the CA enrolled");
}

/// Connections that never start their handshake are dropped, oldest first,
/// once 512 are pending: they cannot keep a real client out.
#[test]
fn idle_connections_cannot_hold_the_https_listener() {
    let (s, _cfg) = tls_server();
    let addr = s.url.trim_start_matches("https://").to_string();
    let idle: Vec<std::net::TcpStream> = (0..520)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let c = client_trusting(&ca_pem(&s));
    let r = c.get(format!("{}/healthz", s.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(idle);
}

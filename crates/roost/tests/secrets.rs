//! Secrets at rest and listeners, end to end through the real binary: the
//! store's files hold no secret in clear (nor hex nor base64 of one), the
//! data directory is private whatever it was before, a lost or wrong
//! data-encryption key stops the start and loses nothing, and with a
//! loopback API the heartbeat and DC sockets bind that address only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roost_test_support::{Agent, Api, Server, ServerOptions, wait_for};
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

const BMC_PASSWORD: &str = "Roost-Bmc-Pass-4417";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every spelling of a secret that must not be in the store's files: as
/// given, its bytes, and their hex (both cases) and base64.
fn spellings(secret: &str, raw: &[u8]) -> Vec<Vec<u8>> {
    let b64 = roost_api::apps::base64::encode(raw);
    vec![
        secret.as_bytes().to_vec(),
        raw.to_vec(),
        hex(raw).into_bytes(),
        hex(raw).to_uppercase().into_bytes(),
        // Without padding, and from a third of the way in, so any alignment
        // of the encoding is caught.
        b64.trim_end_matches('=').as_bytes().to_vec(),
        roost_api::apps::base64::encode(&raw[1..])
            .trim_end_matches('=')
            .as_bytes()
            .to_vec(),
        roost_api::apps::base64::encode(&raw[2..])
            .trim_end_matches('=')
            .as_bytes()
            .to_vec(),
    ]
}

/// The database and, when present, its WAL and shared-memory files.
fn store_bytes(data: &Path) -> Vec<u8> {
    let mut all = std::fs::read(data.join("roost.db")).expect("roost.db");
    for extra in ["roost.db-wal", "roost.db-shm"] {
        if let Ok(b) = std::fs::read(data.join(extra)) {
            all.extend(b);
        }
    }
    all
}

fn assert_no_secret(data: &Path, what: &str, secret: &str, raw: &[u8]) {
    let bytes = store_bytes(data);
    for s in spellings(secret, raw) {
        assert!(
            !contains(&bytes, &s),
            "{what} is in the store's files as {:?}",
            String::from_utf8_lossy(&s)
        );
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every directory 0700 and file 0600 under `dir` (not below `apps/`,
/// where containerd keeps its own modes).
fn assert_private(dir: &Path, top: bool) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let p = e.path();
        if t.is_dir() {
            if top && e.file_name() == "apps" {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
            } else {
                assert_private(&p, false);
            }
        } else if t.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

/// Waits until this server process has checked a heartbeat answer with
/// the host's key.
fn wait_answered(api: &Api) {
    assert!(
        wait_for(60, || (api
            .metric("roost_heartbeat_pulses_answered_total")
            .unwrap_or(0)
            > 0)
        .then_some(()))
        .is_some(),
        "no heartbeat answer passed the key check"
    );
}

/// Runs `roost server` on `data` and expects it to refuse to start: returns
/// its exit code and stderr.
fn failed_start(data: &Path) -> (i32, String) {
    let mut child = Command::new(bin())
        .args([
            "server",
            "--no-monitor",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .env_remove("ROOST_CONFIG")
        .env_remove("ROOST_LISTEN")
        .env_remove("ROOST_DATA_DIR")
        .env("ROOST_ADMIN_PASSWORD", roost_test_support::PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started without its data-encryption key");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code().unwrap_or(-1), err)
}

fn stored_secrets(data: &Path) -> (Option<String>, Option<String>) {
    let store = roost_store::Store::open(roost_store::StoreConfig {
        key: roost_store::KeySource::File(data.join("secret.key")),
        location: roost_store::Location::Sqlite(data.join("roost.db")),
        durability: Default::default(),
        event_log_cap: 100_000,
    })
    .expect("the store opens with its key");
    let h = store
        .hosts()
        .unwrap()
        .into_iter()
        .find(|h| h.hostname == "worker-1")
        .expect("worker-1 is stored");
    // The heartbeat key as the agent holds it (the store keeps it with
    // the time it came into use).
    let hb_key = h
        .hb_key
        .and_then(|k| roost_api::heartbeat::KeyRing::parse(&k).ok())
        .map(|ring| ring.current.to_hex());
    (h.bm_password, hb_key)
}

#[test]
fn no_secret_is_in_the_store_files_and_the_data_directory_is_private() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A data directory made beforehand, open to all, with a file in it.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("notes.txt"), "x").unwrap();
    std::fs::set_permissions(
        data.join("notes.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let mut s = Server::start_in(bin(), &data, ServerOptions::default(), None).expect("server");
    assert!(
        s.log().contains("made the data directory private"),
        "the tightening is logged: {}",
        s.log()
    );
    let api = s.api();
    let token = api.add_host("worker-1", "worker");
    let agent_dir = tmp.path().join("agent");
    // The agent's data directory too, made beforehand open to all.
    std::fs::create_dir_all(&agent_dir).unwrap();
    std::fs::set_permissions(&agent_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _agent =
        Agent::start(bin(), &s.url, &token, &agent_dir, "127.0.0.2", &[]).expect("agent starts");
    api.wait_avail("worker-1", "online", 60);
    let r = api.patch(
        "/v1/ihosts/worker-1",
        &json!([
            {"op": "replace", "path": "/bm_type", "value": "redfish"},
            {"op": "replace", "path": "/bm_ip", "value": "127.0.0.1:9"},
            {"op": "replace", "path": "/bm_username", "value": "root"},
            {"op": "replace", "path": "/bm_password", "value": BMC_PASSWORD},
        ]),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_answered(&api);

    // The agent's copy of its heartbeat key.
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent_dir.join("identity.json")).unwrap()).unwrap();
    let hb_key = identity["heartbeat_key"]
        .as_str()
        .expect("the agent keeps its heartbeat key")
        .to_string();
    assert_eq!(hb_key.len(), 64);
    let hb_raw = unhex(&hb_key);

    // Killed: the WAL is left as it was.
    s.kill9();
    assert_no_secret(
        &data,
        "the BMC password",
        BMC_PASSWORD,
        BMC_PASSWORD.as_bytes(),
    );
    assert_no_secret(&data, "the heartbeat key", &hb_key, &hb_raw);
    assert!(!s.log().contains(BMC_PASSWORD) && !s.log().contains(&hb_key));
    assert_private(&data, true);
    assert_private(&agent_dir, true);
    assert_eq!(mode(&agent_dir.join("identity.json")), 0o600);
    for f in [
        "roost.db",
        "roost.db-wal",
        "roost.db-shm",
        "secret.key",
        "notes.txt",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let key = std::fs::read(data.join("secret.key")).unwrap();
    assert_eq!(key.len(), 32);
    // What the store holds is what was given.
    assert_eq!(
        stored_secrets(&data),
        (Some(BMC_PASSWORD.to_string()), Some(hb_key.clone()))
    );

    // Restarted: the key opens the sealed heartbeat key, the agent's
    // answers pass the check again.
    s.restart();
    wait_answered(&s.api());
    s.terminate();
    assert_no_secret(
        &data,
        "the BMC password",
        BMC_PASSWORD,
        BMC_PASSWORD.as_bytes(),
    );
    assert_no_secret(&data, "the heartbeat key", &hb_key, &hb_raw);
    assert_private(&data, true);

    // Without its key the server does not start, says what to restore, and
    // makes no new key.
    std::fs::remove_file(data.join("secret.key")).unwrap();
    let (code, err) = failed_start(&data);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("secret.key") && err.contains("missing") && err.contains("restore"),
        "{err}"
    );
    assert!(!data.join("secret.key").exists());
    // With another key, the same.
    std::fs::write(data.join("secret.key"), [0x5au8; 32]).unwrap();
    let (code, err) = failed_start(&data);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("secret.key") && err.contains("not the key") && err.contains("restore"),
        "{err}"
    );

    // The right key back: nothing was lost.
    std::fs::write(data.join("secret.key"), &key).unwrap();
    assert_eq!(
        stored_secrets(&data),
        (Some(BMC_PASSWORD.to_string()), Some(hb_key.clone()))
    );
    s.restart();
    wait_answered(&s.api());
}

/// The sockets `pid` holds, from `/proc`: (protocol file, local address in
/// the kernel's hex, state).
fn sockets_of(pid: u32) -> Vec<(String, String, String)> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().to_string();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut out = Vec::new();
    for proto in ["udp", "tcp", "udp6", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{proto}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && inodes.iter().any(|i| i == f[9]) {
                out.push((proto.to_string(), f[1].to_string(), f[3].to_string()));
            }
        }
    }
    out
}

/// `a.b.c.d:port` as /proc/net/udp writes it (little-endian address).
fn proc_addr(ip: [u8; 4], port: Option<u16>) -> String {
    let a = format!("{:02X}{:02X}{:02X}{:02X}", ip[3], ip[2], ip[1], ip[0]);
    match port {
        Some(p) => format!("{a}:{p:04X}"),
        None => a,
    }
}

#[test]
fn with_a_loopback_api_the_heartbeat_and_dc_sockets_bind_that_address_only() {
    // An address of its own in 127/8, so the default DC port cannot meet
    // another test's.
    let last = 10 + (std::process::id() % 200) as u8;
    let ip = [127, 0, 0, last];
    let s = Server::start_with(
        bin(),
        ServerOptions {
            listen: Some(format!("127.0.0.{last}:0")),
            args: vec!["--role".into(), "systemcontroller".into()],
            ..Default::default()
        },
    );
    assert_eq!(
        s.dc_url.as_deref(),
        Some(format!("https://127.0.0.{last}:6386").as_str()),
        "the DC listener takes the API's address and port 6386"
    );
    let socks = sockets_of(s.pid());
    let udp: Vec<_> = socks.iter().filter(|(p, _, _)| p == "udp").collect();
    assert!(!udp.is_empty(), "the heartbeat socket is there: {socks:?}");
    for (_, addr, _) in &udp {
        assert!(
            addr.starts_with(&proc_addr(ip, None)),
            "a UDP socket is not on 127.0.0.{last}: {socks:?}"
        );
    }
    let listening: Vec<_> = socks.iter().filter(|(_, _, st)| st == "0A").collect();
    assert!(
        listening
            .iter()
            .any(|(p, a, _)| p == "tcp" && *a == proc_addr(ip, Some(6386))),
        "the DC listener is on 127.0.0.{last}:6386: {socks:?}"
    );
    for (p, addr, _) in &listening {
        assert!(
            p == "tcp" && addr.starts_with(&proc_addr(ip, None)),
            "a listener is not on 127.0.0.{last}: {socks:?}"
        );
    }
    assert!(
        !socks.iter().any(|(p, _, _)| p.ends_with('6')),
        "no IPv6 (every-address) socket: {socks:?}"
    );
    let log = s.log();
    assert!(
        log.contains("heartbeat socket bound") && log.contains(&format!("127.0.0.{last}:")),
        "{log}"
    );
}

#[test]
fn an_agent_answers_heartbeats_on_its_management_address_only_by_default() {
    // An address of its own in 127/8, apart from the other listener test's.
    let last = 220 + (std::process::id() % 30) as u8;
    let ip = [127, 0, 0, last];
    let s = Server::start_with(
        bin(),
        ServerOptions {
            listen: Some(format!("127.0.0.{last}:0")),
            ..Default::default()
        },
    );
    let api = s.api();
    let token = api.add_host("worker-7", "worker");
    let dir = tempfile::tempdir().unwrap();
    // Neither --heartbeat-listen nor --mgmt-ip: the agent picks the
    // address its routes use towards the server.
    let mut agent = Command::new(bin())
        .args(["agent", "--server", &s.url, "--join-token", &token])
        .args(["--heartbeat-port", "0", "--no-apps", "--data-dir"])
        .arg(dir.path().join("agent"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let out = agent.stdout.take().unwrap();
    let agent = Reap(agent);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if l.starts_with("roost agent ready as ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the agent is ready");
    // The address its connection to the server comes from (on loopback
    // Linux picks 127.0.0.1 as the source, whatever 127/8 address the
    // server has).
    let socks = sockets_of(agent.0.id());
    let source = socks
        .iter()
        .find(|(p, _, st)| p == "tcp" && st == "01")
        .map(|(_, a, _)| a.split(':').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("the agent's connection to the server: {socks:?}"));
    assert!(
        source == proc_addr(ip, None) || source == proc_addr([127, 0, 0, 1], None),
        "{socks:?}"
    );
    let udp: Vec<_> = socks.iter().filter(|(p, _, _)| p == "udp").collect();
    assert!(!udp.is_empty(), "the heartbeat socket is there: {socks:?}");
    for (_, addr, _) in &udp {
        assert!(
            addr.starts_with(&format!("{source}:")),
            "a UDP socket of the agent is not on the address it reaches the server from: {socks:?}"
        );
    }
    assert!(
        !socks.iter().any(|(p, _, _)| p == "udp6"),
        "no IPv6 (every-address) socket: {socks:?}"
    );
    // And the server's heartbeats reach it there.
    api.wait_avail("worker-7", "online", 60);
}

#[test]
fn an_explicit_every_address_heartbeat_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg: PathBuf = tmp.path().join("roost.toml");
    std::fs::write(&cfg, "heartbeat_listen = \"0.0.0.0:0\"\n").unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), cfg.display().to_string()],
            ..Default::default()
        },
    );
    let socks = sockets_of(s.pid());
    assert!(
        socks
            .iter()
            .any(|(p, a, _)| p == "udp" && a.starts_with("00000000:")),
        "{socks:?}"
    );
}

//! Notifications end to end: a server sends its alarms and logs to
//! destinations managed through the API and the CLI, and real receivers
//! take them: an HTTP receiver (webhooks: signed, retried, ordered per
//! entity, dead-lettered), rsyslog (RFC 5424 over UDP and TCP) and
//! Net-SNMP's snmptrapd (traps decoded with ROOST-ALARM-MIB).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use roost_api::notify::{WebhookBody, verify_webhook_signature};
use roost_test_support::{Cli, Server, require_or_skip, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

const SECRET: &str = "webhook-signing-key-0123";

/// One webhook call as the receiver took it.
#[derive(Debug, Clone)]
struct Call {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The status it answered.
    status: u16,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver that answers 500 to its first `fail_first` calls (and
/// to every call while `failing` is set), 200 after.
struct Receiver {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let failing: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let (c, f) = (calls.clone(), failing.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (c, f, seen) = (c.clone(), f.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &c, &f, &seen, fail_first));
            }
        });
        Receiver {
            url,
            calls,
            failing,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    fn accepted(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.status == 200)
            .collect()
    }
}

fn serve(
    stream: TcpStream,
    calls: &Mutex<Vec<Call>>,
    failing: &std::sync::atomic::AtomicBool,
    seen: &AtomicUsize,
    fail_first: usize,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let status = if n < fail_first || failing.load(Ordering::SeqCst) {
            500
        } else {
            200
        };
        calls.lock().expect("calls").push(Call {
            headers,
            body,
            status,
        });
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let reply = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n");
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn add_webhook(api: &roost_test_support::Api, name: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "type": "webhook", "url": url, "secret": SECRET,
                          "retry_base_ms": 20});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = api.post("/v1/notifications/destinations", &body);
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

fn clear_alarm(api: &roost_test_support::Api, id: &str, entity: &str) {
    let r = api.post(
        "/v1/alarms",
        &json!({"alarm_state": "clear", "alarm_id": id, "entity_instance_id": entity}),
    );
    assert!(r.status < 300, "clear {id} {entity}: {:?}", r.body);
}

#[test]
fn a_webhook_that_fails_three_times_gets_each_record_once_in_order_and_signed() {
    let s = Server::start(bin());
    let api = s.api();
    let rx = Receiver::start(3);
    add_webhook(&api, "ops", &rx.url, json!({}));
    // Two entities; per entity a set, a second alarm, then a clear.
    let mut sent = Vec::new();
    for entity in [
        "host=controller-0.filesystem=/var",
        "host=compute-1.port=eth0",
    ] {
        api.set_alarm("100.104", entity, "major");
        api.set_alarm("100.103", entity, "critical");
        clear_alarm(&api, "100.104", entity);
        sent.push(entity);
    }
    let accepted = wait_for(60, || {
        let a = rx.accepted();
        (a.len() >= 6).then_some(a)
    })
    .unwrap_or_else(|| {
        panic!(
            "six deliveries expected; calls: {:#?}\n{}",
            rx.calls(),
            s.log()
        )
    });
    assert_eq!(rx.calls().iter().filter(|c| c.status == 500).count(), 3);
    let mut bodies = Vec::new();
    for c in &accepted {
        let sig = c.header("x-roost-signature").expect("signed");
        assert!(
            verify_webhook_signature(SECRET.as_bytes(), sig, &c.body, now_unix(), 300),
            "signature {sig} does not verify"
        );
        assert_eq!(c.header("content-type"), Some("application/json"));
        let b: WebhookBody = serde_json::from_slice(&c.body).expect("a webhook body");
        assert_eq!(c.header("x-roost-delivery"), Some(b.event.uuid.as_str()));
        bodies.push(b);
    }
    // Each record once.
    let mut uuids: Vec<&str> = bodies.iter().map(|b| b.event.uuid.as_str()).collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 6, "each record once: {bodies:#?}");
    // In order per entity: as raised, with rising sequence numbers.
    for entity in sent {
        let mine: Vec<&WebhookBody> = bodies
            .iter()
            .filter(|b| b.event.entity_instance_id == entity)
            .collect();
        let steps: Vec<(String, String)> = mine
            .iter()
            .map(|b| (b.event.event_log_id.clone(), b.event.state.clone()))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("100.104".into(), "set".into()),
                ("100.103".into(), "set".into()),
                ("100.104".into(), "clear".into())
            ],
            "order of {entity}"
        );
        assert!(mine.windows(2).all(|w| w[0].sequence < w[1].sequence));
    }
    let e = &bodies
        .iter()
        .find(|b| b.event.entity_instance_id.contains("filesystem"))
        .expect("a filesystem record")
        .event;
    assert_eq!(e.entity_type_id, "host.filesystem");
    assert!(e.timestamp.ends_with('Z'));
    assert_eq!(bodies[0].system, "roost");
    // The counters say the same, and so do the metrics.
    let d = api.get("/v1/notifications/destinations/ops").body;
    assert_eq!(d["stats"]["delivered"], 6, "{d}");
    assert_eq!(d["stats"]["failed_attempts"], 3, "{d}");
    assert_eq!(d["stats"]["dead_lettered"], 0, "{d}");
    assert_eq!(d["settings"]["secret"], "<hidden>");
    let metrics = api.get("/metrics").body;
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("roost_notifications_sent_total{type=\"webhook\"} 6"),
        "{text}"
    );
    assert!(text.contains("roost_notifications_sent_total{type=\"snmp\"} 0"));
}

#[test]
fn dead_letters_are_kept_listed_retried_and_discarded_through_the_cli() {
    let s = Server::start(bin());
    let api = s.api();
    let rx = Receiver::start(0);
    rx.failing.store(true, Ordering::SeqCst);
    add_webhook(&api, "flaky", &rx.url, json!({"max_attempts": 2}));
    api.set_alarm("100.101", "host=controller-0", "minor");
    api.set_alarm("100.102", "host=controller-1", "minor");
    let letters = wait_for(60, || {
        let r = api.get("/v1/notifications/destinations/flaky/dead-letters");
        let l = r.body["dead_letters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (l.len() == 2).then_some(l)
    })
    .unwrap_or_else(|| panic!("two dead letters expected:\n{}", s.log()));
    assert_eq!(letters[0]["attempts"], 2);
    assert!(
        letters[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{letters:?}"
    );
    assert_eq!(rx.calls().len(), 4, "two tries each");
    let cli = Cli::new(bin());
    let run = |args: &[&str]| {
        let out = cli
            .cmd(args)
            .env("ROOST_URL", &s.url)
            .env("ROOST_TOKEN", s.token())
            .output()
            .expect("roost runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["destination", "dead-letters", "flaky"]);
    assert_eq!(code, Some(0), "{err}");
    let first = letters[0]["id"].as_str().expect("id").to_string();
    let second = letters[1]["id"].as_str().expect("id").to_string();
    assert!(out.contains(&first) && out.contains("100.101 set"), "{out}");
    // The receiver is fixed: a retry delivers, a discard drops.
    rx.failing.store(false, Ordering::SeqCst);
    let (code, out, err) = run(&["destination", "retry", "flaky", &first]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Queued dead letter"), "{out}");
    let got = wait_for(30, || {
        rx.accepted()
            .into_iter()
            .find_map(|c| serde_json::from_slice::<WebhookBody>(&c.body).ok())
    })
    .expect("the retried record is delivered");
    assert_eq!(got.event.event_log_id, "100.101");
    let (code, _, err) = run(&["destination", "discard", "flaky", &second]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = run(&["destination", "dead-letters", "flaky"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("No dead letters"), "{out}");
    let (code, _, err) = run(&["destination", "discard", "flaky", &second]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no dead letter"), "{err}");
    // The list shows the counters.
    let (code, out, _) = run(&["destination", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("flaky") && out.contains("webhook"), "{out}");
}

#[test]
fn destinations_are_checked_persist_across_a_restart_and_never_show_their_secrets() {
    let mut s = Server::start(bin());
    let api = s.api();
    let bad = [
        (
            json!({"name": "x", "type": "webhook", "url": "http://h/", "secret": "short"}),
            "at least 16",
        ),
        (
            json!({"name": "x", "type": "webhook", "url": "nota url", "secret": SECRET}),
            "not a URL",
        ),
        (
            json!({"name": "x", "type": "pager", "url": "http://h/"}),
            "unknown variant `pager`",
        ),
        (
            json!({"name": "x y", "type": "syslog", "url": "udp://h"}),
            "letters, digits",
        ),
        (
            json!({"name": "x", "type": "syslog", "url": "udp://h", "facility": "kern"}),
            "facility",
        ),
        (
            json!({"name": "x", "type": "snmp", "host": "h", "version": "1", "community": "c"}),
            "2c or 3",
        ),
        (
            json!({"name": "x", "type": "snmp", "host": "h", "min_severity": "loud", "community": "c"}),
            "min_severity",
        ),
    ];
    for (body, says) in bad {
        let r = api.post("/v1/notifications/destinations", &body);
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        let text = r.body.to_string();
        assert!(text.contains(says), "{body}: {text}");
    }
    add_webhook(
        &api,
        "hook",
        "https://hooks.example.com/roost",
        json!({"min_severity": "major"}),
    );
    let r = api.post(
        "/v1/notifications/destinations",
        &json!({"name": "siem", "type": "syslog", "url": "tcp://127.0.0.1:9", "include_logs": false}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api.post(
        "/v1/notifications/destinations",
        &json!({"name": "hook", "type": "syslog", "url": "udp://127.0.0.1:9"}),
    );
    assert_eq!(r.status, 400, "a taken name: {:?}", r.body);
    assert!(r.body.to_string().contains("already exists"));
    let r = api.get("/v1/notifications/destinations/nope");
    assert_eq!(r.status, 404);
    assert!(r.body.to_string().contains("roost destination list"));
    let r = api.patch(
        "/v1/notifications/destinations/siem",
        &json!({"enabled": false, "min_severity": "critical"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.patch(
        "/v1/notifications/destinations/siem",
        &json!({"colour": "red"}),
    );
    assert_eq!(r.status, 400);
    s.restart();
    let api = s.api();
    let list = api.get("/v1/notifications/destinations").body;
    let names: Vec<&str> = list["destinations"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, vec!["hook", "siem"]);
    let siem = api.get("/v1/notifications/destinations/siem").body;
    assert_eq!(siem["enabled"], false);
    assert_eq!(siem["min_severity"], "critical");
    assert_eq!(siem["include_logs"], false);
    assert_eq!(siem["address"], "tcp://127.0.0.1:9");
    let hook = api.get("/v1/notifications/destinations/hook").body;
    assert_eq!(hook["min_severity"], "major");
    assert!(
        !list.to_string().contains(SECRET),
        "a secret is never shown"
    );
    // At rest the secret is sealed.
    let mut found_in_clear = false;
    for entry in std::fs::read_dir(&s.data_dir).expect("data dir").flatten() {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            found_in_clear |= bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        }
    }
    assert!(!found_in_clear, "the webhook secret is stored in clear");
    let r = api.delete("/v1/notifications/destinations/hook");
    assert_eq!(r.status, 204);
    assert_eq!(api.get("/v1/notifications/destinations/hook").status, 404);
}

/// rsyslog, run in the foreground with its own configuration: it listens
/// on UDP and TCP and writes each message's parsed RFC 5424 fields.
struct Rsyslog {
    child: Child,
    out: PathBuf,
    udp: u16,
    tcp: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Rsyslog {
    fn start() -> Option<Rsyslog> {
        if !require_or_skip(
            Path::new("/usr/sbin/rsyslogd").exists(),
            "rsyslogd (Debian package rsyslog)",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("messages");
        let (udp, tcp) = (free_port(), free_port());
        let conf = format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imudp\")\nmodule(load=\"imtcp\")\n\
             input(type=\"imudp\" port=\"{udp}\" address=\"127.0.0.1\")\n\
             input(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\")\n\
             template(name=\"fields\" type=\"string\" string=\"pri=%pri% app=%app-name% msgid=%msgid% host=%hostname% sd=%structured-data% msg=%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{out}\" template=\"fields\")\n",
            dir = dir.path().display(),
            out = out.display(),
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("conf");
        let child = Command::new("/usr/sbin/rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd starts");
        // Ready once its TCP port takes a connection.
        wait_for(20, || TcpStream::connect(("127.0.0.1", tcp)).ok()).expect("rsyslogd listens");
        Some(Rsyslog {
            child,
            out,
            udp,
            tcp,
            _dir: dir,
        })
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn rsyslog_receives_rfc5424_messages_over_udp_and_tcp() {
    let Some(rs) = Rsyslog::start() else {
        return;
    };
    let s = Server::start(bin());
    let api = s.api();
    for (name, url, facility) in [
        ("over-udp", format!("udp://127.0.0.1:{}", rs.udp), "local3"),
        ("over-tcp", format!("tcp://127.0.0.1:{}", rs.tcp), "local4"),
    ] {
        let r = api.post(
            "/v1/notifications/destinations",
            &json!({"name": name, "type": "syslog", "url": url, "facility": facility}),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    api.set_alarm("100.104", "host=controller-0.filesystem=/var", "major");
    clear_alarm(&api, "100.104", "host=controller-0.filesystem=/var");
    let lines = wait_for(30, || {
        let l = rs.lines();
        (l.len() >= 4).then_some(l)
    })
    .unwrap_or_else(|| panic!("four messages expected: {:?}\n{}", rs.lines(), s.log()));
    // local3 (19) * 8 + error (3) = 155; local4 (20) * 8 + error = 163.
    for pri in ["pri=155 ", "pri=163 "] {
        let set = lines
            .iter()
            .find(|l| l.starts_with(pri))
            .unwrap_or_else(|| panic!("no {pri}message: {lines:#?}"));
        assert!(
            set.contains("app=roost msgid=alarm-set host=controller-0 "),
            "{set}"
        );
        assert!(set.contains("[roost@731 uuid=\""), "{set}");
        assert!(set.contains("alarm_id=\"100.104\""), "{set}");
        assert!(
            set.contains("entity_instance_id=\"host=controller-0.filesystem=/var\""),
            "{set}"
        );
        assert!(set.contains("severity=\"major\""), "{set}");
        assert!(
            set.contains("msg=100.104 major set host=controller-0.filesystem=/var: "),
            "{set}"
        );
    }
    let clears = lines
        .iter()
        .filter(|l| l.contains("msgid=alarm-clear"))
        .count();
    assert_eq!(clears, 2, "{lines:#?}");
}

/// Net-SNMP's snmptrapd in the foreground, writing each trap on one line
/// (numeric OIDs) to a file.
struct Trapd {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Trapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Trapd {
    fn start(port: u16, conf: &str) -> Option<Trapd> {
        if !require_or_skip(
            Path::new("/usr/sbin/snmptrapd").exists(),
            "snmptrapd (Debian package snmptrapd)",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_path = dir.path().join("snmptrapd.conf");
        std::fs::write(&conf_path, conf).expect("conf");
        let log = dir.path().join("traps");
        let child = Command::new("/usr/sbin/snmptrapd")
            .args(["-f", "-C", "-n", "-On", "-c"])
            .arg(&conf_path)
            .arg("-Lf")
            .arg(&log)
            .args(["-F", "TRAP\\t%V\\t%v\\n"])
            .arg(format!("udp:127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("snmptrapd starts");
        Some(Trapd {
            child,
            log,
            _dir: dir,
        })
    }

    fn traps(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("TRAP"))
            .map(str::to_string)
            .collect()
    }
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

#[test]
fn snmptrapd_receives_alarm_traps_over_snmpv2c_and_snmpv3() {
    let s = Server::start(bin());
    let api = s.api();
    let port = free_udp_port();
    let r = api.post(
        "/v1/notifications/destinations",
        &json!({"name": "nms", "type": "snmp", "host": format!("127.0.0.1:{port}"),
                "community": "roost-public", "include_logs": false}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api.post(
        "/v1/notifications/destinations",
        &json!({"name": "nms3", "type": "snmp", "host": format!("127.0.0.1:{port}"),
                "version": "3", "user": "roostv3", "auth_protocol": "SHA-256",
                "auth_password": "auth-passphrase-1", "priv_password": "priv-passphrase-1",
                "min_severity": "critical", "include_logs": false}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let engine = r.body["engine_id"]
        .as_str()
        .expect("an engine id")
        .to_string();
    assert!(!r.body.to_string().contains("passphrase-1"), "{}", r.body);
    let Some(trapd) = Trapd::start(
        port,
        &format!(
            "authCommunity log roost-public\n\
             createUser -e 0x{engine} roostv3 SHA-256 auth-passphrase-1 AES priv-passphrase-1\n\
             authUser log roostv3 priv\n"
        ),
    ) else {
        return;
    };
    // snmptrapd is listening once a test record's trap shows.
    let ready = wait_for(20, || {
        let r = api.post("/v1/notifications/destinations/nms/test", &json!(null));
        assert_eq!(r.status, 202, "{:?}", r.body);
        std::thread::sleep(std::time::Duration::from_millis(100));
        (!trapd.traps().is_empty()).then_some(())
    });
    assert!(ready.is_some(), "snmptrapd never logged the test trap");
    let before = trapd.traps().len();
    api.set_alarm("100.104", "host=controller-0.filesystem=/var", "major");
    api.set_alarm("100.103", "host=controller-0", "critical");
    clear_alarm(&api, "100.104", "host=controller-0.filesystem=/var");
    // v2c: major set, critical set, clear; v3 (critical and up): the critical set.
    let traps = wait_for(30, || {
        let t = trapd.traps();
        (t.len() >= before + 4).then_some(t)
    })
    .unwrap_or_else(|| panic!("four traps expected: {:#?}\n{}", trapd.traps(), s.log()));
    let new = &traps[before..];
    let mib = ".1.3.6.1.4.1.731.1.1.1.1";
    let with = |trap: u32| -> Vec<&String> {
        new.iter()
            .filter(|l| l.contains(&format!("OID: {mib}.0.{trap}\t")))
            .collect()
    };
    let major = with(2);
    assert_eq!(major.len(), 1, "{new:#?}");
    let m = major[0];
    assert!(m.contains("STRING: \"100.104\""), "{m}");
    assert!(
        m.contains("STRING: \"host=controller-0.filesystem=/var\""),
        "{m}"
    );
    assert!(m.contains("INTEGER: 3"), "major is 3: {m}");
    assert!(
        m.contains("100.104 on host=controller-0.filesystem=/var"),
        "{m}"
    );
    assert_eq!(
        with(1).len(),
        2,
        "the critical set over v2c and over v3: {new:#?}"
    );
    let clear = with(9);
    assert_eq!(clear.len(), 1, "{new:#?}");
    assert!(
        clear[0].contains("INTEGER: 0"),
        "a clear is 0: {}",
        clear[0]
    );
    let d = api.get("/v1/notifications/destinations/nms3").body;
    assert_eq!(d["stats"]["delivered"], 1, "{d}");
    assert_eq!(d["engine_id"], engine.as_str());
}

//! SNMP traps decoded by Net-SNMP's `snmptrapd` (Debian packages
//! `snmptrapd` and `snmp`), and ROOST-ALARM-MIB loaded by `snmptranslate`.
//! A missing binary fails these tests: install the packages.
//!
//! Debian ships none of the IETF base modules (SNMPv2-SMI, SNMPv2-TC,
//! SNMPv2-CONF; they come from the network through snmp-mibs-downloader),
//! so the tests write small stand-ins with just what ROOST-ALARM-MIB
//! imports and point Net-SNMP at them and at `monitoring/`. When the real
//! modules are installed, the MIB is also loaded against them.

use std::fs;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roost_fm::{Event, EventState};
use roost_notify::snmp::{
    AuthProtocol, Notification, PrivProtocol, Security, TrapEncoder, event_notification, hex,
};
use roost_types::Severity;

const SMI: &str = "SNMPv2-SMI DEFINITIONS ::= BEGIN
-- A test stand-in: only the parts ROOST-ALARM-MIB imports.
org         OBJECT IDENTIFIER ::= { iso 3 }
dod         OBJECT IDENTIFIER ::= { org 6 }
internet    OBJECT IDENTIFIER ::= { dod 1 }
private     OBJECT IDENTIFIER ::= { internet 4 }
enterprises OBJECT IDENTIFIER ::= { private 1 }
Unsigned32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
END
";

const TC: &str = "SNMPv2-TC DEFINITIONS ::= BEGIN
-- A test stand-in: only the parts ROOST-ALARM-MIB imports.
DateAndTime ::= TEXTUAL-CONVENTION
    DISPLAY-HINT \"2d-1d-1d,1d:1d:1d.1d,1a1d:1d\"
    STATUS current
    DESCRIPTION \"A date and time.\"
    SYNTAX OCTET STRING (SIZE (8 | 11))
END
";

const CONF: &str = "SNMPv2-CONF DEFINITIONS ::= BEGIN
-- A test stand-in: Net-SNMP knows the macros ROOST-ALARM-MIB imports
-- from here (OBJECT-GROUP, NOTIFICATION-GROUP, MODULE-COMPLIANCE).
END
";

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monitoring")
}

/// A directory with the base-module stand-ins.
fn base_mibs(dir: &Path) -> PathBuf {
    let mibs = dir.join("base-mibs");
    fs::create_dir_all(&mibs).unwrap();
    for (name, text) in [
        ("SNMPv2-SMI", SMI),
        ("SNMPv2-TC", TC),
        ("SNMPv2-CONF", CONF),
    ] {
        fs::write(mibs.join(format!("{name}.txt")), text).unwrap();
    }
    mibs
}

/// The MIB search path for `-M`: the stand-ins, then `monitoring/`.
fn mib_path(dir: &Path) -> String {
    format!(
        "{}:{}",
        base_mibs(dir).display(),
        monitoring_dir().display()
    )
}

fn require(binary: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(binary).is_file();
    assert!(
        found,
        "`{binary}` is not installed: apt-get install -y snmptrapd snmp"
    );
}

// ---------------------------------------------------------------------------
// snmptrapd.

/// A running snmptrapd; killed on drop.
struct Trapd {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Trapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Trapd {
    /// Starts snmptrapd with `config` (plus logging settings) and waits
    /// until it listens.
    fn start(config: &str) -> Trapd {
        require("snmptrapd");
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("snmptrapd.conf");
        let log = dir.path().join("traps.log");
        let persistent = dir.path().join("persistent");
        fs::create_dir_all(&persistent).unwrap();
        fs::write(&conf, config).unwrap();
        let mibs = mib_path(dir.path());
        let port = free_udp_port();
        let binary = if Path::new("/usr/sbin/snmptrapd").is_file() {
            "/usr/sbin/snmptrapd".to_string()
        } else {
            "snmptrapd".to_string()
        };
        let child = Command::new(binary)
            .args(["-f", "-C", "-n", "-c"])
            .arg(&conf)
            .arg("-M")
            .arg(&mibs)
            .args(["-m", "ROOST-ALARM-MIB"])
            .args(["-Of", "-Lf"])
            .arg(&log)
            .args(["-F", "TRAP\\t%V\\t%v\\n"])
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", &persistent)
            .env("SNMPCONFPATH", dir.path())
            .env_remove("MIBS")
            .env_remove("MIBDIRS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start snmptrapd");
        let mut trapd = Trapd {
            child,
            port,
            log,
            _dir: dir,
        };
        trapd.wait_for(|log| log.contains("NET-SNMP version"), "snmptrapd to start");
        trapd
    }

    fn log(&self) -> String {
        match fs::read_to_string(&self.log) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => panic!("cannot read snmptrapd's log: {e}"),
        }
    }

    /// Polls the log until `done` holds, with a deadline.
    fn wait_for(&mut self, done: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if done(&log) {
                return log;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("snmptrapd exited ({status}) while waiting for {what}; its log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; snmptrapd's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&self, datagram: &[u8]) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.send_to(datagram, ("127.0.0.1", self.port)).unwrap();
    }

    /// Sends `datagram` and returns the logged trap that names `uuid`.
    fn send_and_read(&mut self, datagram: &[u8], uuid: &str) -> Vec<String> {
        self.send(datagram);
        let log = self.wait_for(|log| trap_line(log, uuid).is_some(), uuid);
        trap_line(&log, uuid).unwrap()
    }
}

/// The varbinds of the logged trap that mentions `uuid`.
fn trap_line(log: &str, uuid: &str) -> Option<Vec<String>> {
    log.lines()
        .filter(|l| l.starts_with("TRAP") && l.contains(uuid))
        .map(|l| l.split('\t').skip(1).map(str::to_string).collect())
        .next()
}

// ---------------------------------------------------------------------------
// What is sent and what snmptrapd must print.

fn sample(uuid: &str, state: EventState, severity: Severity) -> Event {
    let log = !state.is_alarm();
    Event {
        uuid: uuid.to_string(),
        event_log_id: if log { "401.005" } else { "100.101" }.to_string(),
        state,
        entity_instance_id: "host=controller-0".into(),
        entity_type_id: "system.host".into(),
        severity,
        reason_text: "Platform CPU threshold exceeded; threshold 90%, actual 97%".into(),
        event_log_type: "operational-violation".into(),
        probable_cause: "threshold-crossed".into(),
        proposed_repair_action: "Monitor and if condition persists, contact next level of support"
            .into(),
        service_affecting: !log,
        suppression: true,
        timestamp: "2026-11-26T18:16:12.386207".parse().unwrap(),
    }
}

const DATE: &str = "2026-11-26,18:16:12.3,+0:0";

/// The varbinds snmptrapd prints for `event`, sysUpTime first.
fn expected(event: &Event, uptime: &str) -> Vec<String> {
    let p = ".iso.org.dod.internet.private.enterprises.roostArcEnterprise.roostArcCommon.roostArcFault.roostArcAlarms.roostAlarmMIB";
    let trap = match (event.state, event.severity) {
        (EventState::Clear, _) => "roostAlarmClear",
        (EventState::Log | EventState::Msg, _) => "roostAlarmMessage",
        (_, Severity::Critical) => "roostAlarmCritical",
        (_, Severity::Major) => "roostAlarmMajor",
        (_, Severity::Minor) => "roostAlarmMinor",
        _ => "roostAlarmWarning",
    };
    let yes_no = |b: bool| if b { "true(1)" } else { "false(0)" };
    let mut v = vec![
        format!(".iso.org.dod.internet.2.1.1.3.0 = Timeticks: {uptime}"),
        format!(".iso.org.dod.internet.6.3.1.1.4.1.0 = OID: {p}.roostAlarmNotifications.{trap}"),
    ];
    let s = |col: &str, value: &str| format!("{col} = STRING: {value}");
    if event.state.is_alarm() {
        let t = format!("{p}.roostAlarmActiveTable.roostAlarmActiveEntry.roostAlarmActive");
        let severity = if event.state == EventState::Clear {
            "clear(0)".to_string()
        } else {
            format!("{}({})", event.severity, severity_number(event.severity))
        };
        v.extend([
            s(&format!("{t}Uuid.1"), &event.uuid),
            s(&format!("{t}AlarmId.1"), &event.event_log_id),
            s(&format!("{t}EntityInstanceId.1"), &event.entity_instance_id),
            s(&format!("{t}DateAndTime.1"), DATE),
            format!("{t}AlarmSeverity.1 = INTEGER: {severity}"),
            s(&format!("{t}ReasonText.1"), &event.reason_text),
            s(&format!("{t}EventType.1"), &event.event_log_type),
            s(&format!("{t}ProbableCause.1"), &event.probable_cause),
            s(
                &format!("{t}ProposedRepairAction.1"),
                &event.proposed_repair_action,
            ),
            format!(
                "{t}ServiceAffecting.1 = INTEGER: {}",
                yes_no(event.service_affecting)
            ),
            format!(
                "{t}SuppressionAllowed.1 = INTEGER: {}",
                yes_no(event.suppression)
            ),
        ]);
    } else {
        let t = format!("{p}.roostAlarmEventTable.roostAlarmEventEntry.roostAlarmEvent");
        let state = match event.state {
            EventState::Log => "log(3)",
            _ => "msg(4)",
        };
        let severity = match event.severity {
            Severity::NotApplicable => "notApplicable(5)".to_string(),
            s => format!("{s}({})", severity_number(s)),
        };
        v.extend([
            s(&format!("{t}Uuid.1"), &event.uuid),
            s(&format!("{t}EventLogId.1"), &event.event_log_id),
            format!("{t}State.1 = INTEGER: {state}"),
            s(&format!("{t}EntityInstanceId.1"), &event.entity_instance_id),
            s(&format!("{t}DateAndTime.1"), DATE),
            format!("{t}Severity.1 = INTEGER: {severity}"),
            s(&format!("{t}ReasonText.1"), &event.reason_text),
            s(&format!("{t}EventType.1"), &event.event_log_type),
            s(&format!("{t}ProbableCause.1"), &event.probable_cause),
            s(
                &format!("{t}ProposedRepairAction.1"),
                &event.proposed_repair_action,
            ),
            format!(
                "{t}ServiceAffecting.1 = INTEGER: {}",
                yes_no(event.service_affecting)
            ),
            format!(
                "{t}SuppressionAllowed.1 = INTEGER: {}",
                yes_no(event.suppression)
            ),
        ]);
    }
    v
}

fn severity_number(s: Severity) -> u8 {
    match s {
        Severity::Warning => 1,
        Severity::Minor => 2,
        Severity::Major => 3,
        Severity::Critical => 4,
        Severity::NotApplicable => 5,
    }
}

fn send_event(trapd: &mut Trapd, enc: &mut TrapEncoder, event: &Event, time: u32, salt: u64) {
    let n: Notification = event_notification(event);
    let datagram = enc.encode(&n, 123_456, time, salt).unwrap();
    let got = trapd.send_and_read(&datagram, &event.uuid);
    assert_eq!(
        got,
        expected(event, "(123456) 0:20:34.56"),
        "{}",
        event.uuid
    );
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn snmptrapd_decodes_v2c_alarm_sets_clears_and_logs() {
    let mut trapd = Trapd::start("authCommunity log public\n");
    let mut enc = TrapEncoder::new(
        Security::V2c {
            community: "public".into(),
        },
        Vec::new(),
        0,
    )
    .unwrap();
    let cases = [
        ("v2c-critical", EventState::Set, Severity::Critical),
        ("v2c-minor", EventState::Set, Severity::Minor),
        ("v2c-major", EventState::Set, Severity::Major),
        ("v2c-warning", EventState::Set, Severity::Warning),
        ("v2c-clear", EventState::Clear, Severity::Critical),
        ("v2c-log", EventState::Log, Severity::NotApplicable),
        ("v2c-msg", EventState::Msg, Severity::Minor),
    ];
    for (uuid, state, severity) in cases {
        send_event(&mut trapd, &mut enc, &sample(uuid, state, severity), 0, 0);
    }

    // A reason text over the limit arrives cut to 1024 octets, whole
    // characters only.
    let mut long = sample("v2c-long-text", EventState::Set, Severity::Major);
    long.reason_text = format!("x{}", "é".repeat(700));
    let datagram = enc
        .encode(&event_notification(&long), 123_456, 0, 0)
        .unwrap();
    let got = trapd.send_and_read(&datagram, &long.uuid);
    long.reason_text = format!("x{}", "é".repeat(511));
    assert_eq!(long.reason_text.len(), 1023);
    assert_eq!(got, expected(&long, "(123456) 0:20:34.56"));
}

/// snmptrapd's users for the engine ID `engine`.
fn v3_config(engine: &[u8]) -> String {
    let e = hex(engine);
    format!(
        "createUser -e 0x{e} roostsha1 SHA sha1-auth-pass AES sha1-priv-pass\n\
         createUser -e 0x{e} roostsha256 SHA-256 sha256-auth-pass AES sha256-priv-pass\n\
         createUser -e 0x{e} roostauth SHA auth-only-pass\n\
         createUser -e 0x{e} roostnoauth\n\
         authUser log roostsha1 priv\n\
         authUser log roostsha256 priv\n\
         authUser log roostauth auth\n\
         authUser log roostnoauth noauth\n"
    )
}

fn v3(user: &str, auth: Option<(AuthProtocol, &str)>, privacy: Option<&str>) -> Security {
    Security::V3 {
        user: user.into(),
        auth: auth.map(|(p, s)| (p, s.to_string())),
        privacy: privacy.map(|s| (PrivProtocol::Aes128, s.to_string())),
    }
}

#[test]
fn snmptrapd_decodes_v3_auth_priv_auth_no_priv_and_no_auth_traps() {
    let engine = roost_notify::snmp::engine_id_from_octets(731, b"roost-test-1");
    let mut trapd = Trapd::start(&v3_config(&engine));
    let boots = 5;
    let cases = [
        (
            "v3-sha1-aes",
            v3(
                "roostsha1",
                Some((AuthProtocol::Sha1, "sha1-auth-pass")),
                Some("sha1-priv-pass"),
            ),
            EventState::Set,
            Severity::Critical,
        ),
        (
            "v3-sha256-aes",
            v3(
                "roostsha256",
                Some((AuthProtocol::Sha256, "sha256-auth-pass")),
                Some("sha256-priv-pass"),
            ),
            EventState::Log,
            Severity::NotApplicable,
        ),
        (
            "v3-sha1-nopriv",
            v3(
                "roostauth",
                Some((AuthProtocol::Sha1, "auth-only-pass")),
                None,
            ),
            EventState::Clear,
            Severity::Major,
        ),
        (
            "v3-noauth",
            v3("roostnoauth", None, None),
            EventState::Set,
            Severity::Minor,
        ),
    ];
    let mut time = 100;
    for (uuid, security, state, severity) in cases {
        let mut enc = TrapEncoder::new(security, engine.clone(), boots).unwrap();
        // Two traps per user: msgID, engine time and salt move on.
        for round in 0..2 {
            time += 1;
            let event = sample(&format!("{uuid}-{round}"), state, severity);
            send_event(&mut trapd, &mut enc, &event, time, u64::from(time) << 8);
        }
    }
}

#[test]
fn snmptrapd_drops_v3_traps_with_a_wrong_passphrase() {
    let engine = roost_notify::snmp::engine_id_from_octets(731, b"roost-test-2");
    let mut trapd = Trapd::start(&v3_config(&engine));
    let good = v3(
        "roostsha1",
        Some((AuthProtocol::Sha1, "sha1-auth-pass")),
        Some("sha1-priv-pass"),
    );
    let wrong_auth = v3(
        "roostsha1",
        Some((AuthProtocol::Sha1, "not-the-auth-pass")),
        Some("sha1-priv-pass"),
    );
    let wrong_priv = v3(
        "roostsha1",
        Some((AuthProtocol::Sha1, "sha1-auth-pass")),
        Some("not-the-priv-pass"),
    );
    let wrong_protocol = v3(
        "roostsha1",
        Some((AuthProtocol::Sha256, "sha1-auth-pass")),
        Some("sha1-priv-pass"),
    );
    let mut bad_uuids = Vec::new();
    for (i, security) in [wrong_auth, wrong_priv, wrong_protocol]
        .into_iter()
        .enumerate()
    {
        let uuid = format!("v3-refused-{i}");
        let mut enc = TrapEncoder::new(security, engine.clone(), 5).unwrap();
        let event = sample(&uuid, EventState::Set, Severity::Critical);
        trapd.send(&enc.encode(&event_notification(&event), 1, 10, 1).unwrap());
        bad_uuids.push(uuid);
    }
    // The good trap is sent after the bad ones: once it is logged, the bad
    // ones have been processed too (one socket, handled in order).
    let mut enc = TrapEncoder::new(good, engine.clone(), 5).unwrap();
    let event = sample("v3-accepted", EventState::Set, Severity::Critical);
    send_event(&mut trapd, &mut enc, &event, 11, 2);
    let log = trapd.log();
    for uuid in &bad_uuids {
        assert!(!log.contains(uuid.as_str()), "{uuid} was accepted:\n{log}");
    }
    assert_eq!(log.matches("v3-accepted").count(), 1, "{log}");
}

// ---------------------------------------------------------------------------
// snmptranslate.

fn snmptranslate(args: &[&str]) -> (bool, String, String) {
    require("snmptranslate");
    let out = Command::new("snmptranslate")
        .args(args)
        .env_remove("MIBS")
        .env_remove("MIBDIRS")
        .output()
        .expect("cannot run snmptranslate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn snmptranslate_loads_the_mib_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = mib_path(dir.path());
    let names = [
        ("roostAlarmCritical", ".1.3.6.1.4.1.731.1.1.1.1.0.1"),
        ("roostAlarmMajor", ".1.3.6.1.4.1.731.1.1.1.1.0.2"),
        ("roostAlarmMinor", ".1.3.6.1.4.1.731.1.1.1.1.0.3"),
        ("roostAlarmWarning", ".1.3.6.1.4.1.731.1.1.1.1.0.4"),
        ("roostAlarmMessage", ".1.3.6.1.4.1.731.1.1.1.1.0.5"),
        ("roostAlarmClear", ".1.3.6.1.4.1.731.1.1.1.1.0.9"),
        ("roostAlarmActiveUuid", ".1.3.6.1.4.1.731.1.1.1.1.1.1.2"),
        (
            "roostAlarmActiveSuppressionAllowed",
            ".1.3.6.1.4.1.731.1.1.1.1.1.1.12",
        ),
        ("roostAlarmEventUuid", ".1.3.6.1.4.1.731.1.1.1.1.2.1.2"),
        (
            "roostAlarmEventSuppressionAllowed",
            ".1.3.6.1.4.1.731.1.1.1.1.2.1.13",
        ),
    ];
    for (name, oid) in names {
        // -Pw: report MIB warnings (Net-SNMP's level 1).
        let (ok, out, err) = snmptranslate(&[
            "-Pw",
            "-M",
            &path,
            "-m",
            "ROOST-ALARM-MIB",
            "-IR",
            "-On",
            name,
        ]);
        assert!(ok, "{name}: {err}");
        assert_eq!(out, oid, "{name}");
        assert_eq!(err, "", "{name}: warnings");
    }
    // The numbers the library sends are the MIB's.
    let n = event_notification(&sample("x", EventState::Set, Severity::Critical));
    let oid: Vec<String> = n.trap_oid.iter().map(u32::to_string).collect();
    assert_eq!(format!(".{}", oid.join(".")), names[0].1);

    // Against the real IETF modules too, when they are installed (the
    // command an operator would run).
    let real = ["/usr/share/snmp/mibs", "/usr/share/snmp/mibs/ietf"]
        .iter()
        .any(|d| {
            Path::new(d).join("SNMPv2-SMI.txt").is_file()
                || Path::new(d).join("SNMPv2-SMI").is_file()
        });
    if real {
        let monitoring = format!("+{}", monitoring_dir().display());
        let (ok, out, err) = snmptranslate(&[
            "-M",
            &monitoring,
            "-m",
            "+ROOST-ALARM-MIB",
            "-IR",
            "-On",
            "roostAlarmCritical",
        ]);
        assert!(ok, "{err}");
        assert_eq!(out, names[0].1);
        assert_eq!(err, "", "warnings");
    }
}

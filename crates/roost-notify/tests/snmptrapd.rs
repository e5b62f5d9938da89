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
MODULE-IDENTITY MACRO ::= BEGIN END
OBJECT-TYPE MACRO ::= BEGIN END
NOTIFICATION-TYPE MACRO ::= BEGIN END
Unsigned32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
END
";

const TC: &str = "SNMPv2-TC DEFINITIONS ::= BEGIN
-- A test stand-in: only the parts ROOST-ALARM-MIB imports.
TEXTUAL-CONVENTION MACRO ::= BEGIN END
DateAndTime ::= TEXTUAL-CONVENTION
    DISPLAY-HINT \"2d-1d-1d,1d:1d:1d.1d,1a1d:1d\"
    STATUS current
    DESCRIPTION \"A date and time.\"
    SYNTAX OCTET STRING (SIZE (8 | 11))
END
";

const CONF: &str = "SNMPv2-CONF DEFINITIONS ::= BEGIN
-- A test stand-in: only the parts ROOST-ALARM-MIB imports.
OBJECT-GROUP MACRO ::= BEGIN END
NOTIFICATION-GROUP MACRO ::= BEGIN END
MODULE-COMPLIANCE MACRO ::= BEGIN END
END
";

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monitoring")
}

/// A directory with the base-module stand-ins.
fn base_mibs(dir: &Path) -> PathBuf {
    let mibs = dir.join("base-mibs");
    fs::create_dir_all(&mibs).unwrap();
    for (name, text) in [("SNMPv2-SMI", SMI), ("SNMPv2-TC", TC), ("SNMPv2-CONF", CONF)] {
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
        socket
            .send_to(datagram, ("127.0.0.1", self.port))
            .unwrap();
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
}

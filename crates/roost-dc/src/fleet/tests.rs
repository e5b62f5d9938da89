use super::*;
use crate::sync::{Applied, Stale};
use crate::words::{ApplyType, CloudStatus};
use proptest::prelude::*;

const START: Timestamp = Timestamp(1_700_000_000_000_000);

/// A fleet driven by a simulated clock, keeping every alarm it emitted.
struct Sim {
    f: Fleet,
    now: Timestamp,
    log: Vec<AlarmOut>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            f: Fleet::new(DcSettings::default(), Epoch(1)),
            now: START,
            log: Vec::new(),
        }
    }

    fn take(&mut self, fx: DcEffects) -> DcEffects {
        self.log.extend(fx.alarms.iter().cloned());
        fx
    }

    fn add(&mut self, name: &str) {
        let fx = self.f.add(name, DEFAULT_GROUP_ID, self.now).unwrap();
        self.take(fx);
    }

    fn hear(&mut self, name: &str) -> DcEffects {
        let fx = self.f.heard_from(name, self.now).unwrap();
        self.take(fx)
    }

    fn manage(&mut self, name: &str, m: Management) -> DcEffects {
        let fx = self.f.set_management(name, m, self.now).unwrap();
        self.take(fx)
    }

    /// An online, managed subcloud.
    fn managed_online(&mut self, name: &str) {
        self.add(name);
        self.hear(name);
        self.manage(name, Management::Managed);
    }

    /// `secs` seconds, one tick per second; `heard` subclouds send a heartbeat each second.
    fn run(&mut self, secs: i64, heard: &[&str]) -> DcEffects {
        let mut all = DcEffects::default();
        for _ in 0..secs {
            self.now = self.now.plus_secs(1);
            for h in heard {
                let fx = self.hear(h);
                all.merge(fx);
            }
            let fx = self.f.tick(self.now);
            let fx = self.take(fx);
            all.merge(fx);
        }
        all
    }

    fn desire(&mut self, ep: Endpoint, digest: &str) -> Generation {
        let (g, fx) = self.f.set_desired(ep, digest, self.now);
        self.take(fx);
        g
    }

    fn report(&mut self, name: &str, ep: Endpoint, g: Generation, digest: &str) -> DcEffects {
        let fx = self
            .f
            .report_applied(name, ep, g, digest, self.now)
            .unwrap();
        self.take(fx)
    }

    /// The subcloud applies everything it is sent and reports it.
    fn converge(&mut self, name: &str) {
        for ep in self.f.to_send(name) {
            let d = self.f.desired(ep).clone();
            self.report(name, ep, d.generation, &d.digest);
        }
    }

    /// Active alarms implied by everything emitted, as (id, entity, severity).
    fn active(&self) -> Vec<(String, String, Severity)> {
        let mut m: BTreeMap<(String, String), Severity> = BTreeMap::new();
        for a in &self.log {
            let k = (a.alarm_id.to_string(), a.entity_instance_id.clone());
            match a.severity {
                Some(s) => {
                    m.insert(k, s);
                }
                None => {
                    m.remove(&k);
                }
            }
        }
        m.into_iter().map(|((a, e), s)| (a, e, s)).collect()
    }

    fn sc(&self, name: &str) -> &SubcloudState {
        self.f.get(name).unwrap()
    }
}

fn offline_alarm(name: &str) -> (String, String, Severity) {
    (
        ALARM_SUBCLOUD_OFFLINE.into(),
        format!("subcloud={name}"),
        Severity::Critical,
    )
}

fn sync_alarm(name: &str, ep: Endpoint) -> (String, String, Severity) {
    (
        ALARM_SUBCLOUD_OUT_OF_SYNC.into(),
        format!("subcloud={name}.resource={ep}"),
        Severity::Major,
    )
}

// ----- states and availability -------------------------------------------------

#[test]
fn a_new_subcloud_is_unmanaged_offline_and_not_deployed() {
    let mut s = Sim::new();
    s.add("edge-1");
    let sc = s.sc("edge-1");
    assert_eq!(sc.management(), Management::Unmanaged);
    assert_eq!(sc.availability(), Availability::Offline);
    assert_eq!(sc.deploy_status(), DeployStatus::NotDeployed);
    assert_eq!(sc.group_id(), DEFAULT_GROUP_ID);
    assert_eq!(sc.id(), 1);
    assert_eq!(sc.last_seen(), None);
    assert_eq!(sc.sync_status(), SyncStatus::Unknown);
    assert_eq!(sc.endpoint_sync().count(), 8);
    assert!(s.active().is_empty());
}

#[test]
fn a_silent_managed_subcloud_goes_offline_after_ten_seconds_and_raises_280_001() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    let fx = s.run(9, &[]);
    assert!(fx.is_empty());
    assert!(s.sc("edge-1").is_online());
    let fx = s.run(1, &[]);
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert_eq!(s.sc("edge-1").availability(), Availability::Offline);
    assert_eq!(s.active(), vec![offline_alarm("edge-1")]);
    assert_eq!(fx.alarms[0].reason_text, "edge-1 is offline");
    // Nothing more while it stays offline.
    assert!(s.run(60, &[]).is_empty());
}

#[test]
fn a_silent_unmanaged_subcloud_goes_offline_without_an_alarm() {
    let mut s = Sim::new();
    s.add("edge-1");
    s.hear("edge-1");
    let fx = s.run(10, &[]);
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert!(!s.sc("edge-1").is_online());
    assert!(s.active().is_empty());
}

#[test]
fn a_subcloud_that_keeps_talking_stays_online() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.managed_online("edge-2");
    let fx = s.run(60, &["edge-1"]);
    assert!(s.sc("edge-1").is_online());
    assert!(!s.sc("edge-2").is_online());
    assert_eq!(fx.changed, vec!["edge-2".to_string()]);
    assert_eq!(s.active(), vec![offline_alarm("edge-2")]);
}

#[test]
fn hearing_from_an_offline_subcloud_brings_it_online_and_clears_280_001() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.run(15, &[]);
    assert_eq!(s.active().len(), 1);
    let fx = s.hear("edge-1");
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert!(s.sc("edge-1").is_online());
    assert!(s.active().is_empty());
    assert_eq!(s.sc("edge-1").last_seen(), Some(s.now));
    // A heartbeat of an online subcloud is not a change.
    assert!(s.hear("edge-1").is_empty());
}

#[test]
fn unmanaging_an_offline_subcloud_clears_280_001_and_managing_it_raises_it_again() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.run(10, &[]);
    assert_eq!(s.active(), vec![offline_alarm("edge-1")]);
    s.manage("edge-1", Management::Unmanaged);
    assert!(s.active().is_empty());
    s.manage("edge-1", Management::Managed);
    assert_eq!(s.active(), vec![offline_alarm("edge-1")]);
    // Setting the same state again changes nothing.
    assert!(s.manage("edge-1", Management::Managed).is_empty());
}

#[test]
fn the_offline_delay_follows_the_settings() {
    let mut s = Sim::new();
    s.f.set_settings(DcSettings {
        offline_after_secs: 3,
        ..DcSettings::default()
    });
    s.managed_online("edge-1");
    s.run(2, &[]);
    assert!(s.sc("edge-1").is_online());
    s.run(1, &[]);
    assert!(!s.sc("edge-1").is_online());
}

#[test]
fn a_quiet_tick_emits_nothing() {
    let mut s = Sim::new();
    for i in 0..50 {
        s.managed_online(&format!("edge-{i}"));
    }
    let names: Vec<String> = (0..50).map(|i| format!("edge-{i}")).collect();
    let heard: Vec<&str> = names.iter().map(String::as_str).collect();
    let fx = s.run(30, &heard);
    assert!(fx.is_empty());
}

// ----- alarm summary -------------------------------------------------------------

fn change(seq: u64, id: &str, severity: Option<Severity>) -> AlarmChange {
    AlarmChange {
        seq,
        alarm_id: id.into(),
        entity_instance_id: "host=controller-0".into(),
        severity,
        reason_text: String::new(),
        timestamp: START,
    }
}

#[test]
fn the_summary_counts_a_subclouds_alarms_and_shows_disabled_while_offline() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    let acked =
        s.f.alarm_changes(
            "edge-1",
            &[
                change(1, "100.101", Some(Severity::Major)),
                change(2, "100.103", Some(Severity::Warning)),
            ],
        )
        .unwrap();
    assert_eq!(acked, 2);
    let sum = s.f.summary("edge-1").unwrap();
    assert_eq!(
        (
            sum.critical_alarms,
            sum.major_alarms,
            sum.minor_alarms,
            sum.warnings
        ),
        (0, 1, 0, 1)
    );
    assert_eq!(sum.cloud_status, CloudStatus::Degraded);
    s.f.alarm_changes("edge-1", &[change(3, "100.104", Some(Severity::Critical))])
        .unwrap();
    assert_eq!(
        s.f.summary("edge-1").unwrap().cloud_status,
        CloudStatus::Critical
    );
    s.run(10, &[]);
    assert_eq!(s.f.summary("edge-1").unwrap(), AlarmSummary::DISABLED);
    // The last known table is kept and comes back with the subcloud.
    assert_eq!(s.sc("edge-1").alarm_counts().total(), 3);
    s.hear("edge-1");
    assert_eq!(s.f.summary("edge-1").unwrap().critical_alarms, 1);
    let rows: Vec<_> = s.f.alarm_summaries().collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "edge-1");
}

#[test]
fn alarm_changes_for_an_unknown_subcloud_are_refused() {
    let mut s = Sim::new();
    assert_eq!(
        s.f.alarm_changes("ghost", &[]),
        Err(Error::UnknownSubcloud("ghost".into()))
    );
    assert!(s.f.alarm_snapshot("ghost", 1, &[]).is_err());
}

#[test]
fn unmanaged_subclouds_still_report_alarms() {
    let mut s = Sim::new();
    s.add("edge-1");
    s.hear("edge-1");
    s.f.alarm_changes("edge-1", &[change(1, "100.101", Some(Severity::Minor))])
        .unwrap();
    assert_eq!(s.f.summary("edge-1").unwrap().minor_alarms, 1);
    assert_eq!(s.sc("edge-1").alarm_seq(), 1);
}

// ----- configuration sync ------------------------------------------------------------

#[test]
fn an_endpoint_the_controller_has_no_configuration_for_is_in_sync_while_managed_and_online() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    let sc = s.sc("edge-1");
    assert!(
        sc.endpoint_sync()
            .all(|e| e.status == SyncStatus::InSync && e.applied.is_none())
    );
    assert_eq!(sc.sync_status(), SyncStatus::InSync);
    assert!(s.f.to_send("edge-1").is_empty());
}

#[test]
fn an_endpoint_never_reported_is_unknown_and_is_sent() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.desire(Endpoint::Identity, "users-v1");
    assert_eq!(
        s.sc("edge-1").endpoint_status(Endpoint::Identity),
        SyncStatus::Unknown
    );
    assert_eq!(s.sc("edge-1").sync_status(), SyncStatus::Unknown);
    assert_eq!(s.f.to_send("edge-1"), vec![Endpoint::Identity]);
}

#[test]
fn unmanaged_subclouds_are_not_synced_and_raise_no_280_002() {
    let mut s = Sim::new();
    s.add("edge-1");
    s.hear("edge-1");
    s.desire(Endpoint::Platform, "dns-a");
    s.desire(Endpoint::DcCert, "ca-1");
    s.report("edge-1", Endpoint::Platform, Generation(0), "old");
    s.report("edge-1", Endpoint::DcCert, Generation(0), "old");
    let sc = s.sc("edge-1");
    assert_eq!(sc.endpoint_status(Endpoint::Platform), SyncStatus::Unknown);
    // StarlingX keeps auditing dc-cert of unmanaged subclouds.
    assert_eq!(sc.endpoint_status(Endpoint::DcCert), SyncStatus::OutOfSync);
    assert_eq!(sc.endpoint_status(Endpoint::Firmware), SyncStatus::Unknown);
    assert!(s.f.to_send("edge-1").is_empty());
    s.run(120, &["edge-1"]);
    assert!(s.active().is_empty());
}

#[test]
fn managing_again_sends_the_endpoints_that_fell_behind_and_converges() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    let g = s.desire(Endpoint::Platform, "dns-a");
    s.desire(Endpoint::Identity, "users-1");
    s.converge("edge-1");
    assert_eq!(s.sc("edge-1").sync_status(), SyncStatus::InSync);
    s.manage("edge-1", Management::Unmanaged);
    // While unmanaged the controller moves on.
    let g2 = s.desire(Endpoint::Platform, "dns-b");
    assert!(g2 > g);
    s.desire(Endpoint::Software, "rel-26.03");
    assert!(s.f.to_send("edge-1").is_empty());
    let fx = s.manage("edge-1", Management::Managed);
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert_eq!(
        s.f.to_send("edge-1"),
        vec![Endpoint::Platform, Endpoint::Software]
    );
    assert_eq!(s.sc("edge-1").sync_status(), SyncStatus::OutOfSync);
    s.converge("edge-1");
    assert!(s.f.to_send("edge-1").is_empty());
    assert_eq!(s.sc("edge-1").sync_status(), SyncStatus::InSync);
    assert!(s.active().is_empty());
}

#[test]
fn an_endpoint_out_of_sync_for_thirty_seconds_raises_280_002_and_syncing_clears_it() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.desire(Endpoint::Platform, "dns-a");
    s.report("edge-1", Endpoint::Platform, Generation(0), "none");
    assert_eq!(
        s.sc("edge-1").endpoint_status(Endpoint::Platform),
        SyncStatus::OutOfSync
    );
    s.run(29, &["edge-1"]);
    assert!(s.active().is_empty());
    let fx = s.run(1, &["edge-1"]);
    assert_eq!(s.active(), vec![sync_alarm("edge-1", Endpoint::Platform)]);
    assert_eq!(
        fx.alarms[0].reason_text,
        "edge-1 platform sync_status is out-of-sync"
    );
    s.converge("edge-1");
    assert!(s.active().is_empty());
}

#[test]
fn a_subcloud_catching_up_in_time_raises_no_280_002() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.report("edge-1", Endpoint::Platform, Generation(0), "");
    s.desire(Endpoint::Platform, "dns-a");
    s.run(20, &["edge-1"]);
    s.converge("edge-1");
    s.run(60, &["edge-1"]);
    assert!(s.active().is_empty());
}

#[test]
fn going_offline_makes_sync_unknown_and_clears_280_002() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.desire(Endpoint::Identity, "users-1");
    s.report("edge-1", Endpoint::Identity, Generation(0), "");
    s.run(30, &["edge-1"]);
    assert_eq!(s.active(), vec![sync_alarm("edge-1", Endpoint::Identity)]);
    s.run(10, &[]);
    assert_eq!(s.active(), vec![offline_alarm("edge-1")]);
    assert!(
        s.sc("edge-1")
            .endpoint_sync()
            .all(|e| e.status == SyncStatus::Unknown)
    );
    assert!(s.f.to_send("edge-1").is_empty());
    // Back online still behind: the 280.002 timer starts again.
    s.hear("edge-1");
    assert!(s.active().is_empty());
    s.run(29, &["edge-1"]);
    assert!(s.active().is_empty());
    s.run(1, &["edge-1"]);
    assert_eq!(s.active(), vec![sync_alarm("edge-1", Endpoint::Identity)]);
}

#[test]
fn unmanaging_clears_280_002_and_managing_restarts_its_timer() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.desire(Endpoint::DcCert, "ca-1");
    s.report("edge-1", Endpoint::DcCert, Generation(0), "");
    s.run(30, &["edge-1"]);
    assert_eq!(s.active(), vec![sync_alarm("edge-1", Endpoint::DcCert)]);
    s.manage("edge-1", Management::Unmanaged);
    assert!(s.active().is_empty());
    // dc-cert is still out-of-sync (audited while unmanaged) but raises nothing.
    s.run(100, &["edge-1"]);
    assert!(s.active().is_empty());
    s.manage("edge-1", Management::Managed);
    s.run(29, &["edge-1"]);
    assert!(s.active().is_empty());
    s.run(1, &["edge-1"]);
    assert_eq!(s.active(), vec![sync_alarm("edge-1", Endpoint::DcCert)]);
}

#[test]
fn drift_is_detected_once_and_sent_only_while_managed() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    let g = s.desire(Endpoint::Platform, "dns-a");
    s.converge("edge-1");
    // Someone edits the subcloud: same generation, another digest.
    let fx = s.report("edge-1", Endpoint::Platform, g, "dns-edited");
    assert_eq!(
        fx.drift,
        vec![Drift {
            subcloud: "edge-1".into(),
            endpoint: Endpoint::Platform
        }]
    );
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert_eq!(s.f.drifted("edge-1"), vec![Endpoint::Platform]);
    assert_eq!(
        s.sc("edge-1").endpoint_status(Endpoint::Platform),
        SyncStatus::OutOfSync
    );
    assert!(
        s.sc("edge-1")
            .endpoint_sync()
            .any(|e| e.endpoint == Endpoint::Platform && e.drift && e.applied == Some(g))
    );
    assert_eq!(s.f.to_send("edge-1"), vec![Endpoint::Platform]);
    // The same report again is not new drift.
    assert!(
        s.report("edge-1", Endpoint::Platform, g, "dns-edited")
            .drift
            .is_empty()
    );
    s.manage("edge-1", Management::Unmanaged);
    assert!(s.f.to_send("edge-1").is_empty());
    assert_eq!(s.f.drifted("edge-1"), vec![Endpoint::Platform]);
    s.manage("edge-1", Management::Managed);
    assert_eq!(s.f.to_send("edge-1"), vec![Endpoint::Platform]);
    // Re-pushing the same generation repairs it.
    s.report("edge-1", Endpoint::Platform, g, "dns-a");
    assert!(s.f.drifted("edge-1").is_empty());
    assert!(s.f.to_send("edge-1").is_empty());
}

#[test]
fn the_generation_grows_only_when_the_content_changes() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.managed_online("edge-2");
    assert_eq!(s.f.desired(Endpoint::Identity).generation, Generation(0));
    let g1 = s.desire(Endpoint::Identity, "u1");
    assert_eq!(g1, Generation(1));
    s.converge("edge-1");
    s.converge("edge-2");
    let (same, fx) = s.f.set_desired(Endpoint::Identity, "u1", s.now);
    assert_eq!(same, g1);
    assert!(fx.is_empty());
    let (g2, fx) = s.f.set_desired(Endpoint::Identity, "u2", s.now);
    assert_eq!(g2, Generation(2));
    assert_eq!(fx.changed, vec!["edge-1".to_string(), "edge-2".to_string()]);
    assert_eq!(s.f.to_send("edge-1"), vec![Endpoint::Identity]);
}

#[test]
fn a_subcloud_ahead_of_a_controller_that_lost_its_numbering_is_sent_the_current_content() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.desire(Endpoint::Software, "rel-1");
    s.report("edge-1", Endpoint::Software, Generation(7), "rel-0");
    assert_eq!(s.f.to_send("edge-1"), vec![Endpoint::Software]);
    assert!(s.f.drifted("edge-1").is_empty());
}

#[test]
fn pushes_from_a_restarted_controller_win_and_the_old_controller_is_refused() {
    let mut old = Fleet::new(DcSettings::default(), Epoch(1));
    let mut new = Fleet::new(DcSettings::default(), Epoch(2));
    let (g_old, _) = old.set_desired(Endpoint::Platform, "a", START);
    let (g_old2, _) = old.set_desired(Endpoint::Platform, "b", START);
    let (g_new, _) = new.set_desired(Endpoint::Platform, "c", START);
    let mut sub = Applied::new();
    sub.accept_push(Endpoint::Platform, old.epoch(), g_old2)
        .unwrap();
    assert!(
        sub.accept_push(Endpoint::Platform, old.epoch(), g_old)
            .is_err()
    );
    sub.accept_push(Endpoint::Platform, new.epoch(), g_new)
        .unwrap();
    let err: Stale = sub
        .accept_push(Endpoint::Platform, old.epoch(), g_old2)
        .unwrap_err();
    assert_eq!(err.applied_epoch, Epoch(2));
    assert_eq!(sub.generation(Endpoint::Platform), g_new);
}

// ----- deploy status and enrollment ---------------------------------------------------

#[test]
fn enrollment_moves_deploy_status_to_enrolling_then_complete_after_the_first_full_report() {
    let mut s = Sim::new();
    s.add("edge-1");
    s.desire(Endpoint::Identity, "u1");
    let fx = s.f.enrolled("edge-1", s.now).unwrap();
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert_eq!(s.sc("edge-1").deploy_status(), DeployStatus::Enrolling);
    assert!(s.sc("edge-1").is_online());
    for ep in [
        Endpoint::Identity,
        Endpoint::Platform,
        Endpoint::DcCert,
        Endpoint::Apps,
    ] {
        s.report("edge-1", ep, Generation(0), "");
        assert_eq!(s.sc("edge-1").deploy_status(), DeployStatus::Enrolling);
    }
    let fx = s.report("edge-1", Endpoint::Software, Generation(0), "");
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert_eq!(s.sc("edge-1").deploy_status(), DeployStatus::Complete);
    // Still unmanaged: nothing is pushed until an operator manages it.
    assert!(s.f.to_send("edge-1").is_empty());
}

#[test]
fn enrolling_again_starts_a_new_alarm_stream_and_forgets_old_reports() {
    let mut s = Sim::new();
    s.add("edge-1");
    s.f.enrolled("edge-1", s.now).unwrap();
    s.f.alarm_changes("edge-1", &[change(1, "100.101", Some(Severity::Major))])
        .unwrap();
    s.report("edge-1", Endpoint::Platform, Generation(3), "x");
    s.f.enrolled("edge-1", s.now).unwrap();
    let sc = s.sc("edge-1");
    assert_eq!(sc.alarm_seq(), 0);
    assert_eq!(sc.alarm_counts().total(), 0);
    assert!(sc.endpoint_sync().all(|e| e.applied.is_none()));
}

// ----- add, remove, restore -------------------------------------------------------------

#[test]
fn subcloud_names_must_be_valid_unique_and_not_reserved() {
    let mut s = Sim::new();
    s.add("edge-1");
    assert_eq!(
        s.f.add("edge-1", 1, s.now),
        Err(Error::Exists("edge-1".into()))
    );
    assert!(matches!(
        s.f.add("systemcontroller", 1, s.now),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        s.f.add("42", 1, s.now),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        s.f.add("a.b", 1, s.now),
        Err(Error::InvalidName(_))
    ));
    assert_eq!(
        s.f.add("edge-2", 9, s.now),
        Err(Error::UnknownGroup("9".into()))
    );
    assert_eq!(s.f.len(), 1);
}

#[test]
fn remove_is_refused_unless_the_subcloud_is_unmanaged_and_offline() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    let err = s.f.remove("edge-1").unwrap_err();
    assert_eq!(err, Error::NotUnmanaged("edge-1".into()));
    assert!(err.to_string().contains("must be unmanaged"));
    s.manage("edge-1", Management::Unmanaged);
    let err = s.f.remove("edge-1").unwrap_err();
    assert_eq!(err, Error::NotOffline("edge-1".into()));
    assert!(err.to_string().contains("powered down"));
    s.run(10, &[]);
    let fx = s.f.remove("edge-1").unwrap();
    assert_eq!(fx.changed, vec!["edge-1".to_string()]);
    assert!(s.f.get("edge-1").is_none());
    assert!(s.f.get_by_id(1).is_none());
    assert!(s.f.is_empty());
    assert_eq!(
        s.f.remove("edge-1"),
        Err(Error::UnknownSubcloud("edge-1".into()))
    );
    // Ids are not reused.
    s.add("edge-2");
    assert_eq!(s.sc("edge-2").id(), 2);
}

#[test]
fn subclouds_are_found_by_id_or_name() {
    let mut s = Sim::new();
    s.add("edge-1");
    s.add("edge-2");
    assert_eq!(s.f.find("2").unwrap().name(), "edge-2");
    assert_eq!(s.f.find("edge-1").unwrap().id(), 1);
    assert!(s.f.find("3").is_none());
    assert_eq!(s.f.iter().count(), 2);
}

#[test]
fn a_record_restores_the_same_subcloud_with_a_grace_period() {
    let mut s = Sim::new();
    s.managed_online("edge-1");
    s.f.set_software_version("edge-1", "26.03").unwrap();
    let rec = s.sc("edge-1").record();
    let mut f = Fleet::new(DcSettings::default(), Epoch(2));
    let later_start = s.now.plus_secs(3600);
    let fx = f.restore(rec.clone(), later_start).unwrap();
    assert!(fx.alarms.is_empty());
    let sc = f.get("edge-1").unwrap();
    assert!(sc.is_online() && sc.is_managed());
    assert_eq!(sc.software_version(), Some("26.03"));
    assert_eq!(
        f.restore(rec.clone(), later_start),
        Err(Error::Exists("edge-1".into()))
    );
    assert!(f.tick(later_start.plus_secs(9)).is_empty());
    let fx = f.tick(later_start.plus_secs(10));
    assert_eq!(fx.alarms.len(), 1);
    // A managed offline record raises 280.001 again; new ids follow restored ones.
    let mut g = Fleet::new(DcSettings::default(), Epoch(3));
    let off = SubcloudRecord {
        availability: Availability::Offline,
        id: 40,
        ..rec
    };
    let fx = g.restore(off, later_start).unwrap();
    assert_eq!(fx.alarms[0].alarm_id, ALARM_SUBCLOUD_OFFLINE);
    assert_eq!(fx.alarms[0].severity, Some(Severity::Critical));
    g.add("edge-2", 1, later_start).unwrap();
    assert_eq!(g.get("edge-2").unwrap().id(), 41);
}

// ----- groups ---------------------------------------------------------------------------

fn spec(name: &str) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        description: "Rack 4".into(),
        update_apply_type: ApplyType::Serial,
        max_parallel_subclouds: 10,
    }
}

#[test]
fn the_default_group_always_exists_and_cannot_be_deleted_or_renamed() {
    let mut f = Fleet::new(DcSettings::default(), Epoch(1));
    let d = f.group(DEFAULT_GROUP_ID).unwrap();
    assert_eq!(d.name, "Default");
    assert_eq!(d.update_apply_type, ApplyType::Parallel);
    assert_eq!(d.max_parallel_subclouds, 2);
    assert_eq!(f.delete_group(1), Err(Error::DefaultGroupNotDeletable));
    let rename = GroupPatch {
        name: Some("Main".into()),
        ..GroupPatch::default()
    };
    assert_eq!(f.update_group(1, rename), Err(Error::DefaultGroupNameFixed));
    // Its other settings may change.
    let more = GroupPatch {
        max_parallel_subclouds: Some(50),
        ..GroupPatch::default()
    };
    assert_eq!(f.update_group(1, more).unwrap().max_parallel_subclouds, 50);
    assert_eq!(f.find_group("Default").unwrap().id, 1);
}

#[test]
fn groups_are_validated_with_clear_messages() {
    let mut f = Fleet::new(DcSettings::default(), Epoch(1));
    let g = f.add_group(spec("rack-4")).unwrap();
    assert_eq!(g.id, 2);
    assert_eq!(
        f.add_group(spec("rack-4")),
        Err(Error::GroupExists("rack-4".into()))
    );
    let e = f.add_group(spec("default")).unwrap_err();
    assert!(e.to_string().starts_with("Invalid group name"), "{e}");
    assert!(matches!(
        f.add_group(spec("7")),
        Err(Error::InvalidGroupName(_))
    ));
    let e = f
        .add_group(GroupSpec {
            max_parallel_subclouds: 5001,
            ..spec("rack-5")
        })
        .unwrap_err();
    assert!(e.to_string().contains("from 1 to 5000"), "{e}");
    assert!(matches!(
        f.add_group(GroupSpec {
            max_parallel_subclouds: 0,
            ..spec("rack-5")
        }),
        Err(Error::InvalidMaxParallel(_))
    ));
    assert!(matches!(
        f.add_group(GroupSpec {
            description: String::new(),
            ..spec("rack-5")
        }),
        Err(Error::InvalidGroupDescription(_))
    ));
    assert_eq!(
        f.update_group(2, GroupPatch::default()),
        Err(Error::NothingToUpdate)
    );
    assert_eq!(
        f.update_group(9, GroupPatch::default()),
        Err(Error::UnknownGroup("9".into()))
    );
    let g = f
        .update_group(
            2,
            GroupPatch {
                name: Some("rack-4b".into()),
                update_apply_type: Some(ApplyType::Parallel),
                ..GroupPatch::default()
            },
        )
        .unwrap();
    assert_eq!(
        (g.name.as_str(), g.update_apply_type),
        ("rack-4b", ApplyType::Parallel)
    );
    assert_eq!(f.find_group("2").unwrap().name, "rack-4b");
    assert_eq!(f.groups().count(), 2);
}

#[test]
fn a_group_holding_subclouds_cannot_be_deleted() {
    let mut s = Sim::new();
    let id = s.f.add_group(spec("rack-4")).unwrap().id;
    s.f.add("edge-1", id, s.now).unwrap();
    let e = s.f.delete_group(id).unwrap_err();
    assert_eq!(e, Error::GroupNotEmpty("rack-4".into(), 1));
    assert!(e.to_string().starts_with("Subcloud Group not empty"));
    assert_eq!(s.f.subclouds_in_group(id).count(), 1);
    s.f.set_group("edge-1", DEFAULT_GROUP_ID, s.now).unwrap();
    assert_eq!(s.f.delete_group(id).unwrap().name, "rack-4");
    assert!(s.f.group(id).is_none());
    assert_eq!(
        s.f.set_group("edge-1", id, s.now),
        Err(Error::UnknownGroup(id.to_string()))
    );
    // Group ids are not reused either.
    assert_eq!(s.f.add_group(spec("rack-5")).unwrap().id, 3);
}

#[test]
fn restored_groups_keep_their_ids() {
    let mut f = Fleet::new(DcSettings::default(), Epoch(1));
    let mut d = Group::default_group();
    d.max_parallel_subclouds = 9;
    f.restore_group(d).unwrap();
    assert_eq!(f.group(1).unwrap().max_parallel_subclouds, 9);
    let g = Group {
        id: 12,
        name: "far".into(),
        description: "far away".into(),
        update_apply_type: ApplyType::Serial,
        max_parallel_subclouds: 1,
    };
    f.restore_group(g.clone()).unwrap();
    assert_eq!(f.restore_group(g), Err(Error::DuplicateGroupId(12)));
    assert_eq!(f.add_group(spec("near")).unwrap().id, 13);
}

// ----- tick equivalence ---------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Advance(u8),
    Hear(u8),
    Manage(u8, bool),
    Desire(u8, u8),
    Report(u8, u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..15).prop_map(Op::Advance),
        4 => (0u8..4).prop_map(Op::Hear),
        1 => (0u8..4, any::<bool>()).prop_map(|(a, b)| Op::Manage(a, b)),
        1 => (0u8..7, 0u8..3).prop_map(|(a, b)| Op::Desire(a, b)),
        2 => (0u8..4, 0u8..7, any::<bool>()).prop_map(|(a, b, c)| Op::Report(a, b, c)),
    ]
}

proptest! {
    /// The deadline bound that lets `tick` skip work never changes what it decides.
    #[test]
    fn skipping_ticks_before_the_next_deadline_decides_the_same_as_walking_everything(
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let mut fast = Fleet::new(
            DcSettings { offline_after_secs: 10, out_of_sync_alarm_after_secs: 20 },
            Epoch(1),
        );
        let mut now = START;
        for i in 0..4 {
            fast.add(&format!("s{i}"), 1, now).unwrap();
        }
        let mut slow = fast.clone();
        for op in ops {
            let (a, b) = match op {
                Op::Advance(secs) => {
                    let mut a = DcEffects::default();
                    let mut b = DcEffects::default();
                    for _ in 0..secs {
                        now = now.plus_secs(1);
                        a.merge(fast.tick(now));
                        slow.force_full_tick();
                        b.merge(slow.tick(now));
                    }
                    (a, b)
                }
                Op::Hear(i) => {
                    let n = format!("s{i}");
                    (fast.heard_from(&n, now).unwrap(), slow.heard_from(&n, now).unwrap())
                }
                Op::Manage(i, m) => {
                    let n = format!("s{i}");
                    let m = if m { Management::Managed } else { Management::Unmanaged };
                    (fast.set_management(&n, m, now).unwrap(), slow.set_management(&n, m, now).unwrap())
                }
                Op::Desire(e, d) => {
                    let ep = Endpoint::ALL[e as usize];
                    let d = format!("d{d}");
                    (fast.set_desired(ep, &d, now).1, slow.set_desired(ep, &d, now).1)
                }
                Op::Report(i, e, good) => {
                    let n = format!("s{i}");
                    let ep = Endpoint::ALL[e as usize];
                    let want = fast.desired(ep).clone();
                    let digest = if good { want.digest } else { "other".to_string() };
                    (
                        fast.report_applied(&n, ep, want.generation, &digest, now).unwrap(),
                        slow.report_applied(&n, ep, want.generation, &digest, now).unwrap(),
                    )
                }
            };
            prop_assert_eq!(a, b);
        }
        for (x, y) in fast.iter().zip(slow.iter()) {
            prop_assert_eq!(x.availability(), y.availability());
            prop_assert_eq!(x.sync_status(), y.sync_status());
        }
    }
}

#[test]
fn ten_thousand_subclouds_tick_without_work_between_deadlines() {
    let mut f = Fleet::new(DcSettings::default(), Epoch(1));
    let names: Vec<String> = (0..10_000).map(|i| format!("edge-{i:05}")).collect();
    for n in &names {
        f.add(n, 1, START).unwrap();
        f.heard_from(n, START).unwrap();
        f.set_management(n, Management::Managed, START).unwrap();
    }
    for s in 1..10 {
        assert!(f.tick(START.plus_secs(s)).is_empty());
    }
    let fx = f.tick(START.plus_secs(10));
    assert_eq!(fx.changed.len(), 10_000);
    assert_eq!(fx.alarms.len(), 10_000);
}

// ----- applications, per group ------------------------------------------------

#[test]
fn apps_are_desired_per_group_and_a_change_to_one_group_leaves_the_others_in_sync() {
    let mut s = Sim::new();
    let edge = s.f.add_group(spec("edge")).unwrap().id;
    s.managed_online("a");
    s.f.add("b", edge, s.now).unwrap();
    s.hear("b");
    s.manage("b", Management::Managed);
    // Nothing assigned yet: in sync, nothing to push.
    assert!(s.f.to_send("a").is_empty());
    assert_eq!(
        s.f.get("a").unwrap().endpoint_status(Endpoint::Apps),
        SyncStatus::InSync
    );

    let groups = BTreeMap::from([(edge, "dig-edge-1".to_string())]);
    let (g1, fx) =
        s.f.set_group_desired(Endpoint::Apps, groups, "empty", s.now);
    s.take(fx);
    assert_eq!(g1, Generation(1));
    // Each subcloud is told its group's content.
    assert_eq!(
        s.f.desired_for("b", Endpoint::Apps).unwrap().digest,
        "dig-edge-1"
    );
    assert_eq!(
        s.f.desired_for("a", Endpoint::Apps).unwrap().digest,
        "empty"
    );
    assert_eq!(s.f.to_send("a"), vec![Endpoint::Apps]);
    assert_eq!(s.f.to_send("b"), vec![Endpoint::Apps]);
    s.report("a", Endpoint::Apps, g1, "empty");
    s.report("b", Endpoint::Apps, g1, "dig-edge-1");
    for n in ["a", "b"] {
        assert!(s.f.to_send(n).is_empty(), "{n}");
        assert_eq!(
            s.f.get(n).unwrap().endpoint_status(Endpoint::Apps),
            SyncStatus::InSync
        );
    }

    // A second app in group edge: only b is pushed, a stays in sync at its
    // older generation (the digest decides).
    let groups = BTreeMap::from([(edge, "dig-edge-2".to_string())]);
    let (g2, fx) =
        s.f.set_group_desired(Endpoint::Apps, groups.clone(), "empty", s.now);
    s.take(fx);
    assert_eq!(g2, Generation(2));
    assert!(s.f.to_send("a").is_empty());
    assert_eq!(s.f.to_send("b"), vec![Endpoint::Apps]);
    assert_eq!(
        s.f.get("b").unwrap().endpoint_status(Endpoint::Apps),
        SyncStatus::OutOfSync
    );
    // The same content again changes nothing.
    let (g, _) =
        s.f.set_group_desired(Endpoint::Apps, groups, "empty", s.now);
    assert_eq!(g, g2);

    // Still out of sync after the alarm delay: 280.002 on the apps resource.
    let fx = s.run(
        DcSettings::default().out_of_sync_alarm_after_secs as i64 + 2,
        &["a", "b"],
    );
    assert!(
        fx.alarms.iter().any(|a| a.severity.is_some()
            && a.entity_instance_id == resource_entity("b", Endpoint::Apps))
    );
    // Applying clears it.
    let fx = s.report("b", Endpoint::Apps, g2, "dig-edge-2");
    assert!(
        fx.alarms.iter().any(|a| a.severity.is_none()
            && a.entity_instance_id == resource_entity("b", Endpoint::Apps))
    );

    // Moving a to group edge makes it out of sync with edge's content.
    let fx = s.f.set_group("a", edge, s.now).unwrap();
    assert_eq!(fx.changed, vec!["a".to_string()]);
    assert_eq!(
        s.f.get("a").unwrap().endpoint_status(Endpoint::Apps),
        SyncStatus::OutOfSync
    );
    assert_eq!(s.f.to_send("a"), vec![Endpoint::Apps]);
}

#[test]
fn an_offline_subcloud_is_pushed_its_apps_when_it_returns() {
    let mut s = Sim::new();
    s.managed_online("a");
    s.report("a", Endpoint::Apps, Generation(0), "empty");
    // Offline.
    s.run(DcSettings::default().offline_after_secs as i64 + 2, &[]);
    assert!(!s.f.get("a").unwrap().is_online());
    let groups = BTreeMap::from([(DEFAULT_GROUP_ID, "dig-1".to_string())]);
    let (g, fx) =
        s.f.set_group_desired(Endpoint::Apps, groups, "empty", s.now);
    s.take(fx);
    assert!(
        s.f.to_send("a").is_empty(),
        "nothing is sent to an offline subcloud"
    );
    assert_eq!(
        s.f.get("a").unwrap().endpoint_status(Endpoint::Apps),
        SyncStatus::Unknown
    );
    s.hear("a");
    assert_eq!(s.f.to_send("a"), vec![Endpoint::Apps]);
    s.report("a", Endpoint::Apps, g, "dig-1");
    assert!(s.f.to_send("a").is_empty());
}

#[test]
fn a_non_per_group_endpoint_is_not_set_per_group() {
    let mut s = Sim::new();
    let (g, fx) =
        s.f.set_group_desired(Endpoint::Platform, BTreeMap::new(), "x", s.now);
    assert_eq!(g, Generation(0));
    assert!(fx.is_empty());
    assert!(!Endpoint::Platform.is_per_group());
    assert!(Endpoint::Apps.is_per_group() && Endpoint::Apps.is_synced());
}

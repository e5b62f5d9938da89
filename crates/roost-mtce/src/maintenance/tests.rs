use super::*;

const MS: i64 = 1000;

struct Sim {
    m: Maintenance,
    now: Timestamp,
    log: Vec<AlarmOut>,
    commands: Vec<Command>,
    /// Hosts brought up by `available_worker`, which keep answering while others come up.
    up: Vec<String>,
}

impl Sim {
    fn new(settings: MtceSettings, simplex: bool) -> Sim {
        Sim {
            m: Maintenance::new(settings, simplex),
            now: Timestamp(1_700_000_000_000_000),
            log: Vec::new(),
            commands: Vec::new(),
            up: Vec::new(),
        }
    }

    fn take(&mut self, fx: Effects) -> Effects {
        self.log.extend(fx.alarms.clone());
        self.commands.extend(fx.commands.clone());
        fx
    }

    fn add(&mut self, name: &str, p: Personality) {
        let fx = self
            .m
            .add_host(name, p, Admin::Locked, &[Network::Management], false);
        self.take(fx);
    }

    /// One period in which `answering` hosts answer on every network.
    fn tick(&mut self, answering: &[&str]) -> Effects {
        for h in answering {
            self.m.pulse_answered(h, Network::Management);
            self.m.pulse_answered(h, Network::Cluster);
        }
        self.now = Timestamp(self.now.micros() + 100 * MS);
        let fx = self.m.tick(self.now);
        self.take(fx)
    }

    fn ticks(&mut self, n: usize, answering: &[&str]) {
        for _ in 0..n {
            self.tick(answering);
        }
    }

    fn act(&mut self, host: &str, a: HostAction) -> Result<Effects, Error> {
        let fx = self.m.action(host, a, self.now)?;
        Ok(self.take(fx))
    }

    fn avail(&self, host: &str) -> Avail {
        self.m.status(host).unwrap().avail
    }

    /// The active alarms implied by the log, as (id, entity, severity).
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

    fn raised(&self) -> Vec<(&'static str, Option<Severity>)> {
        self.log.iter().map(|a| (a.alarm_id, a.severity)).collect()
    }

    /// A worker added, answering, unlocked and through intest.
    fn available_worker(&mut self, name: &str) {
        self.add(name, Personality::Worker);
        self.up.push(name.to_string());
        let up: Vec<String> = self.up.clone();
        let up: Vec<&str> = up.iter().map(String::as_str).collect();
        self.ticks(2, &up);
        self.act(name, HostAction::Unlock).unwrap();
        self.ticks(6, &up);
        assert_eq!(self.avail(name), Avail::Available, "{name}");
    }
}

fn sim() -> Sim {
    Sim::new(MtceSettings::default(), false)
}

#[test]
fn a_new_host_is_locked_offline_until_its_agent_answers() {
    let mut s = sim();
    s.add("worker-0", Personality::Worker);
    let st = s.m.status("worker-0").unwrap();
    assert_eq!(
        (st.admin, st.oper, st.avail),
        (Admin::Locked, Oper::Disabled, Avail::Offline)
    );
    assert_eq!(
        s.active(),
        [("200.001".into(), "host=worker-0".into(), Severity::Warning)]
    );
    let e = s.act("worker-0", HostAction::Unlock).unwrap_err();
    assert!(e.to_string().contains("not online"), "{e}");
    s.tick(&["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Online);
}

#[test]
fn unlock_goes_through_intest_to_available_and_clears_the_lock_alarm() {
    let mut s = sim();
    s.add("worker-0", Personality::Worker);
    s.tick(&["worker-0"]);
    s.act("worker-0", HostAction::Unlock).unwrap();
    assert_eq!(s.avail("worker-0"), Avail::Intest);
    s.ticks(4, &["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Intest);
    s.ticks(1, &["worker-0"]);
    let st = s.m.status("worker-0").unwrap();
    assert_eq!(
        (st.admin, st.oper, st.avail),
        (Admin::Unlocked, Oper::Enabled, Avail::Available)
    );
    assert!(s.active().is_empty());
}

#[test]
fn a_silent_host_is_degraded_then_failed_with_alarms_in_order() {
    let mut s = sim();
    s.available_worker("worker-0");
    s.log.clear();
    s.ticks(5, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Available, "5 missed: not yet");
    s.tick(&[]);
    assert_eq!(s.avail("worker-0"), Avail::Degraded);
    assert_eq!(s.raised(), [("200.005", Some(Severity::Major))]);
    s.ticks(3, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Degraded);
    s.tick(&[]);
    assert_eq!(s.avail("worker-0"), Avail::Failed);
    assert_eq!(s.m.status("worker-0").unwrap().oper, Oper::Disabled);
    assert_eq!(
        s.raised(),
        [
            ("200.005", Some(Severity::Major)),
            ("200.005", Some(Severity::Critical)),
            ("200.004", Some(Severity::Critical)),
        ]
    );
    assert_eq!(
        s.commands,
        [Command::AgentReboot {
            host: "worker-0".into()
        }]
    );
}

#[test]
fn misses_during_a_handover_hold_are_not_counted() {
    let mut s = sim();
    s.available_worker("worker-0");
    s.available_worker("worker-1");
    s.log.clear();
    // The server handed over: 3 s of silence from both, then worker-0
    // answers again and worker-1 stays silent.
    let until = Timestamp(s.now.micros() + 3_000 * MS);
    s.m.hold_misses_until(until);
    s.ticks(29, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Available);
    assert_eq!(s.avail("worker-1"), Avail::Available);
    assert!(s.log.is_empty(), "{:?}", s.log);
    // Counted from the hold's end: 6 misses degrade, 10 fail.
    s.ticks(5, &["worker-0"]);
    assert_eq!(s.avail("worker-1"), Avail::Available);
    s.tick(&["worker-0"]);
    assert_eq!(s.avail("worker-1"), Avail::Degraded);
    s.ticks(3, &["worker-0"]);
    assert_eq!(s.avail("worker-1"), Avail::Degraded);
    s.tick(&["worker-0"]);
    assert_eq!(s.avail("worker-1"), Avail::Failed);
    assert_eq!(s.avail("worker-0"), Avail::Available);
}

#[test]
fn after_a_handover_an_available_host_carries_on() {
    let mut s = sim();
    s.available_worker("worker-0");
    // The new process: the host is added again, as stored.
    let mut m = Maintenance::new(MtceSettings::default(), false);
    let _ = m.add_host(
        "worker-0",
        Personality::Worker,
        Admin::Unlocked,
        &[Network::Management],
        false,
    );
    assert_eq!(m.status("worker-0").unwrap().avail, Avail::Offline);
    m.hold_misses_until(Timestamp(s.now.micros() + 1_000 * MS));
    m.carry_on("worker-0");
    let st = m.status("worker-0").unwrap();
    assert_eq!((st.oper, st.avail), (Oper::Enabled, Avail::Available));
    // Silent past the hold: failed as usual.
    let mut now = s.now;
    for _ in 0..20 {
        now = Timestamp(now.micros() + 100 * MS);
        let _ = m.tick(now);
    }
    assert_eq!(m.status("worker-0").unwrap().avail, Avail::Failed);
}

#[test]
fn a_failed_host_that_answers_again_recovers_and_its_alarms_clear() {
    let mut s = sim();
    s.available_worker("worker-0");
    s.ticks(12, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Failed);
    s.tick(&["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Intest);
    s.ticks(5, &["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Available);
    assert!(s.active().is_empty(), "{:?}", s.active());
}

#[test]
fn recovery_escalates_to_the_bmc_with_throttled_retries() {
    let settings = MtceSettings {
        bmc_reset_delay_secs: 5,
        bmc_retry_interval_secs: 3,
        bmc_reset_retries: 2,
        ..Default::default()
    };
    let mut s = Sim::new(settings, false);
    s.available_worker("worker-0");
    s.m.set_bmc_configured("worker-0", true);
    s.ticks(10, &[]);
    assert_eq!(s.commands.len(), 1, "first the agent is asked");
    // 5 s later: the first BMC reset.
    s.ticks(50, &[]);
    let resets = |s: &Sim| {
        s.commands
            .iter()
            .filter(|c| matches!(c, Command::BmcReset { .. }))
            .count()
    };
    assert_eq!(resets(&s), 1);
    s.ticks(29, &[]);
    assert_eq!(resets(&s), 1, "retries wait their interval");
    s.ticks(2, &[]);
    assert_eq!(resets(&s), 2);
    s.ticks(100, &[]);
    assert_eq!(resets(&s), 2, "no more than the configured retries");
    // The BMC refusing raises 200.010; succeeding clears it.
    let fx = s.m.bmc_result("worker-0", false, "connection refused");
    s.take(fx);
    assert!(s.active().iter().any(|a| a.0 == "200.010"));
    let fx = s.m.bmc_result("worker-0", true, "");
    s.take(fx);
    assert!(!s.active().iter().any(|a| a.0 == "200.010"));
    // The host comes back.
    s.ticks(6, &["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Available);
    assert!(s.active().is_empty(), "{:?}", s.active());
}

#[test]
fn without_a_bmc_recovery_waits_for_the_host() {
    let settings = MtceSettings {
        bmc_reset_delay_secs: 1,
        ..Default::default()
    };
    let mut s = Sim::new(settings, false);
    s.available_worker("worker-0");
    s.ticks(100, &[]);
    assert_eq!(s.commands.len(), 1);
    assert_eq!(s.avail("worker-0"), Avail::Failed);
}

#[test]
fn a_host_flapping_below_the_degrade_threshold_never_alarms() {
    let mut s = sim();
    s.available_worker("worker-0");
    s.log.clear();
    for _ in 0..50 {
        s.ticks(5, &[]);
        s.tick(&["worker-0"]);
    }
    assert!(s.log.is_empty(), "{:?}", s.log);
    assert_eq!(s.avail("worker-0"), Avail::Available);
}

#[test]
fn a_host_flapping_at_the_degrade_threshold_never_fails_and_its_alarms_pair_up() {
    let mut s = sim();
    s.available_worker("worker-0");
    s.log.clear();
    for _ in 0..20 {
        s.ticks(7, &[]);
        s.tick(&["worker-0"]);
    }
    assert!(s.commands.is_empty());
    assert!(!s.log.iter().any(|a| a.alarm_id == "200.004"));
    let raises = s.log.iter().filter(|a| a.severity.is_some()).count();
    let clears = s.log.iter().filter(|a| a.severity.is_none()).count();
    assert_eq!(raises, 20);
    assert_eq!(clears, 20);
    assert!(s.active().is_empty());
}

#[test]
fn several_hosts_losing_heartbeat_together_are_held_not_failed() {
    let mut s = sim();
    for h in ["worker-0", "worker-1", "worker-2"] {
        s.available_worker(h);
    }
    s.log.clear();
    s.ticks(15, &["worker-2"]);
    assert!(s.m.mnfa_active());
    for h in ["worker-0", "worker-1"] {
        assert_eq!(s.avail(h), Avail::Degraded, "{h} held");
        assert!(s.m.status(h).unwrap().held);
    }
    assert_eq!(s.avail("worker-2"), Avail::Available);
    assert!(s.commands.is_empty(), "nobody is rebooted");
    assert!(!s.log.iter().any(|a| a.alarm_id == "200.004"));
    let held_alarm = s
        .log
        .iter()
        .find(|a| a.severity == Some(Severity::Critical))
        .unwrap();
    assert!(
        held_alarm.reason_text.contains("graceful recovery"),
        "{}",
        held_alarm.reason_text
    );
    // They come back.
    s.ticks(7, &["worker-0", "worker-1", "worker-2"]);
    assert!(!s.m.mnfa_active());
    for h in ["worker-0", "worker-1"] {
        assert_eq!(s.avail(h), Avail::Available, "{h}");
    }
    assert!(s.active().is_empty(), "{:?}", s.active());
}

#[test]
fn a_single_host_failing_is_not_a_multi_node_event() {
    let mut s = sim();
    s.available_worker("worker-0");
    s.available_worker("worker-1");
    s.ticks(10, &["worker-1"]);
    assert!(!s.m.mnfa_active());
    assert_eq!(s.avail("worker-0"), Avail::Failed);
}

#[test]
fn held_hosts_fail_when_the_mnfa_timeout_expires() {
    let settings = MtceSettings {
        mnfa_timeout_secs: 100,
        ..Default::default()
    };
    let mut s = Sim::new(settings, false);
    s.available_worker("worker-0");
    s.available_worker("worker-1");
    s.ticks(20, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Degraded);
    s.ticks(1000, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Failed);
    assert_eq!(s.avail("worker-1"), Avail::Failed);
    assert_eq!(s.commands.len(), 2);
}

#[test]
fn the_failure_action_decides_what_a_lost_heartbeat_does() {
    for (action, want_avail, want_failed_alarm) in [
        (FailureAction::Degrade, Avail::Degraded, false),
        (FailureAction::Alarm, Avail::Available, false),
        (FailureAction::None, Avail::Available, false),
    ] {
        let settings = MtceSettings {
            heartbeat_failure_action: action,
            ..Default::default()
        };
        let mut s = Sim::new(settings, false);
        s.available_worker("worker-0");
        s.log.clear();
        s.ticks(15, &[]);
        assert_eq!(s.avail("worker-0"), want_avail, "{action}");
        assert_eq!(
            s.log.iter().any(|a| a.alarm_id == "200.004"),
            want_failed_alarm,
            "{action}"
        );
        assert!(s.commands.is_empty(), "{action}");
        let hb_alarms = s.log.iter().filter(|a| a.alarm_id == "200.005").count();
        if action == FailureAction::None {
            assert_eq!(hb_alarms, 0);
        } else {
            assert_eq!(hb_alarms, 2, "{action}: major then critical");
        }
    }
}

#[test]
fn lock_and_swact_follow_starlingx_rules() {
    // Simplex: the only controller may be locked; swact is refused.
    let mut sx = Sim::new(MtceSettings::default(), true);
    let fx = sx.m.add_host(
        "controller-0",
        Personality::Controller,
        Admin::Unlocked,
        &[],
        true,
    );
    sx.take(fx);
    assert_eq!(sx.avail("controller-0"), Avail::Available);
    let e = sx.act("controller-0", HostAction::Swact).unwrap_err();
    assert!(e.to_string().contains("simplex"), "{e}");
    sx.act("controller-0", HostAction::Lock).unwrap();
    assert_eq!(sx.m.status("controller-0").unwrap().admin, Admin::Locked);
    assert!(
        sx.act("controller-0", HostAction::Lock).is_err(),
        "already locked"
    );
    sx.act("controller-0", HostAction::Unlock).unwrap();
    assert_eq!(sx.avail("controller-0"), Avail::Available);

    // Duplex: the active controller cannot be locked; swact needs an enabled peer.
    let mut dx = sim();
    let fx = dx.m.add_host(
        "controller-0",
        Personality::Controller,
        Admin::Unlocked,
        &[],
        true,
    );
    dx.take(fx);
    let e = dx.act("controller-0", HostAction::Lock).unwrap_err();
    assert!(e.to_string().contains("active controller"), "{e}");
    let e = dx.act("controller-0", HostAction::Swact).unwrap_err();
    assert!(e.to_string().contains("peer"), "{e}");
    dx.add("controller-1", Personality::Controller);
    dx.ticks(2, &["controller-1"]);
    dx.act("controller-1", HostAction::Unlock).unwrap();
    dx.ticks(6, &["controller-1"]);
    let fx = dx.act("controller-0", HostAction::Swact).unwrap();
    assert_eq!(
        fx.commands,
        [Command::Swact {
            from: "controller-0".into(),
            to: "controller-1".into()
        }]
    );
    assert!(dx.m.status("controller-1").unwrap().active_controller);
    dx.act("controller-0", HostAction::Lock).unwrap();
    assert!(dx.act("controller-1", HostAction::Swact).is_err());
}

#[test]
fn reboot_reset_and_power_need_a_locked_host_and_a_bmc() {
    let mut s = sim();
    s.available_worker("worker-0");
    assert!(s.act("worker-0", HostAction::Reboot).is_err());
    s.act("worker-0", HostAction::Lock).unwrap();
    assert_eq!(s.avail("worker-0"), Avail::Online);
    assert!(s.act("worker-0", HostAction::Reset).is_err(), "no BMC");
    let fx = s.act("worker-0", HostAction::Reboot).unwrap();
    assert_eq!(
        fx.commands,
        [Command::AgentReboot {
            host: "worker-0".into()
        }]
    );
    assert_eq!(s.m.status("worker-0").unwrap().task, "Rebooting");
    // Down while rebooting: offline, no alarms beyond the lock.
    s.ticks(12, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Offline);
    s.tick(&["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Online);
    assert_eq!(s.m.status("worker-0").unwrap().task, "");
    assert_eq!(
        s.active(),
        [("200.001".into(), "host=worker-0".into(), Severity::Warning)]
    );

    s.m.set_bmc_configured("worker-0", true);
    let fx = s.act("worker-0", HostAction::PowerOff).unwrap();
    assert_eq!(
        fx.commands,
        [Command::BmcPowerOff {
            host: "worker-0".into()
        }]
    );
    assert_eq!(s.avail("worker-0"), Avail::PowerOff);
    assert!(
        s.m.pulse_targets().is_empty(),
        "powered-off hosts are not pulsed"
    );
    s.act("worker-0", HostAction::PowerOn).unwrap();
    assert_eq!(s.avail("worker-0"), Avail::Offline);
    s.tick(&["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Online);
}

#[test]
fn process_failures_fail_or_degrade_by_severity() {
    let mut s = sim();
    s.available_worker("worker-0");
    let fx =
        s.m.process_failure("worker-0", "sshd", Some(Severity::Major), s.now);
    s.take(fx);
    assert_eq!(s.avail("worker-0"), Avail::Degraded);
    assert!(
        s.active()
            .iter()
            .any(|a| a.1 == "host=worker-0.process=sshd")
    );
    let fx = s.m.process_failure("worker-0", "sshd", None, s.now);
    s.take(fx);
    assert_eq!(s.avail("worker-0"), Avail::Available);
    let fx =
        s.m.process_failure("worker-0", "kubelet", Some(Severity::Critical), s.now);
    s.take(fx);
    assert_eq!(s.avail("worker-0"), Avail::Failed);
    assert!(s.commands.contains(&Command::AgentReboot {
        host: "worker-0".into()
    }));
    let fx = s.m.process_failure("worker-0", "kubelet", None, s.now);
    s.take(fx);
    s.ticks(6, &["worker-0"]);
    assert_eq!(s.avail("worker-0"), Avail::Available);
    assert!(s.active().is_empty(), "{:?}", s.active());
}

#[test]
fn locking_a_failed_host_stops_recovery_and_clears_failure_alarms() {
    let mut s = sim();
    s.available_worker("worker-0");
    s.ticks(12, &[]);
    assert_eq!(s.avail("worker-0"), Avail::Failed);
    s.act("worker-0", HostAction::ForceLock).unwrap();
    assert_eq!(s.avail("worker-0"), Avail::Offline);
    assert_eq!(
        s.active(),
        [("200.001".into(), "host=worker-0".into(), Severity::Warning)]
    );
}

#[test]
fn detection_time_is_the_period_times_the_threshold() {
    // With a 20 ms period and threshold 10, the host fails on the 10th silent period.
    let settings = MtceSettings {
        heartbeat_period_ms: 20,
        ..Default::default()
    };
    let mut s = Sim::new(settings, false);
    s.available_worker("worker-0");
    let mut n = 0;
    while s.avail("worker-0") != Avail::Failed {
        s.tick(&[]);
        n += 1;
        assert!(n < 100);
    }
    assert_eq!(n, 10);
}

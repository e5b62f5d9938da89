//! Host maintenance: X.731 states, host actions and their rules, heartbeat
//! failure detection, multi-node failure avoidance (MNFA) and recovery.
//!
//! [`Maintenance`] is fed inputs (a pulse answered, a period elapsed, a host
//! action, a BMC result, a process failure) with the current time, and
//! returns [`Effects`]: alarms to raise or clear, commands to carry out
//! (reboot through the agent, reset through the BMC), and the hosts whose
//! state changed. It never sleeps and never does I/O.

use std::collections::BTreeMap;
use std::fmt;

use roost_types::{Severity, Timestamp};

use crate::Error;
use crate::settings::{FailureAction, MtceSettings};

/// Alarm: host locked.
pub const ALARM_LOCKED: &str = "200.001";
/// Alarm: host failed.
pub const ALARM_FAILED: &str = "200.004";
/// Alarm: heartbeat degraded or lost on the management network.
pub const ALARM_HB_MGMT: &str = "200.005";
/// Alarm: monitored process failure.
pub const ALARM_PROCESS: &str = "200.006";
/// Alarm: heartbeat degraded or lost on the cluster-host network.
pub const ALARM_HB_CLUSTER: &str = "200.009";
/// Alarm: BMC access failed.
pub const ALARM_BMC: &str = "200.010";

/// A heartbeat network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Network {
    Management = 0,
    Cluster = 1,
}

impl Network {
    pub fn from_index(i: u8) -> Option<Network> {
        match i {
            0 => Some(Network::Management),
            1 => Some(Network::Cluster),
            _ => None,
        }
    }

    fn alarm(self) -> &'static str {
        match self {
            Network::Management => ALARM_HB_MGMT,
            Network::Cluster => ALARM_HB_CLUSTER,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Network::Management => "Management",
            Network::Cluster => "Cluster-host",
        }
    }
}

macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            /// StarlingX's spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            /// Parses StarlingX's spelling.
            pub fn parse(s: &str) -> Option<Self> { match s { $($text => Some($name::$variant),)+ _ => None } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

words!(
    /// A host's role.
    Personality { Controller => "controller", Worker => "worker", Storage => "storage", Edgeworker => "edgeworker" }
);
words!(
    /// X.731 administrative state.
    Admin { Locked => "locked", Unlocked => "unlocked" }
);
words!(
    /// X.731 operational state.
    Oper { Enabled => "enabled", Disabled => "disabled" }
);
words!(
    /// X.731 availability status.
    Avail {
        Available => "available", Intest => "intest", Offline => "offline", Online => "online",
        Degraded => "degraded", Failed => "failed", PowerOff => "power-off", Offduty => "offduty",
        NotInstalled => "not-installed",
    }
);
words!(
    /// An action on a host, as StarlingX's `/action` patch names it.
    HostAction {
        Lock => "lock", ForceLock => "force-lock", Unlock => "unlock", ForceUnlock => "force-unlock",
        Swact => "swact", ForceSwact => "force-swact", Reboot => "reboot", Reset => "reset",
        PowerOn => "power-on", PowerOff => "power-off",
    }
);

/// Something the caller must carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Ask the host's agent to reboot.
    AgentReboot {
        host: String,
    },
    /// Power-cycle the host through its BMC (`attempt` counts from 1).
    BmcReset {
        host: String,
        attempt: u32,
    },
    BmcPowerOn {
        host: String,
    },
    BmcPowerOff {
        host: String,
    },
    /// Hand the active controller role from one host to the other.
    Swact {
        from: String,
        to: String,
    },
}

/// An alarm to raise (with a severity) or clear (without).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmOut {
    pub alarm_id: &'static str,
    pub entity_instance_id: String,
    pub severity: Option<Severity>,
    pub reason_text: String,
}

/// What an input caused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub alarms: Vec<AlarmOut>,
    pub commands: Vec<Command>,
    /// Hosts whose states changed (to persist and publish).
    pub changed: Vec<String>,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.alarms.extend(other.alarms);
        self.commands.extend(other.commands);
        for h in other.changed {
            if !self.changed.contains(&h) {
                self.changed.push(h);
            }
        }
    }

    fn raise(&mut self, id: &'static str, host: &str, sev: Severity, reason: String) {
        self.alarms.push(AlarmOut {
            alarm_id: id,
            entity_instance_id: format!("host={host}"),
            severity: Some(sev),
            reason_text: reason,
        });
    }

    fn clear(&mut self, id: &'static str, host: &str) {
        self.alarms.push(AlarmOut {
            alarm_id: id,
            entity_instance_id: format!("host={host}"),
            severity: None,
            reason_text: String::new(),
        });
    }

    fn touch(&mut self, host: &str) {
        if !self.changed.iter().any(|h| h == host) {
            self.changed.push(host.to_string());
        }
    }
}

/// Heartbeat health of one link or host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pulse {
    Ok,
    Degraded,
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    Idle,
    /// Asked the agent to reboot at this time.
    AskedAgent(Timestamp),
    /// Reset through the BMC `attempt` times; the next try is due at the time.
    BmcReset {
        attempt: u32,
        next: Timestamp,
    },
    /// Out of tries: wait for the host (or a person).
    GaveUp,
}

#[derive(Debug, Clone)]
struct Link {
    /// A response arrived during the current period.
    answered: bool,
    /// The link has answered at least once since the host was added or powered on.
    seen: bool,
    missed: u32,
    health: Pulse,
}

impl Link {
    fn new() -> Link {
        Link {
            answered: false,
            seen: false,
            missed: 0,
            health: Pulse::Ok,
        }
    }
}

/// One host as maintenance sees it.
#[derive(Debug, Clone)]
struct Host {
    personality: Personality,
    admin: Admin,
    oper: Oper,
    avail: Avail,
    task: String,
    /// Runs in the server's own process: always reachable, never pulsed.
    local: bool,
    active_controller: bool,
    links: BTreeMap<Network, Link>,
    /// Held by multi-node failure avoidance.
    held: bool,
    failed: bool,
    recovery: Recovery,
    intest_good: u32,
    process_failures: BTreeMap<String, Severity>,
    bmc_configured: bool,
    bmc_alarm: bool,
    powered_off: bool,
}

impl Host {
    fn pulse(&self) -> Pulse {
        if self.local {
            return Pulse::Ok;
        }
        self.links
            .values()
            .map(|l| l.health)
            .max()
            .unwrap_or(Pulse::Ok)
    }

    fn reachable(&self) -> bool {
        self.local
            || (!self.powered_off
                && self.pulse() != Pulse::Lost
                && self.links.values().any(|l| l.seen))
    }

    fn worst_process(&self) -> Option<Severity> {
        self.process_failures
            .values()
            .min_by_key(|s| s.rank())
            .copied()
    }
}

/// A read-only view of a host's states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub personality: Personality,
    pub admin: Admin,
    pub oper: Oper,
    pub avail: Avail,
    pub task: String,
    pub held: bool,
    pub active_controller: bool,
}

/// Maintenance of every host of one cloud.
#[derive(Debug, Clone)]
pub struct Maintenance {
    settings: MtceSettings,
    hosts: BTreeMap<String, Host>,
    mnfa_since: Option<Timestamp>,
    simplex: bool,
    /// Missed pulses are not counted before this time.
    hold_until: Option<Timestamp>,
}

impl Maintenance {
    /// `simplex` is true for an All-in-One Simplex system.
    pub fn new(settings: MtceSettings, simplex: bool) -> Maintenance {
        Maintenance {
            settings,
            hosts: BTreeMap::new(),
            mnfa_since: None,
            simplex,
            hold_until: None,
        }
    }

    /// After a handover to a new server process: unlocked host `name`,
    /// enabled and available in the previous process, carries on so (its
    /// links counted as answering) instead of starting offline and going
    /// through its tests again. Pulses missed once the hold is over fail it
    /// as usual. Other hosts are left as they are.
    pub fn carry_on(&mut self, name: &str) {
        if let Some(h) = self.hosts.get_mut(name)
            && !h.local
            && h.admin == Admin::Unlocked
        {
            h.oper = Oper::Enabled;
            h.avail = Avail::Available;
            for l in h.links.values_mut() {
                l.seen = true;
            }
        }
    }

    /// Pulses missed before `until` are not counted: the agents were told
    /// the server hands over to a new process and hold until then, so a
    /// silence before it says nothing about a host.
    pub fn hold_misses_until(&mut self, until: Timestamp) {
        self.hold_until = Some(until);
    }

    pub fn settings(&self) -> &MtceSettings {
        &self.settings
    }

    /// Replaces the settings; counters carry on under the new thresholds.
    pub fn set_settings(&mut self, settings: MtceSettings) {
        self.settings = settings;
    }

    pub fn is_simplex(&self) -> bool {
        self.simplex
    }

    /// True while multi-node failure avoidance holds hosts.
    pub fn mnfa_active(&self) -> bool {
        self.mnfa_since.is_some()
    }

    /// Adds a host. `local` hosts run in the server's process (AIO-SX
    /// controller-0). A remote host starts locked and offline until it
    /// answers; a host restored from the store keeps its administrative state.
    pub fn add_host(
        &mut self,
        name: &str,
        personality: Personality,
        admin: Admin,
        networks: &[Network],
        local: bool,
    ) -> Effects {
        let mut fx = Effects::default();
        let active = personality == Personality::Controller
            && !self.hosts.values().any(|h| h.active_controller);
        let host = Host {
            personality,
            admin,
            oper: if local && admin == Admin::Unlocked {
                Oper::Enabled
            } else {
                Oper::Disabled
            },
            avail: if local {
                if admin == Admin::Unlocked {
                    Avail::Available
                } else {
                    Avail::Online
                }
            } else {
                Avail::Offline
            },
            task: String::new(),
            local,
            active_controller: active,
            links: networks.iter().map(|n| (*n, Link::new())).collect(),
            held: false,
            failed: false,
            recovery: Recovery::Idle,
            intest_good: 0,
            process_failures: BTreeMap::new(),
            bmc_configured: false,
            bmc_alarm: false,
            powered_off: false,
        };
        if admin == Admin::Locked {
            fx.raise(
                ALARM_LOCKED,
                name,
                Severity::Warning,
                format!("{name} was administratively locked to take it out of service."),
            );
        }
        self.hosts.insert(name.to_string(), host);
        fx.touch(name);
        fx
    }

    /// Forgets a host. The caller clears every alarm under `host=<name>`.
    pub fn remove_host(&mut self, name: &str) -> bool {
        self.hosts.remove(name).is_some()
    }

    /// States of a host.
    pub fn status(&self, name: &str) -> Option<HostStatus> {
        self.hosts.get(name).map(|h| HostStatus {
            personality: h.personality,
            admin: h.admin,
            oper: h.oper,
            avail: h.avail,
            task: h.task.clone(),
            held: h.held,
            active_controller: h.active_controller,
        })
    }

    /// Names of hosts to pulse: remote, not powered off.
    pub fn pulse_targets(&self) -> Vec<(String, Vec<Network>)> {
        self.hosts
            .iter()
            .filter(|(_, h)| !h.local && !h.powered_off)
            .map(|(n, h)| (n.clone(), h.links.keys().copied().collect()))
            .collect()
    }

    /// Sets the heartbeat networks of a host (the management network always,
    /// the cluster-host network when the host has one). New links start
    /// unseen; links no longer wanted are dropped with their alarms.
    pub fn set_networks(&mut self, name: &str, networks: &[Network]) -> Effects {
        let mut fx = Effects::default();
        if let Some(h) = self.hosts.get_mut(name) {
            if h.local {
                return fx;
            }
            let gone: Vec<Network> = h
                .links
                .keys()
                .filter(|n| !networks.contains(n))
                .copied()
                .collect();
            for n in gone {
                h.links.remove(&n);
                fx.clear(n.alarm(), name);
            }
            for n in networks {
                h.links.entry(*n).or_insert_with(Link::new);
            }
        }
        fx
    }

    /// Records whether a host has BMC settings.
    pub fn set_bmc_configured(&mut self, name: &str, configured: bool) {
        if let Some(h) = self.hosts.get_mut(name) {
            h.bmc_configured = configured;
        }
    }

    /// A valid pulse response arrived from `host` on `net`.
    pub fn pulse_answered(&mut self, host: &str, net: Network) {
        if let Some(l) = self.hosts.get_mut(host).and_then(|h| h.links.get_mut(&net)) {
            l.answered = true;
            l.seen = true;
        }
    }

    /// The result of talking to a host's BMC.
    pub fn bmc_result(&mut self, name: &str, ok: bool, detail: &str) -> Effects {
        let mut fx = Effects::default();
        if let Some(h) = self.hosts.get_mut(name) {
            if !ok && !h.bmc_alarm {
                h.bmc_alarm = true;
                fx.raise(
                    ALARM_BMC,
                    name,
                    Severity::Warning,
                    format!("Access to the board management controller of {name} failed: {detail}"),
                );
            } else if ok && h.bmc_alarm {
                h.bmc_alarm = false;
                fx.clear(ALARM_BMC, name);
            }
        }
        fx
    }

    /// A monitored process of `host` failed (Some) or recovered (None).
    /// Critical fails an unlocked host, major degrades it.
    pub fn process_failure(
        &mut self,
        name: &str,
        process: &str,
        severity: Option<Severity>,
        now: Timestamp,
    ) -> Effects {
        let mut fx = Effects::default();
        let Some(h) = self.hosts.get_mut(name) else {
            return fx;
        };
        let entity = format!("host={name}.process={process}");
        match severity {
            Some(s) => {
                h.process_failures.insert(process.to_string(), s);
                fx.alarms.push(AlarmOut {
                    alarm_id: ALARM_PROCESS,
                    entity_instance_id: entity,
                    severity: Some(s),
                    reason_text: format!("Monitored process {process} on {name} has failed and could not be recovered."),
                });
            }
            None => {
                if h.process_failures.remove(process).is_some() {
                    fx.alarms.push(AlarmOut {
                        alarm_id: ALARM_PROCESS,
                        entity_instance_id: entity,
                        severity: None,
                        reason_text: String::new(),
                    });
                }
            }
        }
        fx.merge(self.reevaluate(name, now));
        fx
    }

    /// Applies a host action with StarlingX's rules.
    pub fn action(
        &mut self,
        name: &str,
        action: HostAction,
        now: Timestamp,
    ) -> Result<Effects, Error> {
        let simplex = self.simplex;
        let peer_enabled = |me: &str, hosts: &BTreeMap<String, Host>| {
            hosts.iter().any(|(n, h)| {
                n != me
                    && h.personality == Personality::Controller
                    && h.admin == Admin::Unlocked
                    && h.oper == Oper::Enabled
            })
        };
        let other_controllers = self
            .hosts
            .iter()
            .filter(|(n, h)| n.as_str() != name && h.personality == Personality::Controller)
            .count();
        let h = self
            .hosts
            .get(name)
            .ok_or_else(|| Error::UnknownHost(name.to_string()))?;
        let refuse = |m: String| Err(Error::Refused(m));
        match action {
            HostAction::Lock | HostAction::ForceLock => {
                if h.admin == Admin::Locked {
                    return refuse(format!("{name} is already locked"));
                }
                if h.personality == Personality::Controller && !simplex {
                    if h.active_controller {
                        return refuse(format!(
                            "cannot lock {name}: it is the active controller; swact first"
                        ));
                    }
                    if other_controllers == 0 {
                        return refuse(format!("cannot lock {name}: it is the only controller"));
                    }
                }
            }
            HostAction::Unlock | HostAction::ForceUnlock => {
                if h.admin == Admin::Unlocked {
                    return refuse(format!("{name} is already unlocked"));
                }
                if !h.reachable() {
                    return refuse(format!(
                        "cannot unlock {name}: it is not online (its agent does not answer)"
                    ));
                }
            }
            HostAction::Swact | HostAction::ForceSwact => {
                if simplex {
                    return refuse(format!(
                        "cannot swact {name}: a simplex system has no standby controller"
                    ));
                }
                if h.personality != Personality::Controller || !h.active_controller {
                    return refuse(format!(
                        "cannot swact {name}: it is not the active controller"
                    ));
                }
                if !peer_enabled(name, &self.hosts) {
                    return refuse(format!(
                        "cannot swact {name}: the peer controller is not unlocked and enabled"
                    ));
                }
            }
            HostAction::Reboot | HostAction::Reset | HostAction::PowerOff => {
                if h.admin != Admin::Locked && !h.local {
                    return refuse(format!("cannot {action} {name}: lock it first"));
                }
                if h.local {
                    return refuse(format!(
                        "cannot {action} {name}: it runs this server; restart the server instead"
                    ));
                }
                if matches!(action, HostAction::Reset | HostAction::PowerOff) && !h.bmc_configured {
                    return refuse(format!(
                        "cannot {action} {name}: it has no board management controller configured"
                    ));
                }
            }
            HostAction::PowerOn => {
                if !h.bmc_configured {
                    return refuse(format!(
                        "cannot power-on {name}: it has no board management controller configured"
                    ));
                }
                if !h.powered_off && h.reachable() {
                    return refuse(format!("{name} is already powered on"));
                }
            }
        }
        let mut fx = Effects::default();
        let h = self.hosts.get_mut(name).expect("checked above");
        match action {
            HostAction::Lock | HostAction::ForceLock => {
                h.admin = Admin::Locked;
                h.failed = false;
                h.held = false;
                h.recovery = Recovery::Idle;
                fx.raise(
                    ALARM_LOCKED,
                    name,
                    Severity::Warning,
                    format!("{name} was administratively locked to take it out of service."),
                );
                fx.clear(ALARM_FAILED, name);
                for net in h.links.keys() {
                    fx.clear(net.alarm(), name);
                }
            }
            HostAction::Unlock | HostAction::ForceUnlock => {
                h.admin = Admin::Unlocked;
                h.intest_good = 0;
                fx.clear(ALARM_LOCKED, name);
            }
            HostAction::Swact | HostAction::ForceSwact => {
                let to = self
                    .hosts
                    .iter()
                    .find(|(n, o)| {
                        n.as_str() != name
                            && o.personality == Personality::Controller
                            && o.oper == Oper::Enabled
                    })
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                if let Some(me) = self.hosts.get_mut(name) {
                    me.active_controller = false;
                }
                if let Some(peer) = self.hosts.get_mut(&to) {
                    peer.active_controller = true;
                }
                fx.commands.push(Command::Swact {
                    from: name.to_string(),
                    to: to.clone(),
                });
                fx.touch(&to);
            }
            HostAction::Reboot => {
                h.task = "Rebooting".into();
                fx.commands.push(Command::AgentReboot {
                    host: name.to_string(),
                });
            }
            HostAction::Reset => {
                h.task = "Resetting".into();
                fx.commands.push(Command::BmcReset {
                    host: name.to_string(),
                    attempt: 1,
                });
            }
            HostAction::PowerOff => {
                h.task = "Powering-off".into();
                h.powered_off = true;
                fx.commands.push(Command::BmcPowerOff {
                    host: name.to_string(),
                });
            }
            HostAction::PowerOn => {
                h.task = "Powering-on".into();
                h.powered_off = false;
                for l in h.links.values_mut() {
                    *l = Link::new();
                }
                fx.commands.push(Command::BmcPowerOn {
                    host: name.to_string(),
                });
            }
        }
        fx.merge(self.reevaluate(name, now));
        fx.touch(name);
        Ok(fx)
    }

    /// One heartbeat period has passed: count missed pulses, move hosts
    /// between states, run MNFA and the recovery timers.
    pub fn tick(&mut self, now: Timestamp) -> Effects {
        let mut fx = Effects::default();
        let s = self.settings.clone();
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        let holding = self.hold_until.is_some_and(|t| now < t);
        // 1. Links.
        let mut link_changes = Vec::new();
        for name in &names {
            let h = self.hosts.get_mut(name).expect("listed");
            if h.local || h.powered_off {
                continue;
            }
            let mut all_good = true;
            for (net, l) in h.links.iter_mut() {
                if l.answered {
                    l.missed = 0;
                } else if holding {
                    all_good = false;
                } else {
                    l.missed = l.missed.saturating_add(1);
                    all_good = false;
                }
                l.answered = false;
                let health = if l.missed >= s.heartbeat_failure_threshold {
                    Pulse::Lost
                } else if l.missed >= s.heartbeat_degrade_threshold {
                    Pulse::Degraded
                } else if l.missed == 0 {
                    Pulse::Ok
                } else {
                    l.health
                };
                if health != l.health {
                    link_changes.push((name.clone(), *net, l.health, health, l.missed));
                    l.health = health;
                }
            }
            if all_good && h.avail == Avail::Intest {
                h.intest_good = h.intest_good.saturating_add(1);
            }
        }
        // 2. MNFA: enough unlocked hosts losing heartbeat together.
        let losing = self
            .hosts
            .values()
            .filter(|h| {
                h.admin == Admin::Unlocked && !h.local && !h.failed && h.pulse() != Pulse::Ok
            })
            .count() as u32;
        if self.mnfa_since.is_none() && losing >= s.mnfa_threshold {
            self.mnfa_since = Some(now);
        }
        let mnfa_expired = match self.mnfa_since {
            Some(since) if s.mnfa_timeout_secs > 0 => {
                now.micros() - since.micros() >= i64::from(s.mnfa_timeout_secs) * 1_000_000
            }
            _ => false,
        };
        // 3. Link alarms.
        for (name, net, _from, to, missed) in link_changes {
            let h = &self.hosts[&name];
            if h.admin != Admin::Unlocked || s.heartbeat_failure_action == FailureAction::None {
                if to == Pulse::Ok {
                    fx.clear(net.alarm(), &name);
                }
                continue;
            }
            match to {
                Pulse::Ok => fx.clear(net.alarm(), &name),
                Pulse::Degraded => fx.raise(
                    net.alarm(),
                    &name,
                    Severity::Major,
                    format!(
                        "{name} is missing heartbeats on the {} network ({missed} in a row); degraded",
                        net.label()
                    ),
                ),
                Pulse::Lost => {
                    let held = self.mnfa_since.is_some() && !mnfa_expired;
                    fx.raise(
                        net.alarm(),
                        &name,
                        Severity::Critical,
                        if held {
                            format!(
                                "{name} lost heartbeat on the {} network; several hosts lost it together, so it is held in graceful recovery (multi-node failure avoidance) instead of being failed",
                                net.label()
                            )
                        } else {
                            format!(
                                "{name} lost heartbeat on the {} network ({missed} pulses missed)",
                                net.label()
                            )
                        },
                    );
                }
            }
        }
        // 4. Host states and recovery.
        for name in &names {
            fx.merge(self.reevaluate_with(name, now, mnfa_expired));
        }
        // 5. MNFA ends when no unlocked host is losing heartbeat any more.
        if self.mnfa_since.is_some() {
            let still = self.hosts.values().any(|h| {
                h.admin == Admin::Unlocked
                    && !h.local
                    && !h.failed
                    && (h.held || h.pulse() != Pulse::Ok)
            });
            if !still {
                self.mnfa_since = None;
                for h in self.hosts.values_mut() {
                    h.held = false;
                }
            }
        }
        fx
    }

    fn reevaluate(&mut self, name: &str, now: Timestamp) -> Effects {
        self.reevaluate_with(name, now, false)
    }

    /// Derives a host's states from its conditions, and drives recovery.
    fn reevaluate_with(&mut self, name: &str, now: Timestamp, mnfa_expired: bool) -> Effects {
        let mut fx = Effects::default();
        let s = self.settings.clone();
        let mnfa = self.mnfa_since.is_some() && !mnfa_expired;
        let Some(h) = self.hosts.get_mut(name) else {
            return fx;
        };
        let before = (h.admin, h.oper, h.avail, h.task.clone());
        let pulse = h.pulse();
        let process = h.worst_process();
        if h.admin == Admin::Locked {
            h.oper = Oper::Disabled;
            h.avail = if h.powered_off {
                Avail::PowerOff
            } else if h.reachable() {
                Avail::Online
            } else {
                Avail::Offline
            };
            // A reboot or power-on is over once the host answers again.
            if h.avail == Avail::Online && before.2 != Avail::Online {
                h.task.clear();
            }
        } else {
            let hb_fail = pulse == Pulse::Lost && s.heartbeat_failure_action == FailureAction::Fail;
            let process_fail = process == Some(Severity::Critical);
            if (hb_fail || process_fail) && !h.failed {
                if hb_fail && mnfa && !process_fail {
                    h.held = true;
                } else {
                    h.failed = true;
                    h.held = false;
                    fx.raise(
                        ALARM_FAILED,
                        name,
                        Severity::Critical,
                        if process_fail {
                            format!("{name} failed: a critical process could not be recovered; it is being rebooted")
                        } else {
                            format!("{name} failed: it stopped answering heartbeats; it is being rebooted")
                        },
                    );
                    h.recovery = Recovery::AskedAgent(now);
                    fx.commands.push(Command::AgentReboot {
                        host: name.to_string(),
                    });
                }
            }
            if h.failed {
                let back = pulse == Pulse::Ok && !process_fail && h.reachable();
                if back {
                    h.failed = false;
                    h.recovery = Recovery::Idle;
                    h.intest_good = 0;
                    h.avail = Avail::Intest;
                } else {
                    h.avail = Avail::Failed;
                    // Recovery timers.
                    match h.recovery {
                        Recovery::AskedAgent(at)
                            if h.bmc_configured
                                && now.micros() - at.micros()
                                    >= i64::from(s.bmc_reset_delay_secs) * 1_000_000 =>
                        {
                            if s.bmc_reset_retries == 0 {
                                h.recovery = Recovery::GaveUp;
                            } else {
                                h.recovery = Recovery::BmcReset {
                                    attempt: 1,
                                    next: now.plus_secs(i64::from(s.bmc_retry_interval_secs)),
                                };
                                fx.commands.push(Command::BmcReset {
                                    host: name.to_string(),
                                    attempt: 1,
                                });
                            }
                        }
                        Recovery::BmcReset { attempt, next } if now >= next => {
                            if attempt >= s.bmc_reset_retries {
                                h.recovery = Recovery::GaveUp;
                            } else {
                                h.recovery = Recovery::BmcReset {
                                    attempt: attempt + 1,
                                    next: now.plus_secs(i64::from(s.bmc_retry_interval_secs)),
                                };
                                fx.commands.push(Command::BmcReset {
                                    host: name.to_string(),
                                    attempt: attempt + 1,
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            if h.held && pulse == Pulse::Ok {
                h.held = false;
                h.intest_good = 0;
                h.avail = Avail::Intest;
            }
            if !h.failed {
                let degraded = pulse != Pulse::Ok
                    && s.heartbeat_failure_action != FailureAction::Alarm
                    && s.heartbeat_failure_action != FailureAction::None
                    || process == Some(Severity::Major)
                    || h.held;
                if !h.reachable() && !h.held && pulse == Pulse::Ok {
                    // Never answered since it was added or powered on.
                    h.avail = Avail::Offline;
                } else if h.avail == Avail::Intest
                    || h.avail == Avail::Offline
                    || h.avail == Avail::Failed
                    || h.avail == Avail::Online
                {
                    if h.local || h.intest_good >= s.intest_pulses {
                        h.avail = if degraded {
                            Avail::Degraded
                        } else {
                            Avail::Available
                        };
                        h.task.clear();
                        fx.clear(ALARM_FAILED, name);
                    } else {
                        h.avail = Avail::Intest;
                    }
                } else {
                    h.avail = if degraded {
                        Avail::Degraded
                    } else {
                        Avail::Available
                    };
                }
            }
            h.oper = match h.avail {
                Avail::Available | Avail::Degraded => Oper::Enabled,
                _ => Oper::Disabled,
            };
        }
        if (h.admin, h.oper, h.avail, h.task.clone()) != before {
            fx.touch(name);
        }
        fx
    }
}

#[cfg(test)]
mod tests;

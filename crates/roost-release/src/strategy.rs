//! A site strategy: the deploy of one release to every host of a cloud, in
//! order, stopping at the first failure. Pure: it is fed the deploy's state
//! and the raised alarms and answers the deploy steps to take; the server
//! takes them, commits, and asks again.
//!
//! Stages, in order: start the deploy (once the alarms allow it), the
//! controllers one at a time, the other hosts one at a time (`serial`) or in
//! groups of up to `max_parallel_workers` (`parallel`), activate, complete.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::deploy::AlarmFact;
use crate::{DeployState, Error, HostDeployState};

/// How the hosts other than controllers are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyType {
    Serial,
    Parallel,
}

/// Which alarms stop a strategy from starting: `strict`, any alarm raised
/// (but the deploys' own 900-range ones); `relaxed`, only
/// management-affecting ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmRestriction {
    Strict,
    Relaxed,
}

/// A strategy's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    pub worker_apply_type: ApplyType,
    pub max_parallel_workers: u32,
    pub alarm_restriction: AlarmRestriction,
    /// Stop once the deploy is activated, leaving `deploy complete` to the
    /// caller (a fleet rollout completes a subcloud only after its soak,
    /// and can still roll an activated deploy back).
    #[serde(default)]
    pub hold_complete: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            worker_apply_type: ApplyType::Serial,
            max_parallel_workers: 2,
            alarm_restriction: AlarmRestriction::Strict,
            hold_complete: false,
        }
    }
}

/// The most hosts deployed at once.
pub const MAX_PARALLEL_WORKERS: u32 = 100;

impl Options {
    pub fn check(&self) -> Result<(), Error> {
        if self.max_parallel_workers == 0 || self.max_parallel_workers > MAX_PARALLEL_WORKERS {
            return Err(Error::NotAllowed(format!(
                "max_parallel_workers must be 1 to {MAX_PARALLEL_WORKERS}"
            )));
        }
        Ok(())
    }
}

/// A strategy's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyState {
    Initial,
    Applying,
    Applied,
    Failed,
    Aborted,
}

/// What a stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    Start,
    Hosts,
    Activate,
    Complete,
}

/// A stage's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageState {
    Initial,
    InProgress,
    Done,
    Failed,
    Aborted,
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub kind: StageKind,
    /// The hosts of a `hosts` stage.
    pub hosts: Vec<String>,
    pub state: StageState,
    /// Why it failed.
    pub reason: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl Stage {
    fn new(kind: StageKind, hosts: Vec<String>) -> Stage {
        Stage {
            kind,
            hosts,
            state: StageState::Initial,
            reason: String::new(),
            started_at: None,
            finished_at: None,
        }
    }

    /// `deploy-start`, `deploy-hosts worker-1 worker-2`, ...
    pub fn name(&self) -> String {
        match self.kind {
            StageKind::Start => "deploy-start".into(),
            StageKind::Hosts => format!("deploy-hosts {}", self.hosts.join(" ")),
            StageKind::Activate => "deploy-activate".into(),
            StageKind::Complete => "deploy-complete".into(),
        }
    }
}

/// A host to deploy to, by name and personality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub hostname: String,
    pub personality: String,
}

/// What the deploy looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployFacts {
    /// The release of the deploy in progress and its state, if any.
    pub deploy: Option<(String, DeployState)>,
    /// Each host's state and last message in that deploy.
    pub hosts: BTreeMap<String, (HostDeployState, String)>,
    /// The strategy's release is deployed (its deploy completed and was
    /// deleted).
    pub release_deployed: bool,
    /// Each host's administrative state and availability (for releases that
    /// reboot hosts: locked before, unlocked after).
    pub host_states: BTreeMap<String, (String, String)>,
}

/// A deploy step the strategy asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start,
    LockHost(String),
    DeployHost(String),
    UnlockHost(String),
    Activate,
    Complete,
}

/// A site strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteStrategy {
    pub release_id: String,
    pub options: Options,
    /// The release reboots hosts: each is locked before its deploy and
    /// unlocked once it is back.
    #[serde(default)]
    pub reboot_required: bool,
    pub state: StrategyState,
    pub stages: Vec<Stage>,
    /// Why it failed or was aborted.
    pub reason: String,
    pub created_at: i64,
}

impl SiteStrategy {
    /// Plans the stages for `hosts`.
    pub fn create(
        release_id: &str,
        options: Options,
        reboot_required: bool,
        hosts: &[Target],
        now: i64,
    ) -> Result<SiteStrategy, Error> {
        options.check()?;
        if hosts.is_empty() {
            return Err(Error::NotAllowed(
                "the cloud has no host to deploy to".into(),
            ));
        }
        let mut stages = vec![Stage::new(StageKind::Start, Vec::new())];
        let (controllers, others): (Vec<&Target>, Vec<&Target>) =
            hosts.iter().partition(|h| h.personality == "controller");
        for c in controllers {
            stages.push(Stage::new(StageKind::Hosts, vec![c.hostname.clone()]));
        }
        let group = match options.worker_apply_type {
            ApplyType::Serial => 1,
            ApplyType::Parallel => options.max_parallel_workers as usize,
        };
        for chunk in others.chunks(group.max(1)) {
            stages.push(Stage::new(
                StageKind::Hosts,
                chunk.iter().map(|h| h.hostname.clone()).collect(),
            ));
        }
        stages.push(Stage::new(StageKind::Activate, Vec::new()));
        if !options.hold_complete {
            stages.push(Stage::new(StageKind::Complete, Vec::new()));
        }
        Ok(SiteStrategy {
            release_id: release_id.to_string(),
            options,
            reboot_required,
            state: StrategyState::Initial,
            stages,
            reason: String::new(),
            created_at: now,
        })
    }

    pub fn apply(&mut self) -> Result<(), Error> {
        if self.state != StrategyState::Initial {
            return Err(Error::NotAllowed(format!(
                "Strategy in state {} cannot be applied",
                self.state_name()
            )));
        }
        self.state = StrategyState::Applying;
        Ok(())
    }

    /// Stops the strategy; the deploy stays as it is (abort it with
    /// `deploy abort` to roll the hosts back).
    pub fn abort(&mut self, now: i64) -> Result<(), Error> {
        if self.state != StrategyState::Applying {
            return Err(Error::NotAllowed(format!(
                "Strategy in state {} cannot be aborted",
                self.state_name()
            )));
        }
        self.state = StrategyState::Aborted;
        self.reason = "aborted by request".into();
        for s in &mut self.stages {
            if matches!(s.state, StageState::Initial | StageState::InProgress) {
                s.state = StageState::Aborted;
                s.finished_at = Some(now);
            }
        }
        Ok(())
    }

    pub fn deletable(&self) -> Result<(), Error> {
        if self.state == StrategyState::Applying {
            return Err(Error::NotAllowed(
                "Strategy in state applying cannot be deleted: abort it first".into(),
            ));
        }
        Ok(())
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            StrategyState::Initial => "initial",
            StrategyState::Applying => "applying",
            StrategyState::Applied => "applied",
            StrategyState::Failed => "failed",
            StrategyState::Aborted => "aborted",
        }
    }

    fn fail(&mut self, i: usize, reason: String, now: i64) {
        let s = &mut self.stages[i];
        s.state = StageState::Failed;
        s.reason = reason.clone();
        s.finished_at = Some(now);
        self.state = StrategyState::Failed;
        self.reason = format!("{}: {reason}", self.stages[i].name());
    }

    fn done(&mut self, i: usize, now: i64) {
        let s = &mut self.stages[i];
        s.state = StageState::Done;
        s.started_at.get_or_insert(now);
        s.finished_at = Some(now);
    }

    /// Moves on as far as `facts` allow and answers the steps to take now.
    /// A step that fails is reported with [`SiteStrategy::step_failed`].
    pub fn next(&mut self, facts: &DeployFacts, alarms: &[AlarmFact], now: i64) -> Vec<Action> {
        if self.state != StrategyState::Applying {
            return Vec::new();
        }
        let ours = match &facts.deploy {
            Some((r, s)) if *r == self.release_id => Some(*s),
            _ => None,
        };
        for i in 0..self.stages.len() {
            if self.stages[i].state == StageState::Done {
                continue;
            }
            let started = self.stages[i].state == StageState::InProgress;
            match self.stages[i].kind {
                StageKind::Start => {
                    if ours.is_some() {
                        self.done(i, now);
                        continue;
                    }
                    if let Some((other, _)) = &facts.deploy {
                        self.fail(i, format!("a deploy of {other} is in progress"), now);
                        return Vec::new();
                    }
                    if started {
                        return Vec::new();
                    }
                    let blocking: Vec<String> = alarms
                        .iter()
                        .filter(|a| !a.alarm_id.starts_with("900."))
                        .filter(|a| {
                            self.options.alarm_restriction == AlarmRestriction::Strict
                                || a.mgmt_affecting
                        })
                        .map(|a| format!("{} on {}", a.alarm_id, a.entity_instance_id))
                        .collect();
                    if !blocking.is_empty() {
                        let what = match self.options.alarm_restriction {
                            AlarmRestriction::Strict => "alarms are raised (strict)",
                            AlarmRestriction::Relaxed => {
                                "management-affecting alarms are raised (relaxed)"
                            }
                        };
                        self.fail(i, format!("{what}: {}", blocking.join(", ")), now);
                        return Vec::new();
                    }
                    self.stages[i].state = StageState::InProgress;
                    self.stages[i].started_at = Some(now);
                    return vec![Action::Start];
                }
                StageKind::Hosts => {
                    if ours.is_none() {
                        self.fail(i, "the deploy is gone".into(), now);
                        return Vec::new();
                    }
                    let mut actions = Vec::new();
                    let mut all_done = true;
                    for h in self.stages[i].hosts.clone() {
                        let (admin, avail) = facts
                            .host_states
                            .get(&h)
                            .map(|(a, v)| (a.as_str(), v.as_str()))
                            .unwrap_or(("", ""));
                        let rr = self.reboot_required;
                        match facts.hosts.get(&h) {
                            Some((HostDeployState::Deployed, _)) => {
                                if rr && admin == "locked" {
                                    all_done = false;
                                    // Back from the reboot: unlock.
                                    if avail == "online" {
                                        actions.push(Action::UnlockHost(h));
                                    }
                                } else if rr && avail != "available" {
                                    all_done = false;
                                }
                            }
                            Some((HostDeployState::Failed, message)) => {
                                let reason = format!("host {h} failed: {message}");
                                self.fail(i, reason, now);
                                return Vec::new();
                            }
                            Some((HostDeployState::Pending, _)) => {
                                all_done = false;
                                if rr && admin != "locked" {
                                    actions.push(Action::LockHost(h));
                                } else {
                                    actions.push(Action::DeployHost(h));
                                }
                            }
                            Some((HostDeployState::Deploying, _)) => all_done = false,
                            Some((s, _)) => {
                                self.fail(i, format!("host {h} is {s}"), now);
                                return Vec::new();
                            }
                            None => {
                                self.fail(i, format!("host {h} is not in the deploy"), now);
                                return Vec::new();
                            }
                        }
                    }
                    if all_done {
                        self.done(i, now);
                        continue;
                    }
                    if !started {
                        self.stages[i].state = StageState::InProgress;
                        self.stages[i].started_at = Some(now);
                    }
                    return actions;
                }
                StageKind::Activate => match ours {
                    Some(DeployState::ActivateDone | DeployState::Completed) => {
                        self.done(i, now);
                    }
                    Some(DeployState::HostDone) if !started => {
                        self.stages[i].state = StageState::InProgress;
                        self.stages[i].started_at = Some(now);
                        return vec![Action::Activate];
                    }
                    Some(s) if started => {
                        self.fail(i, format!("the deploy is {s}"), now);
                        return Vec::new();
                    }
                    _ => return Vec::new(),
                },
                StageKind::Complete => match ours {
                    Some(DeployState::Completed) => self.done(i, now),
                    None if started && facts.release_deployed => self.done(i, now),
                    Some(DeployState::ActivateDone) if !started => {
                        self.stages[i].state = StageState::InProgress;
                        self.stages[i].started_at = Some(now);
                        return vec![Action::Complete];
                    }
                    Some(s) if started => {
                        self.fail(i, format!("the deploy is {s}"), now);
                        return Vec::new();
                    }
                    _ => return Vec::new(),
                },
            }
        }
        self.state = StrategyState::Applied;
        Vec::new()
    }

    /// A step the strategy asked for was refused: the stage under way
    /// fails and the strategy stops.
    pub fn step_failed(&mut self, reason: String, now: i64) {
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.state == StageState::InProgress)
        {
            self.fail(i, reason, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, personality: &str) -> Target {
        Target {
            hostname: name.into(),
            personality: personality.into(),
        }
    }

    fn hosts() -> Vec<Target> {
        vec![
            target("controller-0", "controller"),
            target("worker-1", "worker"),
            target("controller-1", "controller"),
            target("worker-2", "worker"),
            target("worker-3", "worker"),
        ]
    }

    fn names(s: &SiteStrategy) -> Vec<String> {
        s.stages.iter().map(Stage::name).collect()
    }

    fn facts(state: DeployState, hosts: &[(&str, HostDeployState)]) -> DeployFacts {
        DeployFacts {
            deploy: Some(("roost-0.2.0".into(), state)),
            hosts: hosts
                .iter()
                .map(|(h, s)| (h.to_string(), (*s, String::new())))
                .collect(),
            release_deployed: false,
            host_states: BTreeMap::new(),
        }
    }

    fn alarm(id: &str, mgmt: bool) -> AlarmFact {
        AlarmFact {
            alarm_id: id.into(),
            entity_instance_id: "host=worker-1".into(),
            severity: "minor".into(),
            mgmt_affecting: mgmt,
        }
    }

    #[test]
    fn controllers_go_one_at_a_time_then_workers_serially_or_in_groups() {
        let serial =
            SiteStrategy::create("roost-0.2.0", Options::default(), false, &hosts(), 0).unwrap();
        assert_eq!(
            names(&serial),
            [
                "deploy-start",
                "deploy-hosts controller-0",
                "deploy-hosts controller-1",
                "deploy-hosts worker-1",
                "deploy-hosts worker-2",
                "deploy-hosts worker-3",
                "deploy-activate",
                "deploy-complete"
            ]
        );
        let parallel = Options {
            worker_apply_type: ApplyType::Parallel,
            max_parallel_workers: 2,
            ..Options::default()
        };
        let p = SiteStrategy::create("roost-0.2.0", parallel, false, &hosts(), 0).unwrap();
        assert_eq!(
            names(&p)[3..5],
            ["deploy-hosts worker-1 worker-2", "deploy-hosts worker-3"]
        );
        let bad = Options {
            max_parallel_workers: 0,
            ..Options::default()
        };
        assert!(SiteStrategy::create("roost-0.2.0", bad, false, &hosts(), 0).is_err());
        assert!(SiteStrategy::create("roost-0.2.0", Options::default(), false, &[], 0).is_err());
    }

    #[test]
    fn a_strategy_walks_its_stages_as_the_deploy_moves() {
        use HostDeployState as H;
        let hs = [target("worker-1", "worker"), target("worker-2", "worker")];
        let opts = Options {
            worker_apply_type: ApplyType::Parallel,
            ..Options::default()
        };
        let mut s = SiteStrategy::create("roost-0.2.0", opts, false, &hs, 0).unwrap();
        assert!(
            s.next(&DeployFacts::default(), &[], 1).is_empty(),
            "not applied yet"
        );
        s.apply().unwrap();
        assert!(s.apply().is_err());
        assert_eq!(s.next(&DeployFacts::default(), &[], 1), [Action::Start]);
        // Asked once, not again while it is under way.
        assert!(s.next(&DeployFacts::default(), &[], 2).is_empty());
        let f = facts(
            DeployState::StartDone,
            &[("worker-1", H::Pending), ("worker-2", H::Pending)],
        );
        assert_eq!(
            s.next(&f, &[], 3),
            [
                Action::DeployHost("worker-1".into()),
                Action::DeployHost("worker-2".into())
            ]
        );
        let f = facts(
            DeployState::Host,
            &[("worker-1", H::Deployed), ("worker-2", H::Deploying)],
        );
        assert!(s.next(&f, &[], 4).is_empty());
        let f = facts(
            DeployState::HostDone,
            &[("worker-1", H::Deployed), ("worker-2", H::Deployed)],
        );
        assert_eq!(s.next(&f, &[], 5), [Action::Activate]);
        let f = facts(
            DeployState::ActivateDone,
            &[("worker-1", H::Deployed), ("worker-2", H::Deployed)],
        );
        assert_eq!(s.next(&f, &[], 6), [Action::Complete]);
        let f = facts(
            DeployState::Completed,
            &[("worker-1", H::Deployed), ("worker-2", H::Deployed)],
        );
        assert!(s.next(&f, &[], 7).is_empty());
        assert_eq!(s.state, StrategyState::Applied);
        assert!(s.stages.iter().all(|st| st.state == StageState::Done));
        s.deletable().unwrap();
    }

    #[test]
    fn a_held_strategy_ends_at_activation_and_leaves_the_completion() {
        use HostDeployState as H;
        let hs = [target("worker-1", "worker")];
        let opts = Options {
            hold_complete: true,
            ..Options::default()
        };
        let mut s = SiteStrategy::create("roost-0.2.0", opts, false, &hs, 0).unwrap();
        assert_eq!(
            names(&s),
            ["deploy-start", "deploy-hosts worker-1", "deploy-activate"]
        );
        s.apply().unwrap();
        let f = facts(DeployState::ActivateDone, &[("worker-1", H::Deployed)]);
        assert!(s.next(&f, &[], 1).is_empty(), "no complete asked");
        assert_eq!(s.state, StrategyState::Applied);
        // Stored strategies from before the option read as not held.
        let old: Options = serde_json::from_str(
            r#"{"worker_apply_type":"serial","max_parallel_workers":2,"alarm_restriction":"strict"}"#,
        )
        .unwrap();
        assert!(!old.hold_complete);
    }

    #[test]
    fn reboot_required_releases_lock_deploy_and_unlock_each_host_once_it_is_back() {
        use HostDeployState as H;
        let hs = [target("worker-1", "worker")];
        let mut s = SiteStrategy::create("roost-0.2.0", Options::default(), true, &hs, 0).unwrap();
        s.apply().unwrap();
        s.next(&DeployFacts::default(), &[], 1);
        let at = |dep: H, admin: &str, avail: &str| {
            let mut f = facts(DeployState::StartDone, &[("worker-1", dep)]);
            f.host_states
                .insert("worker-1".into(), (admin.into(), avail.into()));
            f
        };
        let w = || "worker-1".to_string();
        assert_eq!(
            s.next(&at(H::Pending, "unlocked", "available"), &[], 2),
            [Action::LockHost(w())]
        );
        assert_eq!(
            s.next(&at(H::Pending, "locked", "online"), &[], 3),
            [Action::DeployHost(w())]
        );
        assert!(
            s.next(&at(H::Deploying, "locked", "offline"), &[], 4)
                .is_empty()
        );
        // Deployed but still rebooting: wait; back online: unlock.
        assert!(
            s.next(&at(H::Deployed, "locked", "offline"), &[], 5)
                .is_empty()
        );
        assert_eq!(
            s.next(&at(H::Deployed, "locked", "online"), &[], 6),
            [Action::UnlockHost(w())]
        );
        assert!(
            s.next(&at(H::Deployed, "unlocked", "online"), &[], 7)
                .is_empty()
        );
        let mut done = at(H::Deployed, "unlocked", "available");
        done.deploy = Some(("roost-0.2.0".into(), DeployState::HostDone));
        assert_eq!(s.next(&done, &[], 8), [Action::Activate]);
    }

    #[test]
    fn a_failed_host_stops_the_strategy_before_the_next_stage() {
        use HostDeployState as H;
        let hs = [target("worker-1", "worker"), target("worker-2", "worker")];
        let mut s = SiteStrategy::create("roost-0.2.0", Options::default(), false, &hs, 0).unwrap();
        s.apply().unwrap();
        s.next(&DeployFacts::default(), &[], 1);
        let mut f = facts(
            DeployState::Host,
            &[("worker-1", H::Failed), ("worker-2", H::Pending)],
        );
        f.hosts.get_mut("worker-1").unwrap().1 = "the health check failed".into();
        assert!(s.next(&f, &[], 2).is_empty(), "worker-2 is not started");
        assert_eq!(s.state, StrategyState::Failed);
        assert_eq!(
            s.reason,
            "deploy-hosts worker-1: host worker-1 failed: the health check failed"
        );
        assert_eq!(s.stages[2].state, StageState::Initial);
        assert!(s.next(&f, &[], 3).is_empty());
    }

    #[test]
    fn alarms_stop_the_start_as_the_restriction_says() {
        let hs = [target("worker-1", "worker")];
        let minor = [alarm("100.101", false), alarm("900.002", true)];
        let mut strict =
            SiteStrategy::create("roost-0.2.0", Options::default(), false, &hs, 0).unwrap();
        strict.apply().unwrap();
        assert!(strict.next(&DeployFacts::default(), &minor, 1).is_empty());
        assert_eq!(strict.state, StrategyState::Failed);
        assert!(
            strict
                .reason
                .contains("alarms are raised (strict): 100.101"),
            "{}",
            strict.reason
        );
        let relaxed = Options {
            alarm_restriction: AlarmRestriction::Relaxed,
            ..Options::default()
        };
        let mut r = SiteStrategy::create("roost-0.2.0", relaxed, false, &hs, 0).unwrap();
        r.apply().unwrap();
        assert_eq!(r.next(&DeployFacts::default(), &minor, 1), [Action::Start]);
        let mut r = SiteStrategy::create("roost-0.2.0", relaxed, false, &hs, 0).unwrap();
        r.apply().unwrap();
        assert!(
            r.next(&DeployFacts::default(), &[alarm("100.101", true)], 1)
                .is_empty()
        );
        assert_eq!(r.state, StrategyState::Failed);
    }

    #[test]
    fn abort_stops_the_stages_left_and_a_refused_step_fails_the_strategy() {
        let hs = [target("worker-1", "worker")];
        let mut s = SiteStrategy::create("roost-0.2.0", Options::default(), false, &hs, 0).unwrap();
        assert!(s.abort(0).is_err());
        s.apply().unwrap();
        assert!(s.deletable().is_err());
        s.next(&DeployFacts::default(), &[], 1);
        s.abort(2).unwrap();
        assert_eq!(s.state, StrategyState::Aborted);
        assert!(s.stages.iter().all(|st| st.state == StageState::Aborted));
        s.deletable().unwrap();

        let mut s = SiteStrategy::create("roost-0.2.0", Options::default(), false, &hs, 0).unwrap();
        s.apply().unwrap();
        s.next(&DeployFacts::default(), &[], 1);
        s.step_failed("Deploy start rejected: release is deployed".into(), 2);
        assert_eq!(s.state, StrategyState::Failed);
        assert!(
            s.reason.starts_with("deploy-start: Deploy start rejected"),
            "{}",
            s.reason
        );
        // Another deploy in progress fails the start.
        let mut s = SiteStrategy::create("roost-0.2.0", Options::default(), false, &hs, 0).unwrap();
        s.apply().unwrap();
        let other = DeployFacts {
            deploy: Some(("roost-0.1.9".into(), DeployState::Host)),
            ..DeployFacts::default()
        };
        assert!(s.next(&other, &[], 1).is_empty());
        assert!(s.reason.contains("a deploy of roost-0.1.9 is in progress"));
    }
}

//! A deploy of one release to the hosts of a cloud, as USM runs it: the
//! precheck, the deploy's state and each host's, and what each host's agent
//! is asked to run. Pure: the server feeds it facts (hosts, alarms, what
//! agents report) and a time, commits the result, then acts on it.
//!
//! A host is asked to run one release (`Order`); each request has its own
//! attempt number, so an outcome an agent reports for an earlier attempt
//! (a failure before a retry, a replayed report) is never taken for the
//! current one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{DeployEvent, DeployState, Error, HostDeployState, Manifest, ReleaseState};

/// A host, as the precheck and `deploy host` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub hostname: String,
    pub administrative: String,
    pub operational: String,
    pub availability: String,
}

impl HostFacts {
    fn in_service(&self) -> bool {
        self.administrative == "unlocked"
            && self.operational == "enabled"
            && self.availability == "available"
    }

    fn state(&self) -> String {
        format!(
            "{}/{}/{}",
            self.administrative, self.operational, self.availability
        )
    }
}

/// A raised alarm, as the precheck sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmFact {
    pub alarm_id: String,
    pub entity_instance_id: String,
    pub severity: String,
    /// Management-affecting at its severity (the catalogue's
    /// `Management_Affecting_Severity`).
    pub mgmt_affecting: bool,
}

/// What the precheck found: `problems` refuse the deploy, `warnings` do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precheck {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// The checks that passed, for the report.
    pub passed: Vec<String>,
}

impl Precheck {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report, one check per line, as `software deploy precheck`
    /// prints it.
    pub fn report(&self) -> String {
        let mut lines = Vec::new();
        for p in &self.passed {
            lines.push(format!("[OK] {p}"));
        }
        for w in &self.warnings {
            lines.push(format!("[Warning] {w}"));
        }
        for p in &self.problems {
            lines.push(format!("[Fail] {p}"));
        }
        lines.join("\n")
    }
}

/// The release a deploy would install, and what the cloud runs.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub manifest: &'a Manifest,
    pub state: ReleaseState,
    /// Releases deployed or committed on this cloud.
    pub deployed: &'a [String],
}

/// Checks whether `candidate` can be deployed now. `force` turns
/// management-affecting alarms into warnings; nothing else is forced.
pub fn precheck(
    candidate: Candidate<'_>,
    current: Option<&Deploy>,
    hosts: &[HostFacts],
    alarms: &[AlarmFact],
    force: bool,
) -> Precheck {
    let mut out = Precheck::default();
    let id = &candidate.manifest.release_id;
    match current {
        Some(d) => out.problems.push(format!(
            "a deploy of {} is in progress (state {}): complete or abort it, then delete it",
            d.to_release_id, d.state
        )),
        None => out.passed.push("no other deploy is in progress".into()),
    }
    if candidate.state == ReleaseState::Available {
        out.passed.push(format!("release {id} is available"));
    } else {
        out.problems.push(format!(
            "release {id} is {}: only an available release can be deployed",
            candidate.state
        ));
    }
    let missing: Vec<&str> = candidate
        .manifest
        .requires
        .iter()
        .filter(|r| !candidate.deployed.contains(r))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        out.passed
            .push("every release it requires is deployed".into());
    } else {
        out.problems.push(format!(
            "release {id} requires {}, which is not deployed: deploy it first",
            missing.join(", ")
        ));
    }
    let out_of_service: Vec<String> = hosts
        .iter()
        .filter(|h| !h.in_service())
        .map(|h| format!("{} is {}", h.hostname, h.state()))
        .collect();
    if hosts.is_empty() {
        out.problems
            .push("the cloud has no host to deploy to".into());
    } else if out_of_service.is_empty() {
        out.passed
            .push("every host is unlocked, enabled and available".into());
    } else {
        out.problems.push(format!(
            "every host must be unlocked, enabled and available: {}",
            out_of_service.join(", ")
        ));
    }
    let affecting: Vec<String> = alarms
        .iter()
        .filter(|a| a.mgmt_affecting)
        .map(|a| {
            format!(
                "{} ({}) on {}",
                a.alarm_id, a.severity, a.entity_instance_id
            )
        })
        .collect();
    if affecting.is_empty() {
        out.passed
            .push("no management-affecting alarm is raised".into());
    } else {
        let m = format!(
            "management-affecting alarms are raised: {}",
            affecting.join(", ")
        );
        if force {
            out.warnings.push(format!("{m} (forced)"));
        } else {
            out.problems.push(format!("{m}; clear them or use --force"));
        }
    }
    out
}

/// One host in a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDeploy {
    pub state: HostDeployState,
    /// The attempt the host's agent is asked to carry out (0: none yet).
    #[serde(default)]
    pub attempt: u64,
    /// What the last attempt ended with (its failure, say).
    #[serde(default)]
    pub message: String,
    /// When the state last changed, microseconds since the epoch.
    pub since: i64,
}

/// The release a host's agent is asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The release id; empty for the software the host was installed with.
    pub release_id: String,
    pub attempt: u64,
    /// Undoing the deploy (the agent rolls back).
    pub rollback: bool,
}

/// What an agent says about an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub attempt: u64,
    pub ok: bool,
    pub message: String,
}

/// A change a step made that the server reports: a host finished (for
/// alarms and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    HostDeployed { host: String },
    HostFailed { host: String, message: String },
    HostRolledBack { host: String },
    HostRollbackFailed { host: String, message: String },
}

/// A deploy of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    /// The release the hosts run when it starts (empty: the software they
    /// were installed with) and its version; swapped with `to_*` by abort.
    pub from_release_id: String,
    pub from_version: String,
    pub to_release_id: String,
    pub to_version: String,
    pub reboot_required: bool,
    pub state: DeployState,
    pub hosts: BTreeMap<String, HostDeploy>,
    /// The last attempt number handed out (they begin at the start time in
    /// microseconds).
    #[serde(default)]
    pub attempts: u64,
    pub started_at: i64,
}

impl Deploy {
    /// `deploy start`: the release is checked (`check` is what the
    /// precheck found) and the deploy begins with every host pending.
    /// Roost stages the release on the server as it is uploaded, so start
    /// is done at once.
    pub fn start(
        check: &Precheck,
        manifest: &Manifest,
        from: (&str, &str),
        hosts: &[HostFacts],
        now: i64,
    ) -> Result<Deploy, Error> {
        if !check.healthy() {
            return Err(Error::NotAllowed(format!(
                "Deploy start rejected: {}",
                check.problems.join("; ")
            )));
        }
        let state = DeployState::Start
            .after(DeployEvent::Started { ok: true })?
            .unwrap_or(DeployState::StartDone);
        Ok(Deploy {
            from_release_id: from.0.to_string(),
            from_version: from.1.to_string(),
            to_release_id: manifest.release_id.clone(),
            to_version: manifest.version.clone(),
            reboot_required: manifest.reboot_required,
            state,
            hosts: hosts
                .iter()
                .map(|h| {
                    (
                        h.hostname.clone(),
                        HostDeploy {
                            state: HostDeployState::Pending,
                            attempt: 0,
                            message: String::new(),
                            since: now,
                        },
                    )
                })
                .collect(),
            // Attempt numbers go on from the start time, so that they are
            // not reused by the next deploy (an agent's last outcome may be
            // of an attempt of the deploy before).
            attempts: u64::try_from(now).unwrap_or(0),
            started_at: now,
        })
    }

    fn host_mut(&mut self, host: &str) -> Result<&mut HostDeploy, Error> {
        self.hosts.get_mut(host).ok_or_else(|| {
            Error::NotAllowed(format!(
                "host {host} is not part of the deploy of {}",
                self.to_release_id
            ))
        })
    }

    /// `deploy host H` (`force`: also when the host is not in service).
    /// A host that failed may be retried.
    pub fn host(&mut self, facts: &HostFacts, force: bool, now: i64) -> Result<(), Error> {
        let host = facts.hostname.as_str();
        let next = self.state.after(DeployEvent::HostBegin)?;
        self.host_mut(host)?;
        if self.reboot_required {
            if facts.administrative != "locked" && !force {
                return Err(Error::NotAllowed(format!(
                    "release {} requires a reboot: lock host {host} first",
                    self.to_release_id
                )));
            }
        } else if !facts.in_service() && !force {
            return Err(Error::NotAllowed(format!(
                "host {host} is {}: it must be unlocked, enabled and available (or use --force)",
                facts.state()
            )));
        }
        let attempt = self.attempts + 1;
        let h = self.host_mut(host)?;
        match h.state {
            HostDeployState::Pending | HostDeployState::Failed => {}
            HostDeployState::Deploying => {
                return Err(Error::NotAllowed(format!(
                    "host {host} is being deployed already"
                )));
            }
            s => {
                return Err(Error::NotAllowed(format!(
                    "host {host} is {s}: there is nothing to deploy on it"
                )));
            }
        }
        h.state = HostDeployState::Deploying;
        h.attempt = attempt;
        h.message.clear();
        h.since = now;
        self.attempts = attempt;
        if let Some(n) = next {
            self.state = n;
        }
        Ok(())
    }

    /// `deploy host-rollback H`, after an abort.
    pub fn host_rollback(&mut self, host: &str, now: i64) -> Result<(), Error> {
        let next = self.state.after(DeployEvent::HostRollbackBegin)?;
        let attempt = self.attempts + 1;
        let h = self.host_mut(host)?;
        match h.state {
            HostDeployState::RollbackPending | HostDeployState::RollbackFailed => {}
            s => {
                return Err(Error::NotAllowed(format!(
                    "host {host} is {s}: only a host pending or failed in the rollback can be \
                     rolled back"
                )));
            }
        }
        h.state = HostDeployState::RollbackDeploying;
        h.attempt = attempt;
        h.message.clear();
        h.since = now;
        self.attempts = attempt;
        if let Some(n) = next {
            self.state = n;
        }
        Ok(())
    }

    /// What `host`'s agent is asked to run now, if anything.
    pub fn order(&self, host: &str) -> Option<Order> {
        let h = self.hosts.get(host)?;
        let rollback = match h.state {
            HostDeployState::Deploying => false,
            HostDeployState::RollbackDeploying => true,
            _ => return None,
        };
        Some(Order {
            release_id: self.to_release_id.clone(),
            attempt: h.attempt,
            rollback,
        })
    }

    /// Takes what `host`'s agent reported about an attempt; an outcome of
    /// any other attempt than the one under way changes nothing.
    pub fn outcome(&mut self, host: &str, outcome: &Outcome, now: i64) -> Vec<Change> {
        let Some(h) = self.hosts.get_mut(host) else {
            return Vec::new();
        };
        if outcome.attempt != h.attempt {
            return Vec::new();
        }
        let (state, change) = match (h.state, outcome.ok) {
            (HostDeployState::Deploying, true) => (
                HostDeployState::Deployed,
                Change::HostDeployed { host: host.into() },
            ),
            (HostDeployState::Deploying, false) => (
                HostDeployState::Failed,
                Change::HostFailed {
                    host: host.into(),
                    message: outcome.message.clone(),
                },
            ),
            (HostDeployState::RollbackDeploying, true) => (
                HostDeployState::RollbackDeployed,
                Change::HostRolledBack { host: host.into() },
            ),
            (HostDeployState::RollbackDeploying, false) => (
                HostDeployState::RollbackFailed,
                Change::HostRollbackFailed {
                    host: host.into(),
                    message: outcome.message.clone(),
                },
            ),
            _ => return Vec::new(),
        };
        h.state = state;
        h.message = outcome.message.clone();
        h.since = now;
        self.settle();
        vec![change]
    }

    /// Whether the deploy was aborted: from and to are swapped, and it is
    /// rolling back (the activation, then the hosts).
    pub fn aborted(&self) -> bool {
        use DeployState as S;
        matches!(
            self.state,
            S::HostRollback
                | S::HostRollbackDone
                | S::HostRollbackFailed
                | S::ActivateRollbackPending
                | S::ActivateRollback
                | S::ActivateRollbackDone
                | S::ActivateRollbackFailed
        )
    }

    /// The hosts still deploying (or rolling back) after
    /// `deadline_micros`, with their attempt.
    pub fn late(&self, now: i64, deadline_micros: i64) -> Vec<(String, u64)> {
        self.hosts
            .iter()
            .filter(|(_, h)| {
                matches!(
                    h.state,
                    HostDeployState::Deploying | HostDeployState::RollbackDeploying
                ) && now.saturating_sub(h.since) > deadline_micros
            })
            .map(|(n, h)| (n.clone(), h.attempt))
            .collect()
    }

    /// A host still deploying after `deadline_micros` fails: its agent did
    /// not report back in time.
    pub fn overdue(&mut self, now: i64, deadline_micros: i64) -> Vec<Change> {
        let late = self.late(now, deadline_micros);
        let mut out = Vec::new();
        for (host, attempt) in late {
            out.extend(self.outcome(
                &host,
                &Outcome {
                    attempt,
                    ok: false,
                    message: format!(
                        "the agent did not report the result within {} s",
                        deadline_micros / 1_000_000
                    ),
                },
                now,
            ));
        }
        out
    }

    /// Moves the deploy on once no host is under way.
    fn settle(&mut self) {
        use HostDeployState as H;
        let busy = self
            .hosts
            .values()
            .any(|h| matches!(h.state, H::Deploying | H::RollbackDeploying));
        if busy {
            return;
        }
        let event = match self.state {
            DeployState::Host => {
                let done = self.hosts.values().all(|h| h.state == H::Deployed);
                let failed = self.hosts.values().any(|h| h.state == H::Failed);
                if done {
                    DeployEvent::HostsEnded { ok: true }
                } else if failed {
                    DeployEvent::HostsEnded { ok: false }
                } else {
                    return;
                }
            }
            DeployState::HostRollback => {
                let done = self.hosts.values().all(|h| h.state == H::RollbackDeployed);
                let failed = self.hosts.values().any(|h| h.state == H::RollbackFailed);
                if done {
                    DeployEvent::HostRollbackEnded { ok: true }
                } else if failed {
                    DeployEvent::HostRollbackEnded { ok: false }
                } else {
                    return;
                }
            }
            _ => return,
        };
        if let Ok(Some(n)) = self.state.after(event) {
            self.state = n;
        }
    }

    /// `deploy activate`: every host runs the release. Roost has nothing
    /// to migrate at activation, so it is done at once.
    pub fn activate(&mut self) -> Result<(), Error> {
        let s = self.state.after(DeployEvent::Activate)?;
        let s = s.and_then(|s| {
            s.after(DeployEvent::ActivateEnded { ok: true })
                .ok()
                .flatten()
        });
        if let Some(s) = s {
            self.state = s;
        }
        Ok(())
    }

    /// `deploy complete`.
    pub fn complete(&mut self) -> Result<(), Error> {
        if let Some(s) = self.state.after(DeployEvent::Complete)? {
            self.state = s;
        }
        Ok(())
    }

    /// `deploy abort`: from and to swap; every host that took (or is
    /// taking, or failed to take) the release is to be rolled back, the
    /// others are already on the release the deploy goes back to.
    pub fn abort(&mut self, now: i64) -> Result<(), Error> {
        use HostDeployState as H;
        let next = self.state.after(DeployEvent::Abort)?;
        std::mem::swap(&mut self.from_release_id, &mut self.to_release_id);
        std::mem::swap(&mut self.from_version, &mut self.to_version);
        for h in self.hosts.values_mut() {
            h.state = match h.state {
                H::Pending => H::RollbackDeployed,
                _ => H::RollbackPending,
            };
            h.message.clear();
            h.since = now;
        }
        if let Some(n) = next {
            self.state = n;
        }
        self.settle();
        Ok(())
    }

    /// `deploy activate-rollback`, after an abort of an activated deploy.
    pub fn activate_rollback(&mut self) -> Result<(), Error> {
        let s = self.state.after(DeployEvent::ActivateRollback)?;
        let s = s.and_then(|s| {
            s.after(DeployEvent::ActivateRollbackEnded { ok: true })
                .ok()
                .flatten()
        });
        if let Some(s) = s {
            self.state = s;
        }
        Ok(())
    }

    /// `deploy delete`: whether the deploy may be removed now.
    pub fn delete(&self) -> Result<(), Error> {
        self.state.after(DeployEvent::Delete).map(|_| ())
    }

    /// The release every host runs once the deploy is deleted: the new one
    /// after `completed`, the old one after a rollback or a failed start.
    pub fn outcome_release(&self) -> Option<&str> {
        match self.state {
            DeployState::Completed => Some(self.to_release_id.as_str()),
            DeployState::HostRollbackDone => Some(self.to_release_id.as_str()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, requires: &[&str]) -> Manifest {
        let (_, version) = crate::split_release_id(id).unwrap();
        Manifest {
            release_id: id.into(),
            version: version.into(),
            requires: requires.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn host(name: &str) -> HostFacts {
        HostFacts {
            hostname: name.into(),
            administrative: "unlocked".into(),
            operational: "enabled".into(),
            availability: "available".into(),
        }
    }

    fn alarm(id: &str, affecting: bool) -> AlarmFact {
        AlarmFact {
            alarm_id: id.into(),
            entity_instance_id: "host=worker-1".into(),
            severity: "major".into(),
            mgmt_affecting: affecting,
        }
    }

    fn started(hosts: &[&str]) -> Deploy {
        let m = manifest("roost-0.2.0", &[]);
        let facts: Vec<HostFacts> = hosts.iter().map(|h| host(h)).collect();
        let check = precheck(
            Candidate {
                manifest: &m,
                state: ReleaseState::Available,
                deployed: &[],
            },
            None,
            &facts,
            &[],
            false,
        );
        Deploy::start(&check, &m, ("", "0.1.0"), &facts, 10).unwrap()
    }

    fn ok(attempt: u64) -> Outcome {
        Outcome {
            attempt,
            ok: true,
            message: String::new(),
        }
    }

    fn failed(attempt: u64, why: &str) -> Outcome {
        Outcome {
            attempt,
            ok: false,
            message: why.into(),
        }
    }

    #[test]
    fn precheck_names_every_problem_and_force_only_passes_alarms() {
        let m = manifest("roost-0.3.0", &["roost-0.2.0"]);
        let mut down = host("worker-2");
        down.availability = "offline".into();
        let hosts = [host("controller-0"), down];
        let alarms = [alarm("100.101", true), alarm("100.104", false)];
        let c = Candidate {
            manifest: &m,
            state: ReleaseState::Available,
            deployed: &[],
        };
        let p = precheck(c, None, &hosts, &alarms, false);
        assert!(!p.healthy());
        let all = p.problems.join("\n");
        assert!(all.contains("requires roost-0.2.0"), "{all}");
        assert!(
            all.contains("worker-2 is unlocked/enabled/offline"),
            "{all}"
        );
        assert!(all.contains("100.101 (major) on host=worker-1"), "{all}");
        assert!(!all.contains("100.104"), "{all}");
        // Forced: the alarm is a warning, the rest still refuses.
        let p = precheck(c, None, &hosts, &alarms, true);
        assert_eq!(p.problems.len(), 2, "{p:?}");
        assert!(p.warnings[0].contains("100.101"));
        // All well.
        let deployed = ["roost-0.2.0".to_string()];
        let c = Candidate {
            deployed: &deployed,
            ..c
        };
        let p = precheck(c, None, &[host("controller-0")], &[], false);
        assert!(p.healthy(), "{p:?}");
        assert!(p.report().starts_with("[OK]"), "{}", p.report());
        // Another deploy, or a release not available.
        let d = started(&["controller-0"]);
        let c = Candidate {
            state: ReleaseState::Deploying,
            ..c
        };
        let p = precheck(c, Some(&d), &[host("controller-0")], &[], true);
        let all = p.problems.join("\n");
        assert!(
            all.contains("a deploy of roost-0.2.0 is in progress"),
            "{all}"
        );
        assert!(all.contains("is deploying"), "{all}");
    }

    #[test]
    fn start_refuses_an_unhealthy_precheck() {
        let m = manifest("roost-0.2.0", &[]);
        let check = Precheck {
            problems: vec!["100.101 raised".into()],
            ..Default::default()
        };
        let e = Deploy::start(&check, &m, ("", "0.1.0"), &[host("c")], 0).unwrap_err();
        assert!(e.to_string().contains("100.101 raised"), "{e}");
    }

    #[test]
    fn hosts_deploy_one_attempt_at_a_time_and_the_deploy_completes() {
        let mut d = started(&["controller-0", "worker-1"]);
        assert_eq!(d.state, DeployState::StartDone);
        assert_eq!(d.order("worker-1"), None);
        d.host(&host("worker-1"), false, 20).unwrap();
        assert_eq!(d.state, DeployState::Host);
        let o = d.order("worker-1").unwrap();
        assert_eq!(o.release_id, "roost-0.2.0");
        assert!(!o.rollback);
        // Twice while under way: refused.
        let e = d.host(&host("worker-1"), false, 21).unwrap_err();
        assert!(e.to_string().contains("being deployed"), "{e}");
        // An outcome for another attempt changes nothing.
        assert!(d.outcome("worker-1", &ok(o.attempt + 7), 22).is_empty());
        assert_eq!(
            d.outcome("worker-1", &ok(o.attempt), 23),
            vec![Change::HostDeployed {
                host: "worker-1".into()
            }]
        );
        assert_eq!(d.state, DeployState::Host, "controller-0 is pending");
        let e = d.activate().unwrap_err();
        assert!(e.to_string().contains("state host"), "{e}");
        d.host(&host("controller-0"), false, 30).unwrap();
        let a = d.order("controller-0").unwrap().attempt;
        d.outcome("controller-0", &ok(a), 31);
        assert_eq!(d.state, DeployState::HostDone);
        d.activate().unwrap();
        assert_eq!(d.state, DeployState::ActivateDone);
        d.complete().unwrap();
        assert_eq!(d.state, DeployState::Completed);
        assert_eq!(d.outcome_release(), Some("roost-0.2.0"));
        d.delete().unwrap();
    }

    #[test]
    fn a_failed_host_fails_the_step_and_may_be_retried_and_a_stale_failure_is_ignored() {
        let mut d = started(&["worker-1"]);
        d.host(&host("worker-1"), false, 1).unwrap();
        let first = d.order("worker-1").unwrap().attempt;
        let ch = d.outcome("worker-1", &failed(first, "health check exited 3"), 2);
        assert_eq!(
            ch,
            vec![Change::HostFailed {
                host: "worker-1".into(),
                message: "health check exited 3".into()
            }]
        );
        assert_eq!(d.state, DeployState::HostFailed);
        assert_eq!(d.hosts["worker-1"].message, "health check exited 3");
        d.host(&host("worker-1"), false, 3).unwrap();
        let second = d.order("worker-1").unwrap().attempt;
        assert!(second > first);
        // The first attempt's failure, reported again, is not the second's.
        assert!(d.outcome("worker-1", &failed(first, "old"), 4).is_empty());
        assert_eq!(d.hosts["worker-1"].state, HostDeployState::Deploying);
        d.outcome("worker-1", &ok(second), 5);
        assert_eq!(d.state, DeployState::HostDone);
    }

    #[test]
    fn attempts_are_not_reused_by_the_next_deploy() {
        let mut first = started(&["worker-1"]);
        first.host(&host("worker-1"), false, 11).unwrap();
        let a = first.order("worker-1").unwrap().attempt;
        let m = manifest("roost-0.3.0", &[]);
        let check = Precheck::default();
        let mut next = Deploy::start(
            &check,
            &m,
            ("roost-0.2.0", "0.2.0"),
            &[host("worker-1")],
            5_000,
        )
        .unwrap();
        next.host(&host("worker-1"), false, 5_001).unwrap();
        let b = next.order("worker-1").unwrap().attempt;
        assert!(b > a, "{b} > {a}");
        // The first deploy's outcome is not the second's.
        assert!(next.outcome("worker-1", &ok(a), 5_002).is_empty());
    }

    #[test]
    fn a_host_that_does_not_report_in_time_fails() {
        let mut d = started(&["worker-1"]);
        d.host(&host("worker-1"), false, 0).unwrap();
        assert!(d.overdue(5_000_000, 10_000_000).is_empty());
        let ch = d.overdue(11_000_000, 10_000_000);
        assert!(
            matches!(&ch[..], [Change::HostFailed { message, .. }] if message.contains("10 s")),
            "{ch:?}"
        );
        assert_eq!(d.state, DeployState::HostFailed);
    }

    #[test]
    fn hosts_out_of_service_and_reboot_required_releases_need_the_right_admin_state() {
        let mut d = started(&["worker-1"]);
        let mut locked = host("worker-1");
        locked.administrative = "locked".into();
        let e = d.host(&locked, false, 0).unwrap_err();
        assert!(e.to_string().contains("must be unlocked"), "{e}");
        d.host(&locked, true, 0).unwrap();
        let mut rr = started(&["worker-1"]);
        rr.reboot_required = true;
        let e = rr.host(&host("worker-1"), false, 0).unwrap_err();
        assert!(e.to_string().contains("lock host worker-1 first"), "{e}");
        rr.host(&locked, false, 0).unwrap();
        let e = rr.host(&host("worker-9"), false, 0).unwrap_err();
        assert!(e.to_string().contains("not part of the deploy"), "{e}");
    }

    #[test]
    fn abort_before_activation_rolls_back_the_hosts_that_took_the_release() {
        let mut d = started(&["controller-0", "worker-1"]);
        d.host(&host("worker-1"), false, 1).unwrap();
        let a = d.order("worker-1").unwrap().attempt;
        d.outcome("worker-1", &ok(a), 2);
        assert!(!d.aborted());
        d.abort(3).unwrap();
        assert!(d.aborted());
        assert_eq!(d.state, DeployState::HostRollback);
        assert_eq!(d.to_release_id, "", "back to the installed software");
        assert_eq!(d.from_release_id, "roost-0.2.0");
        assert_eq!(
            d.hosts["controller-0"].state,
            HostDeployState::RollbackDeployed
        );
        assert_eq!(d.hosts["worker-1"].state, HostDeployState::RollbackPending);
        assert!(d.host(&host("worker-1"), false, 4).is_err());
        d.host_rollback("worker-1", 4).unwrap();
        let o = d.order("worker-1").unwrap();
        assert!(o.rollback);
        assert_eq!(o.release_id, "");
        let e = d.delete().unwrap_err();
        assert!(e.to_string().contains("host-rollback"), "{e}");
        d.outcome("worker-1", &ok(o.attempt), 5);
        assert_eq!(d.state, DeployState::HostRollbackDone);
        assert_eq!(d.outcome_release(), Some(""));
        d.delete().unwrap();
    }

    #[test]
    fn abort_after_activation_rolls_back_the_activation_first() {
        let mut d = started(&["worker-1"]);
        d.host(&host("worker-1"), false, 1).unwrap();
        let a = d.order("worker-1").unwrap().attempt;
        d.outcome("worker-1", &ok(a), 2);
        d.activate().unwrap();
        d.abort(3).unwrap();
        assert_eq!(d.state, DeployState::ActivateRollbackPending);
        let e = d.host_rollback("worker-1", 4).unwrap_err();
        assert!(e.to_string().contains("activate-rollback-pending"), "{e}");
        d.activate_rollback().unwrap();
        assert_eq!(d.state, DeployState::ActivateRollbackDone);
        d.host_rollback("worker-1", 4).unwrap();
        let a = d.order("worker-1").unwrap().attempt;
        d.outcome("worker-1", &failed(a, "cannot switch"), 5);
        assert_eq!(d.state, DeployState::HostRollbackFailed);
        d.host_rollback("worker-1", 6).unwrap();
        let a = d.order("worker-1").unwrap().attempt;
        d.outcome("worker-1", &ok(a), 7);
        assert_eq!(d.state, DeployState::HostRollbackDone);
    }

    #[test]
    fn a_deploy_round_trips_through_json() {
        let mut d = started(&["worker-1"]);
        d.host(&host("worker-1"), false, 1).unwrap();
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.contains("\"state\":\"host\""), "{text}");
        assert!(text.contains("\"deploying\""), "{text}");
        let back: Deploy = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
    }
}

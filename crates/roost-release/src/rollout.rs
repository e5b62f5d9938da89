//! The System Controller's fleet software rollout: one release deployed to
//! many subclouds, stage by stage, as StarlingX dcmanager's `sw-deploy`
//! orchestration strategy does it, with a few safety features of Roost's
//! own: a canary stage that may wait for approval, a health soak after each
//! subcloud activates, an automatic rollback of a failed subcloud, and the
//! deferral of subclouds that are offline when their turn comes.
//!
//! Pure: every subcloud runs its orders itself. The server feeds
//! [`Rollout::tick`] what it knows of each subcloud (online or not, the
//! management-affecting alarms it raises, its latest report) and the time;
//! the rollout decides every step's state and which order each subcloud
//! should run. Orders are level-triggered: the server puts
//! [`Rollout::order_for`] into every sync reply to a subcloud, and the
//! subcloud reports the id of the order it runs and its phase. A report of
//! another order than the step's current one is ignored, so a late or
//! replayed report never moves a step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a subcloud is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderAction {
    /// Deploy the release up to activation (and stay activated).
    Deploy,
    /// Finish the deploy of the release (it was activated and soaked).
    Complete,
    /// Roll the subcloud back to the release it ran before.
    Rollback,
}

/// An order to one subcloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Unique and growing; the subcloud names it in its reports.
    pub id: u64,
    /// The release to deploy, complete or roll back from (empty in a
    /// rollback strategy).
    pub release_id: String,
    pub action: OrderAction,
}

named_states! {
    /// What a subcloud says of the order it runs. Written (in JSON too) as
    /// StarlingX's dcmanager writes a subcloud's strategy step state.
    Phase {
        PreCheck => "sw-deploy pre-check",
        CreateStrategy => "create VIM sw-deploy strategy",
        ApplyStrategy => "apply VIM sw-deploy strategy",
        /// The release is deployed and activated; it waits for a Complete
        /// order.
        Activated => "activated",
        Finishing => "finish sw-deploy strategy",
        Complete => "complete",
        Failed => "failed",
        RollingBack => "rolling back",
        RolledBack => "rolled-back",
        RollbackFailed => "rollback-failed",
    }
}

/// A subcloud's report of the order it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The id of the order the report is about.
    pub order: u64,
    pub phase: Phase,
    /// What the subcloud says: progress while running, the reason of a
    /// failure.
    pub details: String,
}

/// Facts about one subcloud at a tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudFacts {
    pub online: bool,
    /// Management-affecting alarms raised now, described ("100.101 on
    /// host=controller-0"); empty when healthy.
    pub unhealthy: Vec<String>,
    /// The subcloud's latest report, if any. It may be about an older order:
    /// a report whose `order` is not the step's current order id is ignored.
    pub report: Option<Report>,
}

/// What a subcloud without facts is taken to be: offline, with no report.
static NO_FACTS: CloudFacts = CloudFacts {
    online: false,
    unhealthy: Vec::new(),
    report: None,
};

named_states! {
    /// A strategy's state, written (stored and shown) as
    /// [`StrategyState::as_str`] writes it.
    StrategyState {
        /// Created, not applied yet.
        Initial => "initial",
        Applying => "applying",
        /// The canary stage ended well; the strategy waits for an `apply`
        /// to go on (Roost's own state).
        AwaitingApproval => "awaiting approval",
        /// Asked to abort; the next tick starts aborting.
        AbortRequested => "abort requested",
        /// Steps not started are aborted; the running ones run to their end.
        Aborting => "aborting",
        Complete => "complete",
        Failed => "failed",
        Aborted => "aborted",
    }
}

named_states! {
    /// A step's state (one step per subcloud), written (stored and shown)
    /// as [`StepState::as_str`] writes it.
    StepState {
        /// Not started.
        Initial => "initial",
        /// Its turn came while the subcloud was offline; it starts when the
        /// subcloud is back, or fails at the deferral deadline (Roost's own
        /// state).
        Deferred => "deferred",
        PreCheck => "sw-deploy pre-check",
        CreateStrategy => "create VIM sw-deploy strategy",
        ApplyStrategy => "apply VIM sw-deploy strategy",
        /// Activated; the subcloud must stay online and healthy until the
        /// soak ends (Roost's own state).
        Soaking => "soaking",
        /// Told to complete the deploy.
        Finishing => "finish sw-deploy strategy",
        /// Told to roll back: after a failure, or in a rollback strategy
        /// (Roost's own state).
        RollingBack => "rolling back",
        Complete => "complete",
        Failed => "failed",
        Aborted => "aborted",
    }
}

impl StepState {
    /// Whether the step has ended (complete, failed or aborted).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepState::Complete | StepState::Failed | StepState::Aborted
        )
    }

    /// Whether the step is in flight: started, not ended and not deferred.
    /// An in-flight step holds one of its stage's parallel slots.
    pub fn in_flight(self) -> bool {
        !matches!(self, StepState::Initial | StepState::Deferred) && !self.is_final()
    }
}

/// One stage of subclouds, run with at most `max_parallel` of them in flight
/// at once. The server builds the stages (for example a canary stage first,
/// then one stage per subcloud group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    pub name: String,
    pub subclouds: Vec<String>,
    pub max_parallel: u32,
}

/// What a strategy does and how careful it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The release to deploy; empty for a rollback strategy.
    pub release_id: String,
    /// StarlingX's `--rollback`: every step runs a Rollback order, and a
    /// subcloud that reports `rolled-back` completes its step.
    pub rollback: bool,
    /// A failure stops new steps from starting.
    pub stop_on_failure: bool,
    /// The first stage is a canary: when it ends with no failure, the
    /// strategy waits for approval (with `approval`) or goes on by itself.
    /// A canary failure always fails the strategy: no later stage starts.
    pub canary: bool,
    /// Wait for an `apply` after the canary stage.
    pub approval: bool,
    /// The health gate: after a subcloud reports `activated` it soaks this
    /// long; going offline or raising a management-affecting alarm during
    /// the soak fails its step. 0: no soak (the Complete order comes at
    /// once).
    pub soak_secs: u64,
    /// A failed step is rolled back (a Rollback order) before it ends
    /// failed.
    pub auto_rollback: bool,
    /// Offline subclouds are deferred rather than failed until this long
    /// after the strategy was applied; then they fail.
    pub defer_secs: u64,
}

/// One subcloud's part of the strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub cloud: String,
    /// The 1-based stage number.
    pub stage: usize,
    pub state: StepState,
    /// On failure: `<state it failed in>: <reason>`, followed by
    /// `; rolled back` or `; rollback failed: <why>` when a rollback ran.
    /// While running: the subcloud's latest details.
    pub details: String,
    /// The current order id (0: none yet).
    pub order: u64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the soak ends (set when the subcloud reports `activated`).
    pub soak_until: Option<i64>,
}

impl Step {
    /// Moves to `state`, noting when it ended if it did.
    fn set_state(&mut self, state: StepState, now: i64) {
        if self.state != state {
            self.state = state;
            self.updated_at = now;
            if state.is_final() {
                self.finished_at = Some(now);
            }
        }
    }

    fn set_details(&mut self, details: &str, now: i64) {
        if self.details != details {
            self.details = details.to_string();
            self.updated_at = now;
        }
    }
}

/// A fleet rollout strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub spec: Spec,
    /// The stages, empty ones dropped.
    pub stages: Vec<StagePlan>,
    pub state: StrategyState,
    /// One per subcloud, in stage order then in the stage's subcloud order.
    pub steps: Vec<Step>,
    /// Why it failed or was aborted.
    pub reason: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub applied_at: Option<i64>,
    /// The id the next order gets. Ids are unique and growing; the first is
    /// given at create (the server passes, for example, the time in
    /// microseconds, so that ids never repeat across strategies).
    pub next_order: u64,
    /// The canary stage was approved; the strategy never asks again.
    #[serde(default)]
    pub approved: bool,
}

/// Seconds as microseconds, saturating.
fn micros(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

/// The facts about `name`; a subcloud without facts is offline with no
/// report.
fn facts_of<'a>(facts: &'a BTreeMap<String, CloudFacts>, name: &str) -> &'a CloudFacts {
    facts.get(name).unwrap_or(&NO_FACTS)
}

/// A report's details, or `fallback` when the subcloud gave none.
fn said(report: &Report, fallback: &str) -> String {
    if report.details.is_empty() {
        fallback.to_string()
    } else {
        report.details.clone()
    }
}

impl Rollout {
    /// Builds a strategy in the `initial` state, one step per subcloud.
    /// Empty stages are dropped. Refuses (`Error::NotAllowed`) a deploy
    /// strategy without a release id, a stage with `max_parallel` 0, a
    /// subcloud listed twice, and a strategy with no subcloud at all
    /// (StarlingX's "Strategy has no steps to apply"). Order ids start at
    /// `first_order` (at 1 if it is 0, since 0 means no order).
    pub fn create(
        spec: Spec,
        stages: Vec<StagePlan>,
        first_order: u64,
        now: i64,
    ) -> Result<Rollout, Error> {
        if spec.release_id.is_empty() && !spec.rollback {
            return Err(Error::NotAllowed(
                "Strategy needs a release to deploy unless it is a rollback".into(),
            ));
        }
        let stages: Vec<StagePlan> = stages
            .into_iter()
            .filter(|s| !s.subclouds.is_empty())
            .collect();
        if stages.is_empty() {
            return Err(Error::NotAllowed("Strategy has no steps to apply".into()));
        }
        let mut seen = BTreeSet::new();
        let mut steps = Vec::new();
        for (i, plan) in stages.iter().enumerate() {
            if plan.max_parallel == 0 {
                return Err(Error::NotAllowed(format!(
                    "Stage {} has max_parallel 0: at least one subcloud must be allowed at once",
                    plan.name
                )));
            }
            for cloud in &plan.subclouds {
                if !seen.insert(cloud.as_str()) {
                    return Err(Error::NotAllowed(format!(
                        "Subcloud {cloud} is listed twice in the strategy"
                    )));
                }
                steps.push(Step {
                    cloud: cloud.clone(),
                    stage: i + 1,
                    state: StepState::Initial,
                    details: String::new(),
                    order: 0,
                    started_at: None,
                    finished_at: None,
                    created_at: now,
                    updated_at: now,
                    soak_until: None,
                });
            }
        }
        Ok(Rollout {
            spec,
            stages,
            state: StrategyState::Initial,
            steps,
            reason: String::new(),
            created_at: now,
            updated_at: now,
            applied_at: None,
            next_order: first_order.max(1),
            approved: false,
        })
    }

    /// Starts the strategy (from `initial`, noting `applied_at`), or
    /// approves the canary stage (from `awaiting approval`). Refused in any
    /// other state.
    pub fn apply(&mut self, now: i64) -> Result<(), Error> {
        match self.state {
            StrategyState::Initial => {
                self.applied_at = Some(now);
            }
            StrategyState::AwaitingApproval => {
                self.approved = true;
            }
            s => {
                return Err(Error::NotAllowed(format!(
                    "Strategy in state {s} cannot be applied"
                )));
            }
        }
        self.state = StrategyState::Applying;
        self.updated_at = now;
        Ok(())
    }

    /// Asks the strategy to abort (from `applying` or `awaiting approval`):
    /// the next tick aborts the steps not started and lets the running ones
    /// end. Refused in any other state.
    pub fn abort(&mut self, now: i64) -> Result<(), Error> {
        match self.state {
            StrategyState::Applying | StrategyState::AwaitingApproval => {
                self.state = StrategyState::AbortRequested;
                self.reason = "aborted by request".into();
                self.updated_at = now;
                Ok(())
            }
            s => Err(Error::NotAllowed(format!(
                "Strategy in state {s} cannot be aborted"
            ))),
        }
    }

    /// Whether the strategy may be deleted: only before it is applied or
    /// once it has ended.
    pub fn deletable(&self) -> Result<(), Error> {
        match self.state {
            StrategyState::Initial
            | StrategyState::Complete
            | StrategyState::Failed
            | StrategyState::Aborted => Ok(()),
            s => Err(Error::NotAllowed(format!(
                "Strategy in state {s} cannot be deleted"
            ))),
        }
    }

    /// Moves everything on as far as `facts` allow: running steps follow
    /// their subcloud's reports, soaking steps their health and the clock,
    /// new steps start where a stage has room, and the strategy ends when
    /// nothing is left to do. A subcloud missing from `facts` is offline
    /// with no report. Does nothing unless the strategy is applying or
    /// aborting. Answers whether anything changed (the caller then persists
    /// the strategy).
    pub fn tick(&mut self, facts: &BTreeMap<String, CloudFacts>, now: i64) -> bool {
        if !matches!(
            self.state,
            StrategyState::Applying | StrategyState::AbortRequested | StrategyState::Aborting
        ) {
            return false;
        }
        let before = self.clone();
        if self.state == StrategyState::AbortRequested {
            self.state = StrategyState::Aborting;
            for step in &mut self.steps {
                if matches!(step.state, StepState::Initial | StepState::Deferred) {
                    step.set_state(StepState::Aborted, now);
                }
            }
        }
        for i in 0..self.steps.len() {
            if self.steps[i].state.in_flight() {
                let f = facts_of(facts, &self.steps[i].cloud);
                self.advance(i, f, now);
            }
        }
        match self.state {
            StrategyState::Applying => {
                // Starting a step, deferring one or failing one at the
                // deadline may end a stage and open the next: go round
                // until nothing moves.
                while !self.stopped() {
                    if self.awaits_approval() {
                        self.state = StrategyState::AwaitingApproval;
                        break;
                    }
                    let started = self.start_steps(facts, now);
                    let failed = self.fail_overdue(now);
                    if !started && !failed {
                        break;
                    }
                }
                if self.state == StrategyState::Applying {
                    self.end_if_done();
                }
            }
            StrategyState::Aborting if !self.steps.iter().any(|s| s.state.in_flight()) => {
                self.state = StrategyState::Aborted;
            }
            _ => {}
        }
        if *self == before {
            return false;
        }
        self.updated_at = now;
        true
    }

    /// The order subcloud `name` should run now, or None (its step is not
    /// started, deferred or ended, or it is not in the strategy).
    pub fn order_for(&self, name: &str) -> Option<Order> {
        self.order_of(self.step(name)?)
    }

    /// The order the subcloud of `step` should run now, if any.
    pub fn order_of(&self, step: &Step) -> Option<Order> {
        let action = match step.state {
            StepState::PreCheck
            | StepState::CreateStrategy
            | StepState::ApplyStrategy
            | StepState::Soaking => OrderAction::Deploy,
            StepState::Finishing => OrderAction::Complete,
            StepState::RollingBack => OrderAction::Rollback,
            _ => return None,
        };
        Some(Order {
            id: step.order,
            release_id: self.spec.release_id.clone(),
            action,
        })
    }

    /// The step of subcloud `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.cloud == name)
    }

    /// How many steps are in each state, for progress displays: (the state
    /// as [`StepState::as_str`] writes it, the count), in [`StepState`]
    /// order, leaving out states no step is in.
    pub fn progress(&self) -> Vec<(&'static str, usize)> {
        StepState::ALL
            .iter()
            .filter_map(|&state| {
                let n = self.steps.iter().filter(|s| s.state == state).count();
                (n > 0).then_some((state.as_str(), n))
            })
            .collect()
    }

    /// Takes the next order id.
    fn take_order(&mut self) -> u64 {
        let id = self.next_order;
        self.next_order = self.next_order.saturating_add(1);
        id
    }

    /// Whether `step` failed: it ended failed, or it is being rolled back
    /// after a failure (in a deploy strategy a rollback only follows a
    /// failure).
    fn is_failure(&self, step: &Step) -> bool {
        step.state == StepState::Failed
            || (step.state == StepState::RollingBack && !self.spec.rollback)
    }

    /// Whether a failure of `step` stops new steps from starting.
    fn failure_stops(&self, step: &Step) -> bool {
        self.spec.stop_on_failure || (self.spec.canary && step.stage == 1)
    }

    /// Whether a failure has stopped new steps from starting.
    fn stopped(&self) -> bool {
        self.steps
            .iter()
            .any(|s| self.is_failure(s) && self.failure_stops(s))
    }

    /// Fails step `i` for `reason`: it is rolled back first if the strategy
    /// says so and an order ran, else it ends failed.
    fn fail_step(&mut self, i: usize, reason: &str, now: i64) {
        let roll_back = self.spec.auto_rollback && !self.spec.rollback && self.steps[i].order != 0;
        let order = if roll_back { self.take_order() } else { 0 };
        let step = &mut self.steps[i];
        step.details = format!("{}: {reason}", step.state);
        step.updated_at = now;
        if roll_back {
            step.order = order;
            step.set_state(StepState::RollingBack, now);
        } else {
            step.set_state(StepState::Failed, now);
        }
    }

    /// Follows an in-flight step with its subcloud's facts.
    fn advance(&mut self, i: usize, f: &CloudFacts, now: i64) {
        let step = &self.steps[i];
        let report = f
            .report
            .as_ref()
            .filter(|r| step.order != 0 && r.order == step.order);
        match step.state {
            // A subcloud still waiting for the release after the deferral
            // time will not get it: the step fails rather than hold a slot
            // for ever.
            StepState::PreCheck
                if report.is_none_or(|r| r.phase == Phase::PreCheck)
                    && step.started_at.is_some_and(|t| {
                        now >= t.saturating_add(micros(self.spec.defer_secs.max(1)))
                    }) =>
            {
                let why = report.map_or_else(
                    || "the subcloud never answered the order".to_string(),
                    |r| said(r, "waiting for the release"),
                );
                let reason = format!(
                    "still in pre-check after {} s ({why})",
                    self.spec.defer_secs.max(1)
                );
                self.fail_step(i, &reason, now);
            }
            StepState::PreCheck | StepState::CreateStrategy | StepState::ApplyStrategy => {
                let Some(r) = report else { return };
                let step = &mut self.steps[i];
                match r.phase {
                    Phase::PreCheck => {
                        step.set_details(&r.details, now);
                        step.set_state(StepState::PreCheck, now);
                    }
                    Phase::CreateStrategy => {
                        step.set_details(&r.details, now);
                        step.set_state(StepState::CreateStrategy, now);
                    }
                    Phase::ApplyStrategy => {
                        step.set_details(&r.details, now);
                        step.set_state(StepState::ApplyStrategy, now);
                    }
                    Phase::Activated => {
                        step.set_details(&r.details, now);
                        if self.spec.soak_secs == 0 {
                            step.set_state(StepState::Finishing, now);
                        } else {
                            step.soak_until = Some(now.saturating_add(micros(self.spec.soak_secs)));
                            step.set_state(StepState::Soaking, now);
                        }
                    }
                    // A subcloud that has the release deployed already may
                    // answer complete at once.
                    Phase::Complete => {
                        step.set_details(&r.details, now);
                        step.set_state(StepState::Complete, now);
                    }
                    Phase::Failed => {
                        let reason = said(r, "the subcloud reported a failure");
                        self.fail_step(i, &reason, now);
                    }
                    _ => {}
                }
            }
            StepState::Soaking => {
                if let Some(r) = report.filter(|r| r.phase == Phase::Failed) {
                    let reason = said(r, "the subcloud reported a failure");
                    self.fail_step(i, &reason, now);
                } else if !f.online {
                    self.fail_step(i, "went offline during the soak", now);
                } else if !f.unhealthy.is_empty() {
                    let reason = format!("raised {} during the soak", f.unhealthy.join(", "));
                    self.fail_step(i, &reason, now);
                } else if step.soak_until.is_none_or(|until| now >= until) {
                    self.steps[i].set_state(StepState::Finishing, now);
                }
            }
            StepState::Finishing => {
                let Some(r) = report else { return };
                match r.phase {
                    Phase::Finishing => self.steps[i].set_details(&r.details, now),
                    Phase::Complete => {
                        let step = &mut self.steps[i];
                        step.set_details(&r.details, now);
                        step.set_state(StepState::Complete, now);
                    }
                    Phase::Failed => {
                        let reason = said(r, "the subcloud reported a failure");
                        self.fail_step(i, &reason, now);
                    }
                    _ => {}
                }
            }
            StepState::RollingBack if self.spec.rollback => {
                let Some(r) = report else { return };
                match r.phase {
                    Phase::RollingBack => self.steps[i].set_details(&r.details, now),
                    Phase::RolledBack => {
                        let step = &mut self.steps[i];
                        step.set_details(&r.details, now);
                        step.set_state(StepState::Complete, now);
                    }
                    Phase::RollbackFailed | Phase::Failed => {
                        let reason = said(r, "the subcloud reported a failure");
                        self.fail_step(i, &reason, now);
                    }
                    _ => {}
                }
            }
            StepState::RollingBack => {
                // A rollback after a failure: the details keep the failure.
                let Some(r) = report else { return };
                let step = &mut self.steps[i];
                match r.phase {
                    Phase::RolledBack => {
                        step.details.push_str("; rolled back");
                        step.updated_at = now;
                        step.set_state(StepState::Failed, now);
                    }
                    Phase::RollbackFailed | Phase::Failed => {
                        let why = said(r, "no reason given");
                        step.details.push_str(&format!("; rollback failed: {why}"));
                        step.updated_at = now;
                        step.set_state(StepState::Failed, now);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// The active stage (1-based): the first whose steps are not all ended
    /// or deferred. None when every stage is.
    fn active_stage(&self) -> Option<usize> {
        // A canary stage proves nothing until one of its subclouds is
        // updated: while all the others wait offline, it stays active.
        if self.spec.canary && self.canary_unproven() {
            return Some(1);
        }
        self.steps
            .iter()
            .find(|s| !s.state.is_final() && s.state != StepState::Deferred)
            .map(|s| s.stage)
    }

    /// Whether the canary stage still has deferred subclouds and none
    /// completed.
    fn canary_unproven(&self) -> bool {
        let mut canaries = self.steps.iter().filter(|s| s.stage == 1);
        canaries.clone().any(|s| s.state == StepState::Deferred)
            && !canaries.any(|s| s.state == StepState::Complete)
    }

    /// Whether the canary stage ended well and the strategy must wait for
    /// approval before the second stage starts.
    fn awaits_approval(&self) -> bool {
        if !self.spec.canary || !self.spec.approval || self.approved || self.stages.len() < 2 {
            return false;
        }
        let canary_ended = !self.canary_unproven()
            && self.steps.iter().filter(|s| s.stage == 1).all(|s| {
                (s.state.is_final() || s.state == StepState::Deferred)
                    && s.state != StepState::Failed
            });
        let second_untouched = self
            .steps
            .iter()
            .filter(|s| s.stage == 2)
            .all(|s| s.state == StepState::Initial);
        canary_ended && second_untouched
    }

    /// Starts what may start: deferred steps of the stages reached whose
    /// subcloud is back, then the active stage's steps in order, each while
    /// its stage has a free slot. A subcloud offline at its turn is
    /// deferred (taking no slot). Answers whether a step moved.
    fn start_steps(&mut self, facts: &BTreeMap<String, CloudFacts>, now: i64) -> bool {
        // With every stage ended or deferred, every stage has been reached.
        let active = self.active_stage().unwrap_or(self.stages.len());
        let mut busy = vec![0usize; self.stages.len()];
        for s in self.steps.iter().filter(|s| s.state.in_flight()) {
            busy[s.stage - 1] += 1;
        }
        let mut moved = false;
        for i in 0..self.steps.len() {
            let stage = self.steps[i].stage;
            if stage > active {
                break;
            }
            let free = busy[stage - 1] < self.stages[stage - 1].max_parallel as usize;
            let online = facts_of(facts, &self.steps[i].cloud).online;
            match self.steps[i].state {
                StepState::Deferred if online && free => {}
                StepState::Initial if stage == active && free => {
                    if !online {
                        let step = &mut self.steps[i];
                        step.set_details("the subcloud is offline", now);
                        step.set_state(StepState::Deferred, now);
                        moved = true;
                        continue;
                    }
                }
                _ => continue,
            }
            let order = self.take_order();
            let state = if self.spec.rollback {
                StepState::RollingBack
            } else {
                StepState::PreCheck
            };
            let step = &mut self.steps[i];
            step.order = order;
            step.started_at = Some(now);
            step.set_details("", now);
            step.set_state(state, now);
            busy[stage - 1] += 1;
            moved = true;
        }
        moved
    }

    /// Fails the deferred steps once the deferral deadline has passed (with
    /// no rollback: nothing ran), until a failure stops the strategy.
    /// Answers whether a step failed.
    fn fail_overdue(&mut self, now: i64) -> bool {
        let Some(applied) = self.applied_at else {
            return false;
        };
        if now < applied.saturating_add(micros(self.spec.defer_secs)) {
            return false;
        }
        let mut failed = false;
        for i in 0..self.steps.len() {
            if self.stopped() {
                break;
            }
            if self.steps[i].state == StepState::Deferred {
                self.fail_step(i, "offline past the deferral deadline", now);
                failed = true;
            }
        }
        failed
    }

    /// Ends the strategy when nothing is in flight and either every step
    /// has ended or a failure stopped it: complete with no failure, else
    /// failed.
    fn end_if_done(&mut self) {
        if self.steps.iter().any(|s| s.state.in_flight()) {
            return;
        }
        let all_ended = self.steps.iter().all(|s| s.state.is_final());
        if !all_ended && !self.stopped() {
            return;
        }
        let failed: Vec<&Step> = self
            .steps
            .iter()
            .filter(|s| s.state == StepState::Failed)
            .collect();
        match failed.iter().min_by_key(|s| s.finished_at) {
            None => self.state = StrategyState::Complete,
            Some(first) => {
                self.reason = format!(
                    "{} of {} subclouds failed; the first was {} ({})",
                    failed.len(),
                    self.steps.len(),
                    first.cloud,
                    first.details
                );
                self.state = StrategyState::Failed;
            }
        }
    }
}

#[cfg(test)]
mod tests;

use super::*;
use StepState as S;

/// When every strategy here is created and applied.
const T0: i64 = 1_700_000_000_000_000;
const SEC: i64 = 1_000_000;
/// The first order id of every strategy here.
const FIRST: u64 = 500;
const RELEASE: &str = "roost-1.1.0";

fn spec() -> Spec {
    Spec {
        release_id: RELEASE.into(),
        rollback: false,
        stop_on_failure: false,
        canary: false,
        approval: false,
        soak_secs: 0,
        auto_rollback: false,
        defer_secs: 600,
    }
}

fn stage(name: &str, clouds: &[&str], max_parallel: u32) -> StagePlan {
    StagePlan {
        name: name.into(),
        subclouds: clouds.iter().map(|c| c.to_string()).collect(),
        max_parallel,
    }
}

fn refusal(r: Result<Rollout, Error>) -> String {
    match r {
        Err(Error::NotAllowed(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A rollout driven by a simulated clock, one tick a second, with the facts
/// the server would hold about each subcloud.
struct Sim {
    r: Rollout,
    now: i64,
    facts: BTreeMap<String, CloudFacts>,
}

impl Sim {
    /// A strategy created and applied at `T0`, every subcloud online and
    /// healthy.
    fn applied(spec: Spec, stages: Vec<StagePlan>) -> Sim {
        let mut r = Rollout::create(spec, stages, FIRST, T0).unwrap();
        let facts = r
            .steps
            .iter()
            .map(|s| {
                let f = CloudFacts {
                    online: true,
                    ..CloudFacts::default()
                };
                (s.cloud.clone(), f)
            })
            .collect();
        r.apply(T0).unwrap();
        Sim { r, now: T0, facts }
    }

    /// One second on, then a tick.
    fn tick(&mut self) -> bool {
        self.now += SEC;
        self.r.tick(&self.facts, self.now)
    }

    /// Ticks until the clock reads `t`.
    fn run_to(&mut self, t: i64) {
        while self.now < t {
            self.tick();
        }
    }

    fn online(&mut self, name: &str, online: bool) {
        self.facts.get_mut(name).unwrap().online = online;
    }

    fn alarm(&mut self, name: &str, alarm: &str) {
        self.facts
            .get_mut(name)
            .unwrap()
            .unhealthy
            .push(alarm.into());
    }

    /// The subcloud reports `phase` of the order it is given now.
    fn say(&mut self, name: &str, phase: Phase, details: &str) {
        let order = self
            .r
            .order_for(name)
            .expect("the subcloud has no order")
            .id;
        self.facts.get_mut(name).unwrap().report = Some(Report {
            order,
            phase,
            details: details.into(),
        });
    }

    /// Reports, then ticks.
    fn report(&mut self, name: &str, phase: Phase, details: &str) -> bool {
        self.say(name, phase, details);
        self.tick()
    }

    /// A running subcloud activates and, with no soak, completes.
    fn finish(&mut self, name: &str) {
        self.report(name, Phase::Activated, "");
        assert_eq!(self.state(name), S::Finishing, "{name}");
        self.report(name, Phase::Complete, "");
        assert_eq!(self.state(name), S::Complete, "{name}");
    }

    /// The running subcloud fails its deploy.
    fn fail(&mut self, name: &str, why: &str) {
        self.report(name, Phase::Failed, why);
    }

    fn step(&self, name: &str) -> &Step {
        self.r.step(name).unwrap()
    }

    fn state(&self, name: &str) -> StepState {
        self.step(name).state
    }

    fn states(&self) -> Vec<StepState> {
        self.r.steps.iter().map(|s| s.state).collect()
    }

    /// The subclouds in flight, in step order.
    fn in_flight(&self) -> Vec<&str> {
        self.r
            .steps
            .iter()
            .filter(|s| s.state.in_flight())
            .map(|s| s.cloud.as_str())
            .collect()
    }

    fn order(&self, name: &str) -> Option<(u64, OrderAction)> {
        self.r.order_for(name).map(|o| (o.id, o.action))
    }
}

// ----- create and the state rules -------------------------------------------

#[test]
fn create_refuses_what_cannot_run_and_drops_empty_stages() {
    let stages = || vec![stage("a", &["edge-1"], 1)];
    let no_release = Spec {
        release_id: String::new(),
        ..spec()
    };
    assert!(refusal(Rollout::create(no_release, stages(), FIRST, T0)).contains("release"));
    assert_eq!(
        refusal(Rollout::create(spec(), vec![], FIRST, T0)),
        "Strategy has no steps to apply"
    );
    assert_eq!(
        refusal(Rollout::create(
            spec(),
            vec![stage("a", &[], 1), stage("b", &[], 3)],
            FIRST,
            T0
        )),
        "Strategy has no steps to apply"
    );
    assert_eq!(
        refusal(Rollout::create(
            spec(),
            vec![
                stage("a", &["edge-1"], 1),
                stage("b", &["edge-2", "edge-1"], 1)
            ],
            FIRST,
            T0
        )),
        "Subcloud edge-1 is listed twice in the strategy"
    );
    assert!(
        refusal(Rollout::create(
            spec(),
            vec![stage("a", &["edge-1"], 0)],
            FIRST,
            T0
        ))
        .contains("Stage a has max_parallel 0")
    );

    let r = Rollout::create(
        spec(),
        vec![
            stage("empty", &[], 0),
            stage("canary", &["edge-1"], 1),
            stage("none", &[], 1),
            stage("rest", &["edge-2", "edge-3"], 2),
        ],
        0,
        T0,
    )
    .unwrap();
    assert_eq!(r.state, StrategyState::Initial);
    assert_eq!(r.stages.len(), 2);
    let placed: Vec<(&str, usize)> = r
        .steps
        .iter()
        .map(|s| (s.cloud.as_str(), s.stage))
        .collect();
    assert_eq!(placed, [("edge-1", 1), ("edge-2", 2), ("edge-3", 2)]);
    assert!(r.steps.iter().all(|s| s.state == S::Initial
        && s.order == 0
        && s.created_at == T0
        && s.started_at.is_none()));
    assert_eq!(r.next_order, 1, "0 is no order: ids start at 1");
    assert_eq!(r.applied_at, None);
    assert_eq!(r.progress(), [("initial", 3)]);

    // A rollback strategy needs no release.
    let rollback = Spec {
        release_id: String::new(),
        rollback: true,
        ..spec()
    };
    Rollout::create(rollback, stages(), FIRST, T0).unwrap();
}

#[test]
fn state_rules_refuse_with_the_starlingx_wording() {
    let msg = |r: Result<(), Error>| match r {
        Err(Error::NotAllowed(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut r = Rollout::create(spec(), vec![stage("a", &["edge-1"], 1)], FIRST, T0).unwrap();
    r.deletable().unwrap();
    assert_eq!(
        msg(r.abort(T0)),
        "Strategy in state initial cannot be aborted"
    );
    r.apply(T0 + SEC).unwrap();
    assert_eq!(r.state, StrategyState::Applying);
    assert_eq!(r.applied_at, Some(T0 + SEC));
    assert_eq!(r.updated_at, T0 + SEC);
    assert_eq!(
        msg(r.apply(T0 + 2 * SEC)),
        "Strategy in state applying cannot be applied"
    );
    assert_eq!(
        r.applied_at,
        Some(T0 + SEC),
        "a refused apply changes nothing"
    );
    assert_eq!(
        msg(r.deletable()),
        "Strategy in state applying cannot be deleted"
    );
    r.abort(T0 + 3 * SEC).unwrap();
    assert_eq!(r.state, StrategyState::AbortRequested);
    assert_eq!(r.reason, "aborted by request");
    assert_eq!(
        msg(r.deletable()),
        "Strategy in state abort requested cannot be deleted"
    );
    assert_eq!(
        msg(r.abort(T0 + 4 * SEC)),
        "Strategy in state abort requested cannot be aborted"
    );
    assert_eq!(
        msg(r.apply(T0 + 4 * SEC)),
        "Strategy in state abort requested cannot be applied"
    );
    // Nothing ran: the next tick aborts it at once.
    assert!(r.tick(&BTreeMap::new(), T0 + 5 * SEC));
    assert_eq!(r.state, StrategyState::Aborted);
    assert_eq!(r.steps[0].state, S::Aborted);
    r.deletable().unwrap();
    assert_eq!(
        msg(r.apply(T0 + 6 * SEC)),
        "Strategy in state aborted cannot be applied"
    );
}

#[test]
fn tick_does_nothing_before_apply_after_the_end_or_when_nothing_moved() {
    let mut r = Rollout::create(spec(), vec![stage("a", &["edge-1"], 1)], FIRST, T0).unwrap();
    let facts: BTreeMap<String, CloudFacts> = [(
        "edge-1".to_string(),
        CloudFacts {
            online: true,
            ..CloudFacts::default()
        },
    )]
    .into();
    let before = r.clone();
    assert!(!r.tick(&facts, T0 + SEC));
    assert_eq!(r, before);

    let mut s = Sim::applied(spec(), vec![stage("a", &["edge-1"], 1)]);
    assert!(s.tick());
    assert_eq!(s.step("edge-1").updated_at, s.now);
    let (step_at, strategy_at) = (s.step("edge-1").updated_at, s.r.updated_at);
    assert!(!s.tick(), "no news, no change");
    assert_eq!(s.step("edge-1").updated_at, step_at);
    assert_eq!(s.r.updated_at, strategy_at);
    // Progress details alone are a change.
    assert!(s.report("edge-1", Phase::PreCheck, "checking alarms"));
    assert_eq!(s.step("edge-1").details, "checking alarms");
    assert_eq!(s.step("edge-1").updated_at, s.now);
    assert_eq!(s.r.updated_at, s.now);
    s.finish("edge-1");
    assert_eq!(s.r.state, StrategyState::Complete);
    let done = s.r.clone();
    assert!(!s.tick());
    assert_eq!(s.r, done);
}

// ----- starting steps --------------------------------------------------------

#[test]
fn a_serial_stage_starts_one_subcloud_at_a_time_in_order() {
    let mut s = Sim::applied(spec(), vec![stage("a", &["edge-1", "edge-2", "edge-3"], 1)]);
    assert!(s.tick());
    assert_eq!(s.states(), [S::PreCheck, S::Initial, S::Initial]);
    assert_eq!(
        s.r.order_for("edge-1"),
        Some(Order {
            id: FIRST,
            release_id: RELEASE.into(),
            action: OrderAction::Deploy
        })
    );
    assert_eq!(s.step("edge-1").started_at, Some(s.now));
    assert_eq!(s.r.order_for("edge-2"), None);
    assert_eq!(s.r.order_for("edge-9"), None);
    s.run_to(s.now + 30 * SEC);
    assert_eq!(s.in_flight(), ["edge-1"], "still one at a time");

    // edge-2 starts in the very tick edge-1 completes.
    s.finish("edge-1");
    assert_eq!(s.in_flight(), ["edge-2"]);
    assert_eq!(s.order("edge-2"), Some((FIRST + 1, OrderAction::Deploy)));
    s.finish("edge-2");
    assert_eq!(s.order("edge-3"), Some((FIRST + 2, OrderAction::Deploy)));
    assert_eq!(s.r.state, StrategyState::Applying);
    s.finish("edge-3");
    assert_eq!(s.r.state, StrategyState::Complete);
    assert_eq!(s.r.next_order, FIRST + 3);
    assert_eq!(s.r.progress(), [("complete", 3)]);
}

#[test]
fn a_stage_run_by_two_keeps_two_in_flight_then_the_next_stage_starts() {
    let mut s = Sim::applied(
        spec(),
        vec![
            stage("a", &["edge-1", "edge-2", "edge-3", "edge-4"], 2),
            stage("b", &["edge-5"], 2),
        ],
    );
    s.tick();
    assert_eq!(s.in_flight(), ["edge-1", "edge-2"]);
    assert_eq!(s.order("edge-1"), Some((FIRST, OrderAction::Deploy)));
    assert_eq!(s.order("edge-2"), Some((FIRST + 1, OrderAction::Deploy)));
    assert_eq!(s.r.progress(), [("initial", 3), ("sw-deploy pre-check", 2)]);
    s.finish("edge-2");
    assert_eq!(s.in_flight(), ["edge-1", "edge-3"]);
    assert_eq!(s.order("edge-3"), Some((FIRST + 2, OrderAction::Deploy)));
    s.finish("edge-1");
    assert_eq!(s.in_flight(), ["edge-3", "edge-4"]);
    assert_eq!(s.order("edge-4"), Some((FIRST + 3, OrderAction::Deploy)));
    s.finish("edge-3");
    assert_eq!(
        s.in_flight(),
        ["edge-4"],
        "stage b waits for all of stage a"
    );
    assert_eq!(s.state("edge-5"), S::Initial);
    s.finish("edge-4");
    assert_eq!(s.in_flight(), ["edge-5"]);
    assert_eq!(s.order("edge-5"), Some((FIRST + 4, OrderAction::Deploy)));
    s.finish("edge-5");
    assert_eq!(s.r.state, StrategyState::Complete);
}

// ----- one subcloud's phases -------------------------------------------------

#[test]
fn a_subcloud_walks_every_phase_through_the_soak_to_complete() {
    let soak = Spec {
        soak_secs: 60,
        ..spec()
    };
    let mut s = Sim::applied(soak, vec![stage("a", &["edge-1"], 1)]);
    s.tick();
    let started = s.now;
    s.report("edge-1", Phase::PreCheck, "checking the subcloud's health");
    assert_eq!(s.state("edge-1"), S::PreCheck);
    assert_eq!(s.step("edge-1").details, "checking the subcloud's health");
    s.report("edge-1", Phase::CreateStrategy, "creating");
    assert_eq!(s.state("edge-1"), S::CreateStrategy);
    s.report("edge-1", Phase::ApplyStrategy, "host controller-0");
    assert_eq!(s.state("edge-1"), S::ApplyStrategy);
    assert_eq!(s.step("edge-1").details, "host controller-0");
    assert_eq!(s.r.progress(), [("apply VIM sw-deploy strategy", 1)]);

    s.report("edge-1", Phase::Activated, "activated");
    let activated = s.now;
    assert_eq!(s.state("edge-1"), S::Soaking);
    assert_eq!(s.step("edge-1").soak_until, Some(activated + 60 * SEC));
    assert_eq!(
        s.order("edge-1"),
        Some((FIRST, OrderAction::Deploy)),
        "soaking keeps the deploy order"
    );
    s.run_to(activated + 59 * SEC);
    assert_eq!(s.state("edge-1"), S::Soaking);
    s.tick();
    assert_eq!(s.state("edge-1"), S::Finishing);
    assert_eq!(
        s.r.order_for("edge-1"),
        Some(Order {
            id: FIRST,
            release_id: RELEASE.into(),
            action: OrderAction::Complete
        })
    );
    // The subcloud still says activated until it takes the new action.
    assert!(!s.tick());
    s.report("edge-1", Phase::Finishing, "deploy complete running");
    assert_eq!(s.state("edge-1"), S::Finishing);
    assert_eq!(s.step("edge-1").details, "deploy complete running");
    s.report("edge-1", Phase::Complete, "");
    let step = s.step("edge-1");
    assert_eq!(step.state, S::Complete);
    assert_eq!(step.started_at, Some(started));
    assert_eq!(step.finished_at, Some(s.now));
    assert_eq!(s.r.order_for("edge-1"), None);
    assert_eq!(s.r.state, StrategyState::Complete);
    assert_eq!(s.r.reason, "");
    s.r.deletable().unwrap();
}

#[test]
fn a_subcloud_that_has_the_release_already_may_answer_complete_at_once() {
    let mut s = Sim::applied(spec(), vec![stage("a", &["edge-1", "edge-2"], 1)]);
    s.tick();
    s.report("edge-1", Phase::Complete, "already deployed");
    assert_eq!(s.state("edge-1"), S::Complete);
    assert_eq!(s.step("edge-1").details, "already deployed");
    assert_eq!(s.in_flight(), ["edge-2"]);
}

#[test]
fn a_running_subcloud_that_goes_offline_is_waited_for() {
    let mut s = Sim::applied(spec(), vec![stage("a", &["edge-1"], 1)]);
    s.tick();
    s.report("edge-1", Phase::ApplyStrategy, "host controller-0");
    s.online("edge-1", false);
    s.run_to(s.now + 3600 * SEC);
    assert_eq!(s.state("edge-1"), S::ApplyStrategy);
    assert_eq!(s.r.state, StrategyState::Applying);
    s.online("edge-1", true);
    s.finish("edge-1");
    assert_eq!(s.r.state, StrategyState::Complete);
}

#[test]
fn a_report_of_an_older_order_is_ignored() {
    let mut s = Sim::applied(spec(), vec![stage("a", &["edge-1"], 1)]);
    s.tick();
    for phase in [Phase::Failed, Phase::Complete, Phase::Activated] {
        s.facts.get_mut("edge-1").unwrap().report = Some(Report {
            order: FIRST - 1,
            phase,
            details: "from the last strategy".into(),
        });
        assert!(!s.tick(), "{phase}");
        assert_eq!(s.state("edge-1"), S::PreCheck);
        assert_eq!(s.step("edge-1").details, "");
    }
    s.finish("edge-1");
}

#[test]
fn a_failure_reported_in_a_phase_fails_the_step_in_that_phase() {
    let mut s = Sim::applied(spec(), vec![stage("a", &["edge-1", "edge-2"], 2)]);
    s.tick();
    s.fail("edge-1", "the release is not uploaded");
    let step = s.step("edge-1");
    assert_eq!(step.state, S::Failed);
    assert_eq!(
        step.details,
        "sw-deploy pre-check: the release is not uploaded"
    );
    assert_eq!(step.finished_at, Some(s.now));
    assert_eq!(s.r.order_for("edge-1"), None);

    s.report("edge-2", Phase::CreateStrategy, "");
    s.fail("edge-2", "");
    assert_eq!(
        s.step("edge-2").details,
        "create VIM sw-deploy strategy: the subcloud reported a failure"
    );
    assert_eq!(s.r.state, StrategyState::Failed);
    assert_eq!(
        s.r.reason,
        "2 of 2 subclouds failed; the first was edge-1 \
         (sw-deploy pre-check: the release is not uploaded)"
    );
}

// ----- the soak and rollbacks ------------------------------------------------

fn soaking(spec: Spec) -> Sim {
    let spec = Spec {
        soak_secs: 300,
        ..spec
    };
    let mut s = Sim::applied(spec, vec![stage("a", &["edge-1", "edge-2"], 1)]);
    s.tick();
    s.report("edge-1", Phase::Activated, "");
    assert_eq!(s.state("edge-1"), S::Soaking);
    s.run_to(s.now + 10 * SEC);
    assert_eq!(s.state("edge-1"), S::Soaking);
    s
}

#[test]
fn an_alarm_during_the_soak_fails_the_step() {
    let mut s = soaking(spec());
    s.alarm("edge-1", "100.101 on host=controller-0");
    s.alarm("edge-1", "200.004 on host=worker-1");
    assert!(s.tick());
    let step = s.step("edge-1");
    assert_eq!(step.state, S::Failed);
    assert_eq!(
        step.details,
        "soaking: raised 100.101 on host=controller-0, 200.004 on host=worker-1 during the soak"
    );
    assert_eq!(step.order, FIRST);
    assert_eq!(s.r.order_for("edge-1"), None);
    // No stop on failure: the next subcloud starts at once.
    assert_eq!(s.order("edge-2"), Some((FIRST + 1, OrderAction::Deploy)));
}

#[test]
fn going_offline_during_the_soak_rolls_the_step_back_under_a_new_order() {
    let mut s = soaking(Spec {
        auto_rollback: true,
        ..spec()
    });
    s.online("edge-1", false);
    assert!(s.tick());
    let step = s.step("edge-1");
    assert_eq!(step.state, S::RollingBack);
    assert_eq!(step.details, "soaking: went offline during the soak");
    assert_eq!(step.finished_at, None);
    assert_eq!(
        s.r.order_for("edge-1"),
        Some(Order {
            id: FIRST + 1,
            release_id: RELEASE.into(),
            action: OrderAction::Rollback
        })
    );
    // The rollback holds the stage's one slot.
    assert_eq!(s.in_flight(), ["edge-1"]);
    s.run_to(s.now + 30 * SEC);
    s.online("edge-1", true);
    // Its report of the deploy order is stale now.
    assert!(!s.tick());
    assert_eq!(s.state("edge-1"), S::RollingBack);
    // Rollback progress does not hide the failure.
    assert!(!s.report("edge-1", Phase::RollingBack, "host controller-0"));
    assert_eq!(
        s.step("edge-1").details,
        "soaking: went offline during the soak"
    );
    s.report("edge-1", Phase::RolledBack, "");
    let step = s.step("edge-1");
    assert_eq!(step.state, S::Failed);
    assert_eq!(
        step.details,
        "soaking: went offline during the soak; rolled back"
    );
    assert_eq!(step.finished_at, Some(s.now));
    assert_eq!(s.r.order_for("edge-1"), None);
    assert_eq!(s.order("edge-2"), Some((FIRST + 2, OrderAction::Deploy)));
}

#[test]
fn going_offline_during_the_soak_fails_at_once_without_auto_rollback() {
    let mut s = soaking(spec());
    s.online("edge-1", false);
    s.tick();
    assert_eq!(s.state("edge-1"), S::Failed);
    assert_eq!(
        s.step("edge-1").details,
        "soaking: went offline during the soak"
    );
    assert_eq!(s.r.next_order, FIRST + 2, "edge-2's order only");
}

#[test]
fn a_rollback_that_fails_says_why() {
    let mut s = soaking(Spec {
        auto_rollback: true,
        ..spec()
    });
    s.alarm("edge-1", "100.101 on host=controller-0");
    s.tick();
    assert_eq!(s.order("edge-1"), Some((FIRST + 1, OrderAction::Rollback)));
    s.report(
        "edge-1",
        Phase::RollbackFailed,
        "the previous release is gone",
    );
    assert_eq!(s.state("edge-1"), S::Failed);
    assert_eq!(
        s.step("edge-1").details,
        "soaking: raised 100.101 on host=controller-0 during the soak; \
         rollback failed: the previous release is gone"
    );
}

#[test]
fn a_failure_while_finishing_is_rolled_back_too() {
    let mut s = Sim::applied(
        Spec {
            auto_rollback: true,
            ..spec()
        },
        vec![stage("a", &["edge-1"], 1)],
    );
    s.tick();
    s.report("edge-1", Phase::Activated, "");
    assert_eq!(s.order("edge-1"), Some((FIRST, OrderAction::Complete)));
    s.fail("edge-1", "deploy complete refused");
    assert_eq!(s.order("edge-1"), Some((FIRST + 1, OrderAction::Rollback)));
    assert_eq!(
        s.r.state,
        StrategyState::Applying,
        "it waits for the rollback"
    );
    s.report("edge-1", Phase::RolledBack, "");
    assert_eq!(
        s.step("edge-1").details,
        "finish sw-deploy strategy: deploy complete refused; rolled back"
    );
    assert_eq!(s.r.state, StrategyState::Failed);
}

// ----- failures and the strategy ---------------------------------------------

#[test]
fn stop_on_failure_stops_new_starts_and_leaves_the_rest_initial() {
    let stop = Spec {
        stop_on_failure: true,
        ..spec()
    };
    let mut s = Sim::applied(
        stop,
        vec![
            stage("a", &["edge-1", "edge-2"], 1),
            stage("b", &["edge-3"], 1),
        ],
    );
    s.tick();
    s.fail("edge-1", "disk full");
    assert_eq!(s.states(), [S::Failed, S::Initial, S::Initial]);
    assert_eq!(s.r.state, StrategyState::Failed);
    assert_eq!(
        s.r.reason,
        "1 of 3 subclouds failed; the first was edge-1 (sw-deploy pre-check: disk full)"
    );
    assert_eq!(s.r.next_order, FIRST + 1);
    assert!(!s.tick());
    s.r.deletable().unwrap();
}

#[test]
fn stop_on_failure_waits_for_the_running_steps_and_the_rollback() {
    let stop = Spec {
        stop_on_failure: true,
        auto_rollback: true,
        ..spec()
    };
    let mut s = Sim::applied(stop, vec![stage("a", &["edge-1", "edge-2", "edge-3"], 2)]);
    s.tick();
    s.fail("edge-1", "disk full");
    assert_eq!(s.states(), [S::RollingBack, S::PreCheck, S::Initial]);
    s.finish("edge-2");
    assert_eq!(
        s.state("edge-3"),
        S::Initial,
        "no new start after a failure"
    );
    assert_eq!(s.r.state, StrategyState::Applying);
    s.report("edge-1", Phase::RolledBack, "");
    assert_eq!(s.states(), [S::Failed, S::Complete, S::Initial]);
    assert_eq!(s.r.state, StrategyState::Failed);
    assert_eq!(
        s.r.reason,
        "1 of 3 subclouds failed; the first was edge-1 \
         (sw-deploy pre-check: disk full; rolled back)"
    );
}

#[test]
fn without_stop_on_failure_the_others_go_on_and_the_strategy_ends_failed() {
    let mut s = Sim::applied(
        spec(),
        vec![
            stage("a", &["edge-1", "edge-2"], 1),
            stage("b", &["edge-3"], 1),
        ],
    );
    s.tick();
    s.fail("edge-1", "disk full");
    assert_eq!(s.in_flight(), ["edge-2"]);
    s.finish("edge-2");
    assert_eq!(s.in_flight(), ["edge-3"]);
    assert_eq!(s.r.state, StrategyState::Applying);
    s.finish("edge-3");
    assert_eq!(s.states(), [S::Failed, S::Complete, S::Complete]);
    assert_eq!(s.r.state, StrategyState::Failed);
    assert_eq!(
        s.r.reason,
        "1 of 3 subclouds failed; the first was edge-1 (sw-deploy pre-check: disk full)"
    );
    assert_eq!(s.r.progress(), [("complete", 2), ("failed", 1)]);
}

// ----- the canary stage ------------------------------------------------------

fn canary(approval: bool) -> Sim {
    let spec = Spec {
        canary: true,
        approval,
        ..spec()
    };
    Sim::applied(
        spec,
        vec![
            stage("canary", &["edge-1", "edge-2"], 2),
            stage("group-a", &["edge-3", "edge-4"], 2),
            stage("group-b", &["edge-5"], 1),
        ],
    )
}

#[test]
fn a_canary_failure_stops_the_strategy_even_without_stop_on_failure() {
    let mut s = canary(false);
    s.tick();
    assert_eq!(s.in_flight(), ["edge-1", "edge-2"]);
    s.fail("edge-1", "the health check failed");
    assert_eq!(s.r.state, StrategyState::Applying, "edge-2 still runs");
    s.finish("edge-2");
    assert_eq!(
        s.states(),
        [S::Failed, S::Complete, S::Initial, S::Initial, S::Initial]
    );
    assert_eq!(s.r.state, StrategyState::Failed);
    assert!(s.r.reason.contains("edge-1"), "{}", s.r.reason);
}

#[test]
fn a_failure_after_the_canary_stage_does_not_stop_the_others() {
    let mut s = canary(false);
    s.tick();
    s.finish("edge-1");
    s.finish("edge-2");
    assert_eq!(s.in_flight(), ["edge-3", "edge-4"]);
    s.fail("edge-3", "disk full");
    s.finish("edge-4");
    assert_eq!(s.in_flight(), ["edge-5"]);
    s.finish("edge-5");
    assert_eq!(s.r.state, StrategyState::Failed);
}

#[test]
fn a_canary_without_approval_goes_straight_on() {
    let mut s = canary(false);
    s.tick();
    s.finish("edge-1");
    s.finish("edge-2");
    assert_eq!(s.r.state, StrategyState::Applying);
    assert_eq!(s.in_flight(), ["edge-3", "edge-4"]);
}

#[test]
fn a_canary_waits_for_approval_then_the_later_stages_run() {
    let mut s = canary(true);
    s.tick();
    s.finish("edge-1");
    assert_eq!(s.r.state, StrategyState::Applying);
    s.finish("edge-2");
    assert_eq!(s.r.state, StrategyState::AwaitingApproval);
    assert_eq!(s.r.updated_at, s.now);
    assert!(s.in_flight().is_empty());
    assert_eq!(s.r.order_for("edge-3"), None);
    // Waiting changes nothing however long it lasts.
    let waiting = s.r.clone();
    s.run_to(s.now + 3600 * SEC);
    assert_eq!(s.r, waiting);
    assert!(s.r.deletable().is_err());

    s.r.apply(s.now).unwrap();
    assert!(s.r.approved);
    assert_eq!(s.r.state, StrategyState::Applying);
    assert_eq!(s.r.applied_at, Some(T0), "approval is not a new apply");
    s.tick();
    assert_eq!(s.in_flight(), ["edge-3", "edge-4"]);
    s.finish("edge-3");
    s.finish("edge-4");
    // It never asks again.
    assert_eq!(s.r.state, StrategyState::Applying);
    assert_eq!(s.in_flight(), ["edge-5"]);
    s.finish("edge-5");
    assert_eq!(s.r.state, StrategyState::Complete);
}

#[test]
fn aborting_while_awaiting_approval_aborts_the_rest_at_once() {
    let mut s = canary(true);
    s.tick();
    s.finish("edge-1");
    s.finish("edge-2");
    assert_eq!(s.r.state, StrategyState::AwaitingApproval);
    s.r.abort(s.now).unwrap();
    assert!(s.tick());
    assert_eq!(s.r.state, StrategyState::Aborted);
    assert_eq!(
        s.states(),
        [S::Complete, S::Complete, S::Aborted, S::Aborted, S::Aborted]
    );
}

// ----- deferral --------------------------------------------------------------

#[test]
fn an_offline_subcloud_is_deferred_without_blocking_and_started_when_back() {
    let mut s = Sim::applied(
        spec(),
        vec![
            stage("a", &["edge-1", "edge-2"], 1),
            stage("b", &["edge-3"], 1),
        ],
    );
    s.online("edge-1", false);
    s.tick();
    assert_eq!(s.states(), [S::Deferred, S::PreCheck, S::Initial]);
    assert_eq!(s.step("edge-1").details, "the subcloud is offline");
    assert_eq!(s.step("edge-1").started_at, None);
    assert_eq!(s.r.order_for("edge-1"), None);
    assert_eq!(s.order("edge-2"), Some((FIRST, OrderAction::Deploy)));
    s.finish("edge-2");
    // Stage a holds only a deferred step: stage b goes on.
    assert_eq!(s.in_flight(), ["edge-3"]);
    assert_eq!(s.order("edge-3"), Some((FIRST + 1, OrderAction::Deploy)));

    // Back online, edge-1 takes its own stage's slot beside edge-3.
    s.online("edge-1", true);
    s.tick();
    assert_eq!(s.in_flight(), ["edge-1", "edge-3"]);
    assert_eq!(s.order("edge-1"), Some((FIRST + 2, OrderAction::Deploy)));
    assert_eq!(s.step("edge-1").started_at, Some(s.now));
    assert_eq!(s.step("edge-1").details, "");
    s.finish("edge-1");
    s.finish("edge-3");
    assert_eq!(s.r.state, StrategyState::Complete);
}

#[test]
fn a_subcloud_with_no_facts_is_taken_as_offline() {
    let mut s = Sim::applied(spec(), vec![stage("a", &["edge-1", "edge-2"], 2)]);
    s.facts.remove("edge-1");
    s.tick();
    assert_eq!(s.states(), [S::Deferred, S::PreCheck]);
}

#[test]
fn a_subcloud_offline_past_the_deferral_deadline_fails_without_a_rollback() {
    let spec = Spec {
        defer_secs: 300,
        auto_rollback: true,
        ..spec()
    };
    let mut s = Sim::applied(spec, vec![stage("a", &["edge-1", "edge-2"], 2)]);
    s.online("edge-1", false);
    s.tick();
    s.finish("edge-2");
    assert_eq!(
        s.r.state,
        StrategyState::Applying,
        "edge-1 may still come back"
    );
    s.run_to(T0 + 299 * SEC);
    assert_eq!(s.state("edge-1"), S::Deferred);
    s.tick();
    let step = s.step("edge-1");
    assert_eq!(step.state, S::Failed);
    assert_eq!(step.details, "deferred: offline past the deferral deadline");
    assert_eq!(step.order, 0);
    assert_eq!(step.finished_at, Some(T0 + 300 * SEC));
    assert_eq!(s.r.order_for("edge-1"), None);
    assert_eq!(s.r.state, StrategyState::Failed);
    assert_eq!(
        s.r.reason,
        "1 of 2 subclouds failed; the first was edge-1 \
         (deferred: offline past the deferral deadline)"
    );
}

#[test]
fn with_no_deferral_an_offline_subcloud_fails_at_its_turn() {
    let spec = Spec {
        defer_secs: 0,
        ..spec()
    };
    let mut s = Sim::applied(spec, vec![stage("a", &["edge-1", "edge-2"], 1)]);
    s.online("edge-1", false);
    s.tick();
    assert_eq!(s.states(), [S::Failed, S::PreCheck]);
}

#[test]
fn a_deferred_step_stays_deferred_once_a_failure_stops_the_strategy() {
    let spec = Spec {
        stop_on_failure: true,
        ..spec()
    };
    let mut s = Sim::applied(spec, vec![stage("a", &["edge-1", "edge-2", "edge-3"], 2)]);
    s.online("edge-1", false);
    s.tick();
    assert_eq!(s.states(), [S::Deferred, S::PreCheck, S::PreCheck]);
    s.fail("edge-2", "disk full");
    assert_eq!(s.r.state, StrategyState::Applying, "edge-3 still runs");
    s.online("edge-1", true);
    s.finish("edge-3");
    assert_eq!(s.states(), [S::Deferred, S::Failed, S::Complete]);
    assert_eq!(s.r.state, StrategyState::Failed);
}

// ----- abort -----------------------------------------------------------------

#[test]
fn abort_lets_the_running_steps_end_and_aborts_the_rest() {
    let mut s = Sim::applied(
        spec(),
        vec![
            stage("a", &["edge-1", "edge-2", "edge-3"], 2),
            stage("b", &["edge-4"], 1),
        ],
    );
    s.online("edge-2", false);
    s.tick();
    assert_eq!(
        s.states(),
        [S::PreCheck, S::Deferred, S::PreCheck, S::Initial]
    );
    s.finish("edge-3");
    s.r.abort(s.now).unwrap();
    assert_eq!(s.r.state, StrategyState::AbortRequested);
    assert!(s.tick());
    assert_eq!(s.r.state, StrategyState::Aborting);
    assert_eq!(
        s.states(),
        [S::PreCheck, S::Aborted, S::Complete, S::Aborted]
    );
    assert_eq!(s.step("edge-4").finished_at, Some(s.now));
    assert_eq!(s.r.order_for("edge-4"), None);
    assert_eq!(
        s.r.order_for("edge-1").map(|o| o.action),
        Some(OrderAction::Deploy),
        "the running step is not cut"
    );
    s.online("edge-2", true);
    s.run_to(s.now + 10 * SEC);
    assert_eq!(s.state("edge-2"), S::Aborted);
    s.finish("edge-1");
    assert_eq!(s.r.state, StrategyState::Aborted);
    assert_eq!(s.r.reason, "aborted by request");
    assert_eq!(
        s.states(),
        [S::Complete, S::Aborted, S::Complete, S::Aborted]
    );
    s.r.deletable().unwrap();
}

// ----- a rollback strategy ---------------------------------------------------

#[test]
fn a_rollback_strategy_rolls_every_subcloud_back() {
    let spec = Spec {
        release_id: String::new(),
        rollback: true,
        auto_rollback: true,
        ..spec()
    };
    let mut s = Sim::applied(spec, vec![stage("a", &["edge-1", "edge-2"], 2)]);
    s.tick();
    assert_eq!(s.states(), [S::RollingBack, S::RollingBack]);
    assert_eq!(
        s.r.order_for("edge-1"),
        Some(Order {
            id: FIRST,
            release_id: String::new(),
            action: OrderAction::Rollback
        })
    );
    s.report("edge-1", Phase::RollingBack, "host controller-0");
    assert_eq!(s.step("edge-1").details, "host controller-0");
    s.report("edge-1", Phase::RolledBack, "");
    assert_eq!(s.state("edge-1"), S::Complete);
    // A failed rollback is not rolled back again.
    s.report("edge-2", Phase::RollbackFailed, "no previous release");
    let step = s.step("edge-2");
    assert_eq!(step.state, S::Failed);
    assert_eq!(step.details, "rolling back: no previous release");
    assert_eq!(step.order, FIRST + 1);
    assert_eq!(s.r.state, StrategyState::Failed);
    assert_eq!(s.r.next_order, FIRST + 2);
}

// ----- spellings and storage -------------------------------------------------

#[test]
fn states_and_phases_use_the_starlingx_spellings() {
    for &p in Phase::ALL {
        assert_eq!(Phase::parse(p.as_str()), Some(p));
    }
    for &st in StrategyState::ALL {
        assert_eq!(StrategyState::parse(st.as_str()), Some(st));
    }
    for &st in StepState::ALL {
        assert_eq!(StepState::parse(st.as_str()), Some(st));
    }
    assert_eq!(
        Phase::ApplyStrategy.as_str(),
        "apply VIM sw-deploy strategy"
    );
    assert_eq!(Phase::RolledBack.as_str(), "rolled-back");
    assert_eq!(
        StrategyState::AwaitingApproval.to_string(),
        "awaiting approval"
    );
    assert_eq!(StepState::Finishing.as_str(), "finish sw-deploy strategy");
    assert_eq!(Phase::parse("applying"), None);

    let report = Report {
        order: 7,
        phase: Phase::CreateStrategy,
        details: String::new(),
    };
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(
        json,
        r#"{"order":7,"phase":"create VIM sw-deploy strategy","details":""}"#
    );
    assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    assert!(serde_json::from_str::<Report>(r#"{"order":7,"phase":"nope","details":""}"#).is_err());
    let order = Order {
        id: 9,
        release_id: RELEASE.into(),
        action: OrderAction::Rollback,
    };
    assert_eq!(
        serde_json::to_string(&order).unwrap(),
        r#"{"id":9,"release_id":"roost-1.1.0","action":"rollback"}"#
    );
    assert!(!StepState::Deferred.in_flight() && !StepState::Deferred.is_final());
    assert!(StepState::RollingBack.in_flight() && StepState::Soaking.in_flight());
    assert!(!StepState::Initial.in_flight() && StepState::Aborted.is_final());
}

#[test]
fn a_rollout_survives_a_serde_round_trip() {
    let mut s = canary(true);
    s.online("edge-2", false);
    s.tick();
    s.report("edge-1", Phase::ApplyStrategy, "host controller-0");
    let json = serde_json::to_string(&s.r).unwrap();
    let back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s.r);
    assert!(
        json.contains(r#""state":"apply VIM sw-deploy strategy""#),
        "{json}"
    );

    // A strategy stored before `approved` existed reads as not approved.
    let mut value = serde_json::to_value(&s.r).unwrap();
    value.as_object_mut().unwrap().remove("approved");
    let old: Rollout = serde_json::from_value(value).unwrap();
    assert!(!old.approved);
    assert_eq!(old.steps, s.r.steps);
}

#[test]
fn a_canary_stage_whose_subclouds_are_all_offline_holds_the_rest() {
    let mut s = Sim::applied(
        Spec {
            canary: true,
            ..spec()
        },
        vec![
            stage("canary", &["edge-1"], 1),
            stage("rest", &["edge-2", "edge-3"], 2),
        ],
    );
    s.online("edge-1", false);
    s.tick();
    s.tick();
    // The canary proved nothing: the rest waits.
    assert_eq!(s.states(), [S::Deferred, S::Initial, S::Initial]);
    s.online("edge-1", true);
    s.tick();
    assert_eq!(s.in_flight(), ["edge-1"]);
    s.finish("edge-1");
    assert_eq!(s.in_flight(), ["edge-2", "edge-3"]);
}

#[test]
fn a_canary_offline_past_the_deadline_fails_the_strategy() {
    let mut s = Sim::applied(
        Spec {
            canary: true,
            defer_secs: 5,
            ..spec()
        },
        vec![
            stage("canary", &["edge-1"], 1),
            stage("rest", &["edge-2"], 1),
        ],
    );
    s.online("edge-1", false);
    s.run_to(T0 + 10 * SEC);
    assert_eq!(s.states(), [S::Failed, S::Initial]);
    assert_eq!(s.r.state, StrategyState::Failed);
}

#[test]
fn a_subcloud_that_stays_in_pre_check_past_the_deferral_time_fails() {
    let mut s = Sim::applied(
        Spec {
            defer_secs: 30,
            ..spec()
        },
        vec![stage("a", &["edge-1", "edge-2"], 2)],
    );
    s.tick();
    s.report("edge-1", Phase::PreCheck, "waiting for release roost-1.1.0");
    s.report("edge-2", Phase::CreateStrategy, "");
    s.run_to(T0 + 40 * SEC);
    assert_eq!(s.state("edge-1"), S::Failed);
    let d = &s.step("edge-1").details;
    assert!(
        d.starts_with("sw-deploy pre-check: still in pre-check after 30 s (waiting for release"),
        "{d}"
    );
    // One past the pre-check is not touched.
    assert_eq!(s.state("edge-2"), S::CreateStrategy);
}

use super::*;
use crate::lifecycle::{PROGRESS_ABORTED, replica_entity};
use crate::workload::{Probe, ProbeAction, Resources, Workload};
use proptest::prelude::*;
use roost_types::{Clock, ManualClock};

const START: Timestamp = Timestamp(1_700_000_000_000_000);
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Applications driven by the manual clock, keeping every alarm emitted and
/// the last plan each host was sent.
struct Sim {
    a: Apps,
    clock: ManualClock,
    log: Vec<AlarmDecision>,
    sent: BTreeMap<String, HostPlan>,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(AppSettings::default())
    }

    fn with(settings: AppSettings) -> Sim {
        Sim {
            a: Apps::new(settings),
            clock: ManualClock::new(START),
            log: Vec::new(),
            sent: BTreeMap::new(),
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Records what a decision emitted; a host's plans only move forward.
    fn take(&mut self, d: Decisions) -> Decisions {
        self.log.extend(d.alarms.iter().cloned());
        for p in &d.plans {
            if let Some(old) = self.sent.get(&p.host) {
                assert!(
                    p.generation > old.generation,
                    "{}: plan generation {} after {}",
                    p.host,
                    p.generation,
                    old.generation
                );
            }
            self.sent.insert(p.host.clone(), p.clone());
        }
        d
    }

    fn host(&mut self, name: &str, cpu_millis: u64, memory: u64) -> Decisions {
        let d = self
            .a
            .host_changed(HostFacts::up(name, cpu_millis, memory), self.now());
        self.take(d)
    }

    fn set_host(&mut self, f: HostFacts) -> Decisions {
        let d = self.a.host_changed(f, self.now());
        self.take(d)
    }

    fn facts(&self, name: &str) -> HostFacts {
        self.a.host(name).unwrap().clone()
    }

    fn fail(&mut self, name: &str) -> Decisions {
        let mut f = self.facts(name);
        f.failed = true;
        f.schedulable = false;
        self.set_host(f)
    }

    fn recover(&mut self, name: &str) -> Decisions {
        let mut f = self.facts(name);
        f.failed = false;
        f.locked = false;
        f.schedulable = true;
        self.set_host(f)
    }

    fn lock(&mut self, name: &str) -> Decisions {
        let mut f = self.facts(name);
        f.locked = true;
        f.schedulable = false;
        self.set_host(f)
    }

    fn upload(&mut self, name: &str, version: &str, spec: AppSpec) -> Decisions {
        let d = self.a.upload(req(name, version), self.now()).unwrap();
        self.take(d);
        let d = self.a.upload_succeeded(name, spec, self.now()).unwrap();
        self.take(d)
    }

    fn apply(&mut self, name: &str) -> Decisions {
        let d = self.a.apply(name, self.now()).unwrap();
        self.take(d)
    }

    /// The agent of `host` reports the plan it was sent, with every replica
    /// of it in `state` (ready).
    fn agent(&mut self, host: &str, state: ReplicaState) -> Decisions {
        let plan = self.a.plan(host).unwrap();
        let replicas = plan
            .replicas
            .iter()
            .map(|r| {
                let mut s = ReplicaStatus::new(&r.id, r.generation, state);
                s.ready = true;
                s
            })
            .collect();
        let d = self.a.agent_reported(
            AgentReport {
                host: host.to_string(),
                plan_generation: plan.generation,
                replicas,
            },
            self.now(),
        );
        self.take(d)
    }

    /// Every reachable (not failed) host's agent runs its plan.
    fn run_all(&mut self) -> Decisions {
        let mut all = Decisions::default();
        let hosts: Vec<String> = self
            .a
            .hosts
            .iter()
            .filter(|(_, h)| !h.facts.failed)
            .map(|(n, _)| n.clone())
            .collect();
        for h in hosts {
            all.merge(self.agent(&h, ReplicaState::Running));
        }
        all
    }

    fn report(&mut self, host: &str, s: ReplicaStatus) -> Decisions {
        let d = self.a.replica_reported(host, s, self.now());
        self.take(d)
    }

    fn exit(&mut self, id: &str, code: i32) -> Decisions {
        let r = self.a.replica(id).unwrap().clone();
        let mut s = ReplicaStatus::new(id, r.generation, ReplicaState::Exited);
        s.exit_code = Some(code);
        self.report(r.host.as_deref().unwrap(), s)
    }

    fn running(&mut self, id: &str) -> Decisions {
        let r = self.a.replica(id).unwrap().clone();
        let mut s = ReplicaStatus::new(id, r.generation, ReplicaState::Running);
        s.ready = true;
        self.report(r.host.as_deref().unwrap(), s)
    }

    fn advance_ms(&mut self, ms: i64) -> Decisions {
        self.clock.advance_micros(ms * 1000);
        let d = self.a.tick(self.now());
        self.take(d)
    }

    fn advance(&mut self, secs: i64) -> Decisions {
        self.advance_ms(secs * 1000)
    }

    fn status(&self, name: &str) -> AppStatus {
        self.a.get(name).unwrap().status
    }

    fn progress(&self, name: &str) -> String {
        self.a
            .get(name)
            .unwrap()
            .progress
            .clone()
            .unwrap_or_default()
    }

    fn where_is(&self, id: &str) -> Option<String> {
        self.a.replica(id).and_then(|r| r.host.clone())
    }

    /// Active alarms implied by everything emitted: (id, entity, severity).
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

    /// Hosts whose last sent plan holds `id`.
    fn planned_on(&self, id: &str) -> Vec<String> {
        self.sent
            .values()
            .filter(|p| p.replicas.iter().any(|r| r.id == id))
            .map(|p| p.host.clone())
            .collect()
    }

    fn three_hosts(&mut self) {
        for h in ["worker-0", "worker-1", "worker-2"] {
            self.host(h, 4000, 8 * GIB);
        }
    }
}

fn req(name: &str, version: &str) -> UploadRequest {
    UploadRequest {
        name: name.into(),
        app_version: version.into(),
        manifest_name: format!("{name}-manifests"),
        manifest_file: "manifests".into(),
    }
}

fn container(name: &str, cpu: u64, limit: Option<u64>, memory: u64) -> Container {
    Container {
        name: name.into(),
        image: "registry.local/busybox:1".into(),
        resources: Resources {
            cpu_request_millis: cpu,
            cpu_limit_millis: limit,
            memory_request_bytes: memory,
            memory_limit_bytes: None,
        },
        liveness: None,
        readiness: None,
    }
}

fn workload(name: &str, kind: WorkloadKind, containers: Vec<Container>) -> Workload {
    Workload {
        name: name.into(),
        kind,
        template: PodTemplate {
            containers,
            ..PodTemplate::default()
        },
    }
}

/// One Deployment `web` of `replicas` replicas of one container.
fn web(replicas: u32, cpu: u64, memory: u64) -> AppSpec {
    AppSpec {
        workloads: vec![workload(
            "web",
            WorkloadKind::Deployment { replicas },
            vec![container("main", cpu, None, memory)],
        )],
    }
}

fn raised(id: &str, entity: &str, sev: Severity) -> (String, String, Severity) {
    (id.into(), entity.into(), sev)
}

// ----- life cycle ------------------------------------------------------------

#[test]
fn upload_goes_through_uploading_to_uploaded() {
    let mut s = Sim::new();
    let d = s.a.upload(req("hello", "1.0-1"), s.now()).unwrap();
    assert_eq!(d.app_changes, vec!["hello".to_string()]);
    let app = s.a.get("hello").unwrap();
    assert_eq!(app.status, AppStatus::Uploading);
    assert_eq!(
        app.progress.as_deref(),
        Some("extracting application tar file")
    );
    assert!(!app.active);
    assert_eq!(app.manifest_name, "hello-manifests");
    assert_eq!(app.created_at, START);
    let d =
        s.a.upload_progress("hello", crate::PROGRESS_VALIDATE, s.now())
            .unwrap();
    assert_eq!(d.app_changes, vec!["hello".to_string()]);
    assert_eq!(s.progress("hello"), "validating and uploading charts");
    let d =
        s.a.upload_succeeded("hello", web(1, 100, MIB), s.now())
            .unwrap();
    assert_eq!(d.app_changes, vec!["hello".to_string()]);
    assert_eq!(s.status("hello"), AppStatus::Uploaded);
    assert_eq!(s.progress("hello"), "completed");
    assert_eq!(s.a.spec("hello"), Some(&web(1, 100, MIB)));
    assert!(d.alarms.is_empty());
}

#[test]
fn a_name_taken_is_refused_with_starlingx_s_words() {
    let mut s = Sim::new();
    s.upload("hello", "1.0-1", web(1, 100, MIB));
    let e = s.a.upload(req("hello", "2.0-1"), s.now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Application-upload rejected: application hello already exists."
    );
    assert_eq!(s.a.check_upload(&req("hello", "2.0-1")), Err(e));
    assert_eq!(s.a.get("hello").unwrap().app_version, "1.0-1");
    for bad in ["a/b", "a.b", "a=b", "a b", ""] {
        let e = s.a.check_upload(&req(bad, "1")).unwrap_err();
        assert!(
            e.to_string().starts_with("Application-upload rejected: "),
            "{e}"
        );
    }
}

#[test]
fn a_failed_upload_raises_750_001_and_delete_clears_it() {
    let mut s = Sim::new();
    let d = s.a.upload(req("hello", "1"), s.now()).unwrap();
    s.take(d);
    let d =
        s.a.upload_failed("hello", "checksum validation failed.", s.now())
            .unwrap();
    s.take(d);
    assert_eq!(s.status("hello"), AppStatus::UploadFailed);
    assert_eq!(
        s.progress("hello"),
        format!("checksum validation failed.: {PROGRESS_ABORTED}")
    );
    assert_eq!(
        s.active(),
        vec![raised(
            "750.001",
            "k8s_application=hello",
            Severity::Warning
        )]
    );
    assert!(
        s.log[0]
            .reason_text
            .contains("Application Upload Failure: hello")
    );
    let d = s.a.delete("hello", s.now()).unwrap();
    s.take(d);
    assert!(s.a.get("hello").is_none());
    assert!(s.active().is_empty());
    // The name is free again.
    s.upload("hello", "1", web(1, 100, MIB));
    assert_eq!(s.status("hello"), AppStatus::Uploaded);
}

#[test]
fn workloads_that_cannot_run_fail_the_upload() {
    let mut s = Sim::new();
    let d = s.a.upload(req("hello", "1"), s.now()).unwrap();
    s.take(d);
    let mut spec = web(1, 100, MIB);
    spec.workloads.push(spec.workloads[0].clone());
    let d = s.a.upload_succeeded("hello", spec, s.now()).unwrap();
    s.take(d);
    assert_eq!(s.status("hello"), AppStatus::UploadFailed);
    assert!(s.progress("hello").contains("two workloads are named web"));
    assert_eq!(s.active().len(), 1);
}

#[test]
fn apply_places_replicas_and_completes_when_all_of_them_run() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1.0-1", web(2, 500, 256 * MIB));
    let d = s.apply("hello");
    assert_eq!(s.status("hello"), AppStatus::Applying);
    assert_eq!(s.progress("hello"), "retrieving docker images");
    assert_eq!(d.plans.len(), 2, "two replicas on two hosts: {d:?}");
    assert_eq!(
        s.active(),
        vec![raised(
            "750.004",
            "k8s_application=hello",
            Severity::Warning
        )]
    );
    assert_eq!(
        d.alarms[0].reason_text,
        "Application Apply In Progress: hello"
    );
    // One replica starts: the images are there.
    let r0 = s.a.replica("hello/web/0").unwrap().clone();
    let host0 = r0.host.clone().unwrap();
    s.report(
        &host0,
        ReplicaStatus::new("hello/web/0", r0.generation, ReplicaState::Starting),
    );
    assert_eq!(s.progress("hello"), "applying application manifest");
    s.running("hello/web/0");
    assert_eq!(s.status("hello"), AppStatus::Applying);
    let d = s.running("hello/web/1");
    assert_eq!(d.app_changes, vec!["hello".to_string()]);
    let app = s.a.get("hello").unwrap();
    assert_eq!(app.status, AppStatus::Applied);
    assert_eq!(app.progress.as_deref(), Some("completed"));
    assert!(app.active);
    assert!(s.active().is_empty());
}

#[test]
fn an_apply_that_cannot_finish_fails_after_the_timeout_with_750_002_and_a_new_apply_clears_it() {
    let mut s = Sim::new();
    s.host("worker-0", 1000, 8 * GIB);
    s.upload("hello", "1", web(2, 600, MIB));
    s.apply("hello");
    s.run_all();
    assert_eq!(s.status("hello"), AppStatus::Applying);
    let pending = s.a.replica("hello/web/1").unwrap();
    assert_eq!(pending.host, None);
    assert_eq!(
        pending.pending_reason.as_deref(),
        Some("no host can run it: 1 host: 1 short of cpu")
    );
    assert!(s.advance(299).app_changes.is_empty());
    let d = s.advance(1);
    assert_eq!(d.app_changes, vec!["hello".to_string()]);
    assert_eq!(s.status("hello"), AppStatus::ApplyFailed);
    assert_eq!(
        s.progress("hello"),
        format!(
            "timed out with 1 of 2 replicas running; hello/web/1: no host can run it: 1 host: 1 short of cpu: {PROGRESS_ABORTED}"
        )
    );
    assert_eq!(
        s.active(),
        vec![raised("750.002", "k8s_application=hello", Severity::Major)]
    );
    // More capacity, apply again: 750.002 clears at once (750.004 says it
    // is in progress), then it completes.
    s.host("worker-1", 1000, 8 * GIB);
    s.apply("hello");
    assert_eq!(
        s.active(),
        vec![raised(
            "750.004",
            "k8s_application=hello",
            Severity::Warning
        )]
    );
    s.run_all();
    assert_eq!(s.status("hello"), AppStatus::Applied);
    assert!(s.active().is_empty());
}

#[test]
fn remove_empties_the_plans_and_ends_uploaded_once_the_agents_acknowledge() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1", web(3, 100, MIB));
    s.apply("hello");
    s.run_all();
    assert_eq!(s.status("hello"), AppStatus::Applied);
    let d = s.a.remove("hello", false, s.now()).unwrap();
    let d = s.take(d);
    assert_eq!(d.plans.len(), 3);
    assert!(d.plans.iter().all(|p| p.replicas.is_empty()));
    assert_eq!(s.status("hello"), AppStatus::Removing);
    assert_eq!(s.progress("hello"), "deleting application manifest");
    assert_eq!(s.a.replicas_of("hello").count(), 0);
    s.agent("worker-0", ReplicaState::Running);
    s.agent("worker-1", ReplicaState::Running);
    assert_eq!(s.status("hello"), AppStatus::Removing);
    s.agent("worker-2", ReplicaState::Running);
    let app = s.a.get("hello").unwrap();
    assert_eq!(app.status, AppStatus::Uploaded);
    assert_eq!(app.progress.as_deref(), Some("completed"));
    assert!(!app.active);
    // And it can be applied again, or deleted.
    s.a.check_apply("hello").unwrap();
    s.a.check_delete("hello").unwrap();
}

#[test]
fn a_remove_no_agent_acknowledges_fails_with_750_003_unless_forced() {
    for force in [false, true] {
        let mut s = Sim::new();
        s.host("worker-0", 4000, GIB);
        s.upload("hello", "1", web(1, 100, MIB));
        s.apply("hello");
        s.run_all();
        let d = s.a.remove("hello", force, s.now()).unwrap();
        s.take(d);
        s.advance(119);
        assert_eq!(s.status("hello"), AppStatus::Removing);
        s.advance(1);
        if force {
            assert_eq!(s.status("hello"), AppStatus::Uploaded);
            assert!(s.active().is_empty());
        } else {
            assert_eq!(s.status("hello"), AppStatus::RemoveFailed);
            assert!(s.progress("hello").starts_with(
                "timed out waiting for hosts to stop it: worker-0: operation aborted"
            ));
            assert_eq!(
                s.active(),
                vec![raised("750.003", "k8s_application=hello", Severity::Major)]
            );
            // A remove from remove-failed is allowed and clears the alarm.
            let d = s.a.remove("hello", false, s.now()).unwrap();
            s.take(d);
            assert!(s.active().is_empty());
            s.agent("worker-0", ReplicaState::Running);
            assert_eq!(s.status("hello"), AppStatus::Uploaded);
        }
    }
}

#[test]
fn removing_from_a_failed_host_needs_no_acknowledgement() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    s.upload("hello", "1", web(1, 100, MIB));
    s.apply("hello");
    s.run_all();
    let d = s.a.remove("hello", false, s.now()).unwrap();
    s.take(d);
    s.fail("worker-0");
    assert_eq!(s.status("hello"), AppStatus::Uploaded);
}

#[test]
fn abort_ends_apply_and_remove_as_failed_by_the_user() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    s.upload("hello", "1", web(1, 100, MIB));
    s.apply("hello");
    let d = s.a.abort("hello", s.now()).unwrap();
    s.take(d);
    assert_eq!(s.status("hello"), AppStatus::ApplyFailed);
    assert_eq!(s.progress("hello"), "operation aborted by user");
    assert_eq!(
        s.active(),
        vec![raised("750.002", "k8s_application=hello", Severity::Major)]
    );
    // The replica stays placed; remove it, then abort the remove.
    assert!(s.where_is("hello/web/0").is_some());
    let d = s.a.remove("hello", false, s.now()).unwrap();
    s.take(d);
    assert!(s.active().is_empty());
    let d = s.a.abort("hello", s.now()).unwrap();
    s.take(d);
    assert_eq!(s.status("hello"), AppStatus::RemoveFailed);
    assert_eq!(s.progress("hello"), "operation aborted by user");
    assert_eq!(
        s.active(),
        vec![raised("750.003", "k8s_application=hello", Severity::Major)]
    );
}

#[test]
fn every_operation_refuses_what_starlingx_refuses() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    let now = s.now();
    // Unknown application: 400 words for every operation.
    assert_eq!(
        s.a.apply("nope", now).unwrap_err().to_string(),
        "Application-apply rejected: application not found."
    );
    assert_eq!(
        s.a.remove("nope", false, now).unwrap_err().to_string(),
        "Application-remove rejected: application not found."
    );
    assert_eq!(
        s.a.abort("nope", now).unwrap_err().to_string(),
        "Application-abort rejected: application not found."
    );
    assert_eq!(
        s.a.delete("nope", now).unwrap_err().to_string(),
        "Application-delete rejected: application not found."
    );
    assert_eq!(
        s.a.update(req("nope", "2"), web(1, 1, 1), now)
            .unwrap_err()
            .to_string(),
        "Application-update rejected: application not found."
    );
    let not_allowed = |op: &str, st: &str| {
        format!(
            "Application-{op} rejected: operation is not allowed while the current status is {st}."
        )
    };
    // uploading
    let d = s.a.upload(req("hello", "1"), now).unwrap();
    s.take(d);
    assert_eq!(
        s.a.apply("hello", now).unwrap_err().to_string(),
        not_allowed("apply", "uploading")
    );
    assert_eq!(
        s.a.delete("hello", now).unwrap_err().to_string(),
        not_allowed("delete", "uploading")
    );
    assert_eq!(
        s.a.abort("hello", now).unwrap_err().to_string(),
        not_allowed("abort", "uploading")
    );
    // uploaded
    let d =
        s.a.upload_succeeded("hello", web(1, 100, MIB), now)
            .unwrap();
    s.take(d);
    assert_eq!(
        s.a.remove("hello", false, now).unwrap_err().to_string(),
        not_allowed("remove", "uploaded")
    );
    assert_eq!(
        s.a.abort("hello", now).unwrap_err().to_string(),
        not_allowed("abort", "uploaded")
    );
    assert_eq!(
        s.a.update(req("hello", "2"), web(1, 100, MIB), now)
            .unwrap_err()
            .to_string(),
        not_allowed("update", "uploaded")
    );
    // applying
    s.apply("hello");
    assert_eq!(
        s.a.apply("hello", now).unwrap_err().to_string(),
        "Application-apply rejected: install/update is already in progress."
    );
    assert_eq!(
        s.a.delete("hello", now).unwrap_err().to_string(),
        not_allowed("delete", "applying")
    );
    assert_eq!(
        s.a.remove("hello", false, now).unwrap_err().to_string(),
        not_allowed("remove", "applying")
    );
    // applied
    s.run_all();
    assert_eq!(
        s.a.delete("hello", now).unwrap_err().to_string(),
        not_allowed("delete", "applied")
    );
    assert_eq!(
        s.a.abort("hello", now).unwrap_err().to_string(),
        not_allowed("abort", "applied")
    );
    assert_eq!(
        s.a.update(req("hello", "1"), web(1, 100, MIB), now)
            .unwrap_err()
            .to_string(),
        "Application-update rejected: the version 1 is already applied."
    );
    // re-apply of an applied application is allowed
    s.a.check_apply("hello").unwrap();
    // removing
    let d = s.a.remove("hello", false, now).unwrap();
    s.take(d);
    assert_eq!(
        s.a.apply("hello", now).unwrap_err().to_string(),
        not_allowed("apply", "removing")
    );
    assert_eq!(
        s.a.delete("hello", now).unwrap_err().to_string(),
        not_allowed("delete", "removing")
    );
    // Nothing refused changed anything.
    assert_eq!(s.status("hello"), AppStatus::Removing);
}

#[test]
fn update_makes_the_old_version_inactive_and_completes_like_an_apply() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1.0", web(2, 100, MIB));
    s.apply("hello");
    s.run_all();
    let old_gen = s.a.replica("hello/web/0").unwrap().generation;
    let d =
        s.a.update(req("hello", "2.0"), web(3, 100, MIB), s.now())
            .unwrap();
    s.take(d);
    let app = s.a.get("hello").unwrap();
    assert_eq!(
        (app.app_version.as_str(), app.status),
        ("2.0", AppStatus::Updating)
    );
    let old = s.a.inactive("hello").unwrap();
    assert_eq!(
        (old.app_version.as_str(), old.status),
        ("1.0", AppStatus::Inactive)
    );
    assert!(!old.active);
    assert_eq!(s.a.rows().len(), 2);
    assert_eq!(
        s.active(),
        vec![raised(
            "750.005",
            "k8s_application=hello",
            Severity::Warning
        )]
    );
    assert_eq!(
        s.a.update(req("hello", "3.0"), web(1, 100, MIB), s.now())
            .unwrap_err()
            .to_string(),
        "Application-update rejected: update is already in progress."
    );
    // The replicas are new incarnations of the new version.
    assert_eq!(s.a.replicas_of("hello").count(), 3);
    assert!(s.a.replica("hello/web/0").unwrap().generation > old_gen);
    s.run_all();
    let app = s.a.get("hello").unwrap();
    assert_eq!(app.status, AppStatus::Applied);
    assert!(app.active);
    assert_eq!(
        app.progress.as_deref(),
        Some("Application update from version 1.0 to version 2.0 completed.")
    );
    assert!(s.a.inactive("hello").is_none());
    assert_eq!(s.a.rows().len(), 1);
    assert!(s.active().is_empty());
}

#[test]
fn a_failed_update_is_apply_failed_with_750_002_and_keeps_the_inactive_version() {
    let mut s = Sim::new();
    s.host("worker-0", 1000, GIB);
    s.upload("hello", "1.0", web(1, 100, MIB));
    s.apply("hello");
    s.run_all();
    let d =
        s.a.update(req("hello", "2.0"), web(1, 5000, MIB), s.now())
            .unwrap();
    s.take(d);
    s.advance(300);
    assert_eq!(s.status("hello"), AppStatus::ApplyFailed);
    assert_eq!(s.a.inactive("hello").unwrap().app_version, "1.0");
    assert_eq!(
        s.active(),
        vec![raised("750.002", "k8s_application=hello", Severity::Major)]
    );
}

// ----- scheduling ---------------------------------------------------------------

#[test]
fn three_replicas_spread_over_three_hosts() {
    let mut s = Sim::new();
    s.three_hosts();
    // A bigger host would win on free capacity alone; spread comes first.
    s.host("big", 64000, 64 * GIB);
    s.upload("hello", "1", web(3, 100, MIB));
    s.apply("hello");
    let hosts: BTreeSet<String> = (0..3)
        .map(|i| s.where_is(&format!("hello/web/{i}")).unwrap())
        .collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    assert!(hosts.contains("big"));
    // Deterministic: the same decision every time.
    let mut t = Sim::new();
    t.three_hosts();
    t.host("big", 64000, 64 * GIB);
    t.upload("hello", "1", web(3, 100, MIB));
    t.apply("hello");
    for i in 0..3 {
        let id = format!("hello/web/{i}");
        assert_eq!(s.where_is(&id), t.where_is(&id));
    }
}

#[test]
fn more_replicas_than_hosts_go_to_the_least_loaded_first() {
    let mut s = Sim::new();
    s.host("a", 4000, 4 * GIB);
    s.host("b", 2000, 4 * GIB);
    s.upload("hello", "1", web(3, 100, MIB));
    s.apply("hello");
    assert_eq!(s.where_is("hello/web/0").as_deref(), Some("a"));
    assert_eq!(s.where_is("hello/web/1").as_deref(), Some("b"));
    assert_eq!(s.where_is("hello/web/2").as_deref(), Some("a"));
}

#[test]
fn a_node_selector_places_only_on_labelled_hosts() {
    let mut s = Sim::new();
    s.three_hosts();
    let mut spec = web(2, 100, MIB);
    spec.workloads[0]
        .template
        .node_selector
        .insert("camera".into(), "enabled".into());
    s.upload("hello", "1", spec);
    s.apply("hello");
    assert_eq!(
        s.a.replica("hello/web/0")
            .unwrap()
            .pending_reason
            .as_deref(),
        Some("no host can run it: 3 hosts: 3 not matching the node selector")
    );
    let mut f = s.facts("worker-1");
    f.labels.insert("camera".into(), "enabled".into());
    let d = s.set_host(f);
    assert_eq!(d.plans.len(), 1);
    assert_eq!(s.where_is("hello/web/0").as_deref(), Some("worker-1"));
    assert_eq!(s.where_is("hello/web/1").as_deref(), Some("worker-1"));
    // A wrong value does not match.
    let mut f = s.facts("worker-2");
    f.labels.insert("camera".into(), "disabled".into());
    assert!(s.set_host(f).plans.is_empty());
}

#[test]
fn capacity_is_the_sum_of_requests_and_what_does_not_fit_stays_pending() {
    let mut s = Sim::new();
    s.host("worker-0", 1000, 512 * MIB);
    s.upload("cpu", "1", web(3, 400, MIB));
    s.apply("cpu");
    assert!(s.where_is("cpu/web/0").is_some());
    assert!(s.where_is("cpu/web/1").is_some());
    assert_eq!(s.where_is("cpu/web/2"), None);
    assert_eq!(s.a.usage("worker-0").cpu_millis, 800);
    s.upload("mem", "1", web(1, 10, 600 * MIB));
    s.apply("mem");
    assert_eq!(
        s.a.replica("mem/web/0").unwrap().pending_reason.as_deref(),
        Some("no host can run it: 1 host: 1 short of memory")
    );
    // Removing the first application frees room for nothing bigger than it
    // had; the memory-hungry one still waits, the pending one is dropped.
    let d = s.a.abort("cpu", s.now()).unwrap();
    s.take(d);
    let d = s.a.remove("cpu", false, s.now()).unwrap();
    s.take(d);
    assert_eq!(s.a.usage("worker-0").cpu_millis, 0);
    assert_eq!(s.where_is("mem/web/0"), None);
    let mut f = s.facts("worker-0");
    f.allocatable_memory_bytes = GIB;
    s.set_host(f);
    assert_eq!(s.where_is("mem/web/0").as_deref(), Some("worker-0"));
}

#[test]
fn a_daemonset_runs_one_replica_per_matching_host() {
    let mut s = Sim::new();
    s.three_hosts();
    let mut w = workload(
        "agent",
        WorkloadKind::DaemonSet,
        vec![container("main", 50, None, MIB)],
    );
    w.template.node_selector.insert("edge".into(), "yes".into());
    s.upload("mon", "1", AppSpec { workloads: vec![w] });
    for h in ["worker-0", "worker-2"] {
        let mut f = s.facts(h);
        f.labels.insert("edge".into(), "yes".into());
        s.set_host(f);
    }
    s.apply("mon");
    let ids: Vec<String> = s.a.replicas_of("mon").map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec!["mon/agent/worker-0", "mon/agent/worker-2"]);
    assert_eq!(
        s.where_is("mon/agent/worker-2").as_deref(),
        Some("worker-2")
    );
    s.run_all();
    assert_eq!(s.status("mon"), AppStatus::Applied);
    // A failed host's DaemonSet replica is not moved: it is dropped.
    let d = s.fail("worker-2");
    assert!(s.a.replica("mon/agent/worker-2").is_none());
    assert!(d.plan("worker-2").unwrap().replicas.is_empty());
    assert_eq!(d.plans.len(), 1);
    // A newly labelled host gets one.
    let mut f = s.facts("worker-1");
    f.labels.insert("edge".into(), "yes".into());
    s.set_host(f);
    assert_eq!(
        s.where_is("mon/agent/worker-1").as_deref(),
        Some("worker-1")
    );
}

#[test]
fn shared_containers_stay_off_isolated_cpus_when_there_is_no_application_pool() {
    let mut s = Sim::new();
    let mut f = HostFacts::up("worker-0", 1000, 8 * GIB);
    f.platform_cpus = vec![0];
    f.isolated_cpus = vec![1];
    s.set_host(f);
    let spec = AppSpec {
        workloads: vec![workload(
            "rt",
            WorkloadKind::Deployment { replicas: 1 },
            vec![
                container("pinned", 1000, Some(1000), MIB),
                container("sidecar", 0, None, MIB),
            ],
        )],
    };
    s.upload("rt", "1", spec);
    s.apply("rt");
    let plan = s.a.plan("worker-0").unwrap();
    let r = &plan.replicas[0];
    assert_eq!(r.containers[0].cpuset.as_deref(), Some(&[1][..]));
    assert!(r.containers[0].exclusive);
    assert_eq!(r.containers[1].cpuset.as_deref(), Some(&[0][..]));
    assert!(!r.containers[1].exclusive);
}

#[test]
fn whole_cpus_come_from_the_isolated_pool_and_are_never_given_twice() {
    let mut s = Sim::new();
    let mut f = HostFacts::up("worker-0", 8000, 8 * GIB);
    f.platform_cpus = vec![0, 1];
    f.application_cpus = vec![2, 3, 4, 5];
    f.isolated_cpus = vec![6, 7, 8];
    s.set_host(f);
    let spec = AppSpec {
        workloads: vec![workload(
            "rt",
            WorkloadKind::Deployment { replicas: 3 },
            vec![
                container("pinned", 1000, Some(1000), MIB),
                container("sidecar", 100, Some(200), MIB),
            ],
        )],
    };
    s.upload("rt", "1", spec);
    s.apply("rt");
    let plan = s.a.plan("worker-0").unwrap();
    assert_eq!(plan.replicas.len(), 3);
    let mut given = Vec::new();
    for r in &plan.replicas {
        let pinned = &r.containers[0];
        assert!(pinned.exclusive);
        let cpus = pinned.cpuset.clone().unwrap();
        assert_eq!(cpus.len(), 1);
        given.extend(cpus);
        let side = &r.containers[1];
        assert!(!side.exclusive);
        assert_eq!(side.cpuset.as_deref(), Some(&[2, 3, 4, 5][..]));
    }
    given.sort();
    assert_eq!(given, vec![6, 7, 8]);
    s.run_all();
    // A fourth exclusive CPU is not there: pending, with the reason.
    let d = s.a.update(
        req("rt", "2"),
        AppSpec {
            workloads: vec![workload(
                "rt",
                WorkloadKind::Deployment { replicas: 2 },
                vec![container("pinned", 2000, Some(2000), MIB)],
            )],
        },
        s.now(),
    );
    s.take(d.unwrap());
    let placed: Vec<&Replica> = s.a.replicas_of("rt").filter(|r| r.host.is_some()).collect();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].cpus, vec![CpuAssignment::Exclusive(vec![6, 7])]);
    assert_eq!(
        s.a.replica("rt/rt/1").unwrap().pending_reason.as_deref(),
        Some("no host can run it: 1 host: 1 short of free application-isolated CPUs")
    );
}

#[test]
fn shrinking_the_isolated_pool_re_places_replicas_whose_cpus_left_it() {
    let mut s = Sim::new();
    let mut f = HostFacts::up("worker-0", 8000, 8 * GIB);
    f.isolated_cpus = vec![4, 5];
    s.set_host(f.clone());
    let mut g = HostFacts::up("worker-1", 8000, 8 * GIB);
    g.isolated_cpus = vec![2];
    s.set_host(g);
    s.upload(
        "rt",
        "1",
        AppSpec {
            workloads: vec![workload(
                "rt",
                WorkloadKind::Pod,
                vec![container("pinned", 2000, Some(2000), MIB)],
            )],
        },
    );
    s.apply("rt");
    assert_eq!(s.where_is("rt/rt/0").as_deref(), Some("worker-0"));
    f.isolated_cpus = vec![4];
    s.set_host(f);
    assert_eq!(s.where_is("rt/rt/0"), None);
}

// ----- failover, fencing, lock ---------------------------------------------------

#[test]
fn a_failed_host_s_replicas_are_placed_elsewhere_in_the_same_decision() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1", web(3, 100, MIB));
    s.apply("hello");
    s.run_all();
    let victim = s.where_is("hello/web/0").unwrap();
    let gen_before = s.a.plan(&victim).unwrap().generation;
    let d = s.fail(&victim);
    // The failed host's plan is empty under a new generation ...
    let p = d.plan(&victim).unwrap();
    assert!(p.replicas.is_empty());
    assert!(p.generation > gen_before);
    // ... and the replica is in another host's plan of the same decision.
    let to = s.where_is("hello/web/0").unwrap();
    assert_ne!(to, victim);
    let new = d.plan(&to).unwrap();
    let r = new.replicas.iter().find(|r| r.id == "hello/web/0").unwrap();
    assert_eq!(r.generation, s.a.replica("hello/web/0").unwrap().generation);
    assert_eq!(s.planned_on("hello/web/0"), vec![to.clone()]);
    assert!(d.events.iter().any(|e| e.reason_text.contains("failed")));
    // The application stays applied; the new copy reports running.
    assert_eq!(s.status("hello"), AppStatus::Applied);
    s.running("hello/web/0");
    assert_eq!(
        s.a.replica("hello/web/0").unwrap().state,
        ReplicaState::Running
    );
}

#[test]
fn a_returning_host_gets_its_empty_plan_first_and_nothing_runs_twice() {
    let mut s = Sim::new();
    s.host("a", 1000, GIB);
    s.host("b", 1000, GIB);
    s.upload("hello", "1", web(2, 600, MIB));
    s.apply("hello");
    s.run_all();
    let on_a = s.a.replica("hello/web/0").unwrap().clone();
    assert_eq!(on_a.host.as_deref(), Some("a"));
    // a fails: web/0 cannot fit on b (600 + 600 > 1000), so it waits.
    let d = s.fail("a");
    assert_eq!(s.where_is("hello/web/0"), None);
    let emptied = d.plan("a").unwrap().generation;
    // a comes back: it is fenced, and its plan is the empty one.
    let d = s.recover("a");
    assert!(
        d.plans.is_empty(),
        "nothing new for a before it acknowledges"
    );
    assert!(s.a.is_fenced("a"));
    assert_eq!(s.a.plan("a").unwrap().generation, emptied);
    assert!(s.a.plan("a").unwrap().replicas.is_empty());
    assert_eq!(s.where_is("hello/web/0"), None);
    // Its agent still runs the old copy and says so with the old plan: stale.
    let stale_before = s.a.stale_reports();
    let d = s.a.agent_reported(
        AgentReport {
            host: "a".into(),
            plan_generation: emptied - 1,
            replicas: vec![ReplicaStatus::new(
                "hello/web/0",
                on_a.generation,
                ReplicaState::Running,
            )],
        },
        s.now(),
    );
    let d = s.take(d);
    assert!(d.plans.is_empty());
    assert_eq!(s.a.stale_reports(), stale_before + 1);
    assert!(s.a.is_fenced("a"));
    // It applies the empty plan (stops the old copy) and says so: now it
    // takes the pending replica, as a new incarnation.
    let d = s.agent("a", ReplicaState::Running);
    assert!(!s.a.is_fenced("a"));
    let p = d.plan("a").unwrap();
    assert!(p.generation > emptied);
    let r = s.a.replica("hello/web/0").unwrap();
    assert_eq!(r.host.as_deref(), Some("a"));
    assert!(r.generation > on_a.generation);
    assert_eq!(s.planned_on("hello/web/0"), vec!["a".to_string()]);
}

#[test]
fn a_host_that_failed_before_acknowledging_a_remove_is_fenced_when_it_returns() {
    let mut s = Sim::new();
    s.host("a", 1000, GIB);
    s.upload("hello", "1", web(1, 600, MIB));
    s.apply("hello");
    s.run_all();
    // The remove is sent to a, which fails before it acknowledges it.
    let d = s.a.remove("hello", false, s.now()).unwrap();
    s.take(d);
    let d = s.fail("a");
    assert!(d.plans.is_empty(), "nothing more to take from a");
    assert_eq!(s.status("hello"), AppStatus::Uploaded);
    s.apply("hello");
    assert_eq!(s.where_is("hello/web/0"), None);
    // Back: it may still run the old copy, so it gets nothing until it has
    // acknowledged the plan without it.
    let d = s.recover("a");
    assert!(d.plans.is_empty());
    assert!(s.a.is_fenced("a"));
    assert_eq!(s.where_is("hello/web/0"), None);
    s.agent("a", ReplicaState::Running);
    assert_eq!(s.where_is("hello/web/0").as_deref(), Some("a"));
}

#[test]
fn a_replica_that_moved_away_is_not_moved_back_when_its_host_returns() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1", web(3, 100, MIB));
    s.apply("hello");
    s.run_all();
    let victim = s.where_is("hello/web/0").unwrap();
    s.fail(&victim);
    let moved_to = s.where_is("hello/web/0").unwrap();
    s.run_all();
    s.recover(&victim);
    s.agent(&victim, ReplicaState::Running);
    assert!(!s.a.is_fenced(&victim));
    assert_eq!(s.where_is("hello/web/0"), Some(moved_to.clone()));
    assert!(s.a.plan(&victim).unwrap().replicas.is_empty());
    assert_eq!(s.planned_on("hello/web/0"), vec![moved_to]);
}

#[test]
fn locking_drains_the_host_first() {
    let mut s = Sim::new();
    s.three_hosts();
    let spec = AppSpec {
        workloads: vec![
            workload(
                "web",
                WorkloadKind::Deployment { replicas: 3 },
                vec![container("main", 100, None, MIB)],
            ),
            workload(
                "mon",
                WorkloadKind::DaemonSet,
                vec![container("main", 10, None, MIB)],
            ),
        ],
    };
    s.upload("hello", "1", spec);
    s.apply("hello");
    s.run_all();
    assert_eq!(s.status("hello"), AppStatus::Applied);
    let host = s.where_is("hello/web/0").unwrap();
    let plan = s.a.plan_lock(&host, s.now()).unwrap();
    assert!(!plan.ready);
    assert_eq!(plan.moves.len(), 1);
    let (id, to) = &plan.moves[0];
    assert_eq!(id, "hello/web/0");
    let to = to.clone().unwrap();
    assert_ne!(to, host);
    assert_eq!(plan.stops, vec![format!("hello/mon/{host}")]);
    // plan_lock changed nothing.
    assert_eq!(s.where_is("hello/web/0"), Some(host.clone()));
    let d = s.a.drain(&host, s.now());
    let d = s.take(d);
    assert_eq!(s.where_is("hello/web/0"), Some(to));
    assert!(d.plan(&host).unwrap().replicas.is_empty());
    // Not ready until the agent has stopped them.
    assert!(!s.a.plan_lock(&host, s.now()).unwrap().ready);
    s.agent(&host, ReplicaState::Running);
    assert!(s.a.plan_lock(&host, s.now()).unwrap().ready);
    // Locked: nothing goes back. Unlocked: the DaemonSet replica returns once acknowledged.
    s.lock(&host);
    assert!(s.a.plan(&host).unwrap().replicas.is_empty());
    s.recover(&host);
    s.agent(&host, ReplicaState::Running);
    assert_eq!(s.where_is(&format!("hello/mon/{host}")), Some(host.clone()));
    assert_ne!(s.where_is("hello/web/0"), Some(host));
}

#[test]
fn a_lock_without_a_drain_still_moves_everything_at_once() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1", web(3, 100, MIB));
    s.apply("hello");
    let host = s.where_is("hello/web/1").unwrap();
    let d = s.lock(&host);
    assert!(d.plan(&host).unwrap().replicas.is_empty());
    let to = s.where_is("hello/web/1").unwrap();
    assert_ne!(to, host);
    assert!(d.plan(&to).is_some());
}

// ----- restarts, back-off, probes, stale reports ----------------------------------

#[test]
fn exits_restart_with_doubling_back_off_and_raise_750_101_after_five_until_it_runs_again() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    s.upload("hello", "1", web(1, 100, MIB));
    s.apply("hello");
    s.run_all();
    let id = "hello/web/0";
    let entity = replica_entity("hello", id);
    let mut waits = Vec::new();
    for n in 1..=9u32 {
        let before = s.a.replica(id).unwrap().generation;
        let d = s.exit(id, 1);
        assert!(d.plans.is_empty(), "no restart before the back-off");
        // Find the wait: nothing happens a millisecond before it.
        let at = s.a.replica(id).unwrap().restart_at.unwrap();
        let wait_ms = (at.0 - s.now().0) / 1000;
        waits.push(wait_ms);
        let d = s.advance_ms(wait_ms - 1);
        assert!(d.plans.is_empty());
        let d = s.advance_ms(1);
        let p = d.plan("worker-0").expect("restarted");
        let r = s.a.replica(id).unwrap();
        assert!(r.generation > before);
        assert_eq!(p.replicas[0].generation, r.generation);
        assert_eq!(r.restarts, n);
        let alarmed = s.active().iter().any(|a| a.1 == entity);
        assert_eq!(alarmed, n >= 5, "after {n} exits");
        s.running(id);
    }
    assert_eq!(
        waits,
        vec![1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000]
    );
    assert_eq!(
        s.active(),
        vec![raised("750.101", &entity, Severity::Major)]
    );
    // Exits go on: the wait stops growing at five minutes.
    s.exit(id, 1);
    let at = s.a.replica(id).unwrap().restart_at.unwrap();
    assert_eq!(at.0 - s.now().0, 300_000_000);
    s.advance(300);
    s.running(id);
    // Running for ten seconds: the count resets and the alarm clears.
    assert!(s.advance(9).alarms.is_empty());
    let d = s.advance(1);
    assert_eq!(d.alarms.len(), 1);
    assert!(s.active().is_empty());
    assert_eq!(s.a.replica(id).unwrap().exits, 0);
    s.exit(id, 1);
    let at = s.a.replica(id).unwrap().restart_at.unwrap();
    assert_eq!(at.0 - s.now().0, 1_000_000);
}

#[test]
fn re_applying_an_applied_application_completes_at_once_when_everything_runs() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1", web(3, 100, MIB));
    s.apply("hello");
    s.run_all();
    let before: Vec<Replica> = s.a.replicas_of("hello").cloned().collect();
    let d = s.apply("hello");
    assert_eq!(s.status("hello"), AppStatus::Applied);
    assert!(d.plans.is_empty(), "nothing moves or restarts");
    let after: Vec<Replica> = s.a.replicas_of("hello").cloned().collect();
    assert_eq!(before, after);
    // 750.004 was raised and cleared in the same decision.
    assert_eq!(d.alarms.len(), 2);
    assert!(s.active().is_empty());
}

#[test]
fn a_failing_replica_leaves_the_application_applied_and_its_alarm_goes_with_a_remove() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    s.upload("hello", "1", web(1, 100, MIB));
    s.apply("hello");
    s.run_all();
    let id = "hello/web/0";
    for _ in 0..5 {
        s.exit(id, 137);
        s.advance(600);
    }
    assert_eq!(s.status("hello"), AppStatus::Applied);
    let entity = replica_entity("hello", id);
    assert_eq!(
        s.active(),
        vec![raised("750.101", &entity, Severity::Major)]
    );
    assert!(
        s.log
            .last()
            .unwrap()
            .reason_text
            .contains("exited with code 137")
    );
    let d = s.a.remove("hello", false, s.now()).unwrap();
    s.take(d);
    assert!(s.active().is_empty());
}

#[test]
fn a_liveness_failure_is_a_failure_and_restart_policies_are_kept() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    let mut pods = Vec::new();
    for (name, policy) in [
        ("always", RestartPolicy::Always),
        ("onfailure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ] {
        let mut w = workload(
            name,
            WorkloadKind::Pod,
            vec![container("main", 10, None, MIB)],
        );
        w.template.restart_policy = policy;
        w.template.containers[0].liveness = Some(Probe::new(ProbeAction::HttpGet {
            path: "/healthz".into(),
            port: 8080,
        }));
        pods.push(w);
    }
    s.upload("jobs", "1", AppSpec { workloads: pods });
    s.apply("jobs");
    s.run_all();
    // Liveness failure under Always: restarted.
    let r = s.a.replica("jobs/always/0").unwrap().clone();
    let mut st = ReplicaStatus::new(&r.id, r.generation, ReplicaState::Failed);
    st.liveness_failed = true;
    let d = s.report("worker-0", st);
    assert!(
        d.events[0]
            .reason_text
            .contains("failed its liveness probe")
    );
    assert_eq!(s.a.replica(&r.id).unwrap().exits, 1);
    // Clean exit under OnFailure: finished, not restarted, still "up".
    s.exit("jobs/onfailure/0", 0);
    let r = s.a.replica("jobs/onfailure/0").unwrap();
    assert!(r.finished && r.succeeded && r.is_up());
    assert!(r.restart_at.is_none());
    // Failure under Never: finished for good.
    s.exit("jobs/never/0", 3);
    let r = s.a.replica("jobs/never/0").unwrap();
    assert!(r.finished && !r.succeeded && !r.is_up());
    s.advance(2);
    assert_eq!(s.a.replica("jobs/always/0").unwrap().restarts, 1);
    assert_eq!(s.a.replica("jobs/never/0").unwrap().restarts, 0);
    assert_eq!(s.a.replica("jobs/onfailure/0").unwrap().restarts, 0);
}

#[test]
fn apply_waits_for_readiness_when_a_container_has_a_readiness_probe() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    let mut spec = web(1, 100, MIB);
    spec.workloads[0].template.containers[0].readiness =
        Some(Probe::new(ProbeAction::TcpSocket { port: 80 }));
    s.upload("hello", "1", spec);
    s.apply("hello");
    let r = s.a.replica("hello/web/0").unwrap().clone();
    s.report(
        "worker-0",
        ReplicaStatus::new(&r.id, r.generation, ReplicaState::Running),
    );
    assert_eq!(s.status("hello"), AppStatus::Applying);
    assert!(!s.a.replica(&r.id).unwrap().ready);
    s.running(&r.id);
    assert!(s.a.replica(&r.id).unwrap().ready);
    assert_eq!(s.status("hello"), AppStatus::Applied);
}

#[test]
fn stale_reports_are_ignored() {
    let mut s = Sim::new();
    s.host("a", 4000, GIB);
    s.host("b", 4000, GIB);
    s.upload("hello", "1", web(1, 100, MIB));
    s.apply("hello");
    s.run_all();
    let r = s.a.replica("hello/web/0").unwrap().clone();
    let host = r.host.clone().unwrap();
    let other = if host == "a" { "b" } else { "a" };
    let base = s.a.stale_reports();
    // From a host that does not hold it.
    let mut st = ReplicaStatus::new(&r.id, r.generation, ReplicaState::Exited);
    st.exit_code = Some(1);
    assert!(s.report(other, st.clone()).is_empty());
    // An older incarnation (after a restart).
    s.exit(&r.id, 1);
    s.advance(1);
    let now_gen = s.a.replica(&r.id).unwrap().generation;
    assert!(now_gen > r.generation);
    assert!(s.report(&host, st.clone()).is_empty());
    // A plan generation never sent: not trusted, and the host's plans go
    // on above it so that its agent takes them.
    let d = s.a.agent_reported(
        AgentReport {
            host: host.clone(),
            plan_generation: 1_000,
            replicas: vec![st.clone()],
        },
        s.now(),
    );
    let d = s.take(d);
    assert_eq!(d.plans.len(), 1);
    assert_eq!(d.plans[0].generation, 1_001);
    assert_eq!(d.plans[0].replicas.len(), 1);
    // An unknown replica and an unknown host.
    assert!(
        s.report(
            &host,
            ReplicaStatus::new("hello/web/9", 1, ReplicaState::Running)
        )
        .is_empty()
    );
    assert!(
        s.report(
            "ghost",
            ReplicaStatus::new(&r.id, now_gen, ReplicaState::Running)
        )
        .is_empty()
    );
    assert_eq!(s.a.stale_reports(), base + 5);
    let r = s.a.replica(&r.id).unwrap();
    assert_eq!(
        (r.exits, r.restarts, r.state),
        (1, 1, ReplicaState::Pending)
    );
}

#[test]
fn a_duplicate_exit_report_of_one_incarnation_counts_once() {
    let mut s = Sim::new();
    s.host("a", 4000, GIB);
    s.upload("hello", "1", web(1, 100, MIB));
    s.apply("hello");
    s.run_all();
    s.exit("hello/web/0", 1);
    s.exit("hello/web/0", 1);
    assert_eq!(s.a.replica("hello/web/0").unwrap().exits, 1);
}

#[test]
fn decisions_can_be_made_on_a_copy_and_kept_after_a_commit() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1", web(3, 100, MIB));
    let mut next = s.a.clone();
    let d = next.apply("hello", s.now()).unwrap();
    // Not committed: the original is untouched.
    assert_eq!(s.status("hello"), AppStatus::Uploaded);
    assert!(s.a.plan("worker-0").unwrap().replicas.is_empty());
    s.a = next;
    s.take(d);
    assert_eq!(s.status("hello"), AppStatus::Applying);
}

#[test]
fn a_removed_host_s_replicas_move() {
    let mut s = Sim::new();
    s.three_hosts();
    s.upload("hello", "1", web(1, 100, MIB));
    s.apply("hello");
    let h = s.where_is("hello/web/0").unwrap();
    let d = s.a.host_removed(&h, s.now());
    let d = s.take(d);
    assert!(d.plan(&h).is_none());
    let to = s.where_is("hello/web/0").unwrap();
    assert_ne!(to, h);
    assert!(s.a.plan(&h).is_none());
}

#[test]
fn a_restart_of_the_server_keeps_every_placement_and_incarnation() {
    let mut s = Sim::new();
    s.three_hosts();
    let mut spec = web(3, 100, MIB);
    spec.workloads.push(workload(
        "mon",
        WorkloadKind::DaemonSet,
        vec![container("pinned", 1000, Some(1000), MIB)],
    ));
    for h in ["worker-0", "worker-1", "worker-2"] {
        let mut f = s.facts(h);
        f.isolated_cpus = vec![7];
        s.set_host(f);
    }
    s.upload("hello", "1", spec);
    s.upload("other", "1", web(1, 100, MIB));
    s.apply("hello");
    s.apply("other");
    s.run_all();
    let id = "hello/web/0";
    s.exit(id, 1);
    // 750.101 is raised after 5 exits; make it so before the restart.
    for _ in 0..4 {
        s.advance(600);
        s.exit(id, 1);
    }
    assert_eq!(s.active().len(), 1);
    // "other" is removed; the agents never acknowledge before the restart.
    let d = s.a.remove("other", false, s.now()).unwrap();
    s.take(d);
    let before: Vec<Replica> = s.a.replicas().cloned().collect();

    let mut b = Apps::new(AppSettings::default());
    for name in ["hello", "other"] {
        b.restore_app(s.a.record(name).unwrap(), s.now()).unwrap();
    }
    for h in ["worker-0", "worker-1", "worker-2"] {
        b.restore_host(s.facts(h), s.sent[h].clone()).unwrap();
    }
    assert!(b.restore_alarm("750.101", &replica_entity("hello", id)));
    assert!(!b.restore_alarm("750.002", "k8s_application=gone"));
    assert!(
        b.restore_host(s.facts("worker-0"), s.sent["worker-0"].clone())
            .is_err()
    );
    let d = b.restored(s.now());
    assert!(d.plans.is_empty(), "nothing moves: {d:?}");
    for r in &before {
        let n = b.replica(&r.id).unwrap();
        assert_eq!(
            (&n.host, n.generation, &n.cpus),
            (&r.host, r.generation, &r.cpus)
        );
    }
    assert_eq!(b.get("other").unwrap().status, AppStatus::Removing);
    // Carry on with the restored domain: later incarnations are newer, and
    // the replica's alarm clears when it runs for long enough.
    let last = s.a.replicas().map(|r| r.generation).max().unwrap();
    s.a = b;
    // The agent's next report says the incarnation exited; its restart is
    // decided anew.
    s.exit(id, 1);
    // Every agent reports: the remove in progress completes.
    s.run_all();
    assert_eq!(s.status("other"), AppStatus::Uploaded);
    s.advance(600);
    let r = s.a.replica(id).unwrap();
    assert!(r.generation > last);
    s.running(id);
    s.advance(10);
    assert!(s.active().is_empty(), "{:?}", s.active());
}

#[test]
fn an_upload_a_restart_interrupted_fails_with_750_001() {
    let mut s = Sim::new();
    let d = s.a.upload(req("hello", "1"), s.now()).unwrap();
    s.take(d);
    let mut b = Apps::new(AppSettings::default());
    b.restore_app(s.a.record("hello").unwrap(), s.now())
        .unwrap();
    let d = b.restored(s.now());
    s.a = b;
    s.take(d);
    assert_eq!(s.status("hello"), AppStatus::UploadFailed);
    assert_eq!(
        s.active(),
        vec![raised(
            "750.001",
            "k8s_application=hello",
            Severity::Warning
        )]
    );
    assert!(
        s.progress("hello")
            .starts_with("upload interrupted by a restart: ")
    );
}

#[test]
fn a_restored_plan_loses_replicas_no_application_wants() {
    let mut s = Sim::new();
    s.host("worker-0", 4000, GIB);
    s.upload("hello", "1", web(2, 100, MIB));
    s.apply("hello");
    let plan = s.sent["worker-0"].clone();
    let mut b = Apps::new(AppSettings::default());
    let mut rec = s.a.record("hello").unwrap();
    rec.spec = Some(web(1, 100, MIB));
    b.restore_app(rec, s.now()).unwrap();
    b.restore_host(s.facts("worker-0"), plan.clone()).unwrap();
    let d = b.restored(s.now());
    let p = d.plan("worker-0").unwrap();
    assert!(p.generation > plan.generation);
    let ids: Vec<&str> = p.replicas.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["hello/web/0"]);
}

#[test]
fn a_thousand_replicas_over_a_hundred_hosts_spread_evenly_and_fail_over() {
    let mut s = Sim::new();
    for i in 0..100 {
        s.host(&format!("w{i:03}"), 16000, 64 * GIB);
    }
    s.upload("big", "1", web(1000, 100, 64 * MIB));
    s.apply("big");
    for i in 0..100 {
        assert_eq!(s.a.plan(&format!("w{i:03}")).unwrap().replicas.len(), 10);
    }
    s.run_all();
    assert_eq!(s.status("big"), AppStatus::Applied);
    let d = s.fail("w042");
    // Ten replicas, each to a different host (spread), in one decision.
    assert_eq!(d.plans.len(), 11);
    assert!(s.a.replicas_of("big").all(|r| r.host.is_some()));
}

// ----- the property -----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Ev {
    Fail(usize),
    Recover(usize),
    Lock(usize),
    Drain(usize),
    Ack(usize),
    Exit(usize),
    Advance(i64),
    Remove,
    Apply,
    Update(u32),
    AckAll,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        1 => (0..4usize).prop_map(Ev::Fail),
        1 => (0..4usize).prop_map(Ev::Recover),
        1 => (0..4usize).prop_map(Ev::Lock),
        1 => (0..4usize).prop_map(Ev::Drain),
        1 => (0..4usize).prop_map(Ev::Ack),
        1 => (0..12usize).prop_map(Ev::Exit),
        1 => (0..20i64).prop_map(Ev::Advance),
        1 => Just(Ev::Remove),
        1 => Just(Ev::Apply),
        1 => (1..8u32).prop_map(Ev::Update),
        3 => Just(Ev::AckAll),
    ]
}

/// No replica is in two hosts' plans, no host is given more than it has,
/// no isolated CPU is given twice or from outside the pool, the plans sent
/// are the plans held, and no host that is not eligible holds anything.
fn check(s: &Sim) -> Result<(), TestCaseError> {
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for p in s.sent.values() {
        let held = s.a.plan(&p.host);
        prop_assert_eq!(Some(p), held.as_ref());
        for r in &p.replicas {
            if let Some(other) = owner.insert(r.id.clone(), p.host.clone()) {
                return Err(TestCaseError::fail(format!(
                    "{} planned on {other} and {}",
                    r.id, p.host
                )));
            }
        }
    }
    for (name, h) in &s.a.hosts {
        let u = s.a.usage(name);
        prop_assert!(
            u.cpu_millis <= h.facts.allocatable_cpu_millis,
            "{name} cpu over-committed"
        );
        prop_assert!(
            u.memory_bytes <= h.facts.allocatable_memory_bytes,
            "{name} memory over-committed"
        );
        let mut recomputed = Usage::default();
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for id in &h.replicas {
            let r = &s.a.replicas[id];
            recomputed.add(&r.template, &r.cpus);
            *counts
                .entry((r.app.clone(), r.workload.clone()))
                .or_default() += 1;
        }
        prop_assert_eq!(&recomputed, &u, "{} usage kept wrongly", name);
        prop_assert_eq!(&counts, &h.counts, "{} counts kept wrongly", name);
        let mut given = Vec::new();
        for id in &h.replicas {
            let r = &s.a.replicas[id];
            prop_assert_eq!(r.host.as_deref(), Some(name.as_str()));
            for c in &r.cpus {
                if let CpuAssignment::Exclusive(v) = c {
                    given.extend(v.iter().copied());
                }
            }
        }
        let n = given.len();
        given.sort_unstable();
        given.dedup();
        prop_assert_eq!(n, given.len(), "{} gave an isolated CPU twice", name);
        prop_assert!(given.iter().all(|c| h.facts.isolated_cpus.contains(c)));
        if !h.facts.is_up() || h.draining {
            prop_assert!(h.replicas.is_empty(), "{} is down but holds replicas", name);
        }
        if h.acked < h.fence {
            prop_assert!(
                h.replicas.is_empty(),
                "{} is fenced but holds replicas",
                name
            );
        }
    }
    for r in s.a.replicas.values() {
        if let Some(h) = &r.host {
            prop_assert!(s.a.hosts[h].replicas.contains(&r.id));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_replica_runs_twice_and_no_host_is_over_committed(
        events in prop::collection::vec(ev(), 0..60),
    ) {
        let mut s = Sim::new();
        let names = ["h0", "h1", "h2", "h3"];
        for (i, n) in names.iter().enumerate() {
            let mut f = HostFacts::up(n, 2000 + 1000 * i as u64, 2 * GIB);
            f.application_cpus = vec![0, 1];
            f.isolated_cpus = vec![2, 3, 4][..i.min(3)].to_vec();
            s.set_host(f);
        }
        let spec = AppSpec {
            workloads: vec![
                workload(
                    "web",
                    WorkloadKind::Deployment { replicas: 6 },
                    vec![container("main", 700, None, 300 * MIB)],
                ),
                workload(
                    "rt",
                    WorkloadKind::Deployment { replicas: 3 },
                    vec![container("pinned", 1000, Some(1000), 100 * MIB)],
                ),
                workload("mon", WorkloadKind::DaemonSet, vec![container("main", 50, None, MIB)]),
            ],
        };
        s.upload("app", "1", spec.clone());
        s.apply("app");
        let mut version = 1;
        check(&s)?;
        for e in events {
            match e {
                Ev::Fail(i) => { s.fail(names[i]); }
                Ev::Recover(i) => { s.recover(names[i]); }
                Ev::Lock(i) => { s.lock(names[i]); }
                Ev::Drain(i) => {
                    let d = s.a.drain(names[i], s.now());
                    s.take(d);
                }
                Ev::Ack(i) => {
                    if !s.facts(names[i]).failed {
                        s.agent(names[i], ReplicaState::Running);
                    }
                }
                Ev::Exit(i) => {
                    let ids: Vec<String> = s.a.replicas.values()
                        .filter(|r| r.host.is_some() && r.restart_at.is_none())
                        .map(|r| r.id.clone()).collect();
                    if !ids.is_empty() {
                        let id = ids[i % ids.len()].clone();
                        s.exit(&id, 1);
                    }
                }
                Ev::Advance(secs) => { s.advance(secs); }
                Ev::Remove => {
                    if s.a.check_remove("app").is_ok() {
                        let d = s.a.remove("app", false, s.now()).unwrap();
                        s.take(d);
                    }
                }
                Ev::Apply => {
                    if s.a.check_apply("app").is_ok() {
                        s.apply("app");
                    }
                }
                Ev::AckAll => { s.run_all(); }
                Ev::Update(n) => {
                    version += 1;
                    let mut next = spec.clone();
                    next.workloads[0].kind = WorkloadKind::Deployment { replicas: n };
                    let r = req("app", &version.to_string());
                    if s.a.check_update(&r, &next).is_ok() {
                        let d = s.a.update(r, next, s.now()).unwrap();
                        s.take(d);
                    }
                }
            }
            check(&s)?;
        }
    }
}

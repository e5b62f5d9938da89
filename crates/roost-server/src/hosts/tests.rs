//! The host service alone: a real SQLite store behind a wrapper that can
//! fail or stall commits, real FM, a BMC that records what it is asked, a
//! manual clock, and an in-process network for the heartbeat, on which
//! simulated agents answer with the agent's own answerer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use roost_api::heartbeat::{Answerer, FLAG_REBOOT, Health, HostKey};
use roost_api::sysinv::{AgentReport, EnrollRequest, HostAdd};
use roost_fm::Catalogue;
use roost_store::{Error as StoreError, HostWrite, Store, StoreConfig, StoredHost};
use roost_types::{ManualClock, SystemMode, Timestamp};
use tokio::sync::{mpsc, watch};

use super::bmc::{Bmc, BmcFuture, BmcTarget, PowerAction};
use super::heartbeater::{Transport, memory};
use super::*;
use crate::Shutdown;
use crate::fm_service::FmService;
use crate::metrics::Metrics;

/// The real store, with commits that can be made to fail or to wait.
struct FaultyStore {
    inner: Store,
    /// How many of the next commits of requests fail (the executor's
    /// commits of maintenance states and the local inventory loop's are
    /// left alone, so that a test's failure lands where it aims).
    fail_next: AtomicUsize,
    /// While true, commits wait.
    stalled: Mutex<bool>,
    resumed: Condvar,
    /// Commits that started waiting.
    waiting: AtomicUsize,
}

impl FaultyStore {
    fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    fn stall(&self, on: bool) {
        *self.stalled.lock().unwrap() = on;
        self.resumed.notify_all();
    }
}

impl HostStore for FaultyStore {
    fn hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        self.inner.hosts()
    }
    fn peek_join_token(&self, hash: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        self.inner.peek_join_token(hash, now)
    }
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.setting(key)
    }
    fn write_hosts(&self, writes: &[HostWrite]) -> Result<Vec<i64>, StoreError> {
        let mut stalled = self.stalled.lock().unwrap();
        if *stalled {
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        while *stalled {
            stalled = self.resumed.wait(stalled).unwrap();
        }
        drop(stalled);
        // Maintenance states (the executor) and the local inventory loop
        // write in the background; a test aims its failure at requests.
        let background = writes.iter().all(|w| match w {
            HostWrite::States { .. } => true,
            HostWrite::Fields(h) => h.local,
            _ => false,
        });
        if !background
            && self
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Injected);
        }
        self.inner.write_hosts(writes)
    }
}

/// A BMC that records the actions it is asked for and succeeds.
#[derive(Default)]
struct RecordingBmc {
    calls: Mutex<Vec<(String, PowerAction)>>,
}

impl Bmc for RecordingBmc {
    fn power<'a>(&'a self, target: &'a BmcTarget, action: PowerAction) -> BmcFuture<'a> {
        self.calls
            .lock()
            .unwrap()
            .push((target.host.clone(), action));
        Box::pin(async { Ok(()) })
    }
}

struct Rig {
    svc: HostService,
    store: Arc<FaultyStore>,
    fm: FmService,
    metrics: Arc<Metrics>,
    bmc: Arc<RecordingBmc>,
    net: memory::Network,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    rig_with(None).await
}

/// An agent's call over plain HTTP.
fn plain(token: &str) -> AgentCall {
    AgentCall {
        token: token.to_string(),
        channel: Channel::Plain,
    }
}

async fn rig_with(agent_ca: Option<super::AgentCa>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Store::open(StoreConfig {
            key: roost_store::KeySource::beside(&dir.path().join("roost.db")),
            location: roost_store::Location::Sqlite(dir.path().join("roost.db")),
            durability: Default::default(),
            event_log_cap: 10_000,
        })
        .unwrap()
    };
    let store = Arc::new(FaultyStore {
        inner: open(),
        fail_next: AtomicUsize::new(0),
        stalled: Mutex::new(false),
        resumed: Condvar::new(),
        waiting: AtomicUsize::new(0),
    });
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
    let (fm, _writer) = FmService::start(
        Arc::new(open()),
        Arc::new(Catalogue::builtin()),
        clock.clone(),
        None,
        Arc::new(crate::metrics::Metrics::new()),
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let bmc = Arc::new(RecordingBmc::default());
    let (stop, rx) = watch::channel(false);
    let net = memory::Network::default();
    let (svc, _tasks) = HostService::start(
        HostsIo {
            store: store.clone(),
            heartbeat: Arc::new(net.bind("127.0.0.1:2122".parse().unwrap())),
            fm: fm.clone(),
            bmc: bmc.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
        },
        HostsConfig {
            hostname: "controller-0".into(),
            system_mode: SystemMode::Simplex,
            join_token_ttl_secs: 600,
            heartbeat_key_max_age_secs: 0,
            agent_ca,
            tpm: Default::default(),
            hold_misses_until: None,
            swact: None,
        },
        Shutdown(rx),
    )
    .await
    .unwrap();
    Rig {
        svc,
        store,
        fm,
        metrics,
        bmc,
        net,
        _stop: stop,
        _dir: dir,
    }
}

fn host_add(name: &str) -> HostAdd {
    serde_json::from_value(serde_json::Value::Object(
        [
            ("hostname".to_string(), name.into()),
            ("personality".to_string(), "worker".into()),
        ]
        .into_iter()
        .collect(),
    ))
    .unwrap()
}

fn enroll_request(token: &str, port: u16) -> EnrollRequest {
    EnrollRequest {
        join_token: token.to_string(),
        inventory: Default::default(),
        heartbeat_port: port,
        mgmt_ip: Some("127.0.0.1".into()),
        csr_pem: None,
        tpm: None,
    }
}

fn names(svc: &HostService) -> Vec<String> {
    svc.list().into_iter().map(|h| h.hostname).collect()
}

fn stored_names(r: &Rig) -> Vec<String> {
    r.store
        .inner
        .hosts()
        .unwrap()
        .into_iter()
        .map(|h| h.hostname)
        .collect()
}

fn replace(path: &str, value: &str) -> (String, String, Option<serde_json::Value>) {
    ("replace".into(), path.into(), Some(value.into()))
}

#[tokio::test]
async fn a_failed_commit_of_an_add_leaves_no_host_in_memory_or_store() {
    let r = rig().await;
    r.store.fail_next(1);
    let e = r.svc.add(host_add("worker-1")).await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::Injected)), "{e:?}");
    assert_eq!(names(&r.svc), ["controller-0"]);
    assert_eq!(stored_names(&r), ["controller-0"]);
    // Nothing half-done stands in the way of doing it again.
    r.svc.add(host_add("worker-1")).await.unwrap();
    assert_eq!(names(&r.svc), ["controller-0", "worker-1"]);
    assert_eq!(stored_names(&r), ["controller-0", "worker-1"]);
}

#[tokio::test]
async fn a_second_add_of_the_same_name_is_a_conflict() {
    let r = rig().await;
    r.svc.add(host_add("worker-1")).await.unwrap();
    let e = r.svc.add(host_add("worker-1")).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
}

#[tokio::test]
async fn a_failed_commit_of_an_enrollment_keeps_the_join_token_and_registers_nothing() {
    let r = rig().await;
    let (_, token) = r.svc.add(host_add("worker-1")).await.unwrap();
    r.store.fail_next(1);
    let peer = "127.0.0.1".parse().unwrap();
    assert!(
        r.svc
            .enroll(enroll_request(&token, 4000), peer)
            .await
            .is_err()
    );
    let (view, _) = r.svc.get("worker-1").unwrap();
    assert_eq!(view.mgmt_ip, None, "memory unchanged");
    // The token was not used up: the agent's retry works.
    let e = r
        .svc
        .enroll(enroll_request(&token, 4000), peer)
        .await
        .unwrap();
    // And only once.
    let again = r.svc.enroll(enroll_request(&token, 4000), peer).await;
    assert!(
        matches!(&again, Err(e) if e.kind() == crate::ErrorKind::Unauthorized),
        "{again:?}"
    );
    let report = r
        .svc
        .report(&plain(&e.agent_token), AgentReport::default())
        .await;
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn a_failed_commit_of_a_report_changes_nothing() {
    let r = rig().await;
    let (_, token) = r.svc.add(host_add("worker-1")).await.unwrap();
    let peer = "127.0.0.1".parse().unwrap();
    let e = r
        .svc
        .enroll(enroll_request(&token, 4000), peer)
        .await
        .unwrap();
    r.store.fail_next(1);
    let report = || AgentReport {
        heartbeat_port: Some(4001),
        ..AgentReport::default()
    };
    assert!(
        r.svc
            .report(&plain(&e.agent_token), report())
            .await
            .is_err()
    );
    let stored = r.store.inner.hosts().unwrap();
    assert_eq!(stored[1].hb_port, Some(4000));
    assert_eq!(r.svc.lock().hosts["worker-1"].hb_port, Some(4000));
    r.svc
        .report(&plain(&e.agent_token), report())
        .await
        .unwrap();
    assert_eq!(r.svc.lock().hosts["worker-1"].hb_port, Some(4001));
    assert_eq!(r.store.inner.hosts().unwrap()[1].hb_port, Some(4001));
}

#[tokio::test]
async fn a_failed_commit_of_a_delete_keeps_the_host() {
    let r = rig().await;
    r.svc.add(host_add("worker-1")).await.unwrap();
    r.store.fail_next(1);
    assert!(r.svc.delete("worker-1").await.is_err());
    assert_eq!(names(&r.svc), ["controller-0", "worker-1"]);
    assert_eq!(r.svc.delete("worker-1").await.unwrap(), "worker-1");
    assert_eq!(names(&r.svc), ["controller-0"]);
    assert_eq!(stored_names(&r), ["controller-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_of_an_action_with_field_changes_neither_acts_nor_changes() {
    let r = rig().await;
    let agent = online_host(&r, "worker-1").await;
    let ops = vec![replace("/action", "unlock"), replace("/location", "rack 4")];
    r.store.fail_next(1);
    assert!(r.svc.patch("worker-1", &ops).await.is_err());
    let (view, _) = r.svc.get("worker-1").unwrap();
    assert_eq!(view.administrative, "locked", "the action was not applied");
    assert_eq!(view.location, serde_json::json!({}));
    // Done again, both happen, and the states reach the store.
    let (view, recorded) = r.svc.patch("worker-1", &ops).await.unwrap();
    recorded.await.unwrap();
    assert_eq!(view.administrative, "unlocked");
    assert_eq!(view.location, serde_json::json!({"locn": "rack 4"}));
    let stored = r.store.inner.hosts().unwrap();
    assert_eq!(stored[1].administrative, "unlocked");
    assert_eq!(stored[1].location, r#"{"locn":"rack 4"}"#);
    agent.stop().await;
}

#[tokio::test]
async fn a_refused_action_changes_nothing_and_writes_nothing() {
    let r = rig().await;
    r.svc.add(host_add("worker-1")).await.unwrap();
    let ops = vec![replace("/location", "rack 4"), replace("/action", "lock")];
    let e = r.svc.patch("worker-1", &ops).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert_eq!(r.store.inner.hosts().unwrap()[1].location, "{}");
    assert_eq!(
        r.svc.get("worker-1").unwrap().0.location,
        serde_json::json!({})
    );
}

#[tokio::test]
async fn a_failed_commit_of_a_parameter_keeps_the_old_value() {
    let r = rig().await;
    let uuid = parameter_uuid("heartbeat_period");
    let before = r.svc.parameters();
    r.store.fail_next(1);
    let ops = vec![("/value".to_string(), Some("200".to_string()))];
    assert!(r.svc.patch_parameter(&uuid, &ops).await.is_err());
    assert_eq!(r.svc.parameters(), before);
    r.svc.patch_parameter(&uuid, &ops).await.unwrap();
    assert!(
        r.svc
            .parameters()
            .iter()
            .any(|(_, n, v)| n == "heartbeat_period" && v == "200")
    );
}

/// What a simulated agent saw of one valid pulse.
#[derive(Debug)]
struct Seen {
    flags: u8,
    answered: bool,
}

/// A simulated agent on the in-process network: it answers pulses with
/// the agent's own answerer while `answering` is on, and tells the test of
/// every valid pulse it receives.
struct SimAgent {
    answering: Arc<AtomicBool>,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl SimAgent {
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Forgets the pulses seen so far.
    fn forget_seen(&mut self) {
        while self.seen.try_recv().is_ok() {}
    }

    /// The next valid pulse this agent receives.
    async fn next_pulse(&mut self) -> Seen {
        self.seen.recv().await.expect("the agent is running")
    }
}

async fn agent_loop(
    socket: memory::Socket,
    host_id: u32,
    key: HostKey,
    answering: Arc<AtomicBool>,
    seen: mpsc::UnboundedSender<Seen>,
) {
    let mut answerer = Answerer::new(host_id, key);
    let mut buf = [0u8; 512];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let Ok(req) = answerer.accept(&buf[..n]) else {
            continue;
        };
        let answered = answering.load(Ordering::SeqCst);
        if answered {
            socket
                .send_to(&answerer.answer(&req, Health::default()), from)
                .unwrap();
        }
        let _ = seen.send(Seen {
            flags: req.flags,
            answered,
        });
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Adds and enrolls a host whose simulated agent answers pulses.
async fn enrolled_host(r: &Rig, name: &str) -> SimAgent {
    let (_, token) = r.svc.add(host_add(name)).await.unwrap();
    let socket = r.net.bind("127.0.0.1:0".parse().unwrap());
    let port = socket.addr().port();
    let peer = "127.0.0.1".parse().unwrap();
    let e = r
        .svc
        .enroll(enroll_request(&token, port), peer)
        .await
        .unwrap();
    let answering = Arc::new(AtomicBool::new(true));
    let (tx, seen) = mpsc::unbounded_channel();
    let key = HostKey::from_hex(&e.heartbeat_key).unwrap();
    let task = tokio::spawn(agent_loop(socket, e.host_id, key, answering.clone(), tx));
    SimAgent {
        answering,
        seen,
        task,
    }
}

fn availability(r: &Rig, name: &str) -> String {
    r.svc.get(name).unwrap().0.availability
}

/// A host whose simulated agent answers pulses: added, enrolled and seen
/// online by maintenance.
async fn online_host(r: &Rig, name: &str) -> SimAgent {
    let mut agent = enrolled_host(r, name).await;
    // Online once maintenance has counted an answered pulse.
    while availability(r, name) != "online" {
        agent.next_pulse().await;
    }
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_does_not_hold_back_heartbeats() {
    let r = rig().await;
    let agent = enrolled_host(&r, "worker-1").await;
    wait_for("the first answered pulse", || {
        r.metrics.pulses_answered_total() > 0
    })
    .await;

    // Every commit now waits; a request is stuck in one.
    r.store.stall(true);
    let svc = r.svc.clone();
    let stuck = tokio::spawn(async move { svc.add(host_add("worker-2")).await });
    wait_for("the add to wait in its commit", || {
        r.store.waiting.load(Ordering::SeqCst) > 0
    })
    .await;
    // Meanwhile heartbeats go on being sent, answered and taken in.
    let answered = r.metrics.pulses_answered_total();
    wait_for("ten more answered pulses", || {
        r.metrics.pulses_answered_total() >= answered + 10
    })
    .await;
    assert!(
        !stuck.is_finished(),
        "the add is still waiting for its commit"
    );
    assert!(r.svc.list().len() == 2, "readers are not held back either");

    r.store.stall(false);
    stuck.await.unwrap().unwrap();
    assert_eq!(names(&r.svc), ["controller-0", "worker-1", "worker-2"]);
    agent.stop().await;
}

/// On one thread, a pulse is answered and the answer taken in before the
/// timer of the next period is looked at (tasks that are ready run before
/// the runtime polls its timers), so the periods can be counted exactly.
#[tokio::test(flavor = "current_thread")]
async fn a_host_that_stops_answering_is_failed_after_the_threshold_of_periods() {
    let r = rig().await;
    let mut agent = online_host(&r, "worker-1").await;
    let (_, recorded) = r
        .svc
        .patch("worker-1", &[replace("/action", "unlock")])
        .await
        .unwrap();
    recorded.await.unwrap();
    while availability(&r, "worker-1") != "available" {
        assert!(agent.next_pulse().await.answered);
    }
    let (degrade, fail) = {
        let st = r.svc.lock();
        let s = st.mtce.settings();
        (s.heartbeat_degrade_threshold, s.heartbeat_failure_threshold)
    };

    // The agent goes silent. When it receives its k-th unanswered pulse,
    // maintenance has ended k - 1 periods without an answer.
    agent.answering.store(false, Ordering::SeqCst);
    agent.forget_seen();
    for k in 1..=fail + 1 {
        let seen = agent.next_pulse().await;
        assert!(!seen.answered);
        let missed = k - 1;
        let want = if missed >= fail {
            "failed"
        } else if missed >= degrade {
            "degraded"
        } else {
            "available"
        };
        assert_eq!(
            availability(&r, "worker-1"),
            want,
            "after {missed} periods without an answer"
        );
    }

    // Maintenance asks the agent to reboot, in the pulses, once the
    // failure alarm is recorded.
    let started = std::time::Instant::now();
    while agent.next_pulse().await.flags & FLAG_REBOOT == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no reboot request in the pulses"
        );
    }
    assert!(r.fm.read().get_pair("200.004", "host=worker-1").is_some());

    // Answering again, it recovers through intest.
    agent.answering.store(true, Ordering::SeqCst);
    while availability(&r, "worker-1") != "available" {
        agent.next_pulse().await;
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_answered_once_fm_has_its_alarm() {
    let r = rig().await;
    let agent = online_host(&r, "worker-1").await;
    let (_, recorded) = r
        .svc
        .patch("worker-1", &[replace("/action", "unlock")])
        .await
        .unwrap();
    recorded.await.unwrap();
    assert!(r.fm.read().get_pair("200.001", "host=worker-1").is_none());
    let (_, recorded) = r
        .svc
        .patch("worker-1", &[replace("/action", "lock")])
        .await
        .unwrap();
    recorded.await.unwrap();
    assert!(r.fm.read().get_pair("200.001", "host=worker-1").is_some());
    agent.stop().await;
}

/// Waits until the executor has carried out every job queued so far.
async fn executor_idle(r: &Rig) {
    let (done, idle) = tokio::sync::oneshot::channel();
    r.svc
        .shared
        .jobs
        .send(effects::Job::Effects {
            fx: roost_mtce::Effects::default(),
            done: Some(done),
        })
        .unwrap();
    idle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_alarms_whose_fm_commits_failed_are_recorded_at_a_later_period() {
    let r = rig().await;
    let agent = online_host(&r, "worker-1").await;
    let action = |a: &'static str| {
        let svc = r.svc.clone();
        async move {
            let (_, recorded) = svc
                .patch("worker-1", &[replace("/action", a)])
                .await
                .unwrap();
            recorded.await.unwrap();
        }
    };
    let locked = || r.fm.read().get_pair("200.001", "host=worker-1").is_some();
    action("unlock").await;
    assert!(!locked());

    // The commit of the lock's 200.001 fails: it is raised at a later
    // heartbeat period. (Whether it is still missing when the lock is
    // answered depends on that period's timing; the test below, with an
    // executor of its own, looks at each step.)
    r.fm.store().fail_next_commits(1);
    action("lock").await;
    wait_for("200.001 raised at a later period", locked).await;

    // So is a clear whose commit failed.
    r.fm.store().fail_next_commits(1);
    action("unlock").await;
    wait_for("200.001 cleared at a later period", || !locked()).await;
    agent.stop().await;
}

/// An executor of its own, whose jobs come from the test alone, on the
/// rig's FM: which commit fails is then exact.
#[tokio::test]
async fn alarm_decisions_to_record_again_keep_their_order_and_give_way_to_newer_ones() {
    let r = rig().await;
    executor_idle(&r).await;
    let (jobs, rx) = mpsc::unbounded_channel();
    let (_stop, stopped) = watch::channel(false);
    let executor = effects::Executor::new(
        r.svc.shared.clone(),
        r.store.clone(),
        r.fm.clone(),
        r.bmc.clone(),
        mpsc::unbounded_channel().0,
    );
    tokio::spawn(executor.run(rx, Shutdown(stopped)));
    let carry_out = |alarms: Vec<(&'static str, bool)>| {
        let (done, carried_out) = tokio::sync::oneshot::channel();
        let fx = roost_mtce::Effects {
            alarms: alarms
                .into_iter()
                .map(|(alarm_id, raise)| roost_mtce::AlarmOut {
                    alarm_id,
                    entity_instance_id: "host=worker-9".into(),
                    severity: raise.then_some(roost_types::Severity::Major),
                    reason_text: format!("{alarm_id} of worker-9"),
                })
                .collect(),
            ..Default::default()
        };
        jobs.send(effects::Job::Effects {
            fx,
            done: Some(done),
        })
        .unwrap();
        async move { carried_out.await.unwrap() }
    };
    let raised = |alarm_id: &str| r.fm.read().get_pair(alarm_id, "host=worker-9").is_some();
    let fail_next = |n: u32| r.fm.store().fail_next_commits(n);

    carry_out(vec![("200.001", true)]).await;
    assert!(raised("200.001"));
    // A clear whose commit failed gives way to a newer raise, even when
    // the retry of the clear fails and the raise does not.
    fail_next(1);
    carry_out(vec![("200.001", false)]).await;
    assert!(raised("200.001"), "the commit failed");
    fail_next(1);
    carry_out(vec![("200.001", true)]).await;
    carry_out(vec![]).await;
    assert!(raised("200.001"), "the older clear came after the raise");

    // Two failed decisions are both recorded with the next job, each once.
    fail_next(2);
    carry_out(vec![("200.001", false), ("200.004", true)]).await;
    assert!(
        raised("200.001") && !raised("200.004"),
        "the commits failed"
    );
    carry_out(vec![]).await;
    assert!(!raised("200.001") && raised("200.004"));
    let events = r.fm.store().event_log_len();
    carry_out(vec![]).await;
    assert_eq!(
        r.fm.store().event_log_len(),
        events,
        "nothing recorded twice"
    );
}

#[tokio::test]
async fn a_power_off_goes_to_the_bmc_through_the_executor() {
    let r = rig().await;
    r.svc.add(host_add("worker-1")).await.unwrap();
    let bmc = vec![
        replace("/bm_type", "redfish"),
        replace("/bm_ip", "127.0.0.1:9"),
        replace("/bm_username", "root"),
        replace("/bm_password", "secret"),
    ];
    r.svc.patch("worker-1", &bmc).await.unwrap();
    let (_, recorded) = r
        .svc
        .patch("worker-1", &[replace("/action", "power-off")])
        .await
        .unwrap();
    recorded.await.unwrap();
    wait_for("the BMC call", || {
        r.bmc.calls.lock().unwrap().as_slice() == [("worker-1".to_string(), PowerAction::Off)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_concurrent_enrollments_with_one_token_exactly_one_wins() {
    let r = rig().await;
    let (_, token) = r.svc.add(host_add("worker-1")).await.unwrap();
    let peer: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let mut tasks = Vec::new();
    for port in 4000..4016 {
        let svc = r.svc.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            svc.enroll(enroll_request(&token, port), peer).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(e) => winners.push(e),
            Err(e) if e.kind() == crate::ErrorKind::Unauthorized => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "one enrollment takes the token");
    let won = &winners[0];
    // Memory and store name the winner's port and agent token.
    let stored = r.store.inner.hosts().unwrap();
    let port = stored[1].hb_port;
    assert_eq!(r.svc.lock().hosts["worker-1"].hb_port, port);
    assert!(
        r.svc
            .report(&plain(&won.agent_token), AgentReport::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_add_and_a_delete_racing_for_one_name_leave_memory_and_store_agreeing() {
    let r = rig().await;
    for _ in 0..5 {
        let (a, b) = tokio::join!(r.svc.add(host_add("worker-1")), r.svc.delete("worker-1"));
        let _ = (a, b);
        assert_eq!(names(&r.svc), stored_names(&r));
        let _ = r.svc.delete("worker-1").await;
        assert_eq!(names(&r.svc), stored_names(&r));
    }
}

#[test]
fn heartbeat_keys_older_than_the_age_are_due_unless_rotating() {
    let key = |b: u8| HostKey::from_bytes([b; 32]);
    let host = |name: &str, ring: Option<KeyRing>, created: i64| StoredHost {
        hostname: name.into(),
        hb_key: ring.map(|r| r.to_stored()),
        created_at: Timestamp(created),
        ..Default::default()
    };
    let s = 1_000_000;
    let hosts = [
        host("old", Some(KeyRing::of(key(1), 0)), 0),
        host("young", Some(KeyRing::of(key(2), 95 * s)), 0),
        host(
            "rotating",
            Some(KeyRing {
                next: Some(key(4)),
                ..KeyRing::of(key(3), 0)
            }),
            0,
        ),
        // Stored before ages were kept: counted from the host's last change.
        host("legacy", KeyRing::parse(&key(5).to_hex()).ok(), 10 * s),
        host("legacy-new", KeyRing::parse(&key(6).to_hex()).ok(), 60 * s),
        host("no-agent", None, 0),
    ];
    assert_eq!(
        keys_due(hosts.iter(), Timestamp(100 * s), 90),
        ["old", "legacy"]
    );
    assert!(keys_due(hosts.iter(), Timestamp(100 * s), 1000).is_empty());
}

/// Over HTTPS: enrollment needs a CSR and returns a certificate naming the
/// host's uuid; calls must present the certificate on record (or the one a
/// renewal replaced, until the new one is used); a revoked agent is refused
/// with a certificate that is still valid.
#[tokio::test]
async fn agents_certificates_are_issued_checked_renewed_and_revoked() {
    let tls_dir = tempfile::tempdir().unwrap();
    let tls =
        crate::certs::ApiTls::load_or_create(tls_dir.path(), vec!["localhost".into()]).unwrap();
    let r = rig_with(Some(super::AgentCa {
        tls,
        cert_secs: 3600,
    }))
    .await;
    let (_, token) = r.svc.add(host_add("worker-1")).await.unwrap();
    let peer = "127.0.0.1".parse().unwrap();
    let refused = r.svc.enroll(enroll_request(&token, 4000), peer).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("certificate signing request")),
        "{refused:?}"
    );
    let key = roost_pki::ClientIdentity::generate("anything").unwrap();
    let e = r
        .svc
        .enroll(
            EnrollRequest {
                csr_pem: Some(key.csr_pem.clone()),
                ..enroll_request(&token, 4000)
            },
            peer,
        )
        .await
        .unwrap();
    let first = roost_pki::cert_info(e.client_cert_pem.as_deref().unwrap()).unwrap();
    assert_eq!(first.cn.as_deref(), Some(e.uuid.as_str()));
    let call = |cert: Option<&roost_pki::CertInfo>| AgentCall {
        token: e.agent_token.clone(),
        channel: Channel::Tls(cert.cloned()),
    };
    // The token alone, or plain HTTP's lack of a certificate, is not enough.
    assert!(r.svc.agent_host(&call(None)).is_err());
    assert_eq!(r.svc.agent_host(&call(Some(&first))).unwrap(), "worker-1");
    let reply = r
        .svc
        .report(&call(Some(&first)), AgentReport::default())
        .await
        .unwrap();
    assert!(!reply.renew_certificate);
    // Renewal: the new certificate and the one presented are both good
    // until the new one is used.
    let second = r
        .svc
        .issue_agent_certificate(&call(Some(&first)), &key.csr_pem)
        .await
        .unwrap();
    let second = roost_pki::cert_info(&second).unwrap();
    assert_ne!(second.serial, first.serial);
    assert_eq!(r.svc.agent_host(&call(Some(&first))).unwrap(), "worker-1");
    r.svc
        .report(&call(Some(&second)), AgentReport::default())
        .await
        .unwrap();
    let stale = r.svc.agent_host(&call(Some(&first))).unwrap_err();
    assert!(stale.to_string().contains("no longer"), "{stale}");
    // What the store holds survives a restart of the service.
    let stored = r.store.inner.hosts().unwrap();
    assert_eq!(
        stored[1].agent_cert_serial.as_deref(),
        Some(second.serial.as_str())
    );
    assert_eq!(stored[1].agent_cert_prev_serial, None);
    assert_eq!(r.svc.agent_certificates().len(), 1);
    // Revoked: refused with a certificate that is still valid.
    r.svc.revoke_agent("worker-1").await.unwrap();
    assert!(r.svc.agent_host(&call(Some(&second))).is_err());
    assert!(
        r.svc
            .issue_agent_certificate(&call(Some(&second)), &key.csr_pem)
            .await
            .is_err()
    );
    assert!(r.svc.agent_certificates().is_empty());
    let stored = r.store.inner.hosts().unwrap();
    assert!(stored[1].agent_token_hash.is_none() && stored[1].hb_key.is_none());
}

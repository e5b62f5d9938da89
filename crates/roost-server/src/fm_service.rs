//! The fault management service: the in-memory alarm table, the catalogue,
//! and the writer thread that applies commands and commits them in batches.
//!
//! Every command goes to one thread. It takes whatever commands are waiting
//! (up to [`MAX_BATCH`]), applies each to the table under the write lock,
//! persists each in its own savepoint, commits once, and only then answers.
//! Readers share the table through a read lock and never see a change that
//! is not committed: the write lock is held until the commit returns, and a
//! failed commit is undone in memory before the lock is released.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use roost_fm::{Catalogue, FmCommand, FmState, Outcome};
use roost_store::Store;
use roost_types::Clock;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, error_chain};

const STOPPED: &str = "the fault management service is shutting down";

/// Most commands committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Called by the writer, after each commit and before readers can see the
/// changes, with every alarm change of the batch in commit order.
pub type ChangeObserver = Arc<dyn Fn(&[roost_fm::AlarmChange]) + Send + Sync>;

/// Called by the writer, after each commit and before readers can see the
/// changes, with the batch's new event-log records in commit order and the
/// table as committed. Must not wait.
pub type EventObserver = Arc<dyn Fn(&[roost_fm::Event], &FmState) + Send + Sync>;

struct Job {
    cmd: FmCommand,
    reply: oneshot::Sender<Result<Outcome, Error>>,
}

/// Handle to the fault management service; cheap to clone.
#[derive(Clone)]
pub struct FmService {
    state: Arc<RwLock<FmState>>,
    catalogue: Arc<Catalogue>,
    store: Arc<Store>,
    tx: mpsc::Sender<Job>,
    /// Counts committed batches that changed a suppression.
    suppressions: Arc<tokio::sync::watch::Sender<u64>>,
    /// Told of every committed batch's event-log records, once set.
    events: Arc<std::sync::OnceLock<EventObserver>>,
}

impl FmService {
    /// Loads the table from the store and starts the writer thread.
    pub fn start(
        store: Arc<Store>,
        catalogue: Arc<Catalogue>,
        clock: Arc<dyn Clock>,
        observer: Option<ChangeObserver>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<(FmService, std::thread::JoinHandle<()>), Error> {
        let (alarms, suppressed) = store.load_fm()?;
        let state = Arc::new(RwLock::new(FmState::from_parts(alarms, suppressed)));
        let (tx, rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        let writer_state = state.clone();
        let writer_store = store.clone();
        let writer_cat = catalogue.clone();
        let suppressions = Arc::new(tokio::sync::watch::channel(0u64).0);
        let writer_suppressions = suppressions.clone();
        let events: Arc<std::sync::OnceLock<EventObserver>> = Arc::default();
        let writer_events = events.clone();
        let handle = std::thread::Builder::new()
            .name("fm-writer".into())
            .spawn(move || {
                writer_loop(
                    writer_store,
                    writer_state,
                    writer_cat,
                    clock,
                    rx,
                    Told {
                        observer,
                        metrics,
                        suppressions: writer_suppressions,
                        events: writer_events,
                    },
                )
            })
            .map_err(|e| Error::context("cannot start the fm writer", e))?;
        Ok((
            FmService {
                state,
                catalogue,
                store,
                tx,
                suppressions,
                events,
            },
            handle,
        ))
    }

    /// Submits `clear` (a clear that must happen, such as the alarms of a
    /// deleted host); if its commit fails, it is retried in the background,
    /// with growing waits up to a minute, until it takes or the service
    /// stops. Returns once the first attempt is decided.
    pub async fn clear_until_done(&self, clear: FmCommand) {
        let Err(e) = self.submit(clear.clone()).await else {
            return;
        };
        tracing::warn!(error = %e, "a clear failed; retrying in the background");
        let fm = self.clone();
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_millis(200);
            loop {
                tokio::time::sleep(wait).await;
                match fm.submit(clear.clone()).await {
                    Ok(_) => {
                        tracing::info!("a clear that had failed is done");
                        return;
                    }
                    Err(Error::Stopped(_)) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "a clear failed again; retrying");
                        wait = (wait * 2).min(std::time::Duration::from_secs(60));
                    }
                }
            }
        });
    }

    /// Applies a command; returns once it is committed.
    pub async fn submit(&self, cmd: FmCommand) -> Result<Outcome, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { cmd, reply })
            .await
            .map_err(|_| Error::Stopped(STOPPED))?;
        rx.await.map_err(|_| Error::Stopped(STOPPED))?
    }

    /// Read access to the committed alarm table.
    pub fn read(&self) -> RwLockReadGuard<'_, FmState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Sets who is told of every committed batch's event-log records (the
    /// notification service); only the first call counts.
    pub fn on_events(&self, observer: EventObserver) {
        let _ = self.events.set(observer);
    }

    /// Told after every committed batch that held a suppression change.
    pub fn suppressions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.suppressions.subscribe()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// Who the writer tells about its commits: the observer of alarm changes,
/// the metrics (commit time), the watchers of suppression changes.
struct Told {
    observer: Option<ChangeObserver>,
    metrics: Arc<crate::metrics::Metrics>,
    suppressions: Arc<tokio::sync::watch::Sender<u64>>,
    events: Arc<std::sync::OnceLock<EventObserver>>,
}

fn writer_loop(
    store: Arc<Store>,
    state: Arc<RwLock<FmState>>,
    catalogue: Arc<Catalogue>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Job>,
    told: Told,
) {
    let Told {
        observer,
        metrics,
        suppressions,
        events,
    } = told;
    let mut writer = match store.writer() {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "cannot open the store for writing");
            // Answer every job with an error until the senders go away.
            while let Some(job) = rx.blocking_recv() {
                let _ = job.reply.send(Err(Error::Stopped(STOPPED)));
            }
            return;
        }
    };
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let suppressing = jobs
            .iter()
            .any(|j| matches!(j.cmd, FmCommand::Suppress { .. }));
        let mut replies = Vec::with_capacity(jobs.len());
        let mut results: Vec<Result<Outcome, Error>> = Vec::with_capacity(jobs.len());
        {
            let mut table = state.write().unwrap_or_else(|e| e.into_inner());
            match writer.begin() {
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "cannot begin a transaction");
                    for job in jobs.drain(..) {
                        replies.push(job.reply);
                        results.push(Err(Error::Internal(format!(
                            "the alarm store could not commit the change: {}",
                            error_chain(&e)
                        ))));
                    }
                }
                Ok(mut batch) => {
                    for job in jobs.drain(..) {
                        replies.push(job.reply);
                        match table.apply(job.cmd, clock.now(), &catalogue) {
                            Ok(outcome) => match batch.persist_fm(&outcome) {
                                Ok(()) => results.push(Ok(outcome)),
                                Err(e) => {
                                    table.undo(&outcome.changes);
                                    tracing::error!(error = %error_chain(&e), "cannot persist an alarm change");
                                    results.push(Err(Error::Store(e)));
                                }
                            },
                            Err(e) => results.push(Err(Error::Fm(e))),
                        }
                    }
                    let commit_started = std::time::Instant::now();
                    let commit = batch.commit();
                    metrics.store_committed(commit_started.elapsed().as_secs_f64());
                    let committed = if let Err(e) = commit {
                        tracing::error!(error = %error_chain(&e), "cannot commit alarm changes");
                        for r in results.iter_mut().rev() {
                            if let Ok(o) = r {
                                table.undo(&o.changes);
                                *r = Err(Error::Internal(format!(
                                    "the alarm store could not commit the change: {}",
                                    error_chain(&e)
                                )));
                            }
                        }
                        false
                    } else {
                        true
                    };
                    if committed && suppressing {
                        suppressions.send_modify(|n| *n += 1);
                    }
                    if let Some(observe) = observer.as_ref().filter(|_| committed) {
                        let changes: Vec<roost_fm::AlarmChange> = results
                            .iter()
                            .filter_map(|r| r.as_ref().ok())
                            .flat_map(|o| o.changes.iter().cloned())
                            .collect();
                        if !changes.is_empty() {
                            observe(&changes);
                        }
                    }
                    if let Some(tell) = events.get().filter(|_| committed) {
                        let records: Vec<roost_fm::Event> = results
                            .iter()
                            .filter_map(|r| r.as_ref().ok())
                            .flat_map(|o| o.events.iter().cloned())
                            .collect();
                        if !records.is_empty() {
                            tell(&records, &table);
                        }
                    }
                }
            }
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// The command that raises an alarm (with a severity) or clears it
/// (without): how every service of the server records its alarms.
pub fn raise_or_clear(
    alarm_id: &str,
    entity_instance_id: String,
    severity: Option<roost_types::Severity>,
    reason_text: String,
) -> FmCommand {
    match severity {
        Some(severity) => FmCommand::Set(roost_fm::AlarmInput {
            alarm_id: alarm_id.to_string(),
            entity_instance_id,
            entity_type_id: None,
            severity,
            reason_text: Some(reason_text),
            alarm_type: None,
            probable_cause: None,
            proposed_repair_action: None,
            service_affecting: None,
            suppression: None,
            timestamp: None,
        }),
        None => FmCommand::ClearPair {
            alarm_id: alarm_id.to_string(),
            entity_instance_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use roost_fm::FmCommand;
    use roost_store::StoreConfig;
    use roost_types::{ManualClock, Timestamp};

    use super::*;

    fn open(dir: &tempfile::TempDir) -> Arc<Store> {
        Arc::new(
            Store::open(StoreConfig {
                key: roost_store::KeySource::beside(&dir.path().join("roost.db")),
                location: roost_store::Location::Sqlite(dir.path().join("roost.db")),
                durability: Default::default(),
                event_log_cap: 10_000,
            })
            .unwrap(),
        )
    }

    fn raise(i: usize) -> FmCommand {
        raise_or_clear(
            "100.104",
            format!("host=h{i}"),
            Some(roost_types::Severity::Major),
            "filesystem full".into(),
        )
    }

    fn entities(state: &FmState) -> BTreeSet<String> {
        state
            .alarms()
            .map(|a| a.entity_instance_id.clone())
            .collect()
    }

    /// The service on `store`, with no observer.
    fn start(
        store: &Arc<Store>,
        clock: Arc<ManualClock>,
    ) -> (FmService, std::thread::JoinHandle<()>) {
        FmService::start(
            store.clone(),
            Arc::new(Catalogue::builtin()),
            clock,
            None,
            Arc::new(crate::metrics::Metrics::new()),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clear_that_must_happen_is_retried_until_its_commit_takes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
        let (fm, _writer) = start(&store, clock);
        fm.submit(raise(1)).await.unwrap();
        fm.submit(raise(2)).await.unwrap();
        // Every commit fails for now.
        store.fail_commits(1, 0);
        let clear = FmCommand::ClearPrefix {
            entity_prefix: "host=h1".into(),
            alarm_id: None,
        };
        fm.clear_until_done(clear).await;
        assert!(entities(&fm.read()).contains("host=h1"), "not cleared yet");
        // The disk takes writes again: the retry clears it, in memory and
        // in the store.
        store.fail_commits(0, 0);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while entities(&fm.read()).contains("host=h1") {
            assert!(tokio::time::Instant::now() < deadline, "never cleared");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (alarms, suppressed) = store.load_fm().unwrap();
        let stored = FmState::from_parts(alarms, suppressed);
        assert_eq!(entities(&stored), BTreeSet::from(["host=h2".to_string()]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_commits_are_undone_in_memory_and_acknowledged_writes_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
        let (fm, _writer) = start(&store, clock);
        let mut acknowledged = BTreeSet::new();
        let mut failed = 0;
        let mut tally = |i: usize, r: Result<Outcome, Error>| match r {
            Ok(_) => {
                acknowledged.insert(format!("host=h{i}"));
            }
            Err(e) if e.kind() == crate::ErrorKind::Unavailable => failed += 1,
            Err(e) => panic!("unexpected error: {e}"),
        };
        // One at a time, every other commit fails.
        store.fail_commits(2, 0);
        for i in 0..16 {
            let r = fm.submit(raise(i)).await;
            tally(i, r);
        }
        store.fail_commits(0, 0);
        // Concurrent writers share batches; the first batch fails whole.
        store.fail_next_commits(1);
        let mut tasks = Vec::new();
        for i in 16..64 {
            let fm = fm.clone();
            tasks.push(tokio::spawn(async move { (i, fm.submit(raise(i)).await) }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            tally(i, r);
        }
        assert!(failed > 8 && acknowledged.len() >= 8, "{failed} failed");
        assert_eq!(
            entities(&fm.read()),
            acknowledged,
            "memory holds what was acknowledged"
        );
        store.fail_commits(0, 0);
        let (alarms, suppressed) = store.load_fm().unwrap();
        let stored = FmState::from_parts(alarms, suppressed);
        assert_eq!(entities(&stored), acknowledged, "the store holds the same");
        // The event log too: one record per acknowledged set.
        let events = store
            .events(&roost_store::EventQuery::default(), &BTreeSet::new())
            .unwrap()
            .0
            .into_iter()
            .filter(|e| e.entity_instance_id.starts_with("host=h"))
            .count();
        assert_eq!(events, acknowledged.len());
    }
}

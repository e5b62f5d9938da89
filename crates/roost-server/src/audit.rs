//! The audit log service: one writer thread numbers, chains and commits
//! the records the HTTP layer hands it, in batches, and prunes by age and
//! count.
//!
//! Recording never blocks or fails an API request: [`AuditLog::record`]
//! puts the entry in a bounded queue with `try_send`. When the queue is
//! full (the store is stalled far longer than a commit takes) the entry is
//! dropped, counted in `roost_audit_records_dropped` and logged. The
//! choice is availability over completeness: an audit log that could stop
//! the API would let a slow disk take the cloud down. A dropped record
//! leaves no gap in the chain (numbers are given by the writer), so the
//! metric is where losses show.
//!
//! The writer keeps the chain's head (last number and hash) in memory; it
//! is the only appender, so the head is always the last committed record.
//! A failed commit drops its batch (counted) and leaves the head as it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use roost_store::{AuditQuery, Store};
use roost_types::audit::{AuditEntry, AuditRecord, Chain, Verdict};
use roost_types::{Clock, Timestamp};

use crate::error::{Error, error_chain};
use crate::metrics::Metrics;

/// Entries waiting for the writer at most; beyond, they are dropped.
pub const QUEUE: usize = 8192;
/// Most records committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// How often the writer prunes by age when nothing else wakes it.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// Retention of the audit log (`[audit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this many days are pruned.
    pub days: u64,
    /// At most this many records are kept; the oldest go first.
    pub max_records: u64,
}

/// What the request path knows of a call.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub user: String,
    pub roles: Vec<String>,
    pub source: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// Handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<AuditEntry>,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// The last committed record's number.
    head: Arc<AtomicU64>,
}

impl AuditLog {
    /// Reads the chain's head and starts the writer thread. The thread
    /// ends when every handle is dropped, after committing what is queued.
    pub fn start(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        retention: Retention,
    ) -> Result<(AuditLog, std::thread::JoinHandle<()>), Error> {
        let (chain, len) = store.audit_head()?;
        let head = Arc::new(AtomicU64::new(chain.last_seq));
        let (tx, rx) = sync_channel(QUEUE);
        let writer = Writer {
            store: store.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            head: head.clone(),
            chain,
            len,
            retention,
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::context("cannot start the audit writer", e))?;
        Ok((
            AuditLog {
                tx,
                store,
                clock,
                metrics,
                head,
            },
            handle,
        ))
    }

    /// Hands a call to the writer, stamped with the time now. Never waits.
    pub fn record(&self, call: Call) {
        let entry = AuditEntry {
            time: self.clock.now(),
            user: call.user,
            roles: call.roles,
            source: call.source,
            method: call.method,
            path: call.path,
            status: call.status,
        };
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(e)) => {
                let total = self.metrics.audit_dropped(1);
                // One line per power of two, so a stalled store does not
                // also flood the log.
                if total.is_power_of_two() {
                    tracing::warn!(
                        dropped_total = total,
                        method = %e.method,
                        path = %e.path,
                        "the audit queue is full; audit records are being dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.audit_dropped(1);
            }
        }
    }

    /// The last committed record's number.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Records matching `q`, newest `q.limit`, oldest first.
    pub async fn list(&self, q: AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        let store = self.store.clone();
        blocking(move || store.audit_list(&q)).await
    }

    /// Verifies the kept chain from its anchor up to the writer's head.
    pub async fn verify(&self) -> Result<Verdict, Error> {
        let store = self.store.clone();
        let head = self.head();
        blocking(move || store.audit_verify(Some(head))).await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, roost_store::Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("audit read task failed: {e}")))?
        .map_err(Error::Store)
}

struct Writer {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    head: Arc<AtomicU64>,
    chain: Chain,
    /// Records kept (after the last prune).
    len: u64,
    retention: Retention,
}

impl Writer {
    fn run(mut self, rx: Receiver<AuditEntry>) {
        let mut w = match self.store.audit_writer() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "cannot open the store for the audit log");
                while rx.recv().is_ok() {
                    self.metrics.audit_dropped(1);
                }
                return;
            }
        };
        let store = self.store.clone();
        let mut last_prune: Option<Instant> = None;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // The first pass prunes at once (a start after a long stop).
            let wait = if last_prune.is_none() {
                Duration::ZERO
            } else {
                PRUNE_EVERY
            };
            match rx.recv_timeout(wait) {
                Ok(e) => batch.push(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let prune = last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY)
                || self.len + batch.len() as u64 > self.retention.max_records;
            if batch.is_empty() && !prune {
                continue;
            }
            let mut chain = self.chain;
            let records: Vec<AuditRecord> = batch.drain(..).map(|e| chain.append(e)).collect();
            let cutoff = Timestamp(
                self.clock
                    .now()
                    .micros()
                    .saturating_sub((self.retention.days as i64).saturating_mul(DAY_MICROS)),
            );
            let result = (|| {
                let mut b = w.begin()?;
                b.append_audit(&records)?;
                let pruned = if prune {
                    b.prune_audit(cutoff, self.retention.max_records)?
                } else {
                    0
                };
                b.commit()?;
                Ok::<_, roost_store::Error>(pruned)
            })();
            match result {
                Ok(pruned) => {
                    self.chain = chain;
                    self.len = (self.len + records.len() as u64).saturating_sub(pruned);
                    self.head.store(chain.last_seq, Ordering::Release);
                    self.metrics.audit_written(records.len() as u64);
                    if prune {
                        last_prune = Some(Instant::now());
                    }
                    if pruned > 0 {
                        tracing::debug!(pruned, kept = self.len, "pruned the audit log");
                    }
                }
                Err(e) => {
                    self.metrics.audit_dropped(records.len() as u64);
                    tracing::error!(
                        error = %error_chain(&e),
                        records = records.len(),
                        "cannot commit audit records; they are lost"
                    );
                    // Re-read the head in case the commit went through after all.
                    if let Ok((c, n)) = store.audit_head() {
                        self.chain = c;
                        self.len = n;
                        self.head.store(c.last_seq, Ordering::Release);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_store::{Durability, StoreConfig};
    use roost_types::ManualClock;

    fn call(i: u16) -> Call {
        Call {
            user: "admin".into(),
            roles: vec!["admin".into()],
            source: "127.0.0.1:9".into(),
            method: "POST".into(),
            path: format!("/v1/x/{i}"),
            status: 200 + i,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(StoreConfig {
                key: roost_store::KeySource::beside(&dir.path().join("roost.db")),
                location: roost_store::Location::Sqlite(dir.path().join("roost.db")),
                durability: Durability::Process,
                event_log_cap: 10,
            })
            .unwrap(),
        );
        // A writer that never takes anything: the queue holds two.
        let (tx, rx) = sync_channel(2);
        let metrics = Arc::new(Metrics::new());
        let log = AuditLog {
            tx,
            store,
            clock: Arc::new(ManualClock::new(Timestamp(0))),
            metrics: metrics.clone(),
            head: Arc::new(AtomicU64::new(0)),
        };
        for i in 0..5 {
            log.record(call(i));
        }
        assert_eq!(metrics.audit_dropped(0), 3);
        assert_eq!(rx.try_iter().count(), 2);
        // A stopped writer: dropped and counted too.
        drop(rx);
        log.record(call(9));
        assert_eq!(metrics.audit_dropped(0), 4);
    }

    #[tokio::test]
    async fn records_are_chained_pruned_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(StoreConfig {
                key: roost_store::KeySource::beside(&dir.path().join("roost.db")),
                location: roost_store::Location::Sqlite(dir.path().join("roost.db")),
                durability: Durability::Process,
                event_log_cap: 10,
            })
            .unwrap(),
        );
        let clock = Arc::new(ManualClock::new(Timestamp(1_000_000_000_000)));
        let (log, handle) = AuditLog::start(
            store.clone(),
            clock.clone(),
            Arc::new(Metrics::new()),
            Retention {
                days: 90,
                max_records: 5,
            },
        )
        .unwrap();
        for i in 0..8 {
            log.record(call(i));
        }
        drop(log);
        handle.join().unwrap();
        let (head, len) = store.audit_head().unwrap();
        assert_eq!(head.last_seq, 8);
        assert!((5..=8).contains(&len), "{len}");
        // Started again: the chain goes on from its head.
        let (log, handle) = AuditLog::start(
            store.clone(),
            clock,
            Arc::new(Metrics::new()),
            Retention {
                days: 90,
                max_records: 5,
            },
        )
        .unwrap();
        log.record(call(9));
        drop(log);
        handle.join().unwrap();
        let (head, len) = store.audit_head().unwrap();
        assert_eq!((head.last_seq, len), (9, 5));
        assert!(store.audit_verify(Some(9)).unwrap().ok());
    }
}

//! The effects executor: the one task of the host service that touches the
//! store, fault management and the BMCs. Requests send it the rows their
//! plan writes and wait for the commit; maintenance decisions send it their
//! effects (states to persist, alarms, agent reboots, BMC actions), which it
//! carries out in order. An alarm decision that FM could not commit is kept
//! and recorded again with the next job (every heartbeat period sends one
//! while any is kept), unless a newer decision about the same alarm comes
//! first.

use std::sync::Arc;

use roost_mtce::{AlarmOut, Command, Effects};
use roost_store::HostWrite;
use tokio::sync::{mpsc, oneshot};

use super::bmc::{Bmc, PowerAction};
use super::heartbeater::Control;
use super::{HostStore, Shared};
use crate::fm_service::FmService;
use crate::{Error, ErrorKind, Shutdown};

/// Work for the executor.
pub enum Job {
    /// Commit these rows in one transaction; answer with the ids of
    /// inserted hosts.
    Write {
        writes: Vec<HostWrite>,
        reply: oneshot::Sender<Result<Vec<i64>, Error>>,
    },
    /// Carry out maintenance effects; `done` is told once they are.
    Effects {
        fx: Effects,
        done: Option<oneshot::Sender<()>>,
    },
}

/// The executor's handles, and the alarm decisions it still has to record.
pub struct Executor {
    shared: Arc<Shared>,
    store: Arc<dyn HostStore>,
    fm: FmService,
    bmc: Arc<dyn Bmc>,
    heartbeat: mpsc::UnboundedSender<Control>,
    /// Alarm decisions whose FM commit failed, oldest first, at most one
    /// per alarm and entity.
    unrecorded: Vec<AlarmOut>,
}

impl Executor {
    pub fn new(
        shared: Arc<Shared>,
        store: Arc<dyn HostStore>,
        fm: FmService,
        bmc: Arc<dyn Bmc>,
        heartbeat: mpsc::UnboundedSender<Control>,
    ) -> Self {
        Executor {
            shared,
            store,
            fm,
            bmc,
            heartbeat,
            unrecorded: Vec::new(),
        }
    }

    /// Carries out jobs in order until the channel closes or shutdown; on
    /// shutdown, what is already queued is carried out first.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>, shutdown: Shutdown) {
        loop {
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => self.job(job).await,
                    None => return,
                },
                _ = shutdown.cancelled() => {
                    while let Ok(job) = rx.try_recv() {
                        self.job(job).await;
                    }
                    return;
                }
            }
        }
    }

    async fn job(&mut self, job: Job) {
        match job {
            Job::Write { writes, reply } => {
                let _ = reply.send(self.write(writes).await);
            }
            Job::Effects { fx, done } => {
                self.carry_out(fx).await;
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
        }
    }

    async fn write(&self, writes: Vec<HostWrite>) -> Result<Vec<i64>, Error> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.write_hosts(&writes)).await??)
    }

    async fn carry_out(&mut self, fx: Effects) {
        // Persist changed states first, so that a restart sees them; memory
        // follows only once they are committed.
        let rows = self.shared.state_rows(&fx.changed);
        if !rows.is_empty() {
            let writes = rows.iter().map(|r| r.write()).collect();
            match self.write(writes).await {
                Ok(_) => self.shared.states_committed(&rows),
                Err(e) => tracing::warn!(error = %e, "cannot store host states"),
            }
        }
        for r in &rows {
            // A host that failed, or an unlocked one gone offline, is
            // worth an operator's look; other changes are routine.
            if r.availability == "failed"
                || (r.availability == "offline" && r.administrative == "unlocked")
            {
                tracing::warn!(
                    host = %r.hostname,
                    administrative = %r.administrative,
                    operational = %r.operational,
                    availability = %r.availability,
                    "host state"
                );
            } else {
                tracing::info!(
                    host = %r.hostname,
                    administrative = %r.administrative,
                    operational = %r.operational,
                    availability = %r.availability,
                    "host state"
                );
            }
        }
        // Decisions whose commit failed before are older than this job's:
        // recorded first, unless this job decides anew about their alarm.
        let mut alarms = std::mem::take(&mut self.unrecorded);
        alarms.retain(|old| !fx.alarms.iter().any(|a| same_alarm(a, old)));
        alarms.extend(fx.alarms);
        for a in alarms {
            // A newer decision about this alarm replaces one still to record.
            self.unrecorded.retain(|old| !same_alarm(old, &a));
            let cmd = crate::fm_service::raise_or_clear(
                a.alarm_id,
                a.entity_instance_id.clone(),
                a.severity,
                a.reason_text.clone(),
            );
            match self.fm.submit(cmd).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    tracing::warn!(error = %e, "cannot record a maintenance alarm; will retry");
                    self.unrecorded.push(a);
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a maintenance alarm"),
            }
        }
        self.shared.alarms_unrecorded(!self.unrecorded.is_empty());
        for c in fx.commands {
            self.command(c);
        }
    }

    fn command(&self, c: Command) {
        match c {
            Command::AgentReboot { host } => {
                tracing::info!(%host, "asking the agent to reboot");
                let _ = self.heartbeat.send(Control::Reboot { host });
            }
            Command::BmcReset { host, attempt } => {
                tracing::info!(%host, attempt, "resetting the host through its BMC");
                self.spawn_bmc(host, PowerAction::Reset);
            }
            Command::BmcPowerOn { host } => self.spawn_bmc(host, PowerAction::On),
            Command::BmcPowerOff { host } => self.spawn_bmc(host, PowerAction::Off),
            Command::Swact { from, to } => {
                tracing::info!(%from, %to, "active controller role handed over");
            }
        }
    }

    /// One BMC action, in its own task (a BMC may take seconds to answer);
    /// its outcome feeds maintenance (200.010).
    fn spawn_bmc(&self, host: String, action: PowerAction) {
        let Some(target) = self.shared.bmc_target(&host) else {
            return;
        };
        let bmc = self.bmc.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let result = bmc.power(&target, action).await;
            if let Err(e) = &result {
                tracing::warn!(%host, error = %e, "BMC action failed");
            }
            shared.bmc_result(&host, result);
        });
    }
}

/// Whether two decisions are about the same alarm of the same entity.
fn same_alarm(a: &AlarmOut, b: &AlarmOut) -> bool {
    a.alarm_id == b.alarm_id && a.entity_instance_id == b.entity_instance_id
}

/// The states of one host to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub id: i64,
    pub hostname: String,
    pub administrative: String,
    pub operational: String,
    pub availability: String,
    pub task: String,
}

impl StateRow {
    fn write(&self) -> HostWrite {
        HostWrite::States {
            id: self.id,
            administrative: self.administrative.clone(),
            operational: self.operational.clone(),
            availability: self.availability.clone(),
            task: self.task.clone(),
        }
    }
}

//! The effects executor: the one task of the host service that touches the
//! store, fault management and the BMCs. Requests send it the rows their
//! plan writes and wait for the commit; maintenance decisions send it their
//! effects (states to persist, alarms, agent reboots, BMC actions), which it
//! carries out in order.

use std::sync::Arc;

use roost_mtce::{Command, Effects};
use roost_store::{Error as StoreError, HostWrite};
use tokio::sync::{mpsc, oneshot};

use super::bmc::{Bmc, PowerAction};
use super::heartbeater::Control;
use super::{HostStore, Shared};
use crate::Shutdown;
use crate::fm_service::FmService;

/// Work for the executor.
pub enum Job {
    /// Commit these rows in one transaction; answer with the ids of
    /// inserted hosts.
    Write {
        writes: Vec<HostWrite>,
        reply: oneshot::Sender<Result<Vec<i64>, StoreError>>,
    },
    /// Carry out maintenance effects; `done` is told once they are.
    Effects {
        fx: Effects,
        done: Option<oneshot::Sender<()>>,
    },
}

/// The executor's handles.
pub struct Executor {
    pub shared: Arc<Shared>,
    pub store: Arc<dyn HostStore>,
    pub fm: FmService,
    pub bmc: Arc<dyn Bmc>,
    pub heartbeat: mpsc::UnboundedSender<Control>,
}

impl Executor {
    /// Carries out jobs in order until the channel closes or shutdown; on
    /// shutdown, what is already queued is carried out first.
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Job>, shutdown: Shutdown) {
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

    async fn job(&self, job: Job) {
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

    async fn write(&self, writes: Vec<HostWrite>) -> Result<Vec<i64>, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write_hosts(&writes))
            .await
            .unwrap_or_else(|e| Err(StoreError::Invalid(format!("the store task failed: {e}"))))
    }

    async fn carry_out(&self, fx: Effects) {
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
            tracing::info!(
                host = %r.hostname,
                administrative = %r.administrative,
                operational = %r.operational,
                availability = %r.availability,
                "host state"
            );
        }
        for a in fx.alarms {
            let cmd = crate::fm_service::raise_or_clear(
                a.alarm_id,
                a.entity_instance_id,
                a.severity,
                a.reason_text,
            );
            if let Err(e) = self.fm.submit(cmd).await {
                tracing::warn!(error = %e, "cannot record a maintenance alarm");
            }
        }
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

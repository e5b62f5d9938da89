//! The server's own host: its deploy orders are carried out by the server
//! itself, with the agents' code ([`roost_update`]), through the same
//! order and report calls an agent makes. A release with a new `roost`
//! binary hands the server's process over to it ([`crate::handover`]); the
//! new process confirms once it serves and its health check passes, or
//! hands back to the previous binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roost_update::{Handover, Software};
use tokio::sync::{mpsc, watch};

use super::SoftwareService;
use crate::Shutdown;

/// Payload files of the server's own releases, copied by digest.
struct ReleaseFiles(SoftwareService);

impl roost_update::Fetch for ReleaseFiles {
    fn fetch<'a>(&'a self, sha256: &'a str, to: &'a Path) -> roost_update::FetchFuture<'a> {
        Box::pin(async move {
            let from = self.0.blob(sha256).ok_or_else(|| {
                roost_update::Error::Deploy(format!(
                    "payload file {sha256} is in no release of this cloud"
                ))
            })?;
            tokio::fs::copy(&from, to)
                .await
                .map(|_| ())
                .map_err(|source| roost_update::Error::Io {
                    context: format!("cannot copy {} to {}", from.display(), to.display()),
                    source,
                })
        })
    }
}

impl SoftwareService {
    /// Reports what the server's own host `host` runs.
    async fn report_own(&self, host: &str, sw: &Software) {
        if let Err(e) = self.agent_report(host, Some(&sw.status())).await {
            tracing::warn!(error = %e, "cannot record what this host runs");
        }
    }

    /// Carries out the deploy orders for the server's own host `host`
    /// until shutdown. First, a switch on trial is confirmed once `serving`
    /// is true and the release's health check passed, or rolled back. A
    /// new binary to run (or the previous one, rolling back) is sent on
    /// `handover`, and the loop ends.
    pub async fn own_host_loop(
        self,
        sw: Arc<Software>,
        host: String,
        serving: watch::Receiver<bool>,
        handover: mpsc::Sender<Handover>,
        shutdown: Shutdown,
    ) {
        self.report_own(&host, &sw).await;
        if sw.trial().is_some() {
            let confirmed = tokio::select! {
                () = shutdown.cancelled() => return,
                r = sw.clone().confirm_trial(serving) => r,
            };
            match confirmed {
                Ok(None) => self.report_own(&host, &sw).await,
                Ok(Some(back)) => {
                    let _ = handover.send(back).await;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %roost_types::error_chain(&e), "cannot roll back the new roost binary")
                }
            }
        }
        let fetch = ReleaseFiles(self.clone());
        let mut after = 0u64;
        loop {
            let order = tokio::select! {
                () = shutdown.cancelled() => return,
                o = self.wait_order(&host, after, Duration::from_secs(60)) => o,
            };
            let Some(order) = order else { continue };
            after = after.max(order.attempt);
            if !sw.take(&order) {
                continue;
            }
            tracing::info!(release = %order.release_id, attempt = order.attempt, rollback = order.rollback, "deploying a release on this server's host");
            if let Some(h) = sw.carry_out(&fetch, &order).await {
                let _ = handover.send(h).await;
                return;
            }
            self.report_own(&host, &sw).await;
        }
    }
}

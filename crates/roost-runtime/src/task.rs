//! Container and task life cycle.
use std::time::Duration;

use crate::{
    ContainerConfig, ContainerState, Containerd, ExecOutcome, ExitStatus, Result, RuntimeError,
};

impl Containerd {
    pub async fn start(&self, c: &ContainerConfig) -> Result<()> {
        Err(RuntimeError::Invalid(c.id.clone()))
    }
    pub async fn stop(&self, id: &str, _grace: Duration) -> Result<Option<ExitStatus>> {
        Err(RuntimeError::Invalid(id.into()))
    }
    pub async fn remove(&self, id: &str) -> Result<()> {
        Err(RuntimeError::Invalid(id.into()))
    }
    pub async fn list(&self) -> Result<Vec<ContainerState>> {
        Ok(Vec::new())
    }
    pub async fn exec(&self, id: &str, _argv: &[String], _t: Duration) -> Result<ExecOutcome> {
        Err(RuntimeError::Invalid(id.into()))
    }
    pub async fn wait_exit(&self, id: &str) -> Result<ExitStatus> {
        Err(RuntimeError::Invalid(id.into()))
    }
}

//! Simulated infrastructure for Roost tests and benchmarks.
//!
//! `roost-sim` provides stand-ins for the hardware and remote sites a
//! StarlingX-style management plane talks to. Every simulator speaks the
//! real protocol over a real socket, so the code under test cannot tell it
//! apart from the real thing, and it drives real processes, so "power off"
//! really stops something.
//!
//! Today it has these simulators:
//!
//! - [`bmc`]: a Redfish baseboard management controller whose "host" is a
//!   local process (typically a Roost agent). Powering the system off kills
//!   the process; powering it on starts it again.
//! - [`agents`]: many lightweight simulated hosts in one process, each
//!   enrolled like a real agent and answering heartbeats (`roost sim agents`).
//! - [`subclouds`]: many lightweight simulated subclouds in one process,
//!   each enrolled into a system controller with its own certificate and
//!   syncing over mutual TLS (`roost sim subclouds`).
#![forbid(unsafe_code)]

pub mod agents;
pub mod bmc;
mod error;
pub mod subclouds;

pub use bmc::{Bmc, BmcArgs, BmcConfig, PowerState, REBOOT_EXIT_CODE, ResetType, run_bmc_cli};
pub use error::{Error, Result};

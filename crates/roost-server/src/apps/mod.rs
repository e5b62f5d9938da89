//! The application service: StarlingX's `/v1/apps` life cycle on
//! `roost_apps::Apps`, application packages kept in the data directory,
//! plans for every host's agent and the agents' reports.

pub mod spec;

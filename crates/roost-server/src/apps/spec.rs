//! Between the wire and the domain: a package's manifest objects become a
//! `roost_apps::AppSpec` (what the scheduler needs), and a host's domain
//! plan becomes the agent protocol's `HostPlan` with everything resolved.

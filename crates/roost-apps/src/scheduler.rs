//! Placement: which host may run a replica, which one is picked, and which
//! CPUs its containers get.
//!
//! - Filter: the host is up (schedulable: unlocked, enabled, available; not
//!   failed, not locked), not being drained for a lock, not fenced (it has
//!   acknowledged the plan that took replicas from it), its labels match
//!   the node selector, and the replica's requests fit in what is left of
//!   its allocatable CPU and memory (the sum of the requests of the
//!   replicas placed there), and its application-isolated pool has enough
//!   free CPUs for the exclusive ones.
//! - Pick: fewest replicas of the same workload first (spread), then most
//!   free CPU, then most free memory, then the name (so that a decision is
//!   the same every time).
//! - CPUs: a container whose CPU request is a whole number equal to its
//!   limit gets that many CPUs of the isolated pool for itself (the lowest
//!   free ones), never given to anyone else while it is placed; every other
//!   container shares the host's application pool.
//! - Placement is decided once: a replica stays where it is when the host's
//!   labels or resources change later (Kubernetes' "IgnoredDuringExecution"),
//!   except that a DaemonSet replica follows its host's labels and a replica
//!   whose exclusive CPUs left the isolated pool is placed anew.

use std::collections::{BTreeMap, BTreeSet};

use crate::workload::PodTemplate;

/// What the scheduler knows of a host: maintenance's states, labels, and
/// resources (inventory minus the platform's reservation), with the CPU
/// functions of `system host-cpu-modify`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFacts {
    pub name: String,
    /// Unlocked, enabled and available (the caller decides whether a
    /// degraded host still counts as available; a host that is not
    /// schedulable loses its replicas at once).
    pub schedulable: bool,
    /// Maintenance declared it failed.
    pub failed: bool,
    pub locked: bool,
    pub labels: BTreeMap<String, String>,
    pub allocatable_cpu_millis: u64,
    pub allocatable_memory_bytes: u64,
    pub platform_cpus: Vec<u32>,
    /// The shared pool of application containers.
    pub application_cpus: Vec<u32>,
    /// The pool exclusive CPUs are taken from.
    pub isolated_cpus: Vec<u32>,
}

impl HostFacts {
    /// An unlocked, enabled, available host with these resources and no
    /// labels or CPU functions.
    pub fn up(name: &str, cpu_millis: u64, memory_bytes: u64) -> HostFacts {
        HostFacts {
            name: name.to_string(),
            schedulable: true,
            failed: false,
            locked: false,
            labels: BTreeMap::new(),
            allocatable_cpu_millis: cpu_millis,
            allocatable_memory_bytes: memory_bytes,
            platform_cpus: Vec::new(),
            application_cpus: Vec::new(),
            isolated_cpus: Vec::new(),
        }
    }

    /// Whether maintenance lets it run applications.
    pub fn is_up(&self) -> bool {
        self.schedulable && !self.failed && !self.locked
    }
}

/// The CPUs one container of a placed replica gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuAssignment {
    /// The host's application pool, shared.
    Shared,
    /// These CPUs of the isolated pool, for this container alone.
    Exclusive(Vec<u32>),
}

/// What the replicas placed on a host use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub exclusive: BTreeSet<u32>,
}

impl Usage {
    pub(crate) fn add(&mut self, t: &PodTemplate, cpus: &[CpuAssignment]) {
        self.cpu_millis += t.cpu_request_millis();
        self.memory_bytes += t.memory_request_bytes();
        for c in cpus {
            if let CpuAssignment::Exclusive(v) = c {
                self.exclusive.extend(v.iter().copied());
            }
        }
    }

    pub(crate) fn sub(&mut self, t: &PodTemplate, cpus: &[CpuAssignment]) {
        self.cpu_millis = self.cpu_millis.saturating_sub(t.cpu_request_millis());
        self.memory_bytes = self.memory_bytes.saturating_sub(t.memory_request_bytes());
        for c in cpus {
            if let CpuAssignment::Exclusive(v) = c {
                for cpu in v {
                    self.exclusive.remove(cpu);
                }
            }
        }
    }

    pub fn free_cpu_millis(&self, h: &HostFacts) -> u64 {
        h.allocatable_cpu_millis.saturating_sub(self.cpu_millis)
    }

    pub fn free_memory_bytes(&self, h: &HostFacts) -> u64 {
        h.allocatable_memory_bytes.saturating_sub(self.memory_bytes)
    }

    fn free_isolated(&self, h: &HostFacts) -> Vec<u32> {
        let mut v: Vec<u32> = h
            .isolated_cpus
            .iter()
            .copied()
            .filter(|c| !self.exclusive.contains(c))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Why a host cannot take a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misfit {
    Unavailable,
    Selector,
    Cpu,
    Memory,
    IsolatedCpus,
}

impl Misfit {
    fn words(self) -> &'static str {
        match self {
            Misfit::Unavailable => "unavailable (locked, failed, being locked or not yet fenced)",
            Misfit::Selector => "not matching the node selector",
            Misfit::Cpu => "short of cpu",
            Misfit::Memory => "short of memory",
            Misfit::IsolatedCpus => "short of free application-isolated CPUs",
        }
    }
}

/// Whether a replica of `t` fits on a host that is available to it.
pub(crate) fn fit(t: &PodTemplate, h: &HostFacts, u: &Usage) -> Result<(), Misfit> {
    if !t.selects(&h.labels) {
        return Err(Misfit::Selector);
    }
    if t.cpu_request_millis() > u.free_cpu_millis(h) {
        return Err(Misfit::Cpu);
    }
    if t.memory_request_bytes() > u.free_memory_bytes(h) {
        return Err(Misfit::Memory);
    }
    if t.exclusive_cpus() as usize > u.free_isolated(h).len() {
        return Err(Misfit::IsolatedCpus);
    }
    Ok(())
}

/// The CPUs of each container of a replica of `t` placed on `h` (which
/// [`fit`] accepted).
pub(crate) fn assign_cpus(t: &PodTemplate, h: &HostFacts, u: &Usage) -> Vec<CpuAssignment> {
    let mut free = u.free_isolated(h).into_iter();
    t.containers
        .iter()
        .map(|c| match c.resources.exclusive_cpus() {
            Some(n) => CpuAssignment::Exclusive(free.by_ref().take(n as usize).collect()),
            None => CpuAssignment::Shared,
        })
        .collect()
}

/// The pending reason of a replica no host took: how many hosts, and why
/// each group was refused.
pub(crate) fn pending_reason(hosts: usize, misfits: &[Misfit]) -> String {
    if hosts == 0 {
        return "no host can run it: there are no hosts".to_string();
    }
    let mut counts: BTreeMap<Misfit, usize> = BTreeMap::new();
    for m in misfits {
        *counts.entry(*m).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(m, n)| format!("{n} {}", m.words()))
        .collect();
    format!(
        "no host can run it: {hosts} host{}: {}",
        if hosts == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

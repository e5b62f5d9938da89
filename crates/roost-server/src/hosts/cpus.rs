//! CPU functions of a host: which logical CPUs serve the platform, which
//! the applications (shared), and which are isolated for applications that
//! ask for whole CPUs. Pure: the request is validated and the new
//! assignment computed here; the service commits it.
//!
//! By default the first physical core of each processor (all its
//! hyper-threads) is the platform's and every other CPU is an application
//! CPU. `system host-cpu-modify -f platform -p0 N` gives the platform the
//! first N cores of processor 0; `-f application-isolated -p0 N` isolates
//! the last N cores of processor 0 that are not the platform's. A
//! `cpulist` names the CPUs of a function directly.

use std::collections::{BTreeMap, BTreeSet};

use roost_api::agent::Inventory;
use roost_api::sysinv::CpuModify;
use serde::{Deserialize, Serialize};

use crate::Error;

/// A CPU's function, as sysinv names it in `allocated_function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuFunction {
    Platform,
    Application,
    ApplicationIsolated,
}

impl CpuFunction {
    pub fn wire(self) -> &'static str {
        match self {
            CpuFunction::Platform => "Platform",
            CpuFunction::Application => "Application",
            CpuFunction::ApplicationIsolated => "Application-isolated",
        }
    }

    fn parse(s: &str) -> Result<CpuFunction, Error> {
        match s.to_ascii_lowercase().as_str() {
            "platform" => Ok(CpuFunction::Platform),
            "application-isolated" | "isolated" => Ok(CpuFunction::ApplicationIsolated),
            "application" => Err(Error::Invalid(
                "application CPUs are the CPUs given no other function; \
                 modify platform or application-isolated instead"
                    .into(),
            )),
            other => Err(Error::Invalid(format!(
                "CPU function {other:?} is not supported; use platform or application-isolated"
            ))),
        }
    }
}

/// The stored form: the CPUs of each non-default function. CPUs in neither
/// set are application CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuFunctions {
    /// `None`: the default (the first core of each processor).
    pub platform: Option<BTreeSet<u32>>,
    pub isolated: BTreeSet<u32>,
}

impl CpuFunctions {
    /// Reads the stored JSON; anything unreadable is the default.
    pub fn from_json(s: &str) -> CpuFunctions {
        serde_json::from_str(s).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The function of every logical CPU of `inv`.
    pub fn resolve(&self, inv: &Inventory) -> BTreeMap<u32, CpuFunction> {
        let platform = match &self.platform {
            Some(p) => p.clone(),
            None => default_platform(inv),
        };
        inv.cpus
            .iter()
            .map(|c| {
                let f = if platform.contains(&c.cpu) {
                    CpuFunction::Platform
                } else if self.isolated.contains(&c.cpu) {
                    CpuFunction::ApplicationIsolated
                } else {
                    CpuFunction::Application
                };
                (c.cpu, f)
            })
            .collect()
    }

    /// The CPUs that have function `f`.
    pub fn cpus_of(&self, inv: &Inventory, f: CpuFunction) -> Vec<u32> {
        self.resolve(inv)
            .into_iter()
            .filter(|(_, g)| *g == f)
            .map(|(c, _)| c)
            .collect()
    }
}

/// Every hyper-thread of the lowest-numbered core of each processor.
fn default_platform(inv: &Inventory) -> BTreeSet<u32> {
    let mut first: BTreeMap<u32, u32> = BTreeMap::new();
    for c in &inv.cpus {
        let e = first.entry(c.socket).or_insert(c.core);
        *e = (*e).min(c.core);
    }
    inv.cpus
        .iter()
        .filter(|c| first.get(&c.socket) == Some(&c.core))
        .map(|c| c.cpu)
        .collect()
}

/// The physical cores of processor `socket`, lowest first, each with its
/// logical CPUs.
fn cores_of(inv: &Inventory, socket: u32) -> Vec<Vec<u32>> {
    let mut by_core: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for c in inv.cpus.iter().filter(|c| c.socket == socket) {
        by_core.entry(c.core).or_default().push(c.cpu);
    }
    by_core.into_values().collect()
}

/// Parses `"0-2,5"`.
fn parse_cpulist(s: &str) -> Result<BTreeSet<u32>, Error> {
    let bad = || Error::Invalid(format!("invalid cpulist {s:?}: expected a list like 0-2,5"));
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().map_err(|_| bad())?);
            }
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// A count from a `sockets` item: sysinv's client sends integers, other
/// clients strings.
fn count_of(v: &serde_json::Value) -> Result<usize, Error> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Error::Invalid(format!("invalid number of cores: {v}")))
}

/// The assignment after `requests`, checked: at least one platform CPU
/// remains, and every CPU named exists. Every non-platform CPU may be
/// isolated (a small edge host with two CPUs does that); shared containers
/// then run on the platform CPUs.
pub fn modify(
    inv: &Inventory,
    current: &CpuFunctions,
    requests: &[CpuModify],
) -> Result<CpuFunctions, Error> {
    if inv.cpus.is_empty() {
        return Err(Error::Invalid("the host has reported no CPUs yet".into()));
    }
    if requests.is_empty() {
        return Err(Error::Invalid("no CPU function given".into()));
    }
    let all: BTreeSet<u32> = inv.cpus.iter().map(|c| c.cpu).collect();
    let sockets: BTreeSet<u32> = inv.cpus.iter().map(|c| c.socket).collect();
    let mut platform = current
        .platform
        .clone()
        .unwrap_or_else(|| default_platform(inv));
    let mut isolated = current.isolated.clone();
    // The platform first, as sysinv does, so that isolation counts are
    // taken from what the platform leaves.
    let mut parsed = Vec::with_capacity(requests.len());
    for r in requests {
        parsed.push((CpuFunction::parse(&r.function)?, r));
    }
    parsed.sort_by_key(|(f, _)| *f);
    for (f, r) in parsed {
        let target = match (&r.cpulist, &r.sockets) {
            (Some(list), None) => {
                let set = parse_cpulist(list)?;
                if let Some(c) = set.iter().find(|c| !all.contains(c)) {
                    return Err(Error::Invalid(format!("there is no CPU {c} on this host")));
                }
                Some(set)
            }
            (None, Some(items)) => {
                let mut chosen = BTreeSet::new();
                let mut touched = BTreeSet::new();
                for item in items {
                    for (socket, n) in item {
                        let socket: u32 = socket
                            .trim()
                            .parse()
                            .map_err(|_| Error::Invalid(format!("invalid processor {socket:?}")))?;
                        if !sockets.contains(&socket) {
                            return Err(Error::Invalid(format!(
                                "There is no Processor (Socket) {socket} on this host."
                            )));
                        }
                        touched.insert(socket);
                        let n = count_of(n)?;
                        let cores = cores_of(inv, socket);
                        let picked: Vec<&Vec<u32>> = match f {
                            CpuFunction::Platform => cores.iter().take(n).collect(),
                            _ => cores
                                .iter()
                                .rev()
                                .filter(|core| !core.iter().any(|c| platform.contains(c)))
                                .take(n)
                                .collect(),
                        };
                        if picked.len() < n {
                            return Err(Error::Invalid(format!(
                                "processor {socket} has only {} cores available for {}",
                                picked.len(),
                                f.wire()
                            )));
                        }
                        chosen.extend(picked.into_iter().flatten().copied());
                    }
                }
                // Processors not named keep what they had.
                let kept: BTreeSet<u32> = match f {
                    CpuFunction::Platform => &platform,
                    _ => &isolated,
                }
                .iter()
                .copied()
                .filter(|c| {
                    inv.cpus
                        .iter()
                        .any(|x| x.cpu == *c && !touched.contains(&x.socket))
                })
                .collect();
                chosen.extend(kept);
                Some(chosen)
            }
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(
                    "give either sockets or cpulist, not both".into(),
                ));
            }
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "cpu function={} or socket not specified",
                    r.function
                )));
            }
        };
        let Some(target) = target else { continue };
        match f {
            CpuFunction::Platform => {
                isolated.retain(|c| !target.contains(c));
                platform = target;
            }
            _ => {
                if let Some(c) = target.iter().find(|c| platform.contains(c)) {
                    return Err(Error::Invalid(format!(
                        "CPU {c} is a platform CPU; give the platform other CPUs first"
                    )));
                }
                isolated = target;
            }
        }
    }
    if platform.is_empty() {
        return Err(Error::Invalid(
            "There must be at least one core for Platform.".into(),
        ));
    }
    Ok(CpuFunctions {
        platform: Some(platform),
        isolated,
    })
}

#[cfg(test)]
mod tests {
    use roost_api::agent::Cpu;
    use serde_json::json;

    use super::*;

    /// One processor, `cores` cores, `threads` threads each; CPU numbers as
    /// Linux gives them (all first threads, then all second threads).
    fn inv(cores: u32, threads: u32) -> Inventory {
        let mut cpus = Vec::new();
        for t in 0..threads {
            for c in 0..cores {
                cpus.push(Cpu {
                    cpu: t * cores + c,
                    core: c,
                    thread: t,
                    ..Cpu::default()
                });
            }
        }
        Inventory {
            cpus,
            ..Inventory::default()
        }
    }

    fn req(v: serde_json::Value) -> Vec<CpuModify> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_default_gives_the_first_core_to_the_platform() {
        let i = inv(4, 2);
        let f = CpuFunctions::default();
        assert_eq!(f.cpus_of(&i, CpuFunction::Platform), vec![0, 4]);
        assert_eq!(
            f.cpus_of(&i, CpuFunction::Application),
            vec![1, 2, 3, 5, 6, 7]
        );
        assert!(f.cpus_of(&i, CpuFunction::ApplicationIsolated).is_empty());
    }

    #[test]
    fn isolating_cores_takes_the_last_whole_cores() {
        let i = inv(4, 2);
        let r = req(json!([{"function": "application-isolated", "sockets": [{"0": 2}]}]));
        let f = modify(&i, &CpuFunctions::default(), &r).unwrap();
        assert_eq!(
            f.cpus_of(&i, CpuFunction::ApplicationIsolated),
            vec![2, 3, 6, 7]
        );
        assert_eq!(f.cpus_of(&i, CpuFunction::Application), vec![1, 5]);
        // The stored form reads back the same.
        assert_eq!(CpuFunctions::from_json(&f.to_json()), f);
    }

    #[test]
    fn every_non_platform_core_may_be_isolated() {
        let i = inv(2, 1);
        let r = req(json!([{"function": "application-isolated", "sockets": [{"0": 1}]}]));
        let f = modify(&i, &CpuFunctions::default(), &r).unwrap();
        assert_eq!(f.cpus_of(&i, CpuFunction::ApplicationIsolated), vec![1]);
        assert!(f.cpus_of(&i, CpuFunction::Application).is_empty());
    }

    #[test]
    fn counts_may_be_strings_and_cpulists_name_cpus() {
        let i = inv(4, 1);
        let r = req(json!([{"function": "platform", "sockets": [{"0": "2"}]}]));
        let f = modify(&i, &CpuFunctions::default(), &r).unwrap();
        assert_eq!(f.cpus_of(&i, CpuFunction::Platform), vec![0, 1]);
        let r = req(json!([{"function": "application-isolated", "cpulist": "3"}]));
        let f = modify(&i, &f, &r).unwrap();
        assert_eq!(f.cpus_of(&i, CpuFunction::ApplicationIsolated), vec![3]);
        assert_eq!(f.cpus_of(&i, CpuFunction::Application), vec![2]);
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let i = inv(2, 1);
        let cur = CpuFunctions::default();
        for (body, needle) in [
            (
                json!([{"function": "application-isolated", "sockets": [{"0": 2}]}]),
                "only 1 cores",
            ),
            (
                json!([{"function": "platform", "sockets": [{"0": 0}]}]),
                "at least one core for Platform",
            ),
            (
                json!([{"function": "platform", "sockets": [{"3": 1}]}]),
                "no Processor (Socket) 3",
            ),
            (
                json!([{"function": "vswitch", "sockets": [{"0": 1}]}]),
                "not supported",
            ),
            (
                json!([{"function": "application-isolated", "cpulist": "9"}]),
                "no CPU 9",
            ),
            (
                json!([{"function": "application-isolated", "cpulist": "0"}]),
                "platform CPU",
            ),
            (
                json!([{"function": "application-isolated", "cpulist": "x"}]),
                "invalid cpulist",
            ),
            (json!([{"function": "platform"}]), "not specified"),
        ] {
            let e = modify(&i, &cur, &req(body.clone()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }
}

//! `roost-bench access-log`: what the access log costs the server. Two
//! servers side by side, one writing the access log (the default) and one
//! with `roost::access=off`; in alternating rounds, the same load on each:
//! `GET /healthz` (the cheapest request, where a log line weighs most) and
//! alarm set/clear, at 8 clients. Server CPU per request over each window.

use roost_test_support::{Server, ServerOptions};
use tokio::runtime::Runtime;

use crate::Plan;
use crate::load::{self, Outcome, Workload};
use crate::stats::group;
use crate::table::Table;

const CLIENTS: usize = 8;

/// The windows of one workload on one side.
pub struct Side {
    pub workload: &'static str,
    pub logged: bool,
    pub rounds: Vec<Outcome>,
}

impl Side {
    /// Server CPU per request in each round, microseconds, sorted.
    fn cpu_us(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .rounds
            .iter()
            .filter_map(|o| {
                let cpu = o.server_cpu?;
                (o.rate() > 0.0).then(|| cpu / 100.0 / o.rate() * 1e6)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn rate_p50(&self) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(Outcome::rate).collect();
        v.sort_by(f64::total_cmp);
        median(&v)
    }
}

fn median(v: &[f64]) -> f64 {
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub struct Results {
    pub sides: Vec<Side>,
}

impl Results {
    pub fn failures(&self) -> u64 {
        self.sides
            .iter()
            .flat_map(|s| s.rounds.iter().map(Outcome::failures))
            .sum()
    }
}

fn start(plan: &Plan, logged: bool) -> anyhow::Result<Server> {
    let level = if logged {
        "info"
    } else {
        "info,roost::access=off"
    };
    crate::start_server(
        plan,
        ServerOptions {
            env: vec![("ROOST_LOG".into(), level.into())],
            ..ServerOptions::default()
        },
    )
}

pub fn run(plan: &Plan, rt: &Runtime) -> anyhow::Result<Results> {
    let rounds = if plan.quick { 2 } else { 5 };
    eprintln!("access-log: starting a server with the access log and one without");
    let servers = [(true, start(plan, true)?), (false, start(plan, false)?)];
    let http = load::client_with(None, 1024)?;
    let mut sides: Vec<Side> = Vec::new();
    for (name, workload) in [
        ("GET /healthz", Workload::Healthz),
        ("alarm set/clear", Workload::SetClear),
    ] {
        for (logged, _) in &servers {
            sides.push(Side {
                workload: name,
                logged: *logged,
                rounds: Vec::new(),
            });
        }
        for round in 0..rounds {
            for (logged, server) in &servers {
                plan.settle();
                let o = rt.block_on(load::run(
                    &http,
                    &load::Spec {
                        url: server.url.clone(),
                        token: server.token(),
                        workload,
                        clients: CLIENTS,
                        warmup: plan.warmup,
                        measure: plan.measure,
                        server_pid: server.pid(),
                        postgres_db: None,
                    },
                ));
                eprintln!(
                    "  {name}, access log {}, round {}: {:.0}/s, server CPU {:.0} %",
                    if *logged { "on" } else { "off" },
                    round + 1,
                    o.rate(),
                    o.server_cpu.unwrap_or(0.0)
                );
                if let Some(side) = sides
                    .iter_mut()
                    .find(|s| s.workload == name && s.logged == *logged)
                {
                    side.rounds.push(o);
                }
            }
        }
    }
    Ok(Results { sides })
}

pub fn render(r: &Results, plan: &Plan) -> String {
    let mut out = String::from("### Access log cost\n\n");
    out.push_str(&format!(
        "Two servers, one writing the access log (`info`, the default) and one with \
         `info,roost::access=off`, each under the same load in alternating rounds ({} per \
         side): {CLIENTS} clients, kept-alive connections, {} s windows after {} s of \
         warm-up. Server CPU per request is the server's CPU time over the window divided by \
         the requests answered in it; median of the rounds, with the lowest and highest. The \
         log goes to a pipe read by the benchmark.\n\n",
        r.sides.first().map_or(0, |s| s.rounds.len()),
        plan.measure.as_secs_f64(),
        plan.warmup.as_secs_f64(),
    ));
    let mut t = Table::new(&[
        "workload",
        "access log",
        ">µs CPU/request p50",
        ">lowest – highest",
        ">requests/s p50",
        ">CPU, on ÷ off",
    ]);
    for s in &r.sides {
        let cpu = s.cpu_us();
        let off = r
            .sides
            .iter()
            .find(|o| o.workload == s.workload && !o.logged)
            .map(|o| median(&o.cpu_us()))
            .unwrap_or(0.0);
        t.row(vec![
            s.workload.to_string(),
            if s.logged { "on" } else { "off" }.to_string(),
            format!("{:.1}", median(&cpu)),
            format!(
                "{:.1} – {:.1}",
                cpu.first().copied().unwrap_or(0.0),
                cpu.last().copied().unwrap_or(0.0)
            ),
            group(s.rate_p50().round() as u64),
            if s.logged && off > 0.0 {
                format!("{:.2} ×", median(&cpu) / off)
            } else {
                "—".into()
            },
        ]);
    }
    out.push_str(&t.render());
    out
}

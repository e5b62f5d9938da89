//! `roost-bench tls`: what TLS on the API costs. Two servers, one plain
//! HTTP and one HTTPS (`[http] tls = "on"`, the cloud CA's P-256 server
//! certificate, TLS 1.3 with aws-lc-rs):
//!
//! * a new connection per request: TCP connect, TLS handshake (HTTPS),
//!   `GET /healthz`, close; median and p99 over N sequential connections;
//! * alarm set/clear throughput at 8 and 64 clients over kept-alive
//!   connections, HTTPS against plain HTTP.

use std::time::Instant;

use roost_test_support::{Server, ServerOptions};
use tokio::runtime::Runtime;

use crate::Plan;
use crate::load::{self, Outcome, Workload};
use crate::stats::{Dist, group, ms};
use crate::table::Table;

/// One server's figures.
pub struct Side {
    pub scheme: &'static str,
    /// New connection + `GET /healthz`, each.
    pub connect: Dist,
    pub connect_failures: u64,
    /// Set/clear at each client count.
    pub setclear: Vec<Outcome>,
}

pub struct Results {
    pub sides: Vec<Side>,
    pub connections: usize,
}

impl Results {
    pub fn failures(&self) -> u64 {
        self.sides
            .iter()
            .map(|s| s.connect_failures + s.setclear.iter().map(Outcome::failures).sum::<u64>())
            .sum()
    }
}

fn start(plan: &Plan, tls: bool) -> anyhow::Result<(Server, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("roost.toml");
    std::fs::write(&cfg, if tls { "[http]\ntls = \"on\"\n" } else { "" })?;
    let s = crate::start_server(
        plan,
        ServerOptions {
            args: vec!["--config".into(), cfg.display().to_string()],
            ..ServerOptions::default()
        },
    )?;
    Ok((s, dir))
}

pub fn run(plan: &Plan, rt: &Runtime) -> anyhow::Result<Results> {
    let connections = if plan.quick { 200 } else { 2000 };
    let mut sides = Vec::new();
    for tls in [false, true] {
        let scheme = if tls { "https" } else { "http" };
        eprintln!("tls: starting a {scheme} server");
        let (server, _cfg) = start(plan, tls)?;
        let ca = if tls {
            Some(std::fs::read_to_string(
                server.data_dir.join("tls/ca/ca.crt"),
            )?)
        } else {
            None
        };
        let token = server.token();
        // A new connection for every request.
        let fresh = load::client_with(ca.as_deref(), 0)?;
        let url = format!("{}/healthz", server.url);
        plan.settle();
        let (samples, failures) = rt.block_on(async {
            let mut samples = Vec::with_capacity(connections);
            let mut failures = 0u64;
            for i in 0..connections + connections / 10 {
                let t0 = Instant::now();
                let ok = match fresh.get(&url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let took = t0.elapsed();
                if !ok {
                    failures += 1;
                } else if i >= connections / 10 {
                    samples.push(took);
                }
            }
            (samples, failures)
        });
        let connect = Dist::new(samples);
        eprintln!(
            "  {scheme} new connection: p50 {} ms, p99 {} ms",
            ms(connect.pct(50.0)),
            ms(connect.pct(99.0))
        );
        let pooled = load::client_with(ca.as_deref(), 1024)?;
        let mut setclear = Vec::new();
        for clients in [8, 64] {
            plan.settle();
            let o = rt.block_on(load::run(
                &pooled,
                &load::Spec {
                    url: server.url.clone(),
                    token: token.clone(),
                    workload: Workload::SetClear,
                    clients,
                    warmup: plan.warmup,
                    measure: plan.measure,
                    server_pid: server.pid(),
                    postgres_db: None,
                },
            ));
            eprintln!(
                "  {scheme} set/clear x{clients}: {:.0}/s, p99 {} ms, {} failed",
                o.rate(),
                ms(o.latency.pct(99.0)),
                o.failures()
            );
            setclear.push(o);
        }
        sides.push(Side {
            scheme,
            connect,
            connect_failures: failures,
            setclear,
        });
    }
    Ok(Results { sides, connections })
}

fn pct_of(a: f64, b: f64) -> String {
    if b <= 0.0 {
        "—".into()
    } else {
        format!("{:.0} %", a / b * 100.0)
    }
}

pub fn render(r: &Results, plan: &Plan) -> String {
    let mut out = String::from("### TLS on the API\n\n");
    out.push_str(&format!(
        "New connections: {} sequential requests, each on a new connection (TCP connect, the TLS \
         handshake for https, `GET /healthz`, close), after {} unmeasured ones; latency in ms. \
         Set/clear: as in the throughput benchmark, kept-alive connections, {} s after a {} s \
         warm-up.\n\n",
        r.connections,
        r.connections / 10,
        plan.measure.as_secs_f64(),
        plan.warmup.as_secs_f64()
    ));
    let mut t = Table::new(&[
        "scheme",
        ">new conn p50",
        ">new conn p99",
        ">failed",
        ">set/clear ops/s, 8 clients",
        ">p99",
        ">set/clear ops/s, 64 clients",
        ">p99",
    ]);
    for s in &r.sides {
        let mut row = vec![
            format!("`{}`", s.scheme),
            ms(s.connect.pct(50.0)),
            ms(s.connect.pct(99.0)),
            (s.connect_failures + s.setclear.iter().map(Outcome::failures).sum::<u64>())
                .to_string(),
        ];
        for o in &s.setclear {
            row.push(group(o.rate().round() as u64));
            row.push(ms(o.latency.pct(99.0)));
        }
        t.row(row);
    }
    out.push_str(&t.render());
    if let [plain, tls] = &r.sides[..] {
        let hs = tls
            .connect
            .pct(50.0)
            .saturating_sub(plain.connect.pct(50.0));
        out.push_str(&format!(
            "\nHandshake cost (https − http new-connection median): {} ms. ",
            ms(hs)
        ));
        for (p, t) in plain.setclear.iter().zip(&tls.setclear) {
            out.push_str(&format!(
                "Set/clear over HTTPS at {} clients: {} of plain HTTP. ",
                p.clients,
                pct_of(t.rate(), p.rate())
            ));
        }
        out.push('\n');
    }
    out
}

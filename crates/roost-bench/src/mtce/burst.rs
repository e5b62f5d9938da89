//! Part 5: heartbeats under a burst of writes with `--durability power`
//! (every commit fsynced). Three real agents heartbeat at 100 ms while
//! writer threads patch their hosts (the host service's request path and
//! its store commits) and raise and clear alarms (the FM writer). The same
//! server is measured first without the burst, as the baseline. The pulse
//! path must not wait for the store, so the round-trip times of the two
//! windows should match.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roost_test_support::ServerOptions;
use serde_json::json;

use super::probe::{self, HbMetrics, Http, ms_f, tally};
use super::{LoadWindow, load_window};
use crate::Plan;
use crate::stats::group;
use crate::table::Table;

/// Writer threads in the burst.
pub const WRITERS: usize = 8;

pub struct BurstResults {
    pub agents: usize,
    pub quiet: LoadWindow,
    pub burst: LoadWindow,
    /// Host patches and alarm writes acknowledged during the burst.
    pub writes: u64,
    /// Writes that failed.
    pub write_errors: u64,
}

pub fn run(plan: &Plan, window: Duration) -> anyhow::Result<BurstResults> {
    eprintln!(
        "mtce 5: heartbeats under a write burst: 3 agents, --durability power, {} s quiet, then {} s with {WRITERS} writers",
        window.as_secs(),
        window.as_secs()
    );
    plan.settle();
    let server = crate::start_server(
        plan,
        ServerOptions {
            args: vec!["--durability".into(), "power".into()],
            ..ServerOptions::default()
        },
    )?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let names: Vec<String> = (0..3).map(|i| format!("burst-{i}")).collect();
    let mut agents = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ip = format!("127.0.0.{}", i + 2);
        agents.push(probe::available_agent(
            &plan.bin,
            &http,
            dir.path(),
            name,
            &ip,
        )?);
    }
    std::thread::sleep(Duration::from_secs(2));
    let quiet = load_window(&http, server.pid(), &names, window)?;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..WRITERS {
        let http = Http::new(&server.url, &http.token)?;
        let host = names[t % names.len()].clone();
        let (stop, writes, errors) = (stop.clone(), writes.clone(), errors.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = if t.is_multiple_of(2) {
                    http.patch(
                        &format!("/v1/ihosts/{host}"),
                        &json!([{"op": "replace", "path": "/location", "value": format!("rack {t}-{n}")}]),
                    )
                } else {
                    http.post(
                        "/v1/alarms",
                        &json!({"alarm_state": if n.is_multiple_of(2) { "clear" } else { "set" },
                                "alarm_id": "100.104", "entity_instance_id": format!("host=writer-{t}"),
                                "severity": "major", "reason_text": "burst"}),
                    )
                };
                match r {
                    Ok(_) => writes.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let started = Instant::now();
    let burst = load_window(&http, server.pid(), &names, window);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let burst = burst?;
    eprintln!(
        "  {} writes in {:.0} s; {} heartbeat alarms",
        writes.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        burst.events.len()
    );
    drop(agents);
    Ok(BurstResults {
        agents: names.len(),
        quiet,
        burst,
        writes: writes.load(Ordering::Relaxed),
        write_errors: errors.load(Ordering::Relaxed),
    })
}

fn ratio(a: &HbMetrics, b: &HbMetrics, q: f64) -> String {
    match (a.rtt_quantile(q), b.rtt_quantile(q)) {
        (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
            format!("{:.1} ×", y / x.max(1e-12))
        }
        _ => "—".into(),
    }
}

pub fn render(b: &BurstResults) -> String {
    let mut out =
        String::from("### Maintenance 5. Heartbeats under a write burst, `--durability power`\n\n");
    out.push_str(&format!(
        "{} real agents unlocked and available at 100 ms; the server fsyncs every commit. First a \
         quiet window (the baseline), then {WRITERS} writer threads as fast as they are answered: \
         half patch the agents' hosts (the host service's request path and its commits), half \
         raise and clear alarms (the FM writer). RTT percentiles are `/metrics` histogram bucket \
         bounds (a factor of 2 apart).\n\n",
        b.agents
    ));
    let mut t = Table::new(&[
        "window",
        ">secs",
        ">writes/s",
        ">server CPU",
        ">pulses sent",
        ">unanswered",
        ">RTT mean",
        ">RTT p50",
        ">RTT p99",
        ">heartbeat alarms",
        ">not available",
    ]);
    for (label, w, writes) in [
        ("quiet (baseline)", &b.quiet, None),
        ("write burst", &b.burst, Some(b.writes)),
    ] {
        let (deg, failed, _) = tally(&w.events);
        t.row(vec![
            label.into(),
            format!("{:.0}", w.secs),
            writes.map_or("0".into(), |n| group((n as f64 / w.secs.max(1e-9)) as u64)),
            w.server_cpu.map_or("—".into(), |c| format!("{c:.1} %")),
            group(w.hb.sent),
            group(w.hb.sent.saturating_sub(w.hb.answered)),
            w.hb.rtt_mean().map_or("—".into(), ms_f),
            w.hb.rtt_quantile_text(0.5),
            w.hb.rtt_quantile_text(0.99),
            (deg + failed).to_string(),
            format!("{} / {}", w.not_available_polls, w.polls),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nRTT under the burst against the baseline: p50 {}, p99 {}; {} writes failed.\n",
        ratio(&b.quiet.hb, &b.burst.hb, 0.5),
        ratio(&b.quiet.hb, &b.burst.hb, 0.99),
        b.write_errors
    ));
    out
}

//! A closed-loop HTTP load generator: N clients, each a task sending one
//! request after another for a fixed time, over one shared connection pool.

use std::time::{Duration, Instant};

use crate::procfs;
use crate::stats::Dist;

/// Longest wait for any one request before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared async client: a pool with room for every concurrent client,
/// no proxy (the server is on loopback), a timeout on every request.
pub fn client() -> anyhow::Result<reqwest::Client> {
    client_with(None, 1024)
}

/// Like [`client`], trusting only `ca_pem` for https when given, keeping at
/// most `idle` idle connections per host (0: a new connection per request).
pub fn client_with(ca_pem: Option<&str>, idle: usize) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(idle)
        .tcp_nodelay(true);
    if let Some(pem) = ca_pem {
        b = b.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
    }
    Ok(b.build()?)
}

/// What each client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `POST /v1/alarms`: set, then clear, an alarm on the client's own
    /// entity (a new entity for each pair).
    SetClear,
    /// `GET /healthz`: no authentication and no store write; the HTTP floor.
    Healthz,
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub url: String,
    pub token: String,
    pub workload: Workload,
    pub clients: usize,
    /// Requests before the window opens are sent but not counted.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// The server's pid, to read its CPU time over the window.
    pub server_pid: u32,
    /// The server's PostgreSQL database, if it has one: its backends' CPU
    /// is reported apart, not as other processes'.
    pub postgres_db: Option<String>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub clients: usize,
    /// Successful requests completed inside the window.
    pub ops: u64,
    /// Length of the window, seconds.
    pub secs: f64,
    /// Latency of each of those requests.
    pub latency: Dist,
    /// Answers other than 2xx, over the whole run (warm-up included).
    pub non_2xx: u64,
    /// Requests that got no answer (connection error, timeout), whole run.
    pub errors: u64,
    /// The first failure, to show the user.
    pub first_failure: Option<String>,
    /// Server CPU over the window, % of one core.
    pub server_cpu: Option<f64>,
    /// This benchmark's own CPU over the window, % of one core.
    pub bench_cpu: Option<f64>,
    /// CPU used by everything else on the machine over the window, % of
    /// one core: a disturbed measurement shows here.
    pub other_cpu: Option<f64>,
    /// CPU of the PostgreSQL backends serving the server's database over
    /// the window, % of one core (`None` on the embedded store).
    pub db_cpu: Option<f64>,
    /// Share of the window in which some task on the machine waited for
    /// IO (Linux PSI), %: a disk busy with other work shows here.
    pub io_pressure: Option<f64>,
    /// Server CPU by thread name over the window, % of one core, busiest first.
    pub server_threads: Vec<(String, f64)>,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Failed requests of any kind.
    pub fn failures(&self) -> u64 {
        self.non_2xx + self.errors
    }
}

#[derive(Default)]
struct ClientTally {
    ops: u64,
    latency: Vec<Duration>,
    non_2xx: u64,
    errors: u64,
    first_failure: Option<String>,
}

impl ClientTally {
    fn fail(&mut self, what: String) {
        if self.first_failure.is_none() {
            self.first_failure = Some(what);
        }
    }
}

/// The body of request number `i` of client `c`: even numbers set, odd ones clear.
pub fn set_clear_body(c: usize, i: u64) -> Vec<u8> {
    let entity = format!("host=bench-{c}.filesystem=/n{}", i / 2);
    let v = if i.is_multiple_of(2) {
        serde_json::json!({"alarm_state": "set", "alarm_id": "100.104",
            "entity_instance_id": entity, "severity": "major", "reason_text": "bench"})
    } else {
        serde_json::json!({"alarm_state": "clear", "alarm_id": "100.104",
            "entity_instance_id": entity})
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

async fn one_client(
    http: reqwest::Client,
    spec: Spec,
    c: usize,
    window: (Instant, Instant),
) -> ClientTally {
    let (open, close) = window;
    let alarms = format!("{}/v1/alarms", spec.url);
    let healthz = format!("{}/healthz", spec.url);
    let mut t = ClientTally::default();
    let mut i: u64 = 0;
    loop {
        let start = Instant::now();
        if start >= close {
            break;
        }
        let req = match spec.workload {
            Workload::Healthz => http.get(&healthz),
            Workload::SetClear => http
                .post(&alarms)
                .header("X-Auth-Token", &spec.token)
                .header("Content-Type", "application/json")
                .body(set_clear_body(c, i)),
        };
        i += 1;
        let answer = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Ok(body) => Ok((status, body)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let end = Instant::now();
        match answer {
            Ok((status, _)) if status.is_success() => {
                if end >= open && end < close {
                    t.ops += 1;
                    t.latency.push(end - start);
                }
            }
            Ok((status, body)) => {
                t.non_2xx += 1;
                let body = String::from_utf8_lossy(&body);
                t.fail(format!(
                    "HTTP {status}: {}",
                    body.chars().take(200).collect::<String>()
                ));
            }
            Err(e) => {
                t.errors += 1;
                t.fail(format!("request failed: {e}"));
                // Do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    t
}

/// Runs `spec`: warm-up, then the measured window; returns once every client has stopped.
pub async fn run(http: &reqwest::Client, spec: &Spec) -> Outcome {
    let open = Instant::now() + spec.warmup;
    let close = open + spec.measure;
    let tasks: Vec<_> = (0..spec.clients)
        .map(|c| tokio::spawn(one_client(http.clone(), spec.clone(), c, (open, close))))
        .collect();
    tokio::time::sleep_until(open.into()).await;
    let threads0 = procfs::thread_ticks(spec.server_pid);
    let cpu = procfs::OtherCpu::start(spec.server_pid);
    let db = spec.postgres_db.as_deref().map(procfs::PostgresCpu::start);
    let io0 = procfs::io_stall_micros();
    let t0 = Instant::now();
    tokio::time::sleep_until(close.into()).await;
    let (server_cpu, bench_cpu, other_cpu) = cpu.read();
    let db_cpu = db.as_ref().and_then(procfs::PostgresCpu::read);
    let other_cpu = other_cpu.map(|o| (o - db_cpu.unwrap_or(0.0)).max(0.0));
    let threads1 = procfs::thread_ticks(spec.server_pid);
    let cpu_secs = t0.elapsed().as_secs_f64();
    let io_pressure = procfs::io_pressure_since(io0, cpu_secs);
    let mut all = ClientTally::default();
    for task in tasks {
        match task.await {
            Ok(t) => {
                all.ops += t.ops;
                all.latency.extend(t.latency);
                all.non_2xx += t.non_2xx;
                all.errors += t.errors;
                if let Some(f) = t.first_failure {
                    all.fail(f);
                }
            }
            Err(e) => {
                all.errors += 1;
                all.fail(format!("client task failed: {e}"));
            }
        }
    }
    Outcome {
        clients: spec.clients,
        ops: all.ops,
        secs: spec.measure.as_secs_f64(),
        latency: Dist::new(all.latency),
        non_2xx: all.non_2xx,
        errors: all.errors,
        first_failure: all.first_failure,
        server_cpu,
        bench_cpu,
        other_cpu,
        db_cpu,
        io_pressure,
        server_threads: procfs::thread_percent(&threads0, &threads1, cpu_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_alternate_set_and_clear_of_their_own_entity() {
        let set: serde_json::Value = serde_json::from_slice(&set_clear_body(3, 4)).unwrap();
        let clear: serde_json::Value = serde_json::from_slice(&set_clear_body(3, 5)).unwrap();
        assert_eq!(set["alarm_state"], "set");
        assert_eq!(clear["alarm_state"], "clear");
        assert_eq!(set["entity_instance_id"], "host=bench-3.filesystem=/n2");
        assert_eq!(set["entity_instance_id"], clear["entity_instance_id"]);
        assert_eq!(set["severity"], "major");
    }
}

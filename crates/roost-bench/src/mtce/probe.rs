//! What the maintenance benchmarks read from a server and how they set
//! hosts up: a reusable blocking API client, the heartbeat metrics, the
//! event log, real agents, and a CPU hog.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use roost_test_support::Agent;
use serde_json::{Value, json};

/// A blocking client of one server that keeps its connection, so it can
/// poll every couple of milliseconds.
pub struct Http {
    client: reqwest::blocking::Client,
    pub url: String,
    pub token: String,
}

impl Http {
    pub fn new(url: &str, token: &str) -> anyhow::Result<Http> {
        Ok(Http {
            client: reqwest::blocking::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(30))
                .build()?,
            url: url.to_string(),
            token: token.to_string(),
        })
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder, what: &str) -> anyhow::Result<String> {
        let r = rb
            .header("X-Auth-Token", &self.token)
            .send()
            .with_context(|| what.to_string())?;
        let status = r.status();
        let text = r.text().with_context(|| what.to_string())?;
        if !status.is_success() {
            anyhow::bail!(
                "{what}: HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(text)
    }

    fn json(&self, rb: reqwest::blocking::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let text = self.send(rb, what)?;
        serde_json::from_str(&text).with_context(|| format!("{what}: not JSON"))
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let what = format!("GET {path}");
        self.json(self.client.get(format!("{}{path}", self.url)), &what)
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let what = format!("POST {path}");
        self.json(
            self.client.post(format!("{}{path}", self.url)).json(body),
            &what,
        )
    }

    pub fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let what = format!("PATCH {path}");
        self.json(
            self.client.patch(format!("{}{path}", self.url)).json(body),
            &what,
        )
    }

    /// `DELETE path`; the answer's body is ignored (204 has none).
    pub fn delete(&self, path: &str) -> anyhow::Result<()> {
        let what = format!("DELETE {path}");
        self.send(self.client.delete(format!("{}{path}", self.url)), &what)?;
        Ok(())
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let what = format!("PUT {path}");
        self.json(
            self.client.put(format!("{}{path}", self.url)).json(body),
            &what,
        )
    }

    /// A host's availability.
    pub fn availability(&self, host: &str) -> anyhow::Result<String> {
        let h = self.get(&format!("/v1/ihosts/{host}"))?;
        Ok(h["availability"].as_str().unwrap_or_default().to_string())
    }

    /// Waits until a host's availability is `avail`.
    pub fn wait_avail(&self, host: &str, avail: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.availability(host)?;
            if now == avail {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{host} is still {now}, not {avail}, after {} s",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets a maintenance service parameter.
    pub fn set_parameter(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let list = self.get("/v1/service_parameter")?;
        let uuid = list["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .and_then(|p| p["uuid"].as_str())
            .with_context(|| format!("no service parameter {name}"))?
            .to_string();
        self.patch(
            &format!("/v1/service_parameter/{uuid}"),
            &json!([{"op": "replace", "path": "/value", "value": value}]),
        )?;
        Ok(())
    }

    /// The heartbeat counters and round-trip histogram of `/metrics`.
    pub fn heartbeat_metrics(&self) -> anyhow::Result<HbMetrics> {
        let text = self.send(
            self.client.get(format!("{}/metrics", self.url)),
            "GET /metrics",
        )?;
        Ok(HbMetrics::parse(&text))
    }

    /// Heartbeat alarm sets (200.004, 200.005) of hosts whose name starts
    /// with `prefix`, recorded at or after `since` (µs since the epoch),
    /// oldest first.
    pub fn heartbeat_events(&self, prefix: &str, since: i64) -> anyhow::Result<Vec<Event>> {
        let body = self.get("/v1/event_log?alarms=True&limit=2000")?;
        let mut v: Vec<Event> = body["event_log"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let id = e["event_log_id"].as_str()?;
                let host = e["entity_instance_id"].as_str()?.strip_prefix("host=")?;
                let at = parse_timestamp(e["timestamp"].as_str()?)?;
                (matches!(id, "200.004" | "200.005")
                    && e["state"] == "set"
                    && host.starts_with(prefix)
                    && at >= since)
                    .then(|| Event {
                        id: id.to_string(),
                        host: host.to_string(),
                        severity: e["severity"].as_str().unwrap_or_default().to_string(),
                        at,
                    })
            })
            .collect();
        v.sort_by_key(|e| e.at);
        Ok(v)
    }
}

/// A heartbeat alarm set, from the event log.
#[derive(Debug, Clone)]
pub struct Event {
    /// 200.004 (failed) or 200.005 (heartbeat degraded or lost).
    pub id: String,
    pub host: String,
    pub severity: String,
    /// µs since the epoch, server clock.
    pub at: i64,
}

/// Degrade events (200.005) and failure events (200.004) among `events`,
/// and how many distinct hosts they touched.
pub fn tally(events: &[Event]) -> (usize, usize, usize) {
    let degraded = events.iter().filter(|e| e.id == "200.005").count();
    let failed = events.iter().filter(|e| e.id == "200.004").count();
    let mut hosts: Vec<&str> = events.iter().map(|e| e.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    (degraded, failed, hosts.len())
}

/// This machine's wall clock, µs since the epoch (the server's clock too).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `2026-11-26T18:16:12.086207` (naive UTC) as µs since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    let us: i64 = digits.parse().ok()?;
    // Howard Hinnant's days-from-civil.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + us)
}

/// The server's heartbeat counters and round-trip histogram.
#[derive(Debug, Clone, Default)]
pub struct HbMetrics {
    pub sent: u64,
    pub answered: u64,
    pub rtt_count: u64,
    pub rtt_sum: f64,
    /// (upper bound in seconds, cumulative count), ascending; the last
    /// bound is infinite.
    pub buckets: Vec<(f64, u64)>,
}

impl HbMetrics {
    /// Reads the `roost_heartbeat_*` lines of a `/metrics` text.
    pub fn parse(text: &str) -> HbMetrics {
        let mut m = HbMetrics::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let num = value.parse::<f64>().unwrap_or(0.0);
            match name {
                "roost_heartbeat_pulses_sent_total" => m.sent = num as u64,
                "roost_heartbeat_pulses_answered_total" => m.answered = num as u64,
                "roost_heartbeat_rtt_seconds_count" => m.rtt_count = num as u64,
                "roost_heartbeat_rtt_seconds_sum" => m.rtt_sum = num,
                _ => {
                    if let Some(le) = name
                        .strip_prefix("roost_heartbeat_rtt_seconds_bucket{le=\"")
                        .and_then(|r| r.strip_suffix("\"}"))
                    {
                        let bound = if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap_or(f64::INFINITY)
                        };
                        m.buckets.push((bound, num as u64));
                    }
                }
            }
        }
        m.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        m
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &HbMetrics) -> HbMetrics {
        HbMetrics {
            sent: self.sent.saturating_sub(earlier.sent),
            answered: self.answered.saturating_sub(earlier.answered),
            rtt_count: self.rtt_count.saturating_sub(earlier.rtt_count),
            rtt_sum: (self.rtt_sum - earlier.rtt_sum).max(0.0),
            buckets: self
                .buckets
                .iter()
                .map(|&(le, n)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|b| b.0 == le)
                        .map_or(0, |b| b.1);
                    (le, n.saturating_sub(before))
                })
                .collect(),
        }
    }

    /// The upper bound of the histogram bucket holding quantile `q`
    /// (seconds); infinite when it is beyond the last finite bound.
    pub fn rtt_quantile(&self, q: f64) -> Option<f64> {
        if self.rtt_count == 0 {
            return None;
        }
        let rank = ((q * self.rtt_count as f64).ceil() as u64).max(1);
        self.buckets
            .iter()
            .find(|(_, cum)| *cum >= rank)
            .map(|(le, _)| *le)
    }

    /// Mean round-trip time, seconds.
    pub fn rtt_mean(&self) -> Option<f64> {
        (self.rtt_count > 0).then(|| self.rtt_sum / self.rtt_count as f64)
    }

    /// The largest finite bucket bound (to print "> bound").
    fn last_finite(&self) -> f64 {
        self.buckets
            .iter()
            .map(|b| b.0)
            .filter(|b| b.is_finite())
            .fold(0.0, f64::max)
    }

    /// A quantile as `≤ 0.40 ms` (histogram bucket bound), or `—`.
    pub fn rtt_quantile_text(&self, q: f64) -> String {
        match self.rtt_quantile(q) {
            None => "—".into(),
            Some(b) if b.is_finite() => format!("≤ {}", ms_f(b)),
            Some(_) => format!("> {}", ms_f(self.last_finite())),
        }
    }
}

/// Seconds as milliseconds text.
pub fn ms_f(secs: f64) -> String {
    format!(
        "{} ms",
        crate::stats::ms(Duration::from_secs_f64(secs.max(0.0)))
    )
}

/// Adds a worker, starts a real agent for it on `ip` (`--reboot-command
/// true`, so reboot requests are harmless), unlocks it and waits until it
/// is available.
pub fn available_agent(
    bin: &Path,
    http: &Http,
    dir: &Path,
    name: &str,
    ip: &str,
) -> anyhow::Result<Agent> {
    let added = http.post(
        "/v1/ihosts",
        &json!({"hostname": name, "personality": "worker"}),
    )?;
    let token = added["join_token"]
        .as_str()
        .context("no join_token")?
        .to_string();
    let agent = Agent::start(
        bin,
        &http.url,
        &token,
        &dir.join(name),
        ip,
        &["--reboot-command", "true"],
    )
    .map_err(anyhow::Error::msg)?;
    http.wait_avail(name, "online", Duration::from_secs(30))?;
    http.patch(
        &format!("/v1/ihosts/{name}"),
        &json!([{"op": "replace", "path": "/action", "value": "unlock"}]),
    )?;
    http.wait_avail(name, "available", Duration::from_secs(30))?;
    Ok(agent)
}

/// Keeps `n` CPUs busy: `stress-ng --cpu N` when installed, else busy threads
/// in this process.
pub struct CpuHog {
    child: Option<Child>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// How the load is made, for the report.
    pub how: String,
}

impl CpuHog {
    pub fn start(n: usize, secs: u64) -> CpuHog {
        let stop = Arc::new(AtomicBool::new(false));
        let child = Command::new("stress-ng")
            .args([
                "--cpu",
                &n.to_string(),
                "--timeout",
                &format!("{secs}s"),
                "--quiet",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(child) = child {
            return CpuHog {
                child: Some(child),
                stop,
                threads: Vec::new(),
                how: format!("`stress-ng --cpu {n}`"),
            };
        }
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x: u64 = 1;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..100_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                            );
                        }
                    }
                })
            })
            .collect();
        CpuHog {
            child: None,
            stop,
            threads,
            how: format!("{n} busy-loop threads (stress-ng is not installed)"),
        }
    }

    /// Stops the load and waits for it to end.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets stress-ng stop its workers.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A `roost sim agents` process: started, waited for, stopped with SIGTERM.
pub struct SimAgents {
    child: Option<Child>,
    stderr: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SimAgents {
    /// Starts `count` simulated hosts that unlock themselves and waits
    /// until they are all available.
    pub fn start(
        bin: &Path,
        http: &Http,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<SimAgents> {
        let mut child = Command::new(bin)
            .args([
                "sim",
                "agents",
                "--server",
                &http.url,
                "--count",
                &count.to_string(),
                "--prefix",
                "sim-",
                "--ip",
                "127.0.0.1",
                "--unlock",
                "--ready-timeout-secs",
                &timeout.as_secs().to_string(),
            ])
            .env("ROOST_TOKEN", &http.token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} sim agents", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let lines: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut v) = lines.lock() {
                        v.push(l);
                    }
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if l.starts_with("roost sim agents ready:") {
                    let _ = tx.send(l);
                }
            }
        });
        let mut sim = SimAgents {
            child: Some(child),
            stderr: lines,
        };
        if rx.recv_timeout(timeout + Duration::from_secs(10)).is_err() {
            sim.stop();
            anyhow::bail!(
                "`roost sim agents` did not become ready; its log:\n{}",
                sim.log()
            );
        }
        Ok(sim)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for SimAgents {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A random number, without a dependency: std's hasher keys are random.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_epoch_micros() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00.000000"), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-02T00:00:01.5"),
            Some(86_401_500_000)
        );
        assert_eq!(
            parse_timestamp("2026-11-26T19:38:42.117279"),
            Some(1_795_721_922_117_279)
        );
        assert_eq!(parse_timestamp("nonsense"), None);
    }

    #[test]
    fn heartbeat_metrics_parse_and_subtract() {
        let a = HbMetrics::parse(
            "roost_heartbeat_pulses_sent_total 10\n\
             roost_heartbeat_pulses_answered_total 9\n\
             roost_heartbeat_rtt_seconds_sum 0.009\n\
             roost_heartbeat_rtt_seconds_count 9\n\
             roost_heartbeat_rtt_seconds_bucket{le=\"0.0001\"} 2\n\
             roost_heartbeat_rtt_seconds_bucket{le=\"0.0002\"} 8\n\
             roost_heartbeat_rtt_seconds_bucket{le=\"+Inf\"} 9\n",
        );
        assert_eq!((a.sent, a.answered, a.rtt_count), (10, 9, 9));
        assert_eq!(a.rtt_quantile(0.5), Some(0.0002));
        assert_eq!(a.rtt_quantile(0.99), Some(f64::INFINITY));
        assert_eq!(a.rtt_quantile_text(0.99), "> 0.200 ms");
        assert_eq!(a.rtt_quantile_text(0.1), "≤ 0.100 ms");
        let z = HbMetrics::parse("");
        let d = a.since(&z);
        assert_eq!(d.rtt_count, 9);
        let d0 = a.since(&a);
        assert_eq!(d0.rtt_quantile(0.5), None);
        assert_eq!(d0.rtt_quantile_text(0.5), "—");
    }
}

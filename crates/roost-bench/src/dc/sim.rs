//! The `dc` benchmark's instruments: the `roost sim subclouds` process
//! (driven through its stdin control channel) and timed calls to the
//! system controller's API.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::Value;

/// Lines of the simulator's log kept for error messages.
const LOG_LINES: usize = 200;

/// A running `roost sim subclouds`.
pub struct SimSubclouds {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl SimSubclouds {
    /// Starts `count` managed subclouds named `{prefix}00001`... against the
    /// system controller at `api_url` and waits for its ready line.
    pub fn start(
        bin: &Path,
        api_url: &str,
        token: &str,
        count: usize,
        prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<SimSubclouds> {
        SimSubclouds::start_with(bin, api_url, token, count, prefix, timeout, &[])
    }

    /// [`SimSubclouds::start`] with more arguments to `roost sim subclouds`.
    pub fn start_with(
        bin: &Path,
        api_url: &str,
        token: &str,
        count: usize,
        prefix: &str,
        timeout: Duration,
        extra: &[&str],
    ) -> anyhow::Result<SimSubclouds> {
        let mut child = Command::new(bin)
            .args(["sim", "subclouds", "--system-controller", api_url])
            .args([
                "--count",
                &count.to_string(),
                "--prefix",
                prefix,
                "--manage",
            ])
            .args(["--ready-timeout-secs", &timeout.as_secs().to_string()])
            .args(extra)
            .env("ROOST_TOKEN", token)
            .env_remove("ROOST_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} sim subclouds", bin.display()))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log: Arc<Mutex<Vec<String>>> = Default::default();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut v) = log.lock() {
                        if v.len() >= LOG_LINES {
                            v.remove(0);
                        }
                        v.push(l);
                    }
                }
            });
        }
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let mut sim = SimSubclouds {
            child: Some(child),
            stdin: Some(stdin),
            lines,
            log,
        };
        match sim.lines.recv_timeout(timeout + Duration::from_secs(10)) {
            Ok(l) if l.starts_with("roost sim subclouds ready:") => Ok(sim),
            other => {
                sim.stop();
                anyhow::bail!(
                    "`roost sim subclouds` did not become ready ({other:?}); its log:\n{}",
                    sim.log()
                )
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The last lines of its log.
    pub fn log(&self) -> String {
        self.log.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// Sends one command; returns the answer after `ok `.
    pub fn cmd(&mut self, line: &str) -> anyhow::Result<String> {
        let stdin = self.stdin.as_mut().context("the simulator is stopped")?;
        writeln!(stdin, "{line}").context("writing to the simulator")?;
        stdin.flush()?;
        let reply = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| format!("no answer to {:?}", short(line)))?;
        match reply.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim().to_string()),
            None => anyhow::bail!("{:?}: {reply}", short(line)),
        }
    }

    /// A command whose answer is `key=value` pairs.
    pub fn kv(&mut self, line: &str) -> anyhow::Result<HashMap<String, String>> {
        Ok(pairs(&self.cmd(line)?))
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        self.stdin.take();
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

impl Drop for SimSubclouds {
    fn drop(&mut self) {
        self.stop();
    }
}

fn short(line: &str) -> String {
    if line.chars().count() > 80 {
        format!("{}...", line.chars().take(80).collect::<String>())
    } else {
        line.to_string()
    }
}

/// `a=1 b=2` as a map.
pub fn pairs(s: &str) -> HashMap<String, String> {
    s.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A number from a map of pairs (0 when missing or not a number).
pub fn num(m: &HashMap<String, String>, key: &str) -> f64 {
    m.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Timed, authenticated calls to the system controller's API.
pub struct Api {
    pub url: String,
    pub token: String,
    http: reqwest::blocking::Client,
}

/// One answer: its JSON, size and time.
pub struct Answer {
    pub body: Value,
    pub bytes: usize,
    pub took: Duration,
}

impl Api {
    pub fn new(url: &str, token: &str) -> anyhow::Result<Api> {
        Ok(Api {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder, what: &str) -> anyhow::Result<Answer> {
        let t = Instant::now();
        let r = rb
            .header("X-Auth-Token", &self.token)
            .send()
            .with_context(|| what.to_string())?;
        let status = r.status();
        let text = r.text().with_context(|| what.to_string())?;
        let took = t.elapsed();
        if !status.is_success() {
            anyhow::bail!(
                "{what}: HTTP {}: {}",
                status.as_u16(),
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(Answer {
            bytes: text.len(),
            body: serde_json::from_str(&text).with_context(|| format!("{what}: not JSON"))?,
            took,
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(
            self.http.get(format!("{}{path}", self.url)),
            &format!("GET {path}"),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.send(
            self.http.post(format!("{}{path}", self.url)).json(body),
            &format!("POST {path}"),
        )
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(
            self.http.delete(format!("{}{path}", self.url)),
            &format!("DELETE {path}"),
        )
    }

    pub fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.send(
            self.http.patch(format!("{}{path}", self.url)).json(body),
            &format!("PATCH {path}"),
        )
    }

    /// `GET /v1.0/subclouds/`: every subcloud's row, by name.
    pub fn subclouds(&self) -> anyhow::Result<(HashMap<String, Value>, Answer)> {
        let mut a = self.get("/v1.0/subclouds/")?;
        let rows = match a.body["subclouds"].take() {
            Value::Array(v) => v,
            _ => anyhow::bail!("GET /v1.0/subclouds/: no subclouds list"),
        };
        let by_name = rows
            .into_iter()
            .filter_map(|r| Some((r["name"].as_str()?.to_string(), r)))
            .collect();
        Ok((by_name, a))
    }

    /// `GET /v1.0/alarms/`: the summary rows, by region name.
    pub fn summary(&self) -> anyhow::Result<(HashMap<String, Value>, Answer)> {
        let mut a = self.get("/v1.0/alarms/")?;
        let rows = match a.body["alarm_summary"].take() {
            Value::Array(v) => v,
            _ => anyhow::bail!("GET /v1.0/alarms/: no alarm_summary"),
        };
        let by_name = rows
            .into_iter()
            .filter_map(|r| Some((r["region_name"].as_str()?.to_string(), r)))
            .collect();
        Ok((by_name, a))
    }

    /// Suppresses (or unsuppresses) an alarm id on the system controller:
    /// a change of its platform configuration.
    pub fn set_suppressed(&self, alarm_id: &str, on: bool) -> anyhow::Result<()> {
        let list = self.get("/v1/event_suppression")?.body;
        let uuid = list["event_suppression"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["alarm_id"] == alarm_id)
            .and_then(|r| r["uuid"].as_str())
            .with_context(|| format!("no event suppression row for {alarm_id}"))?
            .to_string();
        let status = if on { "suppressed" } else { "unsuppressed" };
        self.patch(
            &format!("/v1/event_suppression/{uuid}"),
            &serde_json::json!([{"op": "replace", "path": "/suppression_status", "value": status}]),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_numbers_are_read() {
        let m = pairs("reached=3 of=5 p50_ms=12.5 p99_ms=-");
        assert_eq!(num(&m, "reached"), 3.0);
        assert_eq!(num(&m, "p50_ms"), 12.5);
        assert_eq!(num(&m, "p99_ms"), 0.0);
        assert_eq!(num(&m, "missing"), 0.0);
        assert_eq!(short(&"x".repeat(100)).len(), 83);
    }
}

//! `roost-bench notify`: how long an alarm takes to reach the outside
//! world. One server with two destinations: a webhook (an HTTP receiver in
//! this process) and an SNMPv2c manager (Net-SNMP's `snmptrapd`, its output
//! read line by line). Alarms are raised one at a time, paced; for each,
//! the time from sending `POST /v1/alarms` to (a) the API's answer (the
//! commit: the baseline, measured in the same run), (b) the webhook call's
//! arrival and (c) snmptrapd printing the trap.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roost_test_support::{Server, ServerOptions, wait_for};
use serde_json::json;

use crate::Plan;
use crate::stats::{Dist, ms};
use crate::table::Table;

/// When each entity's record arrived.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

pub struct Results {
    pub alarms: usize,
    pub api: Dist,
    pub webhook: Dist,
    pub trap: Dist,
    pub lost_webhooks: usize,
    pub lost_traps: usize,
}

impl Results {
    pub fn failures(&self) -> u64 {
        (self.lost_webhooks + self.lost_traps) as u64
    }
}

/// An HTTP receiver answering 200 to every call, noting when the body of
/// each entity arrived.
fn receiver(arrivals: Arrivals) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let arrivals = arrivals.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                });
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let at = Instant::now();
                    if let (Ok(b), Ok(mut a)) = (
                        serde_json::from_slice::<roost_api::notify::WebhookBody>(&body),
                        arrivals.lock(),
                    ) {
                        a.insert(b.event.entity_instance_id, at);
                    }
                    if out
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

struct Trapd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Trapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// snmptrapd on `port`, each trap printed on one line; a thread notes when
/// each entity's trap was printed.
fn trapd(port: u16, arrivals: Arrivals) -> anyhow::Result<Trapd> {
    anyhow::ensure!(
        Path::new("/usr/sbin/snmptrapd").exists(),
        "snmptrapd is not installed (Debian package snmptrapd)"
    );
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("snmptrapd.conf");
    std::fs::write(&conf, "authCommunity log bench\n")?;
    let mut child = Command::new("/usr/sbin/snmptrapd")
        .args(["-f", "-Lo", "-C", "-n", "-On", "-c"])
        .arg(&conf)
        .args(["-F", "TRAP %V\\t%v\\n"])
        .arg(format!("udp:127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let at = Instant::now();
            if let Some(i) = line.find("host=bench-") {
                let tail = &line[i..];
                let end = tail
                    .find(|c: char| c == '"' || c.is_whitespace())
                    .unwrap_or(tail.len());
                if let Ok(mut a) = arrivals.lock() {
                    a.entry(tail[..end].to_string()).or_insert(at);
                }
            }
        }
    });
    Ok(Trapd { child, _dir: dir })
}

pub fn run(plan: &Plan) -> anyhow::Result<Results> {
    let alarms = if plan.quick { 50 } else { 500 };
    let hooks: Arrivals = Arc::default();
    let traps: Arrivals = Arc::default();
    let url = receiver(hooks.clone())?;
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        s.local_addr()?.port()
    };
    let _trapd = trapd(port, traps.clone())?;
    let server: Server = crate::start_server(plan, ServerOptions::default())?;
    let api = server.api();
    let r = api.post(
        "/v1/notifications/destinations",
        &json!({"name": "hook", "type": "webhook", "url": url, "secret": "bench-signing-key-0123"}),
    );
    anyhow::ensure!(r.status == 201, "adding the webhook: {:?}", r.body);
    let r = api.post(
        "/v1/notifications/destinations",
        &json!({"name": "nms", "type": "snmp", "host": format!("127.0.0.1:{port}"), "community": "bench"}),
    );
    anyhow::ensure!(r.status == 201, "adding the SNMP manager: {:?}", r.body);
    // snmptrapd is ready once the test record's trap shows.
    let r = api.post("/v1/notifications/destinations/nms/test", &json!(null));
    anyhow::ensure!(r.status == 202, "test trap: {:?}", r.body);
    std::thread::sleep(Duration::from_millis(200));
    eprintln!("notify: {alarms} alarms, one at a time, 20 ms apart");
    let mut sent: Vec<(String, Instant, Duration)> = Vec::with_capacity(alarms);
    let http = roost_test_support::http();
    for i in 0..alarms {
        let entity = format!("host=bench-{i}");
        let body = json!({"alarm_state": "set", "alarm_id": "100.104", "entity_instance_id": entity,
                          "severity": "major", "reason_text": "benchmark alarm"});
        let t0 = Instant::now();
        let resp = http
            .post(format!("{}/v1/alarms", server.url))
            .header("X-Auth-Token", &api.token)
            .json(&body)
            .send()?;
        let answered = t0.elapsed();
        anyhow::ensure!(resp.status().is_success(), "set failed: {}", resp.status());
        sent.push((entity, t0, answered));
        std::thread::sleep(Duration::from_millis(20));
    }
    let complete = |a: &Arrivals| {
        let a = a.lock().map(|m| m.len()).unwrap_or(0);
        a >= alarms
    };
    let _ = wait_for(30, || (complete(&hooks) && complete(&traps)).then_some(()));
    let (hooks, traps) = (
        hooks.lock().map(|m| m.clone()).unwrap_or_default(),
        traps.lock().map(|m| m.clone()).unwrap_or_default(),
    );
    let mut api_d = Vec::new();
    let mut hook_d = Vec::new();
    let mut trap_d = Vec::new();
    for (entity, t0, answered) in &sent {
        api_d.push(*answered);
        if let Some(at) = hooks.get(entity) {
            hook_d.push(at.saturating_duration_since(*t0));
        }
        if let Some(at) = traps.get(entity) {
            trap_d.push(at.saturating_duration_since(*t0));
        }
    }
    Ok(Results {
        alarms,
        lost_webhooks: alarms - hook_d.len(),
        lost_traps: alarms - trap_d.len(),
        api: Dist::new(api_d),
        webhook: Dist::new(hook_d),
        trap: Dist::new(trap_d),
    })
}

pub fn render(r: &Results) -> String {
    let mut out = String::from("### Alarm to notification\n\n");
    out.push_str(&format!(
        "One server (SQLite, durability `process`) with a webhook destination (an HTTP \
         receiver in the benchmark process) and an SNMPv2c destination (Debian's \
         `snmptrapd`, its output read line by line). {} alarms are raised one at a time, \
         20 ms apart; each time is from sending `POST /v1/alarms` to the event: the API's \
         answer (the commit, the baseline), the webhook call's arrival, snmptrapd printing \
         the trap. Lost: records that had not arrived 30 s after the last alarm.\n\n",
        r.alarms
    ));
    let mut t = Table::new(&[
        "path",
        ">p50 (ms)",
        ">p90 (ms)",
        ">p99 (ms)",
        ">max (ms)",
        ">p50 ÷ API p50",
        ">lost",
    ]);
    let base = r.api.pct(50.0).as_secs_f64();
    for (name, d, lost) in [
        ("API answer (commit)", &r.api, 0),
        ("webhook received", &r.webhook, r.lost_webhooks),
        ("trap at snmptrapd", &r.trap, r.lost_traps),
    ] {
        if d.len() == 0 {
            t.row(vec![
                name.into(),
                "—".into(),
                "—".into(),
                "—".into(),
                "—".into(),
                "—".into(),
                lost.to_string(),
            ]);
            continue;
        }
        t.row(vec![
            name.to_string(),
            ms(d.pct(50.0)),
            ms(d.pct(90.0)),
            ms(d.pct(99.0)),
            ms(d.max()),
            if base > 0.0 {
                format!("{:.2} ×", d.pct(50.0).as_secs_f64() / base)
            } else {
                "—".into()
            },
            lost.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out
}

//! `roost-bench login`: the cost of logins and what a flood of wrong
//! passwords does to everyone else.
//!
//! 1. Login throughput and latency: 1, 2 and 8 clients logging in with the
//!    right password (argon2id at Roost's parameters: 19 MiB, 2 passes, 1
//!    lane) for the window.
//! 2. A reader's `GET /v1/alarms` (20 active alarms), one client, closed
//!    loop: alone, then while 512 clients send wrong passwords as fast as
//!    they are answered. Twice: with Roost's defaults (growing delays per
//!    source and user, lockout), and with delays and lockout off, where
//!    every wrong password is hashed and only the two password threads and
//!    their queue bound the work. Target: the reader's p99 within 2x of the
//!    unloaded figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roost_test_support::ServerOptions;
use serde_json::json;
use tokio::runtime::Runtime;

use crate::stats::{Dist, ms};
use crate::table::Table;
use crate::{Plan, emit, start_server};

const PASSWORD: &str = "bench-password-1";
const FLOOD_CLIENTS: usize = 512;

fn login_body(user: &str, password: &str) -> roost_api::identity::AuthRequest {
    roost_api::identity::AuthRequest::password_scoped(user, password)
}

/// Logs in; the token.
async fn login(
    c: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let r = c
        .post(format!("{url}/v3/auth/tokens"))
        .json(&login_body(user, password))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "login as {user}: {}",
        r.status()
    );
    Ok(r.headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// `clients` closed-loop logins for `window`: (logins per second, latency).
async fn logins(url: &str, clients: usize, window: Duration) -> anyhow::Result<(f64, Dist)> {
    let c = crate::load::client()?;
    let end = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (c, url) = (c.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                login(&c, &url, "bench", PASSWORD).await?;
                v.push(t.elapsed());
            }
            anyhow::Ok(v)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / window.as_secs_f64();
    Ok((rate, Dist::new(all)))
}

/// A reader's alarm list, one client, for `window`.
async fn reader(url: &str, token: &str, window: Duration) -> anyhow::Result<Dist> {
    let c = crate::load::client()?;
    let end = Instant::now() + window;
    let mut v = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        let r = c
            .get(format!("{url}/v1/alarms"))
            .header("X-Auth-Token", token)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "reader: {}", r.status());
        r.bytes().await?;
        v.push(t.elapsed());
    }
    Ok(Dist::new(v))
}

/// Answers to the flood, by kind.
#[derive(Default)]
struct Flood {
    refused_401: AtomicU64,
    delayed_429: AtomicU64,
    busy_503: AtomicU64,
    other: AtomicU64,
}

/// The reader's latency alone and under 512 wrong-password clients, on a
/// server configured with `config`.
async fn under_flood(plan: &Plan, config: &str) -> anyhow::Result<(Dist, Dist, Arc<Flood>)> {
    let cfg = tempfile::tempdir()?;
    let p = cfg.path().join("roost.toml");
    std::fs::write(&p, config)?;
    let s = start_server(
        plan,
        ServerOptions {
            args: vec!["--config".into(), p.display().to_string()],
            ..Default::default()
        },
    )?;
    let url = s.url.clone();
    let c = crate::load::client()?;
    let admin = login(&c, &url, "admin", roost_test_support::PASSWORD).await?;
    let r = c
        .post(format!("{url}/v3/users"))
        .header("X-Auth-Token", &admin)
        .json(&json!({"user": {"name": "rita", "password": PASSWORD, "roles": ["reader"]}}))
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 201, "create reader: {}", r.status());
    for i in 0..20 {
        let r = c
            .post(format!("{url}/v1/alarms"))
            .header("X-Auth-Token", &admin)
            .json(&json!({"alarm_id": "100.101", "alarm_state": "set", "entity_type_id": "host", "entity_instance_id": format!("host=h{i}"), "severity": "major", "reason_text": "bench", "alarm_type": "operational-violation", "probable_cause": "threshold-crossed", "service_affecting": false, "suppression": true}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "alarm: {}", r.status());
    }
    let token = login(&c, &url, "rita", PASSWORD).await?;
    let window = plan.measure;
    reader(&url, &token, Duration::from_secs(1)).await?;
    let alone = reader(&url, &token, window).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let flood = Arc::new(Flood::default());
    let fc = crate::load::client()?;
    let mut tasks = Vec::new();
    for i in 0..FLOOD_CLIENTS {
        let (c, url, stop, flood) = (fc.clone(), url.clone(), stop.clone(), flood.clone());
        // Half try the admin, half names that do not exist.
        let user = if i % 2 == 0 {
            "admin".to_string()
        } else {
            format!("nobody{i}")
        };
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .post(format!("{url}/v3/auth/tokens"))
                    .json(&login_body(&user, "wrong-password"))
                    .send()
                    .await;
                let counter = match r.map(|r| r.status().as_u16()) {
                    Ok(401) => &flood.refused_401,
                    Ok(429) => &flood.delayed_429,
                    Ok(503) => &flood.busy_503,
                    _ => &flood.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The flood reaches its pace before the window opens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = reader(&url, &token, window).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    drop(s);
    Ok((alone, loaded?, flood))
}

/// Runs the login benchmark and prints its tables.
pub fn run(plan: &Plan, rt: &Runtime) -> anyhow::Result<u64> {
    rt.block_on(async {
        // 1. Logins.
        let s = start_server(plan, ServerOptions::default())?;
        let c = crate::load::client()?;
        let admin = login(&c, &s.url, "admin", roost_test_support::PASSWORD).await?;
        let r = c
            .post(format!("{}/v3/users", s.url))
            .header("X-Auth-Token", &admin)
            .json(&json!({"user": {"name": "bench", "password": PASSWORD, "roles": ["reader"]}}))
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 201, "create user: {}", r.status());
        let mut t = Table::new(&["clients", ">logins/s", ">p50", ">p90", ">p99", ">max"]);
        for clients in [1usize, 2, 8] {
            plan.settle();
            eprintln!("login: {clients} clients");
            logins(&s.url, clients, Duration::from_secs(1)).await?;
            let (rate, d) = logins(&s.url, clients, plan.measure).await?;
            t.row(vec![
                clients.to_string(),
                format!("{rate:.1}"),
                ms(d.pct(50.0)),
                ms(d.pct(90.0)),
                ms(d.pct(99.0)),
                ms(d.max()),
            ]);
        }
        drop(s);
        emit(&format!(
            "### Login throughput (argon2id m=19456 KiB, t=2, p=1; right password)\n\n{}",
            t.render()
        ));

        // 2. A reader under a flood of wrong passwords.
        let mut t = Table::new(&[
            "server",
            ">reader p50 alone",
            ">p99 alone",
            ">p50 under flood",
            ">p99 under flood",
            ">p99 ratio",
            "target (≤ 2x)",
            "flood answers (401 / 429 / 503 / other)",
        ]);
        let mut missed = 0;
        for (name, config) in [
            ("defaults (delays, lockout)", ""),
            (
                "delays and lockout off",
                "[identity]\nlockout_failure_attempts = 0\nlogin_free_failures = 1000000\n",
            ),
        ] {
            plan.settle();
            eprintln!("login: reader under {FLOOD_CLIENTS} wrong-password clients, {name}");
            let (alone, loaded, flood) = under_flood(plan, config).await?;
            let ratio = loaded.pct(99.0).as_secs_f64() / alone.pct(99.0).as_secs_f64().max(1e-9);
            let ok = ratio <= 2.0;
            if !ok {
                missed += 1;
            }
            t.row(vec![
                name.into(),
                ms(alone.pct(50.0)),
                ms(alone.pct(99.0)),
                ms(loaded.pct(50.0)),
                ms(loaded.pct(99.0)),
                format!("{ratio:.2}x"),
                if ok { "met".into() } else { "**MISSED**".into() },
                format!(
                    "{} / {} / {} / {}",
                    flood.refused_401.load(Ordering::Relaxed),
                    flood.delayed_429.load(Ordering::Relaxed),
                    flood.busy_503.load(Ordering::Relaxed),
                    flood.other.load(Ordering::Relaxed)
                ),
            ]);
        }
        emit(&format!(
            "### A reader's GET /v1/alarms while {FLOOD_CLIENTS} clients send wrong passwords\n\n{}",
            t.render()
        ));
        let _ = missed;
        Ok(0)
    })
}

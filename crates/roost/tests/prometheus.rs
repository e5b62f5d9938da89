//! The monitoring files in `monitoring/` against Prometheus' own tools
//! (Debian's `prometheus` package): the alerting rules pass `promtool check
//! rules` and their unit tests, every metric the rules and the Grafana
//! dashboard use is one a server serves, and a real Prometheus scrapes a
//! running server (with a token), loads the rules and sees the metrics move.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use roost_test_support::{Server, http, require_or_skip, wait_for};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monitoring")
}

/// Debian's Prometheus binaries are there; a strict run fails without them.
fn prometheus_installed() -> bool {
    require_or_skip(
        Path::new("/usr/bin/promtool").exists() && Path::new("/usr/bin/prometheus").exists(),
        "Prometheus and promtool in /usr/bin (Debian package prometheus)",
    )
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("/usr/bin/promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alerting_rules_pass_promtool_and_their_unit_tests() {
    if !prometheus_installed() {
        return;
    }
    let checked = promtool(&["check", "rules", "roost-alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "roost-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The metric names `text` (PromQL or JSON) refers to: `roost_…` words.
fn names_used(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("roost_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_metric_the_rules_and_the_dashboard_use_is_served() {
    let s = Server::start(bin());
    let api = s.api();
    let text = api
        .get("/metrics")
        .body
        .as_str()
        .unwrap_or_default()
        .to_string();
    let served: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let dashboard_text =
        std::fs::read_to_string(monitoring().join("roost-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("roost_")),
                "{t}"
            );
        }
    }
    let rules = std::fs::read_to_string(monitoring().join("roost-alerts.yml")).unwrap();
    let used = names_used(&format!("{dashboard_text}\n{rules}"));
    assert!(used.len() >= 12, "{used:?}");
    for name in used {
        assert!(
            served.contains(&name.as_str()),
            "{name} is used by the dashboard or the rules but not served:\n{text}"
        );
    }
}

/// A running `prometheus`, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of the instant query `q`'s first sample, if any.
    fn query(&self, q: &str) -> Option<f64> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), [("query", q)])
                .ok()?;
        let r: Value = http().get(url).send().ok()?.json().ok()?;
        r["data"]["result"].as_array()?.first()?["value"][1]
            .as_str()?
            .parse()
            .ok()
    }
}

#[test]
fn a_real_prometheus_scrapes_the_server_and_loads_the_rules() {
    use std::os::unix::fs::PermissionsExt;
    if !prometheus_installed() {
        return;
    }
    let s = Server::start(bin());
    let api = s.api();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &api.token).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = s.url.trim_start_matches("http://").to_string();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: roost\n    metrics_path: /metrics\n    \
             authorization:\n      credentials_file: {token}\n    \
             static_configs:\n      - targets: ['{target}']\n",
            rules = monitoring().join("roost-alerts.yml").display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("prometheus.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("/usr/bin/prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("prometheus starts");
    let p = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    // Scraped, with the token: up is 1 and the build info is there.
    wait_for(60, || {
        (p.query("up{job=\"roost\"}") == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("Prometheus scrapes the server:\n{}", p.log()));
    assert_eq!(p.query("roost_build_info"), Some(1.0));
    assert_eq!(
        p.query("roost_hosts{availability=\"available\"}"),
        Some(1.0)
    );
    // The rules are loaded.
    let rules: Value = http()
        .get(format!("{}/api/v1/rules", p.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let loaded: usize = rules["data"]["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|g| g["rules"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    assert!(loaded >= 10, "{rules}");
    // The metrics move: a critical alarm shows, and its rule goes pending.
    api.set_alarm("100.104", "host=controller-0.filesystem=/", "critical");
    wait_for(60, || {
        (p.query("roost_active_alarms{severity=\"critical\"}") == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("Prometheus sees the critical alarm:\n{}", p.log()));
    wait_for(60, || {
        p.query("ALERTS{alertname=\"RoostCriticalAlarms\"}")
            .is_some()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the critical alarm rule fires or is pending:\n{}", p.log()));
}

//! `--wait`, `--watch` and `--timeout` of the `roost` client against the
//! real server.

use std::path::Path;
use std::process::Output;

use roost_test_support::{Cli, PASSWORD, Server};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn logged_in(s: &Server) -> Cli {
    let cli = Cli::new(bin());
    let out = Cli::run_with_input(
        cli.cmd(&["login"]),
        &format!("{}\nadmin\n{PASSWORD}\n", s.url),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    cli
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn host(cli: &Cli) -> Value {
    serde_json::from_str(&cli.ok(&["host", "show", "controller-0", "-o", "json"])).unwrap()
}

fn states(h: &Value) -> (String, String, String) {
    let f = |k: &str| h[k].as_str().unwrap_or_default().to_string();
    (f("administrative"), f("operational"), f("availability"))
}

fn run_ok(cli: &Cli, args: &[&str]) -> Output {
    let out = cli.run(args);
    assert!(
        out.status.success(),
        "roost {}: {}{}",
        args.join(" "),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn lock_and_unlock_with_wait_return_once_the_host_is_there() {
    let s = Server::start(bin());
    let cli = logged_in(&s);

    let out = run_ok(
        &cli,
        &[
            "host",
            "lock",
            "controller-0",
            "--wait",
            "--wait-timeout",
            "60",
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "controller-0: locked/disabled/".to_string() + &states(&host(&cli)).2 + "\n"
    );
    let (admin, oper, _) = states(&host(&cli));
    assert_eq!((admin.as_str(), oper.as_str()), ("locked", "disabled"));
    // Piped, the progress is a line per state, the first one the reply
    // to the lock.
    let progress = text(&out.stderr);
    assert!(progress.starts_with("controller-0: "), "{progress}");

    let out = run_ok(
        &cli,
        &[
            "host",
            "unlock",
            "controller-0",
            "--wait",
            "--wait-timeout",
            "120",
        ],
    );
    // It returned only once the server shows the host in service.
    let (admin, oper, avail) = states(&host(&cli));
    assert_eq!(
        (admin.as_str(), oper.as_str()),
        ("unlocked", "enabled"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        matches!(avail.as_str(), "available" | "degraded"),
        "{avail}"
    );
    assert_eq!(
        text(&out.stdout),
        format!("controller-0: unlocked/enabled/{avail}\n")
    );
    let progress = text(&out.stderr);
    assert!(
        progress
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("controller-0: unlocked/enabled/")),
        "{progress}"
    );

    // A wait for a host that is not there fails at once, naming it.
    let out = cli.run(&["host", "unlock", "worker-9", "--wait"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("worker-9"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn alarm_list_watch_renders_again_until_its_count() {
    let s = Server::start(bin());
    let cli = logged_in(&s);
    s.api()
        .set_alarm("100.101", "host=controller-0", "critical");

    let out = run_ok(
        &cli,
        &[
            "alarm",
            "list",
            "--watch",
            "--interval",
            "0.2",
            "--watch-count",
            "2",
        ],
    );
    let listing = text(&out.stdout);
    // Piped: each listing after a time line, a blank line between them.
    let stamps: Vec<&str> = listing.lines().filter(|l| l.ends_with(" UTC")).collect();
    assert_eq!(stamps.len(), 2, "{listing}");
    let rows = listing
        .lines()
        .filter(|l| l.contains("100.101 on host=controller-0"))
        .count();
    assert_eq!(rows, 2, "one row per listing: {listing}");
    assert!(listing.contains("\n\n"), "{listing}");
}

#[test]
fn a_short_timeout_against_a_server_that_never_answers_fails_fast() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let cli = Cli::new(bin());
    let started = std::time::Instant::now();
    let out = cli
        .cmd(&["alarm", "list", "--timeout", "1"])
        .env("ROOST_URL", &url)
        .env("ROOST_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(
        text(&out.stderr),
        format!(
            "roost: the server at {url} did not answer within 1 s; it may be overloaded or unreachable (--timeout to wait longer)\n"
        )
    );
    drop(silent);
}

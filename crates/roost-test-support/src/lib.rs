//! Helpers shared by Roost's end-to-end tests and benchmarks: start the real
//! `roost server` binary on a free port with its own data directory, log in,
//! and stop it gently or with `kill -9`.
#![forbid(unsafe_code)]

pub mod browser;
pub mod release;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The admin password every test server is given.
pub const PASSWORD: &str = "test-admin-password";

/// Why a server or an agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process could not be spawned.
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The process has no pipe for its stdout or stderr.
    #[error("no {0}")]
    NoPipe(&'static str),
    /// The process did not print its ready line in time; `log` is what it
    /// wrote on stderr.
    #[error("{what} did not become ready; its log:\n{log}")]
    NotReady { what: String, log: String },
    /// An HTTP request got no answer (refused, timed out).
    #[error("{0}")]
    Request(#[from] reqwest::Error),
    /// A release could not be made (`roost release` failed, or its sources
    /// could not be written).
    #[error("{0}")]
    Release(String),
    /// A server answered a request with an unexpected status.
    #[error("{0}")]
    Status(String),
}

/// How a server is started.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Set `ROOST_ADMIN_PASSWORD` (true by default).
    pub admin_password: bool,
    /// Keep resource monitoring on (off by default, so tests see only their alarms).
    pub monitor: bool,
    /// Listen address (default `127.0.0.1:0`).
    pub listen: Option<String>,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    /// The store: a PostgreSQL URL, or [`EMBEDDED_STORE`] for the embedded
    /// store in the data directory. `None` is the embedded store, except
    /// that with `ROOST_TEST_STORE=postgres` it is a new PostgreSQL database
    /// ([`store_for`]).
    pub store: Option<String>,
}

/// [`ServerOptions::store`] for the embedded store even under
/// `ROOST_TEST_STORE=postgres`.
pub const EMBEDDED_STORE: &str = "embedded";

/// The variable that runs test servers on PostgreSQL (`postgres`) instead
/// of their embedded store.
pub const STORE_ENV: &str = "ROOST_TEST_STORE";

/// Whether the test PostgreSQL is there (`ROOST_TEST_POSTGRES`). Under the
/// test command (`ROOST_TEST_STRICT=1`) its absence fails the test; else
/// the test says so and is skipped.
pub fn postgres_available() -> bool {
    roost_store::testdb::postgres_server().is_some()
}

/// A new, empty PostgreSQL database on the test server
/// (`ROOST_TEST_POSTGRES`, which `./scripts/test` starts), for a server's
/// `--store`. It is kept until the test server is stopped for good (the test
/// command drops every test database at its start).
pub fn postgres_store() -> String {
    let server = roost_store::testdb::postgres_server()
        .expect("ROOST_TEST_POSTGRES names the PostgreSQL server for tests");
    let db = roost_store::testdb::postgres_db(&server);
    let url = match &db.location {
        roost_store::Location::Postgres(url) => url.clone(),
        roost_store::Location::Sqlite(_) => unreachable!("postgres_db gives a PostgreSQL database"),
    };
    // The database outlives this handle: servers restart on it.
    std::mem::forget(db);
    url
}

/// The store a server on `data_dir` uses: the one it was given, else under
/// `ROOST_TEST_STORE=postgres` the PostgreSQL database this data directory
/// was first started on (a new one the first time), else the embedded one.
pub fn store_for(data_dir: &Path, given: Option<&str>) -> Option<String> {
    match given {
        Some(EMBEDDED_STORE) => return None,
        Some(url) => return Some(url.to_string()),
        None => {}
    }
    if std::env::var(STORE_ENV).as_deref() != Ok("postgres") {
        return None;
    }
    let mut marker = data_dir.as_os_str().to_owned();
    marker.push(".store-url");
    let marker = PathBuf::from(marker);
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return Some(url);
    }
    let url = postgres_store();
    std::fs::write(&marker, &url).expect("write the data directory's store URL");
    Some(url)
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            args: Vec::new(),
            env: Vec::new(),
            admin_password: true,
            monitor: false,
            listen: None,
            netns: None,
            store: None,
        }
    }
}

/// A running `roost server`.
pub struct Server {
    child: Option<Child>,
    bin: PathBuf,
    pub url: String,
    /// The DC listener's URL, on a system controller.
    pub dc_url: Option<String>,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    opts: ServerOptions,
    stderr: LogLines,
}

/// Lines the server wrote to stderr, collected by a reader thread.
type LogLines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// What a server printed when it became ready: its API URL and, on a system
/// controller, its DC URL.
type Ready = (Child, String, LogLines, Option<String>);

fn spawn(bin: &Path, data_dir: &Path, listen: &str, opts: &ServerOptions) -> Result<Ready, Error> {
    let mut cmd = match &opts.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ROOST_STORE")
        .arg("--listen")
        .arg(listen)
        .args(&opts.args)
        .env_remove("ROOST_CONFIG")
        .env_remove("ROOST_LISTEN")
        .env_remove("ROOST_DATA_DIR")
        .env("ROOST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !opts.monitor {
        cmd.arg("--no-monitor");
    }
    // A server in a network namespace cannot reach the test PostgreSQL on
    // the host's loopback: it keeps its embedded store unless given one.
    let given = match (&opts.netns, opts.store.as_deref()) {
        (Some(_), None) => Some(EMBEDDED_STORE),
        (_, given) => given,
    };
    if let Some(url) = store_for(data_dir, given) {
        cmd.arg("--store").arg(url);
    }
    // Tests speak plain HTTP unless they ask for TLS ([http] tls = "on" in
    // a config file); on an address that is not loopback that needs the flag.
    let loopback = listen
        .rsplit_once(':')
        .and_then(|(ip, _)| ip.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    if !loopback && !opts.args.iter().any(|a| a == "--plain-http") {
        cmd.arg("--plain-http");
    }
    if opts.admin_password {
        cmd.env("ROOST_ADMIN_PASSWORD", PASSWORD);
    } else {
        cmd.env_remove("ROOST_ADMIN_PASSWORD");
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        what: bin.display().to_string(),
        source,
    })?;
    let stdout = child.stdout.take().ok_or(Error::NoPipe("stdout"))?;
    let stderr = child.stderr.take().ok_or(Error::NoPipe("stderr"))?;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut dc = None;
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(u) = l.strip_prefix("roost dc ready on ") {
                dc = Some(u.to_string());
            }
            // A standby (another server holds the controller lease) is
            // ready as well: it serves, by redirecting to the active.
            if let Some(u) = l
                .strip_prefix("roost server ready on ")
                .or_else(|| l.strip_prefix("roost server standby on "))
            {
                let _ = tx.send((u.to_string(), dc.clone()));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok((url, dc)) => {
            if url.starts_with("https://")
                && let Ok(ca) = std::fs::read_to_string(data_dir.join("tls/ca/ca.crt"))
            {
                trust_ca(&ca);
            }
            Ok((child, url, lines, dc))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let log = lines.lock().map(|v| v.join("\n")).unwrap_or_default();
            Err(Error::NotReady {
                what: "server".into(),
                log,
            })
        }
    }
}

impl Server {
    /// Starts a server on a free port with a fresh data directory.
    pub fn start(bin: &Path) -> Server {
        Self::start_with(bin, ServerOptions::default())
    }

    /// Starts a server with options, on a fresh data directory.
    pub fn start_with(bin: &Path, opts: ServerOptions) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        Self::start_in(bin, &data, opts, Some(tmp)).expect("server starts")
    }

    /// Starts a server, on a fresh data directory, whose configuration file
    /// holds `toml`; the returned directory keeps the file.
    pub fn start_with_config(bin: &Path, toml: &str) -> (Server, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("roost.toml");
        std::fs::write(&cfg, toml).expect("config file");
        let s = Self::start_with(
            bin,
            ServerOptions {
                args: vec!["--config".into(), cfg.display().to_string()],
                ..Default::default()
            },
        );
        (s, dir)
    }

    /// Starts a server on an existing data directory; an error holds its log.
    pub fn start_in(
        bin: &Path,
        data_dir: &Path,
        opts: ServerOptions,
        tmp: Option<tempfile::TempDir>,
    ) -> Result<Server, Error> {
        let listen = opts.listen.clone().unwrap_or_else(|| "127.0.0.1:0".into());
        let (child, url, stderr, dc_url) = spawn(bin, data_dir, &listen, &opts)?;
        Ok(Server {
            child: Some(child),
            bin: bin.to_path_buf(),
            url,
            dc_url,
            data_dir: data_dir.to_path_buf(),
            _tmp: tmp,
            opts,
            stderr,
        })
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends `kill -9` and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory (new port).
    pub fn restart(&mut self) {
        self.kill9();
        let listen = self
            .opts
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:0".into());
        let (child, url, stderr, dc_url) =
            spawn(&self.bin, &self.data_dir, &listen, &self.opts).expect("restart");
        self.child = Some(child);
        self.url = url;
        self.dc_url = dc_url;
        self.stderr = stderr;
    }

    /// Logs in as admin (project admin) and returns the token.
    pub fn token(&self) -> String {
        admin_api(&self.url)
            .unwrap_or_else(|e| panic!("login failed: {e}"))
            .token
    }

    /// `POST /v3/auth/tokens` with `body`: (status, headers, JSON body).
    pub fn login(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = http()
            .post(format!("{}/v3/auth/tokens", self.url))
            .json(&body)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// An authenticated API client for this server.
    pub fn api(&self) -> Api {
        Api {
            url: self.url.clone(),
            token: self.token(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A server that started its private containerd stops it on SIGTERM;
        // kill -9 would leave it (and the test's mounts) behind.
        if self.data_dir.join("apps/containerd").exists() {
            self.terminate();
        } else {
            self.kill9();
        }
    }
}

/// The cloud CAs of the HTTPS servers this process started, which
/// [`http`] trusts.
static TRUSTED_CAS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Makes [`http`] trust `ca_pem` (a server's cloud CA).
pub fn trust_ca(ca_pem: &str) {
    let mut cas = TRUSTED_CAS.lock().unwrap_or_else(|e| e.into_inner());
    if !cas.iter().any(|c| c == ca_pem) {
        cas.push(ca_pem.to_string());
    }
}

/// A blocking HTTP client with sane timeouts; for https, it trusts the
/// cloud CAs of the servers started by this process (only those).
pub fn http() -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60));
    let cas = TRUSTED_CAS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if !cas.is_empty() {
        let roots: Vec<reqwest::Certificate> = cas
            .iter()
            .flat_map(|pem| reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("CA PEM"))
            .collect();
        b = b.tls_certs_only(roots);
    }
    b.build().expect("client")
}

/// An answer: status and body (JSON when it parses, else a string).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: Option<String>,
}

/// Authenticated calls against one server.
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    pub token: String,
}

impl Api {
    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Reply {
        self.try_send(rb).expect("request")
    }

    fn try_send(&self, rb: reqwest::blocking::RequestBuilder) -> Result<Reply, Error> {
        let r = rb.header("X-Auth-Token", &self.token).send()?;
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = r.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Reply {
            status,
            body,
            content_type,
        })
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(http().get(format!("{}{path}", self.url)))
    }

    /// A GET that reports a failed request (refused, timed out) instead
    /// of panicking: for polls whose caller prints the server's log when
    /// the wait ends without the answer it wanted.
    pub fn try_get(&self, path: &str) -> Result<Reply, Error> {
        self.try_send(http().get(format!("{}{path}", self.url)))
            .inspect_err(|e| eprintln!("GET {path}: {e:?}"))
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send(http().delete(format!("{}{path}", self.url)))
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(http().post(format!("{}{path}", self.url)).json(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(http().put(format!("{}{path}", self.url)).json(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(http().patch(format!("{}{path}", self.url)).json(body))
    }

    /// Sends raw bytes with a content type.
    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            http()
                .post(format!("{}{path}", self.url))
                .header("Content-Type", content_type)
                .body(body),
        )
    }

    /// Raises an alarm; returns its uuid.
    pub fn set_alarm(&self, id: &str, entity: &str, severity: &str) -> String {
        let r = self.post(
            "/v1/alarms",
            &json!({"alarm_state": "set", "alarm_id": id, "entity_instance_id": entity,
                    "severity": severity, "reason_text": format!("{id} on {entity}")}),
        );
        assert_eq!(r.status, 200, "set failed: {:?}", r.body);
        r.body["uuid"].as_str().expect("uuid").to_string()
    }

    /// The `alarms` of a listing (panics unless 200).
    pub fn alarms(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/alarms{query}"));
        assert_eq!(r.status, 200, "list failed: {:?}", r.body);
        r.body["alarms"].as_array().cloned().unwrap_or_default()
    }

    /// The `event_log` of a listing (panics unless 200).
    pub fn events(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/event_log{query}"));
        assert_eq!(r.status, 200, "event list failed: {:?}", r.body);
        r.body["event_log"].as_array().cloned().unwrap_or_default()
    }
}

/// An admin (project admin) API client for a server this crate did not
/// start, for example one that a simulated BMC runs as its host: logs in at
/// `url` (a standby's redirect is followed to the active). An error when
/// the login gets no answer or is not accepted (201); its body is in the
/// error.
pub fn admin_api(url: &str) -> Result<Api, Error> {
    let r = http()
        .post(format!("{url}/v3/auth/tokens"))
        .json(&json!({
            "auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": PASSWORD, "domain": {"name": "Default"}}}},
                     "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}
        }))
        .send()?;
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match token {
        Some(token) if status == 201 => Ok(Api {
            url: url.to_string(),
            token,
        }),
        _ => Err(Error::NotReady {
            what: format!("the admin's login at {url} ({status})"),
            log: r.text().unwrap_or_default(),
        }),
    }
}

/// Writers raising alarms (100.104, one new entity each) as fast as they
/// can through a set of controllers' URLs: a reply other than 200 (a
/// standby with no active yet, a controller killed or paused) is not an
/// acknowledgement, and the writer tries the next URL. Every acknowledged
/// alarm's uuid is kept, to check that none is lost across a switch-over.
pub struct AlarmLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl AlarmLoad {
    /// Four writers through `urls` with `token`.
    pub fn start(urls: &[String], token: &str) -> AlarmLoad {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..4)
            .map(|w| {
                let (stop, acked, urls, token) =
                    (stop.clone(), acked.clone(), urls.to_vec(), token.to_string());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .expect("HTTP client");
                    let (mut at, mut i) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let entity = format!("host=w{w}.n={i}");
                        let r = client
                            .post(format!("{}/v1/alarms", urls[at % urls.len()]))
                            .header("X-Auth-Token", &token)
                            .json(&json!({"alarm_id": "100.104", "entity_instance_id": entity, "severity": "major"}))
                            .send();
                        match r {
                            Ok(r) if r.status().as_u16() == 200 => {
                                let b: Value = r.json().unwrap_or_default();
                                if let Some(uuid) = b["uuid"].as_str()
                                    && let Ok(mut a) = acked.lock()
                                {
                                    a.push(uuid.to_string());
                                }
                                i += 1;
                            }
                            _ => {
                                at += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                })
            })
            .collect();
        AlarmLoad {
            stop,
            acked,
            threads,
        }
    }

    /// Writes acknowledged so far.
    pub fn count(&self) -> usize {
        self.acked.lock().map_or(0, |a| a.len())
    }

    /// Waits until `n` more writes are acknowledged, `secs` at most;
    /// whether they were.
    pub fn wait_for_more(&self, n: usize, secs: u64) -> bool {
        let from = self.count();
        wait_for(secs, || (self.count() >= from + n).then_some(())).is_some()
    }

    /// Stops the writers; the uuids of every acknowledged alarm.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.acked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// The acknowledged alarms (uuids) that `api`'s server does not list, or
/// what it answered instead of the list.
pub fn missing_alarms(api: &Api, acked: &[String]) -> Result<Vec<String>, Error> {
    let r = api.get("/v1/alarms");
    if r.status != 200 {
        return Err(Error::Status(format!(
            "the alarm list from {}: {} {:?}",
            api.url, r.status, r.body
        )));
    }
    let listed: std::collections::HashSet<&str> = r.body["alarms"]
        .as_array()
        .map(|a| a.iter().filter_map(|a| a["uuid"].as_str()).collect())
        .unwrap_or_default();
    Ok(acked
        .iter()
        .filter(|u| !listed.contains(u.as_str()))
        .cloned()
        .collect())
}

/// True when a missing prerequisite must fail a test instead of skipping it:
/// under CI (`CI=true`) and under the test command (`ROOST_TEST_STRICT=1`,
/// which `scripts/test` exports).
pub fn strict() -> bool {
    env_is_true("CI") || env_is_true("ROOST_TEST_STRICT")
}

fn env_is_true(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

/// Checks a test's prerequisite (root, iproute2, a Python with keystoneauth1).
/// Returns true when it is available. When it is not, a strict run
/// ([`strict`]) panics naming `what`; otherwise the test is reported as
/// skipped on stderr and false is returned, so the caller returns early:
///
/// ```no_run
/// if !roost_test_support::require_or_skip(false, "ROOST_TEST_PYTHON is set") {
///     return;
/// }
/// ```
pub fn require_or_skip(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if strict() {
        panic!(
            "missing test prerequisite: {what} (CI=true or ROOST_TEST_STRICT=1 \
             forbids skipping; ./scripts/test installs what the tests need)"
        );
    }
    eprintln!("skipped: missing test prerequisite: {what}");
    false
}

/// Like [`require_or_skip`] for fixtures read from `../shared` beside the
/// checkout, which a user's checkout lacks: these may skip under the test
/// command, but never under CI (`CI=true`).
pub fn require_fixture_or_skip(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if env_is_true("CI") {
        panic!("missing test fixture under CI=true: {what}");
    }
    eprintln!("skipped: missing test fixture: {what}");
    false
}

/// Path of StarlingX's real alarm catalogue beside the checkout, if present.
pub fn shared_events_yaml() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/starlingx/events.yaml");
    p.exists().then_some(p)
}

/// Writes `dir/roost.toml` for a system controller or subcloud with quick
/// DC timers (a sync a second, offline after 4 s), followed by `extra`;
/// returns its path for `--config`.
pub fn quick_dc_config(dir: &Path, extra: &str) -> String {
    std::fs::create_dir_all(dir).expect("config directory");
    let p = dir.join("roost.toml");
    std::fs::write(
        &p,
        format!(
            "[dc]\nlisten = \"127.0.0.1:0\"\nsync_interval_secs = 1\noffline_after_secs = 4\n\
             out_of_sync_alarm_after_secs = 120\n{extra}"
        ),
    )
    .expect("config written");
    p.display().to_string()
}

/// Polls `f` until it returns `Some`, for up to `secs` seconds.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `roost agent`.
pub struct Agent {
    child: Option<Child>,
    bin: PathBuf,
    pub args: Vec<String>,
    pub data_dir: PathBuf,
    pub hostname: String,
    stderr: LogLines,
}

impl Agent {
    /// Starts an agent that enrolls with `join_token` (ignored once enrolled),
    /// answering heartbeats on `ip` (for example 127.0.0.2). Extra arguments
    /// follow. Waits for its ready line.
    pub fn start(
        bin: &Path,
        server: &str,
        join_token: &str,
        data_dir: &Path,
        ip: &str,
        extra: &[&str],
    ) -> Result<Agent, Error> {
        Self::start_in_netns(bin, None, server, join_token, data_dir, ip, extra)
    }

    /// Like [`Agent::start`], inside network namespace `netns` when given.
    pub fn start_in_netns(
        bin: &Path,
        netns: Option<&str>,
        server: &str,
        join_token: &str,
        data_dir: &Path,
        ip: &str,
        extra: &[&str],
    ) -> Result<Agent, Error> {
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--server".into(),
            server.into(),
            "--join-token".into(),
            join_token.into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--heartbeat-listen".into(),
            format!("{ip}:0"),
            "--mgmt-ip".into(),
            ip.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut program = bin.to_path_buf();
        if let Some(ns) = netns {
            let mut wrapped: Vec<String> = vec![
                "netns".into(),
                "exec".into(),
                ns.into(),
                bin.display().to_string(),
            ];
            wrapped.extend(args);
            args = wrapped;
            program = PathBuf::from("ip");
        }
        let mut a = Agent {
            child: None,
            bin: program,
            args,
            data_dir: data_dir.to_path_buf(),
            hostname: String::new(),
            stderr: Default::default(),
        };
        a.spawn()?;
        Ok(a)
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let mut child = Command::new(&self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                what: "the agent".into(),
                source,
            })?;
        let stdout = child.stdout.take().ok_or(Error::NoPipe("stdout"))?;
        let stderr = child.stderr.take().ok_or(Error::NoPipe("stderr"))?;
        let lines: LogLines = Default::default();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut v) = lines.lock() {
                        v.push(l);
                    }
                }
            })
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = l.strip_prefix("roost agent ready as ") {
                    let name = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(name);
                }
            }
        });
        self.stderr = lines;
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(name) => {
                self.hostname = name;
                self.child = Some(child);
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let _ = reader.join();
                Err(Error::NotReady {
                    what: format!("agent ({status:?})"),
                    log: self.log(),
                })
            }
        }
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal by name (STOP, CONT, TERM, KILL).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the agent again with the same arguments and data directory.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill9();
        self.spawn()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process must be continued to die cleanly.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
            // An agent that started its private containerd stops it on
            // SIGTERM; kill -9 would leave it behind.
            if self.data_dir.join("apps/containerd").exists() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(c.id().to_string())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Api {
    /// A host by name (panics unless 200).
    pub fn host(&self, name: &str) -> Value {
        let r = self.get(&format!("/v1/ihosts/{name}"));
        assert_eq!(r.status, 200, "host {name}: {:?}", r.body);
        r.body
    }

    /// Adds a host; returns its join token.
    pub fn add_host(&self, name: &str, personality: &str) -> String {
        let r = self.post(
            "/v1/ihosts",
            &json!({"hostname": name, "personality": personality}),
        );
        assert_eq!(r.status, 200, "host add: {:?}", r.body);
        r.body["join_token"]
            .as_str()
            .expect("join_token")
            .to_string()
    }

    /// Sends a host action; returns the reply.
    pub fn host_action(&self, name: &str, action: &str) -> Reply {
        self.patch(
            &format!("/v1/ihosts/{name}"),
            &json!([{"op": "replace", "path": "/action", "value": action}]),
        )
    }

    /// A host action as StarlingX's `system` client sends it (CLIENTS.md
    /// fact 22): the host resolved by name through `GET /v1/ihosts`, then
    /// a PATCH of its numeric id.
    pub fn stock_host_action(&self, name: &str, action: &str) -> Reply {
        let list = self.get("/v1/ihosts");
        let id = list.body["ihosts"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["hostname"] == name))
            .and_then(|h| h["id"].as_i64())
            .unwrap_or_else(|| panic!("{name} in {:?}", list.body));
        self.host_action(&id.to_string(), action)
    }

    /// Waits until the host's availability is `avail` (up to `secs`).
    pub fn wait_avail(&self, name: &str, avail: &str, secs: u64) -> Value {
        wait_for(secs, || {
            let h = self.host(name);
            (h["availability"] == avail).then_some(h)
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} never became {avail}; now {}",
                self.host(name)["availability"]
            )
        })
    }

    /// Heartbeat pulses the server has sent so far, from its metrics.
    pub fn pulses_sent(&self) -> u64 {
        self.metric("roost_heartbeat_pulses_sent_total")
            .expect("the server exports roost_heartbeat_pulses_sent_total")
    }

    /// A sample of the server's metrics by its full name, labels included
    /// (`roost_heartbeat_dropped_total{reason="bad_mac"}`); `None` when the
    /// server does not export it (yet).
    pub fn metric(&self, series: &str) -> Option<u64> {
        let r = self.get("/metrics");
        r.body
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    }

    /// Waits until the server's heartbeat has processed at least `periods`
    /// more periods: the positive event a "this did not happen" check waits
    /// for. Each period first applies the failure detector, then sends at
    /// most one pulse per network (two) to each of the `hosts` monitored
    /// hosts, so `2 * hosts * (periods + 1)` more pulses sent means at least
    /// `periods` whole periods were decided after this call began.
    pub fn wait_heartbeat_periods(&self, hosts: u64, periods: u64) {
        let want = self.pulses_sent() + 2 * hosts * (periods + 1);
        let done = wait_for(120, || (self.pulses_sent() >= want).then_some(()));
        assert!(
            done.is_some(),
            "the heartbeat did not get through {periods} periods: {} of {want} pulses sent",
            self.pulses_sent()
        );
    }

    /// Sets a maintenance service parameter.
    pub fn set_parameter(&self, name: &str, value: &str) {
        let list = self.get("/v1/service_parameter");
        let uuid = list.body["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        let r = self.patch(
            &format!("/v1/service_parameter/{uuid}"),
            &json!([{"op": "replace", "path": "/value", "value": value}]),
        );
        assert_eq!(r.status, 200, "set {name}={value}: {:?}", r.body);
    }
}

/// Runs `ip ARGS...`; true on success.
pub fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A namespace with veth links to the root namespace, one per network;
/// removed on drop.
pub struct Netns {
    pub name: String,
    /// Root-side interface of each link.
    pub host_ifs: Vec<String>,
    tag: u32,
}

impl Netns {
    /// A namespace `roost-t<tag>` with `links` veth links; `None` without
    /// root or iproute2.
    /// [`Netns::create`], as a test prerequisite: without namespaces (root
    /// and iproute2) a strict run fails, see [`require_or_skip`]; otherwise
    /// `None` and the test returns early.
    pub fn require(tag: u32, links: u8) -> Option<Netns> {
        let ns = Netns::create(tag, links);
        require_or_skip(
            ns.is_some(),
            "a network namespace (needs root and iproute2)",
        )
        .then_some(ns)
        .flatten()
    }

    pub fn create(tag: u32, links: u8) -> Option<Netns> {
        let name = format!("roost-t{tag}");
        let _ = ip(&["netns", "del", &name]);
        let mut ns = Netns {
            name,
            host_ifs: Vec::new(),
            tag,
        };
        if !ip(&["netns", "add", &ns.name]) {
            return None;
        }
        for l in 0..links {
            let host_if = format!("rv{tag}h{l}");
            let ns_if = format!("rv{tag}n{l}");
            let _ = ip(&["link", "del", &host_if]);
            let server_side = format!("{}/24", ns.addr(l, 1));
            let host_side = format!("{}/24", ns.addr(l, 2));
            let ok = ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ]) && ip(&["link", "set", &ns_if, "netns", &ns.name])
                && ip(&["addr", "add", &server_side, "dev", &host_if])
                && ip(&["link", "set", &host_if, "up"])
                && ip(&[
                    "netns", "exec", &ns.name, "ip", "addr", "add", &host_side, "dev", &ns_if,
                ])
                && ip(&["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"]);
            ns.host_ifs.push(host_if);
            if !ok {
                return None;
            }
        }
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]).then_some(ns)
    }

    /// Address `last` on link `link`: .1 is the server's side, .2 the host's.
    pub fn addr(&self, link: u8, last: u8) -> String {
        format!(
            "10.{}.{}.{last}",
            100 + u32::from(link) * 50 + self.tag / 250 % 50,
            self.tag % 250
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        for i in &self.host_ifs {
            let _ = ip(&["link", "del", i]);
        }
    }
}

/// The `roost` client run as a user runs it: its own credentials
/// directory, and none of the caller's `ROOST_*`/`OS_CACERT` settings.
pub struct Cli {
    bin: PathBuf,
    config: tempfile::TempDir,
}

impl Cli {
    pub fn new(bin: &Path) -> Cli {
        Cli {
            bin: bin.to_path_buf(),
            config: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Its credentials directory (`ROOST_CONFIG_DIR`).
    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    /// `roost ARGS`, standard input empty; add environment to it at will.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("ROOST_CONFIG_DIR", self.config.path())
            .env_remove("ROOST_URL")
            .env_remove("ROOST_TOKEN")
            .env_remove("ROOST_CONTEXT")
            .env_remove("OS_CACERT")
            .env_remove("ROOST_CACERT")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd(args).output().expect("roost runs")
    }

    /// `cmd` with `stdin` written to its standard input.
    pub fn run_with_input(mut cmd: Command, stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("roost runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin written");
        child.wait_with_output().expect("roost ends")
    }

    /// `roost ARGS`, which must succeed: its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }
}

/// A software TPM 2.0 (Debian's `swtpm`) on loopback, killed on drop.
pub struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    /// Starts swtpm with a fresh state on a free port pair (the swtpm TCTI
    /// always dials the control channel on the server port + 1) and waits
    /// until it listens.
    pub fn start() -> Result<Swtpm, Error> {
        let state = tempfile::tempdir().map_err(|source| Error::Spawn {
            what: "swtpm (its state directory)".into(),
            source,
        })?;
        let port = free_port_pair().ok_or(Error::NoPipe("free port pair for swtpm"))?;
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.path().display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                what: "swtpm (Debian package swtpm)".into(),
                source,
            })?;
        let mut tpm = Swtpm {
            child,
            port,
            _state: state,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port + 1)).is_err() {
            if matches!(tpm.child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let mut log = String::new();
                if let Some(mut e) = tpm.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut log);
                }
                return Err(Error::NotReady {
                    what: "swtpm".into(),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(tpm)
    }

    /// The TCTI that reaches it (`roost agent --tpm`, `TPM2TOOLS_TCTI`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs a tpm2-tools command against it (for example `tpm2_pcrextend`),
    /// returning its standard output; `None` if it failed.
    pub fn tool(&self, program: &str, args: &[&str]) -> Option<String> {
        let out = Command::new(program)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .env("TSS2_LOG", "all+none")
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port p such that p and p + 1 are both free on 127.0.0.1.
fn free_port_pair() -> Option<u16> {
    (0..100).find_map(|_| {
        let first = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        let port = first.local_addr().ok()?.port();
        (port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok())
            .then_some(port)
    })
}

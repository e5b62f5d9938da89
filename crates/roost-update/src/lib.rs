//! A host's software: how the deploy orders of a server are carried out on
//! the host they name, by its agent, and by the server itself on its own
//! host. The same code runs in both, so both switch, try and roll back
//! alike.
//!
//! Under a software directory (`<data-dir>/software/` for an agent,
//! `<data-dir>/host-software/` for a server):
//! - `blobs/<sha256>`: payload files by digest, so a file shared by
//!   releases is fetched once; a fetch goes to `<sha256>.part` first,
//!   resumes after an interruption, and is kept only when its digest and
//!   size match the order's;
//! - `releases/<id>/`: one directory per staged release (its payload
//!   files, hard-linked from the blobs), built under a temporary name and
//!   renamed into place;
//! - `current`: a symbolic link to the release the host runs, replaced by a
//!   rename (atomic); absent for the software the host was installed with;
//! - `state.json`: the release run, the outcome of the last attempt, and a
//!   switch to a new `roost` binary still on trial.
//!
//! A release with `bin/roost` replaces the running process: the new binary
//! is tried (`--version`), then the process re-executes itself with it
//! ([`Handover`]), keeping its arguments and process id. The new process
//! must pass the release's health check and confirm before the trial's
//! deadline (an agent: reach its server; a server: serve), or it switches
//! back and re-executes the previous binary. A start that finds a trial it
//! did not confirm (the new binary died) rolls back before anything else.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roost_api::software::{SoftwareOrder, SoftwareOutcome, SoftwareStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a new binary has to answer `--version`.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(30);
/// Set on a re-execution: the attempt of the trial the new process was
/// started for, or why else it was started, so that it does not
/// re-execute again and knows whether a trial is its own.
pub const EXEC_GUARD: &str = "ROOST_AGENT_REEXEC";

/// Why a step on this host's software failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A deploy step failed; the text says which and why.
    #[error("{0}")]
    Deploy(String),
    /// A stored file is not usable.
    #[error("{0}")]
    Invalid(String),
    /// A file operation failed: what was being done, and the error.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// A payload file being fetched.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// How payload files reach this host: an agent downloads them from its
/// server; the server's own host copies them from its release store.
pub trait Fetch: Send + Sync {
    /// Writes payload file `sha256` to `to` (appending to what is there
    /// when resuming is possible). The digest is checked afterwards.
    fn fetch<'a>(&'a self, sha256: &'a str, to: &'a Path) -> FetchFuture<'a>;
}

/// This process must be replaced by `exe` ([`Handover::command`]): a new
/// `roost` binary on trial, or the previous one after a failed trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub exe: PathBuf,
    /// The marker the new process is started with ([`EXEC_GUARD`]).
    pub why: String,
    /// The trial the new process is started for (none for a rollback).
    pub trial: Option<Trial>,
}

impl Handover {
    /// Back to `exe`, the binary before a trial that failed.
    pub fn rollback(exe: PathBuf) -> Handover {
        Handover {
            exe,
            why: "rollback".into(),
            trial: None,
        }
    }

    /// The command that replaces this process (`exec`): the same
    /// arguments and environment, marked with [`EXEC_GUARD`].
    pub fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(&self.exe);
        c.args(std::env::args_os().skip(1))
            .env(EXEC_GUARD, &self.why);
        c
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What is kept in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The release the host runs; empty for the installed software.
    #[serde(default)]
    pub release_id: String,
    /// The `roost` binary of the installed software (recorded at the first
    /// switch away from it).
    #[serde(default)]
    pub base_exe: Option<PathBuf>,
    /// The `roost` binary each release ran here with (a release without
    /// one runs the binary of the release before it).
    #[serde(default)]
    pub exes: std::collections::BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub last: Option<SoftwareOutcome>,
    #[serde(default)]
    pub trial: Option<Trial>,
    /// A switch that waits for the host to reboot (confirmed after it, as a
    /// trial).
    #[serde(default)]
    pub reboot: Option<Trial>,
}

/// How an attempt that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Done {
    /// The host runs the release.
    Running,
    /// The host is rebooting into it.
    Rebooting,
    /// This process must be replaced by the release's binary, on trial.
    Exec(Handover),
}

/// A switch to another `roost` binary that is not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub attempt: u64,
    pub release_id: String,
    pub previous: String,
    /// Seconds since the epoch.
    pub deadline: u64,
    pub health_check: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let m = format!("{what} {}", path.display());
    move |source| Error::Io { context: m, source }
}

/// The software directory of an agent.
pub struct Software {
    dir: PathBuf,
    state: Mutex<State>,
    /// The attempt being carried out, if any.
    working: Mutex<Option<u64>>,
    /// How long a new binary has to confirm.
    trial_secs: u64,
    /// How the host reboots (`sh -c`).
    reboot_command: String,
}

impl Software {
    /// Opens (creating) `dir`.
    pub fn open(dir: PathBuf, trial_secs: u64, reboot_command: &str) -> Result<Software, Error> {
        for sub in ["blobs", "releases"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(io("cannot create", &p))?;
        }
        let path = dir.join("state.json");
        let state = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Invalid(format!("{} is not readable: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        Ok(Software {
            dir,
            state: Mutex::new(state),
            working: Mutex::new(None),
            trial_secs,
            reboot_command: reboot_command.to_string(),
        })
    }

    fn state(&self) -> State {
        lock(&self.state).clone()
    }

    /// Changes the state and writes it (a temporary file renamed over).
    fn save(&self, f: impl FnOnce(&mut State)) -> Result<State, Error> {
        let mut st = lock(&self.state);
        let mut next = st.clone();
        f(&mut next);
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&next)?)
            .map_err(io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot replace", &path))?;
        *st = next.clone();
        Ok(next)
    }

    /// What the next report says.
    pub fn status(&self) -> SoftwareStatus {
        let st = self.state();
        SoftwareStatus {
            release_id: st.release_id,
            version: env!("CARGO_PKG_VERSION").into(),
            last: st.last,
        }
    }

    /// The `roost` binary release `id` runs, switching from `previous`:
    /// the one it ran here before; else its own `bin/roost`; else the one
    /// `previous` ran (for the installed software: the binary it started
    /// with).
    fn exe_of(&self, id: &str, previous: &str, st: &State) -> Option<PathBuf> {
        if let Some(p) = st.exes.get(id) {
            return Some(p.clone());
        }
        if id.is_empty() {
            return st.base_exe.clone();
        }
        let own = self.dir.join("releases").join(id).join("bin/roost");
        if own.exists() {
            return Some(own);
        }
        st.exes
            .get(previous)
            .cloned()
            .or_else(|| st.base_exe.clone())
    }

    /// At start: a trial this process was not started for (the new binary
    /// died, or the host restarted, before it confirmed) is rolled back;
    /// then, if the release the host runs has another `roost` binary than
    /// this one, the agent re-executes itself with it. Returns only when
    /// this process is the one to run; else, the process that must replace
    /// it.
    pub fn at_start(&self) -> Result<Option<Handover>, Error> {
        let started_for = std::env::var(EXEC_GUARD).ok();
        if let Some(t) = self.state().trial
            && started_for.as_deref() != Some(t.attempt.to_string().as_str())
        {
            tracing::error!(release = %t.release_id, "the new roost binary stopped before it confirmed; rolling back");
            self.roll_back(
                &t,
                "the new roost binary stopped before it confirmed".into(),
            )?;
        }
        // Back from the reboot a release asked for: it is confirmed as a
        // trial, by this process or the binary it executes.
        let mut why = "start".to_string();
        if let Some(r) = self.state().reboot {
            tracing::info!(release = %r.release_id, "back from the reboot into a release");
            why = r.attempt.to_string();
            self.save(|s| {
                s.reboot = None;
                s.trial = Some(Trial {
                    deadline: now_secs() + self.trial_secs,
                    ..r.clone()
                });
            })?;
        }
        let st = self.state();
        let Some(want) = st.exes.get(&st.release_id).cloned() else {
            return Ok(None);
        };
        let me = std::env::current_exe().map_err(io("cannot find", Path::new("this binary")))?;
        if same_file(&me, &want) || started_for.is_some() {
            return Ok(None);
        }
        tracing::info!(exe = %want.display(), release = %st.release_id, "running the release's roost binary");
        Ok(Some(Handover {
            exe: want,
            why,
            trial: None,
        }))
    }

    /// The trial this process was started for, if any (not confirmed yet).
    pub fn trial(&self) -> Option<Trial> {
        self.state().trial
    }

    /// A trial under way: runs the health check, then waits for the first
    /// report taken (`reported`) until the deadline; confirms (`None`) or
    /// rolls back, returning the previous binary that must replace this
    /// process.
    pub async fn confirm_trial(
        self: Arc<Self>,
        mut reported: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<Handover>, Error> {
        let Some(t) = self.state().trial else {
            return Ok(None);
        };
        let left = Duration::from_secs(t.deadline.saturating_sub(now_secs()));
        let dir = self.dir.join("releases").join(&t.release_id);
        let checked = match &t.health_check {
            Some(hook) => run_hook(&dir, hook, &t.release_id).await,
            None => Ok(()),
        };
        let outcome = match checked {
            Err(e) => Err(format!("the health check failed: {e}")),
            Ok(()) => match tokio::time::timeout(left, reported.wait_for(|r| *r)).await {
                Ok(Ok(_)) => Ok(()),
                _ => Err(format!(
                    "the agent did not reach the server within {} s of its restart",
                    self.trial_secs
                )),
            },
        };
        match outcome {
            Ok(()) => {
                self.save(|s| {
                    s.trial = None;
                    s.last = Some(SoftwareOutcome {
                        attempt: t.attempt,
                        release_id: t.release_id.clone(),
                        ok: true,
                        message: format!("runs {}", t.release_id),
                    });
                })?;
                tracing::info!(release = %t.release_id, "the new roost binary is confirmed");
                Ok(None)
            }
            Err(why) => {
                tracing::error!(release = %t.release_id, %why, "rolling back");
                self.roll_back(&t, why)?;
                let st = self.state();
                match st.exes.get(&st.release_id).cloned() {
                    Some(exe) => Ok(Some(Handover::rollback(exe))),
                    None => Err(Error::Invalid(
                        "cannot find the previous roost binary to roll back to".into(),
                    )),
                }
            }
        }
    }

    /// Switches back to the release before trial `t` and records why.
    fn roll_back(&self, t: &Trial, why: String) -> Result<(), Error> {
        self.point_current(&t.previous)?;
        self.save(|s| {
            s.trial = None;
            s.release_id = t.previous.clone();
            s.last = Some(SoftwareOutcome {
                attempt: t.attempt,
                release_id: t.release_id.clone(),
                ok: false,
                message: format!(
                    "{why}; rolled back to {}",
                    roost_api::software::release_name(&t.previous)
                ),
            });
        })?;
        Ok(())
    }

    /// Whether `order` is new: not done already and not under way. Marks
    /// it under way.
    pub fn take(&self, order: &SoftwareOrder) -> bool {
        let st = self.state();
        if st.last.as_ref().is_some_and(|l| l.attempt == order.attempt)
            || st
                .trial
                .as_ref()
                .is_some_and(|t| t.attempt == order.attempt)
        {
            return false;
        }
        let mut w = lock(&self.working);
        if w.is_some() {
            return false;
        }
        *w = Some(order.attempt);
        true
    }

    /// Carries out `order` (taken with [`Software::take`]): fetch, stage,
    /// switch, check; on failure the host is switched back. Returns the
    /// new binary that must replace this process, on trial, if the release
    /// has one: the caller executes it ([`Handover::command`]) and, should
    /// that fail, calls [`Software::exec_failed`].
    pub async fn carry_out(&self, fetch: &dyn Fetch, order: &SoftwareOrder) -> Option<Handover> {
        let result = self.attempt(fetch, order).await;
        let outcome = match result {
            Ok(Done::Rebooting) => {
                // The outcome is decided after the reboot.
                *lock(&self.working) = None;
                return None;
            }
            Ok(Done::Exec(h)) => return Some(h),
            Ok(Done::Running) => SoftwareOutcome {
                attempt: order.attempt,
                release_id: order.release_id.clone(),
                ok: true,
                message: format!(
                    "runs {}",
                    roost_api::software::release_name(&order.release_id)
                ),
            },
            Err(e) => {
                let message = roost_types::error_chain(&e);
                tracing::error!(release = %order.release_id, error = %message, "the deploy failed on this host");
                SoftwareOutcome {
                    attempt: order.attempt,
                    release_id: order.release_id.clone(),
                    ok: false,
                    message,
                }
            }
        };
        self.finish(outcome);
        None
    }

    /// Records how an attempt ended; the next order may be taken.
    fn finish(&self, outcome: SoftwareOutcome) {
        if let Err(e) = self.save(|s| s.last = Some(outcome)) {
            tracing::error!(error = %e, "cannot record the deploy's outcome");
        }
        *lock(&self.working) = None;
    }

    /// The new binary of `h` could not be executed (`e`): the trial is
    /// undone, the host switched back and the attempt recorded as failed.
    /// Returns the error to report.
    pub fn exec_failed(&self, h: &Handover, e: std::io::Error) -> Error {
        let err = Error::Deploy(format!("cannot execute {}: {e}", h.exe.display()));
        let Some(t) = &h.trial else {
            return err;
        };
        let why = format!("cannot execute the new roost binary: {e}");
        match self.roll_back(t, why) {
            Ok(()) => *lock(&self.working) = None,
            Err(e) => tracing::error!(error = %roost_types::error_chain(&e), "cannot roll back"),
        }
        err
    }

    async fn attempt(&self, fetch: &dyn Fetch, order: &SoftwareOrder) -> Result<Done, Error> {
        let id = order.release_id.as_str();
        let previous = self.state().release_id;
        if !id.is_empty() {
            check_component(id)?;
            for f in &order.payload {
                self.fetch(fetch, &f.sha256, f.size).await?;
            }
            self.stage(order)?;
        }
        let dir = self.dir.join("releases").join(id);
        if let Some(hook) = &order.pre_install {
            run_hook(&dir, hook, id)
                .await
                .map_err(|e| Error::Deploy(format!("the pre-install hook failed: {e}")))?;
        }
        let me = std::env::current_exe().map_err(io("cannot find", Path::new("this binary")))?;
        // Switch.
        let st = self.save(|s| {
            if s.base_exe.is_none() {
                s.base_exe = Some(me.clone());
                s.exes.insert(String::new(), me.clone());
            }
            s.exes.entry(previous.clone()).or_insert_with(|| me.clone());
        })?;
        let exe = self.exe_of(id, &previous, &st);
        self.point_current(id)?;
        self.save(|s| {
            s.release_id = id.to_string();
            if let Some(e) = &exe {
                s.exes.insert(id.to_string(), e.clone());
            }
        })?;
        let undo = |why: String| -> Error {
            match self
                .point_current(&previous)
                .and_then(|()| self.save(|s| s.release_id = previous.clone()))
            {
                Ok(_) => Error::Deploy(format!(
                    "{why}; rolled back to {}",
                    roost_api::software::release_name(&previous)
                )),
                Err(e) => Error::Deploy(format!("{why}; the rollback failed too: {e}")),
            }
        };
        if let Some(hook) = &order.post_install
            && let Err(e) = run_hook(&dir, hook, id).await
        {
            return Err(undo(format!("the post-install hook failed: {e}")));
        }
        if order.reboot_required {
            // The new software runs after the reboot, which confirms it.
            let pending = Trial {
                attempt: order.attempt,
                release_id: id.to_string(),
                previous: previous.clone(),
                deadline: 0,
                health_check: order.health_check.clone(),
            };
            self.save(|s| s.reboot = Some(pending))?;
            tracing::warn!(release = %id, command = %self.reboot_command, "rebooting into the release");
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&self.reboot_command)
                .stdin(std::process::Stdio::null())
                .status()
                .await;
            return match status {
                Ok(s) if s.success() => Ok(Done::Rebooting),
                Ok(s) => {
                    self.save(|s| s.reboot = None)?;
                    Err(undo(format!("the reboot command failed: {s}")))
                }
                Err(e) => {
                    self.save(|s| s.reboot = None)?;
                    Err(undo(format!("cannot run the reboot command: {e}")))
                }
            };
        }
        match exe {
            Some(exe) if !same_file(&me, &exe) => {
                if let Err(e) = preflight(&exe).await {
                    return Err(undo(format!("the new roost binary does not start: {e}")));
                }
                let trial = Trial {
                    attempt: order.attempt,
                    release_id: id.to_string(),
                    previous: previous.clone(),
                    deadline: now_secs() + self.trial_secs,
                    health_check: order.health_check.clone(),
                };
                self.save(|s| s.trial = Some(trial.clone()))?;
                tracing::info!(release = %id, exe = %exe.display(), "re-executing with the release's roost binary");
                Ok(Done::Exec(Handover {
                    exe,
                    why: order.attempt.to_string(),
                    trial: Some(trial),
                }))
            }
            _ => match &order.health_check {
                Some(hook) => run_hook(&dir, hook, id)
                    .await
                    .map(|()| Done::Running)
                    .map_err(|e| undo(format!("the health check failed: {e}"))),
                None => Ok(Done::Running),
            },
        }
    }

    /// Fetches payload file `sha256` into the blobs unless it is there.
    async fn fetch(&self, fetch: &dyn Fetch, sha256: &str, size: u64) -> Result<(), Error> {
        let ok = sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(Error::Deploy(format!("{sha256:?} is not a SHA-256 digest")));
        }
        let blob = self.dir.join("blobs").join(sha256);
        if blob.exists() {
            return Ok(());
        }
        let part = self.dir.join("blobs").join(format!("{sha256}.part"));
        if std::fs::metadata(&part).is_ok_and(|m| m.len() > size) {
            let _ = std::fs::remove_file(&part);
        }
        fetch.fetch(sha256, &part).await?;
        let (len, digest) = {
            let p = part.clone();
            tokio::task::spawn_blocking(move || digest_of(&p))
                .await
                .map_err(|e| Error::Deploy(format!("the digest task stopped: {e}")))??
        };
        if len != size || digest != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Deploy(format!(
                "payload file {sha256} arrived corrupted ({len} bytes, digest {digest}); it \
                 will be fetched again"
            )));
        }
        set_mode(&part, 0o700)?;
        std::fs::rename(&part, &blob).map_err(io("cannot keep", &blob))?;
        Ok(())
    }

    /// Builds `releases/<id>/` from the blobs, unless it is there.
    fn stage(&self, order: &SoftwareOrder) -> Result<(), Error> {
        let place = self.dir.join("releases").join(&order.release_id);
        if place.exists() {
            return Ok(());
        }
        let tmp = self
            .dir
            .join("releases")
            .join(format!(".{}.staging", order.release_id));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io("cannot clear", &tmp))?;
        }
        for f in &order.payload {
            check_relative(&f.name)?;
            let to = tmp.join(&f.name);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
            }
            let from = self.dir.join("blobs").join(&f.sha256);
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(io("cannot copy to", &to))?;
                set_mode(&to, 0o700)?;
            }
        }
        std::fs::create_dir_all(&tmp).map_err(io("cannot create", &tmp))?;
        std::fs::rename(&tmp, &place).map_err(io("cannot move into", &place))?;
        Ok(())
    }

    /// Points `current` at release `id` (removes it for the installed
    /// software), by renaming a new link over it.
    fn point_current(&self, id: &str) -> Result<(), Error> {
        let current = self.dir.join("current");
        if id.is_empty() {
            return match std::fs::remove_file(&current) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(io("cannot remove", &current)(e))
                }
                _ => Ok(()),
            };
        }
        let tmp = self.dir.join("current.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new("releases").join(id), &tmp)
            .map_err(io("cannot create", &tmp))?;
        std::fs::rename(&tmp, &current).map_err(io("cannot replace", &current))?;
        Ok(())
    }
}

/// A release id usable as a directory name.
fn check_component(c: &str) -> Result<(), Error> {
    let ok = !c.is_empty()
        && c != "."
        && c != ".."
        && c.len() <= 255
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Deploy(format!(
            "{c:?} is not a usable release or file name"
        )))
    }
}

/// A payload file name: a relative path below the release's directory.
fn check_relative(name: &str) -> Result<(), Error> {
    name.split('/').try_for_each(check_component)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("cannot set the mode of", path))
}

fn digest_of(path: &Path) -> Result<(u64, String), Error> {
    let mut f = std::fs::File::open(path).map_err(io("cannot read", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io("cannot read", path))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    let digest = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((len, digest))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Runs hook `hook` of the release in `dir`: exit 0 within the time limit,
/// or the error says how it ended (with the end of its output).
async fn run_hook(dir: &Path, hook: &str, release: &str) -> Result<(), Error> {
    let path = dir.join(hook);
    let child = tokio::process::Command::new(&path)
        .current_dir(dir)
        .env("ROOST_RELEASE", release)
        .env("ROOST_RELEASE_DIR", dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| format!("{:o}", m.permissions().mode()))
                .unwrap_or_else(|e| e.to_string());
            Error::Deploy(format!(
                "cannot run {hook} (mode {mode}, {}): {e}",
                path.display()
            ))
        })?;
    let out = tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            Error::Deploy(format!(
                "{hook} did not finish within {} s",
                HOOK_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| Error::Deploy(format!("cannot run {hook}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let text = if text.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        text
    };
    let tail: String = text
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(Error::Deploy(format!("{hook} {}: {tail}", out.status)))
}

/// Whether `exe` starts: `exe --version` exits 0 in time.
async fn preflight(exe: &Path) -> Result<(), Error> {
    let child = tokio::process::Command::new(exe)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Deploy(format!("cannot run {}: {e}", exe.display())))?;
    let out = tokio::time::timeout(PREFLIGHT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| Error::Deploy(format!("{} --version did not answer", exe.display())))?
        .map_err(|e| Error::Deploy(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Deploy(format!(
            "{} --version {}: {}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, files: &[(&str, &str)]) -> SoftwareOrder {
        SoftwareOrder {
            release_id: id.into(),
            attempt: 7,
            rollback: false,
            reboot_required: false,
            payload: files
                .iter()
                .map(|(name, sha)| roost_api::software::PayloadView {
                    name: (*name).into(),
                    size: 1,
                    sha256: (*sha).into(),
                })
                .collect(),
            pre_install: None,
            post_install: None,
            health_check: None,
        }
    }

    #[test]
    fn payload_names_stay_below_the_release_directory() {
        for ok in ["bin/roost", "etc/motd", "a.b-c_d"] {
            check_relative(ok).unwrap();
        }
        for bad in ["", "../x", "/abs", "a//b", "a/./b", "a/../b", "bin/ro st"] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
        assert!(check_component("roost-0.2.0").is_ok());
        assert!(check_component("..").is_err());
    }

    #[test]
    fn a_release_is_staged_from_its_blobs_and_current_switches_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let sw = Software::open(dir.path().join("software"), 60, "true").unwrap();
        let blobs = dir.path().join("software/blobs");
        std::fs::write(blobs.join("aa"), b"hello").unwrap();
        std::fs::write(blobs.join("bb"), b"#!/bin/sh\n").unwrap();
        let o = order("roost-0.2.0", &[("etc/motd", "aa"), ("hooks/health", "bb")]);
        sw.stage(&o).unwrap();
        let place = dir.path().join("software/releases/roost-0.2.0");
        assert_eq!(std::fs::read(place.join("etc/motd")).unwrap(), b"hello");
        // Staged once: a second time changes nothing.
        std::fs::write(blobs.join("aa"), b"changed").unwrap();
        sw.stage(&order("roost-0.2.0", &[("etc/motd", "cc")]))
            .unwrap();
        assert!(place.join("hooks/health").exists());
        // No staging directory is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("software/releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("roost-0.2.0")]);

        let current = dir.path().join("software/current");
        sw.point_current("roost-0.2.0").unwrap();
        assert_eq!(
            std::fs::read_link(&current).unwrap(),
            Path::new("releases/roost-0.2.0")
        );
        assert!(current.join("etc/motd").exists());
        // Back to the installed software: no link.
        sw.point_current("").unwrap();
        assert!(std::fs::symlink_metadata(&current).is_err());
        sw.point_current("").unwrap();
    }

    #[test]
    fn the_state_survives_a_restart_and_an_unconfirmed_trial_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("software");
        let sw = Software::open(path.clone(), 60, "true").unwrap();
        std::fs::create_dir_all(path.join("releases/roost-0.2.0")).unwrap();
        sw.point_current("roost-0.2.0").unwrap();
        sw.save(|s| {
            s.release_id = "roost-0.2.0".into();
            s.trial = Some(Trial {
                attempt: 9,
                release_id: "roost-0.2.0".into(),
                previous: String::new(),
                deadline: 0,
                health_check: None,
            });
        })
        .unwrap();
        // A start that was not executed for the trial (no marker in this
        // process's environment) rolls it back.
        let again = Software::open(path.clone(), 60, "true").unwrap();
        assert_eq!(again.state().release_id, "roost-0.2.0");
        again.at_start().unwrap();
        let st = again.state();
        assert_eq!(st.release_id, "");
        assert!(st.trial.is_none());
        let last = st.last.unwrap();
        assert_eq!((last.attempt, last.ok), (9, false));
        assert!(
            last.message.contains("stopped before it confirmed"),
            "{}",
            last.message
        );
        assert!(std::fs::symlink_metadata(path.join("current")).is_err());
        // The order of that attempt is not taken again; a new one is.
        let mut same = order("roost-0.2.0", &[]);
        same.attempt = 9;
        assert!(!again.take(&same));
        let mut next = order("roost-0.2.0", &[]);
        next.attempt = 10;
        assert!(again.take(&next));
        assert!(!again.take(&next), "one attempt at a time");
    }
}

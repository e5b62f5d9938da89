//! Monitored processes: their configuration files, the liveness check and
//! the restart command. The decisions are `roost_mtce::process`'s.
//!
//! One TOML file per process in the process directory (`*.toml`):
//!
//! ```toml
//! name = "sshd"
//! pidfile = "/run/sshd.pid"      # or: match = "sbin/sshd"
//! severity = "major"             # critical | major | minor  (default major)
//! restarts = 3                   # restarts allowed before failing (default 3)
//! restart_interval_secs = 10     # least seconds between restarts (default 10)
//! debounce_secs = 20             # seconds up before it counts as stable (default 20)
//! restart = ["/bin/sh", "-c", "systemctl restart sshd"]   # optional
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roost_mtce::process::ProcessSpec;
use roost_types::Severity;
use serde::Deserialize;

use crate::error::{Context, Error};

/// How long a restart command may run before the agent stops waiting for
/// it (it is left running).
pub const RESTART_WAIT: Duration = Duration::from_secs(30);

/// How the agent tells whether a process is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The pid in this file names a running process.
    Pidfile(PathBuf),
    /// Some process's command line (NULs read as spaces) contains this.
    Match(String),
}

/// One monitored process, from its configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    pub spec: ProcessSpec,
    pub liveness: Liveness,
    /// Program and arguments that restart the process, if any.
    pub restart: Option<Vec<String>>,
    /// The file it came from.
    pub file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: String,
    #[serde(default)]
    pidfile: Option<PathBuf>,
    #[serde(default, rename = "match")]
    matches: Option<String>,
    #[serde(default = "default_severity")]
    severity: String,
    #[serde(default = "default_restarts")]
    restarts: u32,
    #[serde(default = "default_restart_interval")]
    restart_interval_secs: u64,
    #[serde(default = "default_debounce")]
    debounce_secs: u64,
    #[serde(default)]
    restart: Option<Vec<String>>,
}

fn default_severity() -> String {
    "major".into()
}
fn default_restarts() -> u32 {
    3
}
fn default_restart_interval() -> u64 {
    10
}
fn default_debounce() -> u64 {
    20
}

/// Parses one configuration file's text.
pub fn parse_config(text: &str, file: &Path) -> Result<ProcessConfig, Error> {
    let err = |message: String| Error::ProcessConfig {
        file: file.to_path_buf(),
        message,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
    let name = raw.name.trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c))
    {
        return Err(err(format!(
            "name {:?} must be non-empty and made of letters, digits, '-', '_', '.', '@' or ':'",
            raw.name
        )));
    }
    let liveness = match (raw.pidfile, raw.matches) {
        (Some(p), None) if !p.as_os_str().is_empty() => Liveness::Pidfile(p),
        (None, Some(m)) if !m.trim().is_empty() => Liveness::Match(m),
        (Some(_), Some(_)) => {
            return Err(err("give either pidfile or match, not both".into()));
        }
        _ => return Err(err("give pidfile or match (non-empty)".into())),
    };
    let severity = match raw.severity.trim().to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "major" => Severity::Major,
        "minor" => Severity::Minor,
        other => {
            return Err(err(format!(
                "severity {other:?} must be critical, major or minor"
            )));
        }
    };
    if let Some(cmd) = &raw.restart
        && cmd.first().is_none_or(|p| p.is_empty())
    {
        return Err(err("restart must name a program".into()));
    }
    Ok(ProcessConfig {
        spec: ProcessSpec {
            name,
            severity,
            restarts: raw.restarts,
            restart_interval_secs: raw.restart_interval_secs,
            debounce_secs: raw.debounce_secs,
        },
        liveness,
        restart: raw.restart,
        file: file.to_path_buf(),
    })
}

/// Reads every `*.toml` of `dir`, in name order. A file that cannot be used
/// is logged (naming it) and skipped, as is a second file for the same
/// process name. Fails only when the directory cannot be read.
pub fn load_dir(dir: &Path) -> Result<Vec<ProcessConfig>, Error> {
    let (configs, errors) = scan_dir(dir)?;
    for e in errors {
        tracing::error!("{e}; skipping it");
    }
    Ok(configs)
}

/// [`load_dir`], returning the errors instead of logging them.
pub fn scan_dir(dir: &Path) -> Result<(Vec<ProcessConfig>, Vec<Error>), Error> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the process directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut names = BTreeSet::new();
    let mut configs = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| Error::ProcessConfig {
                file: file.clone(),
                message: e.to_string(),
            })
            .and_then(|text| parse_config(&text, &file));
        match parsed {
            Ok(c) if !names.insert(c.spec.name.clone()) => errors.push(Error::ProcessConfig {
                message: format!("process {:?} is already configured", c.spec.name),
                file,
            }),
            Ok(c) => configs.push(c),
            Err(e) => errors.push(e),
        }
    }
    Ok((configs, errors))
}

/// A snapshot of the command lines of running processes, taken once per
/// check round and shared by every `match` check of that round.
#[derive(Debug, Default)]
pub struct ProcessTable {
    cmdlines: Vec<String>,
}

impl ProcessTable {
    /// Reads `/proc/*/cmdline` of every running (non-zombie) process but
    /// this one.
    pub fn read(proc_root: &Path) -> ProcessTable {
        let me = std::process::id().to_string();
        let mut cmdlines = Vec::new();
        if let Ok(entries) = std::fs::read_dir(proc_root) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(pid) = name.to_str() else { continue };
                if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                    continue;
                }
                let dir = e.path();
                if !is_running(&dir) {
                    continue;
                }
                if let Ok(raw) = std::fs::read(dir.join("cmdline"))
                    && !raw.is_empty()
                {
                    let s = String::from_utf8_lossy(&raw).replace('\0', " ");
                    cmdlines.push(s.trim_end().to_string());
                }
            }
        }
        ProcessTable { cmdlines }
    }

    /// Whether some process's command line contains `pattern`.
    pub fn any_matches(&self, pattern: &str) -> bool {
        self.cmdlines.iter().any(|c| c.contains(pattern))
    }
}

/// Whether `/proc/<pid>` is a process that is not a zombie (or dead).
fn is_running(pid_dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(pid_dir.join("stat")) else {
        return false;
    };
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|state| !matches!(state, "Z" | "X" | "x"))
}

/// Whether the process a config describes is alive.
pub fn is_alive(liveness: &Liveness, table: &ProcessTable, proc_root: &Path) -> bool {
    match liveness {
        Liveness::Match(pattern) => table.any_matches(pattern),
        Liveness::Pidfile(file) => std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|pid| *pid > 0)
            .is_some_and(|pid| is_running(&proc_root.join(pid.to_string()))),
    }
}

/// Starts a restart command, and waits for it in the background for at
/// most [`RESTART_WAIT`] (then leaves it running).
pub fn spawn_restart(name: &str, cmd: &[String]) {
    let Some((program, args)) = cmd.split_first() else {
        return;
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match command.spawn() {
        Err(e) => {
            tracing::error!(process = name, program = %program, error = %e, "cannot run the restart command")
        }
        Ok(mut child) => {
            let name = name.to_string();
            tokio::spawn(async move {
                match tokio::time::timeout(RESTART_WAIT, child.wait()).await {
                    Ok(Ok(status)) if status.success() => {
                        tracing::debug!(process = %name, "restart command done");
                    }
                    Ok(Ok(status)) => {
                        tracing::warn!(process = %name, %status, "restart command failed");
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(process = %name, error = %e, "cannot wait for the restart command");
                    }
                    Err(_) => {
                        tracing::warn!(process = %name, "restart command still running after {}s; no longer waiting for it", RESTART_WAIT.as_secs());
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProcessConfig, Error> {
        parse_config(text, Path::new("/etc/roost/processes/x.toml"))
    }

    #[test]
    fn a_full_config_is_read() {
        let c = parse(
            r#"
name = "sshd"
pidfile = "/run/sshd.pid"
severity = "critical"
restarts = 5
restart_interval_secs = 3
debounce_secs = 7
restart = ["/bin/sh", "-c", "systemctl restart sshd"]
"#,
        )
        .unwrap();
        assert_eq!(
            c.spec,
            ProcessSpec {
                name: "sshd".into(),
                severity: Severity::Critical,
                restarts: 5,
                restart_interval_secs: 3,
                debounce_secs: 7,
            }
        );
        assert_eq!(c.liveness, Liveness::Pidfile("/run/sshd.pid".into()));
        assert_eq!(
            c.restart.unwrap(),
            ["/bin/sh", "-c", "systemctl restart sshd"]
        );
    }

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let c = parse("name = \"ntpd\"\nmatch = \"sbin/ntpd\"\n").unwrap();
        assert_eq!(c.spec.severity, Severity::Major);
        assert_eq!(c.spec.restarts, 3);
        assert_eq!(c.spec.restart_interval_secs, 10);
        assert_eq!(c.spec.debounce_secs, 20);
        assert_eq!(c.liveness, Liveness::Match("sbin/ntpd".into()));
        assert_eq!(c.restart, None);
    }

    #[test]
    fn invalid_configs_are_refused_with_the_file_name() {
        for (text, expect) in [
            ("name = \"a\"\n", "pidfile or match"),
            (
                "name = \"a\"\npidfile = \"/p\"\nmatch = \"m\"\n",
                "not both",
            ),
            (
                "name = \"a\"\nmatch = \"m\"\nseverity = \"warning\"\n",
                "critical, major or minor",
            ),
            ("name = \"\"\nmatch = \"m\"\n", "name"),
            ("name = \"a b\"\nmatch = \"m\"\n", "name"),
            ("name = \"a\"\nmatch = \"m\"\nrestarts = -1\n", ""),
            ("name = \"a\"\nmatch = \"m\"\nrestart = []\n", "restart"),
            ("name = \"a\"\nmatch = \"m\"\nbogus = 1\n", "bogus"),
            ("match = \"m\"\n", "name"),
            ("this is not toml", ""),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("x.toml"), "{text}: {e}");
            assert!(e.contains(expect), "{text}: {e}");
        }
    }

    #[test]
    fn a_directory_is_read_skipping_bad_and_duplicate_files() {
        let dir = tempfile::tempdir().unwrap();
        let w = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
        w("a.toml", "name = \"a\"\nmatch = \"x\"\n");
        w("b.toml", "name = \"b\"\n");
        w("c.toml", "name = \"a\"\nmatch = \"y\"\n");
        w("d.conf", "not toml at all");
        w("e.toml", "name = \"e\"\npidfile = \"/run/e.pid\"\n");
        let (configs, errors) = scan_dir(dir.path()).unwrap();
        let names: Vec<_> = configs.iter().map(|c| c.spec.name.as_str()).collect();
        assert_eq!(names, ["a", "e"]);
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("b.toml"), "{errors:?}");
        assert!(
            errors[1].contains("c.toml") && errors[1].contains("already"),
            "{errors:?}"
        );
        assert!(scan_dir(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn liveness_is_read_from_pidfiles_and_command_lines() {
        let proc_root = Path::new("/proc");
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("p.pid");
        // The test's own process is alive; it is excluded from matching,
        // but a pidfile naming it works.
        std::fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
        let table = ProcessTable::read(proc_root);
        assert!(is_alive(
            &Liveness::Pidfile(pidfile.clone()),
            &table,
            proc_root
        ));
        std::fs::write(&pidfile, "999999999\n").unwrap();
        assert!(!is_alive(
            &Liveness::Pidfile(pidfile.clone()),
            &table,
            proc_root
        ));
        std::fs::write(&pidfile, "garbage").unwrap();
        assert!(!is_alive(&Liveness::Pidfile(pidfile), &table, proc_root));
        assert!(!is_alive(
            &Liveness::Pidfile(dir.path().join("none.pid")),
            &table,
            proc_root
        ));
        assert!(!table.any_matches("no-such-process-name-3f9c2a"));
    }

    #[test]
    fn a_match_finds_a_running_child_by_its_command_line() {
        let mut child = std::process::Command::new("sleep")
            .arg("31.4159")
            .spawn()
            .unwrap();
        // Right after spawn the child may still be inside exec, with an
        // empty command line: poll until it shows (or a generous deadline).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let found = loop {
            if ProcessTable::read(Path::new("/proc")).any_matches("sleep 31.4159") {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found);
        // Reaped: gone.
        assert!(!ProcessTable::read(Path::new("/proc")).any_matches("sleep 31.4159"));
    }
}

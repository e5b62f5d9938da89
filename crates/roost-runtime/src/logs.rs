//! Container logs in bounded files.
//!
//! containerd's shim starts the logger named by a `binary://` URI for each
//! task, with the container's stdout on fd 3, stderr on fd 4 and a pipe on
//! fd 5 on which the logger reports that it is ready (the shim waits for one
//! byte or end of file). The URI's query becomes the logger's arguments:
//! `binary:///usr/bin/roost?<subcommand>=<spec>` runs
//! `/usr/bin/roost <subcommand> <spec>`, and that subcommand calls
//! [`run_logger`] with `<spec>`. The environment carries `CONTAINER_ID` and
//! `CONTAINER_NAMESPACE`.
//!
//! Lines from both streams go to `<dir>/<id>.log`; when the next line would
//! take the file past `max_bytes`, files shift (`<id>.log` becomes
//! `<id>.log.1`, and so on) and at most `files` files are kept. The logger is
//! the shim's child, so it keeps logging while the agent restarts, and a
//! restarted container appends to its files.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::LogConfig;

/// Longest line written as one; longer output is split.
const MAX_LINE: usize = 16 * 1024;

/// The spec argument passed to the logger: `<max_bytes>:<files>:<dir>`.
pub fn logger_spec(cfg: &LogConfig) -> String {
    format!(
        "{}:{}:{}",
        cfg.max_bytes,
        cfg.files.max(1),
        cfg.dir.display()
    )
}

/// Percent-encodes a path for a URI (keeps `/` and unreserved characters).
pub fn percent_encode_path(p: &Path) -> String {
    let mut out = String::new();
    for b in p.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(*b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `binary://` URI handed to containerd for a container's stdout and stderr.
pub fn binary_uri(cfg: &LogConfig) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(&cfg.subcommand, &logger_spec(cfg))
        .finish();
    format!("binary://{}?{query}", percent_encode_path(&cfg.logger))
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Parses `<max_bytes>:<files>:<dir>`.
pub fn parse_spec(spec: &str) -> io::Result<(u64, u32, PathBuf)> {
    let mut it = spec.splitn(3, ':');
    let max = it
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad(format!("logger spec {spec:?}: bad max bytes")))?;
    let files = it
        .next()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| bad(format!("logger spec {spec:?}: bad file count")))?;
    let dir = it.next().filter(|d| d.starts_with('/')).ok_or_else(|| {
        bad(format!(
            "logger spec {spec:?}: the directory must be absolute"
        ))
    })?;
    Ok((max.max(1024), files.clamp(1, 100), PathBuf::from(dir)))
}

/// Appends lines to `<id>.log`, rotating by size.
pub struct RotatingLog {
    base: PathBuf,
    max: u64,
    files: u32,
    file: File,
    size: u64,
}

impl RotatingLog {
    pub fn open(dir: &Path, id: &str, max: u64, files: u32) -> io::Result<RotatingLog> {
        std::fs::create_dir_all(dir)?;
        let base = dir.join(format!("{id}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&base)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            base,
            max,
            files,
            file,
            size,
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut s = self.base.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.files > 1 {
            for n in (1..self.files - 1).rev() {
                let from = self.numbered(n);
                if from.exists() {
                    std::fs::rename(&from, self.numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.base, self.numbered(1))?;
        } else {
            std::fs::remove_file(&self.base)?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.base)?;
        self.size = 0;
        Ok(())
    }

    /// Writes one line (with its newline).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

/// Reads a container's log, oldest file first.
pub fn read_log(dir: &Path, id: &str) -> io::Result<Vec<u8>> {
    let base = format!("{id}.log");
    let mut numbered: Vec<(u32, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix(&base)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|n| n.parse().ok())
        {
            numbered.push((n, e.path()));
        }
    }
    numbered.sort_by_key(|n| std::cmp::Reverse(n.0));
    let mut out = Vec::new();
    for (_, p) in numbered {
        out.extend(std::fs::read(p)?);
    }
    match std::fs::read(dir.join(&base)) {
        Ok(b) => out.extend(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// Removes a container's log files (`<id>.log` and its rotated files).
pub fn remove_log(dir: &Path, id: &str) -> io::Result<()> {
    let base = format!("{id}.log");
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        let ours = name == base
            || name
                .strip_prefix(&base)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if ours {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The last `n` lines of `data` (all of it for `None`): what `logs --tail`
/// shows, on the server for its own host and on an agent for its host.
pub fn tail_lines(data: &[u8], n: Option<u64>) -> &[u8] {
    let Some(n) = n else { return data };
    if n == 0 {
        return &[];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

/// The logger process: called by the hidden subcommand the shim starts.
/// Reads fds 3 and 4 until the container closes them, reports readiness on
/// fd 5, and writes lines to the rotating files. The fds are reopened
/// through `/proc/self/fd` (the crate uses no unsafe code).
pub fn run_logger(spec: &str) -> io::Result<()> {
    let (max, files, dir) = parse_spec(spec)?;
    let id = std::env::var("CONTAINER_ID").map_err(|_| bad("CONTAINER_ID is not set"))?;
    if !crate::valid_id(&id) {
        return Err(bad(format!("CONTAINER_ID {id:?} is not a container id")));
    }
    let stdout = File::open("/proc/self/fd/3")?;
    let stderr = File::open("/proc/self/fd/4")?;
    let mut log = RotatingLog::open(&dir, &id, max, files)?;
    {
        let mut ready = OpenOptions::new().write(true).open("/proc/self/fd/5")?;
        ready.write_all(b"r")?;
    }
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let readers: Vec<_> = [stdout, stderr]
        .into_iter()
        .map(|f| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(f);
                loop {
                    let mut line = Vec::new();
                    let n = io::Read::take(&mut r, MAX_LINE as u64).read_until(b'\n', &mut line);
                    match n {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if !line.ends_with(b"\n") {
                                line.push(b'\n');
                            }
                            if tx.send(line).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    drop(tx);
    for line in rx {
        log.write_line(&line)?;
    }
    for r in readers {
        let _ = r.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_keeps_the_last_lines() {
        let d = b"a\nb\nc\n";
        assert_eq!(tail_lines(d, None), d);
        assert_eq!(tail_lines(d, Some(0)), b"");
        assert_eq!(tail_lines(d, Some(2)), b"b\nc\n");
        assert_eq!(tail_lines(d, Some(9)), d);
        assert_eq!(tail_lines(b"a\nb", Some(1)), b"b");
    }

    #[test]
    fn the_uri_carries_the_subcommand_and_spec() {
        let cfg = LogConfig {
            dir: "/var/lib/roost/logs/app one".into(),
            max_bytes: 1 << 20,
            files: 3,
            logger: "/usr/bin/roost".into(),
            subcommand: "container-logger".into(),
        };
        let uri = binary_uri(&cfg);
        assert_eq!(
            uri,
            "binary:///usr/bin/roost?container-logger=1048576%3A3%3A%2Fvar%2Flib%2Froost%2Flogs%2Fapp+one"
        );
        let (max, files, dir) = parse_spec(&logger_spec(&cfg)).unwrap();
        assert_eq!(
            (max, files, dir),
            (1 << 20, 3, PathBuf::from("/var/lib/roost/logs/app one"))
        );
    }

    #[test]
    fn files_rotate_and_are_bounded() {
        let dir = std::env::temp_dir().join(format!("roost-logs-test-{}", std::process::id()));
        let _g = crate::oci::ScratchDir(dir.clone());
        let mut log = RotatingLog::open(&dir, "c1", 1024, 3).unwrap();
        for i in 0..200 {
            log.write_line(format!("line {i:04} {}\n", "x".repeat(40)).as_bytes())
                .unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["c1.log", "c1.log.1", "c1.log.2"]);
        let all = String::from_utf8(read_log(&dir, "c1").unwrap()).unwrap();
        assert!(all.ends_with(&format!("line 0199 {}\n", "x".repeat(40))));
        assert!(!all.contains("line 0000"));
        let lines: Vec<&str> = all.lines().collect();
        // Consecutive, newest last.
        for w in lines.windows(2) {
            let a: u32 = w[0][5..9].parse().unwrap();
            let b: u32 = w[1][5..9].parse().unwrap();
            assert_eq!(a + 1, b);
        }
        for n in &names {
            assert!(std::fs::metadata(dir.join(n)).unwrap().len() <= 1024);
        }
        // Removing c1's logs leaves another container's alone.
        let mut other = RotatingLog::open(&dir, "c1.x", 1024, 3).unwrap();
        other.write_line(b"other\n").unwrap();
        remove_log(&dir, "c1").unwrap();
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(left, ["c1.x.log"]);
        remove_log(&dir, "c1").unwrap();
    }
}

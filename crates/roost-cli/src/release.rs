//! `roost release`: the verbs that make software releases, with no server:
//! `keygen` (an Ed25519 signing key and the line a cloud trusts it by) and
//! `build` (a signed `*.patch` file from a directory), and `verify` (a
//! release file checked against trusted keys, payload included).
//!
//! A release directory holds `release.toml` (the manifest's fields:
//! `release_id`, `summary`, `description`, `reboot_required`, `requires`,
//! `[hooks]`) and `payload/`, whose files (walked in name order, named by
//! their path below `payload/`) become the payload.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use roost_release::{Hooks, Manifest, PayloadFile, PublicKey, SigningKey, TrustedKeys};
use sha2::{Digest, Sha256};

use crate::Io;
use crate::error::Error;

/// `roost release` verbs.
#[derive(clap::Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Make a release signing key (Ed25519)
    #[command(after_help = "Examples:\n  \
        roost release keygen --out release.key\n\n\
        Writes the private key (mode 0600) and KEY.pub, and prints the line to add to the\n\
        cloud's trusted keys.")]
    Keygen(KeygenArgs),
    /// Build a signed release file (*.patch) from a directory
    #[command(after_help = "Examples:\n  \
        roost release build ./roost-0.2.0 --key release.key\n\n\
        DIR holds release.toml and payload/. release.toml:\n  \
        release_id = \"roost-0.2.0\"\n  \
        summary = \"...\"\n  \
        reboot_required = false\n  \
        requires = [\"roost-0.1.0\"]\n  \
        [hooks]\n  \
        health_check = \"hooks/health\"   # a file below payload/")]
    Build(BuildArgs),
    /// Check a release file's signature and every payload digest
    #[command(after_help = "Examples:\n  \
        roost release verify roost-0.2.0.patch --trust release.key.pub")]
    Verify(VerifyArgs),
}

/// Flags of `roost release keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the private key (the public key goes to FILE.pub)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Flags of `roost release build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The release directory (release.toml and payload/)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The signing key (from `roost release keygen`)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Where to write the release [default: RELEASE_ID.patch]
    #[arg(short = 'o', long = "output", value_name = "OUT.patch")]
    pub output: Option<PathBuf>,
}

/// Flags of `roost release verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The release file
    #[arg(value_name = "FILE.patch")]
    pub file: PathBuf,
    /// A public key file (KEY.pub) or an ed25519:... line to trust; repeatable
    #[arg(long, value_name = "KEY", required = true)]
    pub trust: Vec<String>,
}

/// `release.toml`.
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ReleaseToml {
    release_id: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    reboot_required: bool,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    hooks: Hooks,
}

pub(crate) fn run(cmd: ReleaseCommand, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        ReleaseCommand::Keygen(a) => keygen(&a, io),
        ReleaseCommand::Build(a) => build(&a, io),
        ReleaseCommand::Verify(a) => verify(&a, io),
    }
}

fn failure(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::failure(format!("{what} {}: {e}", path.display()))
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

fn keygen(a: &KeygenArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let key = SigningKey::generate().map_err(|e| Error::failure(e.to_string()))?;
    let public = key.public().to_text();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&a.out)
        .map_err(|e| failure("cannot create", &a.out, e))?;
    f.write_all(key.to_text().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| failure("cannot write", &a.out, e))?;
    let pub_file = pub_path(&a.out);
    fs::write(&pub_file, format!("{public}\n"))
        .map_err(|e| failure("cannot write", &pub_file, e))?;
    writeln!(io.out, "{public}")?;
    writeln!(
        io.err,
        "Wrote {} (private, mode 0600; keep it off the cloud) and {} (key id {}). A cloud \
         trusts releases signed with it once the line above is in its trusted keys.",
        a.out.display(),
        pub_file.display(),
        key.public().id()
    )?;
    Ok(())
}

/// The files below `dir`, as (name below `dir`, path), in name order.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| failure("cannot read", &d, e))? {
            let entry = entry.map_err(|e| failure("cannot read", &d, e))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| failure("cannot read", &path, e))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let name = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|p| p.to_str())
                    .ok_or_else(|| failure("cannot name", &path, "not UTF-8"))?
                    .to_string();
                out.push((name, path));
            } else {
                return Err(failure(
                    "cannot put in a release",
                    &path,
                    "only regular files and directories may be in payload/",
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn digest(path: &Path) -> Result<PayloadFile, Error> {
    let mut f = BufReader::new(File::open(path).map_err(|e| failure("cannot read", path, e))?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| failure("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok(PayloadFile {
        name: String::new(),
        size,
        sha256: roost_release::hex(&h.finalize()),
    })
}

fn build(a: &BuildArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let toml_path = a.dir.join("release.toml");
    let text = fs::read_to_string(&toml_path).map_err(|e| failure("cannot read", &toml_path, e))?;
    let spec: ReleaseToml = toml::from_str(&text).map_err(|e| failure("invalid", &toml_path, e))?;
    let key_text = fs::read_to_string(&a.key).map_err(|e| failure("cannot read", &a.key, e))?;
    let key = SigningKey::from_text(&key_text).map_err(|e| failure("invalid key", &a.key, e))?;
    let (_, version) = roost_release::split_release_id(&spec.release_id)
        .map_err(|e| failure("invalid", &toml_path, e))?;
    let payload_dir = a.dir.join("payload");
    let files = if payload_dir.exists() {
        walk(&payload_dir)?
    } else {
        Vec::new()
    };
    let mut payload = Vec::with_capacity(files.len());
    for (name, path) in &files {
        payload.push(PayloadFile {
            name: name.clone(),
            ..digest(path)?
        });
    }
    let manifest = Manifest {
        release_id: spec.release_id.clone(),
        version: version.to_string(),
        summary: spec.summary,
        description: spec.description,
        reboot_required: spec.reboot_required,
        requires: spec.requires,
        payload,
        hooks: spec.hooks,
        key_id: key.public().id(),
    };
    manifest
        .check()
        .map_err(|e| failure("invalid release in", &a.dir, e))?;
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.patch", spec.release_id)));
    let tmp = output.with_extension("patch.tmp");
    let mut opened = Vec::with_capacity(files.len());
    for (_, path) in &files {
        opened.push(BufReader::new(
            File::open(path).map_err(|e| failure("cannot read", path, e))?,
        ));
    }
    let mut readers: Vec<&mut dyn Read> = opened.iter_mut().map(|r| r as &mut dyn Read).collect();
    let result = (|| {
        let mut out =
            BufWriter::new(File::create(&tmp).map_err(|e| failure("cannot write", &tmp, e))?);
        roost_release::write_release(&mut out, &manifest, &key, &mut readers)
            .map_err(|e| failure("cannot build", &output, e))?;
        out.into_inner()
            .map_err(|e| failure("cannot write", &tmp, e.error()))?
            .sync_all()
            .map_err(|e| failure("cannot write", &tmp, e))?;
        fs::rename(&tmp, &output).map_err(|e| failure("cannot write", &output, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    writeln!(io.out, "{}", output.display())?;
    writeln!(
        io.err,
        "Built {} ({} payload files), signed with key {}. Upload it with: software upload {}",
        spec.release_id,
        files.len(),
        key.public().id(),
        output.display()
    )?;
    Ok(())
}

fn verify(a: &VerifyArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut trusted = TrustedKeys::default();
    for t in &a.trust {
        let text = if t.trim().starts_with("ed25519:") {
            t.clone()
        } else {
            let p = Path::new(t);
            fs::read_to_string(p).map_err(|e| failure("cannot read", p, e))?
        };
        trusted.add(
            PublicKey::from_text(&text).map_err(|e| Error::usage(format!("--trust {t}: {e}")))?,
        );
    }
    let f = BufReader::new(File::open(&a.file).map_err(|e| failure("cannot read", &a.file, e))?);
    let opened = roost_release::open(f, &trusted).map_err(|e| failure("refused", &a.file, e))?;
    let manifest = opened
        .payload(|_| Ok(Box::new(std::io::sink())))
        .map_err(|e| failure("refused", &a.file, e))?;
    writeln!(
        io.out,
        "{}: signed by {}, {} payload files, every digest matches",
        manifest.release_id,
        manifest.key_id,
        manifest.payload.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_run(cmd: ReleaseCommand) -> (Result<(), Error>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = std::io::empty();
        let mut input = BufReader::new(&mut input);
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
            interactive: false,
            err_terminal: false,
            out_terminal: false,
        };
        let r = run(cmd, &mut io);
        (
            r,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn keygen_build_and_verify_a_release_and_refuse_a_tampered_one() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("release.key");
        let (r, out, _) = io_run(ReleaseCommand::Keygen(KeygenArgs { out: key.clone() }));
        r.unwrap();
        assert!(out.starts_with("ed25519:"), "{out}");
        let mode = fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Keygen never overwrites a key.
        let (r, _, _) = io_run(ReleaseCommand::Keygen(KeygenArgs { out: key.clone() }));
        assert!(r.is_err());

        let dir = tmp.path().join("rel");
        fs::create_dir_all(dir.join("payload/hooks")).unwrap();
        fs::write(
            dir.join("release.toml"),
            "release_id = \"roost-0.2.0\"\nsummary = \"test\"\n[hooks]\nhealth_check = \"hooks/health\"\n",
        )
        .unwrap();
        fs::write(dir.join("payload/hooks/health"), "#!/bin/sh\nexit 0\n").unwrap();
        fs::write(dir.join("payload/roost"), vec![7u8; 100_000]).unwrap();
        let patch = tmp.path().join("r.patch");
        let (r, out, _) = io_run(ReleaseCommand::Build(BuildArgs {
            dir: dir.clone(),
            key: key.clone(),
            output: Some(patch.clone()),
        }));
        r.unwrap();
        assert!(out.contains("r.patch"));
        let trust = vec![pub_path(&key).display().to_string()];
        let (r, out, _) = io_run(ReleaseCommand::Verify(VerifyArgs {
            file: patch.clone(),
            trust: trust.clone(),
        }));
        r.unwrap();
        assert!(
            out.contains("roost-0.2.0") && out.contains("2 payload files"),
            "{out}"
        );

        // A changed payload byte, and another key: refused with the reason.
        let mut bytes = fs::read(&patch).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let bad = tmp.path().join("bad.patch");
        fs::write(&bad, &bytes).unwrap();
        let (r, _, _) = io_run(ReleaseCommand::Verify(VerifyArgs {
            file: bad,
            trust: trust.clone(),
        }));
        assert!(r.unwrap_err().message().contains("digest"));
        let other = SigningKey::generate().unwrap().public().to_text();
        let (r, _, _) = io_run(ReleaseCommand::Verify(VerifyArgs {
            file: patch,
            trust: vec![other],
        }));
        assert!(r.unwrap_err().message().contains("does not trust"));

        // A hook that names no payload file: nothing is written.
        fs::write(
            dir.join("release.toml"),
            "release_id = \"roost-0.3.0\"\n[hooks]\npost_install = \"missing\"\n",
        )
        .unwrap();
        let out_path = tmp.path().join("x.patch");
        let (r, _, _) = io_run(ReleaseCommand::Build(BuildArgs {
            dir,
            key,
            output: Some(out_path.clone()),
        }));
        assert!(r.unwrap_err().message().contains("not a payload file"));
        assert!(!out_path.exists());
    }
}

//! Software releases for tests and benchmarks: a signing key, a release
//! built with `roost release build`, and its upload as the stock `software`
//! client sends it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::Error;

/// What a release holds.
#[derive(Debug, Clone, Default)]
pub struct ReleaseSpec<'a> {
    pub id: &'a str,
    pub requires: &'a [&'a str],
    /// Payload files: path below `payload/`, content (written 0755).
    pub files: &'a [(&'a str, &'a [u8])],
    pub reboot_required: bool,
    /// The payload file run as the health check.
    pub health_check: Option<&'a str>,
}

/// `roost release ARGS`; its standard output.
pub fn release_cli(bin: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(bin)
        .arg("release")
        .args(args)
        .output()
        .map_err(|e| Error::Release(format!("cannot run roost release: {e}")))?;
    if !out.status.success() {
        return Err(Error::Release(format!("roost release {args:?}: {out:?}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A new signing key at `path` (and `path.pub`); its public form.
pub fn keygen(bin: &Path, path: &Path) -> Result<String, Error> {
    release_cli(bin, &["keygen", "--out", &path.display().to_string()])
}

/// Builds `spec` with `key` into `dir/<id>.patch` (its sources go to
/// `dir/<id>/`).
pub fn build_release(
    bin: &Path,
    dir: &Path,
    key: &Path,
    spec: &ReleaseSpec<'_>,
) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| Error::Release(format!("cannot write a release's sources: {e}"));
    let src = dir.join(spec.id);
    for (name, bytes) in spec.files {
        let p = src.join("payload").join(name);
        std::fs::create_dir_all(p.parent().unwrap_or(&src)).map_err(io)?;
        std::fs::write(&p, bytes).map_err(io)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    let requires: Vec<String> = spec.requires.iter().map(|r| format!("\"{r}\"")).collect();
    let mut toml = format!(
        "release_id = \"{}\"\nsummary = \"test release {}\"\nrequires = [{}]\nreboot_required = {}\n",
        spec.id,
        spec.id,
        requires.join(", "),
        spec.reboot_required
    );
    if let Some(h) = spec.health_check {
        toml.push_str(&format!("[hooks]\nhealth_check = \"{h}\"\n"));
    }
    std::fs::write(src.join("release.toml"), toml).map_err(io)?;
    let out = dir.join(format!("{}.patch", spec.id));
    release_cli(
        bin,
        &[
            "build",
            &src.display().to_string(),
            "--key",
            &key.display().to_string(),
            "-o",
            &out.display().to_string(),
        ],
    )?;
    Ok(out)
}

/// `POST /v1/release` as the stock client sends it (multipart, each part
/// named by the file's absolute path, no part Content-Type): (status,
/// body).
pub fn upload_release(url: &str, token: &str, files: &[&Path]) -> (u16, Value) {
    let boundary = "roost-test-boundary-1b2c3d";
    let mut body = Vec::new();
    for f in files {
        let abs = std::fs::canonicalize(f).expect("the release file exists");
        let name = abs.display().to_string();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&std::fs::read(&abs).expect("the release file reads"));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = crate::http()
        .post(format!("{url}/v1/release"))
        .header("X-Auth-Token", token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .expect("the upload is sent");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

//! A replica's volumes on the host: hostPath binds, emptyDir directories and
//! ConfigMap/Secret files, all under the replica's own directory so removing
//! the directory removes them.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use roost_api::apps::agent::{MountSource, ReplicaSpec};

use crate::{Error, Mount, Result};

/// Creates `dir` (and missing parents) with mode 0755 whatever the process
/// umask (the server's is 0077): containers' own users read their volumes.
fn create_shared_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(Error::io(format!("create {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(Error::io(format!("chmod {}", dir.display())))
}

/// Creates the replica's directory `dir` and, for every container, the
/// mounts it gets (in container order). Files are written with their mode
/// and bound read-only; emptyDir volumes (also `memory: true` ones) are
/// plain directories.
pub(crate) fn prepare(dir: &Path, spec: &ReplicaSpec) -> Result<Vec<Vec<Mount>>> {
    create_shared_dir(dir)?;
    let mut out = Vec::new();
    for (ci, c) in spec.containers.iter().enumerate() {
        let mut mounts = Vec::new();
        for (mi, m) in c.mounts.iter().enumerate() {
            if !m.target.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "container {}: mount target {:?} is not an absolute path",
                    c.name, m.target
                )));
            }
            let mount = match &m.source {
                MountSource::HostPath { path, kind } => {
                    if !path.starts_with('/') {
                        return Err(Error::Invalid(format!(
                            "container {}: hostPath {path:?} is not an absolute path",
                            c.name
                        )));
                    }
                    host_path_kind(Path::new(path), kind).map_err(|why| {
                        Error::Invalid(format!("container {}: hostPath {path}: {why}", c.name))
                    })?;
                    Mount {
                        source: PathBuf::from(path),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                    }
                }
                MountSource::EmptyDir { volume, .. } => {
                    // Shared by every container of the replica that names it.
                    let named = !volume.is_empty()
                        && volume.len() <= 63
                        && volume
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    let d = if named {
                        dir.join(format!("empty-{volume}"))
                    } else {
                        dir.join(format!("empty-{ci}-{mi}"))
                    };
                    create_shared_dir(&d)?;
                    Mount {
                        source: d,
                        destination: m.target.clone(),
                        read_only: m.read_only,
                    }
                }
                MountSource::Files { files, mode } => {
                    let d = dir.join(format!("files-{ci}-{mi}"));
                    write_files(&d, files, *mode).map_err(|e| match e {
                        Error::Invalid(msg) => {
                            Error::Invalid(format!("container {}: {msg}", c.name))
                        }
                        other => other,
                    })?;
                    Mount {
                        source: d,
                        destination: m.target.clone(),
                        read_only: true,
                    }
                }
            };
            mounts.push(mount);
        }
        out.push(mounts);
    }
    Ok(out)
}

/// Checks (or makes) a hostPath as its Kubernetes `type` says; the reason
/// when it cannot be used.
/// Why a hostPath cannot be used.
#[derive(Debug)]
struct Reason(String);

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn host_path_kind(path: &Path, kind: &str) -> std::result::Result<(), Reason> {
    let meta = std::fs::metadata(path);
    match kind {
        "" => Ok(()),
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Reason("is not a directory (type Directory)".into())),
            Err(e) => Err(Reason(format!("{e} (type Directory)"))),
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(Reason("is not a file (type File)".into())),
            Err(e) => Err(Reason(format!("{e} (type File)"))),
        },
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Reason("is not a directory (type DirectoryOrCreate)".into())),
            Err(_) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|e| Reason(format!("cannot create it: {e}"))),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(Reason("is not a file (type FileOrCreate)".into())),
            Err(_) => std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o644)
                .open(path)
                .map(|_| ())
                .map_err(|e| Reason(format!("cannot create it: {e}"))),
        },
        other => Err(Reason(format!("unknown type {other:?}"))),
    }
}

fn write_files(
    dir: &Path,
    files: &std::collections::BTreeMap<String, String>,
    mode: u32,
) -> Result<()> {
    create_shared_dir(dir)?;
    for (name, content) in files {
        let rel = Path::new(name);
        if name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(Error::Invalid(format!(
                "file {name:?} is not a relative path inside its volume"
            )));
        }
        let bytes = roost_api::apps::base64::decode(content.as_bytes())
            .map_err(|e| Error::Invalid(format!("file {name:?}: content is not base64: {e}")))?;
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            create_shared_dir(parent)?;
            for a in parent.ancestors().skip(1) {
                if a == dir || !a.starts_with(dir) {
                    break;
                }
                std::fs::set_permissions(a, std::fs::Permissions::from_mode(0o755))
                    .map_err(Error::io(format!("chmod {}", a.display())))?;
            }
        }
        // Created with the mode from the start: a Secret is never readable
        // by others, not even for a moment.
        let mut opts = std::fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode & 0o777);
        let mut f = opts
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(Error::io(format!("create {}", path.display())))?;
        std::io::Write::write_all(&mut f, &bytes)
            .map_err(Error::io(format!("write {}", path.display())))?;
        // The umask may have narrowed the mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(Error::io(format!("chmod {}", path.display())))?;
    }
    Ok(())
}

/// Removes a replica's directory; a missing one is fine.
pub(crate) fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("remove {}", dir.display()),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_api::apps::agent::{ContainerSpec, MountSpec};

    fn spec(mounts: Vec<MountSpec>) -> ReplicaSpec {
        ReplicaSpec {
            id: "a/w/0".into(),
            app: "a".into(),
            generation: 1,
            containers: vec![ContainerSpec {
                name: "c".into(),
                image: "i".into(),
                image_digest: "sha256:00".into(),
                command: vec![],
                args: vec![],
                env: vec![],
                host_network: true,
                cpuset: None,
                exclusive: false,
                ports: vec![],
                cpu_millis_request: 0,
                cpu_millis_limit: None,
                memory_request_bytes: 0,
                memory_limit_bytes: None,
                mounts,
                liveness: None,
                readiness: None,
                security: Default::default(),
            }],
            restart_policy: "Always".into(),
            images: vec![],
        }
    }

    #[test]
    fn files_are_written_with_their_mode_and_escapes_are_refused() {
        let tmp = std::env::temp_dir().join(format!("roost-volumes-{}", std::process::id()));
        let _g = crate::oci::ScratchDir(tmp.clone());
        let files = [
            (
                "a.conf".to_string(),
                roost_api::apps::base64::encode(b"x=1\n"),
            ),
            (
                "sub/b".to_string(),
                roost_api::apps::base64::encode(b"\0\x01"),
            ),
        ]
        .into();
        let s = spec(vec![MountSpec {
            target: "/etc/app".into(),
            read_only: false,
            source: MountSource::Files { files, mode: 0o600 },
        }]);
        let mounts = prepare(&tmp, &s).unwrap();
        let m = &mounts[0][0];
        assert!(m.read_only);
        assert_eq!(std::fs::read(m.source.join("a.conf")).unwrap(), b"x=1\n");
        assert_eq!(std::fs::read(m.source.join("sub/b")).unwrap(), b"\0\x01");
        let mode = std::fs::metadata(m.source.join("a.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let bad = spec(vec![MountSpec {
            target: "/etc/app".into(),
            read_only: true,
            source: MountSource::Files {
                files: [("../escape".to_string(), "eA==".to_string())].into(),
                mode: 0o644,
            },
        }]);
        let err = prepare(&tmp.join("bad"), &bad).unwrap_err();
        assert!(err.to_string().contains("../escape"), "{err}");
        assert!(!tmp.join("escape").exists());
        remove(&tmp).unwrap();
        assert!(!tmp.exists());
        remove(&tmp).unwrap();
    }

    #[test]
    fn containers_naming_one_empty_dir_share_it() {
        let tmp = tempfile::tempdir().unwrap();
        let m = |volume: &str| MountSpec {
            target: "/data".into(),
            read_only: false,
            source: MountSource::EmptyDir {
                memory: false,
                volume: volume.into(),
            },
        };
        let mut s = spec(vec![m("shared"), m("")]);
        let mut second = s.containers[0].clone();
        second.name = "d".into();
        second.mounts = vec![m("shared"), m("")];
        s.containers.push(second);
        let mounts = prepare(tmp.path(), &s).unwrap();
        assert_eq!(mounts[0][0].source, mounts[1][0].source);
        assert_ne!(mounts[0][1].source, mounts[1][1].source);
    }

    #[test]
    fn host_paths_follow_their_type() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("made/dir");
        assert!(host_path_kind(&dir, "Directory").is_err());
        host_path_kind(&dir, "DirectoryOrCreate").unwrap();
        assert!(dir.is_dir());
        host_path_kind(&dir, "Directory").unwrap();
        let file = tmp.path().join("made/file");
        assert!(host_path_kind(&file, "File").is_err());
        host_path_kind(&file, "FileOrCreate").unwrap();
        assert!(file.is_file());
        assert!(host_path_kind(&file, "Directory").is_err());
        host_path_kind(&tmp.path().join("absent"), "").unwrap();
    }
}

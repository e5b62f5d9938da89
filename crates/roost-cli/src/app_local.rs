//! The `roost app` verbs that need no server: `package` (an application
//! package from a directory, through `roost_package::build`) and
//! `image import|export` (an OCI image archive from a directory tree, and a
//! root filesystem from an archive).
//!
//! Export unpacks the layers of the host platform's image in order into a
//! new or empty directory. It never writes outside that directory: paths
//! with `..` or a leading `/`, hard links to such paths, and paths that go
//! through a symbolic link are refused (symbolic links themselves are
//! created as they are, never followed). Whiteouts (`.wh.NAME` deletes NAME
//! of the layers below, `.wh..wh..opq` empties its directory) are applied.
//! Device nodes and FIFOs are skipped (they need root), and reported.
//! Set-user-ID, set-group-ID and sticky bits are dropped: the files belong
//! to whoever exports them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use roost_api::apps::Metadata;
use roost_runtime::oci;

use crate::Io;
use crate::error::Error;

/// Flags of `roost app package`.
#[derive(clap::Args, Debug)]
pub struct PackageArgs {
    /// The directory holding metadata.yaml, manifests/ and images/
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to write the package [default: APP_NAME-APP_VERSION.tgz]
    #[arg(short = 'o', long = "output", value_name = "OUT.tgz")]
    pub output: Option<PathBuf>,
}

/// Image verbs.
#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// Make an OCI image archive (an OCI layout in a tar) from a directory tree
    #[command(after_help = "Examples:\n  \
        roost app image import ./rootfs --name roost.local/web:1 --entrypoint /bin/httpd --cmd -f --cmd -p --cmd 8080\n  \
        roost app image import ./rootfs --name roost.local/tool:2 --env MODE=fast -o images/tool.tar\n\n\
        The tree becomes one layer (symbolic links kept). Put the archive in a package's\n\
        images/ folder and name the image by --name in the manifests.")]
    Import(ImageImportArgs),
    /// Unpack an OCI image archive into a directory as a root filesystem
    #[command(after_help = "Examples:\n  \
        roost app image export web-1.tar ./rootfs\n  \
        roost app image export bundle.tar ./rootfs --name roost.local/web:1\n\n\
        Every blob's digest is checked first. The image for this host's platform is unpacked,\n\
        layer by layer, into DIR (created, or empty).")]
    Export(ImageExportArgs),
}

/// Flags of `roost app image import`.
#[derive(clap::Args, Debug)]
pub struct ImageImportArgs {
    /// The directory tree that becomes the image's root filesystem
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The image's full name, e.g. roost.local/web:1
    #[arg(long, value_name = "REF")]
    pub name: String,
    /// One word of the entrypoint (repeat for each word)
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// One word of the default command (repeat for each word)
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// An environment variable, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The working directory of the image's processes
    #[arg(long, value_name = "PATH")]
    pub workdir: Option<String>,
    /// Where to write the archive [default: NAME-TAG.tar from --name]
    #[arg(short = 'o', long = "output", value_name = "OUT.tar")]
    pub output: Option<PathBuf>,
}

/// Flags of `roost app image export`.
#[derive(clap::Args, Debug)]
pub struct ImageExportArgs {
    /// The OCI image archive (a tar of an OCI layout) or layout directory
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,
    /// The directory to unpack into (created if missing; it must be empty)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The image to unpack, when the archive holds several
    #[arg(long, value_name = "REF")]
    pub name: Option<String>,
}

/// A local failure as a client error (exit code 1).
fn failed(e: impl std::error::Error) -> Error {
    Error::failure(roost_types::error_chain(&e))
}

/// The default package name, `APP_NAME-APP_VERSION.tgz` from the
/// directory's metadata.yaml (the directory's name when it cannot be read:
/// the build then says what is wrong).
pub fn default_package_name(dir: &Path) -> PathBuf {
    let from_metadata = fs::read_to_string(dir.join("metadata.yaml"))
        .ok()
        .and_then(|text| Metadata::parse(&text).ok())
        .map(|m| format!("{}-{}.tgz", m.app_name, m.app_version));
    let name = from_metadata.unwrap_or_else(|| {
        let stem = std::path::absolute(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "package".into());
        format!("{stem}.tgz")
    });
    PathBuf::from(name)
}

/// Runs `roost app package`.
pub(crate) fn package(args: &PackageArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if !args.dir.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a directory",
            args.dir.display()
        )));
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_package_name(&args.dir));
    let name = output.to_string_lossy();
    if !(name.ends_with(".tgz") || name.ends_with(".tar.gz")) {
        return Err(Error::usage(format!(
            "{name}: a package's name ends in .tgz or .tar.gz"
        )));
    }
    let built = roost_package::build(&args.dir, &output).map_err(failed)?;
    let sha256 = built
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&built.digest);
    writeln!(
        io.out,
        "Built package {} ({} {})",
        built.path.display(),
        built.metadata.app_name,
        built.metadata.app_version
    )?;
    writeln!(io.out, "size: {} bytes", built.size)?;
    writeln!(io.out, "sha256: {sha256}")?;
    writeln!(
        io.err,
        "(next: `roost app upload {} --wait`)",
        crate::host::shell_word(&built.path.to_string_lossy())
    )?;
    Ok(())
}

/// Runs one image verb.
pub(crate) fn image(cmd: ImageCommand, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        ImageCommand::Import(args) => import(&args, io),
        ImageCommand::Export(args) => export(&args, io),
    }
}

/// The default archive name for an image name: its last path part with
/// the tag joined by `-`, e.g. `roost.local/web:1` -> `web-1.tar`.
pub fn default_archive_name(reference: &str) -> PathBuf {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let stem: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches(|c| c == '-' || c == '.');
    PathBuf::from(format!(
        "{}.tar",
        if stem.is_empty() { "image" } else { stem }
    ))
}

/// The build options of `roost app image import`, checked.
pub fn build_options(args: &ImageImportArgs) -> Result<oci::BuildOptions, Error> {
    let name = args.name.trim();
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(Error::usage(format!("invalid image name {:?}", args.name)));
    }
    for kv in &args.env {
        if !matches!(kv.split_once('='), Some((k, _)) if !k.is_empty()) {
            return Err(Error::usage(format!("expected KEY=VALUE, not {kv:?}")));
        }
    }
    Ok(oci::BuildOptions {
        name: name.to_string(),
        entrypoint: args.entrypoint.clone(),
        cmd: args.cmd.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
    })
}

fn import(args: &ImageImportArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let opts = build_options(args)?;
    if !args.dir.is_dir() {
        return Err(Error::usage(format!(
            "{} is not a directory",
            args.dir.display()
        )));
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_archive_name(&opts.name));
    if output.extension().is_none_or(|e| e != "tar") {
        return Err(Error::usage(format!(
            "{}: an image archive's name ends in .tar",
            output.display()
        )));
    }
    let built = oci::build_image_from_dir(&args.dir, &output, &opts).map_err(failed)?;
    let size = fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    writeln!(
        io.out,
        "Built image {} in {} ({size} bytes)",
        built.name,
        output.display()
    )?;
    writeln!(io.out, "manifest: {}", built.manifest_digest)?;
    writeln!(
        io.err,
        "(put it in a package's images/ folder and use image: {} in its manifests; `roost app package DIR` builds the package)",
        built.name
    )?;
    Ok(())
}

fn export(args: &ImageExportArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let created = prepare_target(&args.dir)?;
    let result = export_into(args, io);
    if result.is_err() && created {
        let _ = fs::remove_dir_all(&args.dir);
    }
    result
}

/// Creates DIR, or checks that it is an empty directory; true if created.
fn prepare_target(dir: &Path) -> Result<bool, Error> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)
                .map_err(|e| Error::failure(format!("cannot create {}: {e}", dir.display())))?;
            Ok(true)
        }
        Err(e) => Err(Error::failure(format!(
            "cannot read {}: {e}",
            dir.display()
        ))),
        Ok(meta) if !meta.is_dir() => Err(Error::usage(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Ok(_) => {
            let mut entries = fs::read_dir(dir)
                .map_err(|e| Error::failure(format!("cannot read {}: {e}", dir.display())))?;
            if entries.next().is_some() {
                return Err(Error::usage(format!(
                    "{} is not empty; export into a new or empty directory",
                    dir.display()
                )));
            }
            Ok(false)
        }
    }
}

fn export_into(args: &ImageExportArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let layout = oci::verify_layout(&args.archive, &std::env::temp_dir()).map_err(failed)?;
    let (os, arch) = oci::host_platform();
    let candidates: Vec<&oci::LayoutImage> = layout
        .images
        .iter()
        .filter(|i| i.host_manifest.is_some())
        .filter(|i| args.name.as_ref().is_none_or(|n| &i.name == n))
        .collect();
    let image = match candidates.as_slice() {
        [one] => *one,
        [] => {
            let names: Vec<&str> = layout.images.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::failure(format!(
                "{} holds no image{} for {os}/{arch} (it has: {})",
                args.archive.display(),
                args.name
                    .as_ref()
                    .map(|n| format!(" named {n}"))
                    .unwrap_or_default(),
                if names.is_empty() {
                    "nothing".into()
                } else {
                    names.join(", ")
                }
            )));
        }
        many => {
            let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::usage(format!(
                "{} holds several images; choose one with --name ({})",
                args.archive.display(),
                names.join(", ")
            )));
        }
    };
    let manifest = image
        .host_manifest
        .as_ref()
        .map(|m| &m.manifest)
        .ok_or_else(|| Error::failure("no manifest for this platform"))?;
    let mut unpacker = Unpacker::new(&args.dir);
    for layer in &manifest.layers {
        if layer.media_type.contains("zstd") {
            return Err(Error::failure(format!(
                "layer {} is zstd-compressed ({}); only gzip and plain tar layers can be exported",
                layer.digest, layer.media_type
            )));
        }
        let hex = layer
            .digest
            .strip_prefix("sha256:")
            .unwrap_or(&layer.digest);
        let path = layout.dir.join("blobs/sha256").join(hex);
        unpacker
            .apply_layer(&path)
            .map_err(|e| e.map_message(|m| format!("layer {}: {m}", layer.digest)))?;
    }
    unpacker.finish()?;
    writeln!(
        io.out,
        "Exported {} ({} layer{}) into {}",
        image.name,
        manifest.layers.len(),
        if manifest.layers.len() == 1 { "" } else { "s" },
        args.dir.display()
    )?;
    if unpacker.skipped > 0 {
        writeln!(
            io.err,
            "(note: {} device node(s) or FIFO(s) skipped: creating them needs root)",
            unpacker.skipped
        )?;
    }
    Ok(())
}

/// Opens a layer blob, decompressing gzip (recognised by its magic bytes).
fn open_layer(path: &Path) -> Result<Box<dyn Read>, Error> {
    let mut file = File::open(path)
        .map_err(|e| Error::failure(format!("cannot read {}: {e}", path.display())))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).unwrap_or(0);
    let reopened = File::open(path)
        .map_err(|e| Error::failure(format!("cannot read {}: {e}", path.display())))?;
    let reader = BufReader::new(reopened);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// A path inside a layer as its normal components; an error for absolute
/// paths and `..`. Empty for the root itself (`.` or `./`).
pub fn layer_path(raw: &Path) -> Result<Vec<String>, Error> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| {
                        Error::failure(format!("{} is not a UTF-8 name", raw.display()))
                    })?
                    .to_string(),
            ),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::failure(format!(
                    "{} leaves the image's root; refused",
                    raw.display()
                )));
            }
        }
    }
    Ok(parts)
}

/// Applies layers to a root directory, in order.
pub struct Unpacker {
    root: PathBuf,
    /// Directory modes, set at the end (a read-only directory must stay
    /// writable while later entries and layers go into it).
    dir_modes: BTreeMap<PathBuf, u32>,
    /// Device nodes and FIFOs not created.
    pub skipped: u64,
}

impl Unpacker {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            dir_modes: BTreeMap::new(),
            skipped: 0,
        }
    }

    /// The place of `parts` under the root, after checking that no
    /// existing ancestor is a symbolic link (which could lead out of the
    /// root) or something other than a directory.
    fn target(&self, parts: &[String], shown: &Path) -> Result<PathBuf, Error> {
        let mut path = self.root.clone();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            if i + 1 == parts.len() {
                break;
            }
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::failure(format!(
                        "{} goes through the symbolic link {}; refused (it could write outside the target directory)",
                        shown.display(),
                        parts[..=i].join("/")
                    )));
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(Error::failure(format!(
                        "{}: {} is not a directory",
                        shown.display(),
                        parts[..=i].join("/")
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).map_err(|e| write_err(&path, e))?;
                }
                Err(e) => return Err(write_err(&path, e)),
            }
        }
        Ok(path)
    }

    /// Applies one layer: first its whiteouts (they delete what the layers
    /// below hold), then its entries.
    pub fn apply_layer(&mut self, layer: &Path) -> Result<(), Error> {
        // Pass 1: whiteouts.
        let mut archive = tar::Archive::new(open_layer(layer)?);
        for entry in archive.entries().map_err(bad_tar)? {
            let entry = entry.map_err(bad_tar)?;
            let raw = entry.path().map_err(bad_tar)?.into_owned();
            let parts = layer_path(&raw)?;
            let Some(last) = parts.last() else { continue };
            let Some(hidden) = last.strip_prefix(".wh.") else {
                continue;
            };
            let dir = self.target(&parts, &raw)?;
            let dir = dir.parent().unwrap_or(&self.root).to_path_buf();
            if hidden == ".wh..opq" {
                // An opaque directory: nothing of the layers below shows.
                if let Ok(children) = fs::read_dir(&dir) {
                    for child in children {
                        let child = child.map_err(|e| write_err(&dir, e))?;
                        remove_any(&child.path())?;
                    }
                }
            } else if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(Error::failure(format!(
                    "{}: a malformed whiteout",
                    raw.display()
                )));
            } else {
                remove_any(&dir.join(hidden))?;
            }
        }
        // Pass 2: the entries.
        let mut archive = tar::Archive::new(open_layer(layer)?);
        for entry in archive.entries().map_err(bad_tar)? {
            let mut entry = entry.map_err(bad_tar)?;
            let raw = entry.path().map_err(bad_tar)?.into_owned();
            let parts = layer_path(&raw)?;
            if parts.last().is_some_and(|p| p.starts_with(".wh.")) {
                continue;
            }
            let kind = entry.header().entry_type();
            let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
            if parts.is_empty() {
                if kind.is_dir() {
                    self.dir_modes.insert(self.root.clone(), mode);
                }
                continue;
            }
            let path = self.target(&parts, &raw)?;
            match kind {
                tar::EntryType::Directory => {
                    match fs::symlink_metadata(&path) {
                        Ok(meta) if meta.is_dir() => {}
                        Ok(_) => {
                            remove_any(&path)?;
                            fs::create_dir(&path).map_err(|e| write_err(&path, e))?;
                        }
                        Err(_) => fs::create_dir(&path).map_err(|e| write_err(&path, e))?,
                    }
                    self.dir_modes.insert(path, mode);
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    remove_any(&path)?;
                    let mut file = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(|e| write_err(&path, e))?;
                    io::copy(&mut entry, &mut file).map_err(|e| write_err(&path, e))?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                        .map_err(|e| write_err(&path, e))?;
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name()
                        .map_err(bad_tar)?
                        .ok_or_else(|| {
                            Error::failure(format!("{}: a link without a target", raw.display()))
                        })?
                        .into_owned();
                    remove_any(&path)?;
                    std::os::unix::fs::symlink(&target, &path).map_err(|e| write_err(&path, e))?;
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .map_err(bad_tar)?
                        .ok_or_else(|| {
                            Error::failure(format!("{}: a link without a target", raw.display()))
                        })?
                        .into_owned();
                    let target_parts = layer_path(&target)?;
                    let source = self.target(&target_parts, &target)?;
                    match fs::symlink_metadata(&source) {
                        Ok(meta) if meta.is_file() => {}
                        _ => {
                            return Err(Error::failure(format!(
                                "{}: hard link to {}, which is not a file unpacked before it",
                                raw.display(),
                                target.display()
                            )));
                        }
                    }
                    if source != path {
                        remove_any(&path)?;
                        fs::hard_link(&source, &path).map_err(|e| write_err(&path, e))?;
                    }
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    self.skipped += 1;
                }
                // Metadata entries (PAX, GNU long names) are read by the
                // tar reader itself; anything else carries no file.
                _ => {}
            }
        }
        Ok(())
    }

    /// Sets the directories' modes, deepest first.
    pub fn finish(&mut self) -> Result<(), Error> {
        for (path, mode) in std::mem::take(&mut self.dir_modes).into_iter().rev() {
            match fs::set_permissions(&path, fs::Permissions::from_mode(mode)) {
                // Deleted by a later layer's whiteout.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other.map_err(|e| write_err(&path, e))?,
            }
        }
        Ok(())
    }
}

fn bad_tar(e: io::Error) -> Error {
    Error::failure(format!("not a valid tar layer: {e}"))
}

fn write_err(path: &Path, e: io::Error) -> Error {
    Error::failure(format!("cannot write {}: {e}", path.display()))
}

/// Removes whatever is at `path` (a directory with its content); nothing
/// there is fine.
fn remove_any(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map_err(|e| write_err(path, e)),
        Ok(_) => fs::remove_file(path).map_err(|e| write_err(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_err(path, e)),
    }
}

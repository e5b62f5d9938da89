//! `roost app …`: applications through StarlingX's `/v1/apps` (upload,
//! list, show, apply, remove, abort, delete, update) and Roost's own
//! `/v1/apps/{name}/replicas` and `/v1/apps/{name}/logs`; plus the local
//! verbs that make packages and images (`package`, `image`, in
//! [`crate::app_local`]).
//!
//! `--wait` polls `GET /v1/apps/{name}` every second and shows the status
//! and progress text on standard error (one line redrawn on a terminal,
//! a line per change otherwise) until the operation's final state.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use comfy_table::Table;
use reqwest::Method;
use roost_api::apps::{
    App, AppPatch, AppReplica, AppReplicaList, AppUpdateRequest, AppUploadRequest,
};
use serde_json::Value;

use crate::app_local::{ImageCommand, PackageArgs};
use crate::client::{Api, path_segment};
use crate::credentials::Env;
use crate::error::Error;
use crate::output::{
    Column, OutputArgs, OutputFormat, detail_rows, field, list_items, new_table, print_data,
    print_table, render_detail, render_list, short_text,
};
use crate::query::Query;
use crate::wait::Look;
use crate::{Io, connect};

/// The fields `roost app show` prints, in this order (then any others).
pub const APP_SHOW_FIELDS: &[&str] = &[
    "name",
    "app_version",
    "status",
    "progress",
    "active",
    "manifest_name",
    "manifest_file",
    "created_at",
    "updated_at",
];

/// Application verbs.
#[derive(clap::Subcommand, Debug)]
pub enum AppCommand {
    /// Upload an application package (.tgz) to the server
    #[command(after_help = "Examples:\n  \
        roost app upload hello-1.0-1.tgz --wait\n  \
        roost app upload ./build/web.tgz --name web --app-version 2.0\n\n\
        The package is sent in the request; the server checks and stores it in the background.\n\
        metadata.yaml's app_name and app_version win over --name and --app-version.")]
    Upload(AppUploadArgs),
    /// List the applications
    #[command(after_help = "Examples:\n  roost app list\n  roost app list -o json")]
    List(AppListArgs),
    /// Show one application
    #[command(after_help = "Examples:\n  roost app show hello\n  roost app show hello -o json")]
    Show(AppOutputArgs),
    /// Apply an uploaded application: place and start its workloads
    #[command(after_help = "Examples:\n  \
        roost app apply hello --wait\n  \
        roost app apply hello --wait --wait-timeout 120")]
    Apply(AppApplyArgs),
    /// Remove an applied application: stop its workloads (it stays uploaded)
    #[command(after_help = "Examples:\n  \
        roost app remove hello --wait\n  \
        roost app remove hello --force --wait")]
    Remove(AppRemoveArgs),
    /// Abort the operation running on an application (apply, update, remove)
    #[command(after_help = "Example:\n  roost app abort hello")]
    Abort(AppArg),
    /// Delete an uploaded (not applied) application from the server
    #[command(after_help = "Examples:\n  roost app delete hello\n  roost app delete hello --force")]
    Delete(AppDeleteArgs),
    /// Update an applied application to the version in a package on the server
    #[command(after_help = "Example:\n  \
        roost app update /var/lib/roost/packages/hello-1.1-1.tgz --wait\n\n\
        Only the path is sent, as StarlingX's application-update does: the file must be readable\n\
        by the server at that path (on an All-in-One host, any path on this host). A relative\n\
        path is made absolute here first.")]
    Update(AppUpdateArgs),
    /// Show each replica of an application: host, state, readiness, restarts
    #[command(after_help = "Examples:\n  roost app status hello\n  roost app status hello -o json")]
    Status(AppOutputArgs),
    /// Print a container's output (the first replica and container by default)
    #[command(after_help = "Examples:\n  \
        roost app logs hello\n  \
        roost app logs hello --replica 1 --container web --tail 100\n  \
        roost app logs hello --follow")]
    Logs(AppLogsArgs),
    /// Build an application package (.tgz) from a directory (no server needed)
    #[command(after_help = "Examples:\n  \
        roost app package ./hello\n  \
        roost app package ./hello -o /tmp/hello.tgz\n\n\
        The directory holds metadata.yaml (app_name, app_version), manifests/*.yaml and\n\
        images/*.tar (OCI image archives, see `roost app image import`). Both are checked\n\
        as the server checks them, and a checksums.sha256 file is added.")]
    Package(PackageArgs),
    /// Make OCI image archives from directory trees and back (no server needed)
    #[command(subcommand)]
    Image(ImageCommand),
}

/// One application.
#[derive(clap::Args, Debug)]
pub struct AppArg {
    /// Name of the application
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Flags of `roost app list`.
#[derive(clap::Args, Debug)]
pub struct AppListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: crate::wait::WatchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// One application and the output format.
#[derive(clap::Args, Debug)]
pub struct AppOutputArgs {
    /// Name of the application
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

pub use crate::wait::WaitArgs;

/// Flags of `roost app upload`.
#[derive(clap::Args, Debug)]
pub struct AppUploadArgs {
    /// The package, a .tgz or .tar.gz file (`roost app package` builds one)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Application name, when metadata.yaml has none
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Application version, when metadata.yaml has none
    #[arg(short = 'v', long = "app-version", value_name = "VERSION")]
    pub app_version: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost app apply`.
#[derive(clap::Args, Debug)]
pub struct AppApplyArgs {
    /// Name of the application
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost app remove`.
#[derive(clap::Args, Debug)]
pub struct AppRemoveArgs {
    /// Name of the application
    #[arg(value_name = "NAME")]
    pub name: String,
    /// End in `uploaded` even if stopping the workloads fails
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost app delete`.
#[derive(clap::Args, Debug)]
pub struct AppDeleteArgs {
    /// Name of the application
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Delete past the checks that would refuse it
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Flags of `roost app update`.
#[derive(clap::Args, Debug)]
pub struct AppUpdateArgs {
    /// The new version's package (.tgz or .tar.gz), as a path the server can read
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Application name, when metadata.yaml has none
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Application version, when metadata.yaml has none
    #[arg(short = 'v', long = "app-version", value_name = "VERSION")]
    pub app_version: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost app logs`.
#[derive(clap::Args, Debug)]
pub struct AppLogsArgs {
    /// Name of the application
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The replica: its id (`roost app status` lists them) or the id's last part
    #[arg(short = 'r', long)]
    pub replica: Option<String>,
    /// The container's name
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Only the last N lines
    #[arg(short = 't', long, value_name = "N")]
    pub tail: Option<u64>,
    /// Keep printing new output until interrupted
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// Runs one application verb.
pub(crate) fn run(cmd: AppCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        AppCommand::Upload(args) => upload(&args, env, io),
        AppCommand::List(args) => {
            crate::wait::watch(io, &args.watch, |io| list(&args.output, env, io))
        }
        AppCommand::Show(args) => show(&args, env, io),
        AppCommand::Apply(args) => {
            let path = action_path(&args.name, "apply", None)?;
            let api = &connect(env)?;
            let reply = api
                .patch(&path, &apply_body())
                .map_err(not_found(&args.name))?;
            after_operation(api, reply, Goal::Apply, args.wait, &args.output, io)
        }
        AppCommand::Remove(args) => {
            let path = action_path(&args.name, "remove", Some(args.force))?;
            let api = &connect(env)?;
            let reply = api
                .patch(&path, &AppPatch::default())
                .map_err(not_found(&args.name))?;
            after_operation(api, reply, Goal::Remove, args.wait, &args.output, io)
        }
        AppCommand::Abort(args) => abort(&args.name, env, io),
        AppCommand::Delete(args) => delete(&args, env, io),
        AppCommand::Update(args) => update(&args, env, io),
        AppCommand::Status(args) => status(&args, env, io),
        AppCommand::Logs(args) => logs(&args, env, io),
        AppCommand::Package(args) => crate::app_local::package(&args, io),
        AppCommand::Image(cmd) => crate::app_local::image(cmd, io),
    }
}

/// The path of one application, `/v1/apps/{name}`.
pub fn app_path(name: &str) -> Result<String, Error> {
    Ok(format!(
        "/v1/apps/{}",
        path_segment("application name", name)?
    ))
}

/// `/v1/apps/{name}?directive=D[&force=True|False]`, as `system` sends it.
pub fn action_path(name: &str, directive: &str, force: Option<bool>) -> Result<String, Error> {
    let query = Query::new()
        .param("directive", Some(directive))
        .param("force", force.map(|f| if f { "True" } else { "False" }));
    Ok(format!("{}?{}", app_path(name)?, query.encode()))
}

/// The body of an apply, as `system application-apply` sends it without
/// options: `{"values": {"client_side": false}}`.
pub fn apply_body() -> AppPatch {
    let mut body = AppPatch::default();
    body.values.client_side = Some(false);
    body
}

/// Turns a 404 into "no application named NAME (...)".
fn not_found(name: &str) -> impl FnOnce(Error) -> Error + '_ {
    crate::style::not_found(
        "application",
        "name",
        name,
        "`roost app list` lists the applications",
    )
}

/// An application object from a reply, or an error saying it is not one.
pub fn parse_app(reply: &Value) -> Result<App, Error> {
    serde_json::from_value(reply.clone())
        .map_err(|e| Error::failure(format!("the server's reply is not an application: {e}")))
}

/// An application's state on one line:
/// `hello 1.0-1: applying (applying application manifest)`.
pub fn state_line(app: &App) -> String {
    format!("{} {}: {}", app.name, app.app_version, app_state(app))
}

/// An application's status and, when there is one, its progress text:
/// `applying (applying application manifest)`.
pub fn app_state(app: &App) -> String {
    match app.progress.as_deref().map(str::trim) {
        Some(progress) if !progress.is_empty() => format!("{} ({progress})", app.status),
        _ => app.status.clone(),
    }
}

fn list(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get("/v1/apps", &Query::new())?;
    let mut apps = list_items(&reply, "apps")?;
    apps.sort_by_key(|a| (field(a, "name"), field(a, "app_version")));
    render_list(io, output, &app_columns(), &apps, "No applications")?;
    if apps.is_empty() && !output.output.is_data() && output.output != OutputFormat::Value {
        writeln!(
            io.err,
            "(`roost app upload FILE.tgz` uploads one; `roost app package DIR` builds one)"
        )?;
    }
    Ok(())
}

/// The columns of `roost app list`: Name, Version, Status, Progress,
/// Active; wide shows the whole progress text and adds the manifest.
pub fn app_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Name", "name"),
        Column::key("Version", "app_version"),
        Column::key("Status", "status"),
        Column::key("Progress", "progress").long(),
        Column::key("Active", "active"),
        Column::key("Manifest", "manifest_name").wide(),
    ]
}

fn show(args: &AppOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = app_path(&args.name)?;
    let api = &connect(env)?;
    let app = api
        .get(&path, &Query::new())
        .map_err(not_found(&args.name))?;
    render_detail(io, &args.output, &app, &detail_rows(&app, APP_SHOW_FIELDS))
}

/// Checks an upload's file as `system application-upload` does: it must
/// exist and end in `.tgz` or `.tar.gz`. Returns its absolute path.
pub fn check_package_file(file: &Path) -> Result<PathBuf, Error> {
    let absolute = std::path::absolute(file)
        .map_err(|e| Error::usage(format!("invalid path {}: {e}", file.display())))?;
    let name = absolute.to_string_lossy();
    if !(name.ends_with(".tgz") || name.ends_with(".tar.gz")) {
        return Err(Error::usage(format!(
            "{name} has an unrecognizable tar file extension; supported extensions are .tgz and .tar.gz"
        )));
    }
    Ok(absolute)
}

/// The start and end of an upload body around the base64 of the package:
/// `{"tarfile": …, "name": …, "app_version": …, "binary_data": "` and `"}`.
pub fn upload_frame(request: &AppUploadRequest) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut head = serde_json::to_vec(request)
        .map_err(|e| Error::failure(format!("cannot encode the upload request: {e}")))?;
    // A serialized struct always ends with its closing brace.
    if head.pop() != Some(b'}') {
        return Err(Error::failure("cannot encode the upload request"));
    }
    if head.len() > 1 {
        head.push(b',');
    }
    head.extend_from_slice(br#""binary_data":""#);
    Ok((head, br#""}"#.to_vec()))
}

/// The length of the base64 text of `n` bytes (with padding).
pub fn base64_len(n: u64) -> u64 {
    n.div_ceil(3) * 4
}

/// How many package bytes are encoded at a time (a multiple of 3).
const ENCODE_CHUNK: usize = 48 * 1024;

/// The body of `POST /v1/apps` as a reader: the frame's head, the package
/// base64-encoded chunk by chunk as it is read from the file, the frame's
/// tail. Nothing but one chunk is ever in memory; the total length is
/// known up front ([`UploadBody::len`]), so the request has a
/// Content-Length.
pub struct UploadBody<R> {
    source: R,
    /// Bytes the body should encode; a file that changes size is an error.
    expected: u64,
    read: u64,
    tail: Option<Vec<u8>>,
    /// Encoded bytes not yet handed out.
    pending: Vec<u8>,
    at: usize,
    /// Up to two package bytes read but not yet encoded.
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> UploadBody<R> {
    /// A body for `size` bytes of `source` framed by `head` and `tail`.
    pub fn new(source: R, size: u64, head: Vec<u8>, tail: Vec<u8>) -> Self {
        Self {
            source,
            expected: size,
            read: 0,
            tail: Some(tail),
            pending: head,
            at: 0,
            carry: Vec::new(),
            eof: false,
        }
    }

    /// The exact length of the whole body.
    pub fn len(head: &[u8], size: u64, tail: &[u8]) -> u64 {
        head.len() as u64 + base64_len(size) + tail.len() as u64
    }

    /// Fills `pending` with the next encoded bytes; false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        self.pending.clear();
        self.at = 0;
        while !self.eof && self.pending.is_empty() {
            let mut chunk = std::mem::take(&mut self.carry);
            let start = chunk.len();
            chunk.resize(ENCODE_CHUNK, 0);
            let n = self.source.read(&mut chunk[start..])?;
            chunk.truncate(start + n);
            self.read += n as u64;
            if self.read > self.expected {
                return Err(changed());
            }
            if n == 0 {
                self.eof = true;
                if self.read != self.expected {
                    return Err(changed());
                }
                self.pending = roost_api::apps::base64::encode(&chunk).into_bytes();
            } else {
                let whole = chunk.len() - chunk.len() % 3;
                self.carry = chunk.split_off(whole);
                self.pending = roost_api::apps::base64::encode(&chunk).into_bytes();
            }
        }
        if self.pending.is_empty()
            && let Some(tail) = self.tail.take()
        {
            self.pending = tail;
        }
        Ok(!self.pending.is_empty())
    }
}

fn changed() -> io::Error {
    io::Error::other("the package file changed while it was being uploaded")
}

impl<R: Read> Read for UploadBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= self.pending.len() && !self.refill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn upload(args: &AppUploadArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let absolute = check_package_file(&args.file)?;
    let file = File::open(&absolute).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::usage(format!("tar file {} does not exist", absolute.display()))
        } else {
            Error::failure(format!("cannot read {}: {e}", absolute.display()))
        }
    })?;
    let size = file
        .metadata()
        .map_err(|e| Error::failure(format!("cannot read {}: {e}", absolute.display())))?
        .len();
    let request = AppUploadRequest {
        tarfile: absolute.to_string_lossy().into_owned(),
        name: args.name.clone(),
        app_version: args.app_version.clone(),
        images: None,
    };
    let (head, tail) = upload_frame(&request)?;
    let length = UploadBody::<File>::len(&head, size, &tail);
    let body = reqwest::blocking::Body::sized(UploadBody::new(file, size, head, tail), length);
    let api = &connect(env)?;
    let reply = api
        .send_stream(Method::POST, "/v1/apps", body, "application/json")
        .map_err(|e| {
            if e.http_status().is_some() {
                e
            } else {
                // The server may close the connection on a package past its
                // size limit before it has read the whole body.
                e.map_message(|m| {
                    format!(
                        "{m} (while sending {}, {size} bytes; a server refuses packages past its upload limit, 1 GiB by default)",
                        absolute.display()
                    )
                })
            }
        })?;
    after_operation(api, reply, Goal::Upload, args.wait, &args.output, io)
}

fn update(args: &AppUpdateArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let absolute = check_package_file(&args.file)?;
    let request = AppUpdateRequest {
        tarfile: absolute.to_string_lossy().into_owned(),
        name: args.name.clone(),
        app_version: args.app_version.clone(),
        reuse_user_overrides: None,
        reuse_attributes: None,
    };
    let api = &connect(env)?;
    let reply = api.post("/v1/apps/update", &request)?;
    let version = parse_app(&reply)?.app_version;
    after_operation(
        api,
        reply,
        Goal::Update { version },
        args.wait,
        &args.output,
        io,
    )
}

fn abort(name: &str, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = action_path(name, "abort", None)?;
    let api = &connect(env)?;
    api.patch(&path, &AppPatch::default())
        .map_err(not_found(name))?;
    writeln!(
        io.out,
        "Abort of {name} accepted; the operation in progress stops shortly"
    )?;
    writeln!(io.err, "(`roost app show {name}` shows where it ended)")?;
    Ok(())
}

fn delete(args: &AppDeleteArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let query = Query::new().param("force", Some(if args.force { "True" } else { "False" }));
    let path = format!("{}?{}", app_path(&args.name)?, query.encode());
    let api = &connect(env)?;
    api.delete(&path).map_err(not_found(&args.name))?;
    writeln!(io.out, "Deleted application {}", args.name)?;
    Ok(())
}

/// What an operation waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    Upload,
    Apply,
    Remove,
    /// The new version's row applied.
    Update {
        version: String,
    },
}

/// Where an operation stands, judged from the application's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Running,
    Succeeded,
    Failed,
}

impl Goal {
    /// The operation's name in messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Goal::Upload => "upload",
            Goal::Apply => "apply",
            Goal::Remove => "remove",
            Goal::Update { .. } => "update",
        }
    }

    /// The state that ends the operation well.
    pub fn target(&self) -> &'static str {
        match self {
            Goal::Upload | Goal::Remove => "uploaded",
            Goal::Apply | Goal::Update { .. } => "applied",
        }
    }

    /// Whether the operation ended, and how: upload ends in `uploaded` or
    /// `upload-failed`, apply and update in `applied` or `apply-failed`,
    /// remove in `uploaded` or `remove-failed`. An update is over only once
    /// the new version is the one shown.
    pub fn verdict(&self, app: &App) -> Verdict {
        if let Goal::Update { version } = self
            && &app.app_version != version
        {
            return Verdict::Running;
        }
        let failed = match self {
            Goal::Upload => "upload-failed",
            Goal::Apply | Goal::Update { .. } => "apply-failed",
            Goal::Remove => "remove-failed",
        };
        if app.status == self.target() {
            Verdict::Succeeded
        } else if app.status == failed {
            Verdict::Failed
        } else {
            Verdict::Running
        }
    }

    /// What to do next once the operation succeeded.
    fn next_step(&self, name: &str) -> String {
        match self {
            Goal::Upload => format!("(next: `roost app apply {name} --wait`)"),
            Goal::Apply | Goal::Update { .. } => format!(
                "(`roost app status {name}` shows its replicas, `roost app logs {name}` their output)"
            ),
            Goal::Remove => {
                format!("(`roost app delete {name}` deletes it from the server)")
            }
        }
    }

    /// How to follow the operation when not waiting.
    fn follow_hint(&self, name: &str) -> String {
        match self {
            Goal::Upload => format!(
                "(the server checks and stores it in the background: `roost app show {name}` shows when it is uploaded; then `roost app apply {name}`)"
            ),
            _ => format!(
                "(`roost app show {name}` follows it, or add --wait; `roost app abort {name}` stops it)"
            ),
        }
    }
}

/// The message of a failed operation, naming the reason (the progress text).
pub fn failure_message(goal: &Goal, app: &App) -> String {
    let reason = app
        .progress
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("no reason given");
    format!(
        "{} of {} {} failed ({}): {reason}",
        goal.verb(),
        app.name,
        app.app_version,
        app.status
    )
}

/// The message when `--wait` gives up.
pub fn timeout_message(goal: &Goal, app: &App, waited: Duration) -> String {
    format!(
        "gave up after {} s waiting for the {} of {} to end; it is still {} (`roost app show {}` shows where it is, `roost app abort {}` stops it; --wait-timeout waits longer)",
        waited.as_secs(),
        goal.verb(),
        app.name,
        match app.progress.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => format!("{} ({p})", app.status),
            _ => app.status.clone(),
        },
        app.name,
        app.name
    )
}

/// Polls the application until `goal` is reached or failed, or
/// `--wait-timeout` passes; returns the last reply.
fn wait_for(
    api: &Api,
    name: &str,
    goal: &Goal,
    first: Value,
    wait: &WaitArgs,
    io: &mut Io<'_>,
) -> Result<Value, Error> {
    let path = app_path(name)?;
    crate::wait::wait_for(
        io,
        wait,
        first,
        || {
            api.get(&path, &Query::new()).map_err(|e| {
                e.on_status(404, || {
                    format!(
                        "{name} is gone: the server deleted it during the {}",
                        goal.verb()
                    )
                })
            })
        },
        |reply| {
            let app = parse_app(reply)?;
            Ok(Look {
                subject: format!("{} {}", app.name, app.app_version),
                state: app_state(&app),
                verdict: match goal.verdict(&app) {
                    Verdict::Running => crate::wait::Verdict::Running,
                    Verdict::Succeeded => crate::wait::Verdict::Done,
                    Verdict::Failed => crate::wait::Verdict::Failed(failure_message(goal, &app)),
                },
            })
        },
        |reply, _, waited| match parse_app(reply) {
            Ok(app) => Error::failure(timeout_message(goal, &app, waited)),
            Err(e) => e,
        },
    )
}

/// Prints the reply of an operation, or waits for its end first.
fn after_operation(
    api: &Api,
    reply: Value,
    goal: Goal,
    wait: WaitArgs,
    output: &OutputArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let app = parse_app(&reply)?;
    let reply = if wait.wait {
        wait_for(api, &app.name, &goal, reply, &wait, io)?
    } else {
        reply
    };
    let app = parse_app(&reply)?;
    match output.output {
        format if format.is_data() => print_data(io, output, &reply),
        _ => {
            writeln!(io.out, "{}", state_line(&app))?;
            let hint = if wait.wait {
                goal.next_step(&app.name)
            } else {
                goal.follow_hint(&app.name)
            };
            writeln!(io.err, "{hint}")?;
            Ok(())
        }
    }
}

/// CPUs as a compact list, e.g. `2-3,5`.
pub fn cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The table of `roost app status`: Replica, Host, State, Ready, Restarts,
/// Message, Exclusive CPUs.
pub fn replica_table(replicas: &[AppReplica]) -> Table {
    let mut table = new_table(&[
        "Replica",
        "Host",
        "State",
        "Ready",
        "Restarts",
        "Message",
        "Exclusive CPUs",
    ]);
    for r in replicas {
        let mut state = r.state.clone();
        if let Some(code) = r.exit_code {
            state.push_str(&format!(" (exit {code})"));
        }
        if r.alarmed {
            state.push_str(", alarmed");
        }
        table.add_row(vec![
            r.id.clone(),
            r.host.clone().unwrap_or_else(|| "-".into()),
            state,
            if r.ready { "yes" } else { "no" }.to_string(),
            r.restarts.to_string(),
            short_text(r.message.as_deref().unwrap_or("")),
            cpu_list(&r.exclusive_cpus),
        ]);
    }
    table
}

fn status(args: &AppOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("{}/replicas", app_path(&args.name)?);
    let api = &connect(env)?;
    let reply = api
        .get(&path, &Query::new())
        .map_err(not_found(&args.name))?;
    if args.output.output.is_data() {
        return print_data(io, &args.output, &reply);
    }
    let list: AppReplicaList = serde_json::from_value(reply)
        .map_err(|e| Error::failure(format!("the server's reply is not a replica list: {e}")))?;
    writeln!(io.out, "{}: {}", list.app, list.status)?;
    if list.replicas.is_empty() {
        writeln!(io.out, "No replicas")?;
        if list.status == "uploaded" {
            writeln!(io.err, "(`roost app apply {}` starts them)", list.app)?;
        }
        return Ok(());
    }
    print_table(io, &args.output, &replica_table(&list.replicas))
}

/// The query of `roost app logs`.
pub fn logs_query(args: &AppLogsArgs) -> Query {
    let tail = args.tail.map(|n| n.to_string());
    Query::new()
        .param("replica", args.replica.as_deref())
        .param("container", args.container.as_deref())
        .param("tail", tail.as_deref())
        .param("follow", args.follow.then_some("true"))
}

fn logs(args: &AppLogsArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("{}/logs", app_path(&args.name)?);
    let api = &connect(env)?;
    // A 404 may be about the replica or the container: the server's
    // message says which.
    let mut reply = api.get_stream(&path, &logs_query(args))?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match reply.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::failure(format!(
                    "lost the connection to {}: {e}",
                    api.base()
                )));
            }
        };
        io.out.write_all(&buf[..n])?;
        // Followed output shows as it comes, not when a buffer fills.
        io.out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: AppCommand,
    }

    fn parse(args: &[&str]) -> Result<AppCommand, clap::Error> {
        let mut argv = vec!["app"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.cmd)
    }

    fn app(status: &str, progress: Option<&str>) -> App {
        App {
            name: "hello".into(),
            app_version: "1.0-1".into(),
            manifest_name: "hello-manifest".into(),
            manifest_file: "manifests".into(),
            status: status.into(),
            progress: progress.map(str::to_string),
            active: false,
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn every_verb_parses_with_its_flags() {
        for argv in [
            &[
                "upload",
                "a.tgz",
                "--name",
                "a",
                "--app-version",
                "1",
                "--wait",
            ][..],
            &[
                "upload",
                "a.tgz",
                "-w",
                "--wait-timeout",
                "30",
                "-o",
                "json",
            ],
            &["list", "-o", "json"],
            &["show", "a"],
            &["apply", "a", "--wait"],
            &["remove", "a", "--force", "--wait", "--wait-timeout", "5"],
            &["abort", "a"],
            &["delete", "a", "-f"],
            &["update", "/x/a.tgz", "--wait"],
            &["status", "a", "-o", "json"],
            &[
                "logs",
                "a",
                "--replica",
                "1",
                "--container",
                "c",
                "--tail",
                "5",
                "--follow",
            ],
            &["package", "dir", "-o", "x.tgz"],
            &[
                "image",
                "import",
                "dir",
                "--name",
                "roost.local/x:1",
                "--entrypoint",
                "/bin/sh",
                "--cmd",
                "-c",
                "--cmd",
                "echo hi",
                "--env",
                "A=1",
                "-o",
                "x.tar",
            ],
            &["image", "export", "x.tar", "dir"],
        ] {
            parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        // --wait-timeout means nothing without --wait.
        assert!(parse(&["apply", "a", "--wait-timeout", "5"]).is_err());
        assert!(parse(&["abort", "a", "--force"]).is_err());
        assert!(parse(&["logs", "a", "--tail", "x"]).is_err());
        assert!(
            parse(&["image", "import", "dir"]).is_err(),
            "--name is required"
        );
    }

    #[test]
    fn the_default_timeout_is_ten_minutes() {
        let AppCommand::Apply(args) = parse(&["apply", "a", "--wait"]).unwrap() else {
            panic!("not apply")
        };
        assert_eq!(args.wait.wait_timeout, 600);
    }

    #[test]
    fn directives_and_force_go_in_the_query_as_system_sends_them() {
        assert_eq!(
            action_path("hello", "apply", None).unwrap(),
            "/v1/apps/hello?directive=apply"
        );
        assert_eq!(
            action_path("hello", "remove", Some(true)).unwrap(),
            "/v1/apps/hello?directive=remove&force=True"
        );
        assert_eq!(
            action_path("a b", "remove", Some(false)).unwrap(),
            "/v1/apps/a%20b?directive=remove&force=False"
        );
        assert_eq!(
            serde_json::to_value(apply_body()).unwrap(),
            serde_json::json!({"values": {"client_side": false}})
        );
        assert_eq!(
            serde_json::to_value(AppPatch::default()).unwrap(),
            serde_json::json!({"values": {}})
        );
        assert!(app_path("..").is_err());
    }

    #[test]
    fn package_files_need_a_tar_extension_and_become_absolute() {
        let p = check_package_file(Path::new("pkg/hello.tgz")).unwrap();
        assert!(p.is_absolute() && p.ends_with("pkg/hello.tgz"));
        assert!(check_package_file(Path::new("/x/a.tar.gz")).is_ok());
        let err = check_package_file(Path::new("/x/a.zip")).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(
            err.message().contains(".tgz and .tar.gz"),
            "{}",
            err.message()
        );
    }

    /// The streamed body is exactly the JSON the server's decoder reads,
    /// for every length modulo 3 and across chunk boundaries.
    #[test]
    fn the_streamed_upload_body_is_the_json_of_the_request_with_base64_data() {
        let request = AppUploadRequest {
            tarfile: "/root/hello-1.0-1.tgz".into(),
            name: Some("hello".into()),
            app_version: None,
            images: None,
        };
        for size in [
            0usize,
            1,
            2,
            3,
            4,
            ENCODE_CHUNK - 1,
            ENCODE_CHUNK + 1,
            3 * ENCODE_CHUNK + 2,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let (head, tail) = upload_frame(&request).unwrap();
            let length = UploadBody::<&[u8]>::len(&head, size as u64, &tail);
            // A reader that hands out odd-sized pieces, as files and pipes may.
            let source = Trickle(&data, 1000);
            let mut body = Vec::new();
            UploadBody::new(source, size as u64, head, tail)
                .read_to_end(&mut body)
                .unwrap();
            assert_eq!(body.len() as u64, length, "size {size}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["tarfile"], "/root/hello-1.0-1.tgz");
            assert_eq!(v["name"], "hello");
            assert!(v.get("app_version").is_none());
            let decoded =
                roost_api::apps::base64::decode(v["binary_data"].as_str().unwrap().as_bytes())
                    .unwrap();
            assert_eq!(decoded, data, "size {size}");
        }
    }

    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_file_that_changes_size_during_the_upload_is_an_error() {
        let data = [1u8; 10];
        let (head, tail) = upload_frame(&AppUploadRequest::default()).unwrap();
        let mut body = Vec::new();
        let err = UploadBody::new(&data[..], 11, head.clone(), tail.clone())
            .read_to_end(&mut body)
            .unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        let err = UploadBody::new(&data[..], 9, head, tail)
            .read_to_end(&mut body)
            .unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
    }

    #[test]
    fn verdicts_follow_starlingx_final_states() {
        assert_eq!(
            Goal::Upload.verdict(&app("uploading", None)),
            Verdict::Running
        );
        assert_eq!(
            Goal::Upload.verdict(&app("uploaded", None)),
            Verdict::Succeeded
        );
        assert_eq!(
            Goal::Upload.verdict(&app("upload-failed", None)),
            Verdict::Failed
        );
        assert_eq!(
            Goal::Apply.verdict(&app("applying", None)),
            Verdict::Running
        );
        assert_eq!(
            Goal::Apply.verdict(&app("applied", None)),
            Verdict::Succeeded
        );
        assert_eq!(
            Goal::Apply.verdict(&app("apply-failed", None)),
            Verdict::Failed
        );
        assert_eq!(
            Goal::Remove.verdict(&app("removing", None)),
            Verdict::Running
        );
        assert_eq!(
            Goal::Remove.verdict(&app("uploaded", None)),
            Verdict::Succeeded
        );
        assert_eq!(
            Goal::Remove.verdict(&app("remove-failed", None)),
            Verdict::Failed
        );
        let update = Goal::Update {
            version: "1.0-1".into(),
        };
        assert_eq!(update.verdict(&app("updating", None)), Verdict::Running);
        assert_eq!(update.verdict(&app("applied", None)), Verdict::Succeeded);
        assert_eq!(update.verdict(&app("apply-failed", None)), Verdict::Failed);
        let other = Goal::Update {
            version: "2.0".into(),
        };
        assert_eq!(
            other.verdict(&app("applied", None)),
            Verdict::Running,
            "the old version still shown is not the end of the update"
        );
    }

    #[test]
    fn failures_and_timeouts_say_why_and_what_to_do() {
        let failed = app(
            "apply-failed",
            Some(
                "no host has room for web: operation aborted, check system inventory logs for details",
            ),
        );
        assert_eq!(
            failure_message(&Goal::Apply, &failed),
            "apply of hello 1.0-1 failed (apply-failed): no host has room for web: operation aborted, check system inventory logs for details"
        );
        assert_eq!(
            failure_message(&Goal::Upload, &app("upload-failed", None)),
            "upload of hello 1.0-1 failed (upload-failed): no reason given"
        );
        let slow = app("applying", Some("applying application manifest"));
        assert_eq!(
            timeout_message(&Goal::Apply, &slow, Duration::from_secs(600)),
            "gave up after 600 s waiting for the apply of hello to end; it is still applying (applying application manifest) (`roost app show hello` shows where it is, `roost app abort hello` stops it; --wait-timeout waits longer)"
        );
    }

    #[test]
    fn state_lines_show_the_progress_when_there_is_one() {
        assert_eq!(
            state_line(&app("applying", Some("applying application manifest"))),
            "hello 1.0-1: applying (applying application manifest)"
        );
        assert_eq!(
            state_line(&app("uploaded", Some(" "))),
            "hello 1.0-1: uploaded"
        );
    }

    #[test]
    fn cpu_lists_are_compact_ranges() {
        assert_eq!(cpu_list(&[]), "");
        assert_eq!(cpu_list(&[5, 2, 3]), "2-3,5");
        assert_eq!(cpu_list(&[1, 2, 3, 4, 8, 10, 11]), "1-4,8,10-11");
    }

    #[test]
    fn the_status_table_shows_each_replica_where_and_how_it_runs() {
        let replicas = vec![
            AppReplica {
                id: "hello/web/0".into(),
                workload: "web".into(),
                kind: "Deployment".into(),
                host: Some("worker-1".into()),
                state: "running".into(),
                ready: true,
                restarts: 2,
                exit_code: None,
                message: None,
                exclusive_cpus: vec![4, 5],
                alarmed: false,
            },
            AppReplica {
                id: "hello/web/1".into(),
                workload: "web".into(),
                kind: "Deployment".into(),
                host: None,
                state: "pending".into(),
                ready: false,
                restarts: 0,
                exit_code: Some(137),
                message: Some("no host has 2 free isolated CPUs".into()),
                exclusive_cpus: vec![],
                alarmed: true,
            },
        ];
        let text = replica_table(&replicas).force_no_tty().to_string();
        for expected in [
            "Replica",
            "Exclusive CPUs",
            "hello/web/0",
            "worker-1",
            "running",
            "yes",
            "4-5",
            "pending (exit 137), alarmed",
            "no host has 2 free isolated CPUs",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
    }

    #[test]
    fn the_logs_query_carries_only_what_was_given() {
        let AppCommand::Logs(args) = parse(&["logs", "a"]).unwrap() else {
            panic!("not logs")
        };
        assert_eq!(logs_query(&args).encode(), "");
        let AppCommand::Logs(args) = parse(&[
            "logs",
            "a",
            "-r",
            "hello/web/1",
            "-c",
            "web",
            "-t",
            "20",
            "-f",
        ])
        .unwrap() else {
            panic!("not logs")
        };
        assert_eq!(
            logs_query(&args).encode(),
            "replica=hello%2Fweb%2F1&container=web&tail=20&follow=true"
        );
    }
}

//! The `roost` client verbs: `login`, `alarm …`, `event …`, `host …`,
//! `app …`, `heartbeat …`, `user …` (Keystone's users and roles),
//! `audit …`, and the Distributed Cloud verbs `subcloud …`,
//! `subcloud-group …` and `dc …`.
//!
//! This crate is a library that the `roost` binary embeds with
//! `#[command(flatten)] Client(roost_cli::ClientCommand)` and runs with
//! [`run`]. The verbs speak StarlingX's FM REST API (`/v1/alarms`,
//! `/v1/event_log`, `/v1/event_suppression`), its sysinv API (`/v1/ihosts`, `/v1/apps`,
//! `/v1/service_parameter`), Keystone v3 (`/v3/auth/tokens`) and, on a
//! system controller, dcmanager's API (`/v1.0/subclouds`,
//! `/v1.0/subcloud-groups`, `/v1.0/alarms`) at one base URL, over plain
//! HTTP.
//!
//! * Credentials: `roost login` stores a context (server, user, token,
//!   expiry, and an application credential to renew the token) in
//!   `$ROOST_CONFIG_DIR/contexts.json`, else
//!   `$XDG_CONFIG_HOME/roost/contexts.json`, else
//!   `$HOME/.config/roost/contexts.json` (directory 0700, file 0600).
//!   `--context NAME` or `ROOST_CONTEXT` picks a context for one command;
//!   `ROOST_URL` and `ROOST_TOKEN` override the stored values one by one.
//! * Output: list and show verbs take `-o table|wide|json|yaml|value`,
//!   `-c/--column`, `--no-headers` and `--nowrap` (see the `output` module).
//! * Errors: one line on stderr, `roost: <message>`; exit code 1 for server
//!   and user errors, 2 for usage and configuration errors.
//!
//! All HTTP goes through the `client` module (request building, the token
//! header, the JSON error envelopes and dcmanager's HTML error pages), and nothing else touches the process
//! environment or standard streams but [`run`], so the verbs are testable
//! against a fake server.

#![forbid(unsafe_code)]

mod alarm;
mod app;
mod app_credential;
mod app_local;
#[cfg(test)]
mod app_tests;
mod audit;
mod certificate;
mod client;
mod completion;
mod context;
#[cfg(test)]
mod context_tests;
mod credentials;
mod dc;
mod deploy;
mod destination;
mod error;
mod event;
mod heartbeat;
mod host;
mod host_attributes;
mod login;
mod output;
#[cfg(test)]
mod output_tests;
mod query;
mod release;
mod strategy;
mod style;
#[cfg(test)]
mod style_tests;
mod subcloud;
mod subcloud_group;
#[cfg(test)]
mod testutil;
mod user;
#[cfg(test)]
mod verb_tests;
mod wait;
#[cfg(test)]
mod wait_tests;

use std::io::{self, BufRead, IsTerminal, Write};

pub use alarm::{
    AlarmCommand, AlarmListArgs, AlarmShowArgs, ClearArgs, SummaryArgs, SuppressArgs,
    UnsuppressArgs,
};
pub use app::{
    AppApplyArgs, AppArg, AppCommand, AppDeleteArgs, AppListArgs, AppLogsArgs, AppOutputArgs,
    AppRemoveArgs, AppUpdateArgs, AppUploadArgs,
};
pub use app_credential::AppCredentialCommand;
pub use app_local::{ImageCommand, ImageExportArgs, ImageImportArgs, PackageArgs};
pub use audit::{AuditCommand, AuditListArgs, AuditVerifyArgs};
pub use certificate::CertificateCommand;
pub use completion::{CompletionArgs, CompletionShell, print_completion, write_completion};
pub use context::{ContextCommand, LogoutArgs, TokenArgs};
pub use dc::{DcAlarmsArgs, DcCommand};
pub use deploy::{CreateArgs, DeployCommand, ShowArgs, StrategyCommand, StrategyShowArgs};
pub use event::{EventCommand, EventListArgs, EventShowArgs};
pub use heartbeat::{HeartbeatCommand, HeartbeatSetArgs, HeartbeatShowArgs};
pub use host::{
    BmcArgs, HostAddArgs, HostArg, HostCommand, HostForceArgs, HostListArgs, HostOutputArgs,
};
pub use login::LoginArgs;
pub use output::{OutputArgs, OutputFormat};
pub use subcloud::{
    SubcloudAddArgs, SubcloudArg, SubcloudCommand, SubcloudListArgs, SubcloudOutputArgs,
    SubcloudUpdateArgs,
};
pub use subcloud_group::{
    GroupAddArgs, GroupArg, GroupListArgs, GroupOutputArgs, GroupSettings, GroupUpdateArgs,
    SubcloudGroupCommand,
};
pub use user::{
    UserArg, UserCommand, UserCreateArgs, UserListArgs, UserPasswdArgs, UserRoleArgs,
    UserRoleCommand, UserShowArgs,
};
pub use wait::{WaitArgs, WatchArgs};

use client::{Api, normalize_url};
use credentials::{Env, resolve_target};
use error::Error;

/// The client verbs of `roost`, with the flags every verb takes
/// (`--timeout`).
///
/// It flattens into a `clap::Subcommand` enum like a derived one; the
/// global flags are added to each client verb (and inherited by the verbs
/// below it), so they can be typed anywhere after the verb's name
/// (`roost --timeout 5 alarm list` is not accepted, since the binary's
/// other commands do not take them).
#[derive(Debug)]
pub struct ClientCommand {
    /// The verb to run.
    pub verb: Verb,
    /// `--timeout SECS`: the time limit of each ordinary request.
    pub timeout: Option<std::time::Duration>,
}

/// The id of the `--timeout` flag in clap's matches.
const TIMEOUT_ARG: &str = "roost_request_timeout";

/// The `--timeout` flag, global to the verb it is added to.
fn timeout_arg() -> clap::Arg {
    clap::Arg::new(TIMEOUT_ARG)
        .long("timeout")
        .value_name("SECS")
        .global(true)
        .value_parser(client::parse_seconds)
        .help(
            "Give up on a request the server has not answered after SECS seconds \
             [default: $ROOST_TIMEOUT, else 30]",
        )
}

/// Adds the global flags to every client verb `cmd` has.
fn with_global_flags(mut cmd: clap::Command) -> clap::Command {
    use clap::Subcommand;
    let names: Vec<String> = Verb::augment_subcommands(clap::Command::new("roost"))
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |c| c.arg(timeout_arg()));
    }
    cmd
}

/// The value of `--timeout`, wherever it was typed below `matches`.
fn timeout_of(matches: &clap::ArgMatches) -> Option<std::time::Duration> {
    let mut found = None;
    let mut level = matches;
    while let Some((_, sub)) = level.subcommand() {
        if let Ok(Some(t)) = sub.try_get_one::<std::time::Duration>(TIMEOUT_ARG) {
            found = Some(*t);
        }
        level = sub;
    }
    found
}

impl clap::FromArgMatches for ClientCommand {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            verb: Verb::from_arg_matches(matches)?,
            timeout: timeout_of(matches),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.verb.update_from_arg_matches(matches)?;
        if let Some(t) = timeout_of(matches) {
            self.timeout = Some(t);
        }
        Ok(())
    }
}

impl clap::Subcommand for ClientCommand {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        with_global_flags(Verb::augment_subcommands(cmd))
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        with_global_flags(Verb::augment_subcommands_for_update(cmd))
    }

    fn has_subcommand(name: &str) -> bool {
        Verb::has_subcommand(name)
    }
}

/// The flags every client verb takes (the binary flattens them into its
/// top level, as global flags).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct GlobalArgs {
    /// Use this context (a server logged in to) for this command instead of the current one; also ROOST_CONTEXT
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
}

/// The client verbs of `roost`.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// Log in to a Roost server and remember the token as a context (--context NAME; default: the server's host-port)
    Login(LoginArgs),
    /// Log out: delete the context's application credential on the server and forget its token
    Logout(LogoutArgs),
    /// Contexts: the servers logged in to, and which one is current
    #[command(subcommand)]
    Context(ContextCommand),
    /// Print the current context's token (renewed first if it expired), for scripts: curl -H "X-Auth-Token: $(roost token)"
    Token(TokenArgs),
    /// Identity: application credentials, long-lived secrets that get tokens without a password (Prometheus, scripts)
    #[command(subcommand)]
    AppCredential(AppCredentialCommand),
    /// Fault management: active alarms
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Fault management: the event log
    #[command(subcommand)]
    Event(EventCommand),
    /// Hosts: inventory, lock and unlock, power, BMC, join tokens
    #[command(subcommand)]
    Host(HostCommand),
    /// Applications: package, upload, apply and watch containerized workloads
    #[command(subcommand)]
    App(AppCommand),
    /// Maintenance: heartbeat and recovery settings
    #[command(subcommand)]
    Heartbeat(HeartbeatCommand),
    /// Distributed Cloud: the subclouds of this system controller
    #[command(subcommand)]
    Subcloud(SubcloudCommand),
    /// Distributed Cloud: subcloud groups and their update settings
    #[command(subcommand)]
    SubcloudGroup(SubcloudGroupCommand),
    /// Distributed Cloud: status across all subclouds
    #[command(subcommand)]
    Dc(DcCommand),
    /// The audit log: who changed what, and a check of its hash chain
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Identity: users and their roles (admin, member, reader)
    #[command(subcommand)]
    User(UserCommand),
    /// The certificates of the cloud: list them, install the API's, rotate the cloud CA
    #[command(subcommand)]
    Certificate(CertificateCommand),
    /// Software releases: make a signing key, build and verify a signed release file
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Software deploys: the deploy in progress, and the site strategy that deploys a release to every host
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Distributed Cloud: roll a release out to the subclouds (canary, approval, soak, rollback)
    #[command(subcommand)]
    Strategy(strategy::StrategyCommand),
    /// Notifications: send alarms and logs to webhooks, SNMP managers and syslog collectors
    #[command(subcommand)]
    Destination(destination::DestinationCommand),
}

/// Runs a client verb and returns the process exit code: 0 on success; on
/// failure one line `roost: <message>` on stderr and 1 (server or user
/// error) or 2 (usage or configuration error).
///
/// Uses reqwest's blocking client, so it must not be called from inside an
/// async runtime (call it before starting one, or from `spawn_blocking`).
pub fn run(cmd: ClientCommand) -> i32 {
    run_with(cmd, &GlobalArgs::default())
}

/// [`run`] with the global flags (`--context`).
pub fn run_with(cmd: ClientCommand, global: &GlobalArgs) -> i32 {
    let mut env = Env::from_process();
    if let Some(name) = &global.context {
        env.context = Some(name.clone());
    }
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let err_terminal = io::stderr().is_terminal();
    // Decided once: tables on a terminal use box-drawing characters, piped
    // ones the ASCII borders of OpenStack's and StarlingX's clients.
    let out_terminal = io::stdout().is_terminal();
    let mut input = stdin.lock();
    let mut out = io::stdout().lock();
    let mut err = io::stderr();
    let result = {
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
            interactive,
            err_terminal,
            out_terminal,
        };
        execute(cmd, &env, &mut io)
    };
    let result = result.and_then(|()| out.flush().map_err(Error::from));
    match result {
        Ok(()) => 0,
        Err(Error::ClosedPipe) => Error::ClosedPipe.code(),
        Err(e) => {
            let _ = out.flush();
            let _ = writeln!(err, "roost: {}", e.message());
            e.code()
        }
    }
}

/// The standard streams a verb uses, injectable for tests.
pub(crate) struct Io<'a> {
    /// Results (tables, JSON, confirmations).
    pub out: &'a mut dyn Write,
    /// Prompts and hints.
    pub err: &'a mut dyn Write,
    /// Answers to `roost login`'s questions and `--password-stdin`.
    pub input: &'a mut dyn BufRead,
    /// Whether `input` is a terminal (prompts are shown, the password is
    /// read without echo).
    pub interactive: bool,
    /// Whether `err` is a terminal (the progress of `--wait` is redrawn on
    /// one line).
    pub err_terminal: bool,
    /// Whether `out` is a terminal (tables use box-drawing characters and
    /// wrap to its width; piped, they use ASCII borders).
    pub out_terminal: bool,
}

std::thread_local! {
    /// `--timeout` of the verb running on this thread, for [`connect`].
    static REQUEST_TIMEOUT: std::cell::Cell<Option<std::time::Duration>> =
        const { std::cell::Cell::new(None) };
}

/// Sets [`REQUEST_TIMEOUT`] for as long as it lives.
struct TimeoutScope(Option<std::time::Duration>);

impl TimeoutScope {
    fn enter(timeout: Option<std::time::Duration>) -> Self {
        Self(REQUEST_TIMEOUT.replace(timeout))
    }
}

impl Drop for TimeoutScope {
    fn drop(&mut self) {
        REQUEST_TIMEOUT.set(self.0);
    }
}

/// Runs a verb against the given environment and streams.
pub(crate) fn execute(cmd: ClientCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let _timeout = TimeoutScope::enter(cmd.timeout);
    run_verb(cmd.verb, env, io)
}

fn run_verb(verb: Verb, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match verb {
        Verb::Login(args) => login::login(&args, env, io),
        Verb::Logout(args) => context::logout(&args, env, io),
        Verb::Context(cmd) => context::run(cmd, env, io),
        Verb::Token(args) => context::token(&args, env, io),
        Verb::AppCredential(cmd) => app_credential::run(cmd, env, io),
        Verb::Alarm(cmd) => alarm::run(cmd, env, io),
        Verb::Event(cmd) => event::run(cmd, env, io),
        Verb::Host(cmd) => host::run(cmd, env, io),
        Verb::App(cmd) => app::run(cmd, env, io),
        Verb::Heartbeat(cmd) => heartbeat::run(cmd, env, io),
        Verb::Subcloud(cmd) => subcloud::run(cmd, env, io),
        Verb::SubcloudGroup(cmd) => subcloud_group::run(cmd, env, io),
        Verb::Dc(cmd) => dc::run(cmd, env, io),
        Verb::Audit(cmd) => audit::run(cmd, env, io),
        Verb::User(cmd) => user::run(cmd, env, io),
        Verb::Certificate(cmd) => certificate::run(cmd, env, io),
        Verb::Release(cmd) => release::run(cmd, io),
        Verb::Deploy(cmd) => deploy::run(cmd, env, io),
        Verb::Strategy(cmd) => strategy::run(cmd, env, io),
        Verb::Destination(cmd) => destination::run(cmd, env, io),
    }
}

/// A client for the logged-in server, from the environment or the
/// credentials file, whose requests give up after `--timeout`, else
/// `ROOST_TIMEOUT`, else 30 seconds.
pub(crate) fn connect(env: &Env) -> Result<Api, Error> {
    let target = resolve_target(env)?;
    let url = normalize_url(&target.url)?;
    let ca = match (&target.context, env.contexts_path()) {
        (Some(name), Some(path)) => match context::load(&path)?.get(name) {
            Some(ctx) => context::ca_for(env, ctx)?,
            None => credentials::trusted_ca(env, &url)?,
        },
        _ => credentials::trusted_ca(env, &url)?,
    };
    let timeout = request_timeout(env)?;
    let mut api = Api::with_timeout(&url, Some(&target.token), ca.as_deref(), timeout)?;
    if let Some(name) = &target.context {
        api.set_refused_message(format!(
            "the server {url} refused the token of context {name} (expired or revoked); {}",
            context::login_hint(name)
        ));
        if target.renewable
            && let Some(path) = env.contexts_path()
        {
            let env = env.clone();
            let name = name.clone();
            api.set_renewal(Box::new(move || context::refresh(&env, &path, &name)));
        }
    }
    Ok(api)
}

/// The time limit of an ordinary request: `--timeout`, else
/// `ROOST_TIMEOUT`, else [`client::DEFAULT_REQUEST_TIMEOUT`].
pub(crate) fn request_timeout(env: &Env) -> Result<std::time::Duration, Error> {
    if let Some(t) = REQUEST_TIMEOUT.get() {
        return Ok(t);
    }
    match env.vars.get("ROOST_TIMEOUT") {
        Some(text) => client::parse_seconds(text)
            .map_err(|e| e.map_message(|m| format!("ROOST_TIMEOUT: {m}"))),
        None => Ok(client::DEFAULT_REQUEST_TIMEOUT),
    }
}

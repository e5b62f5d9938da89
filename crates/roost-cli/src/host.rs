//! `roost host …`: the host inventory (sysinv's `/v1/ihosts`), host
//! actions, BMC settings and the join tokens agents enroll with.
//!
//! A HOST argument is sent as typed: the server resolves an integer ID, a
//! UUID or a hostname in `/v1/ihosts/{x}`.

use roost_api::fm::PatchOp;
use roost_api::sysinv::HostAdd;
use serde_json::Value;

use crate::client::{Api, path_segment};
use crate::credentials::Env;
use crate::error::Error;
use crate::login::read_line;
use crate::output::{
    Column, OutputArgs, cell, field, list_items, print_data, render_detail, render_list,
};
use crate::query::Query;
use crate::wait::{Look, Verdict, WaitArgs, WatchArgs};
use crate::{Io, connect};

/// The fields `roost host show` prints, in this order. The BMC password is
/// never among them (the server never returns it either).
pub const HOST_SHOW_FIELDS: &[&str] = &[
    "id",
    "uuid",
    "hostname",
    "personality",
    "subfunctions",
    "administrative",
    "operational",
    "availability",
    "task",
    "mgmt_ip",
    "mgmt_mac",
    "bm_type",
    "bm_ip",
    "bm_username",
    "uptime",
    "sw_version",
    "capabilities",
    "location",
    "mnfa_hold",
    "created_at",
    "updated_at",
];

/// The fields `roost host bmc` prints.
pub const HOST_BMC_FIELDS: &[&str] = &["hostname", "bm_type", "bm_ip", "bm_username"];

/// Keys that are never printed, whatever the server sends.
const SECRET_KEYS: &[&str] = &["bm_password"];

/// Host verbs.
#[derive(clap::Subcommand, Debug)]
pub enum HostCommand {
    /// List hosts, by ID
    List(HostListArgs),
    /// Show the main fields of one host
    Show(HostOutputArgs),
    /// Add a host (locked, offline until its agent enrolls) and print the
    /// join token and the command that enrolls its agent
    Add(HostAddArgs),
    /// Delete a host (it must be locked)
    Delete(HostArg),
    /// Lock a host: take it out of service (--wait: until it is locked and disabled)
    #[command(after_help = "Example:\n  roost host lock worker-1 --wait")]
    Lock(HostLockArgs),
    /// Unlock a host: put it back in service (--wait: until it is available)
    #[command(after_help = "Example:\n  roost host unlock worker-1 --wait --wait-timeout 900")]
    Unlock(HostLockArgs),
    /// Swap the active controller's role to the other controller
    Swact(HostForceArgs),
    /// Reboot a locked host (through its agent)
    Reboot(HostArg),
    /// Reset a locked host (through its BMC)
    Reset(HostArg),
    /// Power a locked host on (through its BMC)
    PowerOn(HostArg),
    /// Power a locked host off (through its BMC)
    PowerOff(HostArg),
    /// Make a new join token for a host and print the command that enrolls its agent
    JoinToken(HostOutputArgs),
    /// Show the fingerprint of a host's heartbeat key, or replace the key
    ///
    /// With --rotate the server makes a new key, hands it to the host's
    /// agent in the reply to its next report and switches pulses to it once
    /// the agent holds it; answers under either key count meanwhile, so no
    /// heartbeat is missed. Run it again without --rotate to see the
    /// rotation end (rotating: false, a new fingerprint).
    HeartbeatKey(HeartbeatKeyArgs),
    /// Revoke a host's agent: its token, client certificates and heartbeat key
    ///
    /// The agent's calls are refused at once, even with a certificate that
    /// has not expired, and the host is no longer sent heartbeats. It comes
    /// back only by enrolling again: make a new join token with `roost host
    /// join-token HOST`, remove the agent's data directory and start it with
    /// the token. Admin role.
    Revoke(HostArg),
    /// Show a host's TPM attestation, or accept the PCR values it quotes now
    ///
    /// A host whose agent enrolled with its TPM proves its measurements
    /// with a quote every [tpm] quote_interval_secs. A quote that does not
    /// verify, or changed PCR values, raise 500.110 and keep the host from
    /// being unlocked. After a legitimate change (a firmware update),
    /// --accept (admin role) makes the values it quotes now the expected
    /// ones and clears the alarm.
    Attestation(AttestationArgs),
    /// List a host's CPUs
    Cpus(HostOutputArgs),
    /// Change the function of a locked host's CPUs (platform, application-isolated)
    CpuModify(crate::host_attributes::CpuModifyArgs),
    /// A host's labels, which applications select hosts by
    #[command(subcommand)]
    Label(crate::host_attributes::LabelCommand),
    /// List a host's memory, per NUMA node
    Memory(HostOutputArgs),
    /// List a host's disks
    Disks(HostOutputArgs),
    /// List a host's Ethernet ports
    Ports(HostOutputArgs),
    /// Set or remove a host's board management controller (BMC)
    ///
    /// The password is never taken from the command line: give
    /// --password-stdin or --password-env VAR. Without either, the server
    /// keeps the password it has.
    Bmc(BmcArgs),
}

/// Flags of `roost host list`.
#[derive(clap::Args, Debug)]
pub struct HostListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: WatchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// One host.
#[derive(clap::Args, Debug)]
pub struct HostArg {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
}

/// One host and the output format.
#[derive(clap::Args, Debug)]
pub struct HostOutputArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost host heartbeat-key`.
#[derive(clap::Args, Debug)]
pub struct HeartbeatKeyArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Start a rotation of the key (admin role)
    #[arg(long)]
    pub rotate: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost host attestation`.
#[derive(clap::Args, Debug)]
pub struct AttestationArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Accept the PCR values the host quotes now (admin role)
    #[arg(long)]
    pub accept: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// The fields `roost host attestation` prints.
pub const ATTESTATION_FIELDS: &[&str] = &[
    "hostname",
    "status",
    "reason",
    "ak_fingerprint",
    "last_quote_at",
];

/// The fields `roost host heartbeat-key` prints.
pub const HEARTBEAT_KEY_FIELDS: &[&str] =
    &["hostname", "fingerprint", "next_fingerprint", "rotating"];

/// One host and `--force`.
#[derive(clap::Args, Debug)]
pub struct HostForceArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Force the action past the checks that would refuse it
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// One host, `--force` and `--wait`: `roost host lock` and `unlock`.
#[derive(clap::Args, Debug)]
pub struct HostLockArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Force the action past the checks that would refuse it
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
}

/// Flags of `roost host add`.
#[derive(clap::Args, Debug)]
pub struct HostAddArgs {
    /// Hostname of the new host, e.g. worker-1
    #[arg(value_name = "NAME")]
    pub hostname: String,
    /// What the host is
    #[arg(long, value_parser = ["controller", "worker", "storage", "edgeworker"])]
    pub personality: String,
    /// Management address of the host [default: the address its agent enrolls from]
    #[arg(long, value_name = "IP")]
    pub mgmt_ip: Option<std::net::IpAddr>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost host bmc`.
#[derive(clap::Args, Debug)]
pub struct BmcArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    /// BMC protocol; none removes the BMC
    #[arg(long = "type", value_name = "TYPE", value_parser = ["none", "redfish", "ipmi", "dynamic"])]
    pub bm_type: String,
    /// Address of the BMC, IP[:PORT] (required unless --type none)
    #[arg(long, value_name = "IP[:PORT]")]
    pub ip: Option<String>,
    /// User name on the BMC (required unless --type none)
    #[arg(long)]
    pub username: Option<String>,
    /// Read the BMC password from the first line of standard input
    /// (without echo on a terminal)
    #[arg(long, conflicts_with = "password_env")]
    pub password_stdin: bool,
    /// Read the BMC password from this environment variable
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
}

/// Runs one host verb.
pub(crate) fn run(cmd: HostCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        HostCommand::List(args) => {
            crate::wait::watch(io, &args.watch, |io| list(&args.output, env, io))
        }
        HostCommand::Show(args) => show(&args, env, io),
        HostCommand::Add(args) => add(&args, env, io),
        HostCommand::Delete(args) => delete(&args.host, env, io),
        HostCommand::Lock(args) => lock_or_unlock(&args, Goal::Locked, env, io),
        HostCommand::Unlock(args) => lock_or_unlock(&args, Goal::Unlocked, env, io),
        HostCommand::Swact(args) => action(&args.host, forced("swact", args.force), env, io),
        HostCommand::Reboot(args) => action(&args.host, "reboot", env, io),
        HostCommand::Reset(args) => action(&args.host, "reset", env, io),
        HostCommand::PowerOn(args) => action(&args.host, "power-on", env, io),
        HostCommand::PowerOff(args) => action(&args.host, "power-off", env, io),
        HostCommand::JoinToken(args) => join_token(&args, env, io),
        HostCommand::HeartbeatKey(args) => heartbeat_key(&args, env, io),
        HostCommand::Revoke(args) => revoke(&args.host, env, io),
        HostCommand::Attestation(args) => attestation(&args, env, io),
        HostCommand::Cpus(args) => sub_list(SubList::Cpus, &args, env, io),
        HostCommand::CpuModify(args) => crate::host_attributes::cpu_modify(&args, env, io),
        HostCommand::Label(cmd) => crate::host_attributes::label(cmd, env, io),
        HostCommand::Memory(args) => sub_list(SubList::Memory, &args, env, io),
        HostCommand::Disks(args) => sub_list(SubList::Disks, &args, env, io),
        HostCommand::Ports(args) => sub_list(SubList::Ports, &args, env, io),
        HostCommand::Bmc(args) => bmc(&args, env, io),
    }
}

/// The path of one host, `/v1/ihosts/{host}`.
pub fn host_path(host: &str) -> Result<String, Error> {
    Ok(format!("/v1/ihosts/{}", path_segment("host", host)?))
}

/// Turns a 404 into "no host with name, ID or UUID HOST (...)".
pub(crate) fn not_found(host: &str) -> impl FnOnce(Error) -> Error + '_ {
    crate::style::not_found(
        "host",
        "name, ID or UUID",
        host,
        "`roost host list` lists the hosts",
    )
}

/// A host object without the keys that must never be printed.
pub fn redacted(mut host: Value) -> Value {
    if let Value::Object(map) = &mut host {
        for key in SECRET_KEYS {
            map.remove(*key);
        }
    }
    host
}

/// The integer value of `key` (a number or a numeric string), for sorting.
fn number(item: &Value, key: &str) -> Option<i64> {
    match item.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Sorts items by the integer `key`; items without one go last.
fn sort_by_number(items: &mut [Value], key: &str) {
    items.sort_by_key(|item| {
        (
            number(item, key).unwrap_or(i64::MAX),
            field(item, "hostname"),
        )
    });
}

fn list(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get("/v1/ihosts", &Query::new())?;
    let mut hosts: Vec<Value> = list_items(&reply, "ihosts")?
        .into_iter()
        .map(redacted)
        .collect();
    sort_by_number(&mut hosts, "id");
    render_list(io, output, &host_columns(&hosts), &hosts, "No hosts")
}

/// The columns of `roost host list`: ID, Hostname, Personality,
/// Administrative, Operational, Availability, and Task when any host has
/// one; wide adds the task always, the UUID and the management address.
pub fn host_columns(hosts: &[Value]) -> Vec<Column<'static>> {
    let with_task = hosts.iter().any(|h| !field(h, "task").trim().is_empty());
    let task = Column::key("Task", "task");
    vec![
        Column::key("ID", "id"),
        Column::key("Hostname", "hostname"),
        Column::key("Personality", "personality"),
        Column::key("Administrative", "administrative"),
        Column::key("Operational", "operational"),
        Column::key("Availability", "availability"),
        if with_task { task } else { task.wide() },
        Column::key("UUID", "uuid").wide(),
        Column::key("Management IP", "mgmt_ip").wide(),
    ]
}

/// The Field/Value rows of exactly `fields` (blank when absent), secrets
/// left out.
pub fn fields_rows(item: &Value, fields: &[&str]) -> Vec<(String, String)> {
    fields
        .iter()
        .filter(|key| !SECRET_KEYS.contains(key))
        .map(|key| ((*key).to_string(), field(item, key)))
        .collect()
}

fn get_host(api: &Api, host: &str) -> Result<Value, Error> {
    api.get(&host_path(host)?, &Query::new())
        .map_err(not_found(host))
}

fn show(args: &HostOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let host = redacted(get_host(api, &args.host)?);
    render_detail(
        io,
        &args.output,
        &host,
        &fields_rows(&host, HOST_SHOW_FIELDS),
    )
}

/// The `POST /v1/ihosts` body of `roost host add`.
pub fn add_body(args: &HostAddArgs) -> Result<HostAdd, Error> {
    let hostname = args.hostname.trim();
    if hostname.is_empty() {
        return Err(Error::usage("the hostname is empty"));
    }
    Ok(HostAdd {
        hostname: hostname.to_string(),
        personality: args.personality.clone(),
        mgmt_ip: args.mgmt_ip.map(|ip| ip.to_string()),
        ..HostAdd::default()
    })
}

fn add(args: &HostAddArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let body = add_body(args)?;
    let api = &connect(env)?;
    let host = redacted(api.post("/v1/ihosts", &body)?);
    let token = token_of(&host)?;
    match args.output.output {
        format if format.is_data() => print_data(io, &args.output, &host),
        _ => {
            render_detail(
                io,
                &args.output,
                &host,
                &fields_rows(&host, HOST_SHOW_FIELDS),
            )?;
            writeln!(io.out)?;
            let name = displayed_name(&host, &args.hostname);
            print_enrollment(io, api.base(), &name, &token, "Join token")
        }
    }
}

fn join_token(args: &HostOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("{}/join_token", host_path(&args.host)?);
    let api = &connect(env)?;
    // The path says everything; the body is an empty object.
    let reply = api
        .post(&path, &serde_json::Map::new())
        .map_err(not_found(&args.host))?;
    let token = token_of(&reply)?;
    match args.output.output {
        format if format.is_data() => print_data(io, &args.output, &reply),
        _ => {
            let name = displayed_name(&reply, &args.host);
            print_enrollment(io, api.base(), &name, &token, "New join token")
        }
    }
}

/// `GET /v1/ihosts/{host}/{sub}`, or with `act` a `POST` to it (the path
/// says everything; the body is an empty object).
fn host_resource(host: &str, sub: &str, act: bool, env: &Env) -> Result<Value, Error> {
    let path = format!("{}/{sub}", host_path(host)?);
    let api = &connect(env)?;
    if act {
        api.post(&path, &serde_json::Map::new())
    } else {
        api.get(&path, &Query::new())
    }
    .map_err(not_found(host))
}

fn heartbeat_key(args: &HeartbeatKeyArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let reply = host_resource(&args.host, "heartbeat_key", args.rotate, env)?;
    match args.output.output {
        format if format.is_data() => print_data(io, &args.output, &reply),
        _ => {
            render_detail(
                io,
                &args.output,
                &reply,
                &fields_rows(&reply, HEARTBEAT_KEY_FIELDS),
            )?;
            if args.rotate {
                writeln!(
                    io.err,
                    "Rotation started; it ends after the agent's next report. Check with: roost host heartbeat-key {}",
                    shell_word(&args.host)
                )?;
            }
            Ok(())
        }
    }
}

fn attestation(args: &AttestationArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let reply = host_resource(&args.host, "attestation", args.accept, env)?;
    match args.output.output {
        format if format.is_data() => print_data(io, &args.output, &reply),
        _ => {
            render_detail(
                io,
                &args.output,
                &reply,
                &fields_rows(&reply, ATTESTATION_FIELDS),
            )?;
            for (title, key) in [
                ("Expected PCRs", "expected_pcrs"),
                ("Last quoted PCRs", "last_pcrs"),
            ] {
                if let Some(pcrs) = reply.get(key).and_then(Value::as_object)
                    && !pcrs.is_empty()
                {
                    writeln!(io.out, "{title}:")?;
                    for (i, v) in pcrs {
                        writeln!(io.out, "  {i:>2}  {}", v.as_str().unwrap_or_default())?;
                    }
                }
            }
            if args.accept {
                writeln!(io.err, "Accepted the PCR values {} quotes now", args.host)?;
            }
            Ok(())
        }
    }
}

fn revoke(host: &str, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    host_resource(host, "revoke", true, env)?;
    writeln!(io.out, "Revoked the agent of host {host}")?;
    writeln!(
        io.err,
        "To enroll it again: roost host join-token {}, then start its agent with the new token and an empty data directory",
        shell_word(host)
    )?;
    Ok(())
}

/// The `join_token` of a reply.
fn token_of(reply: &Value) -> Result<String, Error> {
    reply
        .get("join_token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::failure("the server sent no join token"))
}

/// The reply's hostname, else what the user typed.
fn displayed_name(reply: &Value, typed: &str) -> String {
    match reply.get("hostname").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => typed.trim().to_string(),
    }
}

/// `word` quoted for a POSIX shell when it holds anything but safe characters.
pub(crate) fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/=+@%,".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command that enrolls a host's agent with `token` at `server`.
pub fn agent_command(server: &str, token: &str) -> String {
    // A token may start with '-'; the `=` form keeps it from reading as a flag.
    let token_arg = if token.starts_with('-') {
        format!("--join-token={}", shell_word(token))
    } else {
        format!("--join-token {}", shell_word(token))
    };
    format!("roost agent --server {} {token_arg}", shell_word(server))
}

/// Whether the URL's host is a loopback name or address, which the new
/// host cannot use to reach this server.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Prints the join token and the agent command (the one secret this client
/// prints: it is what the user asked for).
fn print_enrollment(
    io: &mut Io<'_>,
    server: &str,
    hostname: &str,
    token: &str,
    label: &str,
) -> Result<(), Error> {
    writeln!(
        io.out,
        "{label} for {hostname} (single use; it expires: `roost host join-token {}` makes a new one):",
        shell_word(hostname)
    )?;
    writeln!(io.out, "    {token}")?;
    writeln!(io.out)?;
    writeln!(io.out, "To enroll {hostname}, run on it:")?;
    writeln!(io.out, "    {}", agent_command(server, token))?;
    if is_loopback_url(server) {
        writeln!(
            io.err,
            "(note: {server} is a loopback address; if {hostname} is another machine, give it an address of this server it can reach)"
        )?;
    }
    Ok(())
}

fn delete(host: &str, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = host_path(host)?;
    let api = &connect(env)?;
    api.delete(&path).map_err(not_found(host))?;
    writeln!(io.out, "Deleted host {host}")?;
    Ok(())
}

/// `force-<action>` when forced.
fn forced(action: &'static str, force: bool) -> &'static str {
    match (action, force) {
        ("lock", true) => "force-lock",
        ("unlock", true) => "force-unlock",
        ("swact", true) => "force-swact",
        _ => action,
    }
}

/// The JSON-patch body of a host action.
pub fn action_patch(action: &str) -> Vec<PatchOp> {
    vec![PatchOp::replace("/action", action)]
}

/// A host's states on one line: `worker-1: locked/disabled/online`.
pub fn state_line(host: &Value) -> String {
    format!(
        "{}: {}/{}/{}",
        field(host, "hostname"),
        field(host, "administrative"),
        field(host, "operational"),
        field(host, "availability")
    )
}

fn action(host: &str, action: &str, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = host_path(host)?;
    let api = &connect(env)?;
    let reply = api
        .patch(&path, &action_patch(action))
        .map_err(not_found(host))?;
    writeln!(io.out, "{}", state_line(&reply))?;
    Ok(())
}

/// What `roost host lock --wait` and `unlock --wait` wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// locked and disabled.
    Locked,
    /// unlocked, enabled and available (or degraded).
    Unlocked,
}

impl Goal {
    /// Where the action stands for a host in this state.
    pub fn verdict(self, host: &Value) -> Verdict {
        let admin = field(host, "administrative");
        let oper = field(host, "operational");
        let avail = field(host, "availability");
        let name = field(host, "hostname");
        if avail == "failed" {
            return Verdict::Failed(format!(
                "{name} failed ({}); `roost alarm list` and `roost event list` say why",
                state_of(host)
            ));
        }
        match self {
            Goal::Locked if admin == "locked" && oper == "disabled" => Verdict::Done,
            Goal::Unlocked
                if admin == "unlocked"
                    && oper == "enabled"
                    && matches!(avail.as_str(), "available" | "degraded") =>
            {
                Verdict::Done
            }
            _ => Verdict::Running,
        }
    }
}

/// A host's states without its name: `unlocked/enabled/available`.
pub fn state_of(host: &Value) -> String {
    format!(
        "{}/{}/{}",
        field(host, "administrative"),
        field(host, "operational"),
        field(host, "availability")
    )
}

/// `roost host lock` and `unlock`, and with `--wait` the wait for the end.
fn lock_or_unlock(
    args: &HostLockArgs,
    goal: Goal,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let act = match goal {
        Goal::Locked => forced("lock", args.force),
        Goal::Unlocked => forced("unlock", args.force),
    };
    let path = host_path(&args.host)?;
    let api = &connect(env)?;
    let reply = api
        .patch(&path, &action_patch(act))
        .map_err(not_found(&args.host))?;
    if !args.wait.wait {
        writeln!(io.out, "{}", state_line(&reply))?;
        return Ok(());
    }
    let what = match goal {
        Goal::Locked => "locked/disabled",
        Goal::Unlocked => "unlocked/enabled/available",
    };
    let last = crate::wait::wait_for(
        io,
        &args.wait,
        reply,
        || get_host(api, &args.host),
        |host| {
            Ok(Look {
                subject: field(host, "hostname"),
                state: state_of(host),
                verdict: goal.verdict(host),
            })
        },
        |_, look, waited| {
            Error::failure(crate::wait::timeout_message(
                waited,
                &format!("{} to be {what}", look.subject),
                look,
                &format!(
                    "`roost host show {}` and `roost alarm list` show what holds it",
                    args.host
                ),
            ))
        },
    )?;
    writeln!(io.out, "{}", state_line(&last))?;
    Ok(())
}

/// The host sub-collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubList {
    Cpus,
    Memory,
    Disks,
    Ports,
}

impl SubList {
    /// Path below the host and the list's key in the reply.
    fn collection(self) -> &'static str {
        match self {
            SubList::Cpus => "icpus",
            SubList::Memory => "imemorys",
            SubList::Disks => "idisks",
            SubList::Ports => "ethernet_ports",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            SubList::Cpus => "CPUs",
            SubList::Memory => "memory",
            SubList::Disks => "disks",
            SubList::Ports => "Ethernet ports",
        }
    }

    fn columns(self) -> Vec<Column<'static>> {
        match self {
            SubList::Cpus => cpu_columns(),
            SubList::Memory => memory_columns(),
            SubList::Disks => disk_columns(),
            SubList::Ports => port_columns(),
        }
    }
}

fn sub_list(kind: SubList, args: &HostOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("{}/{}", host_path(&args.host)?, kind.collection());
    let api = &connect(env)?;
    let reply = api
        .get(&path, &Query::new())
        .map_err(not_found(&args.host))?;
    let mut items = list_items(&reply, kind.collection())?;
    match kind {
        SubList::Cpus => items.sort_by_key(|c| number(c, "cpu").unwrap_or(i64::MAX)),
        SubList::Memory => items.sort_by_key(|m| number(m, "numa_node").unwrap_or(i64::MAX)),
        SubList::Disks | SubList::Ports => {}
    }
    let empty = format!(
        "No {} reported for {} (its agent reports them once enrolled)",
        kind.noun(),
        args.host
    );
    render_list(io, &args.output, &kind.columns(), &items, &empty)
}

/// The columns of `roost host cpus` (wide adds the UUID).
pub fn cpu_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("CPU", "cpu"),
        Column::key("Core", "core"),
        Column::key("Thread", "thread"),
        Column::key("NUMA node", "numa_node"),
        Column::key("Model", "cpu_model"),
        Column::key("Function", "allocated_function"),
        Column::key("UUID", "uuid").wide(),
    ]
}

/// The columns of `roost host memory` (wide adds the UUID).
pub fn memory_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("NUMA node", "numa_node"),
        Column::key("Total MiB", "memtotal_mib"),
        Column::key("Available MiB", "memavail_mib"),
        Column::key("UUID", "uuid").wide(),
    ]
}

/// A size in MiB (a number or a numeric string) shown in GiB with one
/// decimal; anything else is shown as it is.
pub fn gib(mib: Option<&Value>) -> String {
    let value = match mib {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(v) if v.is_finite() => format!("{:.1}", v / 1024.0),
        _ => cell(mib),
    }
}

/// The columns of `roost host disks` (wide adds the UUID).
pub fn disk_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Device", "device_node"),
        Column::key("Type", "device_type"),
        Column::with("Size GiB", Some("size_mib"), |d| gib(d.get("size_mib"))),
        Column::key("Serial", "serial_id"),
        Column::key("RPM", "rpm"),
        Column::key("UUID", "uuid").wide(),
    ]
}

/// The columns of `roost host ports` (wide adds the UUID).
pub fn port_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Name", "name"),
        Column::key("MAC", "mac"),
        Column::key("MTU", "mtu"),
        Column::key("Speed (Mb/s)", "speed"),
        Column::key("PCI address", "pciaddr"),
        Column::key("Driver", "driver"),
        Column::key("UUID", "uuid").wide(),
    ]
}

/// Checks the BMC flags and returns the patch without the password: the
/// type alone for `none`, else type, address and user name.
pub fn bmc_patch(args: &BmcArgs) -> Result<Vec<PatchOp>, Error> {
    let replace = |path: &str, value: &str| PatchOp::replace(path, value);
    if args.bm_type == "none" {
        if args.ip.is_some()
            || args.username.is_some()
            || args.password_stdin
            || args.password_env.is_some()
        {
            return Err(Error::usage(
                "--type none removes the BMC; it takes no --ip, --username or password",
            ));
        }
        return Ok(vec![replace("/bm_type", "none")]);
    }
    let required = |flag: &str, value: &Option<String>| -> Result<String, Error> {
        match value.as_deref().map(str::trim) {
            None => Err(Error::usage(format!(
                "--type {} needs {flag}",
                args.bm_type
            ))),
            Some("") => Err(Error::usage(format!("{flag} must not be empty"))),
            Some(v) if v.chars().any(char::is_whitespace) => {
                Err(Error::usage(format!("{flag} must not contain spaces")))
            }
            Some(v) => Ok(v.to_string()),
        }
    };
    let ip = required("--ip", &args.ip)?;
    let username = required("--username", &args.username)?;
    Ok(vec![
        replace("/bm_type", &args.bm_type),
        replace("/bm_ip", &ip),
        replace("/bm_username", &username),
    ])
}

/// The BMC password from standard input or the named variable; `None` when
/// neither flag is given (the server keeps the password it has).
fn bmc_password(args: &BmcArgs, env: &Env, io: &mut Io<'_>) -> Result<Option<String>, Error> {
    let password = if let Some(var) = &args.password_env {
        env.vars
            .get(var)
            .map(str::to_string)
            .ok_or_else(|| Error::usage(format!("environment variable {var} is not set")))?
    } else if args.password_stdin {
        if io.interactive {
            rpassword::prompt_password("BMC password: ")
                .map_err(|e| Error::usage(format!("cannot read the password: {e}")))?
        } else {
            read_line(io)?.ok_or_else(|| Error::usage("no BMC password on standard input"))?
        }
    } else {
        return Ok(None);
    };
    if password.is_empty() {
        return Err(Error::usage("the BMC password is empty"));
    }
    Ok(Some(password))
}

fn bmc(args: &BmcArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let mut patch = bmc_patch(args)?;
    let path = host_path(&args.host)?;
    if let Some(password) = bmc_password(args, env, io)? {
        // In the same patch as the user name, as the server requires.
        patch.push(PatchOp::replace("/bm_password", password));
    }
    let api = &connect(env)?;
    let host = api.patch(&path, &patch).map_err(not_found(&args.host))?;
    render_detail(
        io,
        &OutputArgs::default(),
        &host,
        &fields_rows(&host, HOST_BMC_FIELDS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: HostCommand,
    }

    fn parse(args: &[&str]) -> Result<HostCommand, clap::Error> {
        let mut argv = vec!["host"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.cmd)
    }

    fn bmc_args(args: &[&str]) -> BmcArgs {
        let mut argv = vec!["bmc", "worker-1"];
        argv.extend_from_slice(args);
        match parse(&argv).unwrap() {
            HostCommand::Bmc(args) => args,
            other => panic!("not bmc: {other:?}"),
        }
    }

    #[test]
    fn the_host_list_shows_a_task_column_only_when_a_host_has_a_task() {
        let idle = vec![json!({"id": 1, "hostname": "controller-0", "task": ""})];
        let text = crate::output::list_text(&host_columns(&idle), &idle, &OutputArgs::default());
        assert!(!text.contains("Task"), "{text}");
        let busy = vec![
            json!({"id": 1, "hostname": "controller-0", "task": null}),
            json!({"id": 2, "hostname": "worker-1", "task": "Rebooting"}),
        ];
        let text = crate::output::list_text(&host_columns(&busy), &busy, &OutputArgs::default());
        assert!(
            text.contains("Task") && text.contains("Rebooting"),
            "{text}"
        );
    }

    #[test]
    fn hosts_sort_by_numeric_id_with_idless_ones_last() {
        let mut hosts = vec![
            json!({"id": 10, "hostname": "b"}),
            json!({"hostname": "z"}),
            json!({"id": 2, "hostname": "a"}),
        ];
        sort_by_number(&mut hosts, "id");
        let names: Vec<_> = hosts.iter().map(|h| field(h, "hostname")).collect();
        assert_eq!(names, ["a", "b", "z"]);
    }

    #[test]
    fn a_bmc_password_is_never_printed_even_if_the_server_sent_one() {
        let host = json!({"hostname": "w", "bm_username": "root", "bm_password": "hunter2"});
        let text = crate::output::rows_table(&fields_rows(
            &host,
            &["hostname", "bm_username", "bm_password"],
        ))
        .force_no_tty()
        .to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(redacted(host).get("bm_password").is_none());
    }

    #[test]
    fn disk_sizes_are_gib_with_one_decimal() {
        assert_eq!(gib(Some(&json!(512_000))), "500.0");
        assert_eq!(gib(Some(&json!("1536"))), "1.5");
        assert_eq!(gib(Some(&json!(null))), "");
        assert_eq!(gib(Some(&json!("unknown"))), "unknown");
    }

    #[test]
    fn forced_actions_use_the_force_spelling() {
        assert_eq!(forced("lock", true), "force-lock");
        assert_eq!(forced("unlock", true), "force-unlock");
        assert_eq!(forced("swact", true), "force-swact");
        assert_eq!(forced("lock", false), "lock");
        assert_eq!(
            serde_json::to_value(action_patch("force-lock")).unwrap(),
            json!([{"op": "replace", "path": "/action", "value": "force-lock"}])
        );
    }

    #[test]
    fn the_state_line_is_admin_oper_avail() {
        let host = json!({"hostname": "worker-1", "administrative": "locked",
                          "operational": "disabled", "availability": "online"});
        assert_eq!(state_line(&host), "worker-1: locked/disabled/online");
    }

    #[test]
    fn the_agent_command_quotes_only_what_needs_quoting() {
        assert_eq!(
            agent_command("http://10.0.0.1:6385", "abc_DEF-1"),
            "roost agent --server http://10.0.0.1:6385 --join-token abc_DEF-1"
        );
        assert_eq!(
            agent_command("http://h:1", "-abc"),
            "roost agent --server http://h:1 --join-token=-abc"
        );
        assert_eq!(
            agent_command("http://h:1", "it's"),
            r"roost agent --server http://h:1 --join-token 'it'\''s'"
        );
    }

    #[test]
    fn loopback_servers_are_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:6385"));
        assert!(is_loopback_url("http://localhost:6385"));
        assert!(is_loopback_url("http://[::1]:6385"));
        assert!(!is_loopback_url("http://192.168.204.2:6385"));
    }

    #[test]
    fn add_sends_only_the_given_fields_and_checks_the_personality() {
        let HostCommand::Add(args) = parse(&[
            "add",
            "worker-1",
            "--personality",
            "worker",
            "--mgmt-ip",
            "192.168.204.11",
        ])
        .unwrap() else {
            panic!("not add")
        };
        assert_eq!(
            serde_json::to_value(add_body(&args).unwrap()).unwrap(),
            json!({"hostname": "worker-1", "personality": "worker", "mgmt_ip": "192.168.204.11"})
        );
        assert!(parse(&["add", "w", "--personality", "router"]).is_err());
        assert!(parse(&["add", "w"]).is_err());
        assert!(parse(&["add", "w", "--personality", "worker", "--mgmt-ip", "x"]).is_err());
    }

    #[test]
    fn a_bmc_patch_carries_type_address_and_user_together() {
        let patch = bmc_patch(&bmc_args(&[
            "--type",
            "redfish",
            "--ip",
            "10.0.0.9:8000",
            "--username",
            "root",
        ]))
        .unwrap();
        assert_eq!(
            serde_json::to_value(patch).unwrap(),
            json!([
                {"op": "replace", "path": "/bm_type", "value": "redfish"},
                {"op": "replace", "path": "/bm_ip", "value": "10.0.0.9:8000"},
                {"op": "replace", "path": "/bm_username", "value": "root"}
            ])
        );
    }

    #[test]
    fn removing_a_bmc_sends_the_type_alone_and_refuses_other_flags() {
        assert_eq!(
            serde_json::to_value(bmc_patch(&bmc_args(&["--type", "none"])).unwrap()).unwrap(),
            json!([{"op": "replace", "path": "/bm_type", "value": "none"}])
        );
        let err = bmc_patch(&bmc_args(&["--type", "none", "--ip", "1.2.3.4"])).unwrap_err();
        assert_eq!(err.code(), 2);
    }

    #[test]
    fn a_bmc_needs_an_address_and_a_user_and_no_password_flag_pair() {
        let err = bmc_patch(&bmc_args(&["--type", "redfish", "--username", "u"])).unwrap_err();
        assert_eq!(err.message(), "--type redfish needs --ip");
        let err = bmc_patch(&bmc_args(&["--type", "ipmi", "--ip", "1.2.3.4"])).unwrap_err();
        assert_eq!(err.message(), "--type ipmi needs --username");
        assert!(
            parse(&[
                "bmc",
                "w",
                "--type",
                "redfish",
                "--password-stdin",
                "--password-env",
                "X"
            ])
            .is_err()
        );
        assert!(parse(&["bmc", "w", "--type", "redfish", "--password", "pw"]).is_err());
        assert!(parse(&["bmc", "w", "--type", "vnc"]).is_err());
    }

    #[test]
    fn every_action_verb_parses_with_its_flags() {
        for argv in [
            &["lock", "w", "--force"][..],
            &["unlock", "w", "-f"],
            &["swact", "controller-0"],
            &["reboot", "w"],
            &["reset", "w"],
            &["power-on", "w"],
            &["power-off", "w"],
            &["delete", "w"],
            &["join-token", "w"],
            &["heartbeat-key", "w"],
            &["heartbeat-key", "w", "--rotate", "-o", "json"],
            &["cpus", "w", "-o", "json"],
            &["memory", "w"],
            &["disks", "w"],
            &["ports", "w"],
            &["show", "3", "-o", "json"],
            &["list", "-o", "table"],
        ] {
            parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        assert!(parse(&["reboot", "w", "--force"]).is_err());
    }
}

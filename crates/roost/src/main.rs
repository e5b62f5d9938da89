//! `roost`: the one binary. `roost server` runs a cloud; the other verbs
//! are the command-line client.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use roost_server::Config;

#[derive(Parser, Debug)]
#[command(
    name = "roost",
    version,
    about = "Roost: a light, StarlingX-compatible edge cloud"
)]
struct Cli {
    #[command(flatten)]
    global: roost_cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a cloud: an All-in-One Simplex controller on an embedded store
    Server(ServerArgs),
    /// Run the host agent: enroll with a join token, answer heartbeats, report inventory
    Agent(roost_agent::AgentArgs),
    /// Simulators for tests and benchmarks
    #[command(subcommand)]
    Sim(SimCommand),
    /// The store of a stopped cloud
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run a witness: fencing for duplex controllers without a BMC (on a third host or the system controller)
    #[command(
        after_help = "Example:\n  roost witness --listen 0.0.0.0:6390 --key-file /etc/roost/witness.key\n\nThen on both controllers, in [ha]:\n  witness = \"http://WITNESS-ADDRESS:6390\"\n  witness_key_file = \"/etc/roost/witness.key\"   # the same key, mode 0600"
    )]
    Witness(WitnessArgs),
    /// Print the OpenAPI document of the REST API
    Openapi,
    /// Print the shell completion script of roost (bash, zsh or fish)
    Completion(roost_cli::CompletionArgs),
    /// The log writer containerd's shim starts for each container
    #[command(hide = true)]
    ContainerLogger { spec: String },
    /// The agent's fence watchdog: kills the host's containers when the agent goes silent
    #[command(hide = true)]
    FenceWatch {
        #[arg(long)]
        file: std::path::PathBuf,
        #[arg(long)]
        after_ms: u64,
        #[arg(long)]
        containerd_socket: std::path::PathBuf,
    },
    #[command(flatten)]
    Client(roost_cli::ClientCommand),
}

#[derive(Args, Debug)]
struct WitnessArgs {
    /// Where to listen: IP:PORT or NAME:PORT
    #[arg(long, default_value = "0.0.0.0:6390", env = "ROOST_WITNESS_LISTEN", value_parser = parse_listen)]
    listen: SocketAddr,
    /// A file (mode 0600) holding the key shared with the controllers, at least 32 characters
    #[arg(long, env = "ROOST_WITNESS_KEY_FILE")]
    key_file: PathBuf,
    /// The longest lease granted, milliseconds (at least four times the controllers' [ha] lease_ms); after a start nothing is granted for this long
    #[arg(long, default_value_t = 20_000)]
    max_lease_ms: u64,
    /// How many controller pairs it serves at most
    #[arg(long, default_value_t = 1000)]
    max_pairs: usize,
}

/// A listen address as people type it: `IP:PORT`, `NAME:PORT` (the name
/// resolved, an IPv4 address preferred: `localhost:6385`), or a port alone
/// (on 127.0.0.1).
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(port) = s.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "{s:?} has no port: give ADDRESS:PORT, such as 127.0.0.1:6385 or localhost:6385"
        ));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{port:?} in {s:?} is not a port (0 to 65535)"));
    }
    let found: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| found.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Move a stopped cloud's embedded store into an empty PostgreSQL database, and check that nothing was lost
    #[command(
        after_help = "Example:\n  roost store migrate --from ./roost-data --to postgres://roost:PASSWORD@db.example/roost\n\nThen start the cloud on it:\n  roost server --data-dir ./roost-data --store postgres://roost:PASSWORD@db.example/roost"
    )]
    Migrate {
        /// The cloud's data directory (the cloud must be stopped)
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database to move into (empty)
        #[arg(long, env = "ROOST_STORE", hide_env_values = true)]
        to: String,
        /// The cloud's TOML configuration file, if it has one (for its TPM and event log settings)
        #[arg(long, short = 'c', env = "ROOST_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum SimCommand {
    /// A Redfish BMC that powers a command (a simulated host) off and on
    Bmc(roost_sim::bmc::BmcArgs),
    /// Many simulated hosts in one process: enrolled like agents, answering heartbeats
    Agents(roost_sim::agents::AgentsArgs),
    /// Many simulated subclouds in one process: enrolled into a system controller, syncing over mutual TLS
    Subclouds(roost_sim::subclouds::SubcloudsArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// TOML configuration file (flags and environment override it)
    #[arg(long, short = 'c', env = "ROOST_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./roost-data]
    #[arg(long, env = "ROOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: a PostgreSQL URL (postgres://user:password@host/db) [default: the embedded SQLite store in the data directory]
    #[arg(long, env = "ROOST_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Address to listen on: IP:PORT or NAME:PORT (localhost:6385), or a port alone [default: 127.0.0.1:6385]
    #[arg(long, env = "ROOST_LISTEN", value_parser = parse_listen)]
    listen: Option<SocketAddr>,
    /// A StarlingX events.yaml to load on top of Roost's own alarm catalogue
    #[arg(long, env = "ROOST_ALARM_CATALOGUE")]
    alarm_catalogue: Option<PathBuf>,
    /// Commit durability: process (survives kill -9) or power (fsync; survives power loss)
    #[arg(long, env = "ROOST_DURABILITY")]
    durability: Option<String>,
    /// Most event log records kept [default: 4000]
    #[arg(long, env = "ROOST_EVENT_LOG_CAP")]
    event_log_cap: Option<u64>,
    /// Log format: text or json
    #[arg(long, env = "ROOST_LOG_FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. info or info,roost_server=debug
    #[arg(long, env = "ROOST_LOG")]
    log_level: Option<String>,
    /// Turn off resource monitoring of this host
    #[arg(long)]
    no_monitor: bool,
    /// Serve the API over plain HTTP even on an address that is not loopback
    /// (tokens and passwords cross the network in clear; logged as a warning)
    #[arg(long)]
    plain_http: bool,
    /// standalone (default), systemcontroller or subcloud
    #[arg(long, env = "ROOST_ROLE")]
    role: Option<String>,
    /// System controller: address of the DC listener subclouds dial (mutual TLS) [default: the --listen address, port 6386]
    #[arg(long, env = "ROOST_DC_LISTEN")]
    dc_listen: Option<SocketAddr>,
    /// Subcloud: the system controller's DC URL, e.g. https://10.0.0.1:6386
    #[arg(long, env = "ROOST_SYSTEM_CONTROLLER")]
    system_controller: Option<String>,
    /// Subcloud: the one-time enrollment token from `roost subcloud add` (first start only)
    #[arg(long, env = "ROOST_ENROLL_TOKEN", hide_env_values = true)]
    enroll_token: Option<String>,
}

fn server_config(a: ServerArgs) -> anyhow::Result<(Config, Option<String>)> {
    let token = a.enroll_token.clone();
    let mut c = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    if let Some(v) = a.data_dir {
        c.data_dir = v;
    }
    if let Some(v) = a.store {
        c.store = Some(v);
    }
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = a.alarm_catalogue {
        c.alarm_catalogue = Some(v);
    }
    if let Some(v) = a.durability {
        c.fm.durability = v;
    }
    if let Some(v) = a.event_log_cap {
        c.fm.event_log_cap = v;
    }
    if let Some(v) = a.log_format {
        c.log.format = v;
    }
    if let Some(v) = a.log_level {
        c.log.level = v;
    }
    if a.no_monitor {
        c.monitor.enabled = false;
    }
    if a.plain_http {
        c.http.plain_http = true;
        if c.http.tls == "auto" {
            c.http.tls = "off".into();
        }
    }
    if let Some(v) = a.role {
        c.role = v;
    }
    if let Some(v) = a.dc_listen {
        c.dc.listen = Some(v);
    }
    if let Some(v) = a.system_controller {
        c.dc.system_controller = Some(v);
    }
    c.validate()?;
    Ok((c, token))
}

fn init_logging(c: &Config) -> anyhow::Result<()> {
    // The agent's subscriber: the same filter syntax and formats.
    roost_agent::init_logging(&c.log.level, c.log.format == "json")
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn error_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Runs a future on a small runtime; errors become one line and exit 1.
fn run_async<E: Into<anyhow::Error>>(
    f: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(tracing::Level::INFO)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roost: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: {}", error_line(&e.into()));
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            print!("{}", roost_api::openapi::document_text());
            ExitCode::SUCCESS
        }
        Command::ContainerLogger { spec } => match roost_runtime::logs::run_logger(&spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("roost container-logger: {e}");
                ExitCode::FAILURE
            }
        },
        Command::FenceWatch {
            file,
            after_ms,
            containerd_socket,
        } => run_async(roost_agent::apps::fence_watch(
            file,
            std::time::Duration::from_millis(after_ms),
            containerd_socket,
        )),
        Command::Client(c) => {
            ExitCode::from(roost_cli::run_with(c, &cli.global).clamp(0, 255) as u8)
        }
        Command::Completion(args) => ExitCode::from(
            roost_cli::print_completion(&args, &mut Cli::command()).clamp(0, 255) as u8,
        ),
        Command::Store(StoreCommand::Migrate { from, to, config }) => {
            let config = match config.as_deref().map(Config::from_file).transpose() {
                Ok(c) => Config {
                    data_dir: from,
                    ..c.unwrap_or_default()
                },
                Err(e) => {
                    eprintln!("roost: {}", error_line(&anyhow::Error::from(e)));
                    return ExitCode::from(2);
                }
            };
            match roost_server::migrate_store(&config, &to) {
                Ok(report) => {
                    for t in &report.tables {
                        println!("{:<24} {:>8} rows", t.table, t.rows);
                    }
                    println!(
                        "Moved {} rows in {} tables to {}; every table holds the same rows in both stores.",
                        report.rows(),
                        report.tables.len(),
                        roost_store::redact_url(&to)
                    );
                    println!(
                        "Next: roost server --data-dir {} --store <the same URL>",
                        config.data_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("roost: {}", error_line(&anyhow::Error::from(e)));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Agent(args) => roost_agent::main(args),
        Command::Witness(args) => run_async(async move {
            let s = roost_server::witness::WitnessSettings::new(
                args.listen,
                &args.key_file,
                std::time::Duration::from_millis(args.max_lease_ms),
                args.max_pairs,
            )?;
            roost_server::witness::run(s, roost_server::witness::until_stopped()).await
        }),
        Command::Sim(SimCommand::Bmc(args)) => run_async(roost_sim::bmc::run_bmc_cli(args)),
        Command::Sim(SimCommand::Agents(args)) => run_async(roost_sim::agents::run_agents(args)),
        Command::Sim(SimCommand::Subclouds(args)) => {
            run_async(roost_sim::subclouds::run_subclouds(args))
        }
        Command::Server(args) => {
            let (config, enroll_token) = match server_config(args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("roost: {}", error_line(&e));
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = init_logging(&config) {
                eprintln!("roost: {}", error_line(&e));
                return ExitCode::from(2);
            }
            let admin_password = std::env::var("ROOST_ADMIN_PASSWORD").ok();
            // Few blocking threads: each one costs a malloc arena, and the
            // store's read pool keeps four connections anyway.
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(6)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("roost: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt
                .block_on(roost_server::run_with(config, admin_password, enroll_token))
                .map_err(anyhow::Error::from)
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %error_line(&e), "server failed");
                    eprintln!("roost: {}", error_line(&e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_listen;

    #[test]
    fn listen_addresses_accept_names_and_bare_ports() {
        assert_eq!(
            parse_listen("10.0.0.2:6385").unwrap().to_string(),
            "10.0.0.2:6385"
        );
        assert_eq!(
            parse_listen("localhost:6401").unwrap().to_string(),
            "127.0.0.1:6401"
        );
        assert_eq!(parse_listen("6401").unwrap().to_string(), "127.0.0.1:6401");
        assert_eq!(parse_listen(":6401").unwrap().to_string(), "127.0.0.1:6401");
        assert_eq!(
            parse_listen("[::1]:6385").unwrap().to_string(),
            "[::1]:6385"
        );
        assert!(parse_listen("localhost").unwrap_err().contains("no port"));
        assert!(
            parse_listen("localhost:99999")
                .unwrap_err()
                .contains("not a port")
        );
        assert!(
            parse_listen("no-such-host.invalid:6385")
                .unwrap_err()
                .contains("cannot resolve")
        );
    }
}

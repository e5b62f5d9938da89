//! `roost sim bmc`: run one simulated BMC from the command line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Bmc, BmcConfig};
use crate::error::{Context as _, Error, Result};

/// Arguments of `roost sim bmc`.
///
/// Example:
/// `roost sim bmc --listen 127.0.0.1:8000 --password-file pw -- roost agent --config a.toml`
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct BmcArgs {
    /// Address to serve Redfish on (port 0 picks a free port; the ready
    /// line tells which).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// HTTP Basic user name required on /redfish/v1/*.
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// HTTP Basic password required on /redfish/v1/*.
    #[arg(
        long,
        env = "ROOST_BMC_PASSWORD",
        hide_env_values = true,
        conflicts_with = "password_file",
        required_unless_present = "password_file"
    )]
    pub password: Option<String>,
    /// Read the password from this file (trailing newline ignored).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Id of the single system (/redfish/v1/Systems/ID).
    #[arg(long, default_value = "1")]
    pub system_id: String,
    /// Simulated POST time between power-on and starting the host command.
    #[arg(long, default_value_t = 0)]
    pub boot_delay_ms: u64,
    /// Append the host's stdout and stderr to this file (discarded if unset).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Extra environment variable for the host, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Start powered off (the host starts on a Reset with ResetType On).
    #[arg(long)]
    pub off: bool,
    /// The host: program and arguments run while the system is powered on.
    /// Exit code 194 from it means "reboot me"; any other exit leaves the
    /// system On with nothing running until a reset.
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(Error::Invalid(format!("expected KEY=VALUE, got {s:?}"))),
    }
}

impl BmcArgs {
    /// The [`BmcConfig`] these arguments describe (reads the password file).
    pub fn into_config(self) -> Result<BmcConfig> {
        let password = match (self.password, self.password_file) {
            (Some(p), _) => p,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading password file {}", path.display()))?;
                text.trim_end_matches(['\r', '\n']).to_owned()
            }
            (None, None) => {
                return Err(Error::Invalid(
                    "--password or --password-file is required".into(),
                ));
            }
        };
        Ok(BmcConfig {
            listen: self.listen,
            username: self.username,
            password,
            system_id: self.system_id,
            command: self.command,
            env: self.env,
            log_file: self.log_file,
            boot_delay: Duration::from_millis(self.boot_delay_ms),
            power_on_at_start: !self.off,
        })
    }
}

/// Runs a simulated BMC until SIGINT or SIGTERM, then kills the host.
///
/// Prints `roost sim bmc ready on http://ADDR` on stdout once the listener
/// is bound (and the host started, when powered on at start).
pub async fn run_bmc_cli(args: BmcArgs) -> Result<()> {
    let cfg = args.into_config()?;
    let bmc = Bmc::start(cfg).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "roost sim bmc ready on {}", bmc.url())?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    bmc.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        bmc: BmcArgs,
    }

    fn parse(args: &[&str]) -> Result<BmcArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bmc").chain(args.iter().copied())).map(|c| c.bmc)
    }

    #[test]
    fn command_after_double_dash_keeps_its_own_flags() {
        let a = parse(&[
            "--password",
            "pw",
            "--boot-delay-ms",
            "250",
            "--off",
            "--env",
            "A=b=c",
            "--",
            "sh",
            "-c",
            "exec sleep 1000",
        ])
        .unwrap();
        assert_eq!(a.command, ["sh", "-c", "exec sleep 1000"]);
        assert_eq!(a.env, [("A".to_owned(), "b=c".to_owned())]);
        let cfg = a.into_config().unwrap();
        assert_eq!(cfg.password, "pw");
        assert_eq!(cfg.boot_delay, Duration::from_millis(250));
        assert!(!cfg.power_on_at_start);
        assert_eq!(cfg.system_id, "1");
        assert_eq!(cfg.username, "admin");
    }

    #[test]
    fn command_may_follow_the_options_without_double_dash() {
        let a = parse(&["--password", "pw", "sleep", "1000"]).unwrap();
        assert_eq!(a.command, ["sleep", "1000"]);
        assert!(a.into_config().unwrap().power_on_at_start);
    }

    #[test]
    fn password_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let a = parse(&["--password-file", path.to_str().unwrap(), "--", "true"]).unwrap();
        assert_eq!(a.into_config().unwrap().password, "s3cret");
    }

    #[test]
    fn a_command_is_required() {
        assert!(parse(&["--password", "pw"]).is_err());
    }

    #[test]
    fn password_and_password_file_conflict() {
        assert!(parse(&["--password", "a", "--password-file", "f", "--", "true"]).is_err());
    }
}

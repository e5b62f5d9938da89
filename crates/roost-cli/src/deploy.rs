//! `roost deploy …`: the software deploy in progress (`/v1/deploy`,
//! `/v1/deploy_host`) and the site strategy that deploys a release to every
//! host in order (`/v1/deploy/strategy`).

use std::time::Duration;

use roost_api::software::{
    DeployHostView, DeployStatus, StrategyAction, StrategyRequest, StrategyView,
};
use serde_json::Value;

use crate::credentials::Env;
use crate::error::Error;
use crate::output::{OutputArgs, field, new_table, print_data, print_table};
use crate::query::Query;
use crate::wait::{Look, Verdict, WaitArgs};
use crate::{Io, connect};

/// Deploy verbs.
#[derive(clap::Subcommand, Debug)]
pub enum DeployCommand {
    /// Show the deploy in progress and each host's state in it
    Show(ShowArgs),
    /// The site strategy: deploy a release to every host in order
    #[command(subcommand)]
    Strategy(StrategyCommand),
}

/// Flags of `roost deploy show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Site strategy verbs.
#[derive(clap::Subcommand, Debug)]
pub enum StrategyCommand {
    /// Create the strategy for an uploaded release
    #[command(after_help = "Example:\n  roost deploy strategy create roost-0.2.0 \
                            --worker-apply-type parallel --max-parallel-workers 4\n  \
                            roost deploy strategy apply")]
    Create(CreateArgs),
    /// Show the strategy and its stages (--watch: until it is over)
    Show(StrategyShowArgs),
    /// Start taking the strategy's steps (--wait: until it is applied, failed or aborted)
    #[command(after_help = "Example:\n  roost deploy strategy apply --wait --wait-timeout 3600")]
    Apply(ApplyArgs),
    /// Stop the strategy (the deploy stays as it is)
    Abort,
    /// Delete the strategy (not while it applies)
    Delete,
}

/// Flags of `roost deploy strategy create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The release to deploy (`roost-0.2.0`)
    pub release: String,
    /// Hosts other than controllers: one at a time, or in groups
    #[arg(long, value_parser = ["serial", "parallel"], default_value = "serial")]
    pub worker_apply_type: String,
    /// With parallel: the most hosts deployed at once
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_parallel_workers: u32,
    /// strict: no alarm may be raised to start; relaxed: no management-affecting one
    #[arg(long, value_parser = ["strict", "relaxed"], default_value = "strict")]
    pub alarm_restriction: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost deploy strategy apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
}

/// Where the site strategy stands: `applied` is done, `failed` and
/// `aborted` are failures, anything else is under way.
pub fn strategy_verdict(v: &Value) -> Verdict {
    match field(v, "state").as_str() {
        "applied" => Verdict::Done,
        state @ ("failed" | "aborted") => {
            let reason = field(v, "reason");
            Verdict::Failed(format!(
                "the strategy is {state}{}{reason} (`roost deploy show` shows each host)",
                if reason.is_empty() { "" } else { ": " }
            ))
        }
        _ => Verdict::Running,
    }
}

/// Flags of `roost deploy strategy show`.
#[derive(clap::Args, Debug)]
pub struct StrategyShowArgs {
    /// Show it again as it changes until it is applied, failed or aborted
    /// (exit status 1 unless applied)
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// How often `--watch` asks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Runs one deploy verb.
pub(crate) fn run(cmd: DeployCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = connect(env)?;
    match cmd {
        DeployCommand::Show(args) => {
            let status = DeployStatus {
                deploy: parse(api.get("/v1/deploy", &Query::new())?, "deploy")?,
                hosts: parse(api.get("/v1/deploy_host", &Query::new())?, "deploy hosts")?,
            };
            if args.output.output.is_data() {
                let v = serde_json::to_value(&status)
                    .map_err(|e| Error::failure(format!("cannot print the deploy: {e}")))?;
                return print_data(io, &args.output, &v);
            }
            let Some(d) = status.deploy.first() else {
                writeln!(io.out, "No deploy in progress")?;
                return Ok(());
            };
            writeln!(
                io.out,
                "Deploy of {} ({} -> {}): {}",
                d.to_release_id, d.from_release, d.to_release, d.state
            )?;
            print_table(io, &args.output, &host_table(&status.hosts))
        }
        DeployCommand::Strategy(StrategyCommand::Create(args)) => {
            let req = StrategyRequest {
                release_id: args.release.clone(),
                worker_apply_type: Some(args.worker_apply_type.clone()),
                max_parallel_workers: Some(args.max_parallel_workers),
                alarm_restriction: Some(args.alarm_restriction.clone()),
            };
            let v = api.post("/v1/deploy/strategy", &req)?;
            print_strategy(&v, &args.output, io)?;
            if !args.output.output.is_data() {
                writeln!(io.err, "Next: roost deploy strategy apply")?;
            }
            Ok(())
        }
        DeployCommand::Strategy(StrategyCommand::Show(args)) => {
            let mut last = None;
            loop {
                let v = api.get("/v1/deploy/strategy", &Query::new())?;
                if last.as_ref() != Some(&v) {
                    print_strategy(&v, &args.output, io)?;
                    io.out.flush()?;
                }
                let state = field(&v, "state");
                if !args.watch || state != "applying" {
                    if args.watch && state != "applied" {
                        return Err(Error::failure(format!(
                            "the strategy is {state}: {}",
                            field(&v, "reason")
                        )));
                    }
                    return Ok(());
                }
                last = Some(v);
                std::thread::sleep(WATCH_EVERY);
            }
        }
        DeployCommand::Strategy(StrategyCommand::Apply(args)) => {
            let reply = api.post("/v1/deploy/strategy/actions", &action("apply"))?;
            if !args.wait.wait {
                writeln!(io.out, "Started applying the strategy")?;
                writeln!(
                    io.err,
                    "Next: roost deploy strategy show --watch (or add --wait)"
                )?;
                return Ok(());
            }
            let first = if reply.get("state").is_some() {
                reply
            } else {
                api.get("/v1/deploy/strategy", &Query::new())?
            };
            let last = crate::wait::wait_for(
                io,
                &args.wait,
                first,
                || api.get("/v1/deploy/strategy", &Query::new()),
                |v| {
                    Ok(Look {
                        subject: format!("strategy for {}", field(v, "release_id")),
                        state: strategy_progress(v),
                        verdict: strategy_verdict(v),
                    })
                },
                |_, look, waited| {
                    Error::failure(crate::wait::timeout_message(
                        waited,
                        "the strategy to be applied",
                        look,
                        "`roost deploy strategy show` shows its stages",
                    ))
                },
            )?;
            writeln!(
                io.out,
                "Applied the strategy for {}",
                field(&last, "release_id")
            )?;
            Ok(())
        }
        DeployCommand::Strategy(StrategyCommand::Abort) => {
            api.post("/v1/deploy/strategy/actions", &action("abort"))?;
            writeln!(io.out, "Aborted the strategy")?;
            Ok(())
        }
        DeployCommand::Strategy(StrategyCommand::Delete) => {
            api.delete("/v1/deploy/strategy")?;
            writeln!(io.out, "Deleted the strategy")?;
            Ok(())
        }
    }
}

/// The strategy's state and stage count: `applying (2 of 5 stages done)`.
fn strategy_progress(v: &Value) -> String {
    let stages = v
        .get("stages")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    format!(
        "{} ({} of {stages} stages done)",
        field(v, "state"),
        field(v, "stages_done")
    )
}

fn action(a: &str) -> StrategyAction {
    StrategyAction {
        action: a.to_string(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::failure(format!("unexpected {what}: {e}")))
}

/// The hosts of a deploy: Host, Runs, Target, State, Message.
fn host_table(hosts: &[DeployHostView]) -> comfy_table::Table {
    let mut t = new_table(&["Host", "Runs", "Target", "State", "Message"]);
    for h in hosts {
        t.add_row(vec![
            h.hostname.clone(),
            h.software_release.clone(),
            h.target_release.clone().unwrap_or_default(),
            h.host_state.clone().unwrap_or_default(),
            crate::output::short_text(&h.message),
        ]);
    }
    t
}

/// The strategy: a line with its state, then one row per stage.
fn print_strategy(v: &Value, output: &OutputArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if output.output.is_data() {
        return print_data(io, output, v);
    }
    let s: StrategyView = serde_json::from_value(v.clone())
        .map_err(|e| Error::failure(format!("unexpected strategy: {e}")))?;
    writeln!(
        io.out,
        "Strategy for {}: {} ({} of {} stages done; {}, up to {} at once, {} alarm restriction)",
        s.release_id,
        s.state,
        s.stages_done,
        s.stages.len(),
        s.worker_apply_type,
        s.max_parallel_workers,
        s.alarm_restriction
    )?;
    if !s.reason.is_empty() {
        writeln!(io.out, "Reason: {}", s.reason)?;
    }
    let mut t = new_table(&["#", "Stage", "State", "Started", "Finished", "Reason"]);
    for (i, st) in s.stages.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            st.name.clone(),
            st.state.clone(),
            crate::output::short_opt_time(st.started_at.as_deref()),
            crate::output::short_opt_time(st.finished_at.as_deref()),
            crate::output::short_text(&st.reason),
        ]);
    }
    print_table(io, output, &t)
}

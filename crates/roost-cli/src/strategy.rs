//! `roost strategy …`: the fleet rollout of a system controller
//! (dcmanager's `sw-deploy` strategy, `/v1.0/sw-update-strategy`), with
//! Roost's canary stage, approval, soak and automatic rollback, and
//! strategy-config (`/v1.0/sw-update-options`).

use std::time::Duration;

use roost_api::orchestration::{
    StrategyAction, StrategyStepList, SwUpdateOptions, SwUpdateOptionsList, SwUpdateOptionsWrite,
    SwUpdateStrategy, SwUpdateStrategyCreate,
};
use serde_json::Value;

use crate::credentials::Env;
use crate::error::Error;
use crate::output::{
    Column, OutputArgs, list_items, new_table, print_data, print_table, render_list,
};
use crate::query::Query;
use crate::wait::{Look, Verdict, WaitArgs};
use crate::{Io, connect};

const STRATEGY: &str = "/v1.0/sw-update-strategy";
const TYPED: &str = "/v1.0/sw-update-strategy?type=sw-deploy";

/// Strategy verbs.
#[derive(clap::Subcommand, Debug)]
pub enum StrategyCommand {
    /// Create the rollout of a release to the managed subclouds
    #[command(
        after_help = "Examples:\n  roost strategy create roost-0.2.0 --canary 2 --approval \
                            --soak 600 --auto-rollback\n  roost strategy create roost-0.2.0 \
                            --group edge --stop-on-failure\n  roost strategy apply"
    )]
    Create(StrategyCreateArgs),
    /// Show the strategy, its stages and steps (--watch: live, until it ends or waits)
    Show(FleetShowArgs),
    /// Apply the strategy; after a canary stage, approve the rest
    /// (--wait: until it is complete, failed, aborted or awaits approval)
    Apply(FleetApplyArgs),
    /// Abort the strategy: steps under way finish, the others do not start
    Abort,
    /// Delete the strategy (not while it applies)
    Delete,
    /// The options each subcloud's site strategy runs with (strategy-config)
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Flags of `roost strategy create`.
#[derive(clap::Args, Debug)]
pub struct StrategyCreateArgs {
    /// The release to roll out (uploaded on this system controller)
    #[arg(required_unless_present = "rollback")]
    pub release: Option<String>,
    /// Roll back the subclouds' deploys in progress instead
    #[arg(long, conflicts_with_all = ["release", "canary", "canary_group", "auto_rollback"])]
    pub rollback: bool,
    /// Only this subcloud
    #[arg(long, conflicts_with = "group")]
    pub cloud: Option<String>,
    /// Only the subclouds of this group (each group's own apply type otherwise)
    #[arg(long)]
    pub group: Option<String>,
    /// serial or parallel over subclouds (default: each group's setting)
    #[arg(long, value_parser = ["serial", "parallel"], conflicts_with = "group")]
    pub subcloud_apply_type: Option<String>,
    /// The most subclouds updated at once
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5000), conflicts_with = "group")]
    pub max_parallel_subclouds: Option<u32>,
    /// Start no further subcloud after a failure
    #[arg(long)]
    pub stop_on_failure: bool,
    /// The first N subclouds form a canary stage
    #[arg(long, conflicts_with = "canary_group")]
    pub canary: Option<u32>,
    /// The subclouds of this group form the canary stage
    #[arg(long)]
    pub canary_group: Option<String>,
    /// After the canary stage, wait for `roost strategy apply`
    #[arg(long)]
    pub approval: bool,
    /// Seconds each updated subcloud must stay online and free of
    /// management-affecting alarms before it counts as updated
    #[arg(long, default_value_t = 0)]
    pub soak: u64,
    /// Roll failed subclouds back to the release they ran
    #[arg(long)]
    pub auto_rollback: bool,
    /// Seconds offline subclouds are waited for (default one day)
    #[arg(long)]
    pub defer: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost strategy apply`.
#[derive(clap::Args, Debug)]
pub struct FleetApplyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
}

/// Where the fleet strategy stands: `complete` and `awaiting approval`
/// end a wait, `failed` and `aborted` are failures, anything else is
/// under way.
pub fn fleet_verdict(s: &SwUpdateStrategy) -> Verdict {
    match s.state.as_str() {
        "complete" | "awaiting approval" => Verdict::Done,
        "failed" | "aborted" => Verdict::Failed(format!(
            "the strategy is {}{}{} (`roost strategy show` shows each subcloud's step)",
            s.state,
            if s.reason.is_empty() { "" } else { ": " },
            s.reason
        )),
        _ => Verdict::Running,
    }
}

/// Flags of `roost strategy show`.
#[derive(clap::Args, Debug)]
pub struct FleetShowArgs {
    /// Show it again as it changes, until it ends or waits for approval
    /// (exit status 1 when it failed or was aborted)
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// strategy-config verbs.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// The defaults and each subcloud's own options
    List(ConfigOutputArgs),
    /// One subcloud's options, or the defaults
    Show(ConfigShowArgs),
    /// Set a subcloud's options, or the defaults (all five are needed)
    #[command(
        after_help = "Example:\n  roost strategy config update --storage-apply-type parallel \
                            --worker-apply-type serial --max-parallel-workers 4 \
                            --alarm-restriction-type relaxed --default-instance-action migrate edge-1"
    )]
    Update(ConfigUpdateArgs),
    /// Delete a subcloud's options (the defaults apply again), or reset the defaults
    Delete(ConfigDeleteArgs),
}

/// Output flags of `roost strategy config list`.
#[derive(clap::Args, Debug)]
pub struct ConfigOutputArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost strategy config show`.
#[derive(clap::Args, Debug)]
pub struct ConfigShowArgs {
    /// A subcloud (name or id); the defaults when left out
    pub cloud: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost strategy config update`.
#[derive(clap::Args, Debug)]
pub struct ConfigUpdateArgs {
    /// A subcloud (name or id); the defaults when left out
    pub cloud: Option<String>,
    #[arg(long, value_parser = ["serial", "parallel"])]
    #[allow(missing_docs)]
    pub storage_apply_type: String,
    #[arg(long, value_parser = ["serial", "parallel"])]
    #[allow(missing_docs)]
    pub worker_apply_type: String,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    #[allow(missing_docs)]
    pub max_parallel_workers: u32,
    #[arg(long, value_parser = ["strict", "relaxed"])]
    #[allow(missing_docs)]
    pub alarm_restriction_type: String,
    #[arg(long, value_parser = ["stop-start", "migrate"])]
    #[allow(missing_docs)]
    pub default_instance_action: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost strategy config delete`.
#[derive(clap::Args, Debug)]
pub struct ConfigDeleteArgs {
    /// A subcloud (name or id), or SystemController to reset the defaults
    pub cloud: String,
}

/// How often `--watch` asks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::failure(format!("unexpected {what}: {e}")))
}

fn options_path(cloud: Option<&str>) -> String {
    format!(
        "/v1.0/sw-update-options/{}",
        cloud.unwrap_or("SystemController")
    )
}

/// Runs one strategy verb.
pub(crate) fn run(cmd: StrategyCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = connect(env)?;
    match cmd {
        StrategyCommand::Create(a) => {
            let num = |n: Option<u64>| n.map(Value::from);
            let req = SwUpdateStrategyCreate {
                strategy_type: Some("sw-deploy".into()),
                subcloud_apply_type: a.subcloud_apply_type.clone(),
                max_parallel_subclouds: num(a.max_parallel_subclouds.map(u64::from)),
                stop_on_failure: Some(Value::from(if a.stop_on_failure {
                    "true"
                } else {
                    "false"
                })),
                cloud_name: a.cloud.clone(),
                subcloud_group: a.group.clone(),
                release_id: a.release.clone(),
                rollback: Some(Value::Bool(a.rollback)),
                canary: num(a.canary.map(u64::from)),
                canary_group: a.canary_group.clone(),
                approval: Some(Value::Bool(a.approval)),
                soak_secs: Some(Value::from(a.soak)),
                auto_rollback: Some(Value::Bool(a.auto_rollback)),
                defer_secs: num(a.defer),
                ..Default::default()
            };
            let v = api.post(&format!("{STRATEGY}/"), &req)?;
            print_strategy(&v, None, &a.output, io)?;
            if !a.output.output.is_data() {
                writeln!(io.err, "Next: roost strategy apply")?;
            }
            Ok(())
        }
        StrategyCommand::Show(args) => {
            let mut last = None;
            loop {
                let v = api.get(TYPED, &Query::new())?;
                let steps = api.get(&format!("{STRATEGY}/steps"), &Query::new())?;
                let now = (v.clone(), steps.clone());
                if last.as_ref() != Some(&now) {
                    print_strategy(&v, Some(&steps), &args.output, io)?;
                    io.out.flush()?;
                }
                let s: SwUpdateStrategy = parse(v, "strategy")?;
                let over = !matches!(
                    s.state.as_str(),
                    "applying" | "abort requested" | "aborting"
                );
                if !args.watch || over {
                    if args.watch && matches!(s.state.as_str(), "failed" | "aborted") {
                        return Err(Error::failure(format!(
                            "the strategy is {}: {}",
                            s.state, s.reason
                        )));
                    }
                    if args.watch && s.state == "awaiting approval" {
                        writeln!(
                            io.err,
                            "Next: roost strategy apply (approves the next stages)"
                        )?;
                    }
                    return Ok(());
                }
                last = Some(now);
                std::thread::sleep(WATCH_EVERY);
            }
        }
        StrategyCommand::Apply(args) => {
            let v = api.post(
                &format!("{STRATEGY}/actions?type=sw-deploy"),
                &StrategyAction {
                    action: "apply".into(),
                },
            )?;
            let s: SwUpdateStrategy = parse(v.clone(), "strategy")?;
            if !args.wait.wait {
                writeln!(io.out, "Started applying the strategy ({})", s.state)?;
                writeln!(io.err, "Next: roost strategy show --watch (or add --wait)")?;
                return Ok(());
            }
            let last = crate::wait::wait_for(
                io,
                &args.wait,
                s,
                || parse(api.get(TYPED, &Query::new())?, "strategy"),
                |s: &SwUpdateStrategy| {
                    Ok(Look {
                        subject: format!("strategy {}", s.id),
                        state: s.state.clone(),
                        verdict: fleet_verdict(s),
                    })
                },
                |_, look, waited| {
                    Error::failure(crate::wait::timeout_message(
                        waited,
                        "the strategy to end",
                        look,
                        "`roost strategy show` shows each subcloud's step",
                    ))
                },
            )?;
            if last.state == "awaiting approval" {
                writeln!(io.out, "Applied the canary stage of the strategy")?;
                writeln!(
                    io.err,
                    "Next: roost strategy apply (approves the next stages)"
                )?;
            } else {
                writeln!(io.out, "Applied the strategy")?;
            }
            Ok(())
        }
        StrategyCommand::Abort => {
            api.post(
                &format!("{STRATEGY}/actions?type=sw-deploy"),
                &StrategyAction {
                    action: "abort".into(),
                },
            )?;
            writeln!(io.out, "Started aborting the strategy")?;
            Ok(())
        }
        StrategyCommand::Delete => {
            api.delete(TYPED)?;
            writeln!(io.out, "Deleted the strategy")?;
            Ok(())
        }
        StrategyCommand::Config(ConfigCommand::List(a)) => {
            let v = api.get("/v1.0/sw-update-options", &Query::new())?;
            if a.output.output.is_data() && a.output.columns.is_empty() {
                return print_data(io, &a.output, &v);
            }
            // Checked for its shape; the columns read the JSON.
            let _: SwUpdateOptionsList = parse(v.clone(), "strategy options")?;
            let items = list_items(&v, "sw-update-options")?;
            render_list(io, &a.output, &options_columns(), &items, "")
        }
        StrategyCommand::Config(ConfigCommand::Show(a)) => {
            let v = api.get(&options_path(a.cloud.as_deref()), &Query::new())?;
            if a.output.output.is_data() {
                return print_data(io, &a.output, &v);
            }
            let o: SwUpdateOptions = parse(v, "strategy options")?;
            print_table(io, &a.output, &options_table(&[o]))
        }
        StrategyCommand::Config(ConfigCommand::Update(a)) => {
            let w = SwUpdateOptionsWrite {
                storage_apply_type: a.storage_apply_type.clone(),
                worker_apply_type: a.worker_apply_type.clone(),
                max_parallel_workers: Value::from(a.max_parallel_workers),
                alarm_restriction_type: a.alarm_restriction_type.clone(),
                default_instance_action: a.default_instance_action.clone(),
            };
            let v = api.post(&options_path(a.cloud.as_deref()), &w)?;
            if a.output.output.is_data() {
                return print_data(io, &a.output, &v);
            }
            let o: SwUpdateOptions = parse(v, "strategy options")?;
            print_table(io, &a.output, &options_table(&[o]))
        }
        StrategyCommand::Config(ConfigCommand::Delete(a)) => {
            api.delete(&options_path(Some(&a.cloud)))?;
            writeln!(io.out, "Deleted the strategy options of {}", a.cloud)?;
            Ok(())
        }
    }
}

/// The columns of `roost strategy config list`: Cloud, Storage apply,
/// Worker apply, Max workers, Alarm restriction, Instance action; wide
/// adds the subcloud's ID and the last update.
pub fn options_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Cloud", "name"),
        Column::key("Storage apply", "storage-apply-type"),
        Column::key("Worker apply", "worker-apply-type"),
        Column::key("Max workers", "max-parallel-workers"),
        Column::key("Alarm restriction", "alarm-restriction-type"),
        Column::key("Instance action", "default-instance-action"),
        Column::key("Subcloud ID", "subcloud-id").wide(),
        Column::key("Updated", "updated-at").wide(),
    ]
}

fn options_table(items: &[SwUpdateOptions]) -> comfy_table::Table {
    let mut t = new_table(&[
        "Cloud",
        "Storage apply",
        "Worker apply",
        "Max workers",
        "Alarm restriction",
        "Instance action",
    ]);
    for o in items {
        t.add_row(vec![
            o.name.clone(),
            o.storage_apply_type.clone(),
            o.worker_apply_type.clone(),
            o.max_parallel_workers.to_string(),
            o.alarm_restriction_type.clone(),
            o.default_instance_action.clone(),
        ]);
    }
    t
}

/// The strategy: a line with its state, a row per stage with its progress,
/// then (when given) a row per step.
fn print_strategy(
    v: &Value,
    steps: Option<&Value>,
    output: &OutputArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    if output.output.is_data() {
        return print_data(io, output, v);
    }
    let s: SwUpdateStrategy = parse(v.clone(), "strategy")?;
    let release = s
        .extra_args
        .get("release_id")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or("rollback");
    writeln!(
        io.out,
        "Strategy {} ({}, {}): {}{}",
        s.id,
        s.strategy_type,
        release,
        s.state,
        if s.stop_on_failure {
            ", stops on failure"
        } else {
            ""
        }
    )?;
    if !s.reason.is_empty() {
        writeln!(io.out, "Reason: {}", s.reason)?;
    }
    let mut t = new_table(&["#", "Stage", "At once", "Subclouds", "Progress"]);
    for st in &s.stages {
        let progress: Vec<String> = st
            .states
            .iter()
            .map(|c| format!("{} {}", c.count, c.state))
            .collect();
        t.add_row(vec![
            st.stage.to_string(),
            st.name.clone(),
            st.max_parallel.to_string(),
            st.subclouds.to_string(),
            progress.join(", "),
        ]);
    }
    // With the steps, -c picks their columns.
    let stage_output = if steps.is_some() {
        output.without_columns()
    } else {
        output.clone()
    };
    print_table(io, &stage_output, &t)?;
    if let Some(steps) = steps {
        let l: StrategyStepList = parse(steps.clone(), "strategy steps")?;
        let mut t = new_table(&["Cloud", "Stage", "State", "Started", "Finished", "Details"]);
        for st in &l.strategy_steps {
            t.add_row(vec![
                st.cloud.clone(),
                st.stage.to_string(),
                st.state.clone(),
                crate::output::short_opt_time(st.started_at.as_deref()),
                crate::output::short_opt_time(st.finished_at.as_deref()),
                crate::output::short_text(&st.details),
            ]);
        }
        print_table(io, output, &t)?;
    }
    Ok(())
}

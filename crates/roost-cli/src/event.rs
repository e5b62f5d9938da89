//! `roost event …`: the event log (alarm set and clear records, and logs).

use crate::alarm::marked_id;
use crate::client::path_segment;
use crate::credentials::Env;
use crate::error::Error;
use crate::output::{
    Column, OutputArgs, detail_rows, field, list_items, render_detail, render_list, short_time,
};
use crate::query::Query;
use crate::{Io, connect};

/// Rows `roost event list` asks for when no `--limit` is given.
pub const DEFAULT_EVENT_LIMIT: u32 = 100;

/// The fields `roost event show` prints first, in this order (those of
/// StarlingX's `fm event-show`); other fields follow alphabetically.
pub const EVENT_SHOW_FIELDS: &[&str] = &[
    "uuid",
    "event_log_id",
    "state",
    "entity_type_id",
    "entity_instance_id",
    "timestamp",
    "severity",
    "reason_text",
    "event_log_type",
    "probable_cause",
    "proposed_repair_action",
    "service_affecting",
    "suppression",
    "suppression_status",
];

/// Event log verbs.
#[derive(clap::Subcommand, Debug)]
pub enum EventCommand {
    /// List events, newest first
    List(EventListArgs),
    /// Show every field of one event
    Show(EventShowArgs),
}

/// Flags of `roost event list`. Filters match as substrings and combine with AND.
#[derive(clap::Args, Debug)]
pub struct EventListArgs {
    /// Only events whose ID contains this, e.g. 200.001
    #[arg(long)]
    pub event_id: Option<String>,
    /// Only events whose entity instance ID contains this, e.g. host=controller-0
    #[arg(long)]
    pub entity: Option<String>,
    /// Only events whose entity type ID contains this, e.g. host
    #[arg(long)]
    pub entity_type: Option<String>,
    /// Only events of this severity (critical, major, minor, warning or not-applicable)
    #[arg(long, value_parser = parse_event_severity)]
    pub severity: Option<String>,
    /// Only events in this state
    #[arg(long, value_parser = ["set", "clear", "log"])]
    pub state: Option<String>,
    /// Only events at or after this UTC time, e.g. 2026-11-01T10:00:00
    #[arg(long)]
    pub start: Option<String>,
    /// Only events at or before this UTC time, e.g. 2026-11-02T10:00:00
    #[arg(long)]
    pub end: Option<String>,
    /// Only alarm events (set and clear)
    #[arg(long, conflicts_with = "logs")]
    pub alarms: bool,
    /// Only log events
    #[arg(long)]
    pub logs: bool,
    /// Also show events whose ID is suppressed (marked S(id))
    #[arg(long)]
    pub include_suppressed: bool,
    /// At most this many events
    #[arg(long, default_value_t = DEFAULT_EVENT_LIMIT, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: crate::wait::WatchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost event show`.
#[derive(clap::Args, Debug)]
pub struct EventShowArgs {
    /// UUID of the event
    pub uuid: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Accepts any severity (any case) and returns the wire spelling.
fn parse_event_severity(raw: &str) -> Result<String, roost_types::Error> {
    raw.parse::<roost_types::Severity>()
        .map(|s| s.as_str().to_string())
}

/// Runs one event verb.
pub(crate) fn run(cmd: EventCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        EventCommand::List(args) => crate::wait::watch(io, &args.watch, |io| list(&args, env, io)),
        EventCommand::Show(args) => show(&args, env, io),
    }
}

/// The query of `roost event list`.
pub fn list_query(args: &EventListArgs) -> Query {
    let limit = args.limit.to_string();
    Query::new()
        .filter("event_log_id", args.event_id.as_deref())
        .filter("entity_instance_id", args.entity.as_deref())
        .filter("entity_type_id", args.entity_type.as_deref())
        .filter("severity", args.severity.as_deref())
        .filter("state", args.state.as_deref())
        .filter("start", args.start.as_deref())
        .filter("end", args.end.as_deref())
        .flag("alarms", args.alarms)
        .flag("logs", args.logs)
        .flag("include_suppress", args.include_suppressed)
        .param("limit", Some(&limit))
        .flag("expand", true)
}

fn list(args: &EventListArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get("/v1/event_log", &list_query(args))?;
    let events = list_items(&reply, "event_log")?;
    render_list(io, &args.output, &event_columns(), &events, "No events")?;
    let more = reply.get("next").is_some_and(|n| !n.is_null())
        || events.len() as u64 >= u64::from(args.limit);
    if more && !args.output.output.is_data() {
        let n = events.len();
        let noun = if n == 1 { "event" } else { "events" };
        writeln!(
            io.err,
            "(the newest {n} {noun} shown; more may exist: raise --limit or narrow with --start/--end)"
        )?;
    }
    Ok(())
}

/// The columns of `roost event list`: Time, State, Event ID, Severity,
/// Entity, Reason; wide adds the UUID and the entity type.
pub fn event_columns() -> Vec<Column<'static>> {
    vec![
        Column::with("Time (UTC)", Some("timestamp"), |e| {
            short_time(&field(e, "timestamp"))
        }),
        Column::key("State", "state"),
        Column::with("Event ID", Some("event_log_id"), |e| {
            marked_id(e, "event_log_id")
        }),
        Column::key("Severity", "severity"),
        Column::key("Entity", "entity_instance_id"),
        Column::key("Reason", "reason_text").long(),
        Column::key("UUID", "uuid").wide(),
        Column::key("Entity type", "entity_type_id").wide(),
    ]
}

fn show(args: &EventShowArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("/v1/event_log/{}", path_segment("event UUID", &args.uuid)?);
    let api = &connect(env)?;
    let event = api
        .get(&path, &Query::new())
        .map_err(crate::style::not_found(
            "event",
            "UUID",
            &args.uuid,
            "`roost event list` shows the UUIDs",
        ))?;
    render_detail(
        io,
        &args.output,
        &event,
        &detail_rows(&event, EVENT_SHOW_FIELDS),
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
        cmd: EventCommand,
    }

    fn list_args(args: &[&str]) -> EventListArgs {
        let mut argv = vec!["event", "list"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().cmd {
            EventCommand::List(args) => args,
            EventCommand::Show(_) => panic!("not a list"),
        }
    }

    #[test]
    fn event_list_asks_for_100_expanded_rows_by_default() {
        assert_eq!(
            list_query(&list_args(&[])).encode(),
            "limit=100&expand=True"
        );
    }

    #[test]
    fn event_list_sends_filters_times_and_flags() {
        let args = list_args(&[
            "--event-id",
            "200.001",
            "--entity",
            "host=controller-0",
            "--entity-type",
            "host",
            "--severity",
            "critical",
            "--state",
            "clear",
            "--start",
            "2026-11-01T10:00:00",
            "--end",
            "2026-11-02T10:00:00",
            "--logs",
            "--include-suppressed",
            "--limit",
            "7",
        ]);
        assert_eq!(
            list_query(&args).encode(),
            "q.field=event_log_id&q.op=eq&q.type=&q.value=200.001\
             &q.field=entity_instance_id&q.op=eq&q.type=&q.value=host%3Dcontroller-0\
             &q.field=entity_type_id&q.op=eq&q.type=&q.value=host\
             &q.field=severity&q.op=eq&q.type=&q.value=critical\
             &q.field=state&q.op=eq&q.type=&q.value=clear\
             &q.field=start&q.op=eq&q.type=&q.value=2026-11-01T10%3A00%3A00\
             &q.field=end&q.op=eq&q.type=&q.value=2026-11-02T10%3A00%3A00\
             &logs=True&include_suppress=True&limit=7&expand=True"
        );
    }

    #[test]
    fn alarms_and_logs_together_and_unknown_states_are_rejected() {
        assert!(Cli::try_parse_from(["event", "list", "--alarms", "--logs"]).is_err());
        assert!(Cli::try_parse_from(["event", "list", "--state", "msg"]).is_err());
        assert_eq!(
            list_query(&list_args(&["--alarms"])).encode(),
            "alarms=True&limit=100&expand=True"
        );
    }

    #[test]
    fn the_event_table_shows_state_and_marks_suppressed_ids() {
        let events = vec![json!({
            "uuid": "e-1", "event_log_id": "100.101", "state": "set",
            "entity_instance_id": "host=controller-0", "severity": "major",
            "timestamp": "2026-11-26T18:16:12.086207", "reason_text": "CPU high",
            "suppression_status": "suppressed"
        })];
        let text = crate::output::list_text(&event_columns(), &events, &OutputArgs::default());
        for expected in [
            "S(100.101)",
            "set",
            "2026-11-26 18:16:12",
            "CPU high",
            "Event ID",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
    }
}

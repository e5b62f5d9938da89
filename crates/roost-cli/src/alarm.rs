//! `roost alarm …`: active alarms, their summary, manual clears and
//! suppression of alarm IDs.

use std::collections::BTreeSet;

use comfy_table::Table;
use roost_api::fm::{AlarmPost, PatchOp};
use serde_json::Value;

use crate::client::path_segment;
use crate::credentials::Env;
use crate::error::Error;
use crate::output::{
    Column, OutputArgs, detail_rows, field, list_items, new_table, print_data, print_table,
    render_detail, render_list, short_time,
};
use crate::query::Query;
use crate::{Io, connect};

/// The fields `roost alarm show` prints first, in this order (those of
/// StarlingX's `fm alarm-show`); other fields follow alphabetically.
pub const ALARM_SHOW_FIELDS: &[&str] = &[
    "uuid",
    "alarm_id",
    "alarm_state",
    "entity_type_id",
    "entity_instance_id",
    "timestamp",
    "severity",
    "reason_text",
    "alarm_type",
    "probable_cause",
    "proposed_repair_action",
    "service_affecting",
    "suppression",
    "suppression_status",
    "mgmt_affecting",
    "degrade_affecting",
];

/// Alarm verbs.
#[derive(clap::Subcommand, Debug)]
pub enum AlarmCommand {
    /// List active alarms (most severe first)
    List(AlarmListArgs),
    /// Show every field of one alarm
    Show(AlarmShowArgs),
    /// Clear alarms: one by UUID, one by --alarm-id and --entity, or every
    /// alarm under an --entity prefix
    Clear(ClearArgs),
    /// Count active alarms by severity
    Summary(SummaryArgs),
    /// Suppress alarm IDs (hide them from lists and the summary), or show the
    /// suppression table with --list
    Suppress(SuppressArgs),
    /// Stop suppressing alarm IDs
    Unsuppress(UnsuppressArgs),
}

/// Flags of `roost alarm list`. Filters match as substrings and combine with AND.
#[derive(clap::Args, Debug)]
pub struct AlarmListArgs {
    /// Only alarms whose ID contains this, e.g. 100.101
    #[arg(long)]
    pub alarm_id: Option<String>,
    /// Only alarms whose entity instance ID contains this, e.g. host=controller-0
    #[arg(long)]
    pub entity: Option<String>,
    /// Only alarms whose entity type ID contains this, e.g. host
    #[arg(long)]
    pub entity_type: Option<String>,
    /// Only alarms of this severity (critical, major, minor or warning)
    #[arg(long, value_parser = parse_alarm_severity)]
    pub severity: Option<String>,
    /// Only alarms of this X.733 alarm type, e.g. equipment
    #[arg(long = "type")]
    pub alarm_type: Option<String>,
    /// Also show alarms whose ID is suppressed (marked S(id))
    #[arg(long)]
    pub include_suppressed: bool,
    /// At most this many alarms (default: all)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: crate::wait::WatchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost alarm show`.
#[derive(clap::Args, Debug)]
pub struct AlarmShowArgs {
    /// UUID of the alarm
    pub uuid: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost alarm clear`.
#[derive(clap::Args, Debug)]
pub struct ClearArgs {
    /// UUID of the alarm to clear
    pub uuid: Option<String>,
    /// Alarm ID to clear (needs --entity), e.g. 100.101
    #[arg(long)]
    pub alarm_id: Option<String>,
    /// Entity instance ID; without --alarm-id, every alarm under this prefix is cleared
    #[arg(long)]
    pub entity: Option<String>,
}

/// Flags of `roost alarm summary`.
#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// Also count alarms whose ID is suppressed
    #[arg(long)]
    pub include_suppressed: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost alarm suppress`.
#[derive(clap::Args, Debug)]
pub struct SuppressArgs {
    /// Alarm IDs to suppress, e.g. 100.101
    #[arg(required_unless_present = "list")]
    pub alarm_ids: Vec<String>,
    /// Show the suppression table (every alarm ID and its status) instead
    #[arg(long, conflicts_with = "alarm_ids")]
    pub list: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost alarm unsuppress`.
#[derive(clap::Args, Debug)]
pub struct UnsuppressArgs {
    /// Alarm IDs to stop suppressing, e.g. 100.101
    #[arg(required = true)]
    pub alarm_ids: Vec<String>,
}

/// Accepts the four alarm severities (any case; `warnings` too) and returns
/// the wire spelling.
fn parse_alarm_severity(raw: &str) -> Result<String, Error> {
    match raw.parse::<roost_types::Severity>() {
        Ok(roost_types::Severity::NotApplicable) | Err(_) => Err(Error::usage(format!(
            "{raw:?} is not an alarm severity (critical, major, minor or warning)"
        ))),
        Ok(severity) => Ok(severity.as_str().to_string()),
    }
}

/// Runs one alarm verb.
pub(crate) fn run(cmd: AlarmCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        AlarmCommand::List(args) => crate::wait::watch(io, &args.watch, |io| list(&args, env, io)),
        AlarmCommand::Show(args) => show(&args, env, io),
        AlarmCommand::Clear(args) => clear(&args, env, io),
        AlarmCommand::Summary(args) => summary(&args, env, io),
        AlarmCommand::Suppress(args) if args.list => suppress_list(&args.output, env, io),
        AlarmCommand::Suppress(args) => set_suppression(&args.alarm_ids, true, env, io),
        AlarmCommand::Unsuppress(args) => set_suppression(&args.alarm_ids, false, env, io),
    }
}

/// The query of `roost alarm list`.
pub fn list_query(args: &AlarmListArgs) -> Query {
    let limit = args.limit.map(|n| n.to_string());
    Query::new()
        .filter("alarm_id", args.alarm_id.as_deref())
        .filter("entity_instance_id", args.entity.as_deref())
        .filter("entity_type_id", args.entity_type.as_deref())
        .filter("severity", args.severity.as_deref())
        .filter("alarm_type", args.alarm_type.as_deref())
        .flag("include_suppress", args.include_suppressed)
        .param("limit", limit.as_deref())
        .flag("expand", true)
}

fn list(args: &AlarmListArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get("/v1/alarms", &list_query(args))?;
    let alarms = list_items(&reply, "alarms")?;
    let empty = if alarms.is_empty() && !args.include_suppressed {
        empty_message(api, args)
    } else {
        "No active alarms".to_string()
    };
    render_list(io, &args.output, &alarm_columns(), &alarms, &empty)?;
    let more = reply.get("next").is_some_and(|n| !n.is_null())
        || args
            .limit
            .is_some_and(|n| alarms.len() as u64 >= u64::from(n));
    if more && !args.output.output.is_data() {
        let n = alarms.len();
        let noun = if n == 1 { "alarm" } else { "alarms" };
        writeln!(
            io.err,
            "({n} {noun} shown; more may exist: raise or drop --limit)"
        )?;
    }
    Ok(())
}

/// The sentence of an empty `roost alarm list`: how many alarms the
/// filters match but suppression hides, and how to show them (asked of
/// the server again with `include_suppress`; left out when that fails).
fn empty_message(api: &crate::client::Api, args: &AlarmListArgs) -> String {
    let mut all = list_query(args);
    all = all.flag("include_suppress", true);
    let hidden = api
        .get("/v1/alarms", &all)
        .ok()
        .and_then(|reply| list_items(&reply, "alarms").ok())
        .map_or(0, |items| {
            items
                .iter()
                .filter(|a| field(a, "suppression_status") == "suppressed")
                .count()
        });
    if hidden == 0 {
        "No active alarms".to_string()
    } else {
        format!("No active alarms ({hidden} suppressed; --include-suppressed shows them)")
    }
}

/// The error of an alarm UUID the server does not know; an alarm ID
/// (`100.104`) typed instead of a UUID gets the way to find it by ID.
fn no_alarm(uuid: &str) -> String {
    let looks_like_id = uuid.contains('.') && uuid.chars().all(|c| c.is_ascii_digit() || c == '.');
    if looks_like_id {
        format!(
            "no alarm with UUID {uuid}: alarms are named by UUID here; `roost alarm list --alarm-id {uuid}` finds it by alarm ID"
        )
    } else {
        format!("no alarm with UUID {uuid} (`roost alarm list` shows the UUIDs)")
    }
}

/// The ID as a list shows it: `S(100.101)` when the ID is suppressed.
pub fn marked_id(item: &Value, key: &str) -> String {
    let id = field(item, key);
    if field(item, "suppression_status") == "suppressed" {
        format!("S({id})")
    } else {
        id
    }
}

/// The columns of `roost alarm list`: UUID, Alarm ID, Severity, Entity,
/// Reason, Time; wide adds the entity type, the alarm type and the
/// probable cause.
pub fn alarm_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("UUID", "uuid"),
        Column::with("Alarm ID", Some("alarm_id"), |a| marked_id(a, "alarm_id")),
        Column::key("Severity", "severity"),
        Column::key("Entity", "entity_instance_id"),
        Column::key("Reason", "reason_text").long(),
        Column::with("Time (UTC)", Some("timestamp"), |a| {
            short_time(&field(a, "timestamp"))
        }),
        Column::key("Entity type", "entity_type_id").wide(),
        Column::key("Alarm type", "alarm_type").wide(),
        Column::key("Probable cause", "probable_cause").wide(),
    ]
}

fn show(args: &AlarmShowArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("/v1/alarms/{}", path_segment("alarm UUID", &args.uuid)?);
    let api = &connect(env)?;
    let alarm = api
        .get(&path, &Query::new())
        .map_err(|e| e.on_status(404, || no_alarm(&args.uuid)))?;
    render_detail(
        io,
        &args.output,
        &alarm,
        &detail_rows(&alarm, ALARM_SHOW_FIELDS),
    )
}

/// What `roost alarm clear` was asked to clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearTarget {
    /// One alarm, by UUID.
    Uuid(String),
    /// One alarm, by its (alarm ID, entity instance ID) pair.
    Alarm {
        /// The alarm ID.
        alarm_id: String,
        /// The exact entity instance ID.
        entity: String,
    },
    /// Every alarm whose entity instance ID is under this prefix.
    EntityPrefix(String),
}

/// Checks the combination of clear arguments: a UUID alone, or `--entity`
/// with an optional `--alarm-id`. Anything else is a usage error.
pub fn clear_target(args: &ClearArgs) -> Result<ClearTarget, Error> {
    let nonempty = |flag: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
        Some("") => Err(Error::usage(format!("{flag} must not be empty"))),
        other => Ok(other.map(str::to_string)),
    };
    let uuid = nonempty("the alarm UUID", &args.uuid)?;
    let alarm_id = nonempty("--alarm-id", &args.alarm_id)?;
    let entity = nonempty("--entity", &args.entity)?;
    match (uuid, alarm_id, entity) {
        (Some(uuid), None, None) => Ok(ClearTarget::Uuid(uuid)),
        (Some(_), _, _) => Err(Error::usage(
            "give either an alarm UUID or --alarm-id/--entity, not both",
        )),
        (None, Some(alarm_id), Some(entity)) => Ok(ClearTarget::Alarm { alarm_id, entity }),
        (None, None, Some(entity)) => Ok(ClearTarget::EntityPrefix(entity)),
        (None, Some(_), None) => Err(Error::usage(
            "--alarm-id needs --entity (the alarm's entity instance ID)",
        )),
        (None, None, None) => Err(Error::usage(
            "say what to clear: an alarm UUID, --alarm-id with --entity, or --entity alone for every alarm under it",
        )),
    }
}

/// The `POST /v1/alarms` body of a clear by ID and entity or by entity prefix.
pub fn clear_body(target: &ClearTarget) -> Option<AlarmPost> {
    let clear = |alarm_id: Option<&String>, entity: &String| AlarmPost {
        alarm_state: Some("clear".into()),
        alarm_id: alarm_id.cloned(),
        entity_instance_id: Some(entity.clone()),
        ..AlarmPost::default()
    };
    match target {
        ClearTarget::Uuid(_) => None,
        ClearTarget::Alarm { alarm_id, entity } => Some(clear(Some(alarm_id), entity)),
        ClearTarget::EntityPrefix(entity) => Some(clear(None, entity)),
    }
}

/// How many alarms a clear reply says were cleared: the length of
/// `cleared`, else 1 when it names a `uuid`, else 0.
pub fn cleared_count(reply: &Value) -> usize {
    match reply.get("cleared") {
        Some(Value::Array(items)) => items.len(),
        _ => usize::from(reply.get("uuid").is_some_and(Value::is_string)),
    }
}

fn clear(args: &ClearArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let target = clear_target(args)?;
    let api = &connect(env)?;
    match (&target, clear_body(&target)) {
        (ClearTarget::Uuid(uuid), _) => {
            let path = format!("/v1/alarms/{}", path_segment("alarm UUID", uuid)?);
            api.delete(&path)
                .map_err(|e| e.on_status(404, || no_alarm(uuid)))?;
            writeln!(io.out, "Cleared alarm {uuid}")?;
        }
        (_, Some(body)) => {
            let reply = api.post("/v1/alarms", &body)?;
            writeln!(
                io.out,
                "Cleared {}",
                crate::style::count(cleared_count(&reply), "alarm", "alarms")
            )?;
        }
        (_, None) => unreachable!("only a UUID clear has no body"),
    }
    Ok(())
}

fn summary(args: &SummaryArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let query = Query::new().flag("include_suppress", args.include_suppressed);
    let reply = api.get("/v1/alarms/summary", &query)?;
    if args.output.output.is_data() {
        return print_data(io, &args.output, &reply);
    }
    print_table(io, &args.output, &summary_table(&reply))
}

/// The one-row table of `roost alarm summary`.
pub fn summary_table(summary: &Value) -> Table {
    let mut table = new_table(&["Critical", "Major", "Minor", "Warnings", "Status"]);
    table.add_row(
        ["critical", "major", "minor", "warnings", "status"]
            .iter()
            .map(|k| field(summary, k))
            .collect::<Vec<_>>(),
    );
    table
}

fn catalogue(api: &crate::client::Api) -> Result<Vec<Value>, Error> {
    let reply = api.get("/v1/event_suppression", &Query::new())?;
    list_items(&reply, "event_suppression")
}

fn suppress_list(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let mut items = catalogue(api)?;
    items.sort_by_key(|item| field(item, "alarm_id"));
    render_list(io, output, &suppression_columns(), &items, "")
}

/// The columns of `roost alarm suppress --list`: Alarm ID, Status,
/// Description; wide adds the entry's UUID.
pub fn suppression_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Alarm ID", "alarm_id"),
        Column::key("Status", "suppression_status"),
        Column::key("Description", "description").long(),
        Column::key("UUID", "uuid").wide(),
    ]
}

/// Maps each requested alarm ID (duplicates dropped, order kept) to its
/// suppression entry's UUID. Every ID is checked before anything changes:
/// IDs missing from the catalogue make the whole request fail.
pub fn plan_suppression(
    catalogue: &[Value],
    alarm_ids: &[String],
) -> Result<Vec<(String, String)>, Error> {
    let mut seen = BTreeSet::new();
    let mut plan = Vec::new();
    let mut unknown = Vec::new();
    for id in alarm_ids {
        let id = id.trim();
        if !seen.insert(id.to_string()) {
            continue;
        }
        match catalogue
            .iter()
            .find(|item| item.get("alarm_id").and_then(Value::as_str) == Some(id))
            .and_then(|item| item.get("uuid").and_then(Value::as_str))
        {
            Some(uuid) => plan.push((id.to_string(), uuid.to_string())),
            None => unknown.push(id.to_string()),
        }
    }
    match unknown.as_slice() {
        [] => Ok(plan),
        [one] => Err(Error::failure(format!(
            "alarm id {one} is not in the catalogue"
        ))),
        many => Err(Error::failure(format!(
            "alarm ids {} are not in the catalogue",
            many.join(", ")
        ))),
    }
}

/// The JSON-patch body that sets an entry's suppression status.
pub fn suppression_patch(suppress: bool) -> Vec<PatchOp> {
    let status = if suppress {
        "suppressed"
    } else {
        "unsuppressed"
    };
    vec![PatchOp::replace("/suppression_status", status)]
}

fn set_suppression(
    alarm_ids: &[String],
    suppress: bool,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let api = &connect(env)?;
    let plan = plan_suppression(&catalogue(api)?, alarm_ids)?;
    let body = suppression_patch(suppress);
    let word = if suppress {
        "Suppressed"
    } else {
        "Unsuppressed"
    };
    for (alarm_id, uuid) in plan {
        let path = format!(
            "/v1/event_suppression/{}",
            path_segment("suppression UUID", &uuid)?
        );
        api.patch(&path, &body)
            .map_err(|e| e.map_message(|m| format!("alarm id {alarm_id}: {m}")))?;
        writeln!(io.out, "{word} alarm ID {alarm_id}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputFormat;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: AlarmCommand,
    }

    fn parse(args: &[&str]) -> AlarmCommand {
        let mut argv = vec!["alarm"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().cmd
    }

    fn sample_alarms() -> Vec<Value> {
        vec![
            json!({
                "uuid": "6bd5c3c3-0b8a-4a52-9a5e-3a9ee1d2f001",
                "alarm_id": "100.101",
                "entity_instance_id": "host=controller-0",
                "severity": "major",
                "timestamp": "2026-11-26T18:16:12.086207",
                "reason_text": "Platform CPU threshold exceeded; threshold 90.00%, actual 96.71%; over a long long period of time",
                "suppression_status": "suppressed",
                "mgmt_affecting": "False",
                "degrade_affecting": "False"
            }),
            json!({
                "uuid": "6bd5c3c3-0b8a-4a52-9a5e-3a9ee1d2f002",
                "alarm_id": "200.001",
                "entity_instance_id": "host=compute-1",
                "severity": "warning",
                "timestamp": "2026-11-26T18:17:00.000000",
                "reason_text": "compute-1 was administratively locked to take it out-of-service.",
                "suppression_status": "unsuppressed",
                "mgmt_affecting": "True",
                "degrade_affecting": "False"
            }),
        ]
    }

    #[test]
    fn the_list_table_marks_suppressed_alarm_ids_with_s() {
        let text =
            crate::output::list_text(&alarm_columns(), &sample_alarms(), &OutputArgs::default());
        assert!(text.contains("S(100.101)"), "{text}");
        assert!(text.contains(" 200.001 "), "{text}");
        assert!(!text.contains("S(200.001)"), "{text}");
        for header in ["UUID", "Alarm ID", "Severity", "Entity", "Reason", "Time"] {
            assert!(text.contains(header), "{header}");
        }
        assert!(text.contains("2026-11-26 18:16:12"));
        assert!(text.contains("host=controller-0"));
    }

    #[test]
    fn the_list_table_truncates_long_reasons() {
        let text =
            crate::output::list_text(&alarm_columns(), &sample_alarms(), &OutputArgs::default());
        assert!(
            text.contains("Platform CPU threshold exceeded; threshold 90.00%, actual 9…"),
            "{text}"
        );
        assert!(!text.contains("long long period"));
    }

    #[test]
    fn alarm_list_sends_every_filter_as_a_q_triple_and_always_expands() {
        let AlarmCommand::List(args) = parse(&[
            "list",
            "--alarm-id",
            "100.101",
            "--entity",
            "host=controller-0",
            "--entity-type",
            "host",
            "--severity",
            "MAJOR",
            "--type",
            "equipment",
            "--include-suppressed",
            "--limit",
            "20",
        ]) else {
            panic!("not a list")
        };
        assert_eq!(
            list_query(&args).encode(),
            "q.field=alarm_id&q.op=eq&q.type=&q.value=100.101\
             &q.field=entity_instance_id&q.op=eq&q.type=&q.value=host%3Dcontroller-0\
             &q.field=entity_type_id&q.op=eq&q.type=&q.value=host\
             &q.field=severity&q.op=eq&q.type=&q.value=major\
             &q.field=alarm_type&q.op=eq&q.type=&q.value=equipment\
             &include_suppress=True&limit=20&expand=True"
        );
    }

    #[test]
    fn a_bare_alarm_list_only_asks_for_expanded_rows() {
        let AlarmCommand::List(args) = parse(&["list"]) else {
            panic!("not a list")
        };
        assert_eq!(list_query(&args).encode(), "expand=True");
        assert_eq!(args.output.output, OutputFormat::Table);
    }

    #[test]
    fn unknown_severities_and_a_zero_limit_are_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["alarm", "list", "--severity", "huge"]).is_err());
        assert!(Cli::try_parse_from(["alarm", "list", "--severity", "not-applicable"]).is_err());
        assert!(Cli::try_parse_from(["alarm", "list", "--limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["alarm", "list", "-o", "xml"]).is_err());
    }

    fn clear_args(uuid: Option<&str>, alarm_id: Option<&str>, entity: Option<&str>) -> ClearArgs {
        ClearArgs {
            uuid: uuid.map(Into::into),
            alarm_id: alarm_id.map(Into::into),
            entity: entity.map(Into::into),
        }
    }

    #[test]
    fn a_uuid_alone_clears_that_alarm() {
        assert_eq!(
            clear_target(&clear_args(Some("u-1"), None, None)).unwrap(),
            ClearTarget::Uuid("u-1".into())
        );
    }

    #[test]
    fn an_alarm_id_with_an_entity_clears_that_pair() {
        let target = clear_target(&clear_args(None, Some("100.101"), Some("host=c-0"))).unwrap();
        assert_eq!(
            serde_json::to_value(clear_body(&target).unwrap()).unwrap(),
            json!({"alarm_state": "clear", "alarm_id": "100.101", "entity_instance_id": "host=c-0"})
        );
    }

    #[test]
    fn an_entity_alone_clears_everything_under_that_prefix() {
        let target = clear_target(&clear_args(None, None, Some("host=c-0"))).unwrap();
        assert_eq!(target, ClearTarget::EntityPrefix("host=c-0".into()));
        assert_eq!(
            serde_json::to_value(clear_body(&target).unwrap()).unwrap(),
            json!({"alarm_state": "clear", "entity_instance_id": "host=c-0"})
        );
    }

    #[test]
    fn a_uuid_with_an_entity_or_alarm_id_is_a_usage_error() {
        for args in [
            clear_args(Some("u"), None, Some("host=c-0")),
            clear_args(Some("u"), Some("100.101"), None),
            clear_args(Some("u"), Some("100.101"), Some("host=c-0")),
        ] {
            assert_eq!(clear_target(&args).unwrap_err().code(), 2, "{args:?}");
        }
    }

    #[test]
    fn clearing_with_nothing_or_an_alarm_id_alone_or_empty_values_is_a_usage_error() {
        for args in [
            clear_args(None, None, None),
            clear_args(None, Some("100.101"), None),
            clear_args(None, None, Some("")),
            clear_args(Some(" "), None, None),
        ] {
            assert_eq!(clear_target(&args).unwrap_err().code(), 2, "{args:?}");
        }
    }

    #[test]
    fn the_cleared_count_comes_from_the_cleared_list() {
        assert_eq!(
            cleared_count(&json!({"uuid": "a", "cleared": ["a", "b"]})),
            2
        );
        assert_eq!(cleared_count(&json!({"uuid": null, "cleared": []})), 0);
        assert_eq!(cleared_count(&json!({"uuid": "a"})), 1);
        assert_eq!(cleared_count(&Value::Null), 0);
    }

    fn catalogue_sample() -> Vec<Value> {
        vec![
            json!({"uuid": "s-1", "alarm_id": "100.101", "description": "CPU", "suppression_status": "unsuppressed"}),
            json!({"uuid": "s-2", "alarm_id": "200.001", "description": "Locked", "suppression_status": "suppressed"}),
        ]
    }

    #[test]
    fn suppression_maps_ids_to_catalogue_uuids_once_each() {
        let ids = ["200.001".to_string(), "100.101".into(), "200.001".into()];
        assert_eq!(
            plan_suppression(&catalogue_sample(), &ids).unwrap(),
            vec![
                ("200.001".to_string(), "s-2".to_string()),
                ("100.101".to_string(), "s-1".to_string())
            ]
        );
    }

    #[test]
    fn suppression_of_an_unknown_id_fails_before_anything_changes() {
        let err = plan_suppression(&catalogue_sample(), &["100.101".into(), "999.999".into()])
            .unwrap_err();
        assert_eq!(err.message(), "alarm id 999.999 is not in the catalogue");
        assert_eq!(err.code(), 1);
        let err = plan_suppression(&catalogue_sample(), &["1.1".into(), "2.2".into()]).unwrap_err();
        assert_eq!(err.message(), "alarm ids 1.1, 2.2 are not in the catalogue");
    }

    #[test]
    fn the_suppression_patch_replaces_the_status() {
        assert_eq!(
            serde_json::to_value(suppression_patch(true)).unwrap(),
            json!([{"op": "replace", "path": "/suppression_status", "value": "suppressed"}])
        );
        assert_eq!(
            serde_json::to_value(suppression_patch(false)).unwrap()[0]["value"],
            "unsuppressed"
        );
    }

    #[test]
    fn suppress_needs_ids_or_list_but_not_both() {
        assert!(Cli::try_parse_from(["alarm", "suppress"]).is_err());
        assert!(Cli::try_parse_from(["alarm", "suppress", "--list", "100.101"]).is_err());
        assert!(Cli::try_parse_from(["alarm", "unsuppress"]).is_err());
        let AlarmCommand::Suppress(args) = parse(&["suppress", "--list", "-o", "json"]) else {
            panic!("not suppress")
        };
        assert!(args.list);
        assert_eq!(args.output.output, OutputFormat::Json);
    }

    #[test]
    fn the_summary_table_shows_the_four_counts_and_the_status() {
        let text = summary_table(
            &json!({"critical": 0, "major": 1, "minor": 0, "warnings": 2, "status": "degraded"}),
        )
        .force_no_tty()
        .to_string();
        for word in [
            "Critical", "Major", "Minor", "Warnings", "Status", "degraded",
        ] {
            assert!(text.contains(word), "{word}: {text}");
        }
    }
}

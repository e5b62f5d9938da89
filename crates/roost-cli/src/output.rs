//! Output helpers shared by the verbs: the `-o/--output`, `-c/--column`,
//! `--no-headers` and `--nowrap` flags, and the one place that turns rows
//! into a table, plain values, JSON or YAML.
//!
//! List verbs describe their columns ([`Column`]) and print through
//! [`render_list`]; show verbs print a Field/Value table through
//! [`render_detail`]; other verbs build a [`Table`] and print it with
//! [`print_table`], which honours the same flags.

use std::io::Write;

use comfy_table::{
    ColumnConstraint, ContentArrangement, ContentLineStyle, LineStyle, Table, TableStyle, presets,
};
use serde_json::Value;

use crate::Io;
use crate::error::{Error, one_line, truncate_chars};

/// Longest reason or description shown in a list table.
pub const REASON_WIDTH: usize = 60;

/// How a list or show verb prints its result.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// A human-readable table.
    #[default]
    Table,
    /// The table with the verb's extra columns and long text untruncated.
    Wide,
    /// Pretty-printed JSON, exactly as the server sent it (lists unwrapped).
    Json,
    /// The same data as json, in YAML.
    Yaml,
    /// The cells alone: separated by one space, one row per line, no header.
    Value,
}

impl OutputFormat {
    /// Whether this format prints the server's data (JSON or YAML) rather
    /// than a table.
    pub fn is_data(self) -> bool {
        matches!(self, OutputFormat::Json | OutputFormat::Yaml)
    }
}

/// The output flags of every list and show verb.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Print only this column (repeatable, in the order given); with json or yaml, only this key of each item
    #[arg(short = 'c', long = "column", value_name = "COLUMN")]
    pub columns: Vec<String>,
    /// Leave out the header line of tables
    #[arg(long)]
    pub no_headers: bool,
    /// Never wrap table cells: rows are as wide as their content
    #[arg(long)]
    pub nowrap: bool,
}

impl OutputArgs {
    /// The same flags without `-c`, for a verb's secondary tables (whose
    /// columns differ from the main one's).
    pub fn without_columns(&self) -> Self {
        Self {
            columns: Vec::new(),
            ..self.clone()
        }
    }

    /// Plain table output with the given format (for tests and callers
    /// without flags).
    pub fn with_format(output: OutputFormat) -> Self {
        Self {
            output,
            ..Self::default()
        }
    }
}

/// The ASCII style of OpenStack's and StarlingX's clients (cliff and
/// prettytable): `+---+` lines around the header and the table, `|`
/// between cells.
const ASCII_STYLE: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('+', '-', '+', '+'))
    .header_lines(ContentLineStyle::new('|', '|', '|'))
    .header_separator(LineStyle::new('+', '-', '+', '+'))
    .content_lines(ContentLineStyle::new('|', '|', '|'))
    .bottom_border(LineStyle::new('+', '-', '+', '+'));

/// A table with the given header, for [`print_table`] (which decides its
/// style).
pub fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.set_header(header.to_vec());
    table
}

/// One column of a list verb.
pub struct Column<'a> {
    /// The header text (also the name `-c` takes).
    pub header: &'static str,
    /// The key of the item the column shows, for `-c` with json or yaml
    /// (`-c` also accepts it as the column's name).
    pub key: Option<&'static str>,
    text: Box<dyn Fn(&Value) -> String + 'a>,
    long: bool,
    wide: bool,
}

impl<'a> Column<'a> {
    /// A column showing `key` of each item as [`field`] does.
    pub fn key(header: &'static str, key: &'static str) -> Self {
        Self::with(header, Some(key), move |item| field(item, key))
    }

    /// A column computed by `text`; `key` is the item key it shows, if any.
    pub fn with(
        header: &'static str,
        key: Option<&'static str>,
        text: impl Fn(&Value) -> String + 'a,
    ) -> Self {
        Self {
            header,
            key,
            text: Box::new(text),
            long: false,
            wide: false,
        }
    }

    /// Free text: one line, and in the table format at most
    /// [`REASON_WIDTH`] characters (wide and value show it whole).
    pub fn long(mut self) -> Self {
        self.long = true;
        self
    }

    /// Shown by the wide format only (and when `-c` names it).
    pub fn wide(mut self) -> Self {
        self.wide = true;
        self
    }

    fn text(&self, item: &Value, format: OutputFormat) -> String {
        let text = (self.text)(item);
        match (self.long, format) {
            (false, _) => text,
            (true, OutputFormat::Table) => short_text(&text),
            (true, _) => one_line(&text),
        }
    }
}

/// Rows of text under a header, before they are printed.
struct Grid {
    header: Vec<String>,
    /// Other names `-c` accepts for each column (the item keys).
    aliases: Vec<Option<String>>,
    rows: Vec<Vec<String>>,
}

impl Grid {
    fn from_table(table: &Table) -> Self {
        let header: Vec<String> = table
            .header()
            .map(|h| h.cell_iter().map(|c| c.content()).collect())
            .unwrap_or_default();
        let rows = table
            .row_iter()
            .map(|r| r.cell_iter().map(|c| c.content()).collect())
            .collect();
        Self {
            aliases: vec![None; header.len()],
            header,
            rows,
        }
    }
}

/// A column name as `-c` compares it: lower case, underscores and dashes
/// as spaces.
fn column_name(name: &str) -> String {
    name.trim()
        .to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error of an unknown `-c` name.
fn unknown_column(name: &str, valid: &[String]) -> Error {
    let valid: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
    Error::usage(format!(
        "there is no column {name:?}; give -c one of {}",
        valid.join(", ")
    ))
}

/// The indexes of the columns `-c` names, in its order (every column when
/// it names none).
fn pick(
    names: &[String],
    header: &[String],
    aliases: &[Option<String>],
) -> Result<Vec<usize>, Error> {
    if names.is_empty() {
        return Ok((0..header.len()).collect());
    }
    names
        .iter()
        .map(|name| {
            let wanted = column_name(name);
            header
                .iter()
                .position(|h| column_name(h) == wanted)
                .or_else(|| {
                    aliases
                        .iter()
                        .position(|a| a.as_deref().is_some_and(|a| column_name(a) == wanted))
                })
                .ok_or_else(|| unknown_column(name, header))
        })
        .collect()
}

/// Whether a cell holds a UUID (8-4-4-4-12 hexadecimal digits).
fn looks_like_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Prints a grid as a table or as plain values, honouring `-c`,
/// `--no-headers`, `--nowrap` and whether the output is a terminal.
fn print_grid(io: &mut Io<'_>, args: &OutputArgs, grid: &Grid) -> Result<(), Error> {
    let picked = pick(&args.columns, &grid.header, &grid.aliases)?;
    let select = |row: &[String]| -> Vec<String> {
        picked
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or_default())
            .collect()
    };
    if args.output == OutputFormat::Value {
        for row in &grid.rows {
            let cells: Vec<String> = select(row).iter().map(|c| one_line(c)).collect();
            writeln!(io.out, "{}", cells.join(" "))?;
        }
        return Ok(());
    }
    let mut table = Table::new();
    if io.out_terminal {
        table.load_style(presets::UTF8_FULL_CONDENSED);
    } else {
        table.load_style(ASCII_STYLE).force_no_tty();
    }
    table.set_content_arrangement(if args.nowrap {
        ContentArrangement::Disabled
    } else {
        ContentArrangement::Dynamic
    });
    if !args.no_headers {
        table.set_header(select(&grid.header));
    }
    for row in &grid.rows {
        table.add_row(select(row));
    }
    // A UUID wrapped over two lines cannot be copied: such columns keep
    // their content's width.
    let uuid_columns: Vec<bool> = (0..picked.len())
        .map(|i| {
            grid.rows
                .iter()
                .any(|r| looks_like_uuid(r.get(picked[i]).map_or("", String::as_str)))
        })
        .collect();
    for (column, uuid) in table.column_iter_mut().zip(uuid_columns) {
        if uuid {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    writeln!(io.out, "{table}")?;
    Ok(())
}

/// Prints a list: the items themselves for json and yaml (only the keys
/// of the columns `-c` names), else the columns of each item as a table
/// or values. An empty list in a table format prints `empty` instead
/// (when it is not empty).
pub fn render_list(
    io: &mut Io<'_>,
    args: &OutputArgs,
    columns: &[Column<'_>],
    items: &[Value],
    empty: &str,
) -> Result<(), Error> {
    let header: Vec<String> = columns.iter().map(|c| c.header.to_string()).collect();
    let aliases: Vec<Option<String>> = columns.iter().map(|c| c.key.map(String::from)).collect();
    let picked = pick(&args.columns, &header, &aliases)?;
    if args.output.is_data() {
        if args.columns.is_empty() {
            return write_data(io, args.output, &Value::Array(items.to_vec()));
        }
        let keys = picked
            .iter()
            .map(|&i| {
                columns[i].key.ok_or_else(|| {
                    Error::usage(format!(
                        "the column {:?} is computed and has no key in the {} output; drop it from -c or use -o table",
                        columns[i].header,
                        if args.output == OutputFormat::Json { "json" } else { "yaml" }
                    ))
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let items: Vec<Value> = items.iter().map(|item| only_keys(item, &keys)).collect();
        return write_data(io, args.output, &Value::Array(items));
    }
    if items.is_empty() && args.output != OutputFormat::Value && !empty.is_empty() {
        writeln!(io.out, "{empty}")?;
        return Ok(());
    }
    // With -c every column can be named; otherwise the wide format adds
    // the wide ones.
    let shown: Vec<&Column<'_>> = columns
        .iter()
        .filter(|c| !c.wide || args.output == OutputFormat::Wide || !args.columns.is_empty())
        .collect();
    let grid = Grid {
        header: shown.iter().map(|c| c.header.to_string()).collect(),
        aliases: shown.iter().map(|c| c.key.map(String::from)).collect(),
        rows: items
            .iter()
            .map(|item| shown.iter().map(|c| c.text(item, args.output)).collect())
            .collect(),
    };
    print_grid(io, args, &grid)
}

/// What [`render_list`] prints to a pipe (for unit tests of the columns).
#[cfg(test)]
pub fn list_text(columns: &[Column<'_>], items: &[Value], args: &OutputArgs) -> String {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input: &[u8] = &[];
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        input: &mut input,
        interactive: false,
        err_terminal: false,
        out_terminal: false,
    };
    render_list(&mut io, args, columns, items, "").unwrap();
    String::from_utf8(out).unwrap()
}

/// An object with only `keys`, in that order (missing keys as null);
/// anything else unchanged.
fn only_keys(item: &Value, keys: &[&str]) -> Value {
    match item {
        Value::Object(map) => Value::Object(
            keys.iter()
                .map(|k| {
                    (
                        (*k).to_string(),
                        map.get(*k).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The Field/Value rows of a show verb: `preferred` keys first (blank
/// when absent), then the object's other keys in alphabetical order.
pub fn detail_rows(item: &Value, preferred: &[&str]) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = preferred
        .iter()
        .map(|key| ((*key).to_string(), field(item, key)))
        .collect();
    if let Value::Object(map) = item {
        let mut rest: Vec<&String> = map
            .keys()
            .filter(|k| !preferred.contains(&k.as_str()))
            .collect();
        rest.sort();
        for key in rest {
            rows.push((key.clone(), cell(map.get(key))));
        }
    }
    rows
}

/// A Field/Value table of `rows` (for unit tests of show verbs).
#[cfg(test)]
pub fn rows_table(rows: &[(String, String)]) -> Table {
    let mut table = new_table(&["Field", "Value"]);
    for (name, value) in rows {
        table.add_row(vec![name.clone(), value.clone()]);
    }
    table
}

/// Prints one object: itself for json and yaml (only the keys `-c`
/// names), else a Field/Value table of `rows` (only the fields `-c`
/// names, in its order), or with `-o value` the values one per line.
pub fn render_detail(
    io: &mut Io<'_>,
    args: &OutputArgs,
    item: &Value,
    rows: &[(String, String)],
) -> Result<(), Error> {
    let names: Vec<String> = rows.iter().map(|(name, _)| name.clone()).collect();
    let mut picked = Vec::new();
    for name in &args.columns {
        let wanted = column_name(name);
        let found = names.iter().position(|n| column_name(n) == wanted);
        picked.push(found.ok_or_else(|| unknown_column(name, &names))?);
    }
    if args.columns.is_empty() {
        picked = (0..rows.len()).collect();
    }
    if args.output.is_data() {
        if args.columns.is_empty() {
            return write_data(io, args.output, item);
        }
        let keys: Vec<&str> = picked.iter().map(|&i| rows[i].0.as_str()).collect();
        return write_data(io, args.output, &only_keys(item, &keys));
    }
    let grid = Grid {
        header: vec!["Field".to_string(), "Value".to_string()],
        aliases: vec![None, None],
        rows: picked
            .iter()
            .map(|&i| vec![rows[i].0.clone(), rows[i].1.clone()])
            .collect(),
    };
    if args.output == OutputFormat::Value {
        for row in &grid.rows {
            writeln!(io.out, "{}", one_line(&row[1]))?;
        }
        return Ok(());
    }
    // The rows are already picked; the grid's columns are Field and Value.
    print_grid(io, &args.without_columns(), &grid)
}

/// Prints a table a verb built, in the style and with the columns the
/// flags ask for (json and yaml print it as a table too: verbs print their
/// data before they come here).
pub fn print_table(io: &mut Io<'_>, args: &OutputArgs, table: &Table) -> Result<(), Error> {
    print_grid(io, args, &Grid::from_table(table))
}

/// Prints the server's data as JSON or YAML (`format` is json or yaml).
fn write_data(io: &mut Io<'_>, format: OutputFormat, value: &Value) -> Result<(), Error> {
    if format == OutputFormat::Yaml {
        let text = serde_norway::to_string(value)
            .map_err(|e| Error::failure(format!("cannot print YAML: {e}")))?;
        write!(io.out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(io.out)?;
        }
        return Ok(());
    }
    print_json(io.out, value)
}

/// Prints the server's data as JSON or YAML, as `-o` asks, with only the
/// keys `-c` names (of each item of a list, or of the object).
pub fn print_data(io: &mut Io<'_>, args: &OutputArgs, value: &Value) -> Result<(), Error> {
    if args.columns.is_empty() {
        return write_data(io, args.output, value);
    }
    let objects: Vec<&serde_json::Map<String, Value>> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        Value::Object(map) => vec![map],
        _ => Vec::new(),
    };
    let mut known: Vec<String> = Vec::new();
    for map in &objects {
        for key in map.keys() {
            if !known.contains(key) {
                known.push(key.clone());
            }
        }
    }
    let mut keys = Vec::new();
    for name in &args.columns {
        let wanted = column_name(name);
        match known.iter().find(|k| column_name(k) == wanted) {
            Some(key) => keys.push(key.as_str()),
            None if objects.is_empty() => keys.push(name.as_str()),
            None => return Err(unknown_column(name, &known)),
        }
    }
    let picked = match value {
        Value::Array(items) => Value::Array(items.iter().map(|i| only_keys(i, &keys)).collect()),
        other => only_keys(other, &keys),
    };
    write_data(io, args.output, &picked)
}

/// The display text of a JSON value: strings as they are, `null` or a
/// missing key as empty, booleans as `True`/`False` (like the string-typed
/// `mgmt_affecting`), anything else as compact JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "True".to_string(),
        Some(Value::Bool(false)) => "False".to_string(),
        Some(other) => other.to_string(),
    }
}

/// The text of `key` in `item`, see [`cell`].
pub fn field(item: &Value, key: &str) -> String {
    cell(item.get(key))
}

/// Long free text for a list cell: one line, at most [`REASON_WIDTH`] characters.
pub fn short_text(text: &str) -> String {
    truncate_chars(&crate::error::one_line(text), REASON_WIDTH)
}

/// [`short_time`] of a timestamp that may be absent (blank then).
pub fn short_opt_time(ts: Option<&str>) -> String {
    ts.map(short_time).unwrap_or_default()
}

/// A server timestamp (`2026-11-26T18:16:12.086207`, UTC) shortened for a
/// list table to `2026-11-26 18:16:12`. Other shapes are shown unchanged.
pub fn short_time(ts: &str) -> String {
    let bytes = ts.as_bytes();
    let looks_iso = bytes.len() >= 19
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if looks_iso && ts.is_char_boundary(19) {
        format!("{} {}", &ts[..10], &ts[11..19])
    } else {
        ts.to_string()
    }
}

/// Writes a JSON value pretty-printed, followed by a newline.
pub fn print_json(out: &mut dyn Write, value: &Value) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::failure(format!("cannot print JSON: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// The array under `key` of a list reply (a missing key reads as empty);
/// an error when the reply has another shape.
pub fn list_items(reply: &Value, key: &str) -> Result<Vec<Value>, Error> {
    match reply.get(key) {
        None | Some(Value::Null) if reply.is_object() => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err(Error::failure(format!(
            "the server's reply has no {key:?} list"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_show_strings_plainly_and_booleans_python_style() {
        let item = json!({"s": "x", "b": true, "f": false, "n": 3, "z": null});
        assert_eq!(field(&item, "s"), "x");
        assert_eq!(field(&item, "b"), "True");
        assert_eq!(field(&item, "f"), "False");
        assert_eq!(field(&item, "n"), "3");
        assert_eq!(field(&item, "z"), "");
        assert_eq!(field(&item, "missing"), "");
    }

    #[test]
    fn list_timestamps_drop_the_microseconds_and_the_t() {
        assert_eq!(
            short_time("2026-11-26T18:16:12.086207"),
            "2026-11-26 18:16:12"
        );
        assert_eq!(short_time("2026-11-26 18:16:12"), "2026-11-26 18:16:12");
        assert_eq!(short_time("yesterday"), "yesterday");
    }

    #[test]
    fn detail_rows_list_preferred_fields_first_then_the_rest_sorted() {
        let item = json!({"zeta": 1, "uuid": "u", "alpha": "a"});
        let names: Vec<String> = detail_rows(&item, &["uuid", "alarm_id"])
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["uuid", "alarm_id", "alpha", "zeta"]);
    }

    #[test]
    fn column_names_ignore_case_and_take_underscores_for_spaces() {
        let header = vec!["Alarm ID".to_string(), "Time (UTC)".to_string()];
        let aliases = vec![Some("alarm_id".to_string()), None];
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(pick(&names(&["alarm_id"]), &header, &aliases).unwrap(), [0]);
        assert_eq!(
            pick(&names(&["ALARM ID", "time_(utc)"]), &header, &aliases).unwrap(),
            [0, 1]
        );
        let err = pick(&names(&["nope"]), &header, &aliases).unwrap_err();
        assert!(
            err.message().contains("\"Alarm ID\", \"Time (UTC)\""),
            "{err:?}"
        );
        assert_eq!(err.code(), crate::error::EXIT_USAGE);
    }

    #[test]
    fn uuids_are_recognised() {
        assert!(looks_like_uuid("4ab2c5b1-0c3e-4c8a-9d5e-0123456789ab"));
        assert!(!looks_like_uuid("controller-0"));
        assert!(!looks_like_uuid("4ab2c5b1-0c3e-4c8a-9d5e-0123456789"));
    }

    #[test]
    fn a_missing_list_is_empty_but_a_wrong_shape_is_an_error() {
        assert!(list_items(&json!({}), "alarms").unwrap().is_empty());
        assert_eq!(
            list_items(&json!({"alarms": [1]}), "alarms").unwrap().len(),
            1
        );
        assert!(list_items(&json!([1]), "alarms").is_err());
        assert!(list_items(&json!({"alarms": "x"}), "alarms").is_err());
    }
}

//! Output helpers shared by the verbs: the `-o table|json` flag, table
//! construction and the display of JSON values in cells.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

use crate::error::{Error, truncate_chars};

/// Longest reason or description shown in a list table.
pub const REASON_WIDTH: usize = 60;

/// How a list or show verb prints its result.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// A human-readable table.
    #[default]
    Table,
    /// Pretty-printed JSON, exactly as the server sent it (lists unwrapped).
    Json,
}

/// The `-o/--output` flag.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// A table with Roost's style and the given header.
pub fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
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

/// A two-column Field/Value table: `preferred` keys first (blank when
/// absent), then the object's other keys in alphabetical order.
pub fn detail_table(item: &Value, preferred: &[&str]) -> Table {
    let mut table = new_table(&["Field", "Value"]);
    for key in preferred {
        table.add_row(vec![(*key).to_string(), field(item, key)]);
    }
    if let Value::Object(map) = item {
        let mut rest: Vec<&String> = map
            .keys()
            .filter(|k| !preferred.contains(&k.as_str()))
            .collect();
        rest.sort();
        for key in rest {
            table.add_row(vec![key.clone(), cell(map.get(key))]);
        }
    }
    table
}

/// Writes a table followed by a newline.
pub fn print_table(out: &mut dyn Write, table: &Table) -> Result<(), Error> {
    writeln!(out, "{table}")?;
    Ok(())
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
    fn detail_tables_list_preferred_fields_first_then_the_rest_sorted() {
        let item = json!({"zeta": 1, "uuid": "u", "alpha": "a"});
        let mut table = detail_table(&item, &["uuid", "alarm_id"]);
        let text = table.force_no_tty().to_string();
        let pos = |s: &str| text.find(s).unwrap();
        assert!(pos("uuid") < pos("alarm_id"));
        assert!(pos("alarm_id") < pos("alpha"));
        assert!(pos("alpha") < pos("zeta"));
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

//! The one style of the verbs' messages (see docs/cli.md, "Message
//! style"):
//!
//! * a confirmation on standard output is one sentence in the past tense,
//!   starting with a capital, naming the object, without a final period
//!   and without "(s)": `Deleted host worker-1`, `Cleared 3 alarms`;
//! * an error, printed as `roost: <message>`, starts in lower case, says
//!   what is wrong and what to do, without a final period; a "not found"
//!   says what was looked up and how;
//! * an empty list says what is empty, and how many items are hidden and
//!   how to show them: `No active alarms (1 suppressed;
//!   --include-suppressed shows them)`.

use crate::error::Error;

/// `1 alarm`, `3 alarms`.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A message from the server in the verbs' style: the first letter in
/// lower case unless the first word is an acronym (`HTTP 502`, `FS`), and
/// no final period.
pub fn server_message(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_suffix('.').unwrap_or(text);
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => {
            let mut out: String = first.to_lowercase().collect();
            out.push_str(&text[first.len_utf8()..]);
            out
        }
        _ => text.to_string(),
    }
}

/// Turns a 404 into "no `what` with `how` `value` (`hint`)", e.g. "no
/// host with name, ID or UUID worker-9 (`roost host list` lists them)".
pub fn not_found<'a>(
    what: &'a str,
    how: &'a str,
    value: &'a str,
    hint: &'a str,
) -> impl FnOnce(Error) -> Error + 'a {
    move |e| e.on_status(404, || not_found_message(what, how, value, hint))
}

/// The message of [`not_found`].
pub fn not_found_message(what: &str, how: &str, value: &str, hint: &str) -> String {
    if hint.is_empty() {
        format!("no {what} with {how} {value}")
    } else {
        format!("no {what} with {how} {value} ({hint})")
    }
}

/// What is wrong with a confirmation line, if anything.
#[cfg(test)]
pub fn confirmation_fault(line: &str) -> Option<&'static str> {
    common_fault(line).or_else(|| {
        (!line.chars().next().is_some_and(char::is_uppercase))
            .then_some("does not start with a capital")
    })
}

/// What is wrong with an error message, if anything.
#[cfg(test)]
pub fn error_fault(message: &str) -> Option<&'static str> {
    common_fault(message).or_else(|| {
        let mut chars = message.chars();
        let first = chars.next()?;
        let acronym = chars.next().is_some_and(char::is_uppercase);
        (first.is_uppercase() && !acronym).then_some("starts with a capital")
    })
}

#[cfg(test)]
fn common_fault(text: &str) -> Option<&'static str> {
    if text.trim().is_empty() {
        Some("is empty")
    } else if text.ends_with('.') {
        Some("ends with a period")
    } else if text.contains("(s)") {
        Some("says (s) instead of a plural")
    } else if text.contains('\n') {
        Some("is more than one line")
    } else if text != text.trim() {
        Some("has spaces around it")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_use_proper_plurals() {
        assert_eq!(count(1, "alarm", "alarms"), "1 alarm");
        assert_eq!(count(0, "alarm", "alarms"), "0 alarms");
        assert_eq!(count(3, "alarm", "alarms"), "3 alarms");
    }

    #[test]
    fn server_messages_lose_their_capital_and_period_but_keep_acronyms() {
        assert_eq!(server_message("Invalid limit: 0."), "invalid limit: 0");
        assert_eq!(
            server_message("HTTP 502 Bad Gateway"),
            "HTTP 502 Bad Gateway"
        );
        assert_eq!(server_message("already locked"), "already locked");
        assert_eq!(server_message("Échec"), "échec");
    }

    #[test]
    fn the_checks_catch_each_rule() {
        assert_eq!(confirmation_fault("Cleared 3 alarms"), None);
        assert!(confirmation_fault("Cleared 3 alarm(s)").is_some());
        assert!(confirmation_fault("Alarm ID 100.104 suppressed.").is_some());
        assert!(confirmation_fault("cleared").is_some());
        assert_eq!(error_fault("no host with name, ID or UUID x"), None);
        assert_eq!(error_fault("HTTP 500 Internal Server Error"), None);
        assert!(error_fault("Subcloud not found").is_some());
        assert!(error_fault("bad.").is_some());
    }
}

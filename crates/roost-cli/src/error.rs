//! The one error type of the client verbs: a one-line message and an exit code.

use std::fmt;
use std::io;

/// Exit code for errors the server reported, or that the user's data caused.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for usage and configuration errors (bad flags, not logged in).
pub const EXIT_USAGE: i32 = 2;

/// A failed client verb: the message printed after `roost: `, the process
/// exit code and, when the failure came from an HTTP reply, its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Exit code the process should end with.
    pub code: i32,
    /// One-line, human-readable message (no `roost: ` prefix).
    pub message: String,
    /// HTTP status of the reply that caused the error, if any.
    pub http_status: Option<u16>,
    /// When true, nothing is printed (the output pipe was closed by the reader).
    pub silent: bool,
}

impl CliError {
    /// A server-side or user-data failure (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(EXIT_FAILURE, message)
    }

    /// A usage or configuration failure (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(EXIT_USAGE, message)
    }

    /// A failure carried by an HTTP reply with `status` (exit code 1).
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Self {
            http_status: Some(status),
            ..Self::failure(message)
        }
    }

    fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: one_line(&message.into()),
            http_status: None,
            silent: false,
        }
    }

    /// Replaces the message when the error is an HTTP reply with `status`,
    /// e.g. to turn a 404 into "alarm X not found".
    pub fn on_status(self, status: u16, message: impl FnOnce() -> String) -> Self {
        if self.http_status == Some(status) {
            Self {
                message: one_line(&message()),
                ..self
            }
        } else {
            self
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<io::Error> for CliError {
    /// Errors writing the output. A closed pipe (`roost alarm list | head`)
    /// ends the verb quietly and successfully.
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Self {
                code: 0,
                message: String::new(),
                http_status: None,
                silent: true,
            }
        } else {
            Self::failure(format!("cannot write output: {err}"))
        }
    }
}

/// Collapses every run of whitespace (newlines included) into one space so a
/// message always fits on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters of `text`, with `…` appended when it was longer.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            let cut: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_folded_onto_one_line() {
        let err = CliError::failure("first line\nsecond\t line  ");
        assert_eq!(err.message, "first line second line");
    }

    #[test]
    fn on_status_rewrites_only_the_matching_status() {
        let not_found =
            CliError::http(404, "Alarm not found").on_status(404, || "alarm x not found".into());
        assert_eq!(not_found.message, "alarm x not found");
        let other = CliError::http(400, "bad").on_status(404, || "alarm x not found".into());
        assert_eq!(other.message, "bad");
    }

    #[test]
    fn truncation_keeps_short_text_and_marks_long_text() {
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("exactly10!", 10), "exactly10!");
        assert_eq!(truncate_chars("a longer text", 5), "a lo…");
        assert_eq!(truncate_chars("ééééééé", 3).chars().count(), 3);
    }

    #[test]
    fn a_closed_pipe_is_a_silent_success() {
        let err = CliError::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(err.silent);
        assert_eq!(err.code, 0);
    }
}

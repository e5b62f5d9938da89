//! The one error of the client verbs: its kind gives the exit code, and its
//! message is one line.

use std::io;

/// Exit code for errors the server reported, or that the user's data caused.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for usage and configuration errors (bad flags, not logged in).
pub const EXIT_USAGE: i32 = 2;

/// A failed client verb; the variant is the kind, which decides the exit
/// code. The message is printed after `roost: `, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bad flags or configuration, not logged in (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A failure the server reported or the user's data caused (exit code 1).
    #[error("{0}")]
    Failure(String),
    /// A failure carried by an HTTP reply with `status` (exit code 1).
    #[error("{message}")]
    Http { status: u16, message: String },
    /// The reader closed the output pipe (`roost alarm list | head`): the
    /// verb ends quietly and successfully.
    #[error("")]
    ClosedPipe,
}

impl Error {
    /// A server-side or user-data failure (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Error::Failure(one_line(&message.into()))
    }

    /// A usage or configuration failure (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(one_line(&message.into()))
    }

    /// A failure carried by an HTTP reply with `status` (exit code 1).
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Error::Http {
            status,
            message: one_line(&message.into()),
        }
    }

    /// Exit code the process should end with.
    pub fn code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Failure(_) | Error::Http { .. } => EXIT_FAILURE,
            Error::ClosedPipe => 0,
        }
    }

    /// The one-line message (no `roost: ` prefix); empty for
    /// [`Error::ClosedPipe`].
    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m) | Error::Failure(m) | Error::Http { message: m, .. } => m,
            Error::ClosedPipe => "",
        }
    }

    /// HTTP status of the reply that caused the error, if any.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The same error with its message rewritten by `f`.
    pub fn map_message(self, f: impl FnOnce(&str) -> String) -> Self {
        match self {
            Error::Usage(m) => Error::Usage(one_line(&f(&m))),
            Error::Failure(m) => Error::Failure(one_line(&f(&m))),
            Error::Http { status, message } => Error::Http {
                status,
                message: one_line(&f(&message)),
            },
            Error::ClosedPipe => Error::ClosedPipe,
        }
    }

    /// Replaces the message when the error is an HTTP reply with `status`,
    /// e.g. to turn a 404 into "alarm X not found".
    pub fn on_status(self, status: u16, message: impl FnOnce() -> String) -> Self {
        if self.http_status() == Some(status) {
            self.map_message(|_| message())
        } else {
            self
        }
    }
}

impl From<io::Error> for Error {
    /// Errors writing the output. A closed pipe (`roost alarm list | head`)
    /// ends the verb quietly and successfully.
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Error::ClosedPipe
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
        let err = Error::failure("first line\nsecond\t line  ");
        assert_eq!(err.message(), "first line second line");
    }

    #[test]
    fn on_status_rewrites_only_the_matching_status() {
        let not_found =
            Error::http(404, "Alarm not found").on_status(404, || "alarm x not found".into());
        assert_eq!(not_found.message(), "alarm x not found");
        assert_eq!(not_found.http_status(), Some(404));
        let other = Error::http(400, "bad").on_status(404, || "alarm x not found".into());
        assert_eq!(other.message(), "bad");
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
        let err = Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(err, Error::ClosedPipe);
        assert_eq!(err.code(), 0);
    }
}

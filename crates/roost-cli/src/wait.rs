//! Following the server over time: `--wait` (poll an object until an
//! action on it ends) and `--watch` (show a list again and again).
//!
//! Both are one generic loop each; the verbs only say how to fetch the
//! state and how to judge it ([`wait_for`]) or how to render one listing
//! ([`watch`]).

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Io;
use crate::client::{parse_seconds, seconds};
use crate::error::{Error, truncate_chars};

/// Longest progress line redrawn on a terminal, before the seconds
/// elapsed, so that it does not wrap on an 80-column terminal (a wrapped
/// line would be left behind by the redraw).
const TERMINAL_LINE: usize = 70;

/// `--wait`, `--wait-timeout` and the polling interval.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct WaitArgs {
    /// Wait until the action has ended, showing its progress on standard
    /// error; a failure exits non-zero
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 600, requires = "wait")]
    pub wait_timeout: u64,
    /// With --wait: seconds between two looks at the server
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds, hide = true)]
    pub poll_interval: Duration,
}

impl WaitArgs {
    /// `--wait-timeout` as a duration.
    pub fn limit(&self) -> Duration {
        Duration::from_secs(self.wait_timeout)
    }
}

/// Where an action stands, judged from the object's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still under way: look again.
    Running,
    /// Ended as asked.
    Done,
    /// Ended badly; the message says how (lower case, no final period).
    Failed(String),
}

/// One look at the object: what it is, its state, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// What is waited on, e.g. `controller-0`.
    pub subject: String,
    /// Its state on one line, e.g. `unlocked/enabled/available`.
    pub state: String,
    /// Whether the action ended.
    pub verdict: Verdict,
}

/// The progress display of `--wait`, on standard error: on a terminal one
/// line redrawn in place, `subject: first state -> current state (N s)`;
/// otherwise one line `subject: state` per change of state.
pub struct Progress {
    terminal: bool,
    first: Option<String>,
    last: Option<String>,
    drawn: bool,
}

impl Progress {
    /// A display for standard error, a terminal or not.
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            first: None,
            last: None,
            drawn: false,
        }
    }

    /// Shows `look` after `elapsed`.
    pub fn show(
        &mut self,
        err: &mut dyn Write,
        look: &Look,
        elapsed: Duration,
    ) -> Result<(), Error> {
        let first = self.first.get_or_insert_with(|| look.state.clone());
        if self.terminal {
            let line = if *first == look.state {
                format!("{}: {}", look.subject, look.state)
            } else {
                format!("{}: {} -> {}", look.subject, first, look.state)
            };
            let shown = truncate_chars(&line, TERMINAL_LINE);
            write!(err, "\r\x1b[2K{shown} ({} s)", elapsed.as_secs())?;
            err.flush()?;
            self.drawn = true;
        } else if self.last.as_deref() != Some(look.state.as_str()) {
            writeln!(err, "{}: {}", look.subject, look.state)?;
        }
        self.last = Some(look.state.clone());
        Ok(())
    }

    /// Ends the redrawn line.
    pub fn finish(&mut self, err: &mut dyn Write) -> Result<(), Error> {
        if self.terminal && self.drawn {
            writeln!(err)?;
            self.drawn = false;
        }
        Ok(())
    }
}

/// Looks at an object until an action on it has ended: `first` is the
/// state the action's reply gave, `fetch` gets the state again (the GET
/// the show verb uses), `judge` says where the action stands. Shows the
/// progress on standard error; returns the last state when it is done, an
/// error when it failed, and the error `timed_out(last, waited)` builds
/// when `--wait-timeout` passed first.
pub fn wait_for<T>(
    io: &mut Io<'_>,
    args: &WaitArgs,
    first: T,
    mut fetch: impl FnMut() -> Result<T, Error>,
    mut judge: impl FnMut(&T) -> Result<Look, Error>,
    timed_out: impl FnOnce(&T, &Look, Duration) -> Error,
) -> Result<T, Error> {
    let start = Instant::now();
    let limit = args.limit();
    let mut progress = Progress::new(io.err_terminal);
    let mut current = first;
    let outcome = loop {
        let look = match judge(&current) {
            Ok(look) => look,
            Err(e) => break Err(e),
        };
        progress.show(io.err, &look, start.elapsed())?;
        match look.verdict {
            Verdict::Done => break Ok(()),
            Verdict::Failed(message) => break Err(Error::failure(message)),
            Verdict::Running => {}
        }
        if start.elapsed() >= limit {
            break Err(timed_out(&current, &look, limit));
        }
        std::thread::sleep(
            args.poll_interval
                .min(limit.saturating_sub(start.elapsed())),
        );
        current = match fetch() {
            Ok(next) => next,
            Err(e) => break Err(e),
        };
    };
    progress.finish(io.err)?;
    outcome.map(|()| current)
}

/// The usual timeout message: how long, what was waited for, the last
/// state, and what to look at.
pub fn timeout_message(waited: Duration, goal: &str, look: &Look, check: &str) -> String {
    format!(
        "gave up after {} waiting for {goal}; {} is still {} ({check}; --wait-timeout waits longer)",
        seconds(waited),
        look.subject,
        look.state
    )
}

/// `--watch`, `--interval` and a bound on the listings for tests.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct WatchArgs {
    /// Show the list again every --interval seconds, until interrupted
    /// (Ctrl-C)
    #[arg(long)]
    pub watch: bool,
    /// With --watch: seconds between two listings
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_seconds, requires = "watch")]
    pub interval: Duration,
    /// With --watch: stop after this many listings
    #[arg(long, value_name = "N", requires = "watch", hide = true)]
    pub watch_count: Option<u64>,
}

/// Renders a list once, or with `--watch` again every `--interval` until
/// interrupted: on a terminal each listing replaces the screen under a
/// line with the time; otherwise listings follow one another, each after a
/// line with the time and separated by a blank line. A failed listing ends
/// the watch with its error.
pub fn watch(
    io: &mut Io<'_>,
    args: &WatchArgs,
    mut render: impl FnMut(&mut Io<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    if !args.watch {
        return render(io);
    }
    let mut shown = 0u64;
    loop {
        // Rendered aside first, so the screen keeps the last listing while
        // the server answers.
        let mut listing = Vec::new();
        {
            let mut aside = Io {
                out: &mut listing,
                err: &mut *io.err,
                input: &mut *io.input,
                interactive: io.interactive,
                err_terminal: io.err_terminal,
                out_terminal: io.out_terminal,
            };
            render(&mut aside)?;
        }
        let stamp = utc_text(SystemTime::now());
        let every = seconds(args.interval);
        if io.out_terminal {
            write!(io.out, "\x1b[H\x1b[2J")?;
            writeln!(io.out, "{stamp} (every {every}; Ctrl-C stops)")?;
            writeln!(io.out)?;
        } else {
            if shown > 0 {
                writeln!(io.out)?;
            }
            writeln!(io.out, "{stamp}")?;
        }
        io.out.write_all(&listing)?;
        io.out.flush()?;
        shown += 1;
        if args.watch_count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        std::thread::sleep(args.interval);
    }
}

/// A time as `2026-05-02 10:04:05 UTC`.
pub fn utc_text(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(utc_text(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let at = UNIX_EPOCH + Duration::from_secs(1_777_716_245);
        assert_eq!(utc_text(at), "2026-05-02 10:04:05 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_text(leap), "2000-02-29 00:00:00 UTC");
    }

    fn look(state: &str) -> Look {
        Look {
            subject: "controller-0".into(),
            state: state.into(),
            verdict: Verdict::Running,
        }
    }

    #[test]
    fn on_a_terminal_one_line_shows_where_it_started_and_where_it_is() {
        let mut err = Vec::new();
        let mut p = Progress::new(true);
        p.show(&mut err, &look("locked/disabled/online"), Duration::ZERO)
            .unwrap();
        p.show(
            &mut err,
            &look("unlocked/enabled/intest"),
            Duration::from_secs(12),
        )
        .unwrap();
        p.finish(&mut err).unwrap();
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "\r\x1b[2Kcontroller-0: locked/disabled/online (0 s)\
             \r\x1b[2Kcontroller-0: locked/disabled/online -> unlocked/enabled/intest (12 s)\n"
        );
    }

    #[test]
    fn elsewhere_each_change_is_one_line() {
        let mut err = Vec::new();
        let mut p = Progress::new(false);
        for state in ["a", "a", "b", "b", "c"] {
            p.show(&mut err, &look(state), Duration::ZERO).unwrap();
        }
        p.finish(&mut err).unwrap();
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "controller-0: a\ncontroller-0: b\ncontroller-0: c\n"
        );
    }
}

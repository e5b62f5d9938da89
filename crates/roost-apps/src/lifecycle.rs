//! The StarlingX application life cycle: states, operations, progress
//! texts, refusals and the alarms of failed operations.
//!
//! States and transitions (StarlingX's):
//! - upload: (no app) -> `uploading` -> `uploaded` or `upload-failed`.
//! - apply: from `uploaded`, `applied` or `apply-failed` -> `applying` ->
//!   `applied` (progress `completed`, `active` true) or `apply-failed`.
//! - remove: from `applied`, `apply-failed` or `remove-failed` -> `removing`
//!   -> `uploaded` (`active` false) or `remove-failed` (`uploaded` when forced).
//! - abort: only while `applying`, `updating` or `removing` -> `apply-failed`
//!   or `remove-failed`, progress `operation aborted by user`.
//! - delete: only from `uploaded` or `upload-failed`.
//! - update: only from `applied`, to another version: the old row becomes
//!   `inactive`, the new one `updating` -> `applied` (the inactive row is
//!   then dropped) or `apply-failed` (the inactive row stays).
//!
//! While an apply runs, 750.004 (warning) is raised, and 750.005 while an
//! update runs, as StarlingX does; both clear when the operation ends. The
//! start of an operation clears the application's earlier failure alarms.
//!
//! Every refusal reads `Application-<op> rejected: ...`, an unknown
//! application included (StarlingX answers 400 for those; only a show of an
//! unknown application is a 404).

use std::fmt;

use roost_types::Severity;

/// Alarm: application upload failure (warning, `k8s_application=<name>`).
pub const ALARM_UPLOAD_FAILED: &str = "750.001";
/// Alarm: application apply (or update) failure (major, `k8s_application=<name>`).
pub const ALARM_APPLY_FAILED: &str = "750.002";
/// Alarm: application remove failure (major, `k8s_application=<name>`).
pub const ALARM_REMOVE_FAILED: &str = "750.003";
/// Alarm: application apply in progress (warning, `k8s_application=<name>`).
pub const ALARM_APPLY_IN_PROGRESS: &str = "750.004";
/// Alarm: application update in progress (warning, `k8s_application=<name>`).
pub const ALARM_UPDATE_IN_PROGRESS: &str = "750.005";
/// Alarm (Roost's own, see the crate docs): a replica keeps failing and is
/// restarted with back-off (major,
/// `k8s_application=<name>.replica=<workload>/<index or host>`).
pub const ALARM_REPLICA_FAILING: &str = "750.101";

/// Progress while the tarball is read.
pub const PROGRESS_EXTRACT: &str = "extracting application tar file";
/// Progress while the package's contents are checked.
pub const PROGRESS_VALIDATE: &str = "validating and uploading charts";
/// Progress while the configuration of the workloads is worked out.
pub const PROGRESS_OVERRIDES: &str = "generating application overrides";
/// Progress while images are loaded (apply: no replica has reported yet).
pub const PROGRESS_IMAGES: &str = "retrieving docker images";
/// Progress while replicas are being started.
pub const PROGRESS_APPLY_MANIFEST: &str = "applying application manifest";
/// Progress while replicas are being stopped.
pub const PROGRESS_DELETE_MANIFEST: &str = "deleting application manifest";
/// Progress of a finished operation.
pub const PROGRESS_COMPLETED: &str = "completed";
/// Progress after a user's abort.
pub const PROGRESS_ABORTED_BY_USER: &str = "operation aborted by user";
/// Appended (after `<error>: `) to the progress of a failed operation.
pub const PROGRESS_ABORTED: &str = "operation aborted, check system inventory logs for details";

/// The entity instance id of an application's alarms.
pub fn app_entity(app: &str) -> String {
    format!("k8s_application={app}")
}

/// The entity instance id of one replica's alarm. `replica_id` is
/// `<app>/<workload>/<index or host>`; the entity names the application once.
pub fn replica_entity(app: &str, replica_id: &str) -> String {
    let rest = replica_id
        .strip_prefix(app)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(replica_id);
    format!("k8s_application={app}.replica={rest}")
}

macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// StarlingX's spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            /// Parses StarlingX's spelling.
            pub fn parse(s: &str) -> Option<Self> { match s { $($text => Some($name::$variant),)+ _ => None } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

words!(
    /// An application's status, as sysinv spells it.
    AppStatus {
        Uploading => "uploading",
        Uploaded => "uploaded",
        UploadFailed => "upload-failed",
        Applying => "applying",
        Applied => "applied",
        ApplyFailed => "apply-failed",
        Removing => "removing",
        RemoveFailed => "remove-failed",
        Updating => "updating",
        /// The previous version while (and after a failed) update.
        Inactive => "inactive",
    }
);

words!(
    /// An operation on an application, as it appears in refusals
    /// (`Application-<op> rejected: ...`).
    Op {
        Upload => "upload",
        Apply => "apply",
        Remove => "remove",
        Abort => "abort",
        Delete => "delete",
        Update => "update",
    }
);

impl AppStatus {
    /// Whether an operation is running (abort is allowed).
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            AppStatus::Uploading | AppStatus::Applying | AppStatus::Removing | AppStatus::Updating
        )
    }

    /// Whether the application's workloads are wanted on the hosts.
    pub fn wants_workloads(self) -> bool {
        matches!(
            self,
            AppStatus::Applying | AppStatus::Applied | AppStatus::ApplyFailed | AppStatus::Updating
        )
    }
}

/// Why an operation was refused: the one error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// StarlingX's refusal, answered 400 (an unknown application included).
    #[error("Application-{op} rejected: {reason}")]
    Rejected { op: Op, reason: String },
    /// A workload specification the domain cannot run (answered 400).
    #[error("invalid application {app}: {reason}")]
    Invalid { app: String, reason: String },
}

impl Error {
    pub(crate) fn rejected(op: Op, reason: impl Into<String>) -> Error {
        Error::Rejected {
            op,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(op: Op) -> Error {
        Error::rejected(op, "application not found.")
    }

    pub(crate) fn not_allowed(op: Op, status: AppStatus) -> Error {
        Error::rejected(
            op,
            format!("operation is not allowed while the current status is {status}."),
        )
    }
}

/// Whether `op` is allowed from `status` (StarlingX's rules, module docs).
/// Upload is about a name that does not exist yet, so never from a status.
pub fn check_transition(op: Op, status: AppStatus) -> Result<(), Error> {
    use AppStatus as S;
    let ok = match op {
        Op::Upload => false,
        Op::Apply => matches!(status, S::Uploaded | S::Applied | S::ApplyFailed),
        Op::Remove => matches!(status, S::Applied | S::ApplyFailed | S::RemoveFailed),
        Op::Abort => matches!(status, S::Applying | S::Updating | S::Removing),
        Op::Delete => matches!(status, S::Uploaded | S::UploadFailed),
        Op::Update => status == S::Applied,
    };
    if ok {
        return Ok(());
    }
    match (op, status) {
        (Op::Apply, S::Applying | S::Updating) => Err(Error::rejected(
            op,
            "install/update is already in progress.",
        )),
        (Op::Update, S::Updating) => Err(Error::rejected(op, "update is already in progress.")),
        _ => Err(Error::not_allowed(op, status)),
    }
}

/// The progress text of a failed operation: the error, then StarlingX's
/// "operation aborted, check system inventory logs for details".
pub fn failed_progress(error: &str) -> String {
    if error.is_empty() {
        PROGRESS_ABORTED.to_string()
    } else {
        format!("{error}: {PROGRESS_ABORTED}")
    }
}

/// An alarm to raise (with a severity) or clear (without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmDecision {
    pub alarm_id: &'static str,
    pub entity_instance_id: String,
    pub severity: Option<Severity>,
    pub reason_text: String,
}

impl AlarmDecision {
    pub fn is_raise(&self) -> bool {
        self.severity.is_some()
    }
}

/// The alarm a failed operation raises: (id, severity, reason).
pub(crate) fn failure_alarm(op: Op, app: &str, error: &str) -> (&'static str, Severity, String) {
    let (id, sev, what) = match op {
        Op::Upload => (ALARM_UPLOAD_FAILED, Severity::Warning, "Upload"),
        Op::Remove => (ALARM_REMOVE_FAILED, Severity::Major, "Remove"),
        _ => (ALARM_APPLY_FAILED, Severity::Major, "Apply"),
    };
    let mut reason = format!("Application {what} Failure: {app}");
    if !error.is_empty() {
        reason.push_str(": ");
        reason.push_str(error);
    }
    (id, sev, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_and_op_round_trips_through_its_spelling() {
        for s in AppStatus::ALL {
            assert_eq!(AppStatus::parse(s.as_str()), Some(*s));
        }
        for o in Op::ALL {
            assert_eq!(Op::parse(o.as_str()), Some(*o));
        }
        assert_eq!(AppStatus::parse("bogus"), None);
    }

    #[test]
    fn the_transition_table_is_starlingx_s() {
        use AppStatus as S;
        let allowed = |op: Op| -> Vec<S> {
            S::ALL
                .iter()
                .copied()
                .filter(|s| check_transition(op, *s).is_ok())
                .collect()
        };
        assert_eq!(
            allowed(Op::Apply),
            vec![S::Uploaded, S::Applied, S::ApplyFailed]
        );
        assert_eq!(
            allowed(Op::Remove),
            vec![S::Applied, S::ApplyFailed, S::RemoveFailed]
        );
        assert_eq!(
            allowed(Op::Abort),
            vec![S::Applying, S::Removing, S::Updating]
        );
        assert_eq!(allowed(Op::Delete), vec![S::Uploaded, S::UploadFailed]);
        assert_eq!(allowed(Op::Update), vec![S::Applied]);
        assert!(allowed(Op::Upload).is_empty());
    }

    #[test]
    fn refusals_use_starlingx_s_words() {
        let e = check_transition(Op::Delete, AppStatus::Applied).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Application-delete rejected: operation is not allowed while the current status is applied."
        );
        let e = check_transition(Op::Apply, AppStatus::Applying).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Application-apply rejected: install/update is already in progress."
        );
        let e = check_transition(Op::Update, AppStatus::Updating).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Application-update rejected: update is already in progress."
        );
        assert_eq!(
            Error::not_found(Op::Remove).to_string(),
            "Application-remove rejected: application not found."
        );
    }

    #[test]
    fn entities_name_the_application_and_the_replica() {
        assert_eq!(app_entity("hello"), "k8s_application=hello");
        assert_eq!(
            replica_entity("hello", "hello/web/2"),
            "k8s_application=hello.replica=web/2"
        );
        assert_eq!(
            failed_progress("timed out"),
            "timed out: operation aborted, check system inventory logs for details"
        );
    }
}

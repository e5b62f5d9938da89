//! USM's states, as the stock `software` client shows them: a release's
//! state, a deploy's state and its transitions, and a host's deploy state.
//! Pure: the deploy service asks [`DeployState::after`] before it commits.

use std::fmt;

macro_rules! named_states {
    ($(#[$doc:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every state, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The state as USM writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a state as USM writes it.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} {s:?}", stringify!($name)))
                })
            }
        }
    };
}

named_states! {
    /// A release's state.
    ReleaseState {
        Uploading => "uploading",
        UploadFailed => "upload-failed",
        Available => "available",
        Unavailable => "unavailable",
        Deploying => "deploying",
        Deployed => "deployed",
        Removing => "removing",
        Committed => "committed",
    }
}

impl ReleaseState {
    /// Whether `software delete` may remove a release in this state.
    pub fn deletable(self) -> bool {
        matches!(
            self,
            ReleaseState::Available | ReleaseState::Unavailable | ReleaseState::UploadFailed
        )
    }
}

named_states! {
    /// A deploy's state.
    DeployState {
        Start => "start",
        StartDone => "start-done",
        StartFailed => "start-failed",
        Host => "host",
        HostDone => "host-done",
        HostFailed => "host-failed",
        Activate => "activate",
        ActivateDone => "activate-done",
        ActivateFailed => "activate-failed",
        Completed => "completed",
        HostRollback => "host-rollback",
        HostRollbackDone => "host-rollback-done",
        HostRollbackFailed => "host-rollback-failed",
        ActivateRollbackPending => "activate-rollback-pending",
        ActivateRollback => "activate-rollback",
        ActivateRollbackDone => "activate-rollback-done",
        ActivateRollbackFailed => "activate-rollback-failed",
    }
}

named_states! {
    /// A host's state in a deploy.
    HostDeployState {
        Pending => "pending",
        Deploying => "deploying",
        Deployed => "deployed",
        Failed => "failed",
        RollbackPending => "rollback-pending",
        RollbackDeploying => "rollback-deploying",
        RollbackDeployed => "rollback-deployed",
        RollbackFailed => "rollback-failed",
    }
}

/// What happens to a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployEvent {
    /// The start (staging the release) finished, or failed.
    Started {
        ok: bool,
    },
    /// `deploy host` on a host (also after a failure: it is re-entrant).
    HostBegin,
    /// Every host deployed, or one failed.
    HostsEnded {
        ok: bool,
    },
    /// `deploy activate` (re-entrant after a failure).
    Activate,
    ActivateEnded {
        ok: bool,
    },
    /// `deploy complete`.
    Complete,
    /// `deploy abort`.
    Abort,
    /// `deploy activate-rollback`.
    ActivateRollback,
    ActivateRollbackEnded {
        ok: bool,
    },
    /// `deploy host-rollback` on a host.
    HostRollbackBegin,
    HostRollbackEnded {
        ok: bool,
    },
    /// `deploy delete`.
    Delete,
}

impl DeployState {
    /// The state after `event`, `Ok(None)` once the deploy is deleted, or
    /// the refusal USM answers.
    pub fn after(self, event: DeployEvent) -> Result<Option<DeployState>, crate::Error> {
        use DeployEvent as E;
        use DeployState as S;
        let next = match (self, event) {
            (S::Start, E::Started { ok: true }) => S::StartDone,
            (S::Start, E::Started { ok: false }) => S::StartFailed,
            (S::StartDone | S::Host | S::HostFailed, E::HostBegin) => S::Host,
            (S::Host, E::HostsEnded { ok: true }) => S::HostDone,
            (S::Host, E::HostsEnded { ok: false }) => S::HostFailed,
            (S::HostDone | S::ActivateFailed, E::Activate) => S::Activate,
            (S::Activate, E::ActivateEnded { ok: true }) => S::ActivateDone,
            (S::Activate, E::ActivateEnded { ok: false }) => S::ActivateFailed,
            (S::ActivateDone, E::Complete) => S::Completed,
            (S::StartDone | S::Host | S::HostDone | S::HostFailed, E::Abort) => S::HostRollback,
            (S::ActivateDone | S::ActivateFailed | S::Completed, E::Abort) => {
                S::ActivateRollbackPending
            }
            (S::ActivateRollbackPending | S::ActivateRollbackFailed, E::ActivateRollback) => {
                S::ActivateRollback
            }
            (S::ActivateRollback, E::ActivateRollbackEnded { ok: true }) => S::ActivateRollbackDone,
            (S::ActivateRollback, E::ActivateRollbackEnded { ok: false }) => {
                S::ActivateRollbackFailed
            }
            (
                S::ActivateRollbackDone | S::HostRollback | S::HostRollbackFailed,
                E::HostRollbackBegin,
            ) => S::HostRollback,
            (S::HostRollback, E::HostRollbackEnded { ok: true }) => S::HostRollbackDone,
            (S::HostRollback, E::HostRollbackEnded { ok: false }) => S::HostRollbackFailed,
            (S::StartDone | S::StartFailed | S::Completed | S::HostRollbackDone, E::Delete) => {
                return Ok(None);
            }
            (state, event) => {
                return Err(crate::Error::NotAllowed(format!(
                    "{} is not allowed while the deploy is in state {state}",
                    event_name(event)
                )));
            }
        };
        Ok(Some(next))
    }
}

fn event_name(e: DeployEvent) -> &'static str {
    match e {
        DeployEvent::Started { .. } => "Ending the deploy start",
        DeployEvent::HostBegin => "Deploy host",
        DeployEvent::HostsEnded { .. } => "Ending the host deploys",
        DeployEvent::Activate => "Deploy activate",
        DeployEvent::ActivateEnded { .. } => "Ending the activation",
        DeployEvent::Complete => "Deploy complete",
        DeployEvent::Abort => "Deploy abort",
        DeployEvent::ActivateRollback => "Deploy activate-rollback",
        DeployEvent::ActivateRollbackEnded { .. } => "Ending the activate-rollback",
        DeployEvent::HostRollbackBegin => "Deploy host-rollback",
        DeployEvent::HostRollbackEnded { .. } => "Ending the host rollbacks",
        DeployEvent::Delete => "Deploy delete",
    }
}

#[cfg(test)]
mod tests {
    use super::DeployEvent as E;
    use super::DeployState as S;
    use super::*;

    /// The state after `events`: `Some(None)` once deleted, `None` if a
    /// step was refused.
    fn run(mut s: S, events: &[E]) -> Option<Option<S>> {
        for (i, e) in events.iter().enumerate() {
            match s.after(*e).ok()? {
                Some(n) => s = n,
                None if i + 1 == events.len() => return Some(None),
                None => return None,
            }
        }
        Some(Some(s))
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(*s));
        }
        for s in ReleaseState::ALL {
            assert_eq!(ReleaseState::parse(s.as_str()), Some(*s));
        }
        for s in HostDeployState::ALL {
            assert_eq!(HostDeployState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(S::parse("started"), None);
    }

    #[test]
    fn a_deploy_goes_start_host_activate_complete_delete() {
        let ok = [
            E::Started { ok: true },
            E::HostBegin,
            E::HostsEnded { ok: true },
            E::Activate,
            E::ActivateEnded { ok: true },
            E::Complete,
        ];
        assert_eq!(run(S::Start, &ok), Some(Some(S::Completed)));
        assert_eq!(S::Completed.after(E::Delete).unwrap(), None);
    }

    #[test]
    fn failures_are_retried_where_usm_allows() {
        let hosts = [
            E::Started { ok: true },
            E::HostBegin,
            E::HostsEnded { ok: false },
            E::HostBegin,
            E::HostsEnded { ok: true },
            E::Activate,
            E::ActivateEnded { ok: false },
            E::Activate,
            E::ActivateEnded { ok: true },
        ];
        assert_eq!(run(S::Start, &hosts), Some(Some(S::ActivateDone)));
        // A failed start can only be deleted.
        assert_eq!(S::StartFailed.after(E::Delete).unwrap(), None);
        let e = S::StartFailed.after(E::HostBegin).unwrap_err();
        assert!(e.to_string().contains("start-failed"), "{e}");
    }

    #[test]
    fn abort_before_activation_rolls_hosts_back_and_after_it_activation_first() {
        let before = [
            E::Started { ok: true },
            E::HostBegin,
            E::Abort,
            E::HostRollbackBegin,
            E::HostRollbackEnded { ok: true },
            E::Delete,
        ];
        assert_eq!(run(S::Start, &before), Some(None));
        let after = [
            E::Abort,
            E::ActivateRollback,
            E::ActivateRollbackEnded { ok: true },
            E::HostRollbackBegin,
            E::HostRollbackEnded { ok: true },
        ];
        assert_eq!(run(S::Completed, &after), Some(Some(S::HostRollbackDone)));
        // Nothing else is allowed in the middle.
        assert!(S::HostRollback.after(E::Complete).is_err());
        assert!(
            S::ActivateRollbackPending
                .after(E::HostRollbackBegin)
                .is_err()
        );
        assert!(S::Host.after(E::Delete).is_err());
    }

    #[test]
    fn only_releases_not_in_use_can_be_deleted() {
        let deletable: Vec<_> = ReleaseState::ALL
            .iter()
            .filter(|s| s.deletable())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(deletable, ["upload-failed", "available", "unavailable"]);
    }
}

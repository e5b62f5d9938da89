//! The vocabulary of Distributed Cloud: states, endpoint types, epochs and
//! generations, with StarlingX's spellings.

use std::fmt;

macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $name {
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
    /// Whether the System Controller looks after a subcloud. New subclouds
    /// start unmanaged; unmanaged ones are not synchronised and raise no
    /// 280.001/280.002, but still report their alarms.
    Management { Managed => "managed", Unmanaged => "unmanaged" }
);
words!(
    /// Whether the System Controller hears from a subcloud.
    Availability { Online => "online", Offline => "offline" }
);
words!(
    /// The part of StarlingX's `deploy-status` (57 values) that Roost's
    /// enrollment flow produces.
    DeployStatus {
        /// Created on the System Controller; the enrollment token is unused.
        NotDeployed => "not-deployed",
        /// The subcloud used its enrollment token and is connecting.
        Enrolling => "enrolling",
        /// The subcloud completed its first configuration exchange.
        Complete => "complete",
    }
);
words!(
    /// Synchronisation status of one endpoint type, or of a whole subcloud.
    SyncStatus { InSync => "in-sync", OutOfSync => "out-of-sync", Unknown => "unknown" }
);
words!(
    /// StarlingX's `cloud_status` in the DC alarm summary.
    CloudStatus {
        /// No critical, major or minor alarm (warnings do not count).
        Ok => "OK",
        /// At least one major or minor alarm, no critical one.
        Degraded => "degraded",
        /// At least one critical alarm.
        Critical => "critical",
        /// The subcloud is offline: its counts are unknown (-1).
        Disabled => "disabled",
    }
);
words!(
    /// How an orchestration strategy walks the subclouds of a group.
    ApplyType { Serial => "serial", Parallel => "parallel" }
);
words!(
    /// An endpoint type of StarlingX's per-subcloud sync status.
    ///
    /// Roost synchronises [`Endpoint::SYNCED`] (identity, platform, dc-cert,
    /// software, and its own `apps`). The other three (firmware, kubernetes, kube-rootca) are
    /// orchestrated, not synchronised, in StarlingX; Roost lists them so the
    /// API shows StarlingX's seven rows (plus `apps`), and while the System Controller holds
    /// no configuration for one of them (generation 0) it reads `in-sync`
    /// for a managed online subcloud (there is nothing to apply) and
    /// `unknown` otherwise. Should the System Controller ever set a desired
    /// configuration for one of them, it follows the same rules as the
    /// synchronised four.
    Endpoint {
        DcCert => "dc-cert",
        Firmware => "firmware",
        Kubernetes => "kubernetes",
        KubeRootca => "kube-rootca",
        Platform => "platform",
        Identity => "identity",
        Software => "software",
        /// Roost's own: the applications a subcloud's group is assigned.
        Apps => "apps",
    }
);

/// Number of endpoint types.
pub const ENDPOINT_COUNT: usize = 8;

impl Endpoint {
    /// Every endpoint type, in the order StarlingX lists `endpoint_sync_status`.
    pub const ALL: [Endpoint; ENDPOINT_COUNT] = [
        Endpoint::DcCert,
        Endpoint::Firmware,
        Endpoint::Kubernetes,
        Endpoint::KubeRootca,
        Endpoint::Platform,
        Endpoint::Identity,
        Endpoint::Software,
        Endpoint::Apps,
    ];

    /// The endpoint types whose configuration Roost pushes to subclouds.
    pub const SYNCED: [Endpoint; 5] = [
        Endpoint::Identity,
        Endpoint::Platform,
        Endpoint::DcCert,
        Endpoint::Software,
        Endpoint::Apps,
    ];

    /// Position in [`Endpoint::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// True for the endpoint types whose desired content depends on the
    /// subcloud's group (applications): the System Controller keeps one
    /// digest per group, under one generation for the endpoint type.
    pub fn is_per_group(self) -> bool {
        self == Endpoint::Apps
    }

    /// True for the endpoint types Roost synchronises.
    pub fn is_synced(self) -> bool {
        Endpoint::SYNCED.contains(&self)
    }
}

/// The System Controller's incarnation: a new, larger one on every start.
/// Every push carries it; a subcloud refuses pushes from an older epoch, so
/// a controller that lost its place can never move a subcloud backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Version of the desired configuration of one endpoint type; it grows on
/// every change. Generation 0 means "nothing desired".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u64);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_indexes_follow_the_listing_order() {
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(Endpoint::parse(e.as_str()), Some(*e));
        }
        assert!(Endpoint::Identity.is_synced());
        assert!(!Endpoint::Firmware.is_synced());
        assert_eq!(Endpoint::parse("patching"), None);
    }

    #[test]
    fn spellings_are_starlingx_ones() {
        assert_eq!(CloudStatus::Ok.to_string(), "OK");
        assert_eq!(SyncStatus::OutOfSync.to_string(), "out-of-sync");
        assert_eq!(DeployStatus::NotDeployed.to_string(), "not-deployed");
        assert_eq!(Endpoint::KubeRootca.to_string(), "kube-rootca");
        assert_eq!(Management::parse("managed"), Some(Management::Managed));
        assert_eq!(ApplyType::parse("parallel"), Some(ApplyType::Parallel));
        assert_eq!(ApplyType::parse("random"), None);
    }
}

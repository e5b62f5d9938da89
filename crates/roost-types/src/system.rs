//! What kind of cloud a server runs: its system mode and its role in a
//! Distributed Cloud.

use std::fmt;

/// StarlingX's system mode: one controller or two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SystemMode {
    /// All-in-One Simplex: one controller, no standby.
    #[default]
    Simplex,
    /// Two controllers, active and standby.
    Duplex,
}

impl SystemMode {
    /// Every mode, for error messages.
    pub const ALL: [SystemMode; 2] = [SystemMode::Simplex, SystemMode::Duplex];

    /// StarlingX's spelling (`simplex`, `duplex`).
    pub fn as_str(self) -> &'static str {
        match self {
            SystemMode::Simplex => "simplex",
            SystemMode::Duplex => "duplex",
        }
    }

    /// The mode spelled as StarlingX does.
    pub fn parse(s: &str) -> Option<SystemMode> {
        SystemMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// sysinv's `system_type` for this mode.
    pub fn system_type(self) -> &'static str {
        match self {
            SystemMode::Simplex => "All-in-one",
            SystemMode::Duplex => "Standard",
        }
    }
}

impl fmt::Display for SystemMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server's role in a Distributed Cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    /// A cloud on its own.
    #[default]
    Standalone,
    /// Manages subclouds.
    SystemController,
    /// Managed by a system controller.
    Subcloud,
}

impl Role {
    /// Every role, for error messages.
    pub const ALL: [Role; 3] = [Role::Standalone, Role::SystemController, Role::Subcloud];

    /// The spelling used in flags and configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::SystemController => "systemcontroller",
            Role::Subcloud => "subcloud",
        }
    }

    /// The role spelled as in flags and configuration files.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_roles_round_trip_their_spelling() {
        for m in SystemMode::ALL {
            assert_eq!(SystemMode::parse(m.as_str()), Some(m));
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(&r.to_string()), Some(r));
        }
        assert_eq!(SystemMode::parse("Simplex"), None);
        assert_eq!(Role::parse("controller"), None);
    }
}

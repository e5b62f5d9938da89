//! Configuration sync by endpoint type: what the System Controller wants,
//! what a subcloud says it applied, and the subcloud's guard against stale
//! controllers.

use std::fmt;

use crate::words::{ENDPOINT_COUNT, Endpoint, Epoch, Generation};

/// The System Controller's desired configuration of one endpoint type: a
/// generation that grows on every change and an opaque digest of the content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    pub generation: Generation,
    pub digest: String,
}

/// What a subcloud reported for one endpoint type: the generation it last
/// applied and the digest of what it actually runs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub generation: Generation,
    pub digest: String,
}

/// A push refused because it comes from an older controller epoch, or
/// carries an older generation than the one applied within the same epoch.
/// Not an error of an operation: a subcloud sets refused pushes aside and
/// goes on (its `Display` is the line it logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    pub endpoint: Endpoint,
    pub epoch: Epoch,
    pub generation: Generation,
    /// The newest epoch this subcloud has accepted anything from.
    pub applied_epoch: Epoch,
    /// The generation applied for this endpoint (0 when none was).
    pub applied_generation: Generation,
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stale {} configuration refused: epoch {} generation {} is older than epoch {} generation {}",
            self.endpoint, self.epoch, self.generation, self.applied_epoch, self.applied_generation
        )
    }
}

/// The subcloud's record of the configuration it applied, per endpoint
/// type, with the (epoch, generation) of the push that carried it.
///
/// A push is accepted when its epoch is at least the newest epoch seen (on
/// any endpoint) and, within the epoch of the endpoint's last push, its
/// generation is not older. The same generation is accepted again (a
/// re-push that repairs drift). A newer epoch is accepted whatever its
/// generation: a restarted controller may number afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    epoch: Epoch,
    endpoints: [Option<(Epoch, Generation)>; ENDPOINT_COUNT],
}

impl Applied {
    pub fn new() -> Applied {
        Applied::default()
    }

    /// Checks a push and, when it is not stale, records it as applied.
    pub fn accept_push(
        &mut self,
        endpoint: Endpoint,
        epoch: Epoch,
        generation: Generation,
    ) -> Result<(), Stale> {
        let slot = &mut self.endpoints[endpoint.index()];
        let stale =
            epoch < self.epoch || matches!(*slot, Some((e, g)) if e == epoch && generation < g);
        if stale {
            return Err(Stale {
                endpoint,
                epoch,
                generation,
                applied_epoch: self.epoch,
                applied_generation: slot.map(|(_, g)| g).unwrap_or_default(),
            });
        }
        *slot = Some((epoch, generation));
        self.epoch = epoch;
        Ok(())
    }

    /// The generation applied for `endpoint` (0 when none was): what the
    /// subcloud reports to the System Controller.
    pub fn generation(&self, endpoint: Endpoint) -> Generation {
        self.endpoints[endpoint.index()]
            .map(|(_, g)| g)
            .unwrap_or_default()
    }

    /// The newest controller epoch accepted.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Restores what was applied before a restart of the subcloud's agent.
    pub fn restore(&mut self, endpoint: Endpoint, epoch: Epoch, generation: Generation) {
        self.endpoints[endpoint.index()] = Some((epoch, generation));
        self.epoch = self.epoch.max(epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1: Epoch = Epoch(1);
    const E2: Epoch = Epoch(2);

    #[test]
    fn a_newer_generation_is_accepted_and_an_older_one_refused() {
        let mut a = Applied::new();
        a.accept_push(Endpoint::Platform, E1, Generation(3))
            .unwrap();
        a.accept_push(Endpoint::Platform, E1, Generation(5))
            .unwrap();
        let err = a
            .accept_push(Endpoint::Platform, E1, Generation(4))
            .unwrap_err();
        assert_eq!(err.applied_generation, Generation(5));
        assert_eq!(a.generation(Endpoint::Platform), Generation(5));
        assert!(err.to_string().contains("stale platform configuration"));
    }

    #[test]
    fn the_same_generation_is_accepted_again_to_repair_drift() {
        let mut a = Applied::new();
        a.accept_push(Endpoint::Identity, E1, Generation(2))
            .unwrap();
        assert!(a.accept_push(Endpoint::Identity, E1, Generation(2)).is_ok());
    }

    #[test]
    fn an_older_epoch_is_refused_on_every_endpoint() {
        let mut a = Applied::new();
        a.accept_push(Endpoint::Identity, E2, Generation(1))
            .unwrap();
        // Even an endpoint that never saw epoch 2, and a higher generation.
        let err = a
            .accept_push(Endpoint::Platform, E1, Generation(100))
            .unwrap_err();
        assert_eq!(err.applied_epoch, E2);
        assert_eq!(err.applied_generation, Generation(0));
        assert_eq!(a.generation(Endpoint::Platform), Generation(0));
    }

    #[test]
    fn a_newer_epoch_may_restart_the_numbering() {
        let mut a = Applied::new();
        a.accept_push(Endpoint::Software, E1, Generation(9))
            .unwrap();
        a.accept_push(Endpoint::Software, E2, Generation(1))
            .unwrap();
        assert_eq!(a.generation(Endpoint::Software), Generation(1));
        assert_eq!(a.epoch(), E2);
        assert!(
            a.accept_push(Endpoint::Software, E1, Generation(10))
                .is_err()
        );
    }

    #[test]
    fn restored_state_guards_like_accepted_state() {
        let mut a = Applied::new();
        a.restore(Endpoint::DcCert, E2, Generation(4));
        assert!(a.accept_push(Endpoint::DcCert, E2, Generation(3)).is_err());
        assert!(a.accept_push(Endpoint::DcCert, E1, Generation(9)).is_err());
        assert!(a.accept_push(Endpoint::DcCert, E2, Generation(4)).is_ok());
    }
}

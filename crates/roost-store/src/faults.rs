//! Commit fault injection, for tests of what a failed commit leaves behind.
//!
//! Built only with the `fault-injection` feature (the end-to-end tests turn
//! it on; release builds do not have it). With it, the environment variable
//! `ROOST_FAULT_FAIL_COMMITS=every:N[,after:K]` makes every Nth commit after
//! the first K fail with [`Error::Injected`](crate::Error): the
//! transaction is rolled back, exactly as when the disk refuses a write.

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::Error;

    /// Which commits fail.
    #[derive(Debug, Default)]
    pub struct Faults {
        every: AtomicU64,
        after: AtomicU64,
        commits: AtomicU64,
    }

    impl Faults {
        /// The plan in `ROOST_FAULT_FAIL_COMMITS`, or none.
        pub fn from_env() -> Faults {
            std::env::var("ROOST_FAULT_FAIL_COMMITS")
                .ok()
                .and_then(|v| Faults::parse(&v))
                .unwrap_or_default()
        }

        fn parse(v: &str) -> Option<Faults> {
            let (mut every, mut after) = (0, 0);
            for part in v.split(',') {
                let (k, n) = part.split_once(':')?;
                let n: u64 = n.trim().parse().ok()?;
                match k.trim() {
                    "every" => every = n,
                    "after" => after = n,
                    _ => return None,
                }
            }
            let f = Faults::default();
            f.configure(every, after);
            Some(f)
        }

        /// From now on, every `every`th commit after the next `after` fails
        /// (`every` 0: none).
        pub fn configure(&self, every: u64, after: u64) {
            self.commits.store(0, Ordering::SeqCst);
            self.after.store(after, Ordering::SeqCst);
            self.every.store(every, Ordering::SeqCst);
            if every > 0 {
                tracing::warn!(every, after, "commit fault injection is on");
            }
        }

        /// Called just before each commit.
        pub fn before_commit(&self) -> Result<(), Error> {
            let every = self.every.load(Ordering::SeqCst);
            if every == 0 {
                return Ok(());
            }
            let after = self.after.load(Ordering::SeqCst);
            let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
            if n > after && (n - after).is_multiple_of(every) {
                return Err(Error::Injected);
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_nth_commit_after_the_first_k_fails() {
            let f = Faults::parse("every:3,after:2").unwrap();
            let failed: Vec<bool> = (0..9).map(|_| f.before_commit().is_err()).collect();
            assert_eq!(
                failed,
                [false, false, false, false, true, false, false, true, false]
            );
            assert!(Faults::parse("sometimes:3").is_none());
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
mod imp {
    use crate::Error;

    /// No faults: the feature is off.
    #[derive(Debug, Default)]
    pub struct Faults;

    impl Faults {
        pub fn from_env() -> Faults {
            Faults
        }

        #[inline(always)]
        pub fn before_commit(&self) -> Result<(), Error> {
            Ok(())
        }
    }
}

pub use imp::Faults;

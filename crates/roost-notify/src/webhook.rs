//! The delivery rules of a webhook destination, as a pure state machine:
//! the [`Outbox`] is fed messages, the time, and the outcome of each try,
//! and answers what to send next and what to give up on.
//!
//! - **Ordered per entity.** Messages about one entity (an alarm's or a
//!   log's entity instance id) go one at a time, in the order they came:
//!   the next is not tried until the one before is delivered or given up.
//!   Different entities go side by side, up to a limit.
//! - **Retried with backoff.** A failed try is retried after the base
//!   wait, doubled each time, capped.
//! - **Dead-lettered.** After the last allowed try the message leaves the
//!   queue as a [`DeadLetter`] for the caller to keep, and the entity's
//!   next message goes.
//! - **Bounded.** At most `max_pending` messages wait; beyond that a new
//!   message is refused and the caller counts it dropped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How a destination retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Tries before a message is dead-lettered (1 or more).
    pub max_attempts: u32,
    /// Wait before the first retry, milliseconds.
    pub retry_base_ms: u64,
    /// Longest wait between tries, milliseconds.
    pub retry_max_ms: u64,
    /// Most messages waiting (in flight included).
    pub max_pending: usize,
    /// Most tries in flight at once (different entities).
    pub max_in_flight: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 8,
            retry_base_ms: 1_000,
            retry_max_ms: 60_000,
            max_pending: 10_000,
            max_in_flight: 8,
        }
    }
}

impl Policy {
    /// The wait after try number `attempt` (from 1) failed.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(32);
        self.retry_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms.max(self.retry_base_ms))
    }
}

/// One message waiting at a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting<P> {
    sequence: u64,
    payload: P,
    attempts: u32,
    not_before_ms: u64,
    last_error: String,
}

/// A try to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt<P> {
    pub sequence: u64,
    pub entity: String,
    /// Try number, from 1.
    pub attempt: u32,
    pub payload: P,
}

/// A message given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<P> {
    pub sequence: u64,
    pub entity: String,
    pub attempts: u32,
    pub last_error: String,
    pub payload: P,
}

/// The queue was full: the message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The messages of one destination; see the module documentation.
#[derive(Debug)]
pub struct Outbox<P> {
    policy: Policy,
    queues: BTreeMap<String, VecDeque<Waiting<P>>>,
    in_flight: BTreeSet<String>,
    pending: usize,
    next_sequence: u64,
}

impl<P: Clone> Outbox<P> {
    /// An empty outbox whose first message gets sequence `first_sequence`.
    pub fn new(policy: Policy, first_sequence: u64) -> Outbox<P> {
        Outbox {
            policy,
            queues: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            pending: 0,
            next_sequence: first_sequence,
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Messages waiting, in flight included.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Queues `payload` about `entity`, to be tried from `now_ms`; answers
    /// its sequence number.
    pub fn push(&mut self, entity: &str, payload: P, now_ms: u64) -> Result<u64, Full> {
        self.push_with(entity, now_ms, |_| payload)
    }

    /// As [`Outbox::push`], with the payload made from the sequence number
    /// it gets (a body that carries its own sequence).
    pub fn push_with(
        &mut self,
        entity: &str,
        now_ms: u64,
        make: impl FnOnce(u64) -> P,
    ) -> Result<u64, Full> {
        if self.pending >= self.policy.max_pending {
            return Err(Full);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.pending += 1;
        self.queues
            .entry(entity.to_string())
            .or_default()
            .push_back(Waiting {
                sequence,
                payload: make(sequence),
                attempts: 0,
                not_before_ms: now_ms,
                last_error: String::new(),
            });
        Ok(sequence)
    }

    /// The tries to start now: the head of each entity's queue that is
    /// due and not already in flight, oldest sequence first, up to the
    /// in-flight limit. Each is in flight until [`Outbox::delivered`] or
    /// [`Outbox::failed`] is called for it.
    pub fn due(&mut self, now_ms: u64) -> Vec<Attempt<P>> {
        let room = self
            .policy
            .max_in_flight
            .saturating_sub(self.in_flight.len());
        if room == 0 {
            return Vec::new();
        }
        let mut ready: Vec<(u64, &String, &Waiting<P>)> = self
            .queues
            .iter()
            .filter(|(entity, _)| !self.in_flight.contains(*entity))
            .filter_map(|(entity, q)| q.front().map(|w| (w.sequence, entity, w)))
            .filter(|(_, _, w)| w.not_before_ms <= now_ms)
            .collect();
        ready.sort_by_key(|(s, _, _)| *s);
        let out: Vec<Attempt<P>> = ready
            .into_iter()
            .take(room)
            .map(|(_, entity, w)| Attempt {
                sequence: w.sequence,
                entity: entity.clone(),
                attempt: w.attempts + 1,
                payload: w.payload.clone(),
            })
            .collect();
        for a in &out {
            self.in_flight.insert(a.entity.clone());
        }
        out
    }

    /// When the next try not in flight falls due, if any message waits.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.queues
            .iter()
            .filter(|(entity, _)| !self.in_flight.contains(*entity))
            .filter_map(|(_, q)| q.front().map(|w| w.not_before_ms))
            .min()
    }

    /// The sequence and payload of `entity`'s oldest waiting message.
    pub fn head(&self, entity: &str) -> Option<(u64, &P)> {
        self.queues
            .get(entity)?
            .front()
            .map(|w| (w.sequence, &w.payload))
    }

    /// The try of `entity`'s head message succeeded: it leaves the queue.
    pub fn delivered(&mut self, entity: &str, sequence: u64) {
        if self.take_head(entity, sequence).is_some() {
            self.in_flight.remove(entity);
        }
    }

    /// The try of `entity`'s head message failed with `error` at `now_ms`:
    /// it waits for its retry, or, after its last try, leaves the queue as
    /// the dead letter returned.
    pub fn failed(
        &mut self,
        entity: &str,
        sequence: u64,
        now_ms: u64,
        error: &str,
    ) -> Option<DeadLetter<P>> {
        let policy = self.policy;
        let is_head = self
            .queues
            .get(entity)
            .and_then(|q| q.front())
            .is_some_and(|w| w.sequence == sequence);
        if !is_head {
            return None;
        }
        self.in_flight.remove(entity);
        let head = self.queues.get_mut(entity)?.front_mut()?;
        head.attempts += 1;
        head.last_error = error.to_string();
        if head.attempts < policy.max_attempts {
            head.not_before_ms = now_ms.saturating_add(policy.backoff_ms(head.attempts));
            return None;
        }
        let w = self.take_head(entity, sequence)?;
        Some(DeadLetter {
            sequence: w.sequence,
            entity: entity.to_string(),
            attempts: w.attempts,
            last_error: w.last_error,
            payload: w.payload,
        })
    }

    fn take_head(&mut self, entity: &str, sequence: u64) -> Option<Waiting<P>> {
        let q = self.queues.get_mut(entity)?;
        if q.front().map(|w| w.sequence) != Some(sequence) {
            return None;
        }
        let w = q.pop_front();
        if q.is_empty() {
            self.queues.remove(entity);
        }
        self.pending -= 1;
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_attempts: 3,
            retry_base_ms: 100,
            retry_max_ms: 250,
            max_pending: 4,
            max_in_flight: 2,
        }
    }

    #[test]
    fn one_entity_goes_in_order_one_at_a_time() {
        let mut o = Outbox::new(policy(), 1);
        assert_eq!(o.push("host=a", "a1", 0), Ok(1));
        assert_eq!(o.push("host=a", "a2", 0), Ok(2));
        let first = o.due(0);
        assert_eq!(first.len(), 1, "only the head of an entity is tried");
        assert_eq!(first[0].payload, "a1");
        assert!(o.due(0).is_empty(), "nothing else until it is decided");
        o.delivered("host=a", 1);
        let second = o.due(0);
        assert_eq!((second[0].sequence, second[0].payload), (2, "a2"));
        o.delivered("host=a", 2);
        assert_eq!(o.pending(), 0);
        assert_eq!(o.next_due_ms(), None);
    }

    #[test]
    fn a_failure_waits_with_doubling_backoff_then_dead_letters_and_the_next_goes() {
        let mut o = Outbox::new(policy(), 1);
        o.push("e", "m1", 0).unwrap();
        o.push("e", "m2", 0).unwrap();
        let a = o.due(0).remove(0);
        assert_eq!(a.attempt, 1);
        assert_eq!(o.failed("e", 1, 0, "HTTP 500"), None);
        assert!(o.due(99).is_empty(), "the retry waits the base");
        assert_eq!(o.next_due_ms(), Some(100));
        let a = o.due(100).remove(0);
        assert_eq!((a.sequence, a.attempt), (1, 2));
        assert_eq!(o.failed("e", 1, 100, "HTTP 502"), None);
        assert_eq!(o.next_due_ms(), Some(300), "doubled: 200 ms");
        let a = o.due(300).remove(0);
        assert_eq!(a.attempt, 3);
        let dead = o.failed("e", 1, 300, "timed out").expect("the last try");
        assert_eq!(
            dead,
            DeadLetter {
                sequence: 1,
                entity: "e".into(),
                attempts: 3,
                last_error: "timed out".into(),
                payload: "m1"
            }
        );
        let next = o.due(300).remove(0);
        assert_eq!((next.sequence, next.attempt), (2, 1));
    }

    #[test]
    fn entities_go_side_by_side_up_to_the_limit_oldest_first() {
        let mut o = Outbox::new(policy(), 10);
        o.push("c", 3, 0).unwrap();
        o.push("a", 1, 0).unwrap();
        o.push("b", 2, 0).unwrap();
        let due = o.due(0);
        let seqs: Vec<u64> = due.iter().map(|a| a.sequence).collect();
        assert_eq!(seqs, vec![10, 11], "the two oldest, whatever the entity");
        o.delivered("c", 10);
        assert_eq!(o.due(0)[0].entity, "b");
    }

    #[test]
    fn a_full_outbox_refuses_and_stale_outcomes_are_ignored() {
        let mut o = Outbox::new(policy(), 1);
        for i in 0..4 {
            o.push("e", i, 0).unwrap();
        }
        assert_eq!(o.push("e", 9, 0), Err(Full));
        o.delivered("e", 7);
        assert_eq!(o.failed("e", 7, 0, "x"), None);
        assert_eq!(o.pending(), 4);
    }

    #[test]
    fn push_with_gives_the_payload_its_sequence() {
        let mut o = Outbox::new(Policy::default(), 41);
        o.push_with("e", 0, |s| format!("seq {s}")).unwrap();
        assert_eq!(o.due(0)[0].payload, "seq 41");
    }

    #[test]
    fn backoff_is_capped() {
        let p = Policy::default();
        assert_eq!(p.backoff_ms(1), 1_000);
        assert_eq!(p.backoff_ms(3), 4_000);
        assert_eq!(p.backoff_ms(40), 60_000);
    }
}

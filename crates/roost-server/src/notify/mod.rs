//! The notification service: sends every committed event-log record
//! (alarm set, alarm clear, customer log) to the destinations operators
//! configure through `/v1/notifications/destinations`: webhooks, SNMP
//! managers (traps of ROOST-ALARM-MIB) and syslog collectors.
//!
//! The fault management writer hands each committed batch's records to
//! [`NotifyService::publish`], which only queues them (never waits): each
//! destination has its own bounded queue and task ([`send`]), so a slow or
//! dead destination delays no other and never the writer. A full queue
//! drops the record and counts it.
//!
//! Destinations are stored (secrets sealed). Webhook deliveries that run
//! out of tries are stored as dead letters, listed, retried or discarded
//! through the API. Records still queued when the server stops are not
//! sent; the event log keeps them.

mod send;
pub mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use roost_api::notify::{
    DeadLetterView, DeliveryStats, DestinationCreate, DestinationUpdate, DestinationView,
    NotifiedEvent, WebhookBody,
};
use roost_fm::{Event, EventState, FmState};
use roost_store::{Store, StoredDestination};
use roost_types::{Clock, Severity};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::metrics::Metrics;
use settings::{Checked, Kind, MinSeverity, Secrets};

/// Most destinations a cloud may have.
pub const MAX_DESTINATIONS: usize = 64;
/// Records waiting per destination before new ones are dropped.
pub const QUEUE_LEN: usize = 10_000;

/// What a destination's task is handed.
#[derive(Debug)]
pub(crate) enum Job {
    /// A committed record, and when it was handed over.
    Event(Arc<Event>, Instant),
    /// A dead letter sent again (webhooks).
    Again(Box<NotifiedEvent>),
}

/// Counters a destination's task keeps and the API shows.
pub(crate) type Stats = Arc<Mutex<DeliveryStats>>;

struct Dest {
    stored: StoredDestination,
    kind: Kind,
    min_severity: MinSeverity,
    tx: mpsc::Sender<Job>,
    stats: Stats,
    task: tokio::task::AbortHandle,
}

impl Drop for Dest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// This cloud's SNMP engine: what SNMPv3 traps are sent as.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    pub id: Vec<u8>,
    pub boots: u32,
    pub started: Instant,
}

/// What every destination task shares.
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// The system name put in webhook bodies.
    pub system: String,
    /// This host's name, put in syslog messages.
    pub hostname: String,
    pub engine: Engine,
    pub http: reqwest::Client,
}

/// Handle to the notification service; cheap to clone.
#[derive(Clone)]
pub struct NotifyService {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    dests: Arc<Mutex<BTreeMap<String, Dest>>>,
    /// Changes pass one at a time from their decision to their application.
    lane: Arc<Mutex<()>>,
}

impl NotifyService {
    /// Loads the destinations and starts a task for each enabled one. Call
    /// from within the runtime.
    pub fn start(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        system: String,
        hostname: String,
    ) -> Result<NotifyService, Error> {
        let mut fresh = [0u8; 8];
        getrandom::fill(&mut fresh)
            .map_err(|e| Error::Internal(format!("no randomness for the SNMP engine id: {e}")))?;
        let fresh_id = roost_notify::snmp::engine_id_from_octets(731, &fresh);
        let (id_hex, boots) = store.start_snmp_engine(&roost_notify::snmp::hex(&fresh_id))?;
        let id = unhex(&id_hex).ok_or_else(|| {
            Error::Internal(format!(
                "the stored SNMP engine id {id_hex:?} is not hexadecimal"
            ))
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("roost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the webhook client: {e}")))?;
        let shared = Arc::new(Shared {
            store: store.clone(),
            metrics,
            clock,
            system,
            hostname,
            engine: Engine {
                id,
                boots: u32::try_from(boots).unwrap_or(u32::MAX),
                started: Instant::now(),
            },
            http,
        });
        let service = NotifyService {
            shared,
            runtime: tokio::runtime::Handle::current(),
            dests: Arc::new(Mutex::new(BTreeMap::new())),
            lane: Arc::default(),
        };
        let counts: BTreeMap<String, u64> = store.dead_letter_counts()?.into_iter().collect();
        for stored in store.destinations()? {
            let id = stored.id.clone();
            match service.launch(stored) {
                Ok(d) => {
                    if let Ok(mut s) = d.stats.lock() {
                        s.dead_lettered = counts.get(&id).copied().unwrap_or(0);
                    }
                    service.lock().insert(id, d);
                }
                Err(e) => {
                    tracing::error!(destination = %id, error = %e, "a notification destination cannot start; it sends nothing until fixed")
                }
            }
        }
        Ok(service)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Dest>> {
        self.dests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This cloud's SNMP engine id, hexadecimal.
    pub fn engine_id(&self) -> String {
        roost_notify::snmp::hex(&self.shared.engine.id)
    }

    /// Starts the task of a stored destination.
    fn launch(&self, stored: StoredDestination) -> Result<Dest, Error> {
        let kind = Kind::from_stored(&stored.kind, &stored.settings)?;
        let secrets: Secrets = match &stored.secret {
            Some(s) => serde_json::from_str(s).map_err(|e| {
                Error::Internal(format!(
                    "the secrets of destination {} cannot be read: {e}",
                    stored.name
                ))
            })?,
            None => Secrets::default(),
        };
        let min_severity = MinSeverity::parse(&stored.min_severity)?;
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let stats: Stats = Arc::default();
        let task = send::spawn(
            &self.runtime,
            self.shared.clone(),
            &stored,
            &kind,
            &secrets,
            rx,
            stats.clone(),
        )?;
        Ok(Dest {
            stored,
            kind,
            min_severity,
            tx,
            stats,
            task,
        })
    }

    /// Queues each record for every destination that takes it: enabled,
    /// at or above its severity, a log only if it takes logs, and never
    /// an alarm whose id is suppressed. Never waits.
    pub fn publish(&self, events: &[Event], fm: &FmState) {
        let dests = self.lock();
        if dests.is_empty() {
            return;
        }
        let now = Instant::now();
        for e in events {
            let is_log = matches!(e.state, EventState::Log | EventState::Msg);
            if !is_log && fm.is_suppressed(&e.event_log_id) {
                continue;
            }
            let shared = Arc::new(e.clone());
            for d in dests.values() {
                if !d.stored.enabled
                    || (is_log && !d.stored.include_logs)
                    || !d.min_severity.admits(e.severity)
                {
                    continue;
                }
                if d.tx.try_send(Job::Event(shared.clone(), now)).is_err() {
                    self.shared.metrics.notify_dropped(d.kind.name());
                    if let Ok(mut s) = d.stats.lock() {
                        s.dropped += 1;
                    }
                }
            }
        }
    }

    /// Every destination, by name.
    pub fn list(&self) -> Vec<DestinationView> {
        let engine = self.engine_id();
        let mut v: Vec<DestinationView> = self.lock().values().map(|d| view(d, &engine)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A destination by id or name.
    pub fn show(&self, id_or_name: &str) -> Result<DestinationView, Error> {
        let engine = self.engine_id();
        let dests = self.lock();
        find(&dests, id_or_name).map(|d| view(d, &engine))
    }

    /// Adds a destination (blocking: it writes the store).
    pub fn create(&self, body: DestinationCreate) -> Result<DestinationView, Error> {
        let _lane = self.lane.lock().unwrap_or_else(|e| e.into_inner());
        let Checked {
            name,
            min_severity,
            include_logs,
            kind,
            secrets,
        } = settings::check(body)?;
        // Decide.
        let stored = {
            let dests = self.lock();
            if dests.values().any(|d| d.stored.name == name) {
                return Err(Error::Conflict(format!(
                    "a notification destination named {name} already exists"
                )));
            }
            if dests.len() >= MAX_DESTINATIONS {
                return Err(Error::Invalid(format!(
                    "a cloud has at most {MAX_DESTINATIONS} notification destinations: delete one first"
                )));
            }
            let secret = (secrets != Secrets::default())
                .then(|| serde_json::to_string(&secrets))
                .transpose()?;
            StoredDestination {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.clone(),
                kind: kind.name().to_string(),
                enabled: true,
                min_severity: min_severity.as_str().to_string(),
                include_logs,
                settings: kind.to_json(),
                secret,
                created_at: self.shared.clock.now(),
            }
        };
        // Build its task's settings before persisting: what cannot start
        // is refused, not stored.
        let dest = self.launch(stored.clone())?;
        // Persist.
        if !self.shared.store.insert_destination(&stored)? {
            return Err(Error::Conflict(format!(
                "a notification destination named {name} already exists"
            )));
        }
        // Apply.
        let engine = self.engine_id();
        let v = view(&dest, &engine);
        self.lock().insert(stored.id.clone(), dest);
        tracing::info!(destination = %name, kind = kind.name(), address = %kind.address(), "added a notification destination");
        Ok(v)
    }

    /// Changes what may change of a destination (blocking).
    pub fn update(
        &self,
        id_or_name: &str,
        body: DestinationUpdate,
    ) -> Result<DestinationView, Error> {
        let _lane = self.lane.lock().unwrap_or_else(|e| e.into_inner());
        let min = body
            .min_severity
            .as_deref()
            .map(MinSeverity::parse)
            .transpose()?;
        let (id, enabled, min, logs) = {
            let dests = self.lock();
            let d = find(&dests, id_or_name)?;
            (
                d.stored.id.clone(),
                body.enabled.unwrap_or(d.stored.enabled),
                min.unwrap_or(d.min_severity),
                body.include_logs.unwrap_or(d.stored.include_logs),
            )
        };
        if !self
            .shared
            .store
            .update_destination(&id, enabled, min.as_str(), logs)?
        {
            return Err(not_found(id_or_name));
        }
        let engine = self.engine_id();
        let mut dests = self.lock();
        let d = dests.get_mut(&id).ok_or_else(|| not_found(id_or_name))?;
        d.stored.enabled = enabled;
        d.stored.min_severity = min.as_str().to_string();
        d.stored.include_logs = logs;
        d.min_severity = min;
        Ok(view(d, &engine))
    }

    /// Deletes a destination and its dead letters (blocking); its queue is
    /// dropped.
    pub fn delete(&self, id_or_name: &str) -> Result<(), Error> {
        let _lane = self.lane.lock().unwrap_or_else(|e| e.into_inner());
        let id = find(&self.lock(), id_or_name)?.stored.id.clone();
        if !self.shared.store.delete_destination(&id)? {
            return Err(not_found(id_or_name));
        }
        if let Some(d) = self.lock().remove(&id) {
            tracing::info!(destination = %d.stored.name, "deleted a notification destination");
        }
        Ok(())
    }

    /// Sends a test record to one destination, whatever its filters.
    pub fn test(&self, id_or_name: &str) -> Result<(), Error> {
        let dests = self.lock();
        let d = find(&dests, id_or_name)?;
        let e = Event {
            uuid: uuid::Uuid::new_v4().to_string(),
            event_log_id: "roost.notification-test".into(),
            state: EventState::Log,
            entity_instance_id: format!("notification-destination={}", d.stored.name),
            entity_type_id: "notification-destination".into(),
            severity: Severity::NotApplicable,
            reason_text: format!(
                "Test notification to destination {} from {}",
                d.stored.name, self.shared.system
            ),
            event_log_type: "communication".into(),
            probable_cause: "unspecified-reason".into(),
            proposed_repair_action: "None: this is a test.".into(),
            service_affecting: false,
            suppression: false,
            timestamp: self.shared.clock.now(),
        };
        d.tx.try_send(Job::Event(Arc::new(e), Instant::now()))
            .map_err(|_| Error::Busy("the destination's queue is full; try again later"))
    }

    /// A destination's dead letters, oldest first (blocking).
    pub fn dead_letters(&self, id_or_name: &str) -> Result<Vec<DeadLetterView>, Error> {
        let id = find(&self.lock(), id_or_name)?.stored.id.clone();
        let letters = self.shared.store.dead_letters(&id)?;
        Ok(letters
            .into_iter()
            .filter_map(|l| {
                let body: WebhookBody = serde_json::from_str(&l.body).ok()?;
                Some(DeadLetterView {
                    id: l.id,
                    destination_id: l.destination_id,
                    sequence: u64::try_from(l.sequence).unwrap_or(0),
                    entity_instance_id: l.entity,
                    attempts: u32::try_from(l.attempts).unwrap_or(0),
                    last_error: l.last_error,
                    created_at: l.created_at.to_string(),
                    body,
                })
            })
            .collect())
    }

    /// Discards a dead letter, or (`again`) queues its record once more
    /// (blocking).
    pub fn settle_dead_letter(
        &self,
        id_or_name: &str,
        letter: &str,
        again: bool,
    ) -> Result<(), Error> {
        let _lane = self.lane.lock().unwrap_or_else(|e| e.into_inner());
        let (id, tx, stats) = {
            let dests = self.lock();
            let d = find(&dests, id_or_name)?;
            (d.stored.id.clone(), d.tx.clone(), d.stats.clone())
        };
        let missing = || {
            Error::NotFound(format!(
                "destination {id_or_name} has no dead letter {letter}"
            ))
        };
        let found = self
            .shared
            .store
            .dead_letters(&id)?
            .into_iter()
            .find(|l| l.id == letter)
            .ok_or_else(missing)?;
        if again {
            let body: WebhookBody = serde_json::from_str(&found.body)?;
            tx.try_send(Job::Again(Box::new(body.event)))
                .map_err(|_| Error::Busy("the destination's queue is full; try again later"))?;
        }
        if !self.shared.store.delete_dead_letter(&id, letter)? {
            return Err(missing());
        }
        if let Ok(mut s) = stats.lock() {
            s.dead_lettered = s.dead_lettered.saturating_sub(1);
        }
        Ok(())
    }
}

fn not_found(id_or_name: &str) -> Error {
    Error::NotFound(format!(
        "no notification destination {id_or_name}: `roost destination list` shows them"
    ))
}

fn find<'a>(dests: &'a BTreeMap<String, Dest>, id_or_name: &str) -> Result<&'a Dest, Error> {
    dests
        .get(id_or_name)
        .or_else(|| dests.values().find(|d| d.stored.name == id_or_name))
        .ok_or_else(|| not_found(id_or_name))
}

fn view(d: &Dest, engine_id: &str) -> DestinationView {
    let mut settings = match serde_json::from_str::<serde_json::Value>(&d.stored.settings) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let secrets: Secrets = d
        .stored
        .secret
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    for (key, set) in [
        ("secret", secrets.webhook_secret.is_some()),
        ("community", secrets.community.is_some()),
        ("auth_password", secrets.auth_password.is_some()),
        ("priv_password", secrets.priv_password.is_some()),
    ] {
        if set {
            settings.insert(key.into(), serde_json::Value::String("<hidden>".into()));
        }
    }
    let snmp_v3 = matches!(&d.kind, Kind::Snmp(s) if s.version == "3");
    DestinationView {
        id: d.stored.id.clone(),
        name: d.stored.name.clone(),
        kind: d.kind.name().to_string(),
        address: d.kind.address(),
        enabled: d.stored.enabled,
        min_severity: d.stored.min_severity.clone(),
        include_logs: d.stored.include_logs,
        settings,
        engine_id: snmp_v3.then(|| engine_id.to_string()),
        stats: d.stats.lock().map(|s| s.clone()).unwrap_or_default(),
        created_at: d.stored.created_at.to_string(),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

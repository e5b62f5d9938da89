//! The DC service alone: a real store (whose commits can be made to fail),
//! the real fault management service, and a manual clock.

use super::*;
use roost_api::dcsync::WireAlarmChange;
use roost_types::ManualClock;

const START: Timestamp = Timestamp(1_700_000_000_000_000);

struct Harness {
    dc: DcService,
    fm: FmService,
    store: Arc<Store>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn config() -> DcConfig {
    DcConfig {
        settings: DcSettings {
            offline_after_secs: 4,
            out_of_sync_alarm_after_secs: 5,
        },
        sync_interval_secs: 1,
        enroll_ttl_secs: 60,
        cert_days: 30,
    }
}

fn open_store(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(
        Store::open(roost_store::StoreConfig {
            key: roost_store::KeySource::beside(&dir.join("db")),
            location: roost_store::Location::Sqlite(dir.join("db")),
            durability: roost_store::Durability::Process,
            event_log_cap: 1000,
        })
        .unwrap(),
    )
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        Harness::on(dir, store).await
    }

    async fn on(dir: tempfile::TempDir, store: Arc<Store>) -> Harness {
        let clock = Arc::new(ManualClock::new(START));
        let (fm, _writer) = FmService::start(
            store.clone(),
            Arc::new(roost_fm::Catalogue::builtin()),
            clock.clone(),
            None,
            Arc::new(crate::metrics::Metrics::new()),
        )
        .unwrap();
        // The tick loop stops at once: tests tick by hand, with the clock.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(true);
        let (dc, _task) = DcService::start(
            store.clone(),
            fm.clone(),
            clock.clone(),
            config(),
            crate::Shutdown(stop_rx),
        )
        .await
        .unwrap();
        Harness {
            dc,
            fm,
            store,
            clock,
            _dir: dir,
            _stop: stop_tx,
        }
    }

    /// The same store, a fresh service (a restart).
    async fn restart(self) -> Harness {
        let Harness { store, _dir, .. } = self;
        Harness::on(_dir, store).await
    }

    async fn create(&self, name: &str) -> String {
        let (_, token) = self
            .dc
            .create(name, None, None, None, None, &"ab".repeat(32))
            .await
            .unwrap();
        roost_api::dcsync::parse_enroll_token(&token)
            .unwrap()
            .1
            .to_string()
    }

    async fn enroll(&self, secret: &str, serial: &str) -> Result<String, Error> {
        let serial = serial.to_string();
        self.dc
            .enroll(secret, move |_| {
                Ok(IssuedCert {
                    serial,
                    cert_pem: String::new(),
                })
            })
            .await
            .map(|(name, _)| name)
    }

    fn peer(&self, name: &str, serial: &str) -> PeerCert {
        PeerCert {
            cn: name.into(),
            serial: serial.into(),
            not_before: self.clock.now().micros() / 1_000_000,
        }
    }

    fn alarm(&self, alarm_id: &str, entity: &str) -> bool {
        self.fm
            .read()
            .alarms()
            .any(|a| a.alarm_id == alarm_id && a.entity_instance_id == entity)
    }

    fn view(&self, name: &str) -> SubcloudView {
        self.dc.get(name).unwrap()
    }

    /// A managed subcloud that went silent: offline with 280.001.
    async fn managed_and_offline(&self, name: &str, serial: &str) {
        let secret = self.create(name).await;
        self.enroll(&secret, serial).await.unwrap();
        self.dc
            .update(name, Some("managed"), None, None, None)
            .await
            .unwrap();
        self.clock.advance_secs(10);
        self.dc.tick().await;
        assert_eq!(self.view(name).availability_status, "offline");
        assert!(self.alarm("280.001", &format!("subcloud={name}")));
    }
}

fn change(seq: u64) -> WireAlarmChange {
    WireAlarmChange {
        seq,
        alarm_id: "100.104".into(),
        entity_instance_id: format!("host=c.filesystem=/{seq}"),
        severity: Some("major".into()),
        reason_text: String::new(),
        timestamp: 1,
    }
}

#[tokio::test]
async fn a_sync_whose_alarm_stream_is_refused_still_clears_280_001() {
    let h = Harness::new().await;
    h.managed_and_offline("edge-1", "01").await;
    // Heard from, but its stream is out of order: refused whole.
    let req = SyncRequest {
        changes: vec![change(3), change(2)],
        ..SyncRequest::default()
    };
    let err = h.dc.sync(&h.peer("edge-1", "01"), req).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    // The heartbeat counted, and what it caused was carried out.
    assert_eq!(h.view("edge-1").availability_status, "online");
    assert!(
        !h.alarm("280.001", "subcloud=edge-1"),
        "280.001 cleared with the fleet's offline flag"
    );
    assert!(h.dc.subcloud_alarms("edge-1").unwrap().is_empty());
}

#[tokio::test]
async fn a_sync_with_a_bad_part_changes_nothing_of_its_other_parts() {
    let h = Harness::new().await;
    let secret = h.create("edge-1").await;
    h.enroll(&secret, "01").await.unwrap();
    let mut bad = change(2);
    bad.severity = Some("apocalyptic".into());
    let req = SyncRequest {
        software_version: Some("9.9".into()),
        changes: vec![change(1), bad],
        ..SyncRequest::default()
    };
    let err = h.dc.sync(&h.peer("edge-1", "01"), req).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert!(h.dc.subcloud_alarms("edge-1").unwrap().is_empty());
    assert_eq!(h.view("edge-1").software_version, None);
}

#[tokio::test]
async fn a_failed_commit_leaves_memory_as_it_was() {
    let h = Harness::new().await;
    // Add.
    h.store.fail_next_commits(1);
    let err =
        h.dc.create("edge-1", None, None, None, None, &"ab".repeat(32))
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert!(h.dc.list().is_empty());
    let secret = h.create("edge-1").await;

    // Enrollment: the token is not used up by a failed commit.
    h.store.fail_next_commits(1);
    assert!(matches!(
        h.enroll(&secret, "01").await,
        Err(Error::Store(_))
    ));
    assert_eq!(h.view("edge-1").deploy_status, "not-deployed");
    assert!(matches!(
        h.dc.sync(&h.peer("edge-1", "01"), SyncRequest::default())
            .await,
        Err(Error::Unauthorized(_))
    ));
    assert_eq!(h.enroll(&secret, "01").await.unwrap(), "edge-1");

    // Update.
    h.store.fail_next_commits(1);
    assert!(
        h.dc.update("edge-1", Some("managed"), Some("new".into()), None, None)
            .await
            .is_err()
    );
    let v = h.view("edge-1");
    assert_eq!(v.management_state, "unmanaged");
    assert_eq!(v.description, None);

    // Delete (unmanaged and, once silent, offline).
    h.clock.advance_secs(10);
    h.dc.tick().await;
    h.store.fail_next_commits(1);
    assert!(h.dc.delete("edge-1").await.is_err());
    assert_eq!(h.dc.list().len(), 1);

    // Groups.
    h.store.fail_next_commits(1);
    assert!(
        h.dc.add_group("west".into(), None, None, None)
            .await
            .is_err()
    );
    assert_eq!(h.dc.groups().len(), 1);
    h.dc.add_group("west".into(), None, None, None)
        .await
        .unwrap();
    h.store.fail_next_commits(1);
    assert!(
        h.dc.update_group("west", None, Some("d2".into()), None, None)
            .await
            .is_err()
    );
    assert_eq!(
        h.dc.group("west").unwrap().description,
        "No description provided"
    );
    h.store.fail_next_commits(1);
    assert!(h.dc.delete_group("west").await.is_err());
    assert!(h.dc.group("west").is_ok());

    // Desired configuration.
    let before = h.dc.desired(Endpoint::Platform);
    h.store.fail_next_commits(1);
    assert!(
        h.dc.set_desired(EndpointConfig::Platform(
            roost_api::dcsync::PlatformConfig {
                dns_servers: vec!["10.0.0.1".into()],
                ..Default::default()
            }
        ))
        .await
        .is_err()
    );
    assert_eq!(h.dc.desired(Endpoint::Platform), before);

    // Memory and store agree: a restart sees the same.
    let list = h.dc.list();
    let groups = h.dc.groups().len();
    let h = h.restart().await;
    let again = h.dc.list();
    assert_eq!(again.len(), list.len());
    assert_eq!(again[0].management_state, list[0].management_state);
    assert_eq!(again[0].deploy_status, list[0].deploy_status);
    assert_eq!(h.dc.groups().len(), groups);
}

#[tokio::test]
async fn subcloud_alarms_whose_commits_failed_are_recorded_at_the_next_tick() {
    let h = Harness::new().await;
    let secret = h.create("edge-1").await;
    h.enroll(&secret, "01").await.unwrap();
    h.dc.update("edge-1", Some("managed"), None, None, None)
        .await
        .unwrap();
    // Silent: offline, and the commit of 280.001 fails.
    h.clock.advance_secs(10);
    h.store.fail_next_commits(1);
    h.dc.tick().await;
    assert_eq!(h.view("edge-1").availability_status, "offline");
    assert!(!h.alarm("280.001", "subcloud=edge-1"), "the commit failed");
    h.dc.tick().await;
    assert!(
        h.alarm("280.001", "subcloud=edge-1"),
        "raised at the next tick"
    );
    // Heard from again: online, and the commit of the clear fails.
    h.store.fail_next_commits(1);
    h.dc.sync(&h.peer("edge-1", "01"), SyncRequest::default())
        .await
        .unwrap();
    assert_eq!(h.view("edge-1").availability_status, "online");
    assert!(h.alarm("280.001", "subcloud=edge-1"), "the commit failed");
    h.dc.tick().await;
    assert!(
        !h.alarm("280.001", "subcloud=edge-1"),
        "cleared at the next tick"
    );
}

#[tokio::test]
async fn derived_state_that_failed_to_commit_is_written_at_the_next_tick() {
    let h = Harness::new().await;
    let secret = h.create("edge-1").await;
    h.enroll(&secret, "01").await.unwrap();
    h.store.fail_next_commits(1);
    let req = SyncRequest {
        software_version: Some("9.9".into()),
        ..SyncRequest::default()
    };
    h.dc.sync(&h.peer("edge-1", "01"), req).await.unwrap();
    let stored = |h: &Harness| h.store.subclouds().unwrap()[0].software_version.clone();
    assert_eq!(stored(&h), None, "the commit failed");
    h.dc.tick().await;
    assert_eq!(stored(&h).as_deref(), Some("9.9"), "written again");
}

#[tokio::test]
async fn a_deleted_subclouds_certificate_is_refused_and_a_new_one_is_not_confused_with_it() {
    let h = Harness::new().await;
    let secret = h.create("edge-1").await;
    h.enroll(&secret, "0a").await.unwrap();
    let old = h.peer("edge-1", "0a");
    h.dc.sync(&old, SyncRequest::default()).await.unwrap();
    // Silent, then deleted, then added again under the same name.
    h.clock.advance_secs(10);
    h.dc.tick().await;
    h.dc.delete("edge-1").await.unwrap();
    assert!(matches!(
        h.dc.sync(&old, SyncRequest::default()).await,
        Err(Error::Unauthorized(_))
    ));
    let secret = h.create("edge-1").await;
    let err = h.dc.sync(&old, SyncRequest::default()).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    assert_eq!(h.view("edge-1").availability_status, "offline");
    // The new subcloud enrolls with its own certificate; the old stays out.
    h.enroll(&secret, "0b").await.unwrap();
    h.dc.sync(&h.peer("edge-1", "0b"), SyncRequest::default())
        .await
        .unwrap();
    assert!(h.dc.sync(&old, SyncRequest::default()).await.is_err());
    assert!(h.dc.authenticate(&old).is_err());
    // A restart keeps it so.
    let h = h.restart().await;
    assert!(h.dc.authenticate(&old).is_err());
    assert_eq!(
        h.dc.authenticate(&h.peer("edge-1", "0b")).unwrap(),
        "edge-1"
    );
}

#[tokio::test]
async fn renewal_moves_the_identity_to_the_new_certificate() {
    let h = Harness::new().await;
    let secret = h.create("edge-1").await;
    h.enroll(&secret, "01").await.unwrap();
    let renew = |serial: &'static str| {
        move |_: &str| {
            Ok(IssuedCert {
                serial: serial.into(),
                cert_pem: String::new(),
            })
        }
    };
    h.dc.renew(&h.peer("edge-1", "01"), renew("02"))
        .await
        .unwrap();
    // The old one still works until the next renewal (the answer may be lost).
    assert!(h.dc.authenticate(&h.peer("edge-1", "01")).is_ok());
    assert!(h.dc.authenticate(&h.peer("edge-1", "02")).is_ok());
    h.dc.renew(&h.peer("edge-1", "02"), renew("03"))
        .await
        .unwrap();
    assert!(h.dc.authenticate(&h.peer("edge-1", "01")).is_err());
    assert!(h.dc.authenticate(&h.peer("edge-1", "03")).is_ok());
    // A failed commit keeps the identity as it was.
    h.store.fail_next_commits(1);
    assert!(
        h.dc.renew(&h.peer("edge-1", "03"), renew("04"))
            .await
            .is_err()
    );
    assert!(h.dc.authenticate(&h.peer("edge-1", "04")).is_err());
    assert!(h.dc.authenticate(&h.peer("edge-1", "02")).is_ok());
}

#[tokio::test]
async fn errors_carry_their_kind() {
    let h = Harness::new().await;
    assert!(matches!(h.dc.get("nobody"), Err(Error::NotFound(_))));
    assert!(matches!(h.dc.group("nobody"), Err(Error::NotFound(_))));
    assert!(matches!(
        h.dc.delete_group("Default").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        h.dc.add_group("x".into(), None, Some("sideways".into()), None)
            .await,
        Err(Error::Invalid(_))
    ));
    h.create("edge-1").await;
    assert!(matches!(
        h.dc.create("edge-1", None, None, None, None, "").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        h.enroll("not-a-token", "01").await,
        Err(Error::Unauthorized(_))
    ));
}

#[tokio::test]
async fn forwarded_audit_records_are_kept_once_and_acknowledged() {
    use roost_api::audit::WireAuditRecord;
    use roost_types::audit::{AuditEntry, Chain};
    let h = Harness::new().await;
    let secret = h.create("edge-1").await;
    h.enroll(&secret, "01").await.unwrap();
    let mut chain = Chain::default();
    let records: Vec<WireAuditRecord> = (0..5)
        .map(|i| {
            WireAuditRecord::from(&chain.append(AuditEntry {
                time: Timestamp(i),
                user: "admin".into(),
                roles: vec!["admin".into()],
                source: "10.0.0.9:1".into(),
                method: "POST".into(),
                path: format!("/v1/alarms/{i}"),
                status: 200,
            }))
        })
        .collect();
    let sync = |audit: Vec<WireAuditRecord>| SyncRequest {
        audit,
        ..SyncRequest::default()
    };
    let peer = h.peer("edge-1", "01");
    let r = h.dc.sync(&peer, sync(vec![])).await.unwrap();
    assert_eq!(r.audit_acked, Some(0));
    let r = h.dc.sync(&peer, sync(records[..3].to_vec())).await.unwrap();
    assert_eq!(r.audit_acked, Some(3));
    // Sent again with more: the held ones are skipped.
    let r = h.dc.sync(&peer, sync(records[1..].to_vec())).await.unwrap();
    assert_eq!(r.audit_acked, Some(5));
    let held = h.dc.subcloud_audit("edge-1", 100).await.unwrap();
    assert_eq!(
        held.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(roost_types::audit::verify(&held, None).ok());
    // A failed commit acknowledges nothing new.
    let more = WireAuditRecord::from(&chain.append(AuditEntry {
        time: Timestamp(9),
        user: "admin".into(),
        roles: vec![],
        source: String::new(),
        method: "DELETE".into(),
        path: "/v1/x".into(),
        status: 204,
    }));
    h.store.fail_next_commits(1);
    let r = h.dc.sync(&peer, sync(vec![more.clone()])).await.unwrap();
    assert_eq!(r.audit_acked, Some(5));
    let r = h.dc.sync(&peer, sync(vec![more])).await.unwrap();
    assert_eq!(r.audit_acked, Some(6));
    // Out of order: refused whole.
    let err =
        h.dc.sync(&peer, sync(vec![records[4].clone(), records[3].clone()]))
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

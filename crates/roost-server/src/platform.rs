//! The platform configuration service: the owner of this cloud's DNS and
//! NTP servers (sysinv `/v1/idns`, `/v1/intp`). Keys are typed; values are
//! validated here, committed, and only then published on a watch channel,
//! so that whoever depends on them (the Distributed Cloud sync of a system
//! controller) is told of a change instead of polling for it.

use std::net::IpAddr;
use std::sync::Arc;

use roost_store::Store;
use tokio::sync::watch;

use crate::Error;

const STOPPED: &str = "the platform configuration service is stopping";

/// A platform setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformKey {
    /// DNS servers: IP addresses.
    DnsServers,
    /// NTP servers: IP addresses or host names.
    NtpServers,
}

impl PlatformKey {
    pub const ALL: [PlatformKey; 2] = [PlatformKey::DnsServers, PlatformKey::NtpServers];

    /// Where the value is stored.
    fn setting(self) -> &'static str {
        match self {
            PlatformKey::DnsServers => "platform.dns_servers",
            PlatformKey::NtpServers => "platform.ntp_servers",
        }
    }

    /// sysinv's field name.
    pub fn field(self) -> &'static str {
        match self {
            PlatformKey::DnsServers => "nameservers",
            PlatformKey::NtpServers => "ntpservers",
        }
    }

    /// At most this many servers.
    pub const MAX_SERVERS: usize = 3;

    fn ip_only(self) -> bool {
        self == PlatformKey::DnsServers
    }

    /// Splits and checks a comma-separated list of servers.
    pub fn parse(self, value: &str) -> Result<Vec<String>, Error> {
        let servers: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        self.check(&servers)?;
        Ok(servers)
    }

    /// Checks a list of servers.
    pub fn check(self, servers: &[String]) -> Result<(), Error> {
        if servers.len() > Self::MAX_SERVERS {
            return Err(Error::Invalid(format!(
                "at most {} {} are allowed",
                Self::MAX_SERVERS,
                self.field()
            )));
        }
        for s in servers {
            let ok = s.parse::<IpAddr>().is_ok() || (!self.ip_only() && is_host_name(s));
            if !ok {
                return Err(Error::Invalid(format!(
                    "invalid {} entry {s:?}: {}",
                    self.field(),
                    if self.ip_only() {
                        "use IP addresses"
                    } else {
                        "use IP addresses or host names"
                    }
                )));
            }
        }
        Ok(())
    }
}

fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// This cloud's platform configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformServers {
    pub dns_servers: Vec<String>,
    pub ntp_servers: Vec<String>,
}

impl PlatformServers {
    /// The servers of one key.
    pub fn servers(&self, key: PlatformKey) -> &[String] {
        match key {
            PlatformKey::DnsServers => &self.dns_servers,
            PlatformKey::NtpServers => &self.ntp_servers,
        }
    }

    fn servers_mut(&mut self, key: PlatformKey) -> &mut Vec<String> {
        match key {
            PlatformKey::DnsServers => &mut self.dns_servers,
            PlatformKey::NtpServers => &mut self.ntp_servers,
        }
    }
}

/// Handle to the platform configuration; cheap to clone.
#[derive(Clone)]
pub struct PlatformService {
    store: Arc<Store>,
    /// One change at a time between its decision and its publication.
    lane: Arc<tokio::sync::Mutex<()>>,
    current: Arc<watch::Sender<PlatformServers>>,
}

impl PlatformService {
    /// Loads the stored configuration. A stored value that no longer
    /// passes the checks is kept as it is (and reported), not dropped.
    pub fn load(store: Arc<Store>) -> Result<PlatformService, Error> {
        let mut cfg = PlatformServers::default();
        for key in PlatformKey::ALL {
            let raw = store.setting(key.setting())?.unwrap_or_default();
            let servers: Vec<String> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if let Err(e) = key.check(&servers) {
                tracing::warn!(setting = key.field(), error = %e, "a stored platform setting does not pass its checks");
            }
            *cfg.servers_mut(key) = servers;
        }
        Ok(PlatformService {
            store,
            lane: Arc::new(tokio::sync::Mutex::new(())),
            current: Arc::new(watch::channel(cfg).0),
        })
    }

    /// The configuration now.
    pub fn current(&self) -> PlatformServers {
        self.current.borrow().clone()
    }

    /// A receiver told of every committed change.
    pub fn subscribe(&self) -> watch::Receiver<PlatformServers> {
        self.current.subscribe()
    }

    /// Sets the servers of some keys in one commit; subscribers are told
    /// once it is committed. Checks everything before writing anything.
    pub async fn set(
        &self,
        changes: Vec<(PlatformKey, Vec<String>)>,
    ) -> Result<PlatformServers, Error> {
        for (key, servers) in &changes {
            key.check(servers)?;
        }
        let _lane = self.lane.lock().await;
        let mut next = self.current();
        for (key, servers) in &changes {
            *next.servers_mut(*key) = servers.clone();
        }
        if next == self.current() {
            return Ok(next);
        }
        let rows: Vec<(String, String)> = changes
            .iter()
            .map(|(k, s)| (k.setting().to_string(), s.join(",")))
            .collect();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.set_settings(&rows))
            .await
            .map_err(|_| Error::Stopped(STOPPED))??;
        self.current.send_replace(next.clone());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_takes_addresses_and_ntp_also_names() {
        assert_eq!(
            PlatformKey::DnsServers
                .parse(" 8.8.8.8, ,2001:db8::1")
                .unwrap(),
            ["8.8.8.8", "2001:db8::1"]
        );
        assert!(PlatformKey::DnsServers.parse("dns.example.com").is_err());
        assert_eq!(
            PlatformKey::NtpServers.parse("pool.ntp.org").unwrap(),
            ["pool.ntp.org"]
        );
        assert!(PlatformKey::NtpServers.parse("bad name").is_err());
        assert!(PlatformKey::NtpServers.parse("a,b,c,d").is_err());
    }

    fn store(dir: &tempfile::TempDir) -> Arc<Store> {
        Arc::new(
            Store::open(roost_store::StoreConfig {
                key: roost_store::KeySource::beside(&dir.path().join("roost.db")),
                location: roost_store::Location::Sqlite(dir.path().join("roost.db")),
                durability: Default::default(),
                event_log_cap: 100,
            })
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_change_is_committed_then_published_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let svc = PlatformService::load(store(&dir)).unwrap();
        let mut rx = svc.subscribe();
        svc.set(vec![(PlatformKey::NtpServers, vec!["10.0.0.1".into()])])
            .await
            .unwrap();
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().ntp_servers, ["10.0.0.1"]);
        let again = PlatformService::load(store(&dir)).unwrap();
        assert_eq!(again.current().ntp_servers, ["10.0.0.1"]);
    }

    #[tokio::test]
    async fn an_invalid_change_writes_nothing_and_tells_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let svc = PlatformService::load(store(&dir)).unwrap();
        let rx = svc.subscribe();
        let r = svc
            .set(vec![
                (PlatformKey::NtpServers, vec!["10.0.0.1".into()]),
                (PlatformKey::DnsServers, vec!["not-an-address".into()]),
            ])
            .await;
        assert!(matches!(r, Err(Error::Invalid(_))));
        assert!(!rx.has_changed().unwrap());
        let again = PlatformService::load(store(&dir)).unwrap();
        assert_eq!(again.current(), PlatformServers::default());
    }
}

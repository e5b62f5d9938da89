//! Board management controllers behind one small trait: the Redfish
//! implementation the server uses, and whatever a test puts in its place.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use roost_store::StoredHost;

use crate::Error;

/// The power actions maintenance asks a BMC for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Power-cycle (Redfish `ForceRestart`).
    Reset,
    /// Redfish `On`.
    On,
    /// Redfish `ForceOff`.
    Off,
}

impl PowerAction {
    /// The Redfish `ResetType`.
    pub fn redfish_reset_type(self) -> &'static str {
        match self {
            PowerAction::Reset => "ForceRestart",
            PowerAction::On => "On",
            PowerAction::Off => "ForceOff",
        }
    }
}

/// How to reach a host's BMC, taken from its record.
#[derive(Clone, PartialEq, Eq)]
pub struct BmcTarget {
    pub host: String,
    pub bm_type: String,
    pub address: Option<String>,
    pub username: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for BmcTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcTarget")
            .field("host", &self.host)
            .field("bm_type", &self.bm_type)
            .field("address", &self.address)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl BmcTarget {
    /// The BMC fields of a host record.
    pub fn of(h: &StoredHost) -> BmcTarget {
        BmcTarget {
            host: h.hostname.clone(),
            bm_type: h.bm_type.clone(),
            address: h.bm_ip.clone(),
            username: h.bm_username.clone().unwrap_or_default(),
            password: h.bm_password.clone(),
        }
    }
}

/// A future returned by [`Bmc::power`].
pub type BmcFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// Something that carries out power actions on hosts' BMCs.
pub trait Bmc: Send + Sync + 'static {
    /// Carries out `action` on the BMC of `target`. A failure's text goes
    /// into alarm 200.010: an unsupported BMC is invalid, one that cannot
    /// be reached is unreachable, one that answers with an error refused.
    fn power<'a>(&'a self, target: &'a BmcTarget, action: PowerAction) -> BmcFuture<'a>;
}

/// Redfish over HTTP: find the system, post a reset.
pub struct Redfish {
    client: reqwest::Client,
}

impl Redfish {
    /// A Redfish client whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Redfish, reqwest::Error> {
        Ok(Redfish {
            client: reqwest::Client::builder().timeout(timeout).build()?,
        })
    }

    async fn reset(&self, t: &BmcTarget, action: PowerAction) -> Result<(), Error> {
        if t.bm_type != "redfish" {
            return Err(Error::Invalid(format!(
                "BMC type {} is not supported (only redfish)",
                t.bm_type
            )));
        }
        let ip = t
            .address
            .as_deref()
            .ok_or_else(|| Error::Invalid("no bm_ip".into()))?;
        let base = if ip.starts_with("http://") || ip.starts_with("https://") {
            ip.trim_end_matches('/').to_string()
        } else {
            format!("http://{ip}")
        };
        if base.starts_with("https://") {
            return Err(Error::Invalid("HTTPS BMCs are not supported yet".into()));
        }
        let systems: roost_api::redfish::Collection =
            self.get(&base, "/redfish/v1/Systems", t).await?;
        let system = systems
            .members
            .first()
            .map(|m| m.odata_id.clone())
            .ok_or_else(|| Error::Refused {
                status: None,
                message: format!("{base} lists no system"),
            })?;
        self.client
            .post(format!("{base}{system}/Actions/ComputerSystem.Reset"))
            .basic_auth(&t.username, t.password.as_deref())
            .json(&roost_api::redfish::ResetRequest {
                reset_type: action.redfish_reset_type().to_string(),
            })
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("cannot reach {base}: {e}")))?
            .error_for_status()
            .map_err(|e| refused(&e, format!("{base} refused the reset: {e}")))?;
        if action == PowerAction::Off {
            self.wait_off(&base, &system, t).await?;
        }
        Ok(())
    }

    /// GETs `path` from the BMC at `base` with `t`'s credentials.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        t: &BmcTarget,
    ) -> Result<T, Error> {
        self.client
            .get(format!("{base}{path}"))
            .basic_auth(&t.username, t.password.as_deref())
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("cannot reach {base}: {e}")))?
            .error_for_status()
            .map_err(|e| refused(&e, format!("{base} refused: {e}")))?
            .json()
            .await
            .map_err(|e| refused(&e, format!("unexpected answer from {base}: {e}")))
    }

    /// A power-off counts (fencing relies on it) only once the BMC reports
    /// the system off; a BMC may answer the reset before it is done.
    async fn wait_off(&self, base: &str, system: &str, t: &BmcTarget) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let state = self
                .get::<roost_api::redfish::ComputerSystem>(base, system, t)
                .await?
                .power_state;
            if state == "Off" {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Refused {
                    status: None,
                    message: format!(
                        "{base} still reports the system {state} 30 s after a power-off"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The BMC answered `e`; `message` says what was refused.
fn refused(e: &reqwest::Error, message: String) -> Error {
    Error::Refused {
        status: e.status().map(|s| s.as_u16()),
        message,
    }
}

impl Bmc for Redfish {
    fn power<'a>(&'a self, target: &'a BmcTarget, action: PowerAction) -> BmcFuture<'a> {
        Box::pin(self.reset(target, action))
    }
}

//! The agent's HTTP calls to the server: enrollment, reports, its client
//! certificate and its applications.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use roost_api::agent::Inventory;
use roost_api::sysinv::{
    AgentCertRequest, AgentCertResponse, AgentReport, EnrollRequest, EnrollResponse, ReportReply,
};

use crate::Error;

/// Header that carries the agent token.
pub const TOKEN_HEADER: &str = "X-Agent-Token";

/// A client of one server, or of the controllers of a site (several URLs,
/// comma-separated): it follows the active one. A standby answers with a
/// redirect, which is followed; a controller that cannot be reached is
/// left for the next URL. Clones share the client certificate (once
/// [`Client::set_certificate`] replaced it, every clone's next connection
/// presents the new one) and the URL in use.
#[derive(Debug, Clone)]
pub struct Client {
    http: Arc<RwLock<reqwest::Client>>,
    ca_pem: Option<String>,
    bases: Arc<Vec<String>>,
    /// Index into `bases` of the URL in use.
    current: Arc<std::sync::atomic::AtomicUsize>,
}

/// The agent's own client certificate and key, PEM.
#[derive(Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert").finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `base` (`http://host:port`).
    pub fn new(base: &str) -> Result<Client, Error> {
        Self::with_ca(base, None)
    }

    /// Like [`Client::new`]; with `ca_pem`, an https server must present a
    /// certificate from one of these CAs, and nothing else is trusted.
    pub fn with_ca(base: &str, ca_pem: Option<&str>) -> Result<Client, Error> {
        let mut bases = Vec::new();
        for base in base.split(',').map(|b| b.trim().trim_end_matches('/')) {
            if !base.starts_with("http://") && !base.starts_with("https://") {
                return Err(Error::Invalid(format!(
                    "the server URL {base:?} must start with http://"
                )));
            }
            bases.push(base.to_string());
        }
        let ca_pem = ca_pem.map(str::to_string);
        let http = build(ca_pem.as_deref(), None)?;
        Ok(Client {
            http: Arc::new(RwLock::new(http)),
            ca_pem,
            bases: Arc::new(bases),
            current: Arc::default(),
        })
    }

    /// Presents `cert` on every connection from now on.
    pub fn set_certificate(&self, cert: &ClientCert) -> Result<(), Error> {
        let http = build(self.ca_pem.as_deref(), Some(cert))?;
        *self.http.write().unwrap_or_else(PoisonError::into_inner) = http;
        Ok(())
    }

    /// The base URL in use.
    pub fn base(&self) -> &str {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.bases[i % self.bases.len()]
    }

    /// Every base URL, comma-separated, as given.
    pub fn servers(&self) -> String {
        self.bases.join(",")
    }

    /// A transport error; one that reached no server moves on to the next
    /// URL, for the next call.
    fn transport(&self, e: &reqwest::Error) -> Error {
        if (e.is_connect() || e.is_timeout()) && self.bases.len() > 1 {
            self.current
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Error::Transport(roost_types::error_chain(e))
    }

    /// Whether the server speaks HTTPS (so the agent needs a client
    /// certificate).
    pub fn https(&self) -> bool {
        self.base().starts_with("https://")
    }

    fn http(&self) -> reqwest::Client {
        self.http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `POST /v1/agent/enroll`.
    pub async fn enroll(
        &self,
        join_token: &str,
        inventory: &Inventory,
        heartbeat_port: u16,
        mgmt_ip: Option<&str>,
        csr_pem: Option<&str>,
        tpm: Option<roost_api::tpm::TpmEnrollment>,
    ) -> Result<EnrollResponse, Error> {
        let body = EnrollRequest {
            join_token: join_token.to_string(),
            inventory: inventory.clone(),
            heartbeat_port,
            mgmt_ip: mgmt_ip.map(str::to_string),
            csr_pem: csr_pem.map(str::to_string),
            tpm,
        };
        let req = self
            .http()
            .post(format!("{}/v1/agent/enroll", self.base()))
            .json(&body);
        self.call(req).await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::BadReply(e.to_string()));
        }
        let message = error_message(&bytes).unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_string()
        });
        let code = status.as_u16();
        Err(match code {
            401 | 403 => Error::Unauthorized { message },
            400..=499 => Error::Rejected {
                status: code,
                message,
            },
            _ => Error::Server {
                status: code,
                message,
            },
        })
    }

    /// `POST /v1/agent/report`.
    pub async fn report(&self, token: &str, report: &AgentReport) -> Result<ReportReply, Error> {
        let req = self
            .http()
            .post(format!("{}/v1/agent/report", self.base()))
            .header(TOKEN_HEADER, token)
            .json(report);
        self.call(req).await
    }

    /// `POST /v1/agent/certificate`: a certificate for the key of
    /// `csr_pem`, asked with the certificate presented now (if any).
    pub async fn certificate(&self, token: &str, csr_pem: &str) -> Result<String, Error> {
        let req = self
            .http()
            .post(format!("{}/v1/agent/certificate", self.base()))
            .header(TOKEN_HEADER, token)
            .json(&AgentCertRequest {
                csr_pem: csr_pem.to_string(),
            });
        let r: AgentCertResponse = self.call(req).await?;
        Ok(r.cert_pem)
    }
}

/// A reqwest client trusting `ca_pem` (or the system's roots) and
/// presenting `cert` when given.
fn build(ca_pem: Option<&str>, cert: Option<&ClientCert>) -> Result<reqwest::Client, Error> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("roost-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        b = b.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
    }
    if let Some(c) = cert {
        let mut pem = c.cert_pem.clone();
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(&c.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    Ok(b.build()?)
}

impl Client {
    /// `GET /v1/agent/apps/plan`: the host's plan once it is newer than
    /// `generation`, or the current one after `wait`.
    pub async fn app_plan(
        &self,
        token: &str,
        generation: u64,
        wait: Duration,
    ) -> Result<roost_api::apps::agent::HostPlan, Error> {
        let req = self
            .http()
            .get(format!(
                "{}/v1/agent/apps/plan?generation={generation}&wait={}",
                self.base(),
                wait.as_secs()
            ))
            .header(TOKEN_HEADER, token)
            .timeout(wait + Duration::from_secs(15));
        self.call(req).await
    }

    /// `GET /v1/agent/software/order`: the host's deploy order with an
    /// attempt after `after`, waiting up to `wait` for one.
    pub async fn software_order(
        &self,
        token: &str,
        after: u64,
        wait: Duration,
    ) -> Result<Option<roost_api::software::SoftwareOrder>, Error> {
        let req = self
            .http()
            .get(format!(
                "{}/v1/agent/software/order?after={after}&wait={}",
                self.base(),
                wait.as_secs()
            ))
            .header(TOKEN_HEADER, token)
            .timeout(wait + Duration::from_secs(15));
        self.call(req).await
    }

    /// `POST /v1/agent/apps/report`.
    pub async fn app_report(
        &self,
        token: &str,
        report: &roost_api::apps::agent::AgentAppsReport,
    ) -> Result<(), Error> {
        let req = self
            .http()
            .post(format!("{}/v1/agent/apps/report", self.base()))
            .header(TOKEN_HEADER, token)
            .json(report);
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        let message = error_message(&bytes).unwrap_or_else(|| status.to_string());
        Err(match status.as_u16() {
            401 | 403 => Error::Unauthorized { message },
            code @ 400..=499 => Error::Rejected {
                status: code,
                message,
            },
            code => Error::Server {
                status: code,
                message,
            },
        })
    }

    /// `GET /v1/agent/apps/log-requests`: requests for container output.
    pub async fn app_log_requests(
        &self,
        token: &str,
        wait: Duration,
    ) -> Result<roost_api::apps::agent::LogRequests, Error> {
        let req = self
            .http()
            .get(format!(
                "{}/v1/agent/apps/log-requests?wait={}",
                self.base(),
                wait.as_secs()
            ))
            .header(TOKEN_HEADER, token)
            .timeout(wait + Duration::from_secs(15));
        self.call(req).await
    }

    /// `POST /v1/agent/apps/logs/{id}`: a piece of the answer; `Ok(false)`
    /// once nobody waits for it.
    pub async fn app_log_chunk(
        &self,
        token: &str,
        id: &str,
        data: Vec<u8>,
        end: bool,
    ) -> Result<bool, Error> {
        let mut url = format!("{}/v1/agent/apps/logs/{id}", self.base());
        if end {
            url.push_str("?end=true");
        }
        let resp = self
            .http()
            .post(url)
            .header(TOKEN_HEADER, token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 | 410 => Ok(false),
            code => Err(Error::Server {
                status: code,
                message: format!("the server refused a log chunk ({code})"),
            }),
        }
    }

    /// Fetches the image archive with manifest digest `digest` into `path`,
    /// resuming after what `path` already holds.
    pub async fn app_image(
        &self,
        token: &str,
        digest: &str,
        path: &std::path::Path,
    ) -> Result<(), Error> {
        self.fetch(token, &format!("/v1/agent/apps/images/{digest}"), path)
            .await
    }

    /// Fetches a release's payload file by its SHA-256 into `path`,
    /// resuming after what `path` already holds (the caller checks the
    /// digest).
    pub async fn software_blob(
        &self,
        token: &str,
        sha256: &str,
        path: &std::path::Path,
    ) -> Result<(), Error> {
        self.fetch(token, &format!("/v1/agent/software/blobs/{sha256}"), path)
            .await
    }

    /// `GET url_path` into `path`, asking for the bytes after what `path`
    /// already holds (`Range: bytes=N-`) and appending them when the server
    /// answers 206, or starting over on 200.
    async fn fetch(
        &self,
        token: &str,
        url_path: &str,
        path: &std::path::Path,
    ) -> Result<(), Error> {
        use tokio::io::AsyncWriteExt;
        let have = tokio::fs::metadata(path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let mut req = self
            .http()
            .get(format!("{}{url_path}", self.base()))
            .header(TOKEN_HEADER, token)
            .timeout(Duration::from_secs(3600));
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            let message = error_message(&bytes).unwrap_or_else(|| status.to_string());
            return Err(Error::Rejected {
                status: status.as_u16(),
                message,
            });
        }
        let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(path)
            .await
            .map_err(|e| Error::context(format!("cannot write {}", path.display()), e))?;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::context(format!("cannot write {}", path.display()), e))?;
        }
        file.flush()
            .await
            .map_err(|e| Error::context(format!("cannot write {}", path.display()), e))?;
        Ok(())
    }
}

/// The message of an error body: `{"error": {"message": ...}}`, else the
/// body's text (shortened).
fn error_message(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let m = v
            .pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str());
        if let Some(m) = m {
            return Some(m.to_string());
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(text.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_error_body() {
        assert_eq!(
            error_message(br#"{"error": {"message": "join token expired", "code": 401}}"#)
                .as_deref(),
            Some("join token expired")
        );
        assert_eq!(
            error_message(b"  plain text\n").as_deref(),
            Some("plain text")
        );
        assert_eq!(error_message(b""), None);
    }

    #[test]
    fn the_enroll_body_has_the_documented_fields() {
        let inv = Inventory::default();
        let v = serde_json::to_value(EnrollRequest {
            join_token: "t".into(),
            inventory: inv,
            heartbeat_port: 2103,
            mgmt_ip: None,
            csr_pem: None,
            tpm: None,
        })
        .unwrap();
        assert_eq!(v["join_token"], "t");
        assert_eq!(v["heartbeat_port"], 2103);
        assert!(v.get("mgmt_ip").is_none());
        assert!(v["inventory"].is_object());
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert_eq!(
            Client::new("http://127.0.0.1:6385/").unwrap().base(),
            "http://127.0.0.1:6385"
        );
        assert!(Client::new("127.0.0.1:6385").is_err());
    }
}

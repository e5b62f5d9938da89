//! The agent protocol: enrollment with a join token, then calls made with
//! the agent token and, when the API speaks HTTPS, the agent's client
//! certificate (see `hosts::agent_certs`). These routes do not take user
//! tokens.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Json;
use axum::response::Response;
use axum::routing::{get, post};
use roost_api::sysinv::{
    AgentCertRequest, AgentCertResponse, AgentReport, EnrollRequest, EnrollResponse, ReportReply,
};

use super::AppState;
use super::error::ApiError;
use super::extract::json_body;
use crate::hosts::agent_certs::{AgentCall, Channel};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/enroll", post(enroll))
        .route("/v1/agent/report", post(report))
        .route("/v1/agent/certificate", post(certificate))
        .route("/v1/agent/software/blobs/{sha256}", get(software_blob))
        .route("/v1/agent/software/order", get(software_order))
}

/// An agent's credentials on a call: the `X-Agent-Token` header (401 when
/// missing) and the channel the API's serve loop recorded. A request that
/// did not come through it counts as HTTPS without a certificate, so the
/// certificate check fails closed.
#[derive(Debug, Clone)]
pub struct AgentAuth(pub AgentCall);

impl<S: Send + Sync> FromRequestParts<S> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        agent_call(&parts.headers, &parts.extensions)
            .map(AgentAuth)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The agent credentials of a request: its token (`None` without one) and
/// the channel the serve loop recorded, HTTPS without a certificate when
/// there is none (failing closed).
pub fn agent_call(headers: &HeaderMap, extensions: &axum::http::Extensions) -> Option<AgentCall> {
    let token = agent_token(headers)?;
    let channel = extensions
        .get::<Channel>()
        .cloned()
        .unwrap_or(Channel::Tls(None));
    Some(AgentCall { token, channel })
}

/// The agent token of a request, if it has one.
fn agent_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-agent-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

async fn enroll(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let req: EnrollRequest = json_body(&headers, body)?;
    let r = st.hosts.enroll(req, peer.ip()).await?;
    Ok(Json(r))
}

async fn report(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReportReply>, ApiError> {
    let req: AgentReport = json_body(&headers, body)?;
    let software = req.software.clone();
    let mut r = st.hosts.report(&call, req).await?;
    r.software = st
        .software
        .agent_report(&r.hostname, software.as_ref())
        .await?;
    Ok(Json(r))
}

/// Longest an order poll is held.
const MAX_ORDER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `GET /v1/agent/software/order?after=N&wait=S`: the host's deploy order
/// with an attempt after `after`, at once or as soon as there is one, or
/// `null` after `wait` seconds (at most 60).
async fn software_order(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<Option<roost_api::software::SoftwareOrder>>, ApiError> {
    let host = st.hosts.agent_host(&call)?;
    let q = super::extract::Query::parse(raw.as_deref());
    q.only(&["after", "wait"])?;
    let after = q.number("after")?;
    let wait = std::time::Duration::from_secs(q.number("wait")?).min(MAX_ORDER_WAIT);
    // Stopping: no order now (the agent polls the next process).
    let order = tokio::select! {
        o = st.software.wait_order(&host, after, wait) => o,
        () = st.shutdown.cancelled() => None,
    };
    Ok(Json(order))
}

/// `GET /v1/agent/software/blobs/{sha256}`: a release's payload file by
/// its digest, from byte `Range: bytes=N-` on, so that a fetch resumes.
async fn software_blob(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    headers: HeaderMap,
    super::extract::Path(sha256): super::extract::Path<String>,
) -> Result<Response, ApiError> {
    st.hosts.agent_host(&call)?;
    let missing = || ApiError::not_found(format!("no payload file with digest {sha256}"));
    let path = st.software.blob(&sha256).ok_or_else(missing)?;
    let (resp, _) = super::files::file_response(&path, &headers, "application/octet-stream")
        .await
        .map_err(|e| e.unwrap_or_else(missing))?;
    Ok(resp)
}

/// `POST /v1/agent/certificate`: a new client certificate for the agent.
async fn certificate(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AgentCertResponse>, ApiError> {
    let req: AgentCertRequest = json_body(&headers, body)?;
    let cert_pem = st
        .hosts
        .issue_agent_certificate(&call, &req.csr_pem)
        .await?;
    Ok(Json(AgentCertResponse { cert_pem }))
}

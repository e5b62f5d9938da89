//! The agent protocol: enrollment with a join token, then reports signed
//! with the agent token. These routes do not take user tokens.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Json;
use axum::routing::post;
use roost_api::sysinv::{AgentReport, EnrollRequest, EnrollResponse, ReportReply};

use super::AppState;
use super::error::ApiError;
use super::extract::json_body;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/enroll", post(enroll))
        .route("/v1/agent/report", post(report))
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReportReply>, ApiError> {
    let token = headers
        .get("x-agent-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if token.is_empty() {
        return Err(ApiError::unauthorized());
    }
    let req: AgentReport = json_body(&headers, body)?;
    let r = st.hosts.report(&token, req).await?;
    Ok(Json(r))
}

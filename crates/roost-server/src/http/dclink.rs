//! The system controller's DC listener (HTTPS with mutual TLS): enrollment,
//! sync and certificate renewal for subclouds.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::post;
use roost_api::dcsync::{
    EnrollRequest, EnrollResponse, RenewRequest, SyncReply, SyncRequest, parse_enroll_token,
};
use roost_pki::{DcCa, PeerIdentity};

use super::error::ApiError;
use super::extract::json_body;
use crate::dc::{DcService, DcServiceError};

/// What the DC listener's handlers reach.
#[derive(Clone)]
pub struct DcLinkState {
    pub dc: DcService,
    pub ca: Arc<DcCa>,
    /// Days a subcloud certificate is valid.
    pub cert_days: u32,
}

/// The DC listener's routes.
pub fn router(state: DcLinkState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/dc/v1/enroll", post(enroll))
        .route("/dc/v1/sync", post(sync))
        .route("/dc/v1/renew", post(renew))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

impl From<DcServiceError> for ApiError {
    fn from(e: DcServiceError) -> Self {
        match e {
            DcServiceError::NotFound(m) => ApiError::not_found(m),
            DcServiceError::BadToken => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()),
            DcServiceError::Store(ref s) => ApiError::unavailable(s),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

fn subcloud_of(peer: &PeerIdentity) -> Result<String, ApiError> {
    peer.cn().map(str::to_string).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a subcloud certificate issued by this system controller is required",
        )
    })
}

async fn enroll(
    State(st): State<DcLinkState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let req: EnrollRequest = json_body(&headers, body)?;
    let (fp, secret) = parse_enroll_token(&req.token).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the enrollment token is malformed",
        )
    })?;
    if !fp.eq_ignore_ascii_case(&st.ca.fingerprint()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the enrollment token was made by another system controller",
        ));
    }
    // Check the CSR before using the token up, so a bad CSR costs nothing.
    let probe = st.ca.sign_client_csr(&req.csr_pem, "probe", 1);
    if let Err(e) = probe {
        return Err(ApiError::bad_request(format!(
            "invalid certificate signing request: {e}"
        )));
    }
    let dc = st.dc.clone();
    let secret = secret.to_string();
    let name = tokio::task::spawn_blocking(move || dc.take_enroll_token(&secret))
        .await
        .map_err(|e| ApiError::unavailable(&e))??;
    let cert_pem = st
        .ca
        .sign_client_csr(&req.csr_pem, &name, st.cert_days)
        .map_err(|e| ApiError::bad_request(format!("invalid certificate signing request: {e}")))?;
    tracing::info!(subcloud = %name, "subcloud enrolled");
    Ok(Json(EnrollResponse {
        name,
        cert_pem,
        ca_pem: st.ca.ca_pem().to_string(),
    }))
}

async fn sync(
    State(st): State<DcLinkState>,
    peer: PeerIdentity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncReply>, ApiError> {
    let name = subcloud_of(&peer)?;
    let req: SyncRequest = json_body(&headers, body)?;
    Ok(Json(st.dc.sync(&name, req).await?))
}

async fn renew(
    State(st): State<DcLinkState>,
    peer: PeerIdentity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let name = subcloud_of(&peer)?;
    st.dc.get(&name)?;
    let req: RenewRequest = json_body(&headers, body)?;
    let cert_pem = st
        .ca
        .sign_client_csr(&req.csr_pem, &name, st.cert_days)
        .map_err(|e| ApiError::bad_request(format!("invalid certificate signing request: {e}")))?;
    Ok(Json(EnrollResponse {
        name,
        cert_pem,
        ca_pem: st.ca.ca_pem().to_string(),
    }))
}

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
use crate::dc::{DcService, IssuedCert, PeerCert};
use crate::error::{Error, ErrorKind};

/// What the DC listener's handlers reach.
#[derive(Clone)]
pub struct DcLinkState {
    pub dc: DcService,
    /// Where sync times are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub ca: Arc<DcCa>,
    /// Days a subcloud certificate is valid.
    pub cert_days: u32,
    /// Where the packages of applications assigned to groups are.
    pub apps: crate::apps::AppService,
    /// Where the release files subclouds fetch are.
    pub software: crate::software::SoftwareService,
    /// The client certificate each subcloud last synced with (for the
    /// certificate inventory).
    pub subcloud_certs:
        Arc<std::sync::Mutex<std::collections::BTreeMap<String, roost_pki::CertInfo>>>,
}

/// The DC listener's routes.
pub fn router(state: DcLinkState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/dc/v1/enroll", post(enroll))
        .route("/dc/v1/sync", post(sync))
        .route("/dc/v1/renew", post(renew))
        .route("/dc/v1/packages/{digest}", axum::routing::get(package))
        .layer(axum::middleware::from_fn(close_anonymous))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The status of each kind of error on the DC listener, Roost's own
/// protocol: a conflict is 409 here; a failure of the server is logged and
/// answered 503 without its details.
fn link_error(e: Error) -> ApiError {
    let status = match e.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Unavailable | ErrorKind::Corrupt => return ApiError::unavailable(&e),
    };
    ApiError::new(status, e.to_string())
}

/// A connection without a client certificate serves one request (the
/// enrollment) and is closed: it cannot be held open to use up the
/// listener's connections.
async fn close_anonymous(
    peer: PeerIdentity,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    if peer.0.is_none() {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// The verified client certificate's facts; 401 without one.
fn peer_cert(peer: &PeerIdentity) -> Result<PeerCert, ApiError> {
    match &peer.0 {
        Some(info) if info.cn.is_some() => Ok(PeerCert {
            cn: info.cn.clone().unwrap_or_default(),
            serial: info.serial.clone(),
            not_before: info.not_before,
        }),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a subcloud certificate issued by this system controller is required",
        )),
    }
}

/// Signs a CSR for a subcloud's name (CPU only, no I/O).
fn signer<'a>(
    ca: &'a DcCa,
    csr_pem: &'a str,
    days: u32,
) -> impl FnOnce(&str) -> Result<IssuedCert, Error> + 'a {
    move |name: &str| {
        let cert_pem = ca
            .sign_client_csr(csr_pem, name, days)
            .map_err(|e| Error::Invalid(format!("invalid certificate signing request: {e}")))?;
        let serial = roost_pki::cert_info(&cert_pem)
            .map_err(|e| Error::Invalid(format!("cannot read the new certificate: {e}")))?
            .serial;
        Ok(IssuedCert { serial, cert_pem })
    }
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
    let (name, cert) = st
        .dc
        .enroll(secret, signer(&st.ca, &req.csr_pem, st.cert_days))
        .await
        .map_err(link_error)?;
    tracing::info!(subcloud = %name, serial = %cert.serial, "subcloud enrolled");
    Ok(Json(EnrollResponse {
        name,
        cert_pem: cert.cert_pem,
        ca_pem: st.ca.ca_pem().to_string(),
    }))
}

async fn sync(
    State(st): State<DcLinkState>,
    peer: PeerIdentity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncReply>, ApiError> {
    let info = peer.0.clone();
    let peer = peer_cert(&peer)?;
    let req: SyncRequest = json_body(&headers, body)?;
    let started = std::time::Instant::now();
    let reply = st.dc.sync(&peer, req).await.map_err(link_error)?;
    st.metrics.sync_answered(started.elapsed().as_secs_f64());
    if let Some(info) = info {
        st.subcloud_certs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer.cn.clone(), info);
    }
    Ok(Json(reply))
}

async fn renew(
    State(st): State<DcLinkState>,
    peer: PeerIdentity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let peer = peer_cert(&peer)?;
    st.dc.authenticate(&peer).map_err(link_error)?;
    let req: RenewRequest = json_body(&headers, body)?;
    let (name, cert) = st
        .dc
        .renew(&peer, signer(&st.ca, &req.csr_pem, st.cert_days))
        .await
        .map_err(link_error)?;
    Ok(Json(EnrollResponse {
        name,
        cert_pem: cert.cert_pem,
        ca_pem: st.ca.ca_pem().to_string(),
    }))
}

/// `GET /dc/v1/packages/{digest}`: the `.tgz` of an application assigned to
/// a group, or a release file, by its digest, to an authenticated subcloud;
/// `Range: bytes=N-` resumes. Bytes served are counted per subcloud.
async fn package(
    State(st): State<DcLinkState>,
    peer: PeerIdentity,
    headers: HeaderMap,
    axum::extract::Path(digest): axum::extract::Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let peer = peer_cert(&peer)?;
    let subcloud = st.dc.authenticate(&peer).map_err(link_error)?;
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("no package {digest}"));
    if !roost_api::dcsync::valid_package_digest(&digest) {
        return Err(ApiError::bad_request(format!(
            "not a package digest: {digest}"
        )));
    }
    let (path, content_type) = match st.dc.app_of_package(&digest) {
        // The active package of that application must be this one.
        Some(app) => match st.apps.published_package(&app).await {
            Ok(Some(p)) if p.digest == digest => (p.path, "application/gzip"),
            _ => return Err(missing()),
        },
        None => (
            st.software.release_file(&digest).ok_or_else(missing)?,
            "application/octet-stream",
        ),
    };
    let (resp, served) = super::files::file_response(&path, &headers, content_type)
        .await
        .map_err(|e| e.unwrap_or_else(missing))?;
    st.dc.record_fetch(&subcloud, served);
    Ok(resp)
}

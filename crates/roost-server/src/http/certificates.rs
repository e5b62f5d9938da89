//! `GET /v1/certificates`, `POST /v1/certificate_install`,
//! `POST /v1/certificates/rotate_ca`. Who may call them is in the route
//! table (reader for the list, admin for the rest).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::{get, post};
use roost_api::certificates::{
    CertificateInstall, CertificateInstalled, CertificateList, CertificateView,
};

use super::AppState;
use super::error::ApiError;
use super::extract::json_body;
use crate::certs::{ApiTls, Entry};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/certificates", get(list))
        .route("/v1/certificate_install", post(install))
        .route("/v1/certificates/rotate_ca", post(rotate_ca))
}

async fn list(State(st): State<AppState>) -> Json<CertificateList> {
    let certs = st.certs.clone();
    let entries = tokio::task::spawn_blocking(move || certs.entries())
        .await
        .unwrap_or_default();
    Json(CertificateList {
        tls: st.tls.is_some(),
        certificates: entries.iter().map(Entry::view).collect(),
    })
}

fn tls_of(st: &AppState) -> Result<std::sync::Arc<ApiTls>, ApiError> {
    st.tls.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "the API is served over plain HTTP (http.tls): it has no certificate to replace",
        )
    })
}

fn installed(tls: &ApiTls) -> CertificateInstalled {
    let current = tls.current();
    let view: CertificateView = Entry::system(
        "api",
        "server certificate of the API",
        "ssl",
        if tls.installed() { "installed" } else { "self" },
        current.leaf,
    )
    .view();
    CertificateInstalled {
        certificate: view,
        ca_bundle_pem: tls.ca_bundle_pem(),
    }
}

async fn install(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CertificateInstalled>, ApiError> {
    let req: CertificateInstall = json_body(&headers, body)?;
    let tls = tls_of(&st)?;
    let t = tls.clone();
    tokio::task::spawn_blocking(move || t.install(&req.certificate_pem, &req.private_key_pem))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    st.certs.kick();
    Ok(Json(installed(&tls)))
}

async fn rotate_ca(State(st): State<AppState>) -> Result<Json<CertificateInstalled>, ApiError> {
    let tls = tls_of(&st)?;
    let t = tls.clone();
    tokio::task::spawn_blocking(move || t.rotate_ca())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    st.certs.kick();
    Ok(Json(installed(&tls)))
}

//! Version documents, health, metrics and the OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use super::AppState;

pub fn protected_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

pub async fn root(State(st): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    Json(roost_api::root_versions(&st.base_url(&headers)))
}

pub async fn v1(State(st): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    Json(roost_api::v1_document(&st.base_url(&headers)))
}

pub async fn v1_0(State(st): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    Json(roost_api::v1_0_document(&st.base_url(&headers)))
}

pub async fn healthz(State(st): State<AppState>) -> Json<roost_api::Health> {
    Json(roost_api::Health {
        active_alarms: st.fm.read().len() as u64,
        event_log_records: st.fm.store().event_log_len(),
        status: "ok".into(),
    })
}

async fn metrics(State(st): State<AppState>) -> Response {
    let alarms = st.fm.read().summary(true);
    let hosts = st.hosts.list();
    let snapshot = crate::metrics::Snapshot {
        alarms,
        event_log_len: st.fm.store().event_log_len(),
        hosts_locked: hosts
            .iter()
            .filter(|h| h.administrative == "locked")
            .count() as u64,
        hosts: hosts.into_iter().map(|h| h.availability).collect(),
        subclouds: st
            .dc
            .as_ref()
            .map(|dc| dc.status_counts())
            .unwrap_or_default(),
    };
    let text = st.metrics.render(&snapshot);
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn openapi() -> Response {
    let mut r = roost_api::openapi::document_text().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

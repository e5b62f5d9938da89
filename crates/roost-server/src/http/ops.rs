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
    let (summary, len) = {
        let t = st.fm.read();
        (t.summary(true), st.fm.store().event_log_len())
    };
    let text = st.metrics.render(&summary, len);
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

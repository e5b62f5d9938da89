//! sysinv's label API and CPU function changes: the host attributes that
//! application placement reads.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::{get, put};
use roost_api::apps::{Label, LabelAssign, LabelList};
use roost_api::sysinv::{self as wire, CpuModify};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::extract::{Path, Query, json_body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/ihosts/{host}/labels", get(list_labels))
        .route(
            "/v1/labels/{id}",
            get(show_label).post(assign_labels).delete(remove_label),
        )
        .route("/v1/ihosts/{host}/state/host_cpus_modify", put(modify_cpus))
}

async fn list_labels(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<LabelList>, ApiError> {
    let (_, labels) = st.hosts.labels(&host)?;
    Ok(Json(LabelList { labels }))
}

async fn show_label(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Label>, ApiError> {
    st.hosts
        .label(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Host label not found: {id}")))
}

async fn assign_labels(
    State(st): State<AppState>,
    Path(host): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LabelList>, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&["overwrite"])?;
    let overwrite = q.flag("overwrite")?;
    let body: LabelAssign = json_body(&headers, body)?;
    let pairs = body.into_iter().collect();
    let labels = st.hosts.assign_labels(&host, pairs, overwrite).await?;
    Ok(Json(LabelList { labels }))
}

async fn remove_label(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.hosts.remove_label(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn modify_cpus(
    State(st): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let requests: Vec<CpuModify> = json_body(&headers, body)?;
    if requests.len() > 8 {
        return Err(ApiError::bad_request(
            "at most 8 CPU function changes at once",
        ));
    }
    st.hosts.modify_cpus(&host, requests).await?;
    cpus(&st, &host)
}

/// `icpus`: every CPU of a host with its function.
pub(super) fn cpus(st: &AppState, host: &str) -> Result<Json<Value>, ApiError> {
    let (uuid, inv, functions) = st.hosts.cpu_functions(host)?;
    Ok(Json(wire::cpus_json(&uuid, &inv, &|c| {
        functions.get(&c).map(|f| f.wire()).unwrap_or("Application")
    })))
}

//! dcmanager's orchestration endpoints on a system controller:
//! strategy-config (`/v1.0/sw-update-options`) and the `sw-deploy`
//! strategy (`/v1.0/sw-update-strategy`, its actions and steps). Every
//! success is HTTP 200 and every error a webob-style HTML page, as the
//! stock `dcmanager` client needs.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use roost_api::orchestration::{StrategyAction, SwUpdateOptionsWrite, SwUpdateStrategyCreate};
use serde_json::Value;

use super::AppState;
use super::dcmanager::{DcHttpError, Path};
use super::extract::Query;
use crate::dc::rollout::RolloutService;

type DcResult = Result<Json<Value>, DcHttpError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1.0/sw-update-options", get(options_list))
        .route("/v1.0/sw-update-options/", get(options_list))
        .route(
            "/v1.0/sw-update-options/{cloud}",
            get(options_get).post(options_set).delete(options_delete),
        )
        .route(
            "/v1.0/sw-update-strategy",
            get(show).post(create).delete(delete),
        )
        .route(
            "/v1.0/sw-update-strategy/",
            get(show).post(create).delete(delete),
        )
        .route("/v1.0/sw-update-strategy/actions", post(action))
        .route("/v1.0/sw-update-strategy/steps", get(steps))
        .route("/v1.0/sw-update-strategy/steps/", get(steps))
        .route("/v1.0/sw-update-strategy/steps/{cloud}", get(step))
}

fn rollout(st: &AppState) -> Result<&RolloutService, DcHttpError> {
    st.rollout.as_ref().ok_or_else(|| {
        DcHttpError(
            StatusCode::NOT_FOUND,
            "Orchestration is not enabled: this server does not run as a system controller (roost server --role systemcontroller)".into(),
        )
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> DcResult {
    Ok(Json(serde_json::to_value(v).map_err(|e| {
        DcHttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?))
}

/// A JSON body of type `T`, refused with a 400 page that says why.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, DcHttpError> {
    serde_json::from_slice(bytes)
        .map_err(|e| DcHttpError(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))
}

/// The `type` query parameter, the only one these paths take.
fn strategy_type(raw: Option<String>) -> Result<Option<String>, DcHttpError> {
    let q = Query::parse(raw.as_deref());
    q.only(&["type"])
        .map_err(|e| DcHttpError(StatusCode::BAD_REQUEST, e.message))?;
    Ok(q.get("type").map(str::to_string))
}

async fn options_list(State(st): State<AppState>) -> DcResult {
    to_json(&rollout(&st)?.options_list())
}

async fn options_get(State(st): State<AppState>, Path(cloud): Path<String>) -> DcResult {
    to_json(&rollout(&st)?.options_get(&cloud)?)
}

async fn options_set(
    State(st): State<AppState>,
    Path(cloud): Path<String>,
    bytes: Bytes,
) -> DcResult {
    let r = rollout(&st)?;
    let w: SwUpdateOptionsWrite = body(&bytes)?;
    to_json(&r.options_set(&cloud, &w).await?)
}

async fn options_delete(State(st): State<AppState>, Path(cloud): Path<String>) -> DcResult {
    rollout(&st)?.options_delete(&cloud).await?;
    Ok(Json(Value::Object(serde_json::Map::new())))
}

async fn show(State(st): State<AppState>, RawQuery(q): RawQuery) -> DcResult {
    let t = strategy_type(q)?;
    to_json(&rollout(&st)?.show(t.as_deref())?)
}

async fn create(State(st): State<AppState>, bytes: Bytes) -> DcResult {
    let r = rollout(&st)?;
    let req: SwUpdateStrategyCreate = body(&bytes)?;
    to_json(&r.create(&req).await?)
}

async fn delete(State(st): State<AppState>, RawQuery(q): RawQuery) -> DcResult {
    let t = strategy_type(q)?;
    to_json(&rollout(&st)?.delete(t.as_deref()).await?)
}

async fn action(State(st): State<AppState>, RawQuery(q): RawQuery, bytes: Bytes) -> DcResult {
    let t = strategy_type(q)?;
    let r = rollout(&st)?;
    let a: StrategyAction = body(&bytes)?;
    to_json(&r.action(t.as_deref(), &a.action).await?)
}

async fn steps(State(st): State<AppState>) -> DcResult {
    to_json(&rollout(&st)?.steps())
}

async fn step(State(st): State<AppState>, Path(cloud): Path<String>) -> DcResult {
    to_json(&rollout(&st)?.step(&cloud)?)
}

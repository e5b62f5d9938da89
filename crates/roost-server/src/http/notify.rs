//! `/v1/notifications/destinations`: where alarms and logs are sent
//! (webhooks, SNMP managers, syslog collectors), their delivery counters,
//! test sends, and webhook dead letters. Who may call what is in the route
//! table (reader for the reads, admin for the rest).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use roost_api::notify::{
    DeadLetterList, DestinationCreate, DestinationList, DestinationUpdate, DestinationView,
};

use super::AppState;
use super::error::ApiError;
use super::extract::{Path, json_body};
use crate::error::Error;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications/destinations", get(list).post(create))
        .route(
            "/v1/notifications/destinations/{destination}",
            get(show).patch(update).delete(delete),
        )
        .route(
            "/v1/notifications/destinations/{destination}/test",
            post(test),
        )
        .route(
            "/v1/notifications/destinations/{destination}/dead-letters",
            get(dead_letters),
        )
        .route(
            "/v1/notifications/destinations/{destination}/dead-letters/{letter}",
            axum::routing::delete(discard),
        )
        .route(
            "/v1/notifications/destinations/{destination}/dead-letters/{letter}/retry",
            post(retry),
        )
}

/// Runs a blocking call of the service (it writes the store).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::from(Error::from(e)))?
        .map_err(ApiError::from)
}

async fn list(State(st): State<AppState>) -> Json<DestinationList> {
    Json(DestinationList {
        destinations: st.notify.list(),
    })
}

async fn show(
    State(st): State<AppState>,
    Path(dest): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    Ok(Json(st.notify.show(&dest)?))
}

async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: DestinationCreate = json_body(&headers, body)?;
    let n = st.notify.clone();
    let v = blocking(move || n.create(req)).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn update(
    State(st): State<AppState>,
    Path(dest): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DestinationView>, ApiError> {
    let req: DestinationUpdate = json_body(&headers, body)?;
    let n = st.notify.clone();
    Ok(Json(blocking(move || n.update(&dest, req)).await?))
}

async fn delete(
    State(st): State<AppState>,
    Path(dest): Path<String>,
) -> Result<StatusCode, ApiError> {
    let n = st.notify.clone();
    blocking(move || n.delete(&dest)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test(
    State(st): State<AppState>,
    Path(dest): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.notify.test(&dest)?;
    Ok(StatusCode::ACCEPTED)
}

async fn dead_letters(
    State(st): State<AppState>,
    Path(dest): Path<String>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let n = st.notify.clone();
    let dead_letters = blocking(move || n.dead_letters(&dest)).await?;
    Ok(Json(DeadLetterList { dead_letters }))
}

async fn discard(
    State(st): State<AppState>,
    Path((dest, letter)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let n = st.notify.clone();
    blocking(move || n.settle_dead_letter(&dest, &letter, false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn retry(
    State(st): State<AppState>,
    Path((dest, letter)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let n = st.notify.clone();
    blocking(move || n.settle_dead_letter(&dest, &letter, true)).await?;
    Ok(StatusCode::ACCEPTED)
}

//! USM's release API (`/v1/release`), as the stock `software` client
//! speaks it: bare arrays and objects for reads, the `{info, warning,
//! error}` envelope for actions (406 with the envelope for a refusal), and
//! the multipart upload whose part names are the files' local paths.

use std::path::PathBuf;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Multipart, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use roost_api::software::{
    DeployRequest, Envelope, StrategyAction, StrategyRequest, StrategyView, UploadReply,
};

use super::error::ApiError;
use roost_release::ReleaseState;

use super::AppState;
use super::extract::{Path, Query};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/release",
            get(list).post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/release/{id}", get(show).delete(delete))
        .route("/v1/release/{id}/is_available", get(is_available))
        .route("/v1/release/{id}/is_deployed", get(is_deployed))
        .route("/v1/release/{id}/is_committed", get(is_committed))
        .route("/v1/deploy", get(deploy_show).delete(deploy_delete))
        .route("/v1/deploy/precheck", post(deploy_precheck))
        .route("/v1/deploy/start", post(deploy_start))
        .route("/v1/deploy/activate", post(deploy_activate))
        .route(
            "/v1/deploy/activate_rollback",
            post(deploy_activate_rollback),
        )
        .route("/v1/deploy/complete", post(deploy_complete))
        .route("/v1/deploy/abort", post(deploy_abort))
        .route(
            "/v1/deploy/strategy",
            get(strategy_show)
                .post(strategy_create)
                .delete(strategy_delete),
        )
        .route("/v1/deploy/strategy/actions", post(strategy_action))
        .route("/v1/deploy_host", get(deploy_hosts))
        .route("/v1/deploy_host/{host}", post(deploy_host))
        .route("/v1/deploy_host/{host}/force", post(deploy_host_force))
        .route(
            "/v1/deploy_host/{host}/rollback",
            post(deploy_host_rollback),
        )
        .route(
            "/v1/deploy_host/{host}/rollback/force",
            post(deploy_host_rollback),
        )
}

/// A refusal in USM's envelope, with `status`.
fn refused(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(Envelope::error(message))).into_response()
}

/// Removes a received upload when dropped.
struct Received(PathBuf);

impl Drop for Received {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn list(State(st): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    if q.only(&["show", "release"]).is_err() {
        return refused(
            StatusCode::BAD_REQUEST,
            "unknown query parameter: /v1/release takes show and release",
        );
    }
    Json(st.software.list(q.get("show"), q.get("release"))).into_response()
}

async fn show(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.software.get(&id) {
        Some(r) => Json(r).into_response(),
        None => refused(StatusCode::NOT_FOUND, format!("Release {id} not found")),
    }
}

fn is_state(st: &AppState, id: &str, state: ReleaseState) -> Response {
    match st.software.is(id, state) {
        Some(b) => Json(b).into_response(),
        None => refused(StatusCode::NOT_FOUND, format!("Release {id} not found")),
    }
}

async fn is_available(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    is_state(&st, &id, ReleaseState::Available)
}

async fn is_deployed(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    is_state(&st, &id, ReleaseState::Deployed)
}

async fn is_committed(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    is_state(&st, &id, ReleaseState::Committed)
}

async fn delete(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.software.delete(&id).await {
        Ok(()) => Json(Envelope::info(format!("Release {id} has been deleted"))).into_response(),
        Err(crate::Error::NotFound(m)) => refused(StatusCode::NOT_FOUND, m),
        // USM answers refusals to delete with 200 and the reason in `error`.
        Err(e) if !matches!(e, crate::Error::Internal(_)) => {
            Json(Envelope::error(e.to_string())).into_response()
        }
        Err(e) => super::error::ApiError::from(e).into_response(),
    }
}

/// `POST /v1/release`: each multipart file part (named by its local path)
/// is one release file, streamed to disk up to the size limit, then
/// verified and unpacked. Files other than `*.patch` are refused.
async fn upload(
    State(st): State<AppState>,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let mut mp = match mp {
        Ok(m) => m,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!(
                    "the upload must be multipart/form-data with one part per release file: {e}"
                ),
            );
        }
    };
    let mut reply = UploadReply::default();
    let mut errors = Vec::new();
    let mut infos = Vec::new();
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the upload: {e}"),
                );
            }
        };
        let local = field.file_name().or(field.name()).unwrap_or("").to_string();
        let base = local.rsplit('/').next().unwrap_or("").to_string();
        if !base.ends_with(".patch") {
            errors.push(format!(
                "{base}: only *.patch release files can be uploaded to Roost"
            ));
            continue;
        }
        let received = Received(st.software.incoming());
        let limit = st.software.max_bytes();
        let written = async {
            use tokio::io::AsyncWriteExt;
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&received.0)
                .await
                .map_err(|e| format!("cannot store the upload: {e}"))?;
            let mut total = 0u64;
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| format!("cannot read the upload: {e}"))?
            {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(format!(
                        "{base} is larger than {limit} bytes ([software] max_release_bytes)"
                    ));
                }
                f.write_all(&chunk)
                    .await
                    .map_err(|e| format!("cannot store the upload: {e}"))?;
            }
            f.flush()
                .await
                .map_err(|e| format!("cannot store the upload: {e}"))
        }
        .await;
        if let Err(e) = written {
            errors.push(e);
            continue;
        }
        match st.software.upload(received.0.clone()).await {
            Ok(info) => infos.push((base, info)),
            Err(e) => errors.push(format!("{base}: {e}")),
        }
    }
    if infos.is_empty() && errors.is_empty() {
        return refused(StatusCode::BAD_REQUEST, "No file to be uploaded.");
    }
    let ids: Vec<String> = infos.iter().map(|(_, i)| i.id.clone()).collect();
    for (base, info) in infos {
        reply.upload_info.push([(base, info)].into_iter().collect());
    }
    if !ids.is_empty() {
        reply.envelope.info = format!("{} is now uploaded\n", ids.join(", "));
    }
    if !errors.is_empty() {
        reply.envelope.error = errors.join("\n");
        let status = if ids.is_empty() {
            StatusCode::NOT_ACCEPTABLE
        } else {
            StatusCode::OK
        };
        return (status, Json(reply)).into_response();
    }
    Json(reply).into_response()
}

/// The reply to a deploy action: the envelope with `info`, or USM's 406
/// with the reason in `error` (the server's own failures keep their
/// status).
fn acted(result: Result<String, crate::Error>) -> Response {
    match result {
        Ok(info) => Json(Envelope::info(info)).into_response(),
        Err(e) if is_refusal(&e) => refused(StatusCode::NOT_ACCEPTABLE, e.to_string()),
        Err(e) => super::error::ApiError::from(e).into_response(),
    }
}

fn is_refusal(e: &crate::Error) -> bool {
    matches!(
        e,
        crate::Error::Invalid(_) | crate::Error::Conflict(_) | crate::Error::NotFound(_)
    )
}

/// A deploy request's body; `{}` or an empty body asks for nothing. A body
/// that is not a request is refused in USM's envelope.
fn deploy_request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<DeployRequest, super::error::ApiError> {
    match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => return Ok(DeployRequest::default()),
        _ => {}
    }
    super::extract::json_body(headers, body)
}

async fn deploy_precheck(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req = match deploy_request(&headers, body) {
        Ok(r) => r,
        Err(e) => return refused(e.status, e.message),
    };
    match st.software.precheck(&req) {
        Ok(reply) if reply.system_healthy => Json(reply).into_response(),
        Ok(reply) => (StatusCode::NOT_ACCEPTABLE, Json(reply)).into_response(),
        Err(e) => acted(Err(e)),
    }
}

async fn deploy_start(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req = match deploy_request(&headers, body) {
        Ok(r) => r,
        Err(e) => return refused(e.status, e.message),
    };
    acted(st.software.deploy_start(&req).await)
}

async fn deploy_activate(State(st): State<AppState>) -> Response {
    acted(st.software.deploy_activate().await)
}

async fn deploy_activate_rollback(State(st): State<AppState>) -> Response {
    acted(st.software.deploy_activate_rollback().await)
}

async fn deploy_complete(State(st): State<AppState>) -> Response {
    acted(st.software.deploy_complete().await)
}

async fn deploy_abort(State(st): State<AppState>) -> Response {
    acted(st.software.deploy_abort().await)
}

async fn deploy_delete(State(st): State<AppState>) -> Response {
    acted(st.software.deploy_delete().await)
}

async fn deploy_show(State(st): State<AppState>) -> Response {
    Json(st.software.deploy_show()).into_response()
}

async fn deploy_hosts(State(st): State<AppState>) -> Response {
    Json(st.software.deploy_hosts()).into_response()
}

async fn deploy_host(State(st): State<AppState>, Path(host): Path<String>) -> Response {
    acted(st.software.deploy_host(&host, false, false).await)
}

async fn deploy_host_force(State(st): State<AppState>, Path(host): Path<String>) -> Response {
    acted(st.software.deploy_host(&host, true, false).await)
}

async fn deploy_host_rollback(State(st): State<AppState>, Path(host): Path<String>) -> Response {
    acted(st.software.deploy_host(&host, true, true).await)
}

async fn strategy_show(State(st): State<AppState>) -> Result<Json<StrategyView>, ApiError> {
    st.software
        .strategy_show()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("No strategy"))
}

async fn strategy_create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StrategyView>, ApiError> {
    let req: StrategyRequest = super::extract::json_body(&headers, body)?;
    Ok(Json(st.software.strategy_create(&req, false).await?))
}

async fn strategy_action(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<StrategyView>, ApiError> {
    let req: StrategyAction = super::extract::json_body(&headers, body)?;
    Ok(Json(st.software.strategy_action(&req.action).await?))
}

async fn strategy_delete(State(st): State<AppState>) -> Result<StatusCode, ApiError> {
    st.software.strategy_delete().await?;
    Ok(StatusCode::NO_CONTENT)
}

//! USM's release API (`/v1/release`), as the stock `software` client
//! speaks it: bare arrays and objects for reads, the `{info, warning,
//! error}` envelope for actions (406 with the envelope for a refusal), and
//! the multipart upload whose part names are the files' local paths.

use std::path::PathBuf;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use roost_api::software::{Envelope, UploadReply};
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

//! StarlingX's application API (`/v1/apps`, CLIENTS.md section 6) and
//! Roost's own application reads (replicas, logs), plus the agents' side:
//! the plan long poll, replica reports and image archives.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use http_body::Body as _;
use roost_api::apps::agent::{AgentAppsReport, HostPlan};
use roost_api::apps::{App, AppList, AppListItem, AppPatch, AppReplicaList, AppUpdateRequest};
use roost_package::upload::{Upload, UploadDecoder};

use super::AppState;
use super::agent::AgentAuth;
use super::error::ApiError;
use super::extract::{Path, Query, json_body};
use crate::Error;

/// Routes that need a user token.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/apps",
            get(list).post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/apps/update", post(update))
        .route("/v1/apps/{name}", get(show).patch(act).delete(delete))
        .route("/v1/apps/{name}/replicas", get(replicas))
        .route("/v1/apps/{name}/logs", get(logs))
}

/// Routes of the agents (agent token).
pub fn agent_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/apps/plan", get(plan))
        .route("/v1/agent/apps/report", post(report))
        .route("/v1/agent/apps/images/{digest}", get(image))
        .route("/v1/agent/apps/log-requests", get(log_requests))
        .route(
            "/v1/agent/apps/logs/{id}",
            post(log_chunk).layer(DefaultBodyLimit::max(1 << 20)),
        )
}

async fn list(State(st): State<AppState>) -> Json<AppList> {
    Json(AppList {
        apps: st.apps.list().iter().map(AppListItem::from).collect(),
    })
}

async fn show(State(st): State<AppState>, Path(name): Path<String>) -> Result<Json<App>, ApiError> {
    Ok(Json(st.apps.get(&name)?))
}

async fn replicas(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AppReplicaList>, ApiError> {
    Ok(Json(st.apps.replicas(&name)?))
}

/// `GET /v1/apps/{name}/logs`: a container's output as text; with
/// `follow=true` the answer stays open and new output follows as it comes
/// (until the container's log is gone or the client leaves).
async fn logs(
    State(st): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&["replica", "container", "tail", "follow"])?;
    let tail_n = q
        .get("tail")
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("tail must be a whole number, not {v:?}"))
            })
        })
        .transpose()?;
    let follow = q.flag("follow")?;
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    let (dir, id) = match st.apps.logs(&name, q.get("replica"), q.get("container"))? {
        crate::apps::LogSource::Local { dir, log_id } => (dir, log_id),
        crate::apps::LogSource::Remote { host, log_id } => {
            return remote_logs(&st, &host, log_id, tail_n, follow).await;
        }
    };
    let read = {
        let (dir, id) = (dir.clone(), id.clone());
        move || roost_runtime::logs::read_log(&dir, &id).unwrap_or_default()
    };
    let first = tokio::task::spawn_blocking(read.clone())
        .await
        .map_err(Error::from)?;
    let start =
        String::from_utf8_lossy(roost_runtime::logs::tail_lines(&first, tail_n)).into_owned();
    if !follow {
        return Ok((headers, start).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        if tx.send(Bytes::from(start)).await.is_err() {
            return;
        }
        let mut seen = first.len();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if tx.is_closed() {
                return;
            }
            let Ok(now) = tokio::task::spawn_blocking(read.clone()).await else {
                return;
            };
            // A rotation drops the oldest file: start again from what is kept.
            let new = if now.len() >= seen {
                now[seen..].to_vec()
            } else {
                now.clone()
            };
            seen = now.len();
            if !new.is_empty() && tx.send(Bytes::from(new)).await.is_err() {
                return;
            }
        }
    });
    Ok((headers, Body::new(ChannelBody(rx))).into_response())
}

/// How long the agent of another host has to start answering.
const AGENT_LOG_WAIT: Duration = Duration::from_secs(15);

/// A container's output on another host, through its agent.
async fn remote_logs(
    st: &AppState,
    host: &str,
    log_id: String,
    tail: Option<u64>,
    follow: bool,
) -> Result<Response, ApiError> {
    let (id, mut rx) = st.apps.request_logs(host, log_id, tail, follow);
    let guard = DropRequest(st.apps.clone(), id);
    let first = match tokio::time::timeout(AGENT_LOG_WAIT, rx.recv()).await {
        Ok(Some(b)) => Some(b),
        Ok(None) => None,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the agent of {host} did not send the logs within {} s",
                    AGENT_LOG_WAIT.as_secs()
                ),
            ));
        }
    };
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    let Some(first) = first else {
        return Ok((headers, String::new()).into_response());
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let _guard = guard;
        if tx.send(first).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                b = rx.recv() => match b {
                    Some(b) => if tx.send(b).await.is_err() { return },
                    None => return,
                },
                // The client left: the request is dropped with the guard.
                _ = tx.closed() => return,
            }
        }
    });
    Ok((headers, Body::new(ChannelBody(out))).into_response())
}

/// Forgets a log request when its answer is over.
struct DropRequest(crate::apps::AppService, String);

impl Drop for DropRequest {
    fn drop(&mut self) {
        self.0.drop_log_request(&self.1);
    }
}

/// A response body fed by a channel.
pub(super) struct ChannelBody(pub(super) tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Removes a received upload file when the request is over.
struct Incoming(PathBuf);

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn upload_error(e: roost_package::Error) -> ApiError {
    match e {
        roost_package::Error::UploadTooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        e if e.is_invalid() => ApiError::bad_request(format!("Application-upload rejected: {e}")),
        e => ApiError::from(Error::Internal(e.to_string())),
    }
}

/// `POST /v1/apps`: the JSON body is decoded as it arrives; `binary_data`
/// goes to a file (never whole in memory), up to the package limit.
async fn upload(State(st): State<AppState>, body: Body) -> Result<Json<App>, ApiError> {
    let incoming = Incoming(st.apps.incoming());
    let limit = st.apps.max_package_bytes();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let path = incoming.0.clone();
    let worker = tokio::task::spawn_blocking(move || -> Result<Upload, roost_package::Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut dec = UploadDecoder::new(limit);
        while let Some(chunk) = rx.blocking_recv() {
            dec.push(&chunk, &mut out)?;
        }
        out.flush()?;
        dec.finish()
    });
    let mut body = body;
    let mut read_error = None;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Err(e)) => {
                read_error = Some(e);
                break;
            }
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data()
                    && tx.send(data).await.is_err()
                {
                    // The decoder stopped: its error is the answer.
                    break;
                }
            }
        }
    }
    drop(tx);
    let decoded = worker.await.map_err(Error::from)?;
    if let Some(e) = read_error {
        return Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        )));
    }
    let upload = decoded.map_err(upload_error)?;
    let req = upload.request;
    let tgz = match upload.binary_bytes {
        Some(_) => incoming.0.clone(),
        None => server_path(&req.tarfile, "upload")?,
    };
    let app = st.apps.upload(tgz, req.name, req.app_version).await?;
    drop(incoming);
    Ok(Json(app))
}

/// A package named by its path on this server (a `system application-update`
/// or an upload without content). URLs need a network a site may not have.
fn server_path(tarfile: &str, op: &str) -> Result<PathBuf, ApiError> {
    let lower = tarfile.to_ascii_lowercase();
    if ["http://", "https://", "ftp://", "ftps://"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err(ApiError::bad_request(format!(
            "Application-{op} rejected: downloading packages from a URL is not supported; upload the file instead"
        )));
    }
    let p = PathBuf::from(tarfile);
    if !p.is_absolute() || !p.is_file() {
        return Err(ApiError::bad_request(format!(
            "Application-{op} rejected: tar file {tarfile} does not exist on the server"
        )));
    }
    Ok(p)
}

async fn update(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<App>, ApiError> {
    let req: AppUpdateRequest = json_body(&headers, body)?;
    req.flags()
        .map_err(|e| ApiError::bad_request(format!("Application-update rejected: {e}")))?;
    let tgz = server_path(&req.tarfile, "update")?;
    Ok(Json(st.apps.update(tgz, req.name, req.app_version).await?))
}

async fn act(
    State(st): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<App>, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&["directive", "force"])?;
    let force = q.flag("force")?;
    let directive = q.get("directive").unwrap_or_default().to_string();
    let patch: AppPatch = if body.as_ref().map(|b| b.is_empty()).unwrap_or(false) {
        AppPatch::default()
    } else {
        json_body(&headers, body)?
    };
    let app = match directive.as_str() {
        "apply" => {
            if patch.values.mode.as_deref().is_some_and(|m| !m.is_empty()) {
                return Err(ApiError::bad_request(format!(
                    "Application-apply rejected: Mode is not supported for app {name}."
                )));
            }
            st.apps.apply(&name).await?
        }
        "remove" => st.apps.remove(&name, force).await?,
        "abort" => st.apps.abort(&name).await?,
        "" => {
            return Err(ApiError::bad_request(
                "a directive is required: apply, remove or abort",
            ));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("unknown directive {other:?}: expected apply, remove or abort"),
            ));
        }
    };
    Ok(Json(app))
}

async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&["force"])?;
    q.flag("force")?;
    st.apps.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- agents ------------------------------------------------------------------

/// The host of the agent whose call this is (token and certificate checked).
fn agent_host(
    st: &AppState,
    call: &crate::hosts::agent_certs::AgentCall,
) -> Result<String, ApiError> {
    Ok(st.hosts.agent_host(call)?)
}

/// Longest a plan poll is held.
const MAX_WAIT: Duration = Duration::from_secs(60);

async fn plan(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    RawQuery(raw): RawQuery,
) -> Result<Json<HostPlan>, ApiError> {
    let host = agent_host(&st, &call)?;
    let q = Query::parse(raw.as_deref());
    q.only(&["generation", "wait"])?;
    let generation = q.number("generation")?;
    let wait = Duration::from_secs(q.number("wait")?).min(MAX_WAIT);
    // Stopping: the plan as it is now (the agent polls the next process).
    let plan = tokio::select! {
        p = st.apps.plan(&host, generation, wait) => p,
        () = st.shutdown.cancelled() => st.apps.plan(&host, generation, Duration::ZERO).await,
    };
    Ok(Json(plan))
}

async fn report(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let host = agent_host(&st, &call)?;
    let r: AgentAppsReport = json_body(&headers, body)?;
    st.apps.report(&host, r).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn log_requests(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    RawQuery(raw): RawQuery,
) -> Result<Json<roost_api::apps::agent::LogRequests>, ApiError> {
    let host = agent_host(&st, &call)?;
    let q = Query::parse(raw.as_deref());
    q.only(&["wait"])?;
    let wait = q
        .get("wait")
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("wait must be a whole number, not {v:?}"))
            })
        })
        .transpose()?
        .unwrap_or(0);
    let requests = st
        .apps
        .log_requests(&host, Duration::from_secs(wait).min(MAX_WAIT))
        .await;
    Ok(Json(roost_api::apps::agent::LogRequests { requests }))
}

async fn log_chunk(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let host = agent_host(&st, &call)?;
    let q = Query::parse(raw.as_deref());
    q.only(&["end"])?;
    let end = q.flag("end")?;
    let data = body.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
    st.apps.log_chunk(&host, &id, data, end).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An image archive by its manifest digest, from byte `Range: bytes=N-`
/// on, so that an interrupted fetch resumes.
async fn image(
    State(st): State<AppState>,
    AgentAuth(call): AgentAuth,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    agent_host(&st, &call)?;
    let path = st
        .apps
        .image_archive(&digest)
        .ok_or_else(|| ApiError::not_found(format!("no image {digest}")))?;
    let (resp, _) = super::files::file_response(&path, &headers, "application/x-tar")
        .await
        .map_err(|e| e.unwrap_or_else(|| ApiError::not_found(format!("no image {digest}"))))?;
    Ok(resp)
}

//! Distributed Cloud endpoints, dcmanager's paths and shapes (`/v1.0`):
//! every success is HTTP 200 (StarlingX's client accepts nothing else) and
//! every error is a webob-style HTML page (what the client parses).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use roost_api::dcmanager::{
    GroupWrite, SubcloudCreate, SubcloudUpdate, alarm_summary_row, group_json, html_error,
    subcloud_detail_json, subcloud_json, yaml_scalar,
};
use serde_json::{Value, json};

use super::AppState;
use crate::dc::DcService;
use crate::error::{Error, ErrorKind, error_chain};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1.0/subclouds", get(list_subclouds).post(add_subcloud))
        .route("/v1.0/subclouds/", get(list_subclouds).post(add_subcloud))
        .route(
            "/v1.0/subclouds/{subcloud}",
            get(show_subcloud)
                .patch(update_subcloud)
                .delete(delete_subcloud),
        )
        .route("/v1.0/subclouds/{subcloud}/detail", get(detail_subcloud))
        .route("/v1.0/subclouds/{subcloud}/alarms", get(subcloud_alarms))
        .route("/v1.0/subcloud-groups", get(list_groups).post(add_group))
        .route("/v1.0/subcloud-groups/", get(list_groups).post(add_group))
        .route(
            "/v1.0/subcloud-groups/{group}",
            get(show_group).patch(update_group).delete(delete_group),
        )
        .route(
            "/v1.0/subcloud-groups/{group}/subclouds",
            get(group_subclouds),
        )
        .route("/v1.0/alarms", get(alarms))
        .route("/v1.0/alarms/", get(alarms))
        // Roost's own: applications across the fleet.
        .route(
            "/v1.0/subcloud-groups/{group}/apps",
            get(group_apps).post(assign_app),
        )
        .route(
            "/v1.0/subcloud-groups/{group}/apps/{app}",
            axum::routing::delete(unassign_app),
        )
        .route("/v1.0/subclouds/{subcloud}/apps", get(subcloud_apps))
        .route("/v1.0/subcloud-apps", get(all_subcloud_apps))
}

fn to_json<T: serde::Serialize>(v: &T) -> DcResult {
    Ok(Json(serde_json::to_value(v).map_err(|e| {
        DcHttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?))
}

async fn group_apps(State(st): State<AppState>, Path(g): Path<String>) -> DcResult {
    to_json(&dc(&st)?.group_apps(&g)?)
}

async fn assign_app(State(st): State<AppState>, Path(g): Path<String>, req: Request) -> DcResult {
    let d = dc(&st)?.clone();
    let body: roost_api::dcmanager::GroupAppAssign = typed(form(req, &st).await?)?;
    d.group_apps(&g)?;
    let not_here = || {
        DcHttpError(
            StatusCode::BAD_REQUEST,
            format!(
                "application {} is not uploaded on this system controller (upload it with /v1/apps first)",
                body.app
            ),
        )
    };
    let p = match st.apps.published_package(&body.app).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(not_here()),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => return Err(not_here()),
        Err(e) => return Err(e.into()),
    };
    let list = d
        .assign_app(
            &g,
            roost_api::dcsync::DesiredApp {
                name: body.app,
                version: p.version,
                digest: p.digest,
                size: p.size,
                state: "applied".into(),
            },
        )
        .await?;
    to_json(&list)
}

async fn unassign_app(
    State(st): State<AppState>,
    Path((g, app)): Path<(String, String)>,
) -> DcResult {
    let d = dc(&st)?.clone();
    d.unassign_app(&g, &app).await?;
    to_json(&d.group_apps(&g)?)
}

async fn subcloud_apps(State(st): State<AppState>, Path(sc): Path<String>) -> DcResult {
    to_json(&dc(&st)?.subcloud_apps(&sc)?)
}

async fn all_subcloud_apps(State(st): State<AppState>) -> DcResult {
    to_json(&roost_api::dcmanager::SubcloudAppsList {
        subclouds: dc(&st)?.all_subcloud_apps(),
    })
}

/// An HTML error page.
pub struct DcHttpError(pub StatusCode, pub String);

impl IntoResponse for DcHttpError {
    fn into_response(self) -> Response {
        let mut r = (self.0, html_error(self.0.as_u16(), &self.1)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=UTF-8"),
        );
        r
    }
}

/// dcmanager's status for each kind of error: 404 for what does not
/// exist, 400 for every other refusal (conflicts included, as dcmanager
/// does), 503 when the server cannot do it now (a store failure is logged
/// and not detailed).
impl From<Error> for DcHttpError {
    fn from(e: Error) -> Self {
        if let Error::Unprocessable(m) = e {
            return DcHttpError(StatusCode::UNPROCESSABLE_ENTITY, m);
        }
        match e.kind() {
            ErrorKind::NotFound => DcHttpError(StatusCode::NOT_FOUND, e.to_string()),
            ErrorKind::Unavailable | ErrorKind::Corrupt => match e {
                Error::Stopped(_) | Error::Busy(_) => {
                    DcHttpError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                }
                _ => {
                    tracing::error!(error = %error_chain(&e), "store failure");
                    DcHttpError(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the store is temporarily unavailable; retry later".into(),
                    )
                }
            },
            ErrorKind::Invalid | ErrorKind::Conflict | ErrorKind::Unauthorized => {
                DcHttpError(StatusCode::BAD_REQUEST, e.to_string())
            }
        }
    }
}

/// A path parameter whose rejection is an HTML error page, like every
/// other dcmanager error (what StarlingX's client parses).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = DcHttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        super::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|super::extract::Path(v)| Path(v))
            .map_err(|e| DcHttpError(e.status, e.message))
    }
}

type DcResult = Result<Json<Value>, DcHttpError>;

fn dc(st: &AppState) -> Result<&DcService, DcHttpError> {
    st.dc.as_ref().ok_or_else(|| {
        DcHttpError(
            StatusCode::NOT_FOUND,
            "Distributed Cloud is not enabled: this server does not run as a system controller (roost server --role systemcontroller)".into(),
        )
    })
}

/// A body as a flat map of fields: JSON, or StarlingX's multipart form
/// (text fields; file parts read as text; `bootstrap_values` gives `name`).
async fn form(req: Request, state: &AppState) -> Result<BTreeMap<String, Value>, DcHttpError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bad = |m: String| DcHttpError(StatusCode::BAD_REQUEST, m);
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|e| bad(format!("invalid multipart form: {e}")))?;
        let mut out = BTreeMap::new();
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| bad(format!("invalid multipart form: {e}")))?
        {
            let name = field.name().unwrap_or("").to_string();
            let is_file = field.file_name().is_some();
            let text = field
                .text()
                .await
                .map_err(|e| bad(format!("cannot read form field {name}: {e}")))?;
            if is_file && name == "bootstrap_values" {
                if let Some(n) = yaml_scalar(&text, "name") {
                    out.entry("name".to_string()).or_insert(Value::String(n));
                }
                continue;
            }
            if !is_file {
                out.insert(name, Value::String(text));
            }
        }
        return Ok(out);
    }
    if !ct.is_empty() && !ct.starts_with("application/json") {
        return Err(DcHttpError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be JSON or multipart/form-data, not {ct}"),
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            DcHttpError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large".into(),
            )
        } else {
            bad(format!("cannot read the request body: {}", e.body_text()))
        }
    })?;
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m.into_iter().collect()),
        Ok(_) => Err(bad("the body must be a JSON object".into())),
        Err(e) => Err(bad(format!("invalid JSON body: {e}"))),
    }
}

fn typed<T: serde::de::DeserializeOwned>(m: BTreeMap<String, Value>) -> Result<T, DcHttpError> {
    serde_json::from_value(Value::Object(m.into_iter().collect()))
        .map_err(|e| DcHttpError(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))
}

async fn list_subclouds(State(st): State<AppState>) -> DcResult {
    let d = dc(&st)?;
    let v: Vec<Value> = d.list().iter().map(|s| subcloud_json(s, true)).collect();
    Ok(Json(json!({ "subclouds": v })))
}

async fn show_subcloud(State(st): State<AppState>, Path(sc): Path<String>) -> DcResult {
    Ok(Json(subcloud_json(&dc(&st)?.get(&sc)?, true)))
}

async fn detail_subcloud(State(st): State<AppState>, Path(sc): Path<String>) -> DcResult {
    Ok(Json(subcloud_detail_json(&dc(&st)?.get(&sc)?)))
}

async fn add_subcloud(State(st): State<AppState>, req: Request) -> DcResult {
    let d = dc(&st)?.clone();
    let dc_url = st.dc_port.map(|port| {
        let base = st.base_url(req.headers());
        let host = base.trim_start_matches("http://");
        let host = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host,
        };
        format!("https://{host}:{port}")
    });
    let body: SubcloudCreate = typed(form(req, &st).await?)?;
    body.validate()
        .map_err(|e| DcHttpError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let Some(name) = body.name.filter(|n| !n.trim().is_empty()) else {
        return Err(DcHttpError(
            StatusCode::BAD_REQUEST,
            "name is required (or a bootstrap_values file with a name)".into(),
        ));
    };
    let fp = st.dc_ca_fingerprint.clone().unwrap_or_default();
    let (view, token) = d
        .create(
            name.trim(),
            body.description,
            body.location,
            body.group_id.as_ref(),
            body.group.as_deref(),
            &fp,
        )
        .await?;
    let mut v = subcloud_json(&view, true);
    v["enroll_token"] = json!(token);
    // Where the subcloud must dial, for the operator's convenience.
    v["system_controller_dc_url"] = json!(dc_url);
    Ok(Json(v))
}

async fn update_subcloud(
    State(st): State<AppState>,
    Path(sc): Path<String>,
    req: Request,
) -> DcResult {
    let d = dc(&st)?.clone();
    let body: SubcloudUpdate = typed(form(req, &st).await?)?;
    body.validate()
        .map_err(|e| DcHttpError(StatusCode::BAD_REQUEST, e.to_string()))?;
    if body.management_state.is_none()
        && body.description.is_none()
        && body.location.is_none()
        && body.group_id.is_none()
    {
        return Err(DcHttpError(
            StatusCode::BAD_REQUEST,
            "Nothing to update".into(),
        ));
    }
    let view = d
        .update(
            &sc,
            body.management_state.as_deref(),
            body.description,
            body.location,
            body.group_id.as_ref(),
        )
        .await?;
    Ok(Json(subcloud_json(&view, true)))
}

async fn delete_subcloud(State(st): State<AppState>, Path(sc): Path<String>) -> DcResult {
    let name = dc(&st)?.delete(&sc).await?;
    // Its strategy options go with it: a subcloud added later under the
    // same name starts from the defaults.
    if let Some(r) = &st.rollout {
        r.forget_subcloud(&name).await;
    }
    Ok(Json(json!({})))
}

async fn subcloud_alarms(State(st): State<AppState>, Path(sc): Path<String>) -> DcResult {
    let alarms: Vec<Value> = dc(&st)?
        .subcloud_alarms(&sc)?
        .iter()
        .map(|a| {
            json!({
                "alarm_id": a.alarm_id,
                "entity_instance_id": a.entity_instance_id,
                "severity": a.severity.as_str(),
                "reason_text": a.reason_text,
                "timestamp": a.timestamp.to_string(),
            })
        })
        .collect();
    Ok(Json(json!({ "alarms": alarms })))
}

async fn alarms(State(st): State<AppState>) -> DcResult {
    let rows: Vec<Value> = dc(&st)?
        .alarm_summaries()
        .iter()
        .map(|(name, counts, status)| alarm_summary_row(name, *counts, status))
        .collect();
    Ok(Json(json!({ "alarm_summary": rows })))
}

async fn list_groups(State(st): State<AppState>) -> DcResult {
    let v: Vec<Value> = dc(&st)?.groups().iter().map(group_json).collect();
    Ok(Json(json!({ "subcloud_groups": v })))
}

async fn show_group(State(st): State<AppState>, Path(g): Path<String>) -> DcResult {
    Ok(Json(group_json(&dc(&st)?.group(&g)?)))
}

async fn group_subclouds(State(st): State<AppState>, Path(g): Path<String>) -> DcResult {
    // Without endpoint_sync_status: StarlingX's client cannot print it here.
    let v: Vec<Value> = dc(&st)?
        .group_subclouds(&g)?
        .iter()
        .map(|s| subcloud_json(s, false))
        .collect();
    Ok(Json(json!({ "subclouds": v })))
}

async fn add_group(State(st): State<AppState>, req: Request) -> DcResult {
    let d = dc(&st)?.clone();
    let body: GroupWrite = typed(form(req, &st).await?)?;
    let Some(name) = body.name else {
        return Err(DcHttpError(
            StatusCode::BAD_REQUEST,
            "name is required".into(),
        ));
    };
    let g = d
        .add_group(
            name,
            body.description,
            body.update_apply_type,
            body.max_parallel_subclouds.as_ref(),
        )
        .await?;
    Ok(Json(group_json(&g)))
}

async fn update_group(State(st): State<AppState>, Path(g): Path<String>, req: Request) -> DcResult {
    let d = dc(&st)?.clone();
    let body: GroupWrite = typed(form(req, &st).await?)?;
    if body.name.is_none()
        && body.description.is_none()
        && body.update_apply_type.is_none()
        && body.max_parallel_subclouds.is_none()
    {
        return Err(DcHttpError(
            StatusCode::BAD_REQUEST,
            "Nothing to update".into(),
        ));
    }
    let g = d
        .update_group(
            &g,
            body.name,
            body.description,
            body.update_apply_type,
            body.max_parallel_subclouds.as_ref(),
        )
        .await?;
    Ok(Json(group_json(&g)))
}

async fn delete_group(State(st): State<AppState>, Path(g): Path<String>) -> DcResult {
    dc(&st)?.delete_group(&g).await?;
    Ok(Json(json!({})))
}

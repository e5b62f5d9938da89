//! Fault management endpoints, StarlingX's paths and shapes.

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, patch};
use roost_api::fm::{
    AlarmJson, AlarmPost, AlarmRequest, EventJson, EventList, MAX_PAGE, PatchOp, PostReply,
    SummaryJson, SuppressionJson, SuppressionList, suppression_status,
};
use roost_fm::{FmCommand, ListOptions, Reply, SortDir};
use roost_store::{EventQuery, EventSort};
use roost_types::Timestamp;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use super::extract::{Path, Query, json_body};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/alarms", get(list_alarms).post(post_alarm))
        .route("/v1/alarms/", get(list_alarms).post(post_alarm))
        .route("/v1/alarms/summary", get(summary))
        .route("/v1/alarms/{uuid}", get(show_alarm).delete(delete_alarm))
        .route("/v1/event_log", get(list_events))
        .route("/v1/event_log/", get(list_events))
        .route("/v1/event_log/{uuid}", get(show_event))
        .route("/v1/event_suppression", get(list_suppression))
        .route("/v1/event_suppression/", get(list_suppression))
        .route("/v1/event_suppression/{uuid}", patch(patch_suppression))
}

const ALARM_FIELDS: &[&str] = &[
    "alarm_id",
    "uuid",
    "entity_type_id",
    "entity_instance_id",
    "severity",
    "alarm_type",
    "probable_cause",
    "reason_text",
    "timestamp",
];

fn next_link(base: &str, path: &str, q: &Query, limit: usize, marker: &str) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in q.without_paging() {
        s.append_pair(k, v);
    }
    s.append_pair("limit", &limit.to_string());
    s.append_pair("marker", marker);
    format!("{base}{path}?{}", s.finish())
}

async fn list_alarms(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&[
        "include_suppress",
        "expand",
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
    ])?;
    let opts = ListOptions {
        filters: q.filters(ALARM_FIELDS)?,
        include_suppress: q.flag("include_suppress")?,
        sort_key: q
            .get("sort_key")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        sort_dir: q.sort_dir()?.unwrap_or(SortDir::Asc),
        marker: q
            .get("marker")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        limit: q.limit(MAX_PAGE)?,
    };
    let expand = q.flag("expand")?;
    let (uuids, more) = {
        let table = st.fm.read();
        let page = table.list(&opts)?;
        let uuids: Vec<String> = page.items.iter().map(|a| a.uuid.clone()).collect();
        (uuids, page.more)
    };
    let next = match (more, opts.limit, uuids.last()) {
        (true, Some(limit), Some(last)) => Some(next_link(
            &st.base_url(&headers),
            "/v1/alarms",
            &q,
            limit,
            last,
        )),
        _ => None,
    };
    // Written a chunk at a time as the client reads, so that a listing of
    // every alarm (the fm client sends no limit) never holds the whole
    // document in memory.
    let body = AlarmListBody {
        fm: st.fm.clone(),
        uuids: uuids.into_iter(),
        expand,
        next,
        started: false,
        first: true,
        done: false,
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::new(body),
    )
        .into_response())
}

/// Alarms serialized per chunk.
const LIST_CHUNK: usize = 512;

/// The body of `GET /v1/alarms`: `{"alarms": [...], "next": ...}` (the
/// shape of roost-api's `AlarmList`), produced [`LIST_CHUNK`] alarms at a
/// time under a short read lock. An alarm cleared while the list is being
/// sent is left out.
struct AlarmListBody {
    fm: crate::fm_service::FmService,
    uuids: std::vec::IntoIter<String>,
    expand: bool,
    next: Option<String>,
    started: bool,
    first: bool,
    done: bool,
}

impl AlarmListBody {
    fn chunk(&mut self) -> Result<Option<Bytes>, serde_json::Error> {
        if self.done {
            return Ok(None);
        }
        let mut buf = Vec::with_capacity(LIST_CHUNK * 512);
        if !self.started {
            self.started = true;
            buf.extend_from_slice(b"{\"alarms\":[");
        }
        {
            let table = self.fm.read();
            let cat = self.fm.catalogue();
            for uuid in self.uuids.by_ref().take(LIST_CHUNK) {
                if let Some(a) = table.get(&uuid) {
                    if !self.first {
                        buf.push(b',');
                    }
                    self.first = false;
                    let json =
                        AlarmJson::new(a, cat, table.is_suppressed(&a.alarm_id), self.expand);
                    serde_json::to_writer(&mut buf, &json)?;
                }
            }
        }
        if self.uuids.len() == 0 {
            buf.push(b']');
            if let Some(next) = &self.next {
                buf.extend_from_slice(b",\"next\":");
                serde_json::to_writer(&mut buf, next)?;
            }
            buf.push(b'}');
            self.done = true;
        }
        Ok(Some(Bytes::from(buf)))
    }
}

impl http_body::Body for AlarmListBody {
    type Data = Bytes;
    type Error = serde_json::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.chunk()
                .transpose()
                .map(|r| r.map(http_body::Frame::data)),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

async fn show_alarm(
    State(st): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Json<AlarmJson>, ApiError> {
    let table = st.fm.read();
    let a = table
        .get(&uuid)
        .ok_or_else(|| ApiError::not_found(format!("alarm {uuid} not found")))?;
    Ok(Json(AlarmJson::new(
        a,
        st.fm.catalogue(),
        table.is_suppressed(&a.alarm_id),
        true,
    )))
}

async fn delete_alarm(
    State(st): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.fm.submit(FmCommand::ClearUuid(uuid)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn post_alarm(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PostReply>, ApiError> {
    let post: AlarmPost = json_body(&headers, body)?;
    let cmd = match post
        .into_request()
        .map_err(|e| ApiError::bad_request(e.to_string()))?
    {
        AlarmRequest::Set(i) => FmCommand::Set(i),
        AlarmRequest::ClearUuid(u) => FmCommand::ClearUuid(u),
        AlarmRequest::ClearPair {
            alarm_id,
            entity_instance_id,
        } => FmCommand::ClearPair {
            alarm_id,
            entity_instance_id,
        },
        AlarmRequest::ClearPrefix { entity_prefix } => FmCommand::ClearPrefix {
            entity_prefix,
            alarm_id: None,
        },
        AlarmRequest::Log(e) => FmCommand::Log(e),
    };
    let outcome = st.fm.submit(cmd).await?;
    Ok(Json(match outcome.reply {
        Reply::Uuid(u) => PostReply {
            uuid: Some(u),
            cleared: None,
        },
        Reply::Cleared(v) => PostReply {
            uuid: v.first().cloned(),
            cleared: Some(v),
        },
        Reply::Suppression { .. } => PostReply {
            uuid: None,
            cleared: None,
        },
    }))
}

async fn summary(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SummaryJson>, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&["include_suppress"])?;
    let include = q.flag("include_suppress")?;
    Ok(Json(st.fm.read().summary(include).into()))
}

const EVENT_FIELDS: &[&str] = &[
    "event_log_id",
    "uuid",
    "state",
    "entity_type_id",
    "entity_instance_id",
    "severity",
    "event_log_type",
    "probable_cause",
    "reason_text",
    "timestamp",
    "start",
    "end",
];

fn parse_time(name: &str, v: &str) -> Result<Timestamp, ApiError> {
    v.parse::<Timestamp>()
        .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

async fn list_events(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventList>, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&[
        "include_suppress",
        "expand",
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
        "start",
        "end",
        "alarms",
        "logs",
    ])?;
    let mut filters = q.filters(EVENT_FIELDS)?;
    let mut start = q
        .get("start")
        .filter(|s| !s.is_empty())
        .map(|v| parse_time("start", v))
        .transpose()?;
    let mut end = q
        .get("end")
        .filter(|s| !s.is_empty())
        .map(|v| parse_time("end", v))
        .transpose()?;
    // StarlingX's client sends start and end as q fields.
    let mut rest = Vec::with_capacity(filters.len());
    for f in filters.drain(..) {
        match f.field.as_str() {
            "start" => start = Some(parse_time("start", &f.value)?),
            "end" => end = Some(parse_time("end", &f.value)?),
            _ => rest.push(f),
        }
    }
    match q.get("sort_key") {
        None | Some("") | Some("timestamp") => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the event log sorts only by timestamp, not {k:?}"
            )));
        }
    }
    let alarms_only = q.flag("alarms")?;
    let logs_only = q.flag("logs")?;
    let eq = EventQuery {
        filters: rest,
        start,
        end,
        // Asking for both is the same as asking for neither.
        alarms_only: alarms_only && !logs_only,
        logs_only: logs_only && !alarms_only,
        include_suppress: q.flag("include_suppress")?,
        sort: match q.sort_dir()? {
            Some(SortDir::Asc) => EventSort::OldestFirst,
            _ => EventSort::NewestFirst,
        },
        marker: q
            .get("marker")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        limit: q.limit(MAX_PAGE)?,
    };
    let expand = q.flag("expand")?;
    let suppressed = st.fm.read().suppressed_ids().clone();
    let store = st.fm.store().clone();
    let sup = suppressed.clone();
    let (events, more) = tokio::task::spawn_blocking(move || store.events(&eq, &sup))
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .map_err(ApiError::from)?;
    let next = match (more, q.limit(MAX_PAGE)?, events.last()) {
        (true, Some(limit), Some(last)) => Some(next_link(
            &st.base_url(&headers),
            "/v1/event_log",
            &q,
            limit,
            &last.uuid,
        )),
        _ => None,
    };
    let event_log = events
        .iter()
        .map(|e| EventJson::new(e, suppressed.contains(&e.event_log_id), expand))
        .collect();
    Ok(Json(EventList { event_log, next }))
}

async fn show_event(
    State(st): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Json<EventJson>, ApiError> {
    let store = st.fm.store().clone();
    let id = uuid.clone();
    let e = tokio::task::spawn_blocking(move || store.event(&id))
        .await
        .map_err(|e| ApiError::unavailable(&e))??
        .ok_or_else(|| ApiError::not_found(format!("event log record {uuid} not found")))?;
    let suppressed = st.fm.read().is_suppressed(&e.event_log_id);
    Ok(Json(EventJson::new(&e, suppressed, true)))
}

/// The stable uuid of an alarm id's suppression row.
fn suppression_uuid(alarm_id: &str) -> String {
    let d = Sha256::digest(format!("roost-event-suppression:{alarm_id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn suppression_row(
    st: &AppState,
    base: &str,
    alarm_id: &str,
    description: &str,
) -> SuppressionJson {
    let uuid = suppression_uuid(alarm_id);
    SuppressionJson {
        links: roost_api::Link::self_and_bookmark(base, "event_suppression", &uuid),
        uuid,
        alarm_id: alarm_id.to_string(),
        description: description.to_string(),
        suppression_status: suppression_status(st.fm.read().is_suppressed(alarm_id)),
    }
}

async fn list_suppression(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<SuppressionList>, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&[])?;
    let filters = q.filters(&["alarm_id", "suppression_status", "uuid", "description"])?;
    let base = st.base_url(&headers);
    let rows = st
        .fm
        .catalogue()
        .alarms()
        .map(|e| suppression_row(&st, &base, &e.id, &e.description))
        .filter(|r| {
            filters.iter().all(|f| {
                let have = match f.field.as_str() {
                    "alarm_id" => r.alarm_id.as_str(),
                    "uuid" => r.uuid.as_str(),
                    "description" => r.description.as_str(),
                    _ => r.suppression_status,
                };
                match f.op {
                    roost_fm::FilterOp::Ne => have != f.value,
                    // An exact match here: "suppressed" must not match "unsuppressed".
                    _ => have == f.value,
                }
            })
        })
        .collect();
    Ok(Json(SuppressionList {
        event_suppression: rows,
    }))
}

async fn patch_suppression(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ops: Vec<PatchOp> = json_body(&headers, body)?;
    let entry = st
        .fm
        .catalogue()
        .alarms()
        .find(|e| suppression_uuid(&e.id) == uuid)
        .ok_or_else(|| ApiError::not_found(format!("event suppression {uuid} not found")))?;
    let alarm_id = entry.id.clone();
    let description = entry.description.clone();
    // The ops apply in order; the last one wins. Repeats are fine.
    let mut wanted = None;
    for op in &ops {
        if op.op != "replace" || op.path != "/suppression_status" {
            return Err(ApiError::bad_request(format!(
                "only replace of /suppression_status is allowed, not {} {}",
                op.op, op.path
            )));
        }
        wanted = match op.value.as_ref().and_then(|v| v.as_str()) {
            Some("suppressed") => Some(true),
            Some("unsuppressed") => Some(false),
            other => {
                return Err(ApiError::bad_request(format!(
                    "suppression_status must be suppressed or unsuppressed, not {}",
                    other.unwrap_or("null")
                )));
            }
        };
    }
    let Some(suppressed) = wanted else {
        return Err(ApiError::bad_request("the patch holds no operation"));
    };
    st.fm
        .submit(FmCommand::Suppress {
            alarm_id: alarm_id.clone(),
            suppressed,
        })
        .await?;
    let base = st.base_url(&headers);
    Ok(Json(suppression_row(&st, &base, &alarm_id, &description)).into_response())
}

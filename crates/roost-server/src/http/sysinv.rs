//! Inventory endpoints, sysinv's paths and shapes: systems, hosts, host
//! sub-collections, host actions and the maintenance service parameters.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::{get, patch, post};
use roost_api::Link;
use roost_api::fm::PatchOp;
use roost_api::sysinv::{
    self as wire, HostAdd, HostList, JoinTokenReply, ParameterApplied, ParameterList,
    PlatformServers, PlatformServersList, ServiceParameter,
};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::extract::{Path, Query, json_body};
use crate::platform::PlatformKey;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/isystems", get(systems))
        .route("/v1/isystems/", get(systems))
        .route("/v1/ihosts", get(list_hosts).post(add_host))
        .route("/v1/ihosts/", get(list_hosts).post(add_host))
        .route(
            "/v1/ihosts/{host}",
            get(show_host).patch(patch_host).delete(delete_host),
        )
        .route("/v1/ihosts/{host}/icpus", get(cpus))
        .route("/v1/ihosts/{host}/inodes", get(nodes))
        .route("/v1/ihosts/{host}/imemorys", get(memorys))
        .route("/v1/ihosts/{host}/idisks", get(disks))
        .route("/v1/ihosts/{host}/ethernet_ports", get(ethernet_ports))
        .route("/v1/ihosts/{host}/ports", get(ports))
        .route("/v1/ihosts/{host}/join_token", post(join_token))
        .route(
            "/v1/ihosts/{host}/heartbeat_key",
            get(heartbeat_key).post(rotate_heartbeat_key),
        )
        .route("/v1/ihosts/{host}/revoke", post(revoke_agent))
        .route(
            "/v1/ihosts/{host}/attestation",
            get(attestation).post(accept_attestation),
        )
        .route("/v1/idns", get(list_dns))
        .route("/v1/idns/", get(list_dns))
        .route("/v1/idns/{uuid}", get(show_dns).patch(patch_dns))
        .route("/v1/intp", get(list_ntp))
        .route("/v1/intp/", get(list_ntp))
        .route("/v1/intp/{uuid}", get(show_ntp).patch(patch_ntp))
        .route("/v1/service_parameter", get(list_parameters))
        .route("/v1/service_parameter/", get(list_parameters))
        .route("/v1/service_parameter/apply", post(apply_parameters))
        .route("/v1/service_parameter/{uuid}", patch(patch_parameter))
}

async fn systems(State(st): State<AppState>, headers: HeaderMap) -> Json<Value> {
    Json(wire::systems_json(&st.system, &st.base_url(&headers)))
}

async fn list_hosts(State(st): State<AppState>, headers: HeaderMap) -> Json<HostList> {
    let base = st.base_url(&headers);
    let ihosts = st
        .hosts
        .list()
        .iter()
        .map(|h| wire::host_json(h, &base))
        .collect();
    Json(HostList { ihosts })
}

async fn show_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (h, _) = st.hosts.get(&host)?;
    Ok(Json(wire::host_json(&h, &st.base_url(&headers))))
}

async fn add_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: HostAdd = json_body(&headers, body)?;
    let (h, token) = st.hosts.add(req).await?;
    Ok(Json(wire::host_created_json(
        &h,
        &st.base_url(&headers),
        &token,
    )))
}

async fn join_token(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<JoinTokenReply>, ApiError> {
    let join_token = st.hosts.renew_join_token(&host).await?;
    Ok(Json(JoinTokenReply {
        hostname: host,
        join_token,
    }))
}

/// `GET /v1/ihosts/{host}/heartbeat_key`: fingerprints, never the key.
async fn heartbeat_key(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<roost_api::sysinv::HeartbeatKeyStatus>, ApiError> {
    Ok(Json(st.hosts.heartbeat_key(&host)?))
}

/// `POST /v1/ihosts/{host}/heartbeat_key`: starts a rotation.
async fn rotate_heartbeat_key(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<roost_api::sysinv::HeartbeatKeyStatus>, ApiError> {
    Ok(Json(st.hosts.rotate_heartbeat_key(&host).await?))
}

/// `POST /v1/ihosts/{host}/revoke`: withdraws the agent's credentials.
async fn revoke_agent(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    st.hosts.revoke_agent(&host).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /v1/ihosts/{host}/attestation`: the host's TPM attestation.
async fn attestation(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<roost_api::tpm::AttestationView>, ApiError> {
    Ok(Json(st.hosts.attestation(&host)?))
}

/// `POST /v1/ihosts/{host}/attestation`: accepts the PCR values the host
/// quotes now.
async fn accept_attestation(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<roost_api::tpm::AttestationView>, ApiError> {
    Ok(Json(st.hosts.accept_attestation(&host).await?))
}

async fn patch_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let ops: Vec<PatchOp> = json_body(&headers, body)?;
    if ops.is_empty() {
        return Err(ApiError::bad_request("the patch holds no operation"));
    }
    let ops: Vec<(String, String, Option<Value>)> =
        ops.into_iter().map(|o| (o.op, o.path, o.value)).collect();
    let (h, recorded) = st.hosts.patch(&host, &ops).await?;
    // Answer once the action's alarms (200.001 on lock, ...) are recorded.
    let _ = recorded.await;
    Ok(Json(wire::host_json(&h, &st.base_url(&headers))))
}

async fn delete_host(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = st.hosts.delete(&host).await?;
    // Everything raised about the host goes with it; the host is gone
    // whatever comes of that (a failed clear is retried).
    st.fm
        .clear_until_done(roost_fm::FmCommand::ClearPrefix {
            entity_prefix: format!("host={name}"),
            alarm_id: None,
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn cpus(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    super::host_attributes::cpus(&st, &host)
}

async fn nodes(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (h, inv) = st.hosts.get(&host)?;
    Ok(Json(wire::nodes_json(&h.uuid, &inv)))
}

async fn memorys(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (h, inv) = st.hosts.get(&host)?;
    Ok(Json(wire::memorys_json(&h.uuid, &inv)))
}

async fn disks(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (h, inv) = st.hosts.get(&host)?;
    Ok(Json(wire::disks_json(&h.uuid, &inv)))
}

async fn ethernet_ports(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (h, inv) = st.hosts.get(&host)?;
    Ok(Json(wire::ethernet_ports_json(&h.uuid, &inv)))
}

async fn ports(
    State(st): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (h, inv) = st.hosts.get(&host)?;
    Ok(Json(wire::ports_json(&h.uuid, &inv)))
}

async fn list_parameters(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<ParameterList>, ApiError> {
    let q = Query::parse(raw.as_deref());
    q.only(&[])?;
    let filters = q.filters(&["service", "section", "name", "uuid", "value"])?;
    let base = st.base_url(&headers);
    let parameters = st
        .hosts
        .parameters()
        .into_iter()
        .map(|(uuid, name, value)| ServiceParameter::maintenance(&uuid, &name, &value, &base))
        .filter(|row| {
            filters.iter().all(|f| {
                let have = row.field(&f.field).unwrap_or("");
                match f.op {
                    roost_fm::FilterOp::Ne => have != f.value,
                    _ => have == f.value,
                }
            })
        })
        .collect();
    Ok(Json(ParameterList { parameters }))
}

async fn patch_parameter(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ServiceParameter>, ApiError> {
    let ops: Vec<PatchOp> = json_body(&headers, body)?;
    let mut pairs = Vec::with_capacity(ops.len());
    for o in ops {
        if o.op != "replace" {
            return Err(ApiError::bad_request(format!(
                "only replace operations are supported, not {}",
                o.op
            )));
        }
        let v = match o.value {
            Some(Value::String(s)) => Some(s),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        pairs.push((o.path, v));
    }
    let (uuid, name, value) = st.hosts.patch_parameter(&uuid, &pairs).await?;
    Ok(Json(ServiceParameter::maintenance(
        &uuid,
        &name,
        &value,
        &st.base_url(&headers),
    )))
}

async fn apply_parameters(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ParameterApplied>, ApiError> {
    let req: roost_api::sysinv::ParameterApply = json_body(&headers, body)?;
    if req.service != "platform" {
        return Err(ApiError::bad_request(format!(
            "only service platform has parameters to apply, not {}",
            req.service
        )));
    }
    st.hosts.apply_parameters().await?;
    Ok(Json(ParameterApplied {
        section: req.section,
        service: "platform".into(),
    }))
}

/// One of the platform server lists (DNS or NTP), sysinv style.
struct ServerList {
    /// sysinv's collection name.
    collection: &'static str,
    key: PlatformKey,
}

const DNS: ServerList = ServerList {
    collection: "idnss",
    key: PlatformKey::DnsServers,
};
const NTP: ServerList = ServerList {
    collection: "intps",
    key: PlatformKey::NtpServers,
};

fn server_list_json(st: &AppState, list: &ServerList, base: &str) -> PlatformServers {
    let value = st.platform.current().servers(list.key).join(",");
    let uuid = wire::child_uuid(&st.system.uuid, list.collection, "");
    let (nameservers, ntpservers) = match list.key {
        PlatformKey::DnsServers => (Some(value), None),
        PlatformKey::NtpServers => (None, Some(value)),
    };
    let kind = &list.collection[..list.collection.len() - 1];
    PlatformServers {
        created_at: st.system.created_at.clone(),
        isystem_uuid: st.system.uuid.clone(),
        links: vec![Link {
            href: format!("{base}/v1/{kind}/{uuid}"),
            rel: "self".into(),
        }],
        nameservers,
        ntpservers,
        updated_at: None,
        uuid,
    }
}

async fn list_servers(
    st: &AppState,
    headers: &HeaderMap,
    list: &ServerList,
) -> Result<Json<PlatformServersList>, ApiError> {
    let item = vec![server_list_json(st, list, &st.base_url(headers))];
    Ok(Json(match list.key {
        PlatformKey::DnsServers => PlatformServersList {
            idnss: Some(item),
            intps: None,
        },
        PlatformKey::NtpServers => PlatformServersList {
            idnss: None,
            intps: Some(item),
        },
    }))
}

async fn patch_servers(
    st: &AppState,
    headers: &HeaderMap,
    uuid: &str,
    body: Result<Bytes, BytesRejection>,
    list: &ServerList,
) -> Result<Json<PlatformServers>, ApiError> {
    let current = server_list_json(st, list, &st.base_url(headers));
    if current.uuid != uuid {
        return Err(ApiError::not_found(format!(
            "{} {uuid} not found",
            list.collection
        )));
    }
    let field = list.key.field();
    let ops: Vec<PatchOp> = json_body(headers, body)?;
    let mut value = None;
    for op in ops {
        match op.path.as_str() {
            p if p.strip_prefix('/') == Some(field) => {
                value = Some(match op.value {
                    Some(Value::String(v)) => v,
                    Some(Value::Null) | None => String::new(),
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "{field} must be a comma-separated string, not {other}"
                        )));
                    }
                })
            }
            // StarlingX's client adds an apply action; changes apply at once here.
            "/action" => {}
            other => {
                return Err(ApiError::bad_request(format!("cannot change {other}")));
            }
        }
    }
    let Some(value) = value else {
        return Err(ApiError::bad_request(format!(
            "the patch holds no /{field}"
        )));
    };
    let servers = list.key.parse(&value)?;
    st.platform.set(vec![(list.key, servers)]).await?;
    Ok(Json(server_list_json(st, list, &st.base_url(headers))))
}

async fn list_dns(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PlatformServersList>, ApiError> {
    list_servers(&st, &headers, &DNS).await
}

async fn show_dns(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Result<Json<PlatformServers>, ApiError> {
    let v = server_list_json(&st, &DNS, &st.base_url(&headers));
    if v.uuid != uuid {
        return Err(ApiError::not_found(format!("idns {uuid} not found")));
    }
    Ok(Json(v))
}

async fn patch_dns(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PlatformServers>, ApiError> {
    patch_servers(&st, &headers, &uuid, body, &DNS).await
}

async fn list_ntp(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PlatformServersList>, ApiError> {
    list_servers(&st, &headers, &NTP).await
}

async fn show_ntp(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Result<Json<PlatformServers>, ApiError> {
    let v = server_list_json(&st, &NTP, &st.base_url(&headers));
    if v.uuid != uuid {
        return Err(ApiError::not_found(format!("intp {uuid} not found")));
    }
    Ok(Json(v))
}

async fn patch_ntp(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PlatformServers>, ApiError> {
    patch_servers(&st, &headers, &uuid, body, &NTP).await
}

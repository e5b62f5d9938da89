//! The audit log over HTTP: the middleware that records every mutating
//! call and every login (and writes the access log line of every request),
//! and the routes that list and verify the log.
//!
//! Every audit route is defined in [`protected_routes`], in one place, so
//! that a route-to-role table can annotate them together. Until there is
//! one, each handler requires the `admin` role itself ([`require_admin`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Json, Response};
use axum::routing::get;
use roost_api::audit::{AuditList, AuditRecordView, AuditVerify};
use roost_store::AuditQuery;
use roost_types::Timestamp;

use super::AppState;
use super::dcmanager::{DcHttpError, Path as DcPath};
use super::error::ApiError;
use super::extract::Query;
use crate::audit::Call;
use crate::identity::Principal;

/// Who made a call, as the layers below the middleware learn it: the token
/// check, the login handler (the user name tried) or the agent routes.
/// Never a secret: a name and roles only.
#[derive(Clone, Default)]
pub struct AuditWho(Arc<Mutex<Option<Caller>>>);

/// A user name and roles.
type Caller = (String, Vec<String>);

impl AuditWho {
    pub fn set(&self, user: impl Into<String>, roles: Vec<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((user.into(), roles));
    }

    fn take(&self) -> Option<Caller> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Names the caller of the request `req` for its audit record, if the
/// audit middleware is in front of it.
pub fn tell_who(req: &Request, user: impl Into<String>, roles: Vec<String>) {
    if let Some(w) = req.extensions().get::<AuditWho>() {
        w.set(user, roles);
    }
}

fn mutating(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The access log's target: `[log] level = "info,roost::access=off"`
/// turns it off.
pub const ACCESS_TARGET: &str = "roost::access";

/// Records every request that is not GET, HEAD or OPTIONS (logins
/// included, failed ones too) once it is answered: who, roles, the peer
/// address, method, path (never the query or the body) and status. Writes
/// the access log line of every request (target [`ACCESS_TARGET`], INFO):
/// method, route template, status, duration, user and source; never a
/// query, a body or a header.
pub async fn record(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let audited = mutating(req.method());
    let access = tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO);
    if !audited && !access {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let who = AuditWho::default();
    req.extensions_mut().insert(who.clone());
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    // An agent is named by its host: its token is looked up here, never kept.
    let agent = path.starts_with("/v1/agent/").then(|| {
        let call = super::agent::agent_call(req.headers(), req.extensions())?;
        st.hosts.agent_host(&call).ok()
    });
    let resp = next.run(req).await;
    let (user, roles) = match (who.take(), agent) {
        (Some(w), _) => w,
        (None, Some(Some(host))) => (format!("host:{host}"), Vec::new()),
        (None, Some(None)) => ("agent".to_string(), Vec::new()),
        (None, None) => (String::new(), Vec::new()),
    };
    if access {
        tracing::info!(
            target: ACCESS_TARGET,
            method = %method,
            route = %route,
            status = resp.status().as_u16(),
            duration_ms = started.elapsed().as_micros() as f64 / 1000.0,
            user = %if user.is_empty() { "-" } else { user.as_str() },
            source = %if source.is_empty() { "-" } else { source.as_str() },
            "request"
        );
    }
    if !audited {
        return resp;
    }
    st.audit.record(Call {
        user,
        roles,
        source,
        method,
        path,
        status: resp.status().as_u16(),
    });
    resp
}

/// The audit routes (behind the token check).
pub fn protected_routes() -> Router<AppState> {
    Router::new()
        // role: admin
        .route("/v1/audit", get(list))
        // role: admin
        .route("/v1/audit/verify", get(verify))
        // role: admin (system controller)
        .route("/v1.0/subclouds/{subcloud}/audit", get(subcloud_audit))
}

/// The audit log shows who did what: only an administrator reads it.
/// (Checked here until routes carry their roles in one table.)
fn require_admin(who: &Principal) -> Result<(), ApiError> {
    if who.roles.iter().any(|r| r == "admin") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the audit log needs the admin role",
        ))
    }
}

/// Default and largest `limit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

fn time_param(q: &Query, name: &str) -> Result<Option<Timestamp>, ApiError> {
    match q.get(name) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<Timestamp>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "{name} must be a UTC time like 2026-01-31T12:00:00, not {v:?}"
            ))
        }),
    }
}

fn audit_query(raw: Option<&str>) -> Result<AuditQuery, ApiError> {
    let q = Query::parse(raw);
    q.only(&["user", "since", "until", "method", "status", "limit"])?;
    let status = match q.get("status") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<u16>().map_err(|_| {
            ApiError::bad_request(format!("status must be an HTTP status code, not {v:?}"))
        })?),
    };
    Ok(AuditQuery {
        user: q.get("user").filter(|u| !u.is_empty()).map(str::to_string),
        since: time_param(&q, "since")?,
        until: time_param(&q, "until")?,
        method: q
            .get("method")
            .filter(|m| !m.is_empty())
            .map(str::to_ascii_uppercase),
        status,
        limit: q.limit(MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as u64,
    })
}

async fn list(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditList>, ApiError> {
    require_admin(&who)?;
    let q = audit_query(raw.as_deref())?;
    let records = st.audit.list(q).await?;
    Ok(Json(AuditList {
        records: records.iter().map(AuditRecordView::from).collect(),
    }))
}

async fn verify(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
) -> Result<Json<AuditVerify>, ApiError> {
    require_admin(&who)?;
    let v = st.audit.verify().await?;
    if let Some(b) = v.broken {
        tracing::warn!(seq = b.seq, reason = %b.reason, "the audit log does not verify");
    }
    Ok(Json(AuditVerify::from(&v)))
}

/// On a system controller; errors are HTML pages like every other
/// `/v1.0/` (dcmanager) path's.
async fn subcloud_audit(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    DcPath(subcloud): DcPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditList>, DcHttpError> {
    let html = |e: ApiError| DcHttpError(e.status, e.message);
    require_admin(&who).map_err(html)?;
    let Some(dc) = st.dc.as_ref() else {
        return Err(DcHttpError(
            StatusCode::NOT_FOUND,
            "Distributed Cloud is not enabled: this server does not run as a system controller"
                .into(),
        ));
    };
    let q = Query::parse(raw.as_deref());
    q.only(&["limit"]).map_err(html)?;
    let limit = q.limit(MAX_LIMIT).map_err(html)?.unwrap_or(DEFAULT_LIMIT) as u64;
    let records = dc.subcloud_audit(&subcloud, limit).await?;
    Ok(Json(AuditList {
        records: records.iter().map(AuditRecordView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[&str]) -> Principal {
        Principal {
            user_id: "u".into(),
            user_name: "someone".into(),
            project: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            methods: vec!["password".into()],
            issued_at: Timestamp(0),
            expires_at: Timestamp(1),
            app_cred_id: None,
        }
    }

    #[test]
    fn only_an_admin_reads_the_audit_log() {
        assert!(require_admin(&principal(&["member", "admin"])).is_ok());
        let e = require_admin(&principal(&["member"])).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(require_admin(&principal(&[])).is_err());
    }

    #[test]
    fn the_listing_filters_are_checked() {
        let q = audit_query(Some(
            "user=admin&since=2026-01-01&method=delete&status=401&limit=7",
        ))
        .unwrap();
        assert_eq!(q.user.as_deref(), Some("admin"));
        assert_eq!(q.method.as_deref(), Some("DELETE"));
        assert_eq!(q.status, Some(401));
        assert_eq!(q.limit, 7);
        assert!(q.since.is_some() && q.until.is_none());
        assert_eq!(audit_query(None).unwrap().limit, DEFAULT_LIMIT as u64);
        assert_eq!(
            audit_query(Some("limit=99999999")).unwrap().limit,
            MAX_LIMIT as u64
        );
        for bad in ["status=abc", "since=yesterday", "limit=0", "password=x"] {
            assert!(audit_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_changes_are_recorded() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!mutating(&m));
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(mutating(&m));
        }
    }
}

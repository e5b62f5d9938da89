//! The HTTP API: one router for every service, authentication, metrics.

mod agent;
mod apps;
pub mod audit;
mod certificates;
pub mod dclink;
mod dcmanager;
mod error;
mod extract;
mod files;
mod fm;
mod host_attributes;
mod identity;
mod notify;
mod ops;
mod orchestration;
pub mod serve;
mod software;
mod sysinv;
mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use error::ApiError;

use crate::fm_service::FmService;
use crate::hosts::HostService;
use crate::identity::{Identity, Principal};
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub fm: FmService,
    pub hosts: HostService,
    pub apps: crate::apps::AppService,
    /// DNS and NTP servers.
    pub platform: crate::platform::PlatformService,
    /// The Distributed Cloud service, on a system controller.
    pub dc: Option<crate::dc::DcService>,
    /// Fingerprint of the DC root CA (put in enrollment tokens).
    pub dc_ca_fingerprint: Option<String>,
    /// Port of the DC listener, on a system controller.
    pub dc_port: Option<u16>,
    /// What `/v1/isystems` says about this cloud.
    pub system: roost_api::sysinv::SystemView,
    pub identity: Arc<Identity>,
    pub metrics: Arc<Metrics>,
    /// The audit log every mutating call and login is recorded in.
    pub audit: crate::audit::AuditLog,
    /// Fixed base URL for links and the catalog; else taken from Host.
    pub public_url: Option<String>,
    /// The API's TLS, when it is served over HTTPS.
    pub tls: Option<Arc<crate::certs::ApiTls>>,
    /// Every certificate of this cloud, and its expiry alarms.
    pub certs: Arc<crate::certs::Inventory>,
    /// Software releases (USM).
    pub software: crate::software::SoftwareService,
    /// The fleet rollout (a system controller's).
    pub rollout: Option<crate::dc::rollout::RolloutService>,
    /// Notification destinations (webhooks, SNMP, syslog).
    pub notify: crate::notify::NotifyService,
    /// Ends long polls at once when the server stops, so that a handover
    /// drains in moments.
    pub shutdown: crate::Shutdown,
}

impl AppState {
    /// The base URL clients used to reach us.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("127.0.0.1:6385");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{host}")
    }
}

/// Builds the router.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let protected = Router::new()
        .merge(fm::routes())
        .merge(sysinv::routes())
        .merge(host_attributes::routes())
        .merge(apps::routes())
        .merge(dcmanager::routes())
        .merge(orchestration::routes())
        .merge(identity::protected_routes())
        .merge(certificates::routes())
        .merge(software::routes())
        .merge(ops::protected_routes())
        .merge(audit::protected_routes())
        .merge(notify::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let public = Router::new()
        .route("/", get(ops::root))
        .route("/v1", get(ops::v1))
        .route("/v1/", get(ops::v1))
        .route("/v1.0", get(ops::v1_0))
        .route("/v1.0/", get(ops::v1_0))
        .route("/healthz", get(ops::healthz))
        .merge(identity::public_routes())
        .merge(agent::routes())
        .merge(apps::agent_routes())
        .merge(ui::routes());
    Router::new()
        .merge(protected)
        .merge(public)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        // Outermost: it sees every answer, 401s and 404s included.
        .layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no such resource: {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// The token of a request: header `X-Auth-Token` (the OpenStack clients),
/// or `Authorization: Bearer` (Prometheus's `authorization` setting).
pub(crate) fn request_token(headers: &HeaderMap) -> Option<&str> {
    let t = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.split_once(' ')
                        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                        .map(|(_, t)| t)
                })
        })?
        .trim();
    (!t.is_empty()).then_some(t)
}

/// Lets the request through only with a valid token whose holder has the
/// role the route table (`roost_api::openapi::ROUTES`) declares for the
/// route; the holder becomes a request extension. A route the table does
/// not know is refused to everyone (and logged): nothing is reachable by
/// being forgotten.
async fn require_token(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(p) = request_token(req.headers()).and_then(|t| st.identity.validate(t)) else {
        return ApiError::unauthorized().into_response();
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| roost_api::openapi::route_for(req.method().as_str(), m.as_str()));
    let Some(route) = route else {
        tracing::error!(method = %req.method(), path = %req.uri().path(), "a route has no access rule in the route table; refused");
        return ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "this route has no access rule; it is refused to everyone",
        )
        .into_response();
    };
    audit::tell_who(&req, p.user_name.clone(), p.roles.clone());
    if !route.access.allows(&p.roles) {
        return ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "{} {} needs role {} (this token has {})",
                req.method(),
                route.path,
                route.access.roles().join(" or "),
                if p.roles.is_empty() {
                    "no role: scope it to project admin".to_string()
                } else {
                    p.roles.join(", ")
                }
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert::<Principal>(p);
    next.run(req).await
}

async fn record_metrics(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    st.metrics.observe_request(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

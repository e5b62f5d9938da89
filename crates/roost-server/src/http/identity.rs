//! The Keystone v3 subset: `/v3` and `/v3/auth/tokens`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use roost_api::identity::{AuthRequest, PasswordChange, TokenInfo, token_body, v3_document};

use super::AppState;
use super::error::ApiError;
use super::extract::{Path, Query, json_body};
use crate::Error;
use crate::identity::Principal;

pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/v3", get(v3))
        .route("/v3/", get(v3))
        .route("/v3/auth/tokens", post(issue))
}

pub fn protected_routes() -> Router<AppState> {
    Router::new()
        .route("/v3/auth/tokens", get(validate).delete(revoke))
        .route("/v3/users/{user_id}/password", post(change_password))
}

/// Keystone's self-service password change: the holder of a token changes
/// their own password, giving the current one. On a system controller the
/// new password reaches every managed subcloud (endpoint `identity`).
async fn change_password(
    State(st): State<AppState>,
    Path(user_id): Path<String>,
    axum::Extension(who): axum::Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let req: PasswordChange = json_body(&headers, body)?;
    if who.user_id != user_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "you can change only your own password",
        ));
    }
    if req.user.password.len() < 8 {
        return Err(ApiError::bad_request(
            "the new password must have at least 8 characters",
        ));
    }
    let ident = st.identity.clone();
    st.identity
        .passwords()
        .run(move || {
            ident.change_password(&user_id, &req.user.original_password, &req.user.password)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn v3(State(st): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    Json(v3_document(&st.base_url(&headers)))
}

fn body_for(st: &AppState, headers: &HeaderMap, p: &Principal, catalog: bool) -> serde_json::Value {
    let methods: Vec<&str> = p.methods.iter().map(String::as_str).collect();
    token_body(
        &TokenInfo {
            methods,
            user_id: &p.user_id,
            user_name: &p.user_name,
            project: p.project.as_ref().map(|(i, n)| (i.as_str(), n.as_str())),
            roles: &p.roles,
            issued_at: p.issued_at.to_rfc3339(),
            expires_at: p.expires_at.to_rfc3339(),
        },
        &st.base_url(headers),
        catalog,
    )
}

fn with_subject_token(mut resp: Response, token: &str) -> Result<Response, ApiError> {
    let v = HeaderValue::from_str(token)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cannot encode token"))?;
    resp.headers_mut().insert("x-subject-token", v);
    Ok(resp)
}

async fn issue(
    State(st): State<AppState>,
    who: Option<axum::Extension<super::audit::AuditWho>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: AuthRequest = json_body(&headers, body)?;
    let nocatalog = Query::parse(raw.as_deref()).get("nocatalog").is_some();
    let identity = req.auth.identity;
    let domain_ok = |d: &Option<roost_api::identity::NamedRef>| match d {
        None => true,
        Some(d) => {
            d.id.as_deref()
                .is_none_or(|i| i.eq_ignore_ascii_case("default"))
                && d.name
                    .as_deref()
                    .is_none_or(|n| n.eq_ignore_ascii_case("default"))
        }
    };
    let project = match req.auth.scope.and_then(|s| s.project) {
        Some(p) => {
            if !domain_ok(&p.domain) {
                return Err(ApiError::unauthorized());
            }
            match (p.id, p.name) {
                (Some(id), _) => Some(id),
                (None, Some(name)) => Some(name),
                (None, None) => {
                    return Err(ApiError::bad_request(
                        "a project scope needs an id or a name",
                    ));
                }
            }
        }
        None => None,
    };
    let ident = st.identity.clone();
    let (secret, principal) = if identity.methods.iter().any(|m| m == "password") {
        let Some(pw) = identity.password else {
            return Err(ApiError::bad_request(
                "method password needs identity.password",
            ));
        };
        // The audit record names the user tried, never the password.
        if let Some(axum::Extension(w)) = &who {
            let tried = pw.user.name.as_deref().or(pw.user.id.as_deref());
            w.set(tried.unwrap_or_default(), Vec::new());
        }
        if !domain_ok(&pw.user.domain) {
            return Err(ApiError::unauthorized());
        }
        // The argon2 check on the password threads (bounded), the token
        // on the blocking threads.
        let checker = ident.clone();
        let user = st
            .identity
            .passwords()
            .run(move || {
                checker.check_password(
                    pw.user.id.as_deref(),
                    pw.user.name.as_deref(),
                    &pw.user.password,
                )
            })
            .await?;
        tokio::task::spawn_blocking(move || {
            ident.issue(&user, project.as_deref(), &["password"], None)
        })
        .await
        .map_err(|e| ApiError::unavailable(&e))??
    } else if identity.methods.iter().any(|m| m == "token") {
        let Some(t) = identity.token else {
            return Err(ApiError::bad_request(
                "method token needs identity.token.id",
            ));
        };
        let Some(holder) = st.identity.validate(&t.id) else {
            return Err(ApiError::unauthorized());
        };
        if let Some(axum::Extension(w)) = &who {
            w.set(holder.user_name.clone(), Vec::new());
        }
        tokio::task::spawn_blocking(move || {
            let user = ident.user_of(&holder)?;
            ident.issue(
                &user,
                project.as_deref(),
                &["token"],
                Some(holder.expires_at),
            )
        })
        .await
        .map_err(|e| ApiError::unavailable(&e))??
    } else {
        return Err(ApiError::bad_request(format!(
            "unsupported authentication methods {:?}; use password or token",
            identity.methods
        )));
    };
    if let Some(axum::Extension(w)) = &who {
        w.set(principal.user_name.clone(), principal.roles.clone());
    }
    let body = body_for(&st, &headers, &principal, !nocatalog);
    with_subject_token((StatusCode::CREATED, Json(body)).into_response(), &secret)
}

fn subject(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request("header X-Subject-Token is required"))
}

async fn validate(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let token = subject(&headers)?;
    let p = st.identity.validate(token).ok_or_else(|| {
        ApiError::not_found("the token is not valid (unknown, expired or revoked)")
    })?;
    let nocatalog = Query::parse(raw.as_deref()).get("nocatalog").is_some();
    let body = body_for(&st, &headers, &p, !nocatalog);
    with_subject_token(Json(body).into_response(), token)
}

async fn revoke(State(st): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let token = subject(&headers)?.to_string();
    let ident = st.identity.clone();
    let known = tokio::task::spawn_blocking(move || ident.revoke(&token))
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .map_err(|e: Error| ApiError::from(e))?;
    if known {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "the token is not valid (unknown, expired or revoked)",
        ))
    }
}

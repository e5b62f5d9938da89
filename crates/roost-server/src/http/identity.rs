//! The Keystone v3 subset: `/v3` and `/v3/auth/tokens`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use roost_api::identity::{
    AppCredential, AppCredentialCreateRequest, AppCredentialEnvelope, AppCredentialList,
    AuthRequest, PasswordChange, Project, ProjectEnvelope, ProjectList, Role, RoleAssignment,
    RoleAssignmentList, RoleEnvelope, RoleList, TokenInfo, User, UserCreateRequest, UserEnvelope,
    UserList, UserUpdateRequest, token_body, v3_document,
};
use roost_store::{ROLES, UserAccount};

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
        .route(
            "/v3/users/{user_id}/application_credentials",
            get(list_app_credentials).post(create_app_credential),
        )
        .route(
            "/v3/users/{user_id}/application_credentials/{application_credential_id}",
            get(show_app_credential).delete(delete_app_credential),
        )
        .route("/v3/users", get(list_users).post(create_user))
        .route(
            "/v3/users/{user_id}",
            get(show_user).patch(update_user).delete(delete_user),
        )
        .route("/v3/roles", get(list_roles))
        .route("/v3/roles/{role_id}", get(show_role))
        .route("/v3/projects", get(list_projects))
        .route("/v3/projects/{project_id}", get(show_project))
        .route(
            "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
            axum::routing::put(grant_role).delete(revoke_role),
        )
        .route("/v3/role_assignments", get(role_assignments))
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
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
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
        // Growing delays after wrong passwords, per source and per user:
        // answered at once, before any hashing.
        let source = connect.map(|c| (c.0).0.ip());
        let tried = pw
            .user
            .id
            .clone()
            .or(pw.user.name.clone())
            .unwrap_or_default();
        let mut wait_ms = st.identity.login_wait_ms(source, &tried);
        if wait_ms > 0 {
            // The answer waits out the delay (up to the hold limit): a
            // client that floods in a closed loop sends one attempt per
            // delay, and costs the server a timer, not a password check.
            let hold = wait_ms.min(st.identity.policy().max_hold_ms);
            if hold > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(hold)).await;
                wait_ms = st.identity.login_wait_ms(source, &tried);
            }
        }
        if wait_ms > 0 {
            return Err(ApiError::too_many_requests(
                wait_ms,
                "too many wrong passwords; wait before trying again",
            ));
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
                    source,
                )
            })
            .await
            .inspect_err(|e| {
                // A check refused for want of a thread counts as a wrong
                // password: a flood that fills the queue gets delays too.
                if matches!(e, Error::Busy(_)) {
                    st.identity.login_refused(source, &tried);
                }
            })?;
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
    } else if identity
        .methods
        .iter()
        .any(|m| m == "application_credential")
    {
        let Some(ac) = identity.application_credential else {
            return Err(ApiError::bad_request(
                "method application_credential needs identity.application_credential",
            ));
        };
        let owner = match &ac.user {
            Some(u) => {
                if !domain_ok(&u.domain) {
                    return Err(ApiError::unauthorized());
                }
                u.id.clone().or(u.name.clone())
            }
            None => None,
        };
        if ac.id.is_none() && (ac.name.is_none() || owner.is_none()) {
            return Err(ApiError::bad_request(
                "method application_credential needs its id, or its name and user (id or name)",
            ));
        }
        let tried = ac
            .id
            .clone()
            .or(ac
                .name
                .clone()
                .map(|n| format!("{}/{n}", owner.clone().unwrap_or_default())))
            .unwrap_or_default();
        let tried = format!("application_credential:{tried}");
        if let Some(axum::Extension(w)) = &who {
            w.set(tried.clone(), Vec::new());
        }
        let source = connect.map(|c| (c.0).0.ip());
        let wait_ms = st.identity.login_wait_ms(source, &tried);
        if wait_ms > 0 {
            return Err(ApiError::too_many_requests(
                wait_ms,
                "too many wrong secrets; wait before trying again",
            ));
        }
        let checker = ident.clone();
        let checked = st
            .identity
            .passwords()
            .run(move || {
                checker.check_app_credential(
                    ac.id.as_deref(),
                    ac.name.as_deref(),
                    owner.as_deref(),
                    &ac.secret,
                )
            })
            .await;
        let (user, cred) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                if matches!(e, Error::Unauthorized(_) | Error::Busy(_)) {
                    st.identity.login_refused(source, &tried);
                }
                return Err(e.into());
            }
        };
        tokio::task::spawn_blocking(move || ident.issue_for_app_credential(&user, &cred))
            .await
            .map_err(|e| ApiError::unavailable(&e))??
    } else {
        return Err(ApiError::bad_request(format!(
            "unsupported authentication methods {:?}; use password, token or application_credential",
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

// ----- users, roles and projects (Keystone v3, admin) ------------------------

const MIN_PASSWORD: usize = 8;

fn check_new_password(p: &str) -> Result<(), ApiError> {
    if p.len() < MIN_PASSWORD {
        return Err(ApiError::bad_request(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        )));
    }
    Ok(())
}

fn user_view(base: &str, now: roost_types::Timestamp, a: UserAccount) -> User {
    let locked = (a.locked_until > now).then(|| a.locked_until.to_rfc3339());
    User::view(
        base,
        a.id,
        a.name,
        a.enabled,
        a.failed_logins,
        locked,
        a.roles,
    )
}

fn role_view(base: &str, name: &str) -> Role {
    let description = match name {
        "admin" => "everything, including users, roles and certificates",
        "member" => "operate the cloud (StarlingX's operator): every change but identity",
        _ => "read everything but secrets",
    };
    Role::view(base, name, description)
}

fn project_view(base: &str, (id, name): (String, String)) -> Project {
    Project::view(base, id, name)
}

fn find_user(st: &AppState, id_or_name: &str) -> Result<UserAccount, ApiError> {
    st.identity
        .store()
        .account(id_or_name)?
        .ok_or_else(|| ApiError::not_found(format!("Could not find user: {id_or_name}.")))
}

fn find_role(id_or_name: &str) -> Result<&'static str, ApiError> {
    ROLES
        .iter()
        .find(|r| **r == id_or_name)
        .copied()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Could not find role: {id_or_name}. Roles are {}.",
                ROLES.join(", ")
            ))
        })
}

fn check_roles(roles: &[String]) -> Result<(), ApiError> {
    for r in roles {
        find_role(r).map_err(|e| ApiError::bad_request(e.message))?;
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .map_err(ApiError::from)
}

async fn list_users(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<UserList>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let base = st.base_url(&headers);
    let users = st
        .identity
        .store()
        .accounts()?
        .into_iter()
        .filter(|a| q.get("name").is_none_or(|n| n == a.name))
        .filter(|a| {
            q.get("enabled")
                .is_none_or(|e| e.eq_ignore_ascii_case("true") == a.enabled)
        })
        .map(|a| user_view(&base, st.identity.now(), a))
        .collect();
    Ok(Json(UserList {
        users,
        links: roost_api::identity::list_links(&base, "users"),
    }))
}

async fn show_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
) -> Result<Json<UserEnvelope>, ApiError> {
    let a = find_user(&st, &user_id)?;
    Ok(Json(UserEnvelope {
        user: user_view(&st.base_url(&headers), st.identity.now(), a),
    }))
}

async fn create_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<UserEnvelope>), ApiError> {
    let req: UserCreateRequest = json_body(&headers, body)?;
    let u = req.user;
    let name = u.name.trim().to_string();
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control() || c == '/') {
        return Err(ApiError::bad_request(
            "a user name must have 1 to 255 characters, no control characters and no '/'",
        ));
    }
    if u.domain_id
        .as_deref()
        .is_some_and(|d| !d.eq_ignore_ascii_case("default"))
    {
        return Err(ApiError::bad_request("the only domain is default"));
    }
    let Some(password) = u.password else {
        return Err(ApiError::bad_request("a user needs a password"));
    };
    check_new_password(&password)?;
    check_roles(&u.roles)?;
    let ident = st.identity.clone();
    let enabled = u.enabled.unwrap_or(true);
    let roles = u.roles;
    let a = st
        .identity
        .passwords()
        .run(move || ident.create_user(&name, &password, enabled, &roles))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserEnvelope {
            user: user_view(&st.base_url(&headers), st.identity.now(), a),
        }),
    ))
}

async fn update_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UserEnvelope>, ApiError> {
    let req: UserUpdateRequest = json_body(&headers, body)?;
    let a = find_user(&st, &user_id)?;
    let u = req.user;
    if let Some(p) = &u.password {
        check_new_password(p)?;
    }
    if a.name == crate::identity::ADMIN && u.enabled == Some(false) {
        return Err(ApiError::bad_request(
            "the built-in admin user cannot be disabled",
        ));
    }
    if let Some(n) = &u.name
        && n != &a.name
        && (a.name == crate::identity::ADMIN || n.trim().is_empty())
    {
        return Err(ApiError::bad_request(
            "the built-in admin user cannot be renamed, and a name cannot be empty",
        ));
    }
    let id = a.id.clone();
    if let Some(p) = u.password.clone() {
        let ident = st.identity.clone();
        let uid = id.clone();
        st.identity
            .passwords()
            .run(move || ident.set_password(&uid, &p))
            .await?;
    }
    let ident = st.identity.clone();
    let (name, enabled) = (u.name.clone(), u.enabled);
    let uid = id.clone();
    blocking(move || ident.update_user(&uid, name.as_deref(), enabled)).await?;
    let a = find_user(&st, &id)?;
    Ok(Json(UserEnvelope {
        user: user_view(&st.base_url(&headers), st.identity.now(), a),
    }))
}

async fn delete_user(
    State(st): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let a = find_user(&st, &user_id)?;
    let ident = st.identity.clone();
    blocking(move || ident.delete_user(&a.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_roles(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Json<RoleList> {
    let q = Query::parse(raw.as_deref());
    let base = st.base_url(&headers);
    Json(RoleList {
        roles: ROLES
            .iter()
            .filter(|r| q.get("name").is_none_or(|n| n == **r))
            .map(|r| role_view(&base, r))
            .collect(),
        links: roost_api::identity::list_links(&base, "roles"),
    })
}

async fn show_role(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(role_id): Path<String>,
) -> Result<Json<RoleEnvelope>, ApiError> {
    let r = find_role(&role_id)?;
    Ok(Json(RoleEnvelope {
        role: role_view(&st.base_url(&headers), r),
    }))
}

async fn list_projects(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<ProjectList>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let base = st.base_url(&headers);
    let projects = st
        .identity
        .store()
        .projects()?
        .into_iter()
        .filter(|(_, n)| q.get("name").is_none_or(|want| want == n))
        .map(|p| project_view(&base, p))
        .collect();
    Ok(Json(ProjectList {
        projects,
        links: roost_api::identity::list_links(&base, "projects"),
    }))
}

async fn show_project(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> Result<Json<ProjectEnvelope>, ApiError> {
    let p = st
        .identity
        .store()
        .project(&project_id)?
        .ok_or_else(|| ApiError::not_found(format!("Could not find project: {project_id}.")))?;
    Ok(Json(ProjectEnvelope {
        project: project_view(&st.base_url(&headers), p),
    }))
}

async fn set_role(
    st: &AppState,
    project_id: &str,
    user_id: &str,
    role_id: &str,
    grant: bool,
) -> Result<StatusCode, ApiError> {
    let (project, _) = st
        .identity
        .store()
        .project(project_id)?
        .ok_or_else(|| ApiError::not_found(format!("Could not find project: {project_id}.")))?;
    let user = find_user(st, user_id)?;
    let role = find_role(role_id)?;
    if !grant && user.name == crate::identity::ADMIN && role == "admin" {
        return Err(ApiError::bad_request(
            "the built-in admin user keeps role admin",
        ));
    }
    let ident = st.identity.clone();
    let changed = blocking(move || {
        let changed = ident.store().set_role(&user.id, &project, role, grant)?;
        if changed {
            ident.roles_changed(&user.id)?;
        }
        Ok(changed)
    })
    .await?;
    if !grant && !changed {
        return Err(ApiError::not_found(format!(
            "user {user_id} has no role {role_id} on project {project_id}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn grant_role(
    State(st): State<AppState>,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    set_role(&st, &project_id, &user_id, &role_id, true).await
}

async fn revoke_role(
    State(st): State<AppState>,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    set_role(&st, &project_id, &user_id, &role_id, false).await
}

async fn role_assignments(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<RoleAssignmentList>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let names = q
        .get("include_names")
        .is_some_and(|v| !v.eq_ignore_ascii_case("false"));
    let base = st.base_url(&headers);
    let rows = st.identity.store().role_assignments()?;
    let role_assignments = rows
        .into_iter()
        .filter(|a| {
            q.get("user.id").is_none_or(|v| v == a.user_id)
                && q.get("scope.project.id").is_none_or(|v| v == a.project_id)
                && q.get("role.id").is_none_or(|v| v == a.role)
        })
        .map(|a| {
            RoleAssignment::view(
                &base,
                (&a.user_id, &a.user_name),
                (&a.project_id, &a.project_name),
                &a.role,
                names,
            )
        })
        .collect();
    Ok(Json(RoleAssignmentList {
        role_assignments,
        links: roost_api::identity::list_links(&base, "role_assignments"),
    }))
}

// ----- application credentials (Keystone v3) ---------------------------------

/// Whether `who` may see and delete the credentials of `user_id`: its own,
/// or anyone's with an admin token. Others' are answered as not found, so
/// that a token cannot probe which users exist.
fn may_manage(who: &Principal, user_id: &str) -> Result<(), ApiError> {
    if who.user_id == user_id || who.user_name == user_id || who.roles.iter().any(|r| r == "admin")
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "Could not find application credentials of user: {user_id} (only your own are shown to you)."
        )))
    }
}

fn app_credential_view(
    base: &str,
    c: roost_store::StoredAppCredential,
    secret: Option<String>,
) -> AppCredential {
    AppCredential::view(
        base,
        c.id,
        c.name,
        c.description,
        c.user_id,
        c.project_id,
        c.expires_at.map(|e| e.to_rfc3339()),
        &c.roles,
        secret,
    )
}

/// The user a path names (id or name), for a credential's owner.
fn owner(st: &AppState, user_id: &str) -> Result<UserAccount, ApiError> {
    find_user(st, user_id)
}

async fn create_app_credential(
    State(st): State<AppState>,
    Path(user_id): Path<String>,
    axum::Extension(who): axum::Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: AppCredentialCreateRequest = json_body(&headers, body)?;
    let req = req.application_credential;
    if who.user_id != user_id && who.user_name != user_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "you can create application credentials only for yourself",
        ));
    }
    if who.app_cred_id.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a token made with an application credential cannot make another (Roost's credentials are never unrestricted)",
        ));
    }
    if req.unrestricted == Some(true) {
        return Err(ApiError::bad_request(
            "unrestricted application credentials are not supported",
        ));
    }
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::bad_request(
            "the name must have 1 to 255 characters",
        ));
    }
    if let Some(secret) = &req.secret
        && secret.len() < 16
    {
        return Err(ApiError::bad_request(
            "a secret must have at least 16 characters (leave it out to have one made)",
        ));
    }
    let expires_at = match req.expires_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<roost_types::Timestamp>().map_err(|_| {
            ApiError::bad_request(format!(
                "expires_at {text:?} is not a time (ISO 8601, e.g. 2030-01-31T12:00:00Z)"
            ))
        })?),
    };
    let roles = match req.roles {
        None => None,
        Some(refs) => {
            let mut names = Vec::new();
            for r in refs {
                let Some(n) = r.name.or(r.id) else {
                    return Err(ApiError::bad_request("each role needs a name or an id"));
                };
                names.push(
                    find_role(&n)
                        .map_err(|e| ApiError::bad_request(e.message))?
                        .to_string(),
                );
            }
            Some(names)
        }
    };
    let description = req.description.unwrap_or_default();
    let ident = st.identity.clone();
    let secret = req.secret;
    let who2 = who.clone();
    let (cred, secret) = st
        .identity
        .passwords()
        .run(move || {
            ident.create_app_credential(&who2, &name, &description, expires_at, roles, secret)
        })
        .await
        .map_err(|e| match e {
            // Keystone answers a name taken with 409.
            Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            e => ApiError::from(e),
        })?;
    let body = AppCredentialEnvelope {
        application_credential: app_credential_view(&st.base_url(&headers), cred, Some(secret)),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_app_credentials(
    State(st): State<AppState>,
    Path(user_id): Path<String>,
    axum::Extension(who): axum::Extension<Principal>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<AppCredentialList>, ApiError> {
    may_manage(&who, &user_id)?;
    let user = owner(&st, &user_id)?;
    may_manage(&who, &user.id)?;
    let q = Query::parse(raw.as_deref());
    let base = st.base_url(&headers);
    let application_credentials = st
        .identity
        .store()
        .app_credentials(&user.id)?
        .into_iter()
        .filter(|c| q.get("name").is_none_or(|n| n == c.name))
        .map(|c| app_credential_view(&base, c, None))
        .collect();
    Ok(Json(AppCredentialList {
        application_credentials,
        links: roost_api::identity::list_links(
            &base,
            &format!("users/{}/application_credentials", user.id),
        ),
    }))
}

/// A credential of the user a path names, or 404.
fn find_app_credential(
    st: &AppState,
    who: &Principal,
    user_id: &str,
    id: &str,
) -> Result<roost_store::StoredAppCredential, ApiError> {
    may_manage(who, user_id)?;
    let user = owner(st, user_id)?;
    may_manage(who, &user.id)?;
    st.identity
        .store()
        .app_credential(id)?
        .filter(|c| c.user_id == user.id)
        .ok_or_else(|| ApiError::not_found(format!("Could not find application credential: {id}.")))
}

async fn show_app_credential(
    State(st): State<AppState>,
    Path((user_id, id)): Path<(String, String)>,
    axum::Extension(who): axum::Extension<Principal>,
    headers: HeaderMap,
) -> Result<Json<AppCredentialEnvelope>, ApiError> {
    let c = find_app_credential(&st, &who, &user_id, &id)?;
    Ok(Json(AppCredentialEnvelope {
        application_credential: app_credential_view(&st.base_url(&headers), c, None),
    }))
}

async fn delete_app_credential(
    State(st): State<AppState>,
    Path((user_id, id)): Path<(String, String)>,
    axum::Extension(who): axum::Extension<Principal>,
) -> Result<StatusCode, ApiError> {
    let c = find_app_credential(&st, &who, &user_id, &id)?;
    let ident = st.identity.clone();
    blocking(move || ident.delete_app_credential(&c.user_id, &c.id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

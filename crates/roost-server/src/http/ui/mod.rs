//! The web console at `/ui`: server-rendered HTML pages over the same
//! services as the API, readable without JavaScript. A small script of
//! Roost's own (`static/roost.js`) subscribes to `/ui/stream`
//! (server-sent events) and refreshes the live parts of a page (the alarm
//! banner, the alarm table, the strategy's progress) in place.
//!
//! - **Login** with the same identity as the API: the console's session is
//!   an ordinary token (project `admin`), held in an `HttpOnly`,
//!   `SameSite=Strict` cookie scoped to `/ui` (`Secure` over HTTPS), so a
//!   script never sees it. Logging out revokes it.
//! - **CSRF**: every form that changes something carries a token derived
//!   from the session token (SHA-256 of a fixed label and the token): a
//!   page of another site can neither read it nor compute it, and a
//!   request whose `Origin` is another site is refused. The login form is
//!   protected by a nonce in a cookie and the form (double submit).
//! - **Roles**: reading needs `reader`; host actions need `member`.

mod pages;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

use super::AppState;
use super::audit::AuditWho;
use crate::identity::Principal;

/// The session cookie.
pub const SESSION_COOKIE: &str = "roost_ui";
/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "roost_ui_login";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/login", get(pages::login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/static/roost.css", get(css))
        .route("/ui/static/roost.js", get(js))
        .route("/ui/alarms", get(pages::alarms))
        .route("/ui/events", get(pages::events))
        .route("/ui/hosts", get(pages::hosts))
        .route("/ui/hosts/{host}", get(pages::host))
        .route("/ui/hosts/{host}/action", post(pages::host_action))
        .route("/ui/apps", get(pages::apps))
        .route("/ui/subclouds", get(pages::subclouds))
        .route("/ui/strategy", get(pages::strategy))
        .route("/ui/fragment/{name}", get(pages::fragment))
        .route("/ui/stream", get(pages::stream))
}

/// A logged-in console user.
pub struct Session {
    pub token: String,
    pub who: Principal,
}

impl Session {
    /// The CSRF token of this session's forms.
    pub fn csrf(&self) -> String {
        csrf_for(&self.token)
    }

    pub fn may_act(&self) -> bool {
        self.who.roles.iter().any(|r| r == "admin" || r == "member")
    }
}

fn csrf_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"roost-ui-csrf\0");
    h.update(token.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The session of a request, if its cookie holds a valid token scoped to
/// a project (a role).
pub fn session(st: &AppState, headers: &HeaderMap) -> Option<Session> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let who = st.identity.validate(token)?;
    (!who.roles.is_empty()).then(|| Session {
        token: token.to_string(),
        who,
    })
}

/// The answer to a page request without a session: to the login page.
pub fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

/// Whether a form post comes from this console: no `Origin` of another
/// host (browsers send it on POST), and the right CSRF token.
pub fn form_allowed(headers: &HeaderMap, expected: &str, given: Option<&str>) -> bool {
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        if origin_host != host {
            return false;
        }
    }
    let Some(given) = given else {
        return false;
    };
    // Constant-time comparison of two hex strings.
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The fields of a form body.
pub fn form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn set_cookie(st: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if st.tls.is_some() { "; Secure" } else { "" };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict{secure}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn index(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if session(&st, &headers).is_some() {
        Redirect::to("/ui/alarms").into_response()
    } else {
        to_login()
    }
}

/// A fresh login nonce for the form, and its cookie.
pub fn login_nonce(st: &AppState) -> (String, HeaderValue) {
    let nonce = crate::identity::random_secret(16);
    let c = set_cookie(st, LOGIN_COOKIE, &nonce, Some(600));
    (nonce, c)
}

async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    who: Option<axum::Extension<AuditWho>>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let user = field(&fields, "username")
        .unwrap_or_default()
        .trim()
        .to_string();
    let password = field(&fields, "password").unwrap_or_default().to_string();
    if let Some(axum::Extension(w)) = &who {
        w.set(user.clone(), Vec::new());
    }
    let nonce = cookie(&headers, LOGIN_COOKIE)
        .unwrap_or_default()
        .to_string();
    if nonce.is_empty() || !form_allowed(&headers, &nonce, field(&fields, "csrf")) {
        return pages::login_form(
            &st,
            StatusCode::FORBIDDEN,
            "The login form expired; try again.",
        );
    }
    if user.is_empty() || password.is_empty() {
        return pages::login_form(
            &st,
            StatusCode::BAD_REQUEST,
            "Give a user name and a password.",
        );
    }
    let source = connect.map(|c| (c.0).0.ip());
    let wait_ms = st.identity.login_wait_ms(source, &user);
    if wait_ms > 0 {
        return pages::login_form(
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many wrong passwords; wait {} s before trying again.",
                wait_ms.div_ceil(1000)
            ),
        );
    }
    let ident = st.identity.clone();
    let (u, p) = (user.clone(), password);
    let checked = st
        .identity
        .passwords()
        .run(move || ident.check_password(None, Some(&u), &p, source))
        .await;
    let user_row = match checked {
        Ok(u) => u,
        Err(crate::error::Error::Busy(_)) => {
            st.identity.login_refused(source, &user);
            return pages::login_form(
                &st,
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy checking passwords; try again in a moment.",
            );
        }
        Err(_) => {
            return pages::login_form(
                &st,
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password, or the account is locked or disabled.",
            );
        }
    };
    let ident = st.identity.clone();
    let issued = tokio::task::spawn_blocking(move || {
        ident.issue(&user_row, Some("admin"), &["password"], None)
    })
    .await;
    let (token, principal) = match issued {
        Ok(Ok(t)) => t,
        _ => {
            return pages::login_form(
                &st,
                StatusCode::FORBIDDEN,
                "This user has no role on project admin: an administrator can grant one (roost user role add).",
            );
        }
    };
    if let Some(axum::Extension(w)) = &who {
        w.set(principal.user_name.clone(), principal.roles.clone());
    }
    let mut r = Redirect::to("/ui/alarms").into_response();
    let max_age = (principal.expires_at.micros() - principal.issued_at.micros()) / 1_000_000;
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&st, SESSION_COOKIE, &token, Some(max_age)),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&st, LOGIN_COOKIE, "", Some(0)),
    );
    r
}

async fn logout(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(s) = session(&st, &headers) {
        let fields = form(&body);
        if !form_allowed(&headers, &s.csrf(), field(&fields, "csrf")) {
            return (StatusCode::FORBIDDEN, "this form is not from this console").into_response();
        }
        let ident = st.identity.clone();
        let token = s.token.clone();
        let _ = tokio::task::spawn_blocking(move || ident.revoke(&token)).await;
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&st, SESSION_COOKIE, "", Some(0)),
    );
    r
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        text,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("static/roost.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/roost.js"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_forms_from_elsewhere_refused() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; roost_ui=tok; b=2"),
        );
        assert_eq!(cookie(&h, "roost_ui"), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
        let csrf = csrf_for("tok");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:6385"));
        assert!(form_allowed(&h, &csrf, Some(&csrf)));
        assert!(!form_allowed(&h, &csrf, Some("00")));
        assert!(!form_allowed(&h, &csrf, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!form_allowed(&h, &csrf, Some(&csrf)));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:6385"),
        );
        assert!(form_allowed(&h, &csrf, Some(&csrf)));
        assert_ne!(csrf_for("tok"), csrf_for("tok2"));
    }
}

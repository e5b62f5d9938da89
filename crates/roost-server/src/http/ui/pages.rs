//! The console's pages, and the fragments the script refreshes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use roost_fm::{ListOptions, Summary};
use roost_store::EventQuery;
use roost_types::Severity;
use serde_json::Value;

use super::super::AppState;
use super::super::apps::ChannelBody;
use super::super::extract::Path;
use super::{Session, field, form, form_allowed, login_nonce, session, to_login};

/// Rows shown in a list page.
const MAX_ROWS: usize = 500;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The query of a page as (key, value) pairs.
fn query(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> &'a str {
    q.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// A table with a header row; cells are already HTML.
fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{id}\"><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">Nothing to show.</p>");
    }
    out
}

/// A value of a JSON object as text.
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn sev_class(s: &str) -> &'static str {
    match s {
        "critical" => "sev-critical",
        "major" => "sev-major",
        "minor" => "sev-minor",
        "warning" => "sev-warning",
        _ => "sev-none",
    }
}

/// The alarm banner: active alarms by severity, as Horizon shows them
/// (suppressed ones left out).
fn banner(st: &AppState) -> String {
    let s: Summary = st.fm.read().summary(false);
    format!(
        "<div id=\"banner\" data-fragment=\"banner\" class=\"banner\">\
         <a class=\"count sev-critical\" href=\"/ui/alarms?severity=critical\">Critical <b id=\"count-critical\">{}</b></a>\
         <a class=\"count sev-major\" href=\"/ui/alarms?severity=major\">Major <b id=\"count-major\">{}</b></a>\
         <a class=\"count sev-minor\" href=\"/ui/alarms?severity=minor\">Minor <b id=\"count-minor\">{}</b></a>\
         <a class=\"count sev-warning\" href=\"/ui/alarms?severity=warning\">Warning <b id=\"count-warning\">{}</b></a>\
         </div>",
        s.critical, s.major, s.minor, s.warnings
    )
}

const NAV: &[(&str, &str)] = &[
    ("/ui/alarms", "Alarms"),
    ("/ui/events", "Events"),
    ("/ui/hosts", "Hosts"),
    ("/ui/apps", "Applications"),
    ("/ui/subclouds", "Subclouds"),
    ("/ui/strategy", "Strategy"),
];

/// A whole page: head, navigation, banner, then `body`.
fn page(st: &AppState, s: &Session, title: &str, current: &str, body: &str) -> Response {
    let mut nav = String::new();
    for (href, name) in NAV {
        let class = if *href == current {
            " class=\"here\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{class}>{name}</a>");
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Roost</title>\
         <link rel=\"stylesheet\" href=\"/ui/static/roost.css\">\
         <script defer src=\"/ui/static/roost.js\"></script></head>\
         <body><header><span class=\"brand\">Roost</span><nav>{nav}</nav>\
         <form class=\"logout\" method=\"post\" action=\"/ui/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <span class=\"user\">{user}</span> <button type=\"submit\">Log out</button></form></header>\
         {banner}<main><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
        csrf = s.csrf(),
        user = esc(&s.who.user_name),
        banner = banner(st),
    );
    secure_html(StatusCode::OK, html)
}

/// An HTML answer with the console's security headers.
fn secure_html(status: StatusCode, html: String) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

pub fn login_form(st: &AppState, status: StatusCode, message: &str) -> Response {
    let (nonce, cookie) = login_nonce(st);
    let note = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(message))
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Log in · Roost</title><link rel=\"stylesheet\" href=\"/ui/static/roost.css\"></head>\
         <body class=\"login\"><main><h1>Roost</h1>{note}\
         <form method=\"post\" action=\"/ui/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{nonce}\">\
         <label>User <input name=\"username\" id=\"username\" autocomplete=\"username\" required></label>\
         <label>Password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\" id=\"login\">Log in</button></form></main></body></html>"
    );
    let mut r = secure_html(status, html);
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

pub async fn login_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if session(&st, &headers).is_some() {
        return Redirect::to("/ui/alarms").into_response();
    }
    login_form(&st, StatusCode::OK, "")
}

// ----- alarms and events ------------------------------------------------

fn alarm_rows(st: &AppState, q: &[(String, String)]) -> Vec<Vec<String>> {
    let severity = get(q, "severity");
    let needle = get(q, "q").to_lowercase();
    let table = st.fm.read();
    let Ok(page) = table.list(&ListOptions::default()) else {
        return Vec::new();
    };
    page.items
        .iter()
        .filter(|a| severity.is_empty() || a.severity.to_string() == severity)
        .filter(|a| {
            needle.is_empty()
                || a.alarm_id.to_lowercase().contains(&needle)
                || a.entity_instance_id.to_lowercase().contains(&needle)
                || a.reason_text.to_lowercase().contains(&needle)
        })
        .take(MAX_ROWS)
        .map(|a| {
            let sev = a.severity.to_string();
            vec![
                format!(
                    "<span class=\"sev {}\">{}</span>",
                    sev_class(&sev),
                    esc(&sev)
                ),
                esc(&a.alarm_id),
                esc(&a.reason_text),
                esc(&a.entity_instance_id),
                esc(&a.timestamp.to_string()),
            ]
        })
        .collect()
}

fn alarm_table(st: &AppState, q: &[(String, String)]) -> String {
    format!(
        "<div data-fragment=\"alarms\">{}</div>",
        table(
            "alarm-table",
            &["Severity", "Alarm ID", "Reason", "Entity", "Time"],
            &alarm_rows(st, q)
        )
    )
}

fn severity_select(q: &[(String, String)]) -> String {
    let current = get(q, "severity");
    let mut out =
        String::from("<select name=\"severity\"><option value=\"\">any severity</option>");
    for s in Severity::ALARM_SEVERITIES {
        let s = s.to_string();
        let sel = if s == current { " selected" } else { "" };
        let _ = write!(out, "<option{sel}>{}</option>", esc(&s));
    }
    out.push_str("</select>");
    out
}

pub async fn alarms(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    let q = query(raw.as_deref());
    let body = format!(
        "<form class=\"filters\" method=\"get\">{}<input name=\"q\" placeholder=\"alarm id, entity or text\" value=\"{}\"><button>Filter</button></form>{}",
        severity_select(&q),
        esc(get(&q, "q")),
        alarm_table(&st, &q)
    );
    page(&st, &s, "Active alarms", "/ui/alarms", &body)
}

pub async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    let q = query(raw.as_deref());
    let eq = EventQuery {
        alarms_only: get(&q, "kind") == "alarms",
        logs_only: get(&q, "kind") == "logs",
        include_suppress: true,
        limit: Some(MAX_ROWS),
        ..EventQuery::default()
    };
    let store = st.fm.store().clone();
    let suppressed = st.fm.read().suppressed_ids().clone();
    let found = tokio::task::spawn_blocking(move || store.events(&eq, &suppressed)).await;
    let events = match found {
        Ok(Ok((events, _))) => events,
        _ => Vec::new(),
    };
    let severity = get(&q, "severity");
    let needle = get(&q, "q").to_lowercase();
    let rows: Vec<Vec<String>> = events
        .iter()
        .filter(|e| severity.is_empty() || e.severity.to_string() == severity)
        .filter(|e| {
            needle.is_empty()
                || e.event_log_id.to_lowercase().contains(&needle)
                || e.entity_instance_id.to_lowercase().contains(&needle)
                || e.reason_text.to_lowercase().contains(&needle)
        })
        .map(|e| {
            let sev = e.severity.to_string();
            vec![
                esc(&e.timestamp.to_string()),
                esc(e.state.as_str()),
                esc(&e.event_log_id),
                format!(
                    "<span class=\"sev {}\">{}</span>",
                    sev_class(&sev),
                    esc(&sev)
                ),
                esc(&e.reason_text),
                esc(&e.entity_instance_id),
            ]
        })
        .collect();
    let kind = get(&q, "kind");
    let opt = |v: &str, label: &str| {
        format!(
            "<option value=\"{v}\"{}>{label}</option>",
            if kind == v { " selected" } else { "" }
        )
    };
    let body = format!(
        "<form class=\"filters\" method=\"get\"><select name=\"kind\">{}{}{}</select>{}<input name=\"q\" placeholder=\"id, entity or text\" value=\"{}\"><button>Filter</button></form>{}",
        opt("", "alarms and logs"),
        opt("alarms", "alarms"),
        opt("logs", "logs"),
        severity_select(&q),
        esc(get(&q, "q")),
        table(
            "event-table",
            &["Time", "State", "ID", "Severity", "Reason", "Entity"],
            &rows
        )
    );
    page(&st, &s, "Event log", "/ui/events", &body)
}

// ----- hosts -------------------------------------------------------------

pub async fn hosts(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    let rows: Vec<Vec<String>> = st
        .hosts
        .list()
        .iter()
        .map(|h| {
            vec![
                format!("<a href=\"/ui/hosts/{0}\">{0}</a>", esc(&h.hostname)),
                esc(&h.personality),
                esc(&h.administrative),
                esc(&h.operational),
                format!(
                    "<span class=\"avail avail-{0}\">{0}</span>",
                    esc(&h.availability)
                ),
                esc(&h.task),
            ]
        })
        .collect();
    let body = table(
        "host-table",
        &[
            "Host",
            "Personality",
            "Administrative",
            "Operational",
            "Availability",
            "Task",
        ],
        &rows,
    );
    page(&st, &s, "Hosts", "/ui/hosts", &body)
}

fn kv_table(id: &str, v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .map(|(k, _)| vec![esc(k), esc(&text(v, k))])
                .collect()
        })
        .unwrap_or_default();
    table(id, &["Field", "Value"], &rows)
}

pub async fn host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    let (h, inv) = match st.hosts.get(&host) {
        Ok(x) => x,
        Err(e) => {
            return page(
                &st,
                &s,
                "Host",
                "/ui/hosts",
                &format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
            );
        }
    };
    let hv = roost_api::sysinv::host_json(&h, &st.base_url(&headers));
    let inv = serde_json::to_value(&inv).unwrap_or(Value::Null);
    let actions = if s.may_act() {
        let mut out = format!(
            "<form class=\"actions\" method=\"post\" action=\"/ui/hosts/{}/action\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            esc(&h.hostname),
            s.csrf()
        );
        for a in ["lock", "unlock"] {
            let _ = write!(
                out,
                "<button type=\"submit\" name=\"action\" value=\"{a}\" id=\"action-{a}\">{}</button>",
                if a == "lock" { "Lock" } else { "Unlock" }
            );
        }
        out.push_str("</form>");
        out
    } else {
        "<p>Your role may read only.</p>".into()
    };
    let body = format!(
        "{actions}<h2>State</h2><div data-fragment=\"host\">{}</div><h2>Inventory</h2>{}",
        kv_table("host-fields", &hv),
        kv_table("host-inventory", &inv)
    );
    page(&st, &s, &format!("Host {}", h.hostname), "/ui/hosts", &body)
}

pub async fn host_action(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
    who: Option<axum::Extension<super::AuditWho>>,
    body: Bytes,
) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    if let Some(axum::Extension(w)) = &who {
        w.set(s.who.user_name.clone(), s.who.roles.clone());
    }
    let fields = form(&body);
    if !form_allowed(&headers, &s.csrf(), field(&fields, "csrf")) {
        return secure_html(
            StatusCode::FORBIDDEN,
            "<p>This form is not from this console's session; reload the page and try again.</p>"
                .into(),
        );
    }
    if !s.may_act() {
        return secure_html(
            StatusCode::FORBIDDEN,
            "<p>Host actions need role member or admin.</p>".into(),
        );
    }
    let action = field(&fields, "action").unwrap_or_default();
    if !matches!(action, "lock" | "unlock") {
        return secure_html(
            StatusCode::BAD_REQUEST,
            "<p>Unknown action: use lock or unlock.</p>".into(),
        );
    }
    let ops = vec![(
        "replace".to_string(),
        "/action".to_string(),
        Some(Value::String(action.to_string())),
    )];
    match st.hosts.patch(&host, &ops).await {
        Ok((_, recorded)) => {
            let _ = recorded.await;
            Redirect::to(&format!("/ui/hosts/{}", urlencode(&host))).into_response()
        }
        Err(e) => page(
            &st,
            &s,
            &format!("Host {host}"),
            "/ui/hosts",
            &format!(
                "<p class=\"error\" id=\"action-error\">{}</p><p><a href=\"/ui/hosts/{}\">Back</a></p>",
                esc(&e.to_string()),
                urlencode(&host)
            ),
        ),
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ----- applications, subclouds, strategy ----------------------------------

pub async fn apps(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    let mut body = String::new();
    let apps = st.apps.list();
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            let v = serde_json::to_value(a).unwrap_or(Value::Null);
            vec![
                esc(&text(&v, "name")),
                esc(&text(&v, "app_version")),
                esc(&text(&v, "status")),
                esc(&text(&v, "progress")),
            ]
        })
        .collect();
    body.push_str(&table(
        "app-table",
        &["Application", "Version", "Status", "Progress"],
        &rows,
    ));
    for a in &apps {
        let v = serde_json::to_value(a).unwrap_or(Value::Null);
        let name = text(&v, "name");
        let Ok(replicas) = st.apps.replicas(&name) else {
            continue;
        };
        let rv = serde_json::to_value(&replicas).unwrap_or(Value::Null);
        let list = rv
            .as_object()
            .and_then(|m| m.values().find_map(Value::as_array))
            .cloned()
            .unwrap_or_default();
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|r| {
                vec![
                    esc(&text(r, "id")),
                    esc(&text(r, "host")),
                    esc(&text(r, "state")),
                    esc(&text(r, "ready")),
                    esc(&text(r, "restarts")),
                ]
            })
            .collect();
        let _ = write!(body, "<h2>Replicas of {}</h2>", esc(&name));
        body.push_str(&table(
            &format!("replicas-{}", esc(&name)),
            &["Replica", "Host", "State", "Ready", "Restarts"],
            &rows,
        ));
    }
    page(&st, &s, "Applications", "/ui/apps", &body)
}

/// `lat,lon` (degrees) in a subcloud's location, if it holds one.
fn coordinates(location: &str) -> Option<(f64, f64)> {
    let (a, b) = location.split_once(',')?;
    let lat: f64 = a.trim().parse().ok()?;
    let lon: f64 = b.trim().parse().ok()?;
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

pub async fn subclouds(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    let Some(dc) = st.dc.as_ref() else {
        return page(
            &st,
            &s,
            "Subclouds",
            "/ui/subclouds",
            "<p class=\"empty\">This cloud is not a system controller: it has no subclouds.</p>",
        );
    };
    let list = dc.list();
    let rows: Vec<Vec<String>> = list
        .iter()
        .take(MAX_ROWS)
        .map(|c| {
            vec![
                esc(&c.name),
                esc(&c.management_state),
                format!(
                    "<span class=\"avail avail-{0}\">{0}</span>",
                    esc(&c.availability_status)
                ),
                esc(&c.sync_status),
                esc(&c.deploy_status),
                esc(c.location.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    // An equirectangular map: longitude across, latitude up.
    let mut map = String::from(
        "<svg id=\"subcloud-map\" class=\"map\" viewBox=\"-180 -90 360 180\" role=\"img\" aria-label=\"Subclouds by location\">\
         <rect x=\"-180\" y=\"-90\" width=\"360\" height=\"180\" class=\"sea\"/>\
         <line x1=\"-180\" y1=\"0\" x2=\"180\" y2=\"0\" class=\"grid\"/><line x1=\"0\" y1=\"-90\" x2=\"0\" y2=\"90\" class=\"grid\"/>",
    );
    for c in &list {
        if let Some((lat, lon)) = c.location.as_deref().and_then(coordinates) {
            let _ = write!(
                map,
                "<circle cx=\"{lon:.3}\" cy=\"{:.3}\" r=\"2\" class=\"site avail-{}\"><title>{} ({}, {})</title></circle>",
                -lat,
                esc(&c.availability_status),
                esc(&c.name),
                esc(&c.availability_status),
                esc(&c.sync_status)
            );
        }
    }
    map.push_str("</svg>");
    let body = format!(
        "{map}{}",
        table(
            "subcloud-table",
            &[
                "Subcloud",
                "Management",
                "Availability",
                "Sync",
                "Deploy",
                "Location"
            ],
            &rows
        )
    );
    page(&st, &s, "Subclouds", "/ui/subclouds", &body)
}

fn strategy_fragment(st: &AppState) -> String {
    let Some(r) = st.rollout.as_ref() else {
        return "<div data-fragment=\"strategy\"><p class=\"empty\">This cloud is not a system controller: it runs no fleet strategy.</p></div>".into();
    };
    let Ok(strategy) = r.show(None) else {
        return "<div data-fragment=\"strategy\"><p class=\"empty\">No strategy.</p></div>".into();
    };
    let sv = serde_json::to_value(&strategy).unwrap_or(Value::Null);
    let steps = serde_json::to_value(r.steps()).unwrap_or(Value::Null);
    let list = steps
        .get("strategy_steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let done = list
        .iter()
        .filter(|s| matches!(text(s, "state").as_str(), "complete" | "failed" | "aborted"))
        .count();
    let rows: Vec<Vec<String>> = list
        .iter()
        .take(MAX_ROWS)
        .map(|s| {
            vec![
                esc(&text(s, "cloud")),
                esc(&text(s, "stage")),
                esc(&text(s, "state")),
                esc(&text(s, "details")),
            ]
        })
        .collect();
    format!(
        "<div data-fragment=\"strategy\"><p id=\"strategy-state\">{} strategy: <b>{}</b>, {} of {} subclouds done</p>\
         <progress max=\"{}\" value=\"{}\"></progress>{}</div>",
        esc(&text(&sv, "type")),
        esc(&text(&sv, "state")),
        done,
        list.len(),
        list.len().max(1),
        done,
        table(
            "strategy-steps",
            &["Subcloud", "Stage", "State", "Details"],
            &rows
        )
    )
}

pub async fn strategy(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&st, &headers) else {
        return to_login();
    };
    let body = strategy_fragment(&st);
    page(&st, &s, "Fleet strategy", "/ui/strategy", &body)
}

/// `GET /ui/fragment/{name}`: the live part of a page, for the script.
pub async fn fragment(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if session(&st, &headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let q = query(raw.as_deref());
    let html = match name.as_str() {
        "banner" => banner(&st),
        "alarms" => alarm_table(&st, &q),
        "strategy" => strategy_fragment(&st),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    secure_html(StatusCode::OK, html)
}

/// What the stream watches: the alarm table's and the strategy's state.
fn snapshot(st: &AppState) -> (String, String) {
    let alarms = {
        let t = st.fm.read();
        let s = t.summary(true);
        let uuids: BTreeMap<String, ()> = t
            .list(&ListOptions::default())
            .map(|p| {
                p.items
                    .iter()
                    .map(|a| (format!("{}{:?}", a.uuid, a.updated_at), ()))
                    .collect()
            })
            .unwrap_or_default();
        format!("{s:?}{}", uuids.keys().cloned().collect::<String>())
    };
    let strategy = st
        .rollout
        .as_ref()
        .and_then(|r| r.show(None).ok())
        .and_then(|s| serde_json::to_string(&s).ok())
        .unwrap_or_default()
        + &st
            .rollout
            .as_ref()
            .and_then(|r| serde_json::to_string(&r.steps()).ok())
            .unwrap_or_default();
    (alarms, strategy)
}

/// `GET /ui/stream`: server-sent events naming what changed (`alarms`,
/// `strategy`), checked every half second, with a comment every 15 s to
/// keep the connection open. Ends when the session ends or the server
/// stops.
pub async fn stream(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&st, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let token = s.token.clone();
    tokio::spawn(async move {
        let mut last = snapshot(&st);
        let mut quiet = 0u32;
        if tx
            .send(Bytes::from_static(b"retry: 2000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                () = st.shutdown.cancelled() => return,
            }
            if st.identity.validate(&token).is_none() {
                return;
            }
            let now = snapshot(&st);
            let mut msgs = Vec::new();
            if now.0 != last.0 {
                msgs.push("event: change\ndata: alarms\n\n");
            }
            if now.1 != last.1 {
                msgs.push("event: change\ndata: strategy\n\n");
            }
            last = now;
            quiet += 1;
            if msgs.is_empty() && quiet >= 30 {
                msgs.push(": keep-alive\n\n");
            }
            for m in msgs {
                quiet = 0;
                if tx.send(Bytes::from_static(m.as_bytes())).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut r = Response::new(Body::new(ChannelBody(rx)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_coordinates_parsed() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(coordinates("45.5, -73.6"), Some((45.5, -73.6)));
        assert_eq!(coordinates("Montreal"), None);
        assert_eq!(coordinates("95,0"), None);
    }
}

//! The web console at `/ui` in a real headless Chromium (Debian's
//! `chromium` and `chromium-driver`): log in, see an alarm appear live
//! without reloading, lock a host; screenshots are kept under
//! `target/test-artifacts/` and checked. And, without a browser: pages are
//! readable without JavaScript, the session cookie is HttpOnly and
//! SameSite, and forms without the session's CSRF token or from another
//! origin are refused.

use std::path::{Path, PathBuf};

use roost_test_support::browser::{Browser, png_size};
use roost_test_support::{PASSWORD, Server};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artefact dir");
    dir
}

/// Saves a screenshot and checks it is a real picture of the window.
fn keep_screenshot(b: &Browser, name: &str) -> Vec<u8> {
    let png = b.screenshot();
    std::fs::write(artefacts().join(name), &png).expect("screenshot written");
    let (w, h) = png_size(&png).unwrap_or_else(|| panic!("{name} is not a PNG"));
    assert!(w >= 1000 && h >= 500, "{name}: {w}×{h}");
    assert!(
        png.len() > 10_000,
        "{name} is nearly blank: {} bytes",
        png.len()
    );
    png
}

fn log_in(b: &Browser, url: &str) {
    b.goto(&format!("{url}/ui"));
    assert!(
        b.current_url().ends_with("/ui/login"),
        "{}",
        b.current_url()
    );
    b.type_into(&b.find("#username", 10), "admin");
    b.type_into(&b.find("#password", 10), PASSWORD);
    b.click(&b.find("#login", 10));
    b.find("#alarm-table", 20);
}

#[test]
fn log_in_see_an_alarm_appear_live_and_lock_a_host_in_chromium() {
    let Some(b) = Browser::start() else {
        return;
    };
    let s = Server::start(bin());
    let api = s.api();
    // A wrong password is refused with a message.
    b.goto(&format!("{}/ui/login", s.url));
    b.type_into(&b.find("#username", 10), "admin");
    b.type_into(&b.find("#password", 10), "not-the-password");
    b.click(&b.find("#login", 10));
    let err = b.text(&b.find("#login-error", 10));
    assert!(err.contains("Wrong user name or password"), "{err}");
    log_in(&b, &s.url);
    assert_eq!(b.text(&b.find("#count-critical", 5)), "0");
    // The script is running and subscribed.
    let live = b.execute("return document.documentElement.getAttribute('data-live');");
    assert_eq!(live, "1", "the console's script did not start");
    let before = keep_screenshot(&b, "console-alarms-before.png");
    // An alarm raised through the API shows without a reload.
    let marker = b.execute("window.__roost_marker = 42; return 1;");
    assert_eq!(marker, 1);
    api.set_alarm("100.101", "host=controller-0.processor=0", "critical");
    let count = b.wait_text("#count-critical", "1", 20);
    assert!(
        count.is_ok(),
        "the banner did not show the alarm: {count:?}"
    );
    let row = b.wait_text("#alarm-table", "100.101", 20);
    assert!(row.is_ok(), "the table did not show the alarm: {row:?}");
    let still = b.execute("return window.__roost_marker;");
    assert_eq!(still, 42, "the page was reloaded instead of updated");
    let after = keep_screenshot(&b, "console-alarms-live.png");
    assert_ne!(
        before, after,
        "the screenshot did not change with the alarm"
    );
    // Lock controller-0 from its page.
    b.goto(&format!("{}/ui/hosts", s.url));
    b.click(&b.find("#host-table a", 10));
    b.find("#host-fields", 10);
    b.click(&b.find("#action-lock", 10));
    let state = b.wait_text("#host-fields", "locked", 20);
    assert!(
        state.is_ok(),
        "the host page does not show it locked: {state:?}"
    );
    assert_eq!(api.host("controller-0")["administrative"], "locked");
    keep_screenshot(&b, "console-host-locked.png");
    // The other pages render.
    for (path, what) in [
        ("/ui/events", "#event-table"),
        ("/ui/apps", "#app-table"),
        ("/ui/subclouds", "main"),
        ("/ui/strategy", "main"),
    ] {
        b.goto(&format!("{}{path}", s.url));
        b.find(what, 10);
    }
    b.goto(&format!("{}/ui/events?q=100.101", s.url));
    let events = b.wait_text("#event-table", "100.101", 10);
    assert!(events.is_ok(), "the event log shows the alarm: {events:?}");
}

/// A client that keeps cookies and does not follow redirects.
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Logs in through the form as a browser without JavaScript would; the
/// session cookie's value.
fn form_login(c: &reqwest::blocking::Client, url: &str) -> String {
    let r = c.get(format!("{url}/ui/login")).send().expect("login page");
    let nonce_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("roost_ui_login="))
        .expect("a login cookie")
        .to_string();
    let nonce = nonce_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("nonce");
    let r = c
        .post(format!("{url}/ui/login"))
        .header("Cookie", format!("roost_ui_login={nonce}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={nonce}&username=admin&password={PASSWORD}"))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 303, "login answers a redirect");
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("roost_ui="))
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(flag), "{session}");
    }
    session
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("session")
}

#[test]
fn pages_read_without_javascript_and_forms_need_the_session_csrf_token() {
    let s = Server::start(bin());
    let api = s.api();
    let c = client();
    // No session: to the login page.
    let r = c.get(format!("{}/ui/alarms", s.url)).send().expect("get");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/ui/login")
    );
    // A login post without the form's nonce is refused.
    let r = c
        .post(format!("{}/ui/login", s.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("username=admin&password={PASSWORD}"))
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    let session = form_login(&c, &s.url);
    api.set_alarm("100.104", "host=controller-0.filesystem=/var", "major");
    let page = c
        .get(format!("{}/ui/alarms?severity=major", s.url))
        .header("Cookie", format!("roost_ui={session}"))
        .send()
        .expect("alarms page");
    assert_eq!(page.status().as_u16(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().expect("html");
    assert!(html.contains("100.104") && html.contains("host=controller-0.filesystem=/var"));
    assert!(
        html.contains("id=\"count-major\">1<"),
        "the banner counts it"
    );
    // Text is escaped.
    api.set_alarm("100.101", "host=controller-0.x=<script>", "minor");
    let html = c
        .get(format!("{}/ui/alarms", s.url))
        .header("Cookie", format!("roost_ui={session}"))
        .send()
        .and_then(|r| r.text())
        .expect("page");
    assert!(html.contains("x=&lt;script&gt;") && !html.contains("x=<script>"));
    // A host action without the CSRF token, or from another origin, is refused.
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a csrf token in the page")
        .to_string();
    let action = |body: String, origin: Option<&str>| {
        let mut rb = c
            .post(format!("{}/ui/hosts/controller-0/action", s.url))
            .header("Cookie", format!("roost_ui={session}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = origin {
            rb = rb.header("Origin", o);
        }
        rb.send().expect("action").status().as_u16()
    };
    assert_eq!(action("action=lock".into(), None), 403);
    assert_eq!(
        action(
            format!("action=lock&csrf={csrf}"),
            Some("https://evil.example")
        ),
        403
    );
    assert_eq!(api.host("controller-0")["administrative"], "unlocked");
    assert_eq!(action(format!("action=lock&csrf={csrf}"), None), 303);
    assert_eq!(api.host("controller-0")["administrative"], "locked");
    // Logging out revokes the session's token.
    let r = c
        .post(format!("{}/ui/logout", s.url))
        .header("Cookie", format!("roost_ui={session}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .expect("logout");
    assert_eq!(r.status().as_u16(), 303);
    let r = c
        .get(format!("{}/ui/alarms", s.url))
        .header("Cookie", format!("roost_ui={session}"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 303, "the session ended");
}

#[test]
fn a_system_controller_shows_its_subclouds_on_a_map_and_its_strategy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with(
        bin(),
        roost_test_support::ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                roost_test_support::quick_dc_config(dir.path(), ""),
            ],
            ..Default::default()
        },
    );
    let api = s.api();
    for (name, location) in [("edge-mtl", "45.50,-73.57"), ("edge-nowhere", "a shed")] {
        let r = api.post(
            "/v1.0/subclouds/",
            &serde_json::json!({"name": name, "location": location}),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let c = client();
    let session = form_login(&c, &s.url);
    let get = |path: &str| {
        c.get(format!("{}{path}", s.url))
            .header("Cookie", format!("roost_ui={session}"))
            .send()
            .and_then(|r| r.text())
            .expect("page")
    };
    let html = get("/ui/subclouds");
    assert!(
        html.contains("edge-mtl") && html.contains("edge-nowhere"),
        "{html}"
    );
    // One dot, where Montreal is: x = longitude, y = minus latitude.
    assert_eq!(html.matches("<circle ").count(), 1, "{html}");
    assert!(
        html.contains("cx=\"-73.570\" cy=\"-45.500\""),
        "the dot is not at the subcloud's coordinates: {html}"
    );
    assert!(html.contains("<title>edge-mtl (offline, "), "{html}");
    // No strategy yet: the page says so; the fragment is what the script fetches.
    let html = get("/ui/strategy");
    assert!(html.contains("No strategy"), "{html}");
    let frag = get("/ui/fragment/strategy");
    assert!(frag.contains("data-fragment=\"strategy\""), "{frag}");
}

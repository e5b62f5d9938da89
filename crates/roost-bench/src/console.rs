//! `roost-bench console`: the web console's page weight and time to first
//! render in headless Chromium. One server, logged in once; the alarms
//! page is loaded N times with 10 and with 500 active alarms, and the login
//! page (the smallest page, Chromium's own floor) as the baseline of the
//! same run. First render is the page's first contentful paint, from the
//! navigation's start (the browser's Performance API).

use std::time::Duration;

use roost_test_support::browser::Browser;
use roost_test_support::{PASSWORD, ServerOptions};
use serde_json::{Value, json};

use crate::Plan;
use crate::stats::{Dist, bytes, ms};
use crate::table::Table;

pub struct PageRun {
    pub name: String,
    pub html_bytes: usize,
    pub fcp: Dist,
}

pub struct Results {
    pub css_bytes: usize,
    pub js_bytes: usize,
    pub pages: Vec<PageRun>,
}

/// Loads `url` `n` times; each time's first contentful paint.
fn paints(b: &Browser, url: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        b.goto(url);
        // The paint entry is recorded a moment after the load ends.
        let ms = roost_test_support::wait_for(5, || {
            let v: Value = b.execute(
                "const p = performance.getEntriesByName('first-contentful-paint')[0];\
                 return p ? p.startTime : -1;",
            );
            v.as_f64().filter(|ms| *ms >= 0.0)
        });
        let Some(ms) = ms else {
            anyhow::bail!("no first contentful paint for {url}");
        };
        out.push(Duration::from_secs_f64(ms / 1000.0));
    }
    Ok(out)
}

fn html_len(b: &Browser) -> usize {
    b.execute("return document.documentElement.outerHTML.length;")
        .as_u64()
        .unwrap_or(0) as usize
}

pub fn run(plan: &Plan) -> anyhow::Result<Results> {
    let n = if plan.quick { 5 } else { 30 };
    let b =
        Browser::start().ok_or_else(|| anyhow::anyhow!("chromium and chromedriver are needed"))?;
    let server = crate::start_server(plan, ServerOptions::default())?;
    let api = server.api();
    let http = roost_test_support::http();
    let css = http
        .get(format!("{}/ui/static/roost.css", server.url))
        .send()?
        .bytes()?
        .len();
    let js = http
        .get(format!("{}/ui/static/roost.js", server.url))
        .send()?
        .bytes()?
        .len();
    eprintln!("console: login page, {n} loads");
    let login_url = format!("{}/ui/login", server.url);
    let login = paints(&b, &login_url, n)?;
    let login_bytes = html_len(&b);
    // Log in.
    b.goto(&login_url);
    b.type_into(&b.find("#username", 10), "admin");
    b.type_into(&b.find("#password", 10), PASSWORD);
    b.click(&b.find("#login", 10));
    b.find("#alarm-table", 20);
    let mut pages = vec![PageRun {
        name: "login page (baseline)".into(),
        html_bytes: login_bytes,
        fcp: Dist::new(login),
    }];
    let mut raised = 0usize;
    for alarms in [10usize, 500] {
        while raised < alarms {
            let r = api.post(
                "/v1/alarms",
                &json!({"alarm_state": "set", "alarm_id": "100.104",
                        "entity_instance_id": format!("host=bench-{raised}.filesystem=/var"),
                        "severity": "major", "reason_text": "File system usage over the threshold for the benchmark"}),
            );
            anyhow::ensure!(r.status == 200, "set failed: {:?}", r.body);
            raised += 1;
        }
        eprintln!("console: alarms page with {alarms} alarms, {n} loads");
        let url = format!("{}/ui/alarms", server.url);
        let d = paints(&b, &url, n)?;
        pages.push(PageRun {
            name: format!("alarms page, {alarms} alarms"),
            html_bytes: html_len(&b),
            fcp: Dist::new(d),
        });
    }
    Ok(Results {
        css_bytes: css,
        js_bytes: js,
        pages,
    })
}

pub fn render(r: &Results) -> String {
    let mut out = String::from("### Web console\n\n");
    out.push_str(&format!(
        "Headless Chromium (Debian's, through chromedriver) on the same machine as the server. \
         Each page is loaded {} times in one logged-in session; first render is the page's \
         first contentful paint from the navigation's start. The stylesheet ({}) and the \
         script ({}) are cached after the first load; the HTML is not compressed. The login \
         page is the baseline (the smallest page: Chromium's own floor).\n\n",
        r.pages.first().map_or(0, |p| p.fcp.len()),
        bytes(r.css_bytes),
        bytes(r.js_bytes),
    ));
    let mut t = Table::new(&[
        "page",
        ">HTML",
        ">page weight (HTML + CSS + JS)",
        ">first render p50 (ms)",
        ">p99 (ms)",
        ">p50 ÷ baseline",
    ]);
    let base = r
        .pages
        .first()
        .map_or(0.0, |p| p.fcp.pct(50.0).as_secs_f64());
    for p in &r.pages {
        t.row(vec![
            p.name.clone(),
            bytes(p.html_bytes),
            bytes(p.html_bytes + r.css_bytes + r.js_bytes),
            ms(p.fcp.pct(50.0)),
            ms(p.fcp.pct(99.0)),
            if base > 0.0 {
                format!("{:.2} ×", p.fcp.pct(50.0).as_secs_f64() / base)
            } else {
                "—".into()
            },
        ]);
    }
    out.push_str(&t.render());
    out
}

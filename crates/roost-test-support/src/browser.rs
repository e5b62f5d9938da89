//! A headless Chromium driven over the W3C WebDriver protocol (Debian's
//! `chromium` and `chromium-driver`), for the web console's tests and
//! benchmark. Only what they use: open a page, find elements, type, click,
//! read text, run a script, take a screenshot.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{require_or_skip, wait_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The text an element held when a wait for other text ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastText(pub String);

/// One browser session; closed (and its driver killed) on drop.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and
    /// a 1280×900 window; `None` (a failure under the test command) when
    /// they are not installed.
    pub fn start() -> Option<Browser> {
        if !require_or_skip(
            Path::new(CHROMIUM).exists() && Path::new(DRIVER).exists(),
            "chromium and chromedriver (Debian packages chromium, chromium-driver)",
        ) {
            return None;
        }
        let port = free_port();
        let driver = Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let root = format!("http://127.0.0.1:{port}");
        wait_for(30, || {
            let r = http.get(format!("{root}/status")).send().ok()?;
            let v: Value = r.json().ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        })
        .expect("chromedriver is ready");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .expect("a WebDriver session");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Some(Browser {
            driver,
            base: format!("{root}/session/{id}"),
            http,
            _profile: profile,
        })
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let v: Value = rb
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        v["value"].clone()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None)
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub fn current_url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_string()
    }

    /// The first element matching `css`, if there is one now.
    pub fn try_find(&self, css: &str) -> Option<String> {
        let v = self.post("/element", json!({"using": "css selector", "value": css}));
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// The first element matching `css`, waiting up to `secs` for it.
    pub fn find(&self, css: &str, secs: u64) -> String {
        wait_for(secs, || self.try_find(css))
            .unwrap_or_else(|| panic!("no element {css} on {}", self.current_url()))
    }

    pub fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The text of the first element matching `css`, once it holds
    /// `wanted` (waiting up to `secs`); the last text read otherwise.
    pub fn wait_text(&self, css: &str, wanted: &str, secs: u64) -> Result<String, LastText> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(e) = self.try_find(css) {
                last = self.text(&e);
                if last.contains(wanted) {
                    return Ok(last);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LastText(last))
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    pub fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}));
    }

    /// Runs `script` (a function body; `return` gives the result).
    pub fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    /// The page as a PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.get("/screenshot");
        decode_base64(b64.as_str().unwrap_or_default())
    }
}

/// Standard base64 (with padding) to bytes; invalid characters are skipped.
pub fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
    }
    out
}

/// The width and height of a PNG, if `bytes` is one.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(decode_base64("YQ=="), b"a");
    }
}

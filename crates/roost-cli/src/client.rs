//! The one place that talks HTTP: builds requests against the server's base
//! URL, adds the token, and turns every failure (transport, status, error
//! envelope, non-JSON body) into a one-line [`Error`].

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, one_line};
use crate::query::Query;

/// The header that carries the Keystone-style token on every API request.
pub const AUTH_HEADER: &str = "X-Auth-Token";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an ordinary request may take, unless `--timeout` or
/// `ROOST_TIMEOUT` says otherwise. Uploads and followed streams have no
/// total limit (see [`Api::send_stream`] and [`Api::get_stream`]).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a body that is not an error envelope goes into the message.
const BODY_SNIPPET_CHARS: usize = 200;

/// No request body, for [`Api::send`].
pub const NO_BODY: Option<&()> = None;

/// A reply that passed the status check.
#[derive(Debug)]
pub struct Reply {
    /// Response headers (login reads `X-Subject-Token` from them).
    pub headers: HeaderMap,
    /// Parsed JSON body; `Null` for an empty body (e.g. 204).
    pub body: Value,
}

/// Gets a new token when the server refused the one presented.
pub type Renewal = Box<dyn Fn() -> Result<String, Error> + Send + Sync>;

/// The message of a 401 to a request that carried a token, when nothing
/// better is known (the token came from `ROOST_TOKEN`).
pub const TOKEN_REFUSED: &str =
    "the server refused the token (expired or revoked); run `roost login` again";

/// A client bound to one server base URL and, optionally, one token.
pub struct Api {
    http: Client,
    /// A client without a total time limit, made on first use, for
    /// uploads of large packages and followed logs.
    long: OnceLock<Client>,
    base: String,
    token: std::sync::Mutex<Option<HeaderValue>>,
    /// The total time limit of an ordinary request.
    timeout: Duration,
    /// The pinned CA's TLS config, if any.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// What a refused token's error says (names the context and how to
    /// log in again).
    refused: String,
    /// How to get a new token when the server refuses this one: the
    /// request is then sent once more with it.
    renewal: Option<Renewal>,
}

fn token_header(t: &str) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(t.trim()).map_err(|_| {
        Error::usage("the token contains characters that cannot be sent in a header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A client builder with the user agent, the connect timeout and, if
/// given, the TLS config.
fn builder(
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
) -> reqwest::blocking::ClientBuilder {
    let b = Client::builder()
        .user_agent(concat!("roost-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout);
    match tls {
        Some(config) => b.tls_backend_preconfigured(rustls::ClientConfig::clone(config)),
        None => b,
    }
}

impl Api {
    /// A client for `base` (already normalised by [`normalize_url`]). With a
    /// token, every request carries it and a 401 means "log in again".
    /// With `ca_pem`, an `https://` server must present a
    /// certificate from one of these CAs (and nothing else is trusted),
    /// else the system's roots are used.
    pub fn with_ca(base: &str, token: Option<&str>, ca_pem: Option<&str>) -> Result<Self, Error> {
        Self::with_timeout(base, token, ca_pem, DEFAULT_REQUEST_TIMEOUT)
    }

    /// [`Api::with_ca`] whose ordinary requests give up after `timeout`
    /// (connecting included).
    pub fn with_timeout(
        base: &str,
        token: Option<&str>,
        ca_pem: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let token = token.map(token_header).transpose()?;
        let tls = ca_pem
            .map(|pem| {
                roost_pki::pinned_roots_client_config(pem)
                    .map_err(|e| Error::usage(format!("cannot use the CA certificate: {e}")))
            })
            .transpose()?;
        let http = builder(tls.as_ref(), CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| Error::failure(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            http,
            long: OnceLock::new(),
            base: base.trim_end_matches('/').to_string(),
            token: std::sync::Mutex::new(token),
            timeout,
            tls,
            refused: TOKEN_REFUSED.to_string(),
            renewal: None,
        })
    }

    /// What the error of a refused token says.
    pub fn set_refused_message(&mut self, message: impl Into<String>) {
        self.refused = message.into();
    }

    /// How to get a new token when the server refuses the current one.
    pub fn set_renewal(&mut self, renewal: Renewal) {
        self.renewal = Some(renewal);
    }

    fn has_token(&self) -> bool {
        self.token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Runs `attempt`; when the server refused the token and a renewal is
    /// set, gets a new token and runs it once more.
    fn renewing<T>(&self, attempt: impl Fn() -> Result<T, Error>) -> Result<T, Error> {
        match attempt() {
            Err(e) if e.http_status() == Some(401) && self.has_token() => {
                let Some(renew) = &self.renewal else {
                    return Err(e);
                };
                let fresh = token_header(&renew()?)?;
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
                attempt()
            }
            other => other,
        }
    }

    /// The server's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path?query`, returning the JSON body.
    pub fn get(&self, path: &str, query: &Query) -> Result<Value, Error> {
        Ok(self.send(Method::GET, path, query, NO_BODY)?.body)
    }

    /// `POST path` with a JSON body (a roost-api request type), returning
    /// the JSON body of the reply.
    pub fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Value, Error> {
        Ok(self
            .send(Method::POST, path, &Query::new(), Some(body))?
            .body)
    }

    /// `PATCH path` with a JSON body (a roost-api request type), returning
    /// the JSON body of the reply.
    pub fn patch<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Value, Error> {
        Ok(self
            .send(Method::PATCH, path, &Query::new(), Some(body))?
            .body)
    }

    /// `DELETE path`, returning the JSON body of the reply (`Null` for 204).
    pub fn delete(&self, path: &str) -> Result<Value, Error> {
        Ok(self
            .send(Method::DELETE, path, &Query::new(), NO_BODY)?
            .body)
    }

    /// Sends one request and checks its outcome. Statuses of 400 and above
    /// become errors carrying the server's message; a 401 on a request that
    /// carried a token becomes "log in again".
    pub fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Option<&B>,
    ) -> Result<Reply, Error> {
        self.renewing(|| {
            let mut request =
                self.request(&self.http, method.clone(), path, query, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            self.reply(self.dispatch(request)?)
        })
    }

    /// The server's validation of this client's own token
    /// (`GET /v3/auth/tokens?nocatalog`, the token in both headers).
    pub fn own_token(&self) -> Result<Value, Error> {
        self.renewing(|| {
            let mut request = self.request(
                &self.http,
                Method::GET,
                "/v3/auth/tokens",
                &Query::new().flag("nocatalog", true),
                "application/json",
            );
            if let Some(token) = &*self.token.lock().unwrap_or_else(|e| e.into_inner()) {
                request = request.header("X-Subject-Token", token.clone());
            }
            Ok(self.reply(self.dispatch(request)?)?.body)
        })
    }

    /// `DELETE path` with extra headers (a token revocation names the
    /// token in `X-Subject-Token`).
    pub fn delete_with_headers(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Value, Error> {
        let mut request = self.request(
            &self.http,
            Method::DELETE,
            path,
            &Query::new(),
            "application/json",
        );
        for (name, value) in headers {
            let mut v = HeaderValue::from_str(value)
                .map_err(|_| Error::usage(format!("cannot send header {name}")))?;
            v.set_sensitive(true);
            request = request.header(*name, v);
        }
        Ok(self.reply(self.dispatch(request)?)?.body)
    }

    /// `method path` with a body streamed from a reader (of the length the
    /// body says), without the usual time limit: an upload of a package of
    /// hundreds of megabytes takes as long as the link needs. Returns the
    /// JSON body of the reply.
    pub fn send_stream(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: &str,
    ) -> Result<Value, Error> {
        let request = self
            .request(
                self.long()?,
                method,
                path,
                &Query::new(),
                "application/json",
            )
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        Ok(self.reply(self.dispatch(request)?)?.body)
    }

    /// `GET path?query` whose reply is read as it arrives (text, e.g. a
    /// followed log), without the usual time limit. The status is checked
    /// first; an error reply becomes an [`Error`] as for [`Api::send`].
    pub fn get_stream(&self, path: &str, query: &Query) -> Result<Response, Error> {
        self.renewing(|| {
            let request = self.request(self.long()?, Method::GET, path, query, "text/plain");
            let response = self.dispatch(request)?;
            if response.status().as_u16() >= 400 {
                return Err(self
                    .reply(response)
                    .err()
                    .unwrap_or_else(|| Error::failure("the server refused the request")));
            }
            Ok(response)
        })
    }

    fn long(&self) -> Result<&Client, Error> {
        if let Some(client) = self.long.get() {
            return Ok(client);
        }
        let client = builder(self.tls.as_ref(), CONNECT_TIMEOUT)
            .timeout(None)
            .build()
            .map_err(|e| Error::failure(format!("cannot set up the HTTP client: {e}")))?;
        Ok(self.long.get_or_init(|| client))
    }

    /// A request to `path?query` with the token and the accepted type.
    fn request(
        &self,
        http: &Client,
        method: Method,
        path: &str,
        query: &Query,
        accept: &str,
    ) -> RequestBuilder {
        let mut url = format!("{}{}", self.base, path);
        let encoded = query.encode();
        if !encoded.is_empty() {
            url.push('?');
            url.push_str(&encoded);
        }
        let mut request = http.request(method, &url).header(ACCEPT, accept);
        if let Some(token) = &*self.token.lock().unwrap_or_else(|e| e.into_inner()) {
            request = request.header(AUTH_HEADER, token.clone());
        }
        request
    }

    fn dispatch(&self, request: RequestBuilder) -> Result<Response, Error> {
        request.send().map_err(|e| {
            if e.is_timeout() {
                self.timed_out()
            } else {
                Error::failure(format!(
                    "cannot reach {}: {}",
                    self.base,
                    transport_reason(&e)
                ))
            }
        })
    }

    /// The error of a request that ran out of time.
    fn timed_out(&self) -> Error {
        Error::failure(format!(
            "the server at {} did not answer within {}; it may be overloaded or unreachable (--timeout to wait longer)",
            self.base,
            seconds(self.timeout)
        ))
    }

    /// Checks a reply's status and reads its JSON body: statuses of 400 and
    /// above become errors carrying the server's message; a 401 on a
    /// request that carried a token becomes "log in again".
    fn reply(&self, response: Response) -> Result<Reply, Error> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().map_err(|e| {
            if e.is_timeout() {
                self.timed_out()
            } else {
                Error::failure(format!(
                    "lost the connection to {}: {}",
                    self.base,
                    transport_reason(&e)
                ))
            }
        })?;
        if status == 401 && self.has_token() {
            return Err(Error::http(401, self.refused.clone()));
        }
        if status >= 400 {
            return Err(Error::http(
                status,
                crate::style::server_message(&error_message(status, &text)),
            ));
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                Error::http(
                    status,
                    format!(
                        "the server sent a reply that is not JSON (HTTP {status}): {}",
                        snippet(&text)
                    ),
                )
            })?
        };
        Ok(Reply { headers, body })
    }
}

/// The one-line message for an error reply: the `message` (or `faultstring`,
/// or `title`) of Roost's and Keystone's `{"error": {...}}` envelope, else
/// the `faultstring` inside StarlingX's `{"error_message": "<json>"}`, else
/// the detail of a webob-style HTML error page (what dcmanager's `/v1.0`
/// endpoints send), else `HTTP <code> <first 200 characters of the body>`.
pub fn error_message(status: u16, body: &str) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) {
        if let Some(Value::Object(error)) = map.get("error") {
            for key in ["message", "faultstring", "title"] {
                if let Some(Value::String(text)) = error.get(key)
                    && !text.trim().is_empty()
                {
                    return one_line(text);
                }
            }
        }
        if let Some(Value::String(inner)) = map.get("error_message")
            && let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(inner)
            && let Some(Value::String(text)) = doc.get("faultstring")
            && !text.trim().is_empty()
        {
            return one_line(text);
        }
    }
    if let Some(detail) = html_error_detail(body) {
        return detail;
    }
    let snippet = snippet(body);
    if snippet.is_empty() {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        one_line(&format!("HTTP {status} {reason}"))
    } else {
        format!("HTTP {status} {snippet}")
    }
}

/// The message of a webob-style HTML error page, as dcmanager sends them:
///
/// ```text
/// <html> <head> <title>404 Not Found</title> </head>
///  <body> <h1>404 Not Found</h1>
///   The resource could not be found.<br /><br />
/// Subcloud not found
///  </body> </html>
/// ```
///
/// The detail after `<br /><br />` ("Subcloud not found"), else the
/// explanation, else the title; tags and comments removed, entities decoded,
/// on one line. `None` when the body is not such a page.
fn html_error_detail(body: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower`
    // are valid in `body`.
    let lower = body.to_ascii_lowercase();
    let title_start = lower.find("<title>")? + "<title>".len();
    let title_end = title_start + lower[title_start..].find("</title>")?;
    let title = html_text(&body[title_start..title_end]);
    let content_start = match lower.find("<body") {
        Some(at) => at + lower[at..].find('>').map_or(0, |gt| gt + 1),
        None => title_end,
    };
    let content_end = lower[content_start..]
        .find("</body>")
        .map_or(body.len(), |end| content_start + end);
    let content = &body[content_start..content_end];
    let content_lower = &lower[content_start..content_end];
    // The explanation starts after the page's `<h1>` heading, if any.
    let explanation_start = content_lower
        .find("</h1>")
        .map_or(0, |at| at + "</h1>".len());
    let (explanation, detail) = match content_lower.find("<br /><br />") {
        Some(br) => (
            &content[explanation_start.min(br)..br],
            &content[br + "<br /><br />".len()..],
        ),
        None => (&content[explanation_start..], ""),
    };
    [html_text(detail), html_text(explanation), title]
        .into_iter()
        .find(|text| !text.is_empty())
}

/// The text of an HTML fragment on one line: comments and tags removed,
/// the entities webob escapes decoded.
fn html_text(fragment: &str) -> String {
    let mut text = String::with_capacity(fragment.len());
    let mut rest = fragment;
    while let Some(lt) = rest.find('<') {
        text.push_str(&rest[..lt]);
        let tag = &rest[lt..];
        let end = if tag.starts_with("<!--") {
            tag.find("-->").map(|at| at + "-->".len())
        } else {
            tag.find('>').map(|at| at + 1)
        };
        match end {
            Some(end) => {
                // A tag separates words (`a<br />b`).
                text.push(' ');
                rest = &tag[end..];
            }
            None => {
                rest = "";
            }
        }
    }
    text.push_str(rest);
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    one_line(&decoded)
}

/// The first 200 characters of a body, on one line.
fn snippet(body: &str) -> String {
    one_line(&body.chars().take(BODY_SNIPPET_CHARS).collect::<String>())
}

/// The most specific reason a request failed at the transport level, e.g.
/// "Connection refused (os error 111)".
fn transport_reason(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_string();
    }
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    one_line(&cause.to_string())
}

/// A duration for messages: `30 s`, or `1.5 s` below ten seconds when it
/// is not whole.
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 || d.as_secs() >= 10 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Reads a time limit in seconds as typed on the command line or in
/// `ROOST_TIMEOUT`: a positive number, fractions allowed (`0.5`).
pub fn parse_seconds(text: &str) -> Result<Duration, Error> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("{text:?} is not a number of seconds")))?;
    if !value.is_finite() || value <= 0.0 || value > 1e9 {
        return Err(Error::usage(format!(
            "{text:?} is not a positive number of seconds (at most 1000000000)"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// The API's port when an address gives none.
pub const DEFAULT_PORT: u16 = 6385;

/// What people type for a server, as a URL: `http://` and `https://` URLs
/// as they are; a bare address (`10.0.0.2`, `controller-0:6385`,
/// `[fd00::2]`) gets the scheme the server uses by default (plain HTTP on
/// a loopback address, HTTPS elsewhere) and port 6385 when it has none.
fn with_scheme(address: &str) -> String {
    if address.contains("://") {
        return address.to_string();
    }
    let (host, port) = match address.rsplit_once(':') {
        // `[v6]:port` or `host:port` (a bare IPv6 address has several colons).
        Some((h, p))
            if !h.is_empty()
                && p.parse::<u16>().is_ok()
                && (h.starts_with('[') || !h.contains(':')) =>
        {
            (h.to_string(), p.to_string())
        }
        _ if address.contains(':') && !address.starts_with('[') => {
            (format!("[{address}]"), DEFAULT_PORT.to_string())
        }
        _ => (address.to_string(), DEFAULT_PORT.to_string()),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme = if loopback { "http" } else { "https" };
    format!("{scheme}://{host}:{port}")
}

/// Checks a server URL (or address, see [`with_scheme`]) given by the user
/// and returns it as a URL without a trailing slash.
pub fn normalize_url(raw: &str) -> Result<String, Error> {
    let given = raw.trim().trim_end_matches('/');
    let full = with_scheme(given);
    let trimmed = full.as_str();
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| Error::usage(format!("invalid server URL {trimmed:?}: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::usage(format!(
                "invalid server URL {trimmed:?}: scheme {other:?} is not http or https"
            )));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::usage(format!(
            "invalid server URL {trimmed:?}: no host"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::usage(format!(
            "invalid server URL {trimmed:?}: it must not have a query or fragment"
        )));
    }
    Ok(trimmed.to_string())
}

/// Percent-encodes a user-supplied identifier for use as one path segment,
/// refusing the empty string and the dot segments that would change the path.
pub fn path_segment(what: &str, raw: &str) -> Result<String, Error> {
    if raw.is_empty() || raw == "." || raw == ".." {
        return Err(Error::usage(format!("invalid {what} {raw:?}")));
    }
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roost_envelope_yields_its_message() {
        let body = r#"{"error": {"message": "Alarm not found: 42", "faultstring": "other", "title": "Not Found", "code": 404},
                       "error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Alarm not found: 42\", \"debuginfo\": null}"}"#;
        assert_eq!(error_message(404, body), "Alarm not found: 42");
    }

    #[test]
    fn an_envelope_without_message_falls_back_to_faultstring_then_title() {
        assert_eq!(
            error_message(400, r#"{"error": {"faultstring": "bad limit"}}"#),
            "bad limit"
        );
        assert_eq!(
            error_message(403, r#"{"error": {"title": "Forbidden", "code": 403}}"#),
            "Forbidden"
        );
    }

    #[test]
    fn the_stock_starlingx_string_envelope_yields_its_faultstring() {
        let body = r#"{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid sort_dir\", \"debuginfo\": null}"}"#;
        assert_eq!(error_message(400, body), "Invalid sort_dir");
    }

    #[test]
    fn a_multi_line_message_is_printed_on_one_line() {
        let body = r#"{"error": {"message": "line one\nline two"}}"#;
        assert_eq!(error_message(400, body), "line one line two");
    }

    #[test]
    fn an_unknown_body_shows_the_status_and_the_first_200_characters() {
        let body = format!("<html>\n<body>{}</body></html>", "x".repeat(300));
        let message = error_message(502, &body);
        assert!(
            message.starts_with("HTTP 502 <html> <body>xxx"),
            "{message}"
        );
        assert_eq!(message.chars().count(), "HTTP 502 ".len() + 200);
        assert!(!message.contains('\n'));
    }

    /// The page Roost's dcmanager endpoints send (roost-api's `html_error`).
    const DC_NOT_FOUND: &str = "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  The resource could not be found.<br /><br />\nSubcloud not found\n </body>\n</html>";

    #[test]
    fn a_dcmanager_html_page_yields_its_detail_line() {
        assert_eq!(error_message(404, DC_NOT_FOUND), "Subcloud not found");
    }

    #[test]
    fn html_entities_in_the_detail_are_decoded_and_lines_joined() {
        let page = DC_NOT_FOUND.replace(
            "Subcloud not found",
            "name &lt;edge&gt; is taken &amp; so\nis &quot;x&quot;",
        );
        assert_eq!(
            error_message(409, &page),
            r#"name <edge> is taken & so is "x""#
        );
    }

    #[test]
    fn an_html_page_without_a_detail_falls_back_to_its_explanation_then_its_title() {
        let no_detail = DC_NOT_FOUND.replace("Subcloud not found", "<!-- comment -->");
        assert_eq!(
            error_message(404, &no_detail),
            "The resource could not be found."
        );
        let bare = "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1></body></html>";
        assert_eq!(error_message(503, bare), "503 Service Unavailable");
    }

    #[test]
    fn an_empty_body_shows_the_status_and_its_reason() {
        assert_eq!(error_message(500, ""), "HTTP 500 Internal Server Error");
    }

    #[test]
    fn a_json_body_of_another_shape_is_shown_raw() {
        assert_eq!(
            error_message(400, r#"{"detail":"no"}"#),
            r#"HTTP 400 {"detail":"no"}"#
        );
    }

    #[test]
    fn server_urls_lose_their_trailing_slash() {
        assert_eq!(
            normalize_url(" http://10.0.0.1:6385/ ").unwrap(),
            "http://10.0.0.1:6385"
        );
        assert_eq!(
            normalize_url("http://h:1/base/").unwrap(),
            "http://h:1/base"
        );
    }

    #[test]
    fn bare_addresses_get_the_servers_default_scheme_and_port() {
        for (typed, url) in [
            ("127.0.0.1:6385", "http://127.0.0.1:6385"),
            ("127.0.0.1", "http://127.0.0.1:6385"),
            ("localhost:6401", "http://localhost:6401"),
            ("10.0.0.2", "https://10.0.0.2:6385"),
            ("controller-0:7000", "https://controller-0:7000"),
            ("[::1]:6385", "http://[::1]:6385"),
            ("fd00::2", "https://[fd00::2]:6385"),
            (" 192.168.204.2:6385/ ", "https://192.168.204.2:6385"),
        ] {
            assert_eq!(normalize_url(typed).unwrap(), url, "{typed}");
        }
    }

    #[test]
    fn malformed_urls_are_usage_errors_and_https_is_accepted() {
        for bad in ["ftp://h", "not a url", "http://h/?x=1"] {
            let err = normalize_url(bad).unwrap_err();
            assert_eq!(err.code(), crate::error::EXIT_USAGE, "{bad}");
        }
        assert_eq!(normalize_url("https://h:6385/").unwrap(), "https://h:6385");
    }

    #[test]
    fn path_segments_are_percent_encoded_and_dot_segments_refused() {
        assert_eq!(
            path_segment("uuid", "0b0f7c9e-1d2a-4c57-9a39-1f1a2b3c4d5e").unwrap(),
            "0b0f7c9e-1d2a-4c57-9a39-1f1a2b3c4d5e"
        );
        assert_eq!(path_segment("uuid", "a/b c").unwrap(), "a%2Fb%20c");
        assert!(path_segment("uuid", "..").is_err());
        assert!(path_segment("uuid", "").is_err());
    }
}

//! The witness (`roost witness`) and its client: fencing for duplex
//! controllers without a BMC. The rules are `roost_types::witness`'s; the
//! wire is `roost_api::witness`'s (signed both ways with a shared key).
//!
//! A controller configured with a witness (`[ha] witness`) holds the pair's
//! lease there while it is active, renewing it four times per lease
//! length. It commits alone (without its peer's replica) only while it
//! holds it, and stops its database at once if the witness gives the
//! lease to the peer. The standby fences a lost active by claiming the
//! lease, which the witness grants only once the active's has expired.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use roost_api::witness::{
    Answer, CLAIM_PATH, MAX_BODY, MAX_SKEW_MS, RELEASE_PATH, Request, SIGNATURE_HEADER, WitnessKey,
};
use roost_types::witness::{self as rules, Witness};

use crate::ha::now;
use crate::http::serve::{Limits, serve};

/// A witness's settings.
#[derive(Debug, Clone)]
pub struct WitnessSettings {
    pub listen: SocketAddr,
    pub key: WitnessKey,
    /// The longest lease it grants; after a restart it grants nothing for
    /// this long.
    pub max_lease: Duration,
    /// How many controller pairs it serves at most.
    pub max_pairs: usize,
}

impl WitnessSettings {
    /// The settings, with the key read from `key_file` (mode 0600, at
    /// least 32 characters).
    pub fn new(
        listen: SocketAddr,
        key_file: &std::path::Path,
        max_lease: Duration,
        max_pairs: usize,
    ) -> crate::Result<WitnessSettings> {
        let text = crate::config::read_secret_file(key_file, "--key-file")
            .map_err(|e| crate::Error::Invalid(e.to_string()))?;
        let key = WitnessKey::from_secret(&text).ok_or_else(|| {
            crate::Error::Invalid(format!(
                "--key-file: {} must hold at least {} characters",
                key_file.display(),
                roost_api::witness::MIN_KEY_LEN
            ))
        })?;
        if max_lease < Duration::from_millis(10) || max_pairs == 0 {
            return Err(crate::Error::Invalid(
                "--max-lease-ms must be at least 10 and --max-pairs at least 1".into(),
            ));
        }
        Ok(WitnessSettings {
            listen,
            key,
            max_lease,
            max_pairs,
        })
    }
}

/// Until SIGINT or SIGTERM.
pub async fn until_stopped() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

struct Shared {
    key: WitnessKey,
    state: Mutex<Witness>,
}

fn wall_ms() -> u64 {
    u64::try_from(crate::ha::wall_micros() / 1000).unwrap_or(0)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        axum::Json(roost_api::error_body(status.as_u16(), title, message)),
    )
        .into_response()
}

fn signed(key: &WitnessKey, answer: &Answer) -> Response {
    let body = match serde_json::to_vec(answer) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the answer: {e}"),
            );
        }
    };
    let mut r = (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.clone(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&key.sign(&body)) {
        r.headers_mut().insert(SIGNATURE_HEADER, v);
    }
    r
}

/// Checks the signature, the body and its clock; the request.
fn checked(
    key: &WitnessKey,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Request, (StatusCode, String)> {
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !key.verify(body, sig) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "the request is not signed with this witness's key (header X-Roost-Signature)".into(),
        ));
    }
    let req: Request = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the request is not a witness request: {e}"),
        )
    })?;
    if req.sent_ms.abs_diff(wall_ms()) > MAX_SKEW_MS {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "the request was sent more than {} s from this witness's clock: check both hosts' time",
                MAX_SKEW_MS / 1000
            ),
        ));
    }
    Ok(req)
}

async fn claim(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match checked(&s.key, &headers, &body) {
        Ok(r) => r,
        Err((status, why)) => return refuse(status, &why),
    };
    let ttl = i64::try_from(req.lease_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
    let t = now();
    let (answer, previous) = {
        let Ok(mut w) = s.state.lock() else {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the witness is stopping");
        };
        let previous = w.lease(&req.pair).cloned();
        (w.claim(&req.pair, &req.controller, ttl, t), previous)
    };
    let answer = match answer {
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(rules::Answer::Granted {
            epoch,
            previous_ended,
        }) => {
            if previous.as_ref().map(|p| p.epoch) != Some(epoch) {
                tracing::info!(
                    pair = %req.pair,
                    holder = %req.controller,
                    epoch,
                    previous = previous.as_ref().map_or("", |p| p.holder.as_str()),
                    "granted the pair's lease"
                );
            }
            Answer {
                granted: true,
                holder: Some(req.controller),
                epoch,
                left_ms: req.lease_ms,
                previous_ended_ms_ago: previous_ended
                    .map(|e| u64::try_from((t - e).max(0) / 1000).unwrap_or(0)),
                nonce: req.nonce,
            }
        }
        Ok(rules::Answer::Held { holder, left }) => Answer {
            granted: false,
            holder,
            epoch: previous.map_or(0, |p| p.epoch),
            left_ms: u64::try_from(left.saturating_add(999) / 1000).unwrap_or(0),
            previous_ended_ms_ago: None,
            nonce: req.nonce,
        },
    };
    signed(&s.key, &answer)
}

async fn release(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match checked(&s.key, &headers, &body) {
        Ok(r) => r,
        Err((status, why)) => return refuse(status, &why),
    };
    let (released, epoch) = {
        let Ok(mut w) = s.state.lock() else {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the witness is stopping");
        };
        let released = w.release(&req.pair, &req.controller, now());
        (released, w.lease(&req.pair).map_or(0, |g| g.epoch))
    };
    if released {
        tracing::info!(pair = %req.pair, holder = %req.controller, epoch, "the holder gave the pair's lease up");
    }
    signed(
        &s.key,
        &Answer {
            granted: released,
            holder: None,
            epoch,
            left_ms: 0,
            previous_ended_ms_ago: None,
            nonce: req.nonce,
        },
    )
}

/// The witness's API.
fn router(key: WitnessKey, max_lease: Duration, max_pairs: usize) -> Router {
    let max_ttl = i64::try_from(max_lease.as_micros()).unwrap_or(i64::MAX);
    let shared = Arc::new(Shared {
        key,
        state: Mutex::new(Witness::new(now(), max_ttl, max_pairs)),
    });
    Router::new()
        .route(CLAIM_PATH, post(claim))
        .route(RELEASE_PATH, post(release))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// Runs a witness until `shutdown` completes.
pub async fn run(
    s: WitnessSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .map_err(|e| crate::Error::Invalid(format!("cannot listen on {}: {e}", s.listen)))?;
    let addr = listener.local_addr().unwrap_or(s.listen);
    tracing::info!(
        %addr,
        max_lease_ms = s.max_lease.as_millis(),
        "witness started: it grants no lease for its longest lease length"
    );
    println!("roost witness on http://{addr}");
    let limits = Limits {
        header_read_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_connections: 256,
    };
    serve(
        listener,
        router(s.key, s.max_lease, s.max_pairs),
        limits,
        None,
        async move {
            shutdown.await;
            Duration::from_secs(1)
        },
    )
    .await;
    Ok(())
}

/// Where a controller's witness is, and how to speak to it.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    /// `http://HOST:PORT`.
    pub url: String,
    pub key: WitnessKey,
    /// The pair's name at the witness.
    pub pair: String,
}

/// A controller's client of its witness.
#[derive(Debug, Clone)]
pub struct WitnessClient {
    target: WitnessTarget,
    me: String,
    http: reqwest::Client,
}

impl WitnessClient {
    /// Each request is waited for `timeout` at most.
    pub fn new(target: WitnessTarget, me: &str, timeout: Duration) -> crate::Result<WitnessClient> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::Error::Invalid(format!("cannot make an HTTP client: {e}")))?;
        Ok(WitnessClient {
            target,
            me: me.to_string(),
            http,
        })
    }

    /// Claims (or renews) the pair's lease for `lease_ms`.
    pub async fn claim(&self, lease_ms: u64) -> crate::Result<Answer> {
        self.ask(CLAIM_PATH, lease_ms).await
    }

    /// Gives the pair's lease up.
    pub async fn release(&self) -> crate::Result<Answer> {
        self.ask(RELEASE_PATH, 0).await
    }

    async fn ask(&self, path: &str, lease_ms: u64) -> crate::Result<Answer> {
        let unreachable = |why: String| {
            crate::Error::Invalid(format!("the witness at {}: {why}", self.target.url))
        };
        let mut n = [0u8; 16];
        getrandom::fill(&mut n).map_err(|e| unreachable(format!("no random nonce: {e}")))?;
        let nonce: String = n.iter().map(|b| format!("{b:02x}")).collect();
        let req = Request {
            pair: self.target.pair.clone(),
            controller: self.me.clone(),
            lease_ms,
            nonce: nonce.clone(),
            sent_ms: wall_ms(),
        };
        let body = serde_json::to_vec(&req).map_err(|e| unreachable(e.to_string()))?;
        let r = self
            .http
            .post(format!("{}{path}", self.target.url.trim_end_matches('/')))
            .header(SIGNATURE_HEADER, self.target.key.sign(&body))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(roost_types::error_chain(&e)))?;
        let status = r.status();
        let sig = r
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| unreachable(roost_types::error_chain(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(unreachable(format!("it answered {status}: {text}")));
        }
        if bytes.len() > MAX_BODY || !self.target.key.verify(&bytes, &sig) {
            return Err(unreachable(
                "its answer is not signed with the witness key: not believed".into(),
            ));
        }
        let answer: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| unreachable(format!("its answer cannot be read: {e}")))?;
        if answer.nonce != nonce {
            return Err(unreachable(
                "its answer is not to this request: not believed".into(),
            ));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> WitnessKey {
        WitnessKey::from_secret(&c.to_string().repeat(40)).unwrap()
    }

    async fn witness(max_lease: Duration) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(run(
            WitnessSettings {
                listen: addr,
                key: key('w'),
                max_lease,
                max_pairs: 10,
            },
            async move {
                let _ = rx.await;
            },
        ));
        let url = format!("http://{addr}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (url, tx)
    }

    fn client(url: &str, me: &str, k: WitnessKey) -> WitnessClient {
        WitnessClient::new(
            WitnessTarget {
                url: url.into(),
                key: k,
                pair: rules::pair_name("controller-0", "controller-1"),
            },
            me,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    /// Over real HTTP: the blind period after the start, a grant, the
    /// peer held off, a release handing the lease over, and requests with
    /// the wrong key refused with a message.
    #[tokio::test]
    async fn controllers_claim_and_release_over_http_and_the_key_is_checked() {
        let (url, _stop) = witness(Duration::from_millis(300)).await;
        let c0 = client(&url, "controller-0", key('w'));
        let c1 = client(&url, "controller-1", key('w'));
        let first = c0.claim(200).await.unwrap();
        assert!(!first.granted, "{first:?}");
        assert_eq!(first.holder, None, "nobody is known right after a start");
        tokio::time::sleep(Duration::from_millis(first.left_ms + 20)).await;
        let a = c0.claim(200).await.unwrap();
        assert!(a.granted && a.epoch == 1, "{a:?}");
        let b = c1.claim(200).await.unwrap();
        assert!(!b.granted, "{b:?}");
        assert_eq!(b.holder.as_deref(), Some("controller-0"));
        assert!(b.left_ms > 0 && b.left_ms <= 200, "{b:?}");
        assert!(c0.release().await.unwrap().granted);
        let c = c1.claim(200).await.unwrap();
        assert!(c.granted && c.epoch == 2, "{c:?}");
        assert!(
            c.previous_ended_ms_ago.is_some_and(|ago| ago < 5_000),
            "{c:?}"
        );
        assert_eq!(a.previous_ended_ms_ago, None, "{a:?}");

        let wrong = client(&url, "controller-0", key('x'));
        let e = wrong.claim(200).await.unwrap_err().to_string();
        assert!(e.contains("401") && e.contains("not signed"), "{e}");
        let too_long = c1.claim(10_000).await.unwrap_err().to_string();
        assert!(
            too_long.contains("longer than this witness grants"),
            "{too_long}"
        );
    }
}

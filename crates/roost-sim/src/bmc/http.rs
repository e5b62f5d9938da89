//! The Redfish HTTP surface: routing, Basic authentication and JSON bodies.
//!
//! One fallback handler dispatches on the (trailing-slash-normalized) path so
//! that authentication, refusal and Redfish error bodies apply uniformly,
//! including to paths that do not exist.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{ALLOW, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use roost_api::redfish::{
    Collection, ComputerSystem, ErrorBody, Link, Message, Messages, ResetAction, ResetBody,
    ServiceRoot, Status, SystemActions,
};
use serde::Serialize;

use super::{ResetOutcome, ResetType, Shared};

const V1: &str = "/redfish/v1";
const SYSTEMS: &str = "/redfish/v1/Systems";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if shared.refusing.load(Ordering::SeqCst) {
        let mut resp = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Base.1.0.ServiceTemporarilyUnavailable",
            "The BMC is not accepting requests.",
        );
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }

    let path = match uri.path().trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    match path {
        "/redfish" => {
            return get_only(&method, || {
                std::collections::BTreeMap::from([("v1", "/redfish/v1/")])
            });
        }
        V1 => return get_only(&method, service_root),
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/redfish/v1/") else {
        return not_found(path);
    };
    if !authorized(&shared, &headers) {
        return unauthorized();
    }

    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["Systems"] => get_only(&method, || systems(&shared)),
        ["Systems", id] if *id == shared.system_id => get_only(&method, || system(&shared)),
        ["Systems", id, "Actions", "ComputerSystem.Reset"] if *id == shared.system_id => {
            if method != Method::POST {
                return method_not_allowed("POST");
            }
            reset(&shared, &body).await
        }
        _ => not_found(path),
    }
}

/// Answers a read-only resource: GET (and HEAD) only.
fn get_only<T: Serialize>(method: &Method, body: impl FnOnce() -> T) -> Response {
    if method == Method::GET || method == Method::HEAD {
        json_response(StatusCode::OK, body())
    } else {
        method_not_allowed("GET, HEAD")
    }
}

fn service_root() -> ServiceRoot {
    ServiceRoot {
        odata_id: V1.into(),
        odata_type: "#ServiceRoot.v1_5_0.ServiceRoot".into(),
        id: "RootService".into(),
        name: "Roost Simulated BMC".into(),
        redfish_version: "1.6.0".into(),
        systems: Link {
            odata_id: SYSTEMS.into(),
        },
    }
}

fn system_path(shared: &Shared) -> String {
    format!("{SYSTEMS}/{}", shared.system_id)
}

fn systems(shared: &Shared) -> Collection {
    Collection {
        odata_id: SYSTEMS.into(),
        odata_type: "#ComputerSystemCollection.ComputerSystemCollection".into(),
        name: "Computer System Collection".into(),
        members: vec![Link {
            odata_id: system_path(shared),
        }],
        count: 1,
    }
}

fn system(shared: &Shared) -> ComputerSystem {
    let path = system_path(shared);
    ComputerSystem {
        odata_type: "#ComputerSystem.v1_10_0.ComputerSystem".into(),
        id: shared.system_id.clone(),
        name: format!("Roost simulated system {}", shared.system_id),
        system_type: "Physical".into(),
        power_state: shared.power_state().as_str().into(),
        status: Status {
            state: "Enabled".into(),
            health: "OK".into(),
        },
        actions: SystemActions {
            reset: ResetAction {
                target: format!("{path}/Actions/ComputerSystem.Reset"),
                allowed: ResetType::ALL
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .collect(),
            },
        },
        odata_id: path,
    }
}

async fn reset(shared: &Arc<Shared>, body: &[u8]) -> Response {
    let parsed: ResetBody = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Base.1.0.MalformedJSON",
                format!("The request body is not valid JSON: {e}."),
            );
        }
    };
    let Some(value) = parsed.reset_type else {
        return error(
            StatusCode::BAD_REQUEST,
            "Base.1.0.ActionParameterMissing",
            "The action ComputerSystem.Reset requires the parameter ResetType.",
        );
    };
    let Some(reset_type) = value.as_str().and_then(|s| s.parse::<ResetType>().ok()) else {
        let allowed: Vec<&str> = ResetType::ALL.iter().map(|t| t.as_str()).collect();
        return error(
            StatusCode::BAD_REQUEST,
            "Base.1.0.PropertyValueNotInList",
            format!(
                "The value {value} for the property ResetType is not in the list of \
                 acceptable values ({}).",
                allowed.join(", ")
            ),
        );
    };
    match shared.reset(reset_type).await {
        ResetOutcome::Done => StatusCode::NO_CONTENT.into_response(),
        ResetOutcome::AlreadyOn => json_response(
            StatusCode::OK,
            Messages {
                extended_info: vec![Message::new(
                    "Base.1.0.Success",
                    "The system is already powered on; no action was taken.",
                    "OK",
                )],
            },
        ),
    }
}

fn json_response<T: Serialize>(status: StatusCode, body: T) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    resp
}

/// A Redfish error response.
fn error(status: StatusCode, code: &str, text: impl Into<String>) -> Response {
    json_response(status, ErrorBody::new(code, &text.into()))
}

fn not_found(path: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Base.1.0.ResourceMissingAtURI",
        format!("The resource at the URI {path} was not found."),
    )
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Base.1.0.ActionNotSupported",
        "The HTTP method is not allowed on this resource.",
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

fn unauthorized() -> Response {
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "Base.1.0.NoValidSession",
        "Valid HTTP Basic credentials are required.",
    );
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"roost-bmc\""),
    );
    resp
}

/// Checks HTTP Basic credentials against the configured user and password.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, credentials)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Some(decoded) = base64_decode(credentials.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return false;
    };
    // Evaluate both comparisons (no short circuit) in constant time.
    ct_eq(user.as_bytes(), shared.username.as_bytes())
        & ct_eq(password.as_bytes(), shared.password.as_bytes())
}

/// Constant-time (in the contents) byte string equality.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes standard base64 (RFC 4648 alphabet), padding optional.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let data = input.trim_end_matches('=').as_bytes();
    if input.len() - data.len() > 2 || data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_unpadded_input() {
        assert_eq!(base64_decode("YWRtaW46YWRtaW4=").unwrap(), b"admin:admin");
        assert_eq!(base64_decode("YWRtaW46YWRtaW4").unwrap(), b"admin:admin");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn base64_rejects_garbage() {
        assert!(base64_decode("YW!j").is_none());
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("YQ===").is_none());
    }

    #[test]
    fn constant_time_equality_compares_contents_and_length() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret!"));
    }
}

//! API errors and the body every error carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorKind, error_chain};
use roost_fm::Error as FmError;
use roost_store::Error as StoreError;

/// An error answer: a status and a one-line message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Sent as `Retry-After` (seconds, rounded up).
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// 429: try again after `wait_ms`.
    pub fn too_many_requests(wait_ms: u64, message: impl Into<String>) -> Self {
        ApiError {
            retry_after_ms: Some(wait_ms),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }

    /// A failure of the server's own storage: logged with its whole chain,
    /// answered as 503 so that clients retry, never as a bare 500.
    pub fn unavailable(e: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(e), "store failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is temporarily unavailable; retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = roost_api::error_body(self.status.as_u16(), title, &self.message);
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(ms) = self.retry_after_ms
            && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Keystone uri=\"/v3\""),
            );
        }
        resp
    }
}

/// The status of each kind of error. StarlingX's APIs (sysinv, fm,
/// keystone) answer a conflict with 400, and so does this mapping; the DC
/// listener, Roost's own protocol, answers 409 (`http::dclink`). Failures
/// of the server itself are logged with their whole chain and answered 503
/// without their details; "busy" and "stopping" say so to the client.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Invalid | ErrorKind::Conflict => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Unavailable | ErrorKind::Corrupt => match e {
                Error::Busy(_) | Error::Stopped(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => return ApiError::unavailable(&e),
            },
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<FmError> for ApiError {
    fn from(e: FmError) -> Self {
        Error::from(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Error::from(e).into()
    }
}

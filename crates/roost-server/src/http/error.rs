//! API errors and the body every error carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::fm_service::{SubmitError, error_chain};
use crate::identity::AuthError;
use roost_fm::Error as FmError;
use roost_store::Error as StoreError;

/// An error answer: a status and a one-line message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
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
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Keystone uri=\"/v3\""),
            );
        }
        resp
    }
}

impl From<FmError> for ApiError {
    fn from(e: FmError) -> Self {
        match e {
            FmError::AlarmNotFound(_) | FmError::UnknownAlarmId(_) => {
                ApiError::not_found(e.to_string())
            }
            FmError::Invalid(_)
            | FmError::NotSuppressible(_)
            | FmError::CatalogueYaml(_)
            | FmError::CatalogueNotMapping { .. }
            | FmError::CatalogueEntry { .. } => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Rejected(f) => f.into(),
            SubmitError::Store(ref s) => ApiError::unavailable(s),
            SubmitError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::unavailable(&other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized => ApiError::unauthorized(),
            AuthError::BadRequest(m) => ApiError::bad_request(m),
            AuthError::Store(s) => ApiError::unavailable(&s),
            AuthError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            AuthError::Threads(ref t) => ApiError::unavailable(t),
        }
    }
}

//! Reading requests: JSON bodies with clear errors, and StarlingX's query
//! parameters (`q.field` / `q.op` / `q.type` / `q.value` triples).

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use roost_fm::{Filter, FilterOp};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A path parameter, like axum's `Path`, whose rejection (for example a
/// percent-encoded byte sequence that is not UTF-8) is answered in the
/// error envelope instead of as plain text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r| path_error(&r))
    }
}

/// The status and message of a path parameter that cannot be read: 400
/// for what the client sent, 503 for the server's own mistakes (logged).
pub fn path_error(r: &PathRejection) -> ApiError {
    if r.status().is_server_error() {
        tracing::error!(error = %r.body_text(), "cannot read a path parameter");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot read the request path; retry later",
        )
    } else {
        ApiError::bad_request(format!("invalid path parameter: {}", r.body_text()))
    }
}

/// Parses a JSON body. A body over the limit is 413, a non-JSON content
/// type 415, malformed or mistyped JSON 400, each with a message.
pub fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.is_empty() && !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("the body must be JSON (Content-Type application/json), not {ct}"),
            ));
        }
    }
    let bytes = body.map_err(|r| {
        if super::serve::is_body_timeout(&r) {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, r.body_text())
        } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )
        } else {
            ApiError::bad_request(format!("cannot read the request body: {}", r.body_text()))
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; JSON expected",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The parsed query string of a request.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query {
            pairs: raw
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Refuses parameters not in `allowed` (the `q.*` four are always allowed).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (k, _) in &self.pairs {
            if !k.starts_with("q.") && !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {k:?}; known: {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A whole-number parameter, 0 when absent; 400 when it is not one.
    pub fn number(&self, name: &str) -> Result<u64, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("{name} must be a whole number, not {v:?}"))
                })
            })
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    /// The last value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean flag: `True`/`true`/`1` or `False`/`false`/`0`; absent is false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(ApiError::bad_request(format!(
                    "{name} must be True or False, not {v:?}"
                ))),
            },
        }
    }

    /// `limit`: absent means no limit; otherwise a positive integer, capped at `max`.
    pub fn limit(&self, max: usize) -> Result<Option<usize>, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok(Some((n as usize).min(max))),
                _ => Err(ApiError::bad_request(format!(
                    "limit must be a positive integer, not {v:?}"
                ))),
            },
        }
    }

    /// `sort_dir`: `asc` or `desc`.
    pub fn sort_dir(&self) -> Result<Option<roost_fm::SortDir>, ApiError> {
        match self.get("sort_dir") {
            None | Some("") => Ok(None),
            Some(v) => roost_fm::SortDir::parse(&v.to_ascii_lowercase())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("sort_dir must be asc or desc, not {v:?}"))
                }),
        }
    }

    /// The `q.*` triples as filters; `fields` lists the fields allowed.
    pub fn filters(&self, fields: &[&str]) -> Result<Vec<Filter>, ApiError> {
        let names = self.all("q.field");
        let ops = self.all("q.op");
        let values = self.all("q.value");
        if names.len() != values.len() {
            return Err(ApiError::bad_request(format!(
                "every q.field needs a q.value ({} fields, {} values)",
                names.len(),
                values.len()
            )));
        }
        if ops.len() > names.len() {
            return Err(ApiError::bad_request("more q.op than q.field"));
        }
        let mut out = Vec::with_capacity(names.len());
        for (i, (name, value)) in names.iter().zip(values.iter()).enumerate() {
            if !fields.contains(name) {
                return Err(ApiError::bad_request(format!(
                    "cannot filter on {name:?}; fields: {}",
                    fields.join(", ")
                )));
            }
            let op_text = ops.get(i).copied().unwrap_or("eq");
            let op = FilterOp::parse(op_text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown q.op {op_text:?}; use eq, ne, lt, le, gt or ge"
                ))
            })?;
            out.push(Filter {
                field: name.to_string(),
                op,
                value: value.to_string(),
            });
        }
        Ok(out)
    }

    /// The query string without `marker` and `limit`, for building `next` links.
    pub fn without_paging(&self) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .filter(|(k, _)| k != "marker" && k != "limit")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_triples_pair_up_by_position_and_missing_ops_mean_eq() {
        let q = Query::parse(Some(
            "q.field=alarm_id&q.field=severity&q.op=eq&q.type=&q.type=&q.value=100.1&q.value=major",
        ));
        let f = q.filters(&["alarm_id", "severity"]).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].op, FilterOp::Eq);
        assert_eq!(f[1].value, "major");
    }

    #[test]
    fn unknown_fields_ops_and_params_are_refused() {
        assert!(
            Query::parse(Some("q.field=colour&q.value=red"))
                .filters(&["alarm_id"])
                .is_err()
        );
        assert!(
            Query::parse(Some("q.field=alarm_id&q.op=like&q.value=1"))
                .filters(&["alarm_id"])
                .is_err()
        );
        assert!(
            Query::parse(Some("q.field=alarm_id"))
                .filters(&["alarm_id"])
                .is_err()
        );
        assert!(Query::parse(Some("limt=3")).only(&["limit"]).is_err());
    }

    #[test]
    fn limits_and_flags_are_checked() {
        assert_eq!(Query::parse(Some("limit=5")).limit(2000).unwrap(), Some(5));
        assert_eq!(
            Query::parse(Some("limit=9000")).limit(2000).unwrap(),
            Some(2000)
        );
        assert_eq!(Query::parse(None).limit(2000).unwrap(), None);
        assert!(Query::parse(Some("limit=0")).limit(2000).is_err());
        assert!(Query::parse(Some("limit=x")).limit(2000).is_err());
        assert!(Query::parse(Some("expand=True")).flag("expand").unwrap());
        assert!(!Query::parse(Some("expand=false")).flag("expand").unwrap());
        assert!(Query::parse(Some("expand=perhaps")).flag("expand").is_err());
    }
}

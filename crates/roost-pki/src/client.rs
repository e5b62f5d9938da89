use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use crate::error::Result;

/// Connect timeout of [`https_client`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request timeout of [`https_client`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A `reqwest::Client` using exactly `config` for TLS (build it with
/// [`client_config`](crate::client_config) or
/// [`pinned_client_config`](crate::pinned_client_config)).
///
/// HTTPS only (a plain `http://` URL is an error rather than a silent
/// downgrade), no redirects (a redirect must not carry a client certificate
/// elsewhere), 10 s connect and 30 s request timeouts. Set a shorter
/// per-request timeout with `RequestBuilder::timeout` where needed.
pub fn https_client(config: Arc<ClientConfig>) -> Result<reqwest::Client> {
    let config = Arc::unwrap_or_clone(config);
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

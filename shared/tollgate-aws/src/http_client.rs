//! The HTTP client behind every SDK client: the SDK's requests sent through
//! reqwest, with the process's one TLS configuration
//! ([`tollgate_core::tls`]: Mozilla's roots compiled in, plus
//! `SSL_CERT_FILE`'s).
//!
//! Why not the SDK's own client: it builds its trust store from PEM only
//! (`TrustStore::with_pem_certificate`, or the system store, file and
//! directory), which it decodes with a constant-time base64 decoder made for
//! private keys, and its connector cannot be given a TLS configuration
//! (`wrap_connector` is crate-private). That decoding was most of every
//! function's first SDK call: 6 M instructions for the SDK's decoding plus
//! 5 M for reading the bundle to hand it (BENCHMARKS.md, "What each change
//! bought", 4 and 5). reqwest (already in every function for the checks and
//! webhooks) takes a prepared rustls configuration, so the SDK's calls use
//! the same compiled-in roots and the same HTTP stack (hyper, rustls with
//! aws-lc) as before, and the TLS configuration is built once.
//!
//! What this adapter keeps of the SDK's client:
//! - no redirects followed (the SDK reads S3's 301 itself);
//! - proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`),
//!   which is what the SDK's client does at this behaviour version;
//! - the connect timeout of the SDK's settings (reqwest's, per client), and
//!   its read timeout as the SDK applies it: until the response head;
//! - one fallback of ours: a server certificate that chains to none of the
//!   built-in roots switches the process to them plus the system CA bundle
//!   (`tollgate_core::tls::widened_config`) and fails that attempt as I/O,
//!   so the SDK's retry (and the report core's) connects with the wider set;
//! - connection poisoning: after a server or transport error the SDK marks
//!   the connection not to be reused; reqwest cannot close one pooled
//!   connection, so this drops the reqwest client whose pool holds it: the
//!   retry connects afresh, and so do the process's other idle connections
//!   of that pool (one more TLS handshake each, after an error only);
//! - the request path exactly as signed: reqwest's URL parser would resolve
//!   `.` and `..` segments (an S3 key can hold them), so a path it would
//!   change is refused with a clear error instead of sent unsigned-alike;
//! - errors classified for the SDK's retry strategy: timeouts as timeouts;
//!   connection, TLS and transport failures as I/O (transient, retried);
//!   anything else as "other". reqwest does not tell a request-body error
//!   from a connection's, so a few errors the SDK's client calls "user"
//!   (not retried) are retried here. Their text never carries the URL.

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// An SDK HTTP client over reqwest: one reqwest client per connect timeout
/// the SDK asks for (one in practice), built on first use. Clones share
/// them.
#[derive(Clone)]
pub struct ReqwestHttpClient {
    tls: Arc<TlsSource>,
    /// The configuration to switch to when a server's certificate chains to
    /// no root of `tls` (the system CA bundle added), and whether it has.
    fallback: Option<Arc<TlsSource>>,
    widened: Arc<AtomicBool>,
    clients: Arc<Mutex<Vec<ClientFor>>>,
}

/// A reqwest client, the connect timeout it was built with, and a number
/// no other client of the process has (poisoning removes that one only).
type ClientFor = (Option<Duration>, u64, reqwest::Client);

/// The next [`ClientFor`] number.
static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

type TlsSource = dyn Fn() -> Result<rustls::ClientConfig, String> + Send + Sync;

impl std::fmt::Debug for ReqwestHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestHttpClient")
            .field("built", &self.built())
            .finish_non_exhaustive()
    }
}

impl Default for ReqwestHttpClient {
    fn default() -> Self {
        Self::with_tls(|| tollgate_core::tls::process_config().map_err(|e| e.to_string()))
            .with_fallback(|| tollgate_core::tls::widened_config().map_err(|e| e.to_string()))
    }
}

impl ReqwestHttpClient {
    /// A client with the process's TLS configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client with another TLS configuration (tests: a private CA).
    pub fn with_tls(
        tls: impl Fn() -> Result<rustls::ClientConfig, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            tls: Arc::new(tls),
            fallback: None,
            widened: Arc::default(),
            clients: Arc::default(),
        }
    }

    /// The configuration to use from the first certificate that chains to
    /// no root of the first one on (see `tollgate_core::tls`).
    pub fn with_fallback(
        mut self,
        fallback: impl Fn() -> Result<rustls::ClientConfig, String> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// Whether it has switched to the fallback configuration.
    pub fn widened(&self) -> bool {
        self.widened.load(Ordering::SeqCst)
    }

    /// Drops client `number` from the cache, if it is still there: only the
    /// client a request used, never one another request built since (after
    /// an earlier poisoning).
    fn poison_fn(&self, number: Option<u64>) -> Arc<dyn Fn() + Send + Sync> {
        let clients = self.clients.clone();
        Arc::new(move || {
            clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(_, n, _)| Some(*n) != number);
        })
    }

    /// How many reqwest clients have been built (one per connect timeout).
    pub fn built(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The client for `connect_timeout`, built if there is none, and its
    /// number.
    fn client(&self, connect_timeout: Option<Duration>) -> Result<(reqwest::Client, u64), String> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n, client)) = clients.iter().find(|(t, _, _)| *t == connect_timeout) {
            return Ok((client.clone(), *n));
        }
        let tls = match &self.fallback {
            Some(fallback) if self.widened() => fallback(),
            _ => (self.tls)(),
        }?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .tls_backend_preconfigured(tls);
        if let Some(timeout) = connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        let client = builder
            .build()
            .map_err(|e| format!("the HTTP client cannot be built ({})", e.without_url()))?;
        let n = BUILT.fetch_add(1, Ordering::Relaxed);
        clients.push((connect_timeout, n, client.clone()));
        Ok((client, n))
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let connect_timeout = settings.connect_timeout();
        let widen = self.fallback.is_some().then(|| {
            let (widened, clients) = (self.widened.clone(), self.clients.clone());
            Arc::new(move || {
                // Every client built from now on uses the fallback.
                let first = !widened.swap(true, Ordering::SeqCst);
                if first {
                    clients.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
                first
            }) as Arc<dyn Fn() -> bool + Send + Sync>
        });
        let built = self.client(connect_timeout);
        let number = built.as_ref().ok().map(|(_, n)| *n);
        SharedHttpConnector::new(Connector {
            client: built.map(|(client, _)| client),
            read_timeout: settings.read_timeout(),
            poison: self.poison_fn(number),
            widen,
        })
    }
    // `validate_base_client_config` keeps its default (accept): building a
    // client reads nothing and checks nothing a request would not.
}

/// One SDK request through reqwest.
struct Connector {
    /// The client, or why it could not be built (each request fails with it).
    client: Result<reqwest::Client, String>,
    read_timeout: Option<Duration>,
    /// Drops `client` from the cache: its connections are not reused.
    poison: Arc<dyn Fn() + Send + Sync>,
    /// Switches the client to its fallback roots; whether this call did.
    widen: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("client", &self.client)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        let widen = self.widen.clone();
        if let Some(capture) = request.extension::<CaptureSmithyConnection>() {
            let poison = self.poison.clone();
            capture.set_connection_retriever(move || {
                let poison = poison.clone();
                Some(
                    ConnectionMetadata::builder()
                        // Required by the builder; nothing reads it. (Not
                        // known here: reqwest picks the proxy per request.)
                        .proxied(false)
                        .poison_fn(move || poison())
                        .build(),
                )
            });
        }
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))
                .and_then(sendable)?;
            let sent = client.execute(request);
            let response = match read_timeout {
                None => sent.await,
                Some(limit) => tokio::time::timeout(limit, sent).await.map_err(|_| {
                    ConnectorError::timeout(
                        format!("no response within the read timeout of {limit:?}").into(),
                    )
                })?,
            }
            .map_err(|e| {
                if let Some(widen) = &widen
                    && tollgate_core::tls::is_unknown_issuer(&e)
                    && widen()
                {
                    tracing::warn!("an AWS endpoint's certificate chains to no built-in root; retrying with the system CA bundle added");
                }
                // An I/O error: the SDK retries it, with the widened roots.
                classify(e)
            })?;
            let response = http::Response::from(response).map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's request as reqwest's, refused when reqwest's URL parser would
/// send another path or query than the one signed (it resolves `.` and
/// `..`, and re-encodes some characters).
fn sendable(request: http::Request<SdkBody>) -> Result<reqwest::Request, ConnectorError> {
    let signed = (
        request.uri().path().to_owned(),
        request.uri().query().map(str::to_owned),
    );
    let request = reqwest::Request::try_from(request.map(reqwest::Body::wrap))
        .map_err(|e| ConnectorError::user(e.without_url().into()))?;
    if (request.url().path(), request.url().query()) != (signed.0.as_str(), signed.1.as_deref()) {
        return Err(ConnectorError::user(
            "the request path or query holds `.` or `..` segments or characters the URL \
             parser rewrites, so it cannot be sent as signed; rename the object or resource"
                .into(),
        ));
    }
    Ok(request)
}

/// reqwest's error as the SDK's retry strategy reads connector errors.
fn classify(error: reqwest::Error) -> ConnectorError {
    let timeout = error.is_timeout();
    let transport = error.is_connect() || error.is_request() || error.is_body();
    let error = Box::new(error.without_url());
    if timeout {
        ConnectorError::timeout(error)
    } else if transport {
        ConnectorError::io(error)
    } else {
        ConnectorError::other(error, None)
    }
}

/// The client for [`super::load_sdk_config`]: one per process, shared by
/// every SDK client (so connections and their pools are shared too).
pub fn shared() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| SharedHttpClient::new(ReqwestHttpClient::new()))
        .clone()
}

#[cfg(test)]
mod tests;

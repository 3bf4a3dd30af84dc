//! The HTTP client behind every SDK client: built on the first request, not
//! at init, and trusting the system CA bundle that [`tollgate_core::tls`] decodes
//! once for the whole process.
//!
//! The SDK's default HTTPS client builds its TLS configuration, and with it
//! the system trust store, as soon as the first SDK client is constructed
//! (`validate_base_client_config`), even one that never sends a request:
//! the web-identity credentials provider of the default chain builds an STS
//! client while `aws_config` loads. Under callgrind that was most of every
//! function's init. [`LazyHttpsClient`] postpones that to the first request
//! and hands the SDK the one bundle's certificates (checked by rustls,
//! re-encoded as canonical PEM) instead of the file plus the whole
//! certificate directory. Without a usable bundle it falls back to the SDK's
//! own loading of the system store, as before.

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::{Arc, OnceLock};

/// An SDK HTTP client whose real client (hyper + rustls, the SDK's own) is
/// built when the first connector is asked for. Clones share it.
#[derive(Debug, Default, Clone)]
pub struct LazyHttpsClient {
    inner: Arc<OnceLock<SharedHttpClient>>,
}

impl LazyHttpsClient {
    /// A client that builds nothing until its first request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the real client has been built yet.
    pub fn is_built(&self) -> bool {
        self.inner.get().is_some()
    }

    fn inner(&self) -> &SharedHttpClient {
        self.inner.get_or_init(build)
    }
}

fn provider() -> tls::Provider {
    tls::Provider::Rustls(CryptoMode::AwsLc)
}

fn build() -> SharedHttpClient {
    let native = || {
        aws_smithy_http_client::Builder::new()
            .tls_provider(provider())
            .build_https()
    };
    let Some(bundle) = tollgate_core::tls::bundle() else {
        return native();
    };
    // Taken, not copied: the SDK keeps the PEM in its trust store (one
    // client per process, see `shared`; a second one loads the system store).
    let Some(pem) = bundle.take_pem() else {
        return native();
    };
    let store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(pem);
    match TlsContext::builder().with_trust_store(store).build() {
        Ok(ctx) => aws_smithy_http_client::Builder::new()
            .tls_provider(provider())
            .tls_context(ctx)
            .build_https(),
        Err(e) => {
            tracing::warn!(path = %bundle.path.display(), error = %e, "the SDK rejects the CA bundle; it loads the system store itself");
            native()
        }
    }
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner().http_connector(settings, components)
    }
    // `validate_base_client_config` keeps its default (accept): validating
    // would build the client, which is what this type postpones.
}

/// The client for [`super::load_sdk_config`]: one per process, shared by
/// every SDK client (so connectors and their pools are shared too).
pub fn shared() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| SharedHttpClient::new(LazyHttpsClient::new()))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::config::{Credentials, Region};

    #[tokio::test]
    async fn sdk_clients_build_it_only_when_they_send() {
        let lazy = LazyHttpsClient::new();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(SharedHttpClient::new(lazy.clone()))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDLAZY", "lazy", None, None, "test"))
            // Port 9 (discard): nothing listens, the connection is refused.
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let client = aws_sdk_ssm::Client::new(&sdk);
        assert!(
            !lazy.is_built(),
            "constructing clients builds no HTTP client"
        );
        let sent = client.get_parameter().name("x").send().await;
        assert!(sent.is_err(), "nothing listens on port 9");
        assert!(lazy.is_built(), "the first request built it");
        let built = |l: &LazyHttpsClient| l.inner.get().map(|c| c as *const SharedHttpClient);
        let first = built(&lazy);
        let _ = client.get_parameter().name("y").send().await;
        assert_eq!(first, built(&lazy), "built once, then reused");
    }
}

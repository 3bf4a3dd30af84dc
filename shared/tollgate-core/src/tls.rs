//! Trust roots and TLS configuration for every HTTPS client in the process:
//! the smoke checks' and webhooks' reqwest clients, Slack's, and the AWS
//! SDK's (`tollgate_aws::http_client`, which sends the SDK's requests
//! through reqwest with this configuration). One [`rustls::ClientConfig`],
//! built once per process when a client first needs it.
//!
//! Which roots:
//! - **Mozilla's, built in** (`webpki-roots`, maintained by the rustls
//!   project). They are compiled in as trust anchors already parsed, so
//!   nothing is read, decoded or checked at start. Reading the system CA
//!   bundle instead (about 140 certificates, PEM) cost 5 to 11 M
//!   instructions per process, most of every cold start's init (issue 21,
//!   BENCHMARKS.md, "What each change bought", 5). Every AWS endpoint and
//!   every public web server chains to one of them, as they do to the
//!   distribution's bundle, which is built from the same Mozilla list.
//! - **plus `SSL_CERT_FILE`'s certificates when it is set** (the usual way to
//!   add a private CA on Lambda), read with `rustls-pki-types`' PEM reader.
//!   A file that cannot be read or holds no usable certificate is logged
//!   (its path and what is wrong, never its content) and the built-in roots
//!   are used alone: reports to AWS still go out, and a check against a
//!   private endpoint then fails on its certificate, which names the cause.
//!
//! `SSL_CERT_DIR` and the system's certificate directory are not read.

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The largest `SSL_CERT_FILE` that is read (a full system bundle is about
/// 220 KB). A larger file is refused with a warning rather than held in
/// memory.
pub const MAX_EXTRA_ROOTS_FILE: u64 = 4 << 20;

/// Why `SSL_CERT_FILE` adds nothing (the built-in roots are used alone).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtraRootsError {
    /// Not readable.
    #[error("cannot read it ({0}); fix the path or unset SSL_CERT_FILE")]
    Unreadable(String),
    /// Over [`MAX_EXTRA_ROOTS_FILE`].
    #[error(
        "it is {0} bytes, over the 4 MiB limit; point SSL_CERT_FILE at the private CA certificates only"
    )]
    TooLarge(u64),
    /// A PEM block that does not decode.
    #[error("certificate {index} is not valid PEM; fix or replace the file")]
    Pem {
        /// 1-based position among the file's certificates.
        index: usize,
    },
    /// No certificate rustls accepts as a trust anchor.
    #[error(
        "it holds no usable certificate ({found} found, {rejected} rejected); it must hold PEM `CERTIFICATE` blocks"
    )]
    NoneUsable {
        /// Certificates found in the file.
        found: usize,
        /// Of those, how many rustls rejected.
        rejected: usize,
    },
}

/// Why a client cannot be built. Not expected outside a broken build.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The crypto provider refused the protocol versions.
    #[error(
        "the TLS configuration cannot be built ({0}); this is a defect of the build, report it"
    )]
    Config(String),
    /// reqwest refused the builder.
    #[error("the HTTP client cannot be built ({0})")]
    Client(String),
}

/// The trust store: Mozilla's roots, plus those of `extra` when given.
/// Returns the store and, when `extra` adds nothing, why.
pub fn roots(extra: Option<&Path>) -> (RootCertStore, Option<ExtraRootsError>) {
    let mut store = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let problem = extra.and_then(|path| add_file(&mut store, path).err());
    (store, problem)
}

/// Adds the certificates of one PEM file; how many were added.
fn add_file(store: &mut RootCertStore, path: &Path) -> Result<usize, ExtraRootsError> {
    let size = std::fs::metadata(path)
        .map_err(|e| ExtraRootsError::Unreadable(e.kind().to_string()))?
        .len();
    if size > MAX_EXTRA_ROOTS_FILE {
        return Err(ExtraRootsError::TooLarge(size));
    }
    let pem = std::fs::read(path).map_err(|e| ExtraRootsError::Unreadable(e.kind().to_string()))?;
    let mut certificates = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        // The reader's error can quote the file; only the position is kept.
        certificates.push(cert.map_err(|_| ExtraRootsError::Pem { index: i + 1 })?);
    }
    let found = certificates.len();
    let (added, rejected) = store.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(ExtraRootsError::NoneUsable { found, rejected });
    }
    Ok(added)
}

/// A client configuration trusting `roots`, with the process's crypto
/// provider (aws-lc, as the SDK's own client uses) and ALPN offering HTTP/2
/// and HTTP/1.1, as reqwest and the SDK do.
pub fn client_config(roots: RootCertStore) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The process's configuration: built on first use from the built-in roots
/// and `SSL_CERT_FILE`, then shared (clones share its trust store).
pub fn process_config() -> Result<rustls::ClientConfig, TlsError> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let extra = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
            let (store, problem) = roots(extra.as_deref());
            if let (Some(path), Some(problem)) = (&extra, problem) {
                tracing::warn!(path = %path.display(), error = %problem, "SSL_CERT_FILE adds no trust root; using the built-in roots alone");
            }
            client_config(store).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(TlsError::Config)
}

/// Builds `builder` into a client that verifies servers against the
/// process's roots ([`process_config`]).
pub fn build_verifying(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, TlsError> {
    builder
        .tls_backend_preconfigured(process_config()?)
        .build()
        .map_err(|e| TlsError::Client(e.without_url().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifying_client_builds_here() {
        let client = build_verifying(reqwest::Client::builder());
        assert!(client.is_ok(), "{client:?}");
    }

    #[test]
    fn the_built_in_roots_hold_the_amazon_roots_aws_endpoints_chain_to() {
        let (store, problem) = roots(None);
        assert_eq!(problem, None);
        assert!(store.len() > 100, "{} roots", store.len());
        // Subjects are DER; the common names are enough to find them.
        let has = |name: &str| {
            store.roots.iter().any(|a| {
                a.subject
                    .as_ref()
                    .windows(name.len())
                    .any(|w| w == name.as_bytes())
            })
        };
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(has(name), "{name} is built in");
        }
    }

    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("tollgate-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("temp file");
        path
    }

    #[test]
    fn ssl_cert_file_adds_its_certificates() {
        // The machine's own bundle: many certificates, most of them already
        // built in; the store grows by what the file holds.
        let bundle = [
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/certs/ca-certificates.crt",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect("this machine has a system CA bundle");
        let (base, _) = roots(None);
        let (store, problem) = roots(Some(bundle));
        assert_eq!(problem, None);
        assert!(
            store.len() > base.len() + 50,
            "{} > {}",
            store.len(),
            base.len()
        );
    }

    #[test]
    fn a_bad_ssl_cert_file_adds_nothing_and_says_why_without_quoting_it() {
        let secretish =
            "-----BEGIN CERTIFICATE-----\nnot base64 TOKEN-abc123!!\n-----END CERTIFICATE-----\n";
        let cases: [(&str, &[u8], ExtraRootsError); 3] = [
            (
                "garbage",
                secretish.as_bytes(),
                ExtraRootsError::Pem { index: 1 },
            ),
            (
                "empty",
                b"no certificates here TOKEN-abc123",
                ExtraRootsError::NoneUsable {
                    found: 0,
                    rejected: 0,
                },
            ),
            (
                "not-a-cert",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ExtraRootsError::NoneUsable {
                    found: 1,
                    rejected: 1,
                },
            ),
        ];
        let (base, _) = roots(None);
        for (name, contents, expected) in cases {
            let path = temp_file(name, contents);
            let (store, problem) = roots(Some(&path));
            let _ = std::fs::remove_file(&path);
            let problem = problem.unwrap_or_else(|| panic!("{name}: a problem"));
            assert_eq!(problem, expected, "{name}");
            assert!(!problem.to_string().contains("TOKEN"), "{problem}");
            assert_eq!(store.len(), base.len(), "{name}: built-in roots alone");
        }
        let missing = std::env::temp_dir().join("tollgate-tls-does-not-exist.pem");
        let (_, problem) = roots(Some(&missing));
        assert!(
            matches!(problem, Some(ExtraRootsError::Unreadable(_))),
            "{problem:?}"
        );
    }

    #[test]
    fn an_oversized_ssl_cert_file_is_not_read() {
        let path = temp_file("huge", &vec![b'A'; (MAX_EXTRA_ROOTS_FILE + 1) as usize]);
        let (_, problem) = roots(Some(&path));
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            problem,
            Some(ExtraRootsError::TooLarge(MAX_EXTRA_ROOTS_FILE + 1))
        );
    }

    #[test]
    fn the_configuration_offers_http2_and_http1() {
        let config = client_config(roots(None).0).expect("builds");
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}

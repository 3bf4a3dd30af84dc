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
//!   bundle instead (about 140 certificates, PEM) cost about 11 M
//!   instructions per process, most of every cold start's CPU (issue 21,
//!   BENCHMARKS.md, "What each change bought", 5). It is Mozilla's current
//!   list: roots Mozilla has retired (older DigiCert, Entrust, GlobalSign
//!   and Go Daddy roots, among others) are not in it, though a
//!   distribution's bundle may still carry them. AWS's public endpoints
//!   chain to Amazon Trust Services' roots, which are in it.
//! - **plus `SSL_CERT_FILE`'s certificates when it is set**: a private CA,
//!   a TLS-inspecting proxy's CA, or the system bundle itself
//!   (`/etc/pki/tls/certs/ca-bundle.crt` on Lambda) for a server that chains
//!   to a retired root or an AWS partition with its own CAs. Read with
//!   `rustls-pki-types`' PEM reader, at most [`MAX_EXTRA_ROOTS_FILE`] bytes.
//!   A file that cannot be read, or of which a certificate is rejected, is
//!   logged as a warning (its path and what is wrong, never its content;
//!   [`extra_roots_problem`] gives the text to the checks' TLS errors), and
//!   whatever it adds is still used: reports to AWS go out,
//!   and a check against a private endpoint fails on its certificate,
//!   naming the cause.
//!
//! `SSL_CERT_DIR` and the system's certificate directory are not read; a
//! set `SSL_CERT_DIR` is logged as such.
//!
//! One fallback, for AWS's endpoints only (`tollgate_aws::http_client`): if
//! an SDK request fails because its server's certificate chains to no
//! known root, the process adds the system CA bundle ([`widened_config`],
//! the first of [`BUNDLES`]) and the SDK's retry connects with it, so a
//! report is never lost to a root Mozilla has retired. That costs the
//! bundle's decoding once, then, and is logged.

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// System CA bundles, most likely first: Amazon Linux 2023 (Lambda's
/// `provided.al2023`) and RHEL/Fedora; Debian/Ubuntu/Alpine; openSUSE;
/// BSDs and macOS.
pub const BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The largest `SSL_CERT_FILE` that is read (a full system bundle is about
/// 220 KB). A larger file is refused with a warning rather than held in
/// memory.
pub const MAX_EXTRA_ROOTS_FILE: u64 = 4 << 20;

/// What is wrong with `SSL_CERT_FILE`. All but [`ExtraRootsError::PartlyRejected`]
/// mean it adds nothing (the built-in roots are used alone).
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
    /// Some certificates were added, others rejected.
    #[error(
        "{rejected} of its {found} certificates cannot be trust anchors and were left out; remove or replace them"
    )]
    PartlyRejected {
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
    use std::io::Read as _;
    let unreadable = |e: std::io::Error| ExtraRootsError::Unreadable(e.kind().to_string());
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        // A FIFO or /dev/zero would block or never end.
        return Err(ExtraRootsError::Unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_EXTRA_ROOTS_FILE {
        return Err(ExtraRootsError::TooLarge(meta.len()));
    }
    // Read at most one byte over the limit: a file that grew since is
    // refused (with the size it had) rather than read whole.
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(MAX_EXTRA_ROOTS_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(unreadable)?;
    if pem.len() as u64 > MAX_EXTRA_ROOTS_FILE {
        return Err(ExtraRootsError::TooLarge(pem.len() as u64));
    }
    let mut certificates = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        // The reader's error can quote the file; only the position is kept.
        certificates.push(cert.map_err(|_| ExtraRootsError::Pem { index: i + 1 })?);
    }
    let found = certificates.len();
    let (added, rejected) = store.add_parsable_certificates(certificates);
    match (added, rejected) {
        (0, _) => Err(ExtraRootsError::NoneUsable { found, rejected }),
        (_, 0) => Ok(added),
        _ => Err(ExtraRootsError::PartlyRejected { found, rejected }),
    }
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
    process().config.clone().map_err(TlsError::Config)
}

/// What is wrong with `SSL_CERT_FILE` (or that `SSL_CERT_DIR` is set and
/// not read), for error texts: `None` when nothing is. Reads the
/// environment on first use, like [`process_config`].
pub fn extra_roots_problem() -> Option<&'static str> {
    process().problem.as_deref()
}

/// The process's TLS set-up and what was wrong building it.
#[derive(Debug)]
struct Process {
    config: Result<rustls::ClientConfig, String>,
    problem: Option<String>,
}

fn process() -> &'static Process {
    static PROCESS: OnceLock<Process> = OnceLock::new();
    PROCESS.get_or_init(|| {
        let process = from_environment(|name| std::env::var_os(name));
        if let Some(problem) = &process.problem {
            // A warning, not the ConfigurationError alert: the function
            // still runs and reports (its alarm says otherwise); a check
            // that fails on an unknown issuer names the problem.
            tracing::warn!("{problem}");
        }
        process
    })
}

/// `SSL_CERT_FILE`, unless unset or empty (an empty template parameter).
fn extra_roots_file(
    var: &impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<std::path::PathBuf> {
    var("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// The set-up the environment `var` asks for.
fn from_environment(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Process {
    let extra = extra_roots_file(&var);
    let (store, problem) = roots(extra.as_deref());
    let mut problems = Vec::new();
    if let (Some(path), Some(problem)) = (&extra, problem) {
        problems.push(format!("SSL_CERT_FILE {}: {problem}", path.display()));
    }
    if var("SSL_CERT_DIR").is_some() {
        problems.push(
            "SSL_CERT_DIR is set but not read: put the certificates in one PEM file and name it in SSL_CERT_FILE".to_owned(),
        );
    }
    Process {
        config: client_config(store).map_err(|e| e.to_string()),
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// The process's configuration with the system CA bundle added: built once,
/// the first time an AWS endpoint's certificate chains to none of the
/// process's roots (see the module doc).
pub fn widened_config() -> Result<rustls::ClientConfig, TlsError> {
    static WIDENED: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    WIDENED
        .get_or_init(|| {
            let extra = extra_roots_file(&|name| std::env::var_os(name));
            let (mut store, _) = roots(extra.as_deref());
            let bundle = BUNDLES.iter().map(Path::new).find(|p| p.is_file());
            // Already added when SSL_CERT_FILE names it.
            let bundle = bundle.filter(|b| extra.as_deref() != Some(*b));
            match bundle {
                Some(bundle) => match add_file(&mut store, bundle) {
                    Ok(added) => tracing::warn!(path = %bundle.display(), added, "an AWS endpoint's certificate chains to no built-in root; the system CA bundle is added for this process"),
                    Err(e) => tracing::warn!(path = %bundle.display(), error = %e, "an AWS endpoint's certificate chains to no built-in root, and the system CA bundle adds nothing"),
                },
                None => tracing::warn!("an AWS endpoint's certificate chains to no built-in root, and there is no system CA bundle to add; set SSL_CERT_FILE"),
            }
            client_config(store).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(TlsError::Config)
}

/// Whether `error` (or one of its sources) is a certificate that chains to
/// no trusted root.
pub fn is_unknown_issuer(error: &(dyn std::error::Error + 'static)) -> bool {
    // `io::Error::source` skips the error it wraps (it returns that error's
    // source), and TLS errors arrive as io errors wrapped in io errors: so
    // each step also looks inside an io error.
    fn next<'a>(
        e: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a (dyn std::error::Error + 'static)> {
        match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    }
    std::iter::successors(Some(error), |&e| next(e)).any(|e| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        )
    })
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

    /// A private CA's certificate, PEM.
    fn private_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Tollgate test CA");
        params.self_signed(&key).expect("ca").pem()
    }

    #[test]
    fn ssl_cert_file_adds_its_certificates() {
        let path = temp_file("private-ca", private_ca_pem().as_bytes());
        let (base, _) = roots(None);
        let (store, problem) = roots(Some(&path));
        let _ = std::fs::remove_file(&path);
        assert_eq!(problem, None);
        assert_eq!(store.len(), base.len() + 1);
    }

    #[test]
    fn a_rejected_certificate_beside_good_ones_is_reported_and_the_good_ones_kept() {
        let pem = format!(
            "{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            private_ca_pem()
        );
        let path = temp_file("partly", pem.as_bytes());
        let (base, _) = roots(None);
        let (store, problem) = roots(Some(&path));
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            problem,
            Some(ExtraRootsError::PartlyRejected {
                found: 2,
                rejected: 1
            })
        );
        assert_eq!(store.len(), base.len() + 1);
    }

    #[test]
    fn the_environment_decides_and_every_problem_is_named() {
        let env = tollgate_test_support::fake_env;
        let plain = from_environment(env(&[]));
        assert!(plain.config.is_ok());
        assert_eq!(plain.problem, None);

        let missing = from_environment(env(&[("SSL_CERT_FILE", "/nonexistent/ca.pem")]));
        assert!(missing.config.is_ok(), "the built-in roots still serve");
        let text = missing.problem.expect("named");
        assert!(
            text.starts_with("SSL_CERT_FILE /nonexistent/ca.pem: cannot read it"),
            "{text}"
        );

        let empty = from_environment(env(&[("SSL_CERT_FILE", "")]));
        assert_eq!(empty.problem, None, "an empty SSL_CERT_FILE is unset");

        let dir = from_environment(env(&[("SSL_CERT_DIR", "/etc/ssl/certs")]));
        assert!(dir.config.is_ok());
        assert!(
            dir.problem
                .expect("named")
                .contains("SSL_CERT_DIR is set but not read"),
        );

        let special = from_environment(env(&[("SSL_CERT_FILE", "/dev/zero")]));
        assert!(
            special
                .problem
                .expect("named")
                .contains("not a regular file"),
            "a device is never read"
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
    fn an_unknown_issuer_is_found_through_io_wrapping() {
        let rustls_error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        assert!(is_unknown_issuer(&io));
        // As hyper-util hands it over: an io error around that io error.
        let wrapped = std::io::Error::other(io);
        assert!(is_unknown_issuer(&wrapped));
        let expired = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert!(!is_unknown_issuer(&expired));
        assert!(!is_unknown_issuer(&std::io::Error::other("UnknownIssuer")));
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

//! Trust roots for every HTTPS client in the process: the smoke checks' and
//! webhooks' reqwest clients, and the AWS SDK's client
//! (`tollgate_aws::http_client`). The system CA bundle is read and decoded
//! once per process, and only when a client first needs it.
//!
//! Why this module exists: both HTTP stacks would otherwise load the system
//! store themselves, through rustls-native-certs / rustls-platform-verifier.
//! On Debian and Amazon Linux that reads the CA bundle file *and* every file
//! of the certificate directory (the same ~140 roots two or three times
//! over), each PEM-decoded with a constant-time base64 decoder that is slow
//! by design (it exists for private keys). Under callgrind that was ~19 M
//! instructions per reqwest client and the bulk of the SDK's, paid at init
//! by the SDK (BENCHMARKS.md, "what each change bought"). Here the bundle
//! file alone is read, decoded with an ordinary base64 decoder (certificates
//! are public), and every certificate is checked once to be usable as a
//! trust anchor.
//!
//! Which file: `SSL_CERT_FILE` when set (the usual way to add a private CA
//! on Lambda), else the first of the distribution bundles in [`BUNDLES`] that
//! exists. When `SSL_CERT_DIR` is set, no bundle is found, the bundle cannot
//! be decoded, or it holds a certificate rustls would reject, the callers
//! fall back to their stack's own loading of the system store.

use base64::Engine as _;
use std::sync::OnceLock;

/// System CA bundles, most likely first: Amazon Linux 2023 (Lambda's
/// `provided.al2023`) and RHEL/Fedora; Debian/Ubuntu/Alpine; openSUSE;
/// BSDs and macOS.
pub const BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system CA bundle, read and decoded once.
#[derive(Debug)]
pub struct Bundle {
    /// Where it was read from.
    pub path: std::path::PathBuf,
    /// The checked certificates written out again as canonical PEM
    /// ([`encode_pem_certificates`]), until the AWS SDK's client takes it
    /// ([`Bundle::take_pem`]). Not the file's own text: the SDK's PEM reader
    /// is stricter than [`decode_pem_certificates`] and panics on what it
    /// cannot read, so it gets exactly the certificates rustls accepted, in
    /// the form every reader accepts. Taken, not copied: the SDK keeps its
    /// own, so this one is not held for the life of the process.
    pem: std::sync::Mutex<Option<Vec<u8>>>,
    /// Every certificate of the file, in order, for reqwest.
    certificates: Vec<reqwest::Certificate>,
}

impl Bundle {
    /// The certificates as reqwest roots.
    pub fn certificates(&self) -> &[reqwest::Certificate] {
        &self.certificates
    }

    /// The bundle's PEM text, for the one SDK client of the process. `None`
    /// once taken.
    pub fn take_pem(&self) -> Option<Vec<u8>> {
        self.pem.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Why a bundle is not used (the fallback is the stack's own loading).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// A `BEGIN CERTIFICATE` block without its `END` line.
    #[error("certificate {index} has no END CERTIFICATE line; fix or replace the bundle")]
    Unterminated {
        /// 1-based position in the file.
        index: usize,
    },
    /// Not base64.
    #[error("certificate {index} is not valid base64; fix or replace the bundle")]
    Base64 {
        /// 1-based position in the file.
        index: usize,
    },
    /// Decodes, but rustls cannot use it as a trust anchor.
    #[error("certificate {index} cannot be a trust anchor ({detail}); remove it from the bundle")]
    Unusable {
        /// 1-based position in the file.
        index: usize,
        /// What rustls said.
        detail: String,
    },
    /// No certificate at all.
    #[error("the bundle holds no certificate")]
    Empty,
}

static BUNDLE: OnceLock<Option<Bundle>> = OnceLock::new();

/// The system CA bundle, decoded once per process. `None` when the stacks
/// should load the system store themselves (see the module docs).
pub fn bundle() -> Option<&'static Bundle> {
    BUNDLE.get_or_init(load_bundle).as_ref()
}

/// The certificates of the system CA bundle, decoded once per process.
/// `None` when the platform verifier should decide (see the module docs).
pub fn system_roots() -> Option<&'static [reqwest::Certificate]> {
    bundle().map(Bundle::certificates)
}

fn load_bundle() -> Option<Bundle> {
    if std::env::var_os("SSL_CERT_DIR").is_some() {
        return None;
    }
    let path = match std::env::var_os("SSL_CERT_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => BUNDLES
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())?,
    };
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the CA bundle; using the system store loader");
            return None;
        }
    };
    let checked = decode_pem_certificates(&pem).and_then(|ders| {
        check_trust_anchors(&ders)?;
        Ok(ders)
    });
    let ders = match checked {
        Ok(ders) => ders,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the CA bundle is not usable as it is; using the system store loader");
            return None;
        }
    };
    let canonical = encode_pem_certificates(&ders);
    let mut certificates = Vec::with_capacity(ders.len());
    for der in ders {
        match reqwest::Certificate::from_der(&der) {
            Ok(c) => certificates.push(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "reqwest rejects a CA bundle certificate; using the system store loader");
                return None;
            }
        }
    }
    Some(Bundle {
        path,
        pem: std::sync::Mutex::new(Some(canonical)),
        certificates,
    })
}

/// The DER bytes of every `CERTIFICATE` block of a PEM file, in order.
/// Other blocks (e.g. `TRUSTED CERTIFICATE`) and text between blocks are
/// skipped, as the SDK's and reqwest's own PEM readers do.
pub fn decode_pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut ders = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    for raw in pem.split(|&b| b == b'\n') {
        let line = raw.trim_ascii();
        match &mut body {
            None if line == BEGIN => body = Some(Vec::with_capacity(2048)),
            None => {}
            Some(b64) if line == END => {
                let index = ders.len() + 1;
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&*b64)
                    .map_err(|_| BundleError::Base64 { index })?;
                ders.push(der);
                body = None;
            }
            Some(b64) => b64.extend_from_slice(line),
        }
    }
    if body.is_some() {
        return Err(BundleError::Unterminated {
            index: ders.len() + 1,
        });
    }
    if ders.is_empty() {
        return Err(BundleError::Empty);
    }
    Ok(ders)
}

/// Certificates as PEM in the canonical form (RFC 7468 strict: standard
/// base64, 64-character lines, `\n` endings).
pub fn encode_pem_certificates(ders: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ders.iter().map(|d| d.len() * 4 / 3 + 80).sum());
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    out
}

/// Checks that rustls accepts every certificate as a trust anchor (the AWS
/// SDK treats a rejected one in a custom trust store as a bug and panics).
pub fn check_trust_anchors(ders: &[Vec<u8>]) -> Result<(), BundleError> {
    let mut store = rustls::RootCertStore::empty();
    for (i, der) in ders.iter().enumerate() {
        store
            .add(rustls::pki_types::CertificateDer::from(der.as_slice()))
            .map_err(|e| BundleError::Unusable {
                index: i + 1,
                detail: e.to_string(),
            })?;
    }
    Ok(())
}

/// Builds a client that verifies servers against the system CA bundle
/// ([`system_roots`]). `make` returns the configured builder; it is called
/// a second time for the fallback to the platform verifier.
pub fn build_verifying(
    make: impl Fn() -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, reqwest::Error> {
    if let Some(roots) = system_roots() {
        match make().tls_certs_only(roots.iter().cloned()).build() {
            Ok(client) => return Ok(client),
            Err(e) => tracing::warn!(
                error = %e,
                "cannot use the system CA bundle directly; using the platform verifier"
            ),
        }
    }
    make().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifying_client_builds_here() {
        let client = build_verifying(reqwest::Client::builder);
        assert!(client.is_ok(), "{client:?}");
    }

    #[test]
    fn the_system_bundle_decodes_like_the_reference_reader() {
        // The fast decoder must find exactly what rustls-pki-types' own
        // (constant-time) PEM reader finds, byte for byte, and rustls must
        // accept every certificate. (Read directly: `bundle()` honours
        // SSL_CERT_DIR, which some shells set.)
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let path = BUNDLES
            .iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("this machine has a system CA bundle in BUNDLES");
        let pem = std::fs::read(path).expect("readable bundle");
        let ders = decode_pem_certificates(&pem).expect("decodes");
        let reference: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .expect("the reference reader parses the system bundle");
        assert!(reference.len() > 50, "{} certificates", reference.len());
        assert_eq!(ders, reference);
        check_trust_anchors(&ders).expect("every system root is usable");
        // What the SDK is handed reads back, with the reference reader, as
        // exactly the checked certificates.
        let canonical = encode_pem_certificates(&ders);
        let again: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&canonical)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .expect("the reference reader parses the canonical PEM");
        assert_eq!(again, ders);
    }

    #[test]
    fn pem_decoding_skips_other_blocks_and_reports_damage() {
        let cert = "MIIBszCCAVmgAwIBAgIU"; // not a certificate, only base64
        let pem = format!(
            "junk\r\n-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n-----END TRUSTED CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\r\n{cert}\r\n  AA==  \n-----END CERTIFICATE-----\n"
        );
        let ders = decode_pem_certificates(pem.as_bytes()).expect("decodes");
        assert_eq!(ders.len(), 1);
        // The lenient input (CRLF, padded line) comes out canonical, which
        // the strict reference reader takes.
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let canonical = encode_pem_certificates(&ders);
        let again: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&canonical)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .expect("canonical PEM reads back");
        assert_eq!(again, ders);
        let mut expected = format!("{cert}AA==");
        expected.retain(|c| !c.is_whitespace());
        assert_eq!(
            ders[0],
            base64::engine::general_purpose::STANDARD
                .decode(expected)
                .expect("b64")
        );
        assert!(
            matches!(
                check_trust_anchors(&ders),
                Err(BundleError::Unusable { index: 1, .. })
            ),
            "{:?}",
            check_trust_anchors(&ders)
        );
        assert_eq!(
            decode_pem_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Err(BundleError::Unterminated { index: 1 })
        );
        assert_eq!(
            decode_pem_certificates(
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
            ),
            Err(BundleError::Base64 { index: 1 })
        );
        assert_eq!(
            decode_pem_certificates(b"nothing here"),
            Err(BundleError::Empty)
        );
    }

    #[test]
    fn the_bundle_is_read_once() {
        let first = system_roots().map(<[_]>::as_ptr);
        let second = system_roots().map(<[_]>::as_ptr);
        assert_eq!(first, second);
    }
}

//! Trust roots for the HTTP clients Tollgate builds itself (smoke checks,
//! webhooks): read once per process, and only when a client is first needed.
//!
//! reqwest's default verifier (rustls-platform-verifier) loads the system
//! store at every `Client::build()`: on Debian and Amazon Linux that is the
//! CA bundle file *and* every file of the certificate directory, i.e. the
//! same ~140 roots two or three times over, each PEM-decoded and parsed.
//! Under callgrind that was ~19 M instructions per client, about 40 % of a
//! cold start (BENCHMARKS.md, "what each change bought"). Here the bundle
//! file alone is read and decoded once, and every client shares the result.
//!
//! Which file: `SSL_CERT_FILE` when set (the usual way to add a private CA
//! on Lambda), else the first of the distribution bundles in [`BUNDLES`] that
//! exists. When `SSL_CERT_DIR` is set, no bundle is found, or a client cannot
//! be built from the bundle, the caller falls back to the platform verifier,
//! which is what every client used before.

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

static ROOTS: OnceLock<Option<Vec<reqwest::Certificate>>> = OnceLock::new();

/// The certificates of the system CA bundle, decoded once per process.
/// `None` when the platform verifier should decide (see the module docs).
pub fn system_roots() -> Option<&'static [reqwest::Certificate]> {
    ROOTS.get_or_init(load_bundle).as_deref()
}

fn load_bundle() -> Option<Vec<reqwest::Certificate>> {
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
            tracing::warn!(path = %path.display(), error = %e, "cannot read the CA bundle; using the platform verifier");
            return None;
        }
    };
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Some(certs),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the CA bundle holds no certificate; using the platform verifier");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the CA bundle is not valid PEM; using the platform verifier");
            None
        }
    }
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
    fn the_bundle_is_read_once() {
        let first = system_roots().map(<[_]>::as_ptr);
        let second = system_roots().map(<[_]>::as_ptr);
        assert_eq!(first, second);
    }
}

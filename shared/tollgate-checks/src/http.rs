//! One HTTP exchange: send, follow redirects only when asked, read a bounded
//! body, and turn every transport failure into its own clear text
//! (connection refused, DNS, TLS, timeout, reset, too many redirects).

use super::expect::ms_text;
use super::redact::Redactor;
use super::spec::{Check, Prepared};
use super::targets::TargetPolicy;
use reqwest::header::{HOST, HeaderMap, LOCATION};
use reqwest::{Client, Method, StatusCode, Url};
use std::error::Error as StdError;
use std::io;
use std::time::Duration;
use tokio::time::Instant;

/// Redirect hops followed at most when `follow_redirects` is on.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// A response as read.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) truncated: bool,
    pub(crate) latency: Duration,
    /// The (absolute, redacted) Location of a redirect that was not followed.
    pub(crate) unfollowed_redirect: Option<String>,
}

/// How far the exchange got, for timeout messages.
#[derive(Debug, Default)]
struct Progress {
    got_headers: bool,
    body_bytes: usize,
    hops: usize,
}

/// How requests go out: the HTTP client, and the addresses it may not reach.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Via<'a> {
    pub(crate) client: &'a Client,
    pub(crate) targets: &'a TargetPolicy,
}

/// Sends the check's request and reads the response. `Err` is the failure
/// text (already redacted).
pub(crate) async fn exchange(
    via: Via<'_>,
    check: &Check,
    prep: &Prepared,
    max_body: usize,
    redactor: &Redactor,
) -> Result<Exchange, String> {
    let started = Instant::now();
    let mut progress = Progress::default();
    let outcome = tokio::time::timeout(
        check.timeout,
        run(via, check, prep, max_body, redactor, started, &mut progress),
    )
    .await;
    match outcome {
        Ok(result) => result,
        Err(_) => {
            let waited = ms_text(started.elapsed());
            let phase = if progress.got_headers {
                format!("reading the body ({} bytes read)", progress.body_bytes)
            } else if progress.hops > 0 {
                format!(
                    "waiting for the response after {} redirect(s)",
                    progress.hops
                )
            } else {
                "waiting for the response".to_owned()
            };
            Err(format!(
                "timed out after {waited} {phase} (timeout {}; raise timeout if this endpoint is slow)",
                ms_text(check.timeout)
            ))
        }
    }
}

async fn run(
    Via { client, targets }: Via<'_>,
    check: &Check,
    prep: &Prepared,
    max_body: usize,
    redactor: &Redactor,
    started: Instant,
    progress: &mut Progress,
) -> Result<Exchange, String> {
    let mut url = prep.url.clone();
    let mut method = check.method.clone();
    let mut body = prep.body.clone();
    let mut headers = prep.headers.clone();
    let origin = url.origin();
    loop {
        // Every hop: never the Runtime API, never link-local (issue 14.9).
        targets
            .check(&url)
            .await
            .map_err(|e| redactor.clean(&format!("refused: {e}")))?;
        let mut req = client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| describe_error(&e, &url, redactor))?;
        let status = resp.status();
        let location = status
            .is_redirection()
            .then(|| resp.headers().get(LOCATION))
            .flatten()
            .map(|loc| String::from_utf8_lossy(loc.as_bytes()).into_owned());
        let Some(raw) = location else {
            return read(resp, max_body, started, progress, None).await;
        };
        let next = url.join(&raw);
        if !check.follow_redirects {
            // Reported by the status expectation unless it accepts the code.
            let shown = next.map_or(raw, |u| u.to_string());
            return read(
                resp,
                max_body,
                started,
                progress,
                Some(redactor.clean(&shown)),
            )
            .await;
        }
        let next = next.map_err(|_| {
            redactor.clean(&format!(
                "{} redirect to an invalid Location {raw:?}",
                status.as_u16()
            ))
        })?;
        progress.hops += 1;
        if progress.hops > MAX_REDIRECTS {
            return Err(redactor.clean(&format!(
                "too many redirects (more than {MAX_REDIRECTS}); last Location {next}"
            )));
        }
        // 303, and 301/302 after a POST, turn into a GET without a body.
        if status == StatusCode::SEE_OTHER
            || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                && method == Method::POST)
        {
            method = Method::GET;
            body = None;
        }
        if next.origin() != origin {
            // Never carry credentials or a Host override to another origin.
            for h in check.headers.iter().filter(|h| h.secret) {
                headers.remove(&h.name);
            }
            headers.remove(HOST);
        }
        url = next;
    }
}

async fn read(
    mut resp: reqwest::Response,
    max_body: usize,
    started: Instant,
    progress: &mut Progress,
    unfollowed_redirect: Option<String>,
) -> Result<Exchange, String> {
    progress.got_headers = true;
    let status = resp.status().as_u16();
    let headers = std::mem::take(resp.headers_mut());
    let hint = resp
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(max_body);
    let mut body = Vec::with_capacity(hint);
    let mut truncated = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = max_body - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    progress.body_bytes = body.len();
                    break;
                }
                body.extend_from_slice(&chunk);
                progress.body_bytes = body.len();
            }
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "the connection failed while reading the body after {} bytes: {}",
                    body.len(),
                    innermost(&e)
                ));
            }
        }
    }
    Ok(Exchange {
        status,
        headers,
        body,
        truncated,
        latency: started.elapsed(),
        unfollowed_redirect,
    })
}

fn sources<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |e| (*e).source())
}

/// The deepest error's text: the most specific cause.
fn innermost(e: &reqwest::Error) -> String {
    let text = sources(e)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    // reqwest adds the URL to its own texts; the caller shows the URL already.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns a send error into its failure text.
pub(crate) fn describe_error(e: &reqwest::Error, url: &Url, redactor: &Redactor) -> String {
    let host = url.host_str().unwrap_or("?");
    let target = match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let io_kind = sources(e)
        .filter_map(|s| s.downcast_ref::<io::Error>())
        .map(io::Error::kind)
        .next();
    let inner = innermost(e);
    let text = if e.is_dns() || looks_like_dns(&inner) {
        format!(
            "DNS lookup failed for {host}: {inner} (check the host name and the VPC's DNS settings)"
        )
    } else if io_kind == Some(io::ErrorKind::ConnectionRefused) {
        format!("connection refused by {target} (nothing is listening on that port)")
    } else if io_kind == Some(io::ErrorKind::ConnectionReset) {
        format!("connection reset by {target}")
    } else if matches!(
        io_kind,
        Some(io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable)
    ) {
        format!("{target} is unreachable ({inner}); check security groups and routes")
    } else if e.is_timeout() || io_kind == Some(io::ErrorKind::TimedOut) {
        format!(
            "timed out connecting to {target} (no answer to the TCP connect; check security groups)"
        )
    } else if url.scheme() == "https" && e.is_connect() && tollgate_core::tls::is_unknown_issuer(e)
    {
        let roots = match tollgate_core::tls::extra_roots_problem() {
            Some(problem) => format!("the function's trust roots are not as configured: {problem}"),
            None => "a private CA: name its certificate in the function's SSL_CERT_FILE; \
                     a public certificate of a root Mozilla has retired: set SSL_CERT_FILE to \
                     /etc/pki/tls/certs/ca-bundle.crt"
                .to_owned(),
        };
        format!(
            "TLS handshake with {target} failed: {inner} ({roots}; a self-signed staging certificate: set tls_verify: false)"
        )
    } else if url.scheme() == "https" && e.is_connect() {
        format!("TLS handshake with {target} failed: {inner}")
    } else if e.is_connect() {
        format!("could not connect to {target}: {inner}")
    } else {
        format!("request failed: {inner}")
    };
    redactor.clean(&text)
}

fn looks_like_dns(inner: &str) -> bool {
    let t = inner.to_ascii_lowercase();
    t.contains("failed to lookup address")
        || t.contains("name or service not known")
        || t.contains("nodename nor servname")
        || t.contains("no such host")
        || t.contains("temporary failure in name resolution")
}

//! Delivery machinery every destination shares: the webhook transport port
//! ([`ChatTransport`]) and its reqwest implementation, the sorting of HTTP
//! answers, and retries inside the invocation's deadline ([`with_retries`]).
//! What a destination sends, and how, is in its module under
//! [`crate::destinations`].
//!
//! - Every attempt has its own timeout (`TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS`).
//! - 429 waits for `Retry-After` (seconds or an HTTP date) when the time left
//!   allows it; otherwise the destination fails at once instead of sleeping
//!   past the deadline.
//! - 5xx, 408, timeouts and connection errors retry with jittered
//!   exponential backoff while time is left.
//! - Any other 4xx (and 3xx: redirects are not followed, so the payload never
//!   goes elsewhere) is permanent: logged with the status and the start of
//!   the answer, never with the URL.
//!
//! Webhook URLs are secrets: they never appear in logs or errors
//! (`reqwest::Error::without_url`).

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_core::secret::Secret;

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt.
    #[error("{}{detail}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
    Retryable {
        /// HTTP status, if there was an answer.
        status: Option<u16>,
        /// `Retry-After`, when the answer had one.
        retry_after: Option<Duration>,
        /// What happened (no URL).
        detail: String,
    },
    /// Will fail again: wrong URL, revoked webhook, invalid payload, denied.
    #[error("{}{detail}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
    Permanent {
        /// HTTP status, if there was an answer.
        status: Option<u16>,
        /// What happened (no URL).
        detail: String,
    },
}

impl DeliveryError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

/// An HTTP answer, reduced to what delivery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Parsed `Retry-After`.
    pub retry_after: Option<Duration>,
    /// The first 300 characters of the body (API answers: the first
    /// [`API_ANSWER_MAX`] bytes).
    pub body: String,
    /// Slack's `x-oauth-scopes` header (the token's scopes), when sent.
    pub scopes: Option<String>,
}

/// Sorts an HTTP answer: 2xx delivered, 429/408/5xx retryable, the rest permanent.
pub fn classify_answer(answer: &HttpAnswer) -> Result<(), DeliveryError> {
    let body = answer.body.trim();
    let detail = if body.is_empty() {
        "(empty answer)".to_owned()
    } else {
        body.to_owned()
    };
    match answer.status {
        200..=299 => Ok(()),
        429 => Err(DeliveryError::Retryable {
            status: Some(429),
            retry_after: answer.retry_after,
            detail: format!("rate limited: {detail}"),
        }),
        408 | 500..=599 => Err(DeliveryError::Retryable {
            status: Some(answer.status),
            retry_after: answer.retry_after,
            detail,
        }),
        300..=399 => Err(DeliveryError::Permanent {
            status: Some(answer.status),
            detail: "the webhook answered with a redirect; redirects are not followed: use the final URL".to_owned(),
        }),
        404 | 410 => Err(DeliveryError::Permanent {
            status: Some(answer.status),
            detail: format!(
                "{detail} (the webhook no longer exists or the URL is wrong: create a new one and update the secret)"
            ),
        }),
        401 | 403 => Err(DeliveryError::Permanent {
            status: Some(answer.status),
            detail: format!(
                "{detail} (the webhook refused the request: check the URL/token in the secret)"
            ),
        }),
        s => Err(DeliveryError::Permanent {
            status: Some(s),
            detail,
        }),
    }
}

/// Parses `Retry-After`: whole seconds, or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`) relative to `now`.
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(v, format).ok()?.assume_utc();
    let wait = at - now;
    Some(if wait.is_negative() {
        Duration::ZERO
    } else {
        Duration::from_secs(wait.whole_seconds() as u64)
    })
}

/// Port: posts a JSON body to a webhook.
pub trait ChatTransport: Send + Sync {
    /// One POST. `headers` are extra headers (the bearer token among them, as
    /// a secret). Returns the answer, or a transport failure.
    fn post_json(
        &self,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> impl Future<Output = Result<HttpAnswer, DeliveryError>> + Send;

    /// One POST to a JSON API whose answer matters (the Slack Web API):
    /// like [`ChatTransport::post_json`], but the body is kept whole up to
    /// [`API_ANSWER_MAX`] bytes so it can be parsed.
    fn post_api(
        &self,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> impl Future<Output = Result<HttpAnswer, DeliveryError>> + Send {
        self.post_json(url, headers, body, timeout)
    }
}

/// The largest API answer read ([`ChatTransport::post_api`]).
pub const API_ANSWER_MAX: usize = 64 * 1024;
/// The most of a webhook's answer read (only its start is ever shown).
pub const WEBHOOK_ANSWER_MAX: usize = 4 * 1024;

/// Keeps at most `limit` bytes of a body fed to it chunk by chunk.
#[derive(Debug)]
struct BoundedBody {
    kept: Vec<u8>,
    limit: usize,
}

impl BoundedBody {
    fn new(limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            limit,
        }
    }

    /// Keeps what fits of `chunk`; `false` once the limit is reached (stop
    /// reading: the rest is never read into memory).
    fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.kept.len() < self.limit
    }
}

/// [`ChatTransport`] over reqwest (rustls, the process's TLS configuration
/// from [`tollgate_core::tls`]). Created at init; its client is built on
/// the first webhook delivery (an SNS-only configuration never needs one),
/// then reused.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    connect_timeout: Duration,
    client: std::sync::Arc<tokio::sync::OnceCell<reqwest::Client>>,
}

impl ReqwestTransport {
    /// A client with a connect timeout, no redirects, and our user agent.
    pub fn new(connect_timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            connect_timeout,
            client: std::sync::Arc::default(),
        })
    }

    async fn client(&self) -> Result<&reqwest::Client, DeliveryError> {
        self.client
            .get_or_try_init(|| async {
                tollgate_core::tls::build_verifying(
                    reqwest::Client::builder()
                        .connect_timeout(self.connect_timeout)
                        .redirect(reqwest::redirect::Policy::none())
                        .user_agent(concat!("tollgate-notifier/", env!("CARGO_PKG_VERSION"))),
                )
                .map_err(|e| DeliveryError::Permanent {
                    status: None,
                    detail: format!("could not build the HTTP client: {e}"),
                })
            })
            .await
    }
}

/// Describes a reqwest error without the URL, with its causes.
fn describe_reqwest(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl ChatTransport for ReqwestTransport {
    async fn post_json(
        &self,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpAnswer, DeliveryError> {
        self.post(url, headers, body, timeout, false).await
    }

    async fn post_api(
        &self,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpAnswer, DeliveryError> {
        self.post(url, headers, body, timeout, true).await
    }
}

impl ReqwestTransport {
    async fn post(
        &self,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: Vec<u8>,
        timeout: Duration,
        whole: bool,
    ) -> Result<HttpAnswer, DeliveryError> {
        let mut req = self
            .client()
            .await?
            .post(url.expose())
            .timeout(timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                if whole {
                    "application/json; charset=utf-8"
                } else {
                    "application/json"
                },
            )
            .body(body);
        for (name, value) in headers {
            let mut v = reqwest::header::HeaderValue::from_str(value.expose()).map_err(|_| {
                DeliveryError::Permanent {
                    status: None,
                    detail: format!("the {name} header value is not valid header text"),
                }
            })?;
            v.set_sensitive(true);
            req = req.header(*name, v);
        }
        let mut resp = req.send().await.map_err(|e| {
            if e.is_builder() {
                DeliveryError::Permanent {
                    status: None,
                    detail: format!("the webhook URL is not usable: {}", describe_reqwest(e)),
                }
            } else if e.is_timeout() {
                DeliveryError::Retryable {
                    status: None,
                    retry_after: None,
                    detail: format!("no answer within {} ms", timeout.as_millis()),
                }
            } else {
                DeliveryError::Retryable {
                    status: None,
                    retry_after: None,
                    detail: format!("could not reach the webhook: {}", describe_reqwest(e)),
                }
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let scopes = resp
            .headers()
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(1000).collect::<String>());
        // The body only matters for messages; a slow body is not a failure
        // once the status is known. It is read in chunks and never kept
        // beyond the limit: a misbehaving endpoint cannot make the function
        // hold an answer of any size.
        let limit = if whole {
            API_ANSWER_MAX
        } else {
            WEBHOOK_ANSWER_MAX
        };
        let mut kept = BoundedBody::new(limit);
        // A body that fails midway keeps what arrived.
        while let Ok(Some(chunk)) = resp.chunk().await {
            if !kept.push(&chunk) {
                break;
            }
        }
        let bytes = kept.kept;
        let body = if whole {
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            crate::console::ellipsize(&String::from_utf8_lossy(&bytes), 300)
        };
        Ok(HttpAnswer {
            status,
            retry_after,
            body,
            scopes,
        })
    }
}

/// Retry tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Upper bound of one attempt.
    pub request_timeout: Duration,
    /// First backoff ceiling.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// Attempts per destination at most.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_attempts: 6,
        }
    }
}

/// The shortest window worth starting another attempt in.
const MIN_ATTEMPT_WINDOW: Duration = Duration::from_millis(150);
/// The first attempt gets at least this long even when the deadline is near.
const FIRST_ATTEMPT_FLOOR: Duration = Duration::from_millis(500);

/// How delivering to one destination ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts made.
    pub attempts: u32,
    /// `Ok` when delivered; else the last error and why it stopped.
    pub result: Result<(), (DeliveryError, String)>,
}

/// Calls `send` until it succeeds, fails permanently, or time / attempts run
/// out. `send` gets the window for this attempt.
pub async fn with_retries<F, Fut>(
    destination: &str,
    deadline: Instant,
    policy: &RetryPolicy,
    mut send: F,
) -> Attempts
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<(), DeliveryError>>,
{
    let mut attempts = 0u32;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let window = if attempts == 0 {
            policy
                .request_timeout
                .min(remaining.max(FIRST_ATTEMPT_FLOOR))
        } else {
            policy.request_timeout.min(remaining)
        };
        attempts += 1;
        let result = match tokio::time::timeout(window, send(window)).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Retryable {
                status: None,
                retry_after: None,
                detail: format!("no answer within {} ms", window.as_millis()),
            }),
        };
        let err = match result {
            Ok(()) => {
                return Attempts {
                    attempts,
                    result: Ok(()),
                };
            }
            Err(e @ DeliveryError::Permanent { .. }) => {
                return Attempts {
                    attempts,
                    result: Err((e, "permanent error, not retried".to_owned())),
                };
            }
            Err(e) => e,
        };
        if attempts >= policy.max_attempts {
            return Attempts {
                attempts,
                result: Err((err, format!("gave up after {attempts} attempts"))),
            };
        }
        let retry_after = match &err {
            DeliveryError::Retryable { retry_after, .. } => *retry_after,
            DeliveryError::Permanent { .. } => None,
        };
        let delay = match retry_after {
            // Honour the server's wait, plus a little jitter so parallel
            // invocations do not return at the same instant.
            Some(wait) => wait + Duration::from_millis(fastrand::u64(0..=100)),
            None => {
                let ceiling = policy
                    .base_delay
                    .saturating_mul(1u32 << (attempts - 1).min(16))
                    .min(policy.max_delay);
                // "Equal jitter": at least half the ceiling, so a 5xx is not
                // hammered again immediately.
                ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0)
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if delay + MIN_ATTEMPT_WINDOW > left {
            let why = match retry_after {
                Some(wait) => format!(
                    "Retry-After asked for {:.1}s but only {:.1}s were left before the deadline",
                    wait.as_secs_f64(),
                    left.as_secs_f64()
                ),
                None => format!(
                    "out of time after {attempts} attempts ({:.1}s left before the deadline)",
                    left.as_secs_f64()
                ),
            };
            return Attempts {
                attempts,
                result: Err((err, why)),
            };
        }
        tracing::warn!(
            destination,
            attempt = attempts,
            error = %err,
            retry_in_ms = delay.as_millis() as u64,
            "delivery attempt failed; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn answer_bodies_are_kept_only_up_to_the_limit() {
        let mut b = BoundedBody::new(10);
        assert!(b.push(b"abcd"));
        assert!(!b.push(b"efghijklmnop"), "full: stop reading");
        assert_eq!(b.kept, b"abcdefghij");
        assert!(!b.push(b"more"));
        assert_eq!(b.kept.len(), 10);
        let mut b = BoundedBody::new(API_ANSWER_MAX);
        assert!(b.push(&[b'x'; 1000]));
        assert_eq!(b.kept.len(), 1000);
    }

    fn answer(status: u16, retry_after: Option<u64>) -> HttpAnswer {
        HttpAnswer {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: "x".into(),
            scopes: None,
        }
    }

    #[test]
    fn answers_are_classified() {
        assert!(classify_answer(&answer(200, None)).is_ok());
        assert!(classify_answer(&answer(202, None)).is_ok());
        assert!(matches!(
            classify_answer(&answer(429, Some(3))),
            Err(DeliveryError::Retryable { retry_after: Some(d), .. }) if d == Duration::from_secs(3)
        ));
        assert!(
            classify_answer(&answer(503, None))
                .expect_err("5xx")
                .is_retryable()
        );
        assert!(
            !classify_answer(&answer(404, None))
                .expect_err("404")
                .is_retryable()
        );
        assert!(
            !classify_answer(&answer(400, None))
                .expect_err("400")
                .is_retryable()
        );
        assert!(
            !classify_answer(&answer(302, None))
                .expect_err("302")
                .is_retryable()
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = time::macros::datetime!(2015-10-21 07:27:50 UTC);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    fn retryable(retry_after: Option<Duration>) -> DeliveryError {
        DeliveryError::Retryable {
            status: Some(if retry_after.is_some() { 429 } else { 500 }),
            retry_after,
            detail: "busy".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let out = with_retries(
            "slack",
            start + Duration::from_secs(30),
            &RetryPolicy::default(),
            |_| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(retryable(Some(Duration::from_secs(2))))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        assert_eq!(out.attempts, 2);
        assert!(out.result.is_ok());
        assert!(Instant::now() - start >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_past_the_deadline_fails_at_once() {
        let start = Instant::now();
        let out = with_retries(
            "slack",
            start + Duration::from_secs(5),
            &RetryPolicy::default(),
            |_| async { Err(retryable(Some(Duration::from_secs(60)))) },
        )
        .await;
        assert_eq!(out.attempts, 1);
        let (_, why) = out.result.expect_err("fails");
        assert!(why.contains("Retry-After asked for 60"), "{why}");
        assert!(Instant::now() - start < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_back_off_then_stop_inside_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(3);
        let out = with_retries("teams", deadline, &RetryPolicy::default(), |_| async {
            Err(retryable(None))
        })
        .await;
        assert!(out.attempts >= 2, "{}", out.attempts);
        assert!(out.result.is_err());
        assert!(Instant::now() <= deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let out = with_retries(
            "hook",
            Instant::now() + Duration::from_secs(30),
            &RetryPolicy::default(),
            |_| async {
                Err(DeliveryError::Permanent {
                    status: Some(404),
                    detail: "no_service".into(),
                })
            },
        )
        .await;
        assert_eq!(out.attempts, 1);
        assert!(out.result.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_times_out_and_is_retried() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            request_timeout: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let out = with_retries(
            "hook",
            Instant::now() + Duration::from_secs(10),
            &policy,
            |_| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(out.attempts, 2);
        assert!(out.result.is_ok());
    }
}

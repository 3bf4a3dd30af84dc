//! The report call with jittered retries inside the time left.

use super::{Delivery, ReportConfig, ReportError};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// The shortest window worth starting another attempt in.
const MIN_ATTEMPT_WINDOW: Duration = Duration::from_millis(100);
/// The first attempt always gets at least this long, even past the deadline
/// estimate: trying costs nothing, not trying leaves the job hanging.
const FIRST_ATTEMPT_FLOOR: Duration = Duration::from_millis(500);

/// Why delivery stopped without success.
#[derive(Debug)]
pub(crate) enum Undelivered {
    /// A permanent error from the service.
    Permanent(ReportError),
    /// Time ran out while the errors were retryable.
    OutOfTime { attempts: u32, last: ReportError },
}

/// Calls `send` until it succeeds, is "already reported", fails permanently,
/// or the hard deadline leaves no room for another attempt.
pub(crate) async fn deliver<F, Fut>(
    operation: &'static str,
    hard_deadline: Instant,
    cfg: &ReportConfig,
    mut send: F,
) -> (u32, Result<Delivery, Undelivered>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ReportError>>,
{
    let mut attempts = 0u32;
    loop {
        let remaining = hard_deadline.saturating_duration_since(Instant::now());
        let window = if attempts == 0 {
            cfg.attempt_timeout.min(remaining.max(FIRST_ATTEMPT_FLOOR))
        } else {
            cfg.attempt_timeout.min(remaining)
        };
        attempts += 1;
        let result = match tokio::time::timeout(window, send()).await {
            Ok(result) => result,
            Err(_) => Err(ReportError::Timeout(window)),
        };
        let err = match result {
            Ok(()) => return (attempts, Ok(Delivery::Delivered)),
            Err(ReportError::AlreadyReported { code, message }) => {
                tracing::warn!(
                    operation,
                    code = %code,
                    message = %message,
                    "report already recorded by the service; treating the job as done"
                );
                return (attempts, Ok(Delivery::AlreadyReported));
            }
            Err(e) if e.is_retryable() => e,
            Err(e) => return (attempts, Err(Undelivered::Permanent(e))),
        };
        let ceiling = BASE_DELAY
            .saturating_mul(1u32 << attempts.min(16))
            .min(MAX_DELAY);
        // Full jitter: a uniformly random wait in [0, ceiling].
        let delay = ceiling.mul_f64(fastrand::f64());
        let resume = Instant::now() + delay;
        if resume + MIN_ATTEMPT_WINDOW > hard_deadline {
            return (
                attempts,
                Err(Undelivered::OutOfTime {
                    attempts,
                    last: err,
                }),
            );
        }
        tracing::warn!(operation, attempt = attempts, error = %err, retry_in_ms = delay.as_millis() as u64, "report attempt failed; retrying");
        tokio::time::sleep_until(resume).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn throttled() -> ReportError {
        ReportError::Throttled {
            code: "ThrottlingException".into(),
            message: "Rate exceeded".into(),
        }
    }

    #[tokio::test]
    async fn retries_until_success() {
        let calls = AtomicU32::new(0);
        let (attempts, res) = deliver(
            "op",
            Instant::now() + Duration::from_secs(10),
            &ReportConfig::default(),
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 3 { Err(throttled()) } else { Ok(()) } }
            },
        )
        .await;
        assert_eq!(attempts, 4);
        assert!(matches!(res, Ok(Delivery::Delivered)));
    }

    #[tokio::test]
    async fn already_reported_is_done() {
        let (attempts, res) = deliver(
            "op",
            Instant::now() + Duration::from_secs(10),
            &ReportConfig::default(),
            || async {
                Err(ReportError::AlreadyReported {
                    code: "InvalidJobStateException".into(),
                    message: String::new(),
                })
            },
        )
        .await;
        assert_eq!(attempts, 1);
        assert!(matches!(res, Ok(Delivery::AlreadyReported)));
    }

    #[tokio::test]
    async fn permanent_errors_stop_at_once() {
        let (attempts, res) = deliver(
            "op",
            Instant::now() + Duration::from_secs(10),
            &ReportConfig::default(),
            || async {
                Err(ReportError::AccessDenied {
                    code: "AccessDeniedException".into(),
                    message: "no".into(),
                })
            },
        )
        .await;
        assert_eq!(attempts, 1);
        assert!(matches!(
            res,
            Err(Undelivered::Permanent(ReportError::AccessDenied { .. }))
        ));
    }

    #[tokio::test]
    async fn gives_up_inside_the_deadline() {
        let start = Instant::now();
        let (attempts, res) = deliver(
            "op",
            start + Duration::from_millis(600),
            &ReportConfig::default(),
            || async { Err(throttled()) },
        )
        .await;
        assert!(attempts >= 1);
        assert!(matches!(res, Err(Undelivered::OutOfTime { .. })));
        assert!(Instant::now() <= start + Duration::from_millis(600));
    }

    #[tokio::test]
    async fn a_slow_answer_is_abandoned_and_retried() {
        let calls = AtomicU32::new(0);
        let cfg = ReportConfig {
            attempt_timeout: Duration::from_millis(100),
            ..ReportConfig::default()
        };
        let (attempts, res) = deliver("op", Instant::now() + Duration::from_secs(5), &cfg, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok(())
            }
        })
        .await;
        assert_eq!(attempts, 2);
        assert!(matches!(res, Ok(Delivery::Delivered)));
    }

    /// Issue 14.7: with the default tuning, two hung attempts still leave a
    /// third inside the reserve (paused clock: no real waiting).
    #[tokio::test(start_paused = true)]
    async fn three_attempts_fit_in_the_default_reserve_when_two_hang() {
        let cfg = ReportConfig::default();
        let hard_deadline = Instant::now() + cfg.reserve - cfg.safety_margin;
        let calls = AtomicU32::new(0);
        let (attempts, res) = deliver("op", hard_deadline, &cfg, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        })
        .await;
        assert_eq!(attempts, 3);
        assert!(matches!(res, Ok(Delivery::Delivered)), "{res:?}");
        assert!(Instant::now() <= hard_deadline);
    }
}

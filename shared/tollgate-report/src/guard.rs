//! Runs the work under a deadline, in its own task, so that a timeout or a
//! panic still leaves us holding the job and able to report it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// What the work is doing right now, for failure messages
/// ("timed out while waiting for ECS service web to stabilise").
#[derive(Debug, Clone)]
pub struct Step(Arc<Mutex<String>>);

impl Default for Step {
    fn default() -> Self {
        Self::new("starting")
    }
}

impl Step {
    /// A tracker starting at `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self(Arc::new(Mutex::new(name.into())))
    }

    /// Records that the work has entered `name`.
    pub fn enter(&self, name: impl Into<String>) {
        let name = name.into();
        tracing::debug!(step = %name, "step");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = name;
    }

    /// The step entered last.
    pub fn current(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The time an invocation has: the hard Lambda deadline and the part of it
/// kept back for reporting.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// When Lambda stops the invocation (less the safety margin).
    pub hard_deadline: Instant,
    /// When the work is cut off: `hard_deadline − reserve`.
    pub work_deadline: Instant,
    /// The reserve, for messages.
    pub reserve: Duration,
}

/// A deadline given in epoch milliseconds (`Lambda-Runtime-Deadline-Ms`)
/// as an [`Instant`]; one already past is now.
pub fn deadline_from_epoch_ms(deadline_epoch_ms: u64) -> Instant {
    let target = UNIX_EPOCH + Duration::from_millis(deadline_epoch_ms);
    let left = target
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}

impl Budget {
    /// Budget for an invocation whose deadline is `deadline_epoch_ms`
    /// (`Lambda-Runtime-Deadline-Ms`).
    pub fn from_epoch_ms(deadline_epoch_ms: u64, cfg: &super::ReportConfig) -> Self {
        Self::within(deadline_from_epoch_ms(deadline_epoch_ms), cfg)
    }

    /// Budget for a deadline given as an instant.
    pub fn within(deadline: Instant, cfg: &super::ReportConfig) -> Self {
        let hard_deadline = deadline
            .checked_sub(cfg.safety_margin)
            .unwrap_or(deadline)
            .max(Instant::now());
        let work_deadline = hard_deadline
            .checked_sub(cfg.reserve)
            .unwrap_or(hard_deadline)
            .max(Instant::now());
        Self {
            hard_deadline,
            work_deadline,
            reserve: cfg.reserve,
        }
    }

    /// Time left for the work.
    pub fn work_time_left(&self) -> Duration {
        self.work_deadline.saturating_duration_since(Instant::now())
    }
}

/// How the work ended.
#[derive(Debug)]
pub enum WorkEnd<T> {
    Done(T),
    Panicked { step: String, detail: String },
    TimedOut { step: String, ran_for: Duration },
}

impl<T> WorkEnd<T> {
    /// The failure text for a panic or a timeout; `None` when the work finished.
    pub fn failure_text(&self, budget: &Budget) -> Option<String> {
        match self {
            Self::Done(_) => None,
            Self::Panicked { step, detail } => Some(format!(
                "internal error in tollgate while {step}: {detail}. This is a bug; \
                 please report it with the function's log for this request"
            )),
            Self::TimedOut { step, ran_for } => Some(format!(
                "timed out after {:.1}s while {step}: the function's deadline minus the {:.1}s \
                 report reserve was reached. Raise the function Timeout, or shorten the work \
                 (fewer retries, a smaller check deadline)",
                ran_for.as_secs_f64(),
                budget.reserve.as_secs_f64()
            )),
        }
    }
}

#[derive(Debug, Clone)]
struct PanicRecord {
    location: String,
    message: String,
}

fn panics() -> &'static Mutex<HashMap<tokio::task::Id, PanicRecord>> {
    static PANICS: OnceLock<Mutex<HashMap<tokio::task::Id, PanicRecord>>> = OnceLock::new();
    PANICS.get_or_init(Default::default)
}

/// Installs (once) a panic hook that records where a panic inside a tokio
/// task happened, so the failure report can name the location, and logs it
/// through `tracing` instead of a bare stderr line. Panics outside tasks go to
/// the previous hook. Called by the core; safe to call again.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let Some(id) = tokio::task::try_id() else {
                previous(info);
                return;
            };
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "an unknown location".to_owned());
            let message = info
                .payload_as_str()
                .unwrap_or("a non-string panic payload")
                .to_owned();
            tracing::error!(panic.location = %location, panic.message = %message, "work panicked");
            panics()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, PanicRecord { location, message });
        }));
    });
}

/// Runs `work` in its own task until `budget.work_deadline`.
pub async fn run_work<T, F>(work: F, step: &Step, budget: &Budget) -> WorkEnd<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    install_panic_hook();
    let started = Instant::now();
    let mut handle = tokio::spawn(work);
    let task_id = handle.id();
    let joined = tokio::time::timeout_at(budget.work_deadline, &mut handle).await;
    match joined {
        Ok(Ok(value)) => WorkEnd::Done(value),
        Ok(Err(join_error)) => {
            let record = panics()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&task_id);
            let detail = match (join_error.is_panic(), record) {
                (true, Some(r)) => format!("panicked at {}: {}", r.location, r.message),
                (true, None) => {
                    let payload = join_error.into_panic();
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-string panic payload".to_owned());
                    format!("panicked: {msg}")
                }
                (false, _) => "the work was cancelled".to_owned(),
            };
            WorkEnd::Panicked {
                step: step.current(),
                detail,
            }
        }
        Err(_elapsed) => {
            handle.abort();
            WorkEnd::TimedOut {
                step: step.current(),
                ran_for: started.elapsed(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReportConfig;

    fn budget(ms: u64) -> Budget {
        let cfg = ReportConfig {
            reserve: Duration::from_millis(10),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        Budget::within(Instant::now() + Duration::from_millis(ms), &cfg)
    }

    #[tokio::test]
    async fn finished_work_is_returned() {
        let step = Step::default();
        let end = run_work(async { 7 }, &step, &budget(1000)).await;
        assert!(matches!(end, WorkEnd::Done(7)));
    }

    #[tokio::test]
    async fn a_panic_names_the_step_and_location() {
        let step = Step::default();
        let s2 = step.clone();
        let end: WorkEnd<()> = run_work(
            async move {
                s2.enter("parsing the spec");
                panic!("boom at depth");
            },
            &step,
            &budget(1000),
        )
        .await;
        let b = budget(1000);
        let text = end.failure_text(&b).expect("a failure");
        assert!(text.contains("while parsing the spec"), "{text}");
        assert!(text.contains("boom at depth"), "{text}");
        assert!(text.contains("guard.rs"), "{text}");
    }

    #[tokio::test]
    async fn a_timeout_names_the_step() {
        let step = Step::default();
        let s2 = step.clone();
        let b = budget(200);
        let end: WorkEnd<()> = run_work(
            async move {
                s2.enter("waiting for the green task set");
                tokio::time::sleep(Duration::from_secs(30)).await;
            },
            &step,
            &b,
        )
        .await;
        let text = end.failure_text(&b).expect("a failure");
        assert!(text.starts_with("timed out after 0."), "{text}");
        assert!(
            text.contains("while waiting for the green task set"),
            "{text}"
        );
    }

    #[test]
    fn budget_from_a_past_deadline_is_now() {
        let cfg = ReportConfig::default();
        let b = Budget::from_epoch_ms(1, &cfg);
        assert_eq!(b.work_time_left(), Duration::ZERO);
    }
}

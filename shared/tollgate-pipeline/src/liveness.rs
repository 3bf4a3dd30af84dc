//! Is the job still wanted? Asked before every side effect (issue 14.4).
//!
//! CodePipeline invokes the function asynchronously: Lambda retries a failed
//! invocation and may deliver an event twice, minutes later. A late
//! delivery of an `ecs-deploy` job whose action already ended (reported,
//! timed out, or superseded by a newer run) must not register a revision
//! with its old images or update the service. So before changing anything
//! the action asks CodePipeline: `GetJobDetails` gives the job's pipeline
//! context (pipeline, stage, action, action execution id, pipeline
//! execution id), and `ListActionExecutions` for that pipeline execution
//! shows whether that action execution is still `InProgress`.

use super::Failure;
use std::future::Future;

/// What CodePipeline says about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The job's action execution is in progress: the work is wanted.
    Live {
        /// When the action execution started (epoch milliseconds), if known.
        started_at_ms: Option<i64>,
    },
    /// The job is over (or unknown): nothing may be changed for it.
    Gone {
        /// Why, e.g. `action execution 0f1e… of web/Deploy/EcsDeploy is Succeeded`.
        why: String,
    },
}

/// Port: the job's liveness, from CodePipeline.
pub trait JobLiveness: Send + Sync {
    /// `GetJobDetails` + `ListActionExecutions`. An error reading either is
    /// a [`Failure`] (the side effect is not made; the job is reported
    /// failed with the reason).
    fn liveness(&self, job_id: &str) -> impl Future<Output = Result<Liveness, Failure>> + Send;
}

/// The outcome for a job that is no longer live: reported (CodePipeline
/// answers "already reported", which counts as done) and logged, nothing
/// else.
pub fn gone(job_id: &str, why: &str) -> Failure {
    tracing::warn!(
        job_id,
        why,
        "the job is no longer live: nothing is changed for it"
    );
    Failure::job(format!(
        "this job is no longer live ({why}): it is a late or duplicate delivery, and nothing was \
         changed for it"
    ))
}

#[cfg(test)]
pub(crate) mod fakes {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Jobs and their liveness; unknown jobs are live.
    #[derive(Debug, Default)]
    pub struct FakeJobs {
        jobs: Mutex<HashMap<String, Liveness>>,
        /// Every job asked about, in order.
        pub asked: Mutex<Vec<String>>,
    }

    impl FakeJobs {
        /// Sets what CodePipeline says about `job_id`.
        pub fn set(&self, job_id: &str, liveness: Liveness) {
            self.jobs
                .lock()
                .expect("lock")
                .insert(job_id.to_owned(), liveness);
        }
    }

    impl JobLiveness for FakeJobs {
        async fn liveness(&self, job_id: &str) -> Result<Liveness, Failure> {
            self.asked.lock().expect("lock").push(job_id.to_owned());
            Ok(self
                .jobs
                .lock()
                .expect("lock")
                .get(job_id)
                .cloned()
                .unwrap_or(Liveness::Live {
                    started_at_ms: None,
                }))
        }
    }
}

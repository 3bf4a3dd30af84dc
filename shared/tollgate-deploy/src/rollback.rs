//! Is this ECS hook call part of a rollback? Confirmed, never guessed
//! (issue 14.8).
//!
//! ECS has no rollback stage: it calls the traffic-shift hooks again with
//! the weights moving back to the old revision. Weights alone are not proof:
//! a first canary or linear step can carry the same weights (green 0, blue
//! 100) before any traffic moves, and answering `SUCCEEDED` without checks
//! there would open the gate untested. So the hook skips its checks only
//! when `DescribeServiceDeployments` says the service deployment is rolling
//! back (`ROLLBACK_REQUESTED`, `ROLLBACK_IN_PROGRESS`, …); otherwise, or when
//! the status cannot be read, it runs its checks as usual (fail closed).

use std::future::Future;

/// Port: ECS service deployments.
pub trait ServiceDeployments: Send + Sync {
    /// `DescribeServiceDeployments` for one service deployment ARN: its
    /// status (`IN_PROGRESS`, `ROLLBACK_IN_PROGRESS`, …). `Err` says why it
    /// could not be read.
    fn status(
        &self,
        service_deployment_arn: &str,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// Whether a service deployment status is a rollback.
pub fn is_rollback_status(status: &str) -> bool {
    status.starts_with("ROLLBACK_")
}

#[cfg(test)]
pub(crate) mod fakes {
    use super::*;
    use std::sync::Mutex;

    /// Answers every ARN with one status (or error); records the ARNs asked.
    #[derive(Debug)]
    pub struct FakeDeployments {
        answer: Mutex<Result<String, String>>,
        /// ARNs asked, in order.
        pub asked: Mutex<Vec<String>>,
    }

    impl Default for FakeDeployments {
        fn default() -> Self {
            Self::answering(Ok("IN_PROGRESS".to_owned()))
        }
    }

    impl FakeDeployments {
        /// A fake that always answers `answer`.
        pub fn answering(answer: Result<String, String>) -> Self {
            Self {
                answer: Mutex::new(answer),
                asked: Mutex::new(Vec::new()),
            }
        }
    }

    impl ServiceDeployments for FakeDeployments {
        async fn status(&self, arn: &str) -> Result<String, String> {
            self.asked.lock().expect("lock").push(arn.to_owned());
            self.answer.lock().expect("lock").clone()
        }
    }

    #[test]
    fn rollback_statuses() {
        assert!(is_rollback_status("ROLLBACK_REQUESTED"));
        assert!(is_rollback_status("ROLLBACK_IN_PROGRESS"));
        assert!(!is_rollback_status("IN_PROGRESS"));
        assert!(!is_rollback_status("SUCCESSFUL"));
    }
}

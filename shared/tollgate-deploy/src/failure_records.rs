//! Writing hook-failure records (deploy-hook's side of
//! `tollgate_core::hook_failures`): one SSM String parameter per deployment
//! group, written just before the `Failed` report, best effort and bounded.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_core::hook_failures::{HookFailureRecord, WRITE_TIMEOUT, parameter_name};
use tollgate_core::ports::{ParameterWriter, PutParameterError};

/// Why a record was not written. Never changes the hook's outcome.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// `PutParameter` failed.
    #[error(transparent)]
    Put(#[from] PutParameterError),
    /// No answer in time.
    #[error(
        "ssm:PutParameter did not answer within {0:?}; the failure was reported without its record"
    )]
    TimedOut(Duration),
    /// The work deadline left no time to write.
    #[error(
        "no time was left before the report reserve to write the record; raise the function Timeout"
    )]
    NoTime,
}

/// Object-safe form of [`ParameterWriter`], so [`FailureRecorder`] is one
/// concrete type whatever the adapter.
trait DynWriter: Send + Sync {
    fn put<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), PutParameterError>> + Send + 'a>>;
}

impl<W: ParameterWriter> DynWriter for W {
    fn put<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), PutParameterError>> + Send + 'a>> {
        Box::pin(self.put_parameter(name, value))
    }
}

/// Writes records under a prefix (deploy-hook's side).
#[derive(Clone)]
pub struct FailureRecorder {
    prefix: String,
    writer: Arc<dyn DynWriter>,
}

impl fmt::Debug for FailureRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureRecorder")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl FailureRecorder {
    /// A recorder writing under `prefix` (validated by [`parse_prefix`]).
    pub fn new(prefix: impl Into<String>, writer: impl ParameterWriter + 'static) -> Self {
        Self {
            prefix: prefix.into(),
            writer: Arc::new(writer),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Writes `record` for the group, giving up at `deadline` (at most
    /// [`WRITE_TIMEOUT`] from now). Returns the parameter name.
    pub async fn record(
        &self,
        application: &str,
        group: &str,
        record: &HookFailureRecord,
        deadline: Instant,
    ) -> Result<String, RecordError> {
        let now = Instant::now();
        let deadline = deadline.min(now + WRITE_TIMEOUT);
        if deadline <= now {
            return Err(RecordError::NoTime);
        }
        let name = parameter_name(&self.prefix, application, group);
        let value = record.encode();
        match tokio::time::timeout_at(deadline, self.writer.put(&name, &value)).await {
            Ok(Ok(())) => Ok(name),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(RecordError::TimedOut(deadline - now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_test_support::parameters::{FakeWriter, Mode};

    fn record() -> HookFailureRecord {
        HookFailureRecord::from_message(
            "d-1",
            Some("AfterAllowTestTraffic"),
            "AfterAllowTestTraffic failed for d-1: smoke checks did not pass\n  - check 0: x",
            "2026-01-01T00:00:00Z",
        )
    }

    #[tokio::test]
    async fn the_recorder_writes_under_the_group_name() {
        let writer = FakeWriter::default();
        let rec = FailureRecorder::new("/tollgate/s/hook-failures", writer.clone());
        let name = rec
            .record(
                "web",
                "web-dg",
                &record(),
                Instant::now() + Duration::from_secs(10),
            )
            .await
            .expect("written");
        assert_eq!(name, "/tollgate/s/hook-failures/web/web-dg");
        let puts = writer.puts.lock().expect("lock").clone();
        assert_eq!(puts.len(), 1);
        let back = HookFailureRecord::decode(&puts[0].1).expect("json");
        assert_eq!(back.deployment_id, "d-1");
    }

    #[tokio::test(start_paused = true)]
    async fn the_write_is_bounded() {
        let writer = FakeWriter {
            mode: Mode::Stall,
            ..FakeWriter::default()
        };
        let rec = FailureRecorder::new("/p", writer);
        let started = Instant::now();
        let err = rec
            .record("a", "g", &record(), started + Duration::from_secs(60))
            .await
            .expect_err("stalled");
        assert!(
            matches!(err, RecordError::TimedOut(d) if d == WRITE_TIMEOUT),
            "{err}"
        );
        assert_eq!(started.elapsed(), WRITE_TIMEOUT);
        let err = rec
            .record("a", "g", &record(), Instant::now())
            .await
            .expect_err("no time");
        assert!(matches!(err, RecordError::NoTime));
    }
}

//! # tollgate-tests
//!
//! Local stand-ins that let the real function binaries and real AWS SDK
//! clients run without AWS or Docker, plus Tollgate's integration tests
//! (`tests/tests/*.rs`).
//!
//! - [`runtime_api::LocalLambda`]: a Lambda Runtime API server that spawns a
//!   function binary, feeds it events with a chosen deadline, and collects
//!   responses, errors, init errors, logs and the init time.
//! - [`aws_standin::AwsStandIn`]: one HTTP endpoint speaking the AWS wire
//!   protocols. It answers the calls moto lacks (CodePipeline
//!   `PutJobSuccessResult` / `PutJobFailureResult` / `PutApprovalResult`,
//!   CodeDeploy `PutLifecycleEventHookExecutionStatus`) itself, validating
//!   them as AWS does, forwards everything else unchanged to moto, records
//!   every call, and injects faults per operation.
//! - [`moto::Moto`]: starts `moto_server` from the project virtualenv.
//! - [`async_invoke::FailureQueue`]: Lambda's on-failure SQS destination
//!   on moto, for the dead-letter consumer.
//! - [`cgroup::MemoryCage`]: a memory-limited cgroup for a real
//!   out-of-memory kill.
//! - [`paths`]: where binaries and fixtures are.
//! - [`slack_signed`]: Slack interactivity requests, signed, as the
//!   approvals function's URL receives them.

pub mod async_invoke;
pub mod aws_standin;
pub mod cbor;
pub mod cgroup;
pub mod metric_math;
pub mod moto;
pub mod paths;
pub mod rehearsal;
pub mod runtime_api;
pub mod seed;
pub mod slack_signed;

pub use aws_standin::{AwsStandIn, Fault, Report};
pub use moto::Moto;
pub use runtime_api::{Invocation, LocalLambda};

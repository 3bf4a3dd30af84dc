//! # tollgate
//!
//! The shared library behind Tollgate's Lambda functions (`pipeline-action`,
//! `deploy-hook`, `notifier`).
//!
//! - [`report`]: the exactly-once report core. Every CodePipeline job and
//!   every CodeDeploy hook ends in exactly one result report: panics,
//!   timeouts, throttling and duplicate deliveries included.
//! - [`events`]: our own types for the payloads the functions receive, with
//!   redacted `Debug` for anything secret.
//! - [`aws`]: adapters, the only code that touches the AWS SDK.
//! - [`config`]: typed configuration from the environment, validated at init.
//! - [`telemetry`]: `tracing` set up the way Lambda expects.
//! - [`secret`]: a string type that never prints.
//!
//! Handlers depend on ports (traits such as [`report::JobReporter`] and
//! [`report::HookReporter`]); adapters implement them over the SDK, and tests
//! use in-memory fakes or the local stand-ins in the `tollgate-tests` crate.

pub mod actions;
pub mod aws;
pub mod checks;
pub mod config;
pub mod deadletter;
pub mod deploy;
pub mod doc_error;
pub mod events;
pub mod lambda;
pub mod memory;
pub mod notify;
pub mod report;
pub mod secret;
pub mod telemetry;
pub mod tls;

pub use secret::Secret;

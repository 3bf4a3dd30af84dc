//! Event types for the payloads Tollgate's functions receive.
//!
//! Types are our own (not `aws_lambda_events`), shaped after real AWS samples
//! kept in `events/`. Anything that carries credentials has a redacting `Debug`.

pub mod codedeploy;
pub mod codepipeline;
pub mod ecs_hook;

pub use codedeploy::CodeDeployHookEvent;
pub use codepipeline::{CodePipelineEvent, Job};

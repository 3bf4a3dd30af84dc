//! Event types for the payloads Tollgate's functions receive.
//!
//! `aws_lambda_events`' types where they are right and safe (the CodeDeploy
//! hook event); our own elsewhere, shaped after real AWS samples kept in
//! `events/`: its CodePipeline job event derives `Debug` over the artifact
//! credentials (ours redacts them), and it has no ECS lifecycle hook type.

pub mod codedeploy;
pub mod codepipeline;
pub mod ecs_hook;

pub use codedeploy::CodeDeployHookEvent;
pub use codepipeline::{CodePipelineEvent, Job};

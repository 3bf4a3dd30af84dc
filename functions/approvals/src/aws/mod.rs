//! The AWS adapters only this function uses.

pub mod codepipeline;
pub mod ecs;
pub mod stage_conditions;

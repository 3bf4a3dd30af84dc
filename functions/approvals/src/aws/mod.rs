//! The AWS adapters only this function uses.

pub mod codepipeline;
pub mod ecs;

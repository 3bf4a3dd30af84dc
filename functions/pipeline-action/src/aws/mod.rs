//! The adapters only pipeline-action uses, each implementing a port of
//! `tollgate-pipeline`: S3 artifacts with the job's credentials, ECS, and
//! job liveness (`GetJobDetails`).

pub mod codepipeline_jobs;
pub mod ecs;
pub mod s3;

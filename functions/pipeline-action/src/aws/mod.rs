//! The adapters only pipeline-action uses, each implementing a port of
//! `tollgate-pipeline`: S3 artifacts with the job's credentials, ECS, and
//! job liveness (`GetJobDetails`), and CloudWatch Logs (`GetLogEvents`) for
//! `run-task`'s log tail.

pub mod codepipeline_jobs;
pub mod ecs;
pub mod logs;
pub mod s3;

//! The adapters only the notifier uses, each implementing a port of
//! `tollgate-notify`: the enrichment reads (CodePipeline, CodeDeploy, SSM
//! hook-failure records), SNS publishing and the DynamoDB delivery ledger.

pub mod dynamodb_ledger;
pub mod notify_sources;
pub mod sns;

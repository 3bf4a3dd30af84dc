//! The adapters only the notifier uses, each implementing a port of
//! `tollgate-notify`: the enrichment reads (CodePipeline, CodeDeploy, SSM
//! hook-failure records), SNS publishing, the DynamoDB delivery ledger and
//! the Slack bot mode's release records (same table).

pub mod dynamodb_ledger;
pub mod dynamodb_releases;
pub mod notify_sources;
pub mod sns;

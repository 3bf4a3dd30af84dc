//! The adapters only deploy-hook uses, each implementing a port of
//! `tollgate-deploy`: CodeDeploy and ELBv2 reads (discovery), and ECS
//! service deployments (rollback of a misconfigured ECS hook), ECS service
//! revisions and ELBv2 listener rules (an ECS native gate's target groups), the SSM
//! writer of hook-failure records, and the SQS queue of CodeDeploy metric
//! gates.

pub mod codedeploy_read;
pub mod ecs_deployments;
pub mod ecs_targets;
pub mod elbv2;
pub mod sqs_gate;
pub mod ssm_write;

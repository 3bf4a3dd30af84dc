//! The adapters only deploy-hook uses, each implementing a port of
//! `tollgate-deploy`: CodeDeploy and ELBv2 reads (discovery), and ECS
//! service deployments (rollback of a misconfigured ECS hook), and the SSM
//! writer of hook-failure records.

pub mod codedeploy_read;
pub mod ecs_deployments;
pub mod elbv2;
pub mod ssm_write;

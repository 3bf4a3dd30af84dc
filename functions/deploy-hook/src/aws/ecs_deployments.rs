//! ECS service deployments adapter: implements
//! [`tollgate_deploy::rollback::ServiceDeployments`] with the SDK client
//! (`DescribeServiceDeployments`), for deploy-hook's ECS native hooks.

use aws_sdk_ecs::Client;
use tollgate_aws::{SdkConfig, classify};
use tollgate_deploy::rollback::ServiceDeployments;

/// Reads service deployment statuses.
#[derive(Debug, Clone)]
pub struct EcsServiceDeployments {
    client: tollgate_aws::Lazy<Client>,
}

impl EcsServiceDeployments {
    /// Builds the client (SDK standard retries stay on).
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
        }
    }
}

impl ServiceDeployments for EcsServiceDeployments {
    async fn status(&self, arn: &str) -> Result<String, String> {
        let out = self
            .client
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .map_err(|e| format!("ecs:DescribeServiceDeployments: {}", classify(e, &[])))?;
        out.service_deployments
            .unwrap_or_default()
            .into_iter()
            .find_map(|d| d.status.map(|s| s.as_str().to_owned()))
            .ok_or_else(|| {
                let why = out
                    .failures
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|f| f.reason)
                    .unwrap_or_else(|| "no service deployment in the answer".to_owned());
                format!("ecs:DescribeServiceDeployments: {why}")
            })
    }
}

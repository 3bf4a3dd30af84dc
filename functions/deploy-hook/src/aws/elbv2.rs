//! Elastic Load Balancing v2 read adapter: implements [`ListenerReader`]
//! (`DescribeListeners`, `DescribeLoadBalancers`, and `DescribeTargetGroups`
//! for the metric gate's dimensions).

use super::codedeploy_read::read_error;
use aws_sdk_elasticloadbalancingv2::Client;
use tollgate_aws::SdkConfig;
use tollgate_deploy::discovery::{Listener, ListenerReader, LoadBalancer, ReadError, TargetGroup};

/// Reads listeners and load balancers.
#[derive(Debug, Clone)]
pub struct ElbReader {
    client: tollgate_aws::Lazy<Client>,
}

impl ElbReader {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
        }
    }
}

impl ListenerReader for ElbReader {
    async fn describe_listeners(&self, arns: &[String]) -> Result<Vec<Listener>, ReadError> {
        const ACTION: &str = "elasticloadbalancing:DescribeListeners";
        let out = self
            .client
            .describe_listeners()
            .set_listener_arns(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| read_error(ACTION, e, &["ListenerNotFound", "LoadBalancerNotFound"]))?;
        Ok(out
            .listeners()
            .iter()
            .filter_map(|l| {
                Some(Listener {
                    arn: l.listener_arn()?.to_owned(),
                    load_balancer_arn: l.load_balancer_arn()?.to_owned(),
                    port: l.port().and_then(|p| u16::try_from(p).ok()),
                    protocol: l.protocol().map(|p| p.as_str().to_owned()),
                })
            })
            .collect())
    }

    async fn describe_load_balancers(
        &self,
        arns: &[String],
    ) -> Result<Vec<LoadBalancer>, ReadError> {
        const ACTION: &str = "elasticloadbalancing:DescribeLoadBalancers";
        let out = self
            .client
            .describe_load_balancers()
            .set_load_balancer_arns(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| read_error(ACTION, e, &["LoadBalancerNotFound"]))?;
        Ok(out
            .load_balancers()
            .iter()
            .filter_map(|b| {
                Some(LoadBalancer {
                    arn: b.load_balancer_arn()?.to_owned(),
                    dns_name: b.dns_name().unwrap_or_default().to_owned(),
                    scheme: b.scheme().map(|s| s.as_str().to_owned()),
                })
            })
            .collect())
    }

    async fn describe_target_groups(
        &self,
        names: &[String],
    ) -> Result<Vec<TargetGroup>, ReadError> {
        const ACTION: &str = "elasticloadbalancing:DescribeTargetGroups";
        let out = self
            .client
            .describe_target_groups()
            .set_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| read_error(ACTION, e, &["TargetGroupNotFound"]))?;
        Ok(out
            .target_groups()
            .iter()
            .filter_map(|t| {
                Some(TargetGroup {
                    name: t.target_group_name()?.to_owned(),
                    arn: t.target_group_arn()?.to_owned(),
                    load_balancer_arns: t.load_balancer_arns().to_vec(),
                })
            })
            .collect())
    }
}

//! ECS service revisions and ELBv2 listener rules adapter: implements
//! [`TargetReader`] (`DescribeServiceRevisions`, `DescribeRules`), so an ECS
//! native hook's metric gate finds green's and blue's target groups
//! ([`tollgate_deploy::ecs_targets`]). SDK standard retries apply.

use super::codedeploy_read::read_error;
use aws_sdk_ecs::types::ServiceRevision;
use tollgate_aws::SdkConfig;
use tollgate_deploy::ecs_targets::{ResolvedTarget, RevisionTargets, TargetPair, TargetReader};
use tollgate_deploy::gate_hook::BoxFuture;

/// Reads service revisions and listener rules.
#[derive(Debug, Clone)]
pub struct EcsTargetReader {
    ecs: tollgate_aws::Lazy<aws_sdk_ecs::Client>,
    elb: tollgate_aws::Lazy<aws_sdk_elasticloadbalancingv2::Client>,
}

impl EcsTargetReader {
    /// Builds the clients.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            ecs: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || aws_sdk_ecs::Client::new(&sdk))
            },
            elb: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || aws_sdk_elasticloadbalancingv2::Client::new(&sdk))
            },
        }
    }
}

fn revision(r: &ServiceRevision) -> RevisionTargets {
    RevisionTargets {
        arn: r.service_revision_arn().unwrap_or_default().to_owned(),
        resolved: r
            .resolved_configuration()
            .map(|c| {
                c.load_balancers()
                    .iter()
                    .filter_map(|l| {
                        Some(ResolvedTarget {
                            target_group_arn: l.target_group_arn()?.to_owned(),
                            production_listener_rule: l
                                .production_listener_rule()
                                .map(str::to_owned),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        pairs: r
            .load_balancers()
            .iter()
            .filter_map(|l| {
                let advanced = l.advanced_configuration()?;
                Some(TargetPair {
                    primary: l.target_group_arn()?.to_owned(),
                    alternate: advanced.alternate_target_group_arn()?.to_owned(),
                    production_listener_rule: advanced
                        .production_listener_rule()
                        .map(str::to_owned),
                })
            })
            .collect(),
    }
}

impl TargetReader for EcsTargetReader {
    fn service_revisions<'a>(
        &'a self,
        arns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RevisionTargets>, String>> {
        Box::pin(async move {
            const ACTION: &str = "ecs:DescribeServiceRevisions";
            let out = self
                .ecs
                .describe_service_revisions()
                .set_service_revision_arns(Some(arns.to_vec()))
                .send()
                .await
                .map_err(|e| read_error(ACTION, e, &[]).to_string())?;
            let found: Vec<RevisionTargets> =
                out.service_revisions().iter().map(revision).collect();
            if found.is_empty()
                && let Some(f) = out.failures().first()
            {
                return Err(format!(
                    "{ACTION}: {} for {}",
                    f.reason().unwrap_or("no revision in the answer"),
                    f.arn().unwrap_or("the revision")
                ));
            }
            Ok(found)
        })
    }

    fn forward_weights<'a>(
        &'a self,
        rule_arn: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, String>> {
        Box::pin(async move {
            const ACTION: &str = "elasticloadbalancing:DescribeRules";
            let out = self
                .elb
                .describe_rules()
                .rule_arns(rule_arn)
                .send()
                .await
                .map_err(|e| {
                    read_error(ACTION, e, &["RuleNotFound", "ListenerNotFound"]).to_string()
                })?;
            let rule = out
                .rules()
                .iter()
                .find(|r| r.rule_arn() == Some(rule_arn))
                .ok_or_else(|| format!("{ACTION} found no rule {rule_arn}"))?;
            let mut weights = Vec::new();
            for action in rule.actions() {
                let tuples = action
                    .forward_config()
                    .map(|f| f.target_groups())
                    .unwrap_or_default();
                if tuples.is_empty() {
                    // A plain forward to one target group.
                    if let Some(tg) = action.target_group_arn() {
                        weights.push((tg.to_owned(), 1.0));
                    }
                }
                for t in tuples {
                    if let Some(tg) = t.target_group_arn() {
                        // ELB's default weight is 1.
                        weights.push((tg.to_owned(), f64::from(t.weight().unwrap_or(1))));
                    }
                }
            }
            Ok(weights)
        })
    }
}

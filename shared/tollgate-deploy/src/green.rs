//! The deployment's ECS targets and the GREEN task set check: before any
//! request, the replacement task set must be steady, with running = desired
//! (and more than zero) and nothing pending.

use super::discovery::{DeploymentReader, DeploymentTarget, DiscoveryError, ReadError, TaskSet};

/// Why the green task set is not fit to test.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GreenError {
    /// Reading the targets failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// CodeDeploy lists no target for the deployment.
    #[error(
        "deployment {deployment} has no deployment targets (codedeploy:ListDeploymentTargets \
         returned none), so the green task set cannot be verified; check that this is an ECS \
         blue/green deployment, or set TOLLGATE_VERIFY_GREEN=false"
    )]
    NoTargets {
        /// Deployment id.
        deployment: String,
    },
    /// A target has no task set labelled GREEN.
    #[error(
        "deployment target {target} has no GREEN task set (task sets: {seen}); the hook ran before \
         CodeDeploy created the replacement task set: run it at AfterInstall or later, or set \
         TOLLGATE_VERIFY_GREEN=false"
    )]
    NoGreen {
        /// Target id.
        target: String,
        /// What was there.
        seen: String,
    },
    /// The green task set is not steady.
    #[error(
        "green task set {id} of {target} is not ready: running {running} of desired {desired}, \
         pending {pending} (need running = desired > 0 and pending = 0); see the ECS service's \
         events and stopped tasks for why its tasks do not start"
    )]
    NotReady {
        /// Target id (`cluster:service`).
        target: String,
        /// Task set id.
        id: String,
        /// Desired count.
        desired: i64,
        /// Running count.
        running: i64,
        /// Pending count.
        pending: i64,
    },
}

/// Reads every target of the deployment (`ListDeploymentTargets`, then
/// `GetDeploymentTarget` for each).
pub async fn read_targets<D: DeploymentReader>(
    reader: &D,
    deployment_id: &str,
) -> Result<Vec<DeploymentTarget>, GreenError> {
    let ids = reader
        .list_deployment_targets(deployment_id)
        .await
        .map_err(|source| DiscoveryError::Read {
            step: format!("listing the targets of deployment {deployment_id}"),
            source,
        })?;
    if ids.is_empty() {
        return Err(GreenError::NoTargets {
            deployment: deployment_id.to_owned(),
        });
    }
    let mut targets = Vec::with_capacity(ids.len());
    for id in ids {
        let target = reader
            .get_deployment_target(deployment_id, &id)
            .await
            .map_err(|source: ReadError| DiscoveryError::Read {
                step: format!("reading deployment target {id} of {deployment_id}"),
                source,
            })?;
        targets.push(target);
    }
    Ok(targets)
}

/// The GREEN task set of each target, verified steady. Returns them in
/// target order.
pub fn verify_green(targets: &[DeploymentTarget]) -> Result<Vec<(String, TaskSet)>, GreenError> {
    let mut out = Vec::with_capacity(targets.len());
    for target in targets {
        let green = target
            .task_sets
            .iter()
            .find(|t| t.is_green())
            .ok_or_else(|| GreenError::NoGreen {
                target: target.id.clone(),
                seen: if target.task_sets.is_empty() {
                    "none".to_owned()
                } else {
                    target
                        .task_sets
                        .iter()
                        .map(|t| format!("{} {}", t.label.as_deref().unwrap_or("unlabelled"), t.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?;
        if green.desired <= 0 || green.running != green.desired || green.pending != 0 {
            return Err(GreenError::NotReady {
                target: target.id.clone(),
                id: green.id.clone(),
                desired: green.desired,
                running: green.running,
                pending: green.pending,
            });
        }
        out.push((target.id.clone(), green.clone()));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::discovery::LifecycleEvent;

    pub fn task_set(label: &str, desired: i64, running: i64, pending: i64) -> TaskSet {
        TaskSet {
            id: format!("ecs-svc/{}", if label == "Green" { "2222" } else { "1111" }),
            label: Some(label.into()),
            desired,
            pending,
            running,
            status: Some(
                if label == "Green" {
                    "ACTIVE"
                } else {
                    "PRIMARY"
                }
                .into(),
            ),
            traffic_weight: if label == "Green" { 0.0 } else { 100.0 },
            target_group: Some(format!("web-{}", label.to_ascii_lowercase())),
        }
    }

    pub fn target(green: Option<(i64, i64, i64)>, running_hook: &str) -> DeploymentTarget {
        let mut task_sets = vec![task_set("Blue", 2, 2, 0)];
        if let Some((d, r, p)) = green {
            task_sets.push(task_set("Green", d, r, p));
        }
        DeploymentTarget {
            id: "web-cluster:web".into(),
            lifecycle_events: vec![LifecycleEvent {
                name: running_hook.into(),
                status: "InProgress".into(),
            }],
            task_sets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::discovery::fakes::FakeCodeDeploy;

    #[test]
    fn a_steady_green_passes() {
        let found = verify_green(&[target(Some((2, 2, 0)), "BeforeAllowTraffic")]).expect("ok");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.id, "ecs-svc/2222");
    }

    #[test]
    fn pending_tasks_fail_with_the_counts() {
        let err =
            verify_green(&[target(Some((3, 1, 2)), "BeforeAllowTraffic")]).expect_err("pending");
        let text = err.to_string();
        assert!(
            text.contains("green task set ecs-svc/2222 of web-cluster:web is not ready: running 1 of desired 3, pending 2"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_green_fails() {
        let err =
            verify_green(&[target(Some((0, 0, 0)), "BeforeAllowTraffic")]).expect_err("empty");
        assert!(err.to_string().contains("running 0 of desired 0"), "{err}");
    }

    #[test]
    fn a_missing_green_lists_what_is_there() {
        let err = verify_green(&[target(None, "AfterInstall")]).expect_err("no green");
        let text = err.to_string();
        assert!(
            text.contains("no GREEN task set (task sets: Blue ecs-svc/1111)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn targets_are_read_in_order_and_failures_name_the_step() {
        let mut cd = FakeCodeDeploy::default();
        cd.targets.insert(
            "d-1".into(),
            vec![target(Some((1, 1, 0)), "BeforeAllowTraffic")],
        );
        let got = read_targets(&cd, "d-1").await.expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(cd.calls(), ["ListDeploymentTargets", "GetDeploymentTarget"]);

        let err = read_targets(&cd, "d-2").await.expect_err("none");
        assert!(matches!(err, GreenError::NoTargets { .. }));

        cd.fail.insert(
            "ListDeploymentTargets",
            ReadError::Denied {
                action: "codedeploy:ListDeploymentTargets",
                detail: "AccessDeniedException".into(),
            },
        );
        let err = read_targets(&cd, "d-1").await.expect_err("denied");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "listing the targets of deployment d-1: codedeploy:ListDeploymentTargets was denied"
            ),
            "{text}"
        );
    }
}

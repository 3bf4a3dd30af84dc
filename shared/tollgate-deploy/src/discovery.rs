//! Finding what to test from the deployment itself:
//! `GetDeployment` → `GetDeploymentGroup` → the test (or production)
//! listener ARNs → ELBv2 `DescribeListeners` + `DescribeLoadBalancers` → URL.
//!
//! The ports ([`DeploymentReader`], [`ListenerReader`]) carry our own small
//! types; the SDK adapters live in `tollgate_aws::{codedeploy_read, elbv2}`.
//! Every failure names the step that failed and what to do about it.

use super::config::{HookName, parse_target_url};
use reqwest::Url;
use std::future::Future;

/// Why a read call failed, classified for messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The role lacks the permission.
    #[error("{action} was denied ({detail}); add \"{action}\" to the function's execution role")]
    Denied {
        /// IAM action, e.g. `codedeploy:GetDeployment`.
        action: &'static str,
        /// What the service said.
        detail: String,
    },
    /// The thing asked for does not exist.
    #[error("{action} found nothing: {detail}")]
    NotFound {
        /// IAM action.
        action: &'static str,
        /// What the service said.
        detail: String,
    },
    /// Anything else (throttling and 5xx after the SDK's retries, transport).
    #[error("{action} failed: {detail}")]
    Failed {
        /// IAM action.
        action: &'static str,
        /// What the service said.
        detail: String,
    },
}

/// `GetDeployment` → `deploymentInfo`, the parts the hook uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// `d-…`.
    pub id: String,
    /// CodeDeploy application.
    pub application: String,
    /// Deployment group.
    pub group: String,
    /// `ECS`, `Lambda` or `Server`.
    pub compute_platform: String,
    /// `InProgress`, `Succeeded`, ….
    pub status: String,
}

impl Deployment {
    /// Whether this is an ECS blue/green deployment.
    pub fn is_ecs(&self) -> bool {
        self.compute_platform.eq_ignore_ascii_case("ECS")
    }
}

/// An ECS service of a deployment group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsServiceRef {
    /// Cluster name.
    pub cluster: String,
    /// Service name.
    pub service: String,
}

/// `loadBalancerInfo.targetGroupPairInfoList[]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetGroupPair {
    /// Target group names (blue and green).
    pub target_groups: Vec<String>,
    /// `prodTrafficRoute.listenerArns`.
    pub prod_listeners: Vec<String>,
    /// `testTrafficRoute.listenerArns`.
    pub test_listeners: Vec<String>,
}

/// `GetDeploymentGroup` → `deploymentGroupInfo`, the parts the hook uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentGroup {
    /// Name.
    pub name: String,
    /// ECS services.
    pub ecs_services: Vec<EcsServiceRef>,
    /// Listener routes.
    pub target_group_pairs: Vec<TargetGroupPair>,
}

/// A lifecycle event of a deployment target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    /// e.g. `AfterAllowTestTraffic`, `AllowTraffic`.
    pub name: String,
    /// `Pending`, `InProgress`, `Succeeded`, `Failed`, `Skipped`, `Unknown`.
    pub status: String,
}

/// `ecsTarget.taskSetsInfo[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSet {
    /// Task set id (the API spells the field `identifer`).
    pub id: String,
    /// `BLUE` or `GREEN`.
    pub label: Option<String>,
    /// Desired tasks.
    pub desired: i64,
    /// Pending tasks.
    pub pending: i64,
    /// Running tasks.
    pub running: i64,
    /// `PRIMARY`, `ACTIVE`, `DRAINING`.
    pub status: Option<String>,
    /// Percentage of production traffic.
    pub traffic_weight: f64,
    /// Target group name.
    pub target_group: Option<String>,
}

impl TaskSet {
    /// Whether this is the green (replacement) task set.
    pub fn is_green(&self) -> bool {
        self.label
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case("GREEN"))
    }
}

/// `GetDeploymentTarget` → `deploymentTarget.ecsTarget`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploymentTarget {
    /// `cluster:service`.
    pub id: String,
    /// Lifecycle events with their status.
    pub lifecycle_events: Vec<LifecycleEvent>,
    /// Blue and green task sets.
    pub task_sets: Vec<TaskSet>,
}

impl DeploymentTarget {
    /// The hook whose lifecycle event is `InProgress`, if any.
    pub fn running_hook(&self) -> Option<HookName> {
        self.lifecycle_events
            .iter()
            .filter(|e| e.status.eq_ignore_ascii_case("InProgress"))
            .find_map(|e| HookName::parse(&e.name))
    }
}

/// ELBv2 listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener ARN.
    pub arn: String,
    /// Its load balancer.
    pub load_balancer_arn: String,
    /// Port.
    pub port: Option<u16>,
    /// `HTTP`, `HTTPS`, `TCP`, `TLS`, `UDP`, `TCP_UDP`, `GENEVE`.
    pub protocol: Option<String>,
}

/// ELBv2 load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    /// ARN.
    pub arn: String,
    /// DNS name.
    pub dns_name: String,
    /// `internet-facing` or `internal`.
    pub scheme: Option<String>,
}

/// ELBv2 target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// The load balancers that route to it.
    pub load_balancer_arns: Vec<String>,
}

impl TargetGroup {
    /// CloudWatch's `TargetGroup` dimension: `targetgroup/<name>/<id>`.
    pub fn dimension(&self) -> Option<&str> {
        self.arn.find(":targetgroup/").map(|i| &self.arn[i + 1..])
    }
}

/// CloudWatch's `LoadBalancer` dimension of a load balancer ARN:
/// `app/<name>/<id>`.
pub fn load_balancer_dimension(arn: &str) -> Option<&str> {
    const MARK: &str = ":loadbalancer/";
    arn.find(MARK).map(|i| &arn[i + MARK.len()..])
}

/// Port: CodeDeploy reads.
pub trait DeploymentReader: Send + Sync {
    /// `GetDeployment`.
    fn get_deployment(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<Deployment, ReadError>> + Send;
    /// `GetDeploymentGroup`.
    fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> impl Future<Output = Result<DeploymentGroup, ReadError>> + Send;
    /// `ListDeploymentTargets` (all pages).
    fn list_deployment_targets(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, ReadError>> + Send;
    /// `GetDeploymentTarget` for an ECS target.
    fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> impl Future<Output = Result<DeploymentTarget, ReadError>> + Send;
}

/// Port: ELBv2 reads.
pub trait ListenerReader: Send + Sync {
    /// `DescribeListeners` by ARN.
    fn describe_listeners(
        &self,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<Listener>, ReadError>> + Send;
    /// `DescribeLoadBalancers` by ARN.
    fn describe_load_balancers(
        &self,
        arns: &[String],
    ) -> impl Future<Output = Result<Vec<LoadBalancer>, ReadError>> + Send;
    /// `DescribeTargetGroups` by name (the metric gate's dimensions).
    fn describe_target_groups(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<TargetGroup>, ReadError>> + Send;
}

/// Which listener route a hook tests through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `testTrafficRoute`.
    Test,
    /// `prodTrafficRoute`.
    Production,
}

impl Route {
    /// The route a hook tests through.
    pub fn for_hook(hook: HookName) -> Self {
        if hook.uses_production_route() {
            Self::Production
        } else {
            Self::Test
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Test => "test traffic route",
            Self::Production => "production traffic route",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Self::Test => "set TARGET_URL or add a test listener",
            Self::Production => {
                "set TARGET_URL or add the production listener to the group's load balancer info"
            }
        }
    }
}

/// A discovery failure: the step and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// An API call failed.
    #[error("{step}: {source}")]
    Read {
        /// What was being done.
        step: String,
        /// Why it failed.
        source: ReadError,
    },
    /// Not an ECS deployment: there is no listener pair to look at.
    #[error(
        "deployment {deployment} is a {platform} deployment, which has no load balancer listener \
         to discover; set TARGET_URL to the address to check"
    )]
    NotEcs {
        /// Deployment id.
        deployment: String,
        /// Compute platform.
        platform: String,
    },
    /// The hook runs before any listener routes to green.
    #[error(
        "{hook} runs before any listener routes to the green task set, so there is no target to \
         discover; set TARGET_URL, or run this function at AfterAllowTestTraffic or BeforeAllowTraffic"
    )]
    TooEarly {
        /// The hook.
        hook: HookName,
    },
    /// The group has no load balancer info at all.
    #[error(
        "deployment group '{group}' has no target group pair in its load balancer info; \
         set TARGET_URL or configure the group's load balancer (listeners and target groups)"
    )]
    NoLoadBalancer {
        /// Group name.
        group: String,
    },
    /// The route the hook needs has no listener.
    #[error("deployment group '{group}' has no {}; {}", route.noun(), route.fix())]
    NoRoute {
        /// Group name.
        group: String,
        /// Which route.
        route: Route,
    },
    /// A listener ARN of the group is unknown to ELBv2.
    #[error(
        "listener {arn} of deployment group '{group}' was not found by \
         elasticloadbalancing:DescribeListeners; fix the group's {} or set TARGET_URL",
        route.noun()
    )]
    ListenerMissing {
        /// Group name.
        group: String,
        /// Listener ARN.
        arn: String,
        /// Which route.
        route: Route,
    },
    /// The listener's load balancer is unknown to ELBv2.
    #[error(
        "load balancer {arn} of listener {listener} was not found by \
         elasticloadbalancing:DescribeLoadBalancers; set TARGET_URL"
    )]
    LoadBalancerMissing {
        /// Load balancer ARN.
        arn: String,
        /// Listener ARN.
        listener: String,
    },
    /// The listener does not speak something HTTP checks can use.
    #[error(
        "listener {arn} uses protocol {protocol}, which HTTP checks cannot reach; set TARGET_URL \
         to the HTTP(S) address of the green task set"
    )]
    Protocol {
        /// Listener ARN.
        arn: String,
        /// Its protocol.
        protocol: String,
    },
    /// The parts found do not make a URL.
    #[error("the address built from listener {arn} ({detail}) is not a valid URL; set TARGET_URL")]
    BadUrl {
        /// Listener ARN.
        arn: String,
        /// What went wrong.
        detail: String,
    },
}

/// The test address found for a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredTarget {
    /// Base URL (no trailing path), e.g. `http://web-alb-1.eu-west-1.elb.amazonaws.com:8080`.
    pub url: Url,
    /// The listener it came from.
    pub listener_arn: String,
    /// The route it came from.
    pub route: Route,
    /// `internet-facing` or `internal`.
    pub scheme: Option<String>,
}

/// Reads the deployment (`GetDeployment`).
pub async fn read_deployment<D: DeploymentReader>(
    reader: &D,
    deployment_id: &str,
) -> Result<Deployment, DiscoveryError> {
    reader
        .get_deployment(deployment_id)
        .await
        .map_err(|source| DiscoveryError::Read {
            step: format!("looking up deployment {deployment_id}"),
            source,
        })
}

/// Reads the deployment group (`GetDeploymentGroup`).
pub async fn read_group<D: DeploymentReader>(
    reader: &D,
    deployment: &Deployment,
) -> Result<DeploymentGroup, DiscoveryError> {
    reader
        .get_deployment_group(&deployment.application, &deployment.group)
        .await
        .map_err(|source| DiscoveryError::Read {
            step: format!(
                "looking up deployment group '{}' of application '{}'",
                deployment.group, deployment.application
            ),
            source,
        })
}

/// Finds the URL that reaches green at `hook`: the group's listener for the
/// hook's route, its load balancer's DNS name, and its port and protocol.
pub async fn discover_target<L: ListenerReader>(
    elb: &L,
    deployment: &Deployment,
    group: &DeploymentGroup,
    hook: HookName,
) -> Result<DiscoveredTarget, DiscoveryError> {
    if !deployment.is_ecs() {
        return Err(DiscoveryError::NotEcs {
            deployment: deployment.id.clone(),
            platform: deployment.compute_platform.clone(),
        });
    }
    if !hook.has_listener_to_green() {
        return Err(DiscoveryError::TooEarly { hook });
    }
    if group.target_group_pairs.is_empty() {
        return Err(DiscoveryError::NoLoadBalancer {
            group: group.name.clone(),
        });
    }
    let route = Route::for_hook(hook);
    let listener_arn = group
        .target_group_pairs
        .iter()
        .flat_map(|p| match route {
            Route::Test => p.test_listeners.iter(),
            Route::Production => p.prod_listeners.iter(),
        })
        .find(|arn| !arn.trim().is_empty())
        .cloned()
        .ok_or_else(|| DiscoveryError::NoRoute {
            group: group.name.clone(),
            route,
        })?;

    let listeners = elb
        .describe_listeners(std::slice::from_ref(&listener_arn))
        .await
        .map_err(|source| match source {
            ReadError::NotFound { .. } => DiscoveryError::ListenerMissing {
                group: group.name.clone(),
                arn: listener_arn.clone(),
                route,
            },
            source => DiscoveryError::Read {
                step: format!("reading listener {listener_arn}"),
                source,
            },
        })?;
    let listener = listeners
        .into_iter()
        .find(|l| l.arn == listener_arn)
        .ok_or_else(|| DiscoveryError::ListenerMissing {
            group: group.name.clone(),
            arn: listener_arn.clone(),
            route,
        })?;

    let lb_arn = listener.load_balancer_arn.clone();
    let balancers = elb
        .describe_load_balancers(std::slice::from_ref(&lb_arn))
        .await
        .map_err(|source| match source {
            ReadError::NotFound { .. } => DiscoveryError::LoadBalancerMissing {
                arn: lb_arn.clone(),
                listener: listener_arn.clone(),
            },
            source => DiscoveryError::Read {
                step: format!("reading load balancer {lb_arn}"),
                source,
            },
        })?;
    let lb = balancers
        .into_iter()
        .find(|b| b.arn == lb_arn)
        .ok_or_else(|| DiscoveryError::LoadBalancerMissing {
            arn: lb_arn.clone(),
            listener: listener_arn.clone(),
        })?;

    let url = listener_url(&listener, &lb)?;
    Ok(DiscoveredTarget {
        url,
        listener_arn,
        route,
        scheme: lb.scheme,
    })
}

/// `scheme://dns[:port]` for a listener; the port is left out when it is
/// the scheme's default.
pub fn listener_url(listener: &Listener, lb: &LoadBalancer) -> Result<Url, DiscoveryError> {
    let protocol = listener
        .protocol
        .clone()
        .unwrap_or_else(|| "HTTP".to_owned())
        .to_ascii_uppercase();
    let scheme = match protocol.as_str() {
        "HTTP" | "TCP" => "http",
        "HTTPS" | "TLS" => "https",
        _ => {
            return Err(DiscoveryError::Protocol {
                arn: listener.arn.clone(),
                protocol,
            });
        }
    };
    let host = lb.dns_name.trim().trim_end_matches('.');
    if host.is_empty() {
        return Err(DiscoveryError::BadUrl {
            arn: listener.arn.clone(),
            detail: format!("load balancer {} has no DNS name", lb.arn),
        });
    }
    let text = match listener.port {
        Some(80) if scheme == "http" => format!("{scheme}://{host}"),
        Some(443) if scheme == "https" => format!("{scheme}://{host}"),
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    };
    parse_target_url("discovered target", &text).map_err(|e| DiscoveryError::BadUrl {
        arn: listener.arn.clone(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod fakes {
    //! In-memory fakes of the ports, recording every call.

    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A scripted CodeDeploy.
    #[derive(Debug, Default)]
    pub struct FakeCodeDeploy {
        pub deployments: HashMap<String, Deployment>,
        pub groups: HashMap<String, DeploymentGroup>,
        pub targets: HashMap<String, Vec<DeploymentTarget>>,
        pub fail: HashMap<&'static str, ReadError>,
        pub calls: Mutex<Vec<String>>,
    }

    impl FakeCodeDeploy {
        fn record(&self, op: &'static str) -> Result<(), ReadError> {
            self.calls.lock().expect("lock").push(op.to_owned());
            match self.fail.get(op) {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            }
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
    }

    fn not_found(action: &'static str, what: &str) -> ReadError {
        ReadError::NotFound {
            action,
            detail: format!("{what} does not exist"),
        }
    }

    impl DeploymentReader for FakeCodeDeploy {
        async fn get_deployment(&self, id: &str) -> Result<Deployment, ReadError> {
            self.record("GetDeployment")?;
            self.deployments
                .get(id)
                .cloned()
                .ok_or_else(|| not_found("codedeploy:GetDeployment", id))
        }

        async fn get_deployment_group(
            &self,
            _app: &str,
            group: &str,
        ) -> Result<DeploymentGroup, ReadError> {
            self.record("GetDeploymentGroup")?;
            self.groups
                .get(group)
                .cloned()
                .ok_or_else(|| not_found("codedeploy:GetDeploymentGroup", group))
        }

        async fn list_deployment_targets(&self, id: &str) -> Result<Vec<String>, ReadError> {
            self.record("ListDeploymentTargets")?;
            Ok(self
                .targets
                .get(id)
                .map(|t| t.iter().map(|t| t.id.clone()).collect())
                .unwrap_or_default())
        }

        async fn get_deployment_target(
            &self,
            id: &str,
            target: &str,
        ) -> Result<DeploymentTarget, ReadError> {
            self.record("GetDeploymentTarget")?;
            self.targets
                .get(id)
                .and_then(|t| t.iter().find(|t| t.id == target))
                .cloned()
                .ok_or_else(|| not_found("codedeploy:GetDeploymentTarget", target))
        }
    }

    /// A scripted ELBv2.
    #[derive(Debug, Default)]
    pub struct FakeElb {
        pub listeners: Vec<Listener>,
        pub balancers: Vec<LoadBalancer>,
        pub target_groups: Vec<TargetGroup>,
        pub fail: HashMap<&'static str, ReadError>,
        pub calls: Mutex<Vec<String>>,
    }

    impl FakeElb {
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
    }

    impl ListenerReader for FakeElb {
        async fn describe_listeners(&self, arns: &[String]) -> Result<Vec<Listener>, ReadError> {
            self.calls
                .lock()
                .expect("lock")
                .push("DescribeListeners".into());
            if let Some(e) = self.fail.get("DescribeListeners") {
                return Err(e.clone());
            }
            let found: Vec<Listener> = self
                .listeners
                .iter()
                .filter(|l| arns.contains(&l.arn))
                .cloned()
                .collect();
            if found.is_empty() {
                return Err(not_found(
                    "elasticloadbalancing:DescribeListeners",
                    "listener",
                ));
            }
            Ok(found)
        }

        async fn describe_load_balancers(
            &self,
            arns: &[String],
        ) -> Result<Vec<LoadBalancer>, ReadError> {
            self.calls
                .lock()
                .expect("lock")
                .push("DescribeLoadBalancers".into());
            Ok(self
                .balancers
                .iter()
                .filter(|b| arns.contains(&b.arn))
                .cloned()
                .collect())
        }

        async fn describe_target_groups(
            &self,
            names: &[String],
        ) -> Result<Vec<TargetGroup>, ReadError> {
            self.calls
                .lock()
                .expect("lock")
                .push("DescribeTargetGroups".into());
            if let Some(e) = self.fail.get("DescribeTargetGroups") {
                return Err(e.clone());
            }
            Ok(self
                .target_groups
                .iter()
                .filter(|t| names.contains(&t.name))
                .cloned()
                .collect())
        }
    }

    /// A target group `web-<color>` on [`LB`].
    pub fn target_group(color: &str, id: &str) -> TargetGroup {
        TargetGroup {
            name: format!("web-{color}"),
            arn: format!(
                "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web-{color}/{id}"
            ),
            load_balancer_arns: vec![LB.into()],
        }
    }

    pub const TEST_LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc6c495c0c9188/test";
    pub const PROD_LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc6c495c0c9188/prod";
    pub const LB: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188";

    pub fn deployment(platform: &str) -> Deployment {
        Deployment {
            id: "d-TOLLGATE1".into(),
            application: "web-app".into(),
            group: "web-dg".into(),
            compute_platform: platform.into(),
            status: "InProgress".into(),
        }
    }

    pub fn group(test: bool) -> DeploymentGroup {
        DeploymentGroup {
            name: "web-dg".into(),
            ecs_services: vec![EcsServiceRef {
                cluster: "web-cluster".into(),
                service: "web".into(),
            }],
            target_group_pairs: vec![TargetGroupPair {
                target_groups: vec!["web-blue".into(), "web-green".into()],
                prod_listeners: vec![PROD_LISTENER.into()],
                test_listeners: if test {
                    vec![TEST_LISTENER.into()]
                } else {
                    vec![]
                },
            }],
        }
    }

    pub fn elb() -> FakeElb {
        FakeElb {
            listeners: vec![
                Listener {
                    arn: TEST_LISTENER.into(),
                    load_balancer_arn: LB.into(),
                    port: Some(8080),
                    protocol: Some("HTTP".into()),
                },
                Listener {
                    arn: PROD_LISTENER.into(),
                    load_balancer_arn: LB.into(),
                    port: Some(443),
                    protocol: Some("HTTPS".into()),
                },
            ],
            balancers: vec![LoadBalancer {
                arn: LB.into(),
                dns_name: "web-1234567890.eu-west-1.elb.amazonaws.com".into(),
                scheme: Some("internet-facing".into()),
            }],
            target_groups: vec![
                target_group("blue", "1111111111111111"),
                target_group("green", "2222222222222222"),
            ],
            ..FakeElb::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fakes::*;
    use super::*;

    #[tokio::test]
    async fn test_hooks_use_the_test_listener() {
        let elb = elb();
        for hook in [
            HookName::AfterAllowTestTraffic,
            HookName::BeforeAllowTraffic,
        ] {
            let t = discover_target(&elb, &deployment("ECS"), &group(true), hook)
                .await
                .expect("found");
            assert_eq!(
                t.url.as_str(),
                "http://web-1234567890.eu-west-1.elb.amazonaws.com:8080/"
            );
            assert_eq!(t.route, Route::Test);
            assert_eq!(t.listener_arn, TEST_LISTENER);
        }
        assert_eq!(
            elb.calls(),
            ["DescribeListeners", "DescribeLoadBalancers"].repeat(2)
        );
    }

    #[tokio::test]
    async fn after_allow_traffic_uses_the_production_listener() {
        let t = discover_target(
            &elb(),
            &deployment("ECS"),
            &group(false),
            HookName::AfterAllowTraffic,
        )
        .await
        .expect("found");
        assert_eq!(
            t.url.as_str(),
            "https://web-1234567890.eu-west-1.elb.amazonaws.com/"
        );
        assert_eq!(t.route, Route::Production);
    }

    #[tokio::test]
    async fn a_group_without_a_test_listener_names_the_fix() {
        let err = discover_target(
            &elb(),
            &deployment("ECS"),
            &group(false),
            HookName::BeforeAllowTraffic,
        )
        .await
        .expect_err("no test route");
        assert_eq!(
            err.to_string(),
            "deployment group 'web-dg' has no test traffic route; set TARGET_URL or add a test listener"
        );
    }

    #[tokio::test]
    async fn each_step_names_its_failure() {
        let mut no_lb = group(true);
        no_lb.target_group_pairs.clear();
        let err = discover_target(
            &elb(),
            &deployment("ECS"),
            &no_lb,
            HookName::BeforeAllowTraffic,
        )
        .await
        .expect_err("no lb");
        assert!(err.to_string().contains("no target group pair"), "{err}");

        let err = discover_target(
            &elb(),
            &deployment("Lambda"),
            &group(true),
            HookName::BeforeAllowTraffic,
        )
        .await
        .expect_err("lambda");
        assert!(
            err.to_string()
                .starts_with("deployment d-TOLLGATE1 is a Lambda deployment"),
            "{err}"
        );

        let err = discover_target(
            &elb(),
            &deployment("ECS"),
            &group(true),
            HookName::AfterInstall,
        )
        .await
        .expect_err("too early");
        assert!(
            err.to_string().starts_with("AfterInstall runs before"),
            "{err}"
        );

        let mut gone = elb();
        gone.listeners.clear();
        let err = discover_target(
            &gone,
            &deployment("ECS"),
            &group(true),
            HookName::BeforeAllowTraffic,
        )
        .await
        .expect_err("listener gone");
        assert!(
            err.to_string()
                .contains("was not found by elasticloadbalancing:DescribeListeners"),
            "{err}"
        );

        let mut denied = elb();
        denied.fail.insert(
            "DescribeListeners",
            ReadError::Denied {
                action: "elasticloadbalancing:DescribeListeners",
                detail: "AccessDenied".into(),
            },
        );
        let err = discover_target(
            &denied,
            &deployment("ECS"),
            &group(true),
            HookName::BeforeAllowTraffic,
        )
        .await
        .expect_err("denied");
        let text = err.to_string();
        assert!(
            text.starts_with("reading listener arn:aws:elasticloadbalancing"),
            "{text}"
        );
        assert!(
            text.contains(
                "add \"elasticloadbalancing:DescribeListeners\" to the function's execution role"
            ),
            "{text}"
        );

        let mut no_balancer = elb();
        no_balancer.balancers.clear();
        let err = discover_target(
            &no_balancer,
            &deployment("ECS"),
            &group(true),
            HookName::BeforeAllowTraffic,
        )
        .await
        .expect_err("lb gone");
        assert!(err.to_string().contains("DescribeLoadBalancers"), "{err}");
    }

    #[test]
    fn listener_protocols_map_to_schemes() {
        let lb = LoadBalancer {
            arn: LB.into(),
            dns_name: "nlb.example.com.".into(),
            scheme: None,
        };
        let l = |protocol: &str, port: u16| Listener {
            arn: "arn:l".into(),
            load_balancer_arn: LB.into(),
            port: Some(port),
            protocol: Some(protocol.into()),
        };
        let url = |p, port| listener_url(&l(p, port), &lb).map(|u| u.to_string());
        assert_eq!(url("HTTP", 80).expect("ok"), "http://nlb.example.com/");
        assert_eq!(
            url("TLS", 8443).expect("ok"),
            "https://nlb.example.com:8443/"
        );
        assert_eq!(
            url("TCP", 9000).expect("ok"),
            "http://nlb.example.com:9000/"
        );
        let err = url("UDP", 53).expect_err("udp");
        assert!(err.to_string().contains("protocol UDP"), "{err}");
    }

    #[test]
    fn the_running_hook_comes_from_the_in_progress_event() {
        let target = DeploymentTarget {
            id: "c:s".into(),
            lifecycle_events: [
                ("BeforeInstall", "Succeeded"),
                ("Install", "Succeeded"),
                ("AllowTestTraffic", "Succeeded"),
                ("AfterAllowTestTraffic", "Succeeded"),
                ("BeforeAllowTraffic", "InProgress"),
                ("AllowTraffic", "Pending"),
            ]
            .into_iter()
            .map(|(n, s)| LifecycleEvent {
                name: n.into(),
                status: s.into(),
            })
            .collect(),
            task_sets: vec![],
        };
        assert_eq!(target.running_hook(), Some(HookName::BeforeAllowTraffic));
        assert_eq!(DeploymentTarget::default().running_hook(), None);
    }
}

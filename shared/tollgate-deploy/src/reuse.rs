//! Reads that one warm process may answer from memory (issue 21, warm
//! path): only what cannot change while a deployment runs.
//!
//! - **The targets of an ECS deployment** (`ListDeploymentTargets`). An ECS
//!   blue/green deployment has one target, `cluster:service`, fixed when
//!   CodeDeploy creates it; a deployment's hooks (AfterInstall,
//!   AfterAllowTestTraffic, BeforeAllowTraffic, AfterAllowTraffic) and a
//!   metric gate's measurements all ask for the same list. The callers ask
//!   only for ECS deployments ([`crate::green::read_targets`]). An empty list
//!   is never kept, so "no targets" is always read again.
//! - **A load balancer's DNS name and scheme** (`DescribeLoadBalancers`):
//!   both are fixed for the life of its ARN.
//!
//! Everything that decides whether work is still wanted, or what state the
//! deployment is in, is read fresh every time: `GetDeployment` (the
//! deployment is still in progress), `GetDeploymentTarget` (which hook runs,
//! green's running and desired tasks), the deployment group and the
//! listener (its port and protocol can be modified). So is every failure:
//! nothing but a successful answer is kept.
//!
//! The memory is bounded: the last [`CAPACITY`] answers of each kind.

use crate::discovery::{
    Deployment, DeploymentGroup, DeploymentReader, DeploymentTarget, Listener, ListenerReader,
    LoadBalancer, ReadError, TargetGroup,
};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Answers kept per kind (a warm process serves a handful of deployments).
pub const CAPACITY: usize = 16;

/// The last [`CAPACITY`] answers by key, oldest dropped first.
#[derive(Debug)]
struct Recent<V> {
    entries: Mutex<VecDeque<(String, V)>>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(VecDeque::with_capacity(CAPACITY)),
        }
    }
}

impl<V: Clone> Recent<V> {
    fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(k, _)| *k != key);
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back((key, value));
    }
}

/// A [`DeploymentReader`] that keeps the targets of each deployment.
#[derive(Debug)]
pub struct ReusingDeployments<D> {
    inner: D,
    targets: Recent<Vec<String>>,
}

impl<D> ReusingDeployments<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            targets: Recent::default(),
        }
    }
}

impl<D: DeploymentReader> DeploymentReader for ReusingDeployments<D> {
    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, ReadError> {
        self.inner.get_deployment(deployment_id).await
    }

    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, ReadError> {
        self.inner.get_deployment_group(application, group).await
    }

    async fn list_deployment_targets(&self, deployment_id: &str) -> Result<Vec<String>, ReadError> {
        if let Some(ids) = self.targets.get(deployment_id) {
            return Ok(ids);
        }
        let ids = self.inner.list_deployment_targets(deployment_id).await?;
        if !ids.is_empty() {
            self.targets.put(deployment_id.to_owned(), ids.clone());
        }
        Ok(ids)
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, ReadError> {
        self.inner
            .get_deployment_target(deployment_id, target_id)
            .await
    }
}

/// A [`ListenerReader`] that keeps load balancers by ARN.
#[derive(Debug)]
pub struct ReusingListeners<L> {
    inner: L,
    balancers: Recent<LoadBalancer>,
}

impl<L> ReusingListeners<L> {
    /// Wraps `inner`.
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            balancers: Recent::default(),
        }
    }
}

impl<L: ListenerReader> ListenerReader for ReusingListeners<L> {
    async fn describe_listeners(&self, arns: &[String]) -> Result<Vec<Listener>, ReadError> {
        self.inner.describe_listeners(arns).await
    }

    async fn describe_load_balancers(
        &self,
        arns: &[String],
    ) -> Result<Vec<LoadBalancer>, ReadError> {
        let kept: Vec<LoadBalancer> = arns.iter().filter_map(|a| self.balancers.get(a)).collect();
        if kept.len() == arns.len() {
            return Ok(kept);
        }
        let found = self.inner.describe_load_balancers(arns).await?;
        for lb in &found {
            self.balancers.put(lb.arn.clone(), lb.clone());
        }
        Ok(found)
    }

    async fn describe_target_groups(
        &self,
        names: &[String],
    ) -> Result<Vec<TargetGroup>, ReadError> {
        self.inner.describe_target_groups(names).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::fakes::FakeCodeDeploy;
    use crate::green::fixtures::target;

    fn reader() -> ReusingDeployments<FakeCodeDeploy> {
        let mut cd = FakeCodeDeploy::default();
        cd.targets.insert(
            "d-1".into(),
            vec![target(Some((2, 2, 0)), "BeforeAllowTraffic")],
        );
        ReusingDeployments::new(cd)
    }

    #[tokio::test]
    async fn the_targets_of_a_deployment_are_listed_once_and_read_every_time() {
        let r = reader();
        for _ in 0..3 {
            let ids = r.list_deployment_targets("d-1").await.expect("list");
            assert_eq!(ids.len(), 1);
            r.get_deployment_target("d-1", &ids[0]).await.expect("get");
            r.get_deployment("d-1").await.ok();
        }
        let calls = r.inner.calls();
        let count = |op: &str| calls.iter().filter(|c| *c == op).count();
        assert_eq!(count("ListDeploymentTargets"), 1);
        assert_eq!(count("GetDeploymentTarget"), 3, "state is read fresh");
        assert_eq!(count("GetDeployment"), 3, "liveness is read fresh");
    }

    #[tokio::test]
    async fn no_targets_and_failures_are_never_kept() {
        let r = reader();
        assert!(
            r.list_deployment_targets("d-none")
                .await
                .expect("list")
                .is_empty()
        );
        assert!(
            r.list_deployment_targets("d-none")
                .await
                .expect("list")
                .is_empty()
        );
        let mut failing = FakeCodeDeploy::default();
        failing.fail.insert(
            "ListDeploymentTargets",
            ReadError::Failed {
                action: "codedeploy:ListDeploymentTargets",
                detail: "throttled".into(),
            },
        );
        let f = ReusingDeployments::new(failing);
        assert!(f.list_deployment_targets("d-1").await.is_err());
        assert!(f.list_deployment_targets("d-1").await.is_err());
        assert_eq!(f.inner.calls().len(), 2);
        assert_eq!(
            r.inner
                .calls()
                .iter()
                .filter(|c| *c == "ListDeploymentTargets")
                .count(),
            2
        );
    }

    #[tokio::test]
    async fn the_oldest_deployment_is_dropped_past_the_capacity() {
        let mut cd = FakeCodeDeploy::default();
        for i in 0..=CAPACITY {
            cd.targets.insert(
                format!("d-{i}"),
                vec![target(Some((1, 1, 0)), "BeforeAllowTraffic")],
            );
        }
        let r = ReusingDeployments::new(cd);
        for i in 0..=CAPACITY {
            r.list_deployment_targets(&format!("d-{i}"))
                .await
                .expect("list");
        }
        // d-0 was dropped for d-16; d-16 is still kept.
        r.list_deployment_targets("d-0").await.expect("list");
        r.list_deployment_targets(&format!("d-{CAPACITY}"))
            .await
            .expect("list");
        assert_eq!(r.inner.calls().len(), CAPACITY + 2);
    }

    #[tokio::test]
    async fn load_balancers_are_kept_and_listeners_read_every_time() {
        let elb = ReusingListeners::new(crate::discovery::fakes::elb());
        let lb = elb.inner.balancers[0].arn.clone();
        let listener = elb.inner.listeners[0].arn.clone();
        for _ in 0..3 {
            let got = elb
                .describe_load_balancers(std::slice::from_ref(&lb))
                .await
                .expect("lbs");
            assert_eq!(got.len(), 1);
            elb.describe_listeners(std::slice::from_ref(&listener))
                .await
                .expect("listeners");
        }
        let calls = elb.inner.calls();
        let count = |op: &str| calls.iter().filter(|c| *c == op).count();
        assert_eq!(count("DescribeLoadBalancers"), 1);
        assert_eq!(count("DescribeListeners"), 3);
        // Not found is not kept: an unknown ARN is asked every time.
        let unknown =
            vec!["arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/x/1".to_owned()];
        elb.describe_load_balancers(&unknown).await.expect("lbs");
        elb.describe_load_balancers(&unknown).await.expect("lbs");
        assert_eq!(
            elb.inner
                .calls()
                .iter()
                .filter(|c| *c == "DescribeLoadBalancers")
                .count(),
            3
        );
    }
}

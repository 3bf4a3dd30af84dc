//! The ECS pause request's buttons: the handoff from the notifier (which
//! posts **Continue** / **Roll back** when an ECS service deployment waits
//! at a `PAUSE` lifecycle hook, `ECS Hook State Change` /
//! `HOOK_AWAITING_ACTION`) to the `approvals` function (which answers the
//! clicks with `ContinueServiceDeployment`). One definition of the action
//! ids and of what a button carries, so the two cannot drift apart.
//!
//! A button carries the service deployment's ARN and the paused hook's id,
//! both from the event, and the lifecycle stage for display. Nothing in it
//! is secret, but nothing in it is trusted either: the endpoint checks the
//! ARN's shape, that its service is configured and that the clicker may
//! decide for it, then asks ECS (`DescribeServiceDeployments`) whether that
//! very hook still waits before acting.
//!
//! The value is compact JSON (`{"v":1,"d":…,"h":…,"st":…}`), at most
//! [`MAX_VALUE`] characters (Slack's limit for a button value is 2,000).

use serde::{Deserialize, Serialize};

/// `action_id` of the Continue button.
pub const CONTINUE: &str = "tollgate.ecs_pause.continue";
/// `action_id` of the Roll back button.
pub const ROLLBACK: &str = "tollgate.ecs_pause.rollback";
/// `block_id` of the actions block holding both buttons.
pub const BLOCK: &str = "tollgate.ecs_pause";
/// Longest button value Tollgate writes or reads.
pub const MAX_VALUE: usize = 2000;
/// Longest service deployment ARN accepted (IAM's ARN limit).
const ARN_MAX: usize = 1600;
/// Longest hook id accepted.
const HOOK_MAX: usize = 256;

/// What a pause button is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRef {
    /// Format version (1).
    #[serde(rename = "v")]
    pub version: u8,
    /// The service deployment ARN
    /// (`arn:<partition>:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>`).
    #[serde(rename = "d")]
    pub deployment: String,
    /// The paused hook's id (`ecs-pause-…`).
    #[serde(rename = "h")]
    pub hook: String,
    /// The lifecycle stage it pauses at (display only).
    #[serde(rename = "st", default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// Why a button value was refused (never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PauseValueError {
    /// Longer than [`MAX_VALUE`].
    #[error("the button value is {0} characters long (at most {MAX_VALUE})")]
    TooLong(usize),
    /// Not the JSON object described above.
    #[error("the button value is not a Tollgate ECS pause reference")]
    Shape,
    /// A version this build does not know.
    #[error("the button value has format version {0}; this build reads version 1")]
    Version(u8),
    /// The deployment is not a service deployment ARN.
    #[error(
        "the button value's deployment is not an ECS service deployment ARN (arn:<partition>:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>)"
    )]
    Deployment,
    /// The hook id is empty, too long or has characters ECS does not use.
    #[error("the button value's hook id is empty, longer than {HOOK_MAX} or not [A-Za-z0-9_-]")]
    Hook,
}

/// The parts of a service deployment ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentArn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// The region.
    pub region: &'a str,
    /// The account.
    pub account: &'a str,
    /// The cluster's name.
    pub cluster: &'a str,
    /// The service's name.
    pub service: &'a str,
    /// The deployment's id.
    pub id: &'a str,
}

/// The ECS services whose paused deployments may be decided in Slack:
/// `<cluster>/<service>` names, comma-separated (the template's
/// `ApprovalEcsServices`, given to the approvals function and to the
/// notifier, which posts Continue / Roll back only for them). Empty or
/// unset: no service.
pub const SERVICES_VAR: &str = "TOLLGATE_APPROVAL_ECS_SERVICES";
/// Most services the template can grant (one IAM resource each).
pub const MAX_SERVICES: usize = 5;

/// Reads [`SERVICES_VAR`]: `<cluster>/<service>` names, at most
/// [`MAX_SERVICES`]. Unset or empty: none.
pub fn services_from_env(
    env: &impl crate::config::Env,
) -> Result<Vec<String>, crate::config::ConfigError> {
    let raw = env.get(SERVICES_VAR).unwrap_or_default();
    let services: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let expected =
        "prod/checkout-web,prod/api (<cluster>/<service> names of this account and region)";
    if let Some(bad) = services.iter().find(|s| {
        !s.split_once('/')
            .is_some_and(|(c, v)| is_name(c, 255) && is_name(v, 255))
    }) {
        return Err(crate::config::ConfigError::invalid(
            SERVICES_VAR,
            &crate::text::ellipsize(bad, 80),
            "not a <cluster>/<service> name pair (an ARN does not work here)",
            expected,
        ));
    }
    if services.len() > MAX_SERVICES {
        return Err(crate::config::ConfigError::invalid(
            SERVICES_VAR,
            &format!("{} services", services.len()),
            format!("the template grants at most {MAX_SERVICES} services"),
            expected,
        ));
    }
    Ok(services)
}

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Splits a service deployment ARN, or `None` when it is not one.
pub fn parse_deployment_arn(arn: &str) -> Option<DeploymentArn<'_>> {
    if arn.len() > ARN_MAX {
        return None;
    }
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("ecs"), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let rest = resource.strip_prefix("service-deployment/")?;
    let mut segs = rest.split('/');
    let (Some(cluster), Some(service), Some(id), None) =
        (segs.next(), segs.next(), segs.next(), segs.next())
    else {
        return None;
    };
    let ok = is_name(partition, 32)
        && is_name(region, 32)
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && is_name(cluster, 255)
        && is_name(service, 255)
        && is_name(id, 255);
    ok.then_some(DeploymentArn {
        partition,
        region,
        account,
        cluster,
        service,
        id,
    })
}

impl PauseRef {
    /// A reference to the hook `hook` of the service deployment `deployment`.
    pub fn new(deployment: &str, hook: &str, stage: Option<&str>) -> Self {
        Self {
            version: 1,
            deployment: deployment.to_owned(),
            hook: hook.to_owned(),
            stage: stage.map(str::to_owned),
        }
    }

    /// The button value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a button value, checking its shape.
    pub fn decode(value: &str) -> Result<Self, PauseValueError> {
        let n = value.chars().count();
        if n > MAX_VALUE {
            return Err(PauseValueError::TooLong(n));
        }
        let r: Self = serde_json::from_str(value).map_err(|_| PauseValueError::Shape)?;
        if r.version != 1 {
            return Err(PauseValueError::Version(r.version));
        }
        r.check()?;
        Ok(r)
    }

    /// Checks the ARN and the hook id.
    pub fn check(&self) -> Result<(), PauseValueError> {
        if parse_deployment_arn(&self.deployment).is_none() {
            return Err(PauseValueError::Deployment);
        }
        if !is_name(&self.hook, HOOK_MAX) {
            return Err(PauseValueError::Hook);
        }
        if self
            .stage
            .as_deref()
            .is_some_and(|s| !s.is_empty() && !is_name(s, 64))
        {
            return Err(PauseValueError::Shape);
        }
        Ok(())
    }

    /// The deployment's parts (`None` only for a reference never checked).
    pub fn arn(&self) -> Option<DeploymentArn<'_>> {
        parse_deployment_arn(&self.deployment)
    }

    /// `<cluster>/<service>`, the key of the approvers document and of the
    /// configured services.
    pub fn service_key(&self) -> Option<String> {
        self.arn().map(|a| format!("{}/{}", a.cluster, a.service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/0EYSiB0qap8xf0N76FsbE";

    #[test]
    fn a_reference_round_trips_and_names_its_service() {
        let r = PauseRef::new(
            ARN,
            "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw",
            Some("POST_TEST_TRAFFIC_SHIFT"),
        );
        let v = r.encode();
        assert_eq!(PauseRef::decode(&v), Ok(r.clone()));
        assert_eq!(r.service_key().as_deref(), Some("my-cluster/my-service"));
        let a = r.arn().expect("arn");
        assert_eq!(
            (a.partition, a.region, a.account, a.id),
            ("aws", "us-west-2", "123456789012", "0EYSiB0qap8xf0N76FsbE")
        );
    }

    #[test]
    fn odd_values_are_refused_without_quoting_them() {
        assert_eq!(PauseRef::decode("xoxb-1"), Err(PauseValueError::Shape));
        assert_eq!(
            PauseRef::decode(&format!(r#"{{"v":2,"d":"{ARN}","h":"ecs-pause-1"}}"#)),
            Err(PauseValueError::Version(2))
        );
        for bad in [
            "arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service",
            "arn:aws:ecs:us-west-2:123456789012:service-deployment/c/s",
            "arn:aws:ecs:us-west-2:123456789012:service-deployment/c/s/id/more",
            "arn:aws:codepipeline:us-west-2:123456789012:service-deployment/c/s/id",
            "arn:aws:ecs:us-west-2:12345:service-deployment/c/s/id",
            "arn:aws:ecs:us-west-2:123456789012:service-deployment/c/s<!channel>/id",
        ] {
            let v = PauseRef::new(bad, "ecs-pause-1", None).encode();
            assert_eq!(
                PauseRef::decode(&v),
                Err(PauseValueError::Deployment),
                "{bad}"
            );
        }
        let v = PauseRef::new(ARN, "ecs pause", None).encode();
        assert_eq!(PauseRef::decode(&v), Err(PauseValueError::Hook));
        let long = format!(r#"{{"v":1,"d":"{}","h":"h"}}"#, "d".repeat(2100));
        assert!(matches!(
            PauseRef::decode(&long),
            Err(PauseValueError::TooLong(_))
        ));
        let e = PauseRef::decode("secret-ish")
            .expect_err("shape")
            .to_string();
        assert!(!e.contains("secret-ish"), "{e}");
    }
}

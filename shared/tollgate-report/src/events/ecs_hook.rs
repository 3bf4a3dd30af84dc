//! Amazon ECS native blue/green lifecycle hook invocation (2025).
//!
//! ECS invokes the hook function synchronously at the lifecycle stages the
//! service's `deploymentConfiguration.lifecycleHooks` name, with:
//!
//! ```json
//! { "executionId": "…", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
//!   "resourceArn": "arn:aws:ecs:…:service-deployment/cluster/service/id",
//!   "executionDetails": { "serviceArn": "…", "targetServiceRevisionArn": "…",
//!                         "testTrafficWeights": {"<revision arn>": 100},
//!                         "productionTrafficWeights": {} },
//!   "hookDetails": { … } }
//! ```
//!
//! and expects `{ "hookStatus": "SUCCEEDED" | "FAILED" | "IN_PROGRESS",
//! "callBackDelay": seconds?, "hookDetails": {…}? }` back. `hookDetails` in the
//! event holds what the service's hook configuration set, merged with what an
//! earlier `IN_PROGRESS` answer of the same hook returned.
//!
//! Parsing is lenient about additions (unknown fields are ignored, an unknown
//! stage is kept by name) and strict about what the hook needs (the execution
//! id and the execution details).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The deployment stages at which ECS can invoke a Lambda hook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LifecycleStage {
    /// Reconciling a service with more than one ACTIVE revision.
    ReconcileService,
    /// Before the green revision's tasks start.
    PreScaleUp,
    /// The green revision's tasks run and are healthy; no traffic yet.
    PostScaleUp,
    /// Test traffic is being shifted to green (recurs during rollbacks).
    TestTrafficShift,
    /// Test traffic is on green.
    PostTestTrafficShift,
    /// Before production traffic shifts (each step of linear/canary).
    PreProductionTrafficShift,
    /// Production traffic is being shifted (recurs during rollbacks).
    ProductionTrafficShift,
    /// Production traffic is on green.
    PostProductionTrafficShift,
    /// A stage this version does not know, kept by name.
    Other(String),
}

impl LifecycleStage {
    /// Every stage ECS documents, in deployment order.
    pub const KNOWN: [LifecycleStage; 8] = [
        Self::ReconcileService,
        Self::PreScaleUp,
        Self::PostScaleUp,
        Self::TestTrafficShift,
        Self::PostTestTrafficShift,
        Self::PreProductionTrafficShift,
        Self::ProductionTrafficShift,
        Self::PostProductionTrafficShift,
    ];

    /// The API's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ReconcileService => "RECONCILE_SERVICE",
            Self::PreScaleUp => "PRE_SCALE_UP",
            Self::PostScaleUp => "POST_SCALE_UP",
            Self::TestTrafficShift => "TEST_TRAFFIC_SHIFT",
            Self::PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
            Self::PreProductionTrafficShift => "PRE_PRODUCTION_TRAFFIC_SHIFT",
            Self::ProductionTrafficShift => "PRODUCTION_TRAFFIC_SHIFT",
            Self::PostProductionTrafficShift => "POST_PRODUCTION_TRAFFIC_SHIFT",
            Self::Other(name) => name,
        }
    }

    /// Parses the API's spelling; unknown names become [`Self::Other`].
    pub fn parse(name: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|s| s.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Self::Other(name.to_owned()))
    }

    /// Whether the green revision has tasks that can answer at this stage.
    /// Before scale-up (and while reconciling) there is nothing to test.
    pub fn green_is_up(&self) -> bool {
        !matches!(self, Self::ReconcileService | Self::PreScaleUp)
    }

    /// Whether this stage routes production traffic (as opposed to test
    /// traffic or none) to green.
    pub fn is_production(&self) -> bool {
        matches!(
            self,
            Self::PreProductionTrafficShift
                | Self::ProductionTrafficShift
                | Self::PostProductionTrafficShift
        )
    }
}

impl fmt::Display for LifecycleStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LifecycleStage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.trim().is_empty() {
            return Err(serde::de::Error::custom("lifecycleStage is empty"));
        }
        Ok(Self::parse(&name))
    }
}

impl Serialize for LifecycleStage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `executionDetails`: what is being deployed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetails {
    /// The service, `arn:aws:ecs:region:account:service/cluster/service`.
    pub service_arn: String,
    /// The green revision being deployed.
    pub target_service_revision_arn: String,
    /// Revision ARN → percentage of test traffic.
    #[serde(default)]
    pub test_traffic_weights: BTreeMap<String, f64>,
    /// Revision ARN → percentage of production traffic.
    #[serde(default)]
    pub production_traffic_weights: BTreeMap<String, f64>,
}

impl ExecutionDetails {
    /// `(cluster, service)` from the service ARN
    /// (`…:service/<cluster>/<service>`); `None` for the old short form.
    pub fn cluster_and_service(&self) -> Option<(&str, &str)> {
        let resource = self.service_arn.rsplit_once(":service/")?.1;
        let (cluster, service) = resource.split_once('/')?;
        (!cluster.is_empty() && !service.is_empty()).then_some((cluster, service))
    }

    /// Whether `weights` send all traffic to a revision other than the
    /// target (green) one, with green at 0 %.
    pub fn all_away_from_green(&self, weights: &BTreeMap<String, f64>) -> bool {
        let green = weights.get(&self.target_service_revision_arn);
        matches!(green, Some(w) if *w <= 0.0)
            && weights
                .iter()
                .any(|(arn, w)| *arn != self.target_service_revision_arn && *w >= 100.0)
    }
}

/// One ECS lifecycle hook invocation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsHookEvent {
    /// Unique id of this hook execution (stable across IN_PROGRESS callbacks).
    pub execution_id: String,
    /// Where the deployment is.
    pub lifecycle_stage: LifecycleStage,
    /// The service deployment, `…:service-deployment/cluster/service/id`.
    #[serde(default)]
    pub resource_arn: Option<String>,
    /// What is being deployed.
    pub execution_details: ExecutionDetails,
    /// The hook's configured details merged with what the last IN_PROGRESS
    /// answer returned. Accepts an object or a JSON object encoded as a string.
    #[serde(default, deserialize_with = "hook_details")]
    pub hook_details: serde_json::Map<String, serde_json::Value>,
}

impl EcsHookEvent {
    /// Whether ECS is rolling back. There is no rollback stage: ECS re-invokes
    /// the hooks of the recurring stages (`TEST_TRAFFIC_SHIFT`,
    /// `PRODUCTION_TRAFFIC_SHIFT`) with the weights moving back to the old
    /// revision, while `targetServiceRevisionArn` still names green.
    pub fn is_rollback(&self) -> bool {
        let d = &self.execution_details;
        match self.lifecycle_stage {
            LifecycleStage::ProductionTrafficShift => {
                d.all_away_from_green(&d.production_traffic_weights)
            }
            LifecycleStage::TestTrafficShift => d.all_away_from_green(&d.test_traffic_weights),
            _ => false,
        }
    }
}

/// The keys that mark a payload as an ECS lifecycle hook.
pub const SHAPE_KEYS: [&str; 3] = ["executionId", "lifecycleStage", "executionDetails"];

fn hook_details<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(serde_json::Map::new()),
        Some(serde_json::Value::Object(map)) => Ok(map),
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => {
            Ok(serde_json::Map::new())
        }
        Some(serde_json::Value::String(text)) => {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(map)) => Ok(map),
                _ => Err(D::Error::custom(
                    "hookDetails is a string that is not a JSON object",
                )),
            }
        }
        Some(_) => Err(D::Error::custom("hookDetails is not an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: [(&str, &str); 8] = [
        (
            "RECONCILE_SERVICE",
            include_str!("../../../../events/deploy-hook/ecs-reconcile-service.json"),
        ),
        (
            "PRE_SCALE_UP",
            include_str!("../../../../events/deploy-hook/ecs-pre-scale-up.json"),
        ),
        (
            "POST_SCALE_UP",
            include_str!("../../../../events/deploy-hook/ecs-post-scale-up.json"),
        ),
        (
            "TEST_TRAFFIC_SHIFT",
            include_str!("../../../../events/deploy-hook/ecs-test-traffic-shift.json"),
        ),
        (
            "POST_TEST_TRAFFIC_SHIFT",
            include_str!("../../../../events/deploy-hook/ecs-post-test-traffic-shift.json"),
        ),
        (
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            include_str!("../../../../events/deploy-hook/ecs-pre-production-traffic-shift.json"),
        ),
        (
            "PRODUCTION_TRAFFIC_SHIFT",
            include_str!("../../../../events/deploy-hook/ecs-production-traffic-shift.json"),
        ),
        (
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            include_str!("../../../../events/deploy-hook/ecs-post-production-traffic-shift.json"),
        ),
    ];

    #[test]
    fn every_stage_sample_parses_to_its_stage() {
        for (stage, text) in SAMPLES {
            let ev: EcsHookEvent = serde_json::from_str(text).expect(stage);
            assert_eq!(ev.lifecycle_stage.as_str(), stage);
            assert!(!matches!(ev.lifecycle_stage, LifecycleStage::Other(_)));
            assert_eq!(
                ev.execution_details.cluster_and_service(),
                Some(("web-cluster", "web"))
            );
            assert!(!ev.execution_id.is_empty());
        }
    }

    #[test]
    fn the_callback_sample_carries_hook_details() {
        let ev: EcsHookEvent = serde_json::from_str(include_str!(
            "../../../../events/deploy-hook/ecs-post-test-traffic-shift-callback.json"
        ))
        .expect("parses");
        assert_eq!(ev.lifecycle_stage, LifecycleStage::PostTestTrafficShift);
        assert!(ev.hook_details.contains_key("tollgate"));
        assert!(ev.hook_details.contains_key("targetUrl"));
    }

    #[test]
    fn a_rollback_is_recognised_from_the_weights() {
        let ev: EcsHookEvent = serde_json::from_str(include_str!(
            "../../../../events/deploy-hook/ecs-production-traffic-shift-rollback.json"
        ))
        .expect("parses");
        assert!(ev.is_rollback());
        // PRE_PRODUCTION_TRAFFIC_SHIFT has the same weights (green 0, blue
        // 100) before the shift: not a rollback.
        for (stage, text) in SAMPLES {
            let ev: EcsHookEvent = serde_json::from_str(text).expect(stage);
            assert!(!ev.is_rollback(), "{stage}");
        }
    }

    #[test]
    fn unknown_stages_and_fields_are_kept_not_rejected() {
        let ev: EcsHookEvent = serde_json::from_value(serde_json::json!({
            "executionId": "e-1",
            "lifecycleStage": "POST_SOMETHING_NEW",
            "executionDetails": {"serviceArn": "arn:aws:ecs:eu-west-1:1:service/c/s",
                                 "targetServiceRevisionArn": "r", "newField": 1},
            "extra": true
        }))
        .expect("lenient");
        assert_eq!(
            ev.lifecycle_stage,
            LifecycleStage::Other("POST_SOMETHING_NEW".into())
        );
        assert!(ev.lifecycle_stage.green_is_up());
        assert!(ev.hook_details.is_empty());
    }

    #[test]
    fn hook_details_may_be_a_json_string() {
        let ev: EcsHookEvent = serde_json::from_value(serde_json::json!({
            "executionId": "e-1",
            "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
            "executionDetails": {"serviceArn": "s", "targetServiceRevisionArn": "r"},
            "hookDetails": "{\"targetUrl\": \"http://x\"}"
        }))
        .expect("string form");
        assert_eq!(ev.hook_details["targetUrl"], "http://x");
        let err = serde_json::from_value::<EcsHookEvent>(serde_json::json!({
            "executionId": "e-1",
            "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
            "executionDetails": {"serviceArn": "s", "targetServiceRevisionArn": "r"},
            "hookDetails": [1]
        }))
        .expect_err("array");
        assert!(err.to_string().contains("hookDetails is not an object"));
    }

    #[test]
    fn missing_execution_details_is_an_error() {
        let err = serde_json::from_value::<EcsHookEvent>(serde_json::json!({
            "executionId": "e-1", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT"
        }))
        .expect_err("incomplete");
        assert!(err.to_string().contains("executionDetails"), "{err}");
    }
}

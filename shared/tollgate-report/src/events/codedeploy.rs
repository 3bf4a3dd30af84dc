//! CodeDeploy lifecycle hook invocation: two ids and nothing else.

use serde::{Deserialize, Serialize};

/// `{ "DeploymentId": "d-…", "LifecycleEventHookExecutionId": "…" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeDeployHookEvent {
    /// The deployment, e.g. `d-ABCDEF123`.
    pub deployment_id: String,
    /// Opaque id that the status report must echo.
    pub lifecycle_event_hook_execution_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sample_event() {
        let ev: CodeDeployHookEvent = serde_json::from_str(include_str!(
            "../../../../events/deploy-hook/codedeploy-before-allow-traffic.json"
        ))
        .expect("sample parses");
        assert!(ev.deployment_id.starts_with("d-"));
        assert!(!ev.lifecycle_event_hook_execution_id.is_empty());
    }
}

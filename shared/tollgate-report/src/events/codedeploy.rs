//! CodeDeploy lifecycle hook invocation: two ids and nothing else.

/// `{ "DeploymentId": "d-…", "LifecycleEventHookExecutionId": "…" }`:
/// `aws_lambda_events`' type, which is right and safe here (two ids, no
/// secret; unknown fields are ignored).
pub use aws_lambda_events::event::codedeploy::CodeDeployLifecycleEvent as CodeDeployHookEvent;

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

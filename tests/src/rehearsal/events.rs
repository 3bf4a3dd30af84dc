//! The EventBridge events CodePipeline and CodeDeploy would emit during the
//! rehearsed release, built from the sample events in `events/notifier/`
//! (the single source of real-shaped events) with this run's names, ids and
//! times.

use crate::paths;
use crate::seed::{ACCOUNT, REGION};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh UUID-shaped id (unique within this process).
pub fn uuid_like() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (t >> 16) as u32,
        (std::process::id() & 0xffff) as u16,
        n & 0xfff,
        (t >> 4) & 0xfff,
        (t ^ n.rotate_left(40)) & 0xffff_ffff_ffff
    )
}

/// Epoch seconds as ISO 8601 UTC (`2026-11-21T22:05:09Z`), as EventBridge writes `time`.
pub fn iso8601(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Now, in epoch seconds.
pub fn now() -> u64 {
    crate::seed::epoch_secs()
}

fn envelope(sample: &str) -> Value {
    let mut ev = paths::event("notifier", sample);
    ev["id"] = json!(uuid_like());
    ev["time"] = json!(iso8601(now()));
    ev["account"] = json!(ACCOUNT);
    ev["region"] = json!(REGION);
    ev
}

/// A CodePipeline pipeline execution state change (`STARTED`, `SUCCEEDED`, `FAILED`).
pub fn pipeline_state(pipeline: &str, execution_id: &str, state: &str) -> Value {
    let mut ev = envelope("pipeline-started");
    ev["resources"] = json!([format!(
        "arn:aws:codepipeline:{REGION}:{ACCOUNT}:{pipeline}"
    )]);
    let d = &mut ev["detail"];
    d["pipeline"] = json!(pipeline);
    d["execution-id"] = json!(execution_id);
    d["state"] = json!(state);
    d["execution-trigger"] =
        json!({"trigger-type": "StartPipelineExecution", "trigger-detail": "rehearsal"});
    ev
}

/// What an action execution state change says about the action.
#[derive(Debug, Clone)]
pub struct ActionChange<'a> {
    /// Stage name.
    pub stage: &'a str,
    /// Action name.
    pub action: &'a str,
    /// `SUCCEEDED` or `FAILED`.
    pub state: &'a str,
    /// (owner, provider, category).
    pub kind: (&'a str, &'a str, &'a str),
    /// `execution-result.external-execution-summary`.
    pub summary: Option<&'a str>,
    /// `execution-result.external-execution-id`.
    pub external_id: Option<&'a str>,
    /// `execution-result.error-code` (failures).
    pub error_code: Option<&'a str>,
}

/// A CodePipeline action execution state change.
pub fn action_state(pipeline: &str, execution_id: &str, change: &ActionChange<'_>) -> Value {
    let mut ev = envelope("action-failed");
    ev["resources"] = json!([format!(
        "arn:aws:codepipeline:{REGION}:{ACCOUNT}:{pipeline}"
    )]);
    let d = &mut ev["detail"];
    d["pipeline"] = json!(pipeline);
    d["execution-id"] = json!(execution_id);
    d["stage"] = json!(change.stage);
    d["action"] = json!(change.action);
    d["state"] = json!(change.state);
    d["region"] = json!(REGION);
    d["type"] = json!({"owner": change.kind.0, "provider": change.kind.1,
                       "category": change.kind.2, "version": "1"});
    let mut result = serde_json::Map::new();
    if let Some(s) = change.summary {
        result.insert("external-execution-summary".into(), json!(s));
    }
    if let Some(id) = change.external_id {
        result.insert("external-execution-id".into(), json!(id));
    }
    if let Some(code) = change.error_code {
        result.insert("error-code".into(), json!(code));
    }
    d["execution-result"] = Value::Object(result);
    if let Some(obj) = d.as_object_mut() {
        obj.remove("input-artifacts");
    }
    ev
}

/// A CodeDeploy deployment state change (`START`, `SUCCESS`, `FAILURE`).
pub fn deployment_state(application: &str, group: &str, deployment_id: &str, state: &str) -> Value {
    let sample = if state == "SUCCESS" {
        "codedeploy-deployment-succeeded"
    } else {
        "codedeploy-deployment-failed-rollback"
    };
    let mut ev = envelope(sample);
    ev["resources"] = json!([
        format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:application:{application}"),
        format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{application}/{group}"),
    ]);
    let d = &mut ev["detail"];
    d["application"] = json!(application);
    d["deploymentGroup"] = json!(group);
    d["deploymentId"] = json!(deployment_id);
    d["state"] = json!(state);
    d["region"] = json!(REGION);
    d["instanceGroupId"] = json!(uuid_like());
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_715_679_302), "2024-05-14T09:35:02Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn ids_are_uuid_shaped_and_unique() {
        let a = uuid_like();
        let b = uuid_like();
        assert_ne!(a, b);
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12], "{a}");
    }

    #[test]
    fn events_carry_this_runs_names() {
        let ev = pipeline_state("web-release", "exec-1", "FAILED");
        assert_eq!(ev["detail"]["state"], "FAILED");
        assert_eq!(ev["detail"]["pipeline"], "web-release");
        assert_eq!(
            ev["detail-type"],
            "CodePipeline Pipeline Execution State Change"
        );
        let ev = action_state(
            "web-release",
            "exec-1",
            &ActionChange {
                stage: "Production",
                action: "BlueGreen",
                state: "FAILED",
                kind: ("AWS", "CodeDeployToECS", "Deploy"),
                summary: Some("failed"),
                external_id: Some("d-1"),
                error_code: Some("JobFailed"),
            },
        );
        assert_eq!(ev["detail"]["execution-result"]["error-code"], "JobFailed");
        assert_eq!(ev["detail"]["type"]["provider"], "CodeDeployToECS");
        let ev = deployment_state("web-app", "web-dg", "d-1", "SUCCESS");
        assert_eq!(ev["detail"]["deploymentId"], "d-1");
        assert_eq!(
            ev["detail-type"],
            "CodeDeploy Deployment State-change Notification"
        );
    }
}

//! CodePipeline "Invoke" (Lambda) action job event.
//!
//! Shape: `{"CodePipeline.job": {"id", "accountId", "data": {...}}}`. The
//! `artifactCredentials` are live STS credentials for the artifact bucket;
//! they are kept in [`Secret`]s so `Debug` never prints them. Not
//! `aws_lambda_events::event::codepipeline_job`: its type derives `Debug`
//! over those credentials.

use serde::Deserialize;
use std::fmt;
use tollgate_core::secret::Secret;

/// The top-level event CodePipeline sends to the function.
#[derive(Debug, Clone, Deserialize)]
pub struct CodePipelineEvent {
    /// The job to run and report on.
    #[serde(rename = "CodePipeline.job")]
    pub job: Job,
}

/// One job. Every job needs exactly one `PutJob*Result` call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Job id; continuation re-invocations get a new one.
    pub id: String,
    /// Account that owns the pipeline.
    #[serde(default)]
    pub account_id: Option<String>,
    /// What to do and where the artifacts are.
    pub data: JobData,
}

/// `CodePipeline.job.data`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobData {
    /// The action's configuration, holding `UserParameters`.
    #[serde(default)]
    pub action_configuration: ActionConfiguration,
    /// 0–5 input artifacts.
    #[serde(default)]
    pub input_artifacts: Vec<Artifact>,
    /// 0–5 output artifacts.
    #[serde(default)]
    pub output_artifacts: Vec<Artifact>,
    /// Credentials for reading/writing the artifacts. Secret.
    #[serde(default)]
    pub artifact_credentials: Option<ArtifactCredentials>,
    /// Present when this is a re-invocation after a continuation token.
    #[serde(default)]
    pub continuation_token: Option<String>,
    /// KMS key for artifact encryption, when the artifact store uses one.
    #[serde(default)]
    pub encryption_key: Option<EncryptionKey>,
}

/// `actionConfiguration`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionConfiguration {
    /// `actionConfiguration.configuration`.
    #[serde(default)]
    pub configuration: ActionConfigurationValues,
}

/// The Lambda action's configuration keys.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionConfigurationValues {
    /// The function CodePipeline invoked.
    #[serde(rename = "FunctionName", default)]
    pub function_name: Option<String>,
    /// Free-form string from the pipeline definition; Tollgate expects JSON.
    #[serde(rename = "UserParameters", default)]
    pub user_parameters: Option<String>,
}

/// An input or output artifact.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Artifact name from the pipeline definition.
    pub name: String,
    /// Source revision, when known.
    #[serde(default)]
    pub revision: Option<String>,
    /// Where it lives.
    pub location: ArtifactLocation,
}

/// `location` of an artifact.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    /// Always `S3` today.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Bucket and key of the artifact zip.
    #[serde(default)]
    pub s3_location: Option<S3Location>,
}

/// Bucket and key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    /// Artifact bucket.
    pub bucket_name: String,
    /// Object key of the zip.
    pub object_key: String,
}

/// Temporary credentials scoped to the pipeline's artifact store.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactCredentials {
    /// Access key id (redacted in `Debug` as well: it identifies the session).
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Expiry, epoch millis (sometimes absent in samples).
    #[serde(default)]
    pub expiration_time: Option<serde_json::Value>,
}

impl fmt::Debug for ArtifactCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactCredentials")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expiration_time", &self.expiration_time)
            .finish()
    }
}

/// Artifact store encryption key.
#[derive(Debug, Clone, Deserialize)]
pub struct EncryptionKey {
    /// Key id or ARN.
    pub id: String,
    /// `KMS`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Pulls `CodePipeline.job.id` out of a payload that failed to parse fully,
/// so that even a malformed job still gets its one failure report.
pub fn salvage_job_id(raw: &serde_json::Value) -> Option<&str> {
    raw.get("CodePipeline.job")?
        .get("id")?
        .as_str()
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        include_str!("../../../../events/pipeline-action/job-with-credentials.json");

    #[test]
    fn parses_the_documented_sample() {
        let ev: CodePipelineEvent = serde_json::from_str(SAMPLE).expect("sample parses");
        let data = &ev.job.data;
        assert!(!ev.job.id.is_empty());
        assert_eq!(data.input_artifacts.len(), 1);
        let loc = data.input_artifacts[0]
            .location
            .s3_location
            .as_ref()
            .expect("s3 location");
        assert!(!loc.bucket_name.is_empty());
        assert!(data.artifact_credentials.is_some());
        assert_eq!(
            data.encryption_key.as_ref().map(|k| k.kind.as_str()),
            Some("KMS")
        );
    }

    #[test]
    fn debug_redacts_artifact_credentials() {
        let ev: CodePipelineEvent = serde_json::from_str(SAMPLE).expect("sample parses");
        let creds = ev.job.data.artifact_credentials.clone().expect("creds");
        let shown = format!("{ev:?} {ev:#?}");
        for secret in [
            creds.access_key_id.expose(),
            creds.secret_access_key.expose(),
            creds
                .session_token
                .as_ref()
                .map(Secret::expose)
                .unwrap_or("x"),
        ] {
            assert!(!shown.contains(secret), "{secret} leaked into {shown}");
        }
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn salvages_the_job_id_from_a_broken_job() {
        let raw = serde_json::json!({"CodePipeline.job": {"id": "abc", "data": 7}});
        assert!(serde_json::from_value::<CodePipelineEvent>(raw.clone()).is_err());
        assert_eq!(salvage_job_id(&raw), Some("abc"));
        assert_eq!(salvage_job_id(&serde_json::json!({"x": 1})), None);
    }
}

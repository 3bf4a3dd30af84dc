//! The approval request's buttons: the handoff from the notifier (which
//! posts the request) to the `approvals` function (which receives the
//! clicks). One definition of the action ids and of what a button carries,
//! so the two cannot drift apart.
//!
//! A button carries the approval it is about, never its token: the
//! pipeline, stage and action names and the pipeline execution the request
//! was posted for. (The commit-author rule reads the author from the
//! execution at click time, not from the button.) The token is read from
//! `GetPipelineState` at click time, and the click is refused when the
//! approval waiting now belongs to another execution (a newer release must
//! never be approved from an older release's message).
//!
//! The value is compact JSON (`{"v":1,"p":…,"s":…,"a":…,"x":…}`), at most
//! [`MAX_VALUE`] characters (Slack's limit for a button value is 2,000).

use serde::{Deserialize, Serialize};

/// `action_id` of the Approve button.
pub const APPROVE: &str = "tollgate.approval.approve";
/// `action_id` of the Reject button (it opens the reason modal).
pub const REJECT: &str = "tollgate.approval.reject";
/// `block_id` of the actions block holding both buttons.
pub const BLOCK: &str = "tollgate.approval";
/// `callback_id` of the reject-reason modal.
pub const REJECT_VIEW: &str = "tollgate.approval.reject_reason";
/// `block_id` / `action_id` of the reason input in the modal.
pub const REASON_INPUT: &str = "tollgate.approval.reason";
/// Longest button value Tollgate writes or reads.
pub const MAX_VALUE: usize = 2000;

/// What an approval button is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRef {
    /// Format version (1).
    #[serde(rename = "v")]
    pub version: u8,
    /// Pipeline name.
    #[serde(rename = "p")]
    pub pipeline: String,
    /// Stage name.
    #[serde(rename = "s")]
    pub stage: String,
    /// Approval action name.
    #[serde(rename = "a")]
    pub action: String,
    /// The pipeline execution the request was posted for.
    #[serde(rename = "x")]
    pub execution: String,
}

/// Why a button value was refused (never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Longer than [`MAX_VALUE`].
    #[error("the button value is {0} characters long (at most {MAX_VALUE})")]
    TooLong(usize),
    /// Not the JSON object described above.
    #[error("the button value is not a Tollgate approval reference")]
    Shape,
    /// A version this build does not know.
    #[error("the button value has format version {0}; this build reads version 1")]
    Version(u8),
    /// A field is empty or too long for CodePipeline.
    #[error("the button value's {0} is empty or longer than CodePipeline allows")]
    Field(&'static str),
}

/// CodePipeline's limit for pipeline, stage and action names.
const NAME_MAX: usize = 100;

impl ApprovalRef {
    /// A reference to the approval `pipeline` / `stage` / `action` of
    /// `execution`.
    pub fn new(pipeline: &str, stage: &str, action: &str, execution: &str) -> Self {
        Self {
            version: 1,
            pipeline: pipeline.to_owned(),
            stage: stage.to_owned(),
            action: action.to_owned(),
            execution: execution.to_owned(),
        }
    }

    /// The button value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a button value, checking its shape and field sizes.
    pub fn decode(value: &str) -> Result<Self, ValueError> {
        let n = value.chars().count();
        if n > MAX_VALUE {
            return Err(ValueError::TooLong(n));
        }
        let r: Self = serde_json::from_str(value).map_err(|_| ValueError::Shape)?;
        if r.version != 1 {
            return Err(ValueError::Version(r.version));
        }
        for (field, v, max) in [
            ("pipeline", &r.pipeline, NAME_MAX),
            ("stage", &r.stage, NAME_MAX),
            ("action", &r.action, NAME_MAX),
            ("execution", &r.execution, 200),
        ] {
            if v.trim().is_empty() || v.chars().count() > max {
                return Err(ValueError::Field(field));
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_round_trips_and_odd_values_are_refused() {
        let r = ApprovalRef::new("pay", "Prod", "Approve", "e-1");
        let v = r.encode();
        assert!(!v.contains("token"), "{v}");
        assert_eq!(ApprovalRef::decode(&v), Ok(r.clone()));
        // A button posted by an older build (with an author field) still
        // reads; the field is ignored.
        let old = v.replace('}', r#","au":"dev@example.com"}"#);
        assert_eq!(ApprovalRef::decode(&old), Ok(r));
        assert_eq!(ApprovalRef::decode("xoxb-1"), Err(ValueError::Shape));
        assert_eq!(
            ApprovalRef::decode(r#"{"v":2,"p":"a","s":"b","a":"c","x":"d"}"#),
            Err(ValueError::Version(2))
        );
        assert_eq!(
            ApprovalRef::decode(r#"{"v":1,"p":"","s":"b","a":"c","x":"d"}"#),
            Err(ValueError::Field("pipeline"))
        );
        let long = format!(
            r#"{{"v":1,"p":"{}","s":"b","a":"c","x":"d"}}"#,
            "p".repeat(2100)
        );
        assert!(matches!(
            ApprovalRef::decode(&long),
            Err(ValueError::TooLong(_))
        ));
        // The error never quotes the value.
        let e = ApprovalRef::decode("secret-ish")
            .expect_err("shape")
            .to_string();
        assert!(!e.contains("secret-ish"), "{e}");
    }
}

//! The stage condition override button: the handoff from the notifier
//! (which posts **Override** when a stage's entry or on-success condition
//! is still being evaluated for a pipeline execution) to the `approvals`
//! function (which answers the click with CodePipeline's
//! `OverrideStageCondition`). One definition of the action id and of what
//! the button carries, so the two cannot drift apart.
//!
//! A button carries the pipeline, the stage, the pipeline execution and
//! the condition type (`BEFORE_ENTRY` or `ON_SUCCESS`, the only two
//! `OverrideStageCondition` accepts). Nothing in it is secret, and nothing
//! in it is trusted: the endpoint checks the shape here, that the pipeline
//! is one it may override for and that the clicker is its approver, then
//! reads `GetPipelineState` to see that very condition still in progress
//! for that execution before acting.
//!
//! The value is compact JSON (`{"v":1,"p":…,"s":…,"e":…,"c":…}`), at most
//! [`MAX_VALUE`] characters (Slack's limit for a button value is 2,000).

use serde::{Deserialize, Serialize};

/// `action_id` of the Override button.
pub const OVERRIDE: &str = "tollgate.stage_condition.override";
/// `block_id` of the actions block holding it.
pub const BLOCK: &str = "tollgate.stage_condition";
/// Longest button value Tollgate writes or reads.
pub const MAX_VALUE: usize = 2000;

/// Which of a stage's conditions (CodePipeline's `ConditionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionKind {
    /// The entry condition: checked before the stage runs.
    #[serde(rename = "BEFORE_ENTRY")]
    BeforeEntry,
    /// The on-success condition: checked after the stage's actions succeed.
    #[serde(rename = "ON_SUCCESS")]
    OnSuccess,
}

impl ConditionKind {
    /// CodePipeline's name (`BEFORE_ENTRY` / `ON_SUCCESS`).
    pub fn api_name(self) -> &'static str {
        match self {
            Self::BeforeEntry => "BEFORE_ENTRY",
            Self::OnSuccess => "ON_SUCCESS",
        }
    }

    /// In words, for chat ("entry condition").
    pub fn words(self) -> &'static str {
        match self {
            Self::BeforeEntry => "entry condition",
            Self::OnSuccess => "on-success condition",
        }
    }
}

/// What an Override button is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionRef {
    /// Format version (1).
    #[serde(rename = "v")]
    pub version: u8,
    /// The pipeline's name.
    #[serde(rename = "p")]
    pub pipeline: String,
    /// The stage's name.
    #[serde(rename = "s")]
    pub stage: String,
    /// The pipeline execution id.
    #[serde(rename = "e")]
    pub execution: String,
    /// Which condition.
    #[serde(rename = "c")]
    pub kind: ConditionKind,
}

/// Why a button value was refused (never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionValueError {
    /// Longer than [`MAX_VALUE`].
    #[error("the button value is {0} characters long (at most {MAX_VALUE})")]
    TooLong(usize),
    /// Not the JSON object described above.
    #[error("the button value is not a Tollgate stage condition reference")]
    Shape,
    /// A version this build does not know.
    #[error("the button value has format version {0}; this build reads version 1")]
    Version(u8),
    /// A pipeline or stage name CodePipeline would not accept.
    #[error(
        "the button value's pipeline or stage is not a CodePipeline name ([A-Za-z0-9.@_-], 1-100)"
    )]
    Name,
    /// Not a pipeline execution id (a UUID).
    #[error("the button value's execution is not a pipeline execution id")]
    Execution,
}

/// A pipeline or stage name as CodePipeline allows it.
pub fn is_pipeline_name(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

/// A pipeline execution id (`[0-9a-f]{8}-…-[0-9a-f]{12}`).
pub fn is_execution_id(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The pipeline names of a comma-separated list of pipeline ARNs
/// (`arn:<partition>:codepipeline:<region>:<account>:<name>`) or names
/// (the template passes `ApprovalPipelineArns`); empty items are skipped.
/// An item that is neither is returned as the error, shortened.
pub fn pipeline_names(raw: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = if item.starts_with("arn:") {
            match item.splitn(6, ':').collect::<Vec<_>>().as_slice() {
                [_, _, "codepipeline", _, _, name] => *name,
                _ => "",
            }
        } else {
            item
        };
        if !is_pipeline_name(name) {
            return Err(crate::text::ellipsize(item, 120));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

impl ConditionRef {
    /// A reference to `kind` of `stage` in execution `execution`.
    pub fn new(pipeline: &str, stage: &str, execution: &str, kind: ConditionKind) -> Self {
        Self {
            version: 1,
            pipeline: pipeline.to_owned(),
            stage: stage.to_owned(),
            execution: execution.to_owned(),
            kind,
        }
    }

    /// The button value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a button value, checking its shape.
    pub fn decode(value: &str) -> Result<Self, ConditionValueError> {
        let n = value.chars().count();
        if n > MAX_VALUE {
            return Err(ConditionValueError::TooLong(n));
        }
        let r: Self = serde_json::from_str(value).map_err(|_| ConditionValueError::Shape)?;
        if r.version != 1 {
            return Err(ConditionValueError::Version(r.version));
        }
        r.check()?;
        Ok(r)
    }

    /// Checks the names and the execution id.
    pub fn check(&self) -> Result<(), ConditionValueError> {
        if !is_pipeline_name(&self.pipeline) || !is_pipeline_name(&self.stage) {
            return Err(ConditionValueError::Name);
        }
        if !is_execution_id(&self.execution) {
            return Err(ConditionValueError::Execution);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = "3137f7cb-7cf7-4a54-8e5b-1f2a3b4c5d6e";

    #[test]
    fn a_reference_round_trips() {
        let r = ConditionRef::new("pay-prod", "Production", EXEC, ConditionKind::BeforeEntry);
        let v = r.encode();
        assert!(v.contains(r#""c":"BEFORE_ENTRY""#), "{v}");
        assert_eq!(ConditionRef::decode(&v), Ok(r));
        let r = ConditionRef::new("pay", "Build", EXEC, ConditionKind::OnSuccess);
        assert_eq!(ConditionRef::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn odd_values_are_refused_without_quoting_them() {
        assert_eq!(
            ConditionRef::decode("xoxb-1"),
            Err(ConditionValueError::Shape)
        );
        assert_eq!(
            ConditionRef::decode(&format!(
                r#"{{"v":1,"p":"pay","s":"Prod","e":"{EXEC}","c":"ON_FAILURE"}}"#
            )),
            Err(ConditionValueError::Shape),
            "ON_FAILURE cannot be overridden"
        );
        assert_eq!(
            ConditionRef::decode(&format!(
                r#"{{"v":2,"p":"pay","s":"Prod","e":"{EXEC}","c":"ON_SUCCESS"}}"#
            )),
            Err(ConditionValueError::Version(2))
        );
        for (p, s) in [("pay prod", "Prod"), ("pay", "<!channel>"), ("", "Prod")] {
            let v = ConditionRef::new(p, s, EXEC, ConditionKind::OnSuccess).encode();
            assert_eq!(ConditionRef::decode(&v), Err(ConditionValueError::Name));
        }
        for e in [
            "e-1",
            "3137f7cb-7cf7-4a54-8e5b-1f2a3b4c5d6",
            "zzzzzzzz-7cf7-4a54-8e5b-1f2a3b4c5d6e",
        ] {
            let v = ConditionRef::new("pay", "Prod", e, ConditionKind::OnSuccess).encode();
            assert_eq!(
                ConditionRef::decode(&v),
                Err(ConditionValueError::Execution),
                "{e}"
            );
        }
        let long = "x".repeat(2100);
        assert!(matches!(
            ConditionRef::decode(&long),
            Err(ConditionValueError::TooLong(_))
        ));
        let e = ConditionRef::decode("secret-ish")
            .expect_err("shape")
            .to_string();
        assert!(!e.contains("secret-ish"), "{e}");
    }
}

//! Hook-failure records: the handoff from deploy-hook to the notifier.
//!
//! `PutLifecycleEventHookExecutionStatus` carries only `Failed`, so
//! CodeDeploy's FAILURE event (and `GetDeployment`) can only say
//! `HOOK_EXECUTION_FAILURE`. When
//! `TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX` is set, deploy-hook writes what
//! failed to one SSM String parameter per deployment group,
//! `<prefix>/<application>/<deployment group>`, just BEFORE it reports
//! `Failed` (CodeDeploy starts the rollback and emits its FAILURE event right
//! after the report, so a later write would race the notifier). The notifier,
//! configured with the same prefix, reads it back for that deployment's
//! failure and shows the failed checks.
//!
//! - One parameter per group, overwritten: the number of parameters stays
//!   bounded, and a record names its `deploymentId` so a stale one is never
//!   shown for another deployment.
//! - The value is JSON ([`HookFailureRecord`]) of at most 4096 bytes (the
//!   Standard tier's limit); longer failure lists are cut on line and char
//!   boundaries and say so.
//! - The text is the hook's own failure text, which the check engine has
//!   already scrubbed of secret variables; nothing else goes in.
//! - Best effort: the write has [`WRITE_TIMEOUT`] and never runs into the
//!   report reserve; an error is a warning and never changes the outcome.
//!
//! Unset prefix = the feature is off: no call is made and no IAM is needed.

use crate::config::{ConfigError, Env};
use crate::text::truncate;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The variable both functions read.
pub const PREFIX_VAR: &str = "TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX";
/// Largest value a Standard-tier String parameter holds.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Upper bound of the write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The record's schema id.
pub const SCHEMA: &str = "tollgate.hook-failure/v1";
/// Longest name segment kept (application and group names are ≤ 100).
const MAX_SEGMENT: usize = 100;
/// Longest prefix accepted (SSM names are at most 1011 characters).
const MAX_PREFIX: usize = 500;
/// SSM allows 15 levels; two are the application and the group.
const MAX_PREFIX_LEVELS: usize = 13;
/// Longest summary kept.
const MAX_SUMMARY: usize = 600;
/// Longest failure line kept.
const MAX_LINE: usize = 400;

/// Reads and validates the prefix. Unset or empty means off (`None`); the
/// value is returned without a trailing slash.
pub fn prefix_from_env(env: &impl Env) -> Result<Option<String>, ConfigError> {
    match env.get(PREFIX_VAR) {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(None),
        Some(raw) => parse_prefix(&raw).map(Some),
    }
}

/// Validates a prefix such as `/tollgate/my-stack/hook-failures`.
pub fn parse_prefix(raw: &str) -> Result<String, ConfigError> {
    let expected = "an SSM parameter path of letters, digits, '_', '.' and '-' segments, \
                    e.g. /tollgate/my-stack/hook-failures (unset it to switch hook-failure records off)";
    let bad = |problem: String| ConfigError::invalid(PREFIX_VAR, raw, problem, expected);
    let value = raw.trim();
    let Some(rest) = value.strip_prefix('/') else {
        return Err(bad("it does not start with '/'".to_owned()));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(bad("it has no path after '/'".to_owned()));
    }
    if value.len() > MAX_PREFIX {
        return Err(bad(format!("it is longer than {MAX_PREFIX} characters")));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > MAX_PREFIX_LEVELS {
        return Err(bad(format!(
            "it has {} levels; SSM allows 15 and two are the application and the group",
            segments.len()
        )));
    }
    for s in &segments {
        if s.is_empty() {
            return Err(bad("it has an empty segment ('//')".to_owned()));
        }
        if let Some(c) = s.chars().find(|c| !allowed(*c)) {
            return Err(bad(format!("it contains {c:?}")));
        }
    }
    let first = segments[0].to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(bad(
            "SSM reserves names that begin with 'aws' or 'ssm'".to_owned()
        ));
    }
    Ok(format!("/{rest}"))
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// One name segment made safe for SSM: other characters become `_`, the
/// length is capped, and an empty segment is `_`.
pub fn sanitize_segment(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .take(MAX_SEGMENT)
        .map(|c| if allowed(c) { c } else { '_' })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// `<prefix>/<application>/<deployment group>`, segments sanitised.
pub fn parameter_name(prefix: &str, application: &str, group: &str) -> String {
    format!(
        "{}/{}/{}",
        prefix.trim_end_matches('/'),
        sanitize_segment(application),
        sanitize_segment(group)
    )
}

/// What deploy-hook stores for a failed hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookFailureRecord {
    /// [`SCHEMA`].
    pub schema: String,
    /// The deployment whose hook failed (`d-…`).
    pub deployment_id: String,
    /// The lifecycle event, e.g. `AfterAllowTestTraffic`; `None` when the
    /// failure came before the hook was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// When the hook failed, RFC 3339.
    pub time: String,
    /// One line: what failed and against what.
    pub summary: String,
    /// The failed checks and expectations, one line each
    /// (`FAIL health (GET …): 3 attempts`, `  - status: expected 200, got 503`).
    #[serde(default)]
    pub failures: Vec<String>,
    /// Lines left out to stay within [`MAX_VALUE_BYTES`]; 0 when complete.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// Whether anything was cut (lines left out or shortened).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl HookFailureRecord {
    /// A record from the hook's failure text: the first line is the
    /// summary, the other non-blank lines the failed checks.
    pub fn from_message(
        deployment_id: &str,
        hook: Option<&str>,
        message: &str,
        time: &str,
    ) -> Self {
        let mut lines = message.lines();
        let summary = lines.next().unwrap_or_default().trim().to_owned();
        let failures = lines
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim_end().to_owned())
            .collect();
        Self {
            schema: SCHEMA.to_owned(),
            deployment_id: deployment_id.to_owned(),
            hook: hook.map(str::to_owned),
            time: time.to_owned(),
            summary,
            failures,
            omitted: 0,
            truncated: false,
        }
    }

    /// The parameter value: JSON of at most [`MAX_VALUE_BYTES`] bytes. Long
    /// lines are shortened and trailing lines dropped (counted in `omitted`)
    /// until it fits.
    pub fn encode(&self) -> String {
        let mut rec = self.clone();
        let cut = |text: &mut String, max: usize, rec_truncated: &mut bool| {
            if text.chars().count() > max {
                *text = truncate(text, max);
                *rec_truncated = true;
            }
        };
        let mut truncated = rec.truncated;
        cut(&mut rec.summary, MAX_SUMMARY, &mut truncated);
        for line in &mut rec.failures {
            cut(line, MAX_LINE, &mut truncated);
        }
        rec.truncated = truncated;
        loop {
            let text = match serde_json::to_string(&rec) {
                Ok(t) => t,
                // Plain strings and numbers always serialise; keep a valid
                // value anyway.
                Err(_) => return format!("{{\"schema\":\"{SCHEMA}\",\"truncated\":true}}"),
            };
            if text.len() <= MAX_VALUE_BYTES {
                return text;
            }
            rec.truncated = true;
            if rec.failures.pop().is_some() {
                rec.omitted += 1;
            } else {
                // Only reachable with huge ids or escapes: halve the summary.
                let keep = (rec.summary.chars().count() / 2).max(20);
                rec.summary = truncate(&rec.summary, keep);
                if keep <= 20 {
                    rec.hook = None;
                    rec.deployment_id = truncate(&rec.deployment_id, 64);
                    rec.time = truncate(&rec.time, 40);
                }
            }
        }
    }

    /// Parses a stored value.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// The current time, RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated_with_the_fix() {
        assert_eq!(
            parse_prefix(" /tollgate/stack-1/hook-failures/ ").expect("valid"),
            "/tollgate/stack-1/hook-failures"
        );
        for (raw, problem) in [
            ("tollgate/x", "does not start with '/'"),
            ("/", "no path"),
            ("/tollgate//x", "empty segment"),
            ("/tollgate/my stack", "contains ' '"),
            ("/awsstuff/x", "reserves names"),
            ("/SSM/x", "reserves names"),
            ("/a/b/c/d/e/f/g/h/i/j/k/l/m/n", "14 levels"),
        ] {
            let err = parse_prefix(raw).expect_err(raw).to_string();
            assert!(err.contains(problem), "{raw}: {err}");
            assert!(err.contains(PREFIX_VAR), "{err}");
            assert!(err.contains("/tollgate/my-stack/hook-failures"), "{err}");
        }
        let env: std::collections::HashMap<String, String> =
            [(PREFIX_VAR.to_owned(), "  ".to_owned())].into();
        assert_eq!(prefix_from_env(&env).expect("blank is off"), None);
    }

    #[test]
    fn names_are_sanitised_and_bounded() {
        assert_eq!(
            parameter_name("/tollgate/s/hook-failures/", "web app", "prod/blue:green"),
            "/tollgate/s/hook-failures/web_app/prod_blue_green"
        );
        assert_eq!(parameter_name("/p", "", "ünï"), "/p/_/_n_");
        let long = parameter_name("/p", &"a".repeat(500), "g");
        assert_eq!(long.len(), "/p/".len() + MAX_SEGMENT + "/g".len());
    }

    fn record(lines: usize, line: &str) -> HookFailureRecord {
        let mut msg = "AfterAllowTestTraffic failed for d-1: smoke checks did not pass".to_owned();
        for i in 0..lines {
            msg.push_str(&format!("\n  - check {i}: {line}"));
        }
        HookFailureRecord::from_message(
            "d-1",
            Some("AfterAllowTestTraffic"),
            &msg,
            "2026-01-01T00:00:00Z",
        )
    }

    #[test]
    fn a_message_splits_into_summary_and_lines() {
        let r = HookFailureRecord::from_message(
            "d-1",
            None,
            "BeforeAllowTraffic failed: x\nFAIL h (GET u): 3 attempts\n\n  - status: expected 200, got 503\n",
            "t",
        );
        assert_eq!(r.summary, "BeforeAllowTraffic failed: x");
        assert_eq!(
            r.failures,
            [
                "FAIL h (GET u): 3 attempts",
                "  - status: expected 200, got 503"
            ]
        );
        let text = r.encode();
        assert!(!text.contains("truncated"), "{text}");
        assert_eq!(HookFailureRecord::decode(&text).expect("round trip"), r);
    }

    #[test]
    fn long_records_are_cut_to_4096_bytes_on_char_boundaries() {
        // Multi-byte characters and escapes make bytes ≠ chars.
        let r = record(200, "expected \"ok\", got «ünïcödé» ✗ and more text here");
        let text = r.encode();
        assert!(text.len() <= MAX_VALUE_BYTES, "{}", text.len());
        let back = HookFailureRecord::decode(&text).expect("valid JSON");
        assert!(back.truncated);
        assert!(back.omitted > 0);
        assert_eq!(back.failures.len() + back.omitted, 200);
        assert_eq!(back.failures[0], r.failures[0]);

        let mut huge = record(0, "");
        huge.deployment_id = "d".repeat(10_000);
        huge.time = "t".repeat(10_000);
        assert!(
            huge.encode().len() <= MAX_VALUE_BYTES,
            "pathological fields still fit"
        );

        let one_long = record(1, &"é".repeat(5000));
        let back = HookFailureRecord::decode(&one_long.encode()).expect("valid");
        assert!(back.truncated);
        assert_eq!(back.omitted, 0, "a long line is shortened, not dropped");
        assert!(
            back.failures[0].contains("…[truncated"),
            "{}",
            back.failures[0]
        );
    }
}

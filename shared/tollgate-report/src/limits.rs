//! CodePipeline API limits, enforced before a report is sent.
//!
//! AWS rejects an over-long field with a `ValidationException`, and a rejected
//! report leaves the job hanging until its timeout. So every string is fitted
//! here: truncation keeps the start (where the cause usually is) and marks the
//! cut. Lengths are counted in characters, as the API counts them.

/// `failureDetails.message`: 1..=5000 chars.
pub const FAILURE_MESSAGE_MAX: usize = 5000;
/// `executionDetails.summary`: 1..=2048 chars.
pub const SUMMARY_MAX: usize = 2048;
/// `externalExecutionId`: 1..=1500 chars.
pub const EXTERNAL_EXECUTION_ID_MAX: usize = 1500;
/// `continuationToken`: 1..=2048 chars.
pub const CONTINUATION_TOKEN_MAX: usize = 2048;
/// Longest output-variable value sent (characters); a longer one is
/// dropped. CodePipeline rejects oversized variables
/// (`OutputVariablesSizeExceededException`); Tollgate's values (image URIs,
/// ARNs, a container list) are far below this.
pub const OUTPUT_VARIABLE_VALUE_MAX: usize = 4000;
/// Largest total of output-variable keys and values sent (bytes); the
/// variables past it are dropped, in key order, with a warning.
pub const OUTPUT_VARIABLES_TOTAL_MAX: usize = 100_000;

/// Used when a failure would otherwise carry an empty message.
pub const EMPTY_FAILURE_MESSAGE: &str = "the action failed without giving a reason (tollgate produced an empty message; please report this)";

pub use tollgate_core::text::truncate;

/// A failure message the API accepts: never empty, at most 5000 chars.
pub fn failure_message(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        EMPTY_FAILURE_MESSAGE.to_owned()
    } else {
        truncate(trimmed, FAILURE_MESSAGE_MAX)
    }
}

/// An optional 1..=max field: empty becomes `None`, long is truncated.
pub fn optional_field(text: Option<&str>, max: usize) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| truncate(t, max))
}

/// Output variable keys must match `[A-Za-z0-9@\-_]+`.
pub fn is_valid_variable_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_'))
}

/// Makes a key valid by replacing every disallowed character with `_`.
pub fn sanitize_variable_key(key: &str) -> String {
    if key.is_empty() {
        return "_".to_owned();
    }
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcde", 5), "abcde");
    }

    #[test]
    fn long_text_keeps_the_start_and_marks_the_cut() {
        let text = "x".repeat(6000);
        let out = truncate(&text, FAILURE_MESSAGE_MAX);
        assert_eq!(out.chars().count(), FAILURE_MESSAGE_MAX);
        assert!(out.starts_with("xxxx"));
        assert!(out.ends_with("chars]"), "{}", &out[out.len() - 40..]);
        let cut: usize = out
            .rsplit("truncated ")
            .next()
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("marker has a number");
        let kept = out.chars().take_while(|c| *c == 'x').count();
        assert_eq!(kept + cut, 6000, "kept + cut must account for every char");
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "é".repeat(3000); // 6000 bytes, 3000 chars
        assert_eq!(truncate(&text, 5000), text);
        let long = "日".repeat(2100);
        let out = truncate(&long, SUMMARY_MAX);
        assert_eq!(out.chars().count(), SUMMARY_MAX);
    }

    #[test]
    fn tiny_limits_still_hold() {
        assert_eq!(truncate("abcdefghij", 3), "abc");
    }

    #[test]
    fn empty_failure_message_becomes_explanatory() {
        assert_eq!(failure_message(""), EMPTY_FAILURE_MESSAGE);
        assert_eq!(failure_message("  \n "), EMPTY_FAILURE_MESSAGE);
        assert_eq!(failure_message(" boom "), "boom");
    }

    #[test]
    fn optional_fields_drop_empty_and_fit_long() {
        assert_eq!(optional_field(Some(""), 10), None);
        assert_eq!(optional_field(None, 10), None);
        assert_eq!(
            optional_field(Some(&"a".repeat(2000)), EXTERNAL_EXECUTION_ID_MAX)
                .map(|s| s.chars().count()),
            Some(EXTERNAL_EXECUTION_ID_MAX)
        );
    }

    #[test]
    fn variable_keys() {
        assert!(is_valid_variable_key("p95_ms"));
        assert!(is_valid_variable_key("image@digest-1"));
        assert!(!is_valid_variable_key("image uri"));
        assert!(!is_valid_variable_key(""));
        assert_eq!(sanitize_variable_key("image uri/tag"), "image_uri_tag");
        assert_eq!(sanitize_variable_key(""), "_");
    }
}

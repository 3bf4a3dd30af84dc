//! Typed configuration from environment variables, read once at init.
//!
//! An invalid value fails init with a message naming the variable, what is
//! wrong with the value, and the form expected. Values of secret variables are
//! never echoed.

use std::collections::HashMap;
use std::time::Duration;

/// Where variables come from: the process environment, or a map in tests.
pub trait Env {
    /// The variable's value, if set (empty counts as unset).
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .filter(|v| !v.trim().is_empty())
    }
}

/// A configuration problem, found at init.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The variable is set to something unusable.
    #[error("{var}={shown} is invalid: {problem}; expected {expected}")]
    Invalid {
        /// Variable name.
        var: String,
        /// The value as shown (quoted, cut to 100 chars; `<redacted>` for secrets).
        shown: String,
        /// What is wrong.
        problem: String,
        /// The accepted form, with an example.
        expected: String,
    },
    /// A required variable is missing.
    #[error("{var} is not set; {hint}")]
    Missing {
        /// Variable name.
        var: String,
        /// What to set it to.
        hint: String,
    },
}

impl ConfigError {
    /// An invalid value of a non-secret variable.
    pub fn invalid(
        var: &str,
        value: &str,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        let mut shown: String = value.chars().take(100).collect();
        if value.chars().count() > 100 {
            shown.push('…');
        }
        Self::Invalid {
            var: var.to_owned(),
            shown: format!("{shown:?}"),
            problem: problem.into(),
            expected: expected.into(),
        }
    }

    /// An invalid value of a secret variable: the value is not shown.
    pub fn invalid_secret(
        var: &str,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            var: var.to_owned(),
            shown: "<redacted>".to_owned(),
            problem: problem.into(),
            expected: expected.into(),
        }
    }
}

/// Reads a duration given in whole milliseconds, with a default and bounds.
pub fn duration_ms(
    env: &impl Env,
    var: &str,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let Some(raw) = env.get(var) else {
        return Ok(default);
    };
    let expected = || {
        format!(
            "whole milliseconds between {} and {}, e.g. {}",
            min.as_millis(),
            max.as_millis(),
            default.as_millis()
        )
    };
    let ms: u64 = raw.trim().parse().map_err(|_| {
        ConfigError::invalid(var, &raw, "not a whole number of milliseconds", expected())
    })?;
    let d = Duration::from_millis(ms);
    if d < min || d > max {
        return Err(ConfigError::invalid(var, &raw, "out of range", expected()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_not_shown() {
        let err = ConfigError::invalid_secret(
            "SLACK_WEBHOOK_URL",
            "not an https URL",
            "https://hooks.slack.com/…",
        );
        assert!(err.to_string().contains("<redacted>"));
    }
}

//! Typed configuration from environment variables, read once at init.
//!
//! An invalid value fails init with a message naming the variable, what is
//! wrong with the value, and the form expected. Values of secret variables are
//! never echoed.

use crate::report::ReportConfig;
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

/// Variable names read by [`report_config`].
pub mod vars {
    /// Milliseconds kept back from the deadline for reporting.
    pub const REPORT_RESERVE_MS: &str = "TOLLGATE_REPORT_RESERVE_MS";
    /// Milliseconds one report attempt may take.
    pub const REPORT_ATTEMPT_TIMEOUT_MS: &str = "TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS";
}

/// The report core's settings.
pub fn report_config(env: &impl Env) -> Result<ReportConfig, ConfigError> {
    let defaults = ReportConfig::default();
    let mut cfg = ReportConfig {
        reserve: duration_ms(
            env,
            vars::REPORT_RESERVE_MS,
            defaults.reserve,
            Duration::from_millis(200),
            Duration::from_secs(120),
        )?,
        attempt_timeout: defaults.attempt_timeout,
        safety_margin: defaults.safety_margin,
    };
    // The attempt timeout (the default or the one set) is cut to what the
    // reserve holds three times, with a warning when a set value is cut
    // (issue 14.7): an old setting never fails the function.
    let max = cfg.max_attempt_timeout();
    let wanted = match env.get(vars::REPORT_ATTEMPT_TIMEOUT_MS) {
        None => defaults.attempt_timeout,
        Some(_) => duration_ms(
            env,
            vars::REPORT_ATTEMPT_TIMEOUT_MS,
            defaults.attempt_timeout,
            ReportConfig::MIN_ATTEMPT_TIMEOUT,
            Duration::from_secs(60),
        )?,
    };
    if wanted > max && env.get(vars::REPORT_ATTEMPT_TIMEOUT_MS).is_some() {
        tracing::warn!(
            attempt_timeout_ms = wanted.as_millis() as u64,
            used_ms = max.as_millis() as u64,
            reserve_ms = cfg.reserve.as_millis() as u64,
            "{} is cut so that {} report attempts fit in {}",
            vars::REPORT_ATTEMPT_TIMEOUT_MS,
            ReportConfig::MIN_ATTEMPTS_IN_RESERVE,
            vars::REPORT_RESERVE_MS
        );
    }
    cfg.attempt_timeout = wanted.min(max);
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let cfg = report_config(&[("OTHER", "1")]).expect("valid");
        assert_eq!(cfg, ReportConfig::default());
    }

    #[test]
    fn values_are_read() {
        let cfg = report_config(&[(vars::REPORT_RESERVE_MS, "1500")]).expect("valid");
        assert_eq!(cfg.reserve, Duration::from_millis(1500));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_form() {
        let err = report_config(&[(vars::REPORT_RESERVE_MS, "5s")]).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.starts_with("TOLLGATE_REPORT_RESERVE_MS=\"5s\" is invalid"),
            "{text}"
        );
        assert!(text.contains("whole milliseconds"), "{text}");
        assert!(text.contains("e.g. 5000"), "{text}");
        let err = report_config(&[(vars::REPORT_ATTEMPT_TIMEOUT_MS, "999999")]).expect_err("range");
        assert!(err.to_string().contains("out of range"));
    }

    #[test]
    fn three_attempts_must_fit_in_the_reserve() {
        let d = ReportConfig::default();
        assert!(d.attempt_timeout <= d.max_attempt_timeout(), "{d:?}");
        // The old default, set explicitly, is cut, not refused.
        let cfg = report_config(&[
            (vars::REPORT_RESERVE_MS, "5000"),
            (vars::REPORT_ATTEMPT_TIMEOUT_MS, "5000"),
        ])
        .expect("cut, not refused");
        assert_eq!(cfg.attempt_timeout, Duration::from_millis(1583));
        let cfg = report_config(&[
            (vars::REPORT_RESERVE_MS, "1500"),
            (vars::REPORT_ATTEMPT_TIMEOUT_MS, "200"),
        ])
        .expect("fits");
        assert_eq!(cfg.attempt_timeout, Duration::from_millis(200));
        // A tiny reserve never makes attempts shorter than 100 ms.
        let cfg = report_config(&[(vars::REPORT_RESERVE_MS, "200")]).expect("valid");
        assert_eq!(cfg.attempt_timeout, ReportConfig::MIN_ATTEMPT_TIMEOUT);
        let cfg = report_config(&[(vars::REPORT_RESERVE_MS, "1000")]).expect("valid");
        assert_eq!(cfg.attempt_timeout, Duration::from_millis(250));
    }

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

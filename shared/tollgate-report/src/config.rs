//! The report core's settings from the environment, validated at init.

use crate::ReportConfig;
use std::time::Duration;
use tollgate_core::config::{ConfigError, Env, duration_ms};

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
}

//! deploy-hook configuration: environment variables read once at init.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TARGET_URL` | Base URL the checks get as `${TARGET}`; skips listener discovery | discovered from the deployment group's listeners |
//! | `TOLLGATE_CHECK_SPEC` | The check spec itself, YAML or JSON | — (this or the parameter is required) |
//! | `TOLLGATE_CHECK_SPEC_PARAMETER` | Name of an SSM parameter holding the spec (read once at init) | — |
//! | `TOLLGATE_CHECK_SPEC_PREFIX` | SSM path holding one spec per target: `<prefix>/codedeploy/<application>/<group>`, `<prefix>/ecs/<cluster>/<service>`; read on first use, cached; a target without one uses the spec above ([`crate::smoke`]) | unset: one spec for every target |
//! | `TOLLGATE_CHECK_SPEC_CACHE_S` | How long a per-target spec (and its resolved `variables:`) is kept before it is read again | `300` |
//! | `TOLLGATE_HOOK` | Which CodeDeploy hook the function serves: `auto` or a hook name | `auto` |
//! | `TOLLGATE_VERIFY_GREEN` | Check the GREEN task set (running = desired, pending = 0) before the checks | `true` |
//! | `TOLLGATE_SOAK_ROUNDS` | ECS native hooks: rounds of checks, one per invocation | `1` |
//! | `TOLLGATE_SOAK_INTERVAL_S` | ECS native hooks: `callBackDelay` between rounds, seconds | `30` |
//! | `TOLLGATE_RESOLVE` | `host=ip` pairs: connect to `ip` for a discovered `host` (local rehearsals) | none |
//! | `TOLLGATE_GATE_QUEUE_URL` | SQS queue that carries a CodeDeploy hook's metric gate from one measurement to the next (`DelaySeconds`); the function consumes it ([`crate::codedeploy_gate`]) | unset: a CodeDeploy hook whose spec has a `gate:` fails, naming it |
//! | `TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX` | SSM path under which a failed CodeDeploy hook leaves its failed checks for the notifier (`<prefix>/<application>/<group>`; [`tollgate_core::hook_failures`]) | unset: off |
//!
//! `TOLLGATE_HOOK=auto` reads the running hook from the deployment target's
//! lifecycle events (the one `InProgress`); when CodeDeploy does not say, the
//! function assumes `BeforeAllowTraffic` and says so in its summary.

use reqwest::Url;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;
use tollgate_core::config::{ConfigError, Env};
use tollgate_report::ReportConfig;
use tollgate_report::config::report_config;

/// Variable names.
pub mod vars {
    /// Explicit target base URL.
    pub const TARGET_URL: &str = "TARGET_URL";
    /// Inline check spec (YAML or JSON).
    pub const CHECK_SPEC: &str = "TOLLGATE_CHECK_SPEC";
    /// SSM parameter holding the check spec.
    pub const CHECK_SPEC_PARAMETER: &str = "TOLLGATE_CHECK_SPEC_PARAMETER";
    /// SSM path of the per-target specs.
    pub const CHECK_SPEC_PREFIX: &str = "TOLLGATE_CHECK_SPEC_PREFIX";
    /// Seconds a per-target spec is cached.
    pub const CHECK_SPEC_CACHE_S: &str = "TOLLGATE_CHECK_SPEC_CACHE_S";
    /// Which CodeDeploy hook runs.
    pub const HOOK: &str = "TOLLGATE_HOOK";
    /// Whether the green task set is verified.
    pub const VERIFY_GREEN: &str = "TOLLGATE_VERIFY_GREEN";
    /// ECS native soak rounds.
    pub const SOAK_ROUNDS: &str = "TOLLGATE_SOAK_ROUNDS";
    /// ECS native callBackDelay between rounds.
    pub const SOAK_INTERVAL_S: &str = "TOLLGATE_SOAK_INTERVAL_S";
    /// Host pins for rehearsals.
    pub const RESOLVE: &str = "TOLLGATE_RESOLVE";
    /// The CodeDeploy metric gate's queue.
    pub const GATE_QUEUE_URL: &str = "TOLLGATE_GATE_QUEUE_URL";
}

/// The CodeDeploy lifecycle hooks of an ECS blue/green deployment (the
/// Lambda platform has the last two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookName {
    /// Before the green task set is created.
    BeforeInstall,
    /// Green task set created; no traffic.
    AfterInstall,
    /// Test listener routes to green.
    AfterAllowTestTraffic,
    /// Test listener routes to green; production not yet.
    BeforeAllowTraffic,
    /// Production listener routes to green.
    AfterAllowTraffic,
}

impl HookName {
    /// All hooks, in deployment order.
    pub const ALL: [HookName; 5] = [
        Self::BeforeInstall,
        Self::AfterInstall,
        Self::AfterAllowTestTraffic,
        Self::BeforeAllowTraffic,
        Self::AfterAllowTraffic,
    ];

    /// CodeDeploy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BeforeInstall => "BeforeInstall",
            Self::AfterInstall => "AfterInstall",
            Self::AfterAllowTestTraffic => "AfterAllowTestTraffic",
            Self::BeforeAllowTraffic => "BeforeAllowTraffic",
            Self::AfterAllowTraffic => "AfterAllowTraffic",
        }
    }

    /// Parses CodeDeploy's spelling (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether production traffic reaches green at this hook (so the checks
    /// go through the production listener).
    pub fn uses_production_route(self) -> bool {
        self == Self::AfterAllowTraffic
    }

    /// Whether any listener routes to green at this hook. Before
    /// `AllowTestTraffic` there is none, so no target can be discovered.
    pub fn has_listener_to_green(self) -> bool {
        !matches!(self, Self::BeforeInstall | Self::AfterInstall)
    }

    /// Whether the green task set exists at this hook.
    pub fn green_exists(self) -> bool {
        self != Self::BeforeInstall
    }
}

impl fmt::Display for HookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the running hook is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSetting {
    /// From the deployment target's lifecycle events.
    Auto,
    /// Fixed by configuration.
    Fixed(HookName),
}

/// Where the check spec comes from. `Debug` never shows an inline spec's
/// text: it may hold tokens (header values) that must stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// `TOLLGATE_CHECK_SPEC`: the text itself.
    Inline(String),
    /// `TOLLGATE_CHECK_SPEC_PARAMETER`: an SSM parameter name.
    Parameter(String),
}

impl fmt::Debug for SpecSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(text) => write!(f, "Inline(<{} chars>)", text.chars().count()),
            Self::Parameter(name) => f.debug_tuple("Parameter").field(name).finish(),
        }
    }
}

impl SpecSource {
    /// Where the spec came from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Inline(_) => vars::CHECK_SPEC.to_owned(),
            Self::Parameter(name) => format!("SSM parameter {name:?}"),
        }
    }
}

/// A discovered host name pinned to an address (like `curl --resolve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPin {
    /// Host name as discovered (lowercase).
    pub host: String,
    /// Address to connect to instead.
    pub addr: IpAddr,
}

/// Everything deploy-hook reads from the environment.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// Explicit target; wins over discovery.
    pub target_url: Option<Url>,
    /// Which hook runs.
    pub hook: HookSetting,
    /// Where the default spec is (`None` only with a per-target prefix:
    /// then a target without its own spec fails, naming the parameter).
    pub spec_source: Option<SpecSource>,
    /// SSM path of the per-target specs (no trailing `/`).
    pub spec_prefix: Option<String>,
    /// How long a per-target spec is kept.
    pub spec_cache_ttl: Duration,
    /// Verify the GREEN task set before the checks.
    pub verify_green: bool,
    /// ECS native: rounds of checks (one per invocation).
    pub soak_rounds: u32,
    /// ECS native: delay between rounds (`callBackDelay`).
    pub soak_interval: Duration,
    /// Host pins applied to discovered URLs.
    pub resolve: Vec<HostPin>,
    /// Where failed hooks leave their failed checks for the notifier
    /// (`None`: not recorded).
    pub failure_record_prefix: Option<String>,
    /// The SQS queue of CodeDeploy metric gates (`None`: a CodeDeploy
    /// hook with a gate fails, naming the setting).
    pub gate_queue_url: Option<String>,
    /// The report core's settings.
    pub report: ReportConfig,
}

/// Largest `callBackDelay` accepted (one hour).
pub const MAX_SOAK_INTERVAL_S: u64 = 3600;
/// Most soak rounds accepted.
pub const MAX_SOAK_ROUNDS: u32 = 1000;
/// Longest per-target spec cache time accepted (one day).
pub const MAX_SPEC_CACHE_S: u64 = 86_400;

impl DeployConfig {
    /// Reads and validates the configuration.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let target_url = env
            .get(vars::TARGET_URL)
            .map(|raw| parse_target_url(vars::TARGET_URL, &raw))
            .transpose()?;
        let hook = match env.get(vars::HOOK) {
            None => HookSetting::Auto,
            Some(raw) if raw.trim().eq_ignore_ascii_case("auto") => HookSetting::Auto,
            Some(raw) => HookSetting::Fixed(HookName::parse(&raw).ok_or_else(|| {
                ConfigError::invalid(
                    vars::HOOK,
                    &raw,
                    "not a CodeDeploy hook name",
                    "auto, BeforeInstall, AfterInstall, AfterAllowTestTraffic, BeforeAllowTraffic \
                     or AfterAllowTraffic, e.g. BeforeAllowTraffic",
                )
            })?),
        };
        let spec_prefix = env
            .get(vars::CHECK_SPEC_PREFIX)
            .map(|raw| parse_prefix(&raw))
            .transpose()?;
        let spec_source = match (
            env.get(vars::CHECK_SPEC),
            env.get(vars::CHECK_SPEC_PARAMETER),
        ) {
            (Some(text), None) => Some(SpecSource::Inline(text)),
            (None, Some(name)) => {
                let name = name.trim().to_owned();
                if name.chars().any(char::is_whitespace) {
                    return Err(ConfigError::invalid(
                        vars::CHECK_SPEC_PARAMETER,
                        &name,
                        "a parameter name has no spaces",
                        "an SSM parameter name or ARN, e.g. /tollgate/web/checks",
                    ));
                }
                Some(SpecSource::Parameter(name))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    vars::CHECK_SPEC_PARAMETER,
                    &env.get(vars::CHECK_SPEC_PARAMETER).unwrap_or_default(),
                    format!(
                        "{} is set too, and only one spec source may be",
                        vars::CHECK_SPEC
                    ),
                    format!(
                        "either {} (the spec as YAML or JSON) or {} (an SSM parameter name), not both",
                        vars::CHECK_SPEC,
                        vars::CHECK_SPEC_PARAMETER
                    ),
                ));
            }
            (None, None) if spec_prefix.is_some() => None,
            (None, None) => {
                return Err(ConfigError::Missing {
                    var: vars::CHECK_SPEC.to_owned(),
                    hint: format!(
                        "set it to the check spec (YAML or JSON, e.g. \
                         'checks: [{{name: health, url: \"${{TARGET}}/health\", expect: {{status: 200}}}}]'), \
                         or set {} to the name of an SSM parameter holding it, or {} to an SSM \
                         path holding one spec per target",
                        vars::CHECK_SPEC_PARAMETER,
                        vars::CHECK_SPEC_PREFIX
                    ),
                });
            }
        };
        let verify_green = match env.get(vars::VERIFY_GREEN) {
            None => true,
            Some(raw) => parse_bool(vars::VERIFY_GREEN, &raw)?,
        };
        let soak_rounds = match env.get(vars::SOAK_ROUNDS) {
            None => 1,
            Some(raw) => {
                parse_int(vars::SOAK_ROUNDS, &raw, 1, u64::from(MAX_SOAK_ROUNDS), "10")? as u32
            }
        };
        let soak_interval = match env.get(vars::SOAK_INTERVAL_S) {
            None => Duration::from_secs(30),
            Some(raw) => Duration::from_secs(parse_int(
                vars::SOAK_INTERVAL_S,
                &raw,
                1,
                MAX_SOAK_INTERVAL_S,
                "30",
            )?),
        };
        let spec_cache_ttl = match env.get(vars::CHECK_SPEC_CACHE_S) {
            None => Duration::from_secs(300),
            Some(raw) => Duration::from_secs(parse_int(
                vars::CHECK_SPEC_CACHE_S,
                &raw,
                0,
                MAX_SPEC_CACHE_S,
                "300",
            )?),
        };
        let resolve = match env.get(vars::RESOLVE) {
            None => Vec::new(),
            Some(raw) => parse_resolve(&raw)?,
        };
        Ok(Self {
            target_url,
            hook,
            spec_source,
            spec_prefix,
            spec_cache_ttl,
            verify_green,
            soak_rounds,
            soak_interval,
            resolve,
            failure_record_prefix: tollgate_core::hook_failures::prefix_from_env(env)?,
            gate_queue_url: env
                .get(vars::GATE_QUEUE_URL)
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty()),
            report: report_config(env)?,
        })
    }

    /// Applies [`DeployConfig::resolve`] to a discovered URL: a pinned host
    /// is replaced by its address (the port and path stay).
    pub fn pin(&self, url: Url) -> Url {
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return url;
        };
        let Some(pin) = self.resolve.iter().find(|p| p.host == host) else {
            return url;
        };
        let mut pinned = url.clone();
        match pinned.set_ip_host(pin.addr) {
            Ok(()) => pinned,
            Err(()) => url,
        }
    }
}

/// Parses the per-target spec path: an SSM path starting with `/`, in
/// SSM's name characters; a trailing `/` is dropped.
fn parse_prefix(raw: &str) -> Result<String, ConfigError> {
    let expected = "an SSM path starting with /, e.g. /tollgate/checks";
    let prefix = raw.trim().trim_end_matches('/');
    if !prefix.starts_with('/') {
        return Err(ConfigError::invalid(
            vars::CHECK_SPEC_PREFIX,
            raw,
            "it does not start with /",
            expected,
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_.-".contains(*c)))
    {
        return Err(ConfigError::invalid(
            vars::CHECK_SPEC_PREFIX,
            raw,
            format!("{c:?} is not allowed in an SSM parameter name"),
            expected,
        ));
    }
    if prefix.contains("//") {
        return Err(ConfigError::invalid(
            vars::CHECK_SPEC_PREFIX,
            raw,
            "it has an empty path segment",
            expected,
        ));
    }
    Ok(prefix.to_owned())
}

/// Parses a target base URL: absolute http(s), no query or fragment; a
/// trailing slash is dropped so `${TARGET}/health` stays clean.
pub fn parse_target_url(var: &str, raw: &str) -> Result<Url, ConfigError> {
    let expected = "an absolute http(s) base URL without query, e.g. http://web-test.internal:8080";
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::invalid(var, raw, format!("not a URL ({e})"), expected))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            var,
            raw,
            format!("the scheme is {:?}", url.scheme()),
            expected,
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(var, raw, "there is no host", expected));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            var,
            raw,
            "it has a query or fragment",
            expected,
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid_secret(
            var,
            "it carries credentials",
            "a URL without user:password (put tokens in the spec's headers)",
        ));
    }
    Ok(url)
}

/// The URL as `${TARGET}`: no trailing slash.
pub fn target_text(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

fn parse_bool(var: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            var,
            raw,
            "not a boolean",
            "true or false",
        )),
    }
}

fn parse_int(var: &str, raw: &str, min: u64, max: u64, example: &str) -> Result<u64, ConfigError> {
    let expected = || format!("a whole number from {min} to {max}, e.g. {example}");
    let n: u64 = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::invalid(var, raw, "not a whole number", expected()))?;
    if n < min || n > max {
        return Err(ConfigError::invalid(var, raw, "out of range", expected()));
    }
    Ok(n)
}

fn parse_resolve(raw: &str) -> Result<Vec<HostPin>, ConfigError> {
    let expected =
        "comma-separated host=ip pairs, e.g. web-alb-1.eu-west-1.elb.amazonaws.com=127.0.0.1";
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (host, addr) = pair.split_once('=').ok_or_else(|| {
                ConfigError::invalid(vars::RESOLVE, raw, format!("{pair:?} has no '='"), expected)
            })?;
            let host = host.trim().to_ascii_lowercase();
            if host.is_empty() {
                return Err(ConfigError::invalid(
                    vars::RESOLVE,
                    raw,
                    format!("{pair:?} has no host"),
                    expected,
                ));
            }
            let addr: IpAddr = addr.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    vars::RESOLVE,
                    raw,
                    format!("{:?} is not an IP address", addr.trim()),
                    expected,
                )
            })?;
            Ok(HostPin { host, addr })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]";

    #[test]
    fn defaults() {
        let cfg = DeployConfig::from_env(&[(vars::CHECK_SPEC, SPEC)]).expect("valid");
        assert_eq!(cfg.hook, HookSetting::Auto);
        assert!(cfg.target_url.is_none());
        assert!(cfg.verify_green);
        assert_eq!(cfg.soak_rounds, 1);
        assert_eq!(cfg.soak_interval, Duration::from_secs(30));
        assert_eq!(cfg.spec_source, Some(SpecSource::Inline(SPEC.to_owned())));
        assert_eq!(cfg.spec_prefix, None);
        assert_eq!(cfg.spec_cache_ttl, Duration::from_secs(300));
        assert!(cfg.resolve.is_empty());
    }

    #[test]
    fn everything_set() {
        let cfg = DeployConfig::from_env(&[
            (vars::CHECK_SPEC_PARAMETER, "/tollgate/web/checks"),
            (vars::TARGET_URL, "https://green.example.com:8443/"),
            (vars::HOOK, "afterallowtraffic"),
            (vars::VERIFY_GREEN, "false"),
            (vars::SOAK_ROUNDS, "10"),
            (vars::SOAK_INTERVAL_S, "45"),
            (vars::RESOLVE, "Web-ALB.example.com=127.0.0.1, other=::1"),
        ])
        .expect("valid");
        assert_eq!(
            cfg.spec_source,
            Some(SpecSource::Parameter("/tollgate/web/checks".into()))
        );
        assert_eq!(cfg.hook, HookSetting::Fixed(HookName::AfterAllowTraffic));
        assert!(!cfg.verify_green);
        assert_eq!(cfg.soak_rounds, 10);
        assert_eq!(cfg.soak_interval, Duration::from_secs(45));
        let url = cfg.target_url.clone().expect("set");
        assert_eq!(target_text(&url), "https://green.example.com:8443");
        assert_eq!(cfg.resolve.len(), 2);
        let pinned = cfg.pin(Url::parse("http://web-alb.example.com:8080/x").expect("url"));
        assert_eq!(pinned.as_str(), "http://127.0.0.1:8080/x");
        let v6 = cfg.pin(Url::parse("http://other/").expect("url"));
        assert_eq!(v6.as_str(), "http://[::1]/");
        let untouched = cfg.pin(Url::parse("http://elsewhere:1/").expect("url"));
        assert_eq!(untouched.as_str(), "http://elsewhere:1/");
    }

    #[test]
    fn a_spec_source_is_required_and_only_one() {
        let err = DeployConfig::from_env(&[("X", "1")]).expect_err("missing");
        let text = err.to_string();
        assert!(text.starts_with("TOLLGATE_CHECK_SPEC is not set"), "{text}");
        assert!(text.contains("TOLLGATE_CHECK_SPEC_PARAMETER"), "{text}");
        let err =
            DeployConfig::from_env(&[(vars::CHECK_SPEC, SPEC), (vars::CHECK_SPEC_PARAMETER, "/p")])
                .expect_err("both");
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn a_prefix_alone_is_enough_and_is_normalised() {
        let cfg = DeployConfig::from_env(&[
            (vars::CHECK_SPEC_PREFIX, " /tollgate/checks/ "),
            (vars::CHECK_SPEC_CACHE_S, "0"),
        ])
        .expect("valid");
        assert_eq!(cfg.spec_source, None);
        assert_eq!(cfg.spec_prefix.as_deref(), Some("/tollgate/checks"));
        assert_eq!(cfg.spec_cache_ttl, Duration::ZERO);
        let both = DeployConfig::from_env(&[
            (vars::CHECK_SPEC_PREFIX, "/tollgate/checks"),
            (vars::CHECK_SPEC, SPEC),
        ])
        .expect("a prefix with a default");
        assert!(both.spec_source.is_some());
    }

    #[test]
    fn bad_values_name_the_variable_and_the_form() {
        let cases: [(&str, &str, &str); 12] = [
            (
                vars::CHECK_SPEC_PREFIX,
                "tollgate/checks",
                "starting with /",
            ),
            (vars::CHECK_SPEC_PREFIX, "/tollgate checks", "not allowed"),
            (
                vars::CHECK_SPEC_PREFIX,
                "/tollgate//checks",
                "empty path segment",
            ),
            (vars::CHECK_SPEC_CACHE_S, "86401", "from 0 to 86400"),
            (vars::HOOK, "AfterTraffic", "BeforeAllowTraffic"),
            (vars::TARGET_URL, "green.example.com", "absolute http(s)"),
            (vars::TARGET_URL, "ftp://x", "scheme"),
            (vars::TARGET_URL, "http://x/?a=1", "query"),
            (vars::VERIFY_GREEN, "maybe", "true or false"),
            (vars::SOAK_ROUNDS, "0", "from 1 to 1000"),
            (vars::SOAK_INTERVAL_S, "30s", "whole number"),
            (vars::RESOLVE, "host:127.0.0.1", "host=ip"),
        ];
        for (var, value, hint) in cases {
            let err =
                DeployConfig::from_env(&[(vars::CHECK_SPEC, SPEC), (var, value)]).expect_err(var);
            let text = err.to_string();
            assert!(text.starts_with(var), "{text}");
            assert!(text.contains(hint), "{var}: {text}");
        }
    }

    #[test]
    fn credentials_in_the_target_are_not_echoed() {
        let err = DeployConfig::from_env(&[
            (vars::CHECK_SPEC, SPEC),
            (vars::TARGET_URL, "https://user:hunter2@x.example.com"),
        ])
        .expect_err("credentials");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn hook_traits() {
        assert!(HookName::AfterAllowTraffic.uses_production_route());
        assert!(!HookName::BeforeAllowTraffic.uses_production_route());
        assert!(!HookName::AfterInstall.has_listener_to_green());
        assert!(HookName::AfterAllowTestTraffic.has_listener_to_green());
        assert!(!HookName::BeforeInstall.green_exists());
        assert!(HookName::AfterInstall.green_exists());
    }
}

//! The notifier's configuration: environment variables read and validated at
//! init, then secrets and the rules document resolved once and cached for the
//! life of the execution environment.
//!
//! | Variable | Meaning | Default |
//! |---|---|---|
//! | `TOLLGATE_SLACK_WEBHOOK` | Slack incoming webhook URL: a secret reference ([`crate::secret_ref`]) | none |
//! | `TOLLGATE_TEAMS_WEBHOOK` | Teams Workflows webhook URL: a secret reference | none |
//! | `TOLLGATE_WEBHOOK_URL` | generic JSON webhook URL: a secret reference | none |
//! | `TOLLGATE_WEBHOOK_TOKEN` | bearer token for the generic webhook: a secret reference | none |
//! | `TOLLGATE_SNS_TOPIC_ARN` | SNS topic ARN | none |
//! | `TOLLGATE_AMAZONQ_TOPIC_ARN` | SNS topic of an Amazon Q in chat channel: custom notifications, one thread per run | none |
//! | `TOLLGATE_NOTIFY_RULES` | rules document, inline JSON or YAML ([`super::rules`]) | built-in defaults |
//! | `TOLLGATE_NOTIFY_RULES_SSM` | SSM parameter holding the rules document | none |
//! | `TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS` | timeout of one delivery attempt | 5000 |
//! | `TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS` | time bound for all enrichment lookups | 2000 |
//! | `TOLLGATE_NOTIFY_ENRICH` | `true`/`false`: look up reasons, commits, durations | true |
//! | `TOLLGATE_NOTIFY_RESERVE_MS` | time kept back from the Lambda deadline to return the result | 500 |
//! | `TOLLGATE_APPROVAL_ECS_SERVICES` | `<cluster>/<service>` names whose ECS pauses the Slack bot posts with Continue / Roll back (the approvals function's list); other pauses are posted without buttons | none |
//! | `TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX` | SSM path where deploy-hook leaves failed hooks' checks; a CodeDeploy failure then shows them ([`tollgate_core::hook_failures`]) | unset: off |
//!
//! The destination variables create destinations named `slack`, `teams`,
//! `webhook`, `sns` and `amazonq`; the rules document may declare more. Each
//! destination type reads and checks its own variables and document entry
//! ([`crate::destinations`]); this module owns the rest: the settings, the
//! rules document's source, the order of resolution and the init error.
//! Secret references: [`crate::secret_ref`].

use super::destinations::{self, Destination, DestinationSpec};
use super::rules::{Rules, RulesError};
use super::secret_ref::{ResolveError, SecretCache};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tollgate_core::config::{ConfigError, Env, duration_ms};
use tollgate_core::ports::{ParameterError, ParameterStore};
use tollgate_core::ports::{SecretError, SecretStore};

/// Variable names.
pub mod vars {
    // The notifier's own variables; a destination type's are declared in
    // its module (`destinations::<type>::VAR`) and named here only as
    // aliases (`tests/tests/iam_policy.rs` reads both files against the
    // template).
    /// Slack webhook URL (secret reference): `destinations::slack::VAR`.
    pub const SLACK_WEBHOOK: &str = crate::destinations::slack::VAR;
    /// Teams webhook URL (secret reference): `destinations::teams::VAR`.
    pub const TEAMS_WEBHOOK: &str = crate::destinations::teams::VAR;
    /// Generic webhook URL (secret reference): `destinations::webhook::VAR`.
    pub const WEBHOOK_URL: &str = crate::destinations::webhook::VAR;
    /// Generic webhook bearer token (secret reference):
    /// `destinations::webhook::TOKEN_VAR`.
    pub const WEBHOOK_TOKEN: &str = crate::destinations::webhook::TOKEN_VAR;
    /// SNS topic ARN: `destinations::sns::VAR`.
    pub const SNS_TOPIC_ARN: &str = crate::destinations::sns::VAR;
    /// Amazon Q in chat topic ARN: `destinations::amazonq::VAR`.
    pub const AMAZONQ_TOPIC_ARN: &str = crate::destinations::amazonq::VAR;
    /// Inline rules document.
    pub const RULES: &str = "TOLLGATE_NOTIFY_RULES";
    /// Pipelines (ARNs or names, comma-separated) whose entry conditions in
    /// progress get an Override request (`crate::stage_condition`).
    pub const OVERRIDE_PIPELINES: &str = "TOLLGATE_NOTIFY_OVERRIDE_PIPELINES";
    /// SSM parameter with the rules document.
    pub const RULES_SSM: &str = "TOLLGATE_NOTIFY_RULES_SSM";
    /// Timeout of one delivery attempt (ms).
    pub const REQUEST_TIMEOUT_MS: &str = "TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS";
    /// Time bound of enrichment (ms).
    pub const ENRICH_TIMEOUT_MS: &str = "TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS";
    /// Enrichment on/off.
    pub const ENRICH: &str = "TOLLGATE_NOTIFY_ENRICH";
    /// Time kept back from the deadline (ms).
    pub const RESERVE_MS: &str = "TOLLGATE_NOTIFY_RESERVE_MS";
    /// DynamoDB table of the delivery ledger (cross-environment
    /// deduplication; unset: per environment only).
    pub const DEDUPE_TABLE: &str = "TOLLGATE_NOTIFY_DEDUPE_TABLE";
    /// ECS services whose pauses get Continue / Roll back buttons: the
    /// approvals function's list, read by
    /// `tollgate_core::ecs_pause_request::services_from_env` (the same
    /// name, checked by a test).
    pub const ECS_PAUSE_SERVICES: &str = "TOLLGATE_APPROVAL_ECS_SERVICES";
}

#[cfg(test)]
mod ecs_pause_services_tests {
    use super::*;

    #[test]
    fn the_ecs_pause_services_are_the_approvals_functions_list() {
        assert_eq!(
            vars::ECS_PAUSE_SERVICES,
            tollgate_core::ecs_pause_request::SERVICES_VAR
        );
        let s = settings(&[(vars::ECS_PAUSE_SERVICES, "prod/web, prod/api")]).expect("valid");
        assert_eq!(s.ecs_pause_services, ["prod/web", "prod/api"]);
        assert!(settings(&[]).expect("valid").ecs_pause_services.is_empty());
        // A bad list (the approvals function refuses it at its own init)
        // turns the buttons off here; it never stops the notifier.
        let s = settings(&[(
            vars::ECS_PAUSE_SERVICES,
            "arn:aws:ecs:eu-west-1:111122223333:service/prod/web",
        )])
        .expect("a bad approvals list does not stop the notifier");
        assert!(s.ecs_pause_services.is_empty());
        let s = settings(&[(vars::OVERRIDE_PIPELINES, "not a pipeline!")])
            .expect("a bad override list does not stop the notifier");
        assert!(s.override_pipelines.is_empty());
    }
}

/// Where the rules document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// Built-in defaults.
    Defaults,
    /// Inline text.
    Inline(String),
    /// SSM parameter name.
    Ssm(String),
}

/// Settings read from the environment (nothing resolved yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The rules document's source.
    pub rules: RulesSource,
    /// Destinations from the destination variables.
    pub destinations: Vec<DestinationSpec>,
    /// Timeout of one delivery attempt.
    pub request_timeout: Duration,
    /// Time bound of enrichment.
    pub enrich_timeout: Duration,
    /// Whether to enrich.
    pub enrich: bool,
    /// Where deploy-hook's failure records are (`None`: not read).
    pub hook_failure_prefix: Option<String>,
    /// Time kept back from the Lambda deadline.
    pub reserve: Duration,
    /// The delivery ledger's DynamoDB table (`None`: deduplication per
    /// execution environment only).
    pub dedupe_table: Option<String>,
    /// ECS services (`<cluster>/<service>`) whose paused deployments the
    /// approvals function may decide: the bot's Continue / Roll back
    /// buttons are posted for these only
    /// (`tollgate_core::ecs_pause_request::SERVICES_VAR`).
    pub ecs_pause_services: Vec<String>,
    /// Pipelines whose entry conditions in progress get an Override
    /// request ([`vars::OVERRIDE_PIPELINES`]).
    pub override_pipelines: Vec<String>,
}

/// A DynamoDB table name: 3–255 of `A-Za-z0-9_.-`.
fn dedupe_table(env: &impl Env) -> Result<Option<String>, ConfigError> {
    let Some(raw) = env.get(vars::DEDUPE_TABLE) else {
        return Ok(None);
    };
    let valid = (3..=255).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(Some(raw))
    } else {
        Err(ConfigError::invalid(
            vars::DEDUPE_TABLE,
            &raw,
            "not a DynamoDB table name",
            "3 to 255 letters, digits, '_', '.' or '-' (the template sets it to its table)",
        ))
    }
}

/// Reads and validates the environment.
pub fn settings(env: &impl Env) -> Result<Settings, ConfigError> {
    let destinations = destinations::from_env(env)?;
    let rules = match (env.get(vars::RULES), env.get(vars::RULES_SSM)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                vars::RULES_SSM,
                &env.get(vars::RULES_SSM).unwrap_or_default(),
                format!(
                    "{} is also set; only one source of rules is allowed",
                    vars::RULES
                ),
                format!(
                    "either {} (inline) or {} (parameter name)",
                    vars::RULES,
                    vars::RULES_SSM
                ),
            ));
        }
        (Some(text), None) => RulesSource::Inline(text),
        (None, Some(name)) => RulesSource::Ssm(name.trim().to_owned()),
        (None, None) => RulesSource::Defaults,
    };
    let enrich = match env.get(vars::ENRICH).map(|v| v.trim().to_ascii_lowercase()) {
        None => true,
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => true,
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => false,
        Some(v) => {
            return Err(ConfigError::invalid(
                vars::ENRICH,
                &v,
                "not a boolean",
                "true or false",
            ));
        }
    };
    Ok(Settings {
        rules,
        destinations,
        request_timeout: duration_ms(
            env,
            vars::REQUEST_TIMEOUT_MS,
            Duration::from_secs(5),
            Duration::from_millis(200),
            Duration::from_secs(60),
        )?,
        enrich_timeout: duration_ms(
            env,
            vars::ENRICH_TIMEOUT_MS,
            Duration::from_secs(2),
            Duration::from_millis(100),
            Duration::from_secs(30),
        )?,
        enrich,
        hook_failure_prefix: tollgate_core::hook_failures::prefix_from_env(env)?,
        reserve: duration_ms(
            env,
            vars::RESERVE_MS,
            Duration::from_millis(500),
            Duration::from_millis(100),
            Duration::from_secs(30),
        )?,
        dedupe_table: dedupe_table(env)?,
        // The approvals function's lists: it refuses to start on a bad one.
        // Here a bad one only turns the buttons off (logged), so a typo in an
        // approvals setting never stops every other notification.
        ecs_pause_services: tollgate_core::ecs_pause_request::services_from_env(env)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no ECS pause buttons: the approvals function's service list is invalid");
                Vec::new()
            }),
        override_pipelines: tollgate_core::stage_condition_request::pipeline_names(
            &env.get(vars::OVERRIDE_PIPELINES).unwrap_or_default(),
        )
        .unwrap_or_else(|bad| {
            let e = ConfigError::invalid(
                vars::OVERRIDE_PIPELINES,
                &bad,
                "not a pipeline ARN or name",
                "arn:aws:codepipeline:eu-west-1:111122223333:pay-prod (the template's ApprovalPipelineArns)",
            );
            tracing::warn!(error = %e, "no Override requests: the pipeline list is invalid");
            Vec::new()
        }),
    })
}

/// Everything the notifier needs, resolved.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Rules.
    pub rules: Rules,
    /// Destinations, in configuration order.
    pub destinations: Vec<Destination>,
    /// Timeout of one delivery attempt.
    pub request_timeout: Duration,
    /// Time bound of enrichment.
    pub enrich_timeout: Duration,
    /// Whether to enrich.
    pub enrich: bool,
    /// Where deploy-hook's failure records are (`None`: not read).
    pub hook_failure_prefix: Option<String>,
    /// Time kept back from the Lambda deadline.
    pub reserve: Duration,
    /// ECS services whose pauses get Continue / Roll back buttons
    /// ([`Settings::ecs_pause_services`]).
    pub ecs_pause_services: Vec<String>,
    /// Pipelines whose entry conditions in progress get an Override request.
    pub override_pipelines: Vec<String>,
}

/// Init failed after the environment was read.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A variable or document value is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rules document is invalid.
    #[error("{origin}: {source}")]
    Rules {
        /// Variable or parameter.
        origin: String,
        /// What is wrong.
        source: RulesError,
    },
    /// A secret could not be read.
    #[error("{origin}: {source}")]
    Secret {
        /// Variable or document path.
        origin: String,
        /// What went wrong.
        source: SecretError,
    },
    /// A parameter could not be read.
    #[error("{origin}: {source}")]
    Parameter {
        /// Variable or document path.
        origin: String,
        /// What went wrong.
        source: ParameterError,
    },
    /// Nothing to send to.
    #[error(
        "no destination is configured; set at least one of TOLLGATE_SLACK_WEBHOOK, \
         TOLLGATE_TEAMS_WEBHOOK, TOLLGATE_WEBHOOK_URL, TOLLGATE_SNS_TOPIC_ARN, \
         TOLLGATE_AMAZONQ_TOPIC_ARN, or declare \
         `destinations` in the rules document"
    )]
    NoDestination,
}

impl From<ResolveError> for InitError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Config(e) => Self::Config(e),
            ResolveError::Secret { origin, source } => Self::Secret { origin, source },
            ResolveError::Parameter { origin, source } => Self::Parameter { origin, source },
        }
    }
}

impl InitError {
    /// Short error type for `/runtime/init/error`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Config(_) | Self::NoDestination => "InvalidConfiguration",
            Self::Rules { .. } => "InvalidRules",
            Self::Secret { .. } | Self::Parameter { .. } => "SecretUnavailable",
        }
    }
}

/// Resolves secrets and rules. Secrets are fetched once per secret id (a
/// JSON secret holding both a URL and a token is read once).
pub async fn resolve(
    settings: &Settings,
    secrets: &impl SecretStore,
    params: &impl ParameterStore,
) -> Result<NotifierConfig, InitError> {
    let (rules_text, rules_origin) = match &settings.rules {
        RulesSource::Defaults => (None, String::new()),
        RulesSource::Inline(t) => (Some(t.clone()), vars::RULES.to_owned()),
        RulesSource::Ssm(name) => {
            let origin = format!("{} ({name})", vars::RULES_SSM);
            let text = params
                .get_parameter(name)
                .await
                .map_err(|source| InitError::Parameter {
                    origin: origin.clone(),
                    source,
                })?;
            (Some(text.expose().to_owned()), origin)
        }
    };
    let (rules, doc_destinations) = match &rules_text {
        Some(text) => super::rules::parse_document(text).map_err(|source| InitError::Rules {
            origin: rules_origin.clone(),
            source,
        })?,
        None => (Rules::default(), BTreeMap::new()),
    };
    let mut specs = settings.destinations.clone();
    for (name, doc) in doc_destinations {
        let origin = format!("{rules_origin} destinations.{name}");
        if specs.iter().any(|s| s.name == name) {
            return Err(ConfigError::invalid(
                &origin,
                &name,
                "a destination with this name already comes from an environment variable",
                "a different name (slack, teams, webhook, sns and amazonq are taken by the variables that are set)",
            )
            .into());
        }
        let spec = destinations::from_doc(&name, origin, doc)?;
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err(InitError::NoDestination);
    }
    let names: BTreeSet<String> = specs.iter().map(|s| s.name.clone()).collect();
    rules
        .check_destinations(&names)
        .map_err(|source| InitError::Rules {
            origin: if rules_origin.is_empty() {
                vars::RULES.to_owned()
            } else {
                rules_origin.clone()
            },
            source,
        })?;

    let mut cache = SecretCache::default();
    let mut destinations = Vec::new();
    for spec in &specs {
        let target = destinations::resolve(spec, &mut cache, secrets, params).await?;
        warn_if_plain(spec);
        destinations.push(Destination {
            name: spec.name.clone(),
            target,
        });
    }
    Ok(NotifierConfig {
        rules,
        destinations,
        request_timeout: settings.request_timeout,
        enrich_timeout: settings.enrich_timeout,
        enrich: settings.enrich,
        hook_failure_prefix: settings.hook_failure_prefix.clone(),
        reserve: settings.reserve,
        ecs_pause_services: settings.ecs_pause_services.clone(),
        override_pipelines: settings.override_pipelines.clone(),
    })
}

fn warn_if_plain(spec: &DestinationSpec) {
    if spec.unresolved.has_plain_secret() {
        tracing::warn!(
            destination = %spec.name,
            origin = %spec.origin,
            "webhook secret given as a plain value; fine for local runs, but use secretsmanager: or ssm: references in AWS"
        );
    }
}

/// The one line a ready notifier logs: its destinations (name and kind,
/// never a URL), enrichment, the hook-failure prefix and the delivery table.
pub fn log_ready(resolved: &NotifierConfig, settings: &Settings) {
    let names: Vec<String> = resolved
        .destinations
        .iter()
        .map(|d| format!("{}:{}", d.name, d.kind().as_str()))
        .collect();
    tracing::info!(
        destinations = %names.join(","),
        enrich = resolved.enrich,
        hook_failure_parameter_prefix = resolved.hook_failure_prefix.as_deref(),
        dedupe_table = settings.dedupe_table.as_deref(),
        "notifier ready"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::destinations::{DestinationKind, Target, webhook};
    use std::collections::HashMap;
    use tollgate_core::secret::Secret;
    use tollgate_test_support::parameters::FakeStore;

    const HOOK: &str = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX";

    #[test]
    fn env_is_validated_with_the_variable_named() {
        let err = settings(&[(vars::SNS_TOPIC_ARN, "not-an-arn")]).expect_err("bad arn");
        assert!(
            err.to_string().starts_with("TOLLGATE_SNS_TOPIC_ARN="),
            "{err}"
        );
        let err = settings(&[(vars::REQUEST_TIMEOUT_MS, "5s")]).expect_err("bad ms");
        assert!(err.to_string().contains(vars::REQUEST_TIMEOUT_MS), "{err}");
        let err = settings(&[(vars::ENRICH, "maybe")]).expect_err("bad bool");
        assert!(err.to_string().contains(vars::ENRICH), "{err}");
        let err = settings(&[(vars::WEBHOOK_TOKEN, "t")]).expect_err("token alone");
        assert!(err.to_string().contains(vars::WEBHOOK_URL), "{err}");
        let err = settings(&[(vars::RULES, "{}"), (vars::RULES_SSM, "/x")]).expect_err("both");
        assert!(err.to_string().contains("only one source"), "{err}");
        let s = settings(&[(vars::SLACK_WEBHOOK, HOOK)]).expect("ok");
        assert_eq!(s.request_timeout, Duration::from_secs(5));
        assert!(s.enrich);
        assert_eq!(s.destinations[0].name, "slack");
    }

    #[tokio::test]
    async fn secrets_resolve_once_per_id_and_keys_are_extracted() {
        let secrets = FakeStore::with([(
            "tollgate/hook".to_owned(),
            format!(r#"{{"url": "{HOOK}", "token": "tok-123"}}"#),
        )]);
        let s = settings(&[
            (vars::WEBHOOK_URL, "secretsmanager:tollgate/hook#url"),
            (vars::WEBHOOK_TOKEN, "secretsmanager:tollgate/hook#token"),
        ])
        .expect("ok");
        let cfg = resolve(&s, &secrets, &FakeStore::default())
            .await
            .expect("resolves");
        assert_eq!(
            cfg.destinations[0].target,
            Target::Webhook(webhook::Target {
                url: Secret::new(HOOK),
                token: Some(Secret::new("tok-123"))
            })
        );
        assert_eq!(secrets.reads().len(), 1);
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("tok-123"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn resolution_errors_name_the_origin_not_the_value() {
        let secrets = FakeStore::with([("s".to_owned(), "not a url SECRETVALUE".to_owned())]);
        let s = settings(&[(vars::SLACK_WEBHOOK, "secretsmanager:s")]).expect("ok");
        let err = resolve(&s, &secrets, &FakeStore::default())
            .await
            .expect_err("not https");
        let text = err.to_string();
        assert!(text.starts_with("TOLLGATE_SLACK_WEBHOOK="), "{text}");
        assert!(!text.contains("SECRETVALUE"), "{text}");

        let s = settings(&[(vars::TEAMS_WEBHOOK, "secretsmanager:missing")]).expect("ok");
        let err = resolve(&s, &secrets, &FakeStore::default())
            .await
            .expect_err("missing");
        assert_eq!(err.error_type(), "SecretUnavailable");
        assert!(err.to_string().contains("TOLLGATE_TEAMS_WEBHOOK"), "{err}");

        let err = resolve(
            &settings(&[("X", "1")]).expect("ok"),
            &secrets,
            &FakeStore::default(),
        )
        .await
        .expect_err("nothing configured");
        assert!(matches!(err, InitError::NoDestination));
    }

    #[tokio::test]
    async fn rules_from_ssm_declare_destinations() {
        let params = FakeStore::with(HashMap::from([
            (
                "/tollgate/rules".to_owned(),
                "destinations:\n  ops: { type: teams, url: \"ssm:/tollgate/teams\" }\nroutes:\n  - match: { pipeline: \"*\" }\n    to: [ops]\n".to_owned(),
            ),
            ("/tollgate/teams".to_owned(), "https://example.webhook.office.com/x".to_owned()),
        ]));
        let s = settings(&[(vars::RULES_SSM, "/tollgate/rules")]).expect("ok");
        let cfg = resolve(&s, &FakeStore::default(), &params)
            .await
            .expect("resolves");
        assert_eq!(cfg.destinations.len(), 1);
        assert_eq!(cfg.destinations[0].kind(), DestinationKind::Teams);
        assert_eq!(cfg.rules.routes.len(), 1);
    }
}

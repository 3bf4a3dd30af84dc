//! The notifier's configuration: environment variables read and validated at
//! init, then secrets and the rules document resolved once and cached for the
//! life of the execution environment.
//!
//! | Variable | Meaning | Default |
//! |---|---|---|
//! | `TOLLGATE_SLACK_WEBHOOK` | Slack incoming webhook URL: a secret reference (below) | none |
//! | `TOLLGATE_TEAMS_WEBHOOK` | Teams Workflows webhook URL: a secret reference | none |
//! | `TOLLGATE_WEBHOOK_URL` | generic JSON webhook URL: a secret reference | none |
//! | `TOLLGATE_WEBHOOK_TOKEN` | bearer token for the generic webhook: a secret reference | none |
//! | `TOLLGATE_SNS_TOPIC_ARN` | SNS topic ARN | none |
//! | `TOLLGATE_NOTIFY_RULES` | rules document, inline JSON or YAML ([`super::rules`]) | built-in defaults |
//! | `TOLLGATE_NOTIFY_RULES_SSM` | SSM parameter holding the rules document | none |
//! | `TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS` | timeout of one delivery attempt | 5000 |
//! | `TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS` | time bound for all enrichment lookups | 2000 |
//! | `TOLLGATE_NOTIFY_ENRICH` | `true`/`false`: look up reasons, commits, durations | true |
//! | `TOLLGATE_NOTIFY_RESERVE_MS` | time kept back from the Lambda deadline to return the result | 500 |
//! | `TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX` | SSM path where deploy-hook leaves failed hooks' checks; a CodeDeploy failure then shows them ([`tollgate_core::hook_failures`]) | unset: off |
//!
//! The destination variables create destinations named `slack`, `teams`,
//! `webhook` and `sns`; the rules document may declare more.
//!
//! A secret reference is one of:
//! - `secretsmanager:<name-or-arn>` or a Secrets Manager ARN, optionally
//!   followed by `#<json-key>` when the secret is a JSON object;
//! - `ssm:<parameter-name>` or an SSM parameter ARN (SecureString, decrypted);
//! - a plain `https://…` URL, for local use only (a warning is logged, without
//!   the value). `http://` is accepted only for `localhost`/`127.0.0.1`.
//!
//! Resolved values are held in [`Secret`]s: `Debug` is redacted, nothing logs
//! them, and errors name the variable and the reference, never the value.

use super::rules::{Rules, RulesError};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;
use tollgate_core::config::{ConfigError, Env, duration_ms};
use tollgate_core::ports::{ParameterError, ParameterStore};
use tollgate_core::ports::{SecretError, SecretStore};
use tollgate_core::secret::Secret;

/// Variable names.
pub mod vars {
    /// Slack webhook URL (secret reference).
    pub const SLACK_WEBHOOK: &str = "TOLLGATE_SLACK_WEBHOOK";
    /// Teams webhook URL (secret reference).
    pub const TEAMS_WEBHOOK: &str = "TOLLGATE_TEAMS_WEBHOOK";
    /// Generic webhook URL (secret reference).
    pub const WEBHOOK_URL: &str = "TOLLGATE_WEBHOOK_URL";
    /// Generic webhook bearer token (secret reference).
    pub const WEBHOOK_TOKEN: &str = "TOLLGATE_WEBHOOK_TOKEN";
    /// SNS topic ARN.
    pub const SNS_TOPIC_ARN: &str = "TOLLGATE_SNS_TOPIC_ARN";
    /// Inline rules document.
    pub const RULES: &str = "TOLLGATE_NOTIFY_RULES";
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
}

/// Where a secret value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// Secrets Manager secret (name or ARN), optionally one key of its JSON.
    SecretsManager {
        /// Name or ARN.
        id: String,
        /// JSON key.
        key: Option<String>,
    },
    /// SSM parameter (name or ARN).
    Ssm {
        /// Name or ARN.
        name: String,
    },
    /// The value itself (local use).
    Plain(Secret),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretsManager { id, key } => match key {
                Some(k) => write!(f, "secretsmanager:{id}#{k}"),
                None => write!(f, "secretsmanager:{id}"),
            },
            Self::Ssm { name } => write!(f, "ssm:{name}"),
            Self::Plain(s) => write!(f, "plain {s:?}"),
        }
    }
}

fn is_arn_of(raw: &str, service: &str) -> bool {
    let mut parts = raw.splitn(4, ':');
    parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some(service)
}

/// Parses a secret reference. `origin` names the variable (or document
/// path) for messages; the value is never echoed.
pub fn parse_secret_ref(origin: &str, raw: &str) -> Result<SecretRef, ConfigError> {
    let raw = raw.trim();
    let split_key = |s: &str| -> (String, Option<String>) {
        match s.split_once('#') {
            Some((id, key)) if !key.is_empty() => (id.to_owned(), Some(key.to_owned())),
            Some((id, _)) => (id.to_owned(), None),
            None => (s.to_owned(), None),
        }
    };
    if let Some(rest) = raw.strip_prefix("secretsmanager:") {
        let (id, key) = split_key(rest);
        if id.is_empty() {
            return Err(ConfigError::invalid(
                origin,
                raw,
                "the secret name is empty",
                "secretsmanager:<name-or-arn>[#json-key], e.g. secretsmanager:tollgate/slack#url",
            ));
        }
        return Ok(SecretRef::SecretsManager { id, key });
    }
    if is_arn_of(raw, "secretsmanager") {
        let (id, key) = split_key(raw);
        return Ok(SecretRef::SecretsManager { id, key });
    }
    if let Some(name) = raw.strip_prefix("ssm:") {
        if name.is_empty() {
            return Err(ConfigError::invalid(
                origin,
                raw,
                "the parameter name is empty",
                "ssm:<parameter-name>, e.g. ssm:/tollgate/slack-webhook",
            ));
        }
        return Ok(SecretRef::Ssm {
            name: name.to_owned(),
        });
    }
    if is_arn_of(raw, "ssm") {
        return Ok(SecretRef::Ssm {
            name: raw.to_owned(),
        });
    }
    Ok(SecretRef::Plain(Secret::new(raw)))
}

/// Destination types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// Slack incoming webhook.
    Slack,
    /// Teams Workflows webhook.
    Teams,
    /// Generic JSON webhook.
    Webhook,
    /// SNS topic.
    Sns,
}

impl DestinationKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Webhook => "webhook",
            Self::Sns => "sns",
        }
    }
}

/// A destination as written in the rules document.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DestinationDoc {
    /// Slack.
    Slack {
        /// Secret reference for the webhook URL.
        url: String,
    },
    /// Teams.
    Teams {
        /// Secret reference for the webhook URL.
        url: String,
    },
    /// Generic webhook.
    Webhook {
        /// Secret reference for the URL.
        url: String,
        /// Secret reference for the bearer token.
        #[serde(default)]
        token: Option<String>,
    },
    /// SNS.
    Sns {
        /// Topic ARN.
        topic_arn: String,
    },
}

impl fmt::Debug for DestinationDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may be plain values (local use): never print them.
        match self {
            Self::Slack { .. } => f.write_str("DestinationDoc::Slack { url: <redacted> }"),
            Self::Teams { .. } => f.write_str("DestinationDoc::Teams { url: <redacted> }"),
            Self::Webhook { .. } => {
                f.write_str("DestinationDoc::Webhook { url: <redacted>, token: <redacted> }")
            }
            Self::Sns { topic_arn } => {
                write!(f, "DestinationDoc::Sns {{ topic_arn: {topic_arn:?} }}")
            }
        }
    }
}

/// A destination before its secrets are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpec {
    /// Name used in routes.
    pub name: String,
    /// Type.
    pub kind: DestinationKind,
    /// URL reference (webhooks).
    pub url: Option<SecretRef>,
    /// Token reference (generic webhook).
    pub token: Option<SecretRef>,
    /// Topic (SNS).
    pub topic_arn: Option<String>,
    /// Where it was configured, for messages (`TOLLGATE_SLACK_WEBHOOK`,
    /// `TOLLGATE_NOTIFY_RULES destinations.ops`).
    pub origin: String,
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

fn topic_arn(origin: &str, raw: &str) -> Result<String, ConfigError> {
    let raw = raw.trim();
    if is_arn_of(raw, "sns") && raw.split(':').count() == 6 {
        Ok(raw.to_owned())
    } else {
        Err(ConfigError::invalid(
            origin,
            raw,
            "not an SNS topic ARN",
            "arn:aws:sns:<region>:<account>:<topic>, e.g. arn:aws:sns:eu-west-1:111122223333:deployments",
        ))
    }
}

/// Reads and validates the environment.
pub fn settings(env: &impl Env) -> Result<Settings, ConfigError> {
    let mut destinations = Vec::new();
    for (var, kind, name) in [
        (vars::SLACK_WEBHOOK, DestinationKind::Slack, "slack"),
        (vars::TEAMS_WEBHOOK, DestinationKind::Teams, "teams"),
        (vars::WEBHOOK_URL, DestinationKind::Webhook, "webhook"),
    ] {
        if let Some(raw) = env.get(var) {
            let token = if kind == DestinationKind::Webhook {
                env.get(vars::WEBHOOK_TOKEN)
                    .map(|t| parse_secret_ref(vars::WEBHOOK_TOKEN, &t))
                    .transpose()?
            } else {
                None
            };
            destinations.push(DestinationSpec {
                name: name.to_owned(),
                kind,
                url: Some(parse_secret_ref(var, &raw)?),
                token,
                topic_arn: None,
                origin: var.to_owned(),
            });
        }
    }
    if env.get(vars::WEBHOOK_TOKEN).is_some() && env.get(vars::WEBHOOK_URL).is_none() {
        return Err(ConfigError::Missing {
            var: vars::WEBHOOK_URL.to_owned(),
            hint: format!(
                "{} is set but the webhook it is for is not; set {} or remove the token",
                vars::WEBHOOK_TOKEN,
                vars::WEBHOOK_URL
            ),
        });
    }
    if let Some(raw) = env.get(vars::SNS_TOPIC_ARN) {
        destinations.push(DestinationSpec {
            name: "sns".to_owned(),
            kind: DestinationKind::Sns,
            url: None,
            token: None,
            topic_arn: Some(topic_arn(vars::SNS_TOPIC_ARN, &raw)?),
            origin: vars::SNS_TOPIC_ARN.to_owned(),
        });
    }
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
    })
}

/// A destination ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Name.
    pub name: String,
    /// Where to send.
    pub target: Target,
}

impl Destination {
    /// The type.
    pub fn kind(&self) -> DestinationKind {
        match self.target {
            Target::Slack { .. } => DestinationKind::Slack,
            Target::Teams { .. } => DestinationKind::Teams,
            Target::Webhook { .. } => DestinationKind::Webhook,
            Target::Sns { .. } => DestinationKind::Sns,
        }
    }
}

/// Resolved target (secrets in [`Secret`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Slack webhook.
    Slack {
        /// URL.
        url: Secret,
    },
    /// Teams webhook.
    Teams {
        /// URL.
        url: Secret,
    },
    /// Generic webhook.
    Webhook {
        /// URL.
        url: Secret,
        /// Bearer token.
        token: Option<Secret>,
    },
    /// SNS topic.
    Sns {
        /// Topic ARN.
        topic_arn: String,
    },
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
         TOLLGATE_TEAMS_WEBHOOK, TOLLGATE_WEBHOOK_URL, TOLLGATE_SNS_TOPIC_ARN, or declare \
         `destinations` in the rules document"
    )]
    NoDestination,
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
                "a different name (slack, teams, webhook and sns are taken by the variables that are set)",
            )
            .into());
        }
        let spec = match doc {
            DestinationDoc::Slack { url } => DestinationSpec {
                name: name.clone(),
                kind: DestinationKind::Slack,
                url: Some(parse_secret_ref(&format!("{origin}.url"), &url)?),
                token: None,
                topic_arn: None,
                origin,
            },
            DestinationDoc::Teams { url } => DestinationSpec {
                name: name.clone(),
                kind: DestinationKind::Teams,
                url: Some(parse_secret_ref(&format!("{origin}.url"), &url)?),
                token: None,
                topic_arn: None,
                origin,
            },
            DestinationDoc::Webhook { url, token } => DestinationSpec {
                name: name.clone(),
                kind: DestinationKind::Webhook,
                url: Some(parse_secret_ref(&format!("{origin}.url"), &url)?),
                token: token
                    .map(|t| parse_secret_ref(&format!("{origin}.token"), &t))
                    .transpose()?,
                topic_arn: None,
                origin,
            },
            DestinationDoc::Sns { topic_arn: arn } => DestinationSpec {
                name: name.clone(),
                kind: DestinationKind::Sns,
                url: None,
                token: None,
                topic_arn: Some(topic_arn(&format!("{origin}.topic_arn"), &arn)?),
                origin,
            },
        };
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
        let url_origin = if spec.origin.starts_with("TOLLGATE_") && !spec.origin.contains(' ') {
            spec.origin.clone()
        } else {
            format!("{}.url", spec.origin)
        };
        let target = match spec.kind {
            DestinationKind::Sns => Target::Sns {
                topic_arn: spec.topic_arn.clone().unwrap_or_default(),
            },
            kind => {
                let Some(url_ref) = &spec.url else {
                    return Err(ConfigError::Missing {
                        var: url_origin,
                        hint: "a webhook destination needs a url".to_owned(),
                    }
                    .into());
                };
                let url = cache.get(&url_origin, url_ref, secrets, params).await?;
                check_url(&url_origin, &url)?;
                match kind {
                    DestinationKind::Slack => Target::Slack { url },
                    DestinationKind::Teams => Target::Teams { url },
                    _ => {
                        let token_origin = if url_origin == vars::WEBHOOK_URL {
                            vars::WEBHOOK_TOKEN.to_owned()
                        } else {
                            format!("{}.token", spec.origin)
                        };
                        let token = match &spec.token {
                            Some(r) => Some(cache.get(&token_origin, r, secrets, params).await?),
                            None => None,
                        };
                        Target::Webhook { url, token }
                    }
                }
            }
        };
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
    })
}

fn warn_if_plain(spec: &DestinationSpec) {
    let plain = |r: &Option<SecretRef>| matches!(r, Some(SecretRef::Plain(_)));
    if plain(&spec.url) || plain(&spec.token) {
        tracing::warn!(
            destination = %spec.name,
            origin = %spec.origin,
            "webhook secret given as a plain value; fine for local runs, but use secretsmanager: or ssm: references in AWS"
        );
    }
}

/// The URL must be https (http only for a loopback host, for local tests).
fn check_url(origin: &str, url: &Secret) -> Result<(), ConfigError> {
    let u = url.expose().trim();
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            u.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    let https = u.strip_prefix("https://").is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !u.contains(char::is_whitespace)
    });
    if https || loopback {
        Ok(())
    } else {
        Err(ConfigError::invalid_secret(
            origin,
            "the value is not an https URL (a secret reference must start with secretsmanager: or ssm:, or be an ARN)",
            "https://hooks.slack.com/services/…, secretsmanager:<name>[#key] or ssm:<parameter>",
        ))
    }
}

#[derive(Default)]
struct SecretCache {
    raw: HashMap<String, Secret>,
}

impl SecretCache {
    async fn get(
        &mut self,
        origin: &str,
        r: &SecretRef,
        secrets: &impl SecretStore,
        params: &impl ParameterStore,
    ) -> Result<Secret, InitError> {
        match r {
            SecretRef::Plain(s) => Ok(s.clone()),
            SecretRef::Ssm { name } => {
                let cache_key = format!("ssm:{name}");
                if let Some(v) = self.raw.get(&cache_key) {
                    return Ok(v.clone());
                }
                let v =
                    params
                        .get_parameter(name)
                        .await
                        .map_err(|source| InitError::Parameter {
                            origin: origin.to_owned(),
                            source,
                        })?;
                self.raw.insert(cache_key, v.clone());
                Ok(v)
            }
            SecretRef::SecretsManager { id, key } => {
                let cache_key = format!("sm:{id}");
                let whole = match self.raw.get(&cache_key) {
                    Some(v) => v.clone(),
                    None => {
                        let v = secrets.get_secret_string(id).await.map_err(|source| {
                            InitError::Secret {
                                origin: origin.to_owned(),
                                source,
                            }
                        })?;
                        self.raw.insert(cache_key, v.clone());
                        v
                    }
                };
                let Some(key) = key else {
                    return Ok(Secret::new(whole.expose().trim()));
                };
                let parsed: serde_json::Value =
                    serde_json::from_str(whole.expose()).map_err(|_| {
                        ConfigError::invalid_secret(
                            origin,
                            format!("secret {id:?} is not a JSON object, so it has no key `{key}`"),
                            "store the secret as JSON ({\"url\": \"https://…\"}) or drop the #key",
                        )
                    })?;
                match parsed.get(key).and_then(|v| v.as_str()) {
                    Some(v) => Ok(Secret::new(v.trim())),
                    None => Err(ConfigError::invalid_secret(
                        origin,
                        format!("secret {id:?} has no string key `{key}`"),
                        "a key that exists in the secret's JSON",
                    )
                    .into()),
                }
            }
        }
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

    use tollgate_test_support::parameters::FakeStore;

    const HOOK: &str = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX";

    #[test]
    fn secret_references() {
        assert_eq!(
            parse_secret_ref("V", "secretsmanager:tollgate/slack#url").expect("ok"),
            SecretRef::SecretsManager {
                id: "tollgate/slack".into(),
                key: Some("url".into())
            }
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tollgate/slack-AbCdEf";
        assert_eq!(
            parse_secret_ref("V", arn).expect("ok"),
            SecretRef::SecretsManager {
                id: arn.into(),
                key: None
            }
        );
        assert_eq!(
            parse_secret_ref("V", "ssm:/tollgate/teams").expect("ok"),
            SecretRef::Ssm {
                name: "/tollgate/teams".into()
            }
        );
        let plain = parse_secret_ref("V", HOOK).expect("ok");
        assert!(!format!("{plain:?}").contains("SECRET"));
        assert!(parse_secret_ref("V", "secretsmanager:").is_err());
    }

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
            Target::Webhook {
                url: Secret::new(HOOK),
                token: Some(Secret::new("tok-123"))
            }
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

//! The function's configuration, read once at init:
//! - `TOLLGATE_SLACK_SIGNING_SECRET`: the Slack app's signing secret, as a
//!   Secrets Manager reference (`secretsmanager:<name>[#key]` or an ARN);
//! - `TOLLGATE_SLACK_BOT_TOKEN`: the bot token (`xoxb-…`): the notifier's
//!   own reference (the template passes `SlackBotToken` to both), so a
//!   Secrets Manager reference or an SSM SecureString (`ssm:/name`);
//! - `TOLLGATE_APPROVERS`: who may decide (`tollgate_approvals::policy`);
//! - `TOLLGATE_APPROVAL_ECS_SERVICES`: the ECS services (`<cluster>/<service>`)
//!   whose paused deployments may be continued or rolled back
//!   (`tollgate_approvals::ecs_hook`); empty: none;
//! - `TOLLGATE_APPROVAL_OVERRIDE_PIPELINES`: the pipelines (ARNs or names)
//!   whose in-progress stage conditions may be overridden
//!   (`tollgate_approvals::stage_condition`); empty: none;
//! - `TOLLGATE_SLACK_API_URL` / `TOLLGATE_SLACK_RESPONSE_URL_PREFIX`: Slack's
//!   Web API base and the prefix every `response_url` must have (defaults
//!   `https://slack.com/api` and `https://hooks.slack.com/`; other values
//!   are for local stand-ins).
//!
//! The role can read exactly the secret and parameter the template names:
//! the signing secret in Secrets Manager, and the bot token where
//! `SlackBotToken` keeps it (a Secrets Manager secret, or one SSM
//! parameter). A token reference the notifier accepts works here too
//! (review finding: an `ssm:` token used to fail every click).

use crate::aws::codepipeline::CodePipelineApprovals;
use crate::aws::ecs::EcsDeployments;
use crate::aws::stage_conditions::CodePipelineConditions;
use crate::slack::SlackWeb;
use std::sync::Arc;
use tollgate_approvals::app::{DEFAULT_RESPONSE_URL_PREFIX, Ready, init_failure, max_body};
use tollgate_approvals::ecs_hook::{EcsHooks, check_approvers, services_from_env};
use tollgate_approvals::policy::Policy;
use tollgate_aws::SdkConfig;
use tollgate_aws_secretsmanager::SecretsManagerSecrets;
use tollgate_aws_ssm::SsmParameters;
use tollgate_core::config::{ConfigError, Env, ProcessEnv};
use tollgate_core::memory::MemoryBudget;
use tollgate_core::secret::Secret;
use tollgate_core::secret_ref::{SecretCache, SecretRef, parse_reference};
use tollgate_report::lambda::InitFailure;

/// The signing secret's reference.
pub const SIGNING_SECRET_VAR: &str = "TOLLGATE_SLACK_SIGNING_SECRET";
/// The bot token's reference.
pub const BOT_TOKEN_VAR: &str = "TOLLGATE_SLACK_BOT_TOKEN";
/// Web API base.
pub const API_VAR: &str = "TOLLGATE_SLACK_API_URL";
/// `response_url` prefix.
pub const RESPONSE_URL_VAR: &str = "TOLLGATE_SLACK_RESPONSE_URL_PREFIX";

fn secrets_manager_ref(env: &impl Env, var: &str) -> Result<SecretRef, ConfigError> {
    let raw = env.get(var).ok_or_else(|| ConfigError::Missing {
        var: var.to_owned(),
        hint: "a Secrets Manager reference, secretsmanager:<name>[#json-key] (docs/approvals.md)"
            .to_owned(),
    })?;
    match parse_reference(var, &raw)? {
        r @ SecretRef::SecretsManager { .. } => Ok(r),
        _ => Err(ConfigError::invalid_secret(
            var,
            "only Secrets Manager references are read by this function",
            "secretsmanager:<name>[#json-key] or a Secrets Manager secret ARN",
        )),
    }
}

/// The bot token's reference: Secrets Manager or SSM, as the notifier's.
fn token_ref(env: &impl Env) -> Result<SecretRef, ConfigError> {
    let raw = env.get(BOT_TOKEN_VAR).ok_or_else(|| ConfigError::Missing {
        var: BOT_TOKEN_VAR.to_owned(),
        hint: "the notifier's SlackBotToken reference: a Secrets Manager secret ARN (#json-key) or ssm:/<SecureString name> (docs/approvals.md)".to_owned(),
    })?;
    parse_reference(BOT_TOKEN_VAR, &raw)
}

fn base_url(env: &impl Env, var: &str, default: &str) -> Result<String, ConfigError> {
    let v = env.get(var).unwrap_or_else(|| default.to_owned());
    let v = v.trim().to_owned();
    let loopback = v.starts_with("http://127.0.0.1") || v.starts_with("http://localhost");
    if v.starts_with("https://") || loopback {
        return Ok(v);
    }
    Err(ConfigError::invalid(var, &v, "not an https URL", default))
}

/// Reads and resolves everything; a failure is kept and answered per request.
pub async fn ready(sdk: &SdkConfig) -> Result<Ready<CodePipelineApprovals, SlackWeb>, InitFailure> {
    let env = ProcessEnv;
    let config = |e: ConfigError| init_failure("InvalidConfiguration", e.to_string());
    let policy = Policy::from_env(&env).map_err(config)?;
    let services = services_from_env(&env).map_err(config)?;
    check_approvers(&services, &policy).map_err(config)?;
    let override_pipelines =
        tollgate_approvals::stage_condition::pipelines_from_env(&env).map_err(config)?;
    tollgate_approvals::stage_condition::check_approvers(&override_pipelines, &policy)
        .map_err(config)?;
    let signing_ref = secrets_manager_ref(&env, SIGNING_SECRET_VAR).map_err(config)?;
    let token_ref = token_ref(&env).map_err(config)?;
    let api = base_url(&env, API_VAR, "https://slack.com/api").map_err(config)?;
    let response_url_prefix =
        base_url(&env, RESPONSE_URL_VAR, DEFAULT_RESPONSE_URL_PREFIX).map_err(config)?;

    let secrets = SecretsManagerSecrets::new(sdk);
    let parameters = SsmParameters::new(sdk);
    let mut cache = SecretCache::default();
    let unreadable = |e: tollgate_core::secret_ref::ResolveError| {
        init_failure("SecretUnavailable", e.to_string())
    };
    let signing_secret = cache
        .get(SIGNING_SECRET_VAR, &signing_ref, &secrets, &parameters)
        .await
        .map_err(unreadable)?;
    if signing_secret.expose().trim().len() < 16 {
        return Err(config(ConfigError::invalid_secret(
            SIGNING_SECRET_VAR,
            "the value is too short to be a Slack signing secret",
            "the Signing Secret from the app's Basic Information › App Credentials",
        )));
    }
    let token = cache
        .get(BOT_TOKEN_VAR, &token_ref, &secrets, &parameters)
        .await
        .map_err(unreadable)?;
    if !token.expose().trim().starts_with("xoxb-") {
        return Err(config(ConfigError::invalid_secret(
            BOT_TOKEN_VAR,
            "the value is not a Slack bot token",
            "the Bot User OAuth Token (xoxb-…) from OAuth & Permissions",
        )));
    }
    let chat = SlackWeb::new(api, &token).map_err(|e| init_failure("HttpClient", e))?;
    let unsourced = policy.author_rules_without_source();
    if !unsourced.is_empty() {
        tracing::warn!(
            pipelines = ?unsourced,
            "author_may_not_approve without author_variable: every Slack approval of these pipelines is refused until author_variable names the output variable holding the commit author's e-mail (docs/approvals.md)"
        );
    }
    tracing::info!(
        pipelines_use_groups = policy.uses_groups(),
        ecs_services = services.len(),
        override_pipelines = override_pipelines.len(),
        "approvals ready"
    );
    let ecs = (!services.is_empty()).then(|| EcsHooks {
        deployments: Arc::new(EcsDeployments::new(sdk)),
        services,
    });
    let overrides = (!override_pipelines.is_empty()).then(|| {
        tollgate_approvals::stage_condition::StageOverrides {
            conditions: Arc::new(CodePipelineConditions::new(sdk)),
            pipelines: override_pipelines,
        }
    });
    Ok(Ready {
        signing_secret: Secret::new(signing_secret.expose().trim()),
        policy,
        pipelines: CodePipelineApprovals::new(sdk),
        chat,
        response_url_prefix,
        max_body: max_body(&MemoryBudget::from_env(&env)),
        ecs,
        overrides,
    })
}

//! The generic JSON webhook, configured by `TOLLGATE_WEBHOOK_URL` and
//! optionally `TOLLGATE_WEBHOOK_TOKEN` (secret references,
//! `crate::secret_ref`), or `{ type: webhook, url: …, token: … }` in the
//! rules document; the URL must be https. Owns that configuration, the
//! payload (schema `tollgate.notification/v1`) and its delivery.
//!
//! POSTed with `Content-Type: application/json`, `Idempotency-Key: <event
//! id>` (receivers can drop Lambda/EventBridge redeliveries with it),
//! `X-Tollgate-Schema: tollgate.notification/v1`, and `Authorization: Bearer
//! <token>` when a token is configured.
//!
//! ```json
//! {
//!   "schema": "tollgate.notification/v1",   // changes only with breaking changes
//!   "id": "EventBridge event id",            // dedupe key
//!   "time": "2024-05-01T10:00:00Z",          // event time, RFC 3339, or null
//!   "account": "111122223333",
//!   "region": "us-east-1",
//!   "source": "aws.codepipeline",            // EventBridge source
//!   "detailType": "CodePipeline Pipeline Execution State Change",
//!   "kind": "pipeline",                      // pipeline|stage|action|deployment|instance|build|ecs-deployment|ecs-service|other
//!   "status": "failed",                      // normalised, see notify::model::Status
//!   "state": "FAILED",                       // AWS's own word
//!   "severity": "failure",                   // info|success|warning|failure
//!   "title": "payments-api: pipeline failed",
//!   "name": "payments-api",                  // main resource
//!   "scope": "Build › UnitTests",            // part of it, or null
//!   "qualifier": "rolled back",              // or null
//!   "reason": "…",                           // or null
//!   "commit": {"id", "message"?, "repository"?, "branch"?, "url"?, "provider"?} | null,
//!   "facts": [{"label": "Pipeline", "value": "payments-api"}],
//!   "links": [{"label": "Open execution", "url": "https://…"}],
//!   "durationSeconds": 252,                  // or null
//!   "route": {"pipeline": "payments-api"},   // the keys rules match on
//!   "enrichment": {"state": "none|complete|partial|failed", "problems": ["…"]?},
//!   "failedChecks": {                        // only for a CodeDeploy hook failure deploy-hook recorded
//!     "deploymentId": "d-…", "hook": "AfterAllowTestTraffic"?, "summary": "…",
//!     "lines": ["FAIL health (GET …): 3 attempts", "  - status: expected 200, got 503"],
//!     "truncated": false, "omitted": 0
//!   }
//! }
//! ```
//!
//! New optional fields may appear within v1; consumers must ignore unknown
//! fields.

use super::{Via, resolve_url, url_origin};
use crate::deliver::{Attempts, ChatTransport};
use crate::model::Notification;
use crate::secret_ref::{ResolveError, SecretCache, SecretRef, parse_secret_ref};
use std::fmt;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tollgate_core::config::{ConfigError, Env};
use tollgate_core::ports::{ParameterStore, SecretStore};
use tollgate_core::secret::Secret;

/// The `type` in the rules document.
pub const TYPE: &str = "webhook";
/// Generic webhook URL (secret reference); creates the destination `webhook`.
pub const VAR: &str = "TOLLGATE_WEBHOOK_URL";
/// Generic webhook bearer token (secret reference).
pub const TOKEN_VAR: &str = "TOLLGATE_WEBHOOK_TOKEN";

/// `destinations.<name>` in the rules document.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    /// Secret reference for the URL.
    pub url: String,
    /// Secret reference for the bearer token.
    #[serde(default)]
    pub token: Option<String>,
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may be plain values (local use): never print them.
        f.write_str("DestinationDoc::Webhook { url: <redacted>, token: <redacted> }")
    }
}

/// Before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// URL reference.
    pub url: SecretRef,
    /// Token reference.
    pub token: Option<SecretRef>,
}

/// Resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// URL.
    pub url: Secret,
    /// Bearer token.
    pub token: Option<Secret>,
}

/// From [`VAR`] (and [`TOKEN_VAR`]), when it is set. A token without a URL
/// is refused.
pub fn from_env(env: &impl Env) -> Result<Option<Unresolved>, ConfigError> {
    let found = match env.get(VAR) {
        Some(raw) => {
            let token = env
                .get(TOKEN_VAR)
                .map(|t| parse_secret_ref(TOKEN_VAR, &t))
                .transpose()?;
            Some(Unresolved {
                url: parse_secret_ref(VAR, &raw)?,
                token,
            })
        }
        None => None,
    };
    if env.get(TOKEN_VAR).is_some() && env.get(VAR).is_none() {
        return Err(ConfigError::Missing {
            var: VAR.to_owned(),
            hint: format!(
                "{TOKEN_VAR} is set but the webhook it is for is not; set {VAR} or remove the token"
            ),
        });
    }
    Ok(found)
}

/// From the rules document; `origin` is the entry's path.
pub fn from_doc(origin: &str, doc: Doc) -> Result<Unresolved, ConfigError> {
    Ok(Unresolved {
        url: parse_secret_ref(&format!("{origin}.url"), &doc.url)?,
        token: doc
            .token
            .map(|t| parse_secret_ref(&format!("{origin}.token"), &t))
            .transpose()?,
    })
}

/// Reads the URL (checked to be https) and the token.
pub async fn resolve(
    origin: &str,
    u: &Unresolved,
    cache: &mut SecretCache,
    secrets: &impl SecretStore,
    params: &impl ParameterStore,
) -> Result<Target, ResolveError> {
    let url = resolve_url(origin, &u.url, cache, secrets, params).await?;
    let token_origin = if url_origin(origin) == VAR {
        TOKEN_VAR.to_owned()
    } else {
        format!("{origin}.token")
    };
    let token = match &u.token {
        Some(r) => Some(cache.get(&token_origin, r, secrets, params).await?),
        None => None,
    };
    Ok(Target { url, token })
}

/// Whether the URL or the token is given as a plain value.
pub fn has_plain_secret(u: &Unresolved) -> bool {
    matches!(u.url, SecretRef::Plain(_)) || matches!(u.token, Some(SecretRef::Plain(_)))
}

/// POSTs the payload with `Idempotency-Key`, `X-Tollgate-Schema` and, with
/// a token, `Authorization: Bearer`.
pub async fn deliver<H: ChatTransport, P>(
    t: &Target,
    name: &str,
    n: &Notification,
    deadline: Instant,
    via: &Via<'_, H, P>,
) -> Attempts {
    let body = render(n).to_string().into_bytes();
    let mut headers = vec![
        ("idempotency-key", Secret::new(n.event_id.clone())),
        ("x-tollgate-schema", Secret::new(SCHEMA)),
    ];
    if let Some(token) = &t.token {
        headers.push((
            "authorization",
            Secret::new(format!("Bearer {}", token.expose())),
        ));
    }
    via.post(name, &t.url, headers, body, deadline).await
}

/// The schema id carried in the payload and the `X-Tollgate-Schema` header.
pub const SCHEMA: &str = "tollgate.notification/v1";

/// Renders the webhook payload.
pub fn render(n: &Notification) -> Value {
    let route: Map<String, Value> = n
        .route
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut payload = json!({
        "schema": SCHEMA,
        "id": n.event_id,
        "time": n.time,
        "account": n.account,
        "region": n.region,
        "source": n.event_source,
        "detailType": n.detail_type,
        "kind": n.kind,
        "status": n.status,
        "state": n.state,
        "severity": n.severity(),
        "title": n.title(),
        "name": n.name,
        "scope": n.scope,
        "qualifier": n.qualifier,
        "reason": n.reason,
        "commit": n.commit,
        "facts": n.facts,
        "links": n.links,
        "durationSeconds": n.duration_secs,
        "route": route,
        "enrichment": n.enrichment,
    });
    if let Some(f) = &n.failed_checks {
        payload["failedChecks"] = json!(f);
    }
    if let Some(g) = &n.gate {
        payload["gate"] = json!(g);
    }
    payload
}

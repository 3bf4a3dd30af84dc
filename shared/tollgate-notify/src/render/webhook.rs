//! Generic JSON webhook payload, schema `tollgate.notification/v1`.
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

use super::super::model::Notification;
use serde_json::{Map, Value, json};

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
    payload
}

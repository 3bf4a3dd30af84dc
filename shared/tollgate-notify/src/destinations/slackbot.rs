//! Slack with a bot token (the Web API): one live message per run, updated
//! in place, with the story in its thread. Configured by
//! `TOLLGATE_SLACK_BOT_TOKEN` (a secret reference, `crate::secret_ref`; the
//! token never appears in a log or an error) with `TOLLGATE_SLACK_CHANNEL_ID`,
//! or `{ type: slackbot, token: <secret reference>, channel: C… }` in the
//! rules document. `TOLLGATE_SLACK_API_URL` (or `api_url`) points it at
//! another Web API base (local stand-ins; https, or http on loopback).
//!
//! Per event with a run ([`Notification::thread`]):
//! 1. read the run's record ([`crate::release`]), merge the event (a join:
//!    order and duplicates do not matter) and write it back conditionally
//!    on the version read; a conflict re-reads and merges again;
//! 2. no message yet: the writer that stored a creation lease posts it
//!    (`chat.postMessage`) and stores its `ts`; the others wait for the
//!    `ts` and then update (`chat.update`), so a run has one message;
//! 3. a failure (with its reason and the failed checks) and a recovery are
//!    answered in the thread with `reply_broadcast` (never hidden in a
//!    thread), at most once per event id (`replied` in the record);
//! 4. after updating, the record is read again: if another writer moved it
//!    meanwhile, the message is rendered again so that the last update
//!    shows everything merged.
//!
//! Events without a run (ECS service actions) are posted as standalone
//! messages, rendered like the webhook mode's.
//!
//! Slack's answers: HTTP 429 and `ratelimited` wait for `Retry-After` when
//! the deadline allows; `ok: false` errors are sorted by [`classify`] into
//! retryable (Slack's own failures) and permanent ones with what to do
//! (`channel_not_found`, `not_in_channel`, `invalid_auth`,
//! `token_revoked`, `missing_scope`, `msg_too_long`, …). A permanent error
//! fails the delivery, so the invocation fails and Lambda's retries and the
//! dead-letter queue keep the event.

use super::slack::{escape, render as render_standalone};
use super::{Via, check_url};
use crate::deliver::{Attempts, ChatTransport, DeliveryError, HttpAnswer, with_retries};
use crate::model::{Notification, SourceKind, Status};
use crate::release::{self, ReleaseRecord, ReleaseStore};
use crate::render::link_target;
use crate::secret_ref::{ResolveError, SecretCache, SecretRef, parse_secret_ref};
use serde_json::{Value, json};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_core::config::{ConfigError, Env};
use tollgate_core::ports::{ParameterStore, SecretStore};
use tollgate_core::secret::Secret;
use tollgate_core::text::ellipsize;

/// The `type` in the rules document.
pub const TYPE: &str = "slackbot";
/// Bot token (secret reference); creates the destination `slackbot`.
pub const VAR: &str = "TOLLGATE_SLACK_BOT_TOKEN";
/// The channel ID the bot posts to (required with [`VAR`]).
pub const CHANNEL_VAR: &str = "TOLLGATE_SLACK_CHANNEL_ID";
/// Web API base URL (default [`DEFAULT_API_URL`]).
pub const API_VAR: &str = "TOLLGATE_SLACK_API_URL";
/// Slack's Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// Slack's limits, enforced on every payload ([`enforce_limits`]).
pub mod limits {
    /// Blocks per message.
    pub const MAX_BLOCKS: usize = 50;
    /// Characters per text (block texts and the top-level `text`).
    pub const TEXT: usize = 3000;
}

/// How long a writer may take to post the first message before another
/// may take over, at least; the lease also covers the writer's whole
/// delivery deadline plus [`LEASE_MARGIN_SECS`].
const CREATE_LEASE_SECS: i64 = 20;
/// Added to the deadline in the creation lease.
const LEASE_MARGIN_SECS: i64 = 5;
/// Read-merge-write rounds at most per event.
const MAX_ROUNDS: u32 = 12;

/// `destinations.<name>` in the rules document.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    /// Secret reference for the bot token.
    pub token: String,
    /// Channel ID.
    pub channel: String,
    /// Web API base URL.
    #[serde(default)]
    pub api_url: Option<String>,
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DestinationDoc::SlackBot {{ token: <redacted>, channel: {:?} }}",
            self.channel
        )
    }
}

/// Before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// Token reference.
    pub token: SecretRef,
    /// Channel ID (checked).
    pub channel: String,
    /// API base.
    pub api_url: String,
}

/// Resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `Bearer <token>`.
    pub auth: Secret,
    /// Channel ID.
    pub channel: String,
    /// API base, without a trailing slash.
    pub api_url: String,
}

/// Checks a channel ID: `C…` (public), `G…` (private) or `D…` (direct),
/// upper-case letters and digits. Names (`#deploys`) are refused with what
/// to use instead.
pub fn check_channel(origin: &str, channel: &str) -> Result<String, ConfigError> {
    let c = channel.trim();
    let id_like = c.len() >= 9
        && c.len() <= 24
        && c.starts_with(['C', 'G', 'D'])
        && c.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit());
    if id_like {
        return Ok(c.to_owned());
    }
    Err(ConfigError::invalid(
        origin,
        c,
        "not a Slack channel ID: the Web API needs the ID, not the name (in Slack: open the channel, \
         its name › About › Channel ID at the bottom)",
        "C0123456789",
    ))
}

/// From [`VAR`] and [`CHANNEL_VAR`], when the token is set.
pub fn from_env(env: &impl Env) -> Result<Option<Unresolved>, ConfigError> {
    let Some(raw) = env.get(VAR) else {
        return Ok(None);
    };
    let token = parse_secret_ref(VAR, &raw)?;
    let channel = env.get(CHANNEL_VAR).ok_or_else(|| {
        ConfigError::Missing {
            var: CHANNEL_VAR.to_owned(),
            hint: format!("the Slack channel ID the bot posts to (C0123456789), required when {VAR} is set"),
        }
    })?;
    Ok(Some(Unresolved {
        token,
        channel: check_channel(CHANNEL_VAR, &channel)?,
        api_url: env.get(API_VAR).unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
    }))
}

/// From the rules document; `origin` is the entry's path.
pub fn from_doc(origin: &str, doc: Doc) -> Result<Unresolved, ConfigError> {
    Ok(Unresolved {
        token: parse_secret_ref(&format!("{origin}.token"), &doc.token)?,
        channel: check_channel(&format!("{origin}.channel"), &doc.channel)?,
        api_url: doc.api_url.unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
    })
}

fn token_origin(origin: &str) -> String {
    if origin.starts_with("TOLLGATE_") && !origin.contains(' ') {
        origin.to_owned()
    } else {
        format!("{origin}.token")
    }
}

/// Reads the token (a bot token, `xoxb-…`) and checks the API URL.
pub async fn resolve(
    origin: &str,
    u: &Unresolved,
    cache: &mut SecretCache,
    secrets: &impl SecretStore,
    params: &impl ParameterStore,
) -> Result<Target, ResolveError> {
    let token_origin = token_origin(origin);
    let token = cache.get(&token_origin, &u.token, secrets, params).await?;
    let t = token.expose().trim();
    if !t.starts_with("xoxb-") || t.contains(char::is_whitespace) {
        return Err(ConfigError::invalid_secret(
            &token_origin,
            "the value is not a Slack bot token (it starts with xoxb-: OAuth & Permissions › Bot User OAuth Token)",
            "secretsmanager:<name>[#key] or ssm:<parameter> holding xoxb-…",
        )
        .into());
    }
    let api = u.api_url.trim().trim_end_matches('/').to_owned();
    check_url(&format!("{origin} api_url"), &Secret::new(api.clone()))?;
    Ok(Target {
        auth: Secret::new(format!("Bearer {t}")),
        channel: u.channel.clone(),
        api_url: api,
    })
}

/// Whether the token is given as a plain value.
pub fn has_plain_secret(u: &Unresolved) -> bool {
    matches!(u.token, SecretRef::Plain(_))
}

/// The error code of an `ok: false` answer, reduced to Slack's identifier
/// alphabet (it is logged).
fn error_code(v: &Value) -> String {
    let raw = v.get("error").and_then(Value::as_str).unwrap_or("unknown_error");
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(60)
        .collect()
}

/// Sorts a Web API answer: the parsed body when `ok`, else the error with
/// what to do.
pub fn classify(method: &str, answer: &HttpAnswer) -> Result<Value, DeliveryError> {
    match answer.status {
        200 => {}
        429 => {
            return Err(DeliveryError::Retryable {
                status: Some(429),
                retry_after: answer.retry_after.or(Some(Duration::from_secs(1))),
                detail: format!("{method}: rate limited by Slack"),
            });
        }
        408 | 500..=599 => {
            return Err(DeliveryError::Retryable {
                status: Some(answer.status),
                retry_after: answer.retry_after,
                detail: format!("{method}: Slack is unavailable"),
            });
        }
        s => {
            return Err(DeliveryError::Permanent {
                status: Some(s),
                detail: format!(
                    "{method}: unexpected HTTP status from the Slack Web API (check {API_VAR})"
                ),
            });
        }
    }
    let Ok(v) = serde_json::from_str::<Value>(&answer.body) else {
        return Err(DeliveryError::Retryable {
            status: Some(200),
            retry_after: None,
            detail: format!("{method}: the answer is not JSON"),
        });
    };
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(v);
    }
    let code = error_code(&v);
    let permanent = |what: &str| DeliveryError::Permanent {
        status: Some(200),
        detail: format!("{method}: {code}: {what}"),
    };
    Err(match code.as_str() {
        "ratelimited" | "rate_limited" => DeliveryError::Retryable {
            status: Some(200),
            retry_after: answer.retry_after.or(Some(Duration::from_secs(1))),
            detail: format!("{method}: {code}: rate limited by Slack"),
        },
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            DeliveryError::Retryable {
                status: Some(200),
                retry_after: answer.retry_after,
                detail: format!("{method}: {code}: Slack failed; retrying"),
            }
        }
        "channel_not_found" => permanent(&format!(
            "the channel does not exist or the bot cannot see it: check the channel ID ({CHANNEL_VAR}); \
             for a private channel, invite the app first"
        )),
        "not_in_channel" => permanent(
            "the app is not a member of the channel: invite it (/invite @<app name> in the channel)",
        ),
        "is_archived" => {
            permanent("the channel is archived: unarchive it or configure another channel ID")
        }
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "token_expired" => {
            permanent(&format!(
                "the bot token is invalid or revoked: reinstall the Slack app and put its Bot User OAuth Token in the secret {VAR} names"
            ))
        }
        "missing_scope" | "not_allowed_token_type" => permanent(
            "the token lacks the chat:write scope or is not a bot token: add the scope and reinstall the app (docs/slack-app.md)",
        ),
        "msg_too_long" | "invalid_blocks" | "too_many_blocks" | "invalid_arguments" => permanent(
            "Slack refused the message's shape; this is a Tollgate bug: report it with the event id",
        ),
        "message_not_found" | "cant_update_message" | "edit_window_closed" => permanent(
            "the live message can no longer be updated (deleted, or edits are restricted in this workspace)",
        ),
        _ => permanent("see https://api.slack.com/methods for this error"),
    })
}

/// The Web API refused the bot token at init (`auth.test`): revoked,
/// invalid, or without the `chat:write` scope. Names the destination and
/// what to do, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "slackbot destination {destination}: Slack refused the bot token at start ({detail}); \
     no message can be posted, so every event fails with this reason (Lambda's retries and the \
     failed-events queue keep them) until the token is fixed"
)]
pub struct TokenRejected {
    /// The destination's name.
    pub destination: String,
    /// Slack's error and what to do.
    pub detail: String,
}

/// The scope every bot-mode call needs.
pub const REQUIRED_SCOPE: &str = "chat:write";

/// `auth.test` for one bot destination, before any event is handled.
/// `Err`: the token is refused or lacks [`REQUIRED_SCOPE`] (Slack's
/// `x-oauth-scopes` header, when sent). Slack being unreachable or failing
/// is not a verdict on the token: it is logged and deliveries go ahead
/// (each sorts its own errors).
pub async fn check_token<H: ChatTransport>(
    name: &str,
    t: &Target,
    http: &H,
    timeout: Duration,
) -> Result<(), TokenRejected> {
    let url = Secret::new(format!("{}/auth.test", t.api_url));
    let headers = [("authorization", t.auth.clone())];
    let answer = match tokio::time::timeout(
        timeout,
        http.post_api(&url, &headers, b"{}".to_vec(), timeout),
    )
    .await
    {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::warn!(destination = %name, error = %e, "auth.test could not be made; the bot token is checked again on the first delivery");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!(destination = %name, timeout_ms = timeout.as_millis() as u64, "auth.test did not answer in time; the bot token is checked again on the first delivery");
            return Ok(());
        }
    };
    let rejected = |detail: String| TokenRejected {
        destination: name.to_owned(),
        detail,
    };
    match classify("auth.test", &answer) {
        Ok(v) => {
            if let Some(scopes) = &answer.scopes {
                let list: Vec<String> = scopes
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .chars()
                            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'))
                            .take(60)
                            .collect::<String>()
                    })
                    .filter(|s| !s.is_empty())
                    .take(40)
                    .collect();
                if !list.iter().any(|s| s == REQUIRED_SCOPE) {
                    return Err(rejected(format!(
                        "missing_scope: the token lacks the {REQUIRED_SCOPE} scope (it has: {}): add it under OAuth & Permissions › Bot Token Scopes and reinstall the app (docs/slack-app.md)",
                        if list.is_empty() { "none".to_owned() } else { list.join(", ") }
                    )));
                }
            }
            let field = |k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    .take(40)
                    .collect::<String>()
            };
            tracing::info!(destination = %name, team_id = %field("team_id"), bot_user = %field("user_id"), "slack bot token verified (auth.test)");
            Ok(())
        }
        Err(e @ DeliveryError::Permanent { .. }) => {
            let detail = e.to_string();
            Err(rejected(
                detail
                    .strip_prefix("HTTP 200: ")
                    .unwrap_or(&detail)
                    .to_owned(),
            ))
        }
        Err(e) => {
            tracing::warn!(destination = %name, error = %e, "auth.test failed on Slack's side; the bot token is checked again on the first delivery");
            Ok(())
        }
    }
}

/// [`check_token`] for every bot destination (each distinct token and API
/// once, concurrently), within `timeout`: the first refusal.
pub async fn check_tokens<H: ChatTransport>(
    destinations: &[super::Destination],
    http: &H,
    timeout: Duration,
) -> Result<(), TokenRejected> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut checks = Vec::new();
    for d in destinations {
        if let super::Target::SlackBot(t) = &d.target {
            let k = (t.api_url.as_str(), t.auth.expose());
            if !seen.contains(&k) {
                seen.push(k);
                checks.push(check_token(&d.name, t, http, timeout));
            }
        }
    }
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|_| ())
}

/// Caps a payload to Slack's limits: at most [`limits::MAX_BLOCKS`] blocks
/// (the last ones dropped) and [`limits::TEXT`] characters in every `text`.
pub fn enforce_limits(mut payload: Value) -> Value {
    fn cap_texts(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "text"
                        && let Value::String(s) = x
                        && s.chars().count() > limits::TEXT
                    {
                        *s = ellipsize(s, limits::TEXT);
                    }
                    cap_texts(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(cap_texts),
            _ => {}
        }
    }
    if let Some(blocks) = payload.get_mut("blocks").and_then(Value::as_array_mut) {
        blocks.truncate(limits::MAX_BLOCKS);
    }
    cap_texts(&mut payload);
    payload
}

/// A stage's mark in the strip.
fn stage_mark(s: Status) -> &'static str {
    match s {
        Status::Succeeded | Status::Recovered => " ✓",
        Status::Failed => " ✗",
        Status::Started | Status::Resumed | Status::InProgress | Status::Ready => " ⏳",
        Status::Stopping | Status::Stopped | Status::Canceled | Status::Abandoned => " ⏹",
        Status::Superseded => " ↷",
        Status::Warning | Status::Info => "",
    }
}

/// `1h 02m`, `3m 05s`, `12s`.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The run's state in words, with its emoji.
fn headline(r: &ReleaseRecord, now: i64) -> (String, &'static str) {
    let elapsed = r.elapsed(now).map(human_duration);
    let Some(m) = r.overall.filter(|m| m.is_final()) else {
        let running = match &elapsed {
            Some(e) => format!("in progress · {e} so far"),
            None => "in progress".to_owned(),
        };
        return (running, ":hourglass_flowing_sand:");
    };
    let total = elapsed.map(|e| format!(" in {e}")).unwrap_or_default();
    if r.rolled_back.is_some() && m.status != Status::Succeeded && m.status != Status::Recovered {
        let at = r
            .failed_stage()
            .map(|s| format!(" (failed at {})", escape(s)))
            .unwrap_or_default();
        return (format!("rolled back{at}{total}"), ":rewind:");
    }
    match m.status {
        Status::Succeeded => (format!("succeeded{total}"), ":white_check_mark:"),
        Status::Recovered => (format!("succeeded (recovered){total}"), ":white_check_mark:"),
        Status::Failed => match r.failed_stage() {
            Some(stage) => (
                format!("failed at {}{total}", escape(stage)),
                ":x:",
            ),
            None => (format!("failed{total}"), ":x:"),
        },
        Status::Superseded => (format!("superseded{total}"), ":fast_forward:"),
        Status::Stopped | Status::Canceled | Status::Abandoned => {
            (format!("{}{total}", m.status.phrase()), ":black_square_for_stop:")
        }
        other => (format!("{}{total}", other.phrase()), ":information_source:"),
    }
}

/// Renders the live message for a run.
pub fn render_parent(r: &ReleaseRecord, channel: &str, now: i64) -> Value {
    let (state, emoji) = headline(r, now);
    let what = match r.kind {
        Some(SourceKind::Pipeline) | None => "release",
        Some(SourceKind::Deployment) => "deployment",
        Some(SourceKind::Build) => "build",
        Some(SourceKind::EcsDeployment) => "ECS deployment",
        Some(_) => "run",
    };
    let name = escape(&r.name);
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": format!("{emoji} *{name}* {what} {state}")}
    })];
    let cells = r.strip();
    if !cells.is_empty() {
        let strip: Vec<String> = cells
            .iter()
            .map(|(name, status)| format!("{}{}", escape(name), status.map_or("", stage_mark)))
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": strip.join(" · ")}
        }));
    }
    if let Some(reason) = r.reasons.last() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Reason* {}", ellipsize(&escape(reason), 500))}
        }));
    }
    let mut context = Vec::new();
    if let Some((line, url)) = &r.commit {
        let line = ellipsize(&escape(line), 300);
        context.push(match url.as_deref().and_then(link_target) {
            Some(u) if u.len() < 1500 => format!("Commit <{}|{line}>", escape(&u)),
            _ => format!("Commit {line}"),
        });
    }
    if let Some(t) = &r.trigger {
        context.push(format!("Trigger: {}", ellipsize(&escape(t), 300)));
    }
    if let Some(what) = &r.rolled_back {
        context.push(format!("Rolled back: {}", ellipsize(&escape(what), 300)));
    }
    if !context.is_empty() {
        let elements: Vec<Value> = context
            .into_iter()
            .map(|t| json!({"type": "mrkdwn", "text": t}))
            .collect();
        blocks.push(json!({"type": "context", "elements": elements}));
    }
    let buttons: Vec<Value> = r
        .links
        .iter()
        .filter(|(_, u)| u.len() <= 3000 && link_target(u).is_some())
        .map(|(label, url)| {
            json!({"type": "button", "text": {"type": "plain_text", "text": ellipsize(label, 75)}, "url": url})
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    enforce_limits(json!({
        "channel": channel,
        "text": ellipsize(&format!("{name} {what} {state}"), 300),
        "blocks": blocks,
        "unfurl_links": false,
    }))
}

/// Whether an event is told in the thread, and broadcast to the channel.
pub fn reply_kind(n: &Notification, r: &ReleaseRecord) -> Option<bool> {
    match (n.kind, n.status) {
        (SourceKind::Action, Status::Failed) => Some(true),
        (SourceKind::Stage, _) => None,
        // The run failed: told once, unless an action failure already was.
        (_, Status::Failed) if r.replied.is_empty() || n.kind != SourceKind::Pipeline => {
            Some(true)
        }
        (_, Status::Recovered) => Some(true),
        (SourceKind::Deployment | SourceKind::EcsDeployment | SourceKind::Build, _) => {
            Some(false)
        }
        _ => None,
    }
}

/// A thread reply (the full notification, as in webhook mode).
pub fn render_reply(n: &Notification, channel: &str, ts: &str, broadcast: bool) -> Value {
    let mut v = render_standalone(n);
    v["channel"] = json!(channel);
    v["thread_ts"] = json!(ts);
    if broadcast {
        v["reply_broadcast"] = json!(true);
    }
    v["unfurl_links"] = json!(false);
    enforce_limits(v)
}

/// The Web API over the [`ChatTransport`] port, with retries.
struct Api<'a, H, P> {
    t: &'a Target,
    name: &'a str,
    via: &'a Via<'a, H, P>,
    deadline: Instant,
    attempts: u32,
}

impl<H: ChatTransport, P> Api<'_, H, P> {
    async fn call(&mut self, method: &str, body: Value) -> Result<Value, (DeliveryError, String)> {
        let url = Secret::new(format!("{}/{method}", self.t.api_url));
        let headers = vec![("authorization", self.t.auth.clone())];
        let bytes = body.to_string().into_bytes();
        let out: Mutex<Option<Value>> = Mutex::new(None);
        let http = self.via.http;
        let done = with_retries(self.name, self.deadline, self.via.policy, |window| {
            let bytes = bytes.clone();
            let (url, headers, out) = (&url, &headers, &out);
            async move {
                let answer = http.post_api(url, headers, bytes, window).await?;
                let v = classify(method, &answer)?;
                if let Ok(mut o) = out.lock() {
                    *o = Some(v);
                }
                Ok(())
            }
        })
        .await;
        self.attempts += done.attempts;
        done.result?;
        Ok(out.lock().ok().and_then(|mut o| o.take()).unwrap_or(Value::Null))
    }
}

/// When a creation lease taken at `now_epoch` ends: it covers this
/// delivery's whole deadline (429 waits included) plus a margin, so no one
/// else posts while this writer still may; at least [`CREATE_LEASE_SECS`].
fn creation_lease(now_epoch: i64, now: Instant, deadline: Instant) -> i64 {
    let left = i64::try_from(deadline.saturating_duration_since(now).as_secs()).unwrap_or(86_400);
    now_epoch + CREATE_LEASE_SECS.max(left.min(86_400) + LEASE_MARGIN_SECS)
}

/// Whether Slack says the live message is gone (deleted).
fn is_message_gone(e: &DeliveryError) -> bool {
    matches!(e, DeliveryError::Permanent { detail, .. } if detail.starts_with("chat.update: message_not_found:"))
}

/// Clears a deleted message's `ts` from the record, unless another writer
/// already replaced it.
async fn forget_ts(
    store: &dyn ReleaseStore,
    key: &str,
    gone: &str,
) -> Result<(), (DeliveryError, String)> {
    for _ in 0..MAX_ROUNDS {
        let Some(mut cur) = store.load(key).await.map_err(store_error)? else {
            return Ok(());
        };
        if cur.ts.as_deref() != Some(gone) {
            return Ok(());
        }
        cur.ts = None;
        cur.creating_until = None;
        if store.store(key, &cur).await.map_err(store_error)? {
            return Ok(());
        }
    }
    Ok(())
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn store_error(detail: String) -> (DeliveryError, String) {
    (
        DeliveryError::Retryable {
            status: None,
            retry_after: None,
            detail: format!("the release records could not be read or written: {detail}"),
        },
        "not sent without its record (it would start a second message); Lambda's retry sends it"
            .to_owned(),
    )
}

/// Posts or updates the run's live message, and answers in its thread.
pub async fn deliver<H: ChatTransport, P>(
    t: &Target,
    name: &str,
    n: &Notification,
    deadline: Instant,
    via: &Via<'_, H, P>,
) -> Attempts {
    let mut api = Api {
        t,
        name,
        via,
        deadline,
        attempts: 0,
    };
    let result = match n.thread.as_deref() {
        None => {
            let mut v = render_standalone(n);
            v["channel"] = json!(t.channel);
            api.call("chat.postMessage", enforce_limits(v)).await.map(|_| ())
        }
        Some(run) => {
            // A build or deployment an execution started lands in that
            // execution's thread (unless it already has its own message).
            let parent = find_parent(via.releases, name, run, n).await;
            let mut ev = n.clone();
            ev.parent_run.clone_from(&parent);
            let home = parent.as_deref().unwrap_or(run);
            match live(&mut api, via.releases, &release::key(home, name), &ev).await {
                Ok(fresh) => {
                    link_children(via.releases, name, home, &fresh).await;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
    Attempts {
        attempts: api.attempts.max(1),
        result,
    }
}

/// Which run's thread an event of a build or deployment (`run`) lands in:
/// the pipeline execution that started it ([`Notification::parent_run`]
/// from enrichment, or the link record an execution's events left for
/// it, for the deployment it rolls back, or for its deployment group
/// ([`group_parent`])), unless the run already has a
/// message of its own (its first events came before the link). `None`:
/// its own message, as without a link.
async fn find_parent(
    store: &dyn ReleaseStore,
    dest: &str,
    run: &str,
    n: &Notification,
) -> Option<String> {
    if !matches!(
        n.kind,
        SourceKind::Build | SourceKind::Deployment | SourceKind::Instance | SourceKind::EcsDeployment
    ) {
        return None;
    }
    let parent = match &n.parent_run {
        Some(p) => p.clone(),
        None => {
            let mut found = None;
            for t in std::iter::once(run).chain(n.related_runs.iter().map(String::as_str)).take(3) {
                match store.load(&release::link_key(t, dest)).await {
                    Ok(Some(r)) if r.parent.is_some() => {
                        found = r.parent;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(run = %run, error = %e, "could not read which execution started this run; it keeps its own message");
                        return None;
                    }
                }
            }
            match found {
                Some(p) => p,
                None => group_parent(store, dest, n).await?,
            }
        }
    };
    match store.load(&release::key(run, dest)).await {
        Ok(Some(own)) if own.ts.is_some() || own.creating_until.is_some() => None,
        Ok(_) => Some(parent),
        Err(_) => None,
    }
}

/// A CodeDeploy deployment without a link of its own: the execution whose
/// deploy action was in progress in its deployment group without naming a
/// deployment id yet ([`crate::model::deployment_group_thread`]), as long
/// as that execution has not ended (CodeDeploy runs one deployment per
/// group at a time; a later deployment to the group after the execution
/// ended keeps its own message).
async fn group_parent(store: &dyn ReleaseStore, dest: &str, n: &Notification) -> Option<String> {
    if !matches!(n.kind, SourceKind::Deployment | SourceKind::Instance) {
        return None;
    }
    let group = crate::model::deployment_group_thread(
        n.route_value("application")?,
        n.route_value("deployment-group")?,
    )?;
    let parent = match store.load(&release::link_key(&group, dest)).await {
        Ok(Some(r)) => r.parent?,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(group = %group, error = %e, "could not read which execution deploys to this group; the deployment keeps its own message");
            return None;
        }
    };
    match store.load(&release::key(&parent, dest)).await {
        Ok(Some(p)) if !p.overall.is_some_and(|m| m.is_final()) => Some(parent),
        _ => None,
    }
}

/// Leaves a link record for each run this execution started (first seen
/// by this writer), so that their events land in its thread. A run's link
/// is written once (the first execution to name it keeps it); a deployment
/// group's link (`codedeploy-group/…`) is taken over by the execution now
/// deploying there. A failed write only leaves that run on its own message.
async fn link_children(store: &dyn ReleaseStore, dest: &str, home: &str, fresh: &[String]) {
    for child in fresh {
        let key = release::link_key(child, dest);
        let group = child.starts_with("codedeploy-group/");
        let mut link = ReleaseRecord {
            parent: Some(home.to_owned()),
            ..ReleaseRecord::default()
        };
        for _ in 0..3 {
            match store.store(&key, &link).await {
                Ok(true) => break,
                Ok(false) if group => match store.load(&key).await {
                    Ok(Some(cur)) if cur.parent.as_deref() == Some(home) => break,
                    Ok(Some(cur)) => link.version = cur.version,
                    Ok(None) => link.version = 0,
                    Err(e) => {
                        tracing::warn!(run = %home, child = %child, error = %e, "could not link a deployment group to its execution; its deployment keeps its own message");
                        break;
                    }
                },
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(run = %home, child = %child, error = %e, "could not link a run to its execution; its events keep their own message");
                    break;
                }
            }
        }
    }
}

/// Merges `n` into the record at `key`, posts or updates the live message
/// and answers in its thread. Returns the child runs this writer added to
/// the record (to be linked).
async fn live<H: ChatTransport, P>(
    api: &mut Api<'_, H, P>,
    store: &dyn ReleaseStore,
    key: &str,
    n: &Notification,
) -> Result<Vec<String>, (DeliveryError, String)> {
    let channel = api.t.channel.clone();
    let mut rounds = 0;
    let mut fresh: Vec<String>;
    // 1-2: merge, and post or update the parent.
    let (ts, shown) = loop {
        rounds += 1;
        if rounds > MAX_ROUNDS || Instant::now() >= api.deadline {
            return Err((
                DeliveryError::Retryable {
                    status: None,
                    retry_after: None,
                    detail: "the run's record kept changing or its message was being created elsewhere".into(),
                },
                format!("gave up after {rounds} rounds; Lambda's retry sends it"),
            ));
        }
        let loaded = store.load(key).await.map_err(store_error)?;
        let mut rec = loaded.unwrap_or_else(|| ReleaseRecord {
            channel: channel.clone(),
            ..ReleaseRecord::default()
        });
        fresh = n
            .children
            .iter()
            .filter(|c| !rec.children.contains(c))
            .cloned()
            .collect();
        rec.merge(n);
        fresh.retain(|c| rec.children.contains(c));
        let now = now_secs();
        match rec.ts.clone() {
            Some(ts) => {
                if !store.store(key, &rec).await.map_err(store_error)? {
                    continue;
                }
                let mut body = render_parent(&rec, &rec.channel, now);
                body["ts"] = json!(ts);
                match api.call("chat.update", body).await {
                    Ok(_) => break (ts, rec.version + 1),
                    Err((e, _)) if is_message_gone(&e) => {
                        // Someone deleted the live message: forget its ts
                        // (if no one did yet) so the next round posts a new
                        // one, and the run goes on there.
                        tracing::warn!(run = %key, "the live message was deleted in Slack; posting a new one");
                        forget_ts(store, key, &ts).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            None if rec.creating_until.is_some_and(|u| u > now) => {
                // Another writer is posting the message: wait for its ts.
                tokio::time::sleep(Duration::from_millis(250)).await;
                rounds -= 1;
                if Instant::now() + Duration::from_millis(500) >= api.deadline {
                    return Err((
                        DeliveryError::Retryable {
                            status: None,
                            retry_after: None,
                            detail: "another execution environment is posting this run's message".into(),
                        },
                        "its ts did not arrive before the deadline; Lambda's retry updates it".into(),
                    ));
                }
            }
            None => {
                rec.creating_until = Some(creation_lease(now, Instant::now(), api.deadline));
                if !store.store(key, &rec).await.map_err(store_error)? {
                    continue;
                }
                rec.version += 1;
                let posted = api
                    .call("chat.postMessage", render_parent(&rec, &rec.channel, now))
                    .await;
                let answer = match posted {
                    Ok(v) => v,
                    Err(e) => {
                        // Let the next writer post at once.
                        rec.creating_until = None;
                        let _ = store.store(key, &rec).await;
                        return Err(e);
                    }
                };
                let ts = answer
                    .get("ts")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if ts.is_empty() {
                    return Err((
                        DeliveryError::Permanent {
                            status: Some(200),
                            detail: "chat.postMessage answered without a ts".into(),
                        },
                        "check TOLLGATE_SLACK_API_URL".into(),
                    ));
                }
                if let Some(c) = answer.get("channel").and_then(Value::as_str) {
                    rec.channel = c.to_owned();
                }
                // Store the ts (others may have merged meanwhile only if our
                // lease expired: keep theirs merged in).
                let mut mine = rec.clone();
                mine.ts = Some(ts.clone());
                mine.creating_until = None;
                // The message exists now: its ts must be stored, or a later
                // writer would post a second one. Store errors are retried
                // (with backoff, within the deadline) rather than returned.
                let mut stored = false;
                let mut backoff = Duration::from_millis(100);
                for _ in 0..MAX_ROUNDS {
                    let written = match store.store(key, &mine).await {
                        Ok(w) => w,
                        Err(e) => {
                            if Instant::now() + backoff >= api.deadline {
                                tracing::error!(run = %key, error = %e, "the message was posted but its ts could not be stored before the deadline; the creation lease keeps others from posting until it ends");
                                return Err(store_error(e));
                            }
                            tracing::warn!(run = %key, error = %e, "storing the new message's ts failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            continue;
                        }
                    };
                    if written {
                        stored = true;
                        break;
                    }
                    let cur = match store.load(key).await {
                        Ok(Some(cur)) => cur,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(run = %key, error = %e, "reading the record to store the new message's ts failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            continue;
                        }
                    };
                    if cur.ts.as_deref().is_some_and(|other| other != ts) {
                        tracing::warn!(run = %key, "another environment posted this run's message after our lease expired; two messages exist");
                        break;
                    }
                    let mut merged = cur.clone();
                    merged.absorb(&mine);
                    merged.ts = Some(ts.clone());
                    merged.creating_until = None;
                    merged.channel.clone_from(&mine.channel);
                    mine = merged;
                }
                if !stored {
                    tracing::warn!(run = %key, "the message was posted but its ts could not be stored");
                }
                break (ts, mine.version + 1);
            }
        }
    };
    // 3: the thread reply, once per event.
    // A manual approval starting is answered with its approval request
    // (crate::approval_request), once, like a reply.
    // So is an ECS deployment paused at a PAUSE hook (crate::ecs_pause).
    let approval = crate::approval_request::approval_of(n);
    let pause = crate::ecs_pause::pause_of(n);
    // And an entry condition in progress (crate::stage_condition).
    let condition = crate::stage_condition::request_of(n);
    // The same waiting condition is found after several events of one
    // execution (its start, a stage success): one request per condition.
    let reply_key = match condition {
        Some(c) if approval.is_none() && pause.is_none() => c.reply_key(),
        _ => n.event_id.clone(),
    };
    let current = store.load(key).await.map_err(store_error)?;
    if let Some(rec) = current.as_ref()
        && let Some(broadcast) = reply_kind(n, rec)
            .or(approval.as_ref().map(|_| true))
            .or(pause.map(|_| true))
            .or(condition.map(|_| true))
        && !rec.has_replied(&reply_key)
    {
        let body = match (&approval, pause) {
            (Some(a), _) => enforce_limits(crate::approval_request::render(n, a, &rec.channel, Some(&ts))),
            (None, Some(p)) => enforce_limits(crate::ecs_pause::render(n, p, &rec.channel, Some(&ts))),
            (None, None) => match condition {
                Some(c) => enforce_limits(crate::stage_condition::render(c, &rec.channel, Some(&ts))),
                None => render_reply(n, &rec.channel, &ts, broadcast),
            },
        };
        api.call("chat.postMessage", body).await?;
        for _ in 0..MAX_ROUNDS {
            let Some(mut cur) = store.load(key).await.map_err(store_error)? else {
                break;
            };
            cur.mark_replied(&reply_key);
            if store.store(key, &cur).await.map_err(store_error)? {
                break;
            }
        }
    }
    // 4: converge: if someone wrote after our update, show the latest.
    let mut shown = shown;
    for _ in 0..3 {
        let Some(cur) = store.load(key).await.map_err(store_error)? else {
            break;
        };
        if cur.version <= shown {
            break;
        }
        let mut body = render_parent(&cur, &cur.channel, now_secs());
        body["ts"] = json!(ts);
        api.call("chat.update", body).await?;
        shown = cur.version;
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fakes::FakeSlack;

    fn answer(status: u16, body: &str, retry: Option<u64>) -> HttpAnswer {
        HttpAnswer {
            status,
            retry_after: retry.map(Duration::from_secs),
            body: body.into(),
            scopes: None,
        }
    }

    #[test]
    fn slack_errors_are_sorted_with_what_to_do() {
        let ok = classify("chat.postMessage", &answer(200, r#"{"ok":true,"ts":"1.2"}"#, None));
        assert_eq!(ok.expect("ok")["ts"], "1.2");
        for (code, hint) in [
            ("channel_not_found", "channel ID"),
            ("not_in_channel", "/invite"),
            ("invalid_auth", "reinstall"),
            ("token_revoked", "reinstall"),
            ("msg_too_long", "Tollgate bug"),
            ("missing_scope", "chat:write"),
        ] {
            let e = classify(
                "chat.postMessage",
                &answer(200, &format!(r#"{{"ok":false,"error":"{code}"}}"#), None),
            )
            .expect_err(code);
            assert!(!e.is_retryable(), "{code}");
            assert!(e.to_string().contains(hint), "{code}: {e}");
        }
        let e = classify("chat.update", &answer(200, r#"{"ok":false,"error":"ratelimited"}"#, Some(3)))
            .expect_err("rl");
        assert!(matches!(e, DeliveryError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(3)));
        let e = classify("chat.update", &answer(429, "", Some(7))).expect_err("429");
        assert!(matches!(e, DeliveryError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(7)));
        // An odd error code is not echoed beyond Slack's identifier alphabet.
        let e = classify("x", &answer(200, r#"{"ok":false,"error":"<!channel> xoxb-1"}"#, None))
            .expect_err("odd");
        assert!(!e.to_string().contains('<'), "{e}");
    }

    #[test]
    fn channel_names_are_refused_with_what_to_use() {
        assert!(check_channel("c", "C0123456789").is_ok());
        assert!(check_channel("c", "G01234567AB").is_ok());
        let e = check_channel("c", "#deploys").expect_err("name");
        assert!(e.to_string().contains("Channel ID"), "{e}");
        assert!(check_channel("c", "deploys").is_err());
    }

    #[test]
    fn payloads_are_capped_to_slacks_limits() {
        let blocks: Vec<Value> = (0..80)
            .map(|_| json!({"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(5000)}}))
            .collect();
        let v = enforce_limits(json!({"text": "x".repeat(4000), "blocks": blocks}));
        assert_eq!(v["blocks"].as_array().expect("blocks").len(), limits::MAX_BLOCKS);
        assert_eq!(v["text"].as_str().expect("t").chars().count(), limits::TEXT);
        assert!(v["blocks"][0]["text"]["text"].as_str().expect("t").chars().count() <= limits::TEXT);
    }

    #[test]
    fn the_parent_shows_the_strip_and_escapes_names() {
        use crate::release::{Mark, StageCell};
        let cell = |name: &str, status| StageCell {
            name: name.into(),
            mark: Mark { status, at: 10 },
            first: 10,
        };
        let r = ReleaseRecord {
            name: "pay<!channel>".into(),
            kind: Some(SourceKind::Pipeline),
            overall: Some(Mark { status: Status::Failed, at: 70 }),
            started: Some(10),
            stages: vec![
                cell("Source", Status::Succeeded),
                cell("Build", Status::Failed),
                cell("Prod", Status::InProgress),
            ],
            ..ReleaseRecord::default()
        };
        let v = render_parent(&r, "C0123456789", 100);
        let text = v.to_string();
        assert!(text.contains("Source ✓ · Build ✗ · Prod ⏳"), "{text}");
        assert!(text.contains("failed at Build in 1m 00s"), "{text}");
        assert!(!text.contains("<!channel>"), "{text}");
    }

    fn bot(name: &str) -> super::super::Destination {
        super::super::Destination {
            name: name.into(),
            target: super::super::Target::SlackBot(Target {
                auth: Secret::new("Bearer xoxb-SECRET-1"),
                channel: "C0123456789".into(),
                api_url: "http://127.0.0.1:9".into(),
            }),
        }
    }

    #[tokio::test]
    async fn auth_test_at_init_refuses_a_revoked_token_or_a_missing_scope() {
        let t = Duration::from_secs(1);
        let ok = |scopes: Option<&str>| {
            FakeSlack::answering(Ok(HttpAnswer {
                scopes: scopes.map(str::to_owned),
                ..answer(200, r#"{"ok":true,"team_id":"T1","user_id":"U1"}"#, None)
            }))
        };
        let dests = [bot("bot"), bot("again")];
        assert!(check_tokens(&dests, &ok(Some("chat:write,channels:read")), t).await.is_ok());
        // Slack did not say which scopes: nothing to hold against the token.
        assert!(check_tokens(&dests, &ok(None), t).await.is_ok());
        let e = check_tokens(&dests, &ok(Some("channels:read, users:read")), t)
            .await
            .expect_err("no chat:write");
        assert!(e.detail.contains("missing_scope") && e.detail.contains("chat:write"), "{e}");
        assert!(e.detail.contains("channels:read, users:read"), "{e}");
        for code in ["invalid_auth", "token_revoked", "account_inactive"] {
            let s = FakeSlack::answering(Ok(answer(
                200,
                &format!(r#"{{"ok":false,"error":"{code}"}}"#),
                None,
            )));
            let e = check_tokens(&dests, &s, t).await.expect_err(code);
            assert_eq!(e.destination, "bot");
            let text = e.to_string();
            assert!(text.contains(code) && text.contains("reinstall"), "{text}");
            assert!(text.contains("every event fails"), "{text}");
            assert!(!text.contains("SECRET"), "{text}");
        }
        // Slack down or unreachable is no verdict on the token.
        let down = FakeSlack::answering(Ok(answer(503, "", None)));
        assert!(check_tokens(&dests, &down, t).await.is_ok());
        let unreachable = FakeSlack::answering(Err(DeliveryError::Retryable {
            status: None,
            retry_after: None,
            detail: "connection refused".into(),
        }));
        assert!(check_tokens(&dests, &unreachable, t).await.is_ok());
        // No bot destination: nothing is called.
        assert!(check_tokens(&[], &down, t).await.is_ok());
    }

    /// A Slack Web API in memory, checking the bot token of [`Target`]s
    /// made by these tests.
    fn fake_slack() -> FakeSlack {
        FakeSlack::default().expecting_auth("Bearer xoxb-test")
    }

    /// The memory store, yielding before each call so writers interleave.
    #[derive(Debug, Default)]
    struct Interleaving(crate::release::MemoryReleases);

    impl ReleaseStore for Interleaving {
        fn load<'a>(
            &'a self,
            key: &'a str,
        ) -> release::BoxFuture<'a, Result<Option<ReleaseRecord>, String>> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.load(key).await
            })
        }
        fn store<'a>(
            &'a self,
            key: &'a str,
            r: &'a ReleaseRecord,
        ) -> release::BoxFuture<'a, Result<bool, String>> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.store(key, r).await
            })
        }
    }

    #[tokio::test]
    async fn concurrent_out_of_order_events_end_in_one_message_and_one_thread() {
        let slack = fake_slack();
        let store = Interleaving::default();
        let policy = crate::deliver::RetryPolicy::default();
        let via = Via {
            http: &slack,
            sns: &(),
            policy: &policy,
            releases: &store,
        };
        let t = Target {
            auth: Secret::new("Bearer xoxb-test"),
            channel: "C0123456789".into(),
            api_url: "http://127.0.0.1:9".into(),
        };
        let mut evs = crate::release::tests::events();
        evs.reverse();
        evs.swap(1, 5);
        let deadline = Instant::now() + Duration::from_secs(30);
        let all = futures::future::join_all(
            evs.iter().map(|n| deliver(&t, "bot", n, deadline, &via)),
        )
        .await;
        assert!(all.iter().all(|a| a.result.is_ok()), "{all:?}");
        // Redelivered (Lambda retry, EventBridge duplicate): nothing new.
        for n in &evs {
            assert!(deliver(&t, "bot", n, deadline, &via).await.result.is_ok());
        }
        let calls = slack.calls();
        let parents: Vec<_> = calls
            .iter()
            .filter(|(m, v)| m == "chat.postMessage" && v.get("thread_ts").is_none())
            .collect();
        assert_eq!(parents.len(), 1, "{calls:#?}");
        let replies: Vec<_> = calls
            .iter()
            .filter(|(m, v)| m == "chat.postMessage" && v.get("thread_ts").is_some())
            .collect();
        assert!(!replies.is_empty());
        let thread = replies[0].1["thread_ts"].clone();
        assert!(replies.iter().all(|(_, v)| v["thread_ts"] == thread));
        assert!(replies.iter().all(|(_, v)| v["reply_broadcast"] == true));
        let mut texts: Vec<String> = replies.iter().map(|(_, v)| v["text"].to_string()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), replies.len(), "duplicate replies: {replies:#?}");
        // The last update shows everything.
        let last = calls
            .iter()
            .rev()
            .find(|(m, _)| m == "chat.update")
            .expect("updated");
        assert_eq!(last.1["ts"], thread, "the thread hangs on the one message");
        let text = last.1.to_string();
        assert!(text.contains("Source ✓ · Build ✗"), "{text}");
        assert!(text.contains("failed at Build"), "{text}");
    }

    fn bot_target() -> Target {
        Target {
            auth: Secret::new("Bearer xoxb-test"),
            channel: "C0123456789".into(),
            api_url: "http://127.0.0.1:9".into(),
        }
    }

    fn parents(slack: &FakeSlack) -> Vec<Value> {
        slack
            .calls()
            .iter()
            .filter(|(m, v)| m == "chat.postMessage" && v.get("thread_ts").is_none())
            .map(|(_, v)| v.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_deleted_live_message_is_posted_again_and_the_run_goes_on() {
        let slack = fake_slack();
        let store = Interleaving::default();
        let policy = crate::deliver::RetryPolicy::default();
        let via = Via { http: &slack, sns: &(), policy: &policy, releases: &store };
        let t = bot_target();
        let evs = crate::release::tests::events();
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &evs[..3] {
            assert!(deliver(&t, "bot", n, deadline, &via).await.result.is_ok());
        }
        assert_eq!(parents(&slack).len(), 1);
        let key = release::key(evs[0].thread.as_deref().expect("run"), "bot");
        let ts = store.0.load(&key).await.expect("load").expect("rec").ts.expect("ts");
        slack.delete(&ts);
        for n in &evs[3..] {
            let out = deliver(&t, "bot", n, deadline, &via).await;
            assert!(out.result.is_ok(), "{out:?}");
        }
        assert_eq!(parents(&slack).len(), 2, "one new message after the deletion");
        let rec = store.0.load(&key).await.expect("load").expect("rec");
        let new_ts = rec.ts.expect("new ts");
        assert_ne!(new_ts, ts);
        let calls = slack.calls();
        let last = calls.iter().rev().find(|(m, v)| m == "chat.update" && v["ts"] == new_ts.as_str());
        let text = last.expect("the new message is updated").1.to_string();
        assert!(text.contains("failed at Build"), "{text}");
        let replies: Vec<_> = calls
            .iter()
            .filter(|(m, v)| m == "chat.postMessage" && v.get("thread_ts").is_some())
            .collect();
        assert!(replies.iter().all(|(_, v)| v["thread_ts"] == new_ts.as_str()), "{replies:#?}");
    }

    /// Fails the first write of a posted message's ts (a DynamoDB error
    /// after a successful post).
    #[derive(Debug, Default)]
    struct FailTsOnce {
        inner: crate::release::MemoryReleases,
        failed: std::sync::atomic::AtomicBool,
    }

    impl ReleaseStore for FailTsOnce {
        fn load<'a>(
            &'a self,
            key: &'a str,
        ) -> release::BoxFuture<'a, Result<Option<ReleaseRecord>, String>> {
            self.inner.load(key)
        }
        fn store<'a>(
            &'a self,
            key: &'a str,
            r: &'a ReleaseRecord,
        ) -> release::BoxFuture<'a, Result<bool, String>> {
            if r.ts.is_some() && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Box::pin(async { Err("ProvisionedThroughputExceededException".to_owned()) });
            }
            self.inner.store(key, r)
        }
    }

    #[tokio::test]
    async fn a_store_error_after_the_post_is_retried_so_no_second_message_is_posted() {
        let slack = fake_slack();
        let store = FailTsOnce::default();
        let policy = crate::deliver::RetryPolicy::default();
        let via = Via { http: &slack, sns: &(), policy: &policy, releases: &store };
        let t = bot_target();
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &crate::release::tests::events() {
            let out = deliver(&t, "bot", n, deadline, &via).await;
            assert!(out.result.is_ok(), "{out:?}");
        }
        assert!(store.failed.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(parents(&slack).len(), 1);
    }

    #[test]
    fn the_creation_lease_covers_the_deadline() {
        let now = Instant::now();
        // A short deadline: the floor.
        assert_eq!(creation_lease(1000, now, now + Duration::from_secs(3)), 1020);
        // A long one (429 waits): all of it, plus the margin.
        assert_eq!(creation_lease(1000, now, now + Duration::from_secs(300)), 1305);
        // Past the deadline: the floor.
        assert_eq!(creation_lease(1000, now + Duration::from_secs(9), now), 1020);
    }

    #[tokio::test]
    async fn a_deployment_the_execution_started_lands_in_its_thread() {
        use crate::events::parse;
        let slack = fake_slack();
        let store = Interleaving::default();
        let policy = crate::deliver::RetryPolicy::default();
        let via = Via { http: &slack, sns: &(), policy: &policy, releases: &store };
        let t = bot_target();
        let deadline = Instant::now() + Duration::from_secs(30);
        let deploy = |id: &str, state: &str, time: &str| {
            Notification::from_event(&parse(json!({
                "id": id, "detail-type": "CodeDeploy Deployment State-change Notification",
                "source": "aws.codedeploy", "region": "eu-west-1", "account": "111122223333",
                "time": time,
                "detail": {"application": "pay", "deploymentGroup": "prod", "deploymentId": "d-ABC123", "state": state}
            })))
        };
        // A deployment nobody linked yet keeps its own message.
        let other = Notification::from_event(&parse(json!({
            "id": "o1", "detail-type": "CodeDeploy Deployment State-change Notification",
            "source": "aws.codedeploy", "region": "eu-west-1", "account": "111122223333",
            "time": "2026-11-26T06:00:10Z",
            "detail": {"application": "pay", "deploymentGroup": "dev", "deploymentId": "d-OTHER1", "state": "START"}
        })));
        assert!(deliver(&t, "bot", &other, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 1);
        // The pipeline's action event names the deployment it started.
        let mut action = crate::release::tests::ev("a1", "action", "STARTED", Some("Deploy"), "2026-11-26T06:00:20Z");
        action.add_child("codedeploy/d-ABC123".into());
        assert!(deliver(&t, "bot", &action, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 2);
        let run_ts = store
            .0
            .load(&release::key(action.thread.as_deref().expect("run"), "bot"))
            .await
            .expect("load")
            .expect("rec")
            .ts
            .expect("ts");
        // Its failure is told in the execution's thread, broadcast.
        let mut failed = deploy("d1", "FAILURE", "2026-11-26T06:01:00Z");
        failed.reason = Some("the deployment failed <!here>".into());
        failed.qualifier = Some("rolled back".into());
        assert!(deliver(&t, "bot", &failed, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 2, "no message of its own");
        let calls = slack.calls();
        let reply = calls
            .iter()
            .find(|(m, v)| m == "chat.postMessage" && v.to_string().contains("the deployment failed"))
            .expect("a reply");
        assert!(!reply.1.to_string().contains("<!here>"), "escaped");
        assert_eq!(reply.1["thread_ts"], run_ts.as_str());
        assert_eq!(reply.1["reply_broadcast"], true);
        // The run's message shows the rollback once the pipeline ends.
        let end = crate::release::tests::ev("p9", "pipeline", "FAILED", None, "2026-11-26T06:01:05Z");
        assert!(deliver(&t, "bot", &end, deadline, &via).await.result.is_ok());
        let calls = slack.calls();
        let last = calls.iter().rev().find(|(m, _)| m == "chat.update").expect("update");
        let text = last.1.to_string();
        assert!(text.contains("rolled back"), "{text}");
        assert!(text.contains("pay/prod (CodeDeploy)"), "{text}");
    }

    /// A deploy action in progress that lists no deployment id yet links
    /// its deployment group: the deployment's events land in the running
    /// execution's thread; once that execution has ended a deployment to
    /// the group keeps its own message, and the next execution deploying
    /// there takes the group over.
    #[tokio::test]
    async fn a_deployment_is_tied_through_its_group_while_the_execution_deploys_there() {
        use crate::events::parse;
        let slack = fake_slack();
        let store = Interleaving::default();
        let policy = crate::deliver::RetryPolicy::default();
        let via = Via { http: &slack, sns: &(), policy: &policy, releases: &store };
        let t = bot_target();
        let deadline = Instant::now() + Duration::from_secs(30);
        let deploy = |id: &str, deployment: &str, state: &str, time: &str| {
            Notification::from_event(&parse(json!({
                "id": id, "detail-type": "CodeDeploy Deployment State-change Notification",
                "source": "aws.codedeploy", "region": "eu-west-1", "account": "111122223333",
                "time": time,
                "detail": {"application": "pay", "deploymentGroup": "prod", "deploymentId": deployment, "state": state}
            })))
        };
        let group = crate::model::deployment_group_thread("pay", "prod").expect("group");
        let mut action = crate::release::tests::ev("a1", "action", "STARTED", Some("Deploy"), "2026-11-26T06:00:20Z");
        action.add_child(group.clone());
        assert!(deliver(&t, "bot", &action, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 1);
        let failed = deploy("d1", "d-GRP0001", "FAILURE", "2026-11-26T06:01:00Z");
        assert!(deliver(&t, "bot", &failed, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 1, "told in the execution's thread");
        let replies = || {
            slack
                .calls()
                .iter()
                .filter(|(m, v)| m == "chat.postMessage" && v.get("thread_ts").is_some())
                .count()
        };
        assert_eq!(replies(), 1);
        // The execution ends: a later deployment to the group is not its.
        let end = crate::release::tests::ev("p9", "pipeline", "FAILED", None, "2026-11-26T06:01:05Z");
        assert!(deliver(&t, "bot", &end, deadline, &via).await.result.is_ok());
        let later = deploy("d2", "d-LATER01", "START", "2026-11-26T07:00:00Z");
        assert!(deliver(&t, "bot", &later, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 2, "a message of its own");
        // The next execution deploying there takes the group over.
        let mut next = crate::release::tests::ev("b1", "action", "STARTED", Some("Deploy"), "2026-11-26T08:00:00Z");
        next.thread = Some("codepipeline/pay/x2".into());
        next.add_child(group.clone());
        assert!(deliver(&t, "bot", &next, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 3);
        let link = store
            .0
            .load(&release::link_key(&group, "bot"))
            .await
            .expect("load")
            .expect("link");
        assert_eq!(link.parent.as_deref(), Some("codepipeline/pay/x2"));
        let mine = deploy("d3", "d-NEXT0001", "FAILURE", "2026-11-26T08:05:00Z");
        assert!(deliver(&t, "bot", &mine, deadline, &via).await.result.is_ok());
        assert_eq!(parents(&slack).len(), 3, "in the second execution's thread");
    }

    #[tokio::test]
    async fn a_starting_manual_approval_posts_its_request_once_in_the_thread() {
        let slack = fake_slack();
        let store = Interleaving::default();
        let policy = crate::deliver::RetryPolicy::default();
        let via = Via {
            http: &slack,
            sns: &(),
            policy: &policy,
            releases: &store,
        };
        let t = Target {
            auth: Secret::new("Bearer xoxb-test"),
            channel: "C0123456789".into(),
            api_url: "http://127.0.0.1:9".into(),
        };
        let mut n = crate::release::tests::events()
            .into_iter()
            .find(|n| n.kind == SourceKind::Action && n.thread.is_some())
            .expect("an action event of a run");
        n.status = Status::Started;
        n.route.retain(|(k, _)| k != "stage" && k != "action");
        n.route.push(("stage".into(), "Prod".into()));
        n.route.push(("action".into(), "Approve".into()));
        n.facts.retain(|f| f.label != "Provider");
        n.facts.push(crate::model::Fact {
            label: "Provider".into(),
            value: "Approval / Manual".into(),
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        for _ in 0..2 {
            assert!(deliver(&t, "bot", &n, deadline, &via).await.result.is_ok());
        }
        let calls = slack.calls();
        let requests: Vec<_> = calls
            .iter()
            .filter(|(m, v)| m == "chat.postMessage" && v.get("thread_ts").is_some())
            .collect();
        assert_eq!(requests.len(), 1, "once: {calls:#?}");
        let buttons = &requests[0].1["blocks"][2];
        assert_eq!(buttons["block_id"], tollgate_core::approval_request::BLOCK);
        assert_eq!(requests[0].1["reply_broadcast"], true);
    }
}

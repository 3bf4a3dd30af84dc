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
/// may take over.
const CREATE_LEASE_SECS: i64 = 20;
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
    if !r.stages.is_empty() {
        let strip: Vec<String> = r
            .stages
            .iter()
            .map(|s| format!("{}{}", escape(&s.name), stage_mark(s.mark.status)))
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
        Some(run) => live(&mut api, via.releases, &release::key(run, name), n).await,
    };
    Attempts {
        attempts: api.attempts.max(1),
        result,
    }
}

async fn live<H: ChatTransport, P>(
    api: &mut Api<'_, H, P>,
    store: &dyn ReleaseStore,
    key: &str,
    n: &Notification,
) -> Result<(), (DeliveryError, String)> {
    let channel = api.t.channel.clone();
    let mut rounds = 0;
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
        rec.merge(n);
        let now = now_secs();
        match rec.ts.clone() {
            Some(ts) => {
                if !store.store(key, &rec).await.map_err(store_error)? {
                    continue;
                }
                let mut body = render_parent(&rec, &rec.channel, now);
                body["ts"] = json!(ts);
                api.call("chat.update", body).await?;
                break (ts, rec.version + 1);
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
                rec.creating_until = Some(now + CREATE_LEASE_SECS);
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
                let mut stored = false;
                for _ in 0..MAX_ROUNDS {
                    if store.store(key, &mine).await.map_err(store_error)? {
                        stored = true;
                        break;
                    }
                    let Some(cur) = store.load(key).await.map_err(store_error)? else {
                        continue;
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
    let approval = crate::approval_request::approval_of(n);
    let current = store.load(key).await.map_err(store_error)?;
    if let Some(rec) = current.as_ref()
        && let Some(broadcast) = reply_kind(n, rec).or(approval.as_ref().map(|_| true))
        && !rec.has_replied(&n.event_id)
    {
        let body = match &approval {
            Some(a) => enforce_limits(crate::approval_request::render(n, a, &rec.channel, Some(&ts))),
            None => render_reply(n, &rec.channel, &ts, broadcast),
        };
        api.call("chat.postMessage", body).await?;
        for _ in 0..MAX_ROUNDS {
            let Some(mut cur) = store.load(key).await.map_err(store_error)? else {
                break;
            };
            cur.mark_replied(&n.event_id);
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, retry: Option<u64>) -> HttpAnswer {
        HttpAnswer {
            status,
            retry_after: retry.map(Duration::from_secs),
            body: body.into(),
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

    /// A Slack Web API in memory: answers like Slack, records every call.
    #[derive(Debug, Default)]
    struct FakeSlack {
        calls: Mutex<Vec<(String, Value)>>,
        next_ts: std::sync::atomic::AtomicU64,
    }

    impl ChatTransport for FakeSlack {
        async fn post_json(
            &self,
            _url: &Secret,
            _headers: &[(&'static str, Secret)],
            _body: Vec<u8>,
            _timeout: Duration,
        ) -> Result<HttpAnswer, DeliveryError> {
            unreachable!("the bot mode uses post_api")
        }

        async fn post_api(
            &self,
            url: &Secret,
            headers: &[(&'static str, Secret)],
            body: Vec<u8>,
            _timeout: Duration,
        ) -> Result<HttpAnswer, DeliveryError> {
            tokio::task::yield_now().await;
            assert_eq!(headers[0].1.expose(), "Bearer xoxb-test");
            let method = url.expose().rsplit('/').next().unwrap_or_default().to_owned();
            let v: Value = serde_json::from_slice(&body).expect("json");
            let ts = format!(
                "1700000000.{:06}",
                self.next_ts.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            );
            let answer = json!({"ok": true, "channel": v["channel"], "ts": v.get("ts").cloned().unwrap_or(json!(ts))});
            self.calls.lock().expect("lock").push((method, v));
            tokio::task::yield_now().await;
            Ok(HttpAnswer {
                status: 200,
                retry_after: None,
                body: answer.to_string(),
            })
        }
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
        let slack = FakeSlack::default();
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
        let calls = slack.calls.lock().expect("lock").clone();
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

    #[tokio::test]
    async fn a_starting_manual_approval_posts_its_request_once_in_the_thread() {
        let slack = FakeSlack::default();
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
        let calls = slack.calls.lock().expect("lock").clone();
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

//! A local Slack Web API ([`slack_api`]): `auth.test` (with the token's
//! scopes in `x-oauth-scopes`), `chat.postMessage`
//! and `chat.update` under `/api/` (and, for the approvals endpoint,
//! `views.open`, `users.info`, `usergroups.users.list` and interaction
//! response URLs under `/hooks/`), answering with Slack's shapes (HTTP 200
//! with `ok: true` and the message's `channel` / `ts`, or `ok: false` and
//! an `error`: `invalid_auth`, `channel_not_found`, `message_not_found`).
//! A 429 with `Retry-After` or any other error is scripted on the stub
//! ([`Stub::script`], path `/api/<method>`).

use crate::http::{Reply, Request, Stub};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The only token the stand-in accepts.
pub const BOT_TOKEN: &str = "xoxb-0000-LOCAL-NEVER-LOG";
/// The scopes `auth.test` reports for [`BOT_TOKEN`] (`x-oauth-scopes`).
pub const SCOPES: &str = "chat:write,chat:write.public";
/// The only channel the bot is a member of.
pub const CHANNEL: &str = "C0LOCAL0001";

fn err(code: &str) -> Reply {
    Reply::json(200, &json!({"ok": false, "error": code}))
}

/// A user group whose only member is [`GROUP_MEMBER`] (`usergroups.users.list`).
pub const GROUP: &str = "S0LOCALAPPROVERS";
/// The member of [`GROUP`].
pub const GROUP_MEMBER: &str = "U0LOCALGROUPMEMBER";
/// `users.info` shows every user's e-mail as `<user id, lower-cased>@example.com`
/// (except [`HIDDEN_EMAIL_USER`]'s).
pub const EMAIL_DOMAIN: &str = "example.com";
/// A user whose profile `users.info` shows without an e-mail, as Slack does
/// when the app lacks `users:read.email`.
pub const HIDDEN_EMAIL_USER: &str = "U0LOCALNOEMAIL";

/// `users.info`, `usergroups.users.list` (form bodies) and `views.open`
/// (JSON): what the approvals endpoint asks of Slack besides the chat methods.
fn approvals_method(method: &str, req: &Request) -> Option<Reply> {
    let form = |field: &str| -> Option<String> {
        req.text()
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{field}=")).map(str::to_owned))
    };
    match method {
        "users.info" => Some(match form("user") {
            Some(u) if u == HIDDEN_EMAIL_USER => Reply::json(
                200,
                &json!({"ok": true, "user": {"id": u, "profile": {"real_name": "No Email"}}}),
            ),
            Some(u) => Reply::json(
                200,
                &json!({"ok": true, "user": {"id": u, "profile": {"email": format!("{}@{EMAIL_DOMAIN}", u.to_lowercase())}}}),
            ),
            None => err("user_not_found"),
        }),
        "usergroups.users.list" => Some(match form("usergroup").as_deref() {
            Some(GROUP) => Reply::json(200, &json!({"ok": true, "users": [GROUP_MEMBER]})),
            _ => err("no_such_subteam"),
        }),
        "views.open" => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            Some(
                if body
                    .get("trigger_id")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty())
                    && body.pointer("/view/type").and_then(Value::as_str) == Some("modal")
                {
                    Reply::json(200, &json!({"ok": true, "view": {"id": "V0LOCAL"}}))
                } else {
                    err("invalid_arguments")
                },
            )
        }
        _ => None,
    }
}

fn answer(req: &Request, next: &AtomicU64) -> Reply {
    // Interaction response URLs (`/hooks/…`) take no token.
    if req.path.starts_with("/hooks/") {
        return Reply::text(200, "ok");
    }
    if req.header("authorization") != Some(&format!("Bearer {BOT_TOKEN}")) {
        return err(if req.header("authorization").is_none() {
            "not_authed"
        } else {
            "invalid_auth"
        });
    }
    let method = req.path.strip_prefix("/api/").unwrap_or_default();
    if method == "auth.test" {
        // Slack sends the token's scopes in `x-oauth-scopes`.
        return Reply::json(
            200,
            &json!({"ok": true, "url": "https://local.slack.com/", "team": "Local",
                    "user": "tollgate", "team_id": "T0LOCAL", "user_id": "U0LOCAL", "bot_id": "B0LOCAL"}),
        )
        .header("x-oauth-scopes", SCOPES);
    }
    if let Some(reply) = approvals_method(method, req) {
        return reply;
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if channel != CHANNEL {
        return err("channel_not_found");
    }
    if body
        .get("blocks")
        .and_then(Value::as_array)
        .is_some_and(|b| b.len() > 50)
    {
        return err("invalid_blocks");
    }
    if body
        .get("text")
        .and_then(Value::as_str)
        .is_some_and(|t| t.chars().count() > 40_000)
    {
        return err("msg_too_long");
    }
    match method {
        "chat.postMessage" => {
            let ts = format!("1700000000.{:06}", next.fetch_add(1, Ordering::SeqCst));
            Reply::json(
                200,
                &json!({"ok": true, "channel": channel, "ts": ts,
                        "message": {"type": "message", "text": body["text"], "ts": ts}}),
            )
        }
        "chat.update" => {
            let ts = body.get("ts").and_then(Value::as_str).unwrap_or_default();
            if !ts.starts_with("1700000000.") {
                return err("message_not_found");
            }
            Reply::json(
                200,
                &json!({"ok": true, "channel": channel, "ts": ts, "text": body["text"]}),
            )
        }
        _ => err("unknown_method"),
    }
}

/// Starts the stand-in; its base URL is `stub.url("/api")`.
pub async fn slack_api() -> Stub {
    let next = Arc::new(AtomicU64::new(1));
    Stub::start(move |req| {
        let reply = answer(&req, &next);
        async move { reply }
    })
    .await
}

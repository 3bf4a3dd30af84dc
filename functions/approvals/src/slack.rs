//! [`Chat`] over Slack's Web API and response URLs, with reqwest (rustls,
//! the process's TLS configuration from `tollgate_core::tls`, no
//! redirects). The client is built at init: every request this function
//! serves talks to Slack, and a bad `SSL_CERT_FILE` is then logged before
//! the first click.
//!
//! Answers are read up to [`ANSWER_MAX`] bytes; `ok: false` errors become a
//! [`PortError`] with Slack's error code (reduced to its identifier
//! alphabet) and what to do. The bot token never appears in an error.

use serde_json::{Value, json};
use std::time::Duration;
use tollgate_approvals::ports::{Chat, PortError};
use tollgate_core::secret::Secret;

/// The largest answer read.
pub const ANSWER_MAX: usize = 64 * 1024;

/// Slack.
#[derive(Debug, Clone)]
pub struct SlackWeb {
    api: String,
    auth: Secret,
    client: reqwest::Client,
}

impl SlackWeb {
    /// A client for the Web API at `api` with the bot `token`.
    pub fn new(api: String, token: &Secret) -> Result<Self, String> {
        let client = tollgate_core::tls::build_verifying(
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_millis(2500))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tollgate-approvals/", env!("CARGO_PKG_VERSION"))),
        )
        .map_err(|e| format!("could not build the HTTP client: {e}"))?;
        Ok(Self {
            api: api.trim_end_matches('/').to_owned(),
            auth: Secret::new(format!("Bearer {}", token.expose().trim())),
            client,
        })
    }

    async fn read(method: &str, mut resp: reqwest::Response) -> Result<Value, PortError> {
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| PortError::Failed(format!("{method}: {}", e.without_url())))?
        {
            if body.len() + chunk.len() > ANSWER_MAX {
                return Err(PortError::Failed(format!(
                    "{method}: the answer is too large"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if status == 429 {
            return Err(PortError::Failed(format!(
                "{method}: rate limited by Slack"
            )));
        }
        if status != 200 {
            return Err(PortError::Failed(format!(
                "{method}: HTTP {status} from Slack"
            )));
        }
        if method == "response_url" {
            // Response URLs answer `ok` as text, or JSON.
            return Ok(Value::Null);
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| PortError::Failed(format!("{method}: the answer is not JSON")))?;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(v);
        }
        let code: String = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(60)
            .collect();
        Err(match code.as_str() {
            "missing_scope" | "not_allowed_token_type" => PortError::Denied(format!(
                "{method}: {code}: add the scope the method needs to the Slack app and reinstall it (docs/approvals.md)"
            )),
            "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => {
                PortError::Denied(format!(
                    "{method}: {code}: the bot token is invalid or revoked; put the app's current token in the secret TOLLGATE_SLACK_BOT_TOKEN names"
                ))
            }
            "channel_not_found" | "not_in_channel" => PortError::Denied(format!(
                "{method}: {code}: invite the app to the approval channel"
            )),
            _ => PortError::Failed(format!("{method}: {code}")),
        })
    }

    async fn call_json(&self, method: &str, body: Value) -> Result<Value, PortError> {
        let resp = self
            .client
            .post(format!("{}/{method}", self.api))
            .header("authorization", self.auth.expose())
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| PortError::Failed(format!("{method}: {}", e.without_url())))?;
        Self::read(method, resp).await
    }

    async fn call_form(&self, method: &str, field: &str, value: &str) -> Result<Value, PortError> {
        let encoded: String = percent_encode(value);
        let resp = self
            .client
            .post(format!("{}/{method}", self.api))
            .header("authorization", self.auth.expose())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{field}={encoded}"))
            .send()
            .await
            .map_err(|e| PortError::Failed(format!("{method}: {}", e.without_url())))?;
        Self::read(method, resp).await
    }
}

/// Form-encodes an ID (Slack IDs are `[A-Z0-9]`; anything else is escaped).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Chat for SlackWeb {
    async fn update(&self, channel: &str, ts: &str, message: Value) -> Result<(), PortError> {
        let mut body = message;
        body["channel"] = json!(channel);
        body["ts"] = json!(ts);
        self.call_json("chat.update", body).await.map(|_| ())
    }

    async fn respond(&self, response_url: &str, message: Value) -> Result<(), PortError> {
        let resp = self
            .client
            .post(response_url)
            .header("content-type", "application/json; charset=utf-8")
            .body(message.to_string())
            .send()
            .await
            .map_err(|e| PortError::Failed(format!("response_url: {}", e.without_url())))?;
        Self::read("response_url", resp).await.map(|_| ())
    }

    async fn open_view(&self, trigger_id: &str, view: Value) -> Result<(), PortError> {
        self.call_json(
            "views.open",
            json!({"trigger_id": trigger_id, "view": view}),
        )
        .await
        .map(|_| ())
    }

    async fn group_members(&self, group: &str) -> Result<Vec<String>, PortError> {
        let v = self
            .call_form("usergroups.users.list", "usergroup", group)
            .await?;
        Ok(v.get("users")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn user_email(&self, user: &str) -> Result<Option<String>, PortError> {
        let v = self.call_form("users.info", "user", user).await?;
        Ok(v.pointer("/user/profile/email")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_owned))
    }
}

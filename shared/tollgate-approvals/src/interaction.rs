//! What Slack posts to the Interactivity Request URL: a form body with one
//! field, `payload`, holding JSON. Two kinds are understood:
//! - `block_actions`: a click on the Approve or Reject button of an
//!   approval request (action ids in `tollgate_core::approval_request`);
//! - `view_submission`: the reject-reason modal, submitted.
//!
//! Anything else is [`PayloadError`] (the endpoint answers 400). Errors
//! name what was wrong, never the payload's content.

use percent_encoding::percent_decode;
use serde::Deserialize;
use serde_json::Value;
use tollgate_core::approval_request::{
    APPROVE, ApprovalRef, REASON_INPUT, REJECT, REJECT_VIEW, ValueError,
};

/// Longest reject reason kept (CodePipeline's summary is at most 512
/// characters, with the approver's name in front).
pub const MAX_REASON: usize = 400;

/// A malformed or unknown request (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// No `payload=` form field.
    #[error("the body is not a Slack interactivity form (no payload field)")]
    NoPayload,
    /// `payload` is not JSON.
    #[error("the payload is not JSON")]
    NotJson,
    /// A field the kind needs is missing.
    #[error("the payload has no {0}")]
    Missing(&'static str),
    /// A kind Tollgate does not handle.
    #[error("the payload's type is not one Tollgate handles (block_actions, view_submission)")]
    UnknownType,
    /// An action or view id Tollgate did not create.
    #[error("unknown action id: Tollgate's buttons are {APPROVE} and {REJECT}")]
    UnknownAction,
    /// The button value or modal metadata is not a Tollgate approval reference.
    #[error("{0}")]
    Value(#[from] ValueError),
}

/// Who clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Slack user ID (`U…` / `W…`).
    pub id: String,
    /// Their username, when Slack sent it (display only).
    pub name: Option<String>,
    /// Their workspace ID.
    pub team: Option<String>,
}

/// Where the approval request message is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageRef {
    /// Channel ID.
    pub channel: Option<String>,
    /// Message `ts`.
    pub ts: Option<String>,
}

/// One understood interaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Interaction {
    /// Approve was clicked.
    Approve {
        /// Who.
        user: User,
        /// The approval.
        approval: ApprovalRef,
        /// The request message.
        message: MessageRef,
        /// The message's blocks as Slack holds them (kept when it is updated).
        blocks: Vec<Value>,
        /// Where ephemeral answers go.
        response_url: Option<String>,
        /// Slack's id for the click (`action_ts`), for the audit line.
        slack_id: String,
    },
    /// Reject was clicked: the reason modal opens.
    RejectClicked {
        /// Who.
        user: User,
        /// The approval.
        approval: ApprovalRef,
        /// The request message.
        message: MessageRef,
        /// Opens the modal (valid for 3 s).
        trigger_id: String,
        /// Where ephemeral answers go.
        response_url: Option<String>,
        /// Slack's id for the click.
        slack_id: String,
    },
    /// The reason modal was submitted.
    Reject {
        /// Who.
        user: User,
        /// The approval.
        approval: ApprovalRef,
        /// The request message.
        message: MessageRef,
        /// The reason, trimmed and capped to [`MAX_REASON`].
        reason: String,
        /// Slack's id for the submission (the view id).
        slack_id: String,
    },
}

impl Interaction {
    /// Who acted.
    pub fn user(&self) -> &User {
        match self {
            Self::Approve { user, .. }
            | Self::RejectClicked { user, .. }
            | Self::Reject { user, .. } => user,
        }
    }

    /// The approval acted on.
    pub fn approval(&self) -> &ApprovalRef {
        match self {
            Self::Approve { approval, .. }
            | Self::RejectClicked { approval, .. }
            | Self::Reject { approval, .. } => approval,
        }
    }

    /// Slack's id of the interaction, for the audit line.
    pub fn slack_id(&self) -> &str {
        match self {
            Self::Approve { slack_id, .. }
            | Self::RejectClicked { slack_id, .. }
            | Self::Reject { slack_id, .. } => slack_id,
        }
    }
}

/// The reason modal's `private_metadata`: the approval and where its
/// message is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ModalMetadata {
    /// The button value.
    pub r: String,
    /// Channel ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<String>,
    /// Message ts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<String>,
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space).
fn form_decode(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8_lossy()
        .into_owned()
}

/// The `payload` field of a form body.
pub fn payload_field(body: &[u8]) -> Result<Value, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NoPayload)?;
    let raw = text
        .split('&')
        .find_map(|pair| pair.strip_prefix("payload="))
        .ok_or(PayloadError::NoPayload)?;
    serde_json::from_str(&form_decode(raw)).map_err(|_| PayloadError::NotJson)
}

/// A non-empty string at `pointer`.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What every button click carries besides its button's value: the
/// clicker, the message, its blocks, where to answer and Slack's id. One
/// reading for the approval, ECS pause and stage-condition buttons.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonClick {
    /// Who.
    pub user: User,
    /// The request message.
    pub message: MessageRef,
    /// Its blocks as Slack holds them.
    pub blocks: Vec<Value>,
    /// Where ephemeral answers go.
    pub response_url: Option<String>,
    /// Slack's id for the click (`action_ts`).
    pub slack_id: String,
}

/// The [`ButtonClick`] of a `block_actions` payload `v` whose first action
/// is `action`; a missing user id is the one field it cannot do without.
pub(crate) fn button_click(v: &Value, action: &Value) -> Result<ButtonClick, PayloadError> {
    Ok(ButtonClick {
        user: user_of(v)?,
        message: MessageRef {
            channel: str_at(v, "/channel/id")
                .or_else(|| str_at(v, "/container/channel_id"))
                .map(str::to_owned),
            ts: str_at(v, "/container/message_ts")
                .or_else(|| str_at(v, "/message/ts"))
                .map(str::to_owned),
        },
        blocks: v
            .pointer("/message/blocks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        response_url: str_at(v, "/response_url").map(str::to_owned),
        slack_id: str_at(action, "/action_ts").unwrap_or_default().to_owned(),
    })
}

fn user_of(v: &Value) -> Result<User, PayloadError> {
    let id = str_at(v, "/user/id").ok_or(PayloadError::Missing("user.id"))?;
    Ok(User {
        id: id.to_owned(),
        name: str_at(v, "/user/username")
            .or_else(|| str_at(v, "/user/name"))
            .map(str::to_owned),
        team: str_at(v, "/user/team_id")
            .or_else(|| str_at(v, "/team/id"))
            .map(str::to_owned),
    })
}

/// Parses the form body Slack posted.
pub fn parse(body: &[u8]) -> Result<Interaction, PayloadError> {
    let v = payload_field(body)?;
    match v.get("type").and_then(Value::as_str) {
        Some("block_actions") => block_actions(&v),
        Some("view_submission") => view_submission(&v),
        _ => Err(PayloadError::UnknownType),
    }
}

fn block_actions(v: &Value) -> Result<Interaction, PayloadError> {
    let user = user_of(v)?;
    let action = v
        .pointer("/actions/0")
        .ok_or(PayloadError::Missing("actions"))?;
    let action_id = str_at(action, "/action_id").ok_or(PayloadError::Missing("action_id"))?;
    if action_id != APPROVE && action_id != REJECT {
        return Err(PayloadError::UnknownAction);
    }
    let value = str_at(action, "/value").ok_or(PayloadError::Missing("the button value"))?;
    let approval = ApprovalRef::decode(value)?;
    let ButtonClick {
        message,
        blocks,
        response_url,
        slack_id,
        ..
    } = button_click(v, action)?;
    if action_id == APPROVE {
        return Ok(Interaction::Approve {
            user,
            approval,
            message,
            blocks,
            response_url,
            slack_id,
        });
    }
    let trigger_id = str_at(v, "/trigger_id").ok_or(PayloadError::Missing("trigger_id"))?;
    Ok(Interaction::RejectClicked {
        user,
        approval,
        message,
        trigger_id: trigger_id.to_owned(),
        response_url,
        slack_id,
    })
}

fn view_submission(v: &Value) -> Result<Interaction, PayloadError> {
    let user = user_of(v)?;
    if str_at(v, "/view/callback_id") != Some(REJECT_VIEW) {
        return Err(PayloadError::UnknownAction);
    }
    let meta =
        str_at(v, "/view/private_metadata").ok_or(PayloadError::Missing("private_metadata"))?;
    let meta: ModalMetadata =
        serde_json::from_str(meta).map_err(|_| PayloadError::Missing("private_metadata"))?;
    let approval = ApprovalRef::decode(&meta.r)?;
    let reason = v
        .pointer(&format!(
            "/view/state/values/{REASON_INPUT}/{REASON_INPUT}/value"
        ))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    let reason: String = reason.chars().take(MAX_REASON).collect();
    Ok(Interaction::Reject {
        user,
        approval,
        message: MessageRef {
            channel: meta.c,
            ts: meta.t,
        },
        reason,
        slack_id: str_at(v, "/view/id").unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A form body as Slack sends it.
    pub fn form(payload: &Value) -> Vec<u8> {
        let encoded: String = percent_encoding::utf8_percent_encode(
            &payload.to_string(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        format!("payload={encoded}").into_bytes()
    }

    pub fn click(action_id: &str, value: &str) -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": "U0APPROVER", "username": "ana", "team_id": "T0LOCAL"},
            "team": {"id": "T0LOCAL"},
            "channel": {"id": "C0LOCAL0001"},
            "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0LOCAL0001"},
            "message": {"ts": "1700000000.000001", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Approve pay?"}}]},
            "trigger_id": "123.456.abc",
            "response_url": "https://hooks.slack.com/actions/T0/1/abc",
            "actions": [{"action_id": action_id, "block_id": "tollgate.approval", "value": value, "type": "button", "action_ts": "1700000001.1"}]
        })
    }

    fn value() -> String {
        ApprovalRef::new("pay", "Prod", "Approve", "e-1").encode()
    }

    #[test]
    fn approve_and_reject_clicks_are_understood() {
        let i = parse(&form(&click(APPROVE, &value()))).expect("approve");
        let Interaction::Approve {
            user,
            approval,
            message,
            blocks,
            response_url,
            slack_id,
        } = i
        else {
            panic!("not an approve: {i:?}")
        };
        assert_eq!(user.id, "U0APPROVER");
        assert_eq!(approval.pipeline, "pay");
        assert_eq!(message.channel.as_deref(), Some("C0LOCAL0001"));
        assert_eq!(message.ts.as_deref(), Some("1700000000.000001"));
        assert_eq!(blocks.len(), 1);
        assert!(response_url.is_some());
        assert_eq!(slack_id, "1700000001.1");
        let i = parse(&form(&click(REJECT, &value()))).expect("reject");
        assert!(
            matches!(i, Interaction::RejectClicked { ref trigger_id, .. } if trigger_id == "123.456.abc")
        );
    }

    #[test]
    fn the_reason_modal_is_understood_and_its_reason_capped() {
        let meta = serde_json::to_string(&ModalMetadata {
            r: value(),
            c: Some("C0LOCAL0001".into()),
            t: Some("1700000000.000001".into()),
        })
        .expect("json");
        let p = json!({
            "type": "view_submission",
            "user": {"id": "U0APPROVER"},
            "view": {"id": "V1", "callback_id": REJECT_VIEW, "private_metadata": meta,
                     "state": {"values": {REASON_INPUT: {REASON_INPUT: {"type": "plain_text_input", "value": format!("  {}  ", "x".repeat(900))}}}}}
        });
        let i = parse(&form(&p)).expect("submission");
        let Interaction::Reject {
            reason,
            message,
            slack_id,
            ..
        } = i
        else {
            panic!("{i:?}")
        };
        assert_eq!(reason.chars().count(), MAX_REASON);
        assert_eq!(message.ts.as_deref(), Some("1700000000.000001"));
        assert_eq!(slack_id, "V1");
    }

    #[test]
    fn malformed_and_unknown_requests_are_refused_without_quoting_them() {
        assert_eq!(parse(b"token=abc"), Err(PayloadError::NoPayload));
        assert_eq!(parse(b"payload=%7Bnot-json"), Err(PayloadError::NotJson));
        assert_eq!(
            parse(&form(&json!({"type": "shortcut", "user": {"id": "U1"}}))),
            Err(PayloadError::UnknownType)
        );
        assert_eq!(
            parse(&form(&click("someone.else", &value()))),
            Err(PayloadError::UnknownAction)
        );
        let e = parse(&form(&click(APPROVE, "xoxb-secret-looking"))).expect_err("value");
        assert!(!e.to_string().contains("xoxb"), "{e}");
        let mut no_user = click(APPROVE, &value());
        no_user["user"] = json!({});
        assert_eq!(
            parse(&form(&no_user)),
            Err(PayloadError::Missing("user.id"))
        );
    }

    #[test]
    fn plus_signs_are_spaces_in_a_form() {
        assert_eq!(form_decode("a+b%2Bc"), "a b+c");
    }
}

//! Slack interactivity requests as the `approvals` function receives them
//! through its function URL: a `payload=` form body, signed with Slack's v0
//! signature (`tollgate_approvals::signature::sign`), inside the
//! function-URL event of `events/approvals/approve-click.json`. Used by the
//! rehearsal's approval click and the bench; the integration tests sign
//! the fixtures themselves.

use crate::paths;
use serde_json::{Value, json};
use tollgate_core::Secret;
use tollgate_core::approval_request::{ApprovalRef, BLOCK, REASON_INPUT, REJECT_VIEW};

/// `payload=<percent-encoded JSON>`, as Slack posts it.
pub fn form_encode(payload: &Value) -> String {
    form_encode_text(&payload.to_string())
}

fn form_encode_text(text: &str) -> String {
    let mut out = String::from("payload=");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Who clicks, and the request message they click in.
#[derive(Debug, Clone)]
pub struct Clicker<'a> {
    /// Slack user ID.
    pub user: &'a str,
    /// Slack user name.
    pub name: &'a str,
    /// The request message's channel.
    pub channel: &'a str,
    /// The request message's `ts`.
    pub ts: &'a str,
    /// Where Slack takes ephemeral answers.
    pub response_url: &'a str,
}

/// A `block_actions` payload: a click on the button `action_id` (Approve
/// or Reject) of the request for `approval`, with the request message's
/// `blocks`.
pub fn click(
    action_id: &str,
    approval: &ApprovalRef,
    who: &Clicker<'_>,
    blocks: &[Value],
) -> Value {
    let value = approval.encode();
    json!({
        "type": "block_actions",
        "user": {"id": who.user, "username": who.name, "name": who.name, "team_id": "T0LOCAL"},
        "api_app_id": "A0LOCAL",
        "container": {"type": "message", "message_ts": who.ts, "channel_id": who.channel, "is_ephemeral": false},
        "trigger_id": "1700000001.0000.0000000000000000000000000000000",
        "team": {"id": "T0LOCAL", "domain": "local"},
        "channel": {"id": who.channel},
        "message": {"type": "message", "ts": who.ts, "blocks": blocks},
        "response_url": who.response_url,
        "actions": [{"action_id": action_id, "block_id": BLOCK, "type": "button", "value": value,
                     "action_ts": "1700000001.000100"}]
    })
}

/// A `view_submission` payload: the reject dialog of `approval`'s request
/// submitted with `reason`.
pub fn reject_submission(approval: &ApprovalRef, who: &Clicker<'_>, reason: &str) -> Value {
    let meta = json!({"r": approval.encode(), "c": who.channel, "t": who.ts});
    json!({
        "type": "view_submission",
        "team": {"id": "T0LOCAL"},
        "user": {"id": who.user, "username": who.name, "team_id": "T0LOCAL"},
        "api_app_id": "A0LOCAL",
        "view": {"id": "V0LOCAL", "type": "modal", "callback_id": REJECT_VIEW,
                 "private_metadata": meta.to_string(),
                 "state": {"values": {REASON_INPUT: {REASON_INPUT: {"type": "plain_text_input", "value": reason}}}}}
    })
}

/// The function-URL event carrying `payload`, signed at `timestamp` with
/// `secret` as Slack signs it.
pub fn signed_event(payload: &Value, secret: &str, timestamp: i64) -> Value {
    signed_event_text(&payload.to_string(), secret, timestamp)
}

/// [`signed_event`] of a payload given as JSON text (any text: the
/// signature is over the encoded body, whatever it holds).
pub fn signed_event_text(payload: &str, secret: &str, timestamp: i64) -> Value {
    let mut ev = paths::event("approvals", "approve-click");
    if let Some(o) = ev.as_object_mut() {
        o.remove("_comment");
    }
    let body = form_encode_text(payload);
    let ts = timestamp.to_string();
    ev["headers"]["x-slack-request-timestamp"] = json!(ts);
    ev["headers"]["x-slack-signature"] = json!(tollgate_approvals::signature::sign(
        &Secret::new(secret),
        &ts,
        body.as_bytes()
    ));
    ev["body"] = json!(body);
    ev
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_click_verifies_and_parses() {
        let a = ApprovalRef::new("web-release", "Approval", "Release", "e-1");
        let who = Clicker {
            user: "U0REHEARSE1",
            name: "ana",
            channel: "C0REHEARSE1",
            ts: "1700000000.000001",
            response_url: "http://127.0.0.1:1/hooks/x",
        };
        let ts = now();
        let ev = signed_event(
            &click(tollgate_core::approval_request::APPROVE, &a, &who, &[]),
            "a-signing-secret-0123456789",
            ts,
        );
        let body = ev["body"].as_str().expect("body");
        let sig = ev["headers"]["x-slack-signature"].as_str().expect("sig");
        assert!(
            tollgate_approvals::signature::verify(
                &Secret::new("a-signing-secret-0123456789"),
                Some(&ts.to_string()),
                Some(sig),
                body.as_bytes(),
                ts
            )
            .is_ok()
        );
        let parsed = tollgate_approvals::interaction::parse(body.as_bytes()).expect("parses");
        assert_eq!(parsed.approval(), &a);
        let reject = signed_event(&reject_submission(&a, &who, "no <!here>"), "s", ts);
        let parsed = tollgate_approvals::interaction::parse(
            reject["body"].as_str().expect("body").as_bytes(),
        )
        .expect("parses");
        assert_eq!(parsed.approval(), &a);
    }
}

//! What the endpoint shows in Slack: the request message once decided
//! (its blocks kept, the buttons replaced by the decision), ephemeral
//! answers to the clicker, and the reject-reason modal. Every piece of
//! text that is not ours (names, summaries, reasons) is escaped.

use crate::interaction::ModalMetadata;
use serde_json::{Value, json};
use tollgate_core::approval_request::{ApprovalRef, BLOCK, REASON_INPUT, REJECT_VIEW};
use tollgate_core::text::ellipsize;

/// Escapes Slack mrkdwn control characters (`&`, `<`, `>`): user text
/// cannot mention, link or break out of formatting.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `2026-11-26 10:02 UTC`.
pub fn when(epoch_secs: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(epoch_secs) else {
        return "an unknown time".to_owned();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `pay-prod › Prod › Approve`, escaped.
pub fn approval_name(a: &ApprovalRef) -> String {
    escape(&format!("{} › {} › {}", a.pipeline, a.stage, a.action))
}

/// The request message with its buttons replaced by `outcome` (mrkdwn,
/// already escaped). `blocks` are the message's blocks as Slack returned
/// them (Tollgate's own, already escaped); without them the message is
/// rebuilt from the approval's names.
pub fn decided(blocks: &[Value], approval: &ApprovalRef, outcome: &str) -> Value {
    let mut kept: Vec<Value> = blocks
        .iter()
        .filter(|b| b.get("block_id").and_then(Value::as_str) != Some(BLOCK))
        .take(48)
        .cloned()
        .collect();
    if kept.is_empty() {
        kept.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("Manual approval *{}*", approval_name(approval))}
        }));
    }
    kept.push(json!({
        "type": "section",
        "block_id": "tollgate.approval.outcome",
        "text": {"type": "mrkdwn", "text": ellipsize(outcome, 2900)}
    }));
    json!({
        "text": ellipsize(&format!("{}: {}", approval_name(approval), outcome), 300),
        "blocks": kept,
    })
}

/// Whether `blocks` hold the block `block_id` (an outcome written before).
pub fn has_block(blocks: &[Value], block_id: &str) -> bool {
    blocks
        .iter()
        .any(|b| b.get("block_id").and_then(Value::as_str) == Some(block_id))
}

/// An ECS pause or stage-condition request message decided: its blocks
/// kept (at most 48) without the buttons block and any earlier outcome
/// (`(buttons, outcome_block)`), then `outcome` as the outcome block.
/// `heading` (escaped mrkdwn) stands in for the blocks when Slack sent none;
/// `name` (escaped) prefixes the notification text.
pub fn with_outcome(
    blocks: &[Value],
    (buttons, outcome_block): (&str, &str),
    heading: &str,
    name: &str,
    outcome: &str,
) -> Value {
    let mut kept: Vec<Value> = blocks
        .iter()
        .filter(|b| {
            let id = b.get("block_id").and_then(Value::as_str);
            id != Some(buttons) && id != Some(outcome_block)
        })
        .take(48)
        .cloned()
        .collect();
    if kept.is_empty() {
        kept.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": heading}
        }));
    }
    kept.push(json!({
        "type": "section",
        "block_id": outcome_block,
        "text": {"type": "mrkdwn", "text": ellipsize(outcome, 2900)}
    }));
    json!({
        "text": ellipsize(&format!("{name}: {outcome}"), 300),
        "blocks": kept,
    })
}

/// An answer only the clicker sees, leaving the message as it is.
pub fn ephemeral(text: &str) -> Value {
    json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": ellipsize(text, 2900),
    })
}

/// The reject-reason modal.
pub fn reject_modal(approval: &ApprovalRef, meta: &ModalMetadata) -> Value {
    json!({
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": serde_json::to_string(meta).unwrap_or_default(),
        "title": {"type": "plain_text", "text": "Reject release"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("Reject *{}*?", ellipsize(&approval_name(approval), 2000))}},
            {"type": "input", "block_id": REASON_INPUT, "label": {"type": "plain_text", "text": "Reason (shown in the pipeline and the thread)"},
             "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": true, "min_length": 3, "max_length": crate::interaction::MAX_REASON}}
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decided_keeps_the_request_and_drops_the_buttons() {
        let a = ApprovalRef::new("pay<!channel>", "Prod", "Approve", "e-1");
        let blocks = vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": "Release pay"}}),
            json!({"type": "actions", "block_id": BLOCK, "elements": []}),
        ];
        let v = decided(&blocks, &a, "Approved by <@U0APPROVER>");
        let b = v["blocks"].as_array().expect("blocks");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0]["text"]["text"], "Release pay");
        assert!(!v.to_string().contains("<!channel>"), "{v}");
        let rebuilt = decided(&[], &a, "x");
        assert!(
            rebuilt
                .to_string()
                .contains("pay&lt;!channel&gt; › Prod › Approve"),
            "{rebuilt}"
        );
    }

    #[test]
    fn times_are_utc_minutes() {
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}

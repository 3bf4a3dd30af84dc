//! The approval request the Slack bot posts when a manual approval starts
//! (a CodePipeline action event, category `Approval`, state `STARTED`): in
//! the execution's thread, shown in the channel too, with **Approve** and
//! **Reject** buttons the `approvals` function answers.
//!
//! The buttons follow `tollgate_core::approval_request`: their value names
//! the pipeline, stage, action and execution (and the commit author's
//! e-mail when known), never the approval's token, which the endpoint reads
//! from `GetPipelineState` at click time. Every piece of user text
//! (pipeline, stage and action names, the commit line) is escaped.
//!
//! Not shown yet: the approval's custom data and review link (they are in
//! the pipeline's structure, `GetPipeline`, which the notifier does not
//! read).

use crate::destinations::slack::escape;
use crate::model::{Notification, SourceKind, Status};
use serde_json::{Value, json};
use tollgate_core::approval_request::{APPROVE, ApprovalRef, BLOCK, MAX_VALUE, REJECT};
use tollgate_core::text::ellipsize;

/// How long CodePipeline waits for a manual approval (7 days).
pub const APPROVAL_TIMEOUT_SECS: i64 = 7 * 24 * 3600;

/// The approval this event starts, if it is a manual approval starting.
pub fn approval_of(n: &Notification) -> Option<ApprovalRef> {
    if n.kind != SourceKind::Action || n.status != Status::Started {
        return None;
    }
    let provider = n.facts.iter().find(|f| f.label == "Provider")?;
    if !provider.value.starts_with("Approval") {
        return None;
    }
    let stage = n.route_value("stage")?;
    let action = n.route_value("action")?;
    let execution = n
        .thread
        .as_deref()?
        .strip_prefix(&format!("codepipeline/{}/", n.name))?;
    let r = ApprovalRef::new(&n.name, stage, action, execution);
    (r.encode().chars().count() <= MAX_VALUE).then_some(r)
}

/// The request message for `approval` (a thread reply to `thread_ts` when
/// given), shown in the channel too.
pub fn render(
    n: &Notification,
    approval: &ApprovalRef,
    channel: &str,
    thread_ts: Option<&str>,
) -> Value {
    let name = escape(&format!(
        "{} › {} › {}",
        approval.pipeline, approval.stage, approval.action
    ));
    let mut blocks = vec![json!({
        "type": "section",
        "block_id": "tollgate.approval.request",
        "text": {"type": "mrkdwn", "text": ellipsize(&format!(":raised_hand: Manual approval waiting: *{name}*"), 2900)}
    })];
    let mut context = vec![format!(
        "Execution `{}`",
        escape(&ellipsize(&approval.execution, 100))
    )];
    if let Some(c) = &n.commit {
        let line = c.message.as_deref().unwrap_or(&c.id);
        context.push(format!("Commit {}", escape(&ellipsize(line, 200))));
    }
    if let Some(started) = n.time.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    }) {
        let expires = started.unix_timestamp() + APPROVAL_TIMEOUT_SECS;
        context.push(format!(
            "Expires <!date^{expires}^{{date_short_pretty}} {{time}}|in 7 days>"
        ));
    }
    blocks.push(json!({
        "type": "context",
        "elements": context.into_iter().map(|t| json!({"type": "mrkdwn", "text": t})).collect::<Vec<_>>()
    }));
    let value = approval.encode();
    blocks.push(json!({
        "type": "actions",
        "block_id": BLOCK,
        "elements": [
            {"type": "button", "action_id": APPROVE, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}, "value": value},
            {"type": "button", "action_id": REJECT, "style": "danger",
             "text": {"type": "plain_text", "text": "Reject…"}, "value": value}
        ]
    }));
    let mut v = json!({
        "channel": channel,
        "text": ellipsize(&format!("Manual approval waiting: {name}"), 300),
        "blocks": blocks,
        "unfurl_links": false,
    });
    if let Some(ts) = thread_ts {
        v["thread_ts"] = json!(ts);
        v["reply_broadcast"] = json!(true);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fact;

    fn started() -> Notification {
        let mut n = crate::release::tests::events()
            .into_iter()
            .find(|n| n.kind == SourceKind::Action)
            .expect("an action event");
        n.status = Status::Started;
        n.name = "pay<!channel>".into();
        n.route = vec![
            ("pipeline".into(), "pay<!channel>".into()),
            ("stage".into(), "Prod".into()),
            ("action".into(), "Approve".into()),
        ];
        n.thread = Some("codepipeline/pay<!channel>/exec-1".into());
        n.facts.retain(|f| f.label != "Provider");
        n.facts.push(Fact {
            label: "Provider".into(),
            value: "Approval / Manual".into(),
        });
        n.time = Some("2026-11-26T10:00:00Z".into());
        n
    }

    #[test]
    fn a_starting_manual_approval_gets_buttons_without_its_token() {
        let n = started();
        let a = approval_of(&n).expect("an approval");
        assert_eq!(
            (a.stage.as_str(), a.action.as_str(), a.execution.as_str()),
            ("Prod", "Approve", "exec-1")
        );
        let v = render(&n, &a, "C0123456789", Some("1700000000.000001"));
        // What Slack shows is escaped (a button's value is data, never shown).
        let mut shown = v.clone();
        for b in shown["blocks"][2]["elements"]
            .as_array_mut()
            .expect("buttons")
        {
            b["value"] = json!("");
        }
        let text = shown.to_string();
        assert!(!text.contains("<!channel>"), "escaped: {text}");
        assert_eq!(v["reply_broadcast"], true);
        let buttons = v["blocks"][2]["elements"].as_array().expect("buttons");
        assert_eq!(buttons[0]["action_id"], APPROVE);
        assert_eq!(buttons[1]["action_id"], REJECT);
        let decoded =
            ApprovalRef::decode(buttons[0]["value"].as_str().expect("value")).expect("ref");
        assert_eq!(decoded, a);
        assert!(
            text.contains("<!date^1796292000^"),
            "expiry 7 days after start: {text}"
        );
    }

    #[test]
    fn other_events_get_no_request() {
        let mut n = started();
        n.status = Status::Succeeded;
        assert!(approval_of(&n).is_none());
        let mut n = started();
        n.facts.retain(|f| f.label != "Provider");
        n.facts.push(Fact {
            label: "Provider".into(),
            value: "Build / CodeBuild".into(),
        });
        assert!(approval_of(&n).is_none());
    }
}

//! The ECS pause request the Slack bot posts when an ECS service deployment
//! waits at a `PAUSE` lifecycle hook (`ECS Hook State Change` /
//! `HOOK_AWAITING_ACTION`): in the run's thread, shown in the channel too,
//! with **Continue** and **Roll back** buttons the `approvals` function
//! answers (`ContinueServiceDeployment`).
//!
//! The buttons follow `tollgate_core::ecs_pause_request`: their value is
//! the service deployment ARN, the hook id and the stage, all from the
//! event. Every piece of text from the event is escaped. Roll back asks
//! for a confirmation in Slack before the click is sent.
//!
//! Buttons only where a click can work: the approvals function decides
//! pauses of the services in `TOLLGATE_APPROVAL_ECS_SERVICES` (the
//! template's `ApprovalEcsServices`) and refuses every other. A pause of
//! another service is posted as a notice without buttons, saying it waits
//! in the Amazon ECS console ([`decidable`]).

use crate::destinations::slack::escape;
use crate::model::Notification;
use serde_json::{Value, json};
use tollgate_core::ecs_pause_request::{BLOCK, CONTINUE, PauseRef, ROLLBACK};
use tollgate_core::text::ellipsize;

/// The paused deployment this event asks a decision for, if any.
pub fn pause_of(n: &Notification) -> Option<&PauseRef> {
    n.ecs_pause.as_ref()
}

/// Whether the approvals function may decide `pause`: its service is one
/// of `services` (`<cluster>/<service>`, the configured list).
pub fn decidable(pause: Option<&PauseRef>, services: &[String]) -> bool {
    pause
        .and_then(PauseRef::service_key)
        .is_some_and(|key| services.contains(&key))
}

/// The request message (a thread reply to `thread_ts` when given, shown in
/// the channel too); with Continue / Roll back when
/// [`Notification::ecs_pause_decidable`], else saying where to decide.
pub fn render(n: &Notification, pause: &PauseRef, channel: &str, thread_ts: Option<&str>) -> Value {
    let name = escape(&ellipsize(&n.name, 200));
    let stage = escape(pause.stage.as_deref().unwrap_or("a lifecycle stage"));
    let mut blocks = vec![json!({
        "type": "section",
        "block_id": "tollgate.ecs_pause.request",
        "text": {"type": "mrkdwn", "text": ellipsize(&format!(
            ":double_vertical_bar: ECS deployment paused: *{name}* at `{stage}`, waiting for a decision"), 2900)}
    })];
    let mut context = Vec::new();
    if let Some(id) = pause.arn().map(|a| a.id.to_owned()) {
        context.push(format!("Service deployment `{}`", escape(&id)));
    }
    let expires = n.facts.iter().find(|f| f.label == "Expires").and_then(|f| {
        time::OffsetDateTime::parse(&f.value, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (t, f.value.as_str()))
    });
    if let Some((t, raw)) = expires {
        context.push(format!(
            "Times out <!date^{}^{{date_short_pretty}} {{time}}|at {}>; ECS then takes the hook's timeout action",
            t.unix_timestamp(),
            escape(&ellipsize(raw, 40))
        ));
    }
    if !context.is_empty() {
        blocks.push(json!({
            "type": "context",
            "elements": context.into_iter().map(|t| json!({"type": "mrkdwn", "text": t})).collect::<Vec<_>>()
        }));
    }
    if !n.ecs_pause_decidable {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text":
                "It waits in the Amazon ECS console: continue or roll it back there. (Slack buttons are offered only for the services in ApprovalEcsServices.)"}]
        }));
        return message(&name, &stage, blocks, channel, thread_ts);
    }
    let value = pause.encode();
    blocks.push(json!({
        "type": "actions",
        "block_id": BLOCK,
        "elements": [
            {"type": "button", "action_id": CONTINUE, "style": "primary",
             "text": {"type": "plain_text", "text": "Continue"}, "value": value},
            {"type": "button", "action_id": ROLLBACK, "style": "danger",
             "text": {"type": "plain_text", "text": "Roll back"}, "value": value,
             "confirm": {
                "title": {"type": "plain_text", "text": "Roll back?"},
                // plain_text: the raw name (the mrkdwn escape would show
                // `&lt;` literally), shortened.
                "text": {"type": "plain_text", "text": format!(
                    "ECS rolls {} back to the previous service revision.", ellipsize(&n.name, 150))},
                "confirm": {"type": "plain_text", "text": "Roll back"},
                "deny": {"type": "plain_text", "text": "Cancel"},
                "style": "danger"
             }}
        ]
    }));
    message(&name, &stage, blocks, channel, thread_ts)
}

fn message(
    name: &str,
    stage: &str,
    blocks: Vec<Value>,
    channel: &str,
    thread_ts: Option<&str>,
) -> Value {
    let mut v = json!({
        "channel": channel,
        "text": ellipsize(&format!("ECS deployment paused: {name} at {stage}"), 300),
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
    use crate::events::parse_str;

    fn event(event_name: &str, hook_type: &str) -> Notification {
        let mut v: Value = serde_json::from_str(include_str!(
            "../../../events/notifier/ecs-hook-awaiting-action.json"
        ))
        .expect("fixture");
        v["detail"]["eventName"] = json!(event_name);
        v["detail"]["hookType"] = json!(hook_type);
        v["detail"]["serviceArn"] =
            json!("arn:aws:ecs:us-west-2:123456789012:service/my-cluster/web<!channel>");
        Notification::from_event(&parse_str(&v.to_string()))
    }

    #[test]
    fn a_paused_deployment_gets_continue_and_roll_back() {
        let mut n = event("HOOK_AWAITING_ACTION", "PAUSE");
        n.ecs_pause_decidable = true;
        let p = pause_of(&n).expect("a pause");
        assert_eq!(
            p.hook,
            "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw"
        );
        assert_eq!(p.stage.as_deref(), Some("POST_TEST_TRAFFIC_SHIFT"));
        let v = render(&n, p, "C0123456789", Some("1700000000.000001"));
        assert_eq!(v["reply_broadcast"], true);
        let buttons = v["blocks"][2]["elements"].as_array().expect("buttons");
        assert_eq!(buttons[0]["action_id"], CONTINUE);
        assert_eq!(buttons[1]["action_id"], ROLLBACK);
        assert!(buttons[1]["confirm"].is_object(), "roll back is confirmed");
        let decoded = PauseRef::decode(buttons[0]["value"].as_str().expect("value")).expect("ref");
        assert_eq!(&decoded, p);
        let mut shown = v.clone();
        for b in shown["blocks"][2]["elements"]
            .as_array_mut()
            .expect("buttons")
        {
            b["value"] = json!("");
        }
        // The confirm dialog is plain_text (no markup is parsed there): the
        // raw name, never the mrkdwn escape shown literally.
        let dialog = shown["blocks"][2]["elements"][1]["confirm"]["text"].clone();
        assert_eq!(dialog["type"], "plain_text");
        let dialog = dialog["text"].as_str().expect("dialog text");
        assert!(dialog.contains("web<!channel>"), "{dialog}");
        assert!(!dialog.contains("&lt;"), "{dialog}");
        shown["blocks"][2]["elements"][1]["confirm"]["text"]["text"] = json!("");
        let text = shown.to_string();
        assert!(!text.contains("<!channel>"), "escaped: {text}");
        assert!(text.contains("<!date^1772726681^"), "expiry: {text}");
    }

    #[test]
    fn only_configured_services_get_buttons() {
        let mut n = event("HOOK_AWAITING_ACTION", "PAUSE");
        let p = pause_of(&n).expect("a pause").clone();
        assert_eq!(p.service_key().as_deref(), Some("my-cluster/my-service"));
        let configured = |list: &[&str]| {
            decidable(
                Some(&p),
                &list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            )
        };
        assert!(!configured(&[]));
        assert!(!configured(&["my-cluster/api", "other/my-service"]));
        assert!(configured(&["my-cluster/api", "my-cluster/my-service"]));
        assert!(!decidable(None, &["my-cluster/my-service".to_owned()]));
        // Not configured: the notice, no buttons, where to decide instead.
        n.ecs_pause_decidable = false;
        let v = render(&n, &p, "C0123456789", Some("1700000000.000001"));
        let blocks = v["blocks"].as_array().expect("blocks");
        assert!(
            blocks.iter().all(|b| b["type"] != "actions"),
            "no buttons: {v}"
        );
        let text = v.to_string();
        assert!(text.contains("ECS deployment paused"), "{text}");
        assert!(text.contains("waits in the Amazon ECS console"), "{text}");
        assert!(
            !text.contains(CONTINUE) && !text.contains(ROLLBACK),
            "{text}"
        );
        assert_eq!(v["reply_broadcast"], true, "still shown in the channel");
    }

    #[test]
    fn other_hook_events_ask_nothing() {
        for (name, ty) in [
            ("HOOK_SUCCEEDED", "PAUSE"),
            ("HOOK_TIMED_OUT", "PAUSE"),
            ("HOOK_AWAITING_ACTION", "AWS_LAMBDA"),
        ] {
            assert!(pause_of(&event(name, ty)).is_none(), "{name} {ty}");
        }
    }
}

//! The stage condition request the Slack bot posts when a pipeline
//! execution waits at a stage's entry condition (its rules are still being
//! evaluated): in the execution's thread, shown in the channel too, with an
//! **Override** button the `approvals` function answers
//! (`OverrideStageCondition`).
//!
//! No EventBridge event carries a condition's state, so the enrichment
//! ([`crate::enrich`]) reads `GetPipelineState` once when a stage of a
//! pipeline with overrides on succeeds (or its execution starts), and
//! keeps the entry condition found `InProgress` for this very execution
//! ([`waiting_entry`]). The button follows
//! `tollgate_core::stage_condition_request`. Every piece of text from
//! CodePipeline (stage and rule names, rule summaries) is escaped. Webhook
//! mode cannot carry buttons and posts nothing of this.

use crate::destinations::slack::escape;
use crate::model::Notification;
use serde_json::{Value, json};
use tollgate_core::stage_condition_request::{BLOCK, ConditionKind, ConditionRef, OVERRIDE};
use tollgate_core::text::ellipsize;

/// One stage condition as `GetPipelineState` shows it (the port's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageConditionInfo {
    /// The stage.
    pub stage: String,
    /// Which condition.
    pub kind: ConditionKind,
    /// The execution it is evaluated for (an entry condition: the stage's
    /// inbound execution, else its latest).
    pub execution: Option<String>,
    /// `InProgress`, `Succeeded`, `Failed`, …
    pub status: Option<String>,
    /// Its rules: (name, status, summary).
    pub rules: Vec<(String, Option<String>, Option<String>)>,
}

/// A condition waiting, with what the request shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRequest {
    /// What the button carries.
    pub condition: ConditionRef,
    /// Its rules: (name, status, summary).
    pub rules: Vec<(String, Option<String>, Option<String>)>,
}

impl ConditionRequest {
    /// The key the run's record keeps once the request is posted, so that
    /// the same condition found after another event of the execution is
    /// not posted twice.
    pub fn reply_key(&self) -> String {
        format!(
            "stage-condition:{}:{}",
            self.condition.stage,
            self.condition.kind.api_name()
        )
    }
}

/// The entry condition `InProgress` for `execution` of `pipeline`, if any
/// (the first such stage); `None` when none waits or a name would not fit
/// a button.
pub fn waiting_entry(
    pipeline: &str,
    execution: &str,
    stages: &[StageConditionInfo],
) -> Option<ConditionRequest> {
    let s = stages.iter().find(|s| {
        s.kind == ConditionKind::BeforeEntry
            && s.status.as_deref() == Some("InProgress")
            && s.execution.as_deref() == Some(execution)
    })?;
    let condition = ConditionRef::new(pipeline, &s.stage, execution, ConditionKind::BeforeEntry);
    condition.check().ok()?;
    Some(ConditionRequest {
        condition,
        rules: s.rules.iter().take(5).cloned().collect(),
    })
}

/// The request this notification carries, if any.
pub fn request_of(n: &Notification) -> Option<&ConditionRequest> {
    n.stage_condition.as_ref()
}

/// The request message (a thread reply to `thread_ts` when given, shown in
/// the channel too).
pub fn render(req: &ConditionRequest, channel: &str, thread_ts: Option<&str>) -> Value {
    let c = &req.condition;
    let pipeline = escape(&ellipsize(&c.pipeline, 100));
    let stage = escape(&ellipsize(&c.stage, 100));
    let mut text = format!(
        ":vertical_traffic_light: *{pipeline}*: stage *{stage}* is waiting for its {}",
        c.kind.words()
    );
    for (name, status, summary) in &req.rules {
        let mut line = format!("\n• *{}*", escape(&ellipsize(name, 100)));
        if let Some(s) = status {
            line.push_str(&format!(": {}", escape(&ellipsize(s, 20))));
        }
        if let Some(s) = summary.as_deref().filter(|s| !s.is_empty()) {
            line.push_str(&format!(": {}", escape(&ellipsize(s, 250))));
        }
        text.push_str(&line);
    }
    let blocks = vec![
        json!({
            "type": "section",
            "block_id": "tollgate.stage_condition.request",
            "text": {"type": "mrkdwn", "text": ellipsize(&text, 2900)}
        }),
        json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "Execution `{}`. Override lets this execution in without the condition; CodePipeline records it as Overridden.",
                escape(&c.execution))}]
        }),
        json!({
            "type": "actions",
            "block_id": BLOCK,
            "elements": [{
                "type": "button", "action_id": OVERRIDE, "style": "danger",
                "text": {"type": "plain_text", "text": "Override"},
                "value": c.encode(),
                "confirm": {
                    "title": {"type": "plain_text", "text": "Override the condition?"},
                    // plain_text: the raw names (no markup is parsed there).
                    "text": {"type": "plain_text", "text": ellipsize(&format!(
                        "{} › {} enters without its {} being met.", c.pipeline, c.stage, c.kind.words()), 300)},
                    "confirm": {"type": "plain_text", "text": "Override"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger"
                }
            }]
        }),
    ];
    let mut v = json!({
        "channel": channel,
        "text": ellipsize(&format!("{pipeline}: {stage} is waiting for its {}", c.kind.words()), 300),
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

    const EXEC: &str = "3137f7cb-7cf7-4a54-8e5b-1f2a3b4c5d6e";

    fn info(stage: &str, kind: ConditionKind, exec: &str, status: &str) -> StageConditionInfo {
        StageConditionInfo {
            stage: stage.into(),
            kind,
            execution: Some(exec.into()),
            status: Some(status.into()),
            rules: vec![(
                "NoAlarms<!here>".into(),
                Some("InProgress".into()),
                Some("alarm *pay-5xx* <@U1>".into()),
            )],
        }
    }

    #[test]
    fn only_an_entry_condition_in_progress_for_this_execution_is_offered() {
        let other = "99999999-7cf7-4a54-8e5b-1f2a3b4c5d6e";
        let stages = [
            info("Build", ConditionKind::OnSuccess, EXEC, "InProgress"),
            info("Staging", ConditionKind::BeforeEntry, EXEC, "Succeeded"),
            info("Prod", ConditionKind::BeforeEntry, other, "InProgress"),
            info("Prod2", ConditionKind::BeforeEntry, EXEC, "Failed"),
        ];
        assert_eq!(waiting_entry("pay", EXEC, &stages), None);
        let mut stages = stages.to_vec();
        stages.push(info(
            "Production",
            ConditionKind::BeforeEntry,
            EXEC,
            "InProgress",
        ));
        let r = waiting_entry("pay", EXEC, &stages).expect("waiting");
        assert_eq!(r.condition.stage, "Production");
        assert_eq!(r.condition.kind, ConditionKind::BeforeEntry);
        assert_eq!(
            waiting_entry("pay", "e-1", &stages),
            None,
            "not an execution id"
        );
    }

    #[test]
    fn the_request_has_an_escaped_text_and_a_confirmed_override_button() {
        let stages = [info(
            "Production",
            ConditionKind::BeforeEntry,
            EXEC,
            "InProgress",
        )];
        let r = waiting_entry("pay", EXEC, &stages).expect("waiting");
        let v = render(&r, "C0123456789", Some("1700000000.000001"));
        assert_eq!(v["reply_broadcast"], true);
        let button = &v["blocks"][2]["elements"][0];
        assert_eq!(button["action_id"], OVERRIDE);
        assert!(button["confirm"].is_object(), "override is confirmed");
        let decoded =
            ConditionRef::decode(button["value"].as_str().expect("value")).expect("decodes");
        assert_eq!(decoded, r.condition);
        let text = v["blocks"][0]["text"]["text"].as_str().expect("text");
        assert!(
            text.contains("*Production* is waiting for its entry condition"),
            "{text}"
        );
        assert!(
            !text.contains("<!here>") && !text.contains("<@U1>"),
            "escaped: {text}"
        );
        assert!(text.contains("NoAlarms&lt;!here&gt;"), "{text}");
    }
}

#[cfg(test)]
mod enrich_tests {
    use super::*;
    use crate::enrich::Enricher;
    use crate::events::parse_str;
    use crate::test_fakes::FakeSource;
    use std::time::Duration;
    use tokio::time::Instant;

    const EXEC: &str = "6a7c1e52-0d4b-4f8e-9a3c-2b1d0e9f8a71";

    /// GetPipelineState: Production's entry condition in progress for EXEC.
    fn src() -> FakeSource {
        FakeSource::new().stage_conditions(Ok(vec![StageConditionInfo {
            stage: "Production".into(),
            kind: ConditionKind::BeforeEntry,
            execution: Some(EXEC.into()),
            status: Some("InProgress".into()),
            rules: vec![("NoAlarms".into(), Some("InProgress".into()), None)],
        }]))
    }

    fn event(state: &str) -> crate::events::Event {
        let mut v: Value =
            serde_json::from_str(include_str!("../../../events/notifier/stage-failed.json"))
                .expect("fixture");
        v["detail"]["state"] = json!(state);
        v["detail"]["stage"] = json!("Staging");
        parse_str(&v.to_string())
    }

    #[tokio::test]
    async fn a_stage_success_of_an_override_pipeline_finds_the_next_entry_condition() {
        let e = Enricher::new(src(), Duration::from_secs(2), true)
            .with_stage_overrides(vec!["payments-api".into()]);
        let ev = event("SUCCEEDED");
        assert!(e.may_find_waiting_condition(&ev));
        let mut n = Notification::from_event(&ev);
        e.enrich(&ev, &mut n, Instant::now() + Duration::from_secs(5))
            .await;
        let r = request_of(&n).expect("a request");
        assert_eq!(r.condition.stage, "Production");
        assert_eq!(r.condition.execution, EXEC);
        assert_eq!(e.source().stage_condition_reads(), 1);
        // A failure, or a pipeline without overrides: not read.
        assert!(!e.may_find_waiting_condition(&event("FAILED")));
        let off = Enricher::new(src(), Duration::from_secs(2), true);
        let mut n = Notification::from_event(&ev);
        off.enrich(&ev, &mut n, Instant::now() + Duration::from_secs(5))
            .await;
        assert!(request_of(&n).is_none());
        assert_eq!(off.source().stage_condition_reads(), 0);
    }
}

//! The rehearsal's Slack bot mode (`rehearse --slack bot`): the notifier
//! posts with a bot token through the Slack Web API
//! ([`tollgate_test_support::slack`], the local stand-in with Slack's
//! answers) instead of the webhook sink, keeping its release records in
//! moto's DynamoDB, as `sam deploy` sets it up with `SlackBotToken`.
//!
//! The timeline shows each `chat.postMessage` and `chat.update` of the
//! release's one message (its stage strip as a reader sees it) and every
//! reply in its thread, marking the replies also sent to the channel
//! (`reply_broadcast`). At the end, [`World::show_channel`] prints the
//! final message and its thread in order, as a reader sees the channel.
//!
//! The production deployment's events land in the execution's thread: the
//! rehearsal sends the `Production › BlueGreen` action's `STARTED` event,
//! whose `ListActionExecutions` lists the action in progress with its
//! application and deployment group but without the deployment id (the
//! shape Tollgate cannot rely on CodePipeline to fill in yet; see
//! docs/slack-app.md), so the deployment is tied through its group.

use super::*;
use tollgate_test_support::http::{Request, Stub};
use tollgate_test_support::slack::{BOT_TOKEN, CHANNEL, slack_api};

/// Where the notifier posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SlackMode {
    /// An incoming webhook: one message per event (the chat sink).
    #[default]
    Webhook,
    /// A bot token and the Web API: one live message per release, with
    /// the story in its thread.
    Bot,
}

impl SlackMode {
    /// Added to the scenario's directory name under `target/rehearsal/`.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Webhook => "",
            Self::Bot => "-bot",
        }
    }
}

/// The bot token's secret (Secrets Manager, in moto).
const BOT_SECRET: &str = "tollgate/rehearsal/slack-bot";
/// The notifier's deliveries table (release records), in moto.
const RELEASES_TABLE: &str = "tollgate-rehearsal-releases";
/// The pipeline version the rehearsal's events carry.
const PIPELINE_VERSION: i64 = 14;

/// In bot mode every event counts: it moves the one message.
const BOT_RULES: &str = "version: 1
notify:
  pipeline: [all]
  stage: [all]
  action: [all]
  deployment: [all]
";

/// The bot mode's state in the [`World`].
pub(super) struct Bot {
    /// The Slack Web API stand-in.
    api: Stub,
    /// Requests already shown.
    seen: usize,
}

/// One chat call, reduced to what a reader sees.
struct ChatCall {
    /// `chat.postMessage` or `chat.update`.
    method: &'static str,
    body: Value,
}

impl ChatCall {
    fn from(r: &Request) -> Option<ChatCall> {
        let method = match r.path.as_str() {
            "/api/chat.postMessage" => "chat.postMessage",
            "/api/chat.update" => "chat.update",
            _ => return None,
        };
        Some(ChatCall {
            method,
            body: r.json(),
        })
    }

    /// A reply in a thread (`thread_ts`).
    fn is_reply(&self) -> bool {
        self.method == "chat.postMessage" && self.body.get("thread_ts").is_some()
    }

    fn is_broadcast(&self) -> bool {
        self.body["reply_broadcast"] == json!(true)
    }

    /// The message as a reader sees it.
    fn view(&self) -> Vec<String> {
        sink::slack_text(&self.body)
            .into_iter()
            .map(|l| emoji(&l))
            .collect()
    }
}

/// Slack's emoji codes in the messages, as a reader sees them.
fn emoji(line: &str) -> String {
    [
        (":hourglass_flowing_sand:", "⏳"),
        (":white_check_mark:", "✅"),
        (":x:", "❌"),
        (":rewind:", "⏪"),
        (":fast_forward:", "⏩"),
        (":black_square_for_stop:", "⏹"),
        (":information_source:", "ℹ️"),
        (":warning:", "⚠️"),
    ]
    .iter()
    .fold(line.to_owned(), |l, (code, glyph)| l.replace(code, glyph))
}

/// `GetPipeline` of the rehearsed pipeline: its stages and actions, so
/// the strip shows the stages not reached yet.
fn get_pipeline() -> Value {
    let action = |name: &str, category: &str, provider: &str| {
        json!({"name": name, "runOrder": 1,
               "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"}})
    };
    let lambda = |name: &str| action(name, "Invoke", "Lambda");
    json!({"pipeline": {
        "name": PIPELINE,
        "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/web-release-pipeline"),
        "version": PIPELINE_VERSION,
        "stages": [
            {"name": "Source", "actions": [action("GitHub", "Source", "CodeStarSourceConnection")]},
            {"name": "Build", "actions": [action("Image", "Build", "CodeBuild")]},
            {"name": "Verify", "actions": [lambda("VerifyArtifact")]},
            {"name": "Staging", "actions": [lambda("Migrate"), lambda("DeployStaging"), lambda("SmokeStaging")]},
            {"name": "Production", "actions": [action("BlueGreen", "Deploy", "CodeDeployToECS")]}
        ]
    }})
}

/// A CodePipeline stage execution state change.
fn stage_state(execution_id: &str, stage: &str, state: &str) -> Value {
    let mut ev = events::pipeline_state(PIPELINE, execution_id, state);
    ev["detail-type"] = json!("CodePipeline Stage Execution State Change");
    if let Some(d) = ev["detail"].as_object_mut() {
        d.remove("execution-trigger");
        d.insert("stage".into(), json!(stage));
    }
    ev
}

/// Sets up the bot mode when `mode` asks for it: the Web API stand-in,
/// the bot token in Secrets Manager, the release records table, and
/// `GetPipeline`; replaces the webhook and the rules in `env` (the
/// notifier's environment). `None` in webhook mode.
pub(super) async fn setup(
    mode: SlackMode,
    t: &mut Timeline,
    seed_sdk: &aws_config::SdkConfig,
    standin: &AwsStandIn,
    env: &mut Vec<(&'static str, String)>,
) -> Result<Option<Bot>, RehearsalError> {
    if mode == SlackMode::Webhook {
        return Ok(None);
    }
    let api = slack_api().await;
    aws_sdk_secretsmanager::Client::new(seed_sdk)
        .create_secret()
        .name(BOT_SECRET)
        .secret_string(BOT_TOKEN)
        .send()
        .await
        .map_err(|e| SeedError {
            step: "storing the Slack bot token in Secrets Manager".into(),
            detail: e.to_string(),
        })?;
    seed::delivery_table(seed_sdk, RELEASES_TABLE).await?;
    standin.script("GetPipeline", vec![get_pipeline()]);
    env.retain(|(k, _)| *k != "TOLLGATE_SLACK_WEBHOOK" && *k != "TOLLGATE_NOTIFY_RULES");
    env.extend([
        (
            "TOLLGATE_SLACK_BOT_TOKEN",
            format!("secretsmanager:{BOT_SECRET}"),
        ),
        ("TOLLGATE_SLACK_CHANNEL_ID", CHANNEL.to_owned()),
        ("TOLLGATE_SLACK_API_URL", api.url("/api")),
        ("TOLLGATE_NOTIFY_DEDUPE_TABLE", RELEASES_TABLE.to_owned()),
        ("TOLLGATE_NOTIFY_RULES", BOT_RULES.to_owned()),
    ]);
    t.step(
        "setup",
        &format!(
            "Slack bot mode: the Slack Web API stand-in on {} (auth.test, chat.postMessage, chat.update); the bot token is stored in Secrets Manager as {BOT_SECRET}, the notifier posts to channel {CHANNEL}",
            api.url("")
        ),
    );
    t.detail(&format!(
        "release records (channel, ts, stage strip, replies) in DynamoDB table {RELEASES_TABLE} (moto); the pipeline's stages from GetPipeline (scripted)"
    ));
    Ok(Some(Bot { api, seen: 0 }))
}

/// What the notifier's rules say, for the setup lines.
pub(super) fn rules_line(mode: SlackMode) -> &'static str {
    match mode {
        SlackMode::Webhook => {
            "notifier rules: pipeline started/succeeded/failed, deployment succeeded/failed, failed actions; stage events quiet"
        }
        SlackMode::Bot => {
            "notifier rules: every pipeline, stage, action and deployment event (in bot mode each moves the one message)"
        }
    }
}

impl World {
    /// Bot mode: prints the chat calls the last notification made (each
    /// post and update of the one message, each thread reply). Returns
    /// `false` in webhook mode.
    pub(super) fn show_bot_calls(&mut self, out: &Value) -> bool {
        let Some(bot) = self.bot.as_mut() else {
            return false;
        };
        let requests = bot.api.requests();
        let new: Vec<ChatCall> = requests
            .get(bot.seen..)
            .unwrap_or_default()
            .iter()
            .filter_map(ChatCall::from)
            .collect();
        bot.seen = requests.len();
        if new.is_empty() {
            match out["decision"].as_str() {
                Some("quiet") => {
                    let reason = out["reason"].as_str().unwrap_or("no rule asks for it");
                    self.t
                        .step("notifier", &format!("no change in Slack ({reason})"));
                }
                _ => self.t.step(
                    "notifier",
                    &format!("answered {out}; nothing changed in Slack"),
                ),
            }
        }
        for call in new {
            let what = if call.is_reply() {
                if call.is_broadcast() {
                    "→ Slack chat.postMessage, a reply in its thread, ALSO SENT TO THE CHANNEL (reply_broadcast):"
                } else {
                    "→ Slack chat.postMessage, a reply in its thread:"
                }
            } else if call.method == "chat.update" {
                "→ Slack chat.update: the release's message, updated in place:"
            } else {
                "→ Slack chat.postMessage: the release's one message, posted:"
            };
            self.t.step("notifier", what);
            self.t.quote(&call.view());
            self.saved_slack
                .push(json!({"method": call.method, "body": call.body}));
        }
        true
    }

    /// Bot mode: how many messages and replies, for the result line.
    /// `None` in webhook mode.
    pub(super) fn bot_summary(&self) -> Option<String> {
        let bot = self.bot.as_ref()?;
        let calls: Vec<ChatCall> = bot
            .api
            .requests()
            .iter()
            .filter_map(ChatCall::from)
            .collect();
        let posts = calls
            .iter()
            .filter(|c| c.method == "chat.postMessage" && !c.is_reply())
            .count();
        let updates = calls.iter().filter(|c| c.method == "chat.update").count();
        let replies = calls.iter().filter(|c| c.is_reply()).count();
        let broadcast = calls.iter().filter(|c| c.is_broadcast()).count();
        Some(format!(
            "{posts} Slack message{} (updated {updates} times) with {replies} thread repl{} ({broadcast} also in the channel)",
            if posts == 1 { "" } else { "s" },
            if replies == 1 { "y" } else { "ies" }
        ))
    }

    /// Bot mode: the channel at the end, as a reader sees it: the release's
    /// message in its final state, then its thread in order, the replies
    /// also sent to the channel marked. Nothing in webhook mode.
    pub(super) fn show_channel(&mut self) {
        let Some(bot) = self.bot.as_ref() else {
            return;
        };
        let calls: Vec<ChatCall> = bot
            .api
            .requests()
            .iter()
            .filter_map(ChatCall::from)
            .collect();
        self.t
            .section("The Slack channel at the end, as a reader sees it (bot mode)");
        let parents = calls
            .iter()
            .filter(|c| c.method == "chat.postMessage" && !c.is_reply())
            .count();
        let updates = calls.iter().filter(|c| c.method == "chat.update").count();
        let last = calls.iter().rev().find(|c| !c.is_reply());
        match last {
            Some(message) => {
                self.t.step(
                    "slack",
                    &format!(
                        "the release's message ({parents} posted, updated {updates} times), as it stands:"
                    ),
                );
                self.t.quote(&message.view());
            }
            None => self.t.step("slack", "no message was posted"),
        }
        let replies: Vec<&ChatCall> = calls.iter().filter(|c| c.is_reply()).collect();
        self.t.step(
            "slack",
            &format!(
                "its thread: {} repl{}, in order:",
                replies.len(),
                if replies.len() == 1 { "y" } else { "ies" }
            ),
        );
        for (i, reply) in replies.iter().enumerate() {
            let mark = if reply.is_broadcast() {
                " (also shown in the channel)"
            } else {
                ""
            };
            self.t.step("slack", &format!("reply {}{mark}:", i + 1));
            self.t.quote(&reply.view());
        }
        let in_channel = replies.iter().filter(|r| r.is_broadcast()).count();
        self.t.detail(&format!(
            "the channel shows {parents} message{} and {in_channel} broadcast repl{}; everything else is in the thread",
            if parents == 1 { "" } else { "s" },
            if in_channel == 1 { "y" } else { "ies" }
        ));
    }

    /// Bot mode: the stage events of Source and Build, which the rehearsal
    /// gives rather than runs (their artifacts are seeded), so the strip
    /// shows them done as CodePipeline's own events would. Nothing in
    /// webhook mode.
    pub(super) async fn bot_given_stages(&mut self) -> Result<(), RehearsalError> {
        self.bot_stage_succeeded("Source").await?;
        self.bot_stage_succeeded("Build").await
    }

    /// Bot mode: CodePipeline's stage `SUCCEEDED` event once the stage's
    /// last action succeeded (an action's end alone does not end its stage
    /// in the strip). Nothing in webhook mode.
    pub(super) async fn bot_stage_succeeded(&mut self, stage: &str) -> Result<(), RehearsalError> {
        if self.bot.is_none() {
            return Ok(());
        }
        let ev = stage_state(&self.run.execution_id, stage, "SUCCEEDED");
        self.notify(&format!("stage {stage} SUCCEEDED"), ev).await
    }

    /// Bot mode: the production deploy action starts (its `STARTED`
    /// event), with `ListActionExecutions` listing it in progress with its
    /// application and deployment group and no deployment id yet, so the
    /// deployment's events land in the execution's thread. Nothing in
    /// webhook mode.
    pub(super) async fn bot_deploy_started(&mut self) -> Result<(), RehearsalError> {
        if self.bot.is_none() {
            return Ok(());
        }
        self.bot_stage_succeeded("Staging").await?;
        if let Some(a) = self
            .run
            .actions
            .iter_mut()
            .rev()
            .find(|a| a.stage == "Production" && a.action == "BlueGreen")
        {
            a.configuration = json!({"ApplicationName": self.bg.application,
                "DeploymentGroupName": self.bg.deployment_group,
                "TaskDefinitionTemplateArtifact": "VerifiedOutput",
                "AppSpecTemplateArtifact": "VerifiedOutput"})
            .as_object()
            .cloned()
            .unwrap_or_default();
            a.external_id = None;
        }
        let mut ev = events::action_state(
            PIPELINE,
            &self.run.execution_id,
            &events::ActionChange {
                stage: "Production",
                action: "BlueGreen",
                state: "STARTED",
                kind: ("AWS", "CodeDeployToECS", "Deploy"),
                summary: None,
                external_id: None,
                error_code: None,
            },
        );
        if let Some(d) = ev["detail"].as_object_mut() {
            d.remove("execution-result");
        }
        self.notify("action Production › BlueGreen STARTED", ev)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_codes_read_as_glyphs() {
        assert_eq!(
            emoji(":x: *web-release* release failed at Production"),
            "❌ *web-release* release failed at Production"
        );
        assert_eq!(emoji("no code here"), "no code here");
    }

    #[test]
    fn chat_calls_are_told_apart() {
        let req = |path: &str, body: Value| Request {
            method: "POST".into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: bytes::Bytes::from(body.to_string()),
            base: "http://127.0.0.1:1".into(),
        };
        let post =
            ChatCall::from(&req("/api/chat.postMessage", json!({"text": "a"}))).expect("post");
        assert!(!post.is_reply());
        let reply = ChatCall::from(&req(
            "/api/chat.postMessage",
            json!({"text": "b", "thread_ts": "1.2", "reply_broadcast": true}),
        ))
        .expect("reply");
        assert!(reply.is_reply() && reply.is_broadcast());
        let update =
            ChatCall::from(&req("/api/chat.update", json!({"ts": "1.2"}))).expect("update");
        assert_eq!(update.method, "chat.update");
        assert!(!update.is_reply());
        assert!(ChatCall::from(&req("/api/auth.test", json!({}))).is_none());
    }

    #[test]
    fn stage_events_name_their_stage() {
        let ev = stage_state("exec-1", "Build", "SUCCEEDED");
        assert_eq!(
            ev["detail-type"],
            "CodePipeline Stage Execution State Change"
        );
        assert_eq!(ev["detail"]["stage"], "Build");
        assert_eq!(ev["detail"]["state"], "SUCCEEDED");
        assert!(ev["detail"].get("execution-trigger").is_none());
    }

    #[test]
    fn the_pipeline_lists_every_stage() {
        let p = get_pipeline();
        let stages: Vec<&str> = p["pipeline"]["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(
            stages,
            ["Source", "Build", "Verify", "Staging", "Production"]
        );
    }
}

//! The rehearsal in Slack bot mode (`rehearse --slack bot`): the notifier
//! posts through the Slack Web API stand-in with a bot token from Secrets
//! Manager and keeps its release records in moto's DynamoDB. Whatever the
//! scenario, the release is one message, posted once and updated in place,
//! with the story in its thread; with `--break green` the failures in the
//! thread are also sent to the channel (`reply_broadcast`).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    /// `slack.jsonl`: every Web API chat call, `{"method", "body"}`.
    calls: Vec<Value>,
}

fn rehearse(args: &[&str], slug: &str) -> Run {
    let out_dir: PathBuf = std::env::temp_dir().join(format!(
        "tollgate-rehearsal-test-{}-{slug}",
        std::process::id()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_rehearse"))
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("the rehearse binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap_or(-1);
    eprintln!("--- rehearse {args:?} exited {code}\n{stdout}\n--- stderr\n{stderr}");
    let calls = std::fs::read_to_string(out_dir.join("slack.jsonl"))
        .expect("slack.jsonl was written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON call per line"))
        .collect();
    Run {
        code,
        stdout,
        calls,
    }
}

impl Run {
    fn has(&self, text: &str) {
        assert!(
            self.stdout.contains(text),
            "the timeline should contain {text:?}"
        );
    }

    fn of(&self, method: &str) -> Vec<&Value> {
        self.calls
            .iter()
            .filter(|c| c["method"] == method)
            .map(|c| &c["body"])
            .collect()
    }

    /// `chat.postMessage` calls that start a message (no `thread_ts`).
    fn parents(&self) -> Vec<&Value> {
        self.of("chat.postMessage")
            .into_iter()
            .filter(|b| b.get("thread_ts").is_none())
            .collect()
    }

    /// The thread's replies, in the order they were posted.
    fn replies(&self) -> Vec<&Value> {
        self.of("chat.postMessage")
            .into_iter()
            .filter(|b| b.get("thread_ts").is_some())
            .collect()
    }

    /// Checks shared by the scenarios: one message, updated in place, its
    /// thread on it, the final state in its last update, the channel view.
    fn one_message(&self, final_state: &str) -> Value {
        assert_eq!(self.parents().len(), 1, "one message: {:#?}", self.calls);
        let updates = self.of("chat.update");
        assert!(updates.len() >= 5, "updated as the release moves");
        let ts = updates[0]["ts"].clone();
        assert!(
            updates.iter().all(|u| u["ts"] == ts),
            "every update is of the one message"
        );
        assert!(
            self.replies().iter().all(|r| r["thread_ts"] == ts),
            "every reply is in its thread"
        );
        let last = (*updates.last().expect("updates")).clone();
        let text = last.to_string();
        assert!(text.contains(final_state), "{final_state}: {text}");
        // The timeline shows the message evolving, then the channel.
        self.has("→ Slack chat.postMessage: the release's one message, posted:");
        self.has("→ Slack chat.update: the release's message, updated in place:");
        self.has("── The Slack channel at the end, as a reader sees it (bot mode)");
        self.has("the release's message (1 posted, updated ");
        // The strip as a reader reads it, every stage of the pipeline.
        let strip = regex::Regex::new(r"│ Source ✓ · Build ✓ · Verify.* · Staging.* · Production")
            .expect("regex");
        assert!(strip.is_match(&self.stdout), "the stage strip is shown");
        assert!(
            !self.stdout.contains(":hourglass_flowing_sand:"),
            "emoji read as glyphs"
        );
        last
    }
}

#[test]
fn bot_mode_shows_one_message_evolving_and_its_thread() {
    let run = rehearse(&["--slack", "bot"], "bot-healthy");
    assert_eq!(run.code, 0, "exit code");
    let last = run.one_message("succeeded in");
    let text = last.to_string();
    assert!(
        text.contains("Source ✓ · Build ✓ · Verify ✓ · Staging ✓ · Production ✓"),
        "{text}"
    );
    // The deployment is told in the thread, not in a message of its own;
    // on a healthy release the only reply also sent to the channel is the
    // approval request, which asks the approvers to act.
    let replies = run.replies();
    assert!(
        replies
            .iter()
            .any(|r| r.to_string().contains("deployment succeeded")),
        "{replies:#?}"
    );
    let broadcast: Vec<&&Value> = replies
        .iter()
        .filter(|r| r.get("reply_broadcast").is_some())
        .collect();
    assert_eq!(broadcast.len(), 1, "{broadcast:#?}");
    assert!(
        broadcast[0].to_string().contains("tollgate.approval"),
        "the approval request: {:#}",
        broadcast[0]
    );
    run.has("Slack bot mode: the Slack Web API stand-in on");
    run.has("RELEASED: 1.5.0 (3f9c2ab) is in production; 1 Slack message (updated ");
    run.has("(1 also in the channel)");
    run.has("As expected: the release reaches production (exit code 0)");
    assert!(
        !run.stdout.contains("xoxb-"),
        "the bot token is never printed"
    );
}

#[test]
fn bot_mode_break_green_broadcasts_the_failure_from_the_thread() {
    let run = rehearse(&["--slack", "bot", "--break", "green"], "bot-break-green");
    assert_eq!(run.code, 3, "exit code");
    let last = run.one_message("rolled back (failed at Production)");
    let text = last.to_string();
    assert!(text.contains("Production ✗"), "{text}");
    // The thread, in order: the deployment's failure with the failed
    // checks, then the action's; both also sent to the channel.
    let replies = run.replies();
    let deployment = replies
        .iter()
        .position(|r| r.to_string().contains("deployment failed"))
        .unwrap_or_else(|| panic!("the deployment's failure: {replies:#?}"));
    let action = replies
        .iter()
        .position(|r| {
            r.to_string()
                .contains("action Production › BlueGreen failed")
        })
        .unwrap_or_else(|| panic!("the action's failure: {replies:#?}"));
    assert!(deployment < action, "in the order they happened");
    assert!(
        replies[deployment]
            .to_string()
            .contains("expected 200, got 503"),
        "the failed checks: {:#}",
        replies[deployment]
    );
    for i in [deployment, action] {
        assert_eq!(replies[i]["reply_broadcast"], true, "{:#}", replies[i]);
    }
    run.has("a reply in its thread, ALSO SENT TO THE CHANNEL (reply_broadcast):");
    run.has("(also shown in the channel):");
    run.has("STOPPED at Production › BlueGreen");
    run.has("As expected: the broken green is stopped by the hook and rolled back (exit code 3)");
}

#[test]
fn a_bad_slack_mode_exits_2_with_the_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_rehearse"))
        .args(["--slack", "teams"])
        .output()
        .expect("the rehearse binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--slack takes `bot` or `webhook`"),
        "{stderr}"
    );
    assert!(stderr.contains("usage: rehearse"), "{stderr}");
}

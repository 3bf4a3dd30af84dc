//! `rehearse`: rehearses a whole Tollgate release on loopback, with the real
//! function binaries, moto behind the AWS stand-in, a sample app and a chat
//! sink, and prints the timeline. `scripts/rehearse` builds everything and
//! runs it; the logic is in `tollgate_tests::rehearsal`.
//!
//! ```text
//! rehearse                 # a healthy release: exit 0
//! rehearse --break green   # the green task set is broken: the hook stops it, exit 3
//! rehearse --break migration  # the migration task exits 1: the pipeline stops, exit 4
//! rehearse --break metrics    # green's 5xx rate rises: the metric gate rolls it back, exit 5
//! rehearse --reject        # the approver rejects in Slack: the pipeline stops, exit 6
//! rehearse --slack bot     # the notifier posts with a bot token: one live message per release
//! ```
//!
//! Exit codes: 0 released, 3 stopped by a failed hook and rolled back (what
//! `--break green` must produce), 4 stopped by the failed migration before
//! anything was deployed (what `--break migration` must produce), 5 failed by
//! the metric gate during the bake and rolled back (what `--break metrics`
//! must produce), 6 rejected in Slack at the approval (what `--reject` must
//! produce), 1 the
//! rehearsal went wrong or ended other than its scenario expects, 2 bad
//! arguments.

use std::path::PathBuf;
use tollgate_tests::paths;
use tollgate_tests::rehearsal::{self, EXIT_PROBLEM, EXIT_USAGE, Scenario, SlackMode};

const USAGE: &str =
    "usage: rehearse [--break green|migration|metrics | --reject] [--slack webhook|bot] [--out DIR]

Rehearses a whole release on loopback (no AWS account, no Docker): CodePipeline
runs verify-artifact, a migration task (run-task), ecs-deploy and a staging
smoke test through the real
pipeline-action binary; a manual approval decided by a signed Slack click
through the real approvals binary (its function URL); a CodeDeploy blue/green
deployment runs the AfterAllowTestTraffic, BeforeAllowTraffic and
AfterAllowTraffic hooks through deploy-hook, AfterAllowTraffic with a metric
gate (green's 5xx rate against blue's, in moto's CloudWatch) baked through the
gate queue (moto's SQS); the
notifier renders every state change to a local Slack sink.

  --break green   make the green task set answer like a broken release: the
                  hook fails on its checks, the deployment is rolled back,
                  and the notifications say which hook failed
  --break migration
                  make the migration task exit 1: the pipeline stops at
                  Staging › Migrate with the container, exit code and last
                  log lines, in the failure and in Slack; nothing is deployed
  --break metrics green passes its smoke checks, but its 5xx rate rises
                  during the bake: the metric gate fails, production goes
                  back to blue, and Slack says which measurement failed and
                  by how much
  --reject        the approver clicks Reject in Slack and gives a reason in
                  the dialog: approvals records the rejection
                  (PutApprovalResult), the pipeline stops at
                  Approval › Release, and the failure messages show the
                  reason; nothing is deployed
  --slack bot     post with a Slack bot token through the Web API (a local
                  stand-in) instead of the webhook: one live message per
                  release, updated in place, the story in its thread,
                  failures also sent to the channel; the timeline shows
                  each post and update, and at the end the channel as a
                  reader sees it
  --slack webhook one message per event through an incoming webhook (default)
  --out DIR       where to write function logs, Slack payloads and AWS calls
                  (default: target/rehearsal/<scenario>, <scenario>-bot with
                  --slack bot)

Function binaries: target/release/<function>, or $TOLLGATE_BIN_DIR/<function>.
Set TOLLGATE_ECHO_LOGS=1 to echo the functions' logs to stderr.

Exit codes: 0 released; 3 stopped by the failed hook and rolled back (the
expected outcome of --break green); 4 stopped by the failed migration before
anything was deployed (the expected outcome of --break migration); 5 failed by
the metric gate during the bake and rolled back (the expected outcome of
--break metrics); 6 rejected in Slack at the approval (the expected outcome of
--reject); 1 the rehearsal went wrong or did not end as its scenario expects;
2 bad arguments.";

#[derive(Debug)]
struct Args {
    scenario: Scenario,
    slack: SlackMode,
    out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut scenario = Scenario::Healthy;
    let mut slack = SlackMode::default();
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--break" => match it.next().map(String::as_str) {
                Some("green") => scenario = Scenario::BrokenGreen,
                Some("migration") => scenario = Scenario::BrokenMigration,
                Some("metrics") => scenario = Scenario::BrokenMetrics,
                Some(other) => {
                    return Err(format!(
                        "--break takes `green`, `migration` or `metrics` (the parts that can be broken), not {other:?}"
                    ));
                }
                None => return Err("--break needs a value: --break green".to_owned()),
            },
            "--break=green" => scenario = Scenario::BrokenGreen,
            "--break=migration" => scenario = Scenario::BrokenMigration,
            "--break=metrics" => scenario = Scenario::BrokenMetrics,
            "--slack" => {
                slack = slack_mode(it.next().map(String::as_str))?;
            }
            s if s.starts_with("--slack=") => {
                slack = slack_mode(s.strip_prefix("--slack="))?;
            }
            "--reject" => scenario = Scenario::Rejected,
            "--out" => match it.next() {
                Some(dir) => out = Some(PathBuf::from(dir)),
                None => return Err("--out needs a directory".to_owned()),
            },
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args {
        scenario,
        slack,
        out,
    }))
}

fn slack_mode(value: Option<&str>) -> Result<SlackMode, String> {
    match value {
        Some("bot") => Ok(SlackMode::Bot),
        Some("webhook") => Ok(SlackMode::Webhook),
        Some(other) => Err(format!(
            "--slack takes `bot` or `webhook` (how the notifier posts), not {other:?}"
        )),
        None => Err("--slack needs a value: --slack bot".to_owned()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("rehearse: {e}\n\n{USAGE}");
            std::process::exit(EXIT_USAGE);
        }
    };
    let out_dir = args.out.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| paths::workspace_root().join("target"))
            .join("rehearsal")
            .join(format!("{}{}", args.scenario.slug(), args.slack.suffix()))
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rehearse: cannot start the async runtime: {e}");
            std::process::exit(EXIT_PROBLEM);
        }
    };
    // A panic (e.g. a missing function binary or virtualenv, whose message
    // says what to run) is a rehearsal problem, not a crash code.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(rehearsal::run_with(
            args.scenario,
            args.slack,
            &out_dir,
            Box::new(std::io::stdout()),
        ))
    }));
    let code = match outcome {
        Ok(Ok(verdict)) => rehearsal::exit_code(args.scenario, &verdict),
        Ok(Err(e)) => {
            eprintln!("\nrehearse: the rehearsal could not finish: {e}");
            EXIT_PROBLEM
        }
        Err(_) => {
            eprintln!("\nrehearse: the rehearsal stopped (see the message above)");
            EXIT_PROBLEM
        }
    };
    // The functions, moto and the servers stop when the runtime is dropped.
    drop(runtime);
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        let a = parse(&args(&[])).expect("ok").expect("args");
        assert_eq!(a.scenario, Scenario::Healthy);
        let a = parse(&args(&["--break", "green", "--out", "/tmp/x"]))
            .expect("ok")
            .expect("args");
        assert_eq!(a.scenario, Scenario::BrokenGreen);
        assert_eq!(a.out, Some(PathBuf::from("/tmp/x")));
        assert!(parse(&args(&["--help"])).expect("ok").is_none());
        let a = parse(&args(&["--break", "migration"]))
            .expect("ok")
            .expect("args");
        assert_eq!(a.scenario, Scenario::BrokenMigration);
        for form in [&["--break", "metrics"][..], &["--break=metrics"][..]] {
            let a = parse(&args(form)).expect("ok").expect("args");
            assert_eq!(a.scenario, Scenario::BrokenMetrics);
        }
        assert!(
            parse(&args(&["--break", "blue"]))
                .expect_err("blue")
                .contains("`metrics`")
        );
        assert!(
            parse(&args(&["--break", "blue"]))
                .expect_err("blue")
                .contains("green")
        );
        assert!(parse(&args(&["--frobnicate"])).is_err());
        assert_eq!(a.slack, SlackMode::Webhook, "webhook by default");
        let a = parse(&args(&["--slack", "bot", "--break", "green"]))
            .expect("ok")
            .expect("args");
        assert_eq!(
            (a.scenario, a.slack),
            (Scenario::BrokenGreen, SlackMode::Bot)
        );
        let a = parse(&args(&["--slack=webhook"]))
            .expect("ok")
            .expect("args");
        assert_eq!(a.slack, SlackMode::Webhook);
        let a = parse(&args(&["--slack=bot"])).expect("ok").expect("args");
        assert_eq!(a.slack, SlackMode::Bot);
        assert!(
            parse(&args(&["--slack", "teams"]))
                .expect_err("teams")
                .contains("`bot` or `webhook`")
        );
        assert!(parse(&args(&["--slack"])).is_err());
        let a = parse(&args(&["--reject", "--out", "/tmp/r"]))
            .expect("ok")
            .expect("args");
        assert_eq!(a.scenario, Scenario::Rejected);
        assert_eq!(a.out, Some(PathBuf::from("/tmp/r")));
    }
}

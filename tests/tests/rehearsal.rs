//! The local rehearsal (`scripts/rehearse`) as an integration test: the
//! `rehearse` binary is run healthy, with `--break green`, with
//! `--break migration` and with `--break metrics`, and its exit
//! code, the key lines of its timeline and the files it writes are checked.
//!
//! Exit codes: 0 when the release reaches production, 3 when the failed hook
//! stops and rolls it back (the defined outcome of `--break green`), 4 when
//! the failed migration stops the pipeline (`--break migration`), 5 when
//! the metric gate fails green during the bake and it is rolled back
//! (`--break metrics`), 6 when the approver rejects the release in Slack
//! (`--reject`), 1 when
//! the rehearsal goes wrong or ends otherwise, 2 for bad arguments.

use regex::Regex;
use std::path::PathBuf;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    out_dir: PathBuf,
}

fn rehearse(args: &[&str], slug: &str) -> Run {
    let out_dir = std::env::temp_dir().join(format!(
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
    Run {
        code,
        stdout,
        out_dir,
    }
}

impl Run {
    fn has(&self, text: &str) {
        assert!(
            self.stdout.contains(text),
            "the timeline should contain {text:?}"
        );
    }

    fn lacks(&self, text: &str) {
        assert!(
            !self.stdout.contains(text),
            "the timeline should not contain {text:?}"
        );
    }

    /// Lines of the Slack messages as printed (after the `│` quote mark).
    fn slack_lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix('│'))
            .map(|l| l.trim().to_owned())
            .collect()
    }

    /// The step lines' timestamps, in order.
    fn timestamps(&self) -> Vec<f64> {
        let step = Regex::new(r"^  \+\s*(\d+\.\d\d)s  \S").expect("regex");
        self.stdout
            .lines()
            .filter_map(|l| step.captures(l))
            .map(|c| c[1].parse().expect("a number"))
            .collect()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.out_dir.join(name))
            .unwrap_or_else(|e| panic!("{name} was not written: {e}"))
    }

    /// Checks shared by both scenarios: the pipeline part, the layout, the files.
    fn common(&self) {
        // verify-artifact read the artifact from moto S3 with the job's credentials.
        self.has("Verify › VerifyArtifact (verify-artifact)");
        self.has("artifact BuildOutput verified: imagedefinitions.json, imageDetail.json, taskdef.json, appspec.yaml");
        self.has("S3 calls were signed with the job's artifact credentials (ASIATOLLGATEEXAMPLE1), not the function's role");
        // ecs-deploy: moto for register/update, then continuation re-invocations with progress.
        self.has("RegisterTaskDefinition, UpdateService, PutJobSuccessResult");
        self.has("re-invokes Staging › DeployStaging with the continuation token");
        self.has("IN PROGRESS 33%");
        self.has("IN PROGRESS 66%");
        self.has("web: 3/3 tasks on new revision web:2; rollout completed");
        self.has("DescribeServices (scripted)");
        // smoke against staging.
        self.has("Staging › SmokeStaging (smoke)");
        self.has("2/2 passed");
        // Hook discovery through CodeDeploy and ELBv2.
        self.has("GetDeployment, ListDeploymentTargets (scripted), GetDeploymentTarget (scripted), GetDeploymentGroup, DescribeListeners, DescribeLoadBalancers, ");
        // The pipeline start was rendered as text, not JSON.
        let slack = self.slack_lines();
        assert!(
            slack
                .iter()
                .any(|l| l.ends_with("web-release: pipeline started")),
            "{slack:#?}"
        );
        assert!(
            slack
                .iter()
                .all(|l| !l.starts_with('{') && !l.contains("\"blocks\"")),
            "Slack messages are shown as text: {slack:#?}"
        );
        assert!(
            slack
                .iter()
                .any(|l| l.starts_with("Commit 3f9c2ab Show order history"))
        );
        // One line per step, timestamps relative to the start, in order.
        let times = self.timestamps();
        assert!(times.len() > 30, "{} step lines", times.len());
        assert!(times[0] < 30.0);
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        // The output files.
        for log in ["pipeline-action.log", "deploy-hook.log", "notifier.log"] {
            assert!(
                self.file(log).contains("\"level\""),
                "{log} holds JSON log lines"
            );
        }
        assert!(self.file("aws-calls.txt").contains("PutJobSuccessResult"));
        assert_eq!(self.file("timeline.txt").trim(), self.stdout.trim());
        assert!(
            !self.stdout.contains("rehearsalWebhookSecretPath"),
            "the webhook URL's secret path is not printed"
        );
    }
}

#[test]
fn a_healthy_release_reaches_production() {
    let run = rehearse(&[], "healthy");
    assert_eq!(run.code, 0, "exit code");
    run.common();
    run.has("Verify › VerifyArtifact (verify-artifact), job");
    // The migration ran before the staging deploy and exited 0.
    run.has("Staging › Migrate (run-task), job");
    run.has("succeeded after 38s: migrate exited 0; statuses seen: RUNNING → STOPPED");
    run.has("AfterAllowTestTraffic passed: PutLifecycleEventHookExecutionStatus Succeeded");
    run.has("BeforeAllowTraffic passed: PutLifecycleEventHookExecutionStatus Succeeded");
    run.has("AllowTraffic: production listener");
    // The metric gate baked through the queue and passed: green's 5xx rate
    // stayed within blue's + 0.5 points in each of its three measurements.
    run.has("AfterAllowTraffic: smoke checks passed against production; the metric gate starts its bake");
    for n in 1..=3 {
        run.has(&format!("measurement {n} of 3: successful"));
    }
    run.has("SQS event source mapping: delivers the gate ticket to deploy-hook");
    run.has("AfterAllowTraffic passed: PutLifecycleEventHookExecutionStatus Succeeded");
    // The approval: a forged click refused, the signed click approves.
    run.has("HTTP 401: the signature does not match the app's signing secret");
    run.has("HTTP 200: PutApprovalResult Approved: \"Approved in Slack by ana (U0REHEARSAL1)\"");
    run.has("Approval › Release approved: Approved in Slack by ana (U0REHEARSAL1)");
    let slack = run.slack_lines();
    for title in [
        "web-release: pipeline started",
        "web-prod-app/web-prod-dg: deployment succeeded",
        "web-release: pipeline succeeded",
    ] {
        assert!(
            slack.iter().any(|l| l.ends_with(title)),
            "{title}: {slack:#?}"
        );
    }
    assert!(!slack.iter().any(|l| l.contains("failed")), "{slack:#?}");
    let prod = Regex::new(
        r"production listener :\d+ → green: GET /health 200 .*\x22version\x22:\x221\.5\.0\x22",
    )
    .expect("regex");
    assert!(prod.is_match(&run.stdout), "production serves green 1.5.0");
    // Passing hooks record nothing.
    run.has("DescribeLoadBalancers, PutLifecycleEventHookExecutionStatus");
    run.lacks("PutParameter");
    // The notifier announces the waiting approval (one more message).
    assert!(
        slack
            .iter()
            .any(|l| l.ends_with("web-release: action Approval › Release started")),
        "{slack:#?}"
    );
    run.has("RELEASED: 1.5.0 (3f9c2ab) is in production; 4 Slack messages");
    run.has("As expected: the release reaches production (exit code 0)");
    assert_eq!(run.file("slack.jsonl").lines().count(), 4);
}

#[test]
fn a_broken_green_is_stopped_by_the_hook_and_rolled_back() {
    let run = rehearse(&["--break", "green"], "break-green");
    assert_eq!(run.code, 3, "exit code");
    run.common();
    // The hook fails with the failed expectations.
    run.has("AfterAllowTestTraffic FAILED: PutLifecycleEventHookExecutionStatus Failed");
    run.has("- status: expected 200, got 503");
    run.has("- json $.status: expected equals \"ok\", got \"degraded\"");
    run.has("- status: expected 200, got 500");
    // It leaves them in SSM for the notifier before it reports.
    run.has("DescribeLoadBalancers, PutParameter, PutLifecycleEventHookExecutionStatus");
    // CodeDeploy stops: no later hook, production never switched.
    run.has("AfterAllowTestTraffic reported Failed: deployment");
    run.lacks("BeforeAllowTraffic: invokes");
    run.lacks("AllowTraffic: production listener");
    let prod = Regex::new(
        r"production listener :\d+ → blue: GET /health 200 .*\x22version\x22:\x221\.4\.2\x22",
    )
    .expect("regex");
    assert!(
        prod.is_match(&run.stdout),
        "production still serves blue 1.4.2"
    );
    // The notifications say what failed and that it was rolled back.
    let slack = run.slack_lines();
    let at = |title: &str| {
        slack
            .iter()
            .position(|l| l.ends_with(title))
            .unwrap_or_else(|| panic!("no Slack message {title:?}: {slack:#?}"))
    };
    let deployment = at("web-prod-app/web-prod-dg: deployment failed (rolled back)");
    let reason = &slack[deployment + 1..deployment + 3].join(" ");
    assert!(
        reason.contains("HOOK_EXECUTION_FAILURE") && reason.contains("AfterAllowTestTraffic"),
        "{reason}"
    );
    // ...and which checks failed: deploy-hook's record, read back from SSM.
    let next = slack[deployment + 1..]
        .iter()
        .position(|l| {
            l.contains(": deployment ") || l.contains(": action ") || l.contains(": pipeline ")
        })
        .map_or(slack.len(), |i| deployment + 1 + i);
    let message = &slack[deployment..next];
    let checks = message
        .iter()
        .position(|l| l == "Failed checks (AfterAllowTestTraffic):")
        .unwrap_or_else(|| panic!("no failed checks section: {message:#?}"));
    let section = message[checks + 1..].join("\n");
    for expectation in [
        "- status: expected 200, got 503",
        "- json $.status: expected equals \"ok\", got \"degraded\"",
        "- status: expected 200, got 500",
    ] {
        assert!(section.contains(expectation), "{expectation}: {message:#?}");
    }
    let action = at("web-release: action Production › BlueGreen failed");
    assert!(
        slack[action + 1].starts_with("Reason: Deployment"),
        "{}",
        slack[action + 1]
    );
    let pipeline = at("web-release: pipeline failed");
    assert!(
        slack[pipeline + 1].starts_with("Reason: Production › BlueGreen failed")
            && slack[pipeline + 1].contains("AfterAllowTestTraffic"),
        "{}",
        slack[pipeline + 1]
    );
    assert!(!slack.iter().any(|l| l.ends_with("pipeline succeeded")));
    run.has("STOPPED at Production › BlueGreen: AfterAllowTestTraffic failed: 0/2 smoke checks passed against green; rolled back; production stays on blue");
    run.has("As expected: the broken green is stopped by the hook and rolled back (exit code 3)");
    // Four messages, and the approval waiting before production.
    assert_eq!(run.file("slack.jsonl").lines().count(), 5);
}

#[test]
fn a_failed_migration_stops_the_pipeline_before_anything_is_deployed() {
    let run = rehearse(&["--break", "migration"], "break-migration");
    assert_eq!(run.code, 4, "exit code");
    // run-task registered the build's migration task definition, once, and ran it.
    run.has("Staging › Migrate (run-task), job");
    run.has("RegisterTaskDefinition, RunTask, PutJobSuccessResult");
    run.has("re-invokes Staging › Migrate with the continuation token");
    run.has("statuses seen: RUNNING → STOPPED");
    // The failure names the container, the exit code, ECS's reason and the log lines.
    run.has("PutJobFailureResult, FAILED (JobFailed)");
    run.has("failed: essential container migrate exited with code 1; stopped reason: Essential container in task exited (EssentialContainerExited)");
    run.has("Last 8 log lines of migrate (group /ecs/web-migrate, stream ecs/migrate/");
    run.has("| ERROR: relation \"order_history\" does not exist (SQLSTATE 42P01)");
    // The override's environment value is never shown.
    run.has("| migrate: acquired migration lock ***");
    run.lacks("rehearsal-lock-7f3a9c51");
    // The pipeline stopped there: no staging rollout, no smoke test, no production deployment.
    run.lacks("Staging › DeployStaging");
    run.lacks("UpdateService");
    run.lacks("Staging › SmokeStaging");
    run.lacks("CodeDeploy blue/green deployment");
    let prod = Regex::new(
        r"production listener :\d+ → blue: GET /health 200 .*\x22version\x22:\x221\.4\.2\x22",
    )
    .expect("regex");
    assert!(
        prod.is_match(&run.stdout),
        "production still serves blue 1.4.2"
    );
    // Slack: the failed action and the failed pipeline, with the exit code and the log lines.
    let slack = run.slack_lines();
    let at = |title: &str| {
        slack
            .iter()
            .position(|l| l.ends_with(title))
            .unwrap_or_else(|| panic!("no Slack message {title:?}: {slack:#?}"))
    };
    let action = at("web-release: action Staging › Migrate failed");
    let message = slack[action..].join("\n");
    assert!(
        message.contains("essential container migrate exited with code 1"),
        "{message}"
    );
    assert!(
        message.contains("ERROR: relation \"order_history\" does not exist"),
        "{message}"
    );
    assert!(!message.contains("rehearsal-lock-7f3a9c51"), "{message}");
    at("web-release: pipeline failed");
    assert!(!slack.iter().any(|l| l.ends_with("pipeline succeeded")));
    run.has("STOPPED at Staging › Migrate: task ");
    run.has("As expected: the failed migration stops the pipeline before anything is deployed (exit code 4)");
    assert!(!run.file("slack.jsonl").contains("rehearsal-lock-7f3a9c51"));
    assert!(
        !run.file("pipeline-action.log")
            .contains("rehearsal-lock-7f3a9c51")
    );
}

#[test]
fn a_rising_5xx_rate_fails_the_metric_gate_and_rolls_back() {
    let run = rehearse(&["--break", "metrics"], "break-metrics");
    assert_eq!(run.code, 5, "exit code");
    run.common();
    // Green passes its smoke checks at every hook, production moves to it.
    run.has("AfterAllowTestTraffic passed: PutLifecycleEventHookExecutionStatus Succeeded");
    run.has("BeforeAllowTraffic passed: PutLifecycleEventHookExecutionStatus Succeeded");
    run.has("AllowTraffic: production listener");
    run.has("AfterAllowTraffic: smoke checks passed against production; the metric gate starts its bake");
    // Each ticket comes through moto's SQS and takes one measurement from
    // moto's CloudWatch (metric math by the stand-in).
    run.has("the gate ticket is delayed 2s (DelaySeconds): no invocation waits for it");
    run.has("SQS event source mapping: delivers the gate ticket to deploy-hook");
    run.has("GetMetricData ×2, SendMessage");
    run.has("measurement 1 of 3: successful");
    let failed = Regex::new(
        r"measurement 2 of 3: failed\n\s+5xx rate 4\.167 % > 0\.722 % \(baseline 0\.222 % \+ 0\.5\)",
    )
    .expect("regex");
    assert!(
        failed.is_match(&run.stdout),
        "the failed measurement, by how much"
    );
    run.lacks("measurement 3 of 3");
    run.has("AfterAllowTraffic FAILED: PutLifecycleEventHookExecutionStatus Failed");
    // The failure is left in SSM for the notifier before the report.
    run.has("GetMetricData ×2, PutParameter, PutLifecycleEventHookExecutionStatus");
    // CodeDeploy rolls back: production goes back to blue.
    run.has("AfterAllowTraffic reported Failed: deployment");
    let prod = Regex::new(
        r"production listener :\d+ → blue: GET /health 200 .*\x22version\x22:\x221\.4\.2\x22",
    )
    .expect("regex");
    assert!(
        prod.is_match(&run.stdout),
        "production is back on blue 1.4.2"
    );
    // Slack: the deployment's failure names the measurement and by how much.
    let slack = run.slack_lines();
    let at = |title: &str| {
        slack
            .iter()
            .position(|l| l.ends_with(title))
            .unwrap_or_else(|| panic!("no Slack message {title:?}: {slack:#?}"))
    };
    let deployment = at("web-prod-app/web-prod-dg: deployment failed (rolled back)");
    let message = slack[deployment..].join("\n");
    assert!(
        message.contains("Metric gate failed (AfterAllowTraffic)"),
        "{message}"
    );
    assert!(
        message
            .contains("5xx rate 4.167 % > 0.722 % (baseline 0.222 % + 0.5) in 1 of 2 measurements"),
        "{message}"
    );
    assert!(
        message.contains(
            "Last measurement (2 of 3) failed: 5xx rate 4.167 % > 0.722 % (baseline 0.222 % + 0.5)"
        ),
        "{message}"
    );
    at("web-release: action Production › BlueGreen failed");
    at("web-release: pipeline failed");
    assert!(!slack.iter().any(|l| l.ends_with("pipeline succeeded")));
    run.has("STOPPED at Production › BlueGreen: AfterAllowTraffic failed: metric gate failed: 5xx rate 4.167 %");
    run.has("rolled back; production stays on blue");
    run.has("As expected: the metric gate fails green's rising 5xx rate during the bake and the deployment is rolled back (exit code 5)");
}

#[test]
fn a_rejection_in_slack_stops_the_pipeline_with_the_reason() {
    let run = rehearse(&["--reject"], "reject");
    assert_eq!(run.code, 6, "exit code");
    // The pipeline waited at the approval after staging.
    run.has("Staging › SmokeStaging (smoke)");
    run.has("Approval › Release: manual approval, waiting for a decision");
    // A forged click changes nothing; the signed Reject opens the dialog,
    // and its submission rejects with the reason, once.
    run.has("HTTP 401: the signature does not match the app's signing secret; nothing was read or decided");
    run.has("ana (U0REHEARSAL1) clicks Reject…");
    run.has("views.open: the reason dialog opens; nothing is decided before the reason");
    let reason = "staging shows slow order history pages; needs a fix first";
    run.has(&format!(
        "HTTP 200: PutApprovalResult Rejected: \"Rejected in Slack by ana (U0REHEARSAL1): {reason}\""
    ));
    run.has("GetPipelineState (scripted), ListActionExecutions (scripted), PutApprovalResult");
    run.has("→ Slack chat.update of the request message:");
    run.has("audit line: who=U0REHEARSAL1 what=reject result=rejected");
    // The pipeline stopped there: nothing deployed to production.
    run.lacks("CodeDeploy blue/green deployment");
    run.lacks("AllowTraffic: production listener");
    let prod = Regex::new(
        r"production listener :\d+ → blue: GET /health 200 .*\x22version\x22:\x221\.4\.2\x22",
    )
    .expect("regex");
    assert!(
        prod.is_match(&run.stdout),
        "production still serves blue 1.4.2"
    );
    // The notifications carry the reason.
    let slack = run.slack_lines();
    let failed = slack
        .iter()
        .position(|l| l.ends_with("web-release: pipeline failed"))
        .unwrap_or_else(|| panic!("no pipeline failed message: {slack:#?}"));
    assert!(
        slack[..].join("\n").contains(reason),
        "the reason is in the Slack messages: {slack:#?}"
    );
    assert!(failed > 0);
    run.has(&format!(
        "STOPPED at Approval › Release: Rejected in Slack by ana (U0REHEARSAL1): {reason}"
    ));
    run.has("As expected: the approver's rejection in Slack stops the pipeline at the approval (exit code 6)");
    let log = run.file("approvals.log");
    assert!(log.contains("\"audit\":\"approval\""), "{log}");
    assert!(
        !log.contains("rehearsal-signing-secret"),
        "no secret in the log"
    );
    assert!(!log.contains("payload="), "no body in the log");
}

#[test]
fn bad_arguments_exit_2_with_the_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_rehearse"))
        .args(["--break", "blue"])
        .output()
        .expect("the rehearse binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--break takes `green`"), "{stderr}");
    assert!(stderr.contains("usage: rehearse"), "{stderr}");
}

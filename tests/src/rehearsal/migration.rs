//! Staging › Migrate: before the staging deploy, `run-task` registers the
//! build's migration task definition (`migrations/taskdef.json` in
//! BuildOutput, its `<IMAGE1_NAME>` filled from imageDetail.json), runs it
//! once in the staging cluster with the migration command, and waits for
//! it with continuation tokens.
//!
//! moto starts the task (RUNNING) but does not run it: the next states
//! (RUNNING, then STOPPED with the exit code) are scripted on the stand-in, and
//! for `--break migration` the container's last log lines are written to
//! moto's CloudWatch Logs stream where the awslogs driver would have put
//! them. Everything else (RegisterTaskDefinition, RunTask with the job's
//! `startedBy`, the liveness check, DescribeTaskDefinition, GetLogEvents)
//! is the real function against moto.

use super::pipeline::{JobReport, in_progress_token, job_event};
use super::*;

/// Where the migration container logs (awslogs driver).
const LOG_GROUP: &str = "/ecs/web-migrate";
/// A value given in the overrides' environment: the failure shows `***`.
const LOCK_TOKEN: &str = "rehearsal-lock-7f3a9c51";

/// The build's migration task definition.
pub(super) fn migration_taskdef() -> String {
    json!({
        "family": "web-migrate",
        "containerDefinitions": [{
            "name": "migrate",
            "image": "<IMAGE1_NAME>",
            "essential": true,
            "command": ["bin/migrate", "--status"],
            "memory": 512,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": LOG_GROUP,
                "awslogs-region": REGION,
                "awslogs-stream-prefix": "ecs"}}
        }],
        "tags": [{"key": "app", "value": "web"}]
    })
    .to_string()
}

/// What the failed migration printed last.
fn failed_migration_log() -> Vec<String> {
    [
        "migrate: connecting to orders-db.staging (pool 2)",
        &format!("migrate: acquired migration lock {LOCK_TOKEN}"),
        "migrate: 3 pending migrations",
        "migrate: applying 20251118_add_order_history_index ... ok (0.41 s)",
        "migrate: applying 20251120_backfill_order_history ...",
        "ERROR: relation \"order_history\" does not exist (SQLSTATE 42P01)",
        "migrate: 20251120_backfill_order_history failed; its transaction was rolled back",
        "migrate: released migration lock; exiting with status 1",
    ]
    .iter()
    .map(|l| (*l).to_owned())
    .collect()
}

impl World {
    /// Runs Staging › Migrate; `Some` when the pipeline stops there.
    pub(super) async fn migrate(&mut self) -> Result<Option<Verdict>, RehearsalError> {
        let params = json!({"action": "run-task", "cluster": STAGING_CLUSTER,
            "task_definition_file": "migrations/taskdef.json", "artifact": "BuildOutput",
            "image_placeholder": "IMAGE1_NAME", "image_policy": {"pin": "digest-or-sha-tag"},
            "launch_type": "FARGATE",
            "network": {"subnets": ["subnet-0a1b2c3d"], "security_groups": ["sg-0a1b2c3d"]},
            "overrides": {"migrate": {"command": ["bin/migrate", "--yes"],
                "environment": {"MIGRATION_LOCK_TOKEN": LOCK_TOKEN}}},
            "timeout_minutes": 20});
        let event = job_event("run-task", &params, &["BuildOutput"], &[], None);
        let mut report = self.job("Staging", "Migrate", event).await?;
        if let Some(token) = in_progress_token(&report) {
            let parsed: Value = serde_json::from_str(&token).unwrap_or(Value::Null);
            let task = parsed["task"].as_str().unwrap_or_default().to_owned();
            let task_definition = self
                .standin
                .calls_of("RunTask")
                .last()
                .and_then(|c| c.request["taskDefinition"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let failed = self.scenario == Scenario::BrokenMigration;
            if failed {
                self.seed_migration_log(&task).await?;
            }
            let now = seed::epoch_secs();
            let state = |last: &str, exit: Option<i64>| {
                let stopped = last == "STOPPED";
                let mut container = json!({"name": "migrate", "lastStatus": last});
                if let Some(code) = exit {
                    container["exitCode"] = json!(code);
                }
                let mut t = json!({
                    "taskArn": task, "taskDefinitionArn": task_definition,
                    "clusterArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{STAGING_CLUSTER}"),
                    "lastStatus": last, "desiredStatus": if stopped { "STOPPED" } else { "RUNNING" },
                    "startedBy": "", "launchType": "FARGATE",
                    "createdAt": now, "containers": [container]
                });
                if last == "RUNNING" || stopped {
                    t["startedAt"] = json!(now);
                }
                if stopped {
                    t["stoppedAt"] = json!(now + 38);
                    t["stopCode"] = json!("EssentialContainerExited");
                    t["stoppedReason"] = json!("Essential container in task exited");
                }
                json!({"tasks": [t], "failures": []})
            };
            self.standin.script(
                "DescribeTasks",
                vec![
                    state("RUNNING", None),
                    state("STOPPED", Some(i64::from(failed))),
                ],
            );
            self.t.detail(
                "task states from here on are scripted on the stand-in (moto starts no container)",
            );
            let mut token = token;
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.t.step(
                    "codepipeline",
                    "re-invokes Staging › Migrate with the continuation token",
                );
                let event = job_event(
                    "run-task-continuation",
                    &params,
                    &["BuildOutput"],
                    &[],
                    Some(&token),
                );
                report = self.job("Staging", "Migrate", event).await?;
                match in_progress_token(&report) {
                    Some(next) => token = next,
                    None => break,
                }
            }
        }
        if let JobReport::Success { token: Some(_), .. } = report {
            self.t
                .detail("the migration task never stopped within the rehearsal's polls");
        }
        self.action_done("Staging", "Migrate", &params, &report)
            .await
    }

    /// The failed container's output, where the awslogs driver writes it
    /// (`<prefix>/<container>/<task id>` in moto's CloudWatch Logs).
    async fn seed_migration_log(&mut self, task: &str) -> Result<(), RehearsalError> {
        let id = task.rsplit('/').next().unwrap_or(task);
        let stream = format!("ecs/migrate/{id}");
        let logs = |target: &str| format!("Logs_20140328.{target}");
        // The group exists once per moto: a second rehearsal on the same one finds it.
        let _ = seed::moto_json(
            &self.moto,
            "logs",
            &logs("CreateLogGroup"),
            &json!({"logGroupName": LOG_GROUP}),
        )
        .await;
        seed::moto_json(
            &self.moto,
            "logs",
            &logs("CreateLogStream"),
            &json!({"logGroupName": LOG_GROUP, "logStreamName": stream}),
        )
        .await?;
        let now = i64::try_from(seed::epoch_secs()).unwrap_or(0) * 1000;
        let events: Vec<Value> = failed_migration_log()
            .into_iter()
            .zip(0_i64..)
            .map(|(message, i)| json!({"timestamp": now + i, "message": message}))
            .collect();
        seed::moto_json(
            &self.moto,
            "logs",
            &logs("PutLogEvents"),
            &json!({"logGroupName": LOG_GROUP, "logStreamName": stream, "logEvents": events}),
        )
        .await?;
        self.t.detail(&format!(
            "the migration's output is in moto's CloudWatch Logs: group {LOG_GROUP}, stream {stream} ({} lines)",
            failed_migration_log().len()
        ));
        Ok(())
    }
}

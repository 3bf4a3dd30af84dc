//! Phase 1: the CodePipeline execution. Source and Build are given (their
//! artifacts are seeded); `verify-artifact`, the migration `run-task`
//! ([`super::migration`]), `ecs-deploy` (with its
//! continuation re-invocations) and `smoke` against staging run through the
//! real pipeline-action; then the manual approval, decided by a signed
//! Slack click through the real approvals function ([`super::approval`]);
//! then the production deployment
//! ([`super::production`]); every state change goes to the notifier.

use super::*;

/// What one pipeline-action invocation reported.
#[derive(Debug, Clone)]
pub(super) enum JobReport {
    Success {
        summary: String,
        percent: Option<i64>,
        token: Option<String>,
        variables: Map<String, Value>,
    },
    Failure {
        kind: String,
        message: String,
    },
}

impl World {
    /// Runs the pipeline execution, production deployment included;
    /// returns how the release ended. A failed action stops the pipeline,
    /// as CodePipeline does.
    pub(super) async fn release(&mut self) -> Result<Verdict, RehearsalError> {
        self.t.section(&format!(
            "1. CodePipeline {PIPELINE}, execution {}",
            self.run.execution_id
        ));
        self.run.record(action_run(
            "Source",
            "GitHub",
            ("AWS", "CodeStarSourceConnection", "Source"),
            RunStatus::Succeeded,
            Some(
                json!({"ProviderType": "GitHub", "CommitMessage": self.run.commit.message})
                    .to_string(),
            ),
        ));
        if let Some(source) = self.run.actions.last_mut() {
            source.external_id = Some(self.run.commit.id.clone());
            source.output_variables = json!({"BranchName": "main", "CommitId": self.run.commit.id,
                "CommitMessage": self.run.commit.message, "FullRepositoryName": "acme/web"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        }
        self.run.record(action_run(
            "Build",
            "Image",
            ("AWS", "CodeBuild", "Build"),
            RunStatus::Succeeded,
            Some(format!("built and pushed {}", image(TAG))),
        ));
        let ev = events::pipeline_state(PIPELINE, &self.run.execution_id, "STARTED");
        self.notify("pipeline STARTED", ev).await?;
        self.t.step(
            "codepipeline",
            &format!(
                "Source › GitHub: acme/web@main {TAG} \"{}\" → SourceOutput",
                self.run.commit.message
            ),
        );
        self.t.step(
            "codepipeline",
            &format!("Build › Image: {} → BuildOutput", image(TAG)),
        );
        self.t
            .detail("(both given: their artifacts were seeded above)");
        self.bot_given_stages().await?;

        // Verify.
        let params = json!({"action": "verify-artifact", "artifact": "BuildOutput",
            "expected_containers": ["web"], "image_placeholder": "IMAGE1_NAME",
            "image_policy": {"pin": "digest-or-sha-tag"}, "output_artifact": "VerifiedOutput",
            "fill_image": true});
        let event = job_event(
            "verify-artifact",
            &params,
            &["BuildOutput"],
            &["VerifiedOutput"],
            None,
        );
        let report = self.job("Verify", "VerifyArtifact", event).await?;
        if let Some(v) = self
            .action_done("Verify", "VerifyArtifact", &params, &report)
            .await?
        {
            return Ok(v);
        }
        // Staging: migrate the database, roll out, then smoke-test.
        self.bot_stage_succeeded("Verify").await?;
        if let Some(v) = self.migrate().await? {
            return Ok(v);
        }
        let input = self.verified_input().await?;
        let params = json!({"action": "ecs-deploy", "cluster": STAGING_CLUSTER,
            "service": SERVICE, "wait_timeout_minutes": 30});
        let report = self.ecs_deploy(&params, input).await?;
        if let Some(v) = self
            .action_done("Staging", "DeployStaging", &params, &report)
            .await?
        {
            return Ok(v);
        }
        let params = json!({"action": "smoke", "spec_path": "checks/staging.yaml",
            "vars": {"TARGET": self.staging.url()}});
        let event = job_event("smoke", &params, &["SourceOutput"], &[], None);
        let report = self.job("Staging", "SmokeStaging", event).await?;
        if let Some(v) = self
            .action_done("Staging", "SmokeStaging", &params, &report)
            .await?
        {
            return Ok(v);
        }

        // Approval: a person decides in Slack (super::approval).
        if let Some(v) = self.approval().await? {
            return Ok(v);
        }

        // Production: CodeDeploy blue/green with the hooks.
        let verdict = self.blue_green().await?;
        if verdict != Verdict::Released {
            return Ok(verdict);
        }
        self.bot_stage_succeeded("Production").await?;
        self.run.status = RunStatus::Succeeded;
        self.run.updated = events::now();
        let ev = events::pipeline_state(PIPELINE, &self.run.execution_id, "SUCCEEDED");
        self.notify("pipeline SUCCEEDED", ev).await?;
        Ok(Verdict::Released)
    }

    /// Which artifact ecs-deploy reads: VerifiedOutput when verify-artifact
    /// wrote the image definitions into it.
    pub(super) async fn verified_input(&mut self) -> Result<&'static str, RehearsalError> {
        let s3 = seed::s3_client(&self.seed_sdk);
        let bytes = seed::get_bytes(&s3, BUCKET, artifact_key("VerifiedOutput")).await?;
        let names = seed::zip_names(&bytes);
        let input = if names.iter().any(|n| n == "imagedefinitions.json") {
            "VerifiedOutput"
        } else {
            "BuildOutput"
        };
        self.t.step(
            "codepipeline",
            &format!(
                "VerifiedOutput holds {}: Staging › DeployStaging reads {input}",
                names.join(", ")
            ),
        );
        Ok(input)
    }

    /// ecs-deploy: the first invocation registers and updates; CodePipeline
    /// re-invokes with the continuation token until the rollout is done.
    /// Rollout states come from the stand-in (moto runs no tasks).
    pub(super) async fn ecs_deploy(
        &mut self,
        params: &Value,
        input: &'static str,
    ) -> Result<JobReport, RehearsalError> {
        let event = job_event("ecs-deploy", params, &[input], &[], None);
        let mut report = self.job("Staging", "DeployStaging", event).await?;
        let Some(token) = in_progress_token(&report) else {
            return Ok(report);
        };
        let parsed: Value = serde_json::from_str(&token).unwrap_or(Value::Null);
        let deployment = parsed["deployment"].as_str().unwrap_or_default().to_owned();
        let task_definition = parsed["taskDefinition"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let rollout = |state: &str, running: i64| {
            seed::service_answer(&seed::Rollout {
                cluster: STAGING_CLUSTER,
                service: SERVICE,
                deployment: &deployment,
                task_definition: &task_definition,
                state,
                desired: 3,
                running,
                failed: 0,
                reason: if state == "COMPLETED" {
                    "ECS deployment completed."
                } else {
                    "ECS deployment in progress."
                },
            })
        };
        self.standin.script(
            "DescribeServices",
            vec![
                rollout("IN_PROGRESS", 1),
                rollout("IN_PROGRESS", 2),
                rollout("COMPLETED", 3),
            ],
        );
        self.t.detail(
            "ECS rollout states from here on are scripted on the stand-in (moto starts no tasks)",
        );
        let mut token = token;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.t.step(
                "codepipeline",
                "re-invokes Staging › DeployStaging with the continuation token",
            );
            let event = job_event(
                "ecs-deploy-continuation",
                params,
                &[input],
                &[],
                Some(&token),
            );
            report = self.job("Staging", "DeployStaging", event).await?;
            match in_progress_token(&report) {
                Some(next) => token = next,
                None => break,
            }
        }
        Ok(report)
    }

    /// One pipeline-action invocation for `stage › action`: exactly one
    /// report, printed with its summary, variables and AWS calls.
    pub(super) async fn job(
        &mut self,
        stage: &str,
        action: &str,
        mut event: Value,
    ) -> Result<JobReport, RehearsalError> {
        let id = events::uuid_like();
        event["CodePipeline.job"]["id"] = json!(id);
        let name = event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]
            ["UserParameters"]
            .as_str()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p["action"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let credentials_key =
            event["CodePipeline.job"]["data"]["artifactCredentials"]["accessKeyId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        self.standin.register_job(&id);
        let what = format!("{stage} › {action} ({name}), job {}", short(&id));
        let outcome = self.pipeline_action.invoke(event, INVOKE_DEADLINE).await;
        self.expect_response("pipeline-action", &what, &outcome)?;
        let reports = self.standin.reports_for(&id);
        let report = match reports.as_slice() {
            [Report::JobSuccess { request, .. }] => JobReport::Success {
                summary: request["executionDetails"]["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                percent: request["executionDetails"]["percentComplete"].as_i64(),
                token: request["continuationToken"].as_str().map(str::to_owned),
                variables: request["outputVariables"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            [
                Report::JobFailure {
                    failure_type,
                    message,
                    ..
                },
            ] => JobReport::Failure {
                kind: failure_type.clone(),
                message: message.clone(),
            },
            other => {
                return Err(RehearsalError::Reports {
                    what,
                    id,
                    count: other.len(),
                    reports: format!("{other:?}"),
                });
            }
        };
        match &report {
            JobReport::Success {
                summary,
                percent,
                token: Some(_),
                ..
            } => {
                let p = percent.map(|p| format!(" {p}%")).unwrap_or_default();
                self.t.step(
                    "pipeline-action",
                    &format!("{what}: PutJobSuccessResult, IN PROGRESS{p}"),
                );
                self.t.detail(summary);
            }
            JobReport::Success {
                summary, variables, ..
            } => {
                self.t.step(
                    "pipeline-action",
                    &format!("{what}: PutJobSuccessResult, SUCCEEDED"),
                );
                self.t.detail(summary);
                if !variables.is_empty() {
                    let vars: Vec<String> = variables
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    self.t
                        .detail(&format!("output variables: {}", vars.join(", ")));
                }
            }
            JobReport::Failure { kind, message } => {
                self.t.step(
                    "pipeline-action",
                    &format!("{what}: PutJobFailureResult, FAILED ({kind})"),
                );
                self.t.detail(message);
            }
        }
        let calls = self.new_calls();
        self.t
            .detail(&format!("AWS calls: {}", describe_calls(&calls)));
        let s3: Vec<&Call> = calls
            .iter()
            .filter(|c| c.operation.starts_with("s3:"))
            .collect();
        if !s3.is_empty() {
            let all_job = s3
                .iter()
                .all(|c| c.access_key_id.as_deref() == Some(credentials_key.as_str()));
            self.t.detail(&if all_job {
                format!(
                    "S3 calls were signed with the job's artifact credentials ({credentials_key}), not the function's role"
                )
            } else {
                "S3 calls were NOT all signed with the job's artifact credentials".to_owned()
            });
        }
        Ok(report)
    }

    /// Records the final report of a pipeline action, sends its state
    /// change, and stops the pipeline when it failed.
    pub(super) async fn action_done(
        &mut self,
        stage: &str,
        action: &str,
        params: &Value,
        report: &JobReport,
    ) -> Result<Option<Verdict>, RehearsalError> {
        let mut run = action_run(
            stage,
            action,
            ("AWS", "Lambda", "Invoke"),
            RunStatus::Succeeded,
            None,
        );
        run.configuration = json!({"FunctionName": "tollgate-pipeline-action",
            "UserParameters": params.to_string()})
        .as_object()
        .cloned()
        .unwrap_or_default();
        let (state, summary, error_code) = match report {
            JobReport::Success {
                summary, variables, ..
            } => {
                run.summary = Some(summary.clone());
                run.output_variables = variables.clone();
                ("SUCCEEDED", summary.clone(), None)
            }
            JobReport::Failure { kind, message } => {
                run.status = RunStatus::Failed;
                run.error = Some((kind.clone(), message.clone()));
                run.summary = Some(message.clone());
                ("FAILED", message.clone(), Some(kind.as_str()))
            }
        };
        self.run.record(run);
        let ev = events::action_state(
            PIPELINE,
            &self.run.execution_id,
            &events::ActionChange {
                stage,
                action,
                state,
                kind: ("AWS", "Lambda", "Invoke"),
                summary: Some(&summary),
                external_id: None,
                error_code,
            },
        );
        self.notify(&format!("action {stage} › {action} {state}"), ev)
            .await?;
        if state == "SUCCEEDED" {
            return Ok(None);
        }
        self.fail_pipeline().await?;
        Ok(Some(Verdict::Stopped {
            stage: stage.to_owned(),
            action: action.to_owned(),
            reason: summary,
            rolled_back: false,
        }))
    }

    pub(super) async fn fail_pipeline(&mut self) -> Result<(), RehearsalError> {
        self.run.status = RunStatus::Failed;
        self.run.updated = events::now();
        let ev = events::pipeline_state(PIPELINE, &self.run.execution_id, "FAILED");
        self.notify("pipeline FAILED", ev).await
    }
}

/// A CodePipeline job event from the sample `sample`, with these
/// UserParameters, input and output artifacts, and continuation token.
pub(super) fn job_event(
    sample: &str,
    params: &Value,
    inputs: &[&str],
    outputs: &[&str],
    token: Option<&str>,
) -> Value {
    let mut ev = paths::event("pipeline-action", sample);
    let job = &mut ev["CodePipeline.job"];
    job["accountId"] = json!(ACCOUNT);
    let data = &mut job["data"];
    data["actionConfiguration"]["configuration"]["UserParameters"] = json!(params.to_string());
    data["actionConfiguration"]["configuration"]["FunctionName"] =
        json!("tollgate-pipeline-action");
    let artifact = |name: &str| {
        json!({"name": name, "revision": null, "location": {"type": "S3",
            "s3Location": {"bucketName": BUCKET, "objectKey": artifact_key(name)}}})
    };
    data["inputArtifacts"] = Value::Array(inputs.iter().map(|n| artifact(n)).collect());
    data["outputArtifacts"] = Value::Array(outputs.iter().map(|n| artifact(n)).collect());
    data["encryptionKey"] = json!({"id": KMS_KEY, "type": "KMS"});
    match token {
        Some(t) => data["continuationToken"] = json!(t),
        None => {
            if let Some(obj) = data.as_object_mut() {
                obj.remove("continuationToken");
            }
        }
    }
    ev
}

pub(super) fn action_run(
    stage: &str,
    action: &str,
    kind: (&str, &str, &str),
    status: RunStatus,
    summary: Option<String>,
) -> ActionRun {
    let now = events::now();
    ActionRun {
        stage: stage.to_owned(),
        action: action.to_owned(),
        kind: (kind.0.to_owned(), kind.1.to_owned(), kind.2.to_owned()),
        status,
        summary,
        external_id: None,
        error: None,
        output_variables: Map::new(),
        configuration: Map::new(),
        started: now,
        updated: now,
    }
}

pub(super) fn in_progress_token(report: &JobReport) -> Option<String> {
    match report {
        JobReport::Success { token, .. } => token.clone(),
        JobReport::Failure { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_events_point_at_this_runs_artifacts() {
        let ev = job_event(
            "ecs-deploy-continuation",
            &json!({"action": "ecs-deploy"}),
            &["VerifiedOutput"],
            &[],
            Some("tok"),
        );
        let data = &ev["CodePipeline.job"]["data"];
        assert_eq!(data["inputArtifacts"][0]["name"], "VerifiedOutput");
        assert_eq!(
            data["inputArtifacts"][0]["location"]["s3Location"]["objectKey"],
            "web-release/VerifiedOu/Hk3pW9c"
        );
        assert_eq!(data["continuationToken"], "tok");
        let ev = job_event("ecs-deploy-continuation", &json!({}), &[], &[], None);
        assert!(
            ev["CodePipeline.job"]["data"]
                .get("continuationToken")
                .is_none()
        );
    }
}

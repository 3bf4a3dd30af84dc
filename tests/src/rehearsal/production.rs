//! Phase 2: the production CodeDeploy blue/green deployment. The
//! deployment is created in moto; the rehearsal plays CodeDeploy: it
//! re-points the loopback listeners, shows each hook in progress on the
//! deployment target, invokes the real deploy-hook for
//! `AfterAllowTestTraffic`, `BeforeAllowTraffic` and `AfterAllowTraffic`
//! (its metric gate is in [`super::metrics`]), and on a failed hook
//! stops, rolls back and records why, as CodeDeploy does.

use super::pipeline::action_run;
use super::*;

impl World {
    /// The blue/green deployment, from creation to success or rollback.
    pub(super) async fn blue_green(&mut self) -> Result<Verdict, RehearsalError> {
        self.t.section(&format!(
            "2. Production: CodeDeploy blue/green deployment of {PROD_CLUSTER}/{SERVICE} ({} / {})",
            self.bg.application, self.bg.deployment_group
        ));
        let s3 = seed::s3_client(&self.seed_sdk);
        let verified = seed::get_bytes(&s3, BUCKET, artifact_key("VerifiedOutput")).await?;
        let spec = seed::unzip_file(&verified, "appspec.yaml").unwrap_or_else(appspec);
        let deployment_id = seed::create_deployment(
            &self.seed_sdk,
            &self.bg.application,
            &self.bg.deployment_group,
            &spec,
        )
        .await?;
        self.run.record(action_run(
            "Production",
            "BlueGreen",
            ("AWS", "CodeDeployToECS", "Deploy"),
            RunStatus::InProgress,
            None,
        ));
        self.t.step(
            "codedeploy",
            &format!(
                "Production › BlueGreen (CodeDeployToECS) created deployment {deployment_id} in moto from VerifiedOutput's appspec.yaml"
            ),
        );
        self.bot_deploy_started().await?;
        self.t.step(
            "codedeploy",
            &format!(
                "Install: green task set {GREEN_TASK_SET} 2/2 running ({})",
                self.green.label()
            ),
        );
        self.test_listener.route_to(&self.green);
        self.t.step(
            "codedeploy",
            &format!(
                "AllowTestTraffic: test listener :{} → {}; production :{} stays on {}",
                self.test_listener.port(),
                self.test_listener.routes_to(),
                self.prod_listener.port(),
                self.prod_listener.routes_to()
            ),
        );
        for (hook, sample) in [
            (
                "AfterAllowTestTraffic",
                "codedeploy-after-allow-test-traffic",
            ),
            ("BeforeAllowTraffic", "codedeploy-before-allow-traffic"),
        ] {
            let (status, why) = self.hook(&deployment_id, hook, sample).await?;
            if status != "Succeeded" {
                return self.roll_back(&deployment_id, hook, &why).await;
            }
        }
        self.prod_listener.route_to(&self.green);
        self.t.step(
            "codedeploy",
            &format!(
                "AllowTraffic: production listener :{} → {}",
                self.prod_listener.port(),
                self.prod_listener.routes_to()
            ),
        );
        if let Some(v) = self.after_allow_traffic(&deployment_id).await? {
            return Ok(v);
        }
        self.t.step(
            "codedeploy",
            &format!("deployment {deployment_id} Succeeded; blue task set {BLUE_TASK_SET} drained"),
        );
        self.script_deployment(&deployment_id, "Succeeded", None)
            .await?;
        let ev = events::deployment_state(
            &self.bg.application,
            &self.bg.deployment_group,
            &deployment_id,
            "SUCCESS",
        );
        self.notify(&format!("deployment {deployment_id} SUCCESS"), ev)
            .await?;
        let mut run = action_run(
            "Production",
            "BlueGreen",
            ("AWS", "CodeDeployToECS", "Deploy"),
            RunStatus::Succeeded,
            Some(format!("Deployment {deployment_id} succeeded")),
        );
        run.external_id = Some(deployment_id.clone());
        self.run.record(run);
        let ev = events::action_state(
            PIPELINE,
            &self.run.execution_id,
            &events::ActionChange {
                stage: "Production",
                action: "BlueGreen",
                state: "SUCCEEDED",
                kind: ("AWS", "CodeDeployToECS", "Deploy"),
                summary: Some(&format!("Deployment {deployment_id} succeeded")),
                external_id: Some(&deployment_id),
                error_code: None,
            },
        );
        self.notify("action Production › BlueGreen SUCCEEDED", ev)
            .await?;
        Ok(Verdict::Released)
    }

    /// One CodeDeploy lifecycle hook invocation: the target shows `hook` in
    /// progress. Prints the hook's own message (from its log, where
    /// CloudWatch Logs would show it); returns the reported status and a
    /// one-line reason.
    pub(super) async fn hook(
        &mut self,
        deployment_id: &str,
        hook: &str,
        sample: &str,
    ) -> Result<(String, String), RehearsalError> {
        self.script_hook_target(deployment_id, hook);
        let execution = self.start_hook(deployment_id, hook, sample).await?;
        let what = format!("{hook} of {deployment_id}");
        let reports = self.standin.reports_for(&execution);
        let status = match reports.as_slice() {
            [Report::Hook { status, .. }] => status.clone(),
            other => {
                return Err(RehearsalError::Reports {
                    what,
                    id: execution,
                    count: other.len(),
                    reports: format!("{other:?}"),
                });
            }
        };
        let records = self.new_log_records("deploy-hook");
        let message = records
            .iter()
            .find(|r| r.event() == Some("hook outcome"))
            .and_then(|r| r.message_field().map(str::to_owned))
            .unwrap_or_else(|| "(no outcome in the log)".to_owned());
        let checks = records
            .iter()
            .find(|r| r.event() == Some("smoke checks finished"))
            .and_then(|r| r.text("checks"))
            .and_then(|c| serde_json::from_str::<Value>(&c).ok());
        let why = match checks {
            Some(c) => format!(
                "{hook} failed: {}/{} smoke checks passed against green",
                c["passed"].as_u64().unwrap_or(0),
                c["total"].as_u64().unwrap_or(0)
            ),
            None => format!("{hook} failed: {}", first_line(&message)),
        };
        let word = if status == "Succeeded" {
            "passed"
        } else {
            "FAILED"
        };
        self.t.step(
            "deploy-hook",
            &format!("{hook} {word}: PutLifecycleEventHookExecutionStatus {status}"),
        );
        self.t.detail(&message);
        let calls = self.new_calls();
        self.t
            .detail(&format!("AWS calls: {}", describe_calls(&calls)));
        Ok((status, why))
    }

    /// Scripts the deployment target CodeDeploy shows while `hook` runs
    /// (moto lacks the calls).
    pub(super) fn script_hook_target(&self, deployment_id: &str, hook: &str) {
        let target = seed::EcsTarget {
            deployment_id,
            cluster: PROD_CLUSTER,
            service: SERVICE,
            in_progress: hook,
            target_groups: "web-prod",
            blue_task_set: BLUE_TASK_SET,
            green_task_set: GREEN_TASK_SET,
            green: seed::TaskSetCounts {
                desired: 2,
                running: 2,
                pending: 0,
            },
        };
        self.standin.script(
            "ListDeploymentTargets",
            vec![seed::list_targets_answer(&target)],
        );
        self.standin.script(
            "GetDeploymentTarget",
            vec![seed::ecs_target_answer(&target)],
        );
    }

    /// Invokes deploy-hook for `hook` (the event from the sample `sample`);
    /// returns the hook execution id.
    pub(super) async fn start_hook(
        &mut self,
        deployment_id: &str,
        hook: &str,
        sample: &str,
    ) -> Result<String, RehearsalError> {
        let mut event = paths::event("deploy-hook", sample);
        let execution = format!("{hook}-{}", events::uuid_like());
        event["DeploymentId"] = json!(deployment_id);
        event["LifecycleEventHookExecutionId"] = json!(execution);
        self.standin.register_hook(deployment_id, &execution);
        self.t.step(
            "codedeploy",
            &format!("{hook}: invokes CodeDeployHook_tollgate"),
        );
        let what = format!("{hook} of {deployment_id}");
        let outcome = self.deploy_hook.invoke(event, INVOKE_DEADLINE).await;
        self.expect_response("deploy-hook", &what, &outcome)?;
        Ok(execution)
    }

    /// A failed hook: CodeDeploy stops, rolls back, and says why; the
    /// pipeline's deploy action and the pipeline fail.
    pub(super) async fn roll_back(
        &mut self,
        deployment_id: &str,
        hook: &str,
        why: &str,
    ) -> Result<Verdict, RehearsalError> {
        self.test_listener.route_to(&self.blue);
        self.t.step(
            "codedeploy",
            &format!("{hook} reported Failed: deployment {deployment_id} stops and rolls back"),
        );
        // After AllowTraffic, production is on green: rolling back moves it back.
        let production = if self.prod_listener.routes_to() == "blue" {
            self.t.detail("the later hooks and AllowTraffic do not run");
            "never left"
        } else {
            self.prod_listener.route_to(&self.blue);
            "is back on"
        };
        self.t.detail(&format!(
            "test listener :{} → {}; production :{} {production} {}; green task set {GREEN_TASK_SET} removed",
            self.test_listener.port(),
            self.test_listener.routes_to(),
            self.prod_listener.port(),
            self.prod_listener.routes_to()
        ));
        let error = format!(
            "The deployment failed because the {hook} lifecycle hook failed: Lambda function CodeDeployHook_tollgate reported Failed."
        );
        let rollback = format!(
            "Rolled back: production traffic stays on the original task set {BLUE_TASK_SET}."
        );
        self.script_deployment(
            deployment_id,
            "Failed",
            Some(("HOOK_EXECUTION_FAILURE", &error, &rollback)),
        )
        .await?;
        let ev = events::deployment_state(
            &self.bg.application,
            &self.bg.deployment_group,
            deployment_id,
            "FAILURE",
        );
        self.notify(&format!("deployment {deployment_id} FAILURE"), ev)
            .await?;
        let summary = format!("Deployment {deployment_id} failed. HOOK_EXECUTION_FAILURE: {error}");
        let mut run = action_run(
            "Production",
            "BlueGreen",
            ("AWS", "CodeDeployToECS", "Deploy"),
            RunStatus::Failed,
            Some(summary.clone()),
        );
        run.external_id = Some(deployment_id.to_owned());
        run.error = Some(("JobFailed".to_owned(), summary.clone()));
        self.run.record(run);
        let ev = events::action_state(
            PIPELINE,
            &self.run.execution_id,
            &events::ActionChange {
                stage: "Production",
                action: "BlueGreen",
                state: "FAILED",
                kind: ("AWS", "CodeDeployToECS", "Deploy"),
                summary: Some(&summary),
                external_id: Some(deployment_id),
                error_code: Some("JobFailed"),
            },
        );
        self.notify("action Production › BlueGreen FAILED", ev)
            .await?;
        self.fail_pipeline().await?;
        Ok(Verdict::Stopped {
            stage: "Production".to_owned(),
            action: "BlueGreen".to_owned(),
            reason: why.to_owned(),
            rolled_back: true,
        })
    }

    /// Scripts `GetDeployment` as CodeDeploy answers once the deployment
    /// ended: moto's record of it with the final status, times, and (for a
    /// failure) the error and rollback CodeDeploy writes.
    pub(super) async fn script_deployment(
        &mut self,
        deployment_id: &str,
        status: &str,
        failure: Option<(&str, &str, &str)>,
    ) -> Result<(), RehearsalError> {
        let mut answer = seed::moto_json(
            &self.moto,
            "codedeploy",
            "CodeDeploy_20141006.GetDeployment",
            &json!({"deploymentId": deployment_id}),
        )
        .await?;
        let info = &mut answer["deploymentInfo"];
        let now = events::now();
        info["status"] = json!(status);
        info["creator"] = json!("user");
        info["startTime"] = json!(self.run.started);
        info["completeTime"] = json!(now);
        info["deploymentOverview"] = json!({"Pending": 0, "InProgress": 0,
            "Succeeded": i64::from(failure.is_none()), "Failed": i64::from(failure.is_some()),
            "Skipped": 0, "Ready": 0});
        if let Some((code, message, rollback)) = failure {
            info["errorInformation"] = json!({"code": code, "message": message});
            info["rollbackInfo"] = json!({"rollbackMessage": rollback});
        }
        self.standin.script("GetDeployment", vec![answer]);
        Ok(())
    }
}

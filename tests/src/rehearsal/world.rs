//! The rehearsal's world: everything started for one run (moto, the
//! stand-in, the sample app and its listeners, the chat sink, the three
//! functions), how it is set up, and the shared steps: sending an event to
//! the notifier, reading new calls and log records, the result, and the
//! files written at the end.

use super::*;

/// Everything the rehearsal runs.
pub(super) struct World {
    pub(super) t: Timeline,
    pub(super) scenario: Scenario,
    pub(super) out_dir: PathBuf,
    pub(super) moto: Moto,
    pub(super) standin: AwsStandIn,
    /// SDK config straight to moto (seeding, reading artifacts back).
    pub(super) seed_sdk: aws_config::SdkConfig,
    pub(super) sink: ChatSink,
    pub(super) staging: AppInstance,
    pub(super) blue: AppInstance,
    pub(super) green: AppInstance,
    pub(super) prod_listener: Listener,
    pub(super) test_listener: Listener,
    /// The seeded load balancer and CodeDeploy group.
    pub(super) bg: seed::BlueGreen,
    /// The metric gate's queue and CloudWatch dimensions.
    pub(super) gate: super::metrics::GateSetup,
    pub(super) pipeline_action: LocalLambda,
    pub(super) deploy_hook: LocalLambda,
    pub(super) notifier: LocalLambda,
    /// The pipeline execution as CodePipeline records it.
    pub(super) run: PipelineRun,
    /// Stand-in calls already shown.
    pub(super) calls_seen: usize,
    /// Chat messages already shown.
    pub(super) slack_seen: usize,
    /// Per function: bytes of its log already read.
    pub(super) log_seen: BTreeMap<&'static str, usize>,
    /// Slack payloads, for `slack.jsonl`.
    pub(super) saved_slack: Vec<Value>,
    /// The Slack bot mode (`--slack bot`), when on.
    pub(super) bot: Option<slackbot::Bot>,
}

impl World {
    pub(super) async fn setup(
        scenario: Scenario,
        slack: SlackMode,
        out_dir: &Path,
        mut t: Timeline,
    ) -> Result<World, RehearsalError> {
        t.section("Setting up");
        let moto = tokio::task::spawn_blocking(Moto::start)
            .await
            .map_err(|e| SeedError {
                step: "starting moto_server".into(),
                detail: e.to_string(),
            })?;
        let standin = AwsStandIn::start(Some(&moto)).await;
        t.step(
            "setup",
            &format!(
                "moto_server on {} and the AWS stand-in on {}",
                moto.url(),
                standin.url()
            ),
        );
        t.detail("stand-in: answers CodePipeline/CodeDeploy reports and the reads moto lacks; forwards the rest to moto");

        let staging = AppInstance::start("staging", GREEN_VERSION, false).await?;
        let blue = AppInstance::start("blue", BLUE_VERSION, false).await?;
        let green =
            AppInstance::start("green", GREEN_VERSION, scenario == Scenario::BrokenGreen).await?;
        let prod_listener = Listener::start(&blue).await?;
        let test_listener = Listener::start(&blue).await?;
        t.step(
            "setup",
            &format!(
                "sample app: {}, {}, {}",
                staging.label(),
                blue.label(),
                green.label()
            ),
        );
        t.detail(&format!(
            "load balancer listeners: production :{} → blue, test :{} → blue",
            prod_listener.port(),
            test_listener.port()
        ));

        let sink = ChatSink::start().await?;
        let seed_sdk = seed::seeding_config(&moto).await;
        aws_sdk_secretsmanager::Client::new(&seed_sdk)
            .create_secret()
            .name(SLACK_SECRET)
            .secret_string(sink.url(SLACK_PATH))
            .send()
            .await
            .map_err(|e| SeedError {
                step: "storing the Slack webhook URL in Secrets Manager".into(),
                detail: e.to_string(),
            })?;
        t.step(
            "setup",
            &format!(
                "chat sink on {}; its Slack webhook URL is stored in Secrets Manager as {SLACK_SECRET}",
                sink.url("")
            ),
        );

        // Concurrently: the Source and Build artifacts, the staging service,
        // and the production load balancer with its CodeDeploy group.
        let spec = check_spec();
        let ecs = aws_sdk_ecs::Client::new(&seed_sdk);
        let staging_containers = [seed::Container {
            name: "web".into(),
            image: image(OLD_TAG),
            port: Some(8080),
        }];
        let production = seed::BlueGreenSpec {
            name: "web-prod",
            cluster: PROD_CLUSTER,
            service: SERVICE,
            prod_port: prod_listener.port(),
            test_port: Some(test_listener.port()),
        };
        let (_, _, bg) = tokio::try_join!(
            seed_artifacts(&seed_sdk, &spec),
            seed::ecs_service(
                &ecs,
                STAGING_CLUSTER,
                SERVICE,
                "web",
                &staging_containers,
                3
            ),
            seed::blue_green(&moto, &seed_sdk, &production),
        )?;
        t.step("setup", "seeded moto:");
        t.detail(&format!(
            "S3 s3://{BUCKET}: SourceOutput (checks/staging.yaml), BuildOutput (imagedefinitions.json, imageDetail.json, taskdef.json, appspec.yaml, migrations/taskdef.json), SSE-KMS"
        ));
        t.detail(&format!(
            "ECS service {STAGING_CLUSTER}/{SERVICE}: 3 tasks of web:1 ({})",
            image(OLD_TAG)
        ));
        t.detail(&format!(
            "ELBv2 load balancer {} with listeners :{} (production) and :{} (test)",
            bg.dns_name,
            prod_listener.port(),
            test_listener.port()
        ));
        t.detail(&format!(
            "CodeDeploy ECS application {} / blue/green group {} for {PROD_CLUSTER}/{SERVICE}",
            bg.application, bg.deployment_group
        ));
        let gate = super::metrics::setup(&moto, &seed_sdk, &bg, &mut t).await?;

        let base = standin.lambda_env();
        let with = |extra: &[(&str, String)]| {
            let mut env = base.clone();
            env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
            env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            env
        };
        let pipeline_action =
            start_function(&mut t, "pipeline-action", &with(&[]), out_dir).await?;
        let deploy_hook = start_function(
            &mut t,
            "deploy-hook",
            &with(&[
                ("TOLLGATE_CHECK_SPEC", super::metrics::hook_spec(&spec)),
                ("TOLLGATE_GATE_QUEUE_URL", gate.queue_url.clone()),
                ("TOLLGATE_RESOLVE", format!("{}=127.0.0.1", bg.dns_name)),
                (HOOK_FAILURE_VAR, HOOK_FAILURE_PREFIX.to_owned()),
            ]),
            out_dir,
        )
        .await?;
        t.detail(&format!(
            "TOLLGATE_RESOLVE pins {} to 127.0.0.1: the URL the hook discovers is the one it requests",
            bg.dns_name
        ));
        let mut notifier_env = vec![
            (
                "TOLLGATE_SLACK_WEBHOOK",
                format!("secretsmanager:{SLACK_SECRET}"),
            ),
            ("TOLLGATE_NOTIFY_RULES", NOTIFY_RULES.to_owned()),
            (HOOK_FAILURE_VAR, HOOK_FAILURE_PREFIX.to_owned()),
        ];
        let bot = slackbot::setup(slack, &mut t, &seed_sdk, &standin, &mut notifier_env).await?;
        let notifier = start_function(&mut t, "notifier", &with(&notifier_env), out_dir).await?;
        t.detail(&format!(
            "{HOOK_FAILURE_VAR}={HOOK_FAILURE_PREFIX} on deploy-hook and notifier: a failed hook leaves its failed checks in SSM (moto) for the failure message"
        ));
        t.detail(slackbot::rules_line(slack));

        let started = events::now();
        let run = PipelineRun {
            pipeline: PIPELINE.to_owned(),
            execution_id: events::uuid_like(),
            previous_execution_id: events::uuid_like(),
            status: RunStatus::InProgress,
            started,
            updated: started,
            commit: Commit {
                id: format!("{TAG}5e1d04c7a9b8f6e2d1c0b9a8f7e6d5c4b"),
                message: "Show order history on the account page".into(),
                repository: "acme/web".into(),
                branch: "main".into(),
            },
            actions: Vec::new(),
        };
        let calls_seen = standin.calls().len();
        Ok(World {
            t,
            scenario,
            out_dir: out_dir.to_owned(),
            moto,
            standin,
            seed_sdk,
            sink,
            staging,
            blue,
            green,
            prod_listener,
            test_listener,
            bg,
            gate,
            pipeline_action,
            deploy_hook,
            notifier,
            run,
            calls_seen,
            slack_seen: 0,
            log_seen: BTreeMap::new(),
            saved_slack: Vec::new(),
            bot,
        })
    }

    // ------------------------------------------------------ notifications

    /// Sends one EventBridge event to the notifier and prints what reached
    /// the chat sink, as a person reads it.
    pub(super) async fn notify(&mut self, label: &str, event: Value) -> Result<(), RehearsalError> {
        self.run.script(&self.standin);
        let detail_type = event["detail-type"].as_str().unwrap_or_default().to_owned();
        self.t
            .step("eventbridge", &format!("{detail_type}: {label}"));
        let outcome = self.notifier.invoke(event, NOTIFY_DEADLINE).await;
        self.expect_response("notifier", label, &outcome)?;
        let out = match &outcome {
            Invocation::Response(v) => v.clone(),
            _ => Value::Null,
        };
        if self.show_bot_calls(&out) {
            let _ = self.new_calls();
            return Ok(());
        }
        let new: Vec<sink::Message> = self
            .sink
            .received()
            .into_iter()
            .skip(self.slack_seen)
            .collect();
        self.slack_seen += new.len();
        let _ = self.new_calls();
        match out["decision"].as_str() {
            Some("sent") if !new.is_empty() => {
                for m in new {
                    self.t.step("notifier", "→ Slack:");
                    self.t.quote(&sink::slack_text(&m.body));
                    self.saved_slack.push(m.body);
                }
            }
            Some("quiet") => {
                let reason = out["reason"].as_str().unwrap_or("no rule asks for it");
                self.t.step("notifier", &format!("no message ({reason})"));
            }
            _ => {
                self.t.step(
                    "notifier",
                    &format!("answered {out} and nothing reached the chat sink"),
                );
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ helpers

    pub(super) fn expect_response(
        &mut self,
        function: &'static str,
        what: &str,
        outcome: &Invocation,
    ) -> Result<(), RehearsalError> {
        match outcome {
            Invocation::Response(_) => Ok(()),
            other => Err(RehearsalError::Invocation {
                function,
                what: what.to_owned(),
                outcome: format!("{other:?}"),
                log: self.log_path(function),
            }),
        }
    }

    pub(super) fn log_path(&self, function: &str) -> String {
        self.out_dir
            .join(format!("{function}.log"))
            .display()
            .to_string()
    }

    /// Stand-in calls since the last look.
    pub(super) fn new_calls(&mut self) -> Vec<Call> {
        let calls = self.standin.calls();
        let new = calls.get(self.calls_seen..).map(<[Call]>::to_vec);
        self.calls_seen = calls.len();
        new.unwrap_or_default()
    }

    /// Log records of `function` since the last look.
    pub(super) fn new_log_records(&mut self, function: &'static str) -> Vec<logs::Record> {
        let text = match function {
            "pipeline-action" => self.pipeline_action.logs(),
            "deploy-hook" => self.deploy_hook.logs(),
            _ => self.notifier.logs(),
        };
        let seen = self.log_seen.get(function).copied().unwrap_or(0);
        self.log_seen.insert(function, text.len());
        logs::records(text.get(seen..).unwrap_or_default())
    }

    /// The final state of production, and the summary.
    pub(super) async fn finish(&mut self, verdict: &Verdict) {
        self.t.section("3. Result");
        let url = format!("{}/health", self.prod_listener.url());
        match app::get(&url).await {
            Ok((status, body)) => self.t.step(
                "check",
                &format!(
                    "production listener :{} → {}: GET /health {status} {body}",
                    self.prod_listener.port(),
                    self.prod_listener.routes_to()
                ),
            ),
            Err(e) => self.t.step("check", &format!("GET {url} failed: {e}")),
        }
        self.t.detail(&format!(
            "requests served: staging {}, blue {}, green {}",
            self.staging.hits(),
            self.blue.hits(),
            self.green.hits()
        ));
        let elapsed = self.t.elapsed().as_secs_f64();
        let messages = self
            .bot_summary()
            .unwrap_or_else(|| format!("{} Slack messages", self.sink.count()));
        let text = match verdict {
            Verdict::Released => format!(
                "RELEASED: {GREEN_VERSION} ({TAG}) is in production; {messages}; {elapsed:.1} s"
            ),
            Verdict::Stopped {
                stage,
                action,
                reason,
                rolled_back,
            } => format!(
                "STOPPED at {stage} › {action}: {reason}{}; production stays on {}; {messages}; {elapsed:.1} s",
                if *rolled_back { "; rolled back" } else { "" },
                self.prod_listener.routes_to()
            ),
        };
        self.t.text("");
        self.t.text(&text);
        let expected = match self.scenario {
            Scenario::Healthy => "the release reaches production",
            Scenario::BrokenGreen => "the broken green is stopped by the hook and rolled back",
            Scenario::BrokenMigration => {
                "the failed migration stops the pipeline before anything is deployed"
            }
            Scenario::BrokenMetrics => {
                "the metric gate fails green's rising 5xx rate during the bake and the deployment is rolled back"
            }
            Scenario::Rejected => {
                "the approver's rejection in Slack stops the pipeline at the approval"
            }
        };
        let code = exit_code(self.scenario, verdict);
        if code == EXIT_PROBLEM {
            self.t.text(&format!(
                "UNEXPECTED: this scenario expects that {expected} (exit code {code})"
            ));
        } else {
            self.t
                .text(&format!("As expected: {expected} (exit code {code})"));
        }
        self.t.text(&format!(
            "Function logs, Slack payloads and AWS calls: {}",
            self.out_dir.display()
        ));
    }

    /// Writes the logs, payloads, calls and the timeline (best effort: a
    /// write error is reported on stderr and does not change the outcome).
    pub(super) fn save(&self) {
        let files: [(&str, String); 6] = [
            ("pipeline-action.log", self.pipeline_action.logs()),
            ("deploy-hook.log", self.deploy_hook.logs()),
            ("notifier.log", self.notifier.logs()),
            (
                "slack.jsonl",
                self.saved_slack.iter().map(|m| format!("{m}\n")).collect(),
            ),
            (
                "aws-calls.txt",
                self.standin
                    .calls()
                    .iter()
                    .map(|c| {
                        format!(
                            "{:<40} {:>3} {:<10} {} {}\n",
                            c.operation,
                            c.status,
                            if c.forwarded { "moto" } else { "stand-in" },
                            c.access_key_id.as_deref().unwrap_or("-"),
                            c.error_code.as_deref().unwrap_or("")
                        )
                    })
                    .collect(),
            ),
            (
                "timeline.txt",
                self.t.lines().iter().map(|l| format!("{l}\n")).collect(),
            ),
        ];
        for (name, content) in files {
            let path = self.out_dir.join(name);
            if let Err(e) = std::fs::write(&path, content) {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
    }
}

/// Spawns a function binary and waits for its init.
async fn start_function(
    t: &mut Timeline,
    name: &'static str,
    env: &[(String, String)],
    out_dir: &Path,
) -> Result<LocalLambda, RehearsalError> {
    let binary = paths::function_binary(name);
    let f = LocalLambda::spawn(&binary, env).await;
    match f.wait_init(Duration::from_secs(20)).await {
        Some(init) => {
            t.step(
                "setup",
                &format!(
                    "{name} ready: init {:.1} ms ({})",
                    init.as_secs_f64() * 1000.0,
                    binary.display()
                ),
            );
            Ok(f)
        }
        None => {
            let log = out_dir.join(format!("{name}.log"));
            let _ = std::fs::write(&log, f.logs());
            Err(RehearsalError::Init {
                function: name,
                detail: f
                    .init_error()
                    .map(|e| format!("{}: {}", e.error_type, e.error_message))
                    .unwrap_or_else(|| {
                        "no init error was posted and it did not ask for an event".into()
                    }),
                log: log.display().to_string(),
            })
        }
    }
}

/// The artifacts the Source and Build stages would have produced: the
/// check spec (SourceOutput) and the image definitions, task definition and
/// AppSpec (BuildOutput), SSE-KMS encrypted as CodePipeline stores them.
async fn seed_artifacts(sdk: &aws_config::SdkConfig, spec: &str) -> Result<(), SeedError> {
    let s3 = seed::s3_client(sdk);
    seed::bucket(&s3, BUCKET).await?;
    seed::put_zip(
        &s3,
        BUCKET,
        artifact_key("SourceOutput"),
        &[("checks/staging.yaml", spec)],
        Some(KMS_KEY),
    )
    .await?;
    let definitions = json!([{"name": "web", "imageUri": image(TAG)}]).to_string();
    let detail = json!({"ImageURI": image(TAG)}).to_string();
    let appspec = appspec();
    let migration = migration::migration_taskdef();
    seed::put_zip(
        &s3,
        BUCKET,
        artifact_key("BuildOutput"),
        &[
            ("imagedefinitions.json", definitions.as_str()),
            ("imageDetail.json", detail.as_str()),
            ("taskdef.json", TASKDEF),
            ("appspec.yaml", appspec.as_str()),
            ("migrations/taskdef.json", migration.as_str()),
        ],
        Some(KMS_KEY),
    )
    .await
}

//! No secret reaches a log line, an error message, an invocation result or a
//! `Debug` dump.
//!
//! Every function binary runs with secrets present, at the most verbose
//! setting a user is likely to pick (`RUST_LOG=debug`, which also turns on
//! the AWS SDK's and the HTTP stack's debug logs, and
//! `AWS_LAMBDA_LOG_FORMAT=JSON`), down its success *and* failure paths
//! (denied, refused, rejected, malformed input holding a secret in the wrong
//! place, init errors). Everything it writes and answers is captured and
//! searched for every secret value:
//!
//! - `pipeline-action`: the job's artifact credentials (secret key, session
//!   token), the function role's own credentials;
//! - `deploy-hook`: a bearer token and an API key in a check spec read from
//!   an SSM SecureString (and inline), the role's credentials; also in the
//!   hook-failure record it writes to SSM for the notifier;
//! - `notifier`: webhook URLs from an SSM SecureString, from a Secrets
//!   Manager JSON secret and as plain environment values, the webhook token
//!   from Secrets Manager, the role's credentials;
//! - `dead-letter`: the failed job's artifact credentials inside the
//!   destination record, a token in the failed invocation's error message,
//!   a poison message holding a token.
//!
//! Besides logs, answers and init errors, every request a function sent to
//! AWS (report bodies, SSM writes, SNS publishes) and every chat or webhook
//! payload is searched, also form-encoded.
//!
//! The unit part checks the `Debug` output of the configuration and event
//! types through the library API.

use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tollgate_test_support::http::{Reply, Request, Stub};
use tollgate_tests::moto::free_port;
use tollgate_tests::{AwsStandIn, Fault, Invocation, LocalLambda, Moto, paths};

const DEADLINE: Duration = Duration::from_secs(12);

/// The stand-in's function-role credentials (see `AwsStandIn::lambda_env`).
const ROLE_SECRETS: [&str; 2] = [
    "standin-function-role-secret",
    "standin-function-role-token",
];
/// The artifact credentials of the sample jobs.
const ARTIFACT_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTOLLGATESECRET";
const ARTIFACT_SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKENtollgateSESSIONsecretVALUE";

static SEQ: AtomicU32 = AtomicU32::new(0);

fn tag() -> String {
    format!(
        "{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// Environment that makes a function as verbose as it gets.
fn verbose(standin: &AwsStandIn) -> Vec<(String, String)> {
    let mut env = standin.lambda_env();
    env.push(("RUST_LOG".into(), "debug".into()));
    env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "DEBUG".into()));
    env
}

/// Everything a function let out: its logs, its answers and its init error.
#[derive(Default)]
struct Capture {
    text: String,
}

impl Capture {
    fn add(&mut self, what: &str, item: impl std::fmt::Debug) {
        self.text.push_str(&format!("\n== {what}: {item:?}\n"));
    }

    /// Every request the function sent to AWS (the stand-in's record):
    /// report bodies, SNS publishes, SSM writes, S3 objects.
    fn add_calls(&mut self, standin: &AwsStandIn) {
        // Not the test's own seeding calls (signed with the test's key).
        for c in standin
            .calls()
            .into_iter()
            .filter(|c| c.access_key_id.as_deref() != Some("AKIASTANDINTEST00001"))
        {
            let body = match &c.request {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.text.push_str(&format!(
                "\n== call {} ({}): {body}\n",
                c.operation, c.status
            ));
        }
    }

    fn finish(&mut self, f: &LocalLambda) {
        self.text.push_str("\n== logs\n");
        self.text.push_str(&f.logs());
        self.text
            .push_str(&format!("\n== init error: {:?}\n", f.init_error()));
    }

    /// Fails naming each secret that appears (also JSON-escaped, as a JSON
    /// log line would carry it).
    fn assert_clean(&self, secrets: &[String]) {
        if let Some(dir) = std::env::var_os("TOLLGATE_SECRETS_DUMP") {
            let path = std::path::Path::new(&dir).join(format!("secrets-{}.txt", tag()));
            std::fs::write(&path, &self.text).expect("dump");
        }
        // Proof that the most verbose output was captured: JSON lines at DEBUG.
        assert!(
            self.text.contains(r#""level":"DEBUG""#),
            "no DEBUG JSON log lines captured:\n{}",
            self.text
        );
        for s in secrets {
            let escaped = serde_json::to_string(s).expect("json");
            let escaped = escaped.trim_matches('"');
            // As a query-protocol form (SNS, SSM writes) would carry it.
            let form: String = s
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            for shown in [s.as_str(), escaped, form.as_str()] {
                assert!(
                    !self.text.contains(shown),
                    "secret {s:?} leaked (as {shown:?}):\n{}",
                    self.text
                );
            }
        }
    }
}

/// The loopback stub answering by path prefix: `/ok…` 200, `/gone…` 404,
/// `/deny…` 401, anything else 200.
async fn target() -> Stub {
    Stub::start(|req: Request| {
        let status = if req.path.starts_with("/gone") {
            404
        } else if req.path.starts_with("/deny") {
            401
        } else {
            200
        };
        async move { Reply::json(status, &json!({"status": "ok"})) }
    })
    .await
}

/// Request bodies a [`target`] received (chat payloads, smoke requests).
fn received_text(target: &Stub) -> String {
    target
        .requests()
        .iter()
        .map(Request::text)
        .collect::<Vec<_>>()
        .join("\n")
}

async fn spawn(binary: &str, env: &[(String, String)]) -> LocalLambda {
    let f = LocalLambda::spawn(&paths::function_binary(binary), env).await;
    f.wait_init(Duration::from_secs(20)).await;
    f
}

// ------------------------------------------------------------ pipeline-action

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_action_never_shows_artifact_or_role_credentials() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let server = target().await;
    let base = server.url("");
    let mut env = verbose(&standin);
    env.push(("TOLLGATE_REPORT_RESERVE_MS".into(), "1500".into()));
    let mut f = spawn("pipeline-action", &env).await;
    let mut cap = Capture::default();
    let t = tag();
    let job = |case: &str, id: &str| {
        let mut ev = paths::event("pipeline-action", case);
        ev["CodePipeline.job"]["id"] = json!(id);
        standin.register_job(id);
        ev
    };

    // Success: a smoke check.
    let mut ev = job("smoke-inline", &format!("sec-smoke-{t}"));
    ev["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(
            json!({"action": "smoke", "spec": {"checks": [{"name": "health", "url": "${TARGET}/ok", "expect": {"status": 200}}]}, "vars": {"TARGET": base}})
                .to_string()
        );
    cap.add("smoke", f.invoke(ev, DEADLINE).await);

    // A failing smoke check carrying a token in a header, a variable and the URL.
    let pa_token = format!("pa-token-{t}-NEVERLOG");
    let mut ev = job("smoke-inline", &format!("sec-smoke-fail-{t}"));
    ev["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json!(
        json!({"action": "smoke", "spec": {"checks": [{"name": "admin",
                "url": "${TARGET}/deny?token=${API_TOKEN}",
                "headers": {"Authorization": "Bearer ${API_TOKEN}", "x-api-key": pa_token},
                "expect": {"status": 200}}]},
                "vars": {"TARGET": base, "API_TOKEN": pa_token}})
        .to_string()
    );
    cap.add("smoke failing", f.invoke(ev, DEADLINE).await);

    // The artifact read with the artifact credentials: missing bucket, then denied.
    let ev = job("verify-artifact", &format!("sec-verify-{t}"));
    cap.add("verify, no bucket", f.invoke(ev, DEADLINE).await);
    standin.inject("s3:GET", Fault::AccessDenied, None);
    let ev = job("job-with-credentials", &format!("sec-denied-{t}"));
    cap.add("verify, denied", f.invoke(ev, DEADLINE).await);

    // Broken UserParameters.
    let ev = job("bad-params-not-json", &format!("sec-params-{t}"));
    cap.add("bad params", f.invoke(ev, DEADLINE).await);

    // Secrets in the wrong place or of the wrong type: the parse error must
    // not quote them.
    let mut ev = job("job-with-credentials", &format!("sec-types-{t}"));
    ev["CodePipeline.job"]["data"]["artifactCredentials"]["expirationTime"] =
        json!(ARTIFACT_SECRET_KEY);
    cap.add("secret in a number field", f.invoke(ev, DEADLINE).await);
    let mut ev = job("job-with-credentials", &format!("sec-shape-{t}"));
    ev["CodePipeline.job"]["data"]["artifactCredentials"] = json!(ARTIFACT_SESSION_TOKEN);
    cap.add("credentials as a string", f.invoke(ev, DEADLINE).await);
    let mut ev = job("job-with-credentials", &format!("sec-id-{t}"));
    ev["CodePipeline.job"]["id"] = json!(42);
    cap.add("no job id", f.invoke(ev, DEADLINE).await);

    // A syntax error in taskdef.json next to a secret environment value
    // (issue 14 §5): the failure names the file and the place, never the
    // value.
    standin.clear_faults();
    let td_secret = format!("td-secret-{t}-NEVERLOG");
    let bucket = format!("tollgate-sec-{t}");
    let s3 = tollgate_tests::seed::s3_client(&tollgate_tests::seed::seeding_config(moto).await);
    tollgate_tests::seed::bucket(&s3, &bucket)
        .await
        .expect("bucket");
    let mut ev = job("verify-artifact", &format!("sec-taskdef-{t}"));
    let input = &mut ev["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"];
    input["bucketName"] = json!(bucket);
    let key = input["objectKey"].as_str().expect("key").to_owned();
    let taskdef = format!(
        "{{\"family\": \"web\", \"containerDefinitions\": [{{\"name\": \"web\", \"image\": \"<IMAGE1_NAME>\", \
         \"environment\": [{{\"name\": \"DB_PASSWORD\" \"value\": \"{td_secret}\"}}]}}]}}"
    );
    tollgate_tests::seed::put_zip(
        &s3,
        &bucket,
        &key,
        &[
            (
                "imagedefinitions.json",
                "[{\"name\":\"web\",\"imageUri\":\"111111111111.dkr.ecr.us-east-1.amazonaws.com/web@sha256:0f5e8a3c2b1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f\"}]",
            ),
            ("taskdef.json", taskdef.as_str()),
        ],
        None,
    )
    .await
    .expect("artifact");
    let out = f.invoke(ev, DEADLINE).await;
    assert!(
        format!("{out:?}").contains("failure"),
        "a broken taskdef.json fails the job: {out:?}"
    );
    cap.add("taskdef syntax error", out);

    // The report itself denied.
    standin.inject("PutJobFailureResult", Fault::AccessDenied, None);
    let ev = job("bad-params-unknown-action", &format!("sec-report-{t}"));
    cap.add("report denied", f.invoke(ev, DEADLINE).await);

    cap.finish(&f);
    cap.add_calls(&standin);
    cap.text.push_str(&received_text(&server));
    let failures: Vec<String> = standin
        .reports()
        .iter()
        .filter_map(|r| match r {
            tollgate_tests::Report::JobFailure { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        failures
            .iter()
            .any(|m| m.contains("taskdef.json: not valid JSON")),
        "the taskdef syntax error is reported: {failures:#?}"
    );
    assert!(
        standin
            .calls_of("s3:GET")
            .iter()
            .any(|c| c.access_key_id.as_deref() == Some("ASIATOLLGATEEXAMPLE1")),
        "the artifact read must have used the artifact credentials"
    );
    let mut secrets: Vec<String> = ROLE_SECRETS.map(str::to_owned).to_vec();
    secrets.push(ARTIFACT_SECRET_KEY.to_owned());
    secrets.push(ARTIFACT_SESSION_TOKEN.to_owned());
    secrets.push(pa_token);
    secrets.push(td_secret);
    cap.assert_clean(&secrets);
}

// --------------------------------------------------------------- deploy-hook

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_hook_never_shows_spec_tokens_or_role_credentials() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let server = target().await;
    let base = server.url("");
    let t = tag();
    let bearer = format!("dh-bearer-{t}-NEVERLOG");
    let api_key = format!("dh-apikey-{t}-NEVERLOG");
    let custom = format!("dh-custom-{t}-NEVERLOG");
    let spec = format!(
        "secret_headers: [x-tenant-pass]\n\
         checks:\n\
         - name: health\n  url: '${{TARGET}}/ok'\n  headers: {{Authorization: 'Bearer {bearer}', x-api-key: '{api_key}', x-tenant-pass: '{custom}'}}\n  expect: {{status: 200}}\n\
         - name: admin\n  url: '${{TARGET}}/deny?key={api_key}'\n  headers: {{Authorization: 'Bearer {bearer}'}}\n  expect: {{status: 200}}\n"
    );
    let sdk = standin.sdk_config().await;
    let param = format!("/tollgate/{t}/deploy-spec");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value(&spec)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("SecureString spec in moto");
    let deployment = "d-SECRETS01";
    standin.script(
        "GetDeployment",
        vec![
            json!({"deploymentInfo": {"deploymentId": deployment, "applicationName": "web-app",
            "deploymentGroupName": "web-dg", "computePlatform": "ECS", "status": "InProgress"}}),
        ],
    );
    let mut env = verbose(&standin);
    env.extend(
        [
            ("TOLLGATE_CHECK_SPEC_PARAMETER", param.clone()),
            ("TARGET_URL", base.clone()),
            ("TOLLGATE_HOOK", "BeforeAllowTraffic".to_owned()),
            ("TOLLGATE_VERIFY_GREEN", "false".to_owned()),
            ("TOLLGATE_REPORT_RESERVE_MS", "1500".to_owned()),
            (
                "TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX",
                format!("/tollgate/{t}/hook-failures"),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut f = spawn("deploy-hook", &env).await;
    let mut cap = Capture::default();

    // A failing check (401 on /deny), carrying the secrets in headers and URL.
    let exec = format!("sec-hook-{t}");
    standin.register_hook(deployment, &exec);
    let ev = json!({"DeploymentId": deployment, "LifecycleEventHookExecutionId": exec});
    cap.add("failing check", f.invoke(ev.clone(), DEADLINE).await);
    assert_eq!(
        standin.reports_for(&exec).len(),
        1,
        "the hook was reported: {}",
        f.logs()
    );
    // The failed checks left in SSM for the notifier (stored unencrypted,
    // so they must hold the redacted text only).
    let records: Vec<_> = standin
        .calls_of("PutParameter")
        .into_iter()
        .filter(|c| {
            c.request["Name"]
                .as_str()
                .is_some_and(|n| n.contains("/hook-failures/"))
        })
        .collect();
    assert_eq!(records.len(), 1, "one hook-failure record: {}", f.logs());
    let value = records[0].request["Value"].as_str().unwrap_or_default();
    assert!(
        value.contains("status: expected 200, got 401"),
        "the record carries the failed expectation: {value}"
    );
    cap.add("hook-failure record", &records[0].request);
    // The same hook again (already reported), an ECS native hook, garbage.
    cap.add("duplicate", f.invoke(ev, DEADLINE).await);
    let mut ecs = paths::event("deploy-hook", "ecs-post-test-traffic-shift");
    ecs["hookDetails"] = json!({"targetUrl": base});
    cap.add("ecs native", f.invoke(ecs, DEADLINE).await);
    cap.add(
        "garbage",
        f.invoke(json!({"Authorization": bearer}), DEADLINE).await,
    );
    // The report denied.
    standin.inject(
        "PutLifecycleEventHookExecutionStatus",
        Fault::AccessDenied,
        None,
    );
    let exec2 = format!("sec-hook2-{t}");
    standin.register_hook(deployment, &exec2);
    cap.add(
        "report denied",
        f.invoke(
            json!({"DeploymentId": deployment, "LifecycleEventHookExecutionId": exec2}),
            DEADLINE,
        )
        .await,
    );
    cap.finish(&f);
    drop(f);

    // The same spec inline, with a broken check: the configuration error
    // (logged at init, then the reason every hook is failed with) must not
    // quote the spec.
    let broken = spec.replace("status: 200}\n- name: admin", "status: 2xx}\n- name: admin");
    let mut env = verbose(&standin);
    env.extend(
        [
            ("TOLLGATE_CHECK_SPEC", broken),
            ("TARGET_URL", base.clone()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut f = LocalLambda::spawn(&paths::function_binary("deploy-hook"), &env).await;
    let exec3 = format!("sec-hook3-{t}");
    standin.register_hook(deployment, &exec3);
    standin.clear_faults();
    cap.add(
        "misconfigured: codedeploy",
        f.invoke(
            json!({"DeploymentId": deployment, "LifecycleEventHookExecutionId": exec3}),
            DEADLINE,
        )
        .await,
    );
    cap.add(
        "misconfigured: ecs native",
        f.invoke(
            paths::event("deploy-hook", "ecs-post-test-traffic-shift"),
            DEADLINE,
        )
        .await,
    );
    assert!(
        f.logs().contains("misconfigured (InvalidCheckSpec)"),
        "{}",
        f.logs()
    );
    cap.finish(&f);
    drop(f);

    // Syntax errors on the line that holds the token (issue 14.5): an
    // unclosed quote, a duplicate key, a tab, bad indentation. The parser's
    // message must not carry the line into the logs or the reason.
    let line = format!("      Authorization: \"Bearer {bearer}\"\n");
    for (case, doc) in [
        (
            "unclosed quote",
            format!(
                "checks:\n  - name: a\n    url: \"${{TARGET}}/a\"\n    headers:\n      Authorization: \"Bearer {bearer}\n"
            ),
        ),
        (
            "duplicate key",
            format!("checks:\n  - name: a\n    url: \"${{TARGET}}/a\"\n    headers:\n{line}{line}"),
        ),
        (
            "tab",
            format!(
                "checks:\n  - name: a\n    url: \"${{TARGET}}/a\"\n    headers:\n\tAuthorization: Bearer {bearer}\n"
            ),
        ),
        (
            "bad indentation",
            format!(
                "checks:\n  - name: a\n    url: \"${{TARGET}}/a\"\n    headers:\n{line}     Authorization: Bearer {bearer}\n"
            ),
        ),
    ] {
        let mut env = verbose(&standin);
        env.push(("TOLLGATE_CHECK_SPEC".to_owned(), doc));
        env.push(("TARGET_URL".to_owned(), base.clone()));
        let mut f = LocalLambda::spawn(&paths::function_binary("deploy-hook"), &env).await;
        cap.add(
            case,
            f.invoke(
                paths::event("deploy-hook", "ecs-post-test-traffic-shift"),
                DEADLINE,
            )
            .await,
        );
        assert!(
            f.logs().contains("spec is not valid YAML"),
            "{case}: {}",
            f.logs()
        );
        cap.finish(&f);
    }

    // What it sent: reports, the hook-failure record (SSM), the checks'
    // requests (they carry the tokens by design, to the target only).
    cap.add_calls(&standin);
    cap.text.push_str(&received_text(&server));
    let mut secrets: Vec<String> = ROLE_SECRETS.map(str::to_owned).to_vec();
    secrets.extend([bearer, api_key, custom]);
    cap.assert_clean(&secrets);
}

// ------------------------------------------------------------------ notifier

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifier_never_shows_webhook_urls_or_tokens() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let server = target().await;
    let base = server.url("");
    let t = tag();
    let sdk = standin.sdk_config().await;
    // The secret part of a webhook URL is its path.
    let slack_path = format!("slackPATH{t}");
    let hook_path = format!("hookPATH{t}");
    let teams_path = format!("teamsPATH{t}");
    let token = format!("nt-token-{t}-NEVERLOG");
    let slack_param = format!("/tollgate/{t}/slack");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&slack_param)
        // 404: a permanent failure whose message must not carry the URL.
        .value(format!("{base}/gone/{slack_path}"))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("SecureString");
    let secret_name = format!("tollgate/{t}/webhook");
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&secret_name)
        .secret_string(json!({"url": format!("{base}/ok/{hook_path}"), "token": token}).to_string())
        .send()
        .await
        .expect("secret");
    // SNS too: its publishes are searched like everything else.
    let topic_arn = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name(format!("tollgate-sec-{t}"))
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("topic arn");
    // Teams as a plain environment value, on a closed port (connection
    // refused: HTTP client errors like to quote the URL).
    let teams_url = format!("http://127.0.0.1:{}/{teams_path}", free_port());
    let mut env = verbose(&standin);
    env.extend(
        [
            ("TOLLGATE_SLACK_WEBHOOK", format!("ssm:{slack_param}")),
            ("TOLLGATE_TEAMS_WEBHOOK", teams_url.clone()),
            (
                "TOLLGATE_WEBHOOK_URL",
                format!("secretsmanager:{secret_name}#url"),
            ),
            (
                "TOLLGATE_WEBHOOK_TOKEN",
                format!("secretsmanager:{secret_name}#token"),
            ),
            ("TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS", "800".to_owned()),
            ("TOLLGATE_SNS_TOPIC_ARN", topic_arn),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut f = spawn("notifier", &env).await;
    assert!(f.init_error().is_none(), "{}", f.logs());
    let mut cap = Capture::default();
    for case in [
        "pipeline-failed",
        "ecs-deployment-circuit-breaker",
        "unknown-detail-type",
    ] {
        let inv = f.invoke(paths::event("notifier", case), DEADLINE).await;
        assert!(
            matches!(inv, Invocation::Error { .. }),
            "slack 404 and teams refused must fail the invocation: {inv:?}"
        );
        cap.add(case, inv);
    }
    cap.add(
        "not an event",
        f.invoke(json!({"token": "x"}), DEADLINE).await,
    );
    cap.finish(&f);
    drop(f);

    // Init errors: a missing secret, and an unusable plain value that
    // holds a secret.
    for (var, value) in [
        (
            "TOLLGATE_WEBHOOK_URL",
            format!("secretsmanager:tollgate/{t}/missing#url"),
        ),
        (
            "TOLLGATE_TEAMS_WEBHOOK",
            format!("ftp://example.com/{teams_path}"),
        ),
        ("TOLLGATE_SLACK_WEBHOOK", format!("not a url {slack_path}")),
    ] {
        let mut env = env.clone();
        env.retain(|(k, _)| k != var);
        env.push((var.to_owned(), value));
        let f = LocalLambda::spawn(&paths::function_binary("notifier"), &env).await;
        assert!(
            f.wait_exit(Duration::from_secs(15)).await,
            "{var}: init fails"
        );
        assert!(f.init_error().is_some(), "{var}: {}", f.logs());
        cap.finish(&f);
    }

    // What it sent: the chat and webhook payloads, the SNS publishes.
    cap.add_calls(&standin);
    cap.text.push_str(&received_text(&server));
    assert!(
        standin.calls_of("Publish").iter().any(|c| c.status == 200),
        "an SNS publish was made and searched"
    );
    assert!(
        !received_text(&server).is_empty(),
        "chat payloads were captured"
    );
    let mut secrets: Vec<String> = ROLE_SECRETS.map(str::to_owned).to_vec();
    secrets.extend([slack_path, hook_path, teams_path, token]);
    cap.assert_clean(&secrets);
}

// --------------------------------------------------------------- dead-letter

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_never_shows_the_failed_event_or_its_error() {
    let standin = AwsStandIn::start(None).await;
    let t = tag();
    let mut f = spawn("dead-letter", &verbose(&standin)).await;
    let mut cap = Capture::default();
    let err_secret = format!("dl-error-{t}-NEVERLOG");
    let poison_secret = format!("dl-poison-{t}-NEVERLOG");
    let mut event = paths::event("dead-letter", "pipeline-action-killed");
    let record = &mut event["Records"][0];
    let mut body: serde_json::Value =
        serde_json::from_str(record["body"].as_str().expect("body")).expect("record");
    body["responsePayload"]["errorMessage"] = json!(format!("Bearer {err_secret} signal: killed"));
    let id = body["requestPayload"]["CodePipeline.job"]["id"]
        .as_str()
        .expect("job id")
        .to_owned();
    standin.register_job(&id);
    record["body"] = json!(body.to_string());
    let mut poison = record.clone();
    poison["messageId"] = json!("poison-1");
    poison["body"] = json!(format!("{{\"token\": \"{poison_secret}\""));
    event["Records"]
        .as_array_mut()
        .expect("records")
        .push(poison);
    let out = f.invoke(event, DEADLINE).await;
    assert_eq!(
        out,
        Invocation::Response(json!({"batchItemFailures": [{"itemIdentifier": "poison-1"}]}))
    );
    cap.add("batch", out);
    cap.finish(&f);
    cap.add_calls(&standin);
    assert_eq!(standin.reports_for(&id).len(), 1, "the job was reported");
    let mut secrets: Vec<String> = ROLE_SECRETS.map(str::to_owned).to_vec();
    secrets.extend([
        ARTIFACT_SECRET_KEY.to_owned(),
        ARTIFACT_SESSION_TOKEN.to_owned(),
        err_secret,
        poison_secret,
    ]);
    cap.assert_clean(&secrets);
}

// ------------------------------------------------------- Debug of the types

#[test]
fn debug_of_events_and_configs_is_redacted() {
    use tollgate_report::events::codepipeline::CodePipelineEvent;

    // A CodePipeline job with live artifact credentials.
    let ev = paths::event("pipeline-action", "job-with-credentials");
    let job: CodePipelineEvent = serde_json::from_value(ev).expect("sample job parses");
    let shown = format!("{job:?} {job:#?}");
    for s in [ARTIFACT_SECRET_KEY, ARTIFACT_SESSION_TOKEN] {
        assert!(!shown.contains(s), "job Debug shows {s}: {shown}");
    }

    // deploy-hook configuration with a spec holding secrets inline.
    let bearer = "cfg-bearer-NEVERLOG";
    let spec = format!(
        "checks: [{{name: h, url: 'http://x/ok', headers: {{Authorization: 'Bearer {bearer}'}}, expect: {{status: 200}}}}]"
    );
    // A TARGET_URL carrying a password is refused without quoting it.
    let err = tollgate_deploy::config::DeployConfig::from_env(&[
        ("TOLLGATE_CHECK_SPEC", spec.as_str()),
        (
            "TARGET_URL",
            "https://user:cfg-url-password-NEVERLOG@green.internal/",
        ),
    ])
    .expect_err("a URL with credentials is refused");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("cfg-url-password-NEVERLOG"),
        "DeployConfig error: {shown}"
    );
    let cfg = tollgate_deploy::config::DeployConfig::from_env(&[
        ("TOLLGATE_CHECK_SPEC", spec.as_str()),
        ("TARGET_URL", "https://green.internal/"),
    ])
    .expect("config");
    let shown = format!("{cfg:?} {cfg:#?}");
    assert!(!shown.contains(bearer), "DeployConfig Debug: {shown}");

    // The parsed spec.
    let parsed = tollgate_checks::Spec::from_yaml_or_json(&spec).expect("spec");
    let shown = format!("{parsed:?}");
    assert!(!shown.contains(bearer), "Spec Debug: {shown}");

    // Notifier settings with inline webhook URLs and token.
    let settings = tollgate_notify::config::settings(&[
        (
            "TOLLGATE_SLACK_WEBHOOK",
            "https://hooks.slack.com/services/T0/B0/cfgSLACKsecretNEVERLOG",
        ),
        (
            "TOLLGATE_WEBHOOK_URL",
            "https://hooks.example.com/cfgHOOKsecretNEVERLOG",
        ),
        ("TOLLGATE_WEBHOOK_TOKEN", "cfg-token-NEVERLOG"),
    ])
    .expect("settings");
    let shown = format!("{settings:?} {settings:#?}");
    for s in [
        "cfgSLACKsecretNEVERLOG",
        "cfgHOOKsecretNEVERLOG",
        "cfg-token-NEVERLOG",
    ] {
        assert!(
            !shown.contains(s),
            "notifier Settings Debug shows {s}: {shown}"
        );
    }

    // pipeline-action UserParameters with an inline spec holding a token.
    let params = json!({
        "action": "smoke",
        "spec": {"checks": [{"name": "h", "url": "http://x/ok",
            "headers": {"Authorization": format!("Bearer {bearer}")}, "expect": {"status": 200}}]}
    })
    .to_string();
    let parsed = tollgate_pipeline::params::parse(Some(&params)).expect("params");
    let shown = format!("{parsed:?} {parsed:#?}");
    assert!(!shown.contains(bearer), "UserParameters Debug: {shown}");
}

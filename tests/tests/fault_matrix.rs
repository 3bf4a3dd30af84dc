//! The fault matrix: every function binary under the local Runtime API,
//! against the AWS stand-in, across hostile inputs and failing dependencies.
//!
//! Rows are input/fault kinds ([`KINDS`]), columns are the functions. Every
//! cell runs a fresh function process against a fresh stand-in and asserts
//! both the universal contract and the cell's defined outcome:
//!
//! - callback functions (`pipeline-action`, `deploy-hook`): the invocation
//!   ends before its deadline (never a hang, never a Lambda kill), in either
//!   exactly one accepted report or a defined Lambda error; never two
//!   accepted reports for one job / hook execution, and never a successful
//!   answer without a report;
//! - `notifier`: delivered (every destination's sink received it), or an
//!   invocation error (so Lambda retries and the OnFailure destination keeps
//!   the event); never an answer that claims delivery the sinks did not see;
//! - `approvals` (a signed Slack click on its function URL, `approvals`
//!   module): an HTTP answer before the deadline; at most one
//!   `PutApprovalResult` accepted per approval; a refused request (401 /
//!   400 / 405 / 413 / 503) changes nothing and calls nothing; never the
//!   body, a secret or the approval token in the logs.
//!
//! Cells run concurrently (each has its own processes and ports).
//!
//! `TOLLGATE_WRITE_FAULT_TABLE=1 cargo test -p tollgate-tests --test fault_matrix`
//! regenerates `docs/fault-matrix.md` from the observed outcomes.

use bytes::Bytes;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_test_support::http::{Reply, Request, Stub};
use tollgate_tests::moto::free_port;
use tollgate_tests::{AwsStandIn, Fault, Invocation, LocalLambda, Moto, Report, paths};

#[path = "fault_matrix/approvals.rs"]
mod approvals;

/// Deadline of an ordinary cell.
const DEADLINE: Duration = Duration::from_secs(10);
/// Deadline of the cells whose dependency is slower than the deadline.
const SHORT_DEADLINE: Duration = Duration::from_secs(4);
/// Six MB of payload (Lambda's synchronous invocation limit).
const SIX_MB: usize = 6 * 1024 * 1024;
/// Cells run at once.
const PARALLEL: usize = 6;

// ------------------------------------------------------------------ matrix

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    PipelineAction,
    DeployHook,
    Notifier,
    Approvals,
}

impl Func {
    const ALL: [Func; 4] = [
        Func::PipelineAction,
        Func::DeployHook,
        Func::Notifier,
        Func::Approvals,
    ];

    fn name(self) -> &'static str {
        match self {
            Func::PipelineAction => "pipeline-action",
            Func::DeployHook => "deploy-hook",
            Func::Notifier => "notifier",
            Func::Approvals => "approvals",
        }
    }
}

/// One row: a key, what it does, and the expected outcome class per function
/// (pipeline-action, deploy-hook, notifier, approvals).
struct Kind {
    key: &'static str,
    what: &'static str,
    expect: [&'static str; 4],
}

/// Outcome classes:
/// - `report:<what>` exactly one accepted report (pipeline `success` /
///   `failure:<type>`, hook `Succeeded` / `Failed`);
/// - `already-reported`: a successful answer, the report having been
///   accepted before (the duplicate-report exception was taken as done);
/// - `error:<type>`: a Lambda invocation error of that type, no report
///   accepted;
/// - `error:<type>, report landed`: the report was accepted but its answer
///   never came back (the stand-in answers after the deadline); Lambda
///   retries the event and the retry finds it already reported;
/// - `delivered`: notifier answered `sent` and every destination received it;
/// - `already-delivered`: every destination skipped as delivered before;
/// - `quiet`: notifier answered `quiet` with a reason (not a notification);
/// - `init-error:<type>`: the function posted an init error of that type
///   and exited (only the notifier's configuration error: it has nothing
///   to report to);
/// - approvals: `answer:<status>` an HTTP answer that decided nothing;
///   `approved` / `rejected` one `PutApprovalResult` accepted this round;
///   `already-decided` / `expired` the message shows the recorded state;
///   `not-recorded` nothing recorded and the clicker told why (try again);
///   `unconfirmed` CodePipeline gave no answer either way and the clicker
///   is told it *may* have been recorded, with where to check;
/// - approvals' ECS pause rows (`ecs-pause-*`): `continued` one
///   `ContinueServiceDeployment` accepted and the message shows who;
///   `not-done` nothing done and the clicker told why (try again);
///   `unconfirmed` ECS gave no answer either way and the clicker is told it
///   *may* have been done; `nothing-to-decide` the message shows that the
///   hook no longer waits; `already-decided` it shows the recorded decision.
///
/// `a → b` is two deliveries of the same event.
const KINDS: &[Kind] = &[
    Kind {
        key: "malformed-json",
        what: "truncated JSON body",
        expect: [
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
        ],
    },
    Kind {
        key: "non-utf8",
        what: "invalid UTF-8 bytes inside a JSON string",
        expect: [
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
        ],
    },
    Kind {
        key: "wrong-shape",
        what: "valid JSON of another protocol's shape",
        expect: [
            "error:UnrecognisedEvent",
            "error:UnrecognisedEvent",
            "delivered",
            "error:&lambda_runtime::deserializer::DeserializeError",
        ],
    },
    Kind {
        key: "missing-fields",
        what: "required fields removed (id kept where one exists)",
        expect: [
            "report:failure:ConfigurationError",
            "error:UnrecognisedEvent",
            "delivered",
            "answer:401",
        ],
    },
    Kind {
        key: "wrong-types",
        what: "fields of the wrong JSON type",
        expect: [
            "report:failure:ConfigurationError",
            "error:UnrecognisedEvent",
            "delivered",
            "error:&lambda_runtime::deserializer::DeserializeError",
        ],
    },
    Kind {
        key: "empty-strings",
        what: "empty strings in every name/parameter field",
        expect: [
            "report:failure:ConfigurationError",
            "error:ReportRejected",
            "delivered",
            "answer:401",
        ],
    },
    Kind {
        key: "six-mb",
        what: "6 MB payload (an extra 6 MB field)",
        expect: [
            "report:success",
            "report:Succeeded",
            "delivered",
            "answer:413",
        ],
    },
    Kind {
        key: "deep-event",
        what: "event nested 100 000 levels deep",
        expect: [
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
            "error:&lambda_runtime::deserializer::DeserializeError",
        ],
    },
    Kind {
        key: "deep-field",
        what: "a deeply nested value inside an accepted event",
        expect: [
            "report:failure:ConfigurationError",
            "report:Succeeded",
            "delivered",
            "answer:400",
        ],
    },
    Kind {
        key: "unicode",
        what: "unusual Unicode (RTL override, emoji, combining marks, NUL) in names",
        expect: [
            "report:success",
            "report:Succeeded",
            "delivered",
            "approved",
        ],
    },
    Kind {
        key: "throttle",
        what: "report / publish call throttled twice",
        expect: [
            "report:success",
            "report:Succeeded",
            "delivered",
            "not-recorded",
        ],
    },
    Kind {
        key: "server-error",
        what: "report / publish call answers 5xx twice",
        expect: [
            "report:success",
            "report:Succeeded",
            "delivered",
            "unconfirmed",
        ],
    },
    Kind {
        key: "slow-past-deadline",
        what: "report / publish call answers after the deadline",
        expect: [
            "error:ReportUndelivered, report landed",
            "error:ReportUndelivered, report landed",
            "error:NotificationUndelivered",
            "approved",
        ],
    },
    Kind {
        key: "connection-refused",
        what: "AWS endpoint (and webhook) on a closed port",
        expect: [
            "error:ReportUndelivered",
            "error:ReportUndelivered",
            "error:NotificationUndelivered",
            "answer:503",
        ],
    },
    Kind {
        key: "access-denied",
        what: "report / publish call denied by IAM",
        expect: [
            "error:ReportDenied",
            "error:ReportDenied",
            "error:NotificationUndelivered",
            "not-recorded",
        ],
    },
    Kind {
        key: "duplicate-report",
        what: "already reported: InvalidJobState / LifecycleEventAlreadyCompleted (notifier: webhook 409; approvals: approved in the console first)",
        expect: [
            "already-reported",
            "already-reported",
            "error:NotificationUndelivered",
            "already-decided",
        ],
    },
    Kind {
        key: "duplicate-delivery",
        what: "the same event delivered twice",
        expect: [
            "report:success → already-reported",
            "report:Succeeded → already-reported",
            "delivered → already-delivered",
            "approved → already-decided",
        ],
    },
    Kind {
        key: "dependency-fault",
        what: "a read the work needs fails (ECS DescribeServices / CodeDeploy GetDeployment throttled; CodePipeline enrichment reads denied / 5xx; approvals: GetPipelineState throttled)",
        expect: [
            "report:failure:SystemUnavailable",
            "report:Failed",
            "delivered",
            "not-recorded",
        ],
    },
    Kind {
        key: "config-error",
        what: "a configuration error at init (pipeline-action: TOLLGATE_ARTIFACT_MAX_BYTES=lots; deploy-hook: an invalid check spec; notifier: TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS=soon; approvals: a misspelt field in TOLLGATE_APPROVERS)",
        expect: [
            "report:failure:ConfigurationError",
            "report:Failed",
            "init-error:InvalidConfiguration",
            "answer:503",
        ],
    },
    Kind {
        key: "syntax-error-secrets",
        what: "a syntax error next to a token in the user's document (UserParameters, check spec, rules, approvers): the token shows nowhere",
        expect: [
            "report:failure:ConfigurationError",
            "report:Failed",
            "init-error:InvalidRules",
            "answer:503",
        ],
    },
    Kind {
        key: "memory-budget",
        what: "16 checks × 8 MiB bodies at once at 128 MB (notifier: a YAML alias bomb in its rules; approvals holds no document but the request, bounded by six-mb): refused before any request",
        expect: [
            "report:failure:ConfigurationError",
            "report:Failed",
            "init-error:InvalidRules",
            "n/a",
        ],
    },
    Kind {
        key: "runtime-api-target",
        what: "a check aimed at the function's own Runtime API (deploy-hook: at the link-local metadata address); the notifier and approvals run no checks",
        expect: ["report:failure:JobFailed", "report:Failed", "n/a", "n/a"],
    },
    Kind {
        key: "stale-duplicate",
        what: "a late redelivery after the work ended (ecs-deploy of a finished job: no ECS change; a reported hook; an event another environment delivered; a click on an expired approval)",
        expect: [
            "already-reported",
            "already-reported",
            "already-delivered",
            "expired",
        ],
    },
    Kind {
        key: "chat-injection",
        what: "mentions and disguised links in an action's summary (approvals: in a reject reason) (<!channel>, <@U…>, <url|label>) sent to Slack; the callbacks render no chat",
        expect: ["n/a", "n/a", "delivered", "rejected"],
    },
    Kind {
        key: "process-killed",
        what: "the process is killed mid-work (SIGKILL); Lambda's destination record goes through the dead-letter consumer (approvals is invoked synchronously by its URL: Slack shows the failure, no destination)",
        expect: [
            "killed → dead-letter → report:failure:JobFailed",
            "killed → dead-letter → report:Failed",
            "killed → failure queue",
            "n/a",
        ],
    },
    Kind {
        key: "deadline-short",
        what: "deadline shorter than the work (target hangs)",
        expect: [
            "report:failure:JobFailed",
            "report:Failed",
            "error:NotificationUndelivered",
            "approved",
        ],
    },
    // ECS pause hooks (approvals only): a signed Continue click on a
    // deployment paused at a PAUSE lifecycle hook
    // (DescribeServiceDeployments, then ContinueServiceDeployment).
    Kind {
        key: "ecs-pause-continue",
        what: "approvals: Continue on a paused ECS deployment, every call answered",
        expect: ["n/a", "n/a", "n/a", "continued"],
    },
    Kind {
        key: "ecs-pause-describe-throttled",
        what: "approvals: DescribeServiceDeployments throttled (every attempt)",
        expect: ["n/a", "n/a", "n/a", "not-done"],
    },
    Kind {
        key: "ecs-pause-describe-denied",
        what: "approvals: DescribeServiceDeployments denied by IAM (the service is not in ApprovalEcsServices' grant)",
        expect: ["n/a", "n/a", "n/a", "not-done"],
    },
    Kind {
        key: "ecs-pause-continue-failing",
        what: "approvals: ContinueServiceDeployment answers HTTP 500 (it may have acted)",
        expect: ["n/a", "n/a", "n/a", "unconfirmed"],
    },
    Kind {
        key: "ecs-pause-continue-no-answer",
        what: "approvals: ContinueServiceDeployment acts but answers after Slack's 3 seconds",
        expect: ["n/a", "n/a", "n/a", "continued"],
    },
    Kind {
        key: "ecs-pause-client-exception",
        what: "approvals: ContinueServiceDeployment refuses with ClientException while the hook still shows as waiting",
        expect: ["n/a", "n/a", "n/a", "nothing-to-decide"],
    },
];

// ------------------------------------------------------------- local server

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Status(u16),
    Hang,
    /// Slack's Web API: `{"ok": true}`.
    Slack,
}

/// The loopback stub as the smoke target of the callback functions and the
/// webhook sink of the notifier: one answer for every request, each
/// recorded.
struct Server {
    url: String,
    stub: Stub,
}

impl Server {
    async fn start(mode: Mode) -> Server {
        let ok = |status| Reply::json(status, &json!({"status": "ok"}));
        let reply = match mode {
            Mode::Ok => ok(200),
            Mode::Status(s) => ok(s),
            Mode::Hang => ok(200).after(Duration::from_secs(3600)),
            Mode::Slack => Reply::json(200, &json!({"ok": true})),
        };
        let stub = Stub::replying(reply).await;
        Server {
            url: stub.url(""),
            stub,
        }
    }

    fn hits(&self) -> usize {
        self.stub.hits()
    }

    fn received_text(&self) -> String {
        self.stub
            .requests()
            .iter()
            .map(Request::text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

// ------------------------------------------------------------------ inputs

const UNICODE: &str = "santé-\u{202e}lper\u{202c}-🚀-e\u{301}-\u{0}-日本語";

/// `[[[…]]]`, `depth` levels.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A JSON value nested `depth` levels (built iteratively).
fn nested_value(depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth {
        v = json!({ "n": v });
    }
    v
}

fn pipeline_params(target: &str, name: &str) -> String {
    json!({
        "action": "smoke",
        "spec": {"checks": [{"name": name, "url": "${TARGET}/health", "expect": {"status": 200}}]},
        "vars": {"TARGET": target}
    })
    .to_string()
}

// -------------------------------------------------------------------- cell

/// What one cell observed.
#[derive(Debug, Clone)]
struct Observed {
    class: String,
    detail: String,
    elapsed: Duration,
    problems: Vec<String>,
    logs: String,
}

struct Rig {
    standin: AwsStandIn,
    server: Server,
    lambda: LocalLambda,
    deadline: Duration,
    /// Job id / hook execution id the reports are for (callbacks).
    id: String,
    /// The notifier's SNS topic.
    topic: Option<String>,
}

const SPEC: &str = "checks: [{name: health, url: '${TARGET}/health', expect: {status: 200}}]";

/// The token placed next to the syntax errors of `syntax-error-secrets`.
const DOC_TOKEN: &str = "fm-doc-token-NEVERSHOWN";

/// Sixteen checks at once, each reading up to 8 MiB: more than a 128 MB
/// function holds (`memory-budget`).
fn wide_checks(target: &str) -> Value {
    let checks: Vec<Value> = (0..16)
        .map(|i| json!({"name": format!("c{i}"), "url": format!("{target}/health"), "max_body": "8MiB"}))
        .collect();
    json!({"concurrency": 16, "checks": checks})
}

/// The notifier runs no checks: nothing to aim at its Runtime API.
fn not_applicable(func: Func, kind: &str) -> bool {
    KINDS
        .iter()
        .any(|k| k.key == kind && k.expect[func_index(func)] == "n/a")
}

fn func_index(func: Func) -> usize {
    Func::ALL.iter().position(|f| *f == func).unwrap_or(0)
}

/// The cells where the notifier's configuration fails its init (it has
/// nothing to report to).
fn notifier_fails_init(kind: &str) -> bool {
    matches!(
        kind,
        "config-error" | "syntax-error-secrets" | "memory-budget"
    )
}

async fn rig(func: Func, kind: &str) -> Rig {
    let needs_moto =
        func == Func::Notifier || (func == Func::PipelineAction && kind == "stale-duplicate");
    let standin = AwsStandIn::start(needs_moto.then(Moto::shared)).await;
    let mode = match (func, kind) {
        (_, "deadline-short" | "process-killed") => Mode::Hang,
        (Func::Notifier, "duplicate-report") => Mode::Status(409),
        (Func::Approvals, _) => Mode::Slack,
        _ => Mode::Ok,
    };
    let server = Server::start(mode).await;
    let mut env = standin.lambda_env();
    let closed = format!("http://127.0.0.1:{}", free_port());
    if kind == "connection-refused" {
        for (k, v) in &mut env {
            if k == "AWS_ENDPOINT_URL" {
                *v = closed.clone();
            }
        }
    }
    let mut add = |k: &str, v: String| env.push((k.to_owned(), v));
    add("RUST_LOG", "info".into());
    let mut topic = None;
    let id = format!("{}-{kind}", func.name());
    match func {
        Func::PipelineAction => {
            add("TOLLGATE_REPORT_RESERVE_MS", "1500".into());
            add("TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS", "400".into());
            standin.register_job(&id);
        }
        Func::DeployHook => {
            add("TOLLGATE_REPORT_RESERVE_MS", "1500".into());
            add("TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS", "400".into());
            add("TOLLGATE_CHECK_SPEC", SPEC.into());
            add("TARGET_URL", server.url.clone());
            add("TOLLGATE_HOOK", "BeforeAllowTraffic".into());
            add("TOLLGATE_VERIFY_GREEN", "false".into());
            standin.register_hook("d-FAULTMTRX", &id);
            // CodeDeploy's answer for the deployment (moto is not needed).
            standin.script(
                "GetDeployment",
                vec![json!({"deploymentInfo": {
                    "deploymentId": "d-FAULTMTRX",
                    "applicationName": "web-app",
                    "deploymentGroupName": "web-dg",
                    "computePlatform": "ECS",
                    "status": "InProgress"
                }})],
            );
        }
        Func::Notifier => {
            let sns = aws_sdk_sns::Client::new(&standin.sdk_config().await);
            let arn = sns
                .create_topic()
                .name(format!("tollgate-fm-{}-{kind}", std::process::id()))
                .send()
                .await
                .expect("topic in moto")
                .topic_arn
                .expect("topic arn");
            let webhook = if kind == "connection-refused" {
                format!("{closed}/hook/fault-matrix")
            } else {
                format!("{}/hook/fault-matrix", server.url)
            };
            add("TOLLGATE_WEBHOOK_URL", webhook);
            add("TOLLGATE_SNS_TOPIC_ARN", arn.clone());
            add("TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS", "800".into());
            add("TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS", "1000".into());
            // The template's delivery ledger, on moto: every cell runs with
            // cross-environment deduplication, as deployed.
            let table = format!("tollgate-fm-{}-{kind}", std::process::id());
            tollgate_tests::seed::delivery_table(&standin.sdk_config().await, &table)
                .await
                .expect("delivery table in moto");
            add("TOLLGATE_NOTIFY_DEDUPE_TABLE", table);
            topic = Some(arn);
        }
        Func::Approvals => {
            for (k, v) in approvals::env(&server.url) {
                add(k, v);
            }
            approvals::seed(&standin, &id);
            approvals::inject(&standin, kind);
        }
    }
    // A finished ecs-deploy job's world: its artifact and the service.
    if func == Func::PipelineAction && kind == "stale-duplicate" {
        seed_stale_deploy(&id).await;
    }
    // Documents the user wrote, broken next to a token or too big to hold.
    match (func, kind) {
        (Func::DeployHook, "syntax-error-secrets") => add(
            "TOLLGATE_CHECK_SPEC",
            format!(
                "checks:\n  - name: a\n    url: '${{TARGET}}/health'\n    headers:\n      \
                 Authorization: \"Bearer {DOC_TOKEN}\n"
            ),
        ),
        (Func::Notifier, "syntax-error-secrets") => add(
            "TOLLGATE_NOTIFY_RULES",
            format!("routes:\n  - match: {{pipeline: \"web}}\n    token: \"{DOC_TOKEN}\"\n"),
        ),
        (Func::DeployHook, "memory-budget") => {
            add("TOLLGATE_CHECK_SPEC", wide_checks("${TARGET}").to_string())
        }
        (Func::Notifier, "memory-budget") => {
            // A 100 KB name anchored once and replayed 90 times into a
            // field that takes a list of names: 9 MB from a 100 KB document.
            let mut doc = format!("default_destinations:\n  - &big \"{}\"\n", "x".repeat(100_000));
            for _ in 0..90 {
                doc.push_str("  - *big\n");
            }
            add("TOLLGATE_NOTIFY_RULES", doc)
        }
        (Func::Approvals, "syntax-error-secrets") => add(
            "TOLLGATE_APPROVERS",
            format!(
                "{{\"pipelines\": {{\"*\": {{\"users\": [\"U0FAULTMATRIX\"], \"token\": \"{DOC_TOKEN}"
            ),
        ),
        (Func::DeployHook, "runtime-api-target") => add(
            "TOLLGATE_CHECK_SPEC",
            "checks: [{name: metadata, url: 'http://169.254.169.254/latest/meta-data/', expect: {status: 200}}]"
                .into(),
        ),
        _ => {}
    }
    // A configuration error at init (added last, so it wins).
    if kind == "config-error" {
        match func {
            Func::PipelineAction => add("TOLLGATE_ARTIFACT_MAX_BYTES", "lots".into()),
            Func::DeployHook => add(
                "TOLLGATE_CHECK_SPEC",
                "checks: [{name: h, url: '${TARGET}/h', expect: {status: 2xx}}]".into(),
            ),
            Func::Notifier => add("TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS", "soon".into()),
            Func::Approvals => add(
                "TOLLGATE_APPROVERS",
                r#"{"pipelines": {"*": {"user": ["U0FAULTMATRIX"]}}}"#.into(),
            ),
        }
    }
    // Faults in the calls each function makes.
    let report_op = match func {
        Func::PipelineAction => "PutJobSuccessResult",
        Func::DeployHook => "PutLifecycleEventHookExecutionStatus",
        Func::Notifier => "Publish",
        Func::Approvals => "PutApprovalResult",
    };
    match kind {
        "throttle" => standin.inject(report_op, Fault::Throttle, Some(2)),
        "server-error" => standin.inject(report_op, Fault::ServerError, Some(2)),
        "slow-past-deadline" => {
            standin.inject(report_op, Fault::Slow(Duration::from_secs(30)), None)
        }
        "access-denied" => standin.inject(report_op, Fault::AccessDenied, None),
        "dependency-fault" if func == Func::PipelineAction => {
            standin.inject("DescribeServices", Fault::Throttle, None)
        }
        "dependency-fault" if func == Func::DeployHook => {
            standin.inject("GetDeployment", Fault::Throttle, None)
        }
        "dependency-fault" if func == Func::Notifier => {
            standin.inject("GetPipelineExecution", Fault::AccessDenied, None);
            standin.inject("ListActionExecutions", Fault::ServerError, None);
        }
        "dependency-fault" if func == Func::Approvals => {
            standin.inject("GetPipelineState", Fault::Throttle, None)
        }
        _ => {}
    }
    let deadline = match kind {
        "slow-past-deadline" | "deadline-short" => SHORT_DEADLINE,
        _ => DEADLINE,
    };
    // Chat: Slack instead of the generic webhook.
    if func == Func::Notifier && kind == "chat-injection" {
        env.retain(|(k, _)| k != "TOLLGATE_WEBHOOK_URL");
        env.push((
            "TOLLGATE_SLACK_WEBHOOK".to_owned(),
            format!("{}/slack/T000/B000/fault-matrix", server.url),
        ));
    }
    let lambda = LocalLambda::spawn(&paths::function_binary(func.name()), &env).await;
    // The notifier has nothing to report to: its configuration error fails
    // init (run_cell checks the init error).
    let fails_init = func == Func::Notifier && notifier_fails_init(kind);
    assert!(
        fails_init || lambda.wait_init(Duration::from_secs(20)).await.is_some(),
        "{} did not start for {kind}: {:?}\n{}",
        func.name(),
        lambda.init_error(),
        lambda.logs()
    );
    Rig {
        standin,
        server,
        lambda,
        deadline,
        id,
        topic,
    }
}

/// Names of the stale `ecs-deploy` cell's resources (from the job id).
fn stale_names(id: &str) -> (String, String) {
    (format!("{id}-artifacts"), format!("{id}-cluster"))
}

const STALE_IMAGE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web@sha256:\
    0f5e8a3c2b1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";

/// The artifact and the ECS service an `ecs-deploy` job would change, in
/// moto (seeded directly, so the stand-in records only the function's
/// calls).
async fn seed_stale_deploy(id: &str) {
    let (bucket, cluster) = stale_names(id);
    let sdk = tollgate_tests::seed::seeding_config(Moto::shared()).await;
    let s3 = tollgate_tests::seed::s3_client(&sdk);
    tollgate_tests::seed::bucket(&s3, &bucket)
        .await
        .expect("bucket");
    let defs = json!([{"name": "web", "imageUri": STALE_IMAGE}]).to_string();
    tollgate_tests::seed::put_zip(
        &s3,
        &bucket,
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", defs.as_str())],
        None,
    )
    .await
    .expect("artifact");
    tollgate_tests::seed::ecs_service(
        &aws_sdk_ecs::Client::new(&sdk),
        &cluster,
        "web",
        &format!("{id}-web"),
        &[tollgate_tests::seed::Container {
            name: "web".into(),
            image: "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:0ld5ha1".into(),
            port: Some(8080),
        }],
        2,
    )
    .await
    .expect("service");
}

/// The event body of a cell.
fn body(func: Func, kind: &str, rig: &Rig) -> Bytes {
    let raw = |s: String| Bytes::from(s);
    match kind {
        "malformed-json" => return raw(r#"{"CodePipeline.job": {"id": "x", "data": "#.to_owned()),
        "non-utf8" => {
            let mut b = br#"{"DeploymentId": "d-"#.to_vec();
            b.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
            b.extend_from_slice(br#"", "LifecycleEventHookExecutionId": "x"}"#);
            return Bytes::from(b);
        }
        "deep-event" => {
            let key = match func {
                Func::PipelineAction => "CodePipeline.job",
                Func::DeployHook => "DeploymentId",
                Func::Notifier => "detail",
                Func::Approvals => "requestContext",
            };
            return raw(format!(r#"{{"{key}": {}}}"#, nested(100_000)));
        }
        _ => {}
    }
    let ev = match func {
        Func::PipelineAction => pipeline_event(kind, rig),
        Func::DeployHook => hook_event(kind, rig),
        Func::Notifier => notifier_event(kind),
        Func::Approvals => approvals::event(kind, &rig.server.url),
    };
    Bytes::from(ev.to_string())
}

fn pipeline_event(kind: &str, rig: &Rig) -> Value {
    if kind == "wrong-shape" {
        return paths::event("deploy-hook", "codedeploy-before-allow-traffic");
    }
    if kind == "stale-duplicate" {
        let (bucket, cluster) = stale_names(&rig.id);
        let mut ev = paths::event("pipeline-action", "ecs-deploy");
        let job = &mut ev["CodePipeline.job"];
        job["id"] = json!(rig.id);
        job["data"]["inputArtifacts"][0]["location"]["s3Location"]["bucketName"] = json!(bucket);
        job["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json!(
            json!({"action": "ecs-deploy", "cluster": cluster, "service": "web"}).to_string()
        );
        return ev;
    }
    let mut ev = paths::event("pipeline-action", "smoke-inline");
    let job = &mut ev["CodePipeline.job"];
    job["id"] = json!(rig.id);
    let cfg = &mut job["data"]["actionConfiguration"]["configuration"];
    cfg["UserParameters"] = json!(pipeline_params(&rig.server.url, "health"));
    match kind {
        "missing-fields" => {
            job["data"]
                .as_object_mut()
                .expect("data")
                .remove("actionConfiguration");
        }
        "wrong-types" => {
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json!(42);
            job["data"]["inputArtifacts"] = json!("none");
        }
        "empty-strings" => {
            let cfg = &mut job["data"]["actionConfiguration"]["configuration"];
            cfg["UserParameters"] = json!("");
            cfg["FunctionName"] = json!("");
            job["accountId"] = json!("");
        }
        "six-mb" => job["data"]["padding"] = json!("x".repeat(SIX_MB)),
        "deep-field" => {
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
                json!(nested(100_000));
        }
        "unicode" => {
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
                json!(pipeline_params(&rig.server.url, UNICODE));
            job["accountId"] = json!(UNICODE);
        }
        "dependency-fault" => {
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json!(
                json!({"action": "ecs-wait", "cluster": "prod", "service": "web"}).to_string()
            );
        }
        "syntax-error-secrets" => {
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json!(format!(
                "{{\"action\": \"smoke\", \"spec\": {{\"checks\": [{{\"name\": \"a\", \"url\": \
                 \"https://example.com\", \"headers\": {{\"Authorization\": \"Bearer {DOC_TOKEN}"
            ));
        }
        "memory-budget" => {
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
                json!(json!({"action": "smoke", "spec": wide_checks(&rig.server.url)}).to_string());
        }
        "runtime-api-target" => {
            let url = format!(
                "http://{}/2018-06-01/runtime/invocation/next",
                rig.lambda.runtime_api()
            );
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json!(
                json!({"action": "smoke", "spec": {"checks": [{"name": "next-event", "url": url, "expect": {"status": 200}}]}})
                    .to_string()
            );
        }
        _ => {}
    }
    ev
}

fn hook_event(kind: &str, rig: &Rig) -> Value {
    if kind == "wrong-shape" {
        return paths::event("pipeline-action", "smoke-inline");
    }
    let mut ev = paths::event("deploy-hook", "codedeploy-before-allow-traffic");
    let deployment = "d-FAULTMTRX";
    let mut execution = rig.id.clone();
    match kind {
        "missing-fields" => {
            ev.as_object_mut()
                .expect("event")
                .remove("LifecycleEventHookExecutionId");
        }
        "wrong-types" => {
            ev["DeploymentId"] = json!(["d-FAULTMTRX"]);
            ev["LifecycleEventHookExecutionId"] = json!(7);
        }
        "empty-strings" => {
            ev["DeploymentId"] = json!("");
            ev["LifecycleEventHookExecutionId"] = json!("");
        }
        "six-mb" => ev["Padding"] = json!("x".repeat(SIX_MB)),
        "deep-field" => ev["Nested"] = nested_value(120),
        "unicode" => execution = format!("{}-{UNICODE}", rig.id),
        _ => {}
    }
    if !matches!(kind, "missing-fields" | "wrong-types" | "empty-strings") {
        ev["DeploymentId"] = json!(deployment);
        ev["LifecycleEventHookExecutionId"] = json!(execution);
        if execution != rig.id {
            rig.standin.register_hook(deployment, &execution);
        }
    }
    ev
}

fn notifier_event(kind: &str) -> Value {
    if kind == "wrong-shape" {
        return paths::event("deploy-hook", "codedeploy-before-allow-traffic");
    }
    let sample = match kind {
        "dependency-fault" => "pipeline-failed",
        "chat-injection" => "action-failed-markup",
        _ => "ecs-deployment-circuit-breaker",
    };
    let mut ev = paths::event("notifier", sample);
    match kind {
        "missing-fields" => {
            let o = ev.as_object_mut().expect("event");
            o.remove("detail-type");
            o.remove("detail");
        }
        "wrong-types" => {
            ev["detail-type"] = json!(42);
            ev["detail"] = json!(["not", "an", "object"]);
        }
        "empty-strings" => {
            for k in ["id", "detail-type", "source", "account", "time", "region"] {
                ev[k] = json!("");
            }
            ev["resources"] = json!([""]);
        }
        "six-mb" => ev["detail"]["padding"] = json!("x".repeat(SIX_MB)),
        "deep-field" => ev["detail"]["nested"] = nested_value(120),
        "unicode" => {
            ev["resources"] = json!([format!(
                "arn:aws:ecs:eu-west-1:111122223333:service/prod/{UNICODE}"
            )]);
            ev["detail"]["reason"] = json!(format!("circuit breaker: {UNICODE}"));
        }
        _ => {}
    }
    ev
}

/// Runs one cell and checks the universal contract.
async fn run_cell(func: Func, kind: &'static str) -> Observed {
    let mut rig = rig(func, kind).await;
    // The duplicate-report exception: the report was accepted before.
    if matches!(kind, "duplicate-report" | "stale-duplicate") {
        let sdk = rig.standin.sdk_config().await;
        match func {
            Func::PipelineAction => {
                aws_sdk_codepipeline::Client::new(&sdk)
                    .put_job_success_result()
                    .job_id(&rig.id)
                    .send()
                    .await
                    .expect("earlier report accepted");
            }
            Func::DeployHook => {
                aws_sdk_codedeploy::Client::new(&sdk)
                    .put_lifecycle_event_hook_execution_status()
                    .deployment_id("d-FAULTMTRX")
                    .lifecycle_event_hook_execution_id(&rig.id)
                    .status(aws_sdk_codedeploy::types::LifecycleEventStatus::Succeeded)
                    .send()
                    .await
                    .expect("earlier report accepted");
            }
            // Another environment delivered this event to both destinations.
            Func::Notifier if kind == "stale-duplicate" => {
                let event = notifier_event(kind);
                let id = event["id"].as_str().expect("event id");
                let table = format!("tollgate-fm-{}-{kind}", std::process::id());
                let ddb = aws_sdk_dynamodb::Client::new(&sdk);
                for dest in ["webhook", "sns"] {
                    ddb.put_item()
                        .table_name(&table)
                        .item(
                            "pk",
                            aws_sdk_dynamodb::types::AttributeValue::S(format!("{id}#{dest}")),
                        )
                        .item(
                            "state",
                            aws_sdk_dynamodb::types::AttributeValue::S("sent".into()),
                        )
                        .send()
                        .await
                        .expect("delivery record in moto");
                }
            }
            Func::Notifier => {}
            Func::Approvals if kind == "stale-duplicate" => rig.standin.expire_approval(&rig.id),
            Func::Approvals => approvals::decided_in_the_console(&rig.standin, &rig.id).await,
        }
    }
    if func == Func::Notifier && notifier_fails_init(kind) {
        let mut problems = Vec::new();
        if !rig.lambda.wait_exit(Duration::from_secs(10)).await {
            problems.push("a notifier with a configuration error must fail init".to_owned());
        }
        let (class, detail) = match rig.lambda.init_error() {
            Some(e) => (format!("init-error:{}", e.error_type), e.error_message),
            None => {
                problems.push("no init error was posted".to_owned());
                ("no-init-error".to_owned(), String::new())
            }
        };
        if !rig.lambda.logs().contains("ConfigurationError") {
            problems.push("the init error must carry the ConfigurationError alert".to_owned());
        }
        if rig.lambda.logs().contains(DOC_TOKEN) || detail.contains(DOC_TOKEN) {
            problems.push("the token shows in the init error or the logs".to_owned());
        }
        if let Some(text) = must_mention(func, kind)
            && !detail.contains(text)
        {
            problems.push(format!("the init error should mention {text:?}"));
        }
        return Observed {
            class,
            detail,
            elapsed: Duration::ZERO,
            problems,
            logs: rig.lambda.logs(),
        };
    }
    if kind == "process-killed" {
        return killed_cell(func, rig).await;
    }
    let body = body(func, kind, &rig);
    let report_id = report_id(func, kind, &body);
    let rounds = if kind == "duplicate-delivery" { 2 } else { 1 };
    let mut classes = Vec::new();
    let mut details = Vec::new();
    let mut problems = Vec::new();
    let mut worst = Duration::ZERO;
    for _ in 0..rounds {
        let before = report_id
            .as_deref()
            .map(|id| rig.standin.reports_for(id).len())
            .unwrap_or(0);
        let hits_before = rig.server.hits();
        let calls_before = rig.standin.calls().len();
        let published_before = accepted_publishes(&rig);
        let started = Instant::now();
        let inv = rig.lambda.invoke_raw(body.clone(), rig.deadline).await;
        let elapsed = started.elapsed();
        worst = worst.max(elapsed);
        // Judged by the Runtime API where the answer lands, against the
        // deadline the function was given: no timer slack on a busy host.
        for (request, late_ms) in rig.lambda.late_answers() {
            problems.push(format!(
                "answered {late_ms} ms after the deadline (request {request})"
            ));
        }
        // Let a report still in flight land before counting.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (class, detail) = match func {
            Func::PipelineAction | Func::DeployHook => {
                let seen = Seen {
                    reports_before: before,
                    calls_before,
                };
                classify_callback(&rig, report_id.as_deref(), seen, &inv, &mut problems)
            }
            Func::Notifier => {
                classify_notifier(&rig, hits_before, published_before, &inv, &mut problems)
            }
            Func::Approvals if approvals::is_pause(kind) => approvals::classify_pause(
                &rig.standin,
                &rig.server.stub,
                (hits_before, calls_before),
                &inv,
                &rig.lambda.logs(),
                &mut problems,
            ),
            Func::Approvals => approvals::classify(
                &rig.standin,
                &rig.server.stub,
                &rig.id,
                (hits_before, calls_before),
                &inv,
                &rig.lambda.logs(),
                &mut problems,
            ),
        };
        classes.push(class);
        details.push(detail);
    }
    if func == Func::Notifier
        && kind == "unicode"
        && !rig.server.received_text().contains(
            serde_json::to_string(UNICODE)
                .expect("json")
                .trim_matches('"'),
        )
    {
        problems.push(format!(
            "the webhook did not receive the names unchanged: {}",
            rig.server.received_text()
        ));
    }
    if kind == "syntax-error-secrets" {
        let sent: String = rig
            .standin
            .calls()
            .iter()
            .map(|c| c.request.to_string())
            .collect();
        for (place, text) in [
            ("logs", rig.lambda.logs()),
            ("outcome", details.join(" ")),
            ("calls", sent),
        ] {
            if text.contains(DOC_TOKEN) {
                problems.push(format!("the token shows in the {place}"));
            }
        }
    }
    if kind == "stale-duplicate" && func == Func::PipelineAction {
        for op in ["RegisterTaskDefinition", "UpdateService"] {
            if !rig.standin.calls_of(op).is_empty() {
                problems.push(format!("a late delivery called {op}"));
            }
        }
        if !rig.lambda.logs().contains("no longer live") {
            problems.push("the late delivery should be logged as no longer live".to_owned());
        }
    }
    if kind == "chat-injection" {
        let sent = rig.server.received_text();
        for raw in ["<!channel>", "<@U024BE7LH>", "<https://evil", "<!here"] {
            if sent.contains(raw) {
                problems.push(format!("Slack received {raw} unescaped"));
            }
        }
        if !sent.contains("&lt;!channel&gt;") {
            problems.push("the summary should reach Slack, escaped".to_owned());
        }
    }
    if kind == "memory-budget" && rig.server.hits() != 0 {
        problems.push(format!(
            "{} requests were sent before the refusal",
            rig.server.hits()
        ));
    }
    if let Some(text) = must_mention(func, kind)
        && !details.iter().any(|d| d.contains(text))
    {
        problems.push(format!("the outcome should mention {text:?}"));
    }
    if problems.is_empty() && std::env::var_os("TOLLGATE_FAULT_MATRIX_VERBOSE").is_some() {
        eprintln!("--- {} / {kind}\n{}", func.name(), rig.lambda.logs());
    }
    Observed {
        class: classes.join(" → "),
        detail: details.join(" / "),
        elapsed: worst,
        problems,
        logs: rig.lambda.logs(),
    }
}

/// A process killed mid-work: it answers nothing and reports nothing;
/// Lambda (played here) sends the destination record, and the dead-letter
/// consumer reports the job or hook failed, once. The notifier has nothing
/// to report to: its event stays in its failure queue.
async fn killed_cell(func: Func, mut rig: Rig) -> Observed {
    let mut problems = Vec::new();
    let body = body(func, "process-killed", &rig);
    let event: Value = serde_json::from_slice(&body).expect("the cell's event is JSON");
    let pid = rig.lambda.pid().expect("running");
    let server = &rig.server;
    let killer = async move {
        // Mid-work: the smoke target or the webhook has the request.
        let start = Instant::now();
        while server.hits() == 0 {
            if start.elapsed() > DEADLINE {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        true
    };
    let started = Instant::now();
    let (inv, killed) = tokio::join!(rig.lambda.invoke_raw(body, rig.deadline), killer);
    let elapsed = started.elapsed();
    if !killed {
        problems.push("the work never reached its target".to_owned());
    }
    if !matches!(inv, Invocation::Exited(_)) {
        problems.push(format!("the killed process must not answer: {inv:?}"));
    }
    if !rig.standin.reports().is_empty() {
        problems.push("a killed process reported".to_owned());
    }
    let record = tollgate_tests::async_invoke::destination_record(func.name(), &event, &inv, 3);
    if func == Func::Notifier {
        return Observed {
            class: "killed → failure queue".to_owned(),
            detail: format!(
                "nothing to report to; the record ({} bytes) waits in the notifier's failure queue",
                record.to_string().len()
            ),
            elapsed,
            problems,
            logs: rig.lambda.logs(),
        };
    }
    let sqs_event = json!({"Records": [{
        "messageId": "fault-matrix-1", "receiptHandle": "rh", "body": record.to_string(),
        "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:111111111111:failed",
        "awsRegion": "us-east-1"
    }]});
    let mut consumer = LocalLambda::spawn(
        &paths::function_binary("dead-letter"),
        &rig.standin.lambda_env(),
    )
    .await;
    let answer = consumer.invoke(sqs_event, DEADLINE).await;
    if answer != Invocation::Response(json!({"batchItemFailures": []})) {
        problems.push(format!("the consumer must settle the record: {answer:?}"));
    }
    let reports = rig.standin.reports_for(&rig.id);
    let calls = report_calls(&rig, 0);
    if reports.len() != 1 || calls.len() != 1 {
        problems.push(format!(
            "exactly one report call, accepted, expected: {calls:?} / {reports:?}"
        ));
    }
    let (what, detail) = match reports.first() {
        Some(Report::JobFailure {
            failure_type,
            message,
            ..
        }) => (format!("failure:{failure_type}"), message.clone()),
        // CodeDeploy takes no reason: the consumer's log line has it.
        Some(Report::Hook { status, .. }) => (status.clone(), {
            let logs = consumer.logs();
            logs.find("deploy-hook failed")
                .map(|at| {
                    let rest = &logs[at..];
                    rest[..rest.find(['"', '\n']).unwrap_or(rest.len())].to_owned()
                })
                .unwrap_or_default()
        }),
        other => (format!("{other:?}"), String::new()),
    };
    if let Some(text) = must_mention(func, "process-killed")
        && !detail.contains(text)
    {
        problems.push(format!("the outcome should mention {text:?}"));
    }
    Observed {
        class: format!("killed → dead-letter → report:{what}"),
        detail,
        elapsed,
        problems,
        logs: format!(
            "{}\n--- dead-letter\n{}",
            rig.lambda.logs(),
            consumer.logs()
        ),
    }
}

/// The message of the last `hook outcome` log line (text after `outcome="…" `).
fn hook_outcome(logs: &str) -> Option<String> {
    let line = logs.lines().rev().find(|l| l.contains("hook outcome"))?;
    let rest = line.split_once("outcome=\"")?.1;
    Some(rest.split_once("\" ")?.1.trim().to_owned())
}

/// What the outcome detail must mention, where it says something specific.
fn must_mention(func: Func, kind: &str) -> Option<&'static str> {
    use Func::*;
    Some(match (func, kind) {
        (PipelineAction, "wrong-shape") => "not a CodePipeline job",
        (DeployHook, "wrong-shape") => "not a lifecycle hook event",
        (PipelineAction, "missing-fields" | "empty-strings") => "invalid UserParameters",
        (PipelineAction, "wrong-types") => "could not be read",
        (DeployHook, "missing-fields") => "LifecycleEventHookExecutionId",
        (PipelineAction, "deep-field") => "recursion limit",
        (Notifier, "unicode") => "🚀",
        (PipelineAction, "config-error") => {
            "pipeline-action is misconfigured (InvalidConfiguration): TOLLGATE_ARTIFACT_MAX_BYTES"
        }
        (DeployHook, "config-error") => "deploy-hook is misconfigured (InvalidCheckSpec)",
        (Notifier, "config-error") => "TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS",
        (PipelineAction | DeployHook, "slow-past-deadline" | "connection-refused") => {
            "could not be delivered before the deadline"
        }
        (PipelineAction, "access-denied") => "PutJobSuccessResult was denied",
        (DeployHook, "access-denied") => "PutLifecycleEventHookExecutionStatus was denied",
        (Notifier, "slow-past-deadline" | "access-denied" | "duplicate-report") => {
            "1 of 2 destinations failed"
        }
        (Notifier, "connection-refused") => "2 of 2 destinations failed",
        (Notifier, "deadline-short") => "1 of 2 destinations failed",
        (PipelineAction, "dependency-fault") => "DescribeServices",
        (DeployHook, "dependency-fault") => "GetDeployment",
        (PipelineAction, "deadline-short") => "deadline reached",
        (PipelineAction, "syntax-error-secrets") => "UserParameters is not valid JSON",
        (DeployHook, "syntax-error-secrets") => "spec is not valid YAML",
        (Notifier, "syntax-error-secrets") => "the notifier rules document is not valid YAML",
        (PipelineAction | DeployHook, "memory-budget") => "do not fit in memory",
        (Notifier, "memory-budget") => "budget breached",
        (PipelineAction, "runtime-api-target") => "Lambda Runtime API; checks may not target it",
        (DeployHook, "runtime-api-target") => "link-local",
        (PipelineAction | DeployHook, "process-killed") => {
            "failed 3 times (RetriesExhausted): Runtime.ExitError"
        }
        (DeployHook, "deadline-short") => "deadline",
        (_, "malformed-json" | "non-utf8" | "deep-event") => "failed to deserialize",
        _ => return None,
    })
}

/// The id reports are filed under (read back from the event sent).
fn report_id(func: Func, kind: &str, body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match func {
        Func::PipelineAction if kind != "wrong-shape" => {
            v["CodePipeline.job"]["id"].as_str().map(str::to_owned)
        }
        Func::DeployHook if kind != "wrong-shape" => v["LifecycleEventHookExecutionId"]
            .as_str()
            .map(str::to_owned),
        _ => None,
    }
}

/// What the stand-in had recorded before a round.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Accepted reports for the cell's id.
    reports_before: usize,
    /// Calls of any kind (accepted, rejected, faulted).
    calls_before: usize,
}

const REPORT_OPS: [&str; 3] = [
    "PutJobSuccessResult",
    "PutJobFailureResult",
    "PutLifecycleEventHookExecutionStatus",
];

/// Every report call of this round (accepted, rejected or faulted) as
/// "operation outcome" (`PutJobFailureResult JobFailed`, `… Failed`), with
/// the id it was for.
fn report_calls(rig: &Rig, since: usize) -> Vec<(String, String)> {
    rig.standin
        .calls()
        .into_iter()
        .skip(since)
        .filter(|c| REPORT_OPS.contains(&c.operation.as_str()))
        .map(|c| {
            let r = &c.request;
            let id = r["jobId"]
                .as_str()
                .or_else(|| r["lifecycleEventHookExecutionId"].as_str())
                .unwrap_or_default()
                .to_owned();
            let what = r["failureDetails"]["type"]
                .as_str()
                .or_else(|| r["status"].as_str())
                .unwrap_or_default();
            (id, format!("{} {what}", c.operation).trim_end().to_owned())
        })
        .collect()
}

fn classify_callback(
    rig: &Rig,
    id: Option<&str>,
    seen: Seen,
    inv: &Invocation,
    problems: &mut Vec<String>,
) -> (String, String) {
    let before = seen.reports_before;
    let all = rig.standin.reports();
    let mine: Vec<Report> = id.map(|i| rig.standin.reports_for(i)).unwrap_or_default();
    if mine.len() > 1 {
        problems.push(format!("double report: {mine:#?}"));
    }
    if all.len() > mine.len() {
        problems.push(format!("reports for other ids: {all:#?}"));
    }
    // Every report call counts, rejected ones too: a function that reports
    // twice (say success, then failure) is caught even though the stand-in
    // accepts only the first. Retries of one report are the same call.
    let calls = report_calls(rig, seen.calls_before);
    let distinct: std::collections::BTreeSet<&str> =
        calls.iter().map(|(_, what)| what.as_str()).collect();
    if distinct.len() > 1 {
        problems.push(format!(
            "two different reports in one invocation: {calls:?}"
        ));
    }
    if let Some(other) = calls.iter().find(|(i, _)| Some(i.as_str()) != id) {
        problems.push(format!("a report call for another id: {other:?}"));
    }
    let new = mine.len().saturating_sub(before);
    match inv {
        Invocation::Response(v) => {
            let status = v["report"].as_str().unwrap_or_default();
            if new == 1 {
                let what = match mine.last() {
                    Some(Report::JobSuccess { .. }) => "success".to_owned(),
                    Some(Report::JobFailure { failure_type, .. }) => {
                        format!("failure:{failure_type}")
                    }
                    Some(Report::Hook { status, .. }) => status.clone(),
                    other => format!("{other:?}"),
                };
                let message = match mine.last() {
                    Some(Report::JobFailure { message, .. }) => message.clone(),
                    Some(Report::JobSuccess { request, .. }) => {
                        request["executionDetails"]["summary"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    }
                    // The hook report carries no message: take the function's
                    // logged outcome.
                    _ => hook_outcome(&rig.lambda.logs()).unwrap_or_else(|| status.to_owned()),
                };
                (format!("report:{what}"), message)
            } else if new == 0 && before == 1 {
                ("already-reported".to_owned(), v.to_string())
            } else {
                problems.push(format!(
                    "a successful answer must follow exactly one accepted report; {new} new, {before} before: {v}"
                ));
                (format!("response-with-{new}-reports"), v.to_string())
            }
        }
        Invocation::Error {
            error_type,
            error_message,
        } => {
            if error_type.is_empty() || error_message.is_empty() {
                problems.push("an error must have a type and a message".into());
            }
            // "error:T" means no report; one that landed is named.
            let class = match new {
                0 => format!("error:{error_type}"),
                1 => format!("error:{error_type}, report landed"),
                n => {
                    problems.push(format!("an error after {n} accepted reports"));
                    format!("error:{error_type}, {n} reports")
                }
            };
            (class, error_message.clone())
        }
        other => {
            problems.push(format!("no defined outcome: {other:?}"));
            (format!("{other:?}"), String::new())
        }
    }
}

/// Publishes SNS (moto, behind the stand-in) accepted so far.
fn accepted_publishes(rig: &Rig) -> usize {
    rig.standin
        .calls_of("Publish")
        .iter()
        .filter(|c| c.status == 200)
        .count()
}

fn classify_notifier(
    rig: &Rig,
    hits_before: usize,
    published_before: usize,
    inv: &Invocation,
    problems: &mut Vec<String>,
) -> (String, String) {
    match inv {
        Invocation::Response(v) => match v["decision"].as_str() {
            Some("sent") => {
                let results: Vec<&str> = v["deliveries"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|d| d["result"].as_str()).collect())
                    .unwrap_or_default();
                if results.is_empty() || results.contains(&"failed") {
                    problems.push(format!("sent without every destination delivered: {v}"));
                }
                let fresh = results.iter().filter(|r| **r == "delivered").count();
                // Per destination, this round: exactly one request (the
                // webhook) or accepted publish (SNS) when it says
                // delivered, none when it was delivered before.
                let hits = rig.server.hits() - hits_before;
                let published = accepted_publishes(rig) - published_before;
                for d in v["deliveries"].as_array().into_iter().flatten() {
                    let seen = match d["kind"].as_str() {
                        Some("sns") => published,
                        _ => hits,
                    };
                    let want = usize::from(d["result"] == "delivered");
                    if seen != want {
                        problems.push(format!(
                            "{} says {} but got the event {seen} time(s)",
                            d["destination"], d["result"]
                        ));
                    }
                }
                let class = if fresh == results.len() {
                    "delivered"
                } else if fresh == 0 {
                    "already-delivered"
                } else {
                    "partly-delivered"
                };
                let topic = rig.topic.as_deref().unwrap_or_default();
                (
                    class.to_owned(),
                    format!(
                        "{} to webhook + SNS {}",
                        v["title"].as_str().unwrap_or_default(),
                        topic.rsplit(':').next().unwrap_or_default()
                    ),
                )
            }
            Some("quiet") => {
                let reason = v["reason"].as_str().unwrap_or_default();
                if reason.is_empty() {
                    problems.push(format!("quiet without a reason: {v}"));
                }
                if !rig.lambda.logs().contains(reason) {
                    problems.push(format!("the reason is not logged: {reason}"));
                }
                ("quiet".to_owned(), reason.to_owned())
            }
            _ => {
                problems.push(format!("undefined answer: {v}"));
                ("undefined".to_owned(), v.to_string())
            }
        },
        Invocation::Error {
            error_type,
            error_message,
        } => {
            if error_message.is_empty() {
                problems.push("an error must have a message".into());
            }
            (format!("error:{error_type}"), error_message.clone())
        }
        other => {
            problems.push(format!("no defined outcome: {other:?}"));
            (format!("{other:?}"), String::new())
        }
    }
}

// -------------------------------------------------------------------- test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_survives_every_fault() {
    let started = Instant::now();
    // Release binaries must exist before anything runs concurrently.
    for f in Func::ALL {
        paths::function_binary(f.name());
    }
    paths::function_binary("dead-letter");
    let only = std::env::var("TOLLGATE_FAULT_MATRIX_ONLY").ok();
    let gate = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    // Invocations hold non-Send state: cells are local tasks of one LocalSet
    // (the servers they start still run on the runtime's workers).
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for (row, kind) in KINDS.iter().enumerate() {
        for (col, func) in Func::ALL.into_iter().enumerate() {
            if only.as_deref().is_some_and(|o| !kind.key.contains(o))
                || not_applicable(func, kind.key)
            {
                continue;
            }
            let gate = gate.clone();
            let key = kind.key;
            tasks.push((
                row,
                col,
                local.spawn_local(async move {
                    let _permit = gate.acquire_owned().await.expect("semaphore");
                    run_cell(func, key).await
                }),
            ));
        }
    }
    let mut grid: Vec<[Option<Observed>; 4]> =
        KINDS.iter().map(|_| [None, None, None, None]).collect();
    let mut failures = Vec::new();
    let mut done = Vec::new();
    local
        .run_until(async {
            for (row, col, task) in tasks {
                done.push((row, col, task.await));
            }
        })
        .await;
    for (row, col, result) in done {
        let kind = &KINDS[row];
        let func = Func::ALL[col];
        let mut obs = match result {
            Ok(o) => o,
            Err(e) => Observed {
                class: "panicked".into(),
                detail: e.to_string(),
                elapsed: Duration::ZERO,
                problems: vec![format!("the cell panicked: {e}")],
                logs: String::new(),
            },
        };
        if obs.class != kind.expect[col] {
            obs.problems.insert(
                0,
                format!("expected {}, observed {}", kind.expect[col], obs.class),
            );
        }
        if !obs.problems.is_empty() {
            failures.push(format!(
                "{} × {}: {}\n  detail: {}\n  logs:\n{}",
                kind.key,
                func.name(),
                obs.problems.join("\n  "),
                obs.detail,
                obs.logs.chars().take(4000).collect::<String>()
            ));
        }
        grid[row][col] = Some(obs);
    }
    let cells = grid.iter().flatten().flatten().count();
    let in_runtime = in_runtime(&grid);
    eprintln!(
        "fault matrix: {cells} cells in {:?}, {} failed; {in_runtime} end inside lambda_runtime \
         before Tollgate's code, {} exercise it",
        started.elapsed(),
        failures.len(),
        cells - in_runtime
    );
    if std::env::var_os("TOLLGATE_WRITE_FAULT_TABLE").is_some() && only.is_none() {
        let path = paths::workspace_root().join("docs/fault-matrix.md");
        std::fs::write(&path, table(&grid, started.elapsed())).expect("write docs/fault-matrix.md");
        eprintln!("wrote {}", path.display());
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(only.is_some() || cells >= 15 * Func::ALL.len());
}

/// The error type of the cells `lambda_runtime` rejects before any
/// Tollgate code runs.
const RUNTIME_REJECTS: &str = "lambda_runtime::deserializer";

/// Cells that ended inside `lambda_runtime` ([`RUNTIME_REJECTS`]).
fn in_runtime(grid: &[[Option<Observed>; 4]]) -> usize {
    grid.iter()
        .flatten()
        .flatten()
        .filter(|o| o.class.contains(RUNTIME_REJECTS))
        .count()
}

/// docs/fault-matrix.md is generated; this keeps it from drifting from the
/// code between regenerations: its rows are [`KINDS`] in order, with each
/// cell's class as the code expects it.
#[test]
fn the_fault_matrix_page_matches_the_kinds() {
    let page = std::fs::read_to_string(paths::workspace_root().join("docs/fault-matrix.md"))
        .expect("docs/fault-matrix.md");
    let rows: Vec<(String, Vec<String>)> = page
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split(" | ").collect();
            let key = cols[0].trim().trim_matches('`').to_owned();
            let classes = cols[2..]
                .iter()
                .map(|c| c.split('`').nth(1).unwrap_or_default().to_owned())
                .collect();
            (key, classes)
        })
        .collect();
    let expected: Vec<(String, Vec<String>)> = KINDS
        .iter()
        .map(|k| {
            (
                k.key.to_owned(),
                k.expect.iter().map(|e| (*e).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(
        rows, expected,
        "docs/fault-matrix.md is out of date: regenerate it with \
         TOLLGATE_WRITE_FAULT_TABLE=1 cargo test -p tollgate-tests --test fault_matrix"
    );
    assert!(
        page.lines()
            .all(|l| !l.starts_with("| `") || !l.contains('❌')),
        "docs/fault-matrix.md records a failing cell"
    );
}

fn escape(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let short: String = one_line.chars().take(110).collect();
    let short = if one_line.chars().count() > 110 {
        format!("{short}…")
    } else {
        short
    };
    short.replace('|', "\\|")
}

fn table(grid: &[[Option<Observed>; 4]], took: Duration) -> String {
    let mut out = String::new();
    let cells = grid.iter().flatten().flatten().count();
    let passed = grid
        .iter()
        .flatten()
        .flatten()
        .filter(|o| o.problems.is_empty())
        .count();
    let in_runtime = in_runtime(grid);
    let _ = writeln!(
        out,
        "# Fault matrix\n\n\
         Generated by `TOLLGATE_WRITE_FAULT_TABLE=1 cargo test -p tollgate-tests --test fault_matrix`\n\
         (source: `tests/tests/fault_matrix.rs`; do not edit by hand).\n\n\
         Each cell ran the function binary under the local Lambda Runtime API against the AWS stand-in\n\
         and checked the contract: callback functions end before the deadline in exactly one accepted\n\
         report or a defined Lambda error (never two reports, never an answer without one); the\n\
         notifier is delivered (the sinks saw it) or fails the invocation (Lambda retries); approvals\n\
         (a signed Slack click on its function URL) answers HTTP before the deadline, records at most\n\
         one decision per approval, and a refused request changes and calls nothing.\n\n\
         **{passed}/{cells} cells pass** ({} kinds × {} functions, {} not applicable), run concurrently in {:.1} s\n\
         on the binaries `{}`. {in_runtime} of them end inside `lambda_runtime`, whose deserializer\n\
         rejects the bytes before any Tollgate code runs (`malformed-json`, `non-utf8`,\n\
         `deep-event`): they show the runtime's behaviour; the other {} exercise Tollgate's code.\n\n\
         Every report call counts, accepted or not: a cell fails on two different reports in one\n\
         invocation, on a report call for another id, on an answer that reached the Runtime API\n\
         after its deadline, and (notifier) on a destination that got an event twice.\n\n\
         Outcome classes: `report:X` one accepted report X; `already-reported` the duplicate-report\n\
         exception taken as done; `error:T` Lambda invocation error of type T, no report accepted;\n\
         `error:T, report landed` the report was accepted but its answer came after the deadline\n\
         (Lambda retries; the retry finds it already reported);\n\
         `delivered` / `already-delivered` / `quiet` (not a notification, reason logged and returned);\n\
         `init-error:T` init error of type T posted, process exited (nothing to report to);\n\
         `a → b` two deliveries of one event; `n/a` the case does not apply to the function;\n\
         approvals: `answer:S` HTTP S, nothing decided; `approved` / `rejected` one decision recorded;\n\
         `already-decided` / `expired` the message shows the recorded state; `not-recorded` nothing\n\
         recorded, the clicker told why; `unconfirmed` CodePipeline did not answer either way and the\n\
         clicker is told it may have been recorded and where to check; ECS pause clicks (`ecs-pause-*`):\n\
         `continued` ECS acted once and the message shows who, `not-done` nothing done and the clicker\n\
         told why, `unconfirmed` ECS did not answer either way (the clicker is told it may have been done),\n\
         `nothing-to-decide` the message shows the hook no longer waits.\n\
         Times are the slowest invocation of the cell.\n",
        KINDS.len(),
        Func::ALL.len(),
        KINDS
            .iter()
            .flat_map(|k| k.expect)
            .filter(|e| *e == "n/a")
            .count(),
        took.as_secs_f64(),
        paths::function_binary("notifier")
            .strip_prefix(paths::workspace_root())
            .map(|p| p.display().to_string().replace("notifier", "<function>"))
            .unwrap_or_else(|_| "$TOLLGATE_BIN_DIR".to_owned()),
        cells - in_runtime
    );
    let _ = writeln!(
        out,
        "| kind | input / fault | {} |",
        Func::ALL.map(Func::name).join(" | ")
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (row, kind) in KINDS.iter().enumerate() {
        let cols: Vec<String> = grid[row]
            .iter()
            .zip(kind.expect)
            .map(|(o, expected)| match o {
                Some(o) => format!(
                    "{} `{}` ({:.1} s)",
                    if o.problems.is_empty() { "✅" } else { "❌" },
                    o.class,
                    o.elapsed.as_secs_f64()
                ),
                None if expected == "n/a" => "— `n/a`".into(),
                None => "—".into(),
            })
            .collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            kind.key,
            escape(kind.what),
            cols.join(" | ")
        );
    }
    let _ = writeln!(out, "\n## What each function said\n");
    for (row, kind) in KINDS.iter().enumerate() {
        for (col, func) in Func::ALL.iter().enumerate() {
            if let Some(o) = &grid[row][col] {
                let _ = writeln!(
                    out,
                    "- `{}` × {}: {}",
                    kind.key,
                    func.name(),
                    escape(&o.detail)
                );
            }
        }
    }
    out
}

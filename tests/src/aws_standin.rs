//! The AWS stand-in: one loopback endpoint that real SDK clients reach through
//! `AWS_ENDPOINT_URL`.
//!
//! - CodePipeline `PutJobSuccessResult` / `PutJobFailureResult` /
//!   `PutApprovalResult` and CodeDeploy `PutLifecycleEventHookExecutionStatus`
//!   (awsJson1_1, which moto lacks) are answered here, validated like AWS:
//!   field limits, known job / hook / approval ids, and the real exception on
//!   a second report.
//! - Operations given a scripted answer ([`AwsStandIn::script`]) get it.
//! - Everything else is forwarded unchanged to moto, except Smithy RPC v2
//!   CBOR requests (CloudWatch's SDK), which moto does not read: they are
//!   translated to the service's awsJson 1.0 form and the answer back to
//!   CBOR (`forward_cbor`); `GetMetricData`'s metric math, which moto
//!   leaves empty, is computed over its answer ([`crate::metric_math`]).
//! - Every call is recorded ([`AwsStandIn::calls`]); faults can be injected
//!   per operation ([`AwsStandIn::inject`]).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A fault to inject into an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 400 `ThrottlingException` (awsJson) / `Throttling` (query) / 503 `SlowDown` (S3).
    Throttle,
    /// HTTP 500 `InternalFailure` (`ServiceUnavailableException` body).
    ServerError,
    /// Process the call normally, but answer only after this long (the
    /// result is recorded even if the client gives up waiting).
    Slow(Duration),
    /// HTTP 400 `AccessDeniedException` naming the IAM action.
    AccessDenied,
    /// Close the connection without answering.
    Drop,
}

/// One accepted report (a call that changed state in the stand-in).
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// `PutJobSuccessResult`.
    JobSuccess {
        /// Job id.
        job_id: String,
        /// The request body as sent.
        request: Value,
    },
    /// `PutJobFailureResult`.
    JobFailure {
        /// Job id.
        job_id: String,
        /// `failureDetails.type`.
        failure_type: String,
        /// `failureDetails.message`.
        message: String,
    },
    /// `PutLifecycleEventHookExecutionStatus`.
    Hook {
        /// Deployment id.
        deployment_id: String,
        /// Hook execution id.
        execution_id: String,
        /// `Succeeded` or `Failed`.
        status: String,
    },
    /// `PutApprovalResult`.
    Approval {
        /// Token.
        token: String,
        /// `Approved` or `Rejected`.
        status: String,
        /// Summary.
        summary: String,
    },
    /// `ContinueServiceDeployment`.
    EcsContinue {
        /// The service deployment ARN.
        deployment: String,
        /// The hook id.
        hook: String,
        /// `CONTINUE` or `ROLLBACK`.
        action: String,
    },
    /// `OverrideStageCondition`.
    ConditionOverride {
        /// `pipeline/stage/execution/conditionType`.
        key: String,
    },
}

impl Report {
    /// The job id, hook execution id or approval token the report is for.
    pub fn id(&self) -> &str {
        match self {
            Report::JobSuccess { job_id, .. } | Report::JobFailure { job_id, .. } => job_id,
            Report::Hook { execution_id, .. } => execution_id,
            Report::Approval { token, .. } => token,
            Report::EcsContinue { hook, .. } => hook,
            Report::ConditionOverride { key } => key,
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Operation name (`PutJobSuccessResult`, `DescribeServices`, `s3:GET`, …).
    pub operation: String,
    /// HTTP status answered (0 when the connection was dropped).
    pub status: u16,
    /// Error code answered, if any.
    pub error_code: Option<String>,
    /// The request body: JSON when it was JSON, otherwise its text (lossy
    /// UTF-8, first 256 KiB), e.g. a query-protocol form or an S3 object.
    pub request: Value,
    /// Whether moto answered it.
    pub forwarded: bool,
    /// The access key id that signed the request (from `Authorization`), to
    /// prove which credentials a call used.
    pub access_key_id: Option<String>,
    /// When the stand-in received it.
    pub at: Instant,
}

#[derive(Debug)]
struct FaultRule {
    operation: String,
    fault: Fault,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<String, bool>,
    /// Each registered job's action execution: (status, start epoch ms).
    actions: HashMap<String, (String, i64)>,
    deployments: HashSet<String>,
    hooks: HashMap<(String, String), bool>,
    approvals: HashMap<String, bool>,
    /// Manual approval actions by token (`register_approval_action`).
    approval_actions: HashMap<String, ApprovalAction>,
    /// Finished actions with output variables, listed beside a pipeline's
    /// approval actions (`register_action_output`).
    action_outputs: Vec<ActionOutputRecord>,
    /// ECS service deployments paused at a hook, by ARN
    /// (`register_ecs_pause`); moto has no service deployments.
    ecs_pauses: HashMap<String, EcsPause>,
    /// Stage conditions by (pipeline, stage, `BEFORE_ENTRY` / `ON_SUCCESS`)
    /// (`register_stage_condition`); moto has no conditions.
    stage_conditions: HashMap<(String, String, String), StageCondition>,
    /// ECS service revisions by ARN (`register_service_revision`); moto
    /// has no `DescribeServiceRevisions`.
    service_revisions: HashMap<String, Value>,
    faults: Vec<FaultRule>,
    scripts: HashMap<String, VecDeque<(u16, Value)>>,
    calls: Vec<Call>,
    reports: Vec<Report>,
}

/// A manual approval action as `GetPipelineState` shows it.
#[derive(Debug, Clone)]
struct ApprovalAction {
    pipeline: String,
    stage: String,
    action: String,
    execution: String,
    status: String,
    summary: Option<String>,
    error: Option<String>,
    changed_at: f64,
}

/// A finished action execution with output variables, as
/// `ListActionExecutions` shows it.
#[derive(Debug, Clone)]
struct ActionOutputRecord {
    pipeline: String,
    execution: String,
    stage: String,
    action: String,
    namespace: Option<String>,
    variables: Value,
}

/// A stage condition as `GetPipelineState` shows it.
#[derive(Debug, Clone)]
struct StageCondition {
    execution: String,
    status: String,
    /// (rule name, status, summary)
    rules: Vec<(String, String, String)>,
    changed_at: f64,
}

/// An ECS service deployment with one `PAUSE` lifecycle hook, as
/// `DescribeServiceDeployments` shows it.
#[derive(Debug, Clone)]
struct EcsPause {
    hook: String,
    status: String,
    hook_status: String,
    expires_at: f64,
    updated_at: f64,
}

fn epoch_secs_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The running stand-in. Stops when dropped.
#[derive(Debug)]
pub struct AwsStandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AwsStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    state: Arc<Mutex<State>>,
    moto: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl AwsStandIn {
    /// Starts the stand-in on a free loopback port, forwarding to `moto` (if given).
    pub async fn start(moto: Option<&crate::Moto>) -> AwsStandIn {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::new(Shared {
            state: state.clone(),
            moto: moto.map(|m| m.url()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        AwsStandIn {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Environment for a function (or SDK client) to use this endpoint with
    /// fake credentials and no instance metadata.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_ACCESS_KEY_ID", "AKIASTANDINFUNCTION1".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "standin-function-role-secret".to_owned(),
            ),
            (
                "AWS_SESSION_TOKEN",
                "standin-function-role-token".to_owned(),
            ),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// An SDK config pointing at this endpoint (for tests that call AWS
    /// directly: seeding moto, or driving adapters).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let creds = aws_credential_types::Credentials::new(
            "AKIASTANDINTEST00001",
            "standin-test-secret",
            None,
            None,
            "standin",
        );
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.url())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .load()
            .await
    }

    /// Makes `job_id` a known, pending CodePipeline job.
    ///
    /// Its action execution (`GetJobDetails` / `ListActionExecutions`, as
    /// CodePipeline answers them) is `InProgress` until the job is reported
    /// finally: `Succeeded` after a success without a continuation token,
    /// `Failed` after a failure.
    pub fn register_job(&self, job_id: &str) {
        let mut s = lock(&self.state);
        s.jobs.insert(job_id.to_owned(), false);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        s.actions
            .insert(job_id.to_owned(), ("InProgress".to_owned(), now_ms));
    }

    /// Sets the status of a registered job's action execution (e.g.
    /// `Abandoned` for a superseded run).
    pub fn set_action_status(&self, job_id: &str, status: &str) {
        if let Some(a) = lock(&self.state).actions.get_mut(job_id) {
            a.0 = status.to_owned();
        }
    }

    /// Makes a CodeDeploy deployment and one of its hook executions known.
    pub fn register_hook(&self, deployment_id: &str, execution_id: &str) {
        let mut s = lock(&self.state);
        s.deployments.insert(deployment_id.to_owned());
        s.hooks
            .insert((deployment_id.to_owned(), execution_id.to_owned()), false);
    }

    /// Makes a manual-approval token known.
    pub fn register_approval(&self, token: &str) {
        lock(&self.state).approvals.insert(token.to_owned(), false);
    }

    /// Makes a manual approval action of `pipeline` / `stage` / `action`
    /// waiting (`InProgress`) in pipeline execution `execution` with
    /// `token`: `GetPipelineState` shows it with its token (the latest one
    /// registered for that action wins), and `PutApprovalResult` accepts
    /// the token only for that action and only while it waits.
    pub fn register_approval_action(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
        execution: &str,
        token: &str,
    ) {
        let mut s = lock(&self.state);
        s.approvals.insert(token.to_owned(), false);
        s.approval_actions.insert(
            token.to_owned(),
            ApprovalAction {
                pipeline: pipeline.to_owned(),
                stage: stage.to_owned(),
                action: action.to_owned(),
                execution: execution.to_owned(),
                status: "InProgress".to_owned(),
                summary: None,
                error: None,
                changed_at: epoch_secs_f64(),
            },
        );
    }

    /// Records that the action `stage` / `action` (variable namespace
    /// `namespace`) of `pipeline`'s execution `execution` succeeded with
    /// these output variables: `ListActionExecutions` of that execution
    /// lists it (with `input.namespace` and `output.outputVariables`)
    /// beside the pipeline's approval actions.
    pub fn register_action_output(
        &self,
        pipeline: &str,
        execution: &str,
        stage: &str,
        action: &str,
        namespace: Option<&str>,
        variables: &[(&str, &str)],
    ) {
        let variables: serde_json::Map<String, Value> = variables
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        lock(&self.state).action_outputs.push(ActionOutputRecord {
            pipeline: pipeline.to_owned(),
            execution: execution.to_owned(),
            stage: stage.to_owned(),
            action: action.to_owned(),
            namespace: namespace.map(str::to_owned),
            variables: Value::Object(variables),
        });
    }

    /// Makes an ECS service deployment `deployment` (its ARN) known,
    /// `IN_PROGRESS` and paused at the `PAUSE` hook `hook`
    /// (`AWAITING_ACTION`, timing out in an hour with `ROLLBACK`).
    /// `DescribeServiceDeployments` shows it; `ContinueServiceDeployment`
    /// acts on it once, while the hook waits, as ECS does.
    pub fn register_ecs_pause(&self, deployment: &str, hook: &str) {
        let now = epoch_secs_f64();
        lock(&self.state).ecs_pauses.insert(
            deployment.to_owned(),
            EcsPause {
                hook: hook.to_owned(),
                status: "IN_PROGRESS".to_owned(),
                hook_status: "AWAITING_ACTION".to_owned(),
                expires_at: now + 3600.0,
                updated_at: now,
            },
        );
    }

    /// Makes `condition` (`BEFORE_ENTRY` or `ON_SUCCESS`) of `stage` in
    /// `pipeline` known with `status` (`InProgress`, `Succeeded`, `Failed`,
    /// …) for pipeline execution `execution`, its rules
    /// `(name, status, summary)`: `GetPipelineState` shows it (an entry
    /// condition with `execution` as the stage's inbound execution, an
    /// on-success condition with it as the latest), and
    /// `OverrideStageCondition` accepts it only while it is `InProgress`
    /// for that execution.
    pub fn register_stage_condition(
        &self,
        pipeline: &str,
        stage: &str,
        condition: &str,
        execution: &str,
        status: &str,
        rules: &[(&str, &str, &str)],
    ) {
        lock(&self.state).stage_conditions.insert(
            (pipeline.to_owned(), stage.to_owned(), condition.to_owned()),
            StageCondition {
                execution: execution.to_owned(),
                status: status.to_owned(),
                rules: rules
                    .iter()
                    .map(|(n, st, su)| ((*n).to_owned(), (*st).to_owned(), (*su).to_owned()))
                    .collect(),
                changed_at: epoch_secs_f64(),
            },
        );
    }

    /// A registered stage condition's status now.
    pub fn stage_condition_status(
        &self,
        pipeline: &str,
        stage: &str,
        condition: &str,
    ) -> Option<String> {
        lock(&self.state)
            .stage_conditions
            .get(&(pipeline.to_owned(), stage.to_owned(), condition.to_owned()))
            .map(|c| c.status.clone())
    }

    /// Makes an ECS service revision known to `DescribeServiceRevisions`:
    /// `revision` is its JSON as ECS answers it (`loadBalancers`,
    /// `resolvedConfiguration`, …); its ARN is set from `arn`.
    pub fn register_service_revision(&self, arn: &str, mut revision: Value) {
        revision["serviceRevisionArn"] = json!(arn);
        lock(&self.state)
            .service_revisions
            .insert(arn.to_owned(), revision);
    }

    /// Sets a registered ECS deployment's and hook's status (e.g.
    /// `ROLLBACK_IN_PROGRESS` / `TIMED_OUT` for a hook that timed out).
    pub fn set_ecs_pause(&self, deployment: &str, status: &str, hook_status: &str) {
        if let Some(p) = lock(&self.state).ecs_pauses.get_mut(deployment) {
            p.status = status.to_owned();
            p.hook_status = hook_status.to_owned();
            p.updated_at = epoch_secs_f64();
        }
    }

    /// Lets a registered approval expire, as CodePipeline does after its
    /// timeout (7 days): the action fails and its token is refused.
    pub fn expire_approval(&self, token: &str) {
        let mut s = lock(&self.state);
        if let Some(a) = s.approval_actions.get_mut(token) {
            a.status = "Failed".to_owned();
            a.error = Some("The approval action timed out".to_owned());
            a.changed_at = epoch_secs_f64();
        }
        s.approvals.insert(token.to_owned(), true);
    }

    /// Injects `fault` into the next `times` calls of `operation` (every call
    /// when `None`). Faults stack in the order given.
    pub fn inject(&self, operation: &str, fault: Fault, times: Option<u32>) {
        lock(&self.state).faults.push(FaultRule {
            operation: operation.to_owned(),
            fault,
            remaining: times,
        });
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Answers `operation` (awsJson protocols) with these bodies in turn
    /// (HTTP 200); the last one repeats. For what moto lacks or cannot be
    /// made to say (e.g. ECS rollout states, CodeDeploy deployment targets).
    pub fn script(&self, operation: &str, answers: Vec<Value>) {
        self.script_with_status(operation, answers.into_iter().map(|a| (200, a)).collect());
    }

    /// Like [`AwsStandIn::script`] with explicit statuses (an error answer is
    /// `(400, {"__type": "…", "message": "…"})`).
    pub fn script_with_status(&self, operation: &str, answers: Vec<(u16, Value)>) {
        lock(&self.state)
            .scripts
            .insert(operation.to_owned(), answers.into_iter().collect());
    }

    /// Every call received so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    /// Calls of one operation.
    pub fn calls_of(&self, operation: &str) -> Vec<Call> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .cloned()
            .collect()
    }

    /// Every accepted report so far.
    pub fn reports(&self) -> Vec<Report> {
        lock(&self.state).reports.clone()
    }

    /// Accepted reports for one job id / hook execution id / token.
    pub fn reports_for(&self, id: &str) -> Vec<Report> {
        lock(&self.state)
            .reports
            .iter()
            .filter(|r| r.id() == id)
            .cloned()
            .collect()
    }
}

fn take_fault(state: &Mutex<State>, operation: &str) -> Option<Fault> {
    let mut s = lock(state);
    let idx = s
        .faults
        .iter()
        .position(|r| r.operation == operation && r.remaining != Some(0))?;
    let rule = &mut s.faults[idx];
    if let Some(n) = rule.remaining.as_mut() {
        *n -= 1;
    }
    Some(rule.fault.clone())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Json,
    Query,
    RestXml,
    /// Smithy RPC v2 CBOR: `POST /service/<Service>/operation/<Operation>`.
    Cbor,
}

/// Operation name and protocol of a request.
fn identify(req: &hyper::http::request::Parts, body: &[u8]) -> (String, Protocol) {
    if req
        .headers
        .get("smithy-protocol")
        .is_some_and(|v| v.as_bytes() == b"rpc-v2-cbor")
    {
        let op = req.uri.path().rsplit('/').next().unwrap_or_default();
        return (op.to_owned(), Protocol::Cbor);
    }
    if let Some(target) = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        let op = target.rsplit('.').next().unwrap_or(target);
        return (op.to_owned(), Protocol::Json);
    }
    let is_form = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let text = String::from_utf8_lossy(body);
        if let Some(action) = text.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            return (action.to_owned(), Protocol::Query);
        }
    }
    (format!("s3:{}", req.method), Protocol::RestXml)
}

type Answer = Result<Response<Full<Bytes>>, std::io::Error>;

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (operation, protocol) = identify(&parts, &body);
    let key = access_key(&parts);
    // JSON bodies as JSON; any other body (query protocol, S3 objects) as
    // its text, so tests can search every byte a function sent.
    let request: Value = if protocol == Protocol::Cbor {
        crate::cbor::decode(&body).unwrap_or_else(Value::String)
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| {
            let cut = &body[..body.len().min(256 * 1024)];
            Value::String(String::from_utf8_lossy(cut).into_owned())
        })
    };
    let fault = take_fault(&shared.state, &operation);

    let mut delay = None;
    match fault {
        Some(Fault::Drop) => {
            record(&shared.state, &key, &operation, 0, None, request, false);
            return Err(std::io::Error::other("fault injected: connection dropped"));
        }
        Some(Fault::Slow(d)) => delay = Some(d),
        Some(f) => {
            let (status, code, message) = match f {
                Fault::Throttle if protocol == Protocol::RestXml => (
                    503,
                    "SlowDown",
                    "Please reduce your request rate.".to_owned(),
                ),
                Fault::Throttle if protocol == Protocol::Query => {
                    (400, "Throttling", "Rate exceeded".to_owned())
                }
                Fault::Throttle => (400, "ThrottlingException", "Rate exceeded".to_owned()),
                Fault::ServerError => (
                    500,
                    "ServiceUnavailableException",
                    "Service is unavailable; try again".to_owned(),
                ),
                Fault::AccessDenied => (
                    403,
                    "AccessDeniedException",
                    format!(
                        "User: arn:aws:sts::111111111111:assumed-role/tollgate-fn/fn is not authorized to perform: {}:{operation} because no identity-based policy allows the {}:{operation} action",
                        service_prefix(&parts),
                        service_prefix(&parts)
                    ),
                ),
                Fault::Slow(_) | Fault::Drop => unreachable_fault(),
            };
            let status = if f == Fault::AccessDenied
                && matches!(protocol, Protocol::Json | Protocol::Cbor)
            {
                400
            } else {
                status
            };
            record(
                &shared.state,
                &key,
                &operation,
                status,
                Some(code.to_owned()),
                request,
                false,
            );
            return Ok(error_response(protocol, status, code, &message));
        }
        None => {}
    }

    let answer = if let Some(answer) = own_answer(&shared.state, &operation, &request) {
        let (status, code) = (
            answer.0,
            answer
                .1
                .get("__type")
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        record(
            &shared.state,
            &key,
            &operation,
            status,
            code.clone(),
            request,
            false,
        );
        let own_protocol = if protocol == Protocol::Cbor {
            Protocol::Cbor
        } else {
            Protocol::Json
        };
        match code {
            Some(code) => error_response(
                own_protocol,
                status,
                &code,
                answer
                    .1
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            ),
            None if own_protocol == Protocol::Cbor => cbor_response(status, &answer.1),
            None => json_response(status, &answer.1),
        }
    } else if let Some(moto) = &shared.moto {
        let forwarded = if protocol == Protocol::Cbor {
            forward_cbor(&shared.client, moto, &parts, &request).await
        } else {
            forward(&shared.client, moto, parts, body).await
        };
        let (status, code) = match &forwarded {
            Ok(r) => (r.status().as_u16(), None),
            Err(_) => (502, Some("StandInForwardFailed".to_owned())),
        };
        record(&shared.state, &key, &operation, status, code, request, true);
        match forwarded {
            Ok(r) => r,
            Err(e) => error_response(protocol, 502, "StandInForwardFailed", &e),
        }
    } else {
        record(
            &shared.state,
            &key,
            &operation,
            501,
            Some("NotImplemented".into()),
            request,
            false,
        );
        error_response(
            protocol,
            501,
            "NotImplemented",
            &format!("the stand-in has no moto behind it and does not answer {operation}"),
        )
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    Ok(answer)
}

fn unreachable_fault() -> (u16, &'static str, String) {
    (
        500,
        "InternalFailure",
        "stand-in fault handling error".to_owned(),
    )
}

fn service_prefix(parts: &hyper::http::request::Parts) -> &'static str {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if target.starts_with("CodePipeline") {
        "codepipeline"
    } else if target.starts_with("CodeDeploy") {
        "codedeploy"
    } else if target.starts_with("AmazonEC2ContainerService") {
        "ecs"
    } else if target.starts_with("Logs_") {
        "logs"
    } else if target.starts_with("AmazonSSM") {
        "ssm"
    } else if target.starts_with("secretsmanager") {
        "secretsmanager"
    } else if parts.uri.path().contains("/GraniteServiceVersion20100801/") {
        "cloudwatch"
    } else {
        "aws"
    }
}

fn record(
    state: &Mutex<State>,
    access_key_id: &Option<String>,
    operation: &str,
    status: u16,
    error_code: Option<String>,
    request: Value,
    forwarded: bool,
) {
    lock(state).calls.push(Call {
        operation: operation.to_owned(),
        status,
        error_code,
        request,
        forwarded,
        access_key_id: access_key_id.clone(),
        at: Instant::now(),
    });
}

/// `Credential=<key>/…` from a SigV4 `Authorization` header.
fn access_key(parts: &hyper::http::request::Parts) -> Option<String> {
    let auth = parts.headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    Some(cred.split('/').next()?.to_owned())
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    moto: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri: hyper::Uri = format!("{moto}{path}")
        .parse()
        .map_err(|e| format!("bad uri: {e}"))?;
    let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let req = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("moto did not answer: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Forwards a Smithy RPC v2 CBOR request to moto in the service's awsJson
/// 1.0 form (`X-Amz-Target: <Service>.<Operation>`, the same member names,
/// timestamps as epoch seconds), and turns moto's JSON answer back into
/// CBOR (timestamps as tag 1, doubles as doubles).
async fn forward_cbor(
    client: &Client<HttpConnector, Full<Bytes>>,
    moto: &str,
    parts: &hyper::http::request::Parts,
    request: &Value,
) -> Result<Response<Full<Bytes>>, String> {
    let mut segments = parts.uri.path().rsplit('/');
    let operation = segments.next().unwrap_or_default();
    let service = segments.nth(1).unwrap_or_default();
    let uri: hyper::Uri = format!("{moto}/")
        .parse()
        .map_err(|e| format!("bad uri: {e}"))?;
    let mut builder = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("{service}.{operation}"));
    for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
        if let Some(v) = parts.headers.get(name) {
            builder = builder.header(name, v);
        }
    }
    let req = builder
        .body(Full::new(Bytes::from(request.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("moto did not answer: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let mut answer: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    if status < 300 && operation == "GetMetricData" {
        // moto answers no metric math beyond a bare id.
        crate::metric_math::complete(request, &mut answer);
    }
    if status >= 300 {
        let code = answer
            .get("__type")
            .and_then(Value::as_str)
            .unwrap_or("InternalFailure");
        let code = code.rsplit('#').next().unwrap_or(code);
        let message = answer
            .get("message")
            .or_else(|| answer.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Ok(error_response(Protocol::Cbor, status, code, message));
    }
    Ok(cbor_response(status, &answer))
}

fn cbor_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header("content-type", "application/cbor")
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("x-amzn-requestid", request_id())
        .body(Full::new(Bytes::from(crate::cbor::encode(body))))
        .unwrap_or_default()
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", request_id())
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn error_response(
    protocol: Protocol,
    status: u16,
    code: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    if protocol == Protocol::Cbor {
        let mut r = cbor_response(status, &json!({"__type": code, "message": message}));
        if let Ok(v) = hyper::header::HeaderValue::from_str(code) {
            r.headers_mut().insert("x-amzn-errortype", v);
        }
        return r;
    }
    let (content_type, body) = match protocol {
        Protocol::Json | Protocol::Cbor => (
            "application/x-amz-json-1.1",
            json!({"__type": code, "message": message}).to_string(),
        ),
        Protocol::Query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                xml_escape(message),
                request_id()
            ),
        ),
        Protocol::RestXml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
                xml_escape(message),
                request_id()
            ),
        ),
    };
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .header("x-amzn-errortype", code)
        .header("x-amzn-requestid", request_id())
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!("standin-{:08}", N.fetch_add(1, Ordering::Relaxed))
}

/// Answers the operations the stand-in implements itself (or has a script
/// for). `None` means "forward to moto".
fn own_answer(state: &Mutex<State>, operation: &str, req: &Value) -> Option<(u16, Value)> {
    let mut s = lock(state);
    // A registered job's own action execution is answered from the job's
    // state even where a script answers the others (the notifier's reads).
    if operation == "ListActionExecutions"
        && let Some(answer) = list_action_executions(&s, req)
    {
        return Some((200, answer));
    }
    if let Some(queue) = s.scripts.get_mut(operation) {
        let answer = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        if let Some(a) = answer {
            return Some(a);
        }
    }
    let result = match operation {
        "PutJobSuccessResult" => put_job_success(&mut s, req),
        "PutJobFailureResult" => put_job_failure(&mut s, req),
        "PutLifecycleEventHookExecutionStatus" => put_hook_status(&mut s, req),
        "PutApprovalResult" => put_approval(&mut s, req),
        "DescribeServiceDeployments" => describe_service_deployments(&s, req),
        "DescribeServiceRevisions" => describe_service_revisions(&s, req),
        "ContinueServiceDeployment" => continue_service_deployment(&mut s, req),
        "OverrideStageCondition" => override_stage_condition(&mut s, req),
        // Not a pipeline with a registered approval (None): moto answers.
        "GetPipelineState" => pipeline_state(&s, req)?,
        "GetJobDetails" => job_details(&s, req),
        // Not a registered job's execution (answered above): moto answers.
        "ListActionExecutions" => return None,
        _ => return None,
    };
    Some(match result {
        Ok(body) => (200, body),
        Err((code, message)) => (400, json!({"__type": code, "message": message})),
    })
}

type Rejection = (&'static str, String);

const EXECUTION_PREFIX: &str = "standin-execution-";
const ACTION_EXECUTION_PREFIX: &str = "standin-action-execution-";

/// `GetJobDetails` for a registered job: its pipeline context (and, as
/// CodePipeline does, artifact credentials, which the caller must ignore).
fn job_details(s: &State, req: &Value) -> Result<Value, Rejection> {
    let job_id = req.get("jobId").and_then(Value::as_str).unwrap_or_default();
    if !s.actions.contains_key(job_id) {
        return Err((
            "JobNotFoundException",
            format!("The job {job_id} was not found"),
        ));
    }
    Ok(
        json!({"jobDetails": {"id": job_id, "accountId": "123456789012", "data": {
            "pipelineContext": {
                "pipelineName": "standin-pipeline",
                "pipelineArn": "arn:aws:codepipeline:us-east-1:123456789012:standin-pipeline",
                "pipelineExecutionId": format!("{EXECUTION_PREFIX}{job_id}"),
                "stage": {"name": "Deploy"},
                "action": {"name": "Deploy", "actionExecutionId": format!("{ACTION_EXECUTION_PREFIX}{job_id}")}
            },
            "artifactCredentials": {"accessKeyId": "ASIASTANDINJOBDETAILS", "secretAccessKey": "standin-job-details-secret", "sessionToken": "standin-job-details-token"}
        }}}),
    )
}

/// `ListActionExecutions` filtered to a registered job's pipeline
/// execution; `None` for any other execution.
fn list_action_executions(s: &State, req: &Value) -> Option<Value> {
    let execution = req
        .pointer("/filter/pipelineExecutionId")
        .and_then(Value::as_str)?;
    // A pipeline with registered approval actions: that execution's.
    let pipeline = req
        .get("pipelineName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if s.approval_actions.values().any(|a| a.pipeline == pipeline) {
        let started = epoch_secs_f64() - 60.0;
        let finished: Vec<Value> = s
            .action_outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.pipeline == pipeline && o.execution == execution)
            .map(|(n, o)| {
                let mut input = json!({"actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"}});
                if let Some(ns) = &o.namespace {
                    input["namespace"] = json!(ns);
                }
                json!({
                    "pipelineExecutionId": execution,
                    "actionExecutionId": format!("{ACTION_EXECUTION_PREFIX}output-{n}"),
                    "pipelineVersion": 1,
                    "stageName": o.stage,
                    "actionName": o.action,
                    "startTime": started + n as f64,
                    "lastUpdateTime": started + n as f64 + 1.0,
                    "status": "Succeeded",
                    "input": input,
                    "output": {"outputVariables": o.variables},
                })
            })
            .collect();
        let details: Vec<Value> = s
            .approval_actions
            .iter()
            .filter(|(_, a)| a.pipeline == pipeline && a.execution == execution)
            .map(|(token, a)| {
                json!({
                    "pipelineExecutionId": execution,
                    "actionExecutionId": format!("{ACTION_EXECUTION_PREFIX}{token}"),
                    "pipelineVersion": 1,
                    "stageName": a.stage,
                    "actionName": a.action,
                    "startTime": a.changed_at,
                    "lastUpdateTime": a.changed_at,
                    "status": a.status,
                })
            })
            .chain(finished)
            .collect();
        return Some(json!({ "actionExecutionDetails": details }));
    }
    let job_id = execution.strip_prefix(EXECUTION_PREFIX)?;
    let (status, started_ms) = s.actions.get(job_id)?;
    Some(json!({"actionExecutionDetails": [{
        "pipelineExecutionId": execution,
        "actionExecutionId": format!("{ACTION_EXECUTION_PREFIX}{job_id}"),
        "pipelineVersion": 1,
        "stageName": "Deploy",
        "actionName": "Deploy",
        "startTime": *started_ms as f64 / 1000.0,
        "lastUpdateTime": *started_ms as f64 / 1000.0,
        "status": status
    }]}))
}

fn length_error(field: &str, min: usize, max: usize, len: usize) -> Rejection {
    let constraint = if len < min {
        format!("Member must have length greater than or equal to {min}")
    } else {
        format!("Member must have length less than or equal to {max}")
    };
    (
        "ValidationException",
        format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: {constraint}"
        ),
    )
}

fn check_len(
    req: &Value,
    pointer: &str,
    field: &str,
    min: usize,
    max: usize,
    required: bool,
) -> Result<(), Rejection> {
    match req.pointer(pointer) {
        None | Some(Value::Null) if !required => Ok(()),
        None | Some(Value::Null) => Err((
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
            ),
        )),
        Some(Value::String(s)) => {
            let len = s.chars().count();
            if len < min || len > max {
                Err(length_error(field, min, max, len))
            } else {
                Ok(())
            }
        }
        Some(_) => Err((
            "SerializationException",
            format!("{field} must be a string"),
        )),
    }
}

fn take_job(s: &mut State, req: &Value) -> Result<String, Rejection> {
    let job_id = req
        .get("jobId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match s.jobs.get(&job_id) {
        None => Err((
            "JobNotFoundException",
            format!("The job {job_id} was not found"),
        )),
        Some(true) => Err((
            "InvalidJobStateException",
            format!(
                "Job {job_id} is not in a valid state for this operation: it already has a result"
            ),
        )),
        Some(false) => Ok(job_id),
    }
}

fn put_job_success(s: &mut State, req: &Value) -> Result<Value, Rejection> {
    check_len(
        req,
        "/executionDetails/summary",
        "executionDetails.summary",
        1,
        2048,
        false,
    )?;
    check_len(
        req,
        "/executionDetails/externalExecutionId",
        "executionDetails.externalExecutionId",
        1,
        1500,
        false,
    )?;
    check_len(
        req,
        "/continuationToken",
        "continuationToken",
        1,
        2048,
        false,
    )?;
    if let Some(p) = req.pointer("/executionDetails/percentComplete") {
        let ok = p.as_i64().is_some_and(|p| (0..=100).contains(&p));
        if !ok {
            return Err((
                "ValidationException",
                "1 validation error detected: Value at 'executionDetails.percentComplete' failed to satisfy constraint: Member must have value between 0 and 100".into(),
            ));
        }
    }
    if let Some(vars) = req.get("outputVariables").and_then(Value::as_object) {
        if req.get("continuationToken").is_some() {
            return Err((
                "ValidationException",
                "outputVariables cannot be set together with a continuationToken".into(),
            ));
        }
        for key in vars.keys() {
            let ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_'));
            if !ok {
                return Err((
                    "ValidationException",
                    format!(
                        "1 validation error detected: Value at 'outputVariables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [A-Za-z0-9@\\-_]+] (key {key:?})"
                    ),
                ));
            }
        }
    }
    let job_id = take_job(s, req)?;
    s.jobs.insert(job_id.clone(), true);
    let continues = req
        .get("continuationToken")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if !continues && let Some(a) = s.actions.get_mut(&job_id) {
        a.0 = "Succeeded".to_owned();
    }
    s.reports.push(Report::JobSuccess {
        job_id,
        request: req.clone(),
    });
    Ok(json!({}))
}

fn put_job_failure(s: &mut State, req: &Value) -> Result<Value, Rejection> {
    check_len(
        req,
        "/failureDetails/message",
        "failureDetails.message",
        1,
        5000,
        true,
    )?;
    check_len(
        req,
        "/failureDetails/externalExecutionId",
        "failureDetails.externalExecutionId",
        1,
        1500,
        false,
    )?;
    let failure_type = req
        .pointer("/failureDetails/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    const TYPES: &[&str] = &[
        "JobFailed",
        "ConfigurationError",
        "PermissionError",
        "RevisionOutOfSync",
        "RevisionUnavailable",
        "SystemUnavailable",
    ];
    if !TYPES.contains(&failure_type) {
        return Err((
            "ValidationException",
            format!(
                "1 validation error detected: Value '{failure_type}' at 'failureDetails.type' failed to satisfy constraint: Member must satisfy enum value set: {TYPES:?}"
            ),
        ));
    }
    let job_id = take_job(s, req)?;
    s.jobs.insert(job_id.clone(), true);
    if let Some(a) = s.actions.get_mut(&job_id) {
        a.0 = "Failed".to_owned();
    }
    s.reports.push(Report::JobFailure {
        job_id,
        failure_type: failure_type.to_owned(),
        message: req
            .pointer("/failureDetails/message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    });
    Ok(json!({}))
}

fn put_hook_status(s: &mut State, req: &Value) -> Result<Value, Rejection> {
    let deployment_id = req
        .get("deploymentId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let execution_id = req
        .get("lifecycleEventHookExecutionId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let status = req
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !s.deployments.contains(&deployment_id) {
        return Err((
            "DeploymentDoesNotExistException",
            format!("The deployment {deployment_id} could not be found"),
        ));
    }
    let key = (deployment_id.clone(), execution_id.clone());
    match s.hooks.get(&key) {
        None => {
            return Err((
                "InvalidLifecycleEventHookExecutionIdException",
                "A lifecycle event hook is invalid".into(),
            ));
        }
        Some(true) => {
            return Err((
                "LifecycleEventAlreadyCompletedException",
                format!("The lifecycle event hook execution {execution_id} is already completed"),
            ));
        }
        Some(false) => {}
    }
    if status != "Succeeded" && status != "Failed" {
        return Err((
            "InvalidLifecycleEventHookExecutionStatusException",
            format!(
                "The result of a Lambda validation function must be Succeeded or Failed, not {status:?}"
            ),
        ));
    }
    s.hooks.insert(key, true);
    s.reports.push(Report::Hook {
        deployment_id,
        execution_id: execution_id.clone(),
        status,
    });
    Ok(json!({"lifecycleEventHookExecutionId": execution_id}))
}

/// `GetPipelineState` for a pipeline with registered approval actions: each
/// action's latest registration, its token only while it waits.
fn pipeline_state(s: &State, req: &Value) -> Option<Result<Value, Rejection>> {
    let name = req.get("name").and_then(Value::as_str).unwrap_or_default();
    let mut latest: Vec<(&String, &ApprovalAction)> = s
        .approval_actions
        .iter()
        .filter(|(_, a)| a.pipeline == name)
        .collect();
    let has_conditions = s.stage_conditions.keys().any(|(p, _, _)| p == name);
    if latest.is_empty() && !has_conditions {
        return None;
    }
    latest.sort_by(|x, y| x.1.changed_at.total_cmp(&y.1.changed_at));
    let mut stages: Vec<(String, Value)> = Vec::new();
    for (token, a) in latest {
        let mut execution = json!({"actionExecutionId": format!("{ACTION_EXECUTION_PREFIX}{token}"),
                                   "status": a.status, "lastStatusChange": a.changed_at});
        if a.status == "InProgress" {
            execution["token"] = json!(token);
        }
        if let Some(summary) = &a.summary {
            execution["summary"] = json!(summary);
        }
        if let Some(e) = &a.error {
            execution["errorDetails"] = json!({"code": "TimeoutError", "message": e});
        }
        let stage = json!({
            "stageName": a.stage,
            "latestExecution": {"pipelineExecutionId": a.execution,
                                 "status": if a.status == "InProgress" { "InProgress" } else { "Stopped" }},
            "actionStates": [{"actionName": a.action, "latestExecution": execution}]
        });
        match stages.iter_mut().find(|(n, _)| *n == a.stage) {
            Some(existing) => existing.1 = stage,
            None => stages.push((a.stage.clone(), stage)),
        }
    }
    add_stage_conditions(s, name, &mut stages);
    Some(Ok(json!({
        "pipelineName": name,
        "pipelineVersion": 1,
        "stageStates": stages.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })))
}

/// Adds the registered stage conditions of `pipeline` to its stages
/// (`beforeEntryConditionState` with the stage's `inboundExecution`,
/// `onSuccessConditionState` with its `latestExecution`), creating a stage
/// not shown yet.
fn add_stage_conditions(s: &State, pipeline: &str, stages: &mut Vec<(String, Value)>) {
    let mut conditions: Vec<(&(String, String, String), &StageCondition)> = s
        .stage_conditions
        .iter()
        .filter(|((p, _, _), _)| p == pipeline)
        .collect();
    conditions.sort_by(|x, y| x.0.cmp(y.0));
    for ((_, stage, kind), c) in conditions {
        let rules: Vec<Value> = c
            .rules
            .iter()
            .map(|(name, status, summary)| {
                json!({"ruleName": name,
                       "latestExecution": {"ruleExecutionId": format!("rule-{name}"), "status": status,
                                           "summary": summary, "lastStatusChange": c.changed_at}})
            })
            .collect();
        let state = json!({
            "latestExecution": {"status": c.status},
            "conditionStates": [{"latestExecution": {"status": c.status, "lastStatusChange": c.changed_at},
                                 "ruleStates": rules}]
        });
        let index = match stages.iter().position(|(n, _)| n == stage) {
            Some(i) => i,
            None => {
                stages.push((stage.clone(), json!({"stageName": stage})));
                stages.len() - 1
            }
        };
        let v = &mut stages[index].1;
        let execution = json!({"pipelineExecutionId": c.execution, "status": "InProgress"});
        if kind == "BEFORE_ENTRY" {
            v["beforeEntryConditionState"] = state;
            v["inboundExecution"] = execution;
        } else {
            v["onSuccessConditionState"] = state;
            v["latestExecution"] = execution;
        }
    }
}

/// `OverrideStageCondition` (moto has none), validated as CodePipeline
/// documents it: the condition type is `BEFORE_ENTRY` or `ON_SUCCESS`, the
/// execution id a UUID; an unknown pipeline or stage is
/// `PipelineNotFoundException` / `StageNotFoundException`; another
/// execution than the condition's is `NotLatestPipelineExecutionException`;
/// a condition not `InProgress` is `ConditionNotOverridableException`.
fn override_stage_condition(s: &mut State, req: &Value) -> Result<Value, Rejection> {
    let field = |f: &str| {
        req.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (pipeline, stage, execution, kind) = (
        field("pipelineName"),
        field("stageName"),
        field("pipelineExecutionId"),
        field("conditionType"),
    );
    if kind != "BEFORE_ENTRY" && kind != "ON_SUCCESS" {
        return Err((
            "ValidationException",
            "1 validation error detected: Value at 'conditionType' failed to satisfy constraint: Member must satisfy enum value set: [BEFORE_ENTRY, ON_SUCCESS]".into(),
        ));
    }
    let uuid = execution.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && execution.chars().all(|c| c == '-' || c.is_ascii_hexdigit());
    if !uuid {
        return Err((
            "ValidationException",
            "1 validation error detected: Value at 'pipelineExecutionId' failed to satisfy constraint: Member must satisfy regular expression pattern".into(),
        ));
    }
    if !s.stage_conditions.keys().any(|(p, _, _)| *p == pipeline) {
        return Err((
            "PipelineNotFoundException",
            format!("Pipeline not found: {pipeline}"),
        ));
    }
    let Some(c) = s
        .stage_conditions
        .get_mut(&(pipeline.clone(), stage.clone(), kind.clone()))
    else {
        return Err((
            "StageNotFoundException",
            format!("Stage not found: {stage}"),
        ));
    };
    if c.execution != execution {
        return Err((
            "NotLatestPipelineExecutionException",
            "The pipeline execution is not the latest one for the stage".into(),
        ));
    }
    if c.status != "InProgress" {
        return Err((
            "ConditionNotOverridableException",
            "Unable to override because the condition does not allow overrides".into(),
        ));
    }
    c.status = "Overridden".to_owned();
    c.changed_at = epoch_secs_f64();
    s.reports.push(Report::ConditionOverride {
        key: format!("{pipeline}/{stage}/{execution}/{kind}"),
    });
    Ok(json!({}))
}

fn put_approval(s: &mut State, req: &Value) -> Result<Value, Rejection> {
    check_len(req, "/result/summary", "result.summary", 0, 512, true)?;
    let status = req
        .pointer("/result/status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if status != "Approved" && status != "Rejected" {
        return Err((
            "ValidationException",
            "1 validation error detected: Value at 'result.status' failed to satisfy constraint: Member must satisfy enum value set: [Approved, Rejected]".into(),
        ));
    }
    let token = req
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(a) = s.approval_actions.get(&token) {
        let named = |field: &str| {
            req.get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if named("pipelineName") != a.pipeline
            || named("stageName") != a.stage
            || named("actionName") != a.action
        {
            return Err((
                "InvalidApprovalTokenException",
                "The approval token is not valid for this action".into(),
            ));
        }
    }
    match s.approvals.get(&token) {
        None => {
            return Err((
                "InvalidApprovalTokenException",
                "The approval token is not valid".into(),
            ));
        }
        Some(true) => {
            return Err((
                "ApprovalAlreadyCompletedException",
                "The approval action has already been approved or rejected".into(),
            ));
        }
        Some(false) => {}
    }
    s.approvals.insert(token.clone(), true);
    if let Some(a) = s.approval_actions.get_mut(&token) {
        a.status = if status == "Approved" {
            "Succeeded"
        } else {
            "Failed"
        }
        .to_owned();
        a.summary = req
            .pointer("/result/summary")
            .and_then(Value::as_str)
            .map(str::to_owned);
        a.changed_at = epoch_secs_f64();
    }
    s.reports.push(Report::Approval {
        token,
        status,
        summary: req
            .pointer("/result/summary")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Ok(json!({"approvedAt": now}))
}

/// `DescribeServiceDeployments` (moto has none): the registered deployments
/// with their pause hook; any other ARN is a `MISSING` failure, as ECS
/// reports it.
fn describe_service_deployments(s: &State, req: &Value) -> Result<Value, Rejection> {
    let arns: Vec<&str> = req
        .get("serviceDeploymentArns")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if arns.is_empty() || arns.len() > 20 {
        return Err((
            "InvalidParameterException",
            "serviceDeploymentArns must hold 1 to 20 ARNs".into(),
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for arn in arns {
        let Some(p) = s.ecs_pauses.get(arn) else {
            failures.push(json!({"arn": arn, "reason": "MISSING"}));
            continue;
        };
        // arn:aws:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>
        let (head, rest) = arn.split_once(":service-deployment/").unwrap_or((arn, ""));
        let mut segs = rest.split('/');
        let (cluster, service) = (segs.next().unwrap_or(""), segs.next().unwrap_or(""));
        found.push(json!({
            "serviceDeploymentArn": arn,
            "serviceArn": format!("{head}:service/{cluster}/{service}"),
            "clusterArn": format!("{head}:cluster/{cluster}"),
            "status": p.status,
            "updatedAt": p.updated_at,
            "lifecycleHookDetails": [{
                "hookId": p.hook,
                "targetType": "PAUSE",
                "status": p.hook_status,
                "expiresAt": p.expires_at,
                "timeoutAction": "ROLLBACK"
            }]
        }));
    }
    Ok(json!({"serviceDeployments": found, "failures": failures}))
}

/// `ContinueServiceDeployment` (moto has none): acts once on a registered
/// deployment's hook while it is `AWAITING_ACTION` and the deployment
/// `IN_PROGRESS`; anything else is refused as ECS does (`ClientException`).
/// The resulting hook status (`SUCCEEDED` after `CONTINUE`, `FAILED` after
/// `ROLLBACK`) and the refusal code are assumed from ECS's API reference,
/// not verified against ECS.
fn continue_service_deployment(s: &mut State, req: &Value) -> Result<Value, Rejection> {
    let field = |name: &str| {
        req.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (arn, hook) = (field("serviceDeploymentArn"), field("hookId"));
    if arn.is_empty() || hook.is_empty() {
        return Err((
            "InvalidParameterException",
            "serviceDeploymentArn and hookId are required".into(),
        ));
    }
    let action = match field("action").as_str() {
        "" | "CONTINUE" => "CONTINUE",
        "ROLLBACK" => "ROLLBACK",
        _ => {
            return Err((
                "InvalidParameterException",
                "action must be CONTINUE or ROLLBACK".into(),
            ));
        }
    };
    let Some(p) = s.ecs_pauses.get_mut(&arn) else {
        return Err((
            "ServiceDeploymentNotFoundException",
            "The service deployment does not exist".into(),
        ));
    };
    if p.hook != hook || p.hook_status != "AWAITING_ACTION" || p.status != "IN_PROGRESS" {
        return Err((
            "ClientException",
            "The lifecycle hook is not awaiting action".into(),
        ));
    }
    p.hook_status = if action == "CONTINUE" {
        "SUCCEEDED"
    } else {
        "FAILED"
    }
    .to_owned();
    if action == "ROLLBACK" {
        p.status = "ROLLBACK_REQUESTED".to_owned();
    }
    p.updated_at = epoch_secs_f64();
    s.reports.push(Report::EcsContinue {
        deployment: arn.clone(),
        hook,
        action: action.to_owned(),
    });
    Ok(json!({"serviceDeploymentArn": arn}))
}

/// `DescribeServiceRevisions` (moto has none): the registered revisions;
/// any other ARN is a `MISSING` failure, as ECS reports it.
fn describe_service_revisions(s: &State, req: &Value) -> Result<Value, Rejection> {
    let arns: Vec<&str> = req
        .get("serviceRevisionArns")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if arns.is_empty() || arns.len() > 20 {
        return Err((
            "InvalidParameterException",
            "serviceRevisionArns must hold 1 to 20 ARNs".into(),
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for arn in arns {
        match s.service_revisions.get(arn) {
            Some(r) => found.push(r.clone()),
            None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
        }
    }
    Ok(json!({"serviceRevisions": found, "failures": failures}))
}

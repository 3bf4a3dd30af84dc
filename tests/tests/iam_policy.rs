//! `template.yaml` grants each function exactly the AWS calls its code makes.
//!
//! Three sources are compared, so that code and template cannot drift apart:
//!
//! 1. **The code.** The adapters a function links (its own `src/aws/*.rs`
//!    and the `tollgate-aws-<service>` crates in its `Cargo.toml`) are
//!    scanned for SDK operation calls
//!    (`.describe_services()`), recognised by name against the operations of
//!    the SDK crates each adapter imports (read from those crates' sources, as
//!    resolved by `cargo metadata`). Each operation becomes its IAM action.
//! 2. **A hand-kept list** per function ([`FUNCTIONS`]): the same calls,
//!    written down, plus the permissions a call implies ([`IMPLIED`]) and what
//!    Lambda itself does with the role ([`ASYNC_PLATFORM`], [`SQS_PLATFORM`]),
//!    each with its reason.
//! 3. **The template.** Every statement of the function's role: its inline
//!    policies and the `AWS::IAM::Policy` resources attached to it, both
//!    branches of every `Fn::If` (the union of what any parameter set grants).
//!
//! It also fails on wildcard actions, on `Resource: "*"` for an action that
//! supports resource-level permissions, on an ARN-scoped statement for an
//! action that has none (IAM would never match it), on environment variables
//! the code does not read, on variables the code reads that the template
//! neither sets nor explains, and on EventBridge detail-types the notifier
//! does not understand. Two checks keep `docs/deploy.md` honest as well: its
//! parameter tables list exactly the template's parameters, and every
//! `UserParameters` example in it is accepted by the function's parser.
//!
//! The template is parsed with serde-saphyr; CloudFormation's short tags
//! (`!Ref`, `!GetAtt`, `!Sub`, `!If`, ...) become their long form.

use regex::Regex;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};
use serde_saphyr::Tagged;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One function of the template and what its code is known to call.
struct FunctionSpec {
    /// Logical id of the `AWS::Serverless::Function`.
    logical_id: &'static str,
    /// Cargo package and binary name (`functions/<package>`).
    package: &'static str,
    /// IAM actions of the SDK calls its code makes with the function's role.
    calls: &'static [&'static str],
    /// Adapters it links (a module of its own `src/aws/`, or a
    /// `tollgate-aws-<service>` crate) whose clients run on other
    /// credentials (so their calls need nothing from the role), with the
    /// reason.
    other_credentials: &'static [(&'static str, &'static str)],
    /// Source files declaring the environment variables it reads.
    config_sources: &'static [&'static str],
    /// Variables it reads that the template deliberately leaves unset.
    env_not_in_template: &'static [(&'static str, &'static str)],
    /// What Lambda itself does with its role ([`ASYNC_PLATFORM`] or
    /// [`SQS_PLATFORM`]).
    platform: &'static [(&'static str, &'static str)],
    /// Calls in an adapter it links that its code can never make, so its
    /// role does not grant them, with the type that guarantees it.
    never_called: &'static [(&'static str, &'static str)],
}

const LINK_LOCAL_OPT_IN: &str = "an operator's opt-in for checks against link-local targets (metadata endpoints); off unless someone really needs it";
const RUNTIME_API: &str = "set by Lambda itself; read so that checks never target it";
const REPORT_DEFAULTS: &str =
    "the report core's defaults fit the function timeout; tune it in the console if needed";

const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        logical_id: "PipelineActionFunction",
        package: "pipeline-action",
        calls: &[
            "codepipeline:PutJobSuccessResult",
            "codepipeline:PutJobFailureResult",
            "codepipeline:GetJobDetails",
            "codepipeline:ListActionExecutions",
            "ecs:DescribeServices",
            "ecs:DescribeTaskDefinition",
            "ecs:RegisterTaskDefinition",
            "ecs:UpdateService",
            "ecs:ListTasks",
            "ecs:DescribeTasks",
            // The `gate` action (tollgate-aws-cloudwatch).
            "cloudwatch:GetMetricData",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:ListMetrics",
            "ecs:RunTask",
            "ecs:StopTask",
            "logs:GetLogEvents",
        ],
        other_credentials: &[(
            "s3",
            "artifacts are read and written with the job's artifactCredentials, never the role",
        )],
        config_sources: &[
            "shared/tollgate-pipeline/src/lib.rs",
            "shared/tollgate-report/src/config.rs",
            "shared/tollgate-checks/src/targets.rs",
        ],
        env_not_in_template: &[
            ("TOLLGATE_REPORT_RESERVE_MS", REPORT_DEFAULTS),
            ("TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS", REPORT_DEFAULTS),
            ("TOLLGATE_ALLOW_LINK_LOCAL_TARGETS", LINK_LOCAL_OPT_IN),
            ("AWS_LAMBDA_RUNTIME_API", RUNTIME_API),
        ],
        platform: ASYNC_VPC_PLATFORM,
        never_called: &[],
    },
    FunctionSpec {
        logical_id: "DeployHookFunction",
        package: "deploy-hook",
        calls: &[
            "codedeploy:PutLifecycleEventHookExecutionStatus",
            "codedeploy:GetDeployment",
            "codedeploy:GetDeploymentGroup",
            "codedeploy:ListDeploymentTargets",
            "codedeploy:GetDeploymentTarget",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeLoadBalancers",
            "ecs:DescribeServiceDeployments",
            "ssm:GetParameter",
            "ssm:PutParameter",
            "secretsmanager:GetSecretValue",
            // The spec's metric gate (tollgate-aws-cloudwatch).
            "cloudwatch:GetMetricData",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:ListMetrics",
            // CodeDeploy metric gates: the next measurement's ticket, and
            // the blue and green target groups' CloudWatch dimensions.
            "sqs:SendMessage",
            "elasticloadbalancing:DescribeTargetGroups",
            // ECS native metric gates: green's and blue's target groups.
            "ecs:DescribeServiceRevisions",
            "elasticloadbalancing:DescribeRules",
        ],
        other_credentials: &[],
        config_sources: &[
            "shared/tollgate-deploy/src/config.rs",
            "shared/tollgate-core/src/hook_failures.rs",
            "shared/tollgate-report/src/config.rs",
            "shared/tollgate-checks/src/targets.rs",
        ],
        env_not_in_template: &[
            ("TOLLGATE_REPORT_RESERVE_MS", REPORT_DEFAULTS),
            ("TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS", REPORT_DEFAULTS),
            ("TOLLGATE_ALLOW_LINK_LOCAL_TARGETS", LINK_LOCAL_OPT_IN),
            ("AWS_LAMBDA_RUNTIME_API", RUNTIME_API),
            (
                "TOLLGATE_RESOLVE",
                "pins discovered hosts to loopback addresses for local rehearsals only",
            ),
        ],
        platform: DEPLOY_HOOK_PLATFORM,
        never_called: &[],
    },
    FunctionSpec {
        logical_id: "NotifierFunction",
        package: "notifier",
        calls: &[
            "codepipeline:GetPipelineExecution",
            "codepipeline:ListActionExecutions",
            "codepipeline:ListPipelineExecutions",
            "codepipeline:GetPipeline",
            // An entry condition in progress (tollgate_notify::stage_condition).
            "codepipeline:GetPipelineState",
            "codedeploy:GetDeployment",
            "secretsmanager:GetSecretValue",
            "ssm:GetParameter",
            "sns:Publish",
            "dynamodb:PutItem",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ],
        other_credentials: &[],
        config_sources: &[
            "shared/tollgate-notify/src/config.rs",
            "shared/tollgate-notify/src/destinations/slack.rs",
            "shared/tollgate-notify/src/destinations/teams.rs",
            "shared/tollgate-notify/src/destinations/webhook.rs",
            "shared/tollgate-notify/src/destinations/sns.rs",
            "shared/tollgate-notify/src/destinations/amazonq.rs",
            "shared/tollgate-notify/src/destinations/slackbot.rs",
            "shared/tollgate-core/src/hook_failures.rs",
        ],
        env_not_in_template: &[
            (
                "TOLLGATE_SLACK_API_URL",
                "the Slack Web API base defaults to https://slack.com/api; other values are for local stand-ins",
            ),
            (
                "TOLLGATE_NOTIFY_RULES",
                "in AWS the rules document lives in SSM (NotifyRulesParameter); inline rules are for local runs",
            ),
            (
                "TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS",
                "the default (5 s) is sized to the 30 s function timeout",
            ),
            (
                "TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS",
                "the default (2 s) is sized to the 30 s function timeout",
            ),
            (
                "TOLLGATE_NOTIFY_RESERVE_MS",
                "the default (0.5 s) is sized to the 30 s function timeout",
            ),
        ],
        platform: ASYNC_PLATFORM,
        never_called: &[],
    },
    FunctionSpec {
        logical_id: "DeadLetterFunction",
        package: "dead-letter",
        calls: &[
            "codepipeline:PutJobFailureResult",
            "codedeploy:PutLifecycleEventHookExecutionStatus",
        ],
        other_credentials: &[],
        config_sources: &[
            "shared/tollgate-deadletter/src/lib.rs",
            "shared/tollgate-report/src/config.rs",
        ],
        env_not_in_template: &[
            ("TOLLGATE_REPORT_RESERVE_MS", REPORT_DEFAULTS),
            ("TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS", REPORT_DEFAULTS),
        ],
        platform: SQS_PLATFORM,
        never_called: &[(
            "codepipeline:PutJobSuccessResult",
            "tollgate_deadletter::FailuresOnly wraps its reporter: a success report never reaches the SDK",
        )],
    },
    FunctionSpec {
        logical_id: "ApprovalsFunction",
        package: "approvals",
        calls: &[
            "codepipeline:GetPipelineState",
            "codepipeline:ListActionExecutions",
            "codepipeline:PutApprovalResult",
            // Stage condition overrides (tollgate_approvals::stage_condition).
            "codepipeline:OverrideStageCondition",
            // ECS pause hooks (tollgate_approvals::ecs_hook).
            "ecs:DescribeServiceDeployments",
            "ecs:ContinueServiceDeployment",
            "secretsmanager:GetSecretValue",
            // The bot token when SlackBotToken is an ssm:/ SecureString.
            "ssm:GetParameter",
        ],
        other_credentials: &[],
        config_sources: &[
            "functions/approvals/src/config.rs",
            "shared/tollgate-approvals/src/policy.rs",
            "shared/tollgate-approvals/src/ecs_hook.rs",
            // TOLLGATE_APPROVAL_ECS_SERVICES (shared with the notifier)
            "shared/tollgate-core/src/ecs_pause_request.rs",
            "shared/tollgate-approvals/src/stage_condition.rs",
        ],
        env_not_in_template: &[
            (
                "TOLLGATE_SLACK_API_URL",
                "the Slack Web API base defaults to https://slack.com/api; other values are for local stand-ins",
            ),
            (
                "TOLLGATE_SLACK_RESPONSE_URL_PREFIX",
                "response URLs must be Slack's (https://hooks.slack.com/); other values are for local stand-ins",
            ),
        ],
        platform: URL_PLATFORM,
        never_called: &[],
    },
];

/// Permissions an SDK call needs besides its own action: `(call, action, why)`.
const IMPLIED: &[(&str, &str, &str)] = &[
    (
        "ecs:RegisterTaskDefinition",
        "ecs:TagResource",
        "the new revision is registered with tags (the job tag)",
    ),
    (
        "ecs:RegisterTaskDefinition",
        "iam:PassRole",
        "the task and execution roles are passed to ECS",
    ),
    (
        "ecs:RunTask",
        "ecs:TagResource",
        "run-task starts the task with tags (the job tag)",
    ),
    (
        "ecs:RunTask",
        "iam:PassRole",
        "the task and execution roles are passed to ECS",
    ),
    (
        "ssm:GetParameter",
        "kms:Decrypt",
        "a SecureString under a customer managed key",
    ),
    (
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "a secret under a customer managed key",
    ),
    (
        "sns:Publish",
        "kms:GenerateDataKey",
        "a topic encrypted with a customer managed key",
    ),
    (
        "sns:Publish",
        "kms:Decrypt",
        "a topic encrypted with a customer managed key",
    ),
];

/// What Lambda does with the role of a function invoked asynchronously:
/// `(action, why)`.
const ASYNC_PLATFORM: &[(&str, &str)] = &[
    (
        "logs:CreateLogStream",
        "Lambda writes the function's logs with its role",
    ),
    (
        "logs:PutLogEvents",
        "Lambda writes the function's logs with its role",
    ),
    (
        "sqs:SendMessage",
        "Lambda sends failed asynchronous events to the OnFailure queue with the role",
    ),
];

/// What Lambda does with the role of an asynchronously invoked function
/// that may run in a VPC (`SubnetIds` set): [`ASYNC_PLATFORM`] plus the
/// network interfaces Lambda creates and deletes with the role
/// (AWSLambdaVPCAccessExecutionRole's EC2 actions). [`VPC_FUNCTIONS`] says
/// which functions, and `vpc_permissions_only_in_a_vpc` that they are
/// granted only under the `InVpc` condition.
const ASYNC_VPC_PLATFORM: &[(&str, &str)] = &[
    (
        "logs:CreateLogStream",
        "Lambda writes the function's logs with its role",
    ),
    (
        "logs:PutLogEvents",
        "Lambda writes the function's logs with its role",
    ),
    (
        "sqs:SendMessage",
        "Lambda sends failed asynchronous events to the OnFailure queue with the role",
    ),
    (
        "ec2:CreateNetworkInterface",
        "Lambda creates the function's network interfaces in the subnets with its role",
    ),
    (
        "ec2:DeleteNetworkInterface",
        "Lambda deletes them when the VPC configuration changes or the function goes",
    ),
    (
        "ec2:AssignPrivateIpAddresses",
        "Lambda manages the interfaces' addresses",
    ),
    (
        "ec2:UnassignPrivateIpAddresses",
        "Lambda manages the interfaces' addresses",
    ),
    (
        "ec2:DescribeNetworkInterfaces",
        "Lambda looks up the interfaces it manages",
    ),
    (
        "ec2:DescribeSubnets",
        "Lambda reads the subnets it places interfaces in",
    ),
];

/// deploy-hook: invoked asynchronously (CodeDeploy), maybe in a VPC
/// ([`ASYNC_VPC_PLATFORM`]), and by the event source mapping of its own
/// metric gate queue (the SQS half of [`SQS_PLATFORM`]).
const DEPLOY_HOOK_PLATFORM: &[(&str, &str)] = &[
    ASYNC_VPC_PLATFORM[0],
    ASYNC_VPC_PLATFORM[1],
    ASYNC_VPC_PLATFORM[2],
    ASYNC_VPC_PLATFORM[3],
    ASYNC_VPC_PLATFORM[4],
    ASYNC_VPC_PLATFORM[5],
    ASYNC_VPC_PLATFORM[6],
    ASYNC_VPC_PLATFORM[7],
    ASYNC_VPC_PLATFORM[8],
    (
        "sqs:ReceiveMessage",
        "the metric gate queue's event source mapping polls it with the role",
    ),
    (
        "sqs:DeleteMessage",
        "the event source mapping deletes the tickets the function handled",
    ),
    (
        "sqs:GetQueueAttributes",
        "the event source mapping reads the queue's attributes",
    ),
];

/// Functions with a `VpcConfig` when `SubnetIds` is set: the two whose
/// checks reach the user's (often internal) targets. The notifier posts to
/// public chat webhooks and dead-letter calls AWS APIs only.
const VPC_FUNCTIONS: &[&str] = &["PipelineActionFunction", "DeployHookFunction"];

/// What Lambda does with the role of a function invoked synchronously
/// through its function URL (approvals): its logs only.
const URL_PLATFORM: &[(&str, &str)] = &[
    (
        "logs:CreateLogStream",
        "Lambda writes the function's logs with its role",
    ),
    (
        "logs:PutLogEvents",
        "Lambda writes the function's logs with its role",
    ),
];

/// What Lambda does with the role of a function its SQS event source
/// mappings invoke: `(action, why)`.
const SQS_PLATFORM: &[(&str, &str)] = &[
    (
        "logs:CreateLogStream",
        "Lambda writes the function's logs with its role",
    ),
    (
        "logs:PutLogEvents",
        "Lambda writes the function's logs with its role",
    ),
    (
        "sqs:ReceiveMessage",
        "the event source mapping polls the queue with the role",
    ),
    (
        "sqs:DeleteMessage",
        "the event source mapping deletes what the function handled",
    ),
    (
        "sqs:GetQueueAttributes",
        "the event source mapping reads the queue's attributes",
    ),
];

/// Actions without resource-level permissions (Service Authorization
/// Reference: no resource type), so `Resource: "*"` is the only form that
/// works for them.
const NO_RESOURCE_LEVEL: &[&str] = &[
    "codepipeline:PutJobSuccessResult",
    "codepipeline:GetJobDetails",
    "codepipeline:PutJobFailureResult",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "codedeploy:PutLifecycleEventHookExecutionStatus",
    "codedeploy:ListDeploymentTargets",
    "codedeploy:GetDeploymentTarget",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeRules",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "cloudwatch:GetMetricData",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:ListMetrics",
];

/// Actions scoped by a condition key rather than a resource ARN:
/// `Resource: "*"` is fine when the statement carries the key.
const CONDITION_SCOPED: &[(&str, &str)] = &[("ecs:ListTasks", "ecs:cluster")];

/// Actions that support resource-level permissions: never `Resource: "*"`.
const RESOURCE_LEVEL: &[&str] = &[
    "codepipeline:GetPipelineState",
    "codepipeline:PutApprovalResult",
    "codepipeline:OverrideStageCondition",
    "codepipeline:GetPipelineExecution",
    "codepipeline:GetPipeline",
    "codepipeline:ListActionExecutions",
    "codepipeline:ListPipelineExecutions",
    "codedeploy:GetDeployment",
    "codedeploy:GetDeploymentGroup",
    "ecs:DescribeServices",
    "ecs:DescribeServiceDeployments",
    "ecs:DescribeServiceRevisions",
    "ecs:ContinueServiceDeployment",
    "ecs:UpdateService",
    "ecs:DescribeTasks",
    "ecs:RunTask",
    "ecs:StopTask",
    "ecs:TagResource",
    "iam:PassRole",
    "ssm:GetParameter",
    "ssm:PutParameter",
    "secretsmanager:GetSecretValue",
    "sns:Publish",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:GetLogEvents",
    "sqs:SendMessage",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "lambda:InvokeFunction",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
];

/// IAM service prefix of each SDK crate (`aws-sdk-<crate>`).
const SERVICE_PREFIX: &[(&str, &str)] = &[
    ("cloudwatch", "cloudwatch"),
    ("cloudwatchlogs", "logs"),
    ("codedeploy", "codedeploy"),
    ("codepipeline", "codepipeline"),
    ("dynamodb", "dynamodb"),
    ("ecs", "ecs"),
    ("elasticloadbalancingv2", "elasticloadbalancing"),
    ("s3", "s3"),
    ("secretsmanager", "secretsmanager"),
    ("sns", "sns"),
    ("sqs", "sqs"),
    ("ssm", "ssm"),
];

/// Operations whose IAM action is not named after them.
const ACTION_OVERRIDES: &[(&str, &str)] = &[
    ("s3:ListObjectsV2", "s3:ListBucket"),
    ("s3:HeadObject", "s3:GetObject"),
];

// ------------------------------------------------------------------ files

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// ------------------------------------------------------------------ YAML with CloudFormation tags

/// A YAML node as JSON, CloudFormation short tags expanded to long form.
struct Cfn(Value);

/// An untagged YAML node whose children are [`Cfn`] nodes.
struct Plain(Value);

impl<'de> Deserialize<'de> for Cfn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Tagged(Plain(value), tag) = Tagged::<Plain>::deserialize(d)?;
        match tag {
            None => Ok(Cfn(value)),
            Some(tag) => expand_tag(&tag, value).map(Cfn).map_err(de::Error::custom),
        }
    }
}

/// `!Ref x` → `{"Ref": x}`, `!Condition c` → `{"Condition": c}`,
/// `!GetAtt a.b` → `{"Fn::GetAtt": ["a", "b"]}`, `!Name v` → `{"Fn::Name": v}`.
/// YAML core tags (`!!str`) leave the value as it is.
fn expand_tag(tag: &str, value: Value) -> Result<Value, String> {
    if tag.starts_with("tag:yaml.org,2002:") {
        return Ok(value);
    }
    let name = tag
        .strip_prefix('!')
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| format!("unexpected YAML tag {tag:?} in template.yaml"))?;
    Ok(match name {
        "Ref" | "Condition" => json!({ name: value }),
        "GetAtt" => match value {
            Value::String(s) => {
                let (resource, attribute) = s
                    .split_once('.')
                    .ok_or_else(|| format!("!GetAtt {s:?} has no .Attribute"))?;
                json!({ "Fn::GetAtt": [resource, attribute] })
            }
            other => json!({ "Fn::GetAtt": other }),
        },
        _ => json!({ format!("Fn::{name}"): value }),
    })
}

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Plain;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML node")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Plain, E> {
        Ok(Plain(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Plain, E> {
        Ok(Plain(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Plain, E> {
        Ok(Plain(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Plain, E> {
        Ok(Plain(json!(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Plain, E> {
        Ok(Plain(Value::String(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Plain, E> {
        Ok(Plain(Value::String(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Plain, E> {
        Ok(Plain(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Plain, E> {
        Ok(Plain(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Plain, A::Error> {
        let mut items = Vec::new();
        while let Some(Cfn(item)) = seq.next_element::<Cfn>()? {
            items.push(item);
        }
        Ok(Plain(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plain, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Cfn(value) = map.next_value::<Cfn>()?;
            if out.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Plain(Value::Object(out)))
    }
}

fn parse_template(text: &str) -> Value {
    let Cfn(value) = serde_saphyr::from_str::<Cfn>(text).expect("template.yaml parses as YAML");
    value
}

fn template() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| parse_template(&read("template.yaml")))
}

fn resources() -> &'static Map<String, Value> {
    template()["Resources"]
        .as_object()
        .expect("template.yaml has Resources")
}

fn resource(id: &str) -> &'static Value {
    resources()
        .get(id)
        .unwrap_or_else(|| panic!("template.yaml has no resource {id}"))
}

// ------------------------------------------------------------------ intrinsic helpers

fn is_no_value(v: &Value) -> bool {
    v.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue")
}

/// Every value `v` can take: both branches of each `Fn::If`, none for
/// `AWS::NoValue`.
fn branches(v: &Value) -> Vec<&Value> {
    if is_no_value(v) {
        return Vec::new();
    }
    if let Some(args) = v.get("Fn::If").and_then(Value::as_array) {
        assert_eq!(args.len(), 3, "Fn::If takes [condition, then, else]: {v}");
        let mut out = branches(&args[1]);
        out.extend(branches(&args[2]));
        return out;
    }
    vec![v]
}

/// The items of a value that is a list (or a single item), each expanded
/// through [`branches`].
fn items(v: &Value) -> Vec<&Value> {
    branches(v)
        .into_iter()
        .flat_map(|b| match b {
            Value::Array(list) => list.iter().flat_map(branches).collect(),
            one => vec![one],
        })
        .collect()
}

fn ref_to(v: &Value) -> Option<&str> {
    v.get("Ref").and_then(Value::as_str)
}

fn get_att_resource(v: &Value) -> Option<&str> {
    v.get("Fn::GetAtt")?.get(0)?.as_str()
}

// ------------------------------------------------------------------ policies

/// One `Allow` statement of a role, with where it came from.
#[derive(Debug)]
struct Statement {
    origin: String,
    actions: Vec<String>,
    /// Literal `"*"` among the resources.
    star: bool,
    resources: Vec<Value>,
    condition_keys: BTreeSet<String>,
}

fn statements_of(origin: &str, document: &Value) -> Vec<Statement> {
    let mut out = Vec::new();
    for (i, st) in items(&document["Statement"]).into_iter().enumerate() {
        let sid = st.get("Sid").and_then(Value::as_str).unwrap_or("-");
        let origin = format!("{origin} statement {i} ({sid})");
        assert_eq!(
            st.get("Effect").and_then(Value::as_str),
            Some("Allow"),
            "{origin}: only Allow statements are expected"
        );
        for forbidden in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(
                st.get(forbidden).is_none(),
                "{origin}: {forbidden} is not allowed"
            );
        }
        let actions: Vec<String> = items(&st["Action"])
            .into_iter()
            .map(|a| {
                a.as_str()
                    .unwrap_or_else(|| panic!("{origin}: action {a} is not a plain string"))
                    .to_owned()
            })
            .collect();
        assert!(!actions.is_empty(), "{origin}: no actions");
        let resources: Vec<Value> = items(&st["Resource"]).into_iter().cloned().collect();
        assert!(!resources.is_empty(), "{origin}: no resources");
        let star = resources.iter().any(|r| r.as_str() == Some("*"));
        let condition_keys = st
            .get("Condition")
            .and_then(Value::as_object)
            .map(|ops| {
                ops.values()
                    .filter_map(Value::as_object)
                    .flat_map(|keys| keys.keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        out.push(Statement {
            origin,
            actions,
            star,
            resources,
            condition_keys,
        });
    }
    out
}

/// Every statement that applies to `role`: its inline policies and the
/// `AWS::IAM::Policy` resources attached to it.
fn role_statements(role: &str) -> Vec<Statement> {
    let props = &resource(role)["Properties"];
    for forbidden in ["ManagedPolicyArns", "Path"] {
        assert!(
            props.get(forbidden).is_none(),
            "{role}: {forbidden} would grant or move permissions this test cannot see"
        );
    }
    let mut out = Vec::new();
    for policy in items(&props["Policies"]) {
        let name = policy["PolicyName"].as_str().unwrap_or("?");
        out.extend(statements_of(
            &format!("{role} inline policy {name}"),
            &policy["PolicyDocument"],
        ));
    }
    for (id, res) in resources() {
        if res["Type"] != "AWS::IAM::Policy" {
            continue;
        }
        let attached: Vec<&str> = items(&res["Properties"]["Roles"])
            .into_iter()
            .filter_map(ref_to)
            .collect();
        if attached.contains(&role) {
            out.extend(statements_of(id, &res["Properties"]["PolicyDocument"]));
        }
    }
    out
}

fn function_role(spec: &FunctionSpec) -> &'static str {
    let props = &resource(spec.logical_id)["Properties"];
    assert!(
        props.get("Policies").is_none(),
        "{}: SAM Policies would add a generated role; use the explicit Role",
        spec.logical_id
    );
    get_att_resource(&props["Role"]).unwrap_or_else(|| {
        panic!(
            "{}: Role must be !GetAtt <Role>.Arn of a role in this template",
            spec.logical_id
        )
    })
}

fn expected_actions(spec: &FunctionSpec) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = spec.calls.iter().map(|s| (*s).to_owned()).collect();
    for (call, action, _why) in IMPLIED {
        if spec.calls.contains(call) {
            out.insert((*action).to_owned());
        }
    }
    out.extend(spec.platform.iter().map(|(a, _)| (*a).to_owned()));
    out
}

fn granted_actions(statements: &[Statement]) -> BTreeSet<String> {
    statements
        .iter()
        .flat_map(|s| s.actions.iter().cloned())
        .collect()
}

// ------------------------------------------------------------------ code scan

/// `aws-sdk-<crate>` → its operations (snake_case), from the crate sources
/// that `cargo metadata` resolves for this workspace.
fn sdk_operations() -> &'static BTreeMap<String, BTreeSet<String>> {
    static OPS: OnceLock<BTreeMap<String, BTreeSet<String>>> = OnceLock::new();
    OPS.get_or_init(|| {
        let meta = tollgate_tests::paths::cargo_metadata();
        let mut ops = BTreeMap::new();
        let resolved: BTreeSet<&str> = meta["resolve"]["nodes"]
            .as_array()
            .expect("cargo metadata resolves the graph")
            .iter()
            .filter_map(|n| n["id"].as_str())
            .collect();
        for pkg in meta["packages"].as_array().expect("packages") {
            let name = pkg["name"].as_str().unwrap_or_default();
            let Some(krate) = name.strip_prefix("aws-sdk-") else {
                continue;
            };
            if !resolved.contains(pkg["id"].as_str().unwrap_or_default()) {
                continue;
            }
            let manifest = PathBuf::from(pkg["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest
                .parent()
                .expect("manifest has a directory")
                .join("src/operation");
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let names: BTreeSet<String> = entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
                    (!stem.starts_with('_')).then_some(stem)
                })
                .collect();
            ops.entry(krate.to_owned())
                .or_insert_with(BTreeSet::new)
                .extend(names);
        }
        assert!(
            ops.contains_key("ecs") && ops["ecs"].contains("describe_services"),
            "the SDK crates' operations were not found through cargo metadata"
        );
        ops
    })
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn iam_action(krate: &str, op: &str) -> String {
    let prefix = SERVICE_PREFIX
        .iter()
        .find(|(c, _)| *c == krate)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("aws-sdk-{krate}: add its IAM prefix to SERVICE_PREFIX"));
    let action = format!("{prefix}:{}", pascal(op));
    ACTION_OVERRIDES
        .iter()
        .find(|(from, _)| *from == action)
        .map(|(_, to)| (*to).to_owned())
        .unwrap_or(action)
}

/// Source without comment lines and without the `#[cfg(test)]` module
/// (tests call the SDK against local servers).
fn code_only(src: &str) -> String {
    let body = src.split("#[cfg(test)]").next().unwrap_or_default();
    body.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The adapters a function links, by name, with their source files: each
/// module of its own `src/aws/` (`s3`), and each `tollgate-aws-<service>`
/// crate its `Cargo.toml` names (`tollgate-aws-ssm`). `tollgate-aws` itself
/// holds no client.
fn adapters_of(package: &str) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    // Every file under the function's src/aws, sub-folders and mod.rs
    // included, so no SDK call there escapes the scan.
    let own = root().join(format!("functions/{package}/src/aws"));
    if own.is_dir() {
        for file in rust_files(&own) {
            let name = file
                .strip_prefix(&own)
                .unwrap_or(&file)
                .with_extension("")
                .display()
                .to_string();
            out.insert(name, vec![file]);
        }
    }
    for krate in direct_dependencies(package) {
        if krate.starts_with("tollgate-aws-") {
            out.insert(
                krate.clone(),
                rust_files(&root().join(format!("shared/{krate}/src"))),
            );
        }
    }
    out
}

/// `[dependencies]` names of a function's `Cargo.toml`.
fn direct_dependencies(package: &str) -> BTreeSet<String> {
    let manifest = read(&format!("functions/{package}/Cargo.toml"));
    let mut in_deps = false;
    let mut out = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once(['.', ' ', '='])
            && !name.is_empty()
        {
            out.insert(name.to_owned());
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .expect("readable source dir")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// IAM actions of the SDK operations an adapter file calls.
fn adapter_calls(path: &Path) -> BTreeSet<String> {
    let src = code_only(&std::fs::read_to_string(path).expect("readable adapter"));
    let crates: BTreeSet<String> = Regex::new(r"aws_sdk_([a-z0-9]+)")
        .expect("regex")
        .captures_iter(&src)
        .map(|c| c[1].to_owned())
        .collect();
    let ops = sdk_operations();
    let call = Regex::new(r"\.\s*([a-z][a-z0-9_]*)\s*\(\s*\)").expect("regex");
    let mut out = BTreeSet::new();
    for c in call.captures_iter(&src) {
        let name = &c[1];
        let owners: Vec<&String> = crates
            .iter()
            .filter(|k| ops.get(*k).is_some_and(|o| o.contains(name)))
            .collect();
        match owners.as_slice() {
            [] => {}
            [krate] => {
                out.insert(iam_action(krate, name));
            }
            many => panic!(
                "{}: .{name}() is an operation of several imported SDK crates ({many:?}); \
                 keep one service per adapter file",
                shown(path)
            ),
        }
    }
    out
}

fn code_calls(spec: &FunctionSpec) -> BTreeSet<String> {
    let adapters = adapters_of(spec.package);
    assert!(
        !adapters.is_empty(),
        "{}: links no adapter (src/aws/*.rs or a tollgate-aws-<service> crate)",
        spec.package
    );
    let mut out = BTreeSet::new();
    for (name, files) in &adapters {
        if spec.other_credentials.iter().any(|(m, _)| m == name) {
            continue;
        }
        for file in files {
            out.extend(adapter_calls(file));
        }
    }
    for (action, why) in spec.never_called {
        assert!(
            out.remove(*action),
            "{}: {action} is listed as never called ({why}) but no adapter it links has it",
            spec.package
        );
    }
    for (name, why) in spec.other_credentials {
        assert!(
            adapters.contains_key(*name),
            "{}: {name} is listed as using other credentials ({why}) but the function does not link it",
            spec.package
        );
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn diff(label: &str, left: &BTreeSet<String>, right: &BTreeSet<String>) -> String {
    let missing: Vec<_> = left.difference(right).collect();
    let extra: Vec<_> = right.difference(left).collect();
    format!("{label}: missing {missing:?}, unexpected {extra:?}")
}

// ------------------------------------------------------------------ tests

#[test]
fn cloudformation_short_tags_parse_to_long_form() {
    let v = parse_template(
        "a: !Ref X\nb: !GetAtt R.Arn\nc: !Sub \"x-${Y}\"\nd: !If [C, !Ref AWS::NoValue, [1, 2]]\n\
         e: !Not [!Condition C]\nf: !Select [0, !Split [\",\", !Ref L]]\ng: \"*\"\n",
    );
    assert_eq!(
        v,
        json!({
            "a": {"Ref": "X"},
            "b": {"Fn::GetAtt": ["R", "Arn"]},
            "c": {"Fn::Sub": "x-${Y}"},
            "d": {"Fn::If": ["C", {"Ref": "AWS::NoValue"}, [1, 2]]},
            "e": {"Fn::Not": [{"Condition": "C"}]},
            "f": {"Fn::Select": [0, {"Fn::Split": [",", {"Ref": "L"}]}]},
            "g": "*",
        })
    );
    assert_eq!(branches(&v["d"]), vec![&json!([1, 2])]);
}

#[test]
fn sdk_calls_in_the_code_match_the_hand_kept_lists() {
    for spec in FUNCTIONS {
        let found = code_calls(spec);
        let listed = set(spec.calls);
        assert_eq!(
            found,
            listed,
            "{}",
            diff(
                &format!(
                    "{}: FUNCTIONS.calls vs SDK calls in its adapters (update the list, then the template)",
                    spec.package
                ),
                &found,
                &listed
            )
        );
    }
}

#[test]
fn adapters_on_other_credentials_never_use_the_role() {
    // The S3 adapter must build every client from the job's artifact credentials.
    for spec in FUNCTIONS {
        let adapters = adapters_of(spec.package);
        for (name, why) in spec.other_credentials {
            for file in &adapters[*name] {
                let src = code_only(&std::fs::read_to_string(file).expect("readable adapter"));
                assert!(
                    src.contains(".credentials_provider("),
                    "{} no longer sets its own credentials, yet {} relies on it: {why}",
                    shown(file),
                    spec.package
                );
                assert!(
                    !src.contains("Client::new("),
                    "{} builds a client on the role's credentials; grant its calls in template.yaml \
                     and remove it from other_credentials",
                    shown(file)
                );
            }
        }
    }
}

#[test]
fn only_adapters_touch_the_sdk() {
    // The code scan sees the adapters only; this keeps that complete. The
    // crate graph already refuses an SDK crate anywhere else
    // (tests/tests/architecture.rs); this catches a path written in a
    // comment-free form such as a macro.
    let mut offenders = Vec::new();
    for dir in [root().join("shared"), root().join("functions")] {
        for path in rust_files(&dir) {
            let rel = shown(&path);
            let adapter = rel.starts_with("shared/tollgate-aws")
                || (rel.starts_with("functions/") && rel.contains("/src/aws/"));
            if adapter || rel.contains("/target/") {
                continue;
            }
            let src = std::fs::read_to_string(&path).expect("readable source");
            if code_only(&src).contains("aws_sdk_") {
                offenders.push(rel);
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SDK used outside an adapter (move it into functions/<f>/src/aws or a tollgate-aws-<service> crate): {offenders:?}"
    );
}

#[test]
fn each_function_lists_exactly_the_sdk_crates_its_policy_covers() {
    // Property 2 of issue 15: a function's Cargo.toml names exactly the
    // aws-sdk-* crates of the services it is granted (or, for S3, called
    // with the job's own credentials), and its dependency closure holds no
    // other: an SDK linked but never granted, or granted but not linked, fails.
    let closure = sdk_closure_by_package();
    let sdk_path = Regex::new(r"aws_sdk_([a-z0-9]+)").expect("regex");
    for spec in FUNCTIONS {
        let mut covered: BTreeSet<String> = spec
            .calls
            .iter()
            .map(|a| a.split(':').next().unwrap_or_default())
            .map(|prefix| {
                SERVICE_PREFIX
                    .iter()
                    .find(|(_, p)| *p == prefix)
                    .map(|(c, _)| format!("aws-sdk-{c}"))
                    .unwrap_or_else(|| panic!("{prefix}: add it to SERVICE_PREFIX"))
            })
            .collect();
        let adapters = adapters_of(spec.package);
        for (name, _) in spec.other_credentials {
            for file in &adapters[*name] {
                let src = code_only(&std::fs::read_to_string(file).expect("readable adapter"));
                covered.extend(
                    sdk_path
                        .captures_iter(&src)
                        .map(|c| format!("aws-sdk-{}", &c[1])),
                );
            }
        }
        let listed: BTreeSet<String> = direct_dependencies(spec.package)
            .into_iter()
            .filter(|d| d.starts_with("aws-sdk-"))
            .collect();
        assert_eq!(
            listed,
            covered,
            "{}",
            diff(
                &format!(
                    "{}: Cargo.toml's aws-sdk-* vs the services its policy covers",
                    spec.package
                ),
                &covered,
                &listed
            )
        );
        let linked = &closure[spec.package];
        assert_eq!(
            linked,
            &covered,
            "{}",
            diff(
                &format!(
                    "{}: aws-sdk-* in its dependency closure vs its policy",
                    spec.package
                ),
                &covered,
                linked
            )
        );
    }
}

/// Each workspace package → the `aws-sdk-*` packages in its normal
/// (non-dev, non-build) dependency closure, from `cargo metadata`, less
/// those `aws-config` brings for the credential chain itself (STS, for web
/// identity and assumed roles): those are not calls of ours.
fn sdk_closure_by_package() -> BTreeMap<String, BTreeSet<String>> {
    let meta = tollgate_tests::paths::cargo_metadata();
    let of_config = tollgate_tests::paths::closure_of(meta, "aws-config");
    tollgate_tests::paths::normal_closures(meta)
        .into_iter()
        .map(|(pkg, deps)| {
            let sdks = deps
                .into_iter()
                .filter(|d| d.starts_with("aws-sdk-") && !of_config.contains(d))
                .collect();
            (pkg, sdks)
        })
        .collect()
}

#[test]
fn each_function_role_grants_exactly_its_calls() {
    for spec in FUNCTIONS {
        let role = function_role(spec);
        let granted = granted_actions(&role_statements(role));
        let expected = expected_actions(spec);
        assert_eq!(
            granted,
            expected,
            "{}",
            diff(
                &format!("{} ({role}): template actions", spec.package),
                &expected,
                &granted
            )
        );
    }
}

#[test]
fn no_wildcards_and_star_resources_only_where_iam_has_no_resource_level() {
    let mut roles: Vec<&str> = FUNCTIONS.iter().map(function_role).collect();
    roles.push("EcsHookInvokeRole");
    for role in roles {
        for st in role_statements(role) {
            for action in &st.actions {
                assert!(
                    !action.contains(['*', '?']),
                    "{}: wildcard action {action}",
                    st.origin
                );
                let classified = NO_RESOURCE_LEVEL.contains(&action.as_str())
                    || RESOURCE_LEVEL.contains(&action.as_str())
                    || CONDITION_SCOPED.iter().any(|(a, _)| a == action);
                assert!(
                    classified,
                    "{}: classify {action} in NO_RESOURCE_LEVEL, RESOURCE_LEVEL or CONDITION_SCOPED \
                     (see the Service Authorization Reference)",
                    st.origin
                );
                if NO_RESOURCE_LEVEL.contains(&action.as_str()) {
                    assert!(
                        st.star && st.resources.len() == 1,
                        "{}: {action} has no resource-level permissions; IAM only matches Resource: \"*\"",
                        st.origin
                    );
                } else if st.star {
                    let scoped_by_condition = CONDITION_SCOPED
                        .iter()
                        .any(|(a, key)| a == action && st.condition_keys.contains(*key));
                    assert!(
                        scoped_by_condition,
                        "{}: {action} supports resource-level permissions; name the resources instead of \"*\"",
                        st.origin
                    );
                }
            }
        }
    }
}

#[test]
fn every_iam_resource_in_the_template_is_accounted_for() {
    let function_roles: BTreeSet<&str> = FUNCTIONS.iter().map(function_role).collect();
    let mut known_roles = function_roles.clone();
    known_roles.insert("EcsHookInvokeRole");
    for (id, res) in resources() {
        let ty = res["Type"].as_str().unwrap_or_default();
        match ty {
            "AWS::IAM::Role" => assert!(known_roles.contains(id.as_str()), "unexpected role {id}"),
            "AWS::IAM::Policy" => {
                let roles: Vec<&str> = items(&res["Properties"]["Roles"])
                    .into_iter()
                    .filter_map(ref_to)
                    .collect();
                assert!(
                    !roles.is_empty() && roles.iter().all(|r| function_roles.contains(r)),
                    "{id}: an AWS::IAM::Policy must attach to function roles only, got {roles:?}"
                );
                for key in ["Users", "Groups"] {
                    assert!(
                        res["Properties"].get(key).is_none(),
                        "{id}: {key} not expected"
                    );
                }
            }
            t if t.starts_with("AWS::IAM::") => panic!("{id}: unexpected IAM resource type {t}"),
            "AWS::Serverless::Function" => assert!(
                FUNCTIONS.iter().any(|f| f.logical_id == id),
                "{id}: add the function to FUNCTIONS"
            ),
            _ => {}
        }
    }
    // The ECS hook role may only invoke deploy-hook.
    let st = role_statements("EcsHookInvokeRole");
    assert_eq!(granted_actions(&st), set(&["lambda:InvokeFunction"]));
    for s in &st {
        for r in &s.resources {
            assert_eq!(
                get_att_resource(r),
                Some("DeployHookFunction"),
                "{}: the ECS hook role may invoke deploy-hook only",
                s.origin
            );
        }
    }
}

#[test]
fn functions_build_their_own_binary_with_cargo_lambda() {
    let mut binaries = BTreeSet::new();
    for spec in FUNCTIONS {
        let res = resource(spec.logical_id);
        assert_eq!(res["Type"], "AWS::Serverless::Function");
        assert_eq!(
            res["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{}",
            spec.logical_id
        );
        assert_eq!(
            res["Metadata"]["BuildProperties"]["Binary"], spec.package,
            "{}: BuildProperties.Binary",
            spec.logical_id
        );
        assert_eq!(
            res["Properties"]["CodeUri"],
            format!("functions/{}", spec.package),
            "{}: CodeUri",
            spec.logical_id
        );
        let manifest = read(&format!("functions/{}/Cargo.toml", spec.package));
        assert!(
            manifest.contains(&format!("name = \"{}\"", spec.package)),
            "functions/{}/Cargo.toml names another package",
            spec.package
        );
        assert!(
            binaries.insert(spec.package),
            "binary {} used twice",
            spec.package
        );
        let timeout = res["Properties"]["Timeout"].as_u64().unwrap_or(0);
        assert!(
            (1..=900).contains(&timeout),
            "{}: Timeout must be set (1..=900 s), got {timeout}",
            spec.logical_id
        );
    }
}

/// Variable names declared as `pub const NAME: &str = "VAR";` in a config source.
fn declared_vars(rel: &str) -> BTreeSet<String> {
    Regex::new(r#"pub const [A-Z0-9_]+: &str = "([A-Z][A-Z0-9_]*)";"#)
        .expect("regex")
        .captures_iter(&read(rel))
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn environment_variables_are_ones_the_code_reads() {
    for spec in FUNCTIONS {
        let known: BTreeSet<String> = spec
            .config_sources
            .iter()
            .flat_map(|s| declared_vars(s))
            .collect();
        assert!(!known.is_empty(), "{}: no variables found", spec.package);
        let set_in_template: BTreeSet<String> =
            resource(spec.logical_id)["Properties"]["Environment"]["Variables"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
        let unknown: Vec<_> = set_in_template.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{}: the template sets variables the code never reads: {unknown:?}",
            spec.package
        );
        let omitted: BTreeSet<String> = spec
            .env_not_in_template
            .iter()
            .map(|(v, _)| (*v).to_owned())
            .collect();
        let unexplained: Vec<_> = known
            .difference(&set_in_template)
            .filter(|v| !omitted.contains(*v))
            .collect();
        assert!(
            unexplained.is_empty(),
            "{}: the code reads {unexplained:?}; set them in template.yaml or add them to env_not_in_template with the reason",
            spec.package
        );
        let stale: Vec<_> = omitted.difference(&known).collect();
        assert!(
            stale.is_empty(),
            "{}: env_not_in_template lists variables the code no longer reads: {stale:?}",
            spec.package
        );
    }
}

#[test]
fn event_rules_cover_exactly_what_the_notifier_understands() {
    let mut covered = BTreeSet::new();
    for (id, res) in resources() {
        if res["Type"] != "AWS::Events::Rule" {
            continue;
        }
        let targets = items(&res["Properties"]["Targets"]);
        assert!(
            targets
                .iter()
                .all(|t| get_att_resource(&t["Arn"]) == Some("NotifierFunction")),
            "{id}: every rule targets the notifier"
        );
        let pattern = &res["Properties"]["EventPattern"];
        for dt in items(&pattern["detail-type"]) {
            let dt = dt.as_str().expect("detail-type strings");
            assert!(
                covered.insert(dt.to_owned()),
                "{dt} is matched by two rules"
            );
        }
        let permission = resources().values().any(|p| {
            p["Type"] == "AWS::Lambda::Permission"
                && get_att_resource(&p["Properties"]["SourceArn"]) == Some(id.as_str())
                && p["Properties"]["Principal"] == "events.amazonaws.com"
        });
        assert!(
            permission,
            "{id}: no AWS::Lambda::Permission lets the rule invoke the notifier"
        );
    }
    let understood = set(&tollgate_notify::events::detail_types::ALL);
    assert_eq!(
        covered,
        understood,
        "{}",
        diff("EventBridge detail-types", &understood, &covered)
    );
}

// ------------------------------------------------------------------ docs/deploy.md

#[test]
fn deploy_doc_lists_every_template_parameter() {
    let doc = read("docs/deploy.md");
    let documented: BTreeSet<String> = Regex::new(r"(?m)^\| `([A-Za-z0-9]+)` \|")
        .expect("regex")
        .captures_iter(&doc)
        .map(|c| c[1].to_owned())
        .collect();
    let declared: BTreeSet<String> = template()["Parameters"]
        .as_object()
        .expect("template.yaml has Parameters")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        documented,
        declared,
        "{}",
        diff("docs/deploy.md parameter tables", &declared, &documented)
    );
}

#[test]
fn deploy_doc_user_parameters_are_valid() {
    let doc = read("docs/deploy.md");
    let examples: Vec<String> = Regex::new(r"UserParameters: '(\{.*\})'")
        .expect("regex")
        .captures_iter(&doc)
        .map(|c| c[1].to_owned())
        .collect();
    let mut actions = BTreeSet::new();
    for example in &examples {
        if let Err(e) = tollgate_pipeline::params::parse(Some(example)) {
            panic!("docs/deploy.md: UserParameters {example} is rejected: {e}");
        }
        let v: Value = serde_json::from_str(example).expect("valid JSON");
        actions.insert(v["action"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        actions,
        set(&tollgate_pipeline::params::ACTIONS),
        "docs/deploy.md shows UserParameters for every action"
    );
}

#[test]
fn console_parameter_groups_hold_every_parameter_once() {
    let groups =
        items(&template()["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]);
    let mut grouped = Vec::new();
    for g in groups {
        grouped.extend(
            items(&g["Parameters"])
                .into_iter()
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
    }
    let unique: BTreeSet<String> = grouped.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        grouped.len(),
        "a parameter is in two groups: {grouped:?}"
    );
    let declared: BTreeSet<String> = template()["Parameters"]
        .as_object()
        .expect("template.yaml has Parameters")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        unique,
        declared,
        "{}",
        diff("Metadata ParameterGroups", &declared, &unique)
    );
}

/// `SubnetIds` / `SecurityGroupIds` (issue 20): the VPC configuration and
/// the network-interface permissions exist together, only under `InVpc`,
/// and only for [`VPC_FUNCTIONS`].
#[test]
fn vpc_permissions_only_in_a_vpc() {
    let in_vpc = |v: &Value| {
        v.get("Fn::If")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            == Some("InVpc")
    };
    let condition = &template()["Conditions"]["InVpc"];
    assert!(
        condition.to_string().contains("SubnetIds"),
        "InVpc must test SubnetIds: {condition}"
    );
    let ec2: BTreeSet<String> = ASYNC_VPC_PLATFORM
        .iter()
        .map(|(a, _)| (*a).to_owned())
        .filter(|a| a.starts_with("ec2:"))
        .collect();
    for spec in FUNCTIONS {
        let props = &resource(spec.logical_id)["Properties"];
        let role = function_role(spec);
        if !VPC_FUNCTIONS.contains(&spec.logical_id) {
            assert!(
                props.get("VpcConfig").is_none(),
                "{}: not a VPC function",
                spec.logical_id
            );
            continue;
        }
        // VpcConfig: !If [InVpc, {SubnetIds: !Ref SubnetIds, SecurityGroupIds: !Ref SecurityGroupIds}, NoValue]
        let vpc = &props["VpcConfig"];
        assert!(
            in_vpc(vpc),
            "{}: VpcConfig must be !If [InVpc, ...]",
            spec.logical_id
        );
        let args = vpc["Fn::If"].as_array().expect("Fn::If args");
        assert_eq!(ref_to(&args[1]["SubnetIds"]), Some("SubnetIds"));
        assert_eq!(
            ref_to(&args[1]["SecurityGroupIds"]),
            Some("SecurityGroupIds")
        );
        assert!(
            is_no_value(&args[2]),
            "{}: no VPC without SubnetIds",
            spec.logical_id
        );
        // The EC2 actions: all of them, in one inline policy under InVpc,
        // and nowhere else.
        let policies = resource(role)["Properties"]["Policies"]
            .as_array()
            .expect("inline policies");
        let mut under_condition = BTreeSet::new();
        for policy in policies {
            if in_vpc(policy) {
                for branch in branches(policy) {
                    under_condition.extend(granted_actions(&statements_of(
                        role,
                        &branch["PolicyDocument"],
                    )));
                }
                continue;
            }
            for branch in branches(policy) {
                let granted = granted_actions(&statements_of(role, &branch["PolicyDocument"]));
                assert!(
                    granted.is_disjoint(&ec2),
                    "{role}: EC2 network-interface actions outside the InVpc condition"
                );
            }
        }
        assert_eq!(
            under_condition, ec2,
            "{role}: the InVpc policy grants exactly the network-interface actions"
        );
        for st in role_statements(role) {
            if st.actions.iter().any(|a| a.starts_with("ec2:")) {
                assert!(
                    st.actions.iter().all(|a| a.starts_with("ec2:")),
                    "{}: keep the EC2 actions in their own statements",
                    st.origin
                );
            }
        }
    }
    // A VPC configuration needs both lists: a rule refuses one without the other.
    let rule = template()["Rules"]["VpcNeedsSubnetsAndSecurityGroups"].to_string();
    assert!(
        rule.contains("SubnetIds") && rule.contains("SecurityGroupIds"),
        "the VPC rule must test both parameters: {rule}"
    );
}

//! `run-task` with `task_definition_file`: a whole task definition from the
//! input artifact (`taskdef.json`, the `RegisterTaskDefinition` input shape
//! that CodeDeploy's ECS blue/green reads), its image placeholder filled,
//! checked, tagged with the job id, ready to register.
//!
//! The document is user input that can hold anything (environment values,
//! tokens): no message here quotes it. Problems name the field, the
//! container and what to change; the only values shown are container
//! names, images, role ARNs and field names.

use crate::deploy_files::parse_taskdef;
use crate::ecs::{JOB_TAG, REGISTERED_AT_TAG};
use crate::image::{ImagePolicy, violations};
use crate::task::{AwsLogs, ContainerSpec, TaskSpec};
use crate::Failure;
use serde_json::{Map, Value, json};
use tollgate_core::memory::{JsonWithinError, parse_json_within, size_text};
use tollgate_core::text::did_you_mean;

/// Largest task definition document: ECS refuses a task definition over
/// 64 KiB, so a larger file can never register.
pub const TASKDEF_MAX_BYTES: u64 = 64 * 1024;

/// Parsed size allowed for the document: a generous multiple of its text.
const PARSE_LIMIT: u64 = 16 * TASKDEF_MAX_BYTES;

/// The members of `RegisterTaskDefinition`'s input.
pub const INPUT_MEMBERS: [&str; 18] = [
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "tags",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
];

/// Members `DescribeTaskDefinition` answers with that are not input: a
/// document holding them was copied from a describe and needs them removed.
const DESCRIBE_ONLY: [&str; 9] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// The image that fills a placeholder, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// Placeholder name without `<>`, e.g. `IMAGE1_NAME`.
    pub placeholder: String,
    /// The image.
    pub image: String,
    /// The file it was read from (for messages).
    pub from: String,
}

/// A task definition document ready to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// `family`.
    pub family: String,
    /// The `RegisterTaskDefinition` input as JSON text, with the job tags.
    pub document: String,
    /// What running it needs to know (containers, logs, network mode).
    pub spec: TaskSpec,
    /// `container=image`, for the progress line.
    pub images: Vec<(String, String)>,
}

/// What [`prepare`] checks against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Path of the document in the artifact (for messages).
    pub path: &'a str,
    /// The placeholder to fill, if any.
    pub fill: Option<&'a Fill>,
    /// Image policy every container image must pass.
    pub policy: &'a ImagePolicy,
    /// Roles the function may pass (`EcsPassRoleArns`); `None`: not
    /// configured in the function's environment, so only IAM decides.
    pub pass_roles: Option<&'a [String]>,
    /// Largest document accepted (the smaller of [`TASKDEF_MAX_BYTES`] and
    /// what the function's memory allows).
    pub max_bytes: u64,
}

/// Validates `text`, fills the placeholder, checks images and roles, and
/// adds the job tags (`tags` of the document are kept, except Tollgate's own).
pub fn prepare(text: &str, rules: &Rules<'_>, job_id: &str, now_ms: u64) -> Result<Prepared, Failure> {
    let path = rules.path;
    let size = u64::try_from(text.len()).unwrap_or(u64::MAX);
    if size > rules.max_bytes {
        return Err(Failure::job(format!(
            "{path} is {}, over the {} a task definition may take here ({}); make it smaller",
            size_text(size),
            size_text(rules.max_bytes),
            if rules.max_bytes < TASKDEF_MAX_BYTES {
                "the function's memory allows no more; raise PipelineActionMemorySize"
            } else {
                "ECS refuses task definitions over 64 KiB"
            }
        )));
    }
    let value = parse_json_within(text.as_bytes(), PARSE_LIMIT).map_err(|e| {
        Failure::job(match e {
            JsonWithinError::Syntax(e) => format!(
                "{path} is not valid JSON ({}); it must be a RegisterTaskDefinition input object",
                tollgate_core::doc_error::json(&e, text)
            ),
            over => format!("{path} is too large to read: {over}; make it smaller"),
        })
    })?;
    // The shape checks verify-artifact makes (family, named containers, images).
    parse_taskdef(text, rules.fill.map(|f| f.placeholder.as_str())).map_err(|problems| {
        Failure::job(format!(
            "{path} in the artifact is not a usable task definition: {}",
            problems
                .iter()
                .map(|p| p.strip_prefix("taskdef.json: ").unwrap_or(p))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let Value::Object(mut doc) = value else {
        return Err(Failure::job(format!("{path} must be a JSON object")));
    };
    check_members(path, &doc)?;
    let family = doc
        .get("family")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut images = Vec::new();
    let mut problems = Vec::new();
    if let Some(Value::Array(containers)) = doc.get_mut("containerDefinitions") {
        for c in containers.iter_mut() {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            let mut image = c["image"].as_str().unwrap_or_default().to_owned();
            if let Some(f) = rules.fill {
                let wanted = format!("<{}>", f.placeholder);
                if image.contains(&wanted) {
                    image = image.replace(&wanted, &f.image);
                    c["image"] = Value::String(image.clone());
                }
            }
            if let Some(p) = placeholder_in(&image) {
                problems.push(format!(
                    "container {name}: its image is still the placeholder <{p}>; set \
                     \"image_placeholder\":\"{p}\" in UserParameters to fill it from \
                     imageDetail.json (or imagedefinitions.json) of the artifact"
                ));
                continue;
            }
            problems.extend(
                violations(&image, rules.policy)
                    .into_iter()
                    .map(|v| format!("container {name}: {v}")),
            );
            images.push((name, image));
        }
    }
    if !problems.is_empty() {
        return Err(Failure::job(format!(
            "refusing to run {path}: {}",
            problems.join("; ")
        )));
    }
    check_roles(path, &doc, rules.pass_roles)?;
    let spec = spec_of(&doc, &family)?;
    tag(&mut doc, job_id, now_ms).map_err(|why| Failure::job(format!("{path}: {why}")))?;
    Ok(Prepared {
        family,
        document: Value::Object(doc).to_string(),
        spec,
        images,
    })
}

fn check_members(path: &str, doc: &Map<String, Value>) -> Result<(), Failure> {
    let described: Vec<&str> = doc
        .keys()
        .map(String::as_str)
        .filter(|k| DESCRIBE_ONLY.contains(k))
        .collect();
    if !described.is_empty() {
        return Err(Failure::job(format!(
            "{path} holds {}, which DescribeTaskDefinition answers with but RegisterTaskDefinition \
             does not take: it looks copied from a describe; remove them (keep \"family\", \
             \"containerDefinitions\" and the other input fields)",
            described
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for key in doc.keys() {
        if !INPUT_MEMBERS.contains(&key.as_str()) {
            let hint = did_you_mean(key, &INPUT_MEMBERS)
                .map(|m| format!(" (did you mean \"{m}\"?)"))
                .unwrap_or_default();
            // A field name is shown only when it looks like one.
            let shown = if key.len() <= 40 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                format!("\"{key}\"")
            } else {
                "a top-level field".to_owned()
            };
            return Err(Failure::job(format!(
                "{path}: {shown} is not a RegisterTaskDefinition field{hint}; the fields are {}",
                INPUT_MEMBERS.join(", ")
            )));
        }
    }
    Ok(())
}

/// The first `<NAME>` placeholder in an image, if any.
fn placeholder_in(image: &str) -> Option<&str> {
    let start = image.find('<')?;
    let rest = &image[start + 1..];
    let end = rest.find('>')?;
    let name = &rest[..end];
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(name)
}

/// Whether `arn` matches an IAM resource pattern (`*` and `?` wildcards).
/// Iterative, backtracking only to the last `*`: at most pattern × ARN
/// steps, whatever the pattern (a recursive match is exponential in the
/// number of `*`; review finding).
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let a: Vec<char> = arn.chars().collect();
    let (mut pi, mut ai) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ai < a.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ai));
                pi += 1;
            }
            Some(&c) if c == '?' || c == a[ai] => {
                pi += 1;
                ai += 1;
            }
            _ => match star {
                Some((s, matched)) => {
                    star = Some((s, matched + 1));
                    pi = s + 1;
                    ai = matched + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// IAM's longest ARN; a longer "role" is no role and is not matched.
const MAX_ARN_CHARS: usize = 2048;

fn check_roles(path: &str, doc: &Map<String, Value>, allowed: Option<&[String]>) -> Result<(), Failure> {
    for field in ["taskRoleArn", "executionRoleArn"] {
        let Some(v) = doc.get(field) else { continue };
        let Some(role) = v.as_str() else {
            return Err(Failure::job(format!(
                "{path}: \"{field}\" must be a role ARN string"
            )));
        };
        if role.chars().count() > MAX_ARN_CHARS {
            return Err(Failure::job(format!(
                "{path}: \"{field}\" is longer than {MAX_ARN_CHARS} characters, so it is not a role ARN"
            )));
        }
        let Some(allowed) = allowed else { continue };
        if !allowed.iter().any(|p| arn_matches(p.trim(), role)) {
            return Err(Failure::config(format!(
                "{path}: \"{field}\" is {}, a role this function may not pass to ECS; \
                 run-task only registers task definitions whose roles are in the stack \
                 parameter EcsPassRoleArns ({}). Add the role there, or use one of those",
                tollgate_core::text::ellipsize(role, 200),
                if allowed.is_empty() {
                    "empty: no role may be passed".to_owned()
                } else {
                    allowed.join(", ")
                }
            )));
        }
    }
    Ok(())
}

/// What running the task needs, from the document.
fn spec_of(doc: &Map<String, Value>, family: &str) -> Result<TaskSpec, Failure> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let containers = doc
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let log = c.get("logConfiguration");
            let driver = log
                .and_then(|l| l.get("logDriver"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let option = |k: &str| {
                log.and_then(|l| l.get("options"))
                    .and_then(|o| o.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let awslogs = (driver.as_deref() == Some("awslogs"))
                .then(|| {
                    Some(AwsLogs {
                        group: option("awslogs-group")?,
                        region: option("awslogs-region"),
                        stream_prefix: option("awslogs-stream-prefix"),
                    })
                })
                .flatten();
            ContainerSpec {
                name: c["name"].as_str().unwrap_or_default().to_owned(),
                essential: c.get("essential").and_then(Value::as_bool).unwrap_or(true),
                log_driver: driver,
                awslogs,
                secret_names: c
                    .get("secrets")
                    .and_then(Value::as_array)
                    .map(|s| {
                        s.iter()
                            .filter_map(|x| x.get("name").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(TaskSpec {
        arn: format!("{family} (from the artifact)"),
        family: family.to_owned(),
        network_mode: doc
            .get("networkMode")
            .and_then(Value::as_str)
            .map(str::to_owned),
        compatibilities: strings(doc.get("requiresCompatibilities")),
        containers,
    })
}

/// Adds the job tag and the registration time to the document's `tags`.
fn tag(doc: &mut Map<String, Value>, job_id: &str, now_ms: u64) -> Result<(), String> {
    let mut tags = match doc.remove("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t,
        Some(_) => return Err("\"tags\" must be a list of {\"key\":…,\"value\":…}".to_owned()),
    };
    tags.retain(|t| {
        let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
        key != JOB_TAG && key != REGISTERED_AT_TAG
    });
    // ECS allows 50 tags per resource.
    if tags.len() > 48 {
        return Err(format!(
            "\"tags\" has {} tags; ECS allows 50 and run-task adds 2 (the job id and the time)",
            tags.len()
        ));
    }
    tags.push(json!({"key": JOB_TAG, "value": job_id}));
    tags.push(json!({"key": REGISTERED_AT_TAG, "value": now_ms.to_string()}));
    doc.insert("tags".to_owned(), Value::Array(tags));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document, the fill, the allowed roles, and the text the error must hold.
    type Case<'a> = (String, Option<&'a Fill>, Option<&'a [String]>, &'a str);

    const IMAGE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:3f9c2ab";
    const SECRET: &str = "s3cr3t-token-value";

    fn doc() -> String {
        json!({
            "family": "migrate",
            "taskRoleArn": "arn:aws:iam::111111111111:role/migrate-task",
            "executionRoleArn": "arn:aws:iam::111111111111:role/ecs-exec",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512",
            "tags": [{"key": "team", "value": "db"}, {"key": JOB_TAG, "value": "old-job"}],
            "containerDefinitions": [{
                "name": "migrate", "image": "<IMAGE1_NAME>", "essential": true,
                "environment": [{"name": "TOKEN", "value": SECRET}],
                "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:111111111111:parameter/db"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": "/ecs/migrate", "awslogs-stream-prefix": "ecs"}}
            }, {"name": "sidecar", "image": "public.ecr.aws/envoy:v1.30.1", "essential": false}]
        })
        .to_string()
    }

    fn fill() -> Fill {
        Fill {
            placeholder: "IMAGE1_NAME".into(),
            image: IMAGE.into(),
            from: "imageDetail.json".into(),
        }
    }

    fn rules<'a>(fill: Option<&'a Fill>, policy: &'a ImagePolicy, roles: Option<&'a [String]>) -> Rules<'a> {
        Rules {
            path: "taskdef.json",
            fill,
            policy,
            pass_roles: roles,
            max_bytes: TASKDEF_MAX_BYTES,
        }
    }

    #[test]
    fn a_document_is_filled_tagged_and_read() {
        let f = fill();
        let policy = ImagePolicy::default();
        let roles = vec![
            "arn:aws:iam::111111111111:role/migrate-*".to_owned(),
            "arn:aws:iam::111111111111:role/ecs-exec".to_owned(),
        ];
        let p = prepare(&doc(), &rules(Some(&f), &policy, Some(&roles)), "job-1", 42).expect("ok");
        assert_eq!(p.family, "migrate");
        assert_eq!(p.images[0], ("migrate".to_owned(), IMAGE.to_owned()));
        let v: Value = serde_json::from_str(&p.document).expect("json");
        assert_eq!(v["containerDefinitions"][0]["image"], IMAGE);
        assert_eq!(
            v["tags"],
            json!([{"key": "team", "value": "db"}, {"key": JOB_TAG, "value": "job-1"},
                {"key": REGISTERED_AT_TAG, "value": "42"}])
        );
        // Everything else is passed through as written.
        assert_eq!(v["cpu"], "256");
        assert_eq!(v["containerDefinitions"][0]["secrets"][0]["name"], "DB_PASSWORD");
        assert_eq!(p.spec.network_mode.as_deref(), Some("awsvpc"));
        assert_eq!(p.spec.compatibilities, vec!["FARGATE".to_owned()]);
        let c = p.spec.container("migrate").expect("container");
        assert!(c.essential);
        assert_eq!(c.secret_names, vec!["DB_PASSWORD".to_owned()]);
        assert_eq!(c.awslogs.as_ref().map(|l| l.group.as_str()), Some("/ecs/migrate"));
        assert!(!p.spec.container("sidecar").expect("sidecar").essential);
    }

    #[test]
    fn problems_name_the_field_and_never_quote_the_document() {
        let f = fill();
        let policy = ImagePolicy::default();
        let none: Vec<String> = Vec::new();
        let cases: Vec<Case<'_>> = vec![
            (doc(), None, None, "still the placeholder <IMAGE1_NAME>; set \"image_placeholder\":\"IMAGE1_NAME\""),
            (doc(), Some(&f), Some(&none), "\"taskRoleArn\" is arn:aws:iam::111111111111:role/migrate-task, a role this function may not pass"),
            (doc().replace("\"cpu\"", "\"revision\":3,\"cpu\""), Some(&f), None, "holds \"revision\", which DescribeTaskDefinition answers with"),
            (doc().replace("\"cpu\"", "\"memmory\":1,\"cpu\""), Some(&f), None, "\"memmory\" is not a RegisterTaskDefinition field (did you mean \"memory\"?)"),
            (doc().replace("\"family\":\"migrate\",", ""), Some(&f), None, "\"family\" is missing"),
            (format!("{{\"family\":\"x\",\"token\":\"{SECRET}\""), Some(&f), None, "is not valid JSON"),
            (doc().replace("<IMAGE1_NAME>", "web:latest"), None, None, "latest"),
        ];
        for (text, fill, roles, wanted) in cases {
            let err = prepare(&text, &rules(fill, &policy, roles), "job-1", 1).expect_err(wanted);
            assert!(err.message.contains(wanted), "{wanted}: {}", err.message);
            assert!(!err.message.contains(SECRET), "{}", err.message);
        }
        let big = format!("{{\"family\":\"x\",\"pad\":\"{}\"}}", "a".repeat(70_000));
        let err = prepare(&big, &rules(None, &policy, None), "job-1", 1).expect_err("big");
        assert!(err.message.contains("ECS refuses task definitions over 64 KiB"), "{}", err.message);
        let mut small = rules(None, &policy, None);
        small.max_bytes = 100;
        let err = prepare(&doc(), &small, "job-1", 1).expect_err("memory");
        assert!(err.message.contains("PipelineActionMemorySize"), "{}", err.message);
    }

    #[test]
    fn role_patterns_use_iam_wildcards() {
        assert!(arn_matches("arn:aws:iam::1:role/*", "arn:aws:iam::1:role/a"));
        assert!(arn_matches("arn:aws:iam::1:role/web-?", "arn:aws:iam::1:role/web-1"));
        assert!(!arn_matches("arn:aws:iam::1:role/web-?", "arn:aws:iam::1:role/web-12"));
        assert!(!arn_matches("arn:aws:iam::1:role/web", "arn:aws:iam::1:role/web2"));
        assert!(arn_matches("*", ""));
        assert!(arn_matches("a*b*c", "aXXbYYc"));
        assert!(arn_matches("a*b*c", "abbc"));
        assert!(!arn_matches("a*b*c", "aXXbYY"));
        assert!(arn_matches("arn:*:role/*-deploy", "arn:aws:iam::1:role/web-x-deploy"));
        // Many stars against a long non-matching string end at once.
        let long = "a".repeat(2048);
        assert!(!arn_matches("*a*a*a*a*a*a*a*a*a*a*b", &long));
    }
}

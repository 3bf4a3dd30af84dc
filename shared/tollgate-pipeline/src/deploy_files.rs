//! The deploy files a build hands to the next stages, and their validators:
//! what `verify-artifact` checks, and `imagedefinitions.json` for
//! `ecs-deploy`. Each validator reports every problem, not just the first:
//!
//! - `imagedefinitions.json`: a non-empty array of `{name, imageUri}` with
//!   unique names, matching `expected_containers` when given;
//! - `imageDetail.json`: an object with `ImageURI`;
//! - `taskdef.json`: a family and named containers with images; the
//!   `<IMAGE1_NAME>`-style placeholder present when `image_placeholder` is set;
//! - `appspec.yaml` / `appspec.yml` / `appspec.json`: a version and an
//!   `AWS::ECS::Service` target with a `TaskDefinition` and a
//!   `LoadBalancerInfo` container/port that exist in `taskdef.json`.
//!
//! Running them over an artifact, and the image policy, belong to
//! [`crate::actions::verify_artifact`].

use crate::params::kind;
use serde_json::Value;
use std::collections::BTreeSet;

/// Parsed content one artifact file may take (`memory::parse_json_within`):
/// a 5 MiB file of tiny values would otherwise parse to 80 MiB.
pub const FILE_PARSE_LIMIT: u64 = 16 * 1024 * 1024;

/// Parses one artifact file as JSON within [`FILE_PARSE_LIMIT`]; errors
/// name the file and quote none of it. `expected` follows a syntax error.
fn json_file(file: &str, text: &str, expected: &str) -> Result<Value, Vec<String>> {
    tollgate_core::memory::parse_json_within(text.as_bytes(), FILE_PARSE_LIMIT).map_err(|e| {
        vec![match e {
            tollgate_core::memory::JsonWithinError::Syntax(e) => format!(
                "{file}: not valid JSON ({}){expected}",
                tollgate_core::doc_error::json(&e, text)
            ),
            over => format!(
                "{file}: too large to check: {over}, the limit for one file; make the file smaller"
            ),
        }]
    })
}

/// One `imagedefinitions.json` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDefinition {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image_uri: String,
}

/// Parses and validates `imagedefinitions.json`. Errors are sentences
/// prefixed with the file name.
pub fn parse_image_definitions(text: &str) -> Result<Vec<ImageDefinition>, Vec<String>> {
    const F: &str = "imagedefinitions.json";
    let value = json_file(
        F,
        text,
        "; expected [{\"name\":\"web\",\"imageUri\":\"…\"}]",
    )?;
    let Value::Array(items) = value else {
        return Err(vec![format!(
            "{F}: must be a JSON array of {{\"name\",\"imageUri\"}} objects, got {}",
            kind(&value)
        )]);
    };
    if items.is_empty() {
        return Err(vec![format!(
            "{F}: the array is empty; it must name at least one container and its image"
        )]);
    }
    let mut problems = Vec::new();
    let mut defs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(o) = item else {
            problems.push(format!(
                "{F}: [{i}] must be an object with \"name\" and \"imageUri\", got {}",
                kind(item)
            ));
            continue;
        };
        let name = non_empty_str(o.get("name"));
        let uri = non_empty_str(o.get("imageUri"));
        if name.is_none() {
            problems.push(format!(
                "{F}: [{i}].name is missing or empty; it must be the container name from the task definition"
            ));
        }
        if uri.is_none() {
            problems.push(format!(
                "{F}: [{i}].imageUri is missing or empty; it must be the image to deploy{}",
                if o.contains_key("ImageURI") || o.contains_key("imageURI") {
                    " (the key is spelled \"imageUri\")"
                } else {
                    ""
                }
            ));
        }
        if let (Some(name), Some(uri)) = (name, uri) {
            if !seen.insert(name.to_owned()) {
                problems.push(format!(
                    "{F}: container \"{name}\" is listed twice; each container may appear once"
                ));
                continue;
            }
            defs.push(ImageDefinition {
                name: name.to_owned(),
                image_uri: uri.to_owned(),
            });
        }
    }
    if problems.is_empty() {
        Ok(defs)
    } else {
        Err(problems)
    }
}

/// Compares the container names with the expected set.
pub fn check_expected_containers(defs: &[ImageDefinition], expected: &[String]) -> Vec<String> {
    let have: BTreeSet<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    let want: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let missing: Vec<&str> = want.difference(&have).copied().collect();
    let extra: Vec<&str> = have.difference(&want).copied().collect();
    let mut out = Vec::new();
    if !missing.is_empty() {
        out.push(format!(
            "imagedefinitions.json: expected container(s) {} missing (it has {})",
            missing.join(", "),
            have.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    if !extra.is_empty() {
        out.push(format!(
            "imagedefinitions.json: container(s) {} not in expected_containers ({})",
            extra.join(", "),
            expected.join(", ")
        ));
    }
    out
}

/// What `imageDetail.json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetail {
    /// `ImageURI`.
    pub image_uri: String,
    /// `ImageDigest`, when present (the ECR source action writes it).
    pub digest: Option<String>,
}

/// Parses and validates `imageDetail.json`.
pub fn parse_image_detail(text: &str) -> Result<ImageDetail, Vec<String>> {
    const F: &str = "imageDetail.json";
    let value = json_file(F, text, "; expected {\"ImageURI\":\"…\"}")?;
    let Value::Object(o) = &value else {
        return Err(vec![format!(
            "{F}: must be a JSON object with \"ImageURI\", got {}",
            kind(&value)
        )]);
    };
    let Some(uri) = non_empty_str(o.get("ImageURI")) else {
        return Err(vec![format!(
            "{F}: \"ImageURI\" is missing or empty; it must be the image to deploy"
        )]);
    };
    Ok(ImageDetail {
        image_uri: uri.to_owned(),
        digest: non_empty_str(o.get("ImageDigest")).map(str::to_owned),
    })
}

/// A container of `taskdef.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefContainer {
    /// `name`.
    pub name: String,
    /// `image` (may be a placeholder).
    pub image: String,
    /// `portMappings[].containerPort`.
    pub ports: Vec<u64>,
}

/// What `taskdef.json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefSummary {
    /// `family`.
    pub family: String,
    /// The containers.
    pub containers: Vec<TaskDefContainer>,
}

/// Parses and validates `taskdef.json`; checks the placeholder when given.
pub fn parse_taskdef(text: &str, placeholder: Option<&str>) -> Result<TaskDefSummary, Vec<String>> {
    const F: &str = "taskdef.json";
    let value = json_file(F, text, "; expected a task definition object")?;
    let Value::Object(o) = &value else {
        return Err(vec![format!(
            "{F}: must be a task definition object, got {}",
            kind(&value)
        )]);
    };
    let mut problems = Vec::new();
    let family = non_empty_str(o.get("family"))
        .unwrap_or_default()
        .to_owned();
    if family.is_empty() {
        problems.push(format!(
            "{F}: \"family\" is missing or empty; RegisterTaskDefinition needs it"
        ));
    }
    let mut containers = Vec::new();
    match o.get("containerDefinitions") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let Value::Object(c) = item else {
                    problems.push(format!(
                        "{F}: containerDefinitions[{i}] must be an object, got {}",
                        kind(item)
                    ));
                    continue;
                };
                let Some(name) = non_empty_str(c.get("name")) else {
                    problems.push(format!(
                        "{F}: containerDefinitions[{i}] has no \"name\"; every container must be named"
                    ));
                    continue;
                };
                if !seen.insert(name.to_owned()) {
                    problems.push(format!(
                        "{F}: container name \"{name}\" is used twice; names must be unique"
                    ));
                }
                let image = non_empty_str(c.get("image")).unwrap_or_default().to_owned();
                if image.is_empty() {
                    problems.push(format!("{F}: container \"{name}\" has no \"image\""));
                }
                let ports = match c.get("portMappings") {
                    Some(Value::Array(pm)) => pm
                        .iter()
                        .filter_map(|m| m.get("containerPort").and_then(as_port))
                        .collect(),
                    _ => Vec::new(),
                };
                containers.push(TaskDefContainer {
                    name: name.to_owned(),
                    image,
                    ports,
                });
            }
        }
        Some(Value::Array(_)) => problems.push(format!(
            "{F}: \"containerDefinitions\" is empty; a task definition needs at least one container"
        )),
        Some(other) => problems.push(format!(
            "{F}: \"containerDefinitions\" must be a list, got {}",
            kind(other)
        )),
        None => problems.push(format!("{F}: \"containerDefinitions\" is missing")),
    }
    if let Some(p) = placeholder {
        let wanted = format!("<{p}>");
        if !containers.iter().any(|c| c.image.contains(&wanted)) {
            let images = containers
                .iter()
                .map(|c| format!("{}={}", c.name, c.image))
                .collect::<Vec<_>>()
                .join(", ");
            problems.push(format!(
                "{F}: no container image is the placeholder {wanted} (images: {images}); \
                 CodeDeploy fills {wanted} with the built image, so a hard-coded image would deploy the wrong one"
            ));
        }
    }
    if problems.is_empty() {
        Ok(TaskDefSummary { family, containers })
    } else {
        Err(problems)
    }
}

/// What an ECS AppSpec says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpecSummary {
    /// `version`, as written.
    pub version: String,
    /// `Properties.TaskDefinition`.
    pub task_definition: String,
    /// `LoadBalancerInfo.ContainerName`.
    pub container_name: String,
    /// `LoadBalancerInfo.ContainerPort`.
    pub container_port: u64,
}

/// Parses and validates an ECS AppSpec (`file` is its name, for messages).
pub fn parse_appspec(file: &str, text: &str) -> Result<AppSpecSummary, Vec<String>> {
    let value: Value = if file.ends_with(".json") {
        json_file(file, text, "")?
    } else {
        serde_saphyr::from_str_with_options(text, tollgate_core::memory::document_yaml_options())
            .map_err(|e| {
                vec![format!(
                    "{file}: not valid YAML ({})",
                    tollgate_core::doc_error::yaml(&e, text)
                )]
            })?
    };
    let Value::Object(o) = &value else {
        return Err(vec![format!(
            "{file}: must be a mapping with version and Resources, got {}",
            kind(&value)
        )]);
    };
    let mut problems = Vec::new();
    let version = match o.get("version") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => {
            problems.push(format!("{file}: \"version\" is missing (use version: 0.0)"));
            String::new()
        }
    };
    let resources = match o.get("Resources") {
        Some(Value::Array(r)) if !r.is_empty() => r.as_slice(),
        _ => {
            problems.push(format!(
                "{file}: \"Resources\" must be a non-empty list holding the target service"
            ));
            &[]
        }
    };
    // Each resource is a one-key mapping: {TargetService: {Type, Properties}}.
    let service = resources
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.values())
        .find(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::ECS::Service"));
    let mut summary = AppSpecSummary {
        version,
        task_definition: String::new(),
        container_name: String::new(),
        container_port: 0,
    };
    match service {
        None if !resources.is_empty() => problems.push(format!(
            "{file}: no resource has Type: AWS::ECS::Service; an ECS AppSpec names the target service"
        )),
        None => {}
        Some(svc) => {
            let props = svc.get("Properties");
            match props.and_then(|p| non_empty_str(p.get("TaskDefinition"))) {
                Some(td) => summary.task_definition = td.to_owned(),
                None => problems.push(format!(
                    "{file}: Properties.TaskDefinition is missing (use \"<TASK_DEFINITION>\" to let CodeDeploy fill it)"
                )),
            }
            let lb = props.and_then(|p| p.get("LoadBalancerInfo"));
            match lb.and_then(|l| non_empty_str(l.get("ContainerName"))) {
                Some(c) => summary.container_name = c.to_owned(),
                None => problems.push(format!(
                    "{file}: Properties.LoadBalancerInfo.ContainerName is missing; it names the container that receives traffic"
                )),
            }
            match lb.and_then(|l| l.get("ContainerPort")).and_then(as_port) {
                Some(p) => summary.container_port = p,
                None => problems.push(format!(
                    "{file}: Properties.LoadBalancerInfo.ContainerPort is missing or not a port number"
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(problems)
    }
}

/// Checks that the AppSpec's load balancer container and port exist in the task definition.
pub fn cross_check(file: &str, appspec: &AppSpecSummary, taskdef: &TaskDefSummary) -> Vec<String> {
    let Some(c) = taskdef
        .containers
        .iter()
        .find(|c| c.name == appspec.container_name)
    else {
        return vec![format!(
            "{file}: LoadBalancerInfo.ContainerName \"{}\" is not a container in taskdef.json ({})",
            appspec.container_name,
            taskdef
                .containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )];
    };
    if c.ports.contains(&appspec.container_port) {
        Vec::new()
    } else {
        vec![format!(
            "{file}: LoadBalancerInfo.ContainerPort {} is not a containerPort of container \"{}\" in taskdef.json (its ports: {})",
            appspec.container_port,
            c.name,
            if c.ports.is_empty() {
                "none".to_owned()
            } else {
                c.ports
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )]
    }
}

fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn as_port(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|p| (1..=65535).contains(p))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const IMAGE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:3f9c2ab";
    pub(crate) const TASKDEF: &str = r#"{"family":"web","containerDefinitions":[
        {"name":"web","image":"<IMAGE1_NAME>","portMappings":[{"containerPort":8080}]},
        {"name":"envoy","image":"public.ecr.aws/envoy@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"}]}"#;
    pub(crate) const APPSPEC: &str = "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: \"<TASK_DEFINITION>\"\n        LoadBalancerInfo:\n          ContainerName: web\n          ContainerPort: 8080\n";

    #[test]
    fn image_definitions_are_validated() {
        let ok = parse_image_definitions(&format!(r#"[{{"name":"web","imageUri":"{IMAGE}"}}]"#))
            .expect("valid");
        assert_eq!(ok[0].name, "web");
        for (text, problem) in [
            ("{}", "must be a JSON array"),
            ("[]", "the array is empty"),
            ("[1]", "[0] must be an object"),
            (r#"[{"imageUri":"x"}]"#, "[0].name is missing"),
            (r#"[{"name":"web","ImageURI":"x"}]"#, "spelled \"imageUri\""),
            (
                r#"[{"name":"a","imageUri":"x"},{"name":"a","imageUri":"y"}]"#,
                "listed twice",
            ),
            ("[", "not valid JSON"),
        ] {
            let errs = parse_image_definitions(text).expect_err(text);
            assert!(errs.iter().any(|e| e.contains(problem)), "{text}: {errs:?}");
            assert!(
                errs.iter()
                    .all(|e| e.starts_with("imagedefinitions.json: ")),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn expected_containers_report_missing_and_extra() {
        let defs = vec![ImageDefinition {
            name: "web".into(),
            image_uri: IMAGE.into(),
        }];
        let p = check_expected_containers(&defs, &["web".into(), "worker".into()]);
        assert!(p[0].contains("worker missing"), "{p:?}");
        let p = check_expected_containers(&defs, &["api".into()]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(check_expected_containers(&defs, &["web".into()]).is_empty());
    }

    #[test]
    fn taskdefs_and_appspecs_are_validated_and_cross_checked() {
        let td = parse_taskdef(TASKDEF, Some("IMAGE1_NAME")).expect("valid");
        assert_eq!(td.containers[0].ports, [8080]);
        let errs = parse_taskdef(
            TASKDEF.replace("<IMAGE1_NAME>", IMAGE).as_str(),
            Some("IMAGE1_NAME"),
        )
        .expect_err("no placeholder");
        assert!(
            errs[0].contains("no container image is the placeholder <IMAGE1_NAME>"),
            "{errs:?}"
        );
        let errs =
            parse_taskdef(r#"{"containerDefinitions":[{"image":"x"}]}"#, None).expect_err("bad");
        assert_eq!(errs.len(), 2, "{errs:?}");

        let spec = parse_appspec("appspec.yaml", APPSPEC).expect("valid");
        assert_eq!(
            (spec.container_name.as_str(), spec.container_port),
            ("web", 8080)
        );
        assert_eq!(spec.version, "0.0");
        assert!(cross_check("appspec.yaml", &spec, &td).is_empty());
        let wrong_port =
            parse_appspec("appspec.yaml", &APPSPEC.replace("8080", "80")).expect("valid");
        let p = cross_check("appspec.yaml", &wrong_port, &td);
        assert!(
            p[0].contains("ContainerPort 80 is not a containerPort of container \"web\""),
            "{p:?}"
        );
        let wrong_name = parse_appspec(
            "appspec.yaml",
            &APPSPEC.replace("ContainerName: web", "ContainerName: api"),
        )
        .expect("valid");
        assert!(
            cross_check("appspec.yaml", &wrong_name, &td)[0].contains("\"api\" is not a container")
        );

        let json = r#"{"version":0.0,"Resources":[{"TargetService":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"<TASK_DEFINITION>","LoadBalancerInfo":{"ContainerName":"web","ContainerPort":"8080"}}}}]}"#;
        assert_eq!(
            parse_appspec("appspec.json", json)
                .expect("json")
                .container_port,
            8080
        );
        let errs =
            parse_appspec("appspec.yaml", "version: 0.0\nResources: []\n").expect_err("empty");
        assert!(errs[0].contains("Resources"), "{errs:?}");
        let errs = parse_appspec(
            "appspec.yaml",
            "Resources:\n  - S:\n      Type: AWS::Lambda::Function\n",
        )
        .expect_err("lambda");
        assert!(errs.iter().any(|e| e.contains("version")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.contains("AWS::ECS::Service")),
            "{errs:?}"
        );
        let errs = parse_appspec("appspec.yaml", "a: [").expect_err("yaml");
        assert!(
            errs[0].starts_with("appspec.yaml: not valid YAML"),
            "{errs:?}"
        );
    }
}

//! `UserParameters`: the JSON object in the action's configuration that picks
//! the action and configures it.
//!
//! Parsing is strict and explains itself. Every problem becomes a
//! [`ParamError`] that names the field (`image_policy.pin`,
//! `expected_containers[1]`), says what is wrong, and shows a valid example
//! for the action. Unknown fields are rejected with a "did you mean"
//! suggestion: a typo such as `clustr` must not be ignored silently.
//!
//! CodePipeline caps `UserParameters` at 1000 characters, so large smoke
//! specs belong in an input artifact (`spec_path`).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tollgate_core::text::did_you_mean;

/// Action names, as written in `"action"`.
pub const ACTIONS: [&str; 4] = ["smoke", "verify-artifact", "ecs-deploy", "ecs-wait"];

/// Files `verify-artifact` knows how to validate.
pub const KNOWN_FILES: [&str; 6] = [
    "imagedefinitions.json",
    "imageDetail.json",
    "taskdef.json",
    "appspec.yaml",
    "appspec.yml",
    "appspec.json",
];

/// Valid examples, shown in every error for the action concerned.
pub mod examples {
    /// `smoke`.
    pub const SMOKE: &str = r#"{"action":"smoke","spec_path":"checks/staging.yaml","vars":{"TARGET":"https://staging.example.com"}}"#;
    /// `verify-artifact`.
    pub const VERIFY_ARTIFACT: &str = r#"{"action":"verify-artifact","artifact":"BuildOutput","expected_containers":["web"],"image_policy":{"pin":"digest-or-sha-tag"}}"#;
    /// `ecs-deploy`.
    pub const ECS_DEPLOY: &str =
        r#"{"action":"ecs-deploy","cluster":"prod","service":"web","wait_timeout_minutes":30}"#;
    /// `ecs-wait`.
    pub const ECS_WAIT: &str = r#"{"action":"ecs-wait","cluster":"prod","service":"web"}"#;
}

/// A problem with `UserParameters`. Reported as `ConfigurationError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid UserParameters: {field_text} {problem}. Example of valid UserParameters: {example}"
)]
pub struct ParamError {
    /// The field's path, e.g. `image_policy.pin`; `UserParameters` for the whole value.
    pub field: String,
    /// What is wrong and what is accepted.
    pub problem: String,
    /// A valid `UserParameters` value for the action concerned.
    pub example: String,
    field_text: String,
}

impl ParamError {
    fn new(field: &str, problem: impl Into<String>, example: &str) -> Self {
        let field_text = if field == "UserParameters" {
            "UserParameters".to_owned()
        } else {
            format!("field \"{field}\"")
        };
        Self {
            field: field.to_owned(),
            problem: problem.into(),
            example: example.to_owned(),
            field_text,
        }
    }
}

/// The parsed parameters of one of the four actions.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `smoke`.
    Smoke(SmokeParams),
    /// `verify-artifact`.
    VerifyArtifact(VerifyParams),
    /// `ecs-deploy`.
    EcsDeploy(EcsDeployParams),
    /// `ecs-wait`.
    EcsWait(EcsWaitParams),
}

impl Params {
    /// The action's name as written in `"action"`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Smoke(_) => "smoke",
            Self::VerifyArtifact(_) => "verify-artifact",
            Self::EcsDeploy(_) => "ecs-deploy",
            Self::EcsWait(_) => "ecs-wait",
        }
    }
}

/// Where a smoke spec comes from. `Debug` never shows an inline spec: it may
/// hold tokens (header values) that must stay out of logs.
#[derive(Clone, PartialEq)]
pub enum SpecSource {
    /// The spec itself, inline (`"spec": {...}` or a YAML/JSON string).
    Inline(Value),
    /// A file inside an input artifact (`"spec_path"`).
    Artifact {
        /// Input artifact name; `None` when the action has exactly one.
        artifact: Option<String>,
        /// Path of the spec file inside the artifact zip.
        path: String,
    },
}

/// `smoke` parameters. `Debug` shows the variables' names, not their values.
#[derive(Clone, PartialEq)]
pub struct SmokeParams {
    /// The check spec.
    pub spec: SpecSource,
    /// Variables for the spec's templates, e.g. `TARGET`.
    pub vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for SpecSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(spec) => write!(f, "Inline(<{} bytes>)", spec.to_string().len()),
            Self::Artifact { artifact, path } => f
                .debug_struct("Artifact")
                .field("artifact", artifact)
                .field("path", path)
                .finish(),
        }
    }
}

impl std::fmt::Debug for SmokeParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmokeParams")
            .field("spec", &self.spec)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How strictly image references must be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    /// Any tag that is not in the mutable list (`latest`, …), or a digest.
    #[default]
    ImmutableTag,
    /// A digest, or a tag holding a git SHA (7–64 hex characters).
    DigestOrShaTag,
    /// A digest (`@sha256:…`).
    Digest,
}

impl Pin {
    /// The spelling in `UserParameters`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImmutableTag => "immutable-tag",
            Self::DigestOrShaTag => "digest-or-sha-tag",
            Self::Digest => "digest",
        }
    }
}

/// Tags rejected by default because they move.
pub const DEFAULT_MUTABLE_TAGS: [&str; 8] = [
    "latest", "main", "master", "develop", "dev", "stable", "edge", "nightly",
];

/// The image policy applied to every image reference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    /// How images must be pinned.
    pub pin: Pin,
    /// Registries (or `registry/repository` prefixes, or `*.suffix` patterns)
    /// images may come from; empty allows any.
    pub allowed_registries: Vec<String>,
    /// Tags rejected unless pinned by digest (compared case-insensitively).
    /// Replaces [`DEFAULT_MUTABLE_TAGS`] when given; `latest` is rejected
    /// whatever the list says.
    pub mutable_tags: Vec<String>,
}

impl Default for ImagePolicy {
    fn default() -> Self {
        Self {
            pin: Pin::default(),
            allowed_registries: Vec::new(),
            mutable_tags: DEFAULT_MUTABLE_TAGS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// `verify-artifact` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyParams {
    /// Input artifact name; `None` when the action has exactly one.
    pub artifact: Option<String>,
    /// Files that must be present (names from [`KNOWN_FILES`]).
    pub require_files: Vec<String>,
    /// The exact set of container names `imagedefinitions.json` must hold.
    pub expected_containers: Option<Vec<String>>,
    /// Placeholder (without `<>`) that `taskdef.json` must contain, e.g. `IMAGE1_NAME`.
    pub image_placeholder: Option<String>,
    /// Policy for every image reference.
    pub image_policy: ImagePolicy,
    /// Output artifact to write the verified files to.
    pub output_artifact: Option<String>,
    /// Replace the placeholder in the output's `taskdef.json` with the image.
    pub fill_image: bool,
}

/// `ecs-deploy` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsDeployParams {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name or ARN.
    pub service: String,
    /// Input artifact holding the image definitions; `None` when there is one.
    pub artifact: Option<String>,
    /// Path of the image definitions file inside the artifact.
    pub file: String,
    /// Overall limit for the rollout, from the first invocation.
    pub wait_timeout: Option<Duration>,
    /// Passed to `UpdateService`.
    pub force_new_deployment: bool,
    /// Policy for the images deployed.
    pub image_policy: ImagePolicy,
}

/// `ecs-wait` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsWaitParams {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name or ARN.
    pub service: String,
    /// Overall limit for the wait.
    pub wait_timeout: Option<Duration>,
}

/// Longest wait a rollout may be given: CodePipeline's own cap for an action
/// kept alive by continuation tokens is 24 hours.
pub const MAX_WAIT_MINUTES: u64 = 24 * 60;

/// Parses `UserParameters` (the raw string from the job; `None` when absent).
pub fn parse(raw: Option<&str>) -> Result<Params, ParamError> {
    let general = examples::ECS_WAIT;
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Err(ParamError::new(
            "UserParameters",
            format!(
                "is empty: set the action's UserParameters to a JSON object whose \"action\" is one of {}",
                quoted_list(&ACTIONS)
            ),
            general,
        ));
    }
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        ParamError::new(
            "UserParameters",
            format!(
                "is not valid JSON ({})",
                tollgate_core::doc_error::json(&e, raw)
            ),
            general,
        )
    })?;
    let Value::Object(map) = &value else {
        return Err(ParamError::new(
            "UserParameters",
            format!("must be a JSON object, got {}", kind(&value)),
            general,
        ));
    };
    let action = match map.get("action") {
        None => {
            return Err(ParamError::new(
                "action",
                format!(
                    "is missing: it picks the action, one of {}",
                    quoted_list(&ACTIONS)
                ),
                general,
            ));
        }
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(ParamError::new(
                "action",
                format!(
                    "must be a string, one of {}; got {}",
                    quoted_list(&ACTIONS),
                    kind(other)
                ),
                general,
            ));
        }
    };
    match action {
        "smoke" => parse_smoke(map).map(Params::Smoke),
        "verify-artifact" => parse_verify(map).map(Params::VerifyArtifact),
        "ecs-deploy" => parse_ecs_deploy(map).map(Params::EcsDeploy),
        "ecs-wait" => parse_ecs_wait(map).map(Params::EcsWait),
        other => {
            let hint = did_you_mean(other, &ACTIONS)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            Err(ParamError::new(
                "action",
                format!(
                    "\"{}\" is not an action{hint}; use one of {}",
                    shorten(other),
                    quoted_list(&ACTIONS)
                ),
                general,
            ))
        }
    }
}

fn parse_smoke(map: &Map<String, Value>) -> Result<SmokeParams, ParamError> {
    let ex = examples::SMOKE;
    let mut f = Fields::new("", map, ex);
    f.known(&["action", "spec", "spec_path", "artifact", "vars"])?;
    let artifact = f.opt_string("artifact", "the input artifact holding the spec")?;
    let spec = match (
        map.get("spec"),
        f.opt_string("spec_path", "a path inside the input artifact")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ParamError::new(
                "spec",
                "and \"spec_path\" are both set: give the spec inline (\"spec\") or as a file in an input artifact (\"spec_path\"), not both",
                ex,
            ));
        }
        (None, None) => {
            return Err(ParamError::new(
                "spec_path",
                "is missing: give \"spec_path\" (a YAML or JSON spec file inside an input artifact) or an inline \"spec\" object",
                ex,
            ));
        }
        (Some(Value::Object(o)), None) => SpecSource::Inline(Value::Object(o.clone())),
        (Some(Value::String(s)), None) if !s.trim().is_empty() => {
            SpecSource::Inline(Value::String(s.clone()))
        }
        (Some(other), None) => {
            return Err(ParamError::new(
                "spec",
                format!(
                    "must be a spec object (or a YAML/JSON string), got {}",
                    kind(other)
                ),
                ex,
            ));
        }
        (None, Some(path)) => SpecSource::Artifact {
            artifact: artifact.clone(),
            path,
        },
    };
    if artifact.is_some() && matches!(spec, SpecSource::Inline(_)) {
        return Err(ParamError::new(
            "artifact",
            "is only used with \"spec_path\"; remove it or move the spec into the artifact",
            ex,
        ));
    }
    let vars = f.opt_string_map("vars", "template variables such as TARGET")?;
    Ok(SmokeParams {
        spec,
        vars: vars.unwrap_or_default(),
    })
}

fn parse_verify(map: &Map<String, Value>) -> Result<VerifyParams, ParamError> {
    let ex = examples::VERIFY_ARTIFACT;
    let mut f = Fields::new("", map, ex);
    f.known(&[
        "action",
        "artifact",
        "require_files",
        "expected_containers",
        "image_placeholder",
        "image_policy",
        "output_artifact",
        "fill_image",
    ])?;
    let artifact = f.opt_string("artifact", "the input artifact to verify")?;
    let require_files = f
        .opt_string_list("require_files", "file names inside the artifact")?
        .unwrap_or_default();
    for (i, name) in require_files.iter().enumerate() {
        if !KNOWN_FILES.contains(&name.as_str()) {
            let hint = did_you_mean(name, &KNOWN_FILES)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            return Err(ParamError::new(
                &format!("require_files[{i}]"),
                format!(
                    "\"{}\" is not a file verify-artifact checks{hint}; use any of {}",
                    shorten(name),
                    quoted_list(&KNOWN_FILES)
                ),
                ex,
            ));
        }
    }
    let expected_containers = f.opt_string_list(
        "expected_containers",
        "container names from imagedefinitions.json",
    )?;
    if let Some(list) = &expected_containers {
        if list.is_empty() {
            return Err(ParamError::new(
                "expected_containers",
                "is an empty list; list the container names imagedefinitions.json must hold, or leave the field out",
                ex,
            ));
        }
        if let Some(dup) = first_duplicate(list) {
            return Err(ParamError::new(
                "expected_containers",
                format!("names \"{dup}\" twice; list each container once"),
                ex,
            ));
        }
    }
    let image_placeholder = f
        .opt_string(
            "image_placeholder",
            "a placeholder name such as IMAGE1_NAME",
        )?
        .map(|p| p.trim_start_matches('<').trim_end_matches('>').to_owned());
    if let Some(p) = &image_placeholder
        && !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(ParamError::new(
            "image_placeholder",
            format!(
                "\"{}\" is not a placeholder name; use letters, digits and _ like IMAGE1_NAME (written <IMAGE1_NAME> in taskdef.json)",
                shorten(p)
            ),
            ex,
        ));
    }
    let image_policy = parse_image_policy(&mut f)?;
    let output_artifact = f.opt_string("output_artifact", "the output artifact to write")?;
    let fill_image = f.opt_bool("fill_image")?.unwrap_or(false);
    if fill_image && image_placeholder.is_none() {
        return Err(ParamError::new(
            "fill_image",
            "needs \"image_placeholder\" (which placeholder to fill), e.g. \"image_placeholder\":\"IMAGE1_NAME\"",
            ex,
        ));
    }
    if fill_image && output_artifact.is_none() {
        return Err(ParamError::new(
            "fill_image",
            "needs \"output_artifact\": the filled taskdef.json is written to that artifact",
            ex,
        ));
    }
    Ok(VerifyParams {
        artifact,
        require_files,
        expected_containers,
        image_placeholder,
        image_policy,
        output_artifact,
        fill_image,
    })
}

fn parse_ecs_deploy(map: &Map<String, Value>) -> Result<EcsDeployParams, ParamError> {
    let ex = examples::ECS_DEPLOY;
    let mut f = Fields::new("", map, ex);
    f.known(&[
        "action",
        "cluster",
        "service",
        "artifact",
        "file",
        "wait_timeout_minutes",
        "force_new_deployment",
        "image_policy",
    ])?;
    let cluster = f.string("cluster", "the ECS cluster name or ARN")?;
    let service = f.string("service", "the ECS service name or ARN")?;
    let artifact = f.opt_string(
        "artifact",
        "the input artifact holding imagedefinitions.json",
    )?;
    let file = f
        .opt_string("file", "the image definitions file inside the artifact")?
        .unwrap_or_else(|| "imagedefinitions.json".to_owned());
    let wait_timeout = f
        .opt_u64("wait_timeout_minutes", 1, MAX_WAIT_MINUTES)?
        .map(|m| Duration::from_secs(m * 60));
    let force_new_deployment = f.opt_bool("force_new_deployment")?.unwrap_or(false);
    let image_policy = parse_image_policy(&mut f)?;
    Ok(EcsDeployParams {
        cluster,
        service,
        artifact,
        file,
        wait_timeout,
        force_new_deployment,
        image_policy,
    })
}

fn parse_ecs_wait(map: &Map<String, Value>) -> Result<EcsWaitParams, ParamError> {
    let ex = examples::ECS_WAIT;
    let mut f = Fields::new("", map, ex);
    f.known(&["action", "cluster", "service", "wait_timeout_minutes"])?;
    let cluster = f.string("cluster", "the ECS cluster name or ARN")?;
    let service = f.string("service", "the ECS service name or ARN")?;
    let wait_timeout = f
        .opt_u64("wait_timeout_minutes", 1, MAX_WAIT_MINUTES)?
        .map(|m| Duration::from_secs(m * 60));
    Ok(EcsWaitParams {
        cluster,
        service,
        wait_timeout,
    })
}

fn parse_image_policy(f: &mut Fields<'_>) -> Result<ImagePolicy, ParamError> {
    let Some(mut p) = f.opt_object("image_policy")? else {
        return Ok(ImagePolicy::default());
    };
    p.known(&["pin", "allowed_registries", "mutable_tags"])?;
    let mut policy = ImagePolicy::default();
    if let Some(pin) = p.opt_string("pin", "how images must be pinned")? {
        policy.pin = match pin.as_str() {
            "immutable-tag" => Pin::ImmutableTag,
            "digest-or-sha-tag" => Pin::DigestOrShaTag,
            "digest" => Pin::Digest,
            other => {
                return Err(ParamError::new(
                    &p.path("pin"),
                    format!(
                        "\"{}\" is not a pin mode; use \"immutable-tag\" (default: no mutable tags such as latest), \"digest-or-sha-tag\" or \"digest\"",
                        shorten(other)
                    ),
                    p.example,
                ));
            }
        };
    }
    if let Some(list) = p.opt_string_list("allowed_registries", "registry hosts")? {
        policy.allowed_registries = list;
    }
    if let Some(list) = p.opt_string_list("mutable_tags", "tags that are always rejected")? {
        policy.mutable_tags = list;
    }
    Ok(policy)
}

/// Reads fields of one JSON object, naming each by its full path in errors.
struct Fields<'a> {
    prefix: String,
    map: &'a Map<String, Value>,
    example: &'a str,
}

impl<'a> Fields<'a> {
    fn new(prefix: &str, map: &'a Map<String, Value>, example: &'a str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            map,
            example,
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn err(&self, key: &str, problem: impl Into<String>) -> ParamError {
        ParamError::new(&self.path(key), problem, self.example)
    }

    /// Rejects every key not in `allowed`, suggesting the closest one.
    fn known(&mut self, allowed: &[&str]) -> Result<(), ParamError> {
        for key in self.map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let choices: Vec<&str> = allowed.iter().copied().filter(|k| *k != "action").collect();
            let hint = did_you_mean(key, &choices)
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            return Err(self.err(
                key,
                format!(
                    "is not a known field here; {hint}known fields: {}",
                    quoted_list(&choices)
                ),
            ));
        }
        Ok(())
    }

    fn string(&self, key: &str, what: &str) -> Result<String, ParamError> {
        self.opt_string(key, what)?
            .ok_or_else(|| self.err(key, format!("is missing: {what}")))
    }

    fn opt_string(&self, key: &str, what: &str) -> Result<Option<String>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(self.err(key, format!("is empty; it must name {what}")))
            }
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(self.err(
                key,
                format!("must be a string ({what}), got {}", kind(other)),
            )),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(self.err(key, format!("must be true or false, got {}", kind(other))))
            }
        }
    }

    fn opt_u64(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ParamError> {
        let range = || format!("a whole number from {min} to {max}");
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(self.err(key, format!("must be {}, got {n}", range()))),
            },
            Some(other) => Err(self.err(
                key,
                format!("must be {} (a JSON number), got {}", range(), kind(other)),
            )),
        }
    }

    fn opt_string_list(&self, key: &str, what: &str) -> Result<Option<Vec<String>>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
                        Value::String(_) => {
                            return Err(self.err(&format!("{key}[{i}]"), "is an empty string"));
                        }
                        other => {
                            return Err(self.err(
                                &format!("{key}[{i}]"),
                                format!("must be a string, got {}", kind(other)),
                            ));
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(self.err(
                key,
                format!("must be a list of strings ({what}), got {}", kind(other)),
            )),
        }
    }

    fn opt_string_map(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => {
                let mut out = BTreeMap::new();
                for (k, v) in o {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        Value::Number(n) => {
                            out.insert(k.clone(), n.to_string());
                        }
                        other => {
                            return Err(self.err(
                                &format!("{key}.{k}"),
                                format!("must be a string, got {}", kind(other)),
                            ));
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(self.err(
                key,
                format!(
                    "must be an object of string values ({what}), e.g. {{\"TARGET\":\"https://staging.example.com\"}}; got {}",
                    kind(other)
                ),
            )),
        }
    }

    fn opt_object(&self, key: &str) -> Result<Option<Fields<'a>>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Fields::new(
                &format!("{}.", self.path(key)),
                o,
                self.example,
            ))),
            Some(other) => Err(self.err(key, format!("must be an object, got {}", kind(other)))),
        }
    }
}

/// A JSON value's kind, for "got …" (values themselves are not echoed).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn first_duplicate(list: &[String]) -> Option<&str> {
    let mut seen = std::collections::BTreeSet::new();
    list.iter()
        .find(|item| !seen.insert(item.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> ParamError {
        parse(Some(raw)).expect_err("should be rejected")
    }

    #[test]
    fn each_action_parses() {
        let p = parse(Some(examples::ECS_DEPLOY)).expect("valid");
        let Params::EcsDeploy(d) = p else {
            panic!("ecs-deploy")
        };
        assert_eq!(d.cluster, "prod");
        assert_eq!(d.service, "web");
        assert_eq!(d.file, "imagedefinitions.json");
        assert_eq!(d.wait_timeout, Some(Duration::from_secs(30 * 60)));
        assert_eq!(d.image_policy, ImagePolicy::default());

        let Params::EcsWait(w) = parse(Some(examples::ECS_WAIT)).expect("valid") else {
            panic!("ecs-wait")
        };
        assert_eq!(w.wait_timeout, None);

        let Params::VerifyArtifact(v) = parse(Some(examples::VERIFY_ARTIFACT)).expect("valid")
        else {
            panic!("verify")
        };
        assert_eq!(v.artifact.as_deref(), Some("BuildOutput"));
        assert_eq!(v.expected_containers, Some(vec!["web".to_owned()]));
        assert_eq!(v.image_policy.pin, Pin::DigestOrShaTag);

        let Params::Smoke(s) = parse(Some(examples::SMOKE)).expect("valid") else {
            panic!("smoke")
        };
        assert_eq!(
            s.spec,
            SpecSource::Artifact {
                artifact: None,
                path: "checks/staging.yaml".into()
            }
        );
        assert_eq!(s.vars["TARGET"], "https://staging.example.com");
    }

    #[test]
    fn inline_smoke_spec_is_kept() {
        let Params::Smoke(s) = parse(Some(
            r#"{"action":"smoke","spec":{"checks":[]},"vars":{"N":3}}"#,
        ))
        .expect("ok") else {
            panic!("smoke")
        };
        assert!(matches!(s.spec, SpecSource::Inline(Value::Object(_))));
        assert_eq!(s.vars["N"], "3");
    }

    #[test]
    fn malformed_parameters_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("", "UserParameters", "is empty"),
            ("{action: smoke}", "UserParameters", "not valid JSON"),
            (
                "[1,2]",
                "UserParameters",
                "must be a JSON object, got a list",
            ),
            (r#"{"cluster":"x"}"#, "action", "is missing"),
            (r#"{"action":5}"#, "action", "must be a string"),
            (
                r#"{"action":"ecs-deplyo"}"#,
                "action",
                "did you mean \"ecs-deploy\"",
            ),
            (
                r#"{"action":"ecs-deploy","service":"web"}"#,
                "cluster",
                "is missing",
            ),
            (
                r#"{"action":"ecs-deploy","cluster":7,"service":"web"}"#,
                "cluster",
                "must be a string",
            ),
            (
                r#"{"action":"ecs-wait","cluster":"c","service":""}"#,
                "service",
                "is empty",
            ),
            (
                r#"{"action":"ecs-wait","clustr":"c","service":"s"}"#,
                "clustr",
                "did you mean \"cluster\"",
            ),
            (
                r#"{"action":"ecs-wait","cluster":"c","service":"s","wait_timeout_minutes":0}"#,
                "wait_timeout_minutes",
                "from 1 to 1440",
            ),
            (
                r#"{"action":"ecs-wait","cluster":"c","service":"s","wait_timeout_minutes":"30"}"#,
                "wait_timeout_minutes",
                "got a string",
            ),
            (
                r#"{"action":"ecs-deploy","cluster":"c","service":"s","force_new_deployment":"yes"}"#,
                "force_new_deployment",
                "true or false",
            ),
            (
                r#"{"action":"verify-artifact","image_policy":{"pin":"always"}}"#,
                "image_policy.pin",
                "not a pin mode",
            ),
            (
                r#"{"action":"verify-artifact","image_policy":{"allowed_registry":["x"]}}"#,
                "image_policy.allowed_registry",
                "did you mean \"allowed_registries\"",
            ),
            (
                r#"{"action":"verify-artifact","image_policy":"strict"}"#,
                "image_policy",
                "must be an object",
            ),
            (
                r#"{"action":"verify-artifact","expected_containers":"web"}"#,
                "expected_containers",
                "list of strings",
            ),
            (
                r#"{"action":"verify-artifact","expected_containers":["web",3]}"#,
                "expected_containers[1]",
                "must be a string",
            ),
            (
                r#"{"action":"verify-artifact","expected_containers":[]}"#,
                "expected_containers",
                "empty list",
            ),
            (
                r#"{"action":"verify-artifact","expected_containers":["a","a"]}"#,
                "expected_containers",
                "twice",
            ),
            (
                r#"{"action":"verify-artifact","require_files":["imagedefinition.json"]}"#,
                "require_files[0]",
                "did you mean \"imagedefinitions.json\"",
            ),
            (
                r#"{"action":"verify-artifact","fill_image":true,"output_artifact":"O"}"#,
                "fill_image",
                "image_placeholder",
            ),
            (
                r#"{"action":"verify-artifact","image_placeholder":"<IMAGE 1>"}"#,
                "image_placeholder",
                "not a placeholder name",
            ),
            (r#"{"action":"smoke"}"#, "spec_path", "is missing"),
            (
                r#"{"action":"smoke","spec":{},"spec_path":"a.yaml"}"#,
                "spec",
                "both set",
            ),
            (
                r#"{"action":"smoke","spec":[1]}"#,
                "spec",
                "must be a spec object",
            ),
            (
                r#"{"action":"smoke","spec_path":"a.yaml","vars":{"TARGET":true}}"#,
                "vars.TARGET",
                "must be a string",
            ),
            (
                r#"{"action":"smoke","spec_path":"a.yaml","vars":["TARGET"]}"#,
                "vars",
                "object of string values",
            ),
        ];
        for (raw, field, problem) in cases {
            let e = err(raw);
            assert_eq!(e.field, *field, "{raw}: {e}");
            let text = e.to_string();
            assert!(text.contains(problem), "{raw}: {text}");
            assert!(
                text.contains("Example of valid UserParameters: {"),
                "{text}"
            );
            if *field != "UserParameters" {
                assert!(text.contains(&format!("field \"{field}\"")), "{text}");
            }
        }
    }

    #[test]
    fn the_example_matches_the_action() {
        let e = err(r#"{"action":"ecs-deploy","service":"web"}"#);
        assert_eq!(e.example, examples::ECS_DEPLOY);
        let e = err(r#"{"action":"verify-artifact","bogus":1}"#);
        assert_eq!(e.example, examples::VERIFY_ARTIFACT);
        // Every example is itself valid.
        for ex in [
            examples::SMOKE,
            examples::VERIFY_ARTIFACT,
            examples::ECS_DEPLOY,
            examples::ECS_WAIT,
        ] {
            parse(Some(ex)).expect(ex);
        }
    }

    #[test]
    fn missing_parameters_are_reported() {
        assert_eq!(parse(None).expect_err("none").field, "UserParameters");
    }

    #[test]
    fn values_are_not_echoed_for_type_errors() {
        let e = err(r#"{"action":"smoke","spec_path":"a","vars":{"TOKEN":{"secret":"hunter2"}}}"#);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn placeholder_brackets_are_optional() {
        let Params::VerifyArtifact(v) = parse(Some(
            r#"{"action":"verify-artifact","image_placeholder":"<IMAGE1_NAME>"}"#,
        ))
        .expect("ok") else {
            panic!("verify")
        };
        assert_eq!(v.image_placeholder.as_deref(), Some("IMAGE1_NAME"));
    }
}

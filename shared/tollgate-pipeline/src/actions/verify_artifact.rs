//! `verify-artifact`: checks that a build produced what the next stages are
//! about to deploy.
//!
//! Every known file ([`KNOWN_FILES`]) at the root of the input artifact is
//! validated ([`crate::deploy_files`]) and every problem is reported, not
//! just the first; every concrete image reference found goes through the
//! image policy. With `output_artifact`, the verified files are written out
//! (with `fill_image`, taskdef.json's placeholder filled with the image).
//!
//! Owns the action whole: [`VerifyParams`] and their parsing ([`parse`]),
//! the verification ([`verify_archive`]) and the execution ([`run`]).

use crate::artifact::{Archive, ArtifactStore, build_zip, select};
use crate::deploy_files::{
    check_expected_containers, cross_check, parse_appspec, parse_image_definitions,
    parse_image_detail, parse_taskdef,
};
use crate::image::{ImagePolicy, ImageRef, parse_image_policy, violations};
use crate::params::{Fields, ParamError, quoted_list, shorten};
use crate::{Deps, Failure, job_credentials, open_input};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;
use tollgate_core::text::did_you_mean;
use tollgate_report::events::codepipeline::Job;
use tollgate_report::{JobOutcome, JobSuccess, Step};

/// The action's name, as written in `"action"`.
pub const NAME: &str = "verify-artifact";

/// Valid `UserParameters`, shown in every error about this action.
pub const EXAMPLE: &str = r#"{"action":"verify-artifact","artifact":"BuildOutput","expected_containers":["web"],"image_policy":{"pin":"digest-or-sha-tag"}}"#;

/// Files `verify-artifact` knows how to validate.
pub const KNOWN_FILES: [&str; 6] = [
    "imagedefinitions.json",
    "imageDetail.json",
    "taskdef.json",
    "appspec.yaml",
    "appspec.yml",
    "appspec.json",
];

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

/// Parses `verify-artifact`'s fields.
pub fn parse(map: &Map<String, Value>) -> Result<VerifyParams, ParamError> {
    let ex = EXAMPLE;
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

fn first_duplicate(list: &[String]) -> Option<&str> {
    let mut seen = std::collections::BTreeSet::new();
    list.iter()
        .find(|item| !seen.insert(item.as_str()))
        .map(String::as_str)
}

/// The result of verifying one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    /// Files validated, in order.
    pub checked: Vec<String>,
    /// Every problem found.
    pub problems: Vec<String>,
    /// The image the artifact deploys (imageDetail.json, else the single or
    /// first imagedefinitions.json entry, else the first concrete taskdef image).
    pub primary_image: Option<String>,
    /// Its digest, when known.
    pub digest: Option<String>,
    /// Container names from imagedefinitions.json.
    pub containers: Vec<String>,
    /// Verified files (path, content) for the output artifact.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Validates the known files of an artifact.
pub fn verify_archive(
    archive: &mut Archive,
    params: &VerifyParams,
) -> Result<Verification, Failure> {
    let mut v = Verification::default();
    for required in &params.require_files {
        if !archive.contains(required) {
            v.problems.push(format!(
                "{required} is required (require_files) but not in the artifact"
            ));
        }
    }
    let mut texts: BTreeMap<&str, String> = BTreeMap::new();
    for name in KNOWN_FILES {
        if let Some(text) = archive.read_text(name).map_err(Failure::from)? {
            v.checked.push(name.to_owned());
            v.files.push((name.to_owned(), text.clone().into_bytes()));
            texts.insert(name, text);
        }
    }
    if v.checked.is_empty() {
        return Err(Failure::job(format!(
            "artifact {} holds none of the files verify-artifact checks ({}) at its root; it contains: {}",
            archive.name(),
            KNOWN_FILES.join(", "),
            archive.listing()
        )));
    }
    let mut images: Vec<(String, String)> = Vec::new();
    if let Some(text) = texts.get("imagedefinitions.json") {
        match parse_image_definitions(text) {
            Ok(defs) => {
                if let Some(expected) = &params.expected_containers {
                    v.problems
                        .extend(check_expected_containers(&defs, expected));
                }
                for d in &defs {
                    images.push((
                        format!("imagedefinitions.json ({})", d.name),
                        d.image_uri.clone(),
                    ));
                }
                v.containers = defs.iter().map(|d| d.name.clone()).collect();
                v.primary_image = defs.first().map(|d| d.image_uri.clone());
            }
            Err(p) => v.problems.extend(p),
        }
    } else if params.expected_containers.is_some() {
        v.problems.push(
            "expected_containers is set but the artifact has no imagedefinitions.json".to_owned(),
        );
    }
    if let Some(text) = texts.get("imageDetail.json") {
        match parse_image_detail(text) {
            Ok(detail) => {
                images.push(("imageDetail.json".to_owned(), detail.image_uri.clone()));
                v.primary_image = Some(detail.image_uri.clone());
                v.digest = detail.digest;
            }
            Err(p) => v.problems.extend(p),
        }
    }
    let taskdef = match texts.get("taskdef.json") {
        Some(text) => match parse_taskdef(text, params.image_placeholder.as_deref()) {
            Ok(td) => {
                for c in &td.containers {
                    if !c.image.contains('<') && !c.image.is_empty() {
                        images.push((format!("taskdef.json ({})", c.name), c.image.clone()));
                        if v.primary_image.is_none() {
                            v.primary_image = Some(c.image.clone());
                        }
                    }
                }
                Some(td)
            }
            Err(p) => {
                v.problems.extend(p);
                None
            }
        },
        None => {
            if let Some(p) = &params.image_placeholder {
                v.problems.push(format!(
                    "image_placeholder <{p}> is set but the artifact has no taskdef.json"
                ));
            }
            None
        }
    };
    for file in ["appspec.yaml", "appspec.yml", "appspec.json"] {
        let Some(text) = texts.get(file) else {
            continue;
        };
        match parse_appspec(file, text) {
            Ok(spec) => match &taskdef {
                Some(td) => v.problems.extend(cross_check(file, &spec, td)),
                None if !texts.contains_key("taskdef.json") => v.problems.push(format!(
                    "{file}: cannot check LoadBalancerInfo container {}:{} because the artifact has no taskdef.json",
                    spec.container_name, spec.container_port
                )),
                None => {}
            },
            Err(p) => v.problems.extend(p),
        }
    }
    let mut seen = BTreeSet::new();
    for (source, image) in &images {
        if !seen.insert(image.clone()) {
            continue;
        }
        for problem in violations(image, &params.image_policy) {
            v.problems.push(format!("{source}: {problem}"));
        }
    }
    if v.digest.is_none() {
        v.digest = v
            .primary_image
            .as_deref()
            .and_then(|i| ImageRef::parse(i).ok())
            .and_then(|r| r.digest);
    }
    if params.fill_image
        && let Some(placeholder) = &params.image_placeholder
    {
        fill_taskdef_image(&mut v, placeholder, texts.contains_key("imageDetail.json"));
    }
    Ok(v)
}

/// Replaces `<placeholder>` in the output copy of taskdef.json.
fn fill_taskdef_image(v: &mut Verification, placeholder: &str, has_detail: bool) {
    if !has_detail && v.containers.len() > 1 {
        v.problems.push(format!(
            "fill_image: imagedefinitions.json lists {} images and there is no imageDetail.json, \
             so it is not clear which image fills <{placeholder}>; add imageDetail.json",
            v.containers.len()
        ));
        return;
    }
    let Some(image) = v.primary_image.clone() else {
        v.problems.push(format!(
            "fill_image: no image to fill <{placeholder}> with (no imageDetail.json or imagedefinitions.json)"
        ));
        return;
    };
    let wanted = format!("<{placeholder}>");
    for (path, content) in &mut v.files {
        if path == "taskdef.json" {
            let text = String::from_utf8_lossy(content).replace(&wanted, &image);
            *content = text.into_bytes();
        }
    }
}

/// Runs `verify-artifact` for a job (it needs no deadline: one download,
/// bounded by the artifact limit).
pub async fn run<A: ArtifactStore, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &VerifyParams,
    step: &Step,
    _deadline: Instant,
) -> Result<JobOutcome, Failure> {
    let data = &job.data;
    let output = match &params.output_artifact {
        Some(name) => Some(
            select(
                &data.output_artifacts,
                Some(name),
                "output_artifact",
                "output",
            )
            .map_err(Failure::config)?,
        ),
        None => None,
    };
    let mut archive = open_input(deps, job, params.artifact.as_deref(), step).await?;
    step.enter(format!("verifying artifact {}", archive.name()));
    let v = verify_archive(&mut archive, params)?;
    if !v.problems.is_empty() {
        let mut msg = format!(
            "artifact {} failed verification ({} problem{}):",
            archive.name(),
            v.problems.len(),
            if v.problems.len() == 1 { "" } else { "s" }
        );
        for (i, p) in v.problems.iter().enumerate() {
            msg.push_str(&format!(" {}) {p}", i + 1));
        }
        return Err(Failure::job(msg));
    }
    let mut summary = format!(
        "artifact {} verified: {}",
        archive.name(),
        v.checked.join(", ")
    );
    if !v.containers.is_empty() {
        summary.push_str(&format!("; containers {}", v.containers.join(", ")));
    }
    if let Some(image) = &v.primary_image {
        summary.push_str(&format!("; image {image}"));
    }
    if let Some((out, out_loc)) = output {
        step.enter(format!(
            "writing output artifact {} to s3://{}/{}",
            out.name, out_loc.bucket_name, out_loc.object_key
        ));
        let zip = build_zip(&v.files)?;
        deps.artifacts
            .put(
                &out.name,
                out_loc,
                job_credentials(job)?,
                zip,
                data.encryption_key.as_ref(),
            )
            .await?;
        summary.push_str(&format!("; wrote {}", out.name));
    }
    let mut vars = BTreeMap::new();
    if let Some(image) = &v.primary_image {
        vars.insert("image_uri".to_owned(), image.clone());
        if let Some(tag) = ImageRef::parse(image).ok().and_then(|r| r.tag) {
            vars.insert("image_tag".to_owned(), tag);
        }
    }
    if let Some(d) = &v.digest {
        vars.insert("image_digest".to_owned(), d.clone());
    }
    if !v.containers.is_empty() {
        vars.insert("containers".to_owned(), v.containers.join(","));
    }
    vars.insert("files_checked".to_owned(), v.checked.join(","));
    Ok(JobOutcome::Success(JobSuccess {
        summary: Some(summary),
        output_variables: vars,
        ..JobSuccess::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::testing::assert_rejected;
    use crate::deploy_files::tests::{APPSPEC, IMAGE, TASKDEF};
    use crate::fakes::{self, FakeArtifacts, FakeEcs};
    use crate::params::Params;
    use tollgate_report::FailureKind;

    fn params(raw: &str) -> VerifyParams {
        match crate::params::parse(Some(raw)).expect("params") {
            Params::VerifyArtifact(p) => p,
            other => panic!("verify params, got {other:?}"),
        }
    }

    async fn verify(
        files: &[(&str, &str)],
        raw: &str,
    ) -> (Result<JobOutcome, Failure>, std::sync::Arc<fakes::TestDeps>) {
        let (deps, _) = fakes::deps(FakeArtifacts::with_zip(files), FakeEcs::default());
        let job = fakes::job(raw, None);
        let out = run(&deps, &job, &params(raw), &Step::default(), Instant::now()).await;
        (out, deps)
    }

    fn problems_of(out: Result<JobOutcome, Failure>) -> String {
        match out {
            Err(f) => {
                assert_eq!(f.kind, FailureKind::JobFailed, "{}", f.message);
                f.message
            }
            Ok(o) => panic!("expected a failure, got {o:?}"),
        }
    }


    #[tokio::test]
    async fn a_good_artifact_passes_with_output_variables() {
        let defs = format!(r#"[{{"name":"web","imageUri":"{IMAGE}"}}]"#);
        let (out, deps) = verify(
            &[("imagedefinitions.json", &defs), ("taskdef.json", TASKDEF), ("appspec.yaml", APPSPEC)],
            r#"{"action":"verify-artifact","expected_containers":["web"],"image_placeholder":"IMAGE1_NAME","image_policy":{"pin":"digest-or-sha-tag"}}"#,
        )
        .await;
        let Ok(JobOutcome::Success(s)) = out else {
            panic!("expected success, got {out:?}")
        };
        assert_eq!(
            s.summary.as_deref(),
            Some(format!("artifact BuildOutput verified: imagedefinitions.json, taskdef.json, appspec.yaml; containers web; image {IMAGE}").as_str())
        );
        assert_eq!(s.output_variables["image_uri"], IMAGE);
        assert_eq!(s.output_variables["image_tag"], "3f9c2ab");
        assert!(!s.output_variables.contains_key("image_digest"));
        assert_eq!(
            s.output_variables["files_checked"],
            "imagedefinitions.json,taskdef.json,appspec.yaml"
        );
        assert!(deps.artifacts.puts.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn latest_is_rejected_and_every_problem_is_listed() {
        let defs = r#"[{"name":"web","imageUri":"111111111111.dkr.ecr.us-east-1.amazonaws.com/web:latest"},{"name":"worker","imageUri":"w:1a2b3c4"}]"#;
        let (out, _) = verify(
            &[("imagedefinitions.json", defs), ("appspec.yaml", APPSPEC)],
            r#"{"action":"verify-artifact","expected_containers":["web"]}"#,
        )
        .await;
        let msg = problems_of(out);
        assert!(
            msg.starts_with("artifact BuildOutput failed verification (3 problems): 1) "),
            "{msg}"
        );
        assert!(
            msg.contains("container(s) worker not in expected_containers"),
            "{msg}"
        );
        assert!(
            msg.contains("cannot check LoadBalancerInfo container web:8080"),
            "{msg}"
        );
        assert!(msg.contains("imagedefinitions.json (web): \"111111111111.dkr.ecr.us-east-1.amazonaws.com/web:latest\" uses the mutable tag :latest"), "{msg}");
    }

    #[tokio::test]
    async fn an_artifact_without_known_files_lists_its_contents() {
        let (out, _) = verify(&[("README.md", "hi")], r#"{"action":"verify-artifact"}"#).await;
        let msg = problems_of(out);
        assert!(msg.contains("holds none of the files"), "{msg}");
        assert!(msg.contains("it contains: README.md"), "{msg}");
    }

    #[tokio::test]
    async fn required_files_must_exist() {
        let (out, _) = verify(
            &[("imageDetail.json", &format!(r#"{{"ImageURI":"{IMAGE}"}}"#))],
            r#"{"action":"verify-artifact","require_files":["taskdef.json","appspec.yaml"]}"#,
        )
        .await;
        let msg = problems_of(out);
        assert!(msg.contains("taskdef.json is required"), "{msg}");
        assert!(msg.contains("appspec.yaml is required"), "{msg}");
    }

    #[tokio::test]
    async fn the_output_artifact_is_written_with_the_kms_key_and_filled_image() {
        let detail = format!(
            r#"{{"ImageURI":"{IMAGE}","ImageDigest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}"#
        );
        let (out, deps) = verify(
            &[("imageDetail.json", &detail), ("taskdef.json", TASKDEF), ("appspec.yaml", APPSPEC)],
            r#"{"action":"verify-artifact","image_placeholder":"IMAGE1_NAME","output_artifact":"Verified","fill_image":true}"#,
        )
        .await;
        let Ok(JobOutcome::Success(s)) = out else {
            panic!("expected success, got {out:?}")
        };
        assert!(
            s.summary
                .as_deref()
                .expect("summary")
                .ends_with("; wrote Verified")
        );
        assert!(s.output_variables["image_digest"].starts_with("sha256:0123"));
        let puts = deps.artifacts.puts.lock().expect("lock");
        assert_eq!(puts.len(), 1);
        assert_eq!(puts[0].key, fakes::OUT_KEY);
        assert_eq!(puts[0].kms_key.as_deref(), Some(fakes::KMS_KEY));
        assert_eq!(puts[0].access_key, fakes::ACCESS_KEY);
        let loc = tollgate_report::events::codepipeline::S3Location {
            bucket_name: fakes::BUCKET.into(),
            object_key: fakes::OUT_KEY.into(),
        };
        let mut zip = Archive::open("Verified", &loc, puts[0].body.clone()).expect("zip");
        let td = zip
            .read_text("taskdef.json")
            .expect("read")
            .expect("present");
        assert!(td.contains(IMAGE) && !td.contains("<IMAGE1_NAME>"), "{td}");
        assert!(zip.contains("appspec.yaml") && zip.contains("imageDetail.json"));
    }

    #[tokio::test]
    async fn an_unknown_output_artifact_is_a_configuration_error() {
        let (out, _) = verify(
            &[("imageDetail.json", &format!(r#"{{"ImageURI":"{IMAGE}"}}"#))],
            r#"{"action":"verify-artifact","output_artifact":"Nope"}"#,
        )
        .await;
        let Err(f) = out else {
            panic!("failure expected")
        };
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(
            f.message
                .contains("output_artifact names artifact \"Nope\""),
            "{}",
            f.message
        );
        assert!(f.message.contains("Verified"), "{}", f.message);
    }

    #[test]
    fn the_example_parses() {
        let v = params(EXAMPLE);
        assert_eq!(v.artifact.as_deref(), Some("BuildOutput"));
        assert_eq!(v.expected_containers, Some(vec!["web".to_owned()]));
        assert_eq!(v.image_policy.pin, crate::image::Pin::DigestOrShaTag);
    }

    #[test]
    fn malformed_parameters_name_the_field() {
        assert_rejected(&[
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
        ]);
    }

    #[test]
    fn the_example_matches_the_action() {
        let e = crate::params::testing::err(r#"{"action":"verify-artifact","bogus":1}"#);
        assert_eq!(e.example, EXAMPLE);
    }

    #[test]
    fn placeholder_brackets_are_optional() {
        let v = params(r#"{"action":"verify-artifact","image_placeholder":"<IMAGE1_NAME>"}"#);
        assert_eq!(v.image_placeholder.as_deref(), Some("IMAGE1_NAME"));
    }
}

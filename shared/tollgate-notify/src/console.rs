//! AWS console deep links and small text helpers shared by the model and the
//! renderers.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
pub use tollgate_core::text::{ellipsize, human_duration};

/// Characters escaped in one URL path segment or query value.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The console host for a region (China and GovCloud have their own).
pub fn console_base(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        "https://console.amazonaws-us-gov.com".to_owned()
    } else if region.is_empty() {
        "https://console.aws.amazon.com".to_owned()
    } else {
        format!("https://{region}.console.aws.amazon.com")
    }
}

/// A pipeline's page.
pub fn pipeline(region: &str, pipeline: &str) -> String {
    format!(
        "{}/codesuite/codepipeline/pipelines/{}/view?region={}",
        console_base(region),
        enc(pipeline),
        enc(region)
    )
}

/// One pipeline execution's timeline.
pub fn pipeline_execution(region: &str, pipeline: &str, execution_id: &str) -> String {
    format!(
        "{}/codesuite/codepipeline/pipelines/{}/executions/{}/timeline?region={}",
        console_base(region),
        enc(pipeline),
        enc(execution_id),
        enc(region)
    )
}

/// A CodeDeploy deployment.
pub fn deployment(region: &str, deployment_id: &str) -> String {
    format!(
        "{}/codesuite/codedeploy/deployments/{}?region={}",
        console_base(region),
        enc(deployment_id),
        enc(region)
    )
}

/// A CodeBuild build, from its ARN (`arn:aws:codebuild:…:build/<project>:<uuid>`)
/// or its id (`<project>:<uuid>`).
pub fn build(region: &str, account: &str, project: &str, build_id: &str) -> String {
    let id = build_id
        .rsplit_once(":build/")
        .map(|(_, id)| id)
        .unwrap_or(build_id);
    format!(
        "{}/codesuite/codebuild/{}/projects/{}/build/{}/?region={}",
        console_base(region),
        enc(account),
        enc(project),
        enc(id),
        enc(region)
    )
}

/// A CodeBuild project.
pub fn build_project(region: &str, account: &str, project: &str) -> String {
    format!(
        "{}/codesuite/codebuild/{}/projects/{}/?region={}",
        console_base(region),
        enc(account),
        enc(project),
        enc(region)
    )
}

/// An ECS service's deployments tab.
pub fn ecs_service(region: &str, cluster: &str, service: &str) -> String {
    format!(
        "{}/ecs/v2/clusters/{}/services/{}/deployments?region={}",
        console_base(region),
        enc(cluster),
        enc(service),
        enc(region)
    )
}

/// The last path segment of an ARN's resource part
/// (`arn:aws:ecs:r:a:cluster/prod` → `prod`).
pub fn arn_name(arn: &str) -> &str {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    resource.rsplit('/').next().unwrap_or(resource)
}

/// Cluster and service from an ECS service ARN. New-format ARNs
/// (`service/<cluster>/<service>`) carry both; old ones only the service.
pub fn ecs_service_parts(arn: &str) -> (Option<&str>, &str) {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    let mut parts = resource.split('/');
    let _kind = parts.next();
    match (parts.next(), parts.next()) {
        (Some(cluster), Some(service)) => (Some(cluster), service),
        (Some(service), None) => (None, service),
        _ => (None, resource),
    }
}

/// The first 7 characters of a commit id (whole id when it is not hex).
pub fn short_commit(id: &str) -> &str {
    if id.len() > 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..7]
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_regional_and_encoded() {
        assert_eq!(
            build(
                "us-west-2",
                "123456789012",
                "my-proj",
                "arn:aws:codebuild:us-west-2:123456789012:build/my-proj:8745a7a9"
            ),
            "https://us-west-2.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/my-proj/build/my-proj%3A8745a7a9/?region=us-west-2"
        );
        assert!(
            pipeline("cn-north-1", "p").starts_with("https://cn-north-1.console.amazonaws.cn/")
        );
        assert!(
            deployment("us-gov-west-1", "d-1").starts_with("https://console.amazonaws-us-gov.com/")
        );
    }

    #[test]
    fn ecs_arns() {
        assert_eq!(
            ecs_service_parts("arn:aws:ecs:us-west-2:111122223333:service/prod/web"),
            (Some("prod"), "web")
        );
        assert_eq!(
            ecs_service_parts("arn:aws:ecs:us-west-2:111122223333:service/web"),
            (None, "web")
        );
        assert_eq!(
            arn_name("arn:aws:ecs:us-west-2:1:cluster/default"),
            "default"
        );
    }

    #[test]
    fn short_commits() {
        assert_eq!(
            short_commit("0123456789abcdef0123456789abcdef01234567"),
            "0123456"
        );
        assert_eq!(short_commit("main"), "main");
    }
}

//! Who may decide: the approvers document, `TOLLGATE_APPROVERS` (JSON),
//! read and checked once at init.
//!
//! ```json
//! {"pipelines": {
//!    "pay-prod": {"users": ["U0123ABCD"], "groups": ["S0456EFGH"],
//!                 "author_may_not_approve": true, "author_variable": "Build.COMMIT_AUTHOR_EMAIL"},
//!    "*":        {"users": ["U0999ZZZZ"]}
//! }}
//! ```
//!
//! - A pipeline's entry lists Slack user IDs (`U…`/`W…`) and user group IDs
//!   (`S…`); a click from anyone else is refused. `*` is the entry for
//!   pipelines not named; without it an unnamed pipeline cannot be decided
//!   in Slack at all (fail closed).
//! - `author_may_not_approve`: the commit's author may not approve it
//!   (rejecting stays allowed). `author_variable` says where the author's
//!   e-mail comes from: an action output variable of the execution,
//!   `<action or namespace>.<VARIABLE>`, e.g. `Build.COMMIT_AUTHOR_EMAIL`
//!   (`crate::author`); the clicker's e-mail comes from Slack
//!   (`users.info`). When either is unknown, the approval is refused rather
//!   than let through.
//! - `services` (optional, beside or instead of `pipelines`): ECS services,
//!   `"<cluster>/<service>"` or `*`, whose deployments paused at a `PAUSE`
//!   lifecycle hook may be continued or rolled back in Slack
//!   (`crate::ecs_hook`); same users and groups, no author rule.
//! - Names are checked at init; a typo (`"user"`) is an error, not a silent
//!   "nobody may approve".

use serde::Deserialize;
use std::collections::BTreeMap;
use tollgate_core::config::{ConfigError, Env};

/// The variable holding the approvers document.
pub const VAR: &str = "TOLLGATE_APPROVERS";

/// One pipeline's approvers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Approvers {
    /// Slack user IDs.
    #[serde(default)]
    pub users: Vec<String>,
    /// Slack user group IDs.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The commit's author may not approve it.
    #[serde(default)]
    pub author_may_not_approve: bool,
    /// Where the author's e-mail comes from: an output variable of the
    /// execution, `<action or namespace>.<VARIABLE>` ([`crate::author`]).
    #[serde(default)]
    pub author_variable: Option<String>,
}

impl Approvers {
    /// The checked [`Self::author_variable`] (checked at init).
    pub fn author_source(&self) -> Option<crate::author::AuthorSource> {
        self.author_variable
            .as_deref()
            .and_then(|v| crate::author::AuthorSource::parse(v).ok())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    pipelines: BTreeMap<String, Approvers>,
    /// ECS services (`<cluster>/<service>` or `*`) whose paused deployments
    /// may be continued or rolled back in Slack (`crate::ecs_hook`).
    #[serde(default)]
    services: BTreeMap<String, Approvers>,
}

/// The approvers of every pipeline and ECS service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pipelines: BTreeMap<String, Approvers>,
    services: BTreeMap<String, Approvers>,
}

/// `<cluster>/<service>` (ECS names) or `*`.
fn is_service_key(k: &str) -> bool {
    let name = |s: &str| {
        (1..=255).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    k == "*" || k.split_once('/').is_some_and(|(c, s)| name(c) && name(s))
}

fn is_id(s: &str, first: &[char]) -> bool {
    (9..=24).contains(&s.len())
        && s.starts_with(first)
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl Policy {
    /// Reads [`VAR`]; unset is an error (the function has nothing to do
    /// without approvers).
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let raw = env.get(VAR).ok_or_else(|| ConfigError::Missing {
            var: VAR.to_owned(),
            hint: "a JSON document naming who may approve each pipeline, e.g. \
                   {\"pipelines\": {\"pay-prod\": {\"users\": [\"U0123ABCD\"]}}} (docs/approvals.md)"
                .to_owned(),
        })?;
        Self::parse(&raw)
    }

    /// Parses and checks a document.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let expected = "{\"pipelines\": {\"<pipeline or *>\": {\"users\": [\"U…\"], \"groups\": [\"S…\"], \"author_may_not_approve\": true, \"author_variable\": \"Build.COMMIT_AUTHOR_EMAIL\"}}, \"services\": {\"<cluster>/<service> or *\": {\"users\": [\"U…\"]}}}";
        let invalid = |problem: String| ConfigError::Invalid {
            var: VAR.to_owned(),
            shown: "<document>".to_owned(),
            problem,
            expected: expected.to_owned(),
        };
        let doc: Doc = serde_json::from_str(raw)
            .map_err(|e| invalid(tollgate_core::text::describe_json_error(&e)))?;
        if doc.pipelines.is_empty() && doc.services.is_empty() {
            return Err(invalid("it names no pipeline and no service".into()));
        }
        if let Some(service) = doc.services.keys().find(|k| !is_service_key(k)) {
            return Err(invalid(format!(
                "services: {:?} is not <cluster>/<service> (names, not ARNs) or *",
                tollgate_core::text::ellipsize(service, 80)
            )));
        }
        if let Some((service, _)) = doc
            .services
            .iter()
            .find(|(_, a)| a.author_may_not_approve || a.author_variable.is_some())
        {
            return Err(invalid(format!(
                "services: {service:?}: author_may_not_approve and author_variable apply to pipelines only (a paused ECS deployment names no commit)"
            )));
        }
        for (pipeline, a) in &doc.pipelines {
            if let Some(v) = a.author_variable.as_deref() {
                crate::author::AuthorSource::parse(v)
                    .map_err(|e| invalid(format!("pipeline {pipeline:?}: {e}")))?;
            }
        }
        for (pipeline, a) in doc.pipelines.iter().chain(doc.services.iter()) {
            if a.users.is_empty() && a.groups.is_empty() {
                return Err(invalid(format!(
                    "pipeline {pipeline:?} lists no users and no groups (remove it to refuse every click)"
                )));
            }
            if let Some(u) = a.users.iter().find(|u| !is_id(u, &['U', 'W'])) {
                return Err(invalid(format!(
                    "pipeline {pipeline:?}: {:?} is not a Slack user ID (U… or W…; a name or e-mail does not work: \
                     in Slack, the member's profile › ⋮ › Copy member ID)",
                    tollgate_core::text::ellipsize(u, 40)
                )));
            }
            if let Some(g) = a.groups.iter().find(|g| !is_id(g, &['S'])) {
                return Err(invalid(format!(
                    "pipeline {pipeline:?}: {:?} is not a Slack user group ID (S…)",
                    tollgate_core::text::ellipsize(g, 40)
                )));
            }
        }
        Ok(Self {
            pipelines: doc.pipelines,
            services: doc.services,
        })
    }

    /// The approvers of the ECS service `<cluster>/<service>` (its own
    /// entry, else the services' `*`).
    pub fn for_service(&self, key: &str) -> Option<&Approvers> {
        self.services.get(key).or_else(|| self.services.get("*"))
    }

    /// The approvers of `pipeline` (its own entry, else `*`).
    pub fn for_pipeline(&self, pipeline: &str) -> Option<&Approvers> {
        self.pipelines
            .get(pipeline)
            .or_else(|| self.pipelines.get("*"))
    }

    /// The pipelines whose author rule names no `author_variable`: every
    /// approval of theirs in Slack is refused until it is set.
    pub fn author_rules_without_source(&self) -> Vec<&str> {
        self.pipelines
            .iter()
            .filter(|(_, a)| a.author_may_not_approve && a.author_variable.is_none())
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// Whether any pipeline uses user groups (the bot then needs
    /// `usergroups:read`).
    pub fn uses_groups(&self) -> bool {
        self.pipelines
            .values()
            .chain(self.services.values())
            .any(|a| !a.groups.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_read_with_a_default_entry() {
        let p = Policy::parse(
            r#"{"pipelines": {"pay": {"users": ["U0123ABCD"], "author_may_not_approve": true},
                              "*": {"groups": ["S0456EFGH"]}}}"#,
        )
        .expect("valid");
        assert!(p.for_pipeline("pay").expect("pay").author_may_not_approve);
        assert_eq!(p.for_pipeline("other").expect("*").groups, ["S0456EFGH"]);
        assert!(p.uses_groups());
        assert_eq!(p.author_rules_without_source(), ["pay"]);
        let with_source = Policy::parse(
            r#"{"pipelines": {"pay": {"users": ["U0123ABCD"], "author_may_not_approve": true, "author_variable": "Build.COMMIT_AUTHOR_EMAIL"}}}"#,
        )
        .expect("valid");
        assert!(with_source.author_rules_without_source().is_empty());
        let source = with_source
            .for_pipeline("pay")
            .and_then(Approvers::author_source);
        assert_eq!(
            source.map(|s| s.to_string()).as_deref(),
            Some("Build.COMMIT_AUTHOR_EMAIL")
        );
        let only =
            Policy::parse(r#"{"pipelines": {"pay": {"users": ["W0123ABCD"]}}}"#).expect("valid");
        assert!(only.for_pipeline("other").is_none(), "no default: refused");
    }

    #[test]
    fn services_have_their_own_entries() {
        let p = Policy::parse(
            r#"{"services": {"prod/checkout-web": {"users": ["U0123ABCD"]}, "*": {"groups": ["S0456EFGH"]}}}"#,
        )
        .expect("valid");
        assert_eq!(
            p.for_service("prod/checkout-web").expect("own").users,
            ["U0123ABCD"]
        );
        assert_eq!(p.for_service("prod/api").expect("*").groups, ["S0456EFGH"]);
        assert!(
            p.for_pipeline("pay").is_none(),
            "services grant no pipeline"
        );
        let pipelines_only =
            Policy::parse(r#"{"pipelines": {"*": {"users": ["U0123ABCD"]}}}"#).expect("valid");
        assert!(
            pipelines_only.for_service("prod/web").is_none(),
            "a pipelines' * grants no service"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (doc, says) in [
            (
                r#"{"pipelines": {"pay": {"user": ["U0123ABCD"]}}}"#,
                "unknown field",
            ),
            (
                r#"{"pipelines": {"pay": {}}}"#,
                "lists no users and no groups",
            ),
            (
                r#"{"pipelines": {"pay": {"users": ["@ana"]}}}"#,
                "not a Slack user ID",
            ),
            (
                r#"{"pipelines": {"pay": {"groups": ["U0123ABCD"]}}}"#,
                "not a Slack user group ID",
            ),
            (r#"{"pipelines": {}}"#, "names no pipeline"),
            (
                r#"{"services": {"arn:aws:ecs:eu-west-1:111122223333:service/prod/web": {"users": ["U0123ABCD"]}}}"#,
                "is not <cluster>/<service>",
            ),
            (
                r#"{"services": {"prod/web": {"users": ["U0123ABCD"], "author_may_not_approve": true}}}"#,
                "pipelines only",
            ),
            (
                r#"{"pipelines": {"pay": {"users": ["U0123ABCD"], "author_may_not_approve": true, "author_variable": "AUTHOR"}}}"#,
                "is not <action name or namespace>.<VARIABLE>",
            ),
            (
                r#"{"services": {"prod/web": {"users": ["U0123ABCD"], "author_variable": "Build.A"}}}"#,
                "pipelines only",
            ),
            (
                r#"{"services": {"prod/web": {"users": ["someone"]}}}"#,
                "not a Slack user ID",
            ),
            ("not json", "expected"),
        ] {
            let e = Policy::parse(doc).expect_err(doc).to_string();
            assert!(e.contains(says), "{doc}: {e}");
            assert!(e.contains(VAR), "{e}");
        }
        assert!(matches!(
            Policy::from_env(&[("X", "y")]),
            Err(ConfigError::Missing { .. })
        ));
    }
}

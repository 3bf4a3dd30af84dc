//! The commit-author rule: with `author_may_not_approve` on a pipeline's
//! entry ([`crate::policy`]), the author of the commit being released may
//! not approve it (rejecting stays allowed: stopping a release needs no
//! second pair of eyes, letting it through does).
//!
//! No CodePipeline source action names the author (CodeCommit's and
//! CodeStarSourceConnection's output variables carry the commit id, message
//! and author date, not the author), so the pipeline must export it: the
//! entry's `author_variable` names an action output variable of the same
//! pipeline execution, `<action name or variable namespace>.<VARIABLE>`, e.g.
//! `Build.COMMIT_AUTHOR_EMAIL` from a CodeBuild buildspec with
//! `env: exported-variables: [COMMIT_AUTHOR_EMAIL]` and
//! `export COMMIT_AUTHOR_EMAIL=$(git log -1 --no-merges --format=%ae)`.
//!
//! Before an Approve is decided, the endpoint reads that variable with
//! `ListActionExecutions` (filtered to the button's pipeline execution) and
//! the clicker's e-mail with Slack's `users.info` (scope
//! `users:read.email`), and compares them case-insensitively. Anything it
//! cannot read (no `author_variable`, no such action in the execution, the
//! variable not exported or not an e-mail address, the clicker's e-mail
//! hidden or Slack failing) refuses the approval with what to set: the rule
//! fails closed.
//!
//! Neither e-mail is ever written to a log, an audit line or a message: a
//! refusal says "you are the author", never whose address matched (the
//! audit line identifies the clicker by Slack user ID).

use crate::ports::{Chat, Pipelines, PortError};
use crate::render::escape;
use std::collections::BTreeMap;
use tokio::time::Instant;
use tollgate_core::approval_request::ApprovalRef;
use tollgate_core::text::ellipsize;

/// Where the author's e-mail is read: `<action>.<variable>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorSource {
    /// The action's name or its variable namespace.
    pub action: String,
    /// The output variable.
    pub variable: String,
}

/// CodePipeline's pattern for action names and namespaces
/// (`[A-Za-z0-9.@\-_]+`, 1 to 100 characters).
fn is_name(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".@-_".contains(c))
}

impl AuthorSource {
    /// Reads `<action>.<VARIABLE>` (split at the last dot: action names may
    /// hold dots, variable names may not).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let shape = || {
            format!(
                "author_variable {:?} is not <action name or namespace>.<VARIABLE>, e.g. \"Build.COMMIT_AUTHOR_EMAIL\"",
                tollgate_core::text::ellipsize(s, 80)
            )
        };
        let (action, variable) = s.rsplit_once('.').ok_or_else(shape)?;
        let variable_ok = !variable.is_empty()
            && variable.len() <= 128
            && variable
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@-_".contains(c));
        if !is_name(action) || !variable_ok {
            return Err(shape());
        }
        Ok(Self {
            action: action.to_owned(),
            variable: variable.to_owned(),
        })
    }
}

impl std::fmt::Display for AuthorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.action, self.variable)
    }
}

/// One execution of an action, as `ListActionExecutions` shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ActionOutput {
    /// The action's name.
    pub action: String,
    /// Its variable namespace, if it has one.
    pub namespace: Option<String>,
    /// `InProgress`, `Succeeded`, `Failed`, `Abandoned`.
    pub status: Option<String>,
    /// When it started (Unix milliseconds).
    pub started_ms: Option<i64>,
    /// Its output variables.
    pub variables: BTreeMap<String, String>,
}

impl std::fmt::Debug for ActionOutput {
    // Variable values can be e-mail addresses: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionOutput")
            .field("action", &self.action)
            .field("namespace", &self.namespace)
            .field("status", &self.status)
            .field("started_ms", &self.started_ms)
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ActionOutput {
    /// Whether this is an execution of the action `name` (its name or its
    /// namespace).
    pub fn is(&self, name: &str) -> bool {
        self.action == name || self.namespace.as_deref() == Some(name)
    }
}

/// A plain `local@domain` address (no spaces, one `@`, a dot in the domain).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.len() <= 320
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The author's e-mail from the latest execution (in this pipeline
/// execution) of the source's action that exported the variable; the error
/// says what is missing and what to set.
pub fn author_from(outputs: &[ActionOutput], source: &AuthorSource) -> Result<String, String> {
    let ran: Vec<&ActionOutput> = outputs.iter().filter(|o| o.is(&source.action)).collect();
    if ran.is_empty() {
        return Err(format!(
            "no action named (or with the variable namespace) {:?} ran in this pipeline execution, so the commit's author is unknown: set author_variable to the action that exports the author's e-mail",
            source.action
        ));
    }
    let latest = ran
        .iter()
        .filter_map(|o| o.variables.get(&source.variable).map(|v| (o.started_ms, v)))
        .max_by_key(|(started, _)| *started);
    let Some((_, value)) = latest else {
        return Err(format!(
            "the action {:?} exported no variable {:?} in this pipeline execution, so the commit's author is unknown: export it from the build (exported-variables, git log -1 --no-merges --format=%ae)",
            source.action, source.variable
        ));
    };
    let value = value.trim();
    if !is_email(value) {
        // Not quoted: whatever it holds stays out of chat and logs.
        return Err(format!(
            "{source} does not hold an e-mail address, so the commit's author is unknown: export the author's e-mail (git log -1 --no-merges --format=%ae)"
        ));
    }
    Ok(value.to_owned())
}

/// Whether two addresses are the same person's (case-insensitive, as mail
/// providers treat them in practice).
pub fn same_address(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Checks the rule for `user` approving `approval`: `Ok` when someone other
/// than the author clicked; the refusal otherwise (never quoting an
/// address).
pub async fn check<P: Pipelines, C: Chat>(
    pipelines: &P,
    chat: &C,
    approval: &ApprovalRef,
    source: Option<&AuthorSource>,
    user: &str,
    deadline: Instant,
) -> Result<(), String> {
    let Some(source) = source else {
        return Err(format!(
            "This pipeline does not let the commit's author approve it, but it does not say where the author comes from: set author_variable (e.g. \"Build.COMMIT_AUTHOR_EMAIL\") in its entry of {} (the Approvers parameter; docs/approvals.md), or approve in the CodePipeline console",
            crate::policy::VAR
        ));
    };
    let outputs = crate::app::within(
        deadline,
        "ListActionExecutions",
        pipelines.action_outputs(approval, &source.action),
    )
    .await
    .map_err(|e| match e {
        PortError::Denied(e) | PortError::NotFound(e) | PortError::Failed(e) => {
            format!(
                "The commit's author could not be read ({}), so the author rule cannot be checked",
                escape(&ellipsize(&e, 200))
            )
        }
    })?;
    let author = author_from(&outputs, source).map_err(|e| {
        let mut e = e;
        if let Some(first) = e.get(..1) {
            e.replace_range(..1, &first.to_uppercase());
        }
        e
    })?;
    match crate::app::within(deadline, "users.info", chat.user_email(user)).await {
        Ok(Some(email)) if same_address(&email, &author) => {
            Err("You are the author of this change; another approver must approve it".to_owned())
        }
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(
            "Slack does not show your e-mail to the app, so the author rule cannot be checked: add the bot scope users:read.email to the Slack app and reinstall it (docs/approvals.md)"
                .to_owned(),
        ),
        Err(e) => Err(format!(
            "Your e-mail could not be read from Slack ({}), so the author rule cannot be checked",
            escape(&ellipsize(&e.to_string(), 200))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(action: &str, ns: Option<&str>, started: i64, vars: &[(&str, &str)]) -> ActionOutput {
        ActionOutput {
            action: action.into(),
            namespace: ns.map(str::to_owned),
            status: Some("Succeeded".into()),
            started_ms: Some(started),
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_source_is_an_action_and_a_variable() {
        let s = AuthorSource::parse("Build.COMMIT_AUTHOR_EMAIL").expect("valid");
        assert_eq!(s.action, "Build");
        assert_eq!(s.variable, "COMMIT_AUTHOR_EMAIL");
        let dotted = AuthorSource::parse("build.v2.AUTHOR").expect("dots in the action");
        assert_eq!(dotted.action, "build.v2");
        assert_eq!(dotted.to_string(), "build.v2.AUTHOR");
        for bad in [
            "",
            "COMMIT_AUTHOR_EMAIL",
            ".X",
            "Build.",
            "Build.A B",
            "#{Build.X}",
        ] {
            let e = AuthorSource::parse(bad).expect_err(bad);
            assert!(e.contains("e.g. \"Build.COMMIT_AUTHOR_EMAIL\""), "{e}");
        }
    }

    #[test]
    fn the_latest_export_of_the_named_action_or_namespace_is_the_author() {
        let src = AuthorSource::parse("BuildVars.AUTHOR").expect("valid");
        let outputs = [
            out("Source", Some("SourceVariables"), 1, &[("CommitId", "abc")]),
            out(
                "Build",
                Some("BuildVars"),
                2,
                &[("AUTHOR", "old@example.com")],
            ),
            // A retry of the stage ran the build again.
            out(
                "Build",
                Some("BuildVars"),
                5,
                &[("AUTHOR", " Dev@Example.com ")],
            ),
        ];
        assert_eq!(
            author_from(&outputs, &src).as_deref(),
            Ok("Dev@Example.com")
        );
        let by_name = AuthorSource::parse("Build.AUTHOR").expect("valid");
        assert_eq!(
            author_from(&outputs, &by_name).as_deref(),
            Ok("Dev@Example.com")
        );
    }

    #[test]
    fn a_missing_author_says_what_to_set_without_quoting_the_value() {
        let src = AuthorSource::parse("Build.AUTHOR").expect("valid");
        let e = author_from(&[out("Source", None, 1, &[])], &src).expect_err("no action");
        assert!(
            e.contains("no action named") && e.contains("author_variable"),
            "{e}"
        );
        let e = author_from(&[out("Build", None, 1, &[("OTHER", "x")])], &src)
            .expect_err("not exported");
        assert!(e.contains("exported no variable \"AUTHOR\""), "{e}");
        assert!(e.contains("git log -1 --no-merges --format=%ae"), "{e}");
        let e = author_from(&[out("Build", None, 1, &[("AUTHOR", "Ana Dev")])], &src)
            .expect_err("a name, not an address");
        assert!(e.contains("does not hold an e-mail address"), "{e}");
        assert!(!e.contains("Ana Dev"), "{e}");
    }

    #[test]
    fn addresses_compare_case_insensitively_and_odd_values_are_not_addresses() {
        assert!(same_address("Ana@Example.COM", " ana@example.com"));
        assert!(!same_address("ana@example.com", "bob@example.com"));
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "ana@localhost",
            "a b@c.d",
            "a@b@c.d",
            "a@.b",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        let debug = format!(
            "{:?}",
            out("Build", None, 1, &[("AUTHOR", "secret-ish@example.com")])
        );
        assert!(!debug.contains("secret-ish"), "{debug}");
    }
}

//! SNS: a topic, configured by `TOLLGATE_SNS_TOPIC_ARN` or
//! `{ type: sns, topic_arn: … }` in the rules document (a topic ARN, no
//! secret). Owns that configuration, the message, and its delivery through
//! the [`TopicPublisher`] port (the `notifier` function adapts SNS); FIFO
//! topics get a deduplication id (event id + destination) and a group.
//!
//! Message: a subject (ASCII, no line breaks, under 100 characters, as
//! email endpoints require) and a plain-text body, plus message attributes
//! for subscription filter policies:
//! `tollgate.status`, `tollgate.kind`, `tollgate.severity`, `tollgate.name`.

use super::Via;
use crate::deliver::{Attempts, DeliveryError, with_retries};
use crate::model::Notification;
use crate::render::{commit_line, context_line, enrichment_note};
use crate::secret_ref::{ResolveError, SecretCache, is_arn_of};
use std::fmt;
use std::future::Future;
use tokio::time::Instant;
use tollgate_core::config::{ConfigError, Env};
use tollgate_core::ports::{ParameterStore, SecretStore};
use tollgate_core::text::{ellipsize, human_duration};

/// The `type` in the rules document.
pub const TYPE: &str = "sns";
/// SNS topic ARN; creates the destination `sns`.
pub const VAR: &str = "TOLLGATE_SNS_TOPIC_ARN";

/// `destinations.<name>` in the rules document.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    /// Topic ARN.
    pub topic_arn: String,
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationDoc::Sns {{ topic_arn: {:?} }}", self.topic_arn)
    }
}

/// Before resolution (nothing to resolve: the ARN is checked when read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// Topic ARN.
    pub topic_arn: String,
}

/// Resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Topic ARN.
    pub topic_arn: String,
}

/// Checks a topic ARN (`hint`: what to give instead).
pub(crate) fn check_topic_arn(origin: &str, raw: &str, hint: &str) -> Result<String, ConfigError> {
    let raw = raw.trim();
    if is_arn_of(raw, "sns") && raw.split(':').count() == 6 {
        Ok(raw.to_owned())
    } else {
        Err(ConfigError::invalid(origin, raw, "not an SNS topic ARN", hint))
    }
}

fn topic_arn(origin: &str, raw: &str) -> Result<String, ConfigError> {
    check_topic_arn(
        origin,
        raw,
        "arn:aws:sns:<region>:<account>:<topic>, e.g. arn:aws:sns:eu-west-1:111122223333:deployments",
    )
}

/// A topic destination's configuration from `var` (when set), each value
/// checked by `check` (shared by [`super::amazonq`]).
pub(crate) fn topic_from_env(
    env: &impl Env,
    var: &str,
    check: fn(&str, &str) -> Result<String, ConfigError>,
) -> Result<Option<Unresolved>, ConfigError> {
    env.get(var)
        .map(|raw| {
            Ok(Unresolved {
                topic_arn: check(var, &raw)?,
            })
        })
        .transpose()
}

/// A topic destination's `topic_arn` from the rules document.
pub(crate) fn topic_from_doc(
    origin: &str,
    topic: &str,
    check: fn(&str, &str) -> Result<String, ConfigError>,
) -> Result<Unresolved, ConfigError> {
    Ok(Unresolved {
        topic_arn: check(&format!("{origin}.topic_arn"), topic)?,
    })
}

/// From [`VAR`], when it is set.
pub fn from_env(env: &impl Env) -> Result<Option<Unresolved>, ConfigError> {
    topic_from_env(env, VAR, topic_arn)
}

/// From the rules document; `origin` is the entry's path.
pub fn from_doc(origin: &str, doc: Doc) -> Result<Unresolved, ConfigError> {
    topic_from_doc(origin, &doc.topic_arn, topic_arn)
}

/// Nothing to read: the topic ARN is not a secret.
pub async fn resolve(
    _origin: &str,
    u: &Unresolved,
    _cache: &mut SecretCache,
    _secrets: &impl SecretStore,
    _params: &impl ParameterStore,
) -> Result<Target, ResolveError> {
    Ok(Target {
        topic_arn: u.topic_arn.clone(),
    })
}

/// A topic ARN is never a secret.
pub fn has_plain_secret(_: &Unresolved) -> bool {
    false
}

/// Port: publishes to an SNS topic.
pub trait TopicPublisher: Send + Sync {
    /// One `Publish`. `dedupe_id` is used by FIFO topics.
    fn publish(
        &self,
        topic_arn: &str,
        message: &SnsMessage,
        dedupe_id: &str,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// Publishes the message; the deduplication id is `<event id>:<destination>`.
pub async fn deliver<H, P: TopicPublisher>(
    t: &Target,
    name: &str,
    n: &Notification,
    deadline: Instant,
    via: &Via<'_, H, P>,
) -> Attempts {
    publish(t, name, n, &render(n), deadline, via).await
}

/// Publishes `msg` with retries; the deduplication id (FIFO topics only) is
/// `<event id>:<destination>` (shared by [`super::amazonq`]).
pub(crate) async fn publish<H, P: TopicPublisher>(
    t: &Target,
    name: &str,
    n: &Notification,
    msg: &SnsMessage,
    deadline: Instant,
    via: &Via<'_, H, P>,
) -> Attempts {
    let dedupe = format!("{}:{name}", n.event_id);
    with_retries(name, deadline, via.policy, |_| {
        via.sns.publish(&t.topic_arn, msg, &dedupe)
    })
    .await
}

/// Longest subject SNS accepts is 99 characters ("less than 100").
pub const MAX_SUBJECT: usize = 99;
/// Body cap (SNS allows 256 KB; chat-sized bodies are far smaller).
pub const MAX_BODY: usize = 16_000;

/// One SNS message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnsMessage {
    /// Subject line.
    pub subject: String,
    /// Text body.
    pub message: String,
    /// Message attributes (all `String`).
    pub attributes: Vec<(String, String)>,
    /// FIFO message group (the resource name), unused for standard topics.
    pub group: String,
}

/// ASCII only, no control characters, at most [`MAX_SUBJECT`] characters.
pub fn ascii_subject(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '›' | '»' | '→' => out.push('>'),
            '‹' | '«' | '←' => out.push('<'),
            '…' => out.push_str("..."),
            '–' | '—' => out.push('-'),
            '‘' | '’' => out.push('\''),
            '“' | '”' => out.push('"'),
            '·' => out.push('-'),
            c if (c.is_ascii_control() || c.is_whitespace()) && !out.ends_with(' ') => {
                out.push(' ');
            }
            c if c.is_ascii_control() || c.is_whitespace() => {}
            c if c.is_ascii() => out.push(c),
            _ => {}
        }
    }
    let trimmed = out.trim();
    if trimmed.len() <= MAX_SUBJECT {
        trimmed.to_owned()
    } else {
        format!("{}...", &trimmed[..MAX_SUBJECT - 3])
    }
}

/// Renders the SNS message.
pub fn render(n: &Notification) -> SnsMessage {
    let subject = ascii_subject(&format!(
        "[{}] {}",
        n.status.as_str().to_ascii_uppercase(),
        n.title()
    ));
    let mut body = format!("{} {}\n", n.status.emoji(), n.title());
    if let Some(r) = &n.reason {
        body.push_str("\nReason:\n");
        for line in r.lines() {
            body.push_str("  ");
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(f) = &n.failed_checks {
        body.push_str(&format!("\n{}:\n", f.title()));
        for line in f.body_lines() {
            body.push_str("  ");
            body.push_str(&line);
            body.push('\n');
        }
    }
    if let Some(g) = &n.gate {
        body.push_str(&format!("\n{}:\n", g.title()));
        for line in g.body_lines() {
            body.push_str("  ");
            body.push_str(&line);
            body.push('\n');
        }
    }
    if let Some(c) = &n.commit {
        body.push_str(&format!("\nCommit: {}\n", commit_line(c)));
        if let Some(u) = &c.url {
            body.push_str(&format!("  {u}\n"));
        }
    }
    if !n.facts.is_empty() || n.duration_secs.is_some() {
        body.push('\n');
        for f in &n.facts {
            let value = f.value.replace('\n', "\n    ");
            body.push_str(&format!("{}: {value}\n", f.label));
        }
        if let Some(d) = n.duration_secs {
            body.push_str(&format!("Duration: {}\n", human_duration(d)));
        }
    }
    if !n.links.is_empty() {
        body.push_str("\nLinks:\n");
        for l in &n.links {
            body.push_str(&format!("  {}: {}\n", l.label, l.url));
        }
    }
    body.push_str(&format!("\n{}\n", context_line(n)));
    if let Some(note) = enrichment_note(n) {
        body.push_str(&format!("Note: {note}\n"));
    }
    body.push_str(&format!("Event: {} ({})\n", n.event_id, n.detail_type));
    let mut attributes = vec![
        ("tollgate.status".to_owned(), n.status.as_str().to_owned()),
        ("tollgate.kind".to_owned(), n.kind.as_str().to_owned()),
        (
            "tollgate.severity".to_owned(),
            n.severity().as_str().to_owned(),
        ),
    ];
    if !n.name.is_empty() {
        attributes.push(("tollgate.name".to_owned(), ellipsize(&n.name, 256)));
    }
    SnsMessage {
        subject,
        message: ellipsize(&body, MAX_BODY),
        attributes,
        group: fifo_group(&n.name, n.kind.as_str()),
    }
}

/// A FIFO `MessageGroupId`: 1–128 printable ASCII characters. The
/// resource name keeps one resource's messages in order; an event without
/// one (an unknown detail-type) falls back to its kind, never empty (SNS
/// rejects an empty group on a FIFO topic).
fn fifo_group(name: &str, kind: &str) -> String {
    // Cut without an ellipsis: `…` is not ASCII.
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .take(128)
            .collect()
    };
    let group = clean(name.trim());
    if group.trim_matches('_').is_empty() {
        let kind = clean(kind);
        if kind.is_empty() {
            "tollgate".to_owned()
        } else {
            kind
        }
    } else {
        group
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_groups_are_never_empty_and_stay_in_the_allowed_set() {
        assert_eq!(fifo_group("", "event"), "event");
        assert_eq!(fifo_group("  ", ""), "tollgate");
        assert_eq!(fifo_group("🚀", "event"), "event");
        assert_eq!(fifo_group("payments api", "pipeline"), "payments_api");
        let long = fifo_group(&"x".repeat(300), "pipeline");
        assert!((1..=128).contains(&long.chars().count()));
        assert!(long.chars().all(|c| c.is_ascii_graphic()), "{long}");
    }

    #[test]
    fn subjects_are_ascii_short_and_single_line() {
        let s = ascii_subject("❌ payments: action Build › Unit failed…\nmore");
        assert_eq!(s, "payments: action Build > Unit failed... more");
        let long = ascii_subject(&"x".repeat(300));
        assert_eq!(long.len(), MAX_SUBJECT);
        assert!(long.ends_with("..."));
    }
}

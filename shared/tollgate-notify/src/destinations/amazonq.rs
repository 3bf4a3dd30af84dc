//! Amazon Q Developer in chat applications (formerly AWS Chatbot): an SNS
//! topic that a Q chat channel configuration subscribes to, configured by
//! `TOLLGATE_AMAZONQ_TOPIC_ARN` or `{ type: amazonq, topic_arn: … }` in the
//! rules document. Owns that configuration and the message: Q's *custom
//! notification* JSON (`version` 1.0, `source` custom, `content` with a
//! client-markdown title and description, `metadata` with a `threadId`).
//! Delivery goes through the same [`TopicPublisher`] port as [`super::sns`].
//!
//! Threads: `metadata.threadId` is the run the event belongs to
//! ([`Notification::thread`]): one pipeline execution's events share a
//! thread in the channel (when the channel's preferences allow threading),
//! as do one CodeDeploy deployment's, one build's, one ECS deployment's.
//!
//! Markup: Q renders `client-markdown` in the chat platform's own markdown,
//! Slack's or Teams', whose escapes are incompatible (Slack shows a
//! backslash, Teams needs one). So user-controlled text is made inert
//! instead of escaped ([`inert`]): the characters that start a mention, a
//! link or a code fence are replaced by look-alikes that no markdown
//! parses, and broadcast mentions are broken with a zero-width space.

use super::Via;
use super::sns::{SnsMessage, TopicPublisher, ascii_subject};
use crate::deliver::Attempts;
use crate::model::Notification;
use crate::render::{commit_line, context_line, enrichment_note, facts_with_duration, link_target};
use serde_json::{Map, Value, json};
use std::fmt;
use tokio::time::Instant;
use tollgate_core::config::{ConfigError, Env};
use tollgate_core::text::ellipsize;

/// The `type` in the rules document.
pub const TYPE: &str = "amazonq";
/// SNS topic ARN of a Q chat channel; creates the destination `amazonq`.
pub const VAR: &str = "TOLLGATE_AMAZONQ_TOPIC_ARN";

/// Tollgate's own caps (chat-sized; the whole SNS message stays far below
/// SNS's 256 KB). Q documents no per-field limits.
pub mod limits {
    /// Title characters.
    pub const TITLE: usize = 250;
    /// Description characters.
    pub const DESCRIPTION: usize = 4_000;
    /// Next steps (links), each at most [`NEXT_STEP`] characters.
    pub const NEXT_STEPS: usize = 5;
    /// One next step.
    pub const NEXT_STEP: usize = 500;
    /// Keywords, each at most [`KEYWORD`] characters.
    pub const KEYWORDS: usize = 5;
    /// One keyword.
    pub const KEYWORD: usize = 60;
    /// The thread id.
    pub const THREAD_ID: usize = 256;
}

/// `destinations.<name>` in the rules document.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    /// Topic ARN.
    pub topic_arn: String,
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DestinationDoc::AmazonQ {{ topic_arn: {:?} }}",
            self.topic_arn
        )
    }
}

/// Before resolution and resolved: a topic ARN, as for [`super::sns`].
pub use super::sns::{Target, Unresolved};

fn topic_arn(origin: &str, raw: &str) -> Result<String, ConfigError> {
    let raw = super::sns::check_topic_arn(
        origin,
        raw,
        "arn:aws:sns:<region>:<account>:<topic>: the topic your Amazon Q chat channel configuration subscribes to",
    )?;
    if raw.ends_with(".fifo") {
        // Q's channel configurations subscribe standard topics only.
        return Err(ConfigError::invalid(
            origin,
            &raw,
            "a FIFO topic, which Amazon Q in chat cannot subscribe to",
            "a standard SNS topic",
        ));
    }
    Ok(raw)
}

/// From [`VAR`], when it is set.
pub fn from_env(env: &impl Env) -> Result<Option<Unresolved>, ConfigError> {
    super::sns::topic_from_env(env, VAR, topic_arn)
}

/// From the rules document; `origin` is the entry's path.
pub fn from_doc(origin: &str, doc: Doc) -> Result<Unresolved, ConfigError> {
    super::sns::topic_from_doc(origin, &doc.topic_arn, topic_arn)
}

/// Nothing to read: the topic ARN is not a secret.
pub use super::sns::{has_plain_secret, resolve};

/// Publishes the custom notification; the deduplication id (used by FIFO
/// topics only, which Q does not take) is `<event id>:<destination>`.
pub async fn deliver<H, P: TopicPublisher>(
    t: &Target,
    name: &str,
    n: &Notification,
    deadline: Instant,
    via: &Via<'_, H, P>,
) -> Attempts {
    super::sns::publish(t, name, n, &message(n), deadline, via).await
}

/// The SNS message carrying [`render`]'s JSON, with the same subject and
/// filter attributes as [`super::sns`] plus `tollgate.thread`.
pub fn message(n: &Notification) -> SnsMessage {
    let plain = super::sns::render(n);
    let mut attributes = plain.attributes;
    if let Some(t) = n.thread.as_deref() {
        attributes.push(("tollgate.thread".to_owned(), thread_id(t)));
    }
    SnsMessage {
        subject: ascii_subject(&plain.subject),
        message: render(n).to_string(),
        attributes,
        group: plain.group,
    }
}

/// Makes user-controlled text inert in both Slack's and Teams' markdown:
/// `<` `>` (Slack mentions and links, Teams' `<at>` and HTML) become `‹`
/// `›`; `[` `]` (markdown links) become `⁅` `⁆`; a backtick becomes `ˋ`
/// (no code span or fence can open or close); `*`, `_` and `~` become
/// `∗`, `＿` and `∼` (no emphasis can start); `@here`, `@channel` and
/// `@everyone` get a zero-width space after the `@`; control characters
/// other than a line break become spaces.
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '<' => out.push('‹'),
            '>' => out.push('›'),
            '[' => out.push('⁅'),
            ']' => out.push('⁆'),
            '`' => out.push('ˋ'),
            '*' => out.push('∗'),
            '_' => out.push('＿'),
            '~' => out.push('∼'),
            '@' => {
                out.push('@');
                let word: String = rest
                    .chars()
                    .take_while(char::is_ascii_alphabetic)
                    .collect::<String>()
                    .to_ascii_lowercase();
                if matches!(word.as_str(), "here" | "channel" | "everyone") {
                    out.push('\u{200B}');
                }
            }
            '\n' => out.push('\n'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn thread_id(t: &str) -> String {
    // ASCII graphic only: ids and names are, but a pipeline name is the
    // user's and the id must stay one token.
    t.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(limits::THREAD_ID)
        .collect()
}

/// The custom notification.
pub fn render(n: &Notification) -> Value {
    let title = ellipsize(
        &format!("{} {}", n.status.emoji(), inert(&n.title())),
        limits::TITLE,
    );
    let mut description = String::new();
    if let Some(r) = &n.reason {
        description.push_str(&format!("*Reason:* {}\n", inert(r)));
    }
    if let Some(f) = &n.failed_checks {
        description.push_str(&format!("*{}:*\n", inert(&f.title())));
        for line in f.body_lines() {
            description.push_str(&format!("• {}\n", inert(&line)));
        }
    }
    if let Some(g) = &n.gate {
        description.push_str(&format!("*{}:*\n", inert(&g.title())));
        for line in g.body_lines() {
            description.push_str(&format!("• {}\n", inert(&line)));
        }
    }
    if let Some(c) = &n.commit {
        description.push_str(&format!("*Commit:* {}\n", inert(&commit_line(c))));
    }
    for (label, value) in facts_with_duration(n) {
        description.push_str(&format!("*{}:* {}\n", inert(&label), inert(&value)));
    }
    let mut context = inert(&context_line(n));
    if let Some(note) = enrichment_note(n) {
        context.push_str(&format!(" · {note}"));
    }
    description.push_str(&format!("_{}_", context.trim()));

    let next_steps: Vec<String> = n
        .links
        .iter()
        .filter_map(|l| {
            link_target(&l.url).map(|u| ellipsize(&format!("{}: {u}", inert(&l.label)), limits::NEXT_STEP))
        })
        .take(limits::NEXT_STEPS)
        .collect();
    let keywords: Vec<String> = [
        Some(n.status.as_str().to_owned()),
        Some(n.kind.as_str().to_owned()),
        (!n.name.is_empty()).then(|| inert(&n.name)),
    ]
    .into_iter()
    .flatten()
    .map(|k| ellipsize(&k, limits::KEYWORD))
    .take(limits::KEYWORDS)
    .collect();

    let mut content = Map::new();
    content.insert("textType".into(), json!("client-markdown"));
    content.insert("title".into(), json!(title));
    content.insert(
        "description".into(),
        json!(ellipsize(&description, limits::DESCRIPTION)),
    );
    if !next_steps.is_empty() {
        content.insert("nextSteps".into(), json!(next_steps));
    }
    content.insert("keywords".into(), json!(keywords));

    let mut metadata = Map::new();
    if let Some(t) = n.thread.as_deref() {
        metadata.insert("threadId".into(), json!(thread_id(t)));
    }
    metadata.insert(
        "summary".into(),
        json!(ellipsize(&inert(&n.title()), limits::TITLE)),
    );
    metadata.insert("eventType".into(), json!(ellipsize(&n.detail_type, 128)));
    metadata.insert(
        "additionalContext".into(),
        json!({
            "status": n.status.as_str(),
            "severity": n.severity().as_str(),
            "eventId": ellipsize(&n.event_id, 128),
        }),
    );

    json!({
        "version": "1.0",
        "source": "custom",
        "id": ellipsize(&n.event_id, 128),
        "content": content,
        "metadata": metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;

    fn failed_action(summary: &str) -> Notification {
        Notification::from_event(&parse(json!({
            "id": "e-1", "detail-type": "CodePipeline Action Execution State Change",
            "source": "aws.codepipeline", "region": "eu-west-1", "account": "111122223333",
            "time": "2026-11-26T06:00:00Z",
            "detail": {"pipeline": "payments", "execution-id": "ex-1", "stage": "Deploy",
                       "action": "Smoke", "state": "FAILED",
                       "execution-result": {"external-execution-summary": summary}}
        })))
    }

    #[test]
    fn the_shape_is_q_custom_notification_with_the_execution_as_thread() {
        let v = render(&failed_action("checkout: status 503"));
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["source"], "custom");
        assert_eq!(v["content"]["textType"], "client-markdown");
        assert_eq!(v["metadata"]["threadId"], "codepipeline/payments/ex-1");
        let title = v["content"]["title"].as_str().expect("title");
        assert!(title.contains("payments"), "{title}");
        let d = v["content"]["description"].as_str().expect("description");
        assert!(d.contains("*Reason:* checkout: status 503"), "{d}");
        let steps = v["content"]["nextSteps"].as_array().expect("links");
        assert!(
            steps
                .iter()
                .any(|s| s.as_str().is_some_and(|s| s.contains("https://"))),
            "{steps:?}"
        );
    }

    #[test]
    fn user_text_cannot_mention_link_or_fence() {
        let v = render(&failed_action(
            "<!channel> @here [click](https://evil.example) ```x``` *b* <https://evil.example|ok>",
        ));
        let d = v["content"]["description"].as_str().expect("description");
        for bad in ["<!channel>", "@here", "[click]", "```", "*b*", "<https://"] {
            assert!(!d.contains(bad), "{bad} survived in {d}");
        }
        assert!(d.contains("‹!channel›"), "{d}");
        assert!(d.contains("@\u{200B}here"), "{d}");
        assert_eq!(inert("a@example.com"), "a@example.com");
        assert_eq!(inert("line\u{7}\nnext"), "line \nnext");
    }

    #[test]
    fn every_field_stays_within_its_cap() {
        let mut n = failed_action(&"x".repeat(20_000));
        n.name = "p".repeat(1_000);
        n.thread = Some(format!("codepipeline/{}/é", "p".repeat(1_000)));
        let v = render(&n);
        let chars = |p: &str| v.pointer(p).and_then(Value::as_str).map(|s| s.chars().count());
        assert!(chars("/content/title") <= Some(limits::TITLE));
        assert!(chars("/content/description") <= Some(limits::DESCRIPTION));
        assert!(chars("/metadata/threadId") <= Some(limits::THREAD_ID));
        let id = v["metadata"]["threadId"].as_str().expect("thread");
        assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        for k in v["content"]["keywords"].as_array().expect("keywords") {
            assert!(k.as_str().expect("string").chars().count() <= limits::KEYWORD);
        }
    }

    #[test]
    fn fifo_topics_are_refused_with_what_to_use() {
        let err = from_doc(
            "TOLLGATE_NOTIFY_RULES destinations.q",
            Doc {
                topic_arn: "arn:aws:sns:eu-west-1:111122223333:q.fifo".into(),
            },
        )
        .expect_err("fifo");
        assert!(err.to_string().contains("standard SNS topic"), "{err}");
    }

    #[test]
    fn the_sns_message_carries_the_json_and_the_thread_attribute() {
        let m = message(&failed_action("boom"));
        let v: Value = serde_json::from_str(&m.message).expect("json body");
        assert_eq!(v["source"], "custom");
        assert!(
            m.attributes
                .iter()
                .any(|(k, v)| k == "tollgate.thread" && v == "codepipeline/payments/ex-1")
        );
        assert!(m.subject.is_ascii() && !m.subject.is_empty());
    }
}

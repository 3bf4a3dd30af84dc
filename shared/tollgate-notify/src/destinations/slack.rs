//! Slack: an incoming webhook, configured by `TOLLGATE_SLACK_WEBHOOK` (a
//! secret reference, `crate::secret_ref`) or `{ type: slack, url: <secret
//! reference> }` in the rules document; the URL must be https. Owns that
//! configuration, the payload and its delivery (one POST of the JSON).
//!
//! Payload: Block Kit plus a fallback `text`.
//!
//! Layout: a header with the status emoji and title; the reason (code block
//! when it spans lines); the failed deploy-hook checks (code block); the commit; facts as section fields; buttons to the
//! console; a context line (account · region · time). Block Kit limits are
//! applied here ([`limits`]); `shared/tollgate-notify/tests/notify_payloads.rs` checks every
//! fixture against them.

use super::{Via, resolve_url};
use crate::deliver::{Attempts, ChatTransport};
use crate::model::{FailedChecks, GateResult, Notification, Status};
use crate::render::{commit_line, context_line, enrichment_note, facts_with_duration, link_target};
use crate::secret_ref::{ResolveError, SecretCache, SecretRef, parse_secret_ref};
use std::fmt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tollgate_core::config::{ConfigError, Env};
use tollgate_core::ports::{ParameterStore, SecretStore};
use tollgate_core::secret::Secret;
use tollgate_core::text::ellipsize;

/// The `type` in the rules document.
pub const TYPE: &str = "slack";
/// Slack webhook URL (secret reference); creates the destination `slack`.
pub const VAR: &str = "TOLLGATE_SLACK_WEBHOOK";

/// `destinations.<name>` in the rules document.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    /// Secret reference for the webhook URL.
    pub url: String,
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may be plain values (local use): never print them.
        f.write_str("DestinationDoc::Slack { url: <redacted> }")
    }
}

/// Before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// URL reference.
    pub url: SecretRef,
}

/// Resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// URL.
    pub url: Secret,
}

/// From [`VAR`], when it is set.
pub fn from_env(env: &impl Env) -> Result<Option<Unresolved>, ConfigError> {
    env.get(VAR)
        .map(|raw| {
            Ok(Unresolved {
                url: parse_secret_ref(VAR, &raw)?,
            })
        })
        .transpose()
}

/// From the rules document; `origin` is the entry's path.
pub fn from_doc(origin: &str, doc: Doc) -> Result<Unresolved, ConfigError> {
    Ok(Unresolved {
        url: parse_secret_ref(&format!("{origin}.url"), &doc.url)?,
    })
}

/// Reads the URL and checks it is https.
pub async fn resolve(
    origin: &str,
    u: &Unresolved,
    cache: &mut SecretCache,
    secrets: &impl SecretStore,
    params: &impl ParameterStore,
) -> Result<Target, ResolveError> {
    Ok(Target {
        url: resolve_url(origin, &u.url, cache, secrets, params).await?,
    })
}

/// Whether the URL is given as a plain value.
pub fn has_plain_secret(u: &Unresolved) -> bool {
    matches!(u.url, SecretRef::Plain(_))
}

/// POSTs the payload.
pub async fn deliver<H: ChatTransport, P>(
    t: &Target,
    name: &str,
    n: &Notification,
    deadline: Instant,
    via: &Via<'_, H, P>,
) -> Attempts {
    let body = render(n).to_string().into_bytes();
    via.post(name, &t.url, Vec::new(), body, deadline).await
}

/// Block Kit limits.
pub mod limits {
    /// Blocks per message.
    pub const MAX_BLOCKS: usize = 50;
    /// Header text (plain_text).
    pub const HEADER_TEXT: usize = 150;
    /// Section text.
    pub const SECTION_TEXT: usize = 3000;
    /// Fields per section.
    pub const SECTION_FIELDS: usize = 10;
    /// One field's text.
    pub const FIELD_TEXT: usize = 2000;
    /// Elements per actions block.
    pub const ACTIONS_ELEMENTS: usize = 25;
    /// Button text.
    pub const BUTTON_TEXT: usize = 75;
    /// Button URL.
    pub const BUTTON_URL: usize = 3000;
    /// Elements per context block.
    pub const CONTEXT_ELEMENTS: usize = 10;
    /// Fallback `text` kept short: it is what notifications show.
    pub const FALLBACK_TEXT: usize = 300;
}

/// Escapes Slack's control characters (`&`, `<`, `>`), so no user text can
/// become a mention (`<!channel>`, `<@U…>`) or a disguised link
/// (`<url|label>`). Every user-controlled field goes through it, the
/// fallback `text` included (Slack parses it like mrkdwn).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// The reason as mrkdwn: inline when short and single-line, else a code block.
fn reason_text(reason: &str) -> String {
    const LABEL: &str = "*Reason*\n";
    let budget = limits::SECTION_TEXT - LABEL.len() - 8;
    if !reason.contains('\n') && reason.chars().count() <= 200 {
        return format!("{LABEL}{}", ellipsize(&escape(reason), budget));
    }
    // A literal ``` would end the block early.
    let body = escape(reason).replace("```", "ˋˋˋ");
    format!("{LABEL}```{}```", ellipsize(&body, budget))
}

/// The failed checks as mrkdwn: a bold title and a code block.
fn failed_checks_text(f: &FailedChecks) -> String {
    let label = format!("*{}*\n", escape(&f.title()));
    let budget = limits::SECTION_TEXT - label.chars().count() - 8;
    let body = escape(&f.body_lines().join("\n")).replace("```", "ˋˋˋ");
    format!("{label}```{}```", ellipsize(&body, budget))
}

/// The failed metric gate as mrkdwn: a bold title and a code block (its
/// lines are user text: query names, units, alarm names).
fn gate_text(g: &GateResult) -> String {
    let label = format!("*{}*\n", escape(&g.title()));
    let budget = limits::SECTION_TEXT - label.chars().count() - 8;
    let body = escape(&g.body_lines().join("\n")).replace("```", "ˋˋˋ");
    format!("{label}```{}```", ellipsize(&body, budget))
}

/// Renders the Slack payload.
pub fn render(n: &Notification) -> Value {
    let title = format!("{} {}", n.status.emoji(), n.title());
    let mut blocks: Vec<Value> = Vec::new();
    blocks.push(json!({
        "type": "header",
        "text": {"type": "plain_text", "text": ellipsize(&title, limits::HEADER_TEXT), "emoji": true}
    }));
    if let Some(reason) = &n.reason {
        blocks.push(json!({"type": "section", "text": mrkdwn(reason_text(reason))}));
    }
    if let Some(f) = &n.failed_checks {
        blocks.push(json!({"type": "section", "text": mrkdwn(failed_checks_text(f))}));
    }
    if let Some(g) = &n.gate {
        blocks.push(json!({"type": "section", "text": mrkdwn(gate_text(g))}));
    }
    if let Some(c) = &n.commit {
        let line = escape(&commit_line(c));
        // `&` in a link target is escaped like any text (Slack's rule).
        let target = c.url.as_deref().and_then(link_target).map(|u| escape(&u));
        let text = match target {
            Some(url) if url.len() < 2000 => format!("*Commit* <{url}|{}>", ellipsize(&line, 900)),
            _ => format!("*Commit* {}", ellipsize(&line, 2900)),
        };
        blocks.push(json!({"type": "section", "text": mrkdwn(text)}));
    }
    let facts = facts_with_duration(n);
    // Leave room for the header, reason, commit, actions and context blocks.
    let max_field_sections = limits::MAX_BLOCKS - blocks.len() - 2;
    for chunk in facts
        .chunks(limits::SECTION_FIELDS)
        .take(max_field_sections)
    {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(label, value)| {
                let label = escape(label);
                let budget = limits::FIELD_TEXT - label.chars().count() - 4;
                mrkdwn(format!("*{label}*\n{}", ellipsize(&escape(value), budget)))
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let buttons: Vec<Value> = n
        .links
        .iter()
        .filter(|l| l.url.len() <= limits::BUTTON_URL && link_target(&l.url).is_some())
        .take(limits::ACTIONS_ELEMENTS)
        .enumerate()
        .map(|(i, l)| {
            let mut b = json!({
                "type": "button",
                "text": {"type": "plain_text", "text": ellipsize(&l.label, limits::BUTTON_TEXT), "emoji": true},
                "url": l.url,
            });
            if i == 0 && n.status == Status::Failed {
                b["style"] = json!("danger");
            } else if i == 0 {
                b["style"] = json!("primary");
            }
            b
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    let mut context = vec![mrkdwn(escape(&context_line(n)))];
    if let Some(note) = enrichment_note(n) {
        context.push(mrkdwn(format!(":warning: {}", escape(&note))));
    }
    blocks.push(json!({"type": "context", "elements": context}));

    let fallback = match (&n.failed_checks, &n.gate, &n.reason) {
        (Some(f), _, _) => format!("{title}: {}", f.headline()),
        (None, Some(g), _) => format!("{title}: {}", g.headline_line()),
        (None, None, Some(r)) => format!("{title}: {}", r.lines().next().unwrap_or_default().trim()),
        (None, None, None) => title,
    };
    json!({
        "text": escape(&ellipsize(&fallback, limits::FALLBACK_TEXT)),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_is_escaped() {
        assert_eq!(escape("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
    }

    #[test]
    fn long_reasons_become_code_blocks_within_limits() {
        let long = "error: something\n".repeat(500);
        let text = reason_text(&long);
        assert!(text.starts_with("*Reason*\n```"));
        assert!(text.chars().count() <= limits::SECTION_TEXT);
        let text = reason_text("a ``` b\nc");
        assert!(!text["*Reason*\n```".len()..text.len() - 3].contains("```"));
    }
}

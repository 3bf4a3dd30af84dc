//! Slack incoming webhook payload: Block Kit plus a fallback `text`.
//!
//! Layout: a header with the status emoji and title; the reason (code block
//! when it spans lines); the failed deploy-hook checks (code block); the commit; facts as section fields; buttons to the
//! console; a context line (account · region · time). Block Kit limits are
//! applied here ([`limits`]); `shared/tests/notify_payloads.rs` checks every
//! fixture against them.

use super::super::model::{FailedChecks, Notification, Status};
use super::{commit_line, context_line, enrichment_note, facts_with_duration, link_target};
use serde_json::{Value, json};
use tollgate_core::text::ellipsize;

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

    let fallback = match (&n.failed_checks, &n.reason) {
        (Some(f), _) => format!("{title}: {}", f.headline()),
        (None, Some(r)) => format!("{title}: {}", r.lines().next().unwrap_or_default().trim()),
        (None, None) => title,
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

//! What every renderer shares: the commit line, the context line, the facts
//! with the duration, the enrichment note, and safe link targets. Pure
//! functions, no I/O. Each destination's renderer lives in its module under
//! [`crate::destinations`] and applies every length limit of its format, so
//! a long failure reason can never make a webhook reject the message.

use super::console;
use super::model::{Commit, Notification};

/// The commit as one line of plain text: `abc1234 Fix rounding (acme/payments@main)`.
pub(crate) fn commit_line(c: &Commit) -> String {
    let mut text = console::short_commit(&c.id).to_owned();
    if let Some(m) = &c.message {
        text.push(' ');
        text.push_str(m);
    }
    match (&c.repository, &c.branch) {
        (Some(r), Some(b)) => text.push_str(&format!(" ({r}@{b})")),
        (Some(r), None) => text.push_str(&format!(" ({r})")),
        (None, Some(b)) => text.push_str(&format!(" ({b})")),
        (None, None) => {}
    }
    text
}

/// `111122223333 · us-east-1 · 2024-05-01 10:00:00 UTC`.
pub(crate) fn context_line(n: &Notification) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !n.account.is_empty() {
        parts.push(n.account.clone());
    }
    if !n.region.is_empty() {
        parts.push(n.region.clone());
    }
    if let Some(t) = n.time_display() {
        parts.push(t);
    }
    parts.join(" · ")
}

/// The facts to show, with the duration appended when known.
pub(crate) fn facts_with_duration(n: &Notification) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = n
        .facts
        .iter()
        .map(|f| (f.label.clone(), f.value.clone()))
        .collect();
    if let Some(d) = n.duration_secs {
        out.push(("Duration".to_owned(), console::human_duration(d)));
    }
    out
}

/// A note about missing enrichment, for the footer.
pub(crate) fn enrichment_note(n: &Notification) -> Option<String> {
    use super::model::EnrichmentState as E;
    match n.enrichment.state {
        E::Partial => Some("some details could not be looked up".to_owned()),
        E::Failed => Some("details could not be looked up; showing the event only".to_owned()),
        E::None | E::Complete => None,
    }
}

/// A link target safe to put inside markup: an `http(s)` URL without
/// whitespace or control characters, with the characters that would end
/// the link early (`|`, `>` in Slack, `)` in markdown) percent-encoded.
/// Anything else is no link at all (the text is still shown).
pub(crate) fn link_target(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '|' => out.push_str("%7C"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '[' => out.push_str("%5B"),
            ']' => out.push_str("%5D"),
            '"' => out.push_str("%22"),
            _ => out.push(c),
        }
    }
    Some(out)
}

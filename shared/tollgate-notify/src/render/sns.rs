//! SNS message: a subject (ASCII, no line breaks, under 100 characters, as
//! email endpoints require) and a plain-text body, plus message attributes
//! for subscription filter policies:
//! `tollgate.status`, `tollgate.kind`, `tollgate.severity`, `tollgate.name`.

use super::super::model::Notification;
use super::{commit_line, context_line, enrichment_note};
use tollgate_core::text::{ellipsize, human_duration};

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

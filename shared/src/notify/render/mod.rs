//! Renderers: one [`Notification`](super::model::Notification) → one payload
//! per destination type. Pure functions, no I/O; every length limit of the
//! target format is applied here, so a long failure reason can never make a
//! webhook reject the message.

pub mod slack;
pub mod sns;
pub mod teams;
pub mod webhook;

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

//! Microsoft Teams: a Workflows webhook, configured by
//! `TOLLGATE_TEAMS_WEBHOOK` (a secret reference, `crate::secret_ref`) or
//! `{ type: teams, url: <secret reference> }` in the rules document; the URL
//! must be https. Owns that configuration, the payload and its delivery
//! (one POST of the JSON).
//!
//! Payload: a message whose
//! `attachments[0]` is an Adaptive Card, version 1.4 (some tenants reject
//! newer cards, and Office 365 connectors are retired).
//!
//! Only 1.4 elements and properties are used: `TextBlock` (no `style:
//! heading`, which is 1.5), `Container` with a 1.2 style for the coloured
//! header, `FactSet`, and `Action.OpenUrl`. `shared/tollgate-notify/tests/notify_payloads.rs`
//! checks every fixture against the 1.4 element set.

use super::{Via, resolve_url};
use crate::deliver::{Attempts, ChatTransport};
use crate::model::{Notification, Severity};
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
pub const TYPE: &str = "teams";
/// Teams webhook URL (secret reference); creates the destination `teams`.
pub const VAR: &str = "TOLLGATE_TEAMS_WEBHOOK";

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
        f.write_str("DestinationDoc::Teams { url: <redacted> }")
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

/// The Adaptive Card version we emit.
pub const CARD_VERSION: &str = "1.4";
/// Teams shows few buttons; more only clutter.
pub const MAX_ACTIONS: usize = 5;
/// Reasons are cut to this many characters.
pub const MAX_REASON: usize = 3000;
/// Facts per card.
pub const MAX_FACTS: usize = 30;
/// Largest payload sent, in bytes of JSON. Teams refuses messages over
/// about 28 KB; long reasons, failed checks and facts are cut harder until
/// the card fits.
pub const MAX_PAYLOAD_BYTES: usize = 27_000;

/// How much of the long texts a card carries: tried in turn until the
/// payload fits [`MAX_PAYLOAD_BYTES`].
const BUDGETS: [(usize, usize, usize); 6] = [
    // (reason and failed checks, one fact value, facts)
    (MAX_REASON, 500, MAX_FACTS),
    (1500, 300, MAX_FACTS),
    (800, 200, 20),
    (400, 120, 12),
    (200, 80, 8),
    (100, 60, 4),
];

fn container_style(s: Severity) -> &'static str {
    match s {
        Severity::Failure => "attention",
        Severity::Warning => "warning",
        Severity::Success => "good",
        Severity::Info => "emphasis",
    }
}

/// Escapes what Teams' markdown subset would turn into emphasis or links
/// (`**/*.js`, `[skip ci]`, `[docs](https://…)`, `<https://…>`): `*`,
/// brackets, angle brackets and the backslash itself (else `\[x](y)` would
/// undo the escape); without brackets, parentheses make no link. Every
/// user-controlled text goes through it. Underscores inside words
/// (`HOOK_EXECUTION_FAILURE`) are not emphasis in CommonMark and are left
/// alone, so identifiers stay copyable.
fn md_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '*' | '[' | ']' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Renders the Teams payload, within [`MAX_PAYLOAD_BYTES`].
pub fn render(n: &Notification) -> Value {
    let mut card = Value::Null;
    for budget in BUDGETS {
        card = render_within(n, budget);
        if card.to_string().len() <= MAX_PAYLOAD_BYTES {
            break;
        }
    }
    card
}

fn render_within(
    n: &Notification,
    (text_max, fact_max, facts_max): (usize, usize, usize),
) -> Value {
    let title = format!("{} {}", n.status.emoji(), n.title());
    let mut body: Vec<Value> = vec![json!({
        "type": "Container",
        "style": container_style(n.severity()),
        "bleed": true,
        "items": [{
            "type": "TextBlock",
            "text": md_escape(&ellipsize(&title, 300)),
            "weight": "Bolder",
            "size": "Large",
            "wrap": true,
        }],
    })];
    if let Some(reason) = &n.reason {
        let multi = reason.contains('\n');
        let mut block = json!({
            "type": "TextBlock",
            "text": md_escape(&ellipsize(reason, text_max)),
            "wrap": true,
        });
        if multi {
            block["fontType"] = json!("Monospace");
        }
        body.push(block);
    }
    if let Some(f) = &n.failed_checks {
        body.push(json!({
            "type": "TextBlock",
            "text": md_escape(&ellipsize(&f.title(), 200)),
            "weight": "Bolder",
            "wrap": true,
        }));
        body.push(json!({
            "type": "TextBlock",
            "text": md_escape(&ellipsize(&f.body_lines().join("\n"), text_max)),
            "fontType": "Monospace",
            "wrap": true,
        }));
    }
    if let Some(g) = &n.gate {
        body.push(json!({
            "type": "TextBlock",
            "text": md_escape(&ellipsize(&g.title(), 200)),
            "weight": "Bolder",
            "wrap": true,
        }));
        body.push(json!({
            "type": "TextBlock",
            "text": md_escape(&ellipsize(&g.body_lines().join("\n"), text_max)),
            "fontType": "Monospace",
            "wrap": true,
        }));
    }
    if let Some(c) = &n.commit {
        let line = md_escape(&commit_line(c));
        let url = c.url.as_deref().and_then(link_target);
        let text = match url.filter(|u| u.len() <= 2000) {
            Some(url) => format!("**Commit** [{}]({url})", ellipsize(&line, 500)),
            None => format!("**Commit** {}", ellipsize(&line, 500)),
        };
        body.push(json!({"type": "TextBlock", "text": text, "wrap": true}));
    }
    let facts: Vec<Value> = facts_with_duration(n)
        .into_iter()
        .take(facts_max)
        .map(|(title, value)| {
            json!({"title": md_escape(&ellipsize(&title, 100)), "value": md_escape(&ellipsize(&value, fact_max))})
        })
        .collect();
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let mut footer = context_line(n);
    if let Some(note) = enrichment_note(n) {
        footer.push_str(" · ⚠ ");
        footer.push_str(&note);
    }
    if !footer.is_empty() {
        body.push(json!({
            "type": "TextBlock",
            "text": md_escape(&footer),
            "isSubtle": true,
            "size": "Small",
            "wrap": true,
        }));
    }
    let actions: Vec<Value> = n
        .links
        .iter()
        .filter(|l| l.url.len() <= 2000 && link_target(&l.url).is_some())
        .take(MAX_ACTIONS)
        .map(|l| json!({"type": "Action.OpenUrl", "title": ellipsize(&l.label, 60), "url": l.url}))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "fallbackText": ellipsize(&title, 300),
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = json!(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_in_names_is_escaped() {
        assert_eq!(
            md_escape("my_pipe*line [skip]"),
            "my_pipe\\*line \\[skip\\]"
        );
        // A backslash cannot undo the escape of the bracket after it.
        assert_eq!(md_escape("\\"), "\\\\");
        assert_eq!(md_escape("\\[x](y)"), "\\\\\\[x\\](y)");
        assert_eq!(md_escape("<https://a>"), "\\<https://a\\>");
    }
}

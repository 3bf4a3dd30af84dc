//! Syntax errors of user documents, described without quoting them.
//!
//! A parser's message may quote the text around the error, and the line of a
//! check spec that breaks may hold `Authorization: Bearer …`. That message
//! then reaches a failure report, the CodePipeline console, a Slack message
//! and the logs. So no syntax error of a user document (check spec, notifier
//! rules, `UserParameters`, artifact files) is shown as the parser wrote it:
//! [`yaml`] and [`json`] keep its first line, drop every quoted part, and
//! replace every word that also occurs in the document by `…`, unless the
//! word is plain parser vocabulary (`mapping`, `expected`, `indentation`, …,
//! [`VOCABULARY`]). What is left says what kind of error it is; the line
//! and column say where.

use std::collections::BTreeSet;

/// Words a parser's message may keep even when the document contains them:
/// English and YAML/JSON grammar, never a value worth hiding.
const VOCABULARY: &[&str] = &[
    "a",
    "after",
    "alias",
    "allowed",
    "an",
    "anchor",
    "and",
    "any",
    "are",
    "array",
    "as",
    "at",
    "be",
    "before",
    "block",
    "by",
    "can",
    "cannot",
    "character",
    "characters",
    "closing",
    "colon",
    "column",
    "comma",
    "comment",
    "could",
    "did",
    "directive",
    "document",
    "documents",
    "does",
    "duplicate",
    "end",
    "entry",
    "eof",
    "escape",
    "expected",
    "find",
    "flow",
    "for",
    "found",
    "here",
    "implicit",
    "in",
    "indentation",
    "indicator",
    "invalid",
    "is",
    "it",
    "key",
    "keys",
    "line",
    "mapping",
    "may",
    "missing",
    "multiple",
    "must",
    "not",
    "number",
    "object",
    "of",
    "on",
    "or",
    "parsing",
    "plain",
    "quoted",
    "scalar",
    "scanning",
    "sequence",
    "simple",
    "start",
    "stream",
    "string",
    "tab",
    "tabs",
    "tag",
    "that",
    "the",
    "this",
    "to",
    "token",
    "trailing",
    "unexpected",
    "unknown",
    "use",
    "used",
    "value",
    "was",
    "when",
    "while",
    "with",
    "within",
];

/// The longest description kept (the position comes on top).
const MAX_CHARS: usize = 160;

/// A YAML parse error of `source`, e.g. `did not find expected key (line 3,
/// column 5)`.
pub fn yaml(err: &serde_saphyr::Error, source: &str) -> String {
    let message = err.without_snippet().to_string();
    let position = err.location().map(|l| (l.line(), l.column()));
    describe(&message, position, source)
}

/// A JSON parse error of `source`, e.g. `EOF while parsing a string (line
/// 1, column 40)`.
pub fn json(err: &serde_json::Error, source: &str) -> String {
    let position = (err.line() > 0).then(|| (err.line() as u64, err.column() as u64));
    describe(&err.to_string(), position, source)
}

/// The scrubbing itself: first line, no quoted parts, no position text (it
/// is added back from `position`), no word of `source` outside the
/// vocabulary.
pub fn describe(message: &str, position: Option<(u64, u64)>, source: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let first = match first.find(" at line ") {
        Some(pos) => &first[..pos],
        None => first,
    };
    let unquoted = drop_quoted(first);
    let words = source_words(source);
    let mut out: Vec<&str> = Vec::new();
    for word in unquoted.split_whitespace() {
        let core = word.trim_matches(|c: char| !c.is_alphanumeric());
        let schema_name =
            word.trim_end_matches([',', '.', ';', ':']).starts_with('`') && is_schema_name(core);
        let hidden = !core.is_empty()
            && !schema_name
            && !VOCABULARY.contains(&core.to_ascii_lowercase().as_str())
            && (words.contains(core)
                || core.chars().any(|c| c.is_ascii_digit())
                || words
                    .iter()
                    .any(|w| w.len() >= 6 && core.contains(w.as_str())));
        let piece = if hidden { "…" } else { word };
        if piece == "…" && out.last() == Some(&"…") {
            continue;
        }
        out.push(piece);
    }
    let mut text = out.join(" ");
    if text.chars().count() > MAX_CHARS {
        text = text.chars().take(MAX_CHARS - 1).collect();
        text.push('…');
    }
    if text.is_empty() {
        text = "syntax error".to_owned();
    }
    match position {
        Some((line, column)) => format!("{text} (line {line}, column {column})"),
        None => text,
    }
}

/// The text without anything between quotes (`"…"`, `'…'`, `` `…` ``); an
/// unclosed quote hides the rest. One exception: a backticked name made of
/// lowercase letters, `_` and `-` only (serde's `unknown field `notfy``),
/// which is a misspelt schema key, the one thing the user needs to see;
/// a secret has digits or capitals.
fn drop_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<(char, String)> = None;
    for c in text.chars() {
        match open.as_mut() {
            Some((q, inside)) if c == *q => {
                if *q == '`' && is_schema_name(inside) {
                    out.push('`');
                    out.push_str(inside);
                    out.push('`');
                } else {
                    out.push('…');
                }
                open = None;
            }
            Some((_, inside)) => inside.push(c),
            None if matches!(c, '"' | '\'' | '`') => open = Some((c, String::new())),
            None => out.push(c),
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

fn is_schema_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
}

/// Every word of the document: runs of letters, digits and the characters
/// tokens are made of.
fn source_words(source: &str) -> BTreeSet<String> {
    source
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+' | '=')))
        .flat_map(|w| {
            // Also the word without its edge punctuation, as the message's
            // words are compared.
            let core = w.trim_matches(|c: char| !c.is_alphanumeric());
            [w.to_owned(), core.to_owned()]
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use tollgate_test_support::documents::{TOKEN, yaml_cases};

    #[test]
    fn yaml_syntax_errors_never_quote_the_document() {
        for (case, doc) in yaml_cases() {
            let err = serde_saphyr::from_str::<serde_json::Value>(&doc).expect_err(case);
            let raw = err.to_string();
            let text = yaml(&err, &doc);
            assert!(!text.contains(TOKEN), "{case}: {text}");
            assert!(!text.contains("sk_live"), "{case}: {text}");
            assert!(!text.contains("Bearer"), "{case}: {text}");
            assert!(text.contains("(line "), "{case}: {text} (raw: {raw})");
        }
    }

    #[test]
    fn json_syntax_errors_never_quote_the_document() {
        for doc in [
            format!("{{\"headers\": {{\"Authorization\": \"Bearer {TOKEN}}}}}"),
            format!("{{\"headers\": {{\"Authorization\": Bearer {TOKEN}}}}}"),
            format!("{{\"a\": 1}} Bearer {TOKEN}"),
            format!("{{\"Bearer {TOKEN}\" 1}}"),
        ] {
            let err = serde_json::from_str::<serde_json::Value>(&doc).expect_err("syntax");
            let text = json(&err, &doc);
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("Bearer"), "{text}");
            assert!(text.contains("(line 1, column "), "{text}");
        }
    }

    #[test]
    fn what_the_parser_says_is_kept_where_the_document_does_not_say_it() {
        let doc = "a: [1, 2\n";
        let err = serde_saphyr::from_str::<serde_json::Value>(doc).expect_err("unclosed");
        let text = yaml(&err, doc);
        assert!(text.contains("(line "), "{text}");
        assert!(text.split_whitespace().count() > 3, "{text}");
        assert_eq!(
            describe(
                "expected `,` or `}` at line 1 column 9",
                Some((1, 9)),
                "{\"a\": 1 2}"
            ),
            "expected … or … (line 1, column 9)"
        );
        assert_eq!(
            describe(
                "duplicate mapping key: Authorization",
                Some((4, 7)),
                "Authorization: x"
            ),
            "duplicate mapping key: … (line 4, column 7)"
        );
        // A misspelt key is shown; a secret-looking one is not.
        assert_eq!(
            describe(
                "unknown field `notfy`, expected `notify`",
                Some((1, 1)),
                "notfy: {}"
            ),
            "unknown field `notfy`, expected `notify` (line 1, column 1)"
        );
        assert_eq!(
            describe(
                "unknown field `sk_live_9f8e`",
                Some((1, 1)),
                "sk_live_9f8e: {}"
            ),
            "unknown field … (line 1, column 1)"
        );
    }
}

//! Keeping secrets out of results: which headers are secret, and scrubbing
//! secret values (secret variables, secret header values, URL passwords) from
//! every text a result carries.

use reqwest::Url;
use reqwest::header::HeaderName;

/// Header names whose values are always secret.
const ALWAYS_SECRET: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-amz-security-token",
];

/// Fragments that make a header name secret (`x-auth-token`, `x-client-secret`).
const SECRET_FRAGMENTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "apikey",
    "credential",
    "signature",
    "session",
];

/// Decides which header names are secret: the built-in list, names
/// containing secret-looking words, and the spec's `secret_headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SecretHeaders {
    extra: Vec<String>,
}

impl SecretHeaders {
    pub(crate) fn new(extra: Vec<String>) -> Self {
        Self {
            extra: extra.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    pub(crate) fn is_secret(&self, name: &HeaderName) -> bool {
        let n = name.as_str();
        ALWAYS_SECRET.contains(&n)
            || SECRET_FRAGMENTS.iter().any(|f| n.contains(f))
            || self.extra.iter().any(|e| e == n)
    }
}

/// What percent-encoding escapes: everything but RFC 3986's unreserved
/// characters (what URL and form encoders leave as they are).
const URL_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Replaces known secret values in result texts with `<redacted>`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// Registers a value to hide. Very short values (under 4 chars) are
    /// skipped: hiding "1" everywhere would garble every result.
    /// The forms a target may echo it back in are registered too (a token
    /// sent in a header and returned inside a JSON or a URL of the body):
    /// - JSON string escaping, and the variant with `/` escaped as `\/`
    ///   (PHP's and some Java encoders' default);
    /// - percent-encoding with upper- and lowercase hex digits, and the form
    ///   encoding (`application/x-www-form-urlencoded`) that writes a space
    ///   as `+`.
    pub(crate) fn add(&mut self, value: &str) {
        let v = value.trim();
        if v.chars().count() < 4 {
            return;
        }
        let json = serde_json::Value::String(v.to_owned()).to_string();
        let json = json[1..json.len() - 1].to_owned();
        let json_slash = json.replace('/', "\\/");
        let percent = percent_encoding::utf8_percent_encode(v, URL_ESCAPED).to_string();
        let percent_lower = lowercase_hex(&percent);
        let form_encoded = percent.replace("%20", "+");
        let form_encoded_lower = percent_lower.replace("%20", "+");
        for form in [
            v.to_owned(),
            json,
            json_slash,
            percent,
            percent_lower,
            form_encoded,
            form_encoded_lower,
        ] {
            if !self.values.contains(&form) {
                self.values.push(form);
            }
        }
        // Longest first, so a value containing another is hidden whole.
        self.values.sort_by_key(|e| std::cmp::Reverse(e.len()));
    }

    /// `text` with every registered value replaced.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "<redacted>");
            }
        }
        self.mask_cut_fragments(&mut out);
        out
    }

    /// In-place form of [`Redactor::clean`].
    pub(crate) fn clean_in_place(&self, text: &mut String) {
        let whole = self.values.iter().any(|v| text.contains(v.as_str()));
        if whole || text.contains(['…', '`']) {
            *text = self.clean(text);
        }
    }

    /// A body snippet is cut before it is cleaned, so a secret the target
    /// echoed can be cut in two, and the whole-value replacement no longer
    /// sees it: before a `…` (where a snippet was cut) a prefix of a value
    /// can remain, and after a '`' or at the very start (where a snippet
    /// began inside the body) a suffix. Such a fragment of at least
    /// [`MIN_FRAGMENT`] characters is masked too (review finding).
    fn mask_cut_fragments(&self, out: &mut String) {
        for v in &self.values {
            let chars: Vec<(usize, char)> = v.char_indices().collect();
            if chars.len() <= MIN_FRAGMENT {
                continue;
            }
            // Prefixes of `v` just before a cut mark.
            let mut i = 0;
            while let Some(found) = out[i..].find('…') {
                let at = i + found;
                let before = &out[..at];
                let longest = (MIN_FRAGMENT..chars.len())
                    .rev()
                    .map(|k| &v[..chars[k].0])
                    .find(|p| before.ends_with(p));
                if let Some(p) = longest {
                    let start = at - p.len();
                    out.replace_range(start..at, "<redacted>");
                    i = start + "<redacted>".len() + '…'.len_utf8();
                } else {
                    i = at + '…'.len_utf8();
                }
            }
            // Suffixes of `v` at the start or just after a backtick.
            let mut starts: Vec<usize> = vec![0];
            starts.extend(out.match_indices('`').map(|(j, _)| j + 1));
            for &j in starts.iter().rev() {
                let after = &out[j..];
                let longest = (1..=chars.len() - MIN_FRAGMENT)
                    .map(|k| &v[chars[k].0..])
                    .find(|s| after.starts_with(s));
                if let Some(s) = longest {
                    let len = s.len();
                    out.replace_range(j..j + len, "<redacted>");
                }
            }
        }
    }
}

/// `percent` (a percent-encoded string) with its hex digits in lowercase,
/// as some encoders write them (`%2f` for `%2F`).
fn lowercase_hex(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut rest = percent;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

/// The shortest part of a secret that [`Redactor::clean`] masks where a
/// snippet cut it.
const MIN_FRAGMENT: usize = 4;

/// A URL for display: password removed, then secret values scrubbed.
pub(crate) fn display_url(url: &Url, redactor: &Redactor) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have credentials, which this one has.
        let _ = shown.set_password(Some("redacted"));
    }
    redactor.clean(shown.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_header_names() {
        let s = SecretHeaders::new(vec!["X-Internal".into()]);
        for n in [
            "authorization",
            "x-auth-token",
            "x-client-secret",
            "x-internal",
            "cookie",
        ] {
            assert!(s.is_secret(&HeaderName::from_static(n)), "{n}");
        }
        for n in ["content-type", "host", "x-version", "etag"] {
            assert!(!s.is_secret(&HeaderName::from_static(n)), "{n}");
        }
    }

    #[test]
    fn a_secret_cut_by_a_snippet_is_masked_on_both_sides_of_the_cut() {
        let mut r = Redactor::default();
        r.add("tok-0123456789abcdefSECRET");
        // The end of a snippet cut inside the value.
        let cut_end = format!("body `{}tok-0123456789ab…`", "x".repeat(20));
        let shown = r.clean(&cut_end);
        assert!(!shown.contains("tok-0123"), "{shown}");
        assert!(shown.ends_with("<redacted>…`"), "{shown}");
        // The start of a snippet that begins inside the value.
        let cut_start = "body `89abcdefSECRET and more…`";
        let shown = r.clean(cut_start);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.starts_with("body `<redacted> and more"), "{shown}");
        // Whole values and unrelated text are as before.
        assert_eq!(r.clean("a tok-0123456789abcdefSECRET b"), "a <redacted> b");
        assert_eq!(r.clean("`plain text…`"), "`plain text…`");
    }

    #[test]
    fn redactor_hides_values_and_url_passwords() {
        let mut r = Redactor::default();
        r.add("tok-123456");
        r.add("ab");
        assert_eq!(r.clean("Bearer tok-123456 ab"), "Bearer <redacted> ab");
        let url = Url::parse("https://user:pw@example.com/x?t=tok-123456").expect("url");
        let shown = display_url(&url, &r);
        assert_eq!(shown, "https://user:redacted@example.com/x?t=<redacted>");
    }

    #[test]
    fn echoed_forms_of_a_value_are_hidden_too() {
        let mut r = Redactor::default();
        r.add("tok/Zq+81\"x");
        assert_eq!(
            r.clean(r#"{"echo": "tok/Zq+81\"x", "url": "/cb?t=tok%2FZq%2B81%22x"}"#),
            r#"{"echo": "<redacted>", "url": "/cb?t=<redacted>"}"#
        );
    }

    #[test]
    fn form_encoded_lowercase_hex_and_escaped_slash_forms_are_hidden_too() {
        let mut r = Redactor::default();
        r.add("pass word/Zq+1");
        assert_eq!(
            r.clean("body: user=a&pw=pass+word%2FZq%2B1&x=1"),
            "body: user=a&pw=<redacted>&x=1"
        );
        assert_eq!(
            r.clean("q=pass%20word%2fzq%2b1 (lowercase escapes keep the value's own case)"),
            "q=pass%20word%2fzq%2b1 (lowercase escapes keep the value's own case)"
        );
        assert_eq!(r.clean("q=pass+word%2fZq%2b1"), "q=<redacted>");
        assert_eq!(
            r.clean(r#"{"echo":"pass word\/Zq+1"}"#),
            r#"{"echo":"<redacted>"}"#
        );
    }

    #[test]
    fn lowercase_hex_only_touches_escapes() {
        assert_eq!(lowercase_hex("AB%2FCD%2B%E2%80%A6"), "AB%2fCD%2b%e2%80%a6");
        assert_eq!(lowercase_hex("x%4"), "x%4");
    }
}

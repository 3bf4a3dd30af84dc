//! User documents with syntax errors next to a secret, as a user would make
//! them: every parser of a user document is tested against these (issue
//! 14.5: error text is output and must never quote the document).

/// The secret the documents carry; no error text may contain it.
pub const TOKEN: &str = "sk_live_9f8e7d6c5b4a";

/// Syntax errors in YAML around a secret, as a user would make them.
pub fn yaml_cases() -> Vec<(&'static str, String)> {
    vec![
        (
            "unclosed quote",
            format!(
                "checks:\n  - name: api\n    headers:\n      Authorization: \"Bearer {TOKEN}\n    url: x\n"
            ),
        ),
        (
            "duplicate key",
            format!(
                "checks:\n  - name: api\n    headers:\n      Authorization: Bearer {TOKEN}\n      Authorization: Bearer {TOKEN}\n"
            ),
        ),
        (
            "tab",
            format!("checks:\n  - name: api\n    headers:\n\tAuthorization: Bearer {TOKEN}\n"),
        ),
        (
            "bad indentation",
            format!(
                "checks:\n  - name: api\n    headers:\n      Authorization: Bearer {TOKEN}\n     url: {TOKEN}\n"
            ),
        ),
        (
            "secret as a key",
            format!("checks:\n  - name: api\n    headers: {{Bearer {TOKEN}: [}}\n"),
        ),
    ]
}

/// JSON documents broken around the token.
pub fn json_cases() -> Vec<String> {
    vec![
        format!("{{\"headers\": {{\"Authorization\": \"Bearer {TOKEN}}}}}"),
        format!("{{\"headers\": {{\"Authorization\": Bearer {TOKEN}}}}}"),
        format!("{{\"a\": 1}} Bearer {TOKEN}"),
        format!("[{{\"name\": \"web\", \"imageUri\": \"x\"}}, Bearer {TOKEN}]"),
    ]
}

//! `${NAME}` templates and the variables that fill them.
//!
//! Templates are parsed once, when the spec is read; rendering is a walk over
//! the pre-split parts. `$${` writes a literal `${`; a lone `$` stays as it is.
//! A variable the caller did not supply is a spec error naming the variable
//! and the field that uses it.

use super::error::SpecError;
use std::collections::BTreeMap;
use std::fmt;
use tollgate_core::Secret;

/// Values for `${NAME}` placeholders, supplied at run time.
///
/// Values inserted with [`Vars::insert_secret`] are redacted from every
/// result text (URLs, headers, failure messages) and from `Debug`.
#[derive(Clone, Default)]
pub struct Vars {
    map: BTreeMap<String, Value>,
}

#[derive(Clone)]
enum Value {
    Plain(String),
    Secret(Secret),
}

impl Value {
    fn as_str(&self) -> &str {
        match self {
            Value::Plain(v) => v,
            Value::Secret(s) => s.expose(),
        }
    }
}

impl Vars {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable (replacing an earlier value).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.map.insert(name.into(), Value::Plain(value.into()));
        self
    }

    /// Sets a variable whose value must never be shown (a token, a password).
    pub fn insert_secret(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> &mut Self {
        self.map
            .insert(name.into(), Value::Secret(Secret::new(value.into())));
        self
    }

    /// Builder form of [`Vars::insert`].
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Builder form of [`Vars::insert_secret`].
    #[must_use]
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert_secret(name, value);
        self
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(Value::as_str)
    }

    /// True when the variable is set.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The names of all variables, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no variables.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The values of secret variables (for redaction).
    pub(crate) fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.map.values().filter_map(|v| match v {
            Value::Secret(s) => Some(s.expose()),
            Value::Plain(_) => None,
        })
    }
}

impl fmt::Debug for Vars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.map {
            match v {
                Value::Plain(p) => m.entry(k, p),
                Value::Secret(s) => m.entry(k, s),
            };
        }
        m.finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut vars = Vars::new();
        for (k, v) in iter {
            vars.insert(k, v);
        }
        vars
    }
}

/// A string with `${NAME}` placeholders, split at parse time.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Template {
    /// Parses `source`; `path` names the field for error messages.
    pub(crate) fn parse(source: &str, path: &str) -> Result<Self, SpecError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        while let Some(pos) = rest.find('$') {
            lit.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix("${") {
                // `$${` is an escaped literal `${`.
                lit.push_str("${");
                rest = tail;
            } else if let Some(inner) = after.strip_prefix('{') {
                let Some(end) = inner.find('}') else {
                    return Err(SpecError::invalid(
                        path,
                        // The value is not quoted: it may be a header
                        // holding a token (issue 14.5).
                        format!(
                            "unclosed \"${{\" at character {} of the value; write ${{NAME}}, or $${{ for a literal \"${{\"",
                            source.len() - rest.len() + pos + 1
                        ),
                    ));
                };
                let name = &inner[..end];
                let mut chars = name.chars();
                let valid = chars.next().is_some_and(is_name_start) && chars.all(is_name_char);
                if !valid {
                    return Err(SpecError::invalid(
                        path,
                        format!(
                            "invalid variable name {} at character {} of the value; names use letters, digits and _ and do not start with a digit",
                            super::parse::shown_in_doc(&serde_json::Value::String(name.to_owned())),
                            source.len() - rest.len() + pos + 1
                        ),
                    ));
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(name.to_owned()));
                rest = &inner[end + 1..];
            } else {
                lit.push('$');
                rest = after;
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text as written in the spec.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// True when the template has no placeholders.
    pub(crate) fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The variable names used, in order of appearance.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Fills the placeholders; an unknown variable is a spec error at `path`.
    pub(crate) fn render(&self, vars: &Vars, path: &str) -> Result<String, SpecError> {
        if let [Part::Lit(only)] = self.parts.as_slice() {
            return Ok(only.clone());
        }
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Var(name) => match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => return Err(SpecError::unknown_variable(path, name, vars)),
                },
            }
        }
        Ok(out)
    }
}

/// `text` in double quotes, JSON-escaped, cut to 80 chars.
pub(crate) fn quote(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    let mut q = serde_json::Value::String(cut).to_string();
    if text.chars().count() > 80 {
        q.push('…');
    }
    q
}

impl SpecError {
    /// A template names a variable the caller did not give, with the
    /// variables it did give (the template module owns [`Vars`]).
    pub(crate) fn unknown_variable(path: &str, name: &str, vars: &Vars) -> Self {
        let known: Vec<&str> = vars.names().collect();
        let hint = if known.is_empty() {
            format!(
                "no variables were given; pass one with --var {name}=VALUE (or through the function's configuration)"
            )
        } else {
            format!(
                "known variables: {}; pass it with --var {name}=VALUE or fix the name",
                known.join(", ")
            )
        };
        SpecError::UnknownVariable {
            path: path.to_owned(),
            name: name.to_owned(),
            hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::new()
            .with("TARGET", "http://127.0.0.1:8080")
            .with_secret("TOKEN", "s3cr3t-token")
    }

    #[test]
    fn renders_variables_and_literals() {
        let t = Template::parse("${TARGET}/health?x=$1&t=${TOKEN}", "url").expect("valid");
        assert_eq!(
            t.render(&vars(), "url").expect("known vars"),
            "http://127.0.0.1:8080/health?x=$1&t=s3cr3t-token"
        );
        assert_eq!(t.variables().collect::<Vec<_>>(), ["TARGET", "TOKEN"]);
        assert!(!t.is_literal());
    }

    #[test]
    fn escaped_dollar_brace_is_literal() {
        let t = Template::parse("cost $${PRICE} and $$5", "body").expect("valid");
        assert!(t.is_literal());
        assert_eq!(
            t.render(&Vars::new(), "body").expect("no vars"),
            "cost ${PRICE} and $$5"
        );
    }

    #[test]
    fn malformed_placeholders_name_the_field() {
        let e = Template::parse("${TARGET/health", "checks[0].url").expect_err("unclosed");
        assert!(e.to_string().starts_with("checks[0].url: unclosed"), "{e}");
        let e = Template::parse("${1X}", "checks[0].url").expect_err("bad name");
        assert!(
            e.to_string().contains("invalid variable name \"1X\""),
            "{e}"
        );
        let e = Template::parse("${}", "checks[0].url").expect_err("empty name");
        assert!(e.to_string().contains("invalid variable name \"\""), "{e}");
    }

    #[test]
    fn unknown_variable_names_it_and_the_field() {
        let t = Template::parse("${TARGT}/x", "checks[1].url").expect("valid");
        let e = t.render(&vars(), "checks[1].url").expect_err("unknown");
        let text = e.to_string();
        assert!(
            text.starts_with("checks[1].url: unknown variable ${TARGT}"),
            "{text}"
        );
        assert!(text.contains("TARGET"), "lists known vars: {text}");
    }

    #[test]
    fn debug_redacts_secret_values() {
        let shown = format!("{:?}", vars());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
    }
}

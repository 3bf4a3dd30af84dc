//! `UserParameters`: the JSON object in the action's configuration that picks
//! the action and configures it. This module owns the envelope only: the
//! JSON object, its `"action"` key (with a "did you mean" for an unknown
//! action), [`ParamError`] and the field readers every action's parser uses
//! (`Fields`). Each action parses its own fields in its module under
//! [`crate::actions`], which also holds the one registration table.
//!
//! Parsing is strict and explains itself. Every problem becomes a
//! [`ParamError`] that names the field (`image_policy.pin`,
//! `expected_containers[1]`), says what is wrong, and shows a valid example
//! for the action. Unknown fields are rejected with a "did you mean"
//! suggestion: a typo such as `clustr` must not be ignored silently.
//!
//! CodePipeline caps `UserParameters` at 1000 characters, so large smoke
//! specs belong in an input artifact (`spec_path`).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tollgate_core::text::did_you_mean;

pub use crate::actions::{ACTIONS, Params};

/// The example shown when no action is known yet (the envelope's errors).
const GENERAL_EXAMPLE: &str = crate::actions::ecs_wait::EXAMPLE;

/// A problem with `UserParameters`. Reported as `ConfigurationError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid UserParameters: {field_text} {problem}. Example of valid UserParameters: {example}"
)]
pub struct ParamError {
    /// The field's path, e.g. `image_policy.pin`; `UserParameters` for the whole value.
    pub field: String,
    /// What is wrong and what is accepted.
    pub problem: String,
    /// A valid `UserParameters` value for the action concerned.
    pub example: String,
    field_text: String,
}

impl ParamError {
    pub(crate) fn new(field: &str, problem: impl Into<String>, example: &str) -> Self {
        let field_text = if field == "UserParameters" {
            "UserParameters".to_owned()
        } else {
            format!("field \"{field}\"")
        };
        Self {
            field: field.to_owned(),
            problem: problem.into(),
            example: example.to_owned(),
            field_text,
        }
    }
}

/// Parses `UserParameters` (the raw string from the job; `None` when absent).
pub fn parse(raw: Option<&str>) -> Result<Params, ParamError> {
    let general = GENERAL_EXAMPLE;
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Err(ParamError::new(
            "UserParameters",
            format!(
                "is empty: set the action's UserParameters to a JSON object whose \"action\" is one of {}",
                quoted_list(&ACTIONS)
            ),
            general,
        ));
    }
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        ParamError::new(
            "UserParameters",
            format!(
                "is not valid JSON ({})",
                tollgate_core::doc_error::json(&e, raw)
            ),
            general,
        )
    })?;
    let Value::Object(map) = &value else {
        return Err(ParamError::new(
            "UserParameters",
            format!("must be a JSON object, got {}", kind(&value)),
            general,
        ));
    };
    let action = match map.get("action") {
        None => {
            return Err(ParamError::new(
                "action",
                format!(
                    "is missing: it picks the action, one of {}",
                    quoted_list(&ACTIONS)
                ),
                general,
            ));
        }
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(ParamError::new(
                "action",
                format!(
                    "must be a string, one of {}; got {}",
                    quoted_list(&ACTIONS),
                    kind(other)
                ),
                general,
            ));
        }
    };
    match crate::actions::parse(action, map) {
        Some(parsed) => parsed,
        None => {
            let other = action;
            let hint = did_you_mean(other, &ACTIONS)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            Err(ParamError::new(
                "action",
                format!(
                    "\"{}\" is not an action{hint}; use one of {}",
                    shorten(other),
                    quoted_list(&ACTIONS)
                ),
                general,
            ))
        }
    }
}

/// Reads fields of one JSON object, naming each by its full path in errors.
pub(crate) struct Fields<'a> {
    prefix: String,
    map: &'a Map<String, Value>,
    pub(crate) example: &'a str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(prefix: &str, map: &'a Map<String, Value>, example: &'a str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            map,
            example,
        }
    }

    pub(crate) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(crate) fn err(&self, key: &str, problem: impl Into<String>) -> ParamError {
        ParamError::new(&self.path(key), problem, self.example)
    }

    /// Rejects every key not in `allowed`, suggesting the closest one.
    pub(crate) fn known(&mut self, allowed: &[&str]) -> Result<(), ParamError> {
        for key in self.map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let choices: Vec<&str> = allowed.iter().copied().filter(|k| *k != "action").collect();
            let hint = did_you_mean(key, &choices)
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            return Err(self.err(
                key,
                format!(
                    "is not a known field here; {hint}known fields: {}",
                    quoted_list(&choices)
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn string(&self, key: &str, what: &str) -> Result<String, ParamError> {
        self.opt_string(key, what)?
            .ok_or_else(|| self.err(key, format!("is missing: {what}")))
    }

    pub(crate) fn opt_string(&self, key: &str, what: &str) -> Result<Option<String>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(self.err(key, format!("is empty; it must name {what}")))
            }
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(self.err(
                key,
                format!("must be a string ({what}), got {}", kind(other)),
            )),
        }
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(self.err(key, format!("must be true or false, got {}", kind(other))))
            }
        }
    }

    pub(crate) fn opt_u64(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ParamError> {
        let range = || format!("a whole number from {min} to {max}");
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(self.err(key, format!("must be {}, got {n}", range()))),
            },
            Some(other) => Err(self.err(
                key,
                format!("must be {} (a JSON number), got {}", range(), kind(other)),
            )),
        }
    }

    pub(crate) fn opt_string_list(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<Vec<String>>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
                        Value::String(_) => {
                            return Err(self.err(&format!("{key}[{i}]"), "is an empty string"));
                        }
                        other => {
                            return Err(self.err(
                                &format!("{key}[{i}]"),
                                format!("must be a string, got {}", kind(other)),
                            ));
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(self.err(
                key,
                format!("must be a list of strings ({what}), got {}", kind(other)),
            )),
        }
    }

    pub(crate) fn opt_string_map(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => {
                let mut out = BTreeMap::new();
                for (k, v) in o {
                    match v {
                        Value::String(s) => {
                            out.insert(k.clone(), s.clone());
                        }
                        Value::Number(n) => {
                            out.insert(k.clone(), n.to_string());
                        }
                        other => {
                            return Err(self.err(
                                &format!("{key}.{k}"),
                                format!("must be a string, got {}", kind(other)),
                            ));
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(self.err(
                key,
                format!(
                    "must be an object of string values ({what}), e.g. {{\"TARGET\":\"https://staging.example.com\"}}; got {}",
                    kind(other)
                ),
            )),
        }
    }

    pub(crate) fn opt_object(&self, key: &str) -> Result<Option<Fields<'a>>, ParamError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Fields::new(
                &format!("{}.", self.path(key)),
                o,
                self.example,
            ))),
            Some(other) => Err(self.err(key, format!("must be an object, got {}", kind(other)))),
        }
    }
}

/// A JSON value's kind, for "got …" (values themselves are not echoed).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// Helpers for the `UserParameters` tests of every action.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ParamError, parse};

    /// Parses `raw`, which must be rejected.
    pub(crate) fn err(raw: &str) -> ParamError {
        parse(Some(raw)).expect_err("should be rejected")
    }

    /// Each `(raw, field, problem)` is rejected with an error that names
    /// `field`, says `problem` and shows a valid example.
    pub(crate) fn assert_rejected(cases: &[(&str, &str, &str)]) {
        for (raw, field, problem) in cases {
            let e = err(raw);
            assert_eq!(e.field, *field, "{raw}: {e}");
            let text = e.to_string();
            assert!(text.contains(problem), "{raw}: {text}");
            assert!(
                text.contains("Example of valid UserParameters: {"),
                "{text}"
            );
            if *field != "UserParameters" {
                assert!(text.contains(&format!("field \"{field}\"")), "{text}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::assert_rejected;
    use super::*;

    #[test]
    fn malformed_envelopes_name_the_field() {
        assert_rejected(&[
            ("", "UserParameters", "is empty"),
            ("{action: smoke}", "UserParameters", "not valid JSON"),
            (
                "[1,2]",
                "UserParameters",
                "must be a JSON object, got a list",
            ),
            (r#"{"cluster":"x"}"#, "action", "is missing"),
            (r#"{"action":5}"#, "action", "must be a string"),
            (
                r#"{"action":"ecs-deplyo"}"#,
                "action",
                "did you mean \"ecs-deploy\"",
            ),
        ]);
    }

    #[test]
    fn missing_parameters_are_reported() {
        assert_eq!(parse(None).expect_err("none").field, "UserParameters");
    }
}

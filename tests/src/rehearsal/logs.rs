//! Reading the functions' JSON logs (`AWS_LAMBDA_LOG_FORMAT=JSON`, one object
//! per line), as CloudWatch Logs would show them.
//!
//! An event may carry a field called `message` besides its own message
//! (`tracing::warn!(message = %m, "hook outcome")`), so a line can hold the
//! key twice. Lines are read as ordered key/value pairs to keep both.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// One log record: its fields in order, duplicates kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record(pub Vec<(String, Value)>);

impl Record {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v)
    }

    /// The event's own message (the first `message`: the JSON formatter
    /// writes it before the event's fields).
    pub fn event(&self) -> Option<&str> {
        self.get("message").and_then(Value::as_str)
    }

    /// The event's own field called `message`, if it has one.
    pub fn message_field(&self) -> Option<&str> {
        self.all("message").nth(1).and_then(Value::as_str)
    }

    /// A field as text (strings unquoted).
    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut pairs = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            pairs.push((k, v));
        }
        Ok(Record(pairs))
    }
}

/// Parses one line; `None` for lines that are not JSON objects.
pub fn parse_line(line: &str) -> Option<Record> {
    let mut de = serde_json::Deserializer::from_str(line.trim());
    de.deserialize_map(PairsVisitor).ok()
}

/// Every JSON record in `text`.
pub fn records(text: &str) -> Vec<Record> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_message_keys_are_both_kept() {
        let line = r#"{"timestamp":"t","level":"WARN","message":"hook outcome","deployment_id":"d-1","outcome":"Failed","message":"AfterAllowTestTraffic failed for d-1: 0/2 passed","target":"tollgate_report::hook"}"#;
        let r = parse_line(line).expect("record");
        assert_eq!(r.event(), Some("hook outcome"));
        assert_eq!(
            r.message_field(),
            Some("AfterAllowTestTraffic failed for d-1: 0/2 passed")
        );
        assert_eq!(r.text("outcome").as_deref(), Some("Failed"));
        let plain = parse_line(r#"{"message":"job reported","attempts":1}"#).expect("record");
        assert_eq!(plain.event(), Some("job reported"));
        assert_eq!(plain.message_field(), None);
        assert_eq!(plain.text("attempts").as_deref(), Some("1"));
        assert!(parse_line("not json").is_none());
        assert_eq!(records("{\"a\":1}\nnoise\n{\"b\":2}").len(), 2);
    }
}

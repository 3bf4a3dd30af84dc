//! Memory budgets derived from the function's memory (issue 14 §3).
//!
//! An out-of-memory kill is a missing report, so every input a function
//! holds in memory has a budget derived from `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`,
//! checked before the work starts, and refused with an error that names the
//! limit and how to raise it:
//!
//! - smoke checks: each running check gets an equal share of
//!   [`MemoryBudget::work_bytes`]; a check whose body (`max_body`, read and
//!   then held as text) does not fit its share is refused before any request,
//!   and a JSON body is parsed with [`parse_json_within`], which stops at the
//!   rest of the share instead of growing a `serde_json::Value` without bound
//!   (a body of `[1,1,…]` parses to sixteen times its size);
//! - artifacts: verify-artifact reads at most what fits
//!   (`tollgate_pipeline::deploy_files`);
//! - YAML documents: [`yaml_options`] caps nodes, aliases and scalar bytes,
//!   so alias expansion cannot multiply a small document.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

/// Environment variable Lambda sets to the function's memory in MB.
pub const MEMORY_SIZE_VAR: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";

/// Lambda's smallest memory size, assumed when the variable is missing
/// (outside Lambda): fail closed.
pub const DEFAULT_MEMORY_MB: u64 = 128;

/// Kept for the process itself: the binary, the runtime, TLS roots, SDK
/// clients, buffers of the report core (a function at rest peaks near 20 MiB).
pub const PROCESS_RESERVE: u64 = 32 * 1024 * 1024;

const MIB: u64 = 1024 * 1024;

/// The function's memory and what the work may use of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    function_mb: u64,
}

impl MemoryBudget {
    /// From `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (128 MB when unset or not a
    /// number: the smallest Lambda size).
    pub fn from_env(env: &impl crate::config::Env) -> Self {
        let mb = env
            .get(MEMORY_SIZE_VAR)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|mb| *mb >= 1)
            .unwrap_or(DEFAULT_MEMORY_MB);
        Self::of_mb(mb)
    }

    /// A budget for a function of `mb` MB.
    pub fn of_mb(mb: u64) -> Self {
        Self { function_mb: mb }
    }

    /// The function's memory in MB.
    pub fn function_mb(&self) -> u64 {
        self.function_mb
    }

    /// Bytes the work may hold at once: the function's memory less
    /// [`PROCESS_RESERVE`] (at least 8 MiB).
    pub fn work_bytes(&self) -> u64 {
        // Lambda's "MB" are MiB (128 MB = 134,217,728 bytes).
        (self.function_mb * MIB)
            .saturating_sub(PROCESS_RESERVE)
            .max(8 * MIB)
    }

    /// What to tell a user who needs more: the variable Lambda sets and the
    /// template's setting.
    pub fn how_to_raise(&self) -> String {
        format!(
            "raise the function's memory ({} MB now, {MEMORY_SIZE_VAR}; the template's \
             MemorySize, or PipelineActionMemorySize for pipeline-action)",
            self.function_mb
        )
    }
}

/// Sizes for messages: exact for whole MiB or KiB (`1 MiB`, `256 KiB`),
/// `5.6 MiB` (rounded down) for other sizes from 1 MiB, else in bytes.
pub fn size_text(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        let tenths = bytes * 10 / MIB;
        format!("{}.{} MiB", tenths / 10, tenths % 10)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// YAML options for a user document held within `limit` bytes: node,
/// event, alias and scalar-byte caps sized so that the parsed value stays
/// near the limit (aliases replayed count in full).
pub fn yaml_options(limit: u64) -> serde_saphyr::Options {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    // A parsed node costs at least a `Value` (32 bytes) plus its share of
    // the container around it.
    let nodes = (limit / 512).clamp(1024, budget.max_nodes);
    budget.max_nodes = nodes;
    budget.max_events = (nodes * 2).min(budget.max_events);
    budget.max_total_scalar_bytes = (limit / 2).clamp(64 * 1024, budget.max_total_scalar_bytes);
    budget.max_recorded_anchor_bytes = (limit / 4).min(budget.max_recorded_anchor_bytes);
    budget.max_aliases = budget.max_aliases.min(1000);
    options.budget = Some(budget);
    options
}

/// Parsed size a user document (check spec, notifier rules, appspec) may
/// take: they are a few kilobytes in practice.
pub const DOCUMENT_LIMIT: u64 = 8 * MIB;

/// [`yaml_options`] for user documents ([`DOCUMENT_LIMIT`]).
pub fn document_yaml_options() -> serde_saphyr::Options {
    yaml_options(DOCUMENT_LIMIT)
}

/// Why [`parse_json_within`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum JsonWithinError {
    /// The parsed value would need more than the limit.
    #[error("reading it as JSON needs more than {}", size_text(*.0))]
    OverBudget(u64),
    /// Not JSON (serde_json's message: line and column, no input quoted for
    /// syntax errors).
    #[error("{0}")]
    Syntax(serde_json::Error),
}

/// Parses JSON into a [`Value`] while counting (a safe over-estimate of)
/// the memory the value takes; stops with [`JsonWithinError::OverBudget`]
/// once it would pass `limit` bytes.
pub fn parse_json_within(bytes: &[u8], limit: u64) -> Result<Value, JsonWithinError> {
    let left = Cell::new(limit);
    let exceeded = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Within {
        left: &left,
        exceeded: &exceeded,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if exceeded.get() => Err(JsonWithinError::OverBudget(limit)),
        Err(e) => Err(JsonWithinError::Syntax(e)),
    }
}

/// Per value: the `Value` itself plus allocator overhead.
const NODE: u64 = 48;
/// Per array element: a `Value` slot, doubled for `Vec` growth slack.
const SLOT: u64 = 64;
/// Per heap allocation (a string's, a key's): allocator rounding.
const ALLOC: u64 = 16;
/// Per object member: its key `String` and value slot in the map's node.
const ENTRY: u64 = 64;
/// One `BTreeMap` node (a leaf holds eleven members in about 630 bytes);
/// the first member allocates one, and a node may be as little as half
/// full, so every fifth member is charged another.
const MAP_NODE: u64 = 640;
const MEMBERS_PER_NODE: u64 = 5;

#[derive(Clone, Copy)]
struct Within<'a> {
    left: &'a Cell<u64>,
    exceeded: &'a Cell<bool>,
}

impl Within<'_> {
    fn charge<E: de::Error>(&self, n: u64) -> Result<(), E> {
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("memory budget exceeded"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Within<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Within<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(NODE + ALLOC + v.len() as u64)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(NODE + ALLOC + v.len() as u64)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(NODE)?;
        let mut items = Vec::new();
        loop {
            self.charge(SLOT)?;
            match seq.next_element_seed(self)? {
                Some(v) => items.push(v),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(NODE)?;
        let mut out = Map::new();
        let mut members: u64 = 0;
        while let Some(key) = map.next_key::<String>()? {
            if members.is_multiple_of(MEMBERS_PER_NODE) {
                self.charge(MAP_NODE)?;
            }
            members += 1;
            self.charge(ENTRY + ALLOC + key.len() as u64)?;
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_follow_the_function_memory() {
        let env = [(MEMORY_SIZE_VAR, "512")];
        assert_eq!(MemoryBudget::from_env(&env).function_mb(), 512);
        let unset: [(&str, &str); 0] = [];
        assert_eq!(MemoryBudget::from_env(&unset).function_mb(), 128);
        assert_eq!(
            MemoryBudget::from_env(&[(MEMORY_SIZE_VAR, "lots")]).function_mb(),
            128
        );
        assert_eq!(MemoryBudget::of_mb(128).work_bytes(), 96 * MIB);
        assert!(
            MemoryBudget::of_mb(128)
                .how_to_raise()
                .contains("(128 MB now, ")
        );
        assert_eq!(size_text(3 * MIB / 2), "1.5 MiB");
        assert_eq!(size_text(2048), "2 KiB");
        assert_eq!(size_text(MIB), "1 MiB");
        assert_eq!(size_text(1500), "1500 bytes");
    }

    #[test]
    fn json_within_the_limit_parses_like_serde_json() {
        let text = br#"{"a": [1, 2.5, "x", null, true, {"b": []}], "c": "d"}"#;
        let v = parse_json_within(text, 64 * 1024).expect("fits");
        assert_eq!(v, serde_json::from_slice::<Value>(text).expect("json"));
    }

    #[test]
    fn a_body_that_would_grow_past_the_limit_stops_early() {
        // 1 MiB of `1,`: 512 Ki numbers, at least 16 MiB as Values.
        let mut body = b"[".to_vec();
        body.extend(std::iter::repeat_n(b"1,", 512 * 1024).flatten());
        body.extend(b"1]");
        let e = parse_json_within(&body, 4 * MIB).expect_err("over budget");
        assert!(matches!(e, JsonWithinError::OverBudget(_)), "{e}");
        assert_eq!(e.to_string(), "reading it as JSON needs more than 4 MiB");
        let e = parse_json_within(b"{\"token\": \"SECRET\"", MIB).expect_err("syntax");
        assert!(matches!(e, JsonWithinError::Syntax(_)));
        assert!(!e.to_string().contains("SECRET"));
        // Using the budget exactly, then a syntax error: a syntax error.
        let e = parse_json_within(b"1 x", NODE).expect_err("syntax");
        assert!(matches!(e, JsonWithinError::Syntax(_)), "{e}");
        // Objects cost their map nodes: 1 MiB of `[{"":0},…]` is refused
        // within 64 MiB (it takes about 100 MiB as values).
        let mut objects = b"[".to_vec();
        objects.extend(std::iter::repeat_n(&b"{\"\":0},"[..], 150_000).flatten());
        objects.extend(b"{\"\":0}]");
        let e = parse_json_within(&objects, 64 * MIB).expect_err("over budget");
        assert!(matches!(e, JsonWithinError::OverBudget(_)), "{e}");
    }

    #[test]
    fn yaml_aliases_cannot_multiply_a_small_document() {
        // A 100 KB scalar anchored once and replayed 90 times: 9 MB parsed
        // from a 100 KB document. The parser's defaults allow it.
        let mut doc = format!("big: &big \"{}\"\n", "x".repeat(100_000));
        for i in 0..90 {
            doc.push_str(&format!("k{i}: *big\n"));
        }
        let default: Result<Value, _> = serde_saphyr::from_str(&doc);
        assert!(default.is_ok(), "the defaults accept it");
        let parsed: Result<Value, _> =
            serde_saphyr::from_str_with_options(&doc, yaml_options(4 * MIB));
        assert!(
            parsed.is_err(),
            "the expansion must be refused within 4 MiB"
        );
        let small: Result<Value, _> = serde_saphyr::from_str_with_options(
            "a: &a {x: 1}\nb: *a\nc: [*a, *a]\n",
            yaml_options(4 * MIB),
        );
        assert!(small.is_ok(), "ordinary aliases still work");
    }
}

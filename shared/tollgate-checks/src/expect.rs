//! Expectations: what a response must look like, parsed (regexes and
//! JSONPaths compiled) once with the spec, evaluated per response.
//!
//! Every expectation is evaluated and reported, passing or not, with the
//! expected and the actual value side by side.

use super::error::SpecError;
use super::parse::{
    boolean, child, duration_max, expected, index, number, object, scalar_text, shown, string,
    strings,
};
use super::redact::SecretHeaders;
use super::result::ExpectationResult;
use super::template::{Template, quote};
use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::Value;
use serde_json_path::JsonPath;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

const EXPECT_FIELDS: &[&str] = &["status", "headers", "json", "body", "max_latency"];
const HEADER_FIELDS: &[&str] = &["equals", "contains", "matches", "exists"];
const JSON_FIELDS: &[&str] = &[
    "path", "exists", "equals", "contains", "matches", "gt", "gte", "lt", "lte",
];
const BODY_FIELDS: &[&str] = &["contains", "not_contains", "matches"];

/// Accepted status codes: a union of inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusSpec {
    ranges: Vec<(u16, u16)>,
    text: String,
}

impl StatusSpec {
    /// The default: any 2xx.
    pub(crate) fn success() -> Self {
        Self {
            ranges: vec![(200, 299)],
            text: "200-299".to_owned(),
        }
    }

    pub(crate) fn contains(&self, code: u16) -> bool {
        self.ranges
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }

    fn parse(v: &Value, path: &str) -> Result<Self, SpecError> {
        let bad = || expected(path, "a code, a list or a range like \"200-299\"", v);
        let one = |item: &Value| -> Option<(u16, u16)> {
            match item {
                Value::Number(n) => {
                    let code = u16::try_from(n.as_u64()?).ok()?;
                    (100..=599).contains(&code).then_some((code, code))
                }
                Value::String(s) => {
                    let s = s.trim();
                    let (lo, hi) = match s.split_once('-') {
                        Some((a, b)) => {
                            (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)
                        }
                        None => {
                            let c = s.parse::<u16>().ok()?;
                            (c, c)
                        }
                    };
                    (lo <= hi && lo >= 100 && hi <= 599).then_some((lo, hi))
                }
                _ => None,
            }
        };
        let ranges: Vec<(u16, u16)> = match v {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    one(item).ok_or_else(|| {
                        expected(&index(path, i), "a code or a range like \"200-299\"", item)
                    })
                })
                .collect::<Result<_, _>>()?,
            Value::Array(_) => return Err(bad()),
            other => vec![one(other).ok_or_else(bad)?],
        };
        let text = ranges
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self { ranges, text })
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A test on a text (header value).
#[derive(Debug, Clone)]
pub(crate) enum TextTest {
    Equals(Template),
    Contains(Template),
    Matches(Regex),
    Exists(bool),
}

/// A JSON value to compare with; strings may hold `${VARS}`.
#[derive(Debug, Clone)]
pub(crate) enum JsonExpected {
    Text(Template),
    Value(Value),
}

/// Numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }

    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Cmp::Gt => actual > bound,
            Cmp::Gte => actual >= bound,
            Cmp::Lt => actual < bound,
            Cmp::Lte => actual <= bound,
        }
    }
}

/// A test on the nodes a JSONPath selects.
#[derive(Debug, Clone)]
pub(crate) enum JsonTest {
    Exists(bool),
    Equals(JsonExpected),
    Contains(JsonExpected),
    Matches(Regex),
    Compare(Cmp, f64),
}

/// A test on the body text.
#[derive(Debug, Clone)]
pub(crate) enum BodyTest {
    Contains(Template),
    NotContains(Template),
    Matches(Regex),
}

/// One expectation other than status and latency.
#[derive(Clone)]
pub(crate) enum Op {
    Header {
        name: HeaderName,
        secret: bool,
        test: TextTest,
    },
    Json {
        path_text: String,
        path: JsonPath,
        test: JsonTest,
    },
    Body(BodyTest),
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Header { name, secret, test } => {
                if *secret {
                    write!(f, "Header({name}, <redacted test>)")
                } else {
                    write!(f, "Header({name}, {test:?})")
                }
            }
            Op::Json {
                path_text, test, ..
            } => write!(f, "Json({path_text}, {test:?})"),
            Op::Body(t) => write!(f, "Body({t:?})"),
        }
    }
}

/// One op plus the spec path it came from (for render errors).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) op: Op,
    pub(crate) path: String,
}

impl Entry {
    /// The template to render per run, if the op has one.
    pub(crate) fn template(&self) -> Option<&Template> {
        match &self.op {
            Op::Header {
                test: TextTest::Equals(t) | TextTest::Contains(t),
                ..
            }
            | Op::Json {
                test:
                    JsonTest::Equals(JsonExpected::Text(t)) | JsonTest::Contains(JsonExpected::Text(t)),
                ..
            }
            | Op::Body(BodyTest::Contains(t) | BodyTest::NotContains(t)) => Some(t),
            _ => None,
        }
    }
}

/// Expectations as written in one `expect` block (defaults or a check).
#[derive(Debug, Clone, Default)]
pub(crate) struct PartialExpect {
    pub(crate) status: Option<StatusSpec>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) max_latency: Option<Duration>,
}

/// The expectations of one check, defaults merged in.
#[derive(Debug, Clone)]
pub(crate) struct Expectations {
    pub(crate) status: StatusSpec,
    pub(crate) entries: Vec<Entry>,
    pub(crate) max_latency: Option<Duration>,
}

impl Expectations {
    /// The final expectations; `status` defaults to 200-299.
    pub(crate) fn from_partial(p: PartialExpect) -> Self {
        Self {
            status: p.status.unwrap_or_else(StatusSpec::success),
            entries: p.entries,
            max_latency: p.max_latency,
        }
    }
}

/// Parses an `expect` block.
pub(crate) fn parse_expect(
    v: &Value,
    path: &str,
    secrets: &SecretHeaders,
) -> Result<PartialExpect, SpecError> {
    let map = object(v, path, EXPECT_FIELDS)?;
    let mut out = PartialExpect::default();
    if let Some(s) = map.get("status") {
        out.status = Some(StatusSpec::parse(s, &child(path, "status"))?);
    }
    if let Some(l) = map.get("max_latency") {
        let p = child(path, "max_latency");
        let d = duration_max(l, &p, Duration::from_secs(3600), "1h")?;
        if d.is_zero() {
            return Err(SpecError::invalid(&p, "must be above 0ms"));
        }
        out.max_latency = Some(d);
    }
    if let Some(h) = map.get("headers") {
        parse_headers(h, &child(path, "headers"), secrets, &mut out.entries)?;
    }
    if let Some(j) = map.get("json") {
        parse_json(j, &child(path, "json"), &mut out.entries)?;
    }
    if let Some(b) = map.get("body") {
        parse_body(b, &child(path, "body"), &mut out.entries)?;
    }
    Ok(out)
}

fn regex(v: &Value, path: &str) -> Result<Regex, SpecError> {
    let pattern = string(v, path)?;
    Regex::new(pattern).map_err(|e| {
        let detail = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        SpecError::invalid(
            path,
            format!("invalid regular expression {}: {detail}", quote(pattern)),
        )
    })
}

fn parse_headers(
    v: &Value,
    path: &str,
    secrets: &SecretHeaders,
    out: &mut Vec<Entry>,
) -> Result<(), SpecError> {
    let Value::Object(map) = v else {
        return Err(expected(path, "a mapping of header name to test", v));
    };
    let mut seen: Vec<HeaderName> = Vec::new();
    for (raw_name, test) in map {
        let p = child(path, raw_name);
        let name = HeaderName::from_bytes(raw_name.trim().as_bytes()).map_err(|_| {
            SpecError::invalid(
                &p,
                format!("{} is not a valid header name", quote(raw_name)),
            )
        })?;
        if seen.contains(&name) {
            return Err(SpecError::invalid(
                &p,
                "header listed twice (names are case-insensitive); merge the tests into one entry",
            ));
        }
        seen.push(name.clone());
        let secret = secrets.is_secret(&name);
        let mut push = |test: TextTest, path: String| {
            out.push(Entry {
                op: Op::Header {
                    name: name.clone(),
                    secret,
                    test,
                },
                path,
            });
        };
        match test {
            Value::Object(ops) => {
                object(test, &p, HEADER_FIELDS)?;
                if ops.is_empty() {
                    return Err(SpecError::invalid(
                        &p,
                        "empty test; use one or more of: equals, contains, matches, exists",
                    ));
                }
                for (key, val) in ops {
                    let op_path = child(&p, key);
                    let t = match key.as_str() {
                        "equals" => TextTest::Equals(Template::parse(
                            &scalar_text(val, &op_path)?,
                            &op_path,
                        )?),
                        "contains" => TextTest::Contains(Template::parse(
                            &scalar_text(val, &op_path)?,
                            &op_path,
                        )?),
                        "matches" => TextTest::Matches(regex(val, &op_path)?),
                        _ => TextTest::Exists(boolean(val, &op_path)?),
                    };
                    push(t, op_path);
                }
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                let text = scalar_text(test, &p)?;
                push(TextTest::Equals(Template::parse(&text, &p)?), p.clone());
            }
            other => {
                return Err(expected(
                    &p,
                    "a value to equal, or a mapping with equals / contains / matches / exists",
                    other,
                ));
            }
        }
    }
    Ok(())
}

fn json_expected(v: &Value, path: &str) -> Result<JsonExpected, SpecError> {
    Ok(match v {
        Value::String(s) => JsonExpected::Text(Template::parse(s, path)?),
        other => JsonExpected::Value(other.clone()),
    })
}

fn parse_json(v: &Value, path: &str, out: &mut Vec<Entry>) -> Result<(), SpecError> {
    let Value::Array(items) = v else {
        return Err(expected(
            path,
            "a list of JSONPath tests like [{path: \"$.status\", equals: \"ok\"}]",
            v,
        ));
    };
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        let map = object(item, &p, JSON_FIELDS)?;
        let path_path = child(&p, "path");
        let Some(raw_path) = map.get("path") else {
            return Err(SpecError::invalid(
                &path_path,
                "missing; give the JSONPath (RFC 9535) to test, like \"$.status\"",
            ));
        };
        let path_text = string(raw_path, &path_path)?.to_owned();
        let compiled = JsonPath::parse(&path_text).map_err(|e| {
            SpecError::invalid(
                &path_path,
                format!("invalid JSONPath {}: {e}", quote(&path_text)),
            )
        })?;
        let mut any = false;
        for (key, val) in map {
            let op_path = child(&p, key);
            let test = match key.as_str() {
                "path" => continue,
                "exists" => JsonTest::Exists(boolean(val, &op_path)?),
                "equals" => JsonTest::Equals(json_expected(val, &op_path)?),
                "contains" => JsonTest::Contains(json_expected(val, &op_path)?),
                "matches" => JsonTest::Matches(regex(val, &op_path)?),
                cmp => {
                    let c = match cmp {
                        "gt" => Cmp::Gt,
                        "gte" => Cmp::Gte,
                        "lt" => Cmp::Lt,
                        _ => Cmp::Lte,
                    };
                    JsonTest::Compare(c, number(val, &op_path, f64::MIN, f64::MAX)?)
                }
            };
            any = true;
            out.push(Entry {
                op: Op::Json {
                    path_text: path_text.clone(),
                    path: compiled.clone(),
                    test,
                },
                path: op_path,
            });
        }
        if !any {
            return Err(SpecError::invalid(
                &p,
                "no test given; add one of: exists, equals, contains, matches, gt, gte, lt, lte",
            ));
        }
    }
    Ok(())
}

fn parse_body(v: &Value, path: &str, out: &mut Vec<Entry>) -> Result<(), SpecError> {
    let map = object(v, path, BODY_FIELDS)?;
    if map.is_empty() {
        return Err(SpecError::invalid(
            path,
            "empty test; use one or more of: contains, not_contains, matches",
        ));
    }
    for (key, val) in map {
        let p = child(path, key);
        match key.as_str() {
            "matches" => {
                let items: Vec<Value> = match val {
                    Value::Array(a) if !a.is_empty() => a.clone(),
                    Value::Array(_) => {
                        return Err(expected(&p, "a regex or a non-empty list of regexes", val));
                    }
                    other => vec![other.clone()],
                };
                let single = items.len() == 1 && !val.is_array();
                for (i, item) in items.iter().enumerate() {
                    let ip = if single { p.clone() } else { index(&p, i) };
                    out.push(Entry {
                        op: Op::Body(BodyTest::Matches(regex(item, &ip)?)),
                        path: ip,
                    });
                }
            }
            kind => {
                for (text, ip) in strings(val, &p)? {
                    let t = Template::parse(&text, &ip)?;
                    let op = if kind == "contains" {
                        BodyTest::Contains(t)
                    } else {
                        BodyTest::NotContains(t)
                    };
                    out.push(Entry {
                        op: Op::Body(op),
                        path: ip,
                    });
                }
            }
        }
    }
    Ok(())
}

/// What the evaluation looks at: one response, as read.
#[derive(Debug)]
pub(crate) struct Observed<'a> {
    pub(crate) status: u16,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
    /// More body than the limit was sent; `body` holds the first part.
    pub(crate) truncated: bool,
    pub(crate) latency: Duration,
    /// Set when the response is a redirect the check did not follow.
    pub(crate) unfollowed_redirect: Option<String>,
}

const REDACTED: &str = "<redacted>";

/// Formats a duration as milliseconds with one decimal below 10 ms.
pub(crate) fn ms_text(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{} ms", ms.round())
    }
}

fn limit_text(bytes: usize) -> String {
    tollgate_core::memory::size_text(bytes as u64)
}

/// The start of a body, in backticks, control characters flattened.
fn snippet(text: &str) -> String {
    let mut flat: String = text
        .chars()
        .take(120)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(120).is_some() {
        flat.push('…');
    }
    format!("`{flat}`")
}

/// Evaluates every expectation against one response. `rendered[i]` is the
/// rendered template of `expect.entries[i]` (empty when it has none).
pub(crate) fn evaluate(
    expect: &Expectations,
    rendered: &[String],
    seen: &Observed<'_>,
    max_body: usize,
    json_limit: u64,
) -> Vec<ExpectationResult> {
    let mut out = Vec::with_capacity(expect.entries.len() + 2);
    let status_ok = expect.status.contains(seen.status);
    let actual = match (&seen.unfollowed_redirect, status_ok) {
        (Some(location), false) => format!(
            "{} redirect to {location} (redirects are not followed; set follow_redirects: true or expect status {})",
            seen.status, seen.status
        ),
        _ => seen.status.to_string(),
    };
    out.push(ExpectationResult::new(
        "status",
        expect.status.to_string(),
        actual,
        status_ok,
    ));

    let text: Option<Cow<'_, str>> = expect
        .entries
        .iter()
        .any(|e| matches!(e.op, Op::Body(_) | Op::Json { .. }))
        .then(|| String::from_utf8_lossy(seen.body));
    let mut json: Option<Result<Value, String>> = None;
    let cut_note = if seen.truncated {
        format!(" (body cut at the {} limit)", limit_text(max_body))
    } else {
        String::new()
    };

    for (i, entry) in expect.entries.iter().enumerate() {
        let exp_text = rendered.get(i).map(String::as_str).unwrap_or_default();
        let result = match &entry.op {
            Op::Header { name, secret, test } => {
                eval_header(name, *secret, test, exp_text, seen.headers)
            }
            Op::Body(test) => {
                let body = text.as_deref().unwrap_or_default();
                eval_body(test, exp_text, body, seen.body.len(), &cut_note)
            }
            Op::Json {
                path_text,
                path,
                test,
            } => {
                let parsed = json.get_or_insert_with(|| {
                    if seen.truncated {
                        return Err(format!(
                            "body is larger than the {} limit, so it cannot be read as JSON; raise max_body",
                            limit_text(max_body)
                        ));
                    }
                    tollgate_core::memory::parse_json_within(seen.body, json_limit).map_err(|e| match e {
                        tollgate_core::memory::JsonWithinError::Syntax(e) => format!(
                            "body is not JSON ({e}); it starts with {}",
                            snippet(text.as_deref().unwrap_or_default())
                        ),
                        over => format!(
                            "body is {} but {over}, this check's share of the function's \
                             memory; lower the spec's concurrency, or raise the function's memory",
                            limit_text(seen.body.len())
                        ),
                    })
                });
                eval_json(path_text, path, test, exp_text, parsed)
            }
        };
        out.push(result);
    }

    if let Some(max) = expect.max_latency {
        out.push(ExpectationResult::new(
            "latency",
            format!("<= {}", ms_text(max)),
            ms_text(seen.latency),
            seen.latency <= max,
        ));
    }
    out
}

fn eval_header(
    name: &HeaderName,
    secret: bool,
    test: &TextTest,
    exp: &str,
    headers: &HeaderMap,
) -> ExpectationResult {
    let what = format!("header {name}");
    let values: Vec<Cow<'_, str>> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    let shown_exp = |e: &str| {
        if secret {
            REDACTED.to_owned()
        } else {
            quote(e)
        }
    };
    let actual = if values.is_empty() {
        "absent".to_owned()
    } else if secret {
        REDACTED.to_owned()
    } else {
        values
            .iter()
            .map(|v| quote(v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (expected, passed) = match test {
        TextTest::Exists(true) => ("present".to_owned(), !values.is_empty()),
        TextTest::Exists(false) => ("absent".to_owned(), values.is_empty()),
        TextTest::Equals(_) => (
            format!("equals {}", shown_exp(exp)),
            values.iter().any(|v| v == exp),
        ),
        TextTest::Contains(_) => (
            format!("contains {}", shown_exp(exp)),
            values.iter().any(|v| v.contains(exp)),
        ),
        TextTest::Matches(re) => (
            format!("matches /{}/", re.as_str()),
            values.iter().any(|v| re.is_match(v)),
        ),
    };
    ExpectationResult::new(what, expected, actual, passed)
}

fn eval_body(
    test: &BodyTest,
    exp: &str,
    body: &str,
    len: usize,
    cut_note: &str,
) -> ExpectationResult {
    let (expected, passed) = match test {
        BodyTest::Contains(_) => (format!("contains {}", quote(exp)), body.contains(exp)),
        BodyTest::NotContains(_) => (
            format!("does not contain {}", quote(exp)),
            !body.contains(exp),
        ),
        BodyTest::Matches(re) => (format!("matches /{}/", re.as_str()), re.is_match(body)),
    };
    let actual = if passed {
        format!("{len} bytes{cut_note}")
    } else {
        match test {
            BodyTest::NotContains(_) => {
                let at = body.find(exp).unwrap_or(0);
                let start = body.floor_char_boundary(at.saturating_sub(40));
                format!("found at byte {at}: …{}", snippet(&body[start..]))
            }
            _ => format!("{} ({len} bytes{cut_note})", snippet(body)),
        }
    };
    ExpectationResult::new("body", expected, actual, passed)
}

fn json_number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn eval_json(
    path_text: &str,
    path: &JsonPath,
    test: &JsonTest,
    exp: &str,
    parsed: &Result<Value, String>,
) -> ExpectationResult {
    let what = format!("json {path_text}");
    let expected_value = |e: &JsonExpected| match e {
        JsonExpected::Text(_) => Value::String(exp.to_owned()),
        JsonExpected::Value(v) => v.clone(),
    };
    let expected = match test {
        JsonTest::Exists(true) => "exists".to_owned(),
        JsonTest::Exists(false) => "absent".to_owned(),
        JsonTest::Equals(e) => format!("equals {}", shown(&expected_value(e))),
        JsonTest::Contains(e) => format!("contains {}", shown(&expected_value(e))),
        JsonTest::Matches(re) => format!("matches /{}/", re.as_str()),
        JsonTest::Compare(c, n) => format!("{} {n}", c.symbol()),
    };
    let doc = match parsed {
        Ok(doc) => doc,
        Err(why) => return ExpectationResult::new(what, expected, why.clone(), false),
    };
    let nodes = path.query(doc).all();
    let describe = |nodes: &[&Value]| -> String {
        match nodes {
            [] => "no match".to_owned(),
            [one] => shown(one),
            many => format!(
                "{} matches: {}",
                many.len(),
                many.iter()
                    .take(5)
                    .map(|v| shown(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    let node_ok = |node: &Value| -> bool {
        match test {
            JsonTest::Exists(_) => true,
            JsonTest::Equals(e) => json_eq(node, &expected_value(e)),
            JsonTest::Contains(e) => {
                let want = expected_value(e);
                match (node, &want) {
                    (Value::String(s), Value::String(w)) => s.contains(w.as_str()),
                    (Value::Array(items), w) => items.iter().any(|i| json_eq(i, w)),
                    (Value::Object(map), Value::String(k)) => map.contains_key(k),
                    _ => false,
                }
            }
            JsonTest::Matches(re) => match node {
                Value::String(s) => re.is_match(s),
                Value::Number(_) | Value::Bool(_) => re.is_match(&node.to_string()),
                _ => false,
            },
            JsonTest::Compare(c, bound) => json_number(node).is_some_and(|n| c.holds(n, *bound)),
        }
    };
    let (passed, actual) = match test {
        JsonTest::Exists(want) => (nodes.is_empty() != *want, describe(&nodes)),
        _ if nodes.is_empty() => (false, "no match".to_owned()),
        _ => match nodes.iter().find(|n| !node_ok(n)) {
            None => (true, describe(&nodes)),
            Some(bad) if nodes.len() == 1 => {
                let mut text = shown(bad);
                if matches!(test, JsonTest::Compare(..)) && json_number(bad).is_none() {
                    text.push_str(" (not a number)");
                }
                (false, text)
            }
            Some(bad) => (
                false,
                format!("{} (one of {} matches)", shown(bad), nodes.len()),
            ),
        },
    };
    ExpectationResult::new(what, expected, actual, passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Vars;
    use serde_json::json;

    fn build(v: Value) -> (Expectations, Vec<String>) {
        let partial = parse_expect(&v, "expect", &SecretHeaders::default()).expect("valid expect");
        let e = Expectations::from_partial(partial);
        let vars = Vars::new().with("VERSION", "1.2.3");
        let rendered = e
            .entries
            .iter()
            .map(|en| {
                en.template()
                    .map(|t| t.render(&vars, &en.path).expect("known"))
                    .unwrap_or_default()
            })
            .collect();
        (e, rendered)
    }

    fn run(v: Value, status: u16, headers: &[(&str, &str)], body: &str) -> Vec<ExpectationResult> {
        let (e, rendered) = build(v);
        let mut map = HeaderMap::new();
        for (k, val) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                val.parse().expect("value"),
            );
        }
        let seen = Observed {
            status,
            headers: &map,
            body: body.as_bytes(),
            truncated: false,
            latency: Duration::from_millis(20),
            unfollowed_redirect: None,
        };
        evaluate(&e, &rendered, &seen, 1 << 20, u64::MAX)
    }

    #[test]
    fn json_tests_cover_nodes_and_types() {
        let body =
            r#"{"a":{"b":[1,2,3],"v":"1.2.3","n":5.0,"s":"x"},"list":[{"ok":true},{"ok":false}]}"#;
        let r = run(
            json!({"json": [
                {"path": "$.a.b", "contains": 2},
                {"path": "$.a.v", "equals": "${VERSION}"},
                {"path": "$.a.n", "equals": 5, "gte": 5, "lt": 6},
                {"path": "$.a.s", "gt": 1},
                {"path": "$.list[*].ok", "equals": true},
                {"path": "$.nope", "exists": false},
                {"path": "$.a", "contains": "v"}
            ]}),
            200,
            &[],
            body,
        );
        let find = |what: &str, expected: &str| {
            r.iter()
                .find(|e| e.what == what && e.expected == expected)
                .unwrap_or_else(|| panic!("no result {what} {expected}: {r:#?}"))
        };
        assert!(find("json $.a.b", "contains 2").passed);
        assert!(find("json $.a.v", "equals \"1.2.3\"").passed);
        assert!(find("json $.a.n", "equals 5").passed, "5.0 equals 5");
        assert!(find("json $.a.n", ">= 5").passed);
        assert!(find("json $.a.n", "< 6").passed);
        let not_number = find("json $.a.s", "> 1");
        assert!(!not_number.passed);
        assert_eq!(not_number.actual, "\"x\" (not a number)");
        let list = find("json $.list[*].ok", "equals true");
        assert!(!list.passed);
        assert_eq!(list.actual, "false (one of 2 matches)");
        assert!(find("json $.nope", "absent").passed);
        assert!(find("json $.a", "contains \"v\"").passed);
        assert_eq!(r.len(), 10, "status + 9 json tests");
    }

    #[test]
    fn secret_header_values_are_never_shown() {
        let r = run(
            json!({"headers": {"set-cookie": {"equals": "session=abc"}}}),
            200,
            &[("set-cookie", "session=xyz")],
            "",
        );
        let h = &r[1];
        assert!(!h.passed);
        assert_eq!(h.actual, "<redacted>");
        assert_eq!(h.expected, "equals <redacted>");
    }

    #[test]
    fn status_forms() {
        for (v, code, ok) in [
            (json!(200), 200, true),
            (json!("200-299"), 204, true),
            (json!([200, "300-302"]), 301, true),
            (json!([200, 204]), 201, false),
        ] {
            let r = run(json!({ "status": v }), code, &[], "");
            assert_eq!(r[0].passed, ok, "{r:?}");
        }
    }
}

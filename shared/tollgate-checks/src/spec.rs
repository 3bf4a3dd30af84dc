//! The check spec: parsed from YAML or JSON (one schema), validated field by
//! field, with every error naming the field path.
//!
//! Everything that can be checked without variables is checked here:
//! unknown fields, types, ranges, regexes, JSONPaths, template syntax. What
//! depends on variables (the rendered URL, header values) is checked by
//! [`Spec::check_vars`] and at the start of every run, before any request.

use super::error::SpecError;
use super::expect::{Expectations, PartialExpect, parse_expect};
use super::parse::{
    boolean, child, duration, duration_max, expected, index, integer, number, object, rate,
    scalar_text, shown_in_doc, size, string,
};
use super::redact::{Redactor, SecretHeaders, display_url};
use super::template::{Template, Vars, quote};
use super::variables::SecretVariables;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// Upper bound for `max_body`.
pub(crate) const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default concurrency limit.
pub const DEFAULT_CONCURRENCY: usize = 8;

const ROOT_FIELDS: &[&str] = &[
    "version",
    "defaults",
    "checks",
    "concurrency",
    "deadline",
    "fail_fast",
    "secret_headers",
    "variables",
    // The metric gate (crate::gate), read by GateSpec::from_document.
    "gate",
];
const OPTION_FIELDS: &[&str] = &[
    "method",
    "headers",
    "timeout",
    "tls_verify",
    "follow_redirects",
    "initial_delay",
    "retry",
    "samples",
    "sample_interval",
    "min_pass_rate",
    "max_body",
    "expect",
];
const CHECK_ONLY_FIELDS: &[&str] = &["name", "url", "body", "json"];
const RETRY_FIELDS: &[&str] = &["attempts", "interval", "backoff", "max_interval"];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A parsed, validated check spec. Cheap to share (`Clone`, `Send`, `Sync`);
/// parse it once at init and run it many times.
#[derive(Debug, Clone)]
pub struct Spec {
    pub(crate) checks: Vec<Check>,
    pub(crate) concurrency: usize,
    pub(crate) deadline: Option<Duration>,
    pub(crate) fail_fast: bool,
    pub(crate) secret_variables: SecretVariables,
}

/// Retry policy of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Retry {
    pub(crate) attempts: u32,
    pub(crate) interval: Duration,
    pub(crate) backoff: f64,
    pub(crate) max_interval: Duration,
}

impl Retry {
    /// The wait after failed attempt number `attempt` (1-based).
    pub(crate) fn wait_after(&self, attempt: u32) -> Duration {
        let factor = self
            .backoff
            .powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        let secs = (self.interval.as_secs_f64() * factor).min(self.max_interval.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// A request header whose value may hold `${VARS}`.
#[derive(Clone)]
pub(crate) struct HeaderSpec {
    pub(crate) name: HeaderName,
    pub(crate) value: Template,
    pub(crate) secret: bool,
    pub(crate) path: String,
}

impl fmt::Debug for HeaderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            write!(f, "{}: <redacted>", self.name)
        } else {
            write!(f, "{}: {:?}", self.name, self.value)
        }
    }
}

/// A JSON request body whose strings may hold `${VARS}`.
#[derive(Debug, Clone)]
pub(crate) enum JsonBody {
    Text(Template),
    List(Vec<JsonBody>),
    Map(Vec<(String, JsonBody)>),
    Other(Value),
}

impl JsonBody {
    fn parse(v: &Value, path: &str) -> Result<Self, SpecError> {
        Ok(match v {
            Value::String(s) => JsonBody::Text(Template::parse(s, path)?),
            Value::Array(items) => JsonBody::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| JsonBody::parse(item, &index(path, i)))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => JsonBody::Map(
                map.iter()
                    .map(|(k, item)| Ok((k.clone(), JsonBody::parse(item, &child(path, k))?)))
                    .collect::<Result<_, SpecError>>()?,
            ),
            other => JsonBody::Other(other.clone()),
        })
    }

    fn render(&self, vars: &Vars, path: &str) -> Result<Value, SpecError> {
        Ok(match self {
            JsonBody::Text(t) => Value::String(t.render(vars, path)?),
            JsonBody::List(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(vars, path))
                    .collect::<Result<_, _>>()?,
            ),
            JsonBody::Map(items) => Value::Object(
                items
                    .iter()
                    .map(|(k, i)| Ok((k.clone(), i.render(vars, path)?)))
                    .collect::<Result<_, SpecError>>()?,
            ),
            JsonBody::Other(v) => v.clone(),
        })
    }

    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonBody::Text(t) => out.push(t),
            JsonBody::List(items) => items.iter().for_each(|i| i.templates(out)),
            JsonBody::Map(items) => items.iter().for_each(|(_, i)| i.templates(out)),
            JsonBody::Other(_) => {}
        }
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum BodySpec {
    Text(Template),
    Json(JsonBody),
}

/// One check, defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) method: Method,
    pub(crate) url: Template,
    pub(crate) headers: Vec<HeaderSpec>,
    pub(crate) body: Option<BodySpec>,
    pub(crate) timeout: Duration,
    pub(crate) tls_verify: bool,
    pub(crate) follow_redirects: bool,
    /// `None`: the engine's default.
    pub(crate) max_body: Option<usize>,
    pub(crate) initial_delay: Duration,
    pub(crate) retry: Retry,
    pub(crate) samples: u32,
    pub(crate) sample_interval: Duration,
    pub(crate) min_pass_rate: f64,
    pub(crate) expect: Expectations,
}

/// A check with its variables applied, ready to send.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) url: Url,
    /// The URL as shown in results (secrets scrubbed).
    pub(crate) shown_url: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Vec<u8>>,
    /// Rendered expectation templates, parallel to `expect.entries`.
    pub(crate) expected: Vec<String>,
}

impl Check {
    /// Every template of the check (URL, headers, body, expected texts).
    fn templates(&self) -> Vec<&Template> {
        let mut out: Vec<&Template> = vec![&self.url];
        out.extend(self.headers.iter().map(|h| &h.value));
        match &self.body {
            Some(BodySpec::Text(t)) => out.push(t),
            Some(BodySpec::Json(j)) => j.templates(&mut out),
            None => {}
        }
        out.extend(self.expect.entries.iter().filter_map(|e| e.template()));
        out
    }

    /// Applies variables. Secret values (secret variables and secret header
    /// values) are added to `redactor`.
    pub(crate) fn prepare(
        &self,
        vars: &Vars,
        redactor: &mut Redactor,
    ) -> Result<Prepared, SpecError> {
        let url_path = child(&self.path, "url");
        let url_text = self.url.render(vars, &url_path)?;
        let url = Url::parse(&url_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                let used: Vec<&str> = self.url.variables().collect();
                let hint = if used.is_empty() {
                    String::new()
                } else {
                    format!("; check the value of {}", used.join(", "))
                };
                SpecError::invalid(
                    &url_path,
                    format!(
                        "{} became {}, which is not an absolute http(s) URL{hint}",
                        quote(self.url.source()),
                        quote(&redactor.clean(&url_text))
                    ),
                )
            })?;

        let mut headers = HeaderMap::with_capacity(self.headers.len() + 1);
        for h in &self.headers {
            let path = h.path.as_str();
            let text = h.value.render(vars, path)?;
            let value = HeaderValue::from_str(&text).map_err(|_| {
                SpecError::invalid(
                    path,
                    "the value (after variables) holds characters a header cannot carry (such as a newline); check the variables it uses",
                )
            })?;
            if h.secret {
                redactor.add(&text);
                if let Some((_, token)) = text.split_once(' ') {
                    redactor.add(token);
                }
            }
            headers.insert(h.name.clone(), value);
        }
        let body = match &self.body {
            None => None,
            Some(BodySpec::Text(t)) => {
                Some(t.render(vars, &child(&self.path, "body"))?.into_bytes())
            }
            Some(BodySpec::Json(j)) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                let value = j.render(vars, &child(&self.path, "json"))?;
                Some(value.to_string().into_bytes())
            }
        };
        let expected = self
            .expect
            .entries
            .iter()
            .map(|e| match e.template() {
                Some(t) => t.render(vars, &e.path),
                None => Ok(String::new()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Prepared {
            shown_url: display_url(&url, redactor),
            url,
            headers,
            body,
            expected,
        })
    }
}

/// Options that `defaults` and a check share; `None` means "not set here".
#[derive(Debug, Clone, Default)]
struct Options {
    method: Option<Method>,
    headers: Vec<HeaderSpec>,
    timeout: Option<Duration>,
    tls_verify: Option<bool>,
    follow_redirects: Option<bool>,
    initial_delay: Option<Duration>,
    attempts: Option<u32>,
    interval: Option<Duration>,
    backoff: Option<f64>,
    max_interval: Option<Duration>,
    samples: Option<u32>,
    sample_interval: Option<Duration>,
    min_pass_rate: Option<f64>,
    max_body: Option<usize>,
    expect: PartialExpect,
}

impl Options {
    /// Reads the shared fields of `map` (already checked for unknown keys),
    /// on top of `self` (the defaults).
    fn read(
        mut self,
        map: &serde_json::Map<String, Value>,
        path: &str,
        secrets: &SecretHeaders,
    ) -> Result<Self, SpecError> {
        for (key, v) in map {
            let p = child(path, key);
            match key.as_str() {
                "method" => {
                    let m = string(v, &p)?.trim().to_ascii_uppercase();
                    if !METHODS.contains(&m.as_str()) {
                        return Err(expected(&p, &format!("one of {}", METHODS.join(", ")), v));
                    }
                    self.method = Some(
                        Method::from_bytes(m.as_bytes())
                            .map_err(|_| expected(&p, "an HTTP method", v))?,
                    );
                }
                "headers" => {
                    let Value::Object(hs) = v else {
                        return Err(expected(&p, "a mapping of header name to value", v));
                    };
                    for (name, value) in hs {
                        let hp = child(&p, name);
                        let hn = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                            SpecError::invalid(
                                &hp,
                                format!("{} is not a valid header name", quote(name)),
                            )
                        })?;
                        let text = scalar_text(value, &hp)?;
                        let template = Template::parse(&text, &hp)?;
                        if template.is_literal() && HeaderValue::from_str(&text).is_err() {
                            return Err(SpecError::invalid(
                                &hp,
                                "the value holds characters a header cannot carry (such as a newline)",
                            ));
                        }
                        self.headers.retain(|h| h.name != hn);
                        self.headers.push(HeaderSpec {
                            secret: secrets.is_secret(&hn),
                            name: hn,
                            value: template,
                            path: hp,
                        });
                    }
                }
                "timeout" => {
                    let d = duration_max(v, &p, Duration::from_secs(900), "15m")?;
                    if d.is_zero() {
                        return Err(SpecError::invalid(&p, "must be above 0ms, e.g. \"5s\""));
                    }
                    self.timeout = Some(d);
                }
                "tls_verify" => self.tls_verify = Some(boolean(v, &p)?),
                "follow_redirects" => self.follow_redirects = Some(boolean(v, &p)?),
                "initial_delay" => {
                    self.initial_delay = Some(duration_max(v, &p, Duration::from_secs(3600), "1h")?)
                }
                "retry" => self.read_retry(v, &p)?,
                "samples" => {
                    self.samples = Some(u32::try_from(integer(v, &p, 1, 10_000)?).unwrap_or(1))
                }
                "sample_interval" => {
                    self.sample_interval =
                        Some(duration_max(v, &p, Duration::from_secs(600), "10m")?)
                }
                "min_pass_rate" => self.min_pass_rate = Some(rate(v, &p)?),
                "max_body" => self.max_body = Some(size(v, &p, MAX_BODY_LIMIT)?),
                "expect" => {
                    let e = parse_expect(v, &p, secrets)?;
                    // A check's expect adds to (and may override) the defaults.
                    let mut merged = std::mem::take(&mut self.expect);
                    merged.entries.extend(e.entries);
                    if e.status.is_some() {
                        merged.status = e.status;
                    }
                    if e.max_latency.is_some() {
                        merged.max_latency = e.max_latency;
                    }
                    self.expect = merged;
                }
                _ => {}
            }
        }
        Ok(self)
    }

    fn read_retry(&mut self, v: &Value, p: &str) -> Result<(), SpecError> {
        if v.is_number() {
            self.attempts = Some(u32::try_from(integer(v, p, 1, 100)?).unwrap_or(1));
            return Ok(());
        }
        if !v.is_object() {
            return Err(expected(
                p,
                "a number of attempts or a mapping with attempts, interval, backoff, max_interval",
                v,
            ));
        }
        let map = object(v, p, RETRY_FIELDS)?;
        for (key, val) in map {
            let kp = child(p, key);
            match key.as_str() {
                "attempts" => {
                    self.attempts = Some(u32::try_from(integer(val, &kp, 1, 100)?).unwrap_or(1))
                }
                "interval" => {
                    self.interval = Some(duration_max(val, &kp, Duration::from_secs(600), "10m")?)
                }
                "backoff" => self.backoff = Some(number(val, &kp, 1.0, 10.0)?),
                _ => {
                    self.max_interval =
                        Some(duration_max(val, &kp, Duration::from_secs(3600), "1h")?)
                }
            }
        }
        Ok(())
    }
}

impl Spec {
    /// Parses a spec written in YAML or JSON (text starting with `{` is read
    /// as JSON, anything else as YAML; JSON is valid YAML too).
    pub fn from_yaml_or_json(text: &str) -> Result<Spec, SpecError> {
        Spec::from_value(&parse_document(text)?)
    }

    /// Builds a spec from an already parsed JSON value (e.g. a field of a
    /// CodePipeline `UserParameters` document).
    pub fn from_value(value: &Value) -> Result<Spec, SpecError> {
        if !value.is_object() {
            return Err(SpecError::invalid(
                "spec",
                format!(
                    "expected a mapping with a \"checks\" list, got {}",
                    shown_in_doc(value)
                ),
            ));
        }
        let root = object(value, "", ROOT_FIELDS)?;
        if let Some(v) = root.get("version")
            && v.as_u64() != Some(1)
        {
            return Err(expected("version", "1 (the only spec version so far)", v));
        }
        let secret_names = match root.get("secret_headers") {
            None => Vec::new(),
            Some(v) => {
                let Value::Array(items) = v else {
                    return Err(expected("secret_headers", "a list of header names", v));
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let p = index("secret_headers", i);
                        let s = string(item, &p)?;
                        HeaderName::from_bytes(s.trim().as_bytes())
                            .map(|n| n.as_str().to_owned())
                            .map_err(|_| {
                                SpecError::invalid(
                                    &p,
                                    format!("{} is not a valid header name", quote(s)),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let secrets = SecretHeaders::new(secret_names);
        let secret_variables = match root.get("variables") {
            Some(v) => SecretVariables::parse(v)?,
            None => SecretVariables::default(),
        };
        let concurrency = match root.get("concurrency") {
            Some(v) => {
                usize::try_from(integer(v, "concurrency", 1, 256)?).unwrap_or(DEFAULT_CONCURRENCY)
            }
            None => DEFAULT_CONCURRENCY,
        };
        let deadline = match root.get("deadline") {
            Some(v) => {
                let d = duration(v, "deadline")?;
                if d.is_zero() {
                    return Err(SpecError::invalid(
                        "deadline",
                        "must be above 0s, e.g. \"2m\"",
                    ));
                }
                Some(d)
            }
            None => None,
        };
        let fail_fast = match root.get("fail_fast") {
            Some(v) => boolean(v, "fail_fast")?,
            None => false,
        };
        let defaults = match root.get("defaults") {
            Some(v) => {
                let map = object(v, "defaults", OPTION_FIELDS)?;
                Options::default().read(map, "defaults", &secrets)?
            }
            None => Options::default(),
        };
        let Some(checks_value) = root.get("checks") else {
            return Err(SpecError::invalid(
                "checks",
                "missing; add a list of checks, e.g. checks: [{name: health, url: \"${TARGET}/health\"}]",
            ));
        };
        let Value::Array(items) = checks_value else {
            return Err(expected("checks", "a list of checks", checks_value));
        };
        if items.is_empty() {
            return Err(SpecError::invalid(
                "checks",
                "empty; add at least one check",
            ));
        }
        let mut allowed: Vec<&str> = CHECK_ONLY_FIELDS.to_vec();
        allowed.extend_from_slice(OPTION_FIELDS);
        let mut checks: Vec<Check> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = index("checks", i);
            let map = object(item, &path, &allowed)?;
            let opts = defaults.clone().read(map, &path, &secrets)?;
            let url_path = child(&path, "url");
            let Some(url_value) = map.get("url") else {
                return Err(SpecError::invalid(
                    &url_path,
                    "missing; give the URL to request, e.g. \"${TARGET}/health\"",
                ));
            };
            let url = Template::parse(string(url_value, &url_path)?, &url_path)?;
            if url.is_literal() {
                let ok = Url::parse(url.source())
                    .ok()
                    .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    return Err(SpecError::invalid(
                        &url_path,
                        format!(
                            "{} is not an absolute http(s) URL; write the full URL or start it with a variable like \"${{TARGET}}/health\"",
                            quote(url.source())
                        ),
                    ));
                }
            }
            let method = opts.method.clone().unwrap_or(Method::GET);
            let name = match map.get("name") {
                Some(v) => {
                    let p = child(&path, "name");
                    let n = string(v, &p)?.trim().to_owned();
                    if n.is_empty() || n.chars().count() > 100 {
                        return Err(expected(&p, "a name of 1 to 100 characters", v));
                    }
                    n
                }
                None => format!("{method} {}", url.source()),
            };
            if let Some(prev) = checks.iter().position(|c| c.name == name) {
                return Err(SpecError::invalid(
                    &child(&path, "name"),
                    format!(
                        "duplicate name {} (also checks[{prev}]); names must be unique",
                        quote(&name)
                    ),
                ));
            }
            let body = match (map.get("body"), map.get("json")) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::invalid(
                        &child(&path, "json"),
                        "set either body (text) or json (a JSON document), not both",
                    ));
                }
                (Some(b), None) => {
                    let p = child(&path, "body");
                    Some(BodySpec::Text(Template::parse(&scalar_text(b, &p)?, &p)?))
                }
                (None, Some(j)) => Some(BodySpec::Json(JsonBody::parse(j, &child(&path, "json"))?)),
                (None, None) => None,
            };
            let samples = opts.samples.unwrap_or(1);
            if samples == 1 && map.contains_key("min_pass_rate") {
                return Err(SpecError::invalid(
                    &child(&path, "min_pass_rate"),
                    "only applies with samples above 1; add samples: N",
                ));
            }
            let retry = Retry {
                attempts: opts.attempts.unwrap_or(1),
                interval: opts.interval.unwrap_or(Duration::from_secs(1)),
                backoff: opts.backoff.unwrap_or(1.0),
                max_interval: opts.max_interval.unwrap_or(Duration::from_secs(30)),
            };
            checks.push(Check {
                name,
                method,
                url,
                headers: opts.headers,
                body,
                timeout: opts.timeout.unwrap_or(DEFAULT_TIMEOUT),
                tls_verify: opts.tls_verify.unwrap_or(true),
                follow_redirects: opts.follow_redirects.unwrap_or(false),
                max_body: opts.max_body,
                initial_delay: opts.initial_delay.unwrap_or(Duration::ZERO),
                retry,
                samples,
                sample_interval: opts.sample_interval.unwrap_or(Duration::ZERO),
                min_pass_rate: opts.min_pass_rate.unwrap_or(1.0),
                expect: Expectations::from_partial(opts.expect),
                path,
            });
        }
        Ok(Spec {
            checks,
            concurrency,
            deadline,
            fail_fast,
            secret_variables,
        })
    }

    /// Number of checks.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Always false: a spec has at least one check.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Check names, in spec order.
    pub fn check_names(&self) -> impl Iterator<Item = &str> {
        self.checks.iter().map(|c| c.name.as_str())
    }

    /// How many requests may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The spec's own overall deadline, if it sets one.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// True when the first failed check stops the run.
    pub fn fail_fast(&self) -> bool {
        self.fail_fast
    }

    /// The `variables:` map: values to read from Secrets Manager or SSM
    /// before a run ([`SecretVariables::resolve`]).
    pub fn secret_variables(&self) -> &SecretVariables {
        &self.secret_variables
    }

    /// Every variable the spec's templates use.
    pub fn variables(&self) -> BTreeSet<String> {
        self.checks
            .iter()
            .flat_map(|c| c.templates())
            .flat_map(|t| t.variables())
            .map(str::to_owned)
            .collect()
    }

    /// Applies `vars` to every check without sending anything: reports an
    /// unknown variable, a URL that is not absolute once rendered, or a
    /// header value that cannot be sent. Call it at init to fail early;
    /// [`super::Engine::run`] does the same before its first request.
    pub fn check_vars(&self, vars: &Vars) -> Result<(), SpecError> {
        let mut redactor = Redactor::default();
        for check in &self.checks {
            check.prepare(vars, &mut redactor)?;
        }
        Ok(())
    }
}

/// Reads a spec document (text starting with `{` as JSON, anything else as
/// YAML 1.2 with strict booleans), within the document memory limit; errors
/// never quote the text.
pub(crate) fn parse_document(text: &str) -> Result<Value, SpecError> {
    let value: Value = if text.trim_start().starts_with('{') {
        tollgate_core::memory::parse_json_within(
            text.as_bytes(),
            tollgate_core::memory::DOCUMENT_LIMIT,
        )
        .map_err(|e| SpecError::Syntax {
            format: "JSON",
            message: match e {
                tollgate_core::memory::JsonWithinError::Syntax(e) => {
                    tollgate_core::doc_error::json(&e, text)
                }
                over => format!("the spec is too large: {over}"),
            },
        })?
    } else {
        // YAML 1.2 booleans only: `equals: no` must stay the text "no".
        let mut options = tollgate_core::memory::document_yaml_options();
        options.strict_booleans = true;
        serde_saphyr::from_str_with_options(text, options).map_err(|e| SpecError::Syntax {
            format: "YAML",
            message: tollgate_core::doc_error::yaml(&e, text),
        })?
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
concurrency: 4
deadline: 2m
defaults:
  timeout: 3s
  headers:
    Authorization: "Bearer ${TOKEN}"
  retry: {attempts: 3, interval: 500ms}
  expect:
    max_latency: 800ms
checks:
  - name: health
    url: "${TARGET}/health"
    expect:
      status: 200
      json:
        - path: $.status
          equals: ok
  - name: login
    method: post
    url: "${TARGET}/login"
    json: {user: "${USER}", remember: true}
    retry: {attempts: 5}
"#;

    #[test]
    fn parses_defaults_and_overrides() {
        let spec = Spec::from_yaml_or_json(YAML).expect("valid spec");
        assert_eq!(spec.concurrency(), 4);
        assert_eq!(spec.deadline(), Some(Duration::from_secs(120)));
        let names: Vec<&str> = spec.check_names().collect();
        assert_eq!(names, ["health", "login"]);
        let login = &spec.checks[1];
        assert_eq!(login.method, Method::POST);
        assert_eq!(login.retry.attempts, 5);
        assert_eq!(login.retry.interval, Duration::from_millis(500));
        assert_eq!(login.timeout, Duration::from_secs(3));
        assert_eq!(login.expect.max_latency, Some(Duration::from_millis(800)));
        assert_eq!(
            spec.variables().into_iter().collect::<Vec<_>>(),
            ["TARGET", "TOKEN", "USER"]
        );
        let shown = format!("{spec:?}");
        assert!(shown.contains("authorization: <redacted>"), "{shown}");
    }

    #[test]
    fn prepare_renders_and_registers_secrets() {
        let spec = Spec::from_yaml_or_json(YAML).expect("valid spec");
        let vars = Vars::new()
            .with("TARGET", "http://127.0.0.1:9")
            .with("USER", "ann")
            .with("TOKEN", "abcdef123");
        let mut r = Redactor::default();
        let p = spec.checks[1].prepare(&vars, &mut r).expect("renders");
        assert_eq!(p.url.as_str(), "http://127.0.0.1:9/login");
        assert_eq!(
            p.body.as_deref(),
            Some(br#"{"remember":true,"user":"ann"}"#.as_slice())
        );
        assert_eq!(p.headers[CONTENT_TYPE], "application/json");
        assert_eq!(r.clean("x abcdef123 y"), "x <redacted> y");
        let e = spec
            .check_vars(&Vars::new().with("TARGET", "nope"))
            .expect_err("bad url");
        assert!(
            e.to_string()
                .starts_with("checks[0].url: \"${TARGET}/health\" became \"nope/health\""),
            "{e}"
        );
    }

    #[test]
    fn yaml_1_1_booleans_stay_text() {
        // The "Norway problem": `no` must not turn into false.
        let spec = Spec::from_yaml_or_json(
            "checks:\n  - url: \"${T}/\"\n    expect: {headers: {x-country: no}, json: [{path: $.on, equals: off}]}\n",
        )
        .expect("valid spec");
        let shown = format!("{:?}", spec.checks[0].expect.entries);
        assert!(shown.contains(r#"Equals("no")"#), "{shown}");
        assert!(shown.contains(r#"Equals(Text("off"))"#), "{shown}");
        let err = Spec::from_yaml_or_json("fail_fast: yes\nchecks: [{url: \"${T}/\"}]\n")
            .expect_err("yes is not a boolean");
        assert_eq!(
            err.to_string(),
            r#"fail_fast: expected true or false, got "yes""#
        );
    }

    #[test]
    fn retry_backoff_is_capped() {
        let r = Retry {
            attempts: 10,
            interval: Duration::from_secs(1),
            backoff: 2.0,
            max_interval: Duration::from_secs(5),
        };
        let waits: Vec<u64> = (1..=5).map(|a| r.wait_after(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
    }
}

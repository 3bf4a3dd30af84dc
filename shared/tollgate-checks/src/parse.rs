//! Readers for spec values that keep track of the field path, so every error
//! says where it is (`checks[2].retry.interval`) and what was found there.

use super::error::SpecError;
use serde_json::{Map, Value};
use std::time::Duration;

/// `parent.key`, or `key` at the root.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// How a value is shown after "got": strings quoted, others as compact JSON,
/// cut to 80 chars. For values the checked service answered; a value of the
/// user's own document goes through [`shown_in_doc`].
pub(crate) fn shown(v: &Value) -> String {
    let text = match v {
        Value::String(s) => return super::template::quote(s),
        Value::Array(_) | Value::Object(_) => v.to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        let mut cut: String = text.chars().take(80).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

/// The longest string of the user's document an error message quotes (and
/// only one without white space: `Bearer …` never is).
const SHOWN_STRING_MAX: usize = 12;

/// How a value of the spec itself is shown in a parse error: short strings,
/// numbers and booleans as they are; long strings, lists and mappings by
/// their size only. A long string may be a token, a list or mapping may
/// hold one (issue 14.5: errors never quote the document beyond a short
/// value).
pub(crate) fn shown_in_doc(v: &Value) -> String {
    match v {
        Value::String(s)
            if s.chars().count() > SHOWN_STRING_MAX || s.chars().any(char::is_whitespace) =>
        {
            format!("a string of {} characters", s.chars().count())
        }
        Value::Array(items) => format!("a list of {} items", items.len()),
        Value::Object(map) => format!("a mapping of {} keys", map.len()),
        other => shown(other),
    }
}

/// The error "expected WHAT, got VALUE".
pub(crate) fn expected(path: &str, what: &str, got: &Value) -> SpecError {
    SpecError::invalid(path, format!("expected {what}, got {}", shown_in_doc(got)))
}

/// A mapping whose keys must all be in `allowed`.
pub(crate) fn object<'a>(
    v: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, SpecError> {
    let Value::Object(map) = v else {
        return Err(expected(path, "a mapping", v));
    };
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(unknown_field(&child(path, key), key, allowed));
        }
    }
    Ok(map)
}

/// "unknown field; expected one of …", with a suggestion for near misses.
pub(crate) fn unknown_field(path: &str, key: &str, allowed: &[&str]) -> SpecError {
    let mut message = format!("unknown field; expected one of: {}", allowed.join(", "));
    if let Some(near) = tollgate_core::text::did_you_mean(key, allowed) {
        message = format!(
            "unknown field (did you mean \"{near}\"?); expected one of: {}",
            allowed.join(", ")
        );
    }
    SpecError::invalid(path, message)
}

/// A string.
pub(crate) fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, SpecError> {
    v.as_str().ok_or_else(|| expected(path, "a string", v))
}

/// A string, or a number / boolean written as text (YAML users write
/// `x-version: 2` and mean the text "2").
pub(crate) fn scalar_text(v: &Value, path: &str) -> Result<String, SpecError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(expected(path, "a string", other)),
    }
}

/// One string or a list of strings.
pub(crate) fn strings(v: &Value, path: &str) -> Result<Vec<(String, String)>, SpecError> {
    match v {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let p = index(path, i);
                scalar_text(item, &p).map(|s| (s, p))
            })
            .collect(),
        Value::Array(_) => Err(SpecError::invalid(
            path,
            "expected a string or a non-empty list of strings, got []",
        )),
        other => scalar_text(other, path)
            .map(|s| vec![(s, path.to_owned())])
            .map_err(|_| expected(path, "a string or a list of strings", other)),
    }
}

/// `true` or `false`.
pub(crate) fn boolean(v: &Value, path: &str) -> Result<bool, SpecError> {
    v.as_bool()
        .ok_or_else(|| expected(path, "true or false", v))
}

/// A whole number in `min..=max`.
pub(crate) fn integer(v: &Value, path: &str, min: u64, max: u64) -> Result<u64, SpecError> {
    let n = v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .map(|f| f as u64)
    });
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(expected(
            path,
            &format!("a whole number from {min} to {max}"),
            v,
        )),
    }
}

/// A number in `min..=max`.
pub(crate) fn number(v: &Value, path: &str, min: f64, max: f64) -> Result<f64, SpecError> {
    match v.as_f64() {
        Some(n) if n >= min && n <= max => Ok(n),
        _ => Err(expected(path, &format!("a number from {min} to {max}"), v)),
    }
}

/// A duration written with a unit: `250ms`, `2s`, `1.5s`, `1m30s`, `1h`.
pub(crate) fn duration(v: &Value, path: &str) -> Result<Duration, SpecError> {
    let what = "a duration with a unit like \"500ms\", \"2s\" or \"1m30s\"";
    let Value::String(s) = v else {
        return Err(expected(path, what, v));
    };
    parse_duration(s).ok_or_else(|| expected(path, what, v))
}

/// A duration within `max`.
pub(crate) fn duration_max(
    v: &Value,
    path: &str,
    max: Duration,
    max_text: &str,
) -> Result<Duration, SpecError> {
    let d = duration(v, path)?;
    if d > max {
        return Err(SpecError::invalid(
            path,
            format!("{} is too long; the maximum is {max_text}", shown_in_doc(v)),
        ));
    }
    Ok(d)
}

/// Parses `250ms`, `2s`, `1.5s`, `1m30s`, `2h`, `0s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let seconds = match unit {
            "ms" => number / 1000.0,
            "s" => number,
            "m" | "min" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        total += seconds;
    }
    if !total.is_finite() || total > 86_400.0 * 7.0 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// A byte size: a whole number of bytes, or `512KiB`, `1MiB`, `2MB`.
pub(crate) fn size(v: &Value, path: &str, max: usize) -> Result<usize, SpecError> {
    let what = "a size like \"1MiB\", \"256KiB\" or a number of bytes";
    let bytes = match v {
        Value::Number(_) => v.as_u64(),
        Value::String(s) => parse_size(s),
        _ => None,
    };
    let Some(bytes) = bytes.and_then(|b| usize::try_from(b).ok()) else {
        return Err(expected(path, what, v));
    };
    if bytes == 0 || bytes > max {
        return Err(SpecError::invalid(
            path,
            format!(
                "{} is out of range; use 1 byte to {} MiB",
                shown_in_doc(v),
                max / (1024 * 1024)
            ),
        ));
    }
    Ok(bytes)
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..split].parse().ok()?;
    let mult: u64 = match text[split..].trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A pass rate: `"95%"` or a fraction `0.95`.
pub(crate) fn rate(v: &Value, path: &str) -> Result<f64, SpecError> {
    let what = "a percentage like \"95%\" or a fraction like 0.95";
    let r = match v {
        Value::Number(n) => n.as_f64().filter(|f| *f <= 1.0),
        Value::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .map(|p| p / 100.0),
        _ => None,
    };
    match r {
        Some(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(expected(path, what, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "5 sec", "1x", "-1s", "1..2s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(size(&json!("1MiB"), "p", 1 << 30).expect("ok"), 1 << 20);
        assert_eq!(size(&json!(4096), "p", 1 << 30).expect("ok"), 4096);
        assert!(size(&json!("1 GB"), "p", 1 << 30).is_err());
        assert!((rate(&json!("95%"), "p").expect("ok") - 0.95).abs() < 1e-9);
        assert!((rate(&json!(0.5), "p").expect("ok") - 0.5).abs() < 1e-9);
        assert!(rate(&json!(95), "p").is_err());
        assert!(rate(&json!("0%"), "p").is_err());
    }

    #[test]
    fn unknown_fields_suggest_the_near_miss() {
        let e = object(
            &json!({"atempts": 3}),
            "checks[0].retry",
            &["attempts", "interval"],
        )
        .expect_err("typo");
        let text = e.to_string();
        assert!(
            text.starts_with("checks[0].retry.atempts: unknown field (did you mean \"attempts\"?)"),
            "{text}"
        );
    }
}

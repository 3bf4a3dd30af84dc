//! Results: per check and per run, as structured data (serde) and as text
//! fitted to CodePipeline's limits (2048-char summary, 5000-char failure
//! message).
//!
//! Secret values never reach these types: the engine scrubs every text
//! before it builds them.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use tollgate_core::text::truncate;

/// One expectation, evaluated: expected vs actual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// What was tested: `status`, `header content-type`, `json $.status`,
    /// `body`, `latency`, `samples`, or `request` (a transport failure).
    pub what: String,
    /// The expectation, e.g. `200-299`, `contains "ok"`, `<= 500 ms`.
    pub expected: String,
    /// What the response had, e.g. `503`, `"text/html"`, `812 ms`.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
}

impl ExpectationResult {
    pub(crate) fn new(
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
        passed: bool,
    ) -> Self {
        Self {
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
            passed,
        }
    }

    /// One phrase: `status 503 (expected 200-299)`; a transport failure is
    /// its own text (`connection refused by 127.0.0.1:9 (…)`).
    pub fn describe(&self) -> String {
        if self.what == "request" {
            self.actual.clone()
        } else {
            format!("{} {} (expected {})", self.what, self.actual, self.expected)
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// An attempt met every expectation.
    Passed,
    /// Every attempt failed.
    Failed,
    /// Cut short by the deadline or by `fail_fast`; `reason` says which.
    NotFinished,
}

/// The pass counts of a sampled attempt (`samples` above 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleStats {
    /// Requests sent in the attempt.
    pub sent: u32,
    /// Requests whose expectations all held.
    pub passed: u32,
    /// Samples planned for the attempt.
    pub planned: u32,
    /// Passes needed (`ceil(min_pass_rate * planned)`).
    pub required: u32,
    /// The configured rate, 0..=1.
    pub min_pass_rate: f64,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// How it ended.
    pub status: CheckStatus,
    /// Why it did not finish (`deadline reached …`, `stopped by fail_fast …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// HTTP method.
    pub method: String,
    /// The URL requested (secrets redacted).
    pub url: String,
    /// Attempts started (retries included).
    pub attempts: u32,
    /// Requests sent (attempts × samples, redirects not counted).
    pub requests: u32,
    /// Latency of every response received, in order (ms, 0.1 ms precision).
    pub latencies_ms: Vec<f64>,
    /// Status code of the last response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Sample counts of the last attempt, when sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<SampleStats>,
    /// Every expectation of the last attempt (for a failed sampled attempt:
    /// the sample counts, then the first failing sample's expectations).
    pub expectations: Vec<ExpectationResult>,
    /// Time from the check's start to its end (initial delay included).
    pub elapsed_ms: f64,
}

impl CheckResult {
    /// The expectations that did not hold.
    pub fn failures(&self) -> impl Iterator<Item = &ExpectationResult> {
        self.expectations.iter().filter(|e| !e.passed)
    }

    /// The latency of the last response.
    pub fn last_latency_ms(&self) -> Option<f64> {
        self.latencies_ms.last().copied()
    }

    /// One phrase saying why the check did not pass (empty when it passed).
    pub fn headline(&self) -> String {
        let failures: Vec<&ExpectationResult> = self.failures().collect();
        let mut text = match self.status {
            CheckStatus::Passed => return String::new(),
            CheckStatus::Failed => String::new(),
            CheckStatus::NotFinished => self
                .reason
                .clone()
                .unwrap_or_else(|| "not finished".to_owned()),
        };
        if let Some(first) = failures.first() {
            if !text.is_empty() {
                text.push_str("; last attempt: ");
            }
            text.push_str(&first.describe());
            if failures.len() > 1 {
                let _ = write!(text, ", +{} more", failures.len() - 1);
            }
        }
        if self.status == CheckStatus::Failed && self.attempts > 1 {
            let _ = write!(text, ", after {} attempts", self.attempts);
        }
        text
    }
}

/// How the whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every check passed.
    Passed,
    /// At least one check failed.
    Failed,
    /// Nothing failed, but some checks did not finish (deadline).
    NotFinished,
}

/// The result of one run of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Overall outcome; only [`Outcome::Passed`] should let a deployment go on.
    pub outcome: Outcome,
    /// Number of checks.
    pub total: usize,
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
    /// Checks cut short (deadline or fail_fast).
    pub unfinished: usize,
    /// True when the deadline stopped the run.
    pub deadline_reached: bool,
    /// The check whose failure stopped the run, with `fail_fast`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// Wall time of the run.
    pub elapsed_ms: f64,
    /// Requests sent.
    pub requests: u32,
    /// Median response latency over all requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 95th percentile response latency over all requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Per check, in spec order.
    pub checks: Vec<CheckResult>,
}

/// Nearest-rank percentile of unsorted values.
pub(crate) fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{} ms", v.round())
    }
}

fn secs(v: f64) -> String {
    if v < 1000.0 {
        ms(v)
    } else {
        format!("{:.1} s", v / 1000.0)
    }
}

impl RunReport {
    /// True only when every check passed.
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Passed
    }

    /// A one-line summary of at most `max_chars` characters (CodePipeline's
    /// summary takes 2048), e.g.
    /// `7/8 passed; FAIL checkout: status 503 (expected 200-299)`.
    /// Failures come first, then unfinished checks; those that do not fit
    /// are counted (`; +3 more`).
    pub fn summary_line(&self, max_chars: usize) -> String {
        let mut head = format!("{}/{} passed", self.passed, self.total);
        if self.unfinished > 0 {
            let _ = write!(head, ", {} not finished", self.unfinished);
        }
        if self.is_success() {
            let _ = write!(head, " in {}", secs(self.elapsed_ms));
            if let Some(p95) = self.p95_ms {
                let _ = write!(head, " (p95 {})", ms(p95));
            }
            return truncate(&head, max_chars);
        }
        let mut parts: Vec<String> = Vec::new();
        for c in self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
        {
            parts.push(format!("FAIL {}: {}", c.name, c.headline()));
        }
        for c in self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::NotFinished)
        {
            parts.push(format!("NOT FINISHED {}: {}", c.name, c.headline()));
        }
        let mut line = head;
        let total = parts.len();
        for (i, part) in parts.iter().enumerate() {
            let rest = total - i - 1;
            let tail = if rest > 0 {
                format!("; +{rest} more")
            } else {
                String::new()
            };
            let candidate_len =
                line.chars().count() + 2 + part.chars().count() + tail.chars().count();
            if candidate_len <= max_chars {
                line.push_str("; ");
                line.push_str(part);
                continue;
            }
            // Does not fit whole: cut this part to the room left, if useful.
            let more = total - i;
            let more_tail = if more > 1 {
                format!("; +{} more", more - 1)
            } else {
                String::new()
            };
            let room =
                max_chars.saturating_sub(line.chars().count() + 2 + more_tail.chars().count());
            if room >= 40 {
                line.push_str("; ");
                line.push_str(&truncate(part, room));
                line.push_str(&more_tail);
            } else {
                let _ = write!(line, "; +{more} more");
            }
            break;
        }
        truncate(&line, max_chars)
    }

    /// Every failed expectation of every failed or unfinished check, expected
    /// vs actual, fitted into `max_chars` characters (CodePipeline's failure
    /// message takes 5000). Checks that do not fit are counted at the end.
    pub fn failure_details(&self, max_chars: usize) -> String {
        let bad: Vec<&CheckResult> = self
            .checks
            .iter()
            .filter(|c| c.status != CheckStatus::Passed)
            .collect();
        let mut out = self.summary_line(300.min(max_chars));
        if bad.is_empty() {
            return out;
        }
        let blocks: Vec<String> = bad.iter().map(|c| check_block(c)).collect();
        for (i, block) in blocks.iter().enumerate() {
            let left = blocks.len() - i - 1;
            let reserve = if left > 0 { 40 } else { 0 };
            let room = max_chars.saturating_sub(out.chars().count() + 1 + reserve);
            if block.chars().count() <= room {
                out.push('\n');
                out.push_str(block);
            } else if room >= 80 {
                out.push('\n');
                out.push_str(&truncate(block, room));
            } else {
                let _ = write!(out, "\n… {} more check(s) not shown", blocks.len() - i);
                break;
            }
        }
        truncate(&out, max_chars)
    }

    /// A readable table: check, result, attempts, latency, failed
    /// expectations; then the summary line.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .checks
            .iter()
            .map(|c| {
                let result = match c.status {
                    CheckStatus::Passed => "pass",
                    CheckStatus::Failed => "FAIL",
                    CheckStatus::NotFinished => "NOT FINISHED",
                };
                let latency = match (&c.samples, c.last_latency_ms()) {
                    (Some(_), Some(_)) => {
                        let mut l = c.latencies_ms.clone();
                        percentile(&mut l, 95.0)
                            .map(|p| format!("p95 {}", ms(p)))
                            .unwrap_or_default()
                    }
                    (None, Some(l)) => ms(l),
                    (_, None) => "-".to_owned(),
                };
                let mut failed: Vec<String> =
                    c.failures().map(ExpectationResult::describe).collect();
                if c.status == CheckStatus::NotFinished {
                    failed.insert(0, c.reason.clone().unwrap_or_default());
                }
                let name: String = if c.name.chars().count() > 40 {
                    c.name.chars().take(39).chain(['…']).collect()
                } else {
                    c.name.clone()
                };
                [
                    name,
                    result.to_owned(),
                    c.attempts.to_string(),
                    latency,
                    failed.join("\n"),
                ]
            })
            .collect();
        let header = [
            "CHECK",
            "RESULT",
            "ATTEMPTS",
            "LATENCY",
            "FAILED EXPECTATIONS",
        ];
        let mut width = header.map(|h| h.chars().count());
        for row in &rows {
            for (i, cell) in row.iter().enumerate().take(4) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let indent: usize = width.iter().take(4).map(|w| w + 2).sum();
        let mut out = String::new();
        let line = |cells: [&str; 5], out: &mut String| {
            for (i, cell) in cells.iter().enumerate().take(4) {
                let _ = write!(out, "{cell:<w$}  ", w = width[i]);
            }
            let mut lines = cells[4].lines();
            if let Some(l) = lines.next() {
                out.push_str(l);
            }
            for l in lines {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                out.push_str(l);
            }
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
            out.push('\n');
        };
        line(header, &mut out);
        for row in &rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4]], &mut out);
        }
        out.push_str(&self.summary_line(2048));
        out.push('\n');
        out
    }
}

fn check_block(c: &CheckResult) -> String {
    let mut out = String::new();
    let label = match c.status {
        CheckStatus::Passed => "PASS",
        CheckStatus::Failed => "FAIL",
        CheckStatus::NotFinished => "NOT FINISHED",
    };
    let _ = write!(out, "{label} {} ({} {}): ", c.name, c.method, c.url);
    let _ = write!(
        out,
        "{} attempt{}",
        c.attempts,
        if c.attempts == 1 { "" } else { "s" }
    );
    if let Some(l) = c.last_latency_ms() {
        let _ = write!(out, ", last response {}", ms(l));
    }
    if let Some(reason) = &c.reason {
        let _ = write!(out, "; {reason}");
    }
    for e in c.failures() {
        if e.what == "request" {
            let _ = write!(out, "\n  - {}", e.actual);
        } else {
            let _ = write!(
                out,
                "\n  - {}: expected {}, got {}",
                e.what, e.expected, e.actual
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, status: CheckStatus, failures: usize) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            status,
            reason: (status == CheckStatus::NotFinished).then(|| "deadline reached".to_owned()),
            method: "GET".into(),
            url: format!("http://127.0.0.1:1/{name}"),
            attempts: 3,
            requests: 3,
            latencies_ms: vec![10.0, 20.0, 30.0],
            http_status: Some(503),
            samples: None,
            expectations: (0..failures)
                .map(|i| ExpectationResult::new("status", "200-299", format!("50{i}"), false))
                .collect(),
            elapsed_ms: 100.0,
        }
    }

    fn report(checks: Vec<CheckResult>) -> RunReport {
        let passed = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Passed)
            .count();
        let failed = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
            .count();
        let unfinished = checks.len() - passed - failed;
        RunReport {
            outcome: if failed > 0 {
                Outcome::Failed
            } else if unfinished > 0 {
                Outcome::NotFinished
            } else {
                Outcome::Passed
            },
            total: checks.len(),
            passed,
            failed,
            unfinished,
            deadline_reached: unfinished > 0,
            stopped_by: None,
            elapsed_ms: 1234.0,
            requests: 9,
            p50_ms: Some(20.0),
            p95_ms: Some(30.0),
            checks,
        }
    }

    #[test]
    fn summary_names_the_failure() {
        let r = report(vec![
            check("health", CheckStatus::Passed, 0),
            check("checkout", CheckStatus::Failed, 1),
        ]);
        assert_eq!(
            r.summary_line(2048),
            "1/2 passed; FAIL checkout: status 500 (expected 200-299), after 3 attempts"
        );
        let ok = report(vec![check("health", CheckStatus::Passed, 0)]);
        assert_eq!(ok.summary_line(2048), "1/1 passed in 1.2 s (p95 30 ms)");
    }

    #[test]
    fn summary_fits_and_counts_what_is_left_out() {
        let checks: Vec<CheckResult> = (0..200)
            .map(|i| check(&format!("check-number-{i}"), CheckStatus::Failed, 2))
            .collect();
        let r = report(checks);
        for max in [60, 200, 2048] {
            let line = r.summary_line(max);
            assert!(line.chars().count() <= max, "{max}: {}", line.len());
            assert!(line.starts_with("0/200 passed"), "{line}");
            assert!(line.contains("more"), "{line}");
        }
        let details = r.failure_details(5000);
        assert!(details.chars().count() <= 5000);
        assert!(
            details.contains("  - status: expected 200-299, got 500"),
            "{details}"
        );
        assert!(details.contains("more check(s) not shown"), "{details}");
    }

    #[test]
    fn table_lists_every_check() {
        let r = report(vec![
            check("health", CheckStatus::Passed, 0),
            check("checkout", CheckStatus::Failed, 2),
            check("search", CheckStatus::NotFinished, 0),
        ]);
        let t = r.table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("CHECK"), "{t}");
        assert!(lines[1].starts_with("health    pass"), "{t}");
        assert!(
            lines[2].contains("FAIL") && lines[2].ends_with("status 500 (expected 200-299)"),
            "{t}"
        );
        assert!(lines[3].trim_start().starts_with("status 501"), "{t}");
        assert!(
            t.contains("NOT FINISHED  3         30 ms    deadline reached"),
            "{t}"
        );
    }

    #[test]
    fn percentile_nearest_rank() {
        let mut v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 95.0), Some(19.0));
        assert_eq!(percentile(&mut v, 50.0), Some(10.0));
        assert_eq!(percentile(&mut [], 95.0), None);
    }
}

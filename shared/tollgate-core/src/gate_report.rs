//! The result of a metric gate that did not pass, as text: what the gate
//! writes (the pipeline action's failure message, the deploy hook's failure
//! record, the `tollgate gate` CLI) and what the notifier reads back to show
//! the failing measurement as a section of its own.
//!
//! A line format, so it also reads well where it is shown raw (CodePipeline's
//! console, logs):
//!
//! ```text
//! metric gate failed: p99 812 ms > 600 ms in 3 of 5 measurements; 5xx rate 2.1 % > 1 % in 2 of 5 measurements
//! - p99 812 ms > 600 ms in 3 of 5 measurements
//! - 5xx rate 2.1 % > 1 % in 2 of 5 measurements
//! last measurement (5 of 5) failed: requests 812, 5xx rate 2.1 %, p99 812 ms
//! measurements: 2 successful, 3 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 5 of 5 taken
//! what to do: the new version stays out; fix it and release again, or change the gate spec if the limit is wrong
//! ```
//!
//! The first line alone says what failed (one-line previews show only it);
//! the `- ` lines are there when more than one thing failed. Every field is
//! bounded ([`GateReport::to_text`] keeps the whole under [`MAX_TEXT`]
//! characters), so the text fits a CodePipeline summary (2,048), a failure
//! message (5,000) and a hook-failure record (4 KB).
//!
//! Every field comes from a user's spec (query names, units, alarm names)
//! or from CloudWatch: renderers treat all of it as user text.

use crate::text::ellipsize;

/// The first line starts with this.
pub const HEAD: &str = "metric gate ";
/// The whole text at most (characters).
pub const MAX_TEXT: usize = 2000;
/// One line at most (characters).
pub const MAX_LINE: usize = 400;
/// Findings listed at most; the rest are counted.
pub const MAX_FINDINGS: usize = 12;

const LAST: &str = "last measurement";
const TALLY: &str = "measurements: ";
const ADVICE: &str = "what to do: ";

/// How the gate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateOutcome {
    /// Measurements missed their conditions (or an alarm fired).
    Failed,
    /// Not enough data to decide, and inconclusive fails the gate.
    Inconclusive,
    /// CloudWatch could not be read, too many times in a row.
    CouldNotMeasure,
    /// The bake did not finish within its time budget.
    OutOfTime,
}

impl GateOutcome {
    /// The words after "metric gate ".
    pub fn phrase(self) -> &'static str {
        match self {
            GateOutcome::Failed => "failed",
            GateOutcome::Inconclusive => "inconclusive",
            GateOutcome::CouldNotMeasure => "could not measure",
            GateOutcome::OutOfTime => "ran out of time",
        }
    }

    /// A title: "Metric gate failed".
    pub fn title(self) -> String {
        format!("Metric gate {}", self.phrase())
    }

    const ALL: [GateOutcome; 4] = [
        GateOutcome::Failed,
        GateOutcome::Inconclusive,
        GateOutcome::CouldNotMeasure,
        GateOutcome::OutOfTime,
    ];
}

/// A gate's failure, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateReport {
    /// How it ended.
    pub outcome: GateOutcome,
    /// The most telling sentence ("p99 812 ms > 600 ms in 3 of 5 measurements").
    pub headline: String,
    /// What failed, one sentence each, when more than one thing did.
    pub findings: Vec<String>,
    /// Findings left out of [`GateReport::findings`].
    pub omitted: usize,
    /// The last measurement: "(5 of 5) failed: requests 812, p99 812 ms".
    pub last: Option<String>,
    /// The tallies: "2 successful, 3 failed (limit 0), …; 5 of 5 taken".
    pub tally: Option<String>,
    /// What to do.
    pub advice: Option<String>,
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    ellipsize(flat.trim(), max)
}

impl GateReport {
    /// A report from what failed: the headline is every finding when they
    /// fit on a line, else the first and how many more.
    pub fn new(outcome: GateOutcome, findings: Vec<String>, fallback: &str) -> GateReport {
        let findings: Vec<String> = findings.iter().map(|f| one_line(f, MAX_LINE)).collect();
        let joined = findings.join("; ");
        let headline = match findings.len() {
            0 => one_line(fallback, MAX_LINE),
            1 => findings[0].clone(),
            _ if joined.chars().count() <= 240 => joined,
            n => format!(
                "{} (and {} more)",
                ellipsize(&findings[0], MAX_LINE - 20),
                n - 1
            ),
        };
        let omitted = findings.len().saturating_sub(MAX_FINDINGS);
        let findings = if findings.len() > 1 {
            findings.into_iter().take(MAX_FINDINGS).collect()
        } else {
            Vec::new()
        };
        GateReport {
            outcome,
            headline,
            findings,
            omitted,
            last: None,
            tally: None,
            advice: None,
        }
    }

    /// The first line.
    pub fn first_line(&self) -> String {
        format!("{HEAD}{}: {}", self.outcome.phrase(), self.headline)
    }

    /// The text, at most [`MAX_TEXT`] characters: findings are dropped
    /// from the end (and counted) before anything else is cut.
    pub fn to_text(&self) -> String {
        let mut findings = self.findings.clone();
        let mut omitted = self.omitted;
        loop {
            let text = self.render(&findings, omitted);
            if text.chars().count() <= MAX_TEXT || findings.is_empty() {
                return ellipsize(&text, MAX_TEXT);
            }
            findings.pop();
            omitted += 1;
        }
    }

    fn render(&self, findings: &[String], omitted: usize) -> String {
        let mut lines = vec![one_line(&self.first_line(), MAX_LINE + 40)];
        for f in findings {
            lines.push(format!("- {}", one_line(f, MAX_LINE)));
        }
        if omitted > 0 {
            lines.push(format!("- … and {omitted} more"));
        }
        if let Some(l) = &self.last {
            lines.push(one_line(&format!("{LAST} {l}"), MAX_LINE));
        }
        if let Some(t) = &self.tally {
            lines.push(one_line(&format!("{TALLY}{t}"), MAX_LINE));
        }
        if let Some(a) = &self.advice {
            lines.push(one_line(&format!("{ADVICE}{a}"), MAX_LINE));
        }
        lines.join("\n")
    }

    /// Reads a report back from [`GateReport::to_text`]'s output.
    pub fn parse(text: &str) -> Option<GateReport> {
        Self::find(text).map(|(r, _)| r)
    }

    /// Finds a report in a longer text (a failure reason with a prefix such
    /// as `Deploy › Gate failed: `, or other lines around it). Returns the
    /// report and the text with the report's block reduced to its first
    /// line (the prefix and the other lines kept).
    pub fn find(text: &str) -> Option<(GateReport, String)> {
        let lines: Vec<&str> = text.lines().collect();
        let (start, prefix, outcome, headline) =
            lines.iter().enumerate().find_map(|(i, line)| {
                let at = line.find(HEAD)?;
                let (prefix, rest) = line.split_at(at);
                let rest = &rest[HEAD.len()..];
                GateOutcome::ALL.iter().find_map(|o| {
                    let headline = rest.strip_prefix(o.phrase())?.strip_prefix(": ")?;
                    Some((i, prefix, *o, headline))
                })
            })?;
        let mut report = GateReport {
            outcome,
            headline: headline.trim().to_owned(),
            findings: Vec::new(),
            omitted: 0,
            last: None,
            tally: None,
            advice: None,
        };
        let mut end = start + 1;
        for line in &lines[start + 1..] {
            if let Some(f) = line.strip_prefix("- ") {
                if let Some(n) = f
                    .strip_prefix("… and ")
                    .and_then(|r| r.strip_suffix(" more"))
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    report.omitted = n;
                } else {
                    report.findings.push(f.trim().to_owned());
                }
            } else if let Some(l) = line.strip_prefix(LAST) {
                report.last = Some(l.trim().to_owned());
            } else if let Some(t) = line.strip_prefix(TALLY) {
                report.tally = Some(t.trim().to_owned());
            } else if let Some(a) = line.strip_prefix(ADVICE) {
                report.advice = Some(a.trim().to_owned());
            } else {
                break;
            }
            end += 1;
        }
        let mut rest: Vec<String> = lines[..start].iter().map(|l| (*l).to_owned()).collect();
        rest.push(format!("{prefix}{}", report.first_line()).trim().to_owned());
        rest.extend(lines[end..].iter().map(|l| (*l).to_owned()));
        Some((report, rest.join("\n").trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GateReport {
        let mut r = GateReport::new(
            GateOutcome::Failed,
            vec![
                "p99 812 ms > 600 ms in 3 of 5 measurements".into(),
                "5xx rate 2.1 % > 1 % in 2 of 5 measurements".into(),
            ],
            "",
        );
        r.last = Some("(5 of 5) failed: requests 812, p99 812 ms".into());
        r.tally = Some("2 successful, 3 failed (limit 0); 5 of 5 taken".into());
        r.advice = Some("fix it and release again".into());
        r
    }

    #[test]
    fn text_reads_back_field_by_field() {
        let r = sample();
        let text = r.to_text();
        assert_eq!(
            text,
            "metric gate failed: p99 812 ms > 600 ms in 3 of 5 measurements; 5xx rate 2.1 % > 1 % in 2 of 5 measurements\n\
             - p99 812 ms > 600 ms in 3 of 5 measurements\n\
             - 5xx rate 2.1 % > 1 % in 2 of 5 measurements\n\
             last measurement (5 of 5) failed: requests 812, p99 812 ms\n\
             measurements: 2 successful, 3 failed (limit 0); 5 of 5 taken\n\
             what to do: fix it and release again"
        );
        assert_eq!(GateReport::parse(&text), Some(r));
    }

    #[test]
    fn one_finding_is_the_headline_alone() {
        let r = GateReport::new(
            GateOutcome::Failed,
            vec!["p99 812 ms > 600 ms in 1 of 1 measurements".into()],
            "",
        );
        assert!(r.findings.is_empty());
        assert_eq!(
            r.to_text(),
            "metric gate failed: p99 812 ms > 600 ms in 1 of 1 measurements"
        );
        assert_eq!(GateReport::parse(&r.to_text()), Some(r));
    }

    #[test]
    fn found_inside_a_relayed_reason_with_the_rest_kept() {
        let text = format!(
            "Deploy › Gate failed: {}\nsomething else",
            sample().to_text()
        );
        let (r, rest) = GateReport::find(&text).expect("found");
        assert_eq!(r, sample());
        assert_eq!(
            rest,
            format!(
                "Deploy › Gate failed: {}\nsomething else",
                sample().first_line()
            )
        );
        assert!(GateReport::find("metric gate baking: 0 of 3").is_none());
        assert!(GateReport::find("the metric gate cannot run: gate.count").is_none());
    }

    #[test]
    fn bounded_whatever_the_findings() {
        let long = "x".repeat(5000);
        let mut r = GateReport::new(
            GateOutcome::Failed,
            (0..30).map(|i| format!("{i} {long}")).collect(),
            "",
        );
        r.last = Some(long.clone());
        r.tally = Some(long.clone());
        r.advice = Some("line\nbreak".into());
        let text = r.to_text();
        assert!(text.chars().count() <= MAX_TEXT, "{}", text.chars().count());
        let back = GateReport::parse(&text).expect("parses");
        assert_eq!(back.findings.len() + back.omitted, 30);
        assert!(back.omitted >= 30 - MAX_FINDINGS);
        assert_eq!(
            back.advice.as_deref(),
            Some("line break"),
            "no line break inside a field"
        );
    }
}

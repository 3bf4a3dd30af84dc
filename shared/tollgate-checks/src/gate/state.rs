//! The running verdict of a gate: what the measurements so far add up to,
//! small enough to travel in a continuation token (2048 characters) or ECS
//! `hookDetails`, and the sentences that report it.

use super::measure::{Measurement, Outcome, relative_text};
use super::spec::{GateSpec, Rule};
use serde::{Deserialize, Serialize};

/// The verdict so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// More measurements to take.
    Running,
    /// Every measurement within the limits, all taken.
    Successful,
    /// More failed measurements than `failure_limit`.
    Failed,
    /// More inconclusive measurements than `inconclusive_limit`.
    Inconclusive,
    /// More consecutive errors than `consecutive_error_limit`.
    Error,
}

impl Verdict {
    /// Whether the analysis is over.
    pub fn is_final(self) -> bool {
        self != Verdict::Running
    }

    /// Whether the gate lets the release through (inconclusive only when the
    /// spec says `inconclusive: pass`).
    pub fn passes(self, spec: &GateSpec) -> bool {
        match self {
            Verdict::Successful => true,
            Verdict::Inconclusive => spec.inconclusive_passes,
            _ => false,
        }
    }

    /// Lowercase word.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Running => "running",
            Verdict::Successful => "successful",
            Verdict::Failed => "failed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
        }
    }
}

/// Per condition: how often it was missed and its worst miss.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CondStat {
    /// Measurements in which it was missed.
    #[serde(rename = "f")]
    pub fails: u32,
    /// The worst missed value.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<f64>,
    /// The limit at the worst miss.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// The baseline at the worst miss (relative conditions).
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
}

/// The measurements so far. Serialized with short keys (`to_json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateState {
    /// When the bake started, epoch seconds.
    #[serde(rename = "t0")]
    pub started_at: i64,
    /// One letter per measurement: S, F, I, E.
    #[serde(rename = "o")]
    pub outcomes: String,
    /// Per condition, in spec order.
    #[serde(rename = "c")]
    pub conditions: Vec<CondStat>,
    /// Alarms seen in ALARM (names, at most 5).
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    /// The last measurement's reason, cut to 300 characters.
    #[serde(rename = "r", default)]
    pub last_reason: String,
}

impl GateState {
    /// A bake starting at `now`.
    pub fn new(spec: &GateSpec, now: i64) -> Self {
        GateState {
            started_at: now,
            outcomes: String::new(),
            conditions: vec![CondStat::default(); spec.conditions.len()],
            alarms: Vec::new(),
            last_reason: String::new(),
        }
    }

    /// Measurements taken.
    pub fn taken(&self) -> u32 {
        u32::try_from(self.outcomes.len()).unwrap_or(u32::MAX)
    }

    fn count(&self, o: Outcome) -> u32 {
        u32::try_from(self.outcomes.chars().filter(|c| *c == o.letter()).count())
            .unwrap_or(u32::MAX)
    }

    /// Errors at the end of the list, in a row.
    pub fn consecutive_errors(&self) -> u32 {
        u32::try_from(
            self.outcomes
                .chars()
                .rev()
                .take_while(|c| *c == 'E')
                .count(),
        )
        .unwrap_or(u32::MAX)
    }

    /// When the next measurement is due (epoch seconds): one interval after
    /// the start for the first, and so on.
    pub fn next_due(&self, spec: &GateSpec) -> i64 {
        let interval = i64::try_from(spec.interval.as_secs()).unwrap_or(i64::MAX);
        self.started_at + interval * (i64::from(self.taken()) + 1)
    }

    /// Percentage of the bake done (0..=100).
    pub fn percent(&self, spec: &GateSpec) -> u8 {
        u8::try_from((u64::from(self.taken()) * 100 / u64::from(spec.count.max(1))).min(100))
            .unwrap_or(100)
    }

    /// Adds a measurement.
    pub fn record(&mut self, m: &Measurement) {
        self.outcomes.push(m.outcome.letter());
        self.conditions.resize(
            self.conditions.len().max(m.checks.len()),
            CondStat::default(),
        );
        for c in &m.checks {
            let (Some(false), Some(v), Some(l)) = (c.passed, c.value, c.limit) else {
                continue;
            };
            let Some(stat) = self.conditions.get_mut(c.condition) else {
                continue;
            };
            stat.fails += 1;
            let excess = (v - l).abs();
            let worse = match (stat.worst, stat.limit) {
                (Some(w), Some(wl)) => excess > (w - wl).abs(),
                _ => true,
            };
            if worse {
                stat.worst = Some(v);
                stat.limit = Some(l);
                stat.baseline = c.baseline;
            }
        }
        for (name, _) in &m.alarms {
            if !self.alarms.contains(name) && self.alarms.len() < 5 {
                self.alarms.push(name.clone());
            }
        }
        self.last_reason = tollgate_core::text::ellipsize(&m.reason, 300);
    }

    /// Argo Rollouts' rules: failed past `failure_limit`, errored past
    /// `consecutive_error_limit`, inconclusive past `inconclusive_limit`
    /// (decided early only when inconclusive fails the gate), else running
    /// until `count` measurements, then successful, unless the
    /// inconclusive and errored measurements together exceed
    /// `inconclusive_limit` (an unread measurement is not a good one) or
    /// none was successful.
    pub fn verdict(&self, spec: &GateSpec) -> Verdict {
        if self.count(Outcome::Failed) > spec.failure_limit {
            return Verdict::Failed;
        }
        if self.consecutive_errors() > spec.consecutive_error_limit {
            return Verdict::Error;
        }
        let inconclusive = self.count(Outcome::Inconclusive) > spec.inconclusive_limit;
        if inconclusive && !spec.inconclusive_passes {
            return Verdict::Inconclusive;
        }
        if self.taken() < spec.count {
            return Verdict::Running;
        }
        if self.count(Outcome::Error) == self.taken() {
            // Nothing was ever measured: never a pass.
            return Verdict::Error;
        }
        // At the end, a measurement that could not be read is not known to
        // be good: it counts as inconclusive. And a bake with no successful
        // measurement at all (every one inconclusive or unread, within a
        // generous inconclusive_limit) proved nothing: never a success.
        let unknown = self.count(Outcome::Inconclusive) + self.count(Outcome::Error);
        if inconclusive || unknown > spec.inconclusive_limit || self.count(Outcome::Successful) == 0
        {
            Verdict::Inconclusive
        } else {
            Verdict::Successful
        }
    }

    /// Tallies: "3 successful, 1 failed (limit 0), 0 inconclusive (limit 0), 0 errors".
    pub fn tally(&self, spec: &GateSpec) -> String {
        format!(
            "{} successful, {} failed (limit {}), {} inconclusive (limit {}), {} errors",
            self.count(Outcome::Successful),
            self.count(Outcome::Failed),
            spec.failure_limit,
            self.count(Outcome::Inconclusive),
            spec.inconclusive_limit,
            self.count(Outcome::Error),
        )
    }

    /// The failed conditions over the whole bake, one sentence each:
    /// "p99 812 ms > 600 ms in 3 of 5 measurements".
    pub fn condition_sentences(&self, spec: &GateSpec) -> Vec<String> {
        let taken = self.taken();
        let mut out = Vec::new();
        for (stat, c) in self.conditions.iter().zip(&spec.conditions) {
            if stat.fails == 0 {
                continue;
            }
            let q = &spec.queries[c.query];
            let unit = q.unit.as_deref();
            let (Some(w), Some(l)) = (stat.worst, stat.limit) else {
                continue;
            };
            let of = format!("in {} of {taken} measurements", stat.fails);
            out.push(match c.rule {
                Rule::Max(_) => format!(
                    "{} {} > {} {of}",
                    q.name,
                    with_unit(w, unit),
                    with_unit(l, unit)
                ),
                Rule::Min(_) => format!(
                    "{} {} < {} {of}",
                    q.name,
                    with_unit(w, unit),
                    with_unit(l, unit)
                ),
                Rule::MaxVsBaseline { plus, times } => format!(
                    "{} {} > {} (baseline {}{}) {of}",
                    q.name,
                    with_unit(w, unit),
                    with_unit(l, unit),
                    with_unit(stat.baseline.unwrap_or(0.0), unit),
                    relative_text(plus, times),
                ),
            });
        }
        for a in &self.alarms {
            out.push(format!("alarm {a} went to ALARM"));
        }
        out
    }

    /// The line for a summary: progress, the running verdict, the last
    /// measurement.
    pub fn summary(&self, spec: &GateSpec) -> String {
        let verdict = self.verdict(spec);
        let mut text = format!(
            "metric gate {}: {} of {} measurements ({}%): {}",
            verdict.word(),
            self.taken(),
            spec.count,
            self.percent(spec),
            self.tally(spec),
        );
        let sentences = self.condition_sentences(spec);
        if !sentences.is_empty() {
            text.push_str("; ");
            text.push_str(&sentences.join("; "));
        }
        if let Some(last) = self.outcomes.chars().last() {
            let word = match last {
                'S' => "successful",
                'F' => "failed",
                'I' => "inconclusive",
                _ => "error",
            };
            text.push_str(&format!("; last measurement {word}: {}", self.last_reason));
        }
        text
    }

    /// The message of a gate that did not pass: what failed and by how much,
    /// then the tallies and what to do.
    pub fn failure_message(&self, spec: &GateSpec) -> String {
        let verdict = self.verdict(spec);
        let sentences = self.condition_sentences(spec);
        let head = match verdict {
            Verdict::Failed => format!(
                "metric gate failed: {}",
                if sentences.is_empty() {
                    self.last_reason.clone()
                } else {
                    sentences.join("; ")
                }
            ),
            Verdict::Inconclusive => format!(
                "metric gate inconclusive (fails unless the spec says inconclusive: pass): {}",
                self.last_reason
            ),
            Verdict::Error => format!(
                "metric gate could not measure: {} consecutive measurements failed to read CloudWatch (limit {}): {}",
                self.consecutive_errors(),
                spec.consecutive_error_limit,
                self.last_reason
            ),
            Verdict::Running | Verdict::Successful => format!("metric gate {}", verdict.word()),
        };
        format!(
            "{head} ({} after {} of {} measurements)",
            self.tally(spec),
            self.taken(),
            spec.count
        )
    }

    /// Compact JSON for a token or `hookDetails`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads [`GateState::to_json`]'s output; `None` when it is not one.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(v.clone()).ok()
    }
}

/// A number as results show it: at most three decimals, no trailing zeros,
/// whole numbers from 100 up.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let text = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    if text == "-0" { "0".to_owned() } else { text }
}

/// A value with its unit: "812 ms", "2.1 %", "37".
pub(crate) fn with_unit(v: f64, unit: Option<&str>) -> String {
    match unit {
        Some(u) if !u.is_empty() => format!("{} {u}", format_value(v)),
        _ => format_value(v),
    }
}

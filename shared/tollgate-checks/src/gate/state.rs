//! The running verdict of a gate: what the measurements so far add up to,
//! small enough to travel in a continuation token (2048 characters) or ECS
//! `hookDetails`, and the sentences that report it.
//!
//! The state is bounded by design: one letter per measurement (at most
//! 200), one short string per condition (at most 20) with numbers cut to 6
//! significant digits, at most 3 alarm names of 64 characters, and the last
//! reason, which [`GateState::encode_within`] shortens to what the carrier
//! has room for. [`GateState::check_fits`] refuses at preflight a spec
//! whose largest state could not fit.

use super::measure::{Measurement, Outcome, relative_text};
use super::spec::{GateSpec, Rule};
use crate::error::SpecError;
use serde::{Deserialize, Serialize};
use tollgate_core::gate_report::{GateOutcome, GateReport};

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
///
/// In a token it is one string, `"fails worst limit baseline"`, with the
/// absent tail left out and each number in its shorter form (`812`,
/// `1.5e-7`) at 6 significant digits: what results show, in a bounded
/// width (13 characters at most). The older `{"f": …, "w": …}` form is
/// still read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CondStat {
    /// Measurements in which it was missed.
    pub fails: u32,
    /// The worst missed value.
    pub worst: Option<f64>,
    /// The limit at the worst miss.
    pub limit: Option<f64>,
    /// The baseline at the worst miss (relative conditions).
    pub baseline: Option<f64>,
}

/// A number at 6 significant digits, in the shorter of its plain and
/// exponent forms; `-` for none (or what is not finite).
fn compact(v: Option<f64>) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "-".to_owned();
    };
    let exp = format!("{v:.5e}");
    let Ok(rounded) = exp.parse::<f64>() else {
        return "-".to_owned();
    };
    // `{:e}` gives the shortest exponent form; `{}` may be very long
    // (1e300 is written out): take the shorter.
    let plain = format!("{rounded}");
    let short = format!("{rounded:e}");
    if plain.len() <= short.len() {
        plain
    } else {
        short
    }
}

impl Serialize for CondStat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let tail = [self.worst, self.limit, self.baseline];
        let used = tail
            .iter()
            .rposition(|v| v.is_some_and(f64::is_finite))
            .map_or(0, |i| i + 1);
        let mut text = self.fails.to_string();
        for v in &tail[..used] {
            text.push(' ');
            text.push_str(&compact(*v));
        }
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for CondStat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Map {
                f: u32,
                #[serde(default)]
                w: Option<f64>,
                #[serde(default)]
                l: Option<f64>,
                #[serde(default)]
                b: Option<f64>,
            },
        }
        match Form::deserialize(d)? {
            Form::Text(text) => {
                let bad = || {
                    serde::de::Error::custom(
                        "a condition's state is not \"fails [worst limit [baseline]]\"",
                    )
                };
                let mut parts = text.split(' ');
                let fails = parts
                    .next()
                    .and_then(|f| f.parse::<u32>().ok())
                    .ok_or_else(bad)?;
                let mut num = || -> Result<Option<f64>, D::Error> {
                    match parts.next() {
                        None | Some("-") => Ok(None),
                        Some(t) => t.parse::<f64>().map(Some).map_err(|_| bad()),
                    }
                };
                let (worst, limit, baseline) = (num()?, num()?, num()?);
                if parts.next().is_some() {
                    return Err(bad());
                }
                Ok(CondStat {
                    fails,
                    worst,
                    limit,
                    baseline,
                })
            }
            Form::Map { f, w, l, b } => Ok(CondStat {
                fails: f,
                worst: w,
                limit: l,
                baseline: b,
            }),
        }
    }
}

/// Alarm names a state keeps (the first seen in ALARM).
pub const STATE_ALARMS: usize = 3;
/// Characters of an alarm name a state keeps.
pub const STATE_ALARM_CHARS: usize = 64;
/// Characters of the last measurement's reason a state keeps at most (it
/// is cut further when the token needs the room).
pub const STATE_REASON_CHARS: usize = 300;
/// Characters of the last reason a state always has room for: a spec whose
/// state cannot fit with this much is refused ([`GateState::check_fits`]).
pub const STATE_REASON_RESERVE: usize = 80;

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
    /// Alarms seen in ALARM (names, at most [`STATE_ALARMS`], each cut to
    /// [`STATE_ALARM_CHARS`]).
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    /// The last measurement's reason, cut to [`STATE_REASON_CHARS`].
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
            let name = tollgate_core::text::ellipsize(name, STATE_ALARM_CHARS);
            if !self.alarms.contains(&name) && self.alarms.len() < STATE_ALARMS {
                self.alarms.push(name);
            }
        }
        self.last_reason = tollgate_core::text::ellipsize(&m.reason, STATE_REASON_CHARS);
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

    /// The report of a gate that did not pass: what failed and by how much
    /// (one sentence per missed condition or fired alarm), the last
    /// measurement, the tallies and what to do. Its text
    /// ([`GateReport::to_text`]) is the failure message; the notifier reads
    /// it back.
    pub fn failure_report(&self, spec: &GateSpec) -> GateReport {
        let verdict = self.verdict(spec);
        let last_word = match self.outcomes.chars().last() {
            Some('S') => "successful",
            Some('F') => "failed",
            Some('I') => "inconclusive",
            Some(_) => "error",
            None => "",
        };
        let mut report = match verdict {
            Verdict::Failed => {
                let mut r = GateReport::new(
                    GateOutcome::Failed,
                    self.condition_sentences(spec),
                    &self.last_reason,
                );
                r.advice = Some(
                    "the new version stays out: fix what the measurements show and release again, or change the gate's conditions if a limit is wrong".to_owned(),
                );
                r
            }
            Verdict::Inconclusive => {
                let mut r =
                    GateReport::new(GateOutcome::Inconclusive, Vec::new(), &self.last_reason);
                r.advice = Some(
                    "too little data to judge the new version, which fails the gate unless the spec says inconclusive: pass; send traffic during the bake, or lower min_requests, or set no_data / inconclusive_limit".to_owned(),
                );
                r
            }
            Verdict::Error => {
                let mut r = GateReport::new(
                    GateOutcome::CouldNotMeasure,
                    Vec::new(),
                    &format!(
                        "{} consecutive measurements failed to read CloudWatch (limit {}): {}",
                        self.consecutive_errors(),
                        spec.consecutive_error_limit,
                        self.last_reason
                    ),
                );
                r.advice = Some(
                    "check the function's cloudwatch:GetMetricData and DescribeAlarms permissions and CloudWatch's health, then retry".to_owned(),
                );
                r
            }
            Verdict::Running | Verdict::Successful => {
                GateReport::new(GateOutcome::Failed, Vec::new(), verdict.word())
            }
        };
        if verdict == Verdict::Failed && !last_word.is_empty() {
            report.last = Some(format!(
                "({} of {}) {last_word}: {}",
                self.taken(),
                spec.count,
                self.last_reason
            ));
        }
        report.tally = Some(format!(
            "{}; {} of {} taken",
            self.tally(spec),
            self.taken(),
            spec.count
        ));
        report
    }

    /// The message of a gate that did not pass ([`GateState::failure_report`]
    /// as text, at most [`tollgate_core::gate_report::MAX_TEXT`] characters).
    pub fn failure_message(&self, spec: &GateSpec) -> String {
        self.failure_report(spec).to_text()
    }

    /// `encode`'s text of this state in at most `max` characters, the last
    /// reason shortened as much as needed. `None` only when even an empty
    /// reason does not fit, which [`GateState::check_fits`] rules out at
    /// preflight.
    pub fn encode_within(
        &self,
        max: usize,
        encode: impl Fn(&GateState) -> String,
    ) -> Option<String> {
        let mut state = self.clone();
        loop {
            let text = encode(&state);
            let len = text.chars().count();
            if len <= max {
                return Some(text);
            }
            let have = state.last_reason.chars().count();
            if have == 0 {
                return None;
            }
            // An escaped character may take more than one: cut at least
            // the excess, plus the ellipsis.
            let keep = have.saturating_sub(len - max + 1);
            state.last_reason = if keep == 0 {
                String::new()
            } else {
                tollgate_core::text::ellipsize(&state.last_reason, keep)
            };
        }
    }

    /// The largest state `spec` can lead to: every measurement counted,
    /// every condition missed with the widest numbers, every alarm slot
    /// taken by a name that escapes to twice its length, and the reserved
    /// part of the last reason likewise.
    pub fn worst_case(spec: &GateSpec) -> GateState {
        let widest = (-330..=308)
            .map(|e| -1.234_567_8 * 10f64.powi(e))
            .filter(|v| v.is_finite() && *v != 0.0)
            .max_by_key(|v| compact(Some(*v)).len());
        GateState {
            started_at: i64::MIN,
            outcomes: "E".repeat(usize::try_from(spec.count).unwrap_or(usize::MAX)),
            conditions: vec![
                CondStat {
                    fails: spec.count,
                    worst: widest,
                    limit: widest,
                    baseline: widest,
                };
                spec.conditions.len()
            ],
            alarms: (0..spec.alarms.len().min(STATE_ALARMS))
                .map(|_| "\"".repeat(STATE_ALARM_CHARS))
                .collect(),
            last_reason: "\"".repeat(STATE_REASON_RESERVE),
        }
    }

    /// Refuses, saying what to reduce, a spec whose running verdict could
    /// outgrow `max` characters of `encode` (`what` names the carrier, e.g.
    /// "CodePipeline's continuation token").
    pub fn check_fits(
        spec: &GateSpec,
        max: usize,
        what: &str,
        encode: impl Fn(&GateState) -> String,
    ) -> Result<(), SpecError> {
        let len = encode(&GateState::worst_case(spec)).chars().count();
        if len <= max {
            return Ok(());
        }
        Err(SpecError::invalid(
            "gate",
            format!(
                "the running verdict of this gate (count {}, {} conditions, {} alarms) can take {len} characters, more than {what} holds ({max}); lower count (with a longer interval for the same bake), or split the conditions and alarms over two gates",
                spec.count,
                spec.conditions.len(),
                spec.alarms.len(),
            ),
        ))
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
/// whole numbers from 100 up, powers of ten from 10^12 up (a bounded width).
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let text = if v.abs() >= 1e12 {
        let t = format!("{v:.3e}");
        match t.split_once('e') {
            Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
            None => t,
        }
    } else if v.abs() >= 100.0 {
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

//! CloudWatch metric math over moto's `GetMetricData` answers, for the AWS
//! stand-in.
//!
//! moto answers metric-stat queries, but an expression only when it is
//! exactly another query's id: `100 * FILL(errors, 0) / requests` comes back
//! empty. [`complete`] evaluates the arithmetic subset Tollgate's gate specs
//! use (numbers, query ids, `+ - * /`, parentheses, unary minus and
//! `FILL(id, number)`) point by point over the metric results, aligned by
//! timestamp as CloudWatch aligns them, and fills in the results moto left
//! empty. A point where a referenced series has no value is dropped (as
//! CloudWatch drops it without `FILL`), and so is a division by zero.
//! Anything else (other functions, `SEARCH`, Metrics Insights) is left as
//! moto answered it.

use serde_json::Value;
use std::collections::BTreeMap;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Id(String),
    Fill(String, f64),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
}

/// Parses `text`; `None` when it is outside the supported subset.
fn parse(text: &str) -> Option<Expr> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let e = p.sum()?;
    (p.at == p.tokens.len()).then_some(e)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Word(String),
    Op(char),
}

fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/(),".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Tok::Num(s.parse().ok()?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            return None;
        }
    }
    Some(out)
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat(&mut self, op: char) -> Option<()> {
        (self.next()? == Tok::Op(op)).then_some(())
    }

    fn sum(&mut self) -> Option<Expr> {
        let mut left = self.product()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.product()?));
        }
        Some(left)
    }

    fn product(&mut self) -> Option<Expr> {
        let mut left = self.unary()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.at += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<Expr> {
        if self.peek() == Some(&Tok::Op('-')) {
            self.at += 1;
            return Some(Expr::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Option<Expr> {
        match self.next()? {
            Tok::Num(n) => Some(Expr::Num(n)),
            Tok::Op('(') => {
                let e = self.sum()?;
                self.eat(')')?;
                Some(e)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("FILL") => {
                self.eat('(')?;
                let Tok::Word(id) = self.next()? else {
                    return None;
                };
                self.eat(',')?;
                let negative = self.peek() == Some(&Tok::Op('-'));
                if negative {
                    self.at += 1;
                }
                let Tok::Num(n) = self.next()? else {
                    return None;
                };
                self.eat(')')?;
                Some(Expr::Fill(id, if negative { -n } else { n }))
            }
            Tok::Word(w) if self.peek() == Some(&Tok::Op('(')) => {
                // Another function: not evaluated here.
                let _ = w;
                None
            }
            Tok::Word(w) => Some(Expr::Id(w)),
            Tok::Op(_) => None,
        }
    }
}

/// A series: timestamp (as the answer's JSON text) to value.
type Points = BTreeMap<String, (Value, f64)>;

fn ids(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Num(_) => {}
        Expr::Id(id) | Expr::Fill(id, _) => out.push(id.clone()),
        Expr::Neg(inner) => ids(inner, out),
        Expr::Bin(_, l, r) => {
            ids(l, out);
            ids(r, out);
        }
    }
}

fn eval(e: &Expr, at: &str, series: &BTreeMap<String, Points>) -> Option<f64> {
    match e {
        Expr::Num(n) => Some(*n),
        Expr::Id(id) => series.get(id)?.get(at).map(|(_, v)| *v),
        Expr::Fill(id, n) => Some(
            series
                .get(id)
                .and_then(|s| s.get(at))
                .map_or(*n, |(_, v)| *v),
        ),
        Expr::Neg(inner) => eval(inner, at, series).map(|v| -v),
        Expr::Bin(op, l, r) => {
            let (l, r) = (eval(l, at, series)?, eval(r, at, series)?);
            let v = match op {
                '+' => l + r,
                '-' => l - r,
                '*' => l * r,
                _ if r == 0.0 => return None,
                _ => l / r,
            };
            Some(v)
        }
    }
}

fn points(result: &Value) -> Points {
    let timestamps = result["Timestamps"].as_array().cloned().unwrap_or_default();
    let values = result["Values"].as_array().cloned().unwrap_or_default();
    timestamps
        .into_iter()
        .zip(values)
        .filter_map(|(t, v)| Some((t.to_string(), (t, v.as_f64()?))))
        .collect()
}

/// Fills in the expression results moto left empty in `answer` (its awsJson
/// `GetMetricData` answer to `request`).
pub fn complete(request: &Value, answer: &mut Value) {
    let Some(queries) = request["MetricDataQueries"].as_array() else {
        return;
    };
    let Some(results) = answer["MetricDataResults"].as_array_mut() else {
        return;
    };
    let mut series: BTreeMap<String, Points> = results
        .iter()
        .filter_map(|r| Some((r["Id"].as_str()?.to_owned(), points(r))))
        .collect();
    for q in queries {
        let (Some(id), Some(text)) = (q["Id"].as_str(), q["Expression"].as_str()) else {
            continue;
        };
        let Some(expr) = parse(text) else { continue };
        if series.get(id).is_some_and(|p| !p.is_empty()) {
            continue;
        }
        let mut refs = Vec::new();
        ids(&expr, &mut refs);
        // Every timestamp any referenced series has.
        let mut stamps: BTreeMap<String, Value> = BTreeMap::new();
        for r in &refs {
            for (k, (t, _)) in series.get(r).into_iter().flatten() {
                stamps.insert(k.clone(), t.clone());
            }
        }
        let computed: Points = stamps
            .into_iter()
            .filter_map(|(k, t)| {
                let v = eval(&expr, &k, &series)?;
                v.is_finite().then_some((k, (t, v)))
            })
            .collect();
        // In time order (epoch numbers; text stamps as text).
        let mut ordered: Vec<&(Value, f64)> = computed.values().collect();
        ordered.sort_by(|(a, _), (b, _)| match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.to_string().cmp(&b.to_string()),
        });
        let (timestamps, values): (Vec<Value>, Vec<Value>) = ordered
            .into_iter()
            .map(|(t, v)| (t.clone(), Value::from(*v)))
            .unzip();
        let entry = serde_json::json!({
            "Id": id,
            "Label": q["Label"].as_str().unwrap_or(id),
            "Timestamps": timestamps,
            "Values": values,
            "StatusCode": "Complete",
        });
        match results.iter_mut().find(|r| r["Id"].as_str() == Some(id)) {
            Some(r) => *r = entry,
            None if q["ReturnData"].as_bool() != Some(false) => results.push(entry),
            None => {}
        }
        series.insert(id.to_owned(), computed);
    }
    // Queries asked not to be returned are not.
    results.retain(|r| {
        let id = r["Id"].as_str();
        !queries
            .iter()
            .any(|q| q["Id"].as_str() == id && q["ReturnData"].as_bool() == Some(false))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(id: &str, points: &[(f64, f64)]) -> Value {
        json!({"Id": id, "Label": id, "StatusCode": "Complete",
            "Timestamps": points.iter().map(|p| p.0).collect::<Vec<_>>(),
            "Values": points.iter().map(|p| p.1).collect::<Vec<_>>()})
    }

    fn request(expressions: &[(&str, &str)]) -> Value {
        let mut q = vec![
            json!({"Id": "requests", "MetricStat": {}}),
            json!({"Id": "errors", "MetricStat": {}}),
        ];
        q.extend(
            expressions
                .iter()
                .map(|(id, e)| json!({"Id": id, "Expression": e})),
        );
        json!({"MetricDataQueries": q})
    }

    fn values(answer: &Value, id: &str) -> Vec<f64> {
        answer["MetricDataResults"]
            .as_array()
            .expect("results")
            .iter()
            .find(|r| r["Id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {answer}"))["Values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect()
    }

    #[test]
    fn a_rate_is_computed_point_by_point_with_fill() {
        let mut answer = json!({"MetricDataResults": [
            result("requests", &[(60.0, 1000.0), (120.0, 500.0)]),
            result("errors", &[(120.0, 25.0)]),
            result("error_rate", &[]),
        ]});
        complete(
            &request(&[("error_rate", "100 * FILL(errors, 0) / requests")]),
            &mut answer,
        );
        assert_eq!(values(&answer, "error_rate"), vec![0.0, 5.0]);
    }

    #[test]
    fn without_fill_a_missing_point_is_dropped_and_precedence_holds() {
        let mut answer = json!({"MetricDataResults": [
            result("requests", &[(60.0, 1000.0), (120.0, 500.0)]),
            result("errors", &[(120.0, 25.0)]),
        ]});
        complete(
            &request(&[
                ("rate", "errors / requests * 100"),
                ("x", "-(1 + 2) * 3 - errors / 5"),
            ]),
            &mut answer,
        );
        assert_eq!(values(&answer, "rate"), vec![5.0]);
        assert_eq!(values(&answer, "x"), vec![-14.0]);
    }

    #[test]
    fn division_by_zero_drops_the_point_and_unknown_forms_are_left_alone() {
        let mut answer = json!({"MetricDataResults": [
            result("requests", &[(60.0, 0.0)]),
            result("errors", &[(60.0, 3.0)]),
        ]});
        complete(
            &request(&[
                ("rate", "errors / requests"),
                ("s", "SUM(METRICS())"),
                ("bad", "errors +"),
            ]),
            &mut answer,
        );
        assert!(values(&answer, "rate").is_empty());
        let ids: Vec<&str> = answer["MetricDataResults"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|r| r["Id"].as_str())
            .collect();
        assert_eq!(ids, vec!["requests", "errors", "rate"]);
    }

    #[test]
    fn return_data_false_is_used_but_not_returned() {
        let mut answer = json!({"MetricDataResults": [
            result("requests", &[(60.0, 200.0)]),
            result("errors", &[(60.0, 2.0)]),
        ]});
        let mut req = request(&[("rate", "100 * errors / requests")]);
        req["MetricDataQueries"][1]["ReturnData"] = json!(false);
        complete(&req, &mut answer);
        assert_eq!(values(&answer, "rate"), vec![1.0]);
        assert!(
            !answer.to_string().contains("\"errors\""),
            "errors is not returned: {answer}"
        );
    }
}
